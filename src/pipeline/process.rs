//! Processing one file: read and hash it, leave it alone when unchanged, re-file content
//! already indexed under another path ([`refile`]), or parse, chunk and embed it, and add
//! the document's record and chunks to the pending batch. The [`Outcome`] says which, and
//! no failure here escapes the file. Also what a record holds beyond the parse: the
//! document's identity ([`doc_id`]), its absolute source, the time.

use super::discovery::Candidate;
use super::IndexAccess;
use super::Result;
use crate::fault::{self, Stage};
use lore_embed::Embedder;
use lore_index::{Batch, DocumentRecord, NewChunk};
use lore_ingest::chunk::{chunk_document, ChunkOptions};
use lore_ingest::{DocumentFormat, Limits, ParsedDocument};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// What happened to one file.
pub(super) enum Outcome {
    Ingested {
        chunks: usize,
        pages: u32,
        warnings: Vec<String>,
        reused: bool,
    },
    Unchanged,
    Skipped(String),
    Failed {
        reason: String,
        /// The hash of what failed, when the file could be read.
        content_hash: Option<String>,
    },
}

impl Outcome {
    fn failed(reason: String) -> Outcome {
        Outcome::Failed {
            reason,
            content_hash: None,
        }
    }
}

/// Parses, chunks and embeds one file, adding it to `pending` as its very last step (so a
/// panic caught around it leaves nothing of the file behind). Never fails the batch.
pub(super) fn process_file(
    candidate: &Candidate,
    embedder: &Embedder,
    index: &dyn IndexAccess,
    limits: &Limits,
    chunk_opts: &ChunkOptions,
    donor: &dyn Fn(&str) -> Option<String>,
    pending: &mut Batch,
) -> Outcome {
    let meta = match std::fs::metadata(&candidate.fs_path) {
        Ok(m) => m,
        Err(e) => return Outcome::failed(format!("cannot read file: {e}")),
    };
    if !meta.is_file() {
        return Outcome::Skipped("not a regular file".into());
    }
    // Opened once, and read from that handle: a file of a walked, watched or upload folder
    // must resolve inside it (a link out is not followed, even one swapped in just now).
    let roots: Vec<std::path::PathBuf> = candidate.root.iter().cloned().collect();
    let opened = if roots.is_empty() {
        std::fs::File::open(&candidate.fs_path).map_err(crate::files::OpenWithinError::Io)
    } else {
        crate::files::open_within(&candidate.fs_path, &roots)
    };
    let file = match opened {
        Ok(f) => f,
        Err(crate::files::OpenWithinError::Outside { target, root }) => {
            return Outcome::Skipped(super::outside_reason(&target, &root))
        }
        Err(crate::files::OpenWithinError::NotAFile) => {
            return Outcome::Skipped("not a regular file".into())
        }
        Err(crate::files::OpenWithinError::Io(e)) => {
            return Outcome::failed(format!("cannot read file: {e}"))
        }
    };
    let size = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Outcome::failed(format!("cannot read file: {e}")),
    };
    if size == 0 {
        return Outcome::Skipped("file is empty".into());
    }
    if size > limits.max_file_bytes {
        return Outcome::Skipped(
            lore_ingest::Error::TooLarge {
                size,
                max: limits.max_file_bytes,
            }
            .to_string(),
        );
    }
    // At most one byte over the limit: a file growing while it is read is caught, not
    // read without end.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    if let Err(e) = file
        .take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
    {
        return Outcome::failed(format!("cannot read file: {e}"));
    }
    let size = bytes.len() as u64;
    if size > limits.max_file_bytes {
        return Outcome::Skipped(
            lore_ingest::Error::TooLarge {
                size,
                max: limits.max_file_bytes,
            }
            .to_string(),
        );
    }
    let content_hash = hex::encode(Sha256::digest(&bytes));
    let doc_id = doc_id(&candidate.collection, &candidate.doc_path);
    match index.document(&doc_id) {
        Ok(Some(existing)) if existing.content_hash == content_hash => return Outcome::Unchanged,
        Ok(_) => {}
        Err(e) => return Outcome::failed(format!("index lookup failed: {e}")),
    }
    if let Some(donor_id) = donor(&content_hash).filter(|d| *d != doc_id) {
        match refile(index, &donor_id, candidate, &doc_id, &content_hash, size) {
            Ok(Some((record, chunks))) => {
                let outcome = Outcome::Ingested {
                    chunks: chunks.len(),
                    pages: record.pages.unwrap_or(0),
                    warnings: record.warnings.clone(),
                    reused: true,
                };
                pending.upserts.push((record, chunks));
                return outcome;
            }
            // The donor is gone or changed meanwhile: ingest the file the ordinary way.
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %candidate.doc_path, "cannot reuse {donor_id}: {e:#}"),
        }
    }
    let format = match DocumentFormat::detect(&candidate.fs_path, &bytes) {
        Ok(f) => f,
        Err(e) => return Outcome::Skipped(e.to_string()),
    };
    // A parser bug on a hostile file must cost that file, not the batch.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fault::hit(Stage::Parse, &candidate.doc_path);
        lore_ingest::parse_bytes(&bytes, format, &candidate.fs_path, limits)
    }));
    let failed = |reason: String| Outcome::Failed {
        reason,
        content_hash: Some(content_hash.clone()),
    };
    let doc = match parsed {
        Ok(Ok(doc)) => doc,
        Ok(Err(e @ lore_ingest::Error::Unsupported(_))) => return Outcome::Skipped(e.to_string()),
        Ok(Err(e)) => return failed(e.to_string()),
        Err(_) => return failed(format!("the {format:?} parser crashed on this file")),
    };
    let mut warnings = doc.warnings.clone();
    if candidate.fs_path.to_str().is_none() {
        warnings.push(format!(
            "file name is not valid UTF-8; indexed as {:?}",
            candidate.doc_path
        ));
    }
    let count = |s: &str| embedder.count_tokens(s);
    fault::hit(Stage::Chunk, &candidate.doc_path);
    let chunks = chunk_document(&doc, chunk_opts, &count);
    let title = doc
        .title
        .clone()
        .unwrap_or_else(|| candidate.doc_path.clone());
    let embed_inputs: Vec<String> = chunks.iter().map(|c| embedding_input(&title, c)).collect();
    let refs: Vec<&str> = embed_inputs.iter().map(String::as_str).collect();
    fault::hit(Stage::Embed, &candidate.doc_path);
    let vectors = match embedder.embed(&refs) {
        Ok(v) => v,
        Err(e) => return failed(format!("embedding failed: {e}")),
    };
    let record = DocumentRecord {
        doc_id: doc_id.clone(),
        path: candidate.doc_path.clone(),
        collection: candidate.collection.clone(),
        title: title.clone(),
        format: format_name(format).to_string(),
        content_hash,
        pages: doc.pages,
        chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
        bytes: size,
        ingested_at: unix_now(),
        warnings: warnings.clone(),
        source: absolute_source(&candidate.fs_path),
    };
    let new_chunks: Vec<NewChunk> = chunks
        .into_iter()
        .zip(vectors)
        .map(|(c, vector)| NewChunk {
            record: lore_index::ChunkRecord {
                doc_id: doc_id.clone(),
                path: candidate.doc_path.clone(),
                collection: candidate.collection.clone(),
                title: title.clone(),
                heading: c.heading,
                text: c.text,
                page_start: c.pages.map(|p| p.0),
                page_end: c.pages.map(|p| p.1),
                char_start: c.char_start as u64,
                char_end: c.char_end as u64,
                ordinal: c.ordinal,
            },
            vector,
        })
        .collect();
    let n = new_chunks.len();
    pending.upserts.push((record, new_chunks));
    Outcome::Ingested {
        chunks: n,
        pages: page_count(&doc),
        warnings,
        reused: false,
    }
}

/// The indexed document `donor_id`, whose content hash is `content_hash`, re-filed as
/// `candidate` under `doc_id`: same passages, offsets and vectors, new identity. `None` when
/// the donor no longer holds that content.
fn refile(
    index: &dyn IndexAccess,
    donor_id: &str,
    candidate: &Candidate,
    doc_id: &str,
    content_hash: &str,
    size: u64,
) -> Result<Option<(DocumentRecord, Vec<NewChunk>)>> {
    let Some(donor) = index
        .document(donor_id)?
        .filter(|d| d.content_hash == content_hash)
    else {
        return Ok(None);
    };
    let chunks = index.chunks_of(donor_id)?;
    if chunks.len() != donor.chunks as usize {
        return Ok(None);
    }
    // A title that was only the old path follows the file.
    let title = if donor.title == donor.path {
        candidate.doc_path.clone()
    } else {
        donor.title.clone()
    };
    let record = DocumentRecord {
        doc_id: doc_id.to_string(),
        path: candidate.doc_path.clone(),
        collection: candidate.collection.clone(),
        title: title.clone(),
        bytes: size,
        ingested_at: unix_now(),
        source: absolute_source(&candidate.fs_path),
        ..donor
    };
    let chunks = chunks
        .into_iter()
        .map(|mut c| {
            c.record.doc_id = record.doc_id.clone();
            c.record.path = record.path.clone();
            c.record.collection = record.collection.clone();
            c.record.title = title.clone();
            c
        })
        .collect();
    Ok(Some((record, chunks)))
}

/// The file's absolute path, recorded so the original can be served and a watcher knows
/// which documents come from its folder. The folder is resolved, the name is kept: a
/// symlinked file stays where it was found.
pub(super) fn absolute_source(path: &Path) -> Option<String> {
    let name = path.file_name()?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(parent)
        .ok()
        .and_then(|p| p.join(name).to_str().map(String::from))
}

/// What the embedder sees for a chunk: the document title and section path give a short
/// passage the context a reader would have ("Kerberos admin guide › Principals").
fn embedding_input(title: &str, chunk: &lore_ingest::Chunk) -> String {
    let mut context = vec![title];
    context.extend(
        chunk
            .section_path
            .iter()
            .map(String::as_str)
            .filter(|h| *h != title),
    );
    format!("{}\n{}", context.join(" › "), chunk.text)
}

fn page_count(doc: &ParsedDocument) -> u32 {
    doc.pages.unwrap_or(0)
}

fn format_name(f: DocumentFormat) -> &'static str {
    match f {
        DocumentFormat::Pdf => "pdf",
        DocumentFormat::Html => "html",
        DocumentFormat::Markdown => "markdown",
        DocumentFormat::Text => "text",
        DocumentFormat::Docx => "docx",
    }
}

/// Stable identity of a document: collection + path as ingested.
pub fn doc_id(collection: &str, doc_path: &str) -> String {
    let digest = Sha256::digest(format!("{collection}\0{doc_path}").as_bytes());
    hex::encode(&digest[..12])
}

/// Seconds since the Unix epoch (what records and the watch journal store).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_depend_on_collection_and_path() {
        assert_eq!(doc_id("default", "a.pdf"), doc_id("default", "a.pdf"));
        assert_ne!(doc_id("default", "a.pdf"), doc_id("hr", "a.pdf"));
        assert_ne!(doc_id("default", "a.pdf"), doc_id("default", "b.pdf"));
    }
}
