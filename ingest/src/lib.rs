//! `lore-ingest` turns files into chunks: it owns parsing (PDF, HTML, Markdown, plain text,
//! DOCX) and structure-aware chunking. It knows nothing of embeddings, indexes or HTTP.
//!
//! The flow is `parse_file` → [`ParsedDocument`] (text + structural blocks) →
//! [`chunk::chunk_document`] → [`Chunk`]s ready to be embedded and indexed.
//!
//! ```no_run
//! use lore_ingest::{parse_file, chunk::{chunk_document, ChunkOptions}, Limits};
//! let doc = parse_file(std::path::Path::new("handbook.pdf"), &Limits::default())?;
//! // Any token counter works; Lore passes the embedding model's tokenizer.
//! let count = |s: &str| s.split_whitespace().count();
//! let chunks = chunk_document(&doc, &ChunkOptions::default(), &count);
//! for c in &chunks {
//!     println!("{:?} p.{:?}: {}", c.heading, c.pages, &c.text[..c.text.len().min(60)]);
//! }
//! # Ok::<(), lore_ingest::Error>(())
//! ```

pub mod budget;
pub mod chunk;
pub mod document;
pub mod docx;
pub mod html;
pub mod markdown;
pub mod pdf;
pub mod text;

pub use budget::Budget;
pub use chunk::{Chunk, ChunkOptions};

/// The development set's corpus, which `scripts/test` expects beside the clone. Tests that
/// read it run in the `real-data` tier (`--features real-data`) and fail, never skip,
/// when it is missing.
#[cfg(test)]
pub(crate) const EVAL_DEV_CORPUS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/eval-dev/corpus");

/// One file of the development corpus; panics with where it should be when it is missing.
#[cfg(test)]
pub(crate) fn read_eval_dev(rel: &str) -> Vec<u8> {
    let path = Path::new(EVAL_DEV_CORPUS).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the development set belongs at ../shared/eval-dev beside the clone)",
            path.display()
        )
    })
}
pub use document::{Block, BlockKind, DocumentFormat, ParsedDocument};

use std::path::Path;
use std::time::Duration;

/// Everything that can go wrong while turning one file into text. One error is about one
/// file: callers record it and carry on with the rest of the batch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("file is empty")]
    Empty,
    #[error("file is {size} bytes, over the configured maximum of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("unsupported file type: {0}")]
    Unsupported(String),
    #[error("PDF is encrypted; decrypt it (e.g. qpdf --decrypt) and ingest it again")]
    Encrypted,
    #[error("malformed PDF: {0}")]
    Pdf(String),
    #[error("malformed DOCX: {0}")]
    Docx(String),
    #[error("DOCX exceeds the decompression limits ({0}); refusing a possible zip bomb")]
    ZipBomb(String),
    #[error("binary content, not text: {0}")]
    Binary(String),
    #[error("no text could be extracted")]
    NoText,
    /// The file took longer than [`Limits::parse_timeout`] to parse.
    #[error("parsing took longer than the {} s limit (parse_timeout_secs)", limit.as_secs_f64())]
    TimedOut { limit: Duration },
    /// The file asks for more work than any real document needs (a PDF whose forms draw
    /// each other exponentially many times, say).
    #[error("document exceeds the parsing work budget: {0}")]
    OverBudget(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Default of [`Limits::parse_timeout`].
pub const DEFAULT_PARSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Resource limits applied while parsing untrusted files.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Files larger than this are refused before being read.
    pub max_file_bytes: u64,
    /// Total uncompressed bytes a DOCX may expand to.
    pub max_unzipped_bytes: u64,
    /// Largest ratio of uncompressed to compressed size tolerated for one DOCX member.
    pub max_zip_ratio: u64,
    /// Wall-clock time one file's parse may take (`None`: unbounded). Every parser checks it
    /// cooperatively; a file over it fails with [`Error::TimedOut`].
    pub parse_timeout: Option<Duration>,
    /// Work units any PDF may take, whatever its size: content operations run (again each
    /// time a form is drawn), glyphs shown, fonts' CMap bytes and content bytes decoded (one
    /// unit per [`pdf::CONTENT_BYTES_PER_UNIT`]). About half a second of work.
    pub pdf_work_base: u64,
    /// Work units a PDF may take in addition, per byte of the file. Real documents need at
    /// most ~1.3 per byte (1.6 M units for the 1.3 MB, 261-page Debian Reference); only
    /// content drawn many times over (nested forms) needs more.
    pub pdf_work_per_byte: u64,
    /// Element nesting HTML is parsed with; deeper elements are flattened into their
    /// ancestor at this depth, their text kept (html5ever's cost grows with the square of
    /// the depth). Browsers' parsers stop nesting at 512 too.
    pub max_html_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 100 * 1024 * 1024,
            max_unzipped_bytes: 200 * 1024 * 1024,
            max_zip_ratio: 200,
            parse_timeout: Some(DEFAULT_PARSE_TIMEOUT),
            pdf_work_base: 2_000_000,
            pdf_work_per_byte: 8,
            max_html_depth: 512,
        }
    }
}

impl Limits {
    /// The budget of parsing one file of `file_bytes` bytes under these limits; its deadline
    /// starts now.
    pub fn budget(&self, file_bytes: usize) -> Budget {
        let per_byte = self.pdf_work_per_byte.saturating_mul(file_bytes as u64);
        Budget::new(
            self.parse_timeout,
            self.pdf_work_base.saturating_add(per_byte),
        )
    }
}

/// Parses one file into text and structure, choosing the parser from the extension and,
/// for files without a known extension, from the content.
pub fn parse_file(path: &Path, limits: &Limits) -> Result<ParsedDocument> {
    let size = std::fs::metadata(path)?.len();
    if size > limits.max_file_bytes {
        return Err(Error::TooLarge {
            size,
            max: limits.max_file_bytes,
        });
    }
    if size == 0 {
        return Err(Error::Empty);
    }
    let bytes = std::fs::read(path)?;
    let format = DocumentFormat::detect(path, &bytes)?;
    parse_bytes(&bytes, format, path, limits)
}

/// Parses bytes already in memory in a known format. `path` only names the document
/// (e.g. for a default title). The work is bounded by `limits`: the deadline
/// ([`Limits::parse_timeout`]) starts now.
pub fn parse_bytes(
    bytes: &[u8],
    format: DocumentFormat,
    path: &Path,
    limits: &Limits,
) -> Result<ParsedDocument> {
    let budget = limits.budget(bytes.len());
    let mut doc = match format {
        DocumentFormat::Pdf => pdf::parse(bytes, &budget)?,
        DocumentFormat::Html => html::parse(bytes, limits.max_html_depth, &budget)?,
        DocumentFormat::Markdown => markdown::parse(bytes, &budget)?,
        DocumentFormat::Text => text::parse(bytes, &budget)?,
        DocumentFormat::Docx => docx::parse(bytes, limits, &budget)?,
    };
    if doc.text.trim().is_empty() && doc.warnings.is_empty() {
        return Err(Error::NoText);
    }
    if doc.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        doc.title = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    Ok(doc)
}
