//! The parsed form of a document that every parser produces and the chunker consumes.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The formats Lore can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormat {
    Pdf,
    Html,
    Markdown,
    Text,
    Docx,
}

impl DocumentFormat {
    /// Picks the format from the extension; files without a known extension are sniffed:
    /// PDF and ZIP magic numbers, otherwise text when the bytes decode as text.
    pub fn detect(path: &Path, bytes: &[u8]) -> Result<DocumentFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let by_ext = match ext.as_str() {
            "pdf" => Some(DocumentFormat::Pdf),
            "html" | "htm" | "xhtml" => Some(DocumentFormat::Html),
            "md" | "markdown" | "mdown" | "mkd" => Some(DocumentFormat::Markdown),
            "txt" | "text" | "rst" | "log" | "csv" | "tsv" | "asc" => Some(DocumentFormat::Text),
            "docx" => Some(DocumentFormat::Docx),
            _ => None,
        };
        if let Some(f) = by_ext {
            return Ok(f);
        }
        if bytes.starts_with(b"%PDF-") {
            return Ok(DocumentFormat::Pdf);
        }
        if !ext.is_empty() && !looks_like_plain_name(path) {
            return Err(Error::Unsupported(format!(
                ".{ext} files are not supported"
            )));
        }
        if crate::text::looks_like_text(bytes) {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
            if head.contains("<!doctype html") || head.contains("<html") {
                return Ok(DocumentFormat::Html);
            }
            return Ok(DocumentFormat::Text);
        }
        Err(Error::Unsupported("binary file of unknown type".into()))
    }
}

/// Whether the extension is really part of a plain-text file's name: README.Debian,
/// README.logs, FAQ.old, NEWS.1 (a capitalised extension, or a stem in capitals as such
/// files are named). The content still decides: binary bytes are refused.
fn looks_like_plain_name(path: &Path) -> bool {
    let part = |p: Option<&std::ffi::OsStr>| p.map(|s| s.to_string_lossy().into_owned());
    let ext = part(path.extension()).unwrap_or_default();
    let stem = part(path.file_stem()).unwrap_or_default();
    let lower = ext.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "debian" | "old" | "gz_" | "en" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8"
    ) || ext.chars().any(|c| c.is_ascii_uppercase())
        || (stem.len() >= 3
            && stem
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-'))
}

/// A structural unit of a document: a heading or a paragraph-like block of body text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub kind: BlockKind,
    /// Byte range of the block in [`ParsedDocument::text`] (always on char boundaries).
    pub start: usize,
    pub end: usize,
    /// 1-based page number for paginated formats (PDF), `None` otherwise.
    pub page: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// A section heading; level 1 is the top.
    Heading { level: u8 },
    /// Body text: a paragraph, list item, table row group or code block.
    Paragraph,
}

/// One document as text plus structure. Offsets in blocks and chunks point into `text`,
/// which is what a viewer highlights later.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParsedDocument {
    pub title: Option<String>,
    pub text: String,
    /// In document order, non-overlapping, covering all text that should be indexed.
    pub blocks: Vec<Block>,
    /// Number of pages for paginated formats.
    pub pages: Option<u32>,
    /// Non-fatal problems worth telling the user ("no text layer (scanned?)").
    pub warnings: Vec<String>,
}

impl ParsedDocument {
    /// Appends a block of text, separating it from the previous one with a blank line.
    /// Parsers build documents through this so offsets are always consistent.
    pub fn push_block(&mut self, kind: BlockKind, text: &str, page: Option<u32>) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        let start = self.text.len();
        self.text.push_str(text);
        self.blocks.push(Block {
            kind,
            start,
            end: self.text.len(),
            page,
        });
    }

    pub fn block_text(&self, b: &Block) -> &str {
        &self.text[b.start..b.end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_named_like_readmes_are_sniffed_whatever_their_extension() {
        let text = b"Logging on systemd machines goes to the journal.\n";
        for name in [
            "README.logs",
            "README.Debian",
            "FAQ.old",
            "NEWS.1",
            "CHANGES",
        ] {
            assert_eq!(
                DocumentFormat::detect(Path::new(name), text).ok(),
                Some(DocumentFormat::Text),
                "{name}"
            );
        }
        assert!(DocumentFormat::detect(Path::new("notes.logs"), text).is_err());
        let binary = [0u8, 159, 146, 150, 0, 1, 2, 3];
        assert!(DocumentFormat::detect(Path::new("LOGO.png"), &binary).is_err());
    }
}
