//! Uploads and their ingestion jobs. An uploaded file is stored under
//! `<data_dir>/library/<collection>/` with a cleaned name (never a path the client chose),
//! written to a temporary file and renamed, then ingested on a blocking thread; its job
//! reports progress and the per-file outcome.

use crate::files::{failed_to, WriteError};
use crate::pipeline::{self, Candidate, IngestProgress, SharedIndex, Summary};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Finished jobs kept for status queries; older ones are forgotten first.
const KEEP_FINISHED: usize = 256;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    /// Finished; files that failed alone are listed in the summary.
    Done,
    /// Nothing could be ingested (see `error`, or the summary's failures).
    Failed,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: String,
    pub state: JobState,
    /// Document paths (as ingested) of the uploaded files.
    pub files: Vec<String>,
    pub progress: IngestProgress,
    /// Per-file outcome, when done.
    pub summary: Option<Summary>,
    /// Why the job as a whole failed.
    pub error: Option<String>,
    /// Who uploaded the files (`None`: anonymous); only they and admins see the job.
    #[serde(skip)]
    pub owner: Option<String>,
}

pub struct Jobs {
    library: PathBuf,
    next: AtomicU64,
    table: Mutex<HashMap<String, JobStatus>>,
}

impl Jobs {
    pub fn new(data_dir: &Path) -> Result<Jobs, WriteError> {
        let library = data_dir.join("library");
        std::fs::create_dir_all(&library).map_err(failed_to("create", &library))?;
        Ok(Jobs {
            library,
            next: AtomicU64::new(1),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Where uploads to `collection` are stored.
    pub fn collection_dir(&self, collection: &str) -> PathBuf {
        self.library.join(clean_name(collection))
    }

    /// Stores one uploaded file, replacing an earlier upload of the same name; returns its
    /// path on disk and its document path (as ingested).
    pub fn store(
        &self,
        collection: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<Candidate, WriteError> {
        let dir = self.collection_dir(collection);
        std::fs::create_dir_all(&dir).map_err(failed_to("create", &dir))?;
        let name = clean_name(file_name);
        let path = dir.join(&name);
        crate::files::write_atomically(&path, bytes)?;
        Ok(Candidate {
            root: std::fs::canonicalize(&dir).ok(),
            fs_path: path,
            doc_path: name,
            collection: collection.to_string(),
        })
    }

    /// Registers a running job for `files` and returns its id.
    pub fn start(&self, files: Vec<String>, owner: Option<String>) -> String {
        let id = format!("job-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let status = JobStatus {
            id: id.clone(),
            state: JobState::Running,
            files,
            progress: IngestProgress::default(),
            summary: None,
            error: None,
            owner,
        };
        if let Ok(mut table) = self.table.lock() {
            if table.len() >= KEEP_FINISHED {
                let mut finished: Vec<String> = table
                    .values()
                    .filter(|j| j.state != JobState::Running)
                    .map(|j| j.id.clone())
                    .collect();
                finished.sort_by_key(|id| id_number(id));
                for old in finished.iter().take(table.len() + 1 - KEEP_FINISHED) {
                    table.remove(old);
                }
            }
            table.insert(id.clone(), status);
        }
        id
    }

    pub fn get(&self, id: &str) -> Option<JobStatus> {
        self.table.lock().ok()?.get(id).cloned()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut JobStatus)) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(job) = table.get_mut(id) {
                f(job);
            }
        }
    }

    /// Ingests `candidates` into the shared index (blocking; run it off the async
    /// workers), recording progress and outcome under job `id`.
    pub fn run(&self, id: &str, state: &super::AppState, candidates: &[Candidate]) {
        let mut index = SharedIndex(&state.index);
        // A panic outside the per-file pipeline (which catches its own) fails the job, never
        // leaves it running for ever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for c in candidates {
                crate::fault::hit(crate::fault::Stage::Job, &c.doc_path);
            }
            pipeline::ingest_candidates(
                &state.config,
                &state.embedder,
                &mut index,
                candidates,
                pipeline::IngestOptions::default(),
                &mut |p| self.update(id, |job| job.progress = p),
            )
        }))
        .unwrap_or_else(|payload| {
            Err(pipeline::PipelineError::Crashed(format!(
                "the ingestion job crashed: {}",
                crate::fault::panic_message(&*payload)
            )))
        });
        self.update(id, |job| match result {
            Ok(summary) => {
                state.metrics.ingestion_failed(summary.failed.len());
                // Per-file failures are in the summary (and the document list); the job
                // failed only when nothing of it could be ingested.
                let nothing_ingested = summary.ingested.is_empty() && summary.unchanged.is_empty();
                job.state = if !summary.failed.is_empty() && nothing_ingested {
                    JobState::Failed
                } else {
                    JobState::Done
                };
                job.summary = Some(summary);
            }
            Err(e) => {
                tracing::error!(job = id, "ingestion job failed: {e:#}");
                job.state = JobState::Failed;
                job.error = Some(format!("{e:#}"));
            }
        });
    }
}

fn id_number(id: &str) -> u64 {
    id.trim_start_matches("job-").parse().unwrap_or(0)
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
