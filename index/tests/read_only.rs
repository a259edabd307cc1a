//! Read-only opening beside a writer (issue 19): `Index::open_read_only` takes no lock, writes
//! nothing, follows the writer's commits with `refresh`, and survives a writer committing,
//! merging segments and replacing HNSW dumps underneath it, in this process or another.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{chunk, clustered_vectors, document, generation_batch, GENERATION_DOCS};
use lore_index::{Batch, Error, Filter, Hit, Index, IndexConfig, SearchMode};

const DIM: usize = 16;
const CHILD_ENV: &str = "LORE_INDEX_RO_WRITER_DIR";
const READY: &str = "LORE_RO_WRITER_READY";
/// Batches the writer commits in the concurrency tests.
const BATCHES: u64 = 20;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config() -> IndexConfig {
    IndexConfig {
        dim: DIM,
        model_id: "test-model".into(),
        ..IndexConfig::default()
    }
}

/// Vector pointing mostly along axis `axis`.
fn axis(axis: usize) -> Vec<f32> {
    let mut v = vec![0.01; DIM];
    v[axis % DIM] = 1.0;
    v
}

/// doc `name` with one chunk per text, chunk i pointing along `axis_base + i`.
fn upsert(name: &str, texts: &[&str], axis_base: usize) -> Batch {
    let doc = document(name, "notes", texts.len() as u32);
    let chunks = texts
        .iter()
        .enumerate()
        .map(|(i, text)| chunk(&doc, i as u32, text, axis(axis_base + i)))
        .collect();
    Batch {
        upserts: vec![(doc, chunks)],
        ..Batch::default()
    }
}

fn removal(doc_id: &str) -> Batch {
    Batch {
        removals: vec![doc_id.to_string()],
        ..Batch::default()
    }
}

fn seeded(dir: &Path) -> Result<Index, Error> {
    let mut index = Index::open(dir, config())?;
    index.commit(upsert(
        "whales",
        &[
            "Blue whales sing long songs across the ocean.",
            "Whale calves drink milk.",
        ],
        0,
    ))?;
    index.commit(upsert(
        "volcanoes",
        &[
            "Volcanoes erupt molten lava and ash.",
            "Basalt forms when lava cools.",
        ],
        4,
    ))?;
    Ok(index)
}

fn all_modes(index: &Index, query: &str, vector: &[f32]) -> Result<Vec<Vec<Hit>>, Error> {
    let filter = Filter::default();
    Ok(vec![
        index.search(SearchMode::Bm25, query, None, 10, &filter)?,
        index.search(SearchMode::Vector, query, Some(vector), 10, &filter)?,
        index.search(SearchMode::Hybrid, query, Some(vector), 10, &filter)?,
    ])
}

/// The doc id of the best hit of each mode.
fn best_docs(index: &Index, query: &str, vector: &[f32]) -> Result<Vec<String>, Error> {
    Ok(all_modes(index, query, vector)?
        .iter()
        .map(|hits| {
            hits.first()
                .map_or(String::new(), |h| h.chunk.doc_id.clone())
        })
        .collect())
}

/// Whether any mode returns a chunk of `doc_id`.
fn any_mode_finds(index: &Index, query: &str, vector: &[f32], doc_id: &str) -> Result<bool, Error> {
    Ok(all_modes(index, query, vector)?
        .iter()
        .flatten()
        .any(|h| h.chunk.doc_id == doc_id))
}

/// Every file below `dir` with its size and modification time.
fn listing(dir: &Path) -> Result<BTreeMap<PathBuf, (u64, SystemTime)>, std::io::Error> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            }
            files.insert(entry.path(), (meta.len(), meta.modified()?));
        }
    }
    Ok(files)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), std::io::Error> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.metadata()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[test]
fn reader_beside_writer_sees_commits_after_refresh() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut writer = seeded(dir.path())?;
    // The writer holds the lock; the reader needs none.
    let mut reader = Index::open_read_only(dir.path(), config())?;
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.stats()?.chunks, 4);
    assert_eq!(
        best_docs(&reader, "erupting volcano lava", &axis(4))?,
        vec!["volcanoes"; 3]
    );
    assert_eq!(reader.documents()?, writer.documents()?);
    assert!(!reader.refresh()?, "nothing was committed since the open");

    writer.commit(upsert(
        "tides",
        &[
            "The moon drives the ocean tides.",
            "Spring tides are the strongest.",
        ],
        8,
    ))?;
    writer.commit(removal("volcanoes"))?;
    writer.commit(upsert(
        "whales",
        &["Humpback whales breach near the shore."],
        12,
    ))?;

    // Until it refreshes, the reader keeps its snapshot.
    assert!(!any_mode_finds(&reader, "moon tides", &axis(8), "tides")?);
    assert!(any_mode_finds(&reader, "lava", &axis(4), "volcanoes")?);

    assert!(reader.refresh()?);
    assert!(!reader.refresh()?, "a second refresh finds nothing new");
    assert_eq!(
        best_docs(&reader, "moon tides", &axis(8))?,
        vec!["tides"; 3]
    );
    assert_eq!(
        best_docs(&reader, "strongest spring", &axis(9))?,
        vec!["tides"; 3]
    );
    assert!(!any_mode_finds(
        &reader,
        "erupting volcano lava basalt",
        &axis(4),
        "volcanoes"
    )?);
    assert!(!any_mode_finds(&reader, "basalt", &axis(5), "volcanoes")?);
    assert!(reader.document("volcanoes")?.is_none());
    // The replaced document: only its new chunk is found, in every mode.
    for hits in all_modes(&reader, "humpback whales song", &axis(12))? {
        let whales: Vec<&str> = hits
            .iter()
            .filter(|h| h.chunk.doc_id == "whales")
            .map(|h| h.chunk.text.as_str())
            .collect();
        assert_eq!(whales, vec!["Humpback whales breach near the shore."]);
    }
    let (read, written) = (reader.stats()?, writer.stats()?);
    assert_eq!(
        (read.documents, read.chunks),
        (written.documents, written.chunks)
    );
    // Every live chunk is in the reader's graph (vector search over everything).
    let all = reader.search_vector(&axis(0), 100, &Filter::default())?;
    assert_eq!(all.len() as u64, read.chunks);
    assert_eq!(reader.documents()?, writer.documents()?);

    // The writer's own refresh has nothing to do.
    assert!(!writer.refresh()?);
    Ok(())
}

#[test]
fn read_only_index_refuses_changes_and_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    drop(seeded(dir.path())?); // dumps the graph on drop
    let vectors = dir.path().join("vectors");
    let old_dump = tempfile::tempdir()?;
    copy_dir(&vectors, old_dump.path())?;
    {
        let mut writer = Index::open(dir.path(), config())?;
        writer.commit(upsert("tides", &["The moon drives the ocean tides."], 8))?;
        writer.commit(removal("whales"))?;
    }
    // A dump from before the last commits: the reader must catch up in memory only.
    std::fs::remove_dir_all(&vectors)?;
    copy_dir(old_dump.path(), &vectors)?;
    let before = listing(dir.path())?;
    {
        let mut reader = Index::open_read_only(dir.path(), config())?;
        assert_eq!(
            best_docs(&reader, "moon tides", &axis(8))?,
            vec!["tides"; 3]
        );
        assert!(!any_mode_finds(
            &reader,
            "whales songs",
            &axis(0),
            "whales"
        )?);
        assert_eq!(
            reader
                .search_vector(&axis(0), 10, &Filter::default())?
                .len(),
            3
        );

        let err = reader.commit(upsert("new", &["never stored"], 1)).err();
        assert!(
            matches!(&err, Some(Error::ReadOnly(p)) if p == dir.path()),
            "{err:?}"
        );
        assert!(err.is_some_and(|e| e.to_string().contains("read-only")));
        assert!(matches!(
            reader.commit(Batch::default()),
            Err(Error::ReadOnly(_))
        ));
        assert!(matches!(reader.compact(), Err(Error::ReadOnly(_))));
        assert!(!reader.refresh()?);
        assert!(reader.document("new")?.is_none());
    }
    assert_eq!(
        listing(dir.path())?,
        before,
        "a read-only open changed files"
    );

    // Without any dump the reader rebuilds the graph, and still writes nothing.
    std::fs::remove_dir_all(&vectors)?;
    let before = listing(dir.path())?;
    {
        let reader = Index::open_read_only(dir.path(), config())?;
        assert_eq!(best_docs(&reader, "lava", &axis(5))?, vec!["volcanoes"; 3]);
    }
    assert_eq!(listing(dir.path())?, before);
    assert!(!vectors.exists());
    // The writer still finds everything.
    let writer = Index::open(dir.path(), config())?;
    assert_eq!(writer.stats()?.chunks, 3);
    Ok(())
}

#[test]
fn no_index_is_a_clear_error_and_creates_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("data").join("index");
    let err = Index::open_read_only(&missing, config())
        .err()
        .ok_or("expected an error")?;
    assert!(
        matches!(&err, Error::NoIndex(p) if *p == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("ingest"), "{err}");
    assert!(!dir.path().join("data").exists());

    let err = Index::open_read_only(dir.path(), config()).err();
    assert!(matches!(err, Some(Error::NoIndex(_))), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);

    std::fs::write(dir.path().join("notes.txt"), b"mine")?;
    let err = Index::open_read_only(dir.path(), config()).err();
    assert!(matches!(err, Some(Error::NotAnIndex { .. })), "{err:?}");
    std::fs::remove_file(dir.path().join("notes.txt"))?;

    // A creation interrupted before tantivy's first commit point: still no index.
    drop(Index::open(dir.path(), config())?);
    std::fs::remove_dir_all(dir.path().join("text"))?;
    let err = Index::open_read_only(dir.path(), config()).err();
    assert!(matches!(err, Some(Error::NoIndex(_))), "{err:?}");
    assert!(!dir.path().join("text").exists());

    // Model identity is checked as for the writer.
    let dir = tempfile::tempdir()?;
    drop(seeded(dir.path())?);
    let other = IndexConfig {
        dim: DIM * 2,
        ..config()
    };
    let err = Index::open_read_only(dir.path(), other).err();
    assert!(matches!(err, Some(Error::ModelMismatch { .. })), "{err:?}");
    Ok(())
}

#[test]
fn readers_never_block_writers_whatever_the_drop_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    drop(seeded(dir.path())?);
    let mut reader = Index::open_read_only(dir.path(), config())?;
    let second_reader = Index::open_read_only(dir.path(), config())?;

    // A writer opens beside two readers; a second writer is still locked out.
    let mut writer = Index::open(dir.path(), config())?;
    assert!(matches!(
        Index::open(dir.path(), config()),
        Err(Error::Locked(_))
    ));
    writer.commit(upsert("tides", &["The moon drives the ocean tides."], 8))?;
    assert!(reader.refresh()?);
    assert_eq!(reader.stats()?.chunks, 5);
    assert_eq!(second_reader.stats()?.chunks, 4);

    // Writer dropped before the readers: they keep working, and a new writer opens.
    drop(writer);
    assert_eq!(
        best_docs(&reader, "moon tides", &axis(8))?,
        vec!["tides"; 3]
    );
    let mut writer = Index::open(dir.path(), config())?;
    writer.commit(removal("tides"))?;
    // Readers dropped before the writer: it goes on committing.
    drop(second_reader);
    assert!(reader.refresh()?);
    assert!(!any_mode_finds(&reader, "moon tides", &axis(8), "tides")?);
    drop(reader);
    writer.commit(removal("whales"))?;
    drop(writer);
    let reader = Index::open_read_only(dir.path(), config())?;
    assert_eq!(reader.stats()?.chunks, 2);
    Ok(())
}

fn batch_vectors() -> Vec<Vec<f32>> {
    clustered_vectors(256, DIM, 6, 0.4, 11)
}

/// Checks that `index` shows one committed state completely, in the text index and the
/// graph, and returns its progress marker.
fn verify(index: &Index) -> Result<u64, Box<dyn std::error::Error>> {
    let p: u64 = index
        .document("progress")?
        .ok_or("no progress marker")?
        .content_hash
        .parse()?;
    let documents: HashMap<String, u32> = index
        .documents()?
        .into_iter()
        .map(|d| (d.doc_id, d.chunks))
        .collect();
    let mut expected: Vec<String> = vec!["progress".into(), "shared".into()];
    for b in p.saturating_sub(1)..=p {
        expected.extend((0..GENERATION_DOCS).map(|i| format!("b{b}-{i}")));
    }
    expected.sort();
    let mut present: Vec<String> = documents.keys().cloned().collect();
    present.sort();
    assert_eq!(present, expected, "documents at progress {p}");

    // Every live chunk, found through the vector graph, complete per document.
    let stats = index.stats()?;
    let query = clustered_vectors(1, DIM, 1, 0.0, 99).remove(0);
    let all = index.search_vector(&query, 100_000, &Filter::default())?;
    assert_eq!(
        all.len() as u64,
        stats.chunks,
        "graph and text index disagree at {p}"
    );
    let mut per_doc: HashMap<&str, Vec<u32>> = HashMap::new();
    for hit in &all {
        per_doc
            .entry(hit.chunk.doc_id.as_str())
            .or_default()
            .push(hit.chunk.ordinal);
    }
    for (doc_id, chunks) in &documents {
        let mut ordinals = per_doc.remove(doc_id.as_str()).unwrap_or_default();
        ordinals.sort_unstable();
        assert_eq!(
            ordinals,
            (0..*chunks).collect::<Vec<_>>(),
            "chunks of {doc_id} at {p}"
        );
    }
    assert!(per_doc.is_empty(), "chunks without a document at {p}");
    // BM25 and hybrid see the same state.
    let tagged = index.search_bm25(&format!("gen{p}"), 100, &Filter::default())?;
    assert_eq!(
        tagged.len() as u32,
        documents["shared"] + 1,
        "gen{p} chunks"
    );
    let hybrid = index.search_hybrid(&format!("batch{p} words"), &query, 20, &Filter::default())?;
    assert!(!hybrid.is_empty());
    assert!(hybrid
        .iter()
        .all(|h| documents.contains_key(&h.chunk.doc_id)));
    Ok(p)
}

/// Opens read-only (every fourth round afresh) or refreshes, and verifies, until `done` and
/// at least `min_rounds` rounds; returns the rounds run. Progress must never go backwards.
fn follow(dir: &Path, done: &dyn Fn() -> bool, min_rounds: usize) -> Result<usize, String> {
    let mut reader: Option<Index> = None;
    let mut last = 0;
    let mut rounds = 0;
    while rounds < min_rounds || !done() {
        let index = match reader.take() {
            Some(mut index) if rounds % 4 != 0 => {
                index
                    .refresh()
                    .map_err(|e| format!("refresh, round {rounds}: {e}"))?;
                index
            }
            _ => Index::open_read_only(dir, config())
                .map_err(|e| format!("read-only open, round {rounds}: {e}"))?,
        };
        let p = verify(&index).map_err(|e| format!("round {rounds}: {e}"))?;
        if p < last {
            return Err(format!("progress went back from {last} to {p}"));
        }
        last = p;
        reader = Some(index);
        rounds += 1;
        // Leave the writer some of the machine's cores.
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(rounds)
}

#[test]
fn reader_thread_follows_a_committing_writer_thread() -> TestResult {
    let dir = tempfile::tempdir()?;
    let vectors = batch_vectors();
    let mut writer = Index::open(dir.path(), config())?;
    writer.commit(generation_batch(0, &vectors))?;
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writing = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || -> Result<(), String> {
            let result = (1..=BATCHES).try_for_each(|b| {
                writer
                    .commit(generation_batch(b, &vectors))
                    .map_err(|e| format!("commit {b}: {e}"))
            });
            drop(writer);
            done.store(true, Ordering::SeqCst);
            result
        })
    };
    let followed = follow(dir.path(), &|| done.load(Ordering::SeqCst), 50);
    let written = writing.join().map_err(|_| "writer thread panicked")?;
    let rounds = followed?;
    written?;
    println!("{rounds} reader rounds in {:?}", started.elapsed());
    let reader = Index::open_read_only(dir.path(), config())?;
    assert_eq!(verify(&reader)?, BATCHES);
    Ok(())
}

/// Runs only inside the child process started by `reader_follows_a_writer_process`.
#[test]
#[ignore = "helper process for reader_follows_a_writer_process"]
fn writer_process() -> TestResult {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return Err("run by reader_follows_a_writer_process only".into());
    };
    let vectors = batch_vectors();
    let mut index = Index::open(Path::new(&dir), config())?;
    println!("{READY}");
    for b in 1..=BATCHES {
        index.commit(generation_batch(b, &vectors))?;
    }
    Ok(())
}

#[test]
fn reader_follows_a_writer_process() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let mut writer = Index::open(dir.path(), config())?;
        writer.commit(generation_batch(0, &batch_vectors()))?;
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            "writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.any(|line| line.is_ok_and(|l| l.contains(READY)));
    assert!(ready, "writer process never became ready");
    // Drain the rest of its output so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.for_each(drop));

    let deadline = Instant::now() + Duration::from_secs(60);
    let child = std::cell::RefCell::new(child);
    let exited = std::cell::Cell::new(None);
    let done = || {
        if exited.get().is_none() {
            exited.set(child.borrow_mut().try_wait().ok().flatten());
        }
        exited.get().is_some() || Instant::now() > deadline
    };
    let followed = follow(dir.path(), &done, 20);
    let mut child = child.into_inner();
    let status = match exited.get() {
        Some(status) => status,
        None => {
            let _ = child.kill();
            child.wait()?
        }
    };
    let _ = drain.join();
    let rounds = followed?;
    assert!(status.success(), "writer process failed: {status}");
    println!("{rounds} reader rounds beside the writer process");
    let reader = Index::open_read_only(dir.path(), config())?;
    assert_eq!(verify(&reader)?, BATCHES);
    Ok(())
}
