//! Crash safety: a child process (this test binary re-executed) commits batches in a loop
//! and is killed with SIGKILL at random moments; after each kill the index must open in a
//! committed state: every document complete, no part of an uncommitted batch visible.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{clustered_vectors, generation_batch, Rng, GENERATION_DOCS};
use lore_index::{DocumentRecord, Filter, Index, IndexConfig};

const DIM: usize = 32;
const CHILD_ENV: &str = "LORE_INDEX_CRASH_DIR";
const READY: &str = "LORE_CRASH_CHILD_READY";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config() -> IndexConfig {
    IndexConfig {
        dim: DIM,
        model_id: "crash-test".into(),
        ..IndexConfig::default()
    }
}

fn progress_of(index: &Index) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    Ok(match index.document("progress")? {
        Some(record) => Some(record.content_hash.parse()?),
        None => None,
    })
}

/// Runs only inside the child process started by `kill_minus_nine_at_random_moments`.
#[test]
#[ignore = "helper process for the crash test; it loops until killed"]
fn crash_child_loop() -> TestResult {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return Err("run by kill_minus_nine_at_random_moments only".into());
    };
    let vectors = clustered_vectors(512, DIM, 8, 0.4, 1);
    let mut index = Index::open(Path::new(&dir), config())?;
    let mut b = progress_of(&index)?.map_or(0, |p| p + 1);
    println!("{READY}");
    loop {
        index.commit(generation_batch(b, &vectors))?;
        b += 1;
    }
}

fn verify(dir: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let index = Index::open(dir, config())?;
    let Some(p) = progress_of(&index)? else {
        assert!(
            index.documents()?.is_empty(),
            "documents without any committed batch"
        );
        return Ok(0);
    };
    let documents: HashMap<String, DocumentRecord> = index
        .documents()?
        .into_iter()
        .map(|d| (d.doc_id.clone(), d))
        .collect();
    let mut expected: Vec<String> = vec!["progress".into(), "shared".into()];
    for b in p.saturating_sub(1)..=p {
        expected.extend((0..GENERATION_DOCS).map(|i| format!("b{b}-{i}")));
    }
    expected.sort();
    let mut present: Vec<String> = documents.keys().cloned().collect();
    present.sort();
    assert_eq!(present, expected, "documents at progress {p}");
    assert_eq!(documents["shared"].chunks, (p % 7) as u32 + 1);

    // Every chunk, found through the vector graph, grouped by document.
    let stats = index.stats()?;
    let all = index.search_vector(
        &clustered_vectors(1, DIM, 1, 0.0, 99)[0],
        100_000,
        &Filter::default(),
    )?;
    assert_eq!(
        all.len() as u64,
        stats.chunks,
        "graph and text index disagree"
    );
    let mut per_doc: HashMap<&str, Vec<u32>> = HashMap::new();
    for hit in &all {
        per_doc
            .entry(hit.chunk.doc_id.as_str())
            .or_default()
            .push(hit.chunk.ordinal);
        if hit.chunk.doc_id == "shared" {
            assert!(
                hit.chunk.text.starts_with(&format!("gen{p} ")),
                "stale shared chunk {:?}",
                hit.chunk.text
            );
        }
    }
    for (doc_id, record) in &documents {
        let mut ordinals = per_doc.remove(doc_id.as_str()).unwrap_or_default();
        ordinals.sort_unstable();
        assert_eq!(
            ordinals,
            (0..record.chunks).collect::<Vec<_>>(),
            "chunks of {doc_id}"
        );
    }
    assert!(
        per_doc.is_empty(),
        "chunks without a document: {:?}",
        per_doc.keys()
    );
    // BM25 sees the same state.
    let tagged = index.search_bm25(&format!("gen{p}"), 100, &Filter::default())?;
    assert_eq!(tagged.len() as u32, documents["shared"].chunks + 1);
    let older = index.search_bm25(&format!("batch{}", p + 1), 100, &Filter::default())?;
    assert!(
        older.is_empty(),
        "a batch after the progress marker is visible"
    );
    Ok(p)
}

#[test]
fn kill_minus_nine_at_random_moments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut rng = Rng::new(seed);
    let mut last_progress = 0;
    for round in 0..10 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_loop",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let started = Instant::now();
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            if line?.contains(READY) {
                ready = true;
                break;
            }
        }
        assert!(ready, "child never became ready (round {round})");
        // Somewhere between a few commits and a few hundred, including compactions/dumps.
        std::thread::sleep(Duration::from_millis(20 + rng.below(1500) as u64));
        child.kill()?; // SIGKILL on Unix
        child.wait()?;
        let progress = verify(dir.path())?;
        println!(
            "round {round}: killed after {:?}, progress {progress}",
            started.elapsed()
        );
        assert!(progress >= last_progress, "committed batches were lost");
        last_progress = progress;
    }
    assert!(
        last_progress > 10,
        "the child committed too little to test anything"
    );
    Ok(())
}
