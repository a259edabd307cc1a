//! The audit log: who asked what, what they were shown, and what changed in the library.
//!
//! Append-only JSON lines under `<data_dir>/audit/` (directory 0700, files 0600, whatever
//! the umask). Each line is one [`Record`]: the caller's [`AuditEntry`] plus a sequence
//! number and `prev`, the SHA-256 of the previous line's bytes, so [`verify`] finds any
//! edited, deleted, inserted or reordered entry. The newest entry's number and hash are
//! also kept in `audit.head`, which catches entries cut from the end.
//!
//! Files: `audit.jsonl` is written; past `audit_max_mb` it is renamed to the next numbered
//! segment (`audit.000001.jsonl`, ...) and the new file's first entry chains to the last
//! entry of that segment, so the chain runs through every segment in order.
//!
//! Writing: [`AuditLog::record`] never touches the disk. It hands the entry to one writer
//! thread per process through a bounded queue; the thread appends batches under an
//! exclusive advisory lock on `audit.lock` (so `lore ask` appending while `lore serve` runs
//! keeps one chain), `fsync`s each batch before releasing the lock, then updates the head.
//! [`AuditLog::flush`] waits until everything recorded before it is on disk; dropping the
//! log flushes too. A full queue (the disk stalled) or a failed write is logged and
//! counted ([`AuditLog::failures`], shown in `/metrics`), never allowed to stall a request.
//!
//! What the chain proves: that nobody changed the log without rewriting everything after
//! the change and the head. Someone who can write the data directory can do that too;
//! keep `lore audit verify`'s head hash somewhere else to pin the log up to that point.

mod chain;
mod verify;

pub use chain::{read_tail, segments, tip, Tip};
pub use verify::{verify, Verified, VerifyError};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Longest question kept, in bytes (cut at a character boundary, marked with "…").
pub const MAX_QUESTION_BYTES: usize = 4 * 1024;
/// Most document ids kept per entry (the first ones: cited order).
pub const MAX_DOCUMENTS: usize = 64;
/// Longest user, address, route or document id kept, in bytes.
pub const MAX_SHORT_BYTES: usize = 256;
/// Longest outcome kept, in bytes (error messages).
pub const MAX_OUTCOME_BYTES: usize = 1024;
/// Largest `extra` kept, serialised; larger ones are replaced by their size and hash.
pub const MAX_EXTRA_BYTES: usize = 256 * 1024;
/// No line is longer than this (the caps above with room to spare); verify refuses longer.
pub const MAX_LINE_BYTES: usize = 512 * 1024;
/// Entries waiting for the writer; more are refused (and counted) rather than blocking.
const QUEUE: usize = 4096;
/// The `prev` of the very first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether questions are stored as asked or as their SHA-256 (`audit_question`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionMode {
    #[default]
    Text,
    Hash,
}

impl std::str::FromStr for QuestionMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(QuestionMode::Text),
            "hash" => Ok(QuestionMode::Hash),
            other => Err(format!(
                "unknown audit_question {other:?} (expected text or hash)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    pub question: QuestionMode,
    /// `audit.jsonl` is rotated into a numbered segment before it grows past this.
    pub max_bytes: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            question: QuestionMode::Text,
            max_bytes: 16 << 20,
        }
    }
}

/// What happened, as a caller reports it. The log adds the sequence number and chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub time: DateTime<Utc>,
    /// The account; `None` when nobody is signed in (authentication off).
    pub user: Option<String>,
    /// The client's IP address (HTTP), none for the command line.
    pub address: Option<String>,
    /// The route pattern (`/api/ask`) or the command (`lore ask`).
    pub route: String,
    pub question: Option<String>,
    /// Ids of the documents cited or returned (or removed, uploaded).
    pub documents: Vec<String>,
    /// `answered`, `abstained`, `ok`, or `error <status>: <message>`.
    pub outcome: String,
    pub latency_ms: u64,
    /// Anything else worth keeping (an escalation's request body, an upload's job).
    pub extra: Option<serde_json::Value>,
}

impl AuditEntry {
    /// An entry for `route`, stamped now, with everything else empty.
    pub fn new(route: impl Into<String>) -> Self {
        AuditEntry {
            time: Utc::now(),
            user: None,
            address: None,
            route: route.into(),
            question: None,
            documents: Vec::new(),
            outcome: String::new(),
            latency_ms: 0,
            extra: None,
        }
    }
}

/// The distinct ids of the documents behind `citations`, in citation order.
pub fn cited_documents(citations: &[crate::rag::Source]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for source in citations {
        if !ids.contains(&source.passage.doc_id) {
            ids.push(source.passage.doc_id.clone());
        }
    }
    ids
}

/// One line of the log, field order fixed (the hash covers the line's exact bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub user: Option<String>,
    pub address: Option<String>,
    pub route: String,
    /// The question, or `sha256:<hex>` of it with `audit_question = "hash"`.
    pub question: Option<String>,
    pub documents: Vec<String>,
    pub outcome: String,
    pub latency_ms: u64,
    pub extra: Option<serde_json::Value>,
    /// SHA-256 (hex) of the previous line, [`GENESIS`] for the first.
    pub prev: String,
}

impl Record {
    /// The entry as stored: fields capped, the question hashed when so configured.
    fn new(entry: AuditEntry, mode: QuestionMode, seq: u64, prev: String) -> Record {
        let question = entry.question.map(|q| match mode {
            QuestionMode::Text => cap(&q, MAX_QUESTION_BYTES),
            QuestionMode::Hash => format!("sha256:{}", hex::encode(Sha256::digest(q.as_bytes()))),
        });
        let extra = entry.extra.map(|value| {
            let text = value.to_string();
            if text.len() <= MAX_EXTRA_BYTES {
                value
            } else {
                serde_json::json!({
                    "omitted_bytes": text.len(),
                    "sha256": hex::encode(Sha256::digest(text.as_bytes())),
                })
            }
        });
        Record {
            seq,
            time: entry.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            user: entry.user.map(|u| cap(&u, MAX_SHORT_BYTES)),
            address: entry.address.map(|a| cap(&a, MAX_SHORT_BYTES)),
            route: cap(&entry.route, MAX_SHORT_BYTES),
            question,
            documents: entry
                .documents
                .iter()
                .take(MAX_DOCUMENTS)
                .map(|d| cap(d, MAX_SHORT_BYTES))
                .collect(),
            outcome: cap(&entry.outcome, MAX_OUTCOME_BYTES),
            latency_ms: entry.latency_ms,
            extra,
            prev,
        }
    }
}

/// SHA-256 (hex) of one line's bytes, without its newline: what the next `prev` holds.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// `text` cut to at most `max` bytes at a character boundary, "…" marking a cut.
fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: cannot {action}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot start the audit writer: {0}")]
    Start(#[source] std::io::Error),
}

pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}

enum Message {
    Entry(AuditEntry),
    /// Answered once everything queued before it is written.
    Flush(mpsc::Sender<()>),
}

/// Counts the writer keeps, for `/metrics`.
#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    failed: AtomicU64,
}

/// The process's audit log: a queue in front of one writer thread.
pub struct AuditLog {
    dir: PathBuf,
    queue: Mutex<Option<SyncSender<Message>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).finish()
    }
}

impl AuditLog {
    /// Creates the directory (0700) if needed, checks the log can be written (taking the
    /// lock and reading the chain's tip), and starts the writer thread.
    pub fn open(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        let mut appender = chain::Appender::open(dir, options)?;
        let counts = Arc::new(Counts::default());
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let writer = {
            let counts = counts.clone();
            std::thread::Builder::new()
                .name("lore-audit".into())
                .spawn(move || write_loop(&mut appender, &receiver, &counts))
                .map_err(AuditError::Start)?
        };
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            queue: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            counts,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues an entry; never waits for the disk. A full queue loses the entry, with an
    /// error logged and counted.
    pub fn record(&self, entry: AuditEntry) {
        let sent = match self.queue.lock() {
            Ok(queue) => match queue.as_ref() {
                Some(sender) => match sender.try_send(Message::Entry(entry)) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(_)) => Err("the writer's queue is full"),
                    Err(TrySendError::Disconnected(_)) => Err("the writer has stopped"),
                },
                None => Err("the log is closed"),
            },
            Err(_) => Err("the queue's lock is poisoned"),
        };
        if let Err(why) = sent {
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(dir = %self.dir.display(), "audit entry lost: {why}");
        }
    }

    /// Waits until every entry recorded before this call is written (or failed).
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        let sent = self
            .queue
            .lock()
            .ok()
            .and_then(|q| q.as_ref().map(|s| s.send(Message::Flush(done)).is_ok()));
        if sent == Some(true) {
            let _ = wait.recv();
        }
    }

    /// Entries written since the log was opened.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Entries lost since the log was opened (queue full, write failed).
    pub fn failures(&self) -> u64 {
        self.counts.failed.load(Ordering::Relaxed)
    }
}

impl Drop for AuditLog {
    /// Closing the queue lets the writer finish what is queued; then it is joined.
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
    }
}

/// The writer thread: appends what is queued in batches (one lock, one fsync each).
fn write_loop(appender: &mut chain::Appender, receiver: &Receiver<Message>, counts: &Counts) {
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Entry(entry) => batch.push(entry),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < 256 {
                next = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let entries = batch.len() as u64;
            match appender.append(batch) {
                Ok(()) => {
                    counts.written.fetch_add(entries, Ordering::Relaxed);
                }
                Err(e) => {
                    counts.failed.fetch_add(entries, Ordering::Relaxed);
                    tracing::error!("{entries} audit entries lost: {e}");
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests;
