//! Names the server stores: upload file names and collection names. A name becomes one
//! path component that is safe to create whatever the client sent: no separators, control
//! or format characters (bidi overrides such as U+202E, zero-width spaces), no leading dot,
//! and a length in bytes the file system takes, a long name keeping its extension. Names
//! beyond the input limits are refused with a 400 that says the limit.

use super::error::ApiError;
use crate::files::truncate_bytes;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest stored name, in bytes (UTF-8): file systems take 255, and the upload's hidden
/// temporary adds to it.
pub const MAX_STORED_NAME_BYTES: usize = 200;
/// Longest file name an upload may carry, in bytes: longer ones are refused, shorter ones
/// beyond [`MAX_STORED_NAME_BYTES`] are shortened.
pub const MAX_UPLOAD_NAME_BYTES: usize = 1024;
/// Longest collection name, in bytes: a collection is an identity, never shortened.
pub const MAX_COLLECTION_BYTES: usize = 100;
/// An extension longer than this is part of the name, not an extension.
const MAX_EXTENSION_BYTES: usize = 16;

/// A file or folder name safe to create: the last path component of what the client sent,
/// with separators and control characters replaced, format characters dropped, leading
/// dots removed, at most [`MAX_STORED_NAME_BYTES`] bytes with its extension kept; never
/// empty.
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = last
        .chars()
        .filter(|c| c.general_category() != GeneralCategory::Format)
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.');
    let shortened = shorten(cleaned);
    if shortened.is_empty() {
        "upload".to_string()
    } else {
        shortened
    }
}

/// `name` cut to [`MAX_STORED_NAME_BYTES`], its extension kept.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_STORED_NAME_BYTES {
        return name.to_string();
    }
    let extension = name
        .rfind('.')
        .filter(|&dot| dot > 0 && name.len() - dot <= MAX_EXTENSION_BYTES)
        .map_or("", |dot| &name[dot..]);
    let stem = &name[..name.len() - extension.len()];
    let stem = truncate_bytes(stem, MAX_STORED_NAME_BYTES - extension.len()).trim_end();
    format!("{stem}{extension}")
}

/// An upload's file name, refused when longer than [`MAX_UPLOAD_NAME_BYTES`].
pub fn check_upload_name(name: &str) -> Result<(), ApiError> {
    if name.len() > MAX_UPLOAD_NAME_BYTES {
        return Err(ApiError::BadRequest(format!(
            "file names are at most {MAX_UPLOAD_NAME_BYTES} bytes (UTF-8); this one is {} bytes",
            name.len()
        )));
    }
    Ok(())
}

/// The collection an upload names, cleaned; refused when the cleaned name is longer than
/// [`MAX_COLLECTION_BYTES`] (shortening would file documents under another collection).
pub fn collection_name(text: &str) -> Result<String, ApiError> {
    let last = text.rsplit(['/', '\\']).next().unwrap_or(text);
    if last.len() > MAX_COLLECTION_BYTES {
        return Err(ApiError::BadRequest(format!(
            "collection names are at most {MAX_COLLECTION_BYTES} bytes (UTF-8); this one is {} bytes",
            last.len()
        )));
    }
    Ok(clean_name(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_are_dropped() {
        // "invoice_\u{202E}fdp.exe" shows as "invoice_exe.pdf" in a bidi-aware listing.
        assert_eq!(clean_name("invoice_\u{202E}fdp.exe"), "invoice_fdp.exe");
        assert_eq!(clean_name("a\u{200B}b\u{2066}c\u{FEFF}.md"), "abc.md");
        assert_eq!(clean_name("\u{200E}.bashrc"), "bashrc");
        assert_eq!(clean_name("\u{202E}\u{200B}"), "upload");
        // Letters with combining marks are not format characters.
        assert_eq!(clean_name("Cafe\u{301}.md"), "Cafe\u{301}.md");
    }

    #[test]
    fn long_names_are_cut_in_bytes_and_keep_their_extension() {
        let accented = format!("{}.pdf", "é".repeat(150));
        let stored = clean_name(&accented);
        assert!(stored.len() <= MAX_STORED_NAME_BYTES, "{}", stored.len());
        assert!(stored.ends_with("é.pdf"), "{stored}");
        assert_eq!(stored, format!("{}.pdf", "é".repeat(98)));
        let plain = format!("{}.docx", "a".repeat(300));
        let stored = clean_name(&plain);
        assert_eq!(stored.len(), MAX_STORED_NAME_BYTES);
        assert!(stored.ends_with("aaa.docx"), "{stored}");
        // No extension worth the name: cut like any other text.
        let dotted = format!("report.{}", "x".repeat(300));
        assert_eq!(clean_name(&dotted).len(), MAX_STORED_NAME_BYTES);
        // Short names are untouched.
        assert_eq!(
            clean_name("Rapport annuel 2025.pdf"),
            "Rapport annuel 2025.pdf"
        );
    }

    #[test]
    fn input_limits_are_in_bytes_and_named() {
        let collection = "é".repeat(60);
        let refused = collection_name(&collection).expect_err("120 bytes");
        let message = refused.body().error.message;
        assert!(message.contains("at most 100 bytes"), "{message}");
        assert_eq!(refused.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(
            collection_name(&"é".repeat(50)).expect("100 bytes"),
            "é".repeat(50)
        );
        assert_eq!(collection_name("hr\u{202E}").expect("short"), "hr");
        assert!(check_upload_name(&"é".repeat(512)).is_ok());
        assert!(check_upload_name(&"é".repeat(513)).is_err());
    }
}
