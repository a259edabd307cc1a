//! Fault injection for the tests that prove a panic costs one file or one request, never
//! the server: [`hit`] panics when a file of a chosen name reaches a chosen [`Stage`].
//!
//! Compiled in only for unit tests and the `fault-injection` feature (which the
//! `real-data` test tier enables, so the e2e tests can drive the real binary through it);
//! in any other build [`hit`] is an empty inline function and nothing here exists. Faults
//! are armed by tests in-process (`arm`) or, for the binary, by `LORE_TEST_PANIC`:
//! comma-separated `stage:file-name` or `stage:file-name:times` entries, e.g.
//! `embed:boom.md,watch:flaky.md:1`.

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before the file's parser runs.
    Parse,
    /// Before the parsed document is chunked.
    Chunk,
    /// Before the chunks are embedded.
    Embed,
    /// Inside the index commit, with the index's write lock held.
    Commit,
    /// In an upload job's runner, outside the per-file pipeline.
    Job,
    /// In the folder watcher's loop, before a batch is synced.
    Watch,
    /// In the handler serving an original (`/api/documents/{id}/raw`).
    Raw,
}

#[cfg(any(test, feature = "fault-injection"))]
mod armed {
    use super::Stage;
    use std::sync::Mutex;

    struct Fault {
        stage: Stage,
        name: String,
        /// Panics left; `None`: every time.
        left: Option<u32>,
    }

    static FAULTS: Mutex<Option<Vec<Fault>>> = Mutex::new(None);

    fn parse_stage(s: &str) -> Option<Stage> {
        Some(match s {
            "parse" => Stage::Parse,
            "chunk" => Stage::Chunk,
            "embed" => Stage::Embed,
            "commit" => Stage::Commit,
            "job" => Stage::Job,
            "watch" => Stage::Watch,
            "raw" => Stage::Raw,
            _ => return None,
        })
    }

    fn from_env() -> Vec<Fault> {
        let spec = std::env::var("LORE_TEST_PANIC").unwrap_or_default();
        spec.split(',')
            .filter_map(|entry| {
                let mut parts = entry.trim().splitn(3, ':');
                let stage = parse_stage(parts.next()?)?;
                let name = parts.next()?.to_string();
                let left = parts.next().and_then(|n| n.parse().ok());
                Some(Fault { stage, name, left })
            })
            .collect()
    }

    pub fn arm(stage: Stage, name: &str, times: Option<u32>) {
        let mut faults = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
        faults.get_or_insert_with(from_env).push(Fault {
            stage,
            name: name.to_string(),
            left: times,
        });
    }

    pub fn hit(stage: Stage, path: &str) {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let fire = {
            let mut faults = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
            let faults = faults.get_or_insert_with(from_env);
            match faults
                .iter_mut()
                .find(|f| f.stage == stage && f.name == name && f.left != Some(0))
            {
                Some(fault) => {
                    if let Some(left) = &mut fault.left {
                        *left -= 1;
                    }
                    true
                }
                None => false,
            }
        };
        if fire {
            panic!("injected panic at {stage:?} for {name}");
        }
    }
}

/// Panics when a fault is armed for `stage` and the file name of `path`.
#[cfg(any(test, feature = "fault-injection"))]
pub fn hit(stage: Stage, path: &str) {
    armed::hit(stage, path);
}

/// Does nothing: fault injection is not compiled into this build.
#[cfg(not(any(test, feature = "fault-injection")))]
#[inline(always)]
pub fn hit(_stage: Stage, _path: &str) {}

/// Arms a panic for files named `name` at `stage`, `times` times (`None`: always).
#[cfg(any(test, feature = "fault-injection"))]
pub fn arm(stage: Stage, name: &str, times: Option<u32>) {
    armed::arm(stage, name, times);
}

/// The message of a caught panic's payload (what `panic!` was given), for reports.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
