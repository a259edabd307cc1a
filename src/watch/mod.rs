//! Drop-folder sync: keeps the index exactly in step with watched folders, unattended.
//!
//! Owns what a watched file becomes (its path relative to the folder, in the collection
//! named by its top-level subfolder), the queue of dirty paths and the stability check (a
//! file is taken only once its size and times have stayed the same for `settle`, so a file
//! still being copied is never ingested half-written), the filesystem notifications
//! (`notify`, or polling for mounts that deliver none), the periodic rescan that catches
//! whatever notifications missed, and the journal (see [`journal`]).
//!
//! The index is the source of truth. Every scan compares the folder with the documents the
//! index holds from it (their recorded source path), so after kill -9 or a power cut a
//! restart redoes at most the one batch that had not committed; commits are atomic, so no
//! document is ever half there. Content hashes decide what changed; size and times only
//! decide what is worth hashing. A renamed, moved or copied file keeps its passages and
//! vectors (same hash, new path) instead of being embedded again.

pub mod journal;

use crate::config::{Config, WatchMode};
use crate::pipeline::{self, Candidate, IndexAccess, IngestOptions};
use journal::{Journal, WatchState, WatchStatus};
use lore_embed::Embedder;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What stops a watcher (a file that fails is recorded and retried, not an error).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no folder to watch: name one (lore watch DIR) or set watch = [\"DIR\"] in lore.toml")]
    NoFolder,
    #[error("cannot watch {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {}: not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error("cannot watch {} and {}: one is inside the other", .0.display(), .1.display())]
    Nested(PathBuf, PathBuf),
    #[error("cannot use the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Notify {
        what: String,
        #[source]
        source: notify::Error,
    },
    #[error("filesystem notifications stopped")]
    NotificationsStopped,
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
}

pub type Result<T, E = WatchError> = std::result::Result<T, E>;

/// Files taken per batch: one atomic commit each, and the most an interruption redoes.
pub const BATCH_FILES: usize = 64;
/// Longest sleep of the loop: how quickly a stop request is noticed.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// How long a starting watcher waits for a short-lived command to release the index.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(30);
/// After a failed commit (disk full, say), wait this long before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How the watcher behaves; from [`Config`] (`watch_*` keys).
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub roots: Vec<PathBuf>,
    pub mode: WatchMode,
    pub poll_interval: Duration,
    pub settle: Duration,
    pub rescan: Duration,
    /// Files per batch (one atomic commit).
    pub batch_files: usize,
}

impl WatchOptions {
    pub fn from_config(config: &Config) -> WatchOptions {
        WatchOptions {
            roots: config.watch.clone(),
            mode: config.watch_mode,
            poll_interval: Duration::from_secs(config.watch_poll_secs.max(1)),
            settle: Duration::from_millis(config.watch_settle_ms),
            rescan: Duration::from_secs(config.watch_rescan_secs.max(1)),
            batch_files: BATCH_FILES,
        }
    }
}

/// Size and change times of a file: equal stamps mean "not touched meanwhile".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    /// Latest of modification and status-change time, in nanoseconds since the epoch. The
    /// status-change time cannot be set by tools that preserve times (`cp -p`, rsync -t),
    /// and a rename changes it, so an old-dated replacement is still noticed.
    changed_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        #[cfg(unix)]
        let changed_ns = {
            use std::os::unix::fs::MetadataExt;
            let m = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            let c = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
            m.max(c)
        };
        #[cfg(not(unix))]
        let changed_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Some(Stamp {
            size: meta.len(),
            changed_ns,
        })
    }
}

/// What the index holds for one watched file.
#[derive(Debug, Clone)]
struct Indexed {
    doc_id: String,
    /// Hash of the indexed (good) version, if any: what a renamed copy can reuse.
    content_hash: Option<String>,
    /// Size of the file when it was last ingested (unknown after a failure).
    bytes: Option<u64>,
    /// When the index last took or tried this file (seconds since the epoch).
    since_s: i64,
    /// The stamp at which this process last confirmed the index matches the file.
    verified: Option<Stamp>,
}

impl Indexed {
    /// True when the file cannot have changed since the index took it: the stamp this
    /// process confirmed, or the same size with no change after the ingestion second.
    fn unchanged(&self, stamp: &Stamp) -> bool {
        if self.verified == Some(*stamp) {
            return true;
        }
        let changed_s = i64::try_from(stamp.changed_ns.div_euclid(1_000_000_000)).unwrap_or(0);
        self.bytes.is_none_or(|b| b == stamp.size) && changed_s < self.since_s
    }
}

/// A path waiting for its file to settle.
#[derive(Debug, Clone, Copy)]
struct Dirty {
    /// What the file looked like at the last look (`None`: missing).
    observed: Option<Stamp>,
    /// When to look again; if the file is unchanged then, it is ready.
    check_at: Instant,
}

/// The watcher: folders, queue, and what the index holds from them.
pub struct Watcher<'a> {
    config: &'a Config,
    embedder: &'a Embedder,
    options: WatchOptions,
    /// Canonical watched folders.
    roots: Vec<PathBuf>,
    /// Lore's own data directory, never taken even when it lies in a watched folder (the
    /// index's files, uploads and the journal change all the time).
    data_dir: PathBuf,
    indexed: BTreeMap<PathBuf, Indexed>,
    /// Index records of watched files filed under an identity the folder no longer gives
    /// them (ingested by hand into another collection, say): removed with the next batch,
    /// after lending their content to the re-filed document.
    stale: Vec<(String, Option<String>)>,
    dirty: BTreeMap<PathBuf, Dirty>,
    /// Files skipped by policy (type, size, empty), not looked at again until they change.
    skipped: HashMap<PathBuf, Stamp>,
    status: Arc<Mutex<WatchStatus>>,
    journal: Journal,
    busy: Duration,
    rescan_requested: bool,
}

/// What a watcher shares with its owner: the shared status and a stop switch.
#[derive(Clone)]
pub struct WatchHandle {
    pub status: Arc<Mutex<WatchStatus>>,
    pub stop: Arc<AtomicBool>,
}

impl WatchHandle {
    pub fn new() -> WatchHandle {
        WatchHandle {
            status: Arc::new(Mutex::new(WatchStatus::default())),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A handle whose status already says what will be watched and how, so it is right
    /// from the first request, before the watcher's thread has started.
    pub fn starting(options: &WatchOptions) -> WatchHandle {
        let handle = WatchHandle::new();
        if let Ok(mut status) = handle.status.lock() {
            *status = Self::starting_status(options, &options.roots);
        }
        handle
    }

    fn starting_status(options: &WatchOptions, roots: &[PathBuf]) -> WatchStatus {
        WatchStatus {
            roots: roots.iter().map(|r| r.display().to_string()).collect(),
            mode: options.mode.as_str().to_string(),
            state: WatchState::Starting,
            pid: std::process::id(),
            ..WatchStatus::default()
        }
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> WatchStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Default for WatchHandle {
    fn default() -> Self {
        WatchHandle::new()
    }
}

impl<'a> Watcher<'a> {
    /// Resolves the folders (each must exist when watching starts) and opens the journal.
    pub fn new(
        config: &'a Config,
        embedder: &'a Embedder,
        options: WatchOptions,
        handle: &WatchHandle,
    ) -> Result<Watcher<'a>> {
        let roots = check_roots(&options.roots)?;
        if roots.is_empty() {
            return Err(WatchError::NoFolder);
        }
        let journal = Journal::new(&config.data_dir);
        let data_dir = std::fs::create_dir_all(&config.data_dir)
            .and_then(|()| std::fs::canonicalize(&config.data_dir))
            .map_err(|source| WatchError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
        if let Ok(mut status) = handle.status.lock() {
            // A restarted watcher keeps the record of the crashes before it.
            let restarts = status.restarts;
            let last_panic = status.last_panic.take();
            let last_error = status.last_error.take().filter(|_| restarts > 0);
            *status = WatchHandle::starting_status(&options, &roots);
            status.restarts = restarts;
            status.last_panic = last_panic;
            status.last_error = last_error;
        }
        Ok(Watcher {
            config,
            embedder,
            options,
            roots,
            data_dir,
            indexed: BTreeMap::new(),
            stale: Vec::new(),
            dirty: BTreeMap::new(),
            skipped: HashMap::new(),
            status: handle.status.clone(),
            journal,
            busy: Duration::ZERO,
            rescan_requested: false,
        })
    }

    /// Watches until `stop` is set: resumes the journal's queue, scans, then follows
    /// notifications, rescanning every `rescan`.
    pub fn run(&mut self, index: &mut dyn IndexAccess, stop: &AtomicBool) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let _notifier = self.start_notifications(tx)?;
        let now = Instant::now();
        for path in self.journal.load_pending() {
            if self.owns(&path) {
                self.mark(&path, now);
            }
        }
        let mut next_rescan = Instant::now();
        let mut retry_at: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let due = [retry_at.or_else(|| self.next_check()), Some(next_rescan)]
                .into_iter()
                .flatten()
                .min();
            let wait = due
                .map_or(MAX_WAIT, |t| t.saturating_duration_since(Instant::now()))
                .min(MAX_WAIT);
            self.receive(&rx, wait)?;
            let now = Instant::now();
            if self.rescan_requested || now >= next_rescan {
                self.rescan_requested = false;
                self.set_state(WatchState::Scanning);
                next_rescan = match self.scan(index) {
                    Ok(()) => Instant::now() + self.options.rescan,
                    // The index could not be read (disk trouble, say): try again soon.
                    Err(e) => {
                        tracing::error!("watch scan failed, retrying in {RETRY_AFTER:?}: {e:#}");
                        self.update_status(|s| s.last_error = Some(format!("{e:#}")));
                        Instant::now() + RETRY_AFTER
                    }
                };
            }
            if retry_at.is_some_and(|t| now < t) {
                continue;
            }
            let ready = self.take_ready(now, self.options.batch_files.max(1));
            // Stale records need a batch even when no file is ready.
            if ready.is_empty() && self.stale.is_empty() {
                self.set_state(if self.dirty.is_empty() {
                    WatchState::Idle
                } else {
                    WatchState::Settling
                });
                continue;
            }
            self.set_state(WatchState::Syncing);
            match self.sync(index, &ready) {
                Ok(()) => retry_at = None,
                Err(e) => {
                    // Nothing of the batch is lost: its paths go back to the queue.
                    tracing::error!("watch batch failed, retrying in {RETRY_AFTER:?}: {e:#}");
                    self.update_status(|s| s.last_error = Some(format!("{e:#}")));
                    for (path, observed) in ready {
                        self.dirty.insert(
                            path,
                            Dirty {
                                observed,
                                check_at: now,
                            },
                        );
                    }
                    retry_at = Some(now + RETRY_AFTER);
                }
            }
        }
        self.set_state(WatchState::Stopped);
        Ok(())
    }

    fn start_notifications(
        &self,
        tx: std::sync::mpsc::Sender<notify::Result<notify::Event>>,
    ) -> Result<Box<dyn notify::Watcher + Send>> {
        use notify::Watcher as _;
        let mut watcher: Box<dyn notify::Watcher + Send> = match self.options.mode {
            WatchMode::Notify => Box::new(
                notify::recommended_watcher(tx.clone())
                    .map_err(notify_error("filesystem notifications"))?,
            ),
            WatchMode::Poll => Box::new(
                notify::PollWatcher::new(
                    tx.clone(),
                    notify::Config::default().with_poll_interval(self.options.poll_interval),
                )
                .map_err(notify_error("polling"))?,
            ),
        };
        for root in &self.roots {
            if let Err(e) = watcher.watch(root, notify::RecursiveMode::Recursive) {
                if self.options.mode == WatchMode::Poll {
                    return Err(notify_error(format!("watching {}", root.display()))(e));
                }
                // Out of inotify watches on a huge tree, say: polling still works.
                tracing::warn!(
                    root = %root.display(),
                    "notifications unavailable ({e}); polling every {:?} instead",
                    self.options.poll_interval
                );
                let mut poll = notify::PollWatcher::new(
                    tx,
                    notify::Config::default().with_poll_interval(self.options.poll_interval),
                )
                .map_err(notify_error("polling"))?;
                for root in &self.roots {
                    poll.watch(root, notify::RecursiveMode::Recursive)
                        .map_err(notify_error(format!("watching {}", root.display())))?;
                }
                self.update_status(|s| s.mode = WatchMode::Poll.as_str().to_string());
                return Ok(Box::new(poll));
            }
        }
        Ok(watcher)
    }

    /// Waits up to `wait` for notifications, then takes all that are queued.
    fn receive(
        &mut self,
        rx: &Receiver<notify::Result<notify::Event>>,
        wait: Duration,
    ) -> Result<()> {
        let first = match rx.recv_timeout(wait) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(WatchError::NotificationsStopped),
        };
        let now = Instant::now();
        self.event(first, now);
        while let Ok(event) = rx.try_recv() {
            self.event(event, now);
        }
        self.publish_queue();
        Ok(())
    }

    fn event(&mut self, event: notify::Result<notify::Event>, now: Instant) {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("filesystem notification error, rescanning: {e}");
                self.rescan_requested = true;
                return;
            }
        };
        if event.need_rescan() {
            // The kernel's queue overflowed: events were lost.
            self.rescan_requested = true;
        }
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if !self.owns(&path) {
                continue;
            }
            if path.is_dir() {
                // A link to a folder elsewhere is not followed (its files would be skipped
                // one by one anyway).
                if !std::fs::canonicalize(&path).is_ok_and(|p| owned(&self.roots, &p)) {
                    continue;
                }
                // A folder moved or copied in arrives as one event: its files are news too.
                for file in walk_files(&path) {
                    if self.owns(&file) {
                        self.mark(&file, now);
                    }
                }
            } else {
                self.mark(&path, now);
                if !path.exists() {
                    // Perhaps a folder went away: everything indexed under it did too.
                    let under: Vec<PathBuf> = self
                        .indexed
                        .range(path.clone()..)
                        .take_while(|(p, _)| p.starts_with(&path))
                        .map(|(p, _)| p.clone())
                        .collect();
                    for p in under {
                        self.mark(&p, now);
                    }
                }
            }
        }
    }

    /// Puts `path` in the queue, or restarts its settle time if it is already there.
    fn mark(&mut self, path: &Path, now: Instant) {
        self.dirty.insert(
            path.to_path_buf(),
            Dirty {
                observed: Stamp::of(path),
                check_at: now + self.options.settle,
            },
        );
    }

    fn owns(&self, path: &Path) -> bool {
        owned(&self.roots, path) && !path.starts_with(&self.data_dir)
    }

    fn identity(&self, path: &Path) -> Option<Candidate> {
        identity(&self.roots, &self.config.collection, path)
    }

    /// Compares every watched folder with what the index holds from it and queues the
    /// differences: new and changed files, and indexed files that are gone.
    fn scan(&mut self, index: &dyn IndexAccess) -> Result<()> {
        let started = Instant::now();
        let documents = index.documents()?;
        let failures = index.failures()?;
        let mut indexed: BTreeMap<PathBuf, Indexed> = BTreeMap::new();
        let mut stale = Vec::new();
        for d in documents {
            let Some(path) = d.source.as_deref().map(PathBuf::from) else {
                continue;
            };
            if !self.owns(&path) {
                continue;
            }
            let expected = self
                .identity(&path)
                .map(|c| pipeline::doc_id(&c.collection, &c.doc_path));
            if expected.as_deref() != Some(d.doc_id.as_str()) {
                stale.push((d.doc_id, Some(d.content_hash)));
                continue;
            }
            let verified = self.indexed.get(&path).and_then(|i| i.verified);
            indexed.insert(
                path,
                Indexed {
                    doc_id: d.doc_id,
                    content_hash: Some(d.content_hash),
                    bytes: Some(d.bytes),
                    since_s: d.ingested_at,
                    verified,
                },
            );
        }
        for f in failures {
            let Some(path) = f.source.as_deref().map(PathBuf::from) else {
                continue;
            };
            if !self.owns(&path) {
                continue;
            }
            match indexed.get_mut(&path) {
                // A newer version failed: the good one stays searchable, the failure decides
                // whether the file changed again.
                Some(entry) if entry.doc_id == f.doc_id => {
                    entry.bytes = None;
                    entry.since_s = f.failed_at;
                }
                Some(_) => stale.push((f.doc_id, None)),
                None => {
                    let verified = self.indexed.get(&path).and_then(|i| i.verified);
                    indexed.insert(
                        path,
                        Indexed {
                            doc_id: f.doc_id,
                            content_hash: None,
                            bytes: None,
                            since_s: f.failed_at,
                            verified,
                        },
                    );
                }
            }
        }
        self.indexed = indexed;
        self.stale = stale;

        let now = Instant::now();
        let mut unavailable = Vec::new();
        let roots = self.roots.clone();
        for root in &roots {
            let readable = std::fs::read_dir(root).is_ok();
            let files: Vec<PathBuf> = if readable {
                walk_files(root)
                    .into_iter()
                    .filter(|f| self.owns(f))
                    .collect()
            } else {
                Vec::new()
            };
            let indexed_here = self.indexed.keys().filter(|p| p.starts_with(root)).count();
            if files.is_empty() && indexed_here > 0 {
                // An unmounted share looks like an empty folder: never take that as "delete
                // everything". Deletions seen as notifications are still applied.
                tracing::warn!(
                    root = %root.display(),
                    indexed = indexed_here,
                    "watched folder is empty or unreadable while documents are indexed from it: \
                     keeping them (unmounted share?); remove them with `lore remove` if meant"
                );
                unavailable.push(root.display().to_string());
                continue;
            }
            let on_disk: std::collections::HashSet<&PathBuf> = files.iter().collect();
            for file in &files {
                let Some(stamp) = Stamp::of(file) else {
                    continue;
                };
                if !self.known(file, &stamp) && !self.dirty.contains_key(file) {
                    self.mark(file, now);
                }
            }
            let gone: Vec<PathBuf> = self
                .indexed
                .keys()
                .filter(|p| p.starts_with(root) && !on_disk.contains(p))
                .cloned()
                .collect();
            for p in gone {
                if !self.dirty.contains_key(&p) {
                    self.mark(&p, now);
                }
            }
        }
        tracing::info!(
            queued = self.dirty.len(),
            indexed = self.indexed.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "watch scan done"
        );
        self.update_status(|s| {
            s.last_scan_at = Some(pipeline::unix_now());
            s.unavailable = unavailable;
        });
        self.publish_queue();
        Ok(())
    }

    /// True when the file at `path` looks as it did when the index (or a skip) last
    /// accounted for it: no work to do.
    fn known(&self, path: &Path, stamp: &Stamp) -> bool {
        self.indexed.get(path).is_some_and(|i| i.unchanged(stamp))
            || self.skipped.get(path) == Some(stamp)
    }

    fn next_check(&self) -> Option<Instant> {
        self.dirty.values().map(|d| d.check_at).min()
    }

    /// Paths whose files have stayed unchanged for the settle time: up to `max` present
    /// files, and the missing ones; a file that changed meanwhile has its clock restarted.
    /// Removals wait while more files are ready than one batch takes: those may be the
    /// same content under new names (a folder renamed), re-filed from the documents about
    /// to be removed.
    fn take_ready(&mut self, now: Instant, max: usize) -> Vec<(PathBuf, Option<Stamp>)> {
        let settle = self.options.settle;
        let mut present = Vec::new();
        let mut missing = Vec::new();
        let mut more_present = false;
        for (path, dirty) in self.dirty.iter_mut() {
            if dirty.check_at > now {
                continue;
            }
            let current = Stamp::of(path);
            if current != dirty.observed {
                dirty.observed = current;
                dirty.check_at = now + settle;
                continue;
            }
            match current {
                Some(_) if present.len() < max => present.push((path.clone(), current)),
                Some(_) => more_present = true,
                None => missing.push((path.clone(), None)),
            }
        }
        if !more_present {
            present.append(&mut missing);
        }
        for (path, _) in &present {
            self.dirty.remove(path);
        }
        present
    }

    /// Applies one batch of settled paths to the index: one atomic commit holding the
    /// new and changed files and the removals (so a move never shows both or neither).
    fn sync(
        &mut self,
        index: &mut dyn IndexAccess,
        ready: &[(PathBuf, Option<Stamp>)],
    ) -> Result<()> {
        let started = Instant::now();
        let mut removals: Vec<String> = self.stale.iter().map(|(id, _)| id.clone()).collect();
        let mut removed_paths = Vec::new();
        let mut candidates: Vec<(Candidate, Stamp)> = Vec::new();
        for (path, stamp) in ready {
            match stamp {
                None => {
                    if let Some(entry) = self.indexed.get(path) {
                        removals.push(entry.doc_id.clone());
                        removed_paths.push(path.clone());
                    }
                    self.skipped.remove(path);
                }
                Some(stamp) => {
                    if self.known(path, stamp) {
                        continue;
                    }
                    if let Some(c) = self.identity(path) {
                        candidates.push((c, *stamp));
                    }
                }
            }
        }
        let mut donors: HashMap<String, String> = HashMap::new();
        for (id, hash) in &self.stale {
            if let Some(h) = hash {
                donors.insert(h.clone(), id.clone());
            }
        }
        for entry in self.indexed.values() {
            if let Some(h) = &entry.content_hash {
                donors.insert(h.clone(), entry.doc_id.clone());
            }
        }
        for (c, _) in &candidates {
            crate::fault::hit(crate::fault::Stage::Watch, &c.doc_path);
        }
        let files: Vec<Candidate> = candidates.iter().map(|(c, _)| c.clone()).collect();
        let removed = removals.len();
        let summary = pipeline::ingest_candidates(
            self.config,
            self.embedder,
            index,
            &files,
            IngestOptions {
                commit_every_docs: self.options.batch_files.max(1),
                progress: false,
                removals,
                donor: &|hash| donors.get(hash).cloned(),
            },
            &mut |_| {},
        )?;
        self.stale.clear();
        // Files that are fine now (or gone) leave the recent failures.
        let mut cleared: std::collections::HashSet<String> = summary
            .ingested
            .iter()
            .chain(&summary.unchanged)
            .cloned()
            .collect();
        for p in removed_paths {
            if let Some(c) = self.identity(&p) {
                cleared.insert(c.doc_path);
            }
            self.indexed.remove(&p);
        }

        // What each file became, from the summary (which names files by document path).
        let by_path: HashMap<&str, &(Candidate, Stamp)> = candidates
            .iter()
            .map(|c| (c.0.doc_path.as_str(), c))
            .collect();
        let mut emptied = Vec::new();
        for path in summary.ingested.iter().chain(&summary.unchanged) {
            let Some((c, stamp)) = by_path.get(path.as_str()) else {
                continue;
            };
            let doc_id = pipeline::doc_id(&c.collection, &c.doc_path);
            if let Some(record) = index.document(&doc_id)? {
                self.skipped.remove(&c.fs_path);
                self.indexed.insert(
                    c.fs_path.clone(),
                    Indexed {
                        doc_id,
                        content_hash: Some(record.content_hash),
                        bytes: Some(record.bytes),
                        since_s: record.ingested_at,
                        verified: Some(*stamp),
                    },
                );
            }
        }
        for f in &summary.failed {
            let Some((c, stamp)) = by_path.get(f.path.as_str()) else {
                continue;
            };
            let entry = self
                .indexed
                .entry(c.fs_path.clone())
                .or_insert_with(|| Indexed {
                    doc_id: pipeline::doc_id(&c.collection, &c.doc_path),
                    content_hash: None,
                    bytes: None,
                    since_s: 0,
                    verified: None,
                });
            entry.bytes = None;
            entry.since_s = pipeline::unix_now();
            entry.verified = Some(*stamp);
        }
        for s in &summary.skipped {
            let Some((c, stamp)) = by_path.get(s.path.as_str()) else {
                continue;
            };
            self.skipped.insert(c.fs_path.clone(), *stamp);
            // A file emptied (or turned into something unsupported) has nothing to search
            // any more: its old version goes.
            if let Some(entry) = self.indexed.remove(&c.fs_path) {
                emptied.push(entry.doc_id);
            }
        }
        let emptied_count = emptied.len();
        if !emptied.is_empty() {
            index.commit(lore_index::Batch {
                removals: emptied,
                ..lore_index::Batch::default()
            })?;
        }

        self.busy += started.elapsed();
        let files = ready.len() as u64;
        tracing::info!(
            files,
            ingested = summary.ingested.len(),
            reused = summary.reused.len(),
            removed = removed + emptied_count,
            failed = summary.failed.len(),
            chunks = summary.chunks,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "watch batch committed"
        );
        let busy = self.busy.as_secs_f64();
        self.update_status(|s| {
            s.files_done += files;
            s.ingested += summary.ingested.len() as u64;
            s.reused += summary.reused.len() as u64;
            s.removed += (removed + emptied_count) as u64;
            s.failed += summary.failed.len() as u64;
            s.chunks_done += summary.chunks;
            s.busy_seconds = busy;
            s.files_per_sec = if busy > 0.0 {
                s.files_done as f64 / busy
            } else {
                0.0
            };
            s.chunks_per_sec = if busy > 0.0 {
                s.chunks_done as f64 / busy
            } else {
                0.0
            };
            s.last_error = None;
            s.recent_failures.retain(|f| !cleared.contains(&f.path));
            s.recent_failures.extend(summary.failed.iter().cloned());
            let excess = s
                .recent_failures
                .len()
                .saturating_sub(journal::RECENT_FAILURES);
            s.recent_failures.drain(..excess);
        });
        self.publish_queue();
        Ok(())
    }

    fn set_state(&mut self, state: WatchState) {
        let changed = self
            .status
            .lock()
            .map(|mut s| {
                let changed = s.state != state;
                s.state = state;
                changed
            })
            .unwrap_or(false);
        if changed {
            self.save_journal();
        }
    }

    fn update_status(&self, f: impl FnOnce(&mut WatchStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
            s.updated_at = pipeline::unix_now();
        }
    }

    /// Publishes the queue length and saves the journal.
    fn publish_queue(&mut self) {
        let queue = self.dirty.len();
        self.update_status(|s| s.queue = queue);
        self.save_journal();
    }

    fn save_journal(&mut self) {
        let status = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        if let Err(e) = self.journal.save(&status, self.dirty.keys()) {
            tracing::warn!("cannot write the watch journal: {e:#}");
        }
    }
}

/// First wait before restarting a watcher that panicked; doubled after each panic that
/// follows within [`STEADY_RUN`], up to [`MAX_RESTART_DELAY`].
const RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
/// A watcher that ran this long before panicking starts again after [`RESTART_DELAY`].
const STEADY_RUN: Duration = Duration::from_secs(300);

/// Runs a [`Watcher`] until `handle.stop` is set, restarting it after a panic: the panic is
/// caught, reported in the status (`restarts`, `last_panic`, `last_error`; so in
/// `/api/watch`, `lore status` and `/metrics`), and a new watcher starts over from the
/// index and the journal after a growing delay. Commits are atomic and `index` recovers
/// itself ([`IndexAccess::recover`]), so nothing is half-done. An error (not a panic)
/// stops watching, as before.
pub fn run_supervised(
    config: &Config,
    embedder: &Embedder,
    options: &WatchOptions,
    handle: &WatchHandle,
    index: &mut dyn IndexAccess,
) -> Result<()> {
    let mut delay = RESTART_DELAY;
    loop {
        let started = Instant::now();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Watcher::new(config, embedder, options.clone(), handle)
                .and_then(|mut w| w.run(index, &handle.stop))
        }));
        let payload = match run {
            Ok(result) => return result,
            Err(payload) => payload,
        };
        let message = crate::fault::panic_message(&*payload);
        if started.elapsed() >= STEADY_RUN {
            delay = RESTART_DELAY;
        }
        tracing::error!("the folder watcher crashed ({message}); restarting in {delay:?}");
        if let Ok(mut status) = handle.status.lock() {
            status.restarts += 1;
            status.state = WatchState::Starting;
            status.last_panic = Some(message.clone());
            status.last_error = Some(format!("the watcher crashed and restarted: {message}"));
            status.updated_at = pipeline::unix_now();
        }
        if let Err(e) = index.recover() {
            tracing::error!("cannot recover the index after the watcher crashed: {e:#}");
        }
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if handle.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(MAX_WAIT.min(until.saturating_duration_since(Instant::now())));
        }
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

/// True when `path` lies inside a watched folder and no part of it below the folder is a
/// hidden or temporary name.
fn owned(roots: &[PathBuf], path: &Path) -> bool {
    roots.iter().any(|root| {
        path.strip_prefix(root).is_ok_and(|rel| {
            rel.components().next().is_some()
                && rel
                    .components()
                    .all(|c| !pipeline::is_ignored_name(&c.as_os_str().to_string_lossy()))
        })
    })
}

/// The document a watched file becomes: its path relative to the watched folder, in the
/// collection named by its top-level subfolder (files directly in the folder go to
/// `default_collection`).
fn identity(roots: &[PathBuf], default_collection: &str, path: &Path) -> Option<Candidate> {
    let root = roots.iter().find(|r| path.starts_with(r))?;
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components();
    let first = parts.next()?;
    let collection = if parts.next().is_some() {
        first.as_os_str().to_string_lossy().into_owned()
    } else {
        default_collection.to_string()
    };
    Some(Candidate {
        fs_path: path.to_path_buf(),
        doc_path: pipeline::clean_path(rel),
        collection,
        root: Some(root.clone()),
    })
}

/// A notify error, with what was being started.
fn notify_error(what: impl Into<String>) -> impl FnOnce(notify::Error) -> WatchError {
    let what = what.into();
    move |source| WatchError::Notify { what, source }
}

/// The watched folders, resolved; an error names the first that is missing or no folder.
pub fn check_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut resolved: Vec<PathBuf> = Vec::new();
    for root in roots {
        let canonical = std::fs::canonicalize(root).map_err(|source| WatchError::Unreadable {
            path: root.clone(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(WatchError::NotAFolder(root.clone()));
        }
        if let Some(other) = resolved
            .iter()
            .find(|r| canonical.starts_with(r) || r.starts_with(&canonical))
        {
            return Err(WatchError::Nested(canonical, other.clone()));
        }
        resolved.push(canonical);
    }
    Ok(resolved)
}

/// Every file under `dir`, walked as ingestion walks folders (unreadable entries and
/// link loops are passed over here: a later scan sees them again).
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    pipeline::walk(dir)
        .filter_map(|e| match e {
            pipeline::Walked::File(path) => Some(path),
            pipeline::Walked::Outside { path, target } => {
                tracing::debug!(path = %path.display(), target = %target.display(), "link out of the watched folder: not followed");
                None
            }
            pipeline::Walked::Failed(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64, secs: i64) -> Stamp {
        Stamp {
            size,
            changed_ns: i128::from(secs) * 1_000_000_000 + 5,
        }
    }

    #[test]
    fn top_level_subfolders_are_collections() {
        let roots = [PathBuf::from("/srv/share")];
        let id =
            |p: &str| identity(&roots, "default", Path::new(p)).map(|c| (c.collection, c.doc_path));
        assert_eq!(
            id("/srv/share/handbook.pdf"),
            Some(("default".into(), "handbook.pdf".into()))
        );
        assert_eq!(
            id("/srv/share/hr/policies/leave.md"),
            Some(("hr".into(), "hr/policies/leave.md".into()))
        );
        assert_eq!(id("/srv/other/x.md"), None);
        assert!(owned(&roots, Path::new("/srv/share/hr/leave.md")));
        for ignored in [
            "/srv/share",
            "/srv/share/.git/config",
            "/srv/share/hr/~$leave.docx",
            "/srv/share/hr/leave.docx.part",
            "/srv/share/.~lock.leave.odt#",
            "/srv/elsewhere/a.md",
        ] {
            assert!(!owned(&roots, Path::new(ignored)), "{ignored}");
        }
    }

    #[test]
    fn unchanged_needs_same_size_and_no_change_after_ingestion() {
        let entry = Indexed {
            doc_id: "d".into(),
            content_hash: Some("h".into()),
            bytes: Some(100),
            since_s: 1_000,
            verified: None,
        };
        assert!(entry.unchanged(&stamp(100, 999)));
        // Touched in the ingestion second or later: hash it again to be sure.
        assert!(!entry.unchanged(&stamp(100, 1_000)));
        assert!(!entry.unchanged(&stamp(101, 999)));
        let confirmed = Indexed {
            verified: Some(stamp(100, 1_000)),
            ..entry.clone()
        };
        assert!(confirmed.unchanged(&stamp(100, 1_000)));
        // After a failure the size is unknown: only the time decides.
        let failed = Indexed {
            bytes: None,
            ..entry
        };
        assert!(failed.unchanged(&stamp(7, 999)));
        assert!(!failed.unchanged(&stamp(7, 1_001)));
    }
}
