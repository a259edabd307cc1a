//! The watch journal: `<data_dir>/watch.json`, rewritten atomically as the queue moves.
//!
//! It holds the watcher's status (folders, state, queue length, files and chunks done,
//! throughput, failures) and the queue itself. A restarted watcher takes the queue back
//! first, so work interrupted by kill -9 resumes where it stopped; `lore status` reads the
//! status from it while the watcher holds the index. The journal is a record of progress,
//! not of truth: what is indexed is whatever the index's last atomic commit says, and each
//! scan re-derives the work from the folder and the index.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILE_NAME: &str = "watch.json";

/// Writing the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the watch journal: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Write(#[from] crate::files::WriteError),
}

/// The journal is rewritten at most this often while only the queue changes (10,000 files
/// dropped at once must not mean 10,000 rewrites); state changes are written at once.
const MIN_REWRITE: Duration = Duration::from_millis(1000);
/// Failures kept in the status.
pub const RECENT_FAILURES: usize = 20;

/// What the watcher is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchState {
    #[default]
    Starting,
    /// Comparing the folders with the index.
    Scanning,
    /// Files are queued, waiting to be stable (or for a retry).
    Settling,
    /// Committing a batch.
    Syncing,
    /// The index matches the folders.
    Idle,
    Stopped,
}

/// The watcher's progress, as `lore status`, `GET /api/watch` and `/metrics` show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchStatus {
    /// Watched folders (canonical paths).
    pub roots: Vec<String>,
    /// `notify` (filesystem notifications) or `poll`.
    pub mode: String,
    pub state: WatchState,
    /// Files waiting to settle or to be indexed.
    pub queue: usize,
    /// Files handled since the watcher started (indexed, unchanged, removed, failed).
    pub files_done: u64,
    /// Files (re)indexed; of them, `reused` were re-filed from identical content (renames,
    /// moves, copies) without embedding.
    pub ingested: u64,
    pub reused: u64,
    pub removed: u64,
    pub failed: u64,
    /// Passages embedded and indexed.
    pub chunks_done: u64,
    /// Time spent indexing, and throughput over it.
    pub busy_seconds: f64,
    pub files_per_sec: f64,
    pub chunks_per_sec: f64,
    /// Unix time of the last full comparison of the folders with the index.
    pub last_scan_at: Option<i64>,
    /// Folders found empty or unreadable while documents are indexed from them (an
    /// unmounted share?): their documents are kept, not deleted.
    pub unavailable: Vec<String>,
    /// The last batch's error, if it failed (it is retried).
    pub last_error: Option<String>,
    /// Times the watcher crashed (a panic) and was restarted, and the last crash's message.
    #[serde(default)]
    pub restarts: u64,
    #[serde(default)]
    pub last_panic: Option<String>,
    /// Files whose latest version failed to ingest, newest last (at most
    /// [`RECENT_FAILURES`]), with their reasons: `lore status` shows them even while the
    /// watcher holds the index. A file leaves the list once it ingests or is deleted.
    #[serde(default)]
    pub recent_failures: Vec<crate::pipeline::FileIssue>,
    /// Process id of the watcher, and when it last wrote this.
    pub pid: u32,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalFile {
    #[serde(flatten)]
    status: WatchStatus,
    /// The queue: paths seen changed but not yet committed.
    pending: Vec<PathBuf>,
}

/// Reads and writes the journal of one data directory.
pub struct Journal {
    path: PathBuf,
    last_write: Option<Instant>,
    last_state: Option<WatchState>,
}

impl Journal {
    pub fn new(data_dir: &Path) -> Journal {
        Journal {
            path: path(data_dir),
            last_write: None,
            last_state: None,
        }
    }

    /// The queue an earlier watcher left behind (empty when there is none or it is
    /// unreadable: the scan finds the work anyway).
    pub fn load_pending(&self) -> Vec<PathBuf> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice::<JournalFile>(&bytes) {
                Ok(j) => j.pending,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), "ignoring an unreadable watch journal: {e}");
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        }
    }

    /// Writes status and queue, unless only the queue changed since a write less than
    /// `MIN_REWRITE` ago.
    pub fn save<'p>(
        &mut self,
        status: &WatchStatus,
        pending: impl Iterator<Item = &'p PathBuf>,
    ) -> Result<(), JournalError> {
        let state_changed = self.last_state != Some(status.state);
        if !state_changed && self.last_write.is_some_and(|t| t.elapsed() < MIN_REWRITE) {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = JournalFile {
            status: status.clone(),
            pending: pending.cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file)?;
        crate::files::write_atomically(&self.path, &bytes)?;
        self.last_write = Some(Instant::now());
        self.last_state = Some(status.state);
        Ok(())
    }
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The status the last watcher on `data_dir` wrote, if any.
pub fn read_status(data_dir: &Path) -> Option<WatchStatus> {
    let bytes = std::fs::read(path(data_dir)).ok()?;
    serde_json::from_slice::<JournalFile>(&bytes)
        .ok()
        .map(|j| j.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_and_status_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::new(dir.path());
        assert!(journal.load_pending().is_empty());
        let status = WatchStatus {
            state: WatchState::Syncing,
            queue: 2,
            files_done: 7,
            ..WatchStatus::default()
        };
        let pending = [
            PathBuf::from("/share/a.pdf"),
            PathBuf::from("/share/hr/b.md"),
        ];
        journal.save(&status, pending.iter()).expect("save");
        assert_eq!(Journal::new(dir.path()).load_pending(), pending.to_vec());
        let read = read_status(dir.path()).expect("status");
        assert_eq!(
            (read.state, read.queue, read.files_done),
            (WatchState::Syncing, 2, 7)
        );

        // A rewrite right after, with only the queue changed, is skipped; a state change
        // is written at once.
        journal.save(&status, std::iter::empty()).expect("save");
        assert_eq!(Journal::new(dir.path()).load_pending().len(), 2);
        let idle = WatchStatus {
            state: WatchState::Idle,
            ..status
        };
        journal.save(&idle, std::iter::empty()).expect("save");
        assert!(Journal::new(dir.path()).load_pending().is_empty());

        std::fs::write(dir.path().join(FILE_NAME), "{ torn").expect("write");
        assert!(Journal::new(dir.path()).load_pending().is_empty());
    }
}
