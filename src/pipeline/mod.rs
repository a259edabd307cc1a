//! The ingestion pipeline: files → `lore_ingest` (parse, chunk) → embedder → `lore_index`.
//!
//! It owns discovery (recursive walk, hidden files, symlink loops), change detection
//! (content hash), batching of atomic index commits, progress, and the per-file outcome
//! summary. One bad file never stops the batch: every failure is recorded with its reason.

use crate::config::Config;
use crate::embed::Embedder;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lore_index::{Batch, DocumentRecord, FailureRecord, Index, NewChunk};
use lore_ingest::chunk::{chunk_document, ChunkOptions};
use lore_ingest::{DocumentFormat, Limits, ParsedDocument};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Commit after this many pending chunks or documents: bounds memory and the work an
/// interruption can lose, while keeping commits (each an fsync'd tantivy commit) rare.
const COMMIT_EVERY_CHUNKS: usize = 2_000;
pub const COMMIT_EVERY_DOCS: usize = 100;

/// What ingestion needs from an index: look up a document's stored record (for change
/// detection) and commit a batch. The CLI owns its [`Index`]; the server shares one behind a
/// lock and takes it only for these short calls, never while parsing or embedding.
pub trait IndexAccess {
    fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>>;
    fn documents(&self) -> Result<Vec<DocumentRecord>>;
    fn failures(&self) -> Result<Vec<FailureRecord>>;
    /// A document's stored chunks and vectors (to re-file identical content elsewhere).
    fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>>;
    fn commit(&mut self, batch: Batch) -> Result<()>;
}

impl IndexAccess for Index {
    fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>> {
        Ok(Index::document(self, doc_id)?)
    }

    fn documents(&self) -> Result<Vec<DocumentRecord>> {
        Ok(Index::documents(self)?)
    }

    fn failures(&self) -> Result<Vec<FailureRecord>> {
        Ok(Index::failures(self)?)
    }

    fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>> {
        Ok(Index::chunks_of(self, doc_id)?)
    }

    fn commit(&mut self, batch: Batch) -> Result<()> {
        Ok(Index::commit(self, batch)?)
    }
}

/// An index shared behind a lock (the server's): reads and commits take it briefly.
pub struct SharedIndex<'a>(pub &'a std::sync::RwLock<Index>);

impl SharedIndex<'_> {
    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>> {
        self.0
            .read()
            .map_err(|_| anyhow::anyhow!("the index lock is poisoned"))
    }
}

impl IndexAccess for SharedIndex<'_> {
    fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>> {
        Ok(self.read()?.document(doc_id)?)
    }

    fn documents(&self) -> Result<Vec<DocumentRecord>> {
        Ok(self.read()?.documents()?)
    }

    fn failures(&self) -> Result<Vec<FailureRecord>> {
        Ok(self.read()?.failures()?)
    }

    fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>> {
        Ok(self.read()?.chunks_of(doc_id)?)
    }

    fn commit(&mut self, batch: Batch) -> Result<()> {
        let mut index = self
            .0
            .write()
            .map_err(|_| anyhow::anyhow!("the index lock is poisoned"))?;
        Ok(index.commit(batch)?)
    }
}

/// A file found on disk and the identity it gets in the index.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub fs_path: PathBuf,
    /// The path as ingested: relative to the folder given, or as given for a file.
    pub doc_path: String,
    pub collection: String,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub ingested: Vec<String>,
    /// Of `ingested`: files whose content was already indexed under another path (renamed,
    /// moved or copied), re-filed with the stored passages and vectors, not embedded again.
    pub reused: Vec<String>,
    pub unchanged: Vec<String>,
    pub skipped: Vec<FileIssue>,
    pub failed: Vec<FileIssue>,
    pub warnings: Vec<FileIssue>,
    pub chunks: u64,
    pub pages: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FileIssue {
    pub path: String,
    pub reason: String,
}

/// What happened to one file.
enum Outcome {
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

/// Where a running ingestion stands, for observers (the server's job status).
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct IngestProgress {
    pub files_done: usize,
    pub files_total: usize,
    pub chunks: u64,
}

/// How one ingestion run behaves, beyond which files it takes.
pub struct IngestOptions<'a> {
    /// Commit at least every this many documents (and every [`COMMIT_EVERY_CHUNKS`]).
    pub commit_every_docs: usize,
    /// Show a progress bar on the terminal.
    pub progress: bool,
    /// Documents to delete in the run's last commit, together with its last upserts: the
    /// watcher's deleted and moved-away files, so a move is one atomic swap.
    pub removals: Vec<String>,
    /// Content hash → id of an indexed document with exactly that content. Its passages
    /// and vectors are re-filed under the new path instead of parsing and embedding the
    /// file again (renames, moves, copies).
    pub donor: &'a dyn Fn(&str) -> Option<String>,
}

impl Default for IngestOptions<'_> {
    fn default() -> Self {
        IngestOptions {
            commit_every_docs: COMMIT_EVERY_DOCS,
            progress: false,
            removals: Vec::new(),
            donor: &|_| None,
        }
    }
}

/// Ingests `paths` into `index`, committing in atomic batches; `observe` is told after
/// each file.
pub fn ingest_paths(
    config: &Config,
    embedder: &Embedder,
    index: &mut dyn IndexAccess,
    paths: &[PathBuf],
    options: IngestOptions,
    observe: &mut dyn FnMut(IngestProgress),
) -> Result<Summary> {
    let (candidates, walk_failures) = discover(paths, &config.collection);
    let mut summary = ingest_candidates(config, embedder, index, &candidates, options, observe)?;
    summary.failed.extend(walk_failures);
    Ok(summary)
}

/// Ingests files already discovered (each with its document path and collection).
pub fn ingest_candidates(
    config: &Config,
    embedder: &Embedder,
    index: &mut dyn IndexAccess,
    candidates: &[Candidate],
    options: IngestOptions,
    observe: &mut dyn FnMut(IngestProgress),
) -> Result<Summary> {
    let IngestOptions {
        commit_every_docs,
        progress,
        removals,
        donor,
    } = options;
    let started = Instant::now();
    let mut summary = Summary::default();

    let bar = if progress {
        ProgressBar::new(candidates.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let limits = Limits {
        max_file_bytes: config.max_file_mb.saturating_mul(1024 * 1024),
        ..Limits::default()
    };
    let chunk_opts = ChunkOptions {
        target_tokens: config.chunk_tokens,
        max_tokens: (config.chunk_tokens + config.chunk_tokens / 5)
            .min(embedder.max_seq_len().saturating_sub(8)),
        overlap_tokens: config.chunk_overlap,
    };
    let mut pending = Batch::default();
    let mut pending_chunks = 0usize;
    for (done, candidate) in candidates.iter().enumerate() {
        bar.set_message(format!(
            "{} chunks · {:.1} chunks/s",
            summary.chunks,
            summary.chunks as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
        let outcome = process_file(
            candidate,
            embedder,
            &*index,
            &limits,
            &chunk_opts,
            donor,
            &mut pending,
        );
        match outcome {
            Outcome::Ingested {
                chunks,
                pages,
                warnings,
                reused,
            } => {
                summary.ingested.push(candidate.doc_path.clone());
                if reused {
                    summary.reused.push(candidate.doc_path.clone());
                }
                summary.chunks += chunks as u64;
                summary.pages += u64::from(pages);
                pending_chunks += chunks;
                for w in warnings {
                    tracing::warn!(path = %candidate.doc_path, "{w}");
                    summary.warnings.push(FileIssue {
                        path: candidate.doc_path.clone(),
                        reason: w,
                    });
                }
            }
            Outcome::Unchanged => summary.unchanged.push(candidate.doc_path.clone()),
            Outcome::Skipped(reason) => {
                tracing::info!(path = %candidate.doc_path, "skipped: {reason}");
                summary.skipped.push(FileIssue {
                    path: candidate.doc_path.clone(),
                    reason,
                });
            }
            Outcome::Failed {
                reason,
                content_hash,
            } => {
                tracing::warn!(path = %candidate.doc_path, "failed: {reason}");
                // Kept in the index, so the file is listed with its reason until it is fixed.
                pending.failures.push(FailureRecord {
                    doc_id: doc_id(&candidate.collection, &candidate.doc_path),
                    path: candidate.doc_path.clone(),
                    collection: candidate.collection.clone(),
                    content_hash,
                    reason: reason.clone(),
                    failed_at: unix_now(),
                    source: absolute_source(&candidate.fs_path),
                });
                summary.failed.push(FileIssue {
                    path: candidate.doc_path.clone(),
                    reason,
                });
            }
        }
        if pending_chunks >= COMMIT_EVERY_CHUNKS
            || pending.upserts.len() + pending.failures.len() >= commit_every_docs
        {
            index
                .commit(std::mem::take(&mut pending))
                .context("index commit failed")?;
            pending_chunks = 0;
        }
        bar.inc(1);
        observe(IngestProgress {
            files_done: done + 1,
            files_total: candidates.len(),
            chunks: summary.chunks,
        });
    }
    pending.removals = removals;
    if !pending.is_empty() {
        index.commit(pending).context("index commit failed")?;
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Parses, chunks and embeds one file, adding it to `pending`. Never fails the batch.
fn process_file(
    candidate: &Candidate,
    embedder: &Embedder,
    index: &dyn IndexAccess,
    limits: &Limits,
    chunk_opts: &ChunkOptions,
    donor: &dyn Fn(&str) -> Option<String>,
    pending: &mut Batch,
) -> Outcome {
    let size = match std::fs::metadata(&candidate.fs_path) {
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
    let bytes = match std::fs::read(&candidate.fs_path) {
        Ok(b) => b,
        Err(e) => return Outcome::failed(format!("cannot read file: {e}")),
    };
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
    let chunks = chunk_document(&doc, chunk_opts, &count);
    let title = doc
        .title
        .clone()
        .unwrap_or_else(|| candidate.doc_path.clone());
    let embed_inputs: Vec<String> = chunks.iter().map(|c| embedding_input(&title, c)).collect();
    let refs: Vec<&str> = embed_inputs.iter().map(String::as_str).collect();
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
fn absolute_source(path: &Path) -> Option<String> {
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

/// Expands the command-line paths into files. Folders are walked recursively (following
/// symlinks, with loops reported), hidden entries inside them are passed over.
pub fn discover(paths: &[PathBuf], collection: &str) -> (Vec<Candidate>, Vec<FileIssue>) {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for root in paths {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                failures.push(FileIssue {
                    path: display(root),
                    reason: format!("cannot open: {e}"),
                });
                continue;
            }
        };
        if !meta.is_dir() {
            found.push(Candidate {
                fs_path: root.clone(),
                doc_path: clean_path(root),
                collection: collection.to_string(),
            });
            continue;
        }
        for entry in walk(root) {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                    found.push(Candidate {
                        fs_path: e.path().to_path_buf(),
                        doc_path: clean_path(rel),
                        collection: collection.to_string(),
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    let path = err.path().map(display).unwrap_or_else(|| display(root));
                    let reason = match err.loop_ancestor() {
                        Some(a) => format!("symlink loop back to {}", a.display()),
                        None => err
                            .io_error()
                            .map_or_else(|| err.to_string(), |io| io.to_string()),
                    };
                    failures.push(FileIssue { path, reason });
                }
            }
        }
    }
    (found, failures)
}

/// A recursive walk of `root` as ingestion sees folders: links followed (walkdir reports
/// loops), entries in file-name order, ignored names ([`is_ignored_name`]) passed over.
pub fn walk(root: &Path) -> impl Iterator<Item = walkdir::Result<walkdir::DirEntry>> {
    walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_ignored_name(&e.file_name().to_string_lossy()))
}

/// Names a folder walk passes over: hidden files and folders (`.git`, LibreOffice's
/// `.~lock.*#`), and files still being written or left behind by editors and downloads
/// (`*.part`, `*.tmp`, `*.crdownload`, `*.swp`, `*~`, Office's `~$*` owner files). A file
/// named explicitly is always taken.
pub fn is_ignored_name(name: &str) -> bool {
    const PARTIAL_SUFFIXES: [&str; 6] = [".part", ".partial", ".tmp", ".crdownload", ".swp", "~"];
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with("~$")
        || PARTIAL_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// `a/./b`, `./a/b` → `a/b`; separators always `/` so paths compare across platforms.
pub fn clean_path(p: &Path) -> String {
    let parts: Vec<String> = p
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::RootDir => String::new(),
            other => other.as_os_str().to_string_lossy().into_owned(),
        })
        .collect();
    parts.join("/")
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_relative() {
        assert_eq!(clean_path(Path::new("./a/./b.pdf")), "a/b.pdf");
        assert_eq!(clean_path(Path::new("docs/x.md")), "docs/x.md");
    }

    #[test]
    fn doc_ids_depend_on_collection_and_path() {
        assert_eq!(doc_id("default", "a.pdf"), doc_id("default", "a.pdf"));
        assert_ne!(doc_id("default", "a.pdf"), doc_id("hr", "a.pdf"));
        assert_ne!(doc_id("default", "a.pdf"), doc_id("default", "b.pdf"));
    }

    #[test]
    fn temporary_and_hidden_names_are_ignored() {
        for name in [
            ".git",
            ".~lock.report.odt#",
            "~$report.docx",
            "report.pdf.part",
            "report.PDF.crdownload",
            "notes.md~",
            "x.tmp",
            ".notes.md.swp",
        ] {
            assert!(is_ignored_name(name), "{name}");
        }
        for name in [
            "report.pdf",
            "tmp-notes.md",
            "partial-results.txt",
            "a~b.md",
        ] {
            assert!(!is_ignored_name(name), "{name}");
        }
    }

    #[test]
    fn discovery_walks_folders_skips_hidden_and_reports_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/.git")).expect("mkdir");
        std::fs::write(root.join("sub/a.md"), "# A").expect("write");
        std::fs::write(root.join("sub/.git/config"), "x").expect("write");
        std::fs::write(root.join(".hidden.txt"), "x").expect("write");
        std::fs::write(root.join("sub/b.pdf.part"), "x").expect("write");
        std::fs::write(root.join("sub/~$c.docx"), "x").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("sub/loop")).expect("symlink");
        let (found, failures) = discover(&[root.to_path_buf()], "default");
        let paths: Vec<&str> = found.iter().map(|c| c.doc_path.as_str()).collect();
        assert_eq!(paths, vec!["sub/a.md"]);
        #[cfg(unix)]
        assert!(
            failures.iter().any(|f| f.reason.contains("symlink loop")),
            "{failures:?}"
        );
    }
}
