//! Uploads and their ingestion jobs, journaled so that an accepted upload is indexed or
//! reported failed even across a crash.
//!
//! An uploaded file streams to a hidden staging folder (`<data_dir>/library/.incoming/`),
//! is then renamed to `<data_dir>/library/<collection>/<cleaned name>` (never a path the
//! client chose) and ingested by a job. Jobs wait in ONE bounded queue served by one
//! ingestion worker thread: a full queue refuses uploads before their bodies are read.
//!
//! The journal, `<data_dir>/jobs/`, holds one private (0600) JSON file per job, replaced
//! atomically at each change of state, and `next-id`, the next job number, so ids never
//! repeat across restarts. A job's record is written before its files are moved into the
//! library: every uploaded file there belongs to a journaled job. At start-up, jobs that
//! were queued or running are queued again (marked `resumed`); files in the library that
//! are neither indexed nor recorded as failed nor part of such a job (from before the
//! journal, or whose record was lost) are queued in one recovery job.

use crate::files::{failed_to, WriteError};
use crate::pipeline::{self, Candidate, IngestProgress, SharedIndex, Summary};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use tokio::sync::mpsc;

/// Finished jobs kept (in memory and in the journal) for status queries; older ones are
/// forgotten first.
const KEEP_FINISHED: usize = 256;
/// Where uploads stream to before they are complete (hidden: walks pass over it).
const STAGING: &str = ".incoming";
const NEXT_ID: &str = "next-id";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the ingestion worker.
    Queued,
    Running,
    /// Finished; files that failed alone are listed in the summary.
    Done,
    /// Nothing could be ingested (see `error`, or the summary's failures).
    Failed,
}

impl JobState {
    fn finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed)
    }
}

/// A job as `GET /api/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: String,
    pub state: JobState,
    /// Document paths (as ingested) of the uploaded files.
    pub files: Vec<String>,
    pub progress: IngestProgress,
    /// Per-file outcome, when done. In a resumed job, files indexed before the restart
    /// are listed as `unchanged`.
    pub summary: Option<Summary>,
    /// Why the job as a whole failed.
    pub error: Option<String>,
    /// The server stopped (or crashed) before the job finished and ran it again at its
    /// next start; also set on the job that picks up library files found unindexed then.
    pub resumed: bool,
    /// Who uploaded the files (`None`: anonymous); only they and admins see the job.
    #[serde(skip)]
    pub owner: Option<String>,
}

/// A job as the journal keeps it: its status and the files on disk it ingests.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    id: String,
    state: JobState,
    candidates: Vec<Candidate>,
    progress: IngestProgress,
    summary: Option<Summary>,
    error: Option<String>,
    resumed: bool,
    owner: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
}

impl Job {
    fn status(&self) -> JobStatus {
        JobStatus {
            id: self.id.clone(),
            state: self.state,
            files: self.candidates.iter().map(|c| c.doc_path.clone()).collect(),
            progress: self.progress,
            summary: self.summary.clone(),
            error: self.error.clone(),
            resumed: self.resumed,
            owner: self.owner.clone(),
        }
    }
}

/// What stops the job journal from being read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot encode job {id}: {source}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A place in the ingestion queue, taken before an upload's body is read and spent when
/// its job is queued (dropped unused when the upload fails).
pub struct QueueSlot(mpsc::OwnedPermit<String>);

/// A staging folder for one upload's files; removed with whatever is left in it.
pub struct Staging(PathBuf);

impl Staging {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), "cannot remove an upload's staging folder: {e}");
            }
        }
    }
}

pub struct Jobs {
    library: PathBuf,
    journal: PathBuf,
    next: Mutex<u64>,
    staged: AtomicU64,
    table: Mutex<HashMap<String, Job>>,
    queue: mpsc::Sender<String>,
    /// The queue's receiving end and the jobs to run before it (resumed at start-up),
    /// until the worker takes them.
    worker: Mutex<Option<(mpsc::Receiver<String>, Vec<String>)>>,
}

impl Jobs {
    /// Opens (or creates) the journal, queues again what a stop interrupted, and queues
    /// library files that were never indexed nor recorded as failed. `capacity`: jobs the
    /// queue holds (`ingest_queue`).
    pub fn open(
        data_dir: &Path,
        index: &lore_index::Index,
        capacity: usize,
    ) -> Result<Jobs, JournalError> {
        let library = data_dir.join("library");
        std::fs::create_dir_all(&library).map_err(failed_to("create", &library))?;
        let journal = data_dir.join("jobs");
        crate::files::create_private_dir(&journal)?;
        // Uploads a stop cut short: never accepted, so nobody waits for them.
        let staging = library.join(STAGING);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(failed_to("clear", &staging))?;
        }
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let mut jobs = Jobs {
            library,
            journal,
            next: Mutex::new(1),
            staged: AtomicU64::new(0),
            table: Mutex::new(HashMap::new()),
            queue,
            worker: Mutex::new(None),
        };
        let recovered = jobs.recover(index)?;
        jobs.worker = Mutex::new(Some((receiver, recovered)));
        Ok(jobs)
    }

    /// Reads the journal and returns the ids to run first: interrupted jobs, then the
    /// recovery job for unindexed library files, if any.
    fn recover(&mut self, index: &lore_index::Index) -> Result<Vec<String>, JournalError> {
        let mut loaded = Vec::new();
        let mut highest = 0;
        let entries = std::fs::read_dir(&self.journal).map_err(failed_to("read", &self.journal))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_job = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("job-") && n.ends_with(".json"));
            if !is_job {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Job>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(job) => {
                    highest = highest.max(id_number(&job.id));
                    loaded.push(job);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "unreadable job record, left alone: {e}")
                }
            }
        }
        let counter = self.journal.join(NEXT_ID);
        let stored_next = std::fs::read_to_string(&counter)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(1);
        *self.next.get_mut().unwrap_or_else(|p| p.into_inner()) =
            stored_next.max(highest + 1).max(1);

        let mut recovered = Vec::new();
        let mut covered = HashSet::new();
        loaded.sort_by_key(|j| id_number(&j.id));
        for mut job in loaded {
            if !job.state.finished() {
                tracing::info!(job = %job.id, files = job.candidates.len(), "resuming an interrupted ingestion job");
                job.state = JobState::Queued;
                job.resumed = true;
                job.progress = IngestProgress::default();
                self.write(&job)?;
                covered.extend(job.candidates.iter().map(|c| c.fs_path.clone()));
                recovered.push(job.id.clone());
            }
            self.table_mut().insert(job.id.clone(), job);
        }
        let orphans = self.unindexed_files(index, &covered);
        if !orphans.is_empty() {
            tracing::info!(
                files = orphans.len(),
                "queuing library files that were neither indexed nor recorded as failed"
            );
            let job = self.new_job(orphans, None, true)?;
            recovered.push(job.id.clone());
            self.table_mut().insert(job.id.clone(), job);
        }
        Ok(recovered)
    }

    /// Files under `library/<collection>/` that no job covers and the index knows neither
    /// as a document of the same size nor as a failure.
    fn unindexed_files(
        &self,
        index: &lore_index::Index,
        covered: &HashSet<PathBuf>,
    ) -> Vec<Candidate> {
        let mut found = Vec::new();
        let Ok(collections) = std::fs::read_dir(&self.library) else {
            return found;
        };
        for dir in collections.flatten() {
            let Some(collection) = dir.file_name().to_str().map(String::from) else {
                continue;
            };
            if pipeline::is_ignored_name(&collection) || !dir.path().is_dir() {
                continue;
            }
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let Some(name) = file.file_name().to_str().map(String::from) else {
                    continue;
                };
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if pipeline::is_ignored_name(&name) || !meta.is_file() || covered.contains(&path) {
                    continue;
                }
                let id = pipeline::doc_id(&collection, &name);
                let indexed = match (index.document(&id), index.failure(&id)) {
                    (Ok(Some(d)), _) => d.bytes == meta.len(),
                    (_, Ok(Some(_))) => true,
                    (Ok(None), Ok(None)) => false,
                    // Ingestion is idempotent: when in doubt, queue it.
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(path = %path.display(), "index lookup failed: {e}");
                        false
                    }
                };
                if !indexed {
                    found.push(Candidate {
                        fs_path: path,
                        doc_path: name,
                        collection: collection.clone(),
                        // Nothing in the upload area is followed out of it.
                        root: std::fs::canonicalize(&self.library).ok(),
                    });
                }
            }
        }
        found.sort_by(|a, b| a.fs_path.cmp(&b.fs_path));
        found
    }

    fn table_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        // A panic while holding it leaves a consistent map (every change is one insert or
        // one field update): keep serving.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where uploads to `collection` are stored.
    pub fn collection_dir(&self, collection: &str) -> PathBuf {
        self.library.join(clean_name(collection))
    }

    /// A place in the ingestion queue, or `None` when it is full.
    pub fn reserve(&self) -> Option<QueueSlot> {
        self.queue.clone().try_reserve_owned().ok().map(QueueSlot)
    }

    /// Places taken in the queue: jobs waiting for the worker, and uploads in progress.
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// A fresh staging folder for one upload.
    pub fn staging(&self) -> Result<Staging, WriteError> {
        let n = self.staged.fetch_add(1, Ordering::Relaxed);
        let dir = self.library.join(STAGING).join(n.to_string());
        std::fs::create_dir_all(&dir).map_err(failed_to("create", &dir))?;
        Ok(Staging(dir))
    }

    /// Journals a job for the staged files (`(file name as sent, staged path)`), moves
    /// them into the library (replacing earlier uploads of the same names) and queues it;
    /// its id. The record comes first, so a crash in between leaves a job to resume.
    pub fn enqueue(
        &self,
        slot: QueueSlot,
        collection: &str,
        staged: &[(String, PathBuf)],
        owner: Option<String>,
    ) -> Result<String, JournalError> {
        let dir = self.collection_dir(collection);
        std::fs::create_dir_all(&dir).map_err(failed_to("create", &dir))?;
        let root = std::fs::canonicalize(&dir).ok();
        let candidates: Vec<Candidate> = staged
            .iter()
            .map(|(name, _)| {
                let name = clean_name(name);
                Candidate {
                    fs_path: dir.join(&name),
                    doc_path: name,
                    collection: collection.to_string(),
                    root: root.clone(),
                }
            })
            .collect();
        let job = self.new_job(candidates.clone(), owner, false)?;
        let id = job.id.clone();
        for ((_, from), to) in staged.iter().zip(&candidates) {
            if let Err(e) = std::fs::rename(from, &to.fs_path) {
                // Journaled already: the job runs and reports the file as failed.
                tracing::error!(path = %to.fs_path.display(), "cannot move an upload into the library: {e}");
            }
        }
        sync_dir(&dir);
        self.table_mut().insert(id.clone(), job);
        slot.0.send(id.clone());
        Ok(id)
    }

    /// A new queued job, journaled, with the next id.
    fn new_job(
        &self,
        candidates: Vec<Candidate>,
        owner: Option<String>,
        resumed: bool,
    ) -> Result<Job, JournalError> {
        let id = self.allocate_id()?;
        let job = Job {
            id,
            state: JobState::Queued,
            progress: IngestProgress {
                files_total: candidates.len(),
                ..IngestProgress::default()
            },
            candidates,
            summary: None,
            error: None,
            resumed,
            owner,
            created_at: pipeline::unix_now(),
            finished_at: None,
        };
        self.write(&job)?;
        Ok(job)
    }

    /// The next job id; the counter is on disk before the id is used, so no id repeats
    /// after a restart.
    fn allocate_id(&self) -> Result<String, JournalError> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let n = *next;
        let path = self.journal.join(NEXT_ID);
        crate::files::write_private_atomically(&path, format!("{}\n", n + 1).as_bytes())?;
        *next = n + 1;
        Ok(format!("job-{n}"))
    }

    fn write(&self, job: &Job) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec_pretty(job).map_err(|source| JournalError::Encode {
            id: job.id.clone(),
            source,
        })?;
        let path = self.journal.join(format!("{}.json", job.id));
        crate::files::write_private_atomically(&path, &bytes)?;
        Ok(())
    }

    /// Writes the job's record as it is now; a failure is logged (the job goes on: the
    /// worst a stale record does is run the job again after a crash).
    fn persist(&self, id: &str) {
        let job = self.table_mut().get(id).cloned();
        if let Some(job) = job {
            if let Err(e) = self.write(&job) {
                tracing::error!(job = id, "cannot journal the job: {e}");
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<JobStatus> {
        self.table_mut().get(id).map(Job::status)
    }

    fn update<T>(&self, id: &str, f: impl FnOnce(&mut Job) -> T) -> Option<T> {
        self.table_mut().get_mut(id).map(f)
    }

    /// Starts the one ingestion worker (once; later calls do nothing). It holds the state
    /// weakly: when the server's state is dropped, the queue closes and the thread ends.
    pub fn start_worker(state: &super::SharedState) -> std::io::Result<()> {
        let taken = state
            .jobs
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some((mut receiver, recovered)) = taken else {
            return Ok(());
        };
        let weak: Weak<super::AppState> = std::sync::Arc::downgrade(state);
        std::thread::Builder::new()
            .name("lore-ingest".into())
            .spawn(move || {
                for id in recovered {
                    let Some(state) = weak.upgrade() else { return };
                    state.jobs.run(&id, &state);
                }
                while let Some(id) = receiver.blocking_recv() {
                    let Some(state) = weak.upgrade() else { return };
                    state.jobs.run(&id, &state);
                }
            })
            .map(drop)
    }

    /// Ingests job `id`'s files into the shared index, recording progress and outcome.
    fn run(&self, id: &str, state: &super::AppState) {
        let Some(candidates) = self.update(id, |job| {
            job.state = JobState::Running;
            job.candidates.clone()
        }) else {
            return;
        };
        self.persist(id);
        let started = std::time::Instant::now();
        // A bug in a parser is contained per file; this catches anything else, so the one
        // worker outlives a job that panics.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for c in &candidates {
                crate::fault::hit(crate::fault::Stage::Job, &c.doc_path);
            }
            let mut index = SharedIndex(&state.index);
            pipeline::ingest_candidates(
                &state.config,
                &state.embedder,
                &mut index,
                &candidates,
                pipeline::IngestOptions::default(),
                &mut |p| {
                    self.update(id, |job| job.progress = p);
                },
            )
        }));
        self.update(id, |job| {
            job.finished_at = Some(pipeline::unix_now());
            match result {
                Ok(Ok(summary)) => {
                    state.metrics.ingestion_failed(summary.failed.len());
                    // Per-file failures are in the summary (and the document list); the
                    // job failed only when nothing of it could be ingested.
                    let nothing_ingested =
                        summary.ingested.is_empty() && summary.unchanged.is_empty();
                    job.state = if !summary.failed.is_empty() && nothing_ingested {
                        JobState::Failed
                    } else {
                        JobState::Done
                    };
                    job.summary = Some(summary);
                }
                Ok(Err(e)) => {
                    tracing::error!(job = id, "ingestion job failed: {e:#}");
                    job.state = JobState::Failed;
                    job.error = Some(format!("{e:#}"));
                }
                Err(payload) => {
                    let why = crate::fault::panic_message(&*payload);
                    tracing::error!(job = id, "ingestion job panicked: {why}");
                    job.state = JobState::Failed;
                    job.error = Some(format!("the ingestion job crashed: {why}"));
                }
            }
        });
        self.persist(id);
        tracing::info!(
            job = id,
            seconds = started.elapsed().as_secs_f64(),
            "ingestion job finished"
        );
        self.forget_old();
    }

    /// Drops the oldest finished jobs beyond [`KEEP_FINISHED`], from memory and journal.
    fn forget_old(&self) {
        let old: Vec<String> = {
            let mut table = self.table_mut();
            let mut finished: Vec<String> = table
                .values()
                .filter(|j| j.state.finished())
                .map(|j| j.id.clone())
                .collect();
            if finished.len() <= KEEP_FINISHED {
                return;
            }
            finished.sort_by_key(|id| id_number(id));
            let old: Vec<String> = finished[..finished.len() - KEEP_FINISHED].to_vec();
            for id in &old {
                table.remove(id);
            }
            old
        };
        for id in old {
            let path = self.journal.join(format!("{id}.json"));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), "cannot remove an old job record: {e}");
            }
        }
    }
}

fn id_number(id: &str) -> u64 {
    id.trim_start_matches("job-").parse().unwrap_or(0)
}

/// Makes renames into `dir` durable (best effort: not every filesystem can sync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

pub use super::names::clean_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_cannot_escape_the_library() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(clean_name(".."), "upload");
        assert_eq!(clean_name(".bashrc"), "bashrc");
        assert_eq!(clean_name("a\u{0}b:c.pdf"), "a_b_c.pdf");
        assert_eq!(
            clean_name("Rapport annuel 2025.pdf"),
            "Rapport annuel 2025.pdf"
        );
        assert_eq!(clean_name(""), "upload");
    }
}
