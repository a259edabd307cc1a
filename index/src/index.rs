//! Owns [`Index`]: opening as the writer (lock, format and model checks, HNSW load or
//! rebuild) or read-only (no lock, nothing written, [`Index::refresh`] to follow the writer),
//! the atomic commit protocol, the three search modes, statistics and compaction. tantivy is
//! the source of truth; the HNSW graph is a cache that is repaired from it on open.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::error::OpenReadError;
use tantivy::directory::MmapDirectory;
use tantivy::schema::TantivyDocument;
use tantivy::{DocAddress, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyError, Term};

use crate::fusion::{Candidate, Fusion};
use crate::layout::{self, DirLock};
use crate::text::{self, Fields};
use crate::vectors::{self, VectorGraph};
use crate::{
    Batch, ChunkRecord, DocumentRecord, Error, FailureRecord, Filter, Hit, IndexConfig, NewChunk,
    Result, SearchMode, Stats, TermFrequencies,
};

/// tantivy indexing threads; the machine class Lore targets has two cores, and queries
/// must stay responsive while ingesting.
const WRITER_THREADS: usize = 1;
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Compact the graph when more than this fraction of its points are deleted.
const TOMBSTONE_RATIO_LIMIT: f64 = 0.20;
/// Dump the graph once this many vector changes are not yet in the dump (or 10% of the
/// graph, whichever is larger). Changes not dumped are replayed from tantivy on open.
const PERSIST_MIN_CHANGES: usize = 1024;
/// At or below this many candidate chunks a filtered vector search scans exactly.
const EXACT_SCAN_MAX: usize = 4096;
/// Filters keeping less than 1/this of the graph scan exactly (graph search degrades there).
const EXACT_SCAN_SELECTIVITY: usize = 10;
/// Stored-document blocks kept decompressed while reading vectors for a rebuild.
const STORE_CACHE_BLOCKS: usize = 64;
/// Attempts of a read-only open or refresh when files vanish under a concurrent writer.
const READ_ATTEMPTS: u32 = 5;
/// tantivy's commit point inside the text directory.
const TANTIVY_META_FILE: &str = "meta.json";

/// What tantivy's commit payload records: makes generation and id allocation as durable
/// and atomic as the data itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CommitPayload {
    generation: u64,
    next_chunk_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct ChunkEntry {
    address: DocAddress,
    collection: u32,
}

/// A consistent read view: a pinned tantivy searcher plus the chunk directory derived from it.
struct Snapshot {
    searcher: Searcher,
    chunks: HashMap<u64, ChunkEntry>,
    collections: Vec<String>,
    collection_counts: Vec<usize>,
    documents: u64,
}

impl Snapshot {
    fn build(searcher: Searcher, fields: &Fields) -> Result<Snapshot> {
        let mut chunks = HashMap::new();
        let mut collections: Vec<String> = Vec::new();
        let mut interned: HashMap<String, u32> = HashMap::new();
        let mut collection_counts: Vec<usize> = Vec::new();
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            let fast = segment.fast_fields();
            let ids = fast.u64("chunk_id")?;
            let Some(names) = fast.str("collection")? else {
                continue;
            };
            // Segment-local term ordinals map to interned collection numbers.
            let mut by_ord: HashMap<u64, u32> = HashMap::new();
            let mut name = String::new();
            for doc in segment.doc_ids_alive() {
                let Some(chunk_id) = ids.first(doc) else {
                    continue;
                };
                let Some(ord) = names.ords().first(doc) else {
                    continue;
                };
                let collection = match by_ord.get(&ord) {
                    Some(&c) => c,
                    None => {
                        name.clear();
                        names
                            .ord_to_str(ord, &mut name)
                            .map_err(|e| Error::io(Path::new("tantivy fast field"), e))?;
                        let next = collections.len() as u32;
                        let c = *interned.entry(name.clone()).or_insert(next);
                        if c == next {
                            collections.push(name.clone());
                            collection_counts.push(0);
                        }
                        by_ord.insert(ord, c);
                        c
                    }
                };
                collection_counts[collection as usize] += 1;
                chunks.insert(
                    chunk_id,
                    ChunkEntry {
                        address: DocAddress::new(segment_ord as u32, doc),
                        collection,
                    },
                );
            }
        }
        let documents = searcher.search(&text::kind_document_query(fields), &Count)? as u64;
        Ok(Snapshot {
            searcher,
            chunks,
            collections,
            collection_counts,
            documents,
        })
    }

    /// Interned numbers of the filter's collections; `None` = no restriction.
    fn allowed_collections(&self, filter: &Filter) -> Option<HashSet<u32>> {
        filter.collections.as_ref().map(|_| {
            self.collections
                .iter()
                .enumerate()
                .filter(|(_, name)| filter.allows(name))
                .map(|(i, _)| i as u32)
                .collect()
        })
    }
}

/// The write side of an [`Index`], absent when it was opened read-only.
struct Writer {
    tantivy: IndexWriter,
    /// Released after the tantivy writer (fields drop in order): no other writer may open
    /// the directory meanwhile.
    _lock: DirLock,
}

/// Lore's hybrid index over one directory. See the crate documentation for an example and
/// ARCHITECTURE.md for the on-disk layout and commit protocol.
///
/// Searches take `&self` and may run concurrently; `commit` and `compact` take `&mut self`.
/// One writer ([`Index::open`]) at a time may open a directory (an advisory lock enforces
/// it); any number of readers ([`Index::open_read_only`]) may open it beside the writer,
/// in this process or others, and follow its commits with [`Index::refresh`].
pub struct Index {
    root: PathBuf,
    config: IndexConfig,
    fields: Fields,
    text: tantivy::Index,
    reader: IndexReader,
    snapshot: Snapshot,
    graph: VectorGraph,
    payload: CommitPayload,
    /// Vector inserts and deletions not yet captured by the on-disk dump.
    unpersisted_changes: usize,
    /// How hybrid search fuses its lists (a query-time choice, not persisted).
    fusion: Fusion,
    /// `None` when opened read-only. Declared last, so the lock is released last.
    writer: Option<Writer>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("root", &self.root)
            .field("generation", &self.payload.generation)
            .field("chunks", &self.snapshot.chunks.len())
            .field("graph_points", &self.graph.len())
            .field("read_only", &self.writer.is_none())
            .finish()
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn map_writer_error(root: &Path, e: TantivyError) -> Error {
    match e {
        TantivyError::LockFailure(..) => Error::Locked(root.to_path_buf()),
        other => Error::Tantivy(other),
    }
}

/// Whether `e` is a file that vanished: a concurrent writer in another process replaced or
/// garbage-collected it between our reading the file that names it and opening it. Trying
/// again reads the newer state.
fn is_vanished_file(e: &Error) -> bool {
    let not_found = |io: &std::io::Error| io.kind() == std::io::ErrorKind::NotFound;
    match e {
        Error::Io { source, .. } => not_found(source),
        Error::Tantivy(TantivyError::OpenReadError(OpenReadError::FileDoesNotExist(_))) => true,
        Error::Tantivy(TantivyError::OpenReadError(OpenReadError::IoError {
            io_error, ..
        })) => not_found(io_error),
        Error::Tantivy(TantivyError::IoError(io)) => not_found(io),
        _ => false,
    }
}

/// Runs `attempt` up to [`READ_ATTEMPTS`] times while it fails on a vanished file.
fn retry_vanished<T>(what: &str, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(e) if tries < READ_ATTEMPTS && is_vanished_file(&e) => {
                tracing::debug!(error = %e, tries, "{what}: a file vanished under a concurrent writer; retrying");
                std::thread::sleep(Duration::from_millis(5 * u64::from(tries)));
                tries += 1;
            }
            result => return result,
        }
    }
}

/// The payload of the commit `meta.json` names now.
fn read_payload(text: &tantivy::Index, root: &Path) -> Result<CommitPayload> {
    match text.load_metas()?.payload {
        Some(json) => serde_json::from_str(&json).map_err(|e| Error::Corrupt {
            path: layout::text_dir(root),
            reason: format!("commit payload unreadable: {e}"),
        }),
        None => Ok(CommitPayload::default()),
    }
}

/// A manual-reload reader over `text`, the payload and the snapshot it sees. The payload is
/// read first: a writer may commit meanwhile, so the payload is never newer than the reader
/// (a later [`Index::refresh`] then sees a newer generation and catches up).
fn open_reader(
    text: &tantivy::Index,
    fields: &Fields,
    root: &Path,
) -> Result<(IndexReader, CommitPayload, Snapshot)> {
    let payload = read_payload(text, root)?;
    let reader: IndexReader = text
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    let snapshot = Snapshot::build(reader.searcher(), fields)?;
    Ok((reader, payload, snapshot))
}

/// The graph as dumped or, without a usable dump, rebuilt from the vectors tantivy stores.
/// Returns the graph, the name of the dump it came from, and whether it was rebuilt.
fn load_graph(
    root: &Path,
    config: &IndexConfig,
    snapshot: &Snapshot,
    fields: &Fields,
) -> Result<(VectorGraph, Option<String>, bool)> {
    let started = Instant::now();
    match VectorGraph::load(&layout::vector_dir(root), config)? {
        Some((graph, manifest)) => Ok((graph, Some(manifest.dump_dir), false)),
        None => {
            let items = read_vectors(snapshot, fields, |_| true, config.dim)?;
            let graph = VectorGraph::build(config, &items);
            if !items.is_empty() {
                tracing::info!(
                    vectors = items.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "rebuilt HNSW graph from the text index"
                );
            }
            Ok((graph, None, true))
        }
    }
}

impl Index {
    /// Opens the index in `dir` as its writer, creating it (and the directory) if absent.
    ///
    /// Fails with [`Error::Locked`] if another writer has the directory open (readers from
    /// [`Index::open_read_only`] do not count), [`Error::ModelMismatch`] if it was built with
    /// another `model_id` or `dim`, [`Error::UnsupportedFormat`] if a newer Lore wrote it.
    /// A missing, stale or corrupt HNSW dump is not an error: the graph is rebuilt from the
    /// vectors tantivy stores.
    pub fn open(dir: &Path, config: IndexConfig) -> Result<Index> {
        vectors::validate_config(&config)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = DirLock::acquire(dir)?;
        layout::check_or_create_meta(dir, &config, now_unix())?;

        let text_dir = layout::text_dir(dir);
        std::fs::create_dir_all(&text_dir).map_err(|e| Error::io(&text_dir, e))?;
        let (schema, fields) = text::schema();
        let directory = MmapDirectory::open(&text_dir).map_err(|e| Error::Corrupt {
            path: text_dir.clone(),
            reason: e.to_string(),
        })?;
        let tantivy_index = tantivy::Index::open_or_create(directory, schema)?;
        tantivy_index
            .tokenizers()
            .register(text::ANALYZER, text::analyzer());
        let writer = tantivy_index
            .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES)
            .map_err(|e| map_writer_error(dir, e))?;
        let (reader, payload, snapshot) = open_reader(&tantivy_index, &fields, dir)?;

        let (graph, dump_name, rebuilt) = load_graph(dir, &config, &snapshot, &fields)?;
        vectors::remove_stale_dumps(&layout::vector_dir(dir), dump_name.as_deref());

        let mut index = Index {
            root: dir.to_path_buf(),
            config,
            fields,
            text: tantivy_index,
            reader,
            snapshot,
            graph,
            payload,
            unpersisted_changes: 0,
            fusion: Fusion::default(),
            writer: Some(Writer {
                tantivy: writer,
                _lock: lock,
            }),
        };
        index.reconcile_graph(rebuilt)?;
        Ok(index)
    }

    /// Opens the existing index in `dir` for searching only, beside a writer that may have it
    /// open in this or another process (`lore serve`, `lore watch`). Takes no lock and
    /// creates, changes or removes nothing on disk: the HNSW dump is loaded if usable and
    /// brought up to date in memory only. [`Index::refresh`] picks up the writer's later
    /// commits; [`Index::commit`] and [`Index::compact`] fail with [`Error::ReadOnly`].
    ///
    /// Fails with [`Error::NoIndex`] if nothing was ever ingested into `dir` (missing or
    /// empty directory), [`Error::NotAnIndex`] if it holds unrelated files, and like
    /// [`Index::open`] with [`Error::ModelMismatch`] or [`Error::UnsupportedFormat`].
    pub fn open_read_only(dir: &Path, config: IndexConfig) -> Result<Index> {
        vectors::validate_config(&config)?;
        layout::require_meta(dir, &config)?;
        let text_dir = layout::text_dir(dir);
        if !text_dir.join(TANTIVY_META_FILE).is_file() {
            // A writer was interrupted (or is busy) creating the index: nothing is committed.
            return Err(Error::NoIndex(dir.to_path_buf()));
        }
        let (schema, fields) = text::schema();
        let (tantivy_index, (reader, payload, snapshot)) =
            retry_vanished("read-only open", || {
                let directory = MmapDirectory::open(&text_dir).map_err(|e| Error::Corrupt {
                    path: text_dir.clone(),
                    reason: e.to_string(),
                })?;
                let tantivy_index = tantivy::Index::open(directory)?;
                if tantivy_index.schema() != schema {
                    return Err(Error::Corrupt {
                        path: text_dir.clone(),
                        reason: "the text index schema is not the one this build writes".into(),
                    });
                }
                tantivy_index
                    .tokenizers()
                    .register(text::ANALYZER, text::analyzer());
                let opened = open_reader(&tantivy_index, &fields, dir)?;
                Ok((tantivy_index, opened))
            })?;

        let (graph, _, rebuilt) = load_graph(dir, &config, &snapshot, &fields)?;
        let mut index = Index {
            root: dir.to_path_buf(),
            config,
            fields,
            text: tantivy_index,
            reader,
            snapshot,
            graph,
            payload,
            unpersisted_changes: 0,
            fusion: Fusion::default(),
            writer: None,
        };
        index.reconcile_graph(rebuilt)?;
        Ok(index)
    }

    /// Whether this index was opened with [`Index::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    /// Brings a read-only index up to the writer's latest commit: reloads the text index and
    /// inserts the new vectors into the graph (removed chunks become tombstones, hidden from
    /// every search). Returns whether a new commit was found; `Ok(false)` costs one small
    /// file read. Searches in between keep seeing the state of the last open or refresh.
    ///
    /// The writer sees its own commits at once, so on an index opened with [`Index::open`]
    /// this does nothing and returns `Ok(false)`.
    pub fn refresh(&mut self) -> Result<bool> {
        if self.writer.is_some() {
            return Ok(false);
        }
        retry_vanished("refresh", || self.refresh_once())
    }

    fn refresh_once(&mut self) -> Result<bool> {
        let payload = read_payload(&self.text, &self.root)?;
        if payload.generation == self.payload.generation {
            return Ok(false);
        }
        self.reader.reload()?;
        let started = Instant::now();
        self.sync_with_reader(None)?;
        tracing::debug!(
            from = self.payload.generation,
            to = payload.generation,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read-only index refreshed"
        );
        // Never newer than what the reader loaded (read before the reload).
        self.payload.generation = payload.generation;
        Ok(true)
    }

    /// Brings a loaded (possibly stale) graph up to the committed text index: inserts live
    /// chunks the dump lacks, counts deleted ones as tombstones, and never lets a chunk id
    /// seen in the graph be allocated again. Only a writer persists the result.
    fn reconcile_graph(&mut self, rebuilt: bool) -> Result<()> {
        let graph_max = self.graph.ids().max().map_or(0, |id| id + 1);
        let live_max = self.snapshot.chunks.keys().max().map_or(0, |id| id + 1);
        self.payload.next_chunk_id = self.payload.next_chunk_id.max(graph_max).max(live_max);

        let missing = self.insert_missing_vectors()?;
        if missing > 0 {
            tracing::info!(
                vectors = missing,
                "HNSW dump is behind the text index; inserted the missing vectors"
            );
        }
        let tombstones = self.tombstones();
        self.unpersisted_changes = missing + usize::from(rebuilt && self.graph.len() > 0);
        if self.tombstone_ratio() > TOMBSTONE_RATIO_LIMIT {
            self.compact_graph();
        } else if self.unpersisted_changes > 0 || (tombstones > 0 && rebuilt) {
            self.persist_graph_best_effort();
        }
        Ok(())
    }

    /// Inserts the live chunks the graph lacks, reading their vectors from tantivy; returns
    /// how many.
    fn insert_missing_vectors(&mut self) -> Result<usize> {
        let graph = &self.graph;
        let missing = read_vectors(
            &self.snapshot,
            &self.fields,
            |id| !graph.contains(id),
            self.config.dim,
        )?;
        self.graph.insert(&missing);
        Ok(missing.len())
    }

    /// After `self.reader` was reloaded: rebuilds the snapshot from it and brings the graph
    /// up to it. `new_vectors` are the writer's own just-committed vectors; `None` (a reader
    /// following another process's commits) reads whatever live chunks the graph lacks from
    /// tantivy. Chunks no longer live become tombstones. Then compacts (over 20% tombstones)
    /// or, for a writer, dumps the graph when enough changes piled up.
    fn sync_with_reader(&mut self, new_vectors: Option<Vec<(u64, Vec<f32>)>>) -> Result<()> {
        let previous_live = self.snapshot.chunks.len();
        self.snapshot = Snapshot::build(self.reader.searcher(), &self.fields)?;
        let added = match new_vectors {
            Some(items) => {
                self.graph.insert(&items);
                items.len()
            }
            None => self.insert_missing_vectors()?,
        };
        // Chunks deleted or replaced since the previous snapshot: they become graph tombstones.
        let removed_chunks = (previous_live + added).saturating_sub(self.snapshot.chunks.len());
        self.unpersisted_changes += added + removed_chunks;
        tracing::debug!(
            generation = self.payload.generation,
            added,
            chunks_before = previous_live,
            chunks_after = self.snapshot.chunks.len(),
            "text index reloaded"
        );
        if self.tombstone_ratio() > TOMBSTONE_RATIO_LIMIT {
            self.compact_graph();
        } else if self.unpersisted_changes >= PERSIST_MIN_CHANGES.max(self.graph.len() / 10) {
            self.persist_graph_best_effort();
        }
        Ok(())
    }

    /// The document record stored under `doc_id`.
    pub fn document(&self, doc_id: &str) -> Result<Option<DocumentRecord>> {
        let query = text::document_by_id_query(&self.fields, doc_id);
        let found = self.snapshot.searcher.search(&query, &DocSetCollector)?;
        match found.into_iter().next() {
            Some(address) => self.load_document(address).map(Some),
            None => Ok(None),
        }
    }

    /// Every document record, ordered by collection, path, doc id.
    pub fn documents(&self) -> Result<Vec<DocumentRecord>> {
        let found = self
            .snapshot
            .searcher
            .search(&text::kind_document_query(&self.fields), &DocSetCollector)?;
        self.load_documents(found)
    }

    /// Files whose last ingestion failed, ordered by collection and path.
    pub fn failures(&self) -> Result<Vec<FailureRecord>> {
        let found = self
            .snapshot
            .searcher
            .search(&text::kind_failure_query(&self.fields), &DocSetCollector)?;
        let mut records = found
            .into_iter()
            .map(|address| {
                let doc: TantivyDocument = self.snapshot.searcher.doc(address)?;
                text::failure_from_tantivy(&self.fields, &doc)
            })
            .collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| (&a.collection, &a.path).cmp(&(&b.collection, &b.path)));
        Ok(records)
    }

    /// The failure record of `doc_id`, if its last ingestion failed.
    pub fn failure(&self, doc_id: &str) -> Result<Option<FailureRecord>> {
        let query = text::failure_by_id_query(&self.fields, doc_id);
        let found = self.snapshot.searcher.search(&query, &DocSetCollector)?;
        match found.into_iter().next() {
            Some(address) => {
                let doc: TantivyDocument = self.snapshot.searcher.doc(address)?;
                text::failure_from_tantivy(&self.fields, &doc).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Document records whose `path` is exactly `path`, in any collection.
    pub fn find_by_path(&self, path: &str) -> Result<Vec<DocumentRecord>> {
        let query = text::document_by_path_query(&self.fields, path);
        let found = self.snapshot.searcher.search(&query, &DocSetCollector)?;
        self.load_documents(found)
    }

    /// The stored chunks of `doc_id` with their embeddings, in document order: what an
    /// upsert of the same content under another id needs, so a renamed or copied file is
    /// re-indexed without parsing or embedding it again.
    pub fn chunks_of(&self, doc_id: &str) -> Result<Vec<NewChunk>> {
        let query = text::chunks_of_document_query(&self.fields, doc_id);
        let found = self.snapshot.searcher.search(&query, &DocSetCollector)?;
        let mut chunks = found
            .into_iter()
            .map(|address| {
                let doc: TantivyDocument = self.snapshot.searcher.doc(address)?;
                Ok(NewChunk {
                    record: text::chunk_from_tantivy(&self.fields, &doc)?,
                    vector: text::vector_from_tantivy(&self.fields, &doc)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        chunks.sort_by_key(|c| c.record.ordinal);
        Ok(chunks)
    }

    fn load_document(&self, address: DocAddress) -> Result<DocumentRecord> {
        let doc: TantivyDocument = self.snapshot.searcher.doc(address)?;
        text::document_from_tantivy(&self.fields, &doc)
    }

    fn load_documents(&self, found: HashSet<DocAddress>) -> Result<Vec<DocumentRecord>> {
        let mut records = found
            .into_iter()
            .map(|address| self.load_document(address))
            .collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| {
            (&a.collection, &a.path, &a.doc_id).cmp(&(&b.collection, &b.path, &b.doc_id))
        });
        Ok(records)
    }

    /// Applies a batch atomically: after a crash at any moment the index reopens either
    /// without or with the whole batch. An upsert replaces the document record and all
    /// chunks previously stored under its `doc_id`.
    ///
    /// Invalid input (wrong vector dimension, non-finite or zero vectors, chunks whose
    /// `doc_id` differs from their document's, a doc id upserted twice) is rejected before
    /// anything is written. An index opened read-only refuses with [`Error::ReadOnly`].
    pub fn commit(&mut self, batch: Batch) -> Result<()> {
        self.check_writable()?;
        let prepared = self.prepare_batch(&batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        let previous_payload = self.payload;
        let mut new_vectors: Vec<(u64, Vec<f32>)> = Vec::new();
        let written = self.write_batch(&batch, prepared, &mut new_vectors);
        if let Err(e) = written {
            // Discards every operation since the last commit; the on-disk state is untouched.
            if let Some(writer) = self.writer.as_mut() {
                if let Err(rollback) = writer.tantivy.rollback() {
                    tracing::error!(error = %rollback, "tantivy rollback failed after a failed commit");
                }
            }
            self.payload = previous_payload;
            return Err(e);
        }

        self.reader.reload()?;
        self.sync_with_reader(Some(new_vectors))
    }

    /// Brings the in-memory state back to the last commit after a thread panicked while
    /// changing it (a commit cut short): discards the writer's uncommitted operations, takes
    /// the generation from the committed payload, reloads the reader and repairs the graph
    /// from the committed text index. The disk never needs repair: a commit is atomic, so
    /// it holds the previous commit or the whole batch. Chunk ids already handed out are
    /// never handed out again. On an index opened read-only this reloads the last commit.
    pub fn recover(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            writer.tantivy.rollback()?;
        }
        let committed = read_payload(&self.text, &self.root)?;
        self.payload.generation = committed.generation;
        self.payload.next_chunk_id = self.payload.next_chunk_id.max(committed.next_chunk_id);
        self.reader.reload()?;
        self.snapshot = Snapshot::build(self.reader.searcher(), &self.fields)?;
        self.reconcile_graph(false)?;
        tracing::warn!(
            generation = self.payload.generation,
            "index state recovered from the last commit after a panic"
        );
        Ok(())
    }

    /// [`Error::ReadOnly`] unless this index was opened as the writer.
    fn check_writable(&self) -> Result<()> {
        match self.writer {
            Some(_) => Ok(()),
            None => Err(Error::ReadOnly(self.root.clone())),
        }
    }

    /// Validates the whole batch and normalises its vectors before anything is written.
    fn prepare_batch(&self, batch: &Batch) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut upserted = HashSet::new();
        let mut prepared = Vec::with_capacity(batch.upserts.len());
        for (document, chunks) in &batch.upserts {
            if document.doc_id.is_empty() {
                return Err(Error::InvalidInput("document with an empty doc_id".into()));
            }
            if !upserted.insert(document.doc_id.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "doc_id {:?} is upserted twice in one batch",
                    document.doc_id
                )));
            }
            let mut unit_vectors = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                if chunk.record.doc_id != document.doc_id {
                    return Err(Error::InvalidInput(format!(
                        "chunk {} belongs to {:?} but is upserted with document {:?}",
                        chunk.record.ordinal, chunk.record.doc_id, document.doc_id
                    )));
                }
                let unit = vectors::normalized(&chunk.vector, self.config.dim).map_err(|e| {
                    Error::InvalidInput(format!(
                        "document {:?} chunk {}: {e}",
                        document.doc_id, chunk.record.ordinal
                    ))
                })?;
                unit_vectors.push(unit);
            }
            prepared.push(unit_vectors);
        }
        Ok(prepared)
    }

    fn write_batch(
        &mut self,
        batch: &Batch,
        prepared: Vec<Vec<Vec<f32>>>,
        new_vectors: &mut Vec<(u64, Vec<f32>)>,
    ) -> Result<()> {
        let writer = &mut self
            .writer
            .as_mut()
            .ok_or_else(|| Error::ReadOnly(self.root.clone()))?
            .tantivy;
        for doc_id in &batch.removals {
            writer.delete_term(text::doc_id_term(&self.fields, doc_id));
            writer.delete_term(text::failure_term(&self.fields, doc_id));
        }
        for failure in &batch.failures {
            writer.delete_term(text::failure_term(&self.fields, &failure.doc_id));
            writer.add_document(text::failure_to_tantivy(&self.fields, failure)?)?;
        }
        for ((document, chunks), unit_vectors) in batch.upserts.iter().zip(prepared) {
            // Deletes apply only to documents added before them, so the replacement survives.
            writer.delete_term(text::doc_id_term(&self.fields, &document.doc_id));
            writer.delete_term(text::failure_term(&self.fields, &document.doc_id));
            writer.add_document(text::document_to_tantivy(&self.fields, document)?)?;
            for (chunk, unit) in chunks.iter().zip(unit_vectors) {
                let chunk_id = self.payload.next_chunk_id;
                self.payload.next_chunk_id += 1;
                writer.add_document(text::chunk_to_tantivy(
                    &self.fields,
                    chunk_id,
                    &chunk.record,
                    &unit,
                )?)?;
                new_vectors.push((chunk_id, unit));
            }
        }
        self.payload.generation += 1;
        let payload_json = serde_json::to_string(&self.payload).map_err(|e| Error::Corrupt {
            path: self.root.clone(),
            reason: format!("cannot encode commit payload: {e}"),
        })?;
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&payload_json);
        commit.commit()?;
        Ok(())
    }

    fn tombstones(&self) -> usize {
        self.graph.len().saturating_sub(self.snapshot.chunks.len())
    }

    fn tombstone_ratio(&self) -> f64 {
        if self.graph.len() == 0 {
            0.0
        } else {
            self.tombstones() as f64 / self.graph.len() as f64
        }
    }

    /// Dumps the graph (a writer's job: a read-only index never writes, so does nothing).
    fn persist_graph_best_effort(&mut self) {
        if self.writer.is_none() {
            return;
        }
        let vector_dir = layout::vector_dir(&self.root);
        let started = Instant::now();
        match self.graph.persist(&vector_dir, self.payload.generation) {
            Ok(manifest) => {
                tracing::debug!(
                    points = manifest.points,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "persisted HNSW graph"
                );
                self.unpersisted_changes = 0;
            }
            // The dump is only a cache: the data is committed in tantivy and the graph is
            // repaired on the next open, so a failed dump must not fail the caller.
            Err(e) => tracing::warn!(error = %e, "could not persist HNSW graph"),
        }
    }

    /// Rebuilds the HNSW graph from live vectors only (dropping tombstones) and persists it.
    /// Runs automatically when more than 20% of the graph is tombstones. An index opened
    /// read-only refuses with [`Error::ReadOnly`].
    pub fn compact(&mut self) -> Result<()> {
        self.check_writable()?;
        self.compact_graph();
        Ok(())
    }

    /// Rebuilds the graph from its live vectors; a writer then dumps it. A read-only index
    /// does this in memory only (when the writer's deletions pile up while it follows them),
    /// so its graph does not grow without bound.
    fn compact_graph(&mut self) {
        let started = Instant::now();
        let live = &self.snapshot.chunks;
        let items = self.graph.vectors_where(&|id| live.contains_key(&id));
        let dropped = self.graph.len() - items.len();
        self.graph = VectorGraph::build(&self.config, &items);
        tracing::info!(
            points = items.len(),
            dropped,
            read_only = self.writer.is_none(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted HNSW graph"
        );
        self.unpersisted_changes = 1;
        self.persist_graph_best_effort();
    }

    /// Runs the search `mode` asks for. `query_vector` is required for vector and hybrid;
    /// given to BM25, it fills the hits' `similarity`.
    pub fn search(
        &self,
        mode: SearchMode,
        query: &str,
        query_vector: Option<&[f32]>,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Hit>> {
        let need_vector = || {
            query_vector
                .ok_or_else(|| Error::InvalidInput(format!("{mode} search needs a query vector")))
        };
        match mode {
            SearchMode::Bm25 => {
                let mut hits = self.search_bm25(query, k, filter)?;
                if let Some(v) = query_vector {
                    self.fill_similarity(&mut hits, v)?;
                }
                Ok(hits)
            }
            SearchMode::Vector => self.search_vector(need_vector()?, k, filter),
            SearchMode::Hybrid => self.search_hybrid(query, need_vector()?, k, filter),
        }
    }

    /// Sets each hit's cosine similarity to `query_vector` from its stored vector, so BM25
    /// results can be judged on the same scale as the other modes.
    fn fill_similarity(&self, hits: &mut [Hit], query_vector: &[f32]) -> Result<()> {
        let unit_query = vectors::normalized(query_vector, self.config.dim)?;
        for hit in hits {
            let Some(entry) = self.snapshot.chunks.get(&hit.chunk_id) else {
                continue;
            };
            let doc: TantivyDocument = self.snapshot.searcher.doc(entry.address)?;
            let stored = text::vector_from_tantivy(&self.fields, &doc)?;
            hit.similarity = Some(vectors::dot(&unit_query, &stored));
        }
        Ok(())
    }

    /// Keyword search (BM25 over text, title ×1.5 and heading ×1.5). Any query string is
    /// accepted: syntax characters are ignored, and a query with no words returns nothing.
    pub fn search_bm25(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let ranked = self.bm25_ranked(query, k, filter)?;
        ranked
            .into_iter()
            .enumerate()
            .map(|(i, (chunk_id, score, address))| {
                self.hit(chunk_id, address, score, Some(i + 1), None)
            })
            .collect()
    }

    /// Nearest chunks by cosine similarity (`score`); `query_vector` need not be normalised.
    pub fn search_vector(
        &self,
        query_vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Hit>> {
        let ranked = self.vector_ranked(query_vector, k, filter)?;
        ranked
            .into_iter()
            .enumerate()
            .map(|(i, (chunk_id, score))| {
                let hit = self.hit_by_id(chunk_id, score, None, Some(i + 1))?;
                Ok(Hit {
                    similarity: Some(score),
                    ..hit
                })
            })
            .collect()
    }

    /// BM25 and vector top-N (N = max(4k, 50)) fused by [`crate::fuse`] (the index's
    /// [`Fusion`]); `score` is the fused score.
    pub fn search_hybrid(
        &self,
        query: &str,
        query_vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Hit>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let depth = (k * 4).max(50);
        let candidates = self.hybrid_candidates(query, query_vector, depth, filter)?;
        let addresses: HashMap<u64, DocAddress> = candidates
            .iter()
            .filter_map(|c| c.address.map(|a| (c.chunk_id, a)))
            .collect();
        let fused = crate::fuse(&candidates, self.fusion, k);
        fused
            .into_iter()
            .map(|f| {
                let hit = match addresses.get(&f.chunk_id) {
                    Some(&address) => {
                        self.hit(f.chunk_id, address, f.score, f.bm25_rank, f.vector_rank)
                    }
                    None => self.hit_by_id(f.chunk_id, f.score, f.bm25_rank, f.vector_rank),
                }?;
                Ok(Hit {
                    similarity: Some(f.similarity),
                    ..hit
                })
            })
            .collect()
    }

    /// The union of the BM25 and vector top-`depth` lists, each with its BM25 rank and score
    /// (when in that list), vector rank, and exact cosine similarity to the query (read from
    /// the stored vector for chunks the vector list did not return). The input of fusion.
    pub fn hybrid_candidates(
        &self,
        query: &str,
        query_vector: &[f32],
        depth: usize,
        filter: &Filter,
    ) -> Result<Vec<Candidate>> {
        let unit_query = vectors::normalized(query_vector, self.config.dim)?;
        let bm25 = self.bm25_ranked(query, depth, filter)?;
        let vector = self.vector_ranked(&unit_query, depth, filter)?;
        let mut candidates: Vec<Candidate> = Vec::with_capacity(bm25.len() + vector.len());
        let mut position: HashMap<u64, usize> = HashMap::new();
        for (rank, (chunk_id, similarity)) in vector.into_iter().enumerate() {
            position.insert(chunk_id, candidates.len());
            candidates.push(Candidate {
                chunk_id,
                bm25: None,
                vector_rank: Some(rank + 1),
                similarity,
                address: None,
            });
        }
        for (rank, (chunk_id, score, address)) in bm25.into_iter().enumerate() {
            if let Some(&at) = position.get(&chunk_id) {
                candidates[at].bm25 = Some((rank + 1, score));
                candidates[at].address = Some(address);
                continue;
            }
            let doc: TantivyDocument = self.snapshot.searcher.doc(address)?;
            let stored = text::vector_from_tantivy(&self.fields, &doc)?;
            position.insert(chunk_id, candidates.len());
            candidates.push(Candidate {
                chunk_id,
                bm25: Some((rank + 1, score)),
                vector_rank: None,
                similarity: vectors::dot(&unit_query, &stored),
                address: Some(address),
            });
        }
        Ok(candidates)
    }

    fn bm25_ranked(
        &self,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<(u64, f32, DocAddress)>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let Some(query) = text::bm25_query(&self.fields, query, filter) else {
            return Ok(Vec::new());
        };
        let searcher = &self.snapshot.searcher;
        let top = searcher.search(&*query, &TopDocs::with_limit(k).order_by_score())?;
        let mut ranked = Vec::with_capacity(top.len());
        for (score, address) in top {
            let ids = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64("chunk_id")?;
            if let Some(chunk_id) = ids.first(address.doc_id) {
                ranked.push((chunk_id, score, address));
            }
        }
        Ok(ranked)
    }

    fn vector_ranked(
        &self,
        query_vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<(u64, f32)>> {
        let query = vectors::normalized(query_vector, self.config.dim)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let snapshot = &self.snapshot;
        let allowed = snapshot.allowed_collections(filter);
        let candidates = match &allowed {
            None => snapshot.chunks.len(),
            Some(set) => set
                .iter()
                .map(|&c| snapshot.collection_counts[c as usize])
                .sum(),
        };
        if candidates == 0 {
            return Ok(Vec::new());
        }
        let allow = |id: u64| match snapshot.chunks.get(&id) {
            None => false, // tombstone
            Some(entry) => allowed
                .as_ref()
                .is_none_or(|set| set.contains(&entry.collection)),
        };
        let wanted = k.min(candidates);
        let selective = allowed.is_some()
            && (candidates <= EXACT_SCAN_MAX
                || candidates * EXACT_SCAN_SELECTIVITY < self.graph.len());
        if selective {
            return Ok(self.graph.exact_search(&query, wanted, &allow));
        }
        let ef = self.config.ef_search.max(wanted);
        let hits = self.graph.search(&query, wanted, ef, &allow);
        if hits.len() < wanted {
            tracing::debug!(
                found = hits.len(),
                wanted,
                "HNSW search came up short; scanning exactly"
            );
            return Ok(self.graph.exact_search(&query, wanted, &allow));
        }
        Ok(hits)
    }

    fn hit_by_id(
        &self,
        chunk_id: u64,
        score: f32,
        bm25_rank: Option<usize>,
        vector_rank: Option<usize>,
    ) -> Result<Hit> {
        let entry = self
            .snapshot
            .chunks
            .get(&chunk_id)
            .ok_or_else(|| Error::Corrupt {
                path: self.root.clone(),
                reason: format!("chunk {chunk_id} found by search is not in the text index"),
            })?;
        self.hit(chunk_id, entry.address, score, bm25_rank, vector_rank)
    }

    fn hit(
        &self,
        chunk_id: u64,
        address: DocAddress,
        score: f32,
        bm25_rank: Option<usize>,
        vector_rank: Option<usize>,
    ) -> Result<Hit> {
        let doc: TantivyDocument = self.snapshot.searcher.doc(address)?;
        let chunk: ChunkRecord = text::chunk_from_tantivy(&self.fields, &doc)?;
        Ok(Hit {
            chunk_id,
            score,
            chunk,
            bm25_rank,
            vector_rank,
            similarity: None,
        })
    }

    /// How many chunks hold each of `terms` (analysed terms, as [`crate::analyze`] gives
    /// them) in their text, and how many chunks there are: the corpus statistics answering
    /// weighs question words by (a word most chunks hold says little about which one answers).
    pub fn term_frequencies(&self, terms: &[String]) -> Result<TermFrequencies> {
        let mut doc_freq = HashMap::with_capacity(terms.len());
        for term in terms {
            if doc_freq.contains_key(term) {
                continue;
            }
            let n = self
                .snapshot
                .searcher
                .doc_freq(&Term::from_field_text(self.fields.text, term))?;
            doc_freq.insert(term.clone(), n);
        }
        Ok(TermFrequencies {
            chunks: self.snapshot.chunks.len() as u64,
            doc_freq,
        })
    }

    /// Counts, size on disk, tombstones and model identity.
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            documents: self.snapshot.documents,
            chunks: self.snapshot.chunks.len() as u64,
            failures: self
                .snapshot
                .searcher
                .search(&text::kind_failure_query(&self.fields), &Count)?
                as u64,
            disk_bytes: layout::disk_usage(&self.root)?,
            vector_tombstones: self.tombstones() as u64,
            model_id: self.config.model_id.clone(),
            dim: self.config.dim,
        })
    }

    /// Whether no passage is indexed (cheap: no disk walk, unlike [`Index::stats`]).
    pub fn is_empty(&self) -> bool {
        self.snapshot.chunks.is_empty()
    }

    /// The directory this index lives in.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The configuration the index was opened with.
    /// How hybrid search combines BM25 and vectors from now on.
    pub fn set_fusion(&mut self, fusion: Fusion) {
        self.fusion = fusion;
    }

    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    pub fn config(&self) -> &IndexConfig {
        &self.config
    }
}

/// The binary shares one index between request handlers.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Index>();
};

impl Drop for Index {
    /// Saves the graph so the next open need not replay recent commits. Failure is harmless
    /// (the next open repairs the graph from tantivy), so it is only logged.
    fn drop(&mut self) {
        if self.unpersisted_changes > 0 && self.writer.is_some() {
            self.persist_graph_best_effort();
        }
    }
}

/// Reads `(chunk id, vector)` for live chunks accepted by `wanted` from tantivy's doc store,
/// segment by segment in doc order so the store's block cache is effective.
fn read_vectors(
    snapshot: &Snapshot,
    fields: &Fields,
    wanted: impl Fn(u64) -> bool,
    dim: usize,
) -> Result<Vec<(u64, Vec<f32>)>> {
    let mut by_segment: Vec<Vec<(u32, u64)>> =
        vec![Vec::new(); snapshot.searcher.segment_readers().len()];
    for (&chunk_id, entry) in &snapshot.chunks {
        if wanted(chunk_id) {
            by_segment[entry.address.segment_ord as usize].push((entry.address.doc_id, chunk_id));
        }
    }
    let mut items = Vec::new();
    for (segment_ord, mut docs) in by_segment.into_iter().enumerate() {
        if docs.is_empty() {
            continue;
        }
        docs.sort_unstable();
        let store = snapshot
            .searcher
            .segment_reader(segment_ord as u32)
            .get_store_reader(STORE_CACHE_BLOCKS)
            .map_err(|e| Error::io(Path::new("tantivy doc store"), e))?;
        for (doc, chunk_id) in docs {
            let document: TantivyDocument = store.get(doc)?;
            let vector = text::vector_from_tantivy(fields, &document)?;
            if vector.len() != dim {
                return Err(Error::Corrupt {
                    path: PathBuf::from("tantivy doc store"),
                    reason: format!(
                        "chunk {chunk_id} has a {}-d vector, index is {dim}-d",
                        vector.len()
                    ),
                });
            }
            items.push((chunk_id, vector));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vanished() -> Error {
        Error::Tantivy(TantivyError::OpenReadError(
            OpenReadError::FileDoesNotExist(PathBuf::from("seg.idx")),
        ))
    }

    #[test]
    fn only_vanished_files_count_as_races() {
        assert!(is_vanished_file(&vanished()));
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(is_vanished_file(&Error::io(Path::new("x"), not_found)));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!is_vanished_file(&Error::io(Path::new("x"), denied)));
        assert!(!is_vanished_file(&Error::ReadOnly(PathBuf::from("x"))));
    }

    fn record(doc_id: &str) -> (DocumentRecord, Vec<NewChunk>) {
        let document = DocumentRecord {
            doc_id: doc_id.to_string(),
            path: format!("{doc_id}.md"),
            collection: "default".into(),
            title: doc_id.to_string(),
            format: "markdown".into(),
            content_hash: format!("hash-{doc_id}"),
            pages: None,
            chunks: 1,
            bytes: 10,
            ingested_at: 1_700_000_000,
            warnings: vec![],
            source: None,
        };
        let mut vector = vec![0.0; 4];
        vector[doc_id.len() % 4] = 1.0;
        let chunk = NewChunk {
            record: crate::ChunkRecord {
                doc_id: doc_id.to_string(),
                path: document.path.clone(),
                collection: "default".into(),
                title: doc_id.to_string(),
                heading: None,
                text: format!("{doc_id} passage text"),
                page_start: None,
                page_end: None,
                char_start: 0,
                char_end: 10,
                ordinal: 0,
            },
            vector,
        };
        (document, vec![chunk])
    }

    /// A commit cut short by a panic leaves operations in the tantivy writer; recovering
    /// discards them, so the next commit holds its own batch and nothing of the broken one.
    #[test]
    fn recovery_discards_a_commit_cut_short() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = IndexConfig {
            dim: 4,
            model_id: "recover-test".into(),
            ..IndexConfig::default()
        };
        let mut index = Index::open(dir.path(), config.clone()).expect("open");
        index
            .commit(Batch {
                upserts: vec![record("kept")],
                ..Batch::default()
            })
            .expect("commit");
        // What write_batch had done when it panicked: a document added, no commit.
        let (stray, _) = record("stray");
        let document = text::document_to_tantivy(&index.fields, &stray).expect("document");
        let writer = index.writer.as_mut().expect("writer");
        writer.tantivy.add_document(document).expect("add");
        index.payload.generation += 1;
        index.payload.next_chunk_id += 5;
        let handed_out = index.payload.next_chunk_id;

        index.recover().expect("recover");
        assert!(index.payload.next_chunk_id >= handed_out);
        index
            .commit(Batch {
                upserts: vec![record("later")],
                ..Batch::default()
            })
            .expect("commit after recovery");
        let ids: Vec<String> = index
            .documents()
            .expect("documents")
            .into_iter()
            .map(|d| d.doc_id)
            .collect();
        assert_eq!(ids, vec!["kept".to_string(), "later".to_string()]);
        drop(index);
        let reopened = Index::open(dir.path(), config).expect("reopen");
        assert_eq!(reopened.documents().expect("documents").len(), 2);
        assert_eq!(reopened.stats().expect("stats").chunks, 2);
    }

    #[test]
    fn vanished_files_are_retried_a_bounded_number_of_times() {
        let mut calls = 0;
        let result = retry_vanished("test", || {
            calls += 1;
            if calls < 3 {
                Err(vanished())
            } else {
                Ok(calls)
            }
        });
        assert!(matches!(result, Ok(3)));

        let mut calls = 0;
        let result: Result<()> = retry_vanished("test", || {
            calls += 1;
            Err(vanished())
        });
        assert!(result.is_err());
        assert_eq!(calls, READ_ATTEMPTS);

        let mut calls = 0;
        let result: Result<()> = retry_vanished("test", || {
            calls += 1;
            Err(Error::InvalidInput("bad".into()))
        });
        assert!(matches!(result, Err(Error::InvalidInput(_))));
        assert_eq!(calls, 1);
    }
}
