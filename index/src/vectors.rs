//! Owns the approximate nearest-neighbour side: an `hnsw_rs` cosine graph keyed by chunk id,
//! filtered/exact search over it, and its on-disk dump (a derived cache of the vectors that
//! tantivy stores, see ARCHITECTURE.md).
//!
//! Sharp edges of hnsw_rs 0.3 contained here:
//! - its distances assert on negative/NaN values, so we use our own clamped cosine distance
//!   over vectors this module normalises itself;
//! - a reloaded graph borrows its `HnswIo` loader: both live in one `self_cell`;
//! - dumping and loading panic on I/O or format errors: dumps go to a fresh temp directory
//!   under `catch_unwind`, are fsynced and renamed into place, and are verified by size and
//!   CRC32 before the (panicking) loader ever sees them;
//! - there is no delete: callers pass a predicate that hides deleted ids (tombstones).
//! - `Hnsw::new` exits the process when `m > 256`: the configuration is validated first.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::layout::{atomic_write, sync_dir, sync_file};
use crate::{Error, IndexConfig, Result};

/// File basename hnsw_rs writes inside a dump directory (`lore.hnsw.graph`, `lore.hnsw.data`).
const DUMP_BASENAME: &str = "lore";
const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;
/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;
/// Dumps tried by one load when a concurrent writer keeps replacing them.
const LOAD_ATTEMPTS: usize = 3;
/// Below this many points a parallel insert costs more in thread hand-off than it saves.
const PARALLEL_INSERT_MIN: usize = 256;

/// Cosine distance `1 - a·b` for vectors this module has normalised, clamped to `[0, 2]`
/// (NaN maps to the maximum) because hnsw_rs asserts that distances are non-negative.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClampedCosine;

impl Distance<f32> for ClampedCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        let similarity = dot(va, vb);
        let distance = 1.0 - similarity;
        if distance.is_nan() {
            2.0
        } else {
            distance.clamp(0.0, 2.0)
        }
    }
}

/// Dot product written to let the compiler vectorise (8 independent accumulators).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Checks dimension and finiteness and returns the unit-length copy of `vector`.
pub fn normalized(vector: &[f32], dim: usize) -> Result<Vec<f32>> {
    if vector.len() != dim {
        return Err(Error::InvalidInput(format!(
            "vector has {} dimensions, the index expects {dim}",
            vector.len()
        )));
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(
            "vector contains NaN or infinite values".into(),
        ));
    }
    let norm = dot(vector, vector).sqrt();
    if !norm.is_finite() || norm <= f32::MIN_POSITIVE {
        return Err(Error::InvalidInput(
            "vector has zero length; cosine similarity is undefined".into(),
        ));
    }
    Ok(vector.iter().map(|x| x / norm).collect())
}

type Graph<'a> = Hnsw<'a, f32, ClampedCosine>;

self_cell::self_cell!(
    /// A graph together with the loader it may borrow from (reloaded graphs do; new ones
    /// borrow nothing and carry an empty loader).
    struct GraphCell {
        owner: Box<HnswIo>,
        #[not_covariant]
        dependent: Graph,
    }
);

/// Written beside each dump; describes and checksums it so corruption is caught before
/// hnsw_rs's panicking loader reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorManifest {
    pub manifest_version: u32,
    /// Text-index generation the dump was taken at (informational; any dump is valid
    /// against any later state because chunk ids are never reused).
    pub generation: u64,
    pub dump_dir: String,
    pub basename: String,
    pub dim: usize,
    pub points: u64,
    pub graph_bytes: u64,
    pub graph_crc32: u32,
    pub data_bytes: u64,
    pub data_crc32: u32,
}

/// The HNSW graph over chunk vectors. Holds every chunk id ever inserted since the last
/// rebuild, live or not; liveness is the caller's business (tombstone predicate).
pub struct VectorGraph {
    cell: GraphCell,
    ids: HashSet<u64>,
    dim: usize,
}

impl std::fmt::Debug for VectorGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorGraph")
            .field("points", &self.ids.len())
            .field("dim", &self.dim)
            .finish()
    }
}

/// Rejects settings hnsw_rs would crash or loop on.
pub fn validate_config(config: &IndexConfig) -> Result<()> {
    if config.dim == 0 {
        return Err(Error::InvalidInput("dim must be at least 1".into()));
    }
    if !(2..=256).contains(&config.hnsw_m) {
        return Err(Error::InvalidInput(format!(
            "hnsw_m must be between 2 and 256, got {}",
            config.hnsw_m
        )));
    }
    if config.ef_construction == 0 || config.ef_search == 0 {
        return Err(Error::InvalidInput(
            "ef_construction and ef_search must be at least 1".into(),
        ));
    }
    Ok(())
}

impl VectorGraph {
    /// An empty graph sized for about `capacity` points.
    pub fn new(config: &IndexConfig, capacity: usize) -> VectorGraph {
        let (m, efc) = (config.hnsw_m, config.ef_construction);
        let cell = GraphCell::new(Box::default(), |_| {
            Hnsw::new(m, capacity.max(1), MAX_LAYERS, efc, ClampedCosine)
        });
        VectorGraph {
            cell,
            ids: HashSet::new(),
            dim: config.dim,
        }
    }

    /// Builds a graph from `(chunk id, unit vector)` pairs.
    pub fn build(config: &IndexConfig, items: &[(u64, Vec<f32>)]) -> VectorGraph {
        let mut graph = VectorGraph::new(config, items.len());
        graph.insert(items);
        graph
    }

    /// Number of points in the graph, tombstoned ones included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn contains(&self, chunk_id: u64) -> bool {
        self.ids.contains(&chunk_id)
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.iter().copied()
    }

    /// Inserts unit vectors of the configured dimension (callers normalise with
    /// [`normalized`]). Ids already present are skipped: the graph has no update.
    pub fn insert(&mut self, items: &[(u64, Vec<f32>)]) {
        let fresh: Vec<(&[f32], usize)> = items
            .iter()
            .filter(|(id, v)| v.len() == self.dim && !self.ids.contains(id))
            .map(|(id, v)| (v.as_slice(), *id as usize))
            .collect();
        if fresh.is_empty() {
            return;
        }
        self.cell.with_dependent(|_, graph| {
            if fresh.len() >= PARALLEL_INSERT_MIN {
                graph.parallel_insert_slice(&fresh);
            } else {
                for item in &fresh {
                    graph.insert_slice(*item);
                }
            }
        });
        self.ids.extend(fresh.iter().map(|(_, id)| *id as u64));
    }

    /// Approximate top-`k` among ids accepted by `allow`, as `(chunk id, cosine similarity)`
    /// best first. May return fewer than `k` when `allow` rejects much of the graph.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        if k == 0 || self.ids.is_empty() || query.len() != self.dim {
            return Vec::new();
        }
        let filter = |id: &usize| allow(*id as u64);
        let ef = ef.max(k);
        let neighbours = self
            .cell
            .with_dependent(|_, graph| graph.search_filter(query, k, ef, Some(&filter)));
        let mut hits: Vec<(u64, f32)> = neighbours
            .into_iter()
            .map(|n| (n.get_origin_id() as u64, 1.0 - n.get_distance()))
            // hnsw_rs may hand back its entry point even when the filter rejects it.
            .filter(|(id, _)| allow(*id))
            .collect();
        top_k_by_score(&mut hits, k);
        hits
    }

    /// Exact top-`k` by scanning every point accepted by `allow`.
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        // hnsw_rs's point iterator panics on a graph without an entry point.
        if k == 0 || self.ids.is_empty() || query.len() != self.dim {
            return Vec::new();
        }
        let mut scored: Vec<(u64, f32)> = self.cell.with_dependent(|_, graph| {
            graph
                .get_point_indexation()
                .into_iter()
                .filter_map(|point| {
                    let id = point.get_origin_id() as u64;
                    allow(id).then(|| (id, 1.0 - ClampedCosine.eval(query, point.get_v())))
                })
                .collect()
        });
        top_k_by_score(&mut scored, k);
        scored
    }

    /// Copies out `(id, vector)` for the ids `keep` accepts: the input of a compaction.
    pub fn vectors_where(&self, keep: &dyn Fn(u64) -> bool) -> Vec<(u64, Vec<f32>)> {
        if self.ids.is_empty() {
            return Vec::new();
        }
        self.cell.with_dependent(|_, graph| {
            graph
                .get_point_indexation()
                .into_iter()
                .filter_map(|point| {
                    let id = point.get_origin_id() as u64;
                    keep(id).then(|| (id, point.get_v().to_vec()))
                })
                .collect()
        })
    }

    /// Writes the graph as a new dump under `vector_dir` and points the manifest at it.
    /// Readers of the old manifest keep working until the rename; a crash at any point leaves
    /// either the old or the new dump referenced, never a torn one.
    pub fn persist(&self, vector_dir: &Path, generation: u64) -> Result<VectorManifest> {
        fs::create_dir_all(vector_dir).map_err(|e| Error::io(vector_dir, e))?;
        if self.len() == 0 {
            // hnsw_rs cannot dump an empty graph, and none is needed: without a manifest
            // the next open builds the (empty) graph from the text index at no cost.
            match fs::remove_file(vector_dir.join(MANIFEST_FILE)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(vector_dir, e)),
            }
            remove_stale_dumps(vector_dir, None);
            return Ok(VectorManifest {
                manifest_version: MANIFEST_VERSION,
                generation,
                dump_dir: String::new(),
                basename: String::new(),
                dim: self.dim,
                points: 0,
                graph_bytes: 0,
                graph_crc32: 0,
                data_bytes: 0,
                data_crc32: 0,
            });
        }
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = vector_dir.join(format!("tmp-{generation}-{}-{stamp}", std::process::id()));
        let final_name = format!("hnsw-{generation}-{stamp}");
        let final_dir = vector_dir.join(&final_name);
        let result = self.persist_into(&tmp, &final_dir, &final_name, generation);
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
            let _ = fs::remove_dir_all(&final_dir);
            return result;
        }
        let manifest = result?;
        remove_stale_dumps(vector_dir, Some(&manifest.dump_dir));
        Ok(manifest)
    }

    fn persist_into(
        &self,
        tmp: &Path,
        final_dir: &Path,
        final_name: &str,
        generation: u64,
    ) -> Result<VectorManifest> {
        fs::create_dir_all(tmp).map_err(|e| Error::io(tmp, e))?;
        let dumped = catch_unwind(AssertUnwindSafe(|| {
            self.cell
                .with_dependent(|_, graph| graph.file_dump(tmp, DUMP_BASENAME))
        }));
        let basename = match dumped {
            Ok(Ok(name)) => name,
            Ok(Err(e)) => return Err(Error::Vector(format!("HNSW dump failed: {e}"))),
            Err(_) => {
                return Err(Error::Vector(
                    "HNSW dump panicked (I/O error while writing)".into(),
                ))
            }
        };
        let graph_path = tmp.join(format!("{basename}.hnsw.graph"));
        let data_path = tmp.join(format!("{basename}.hnsw.data"));
        sync_file(&graph_path)?;
        sync_file(&data_path)?;
        let (graph_bytes, graph_crc32) = checksum(&graph_path)?;
        let (data_bytes, data_crc32) = checksum(&data_path)?;
        sync_dir(tmp)?;
        fs::rename(tmp, final_dir).map_err(|e| Error::io(final_dir, e))?;
        let vector_dir = final_dir.parent().unwrap_or(Path::new("."));
        sync_dir(vector_dir)?;
        let manifest = VectorManifest {
            manifest_version: MANIFEST_VERSION,
            generation,
            dump_dir: final_name.to_string(),
            basename,
            dim: self.dim,
            points: self.ids.len() as u64,
            graph_bytes,
            graph_crc32,
            data_bytes,
            data_crc32,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::Vector(format!("cannot encode manifest: {e}")))?;
        atomic_write(&vector_dir.join(MANIFEST_FILE), &json)?;
        Ok(manifest)
    }

    /// Loads the dump the manifest names. `Ok(None)` when there is none or it is unusable
    /// (wrong dimension, checksum mismatch, loader failure): the caller rebuilds; the reason
    /// is logged. Only errors reading the directory itself are returned as errors.
    ///
    /// A writer in another process may replace the dump (and delete the one the manifest
    /// named) while a read-only open loads it: when the manifest changed meanwhile, the dump
    /// it names now is tried instead, a few times, before giving up.
    pub fn load(
        vector_dir: &Path,
        config: &IndexConfig,
    ) -> Result<Option<(VectorGraph, VectorManifest)>> {
        match read_manifest(vector_dir)? {
            Some(bytes) => Ok(Self::load_from_manifest(vector_dir, config, bytes)),
            None => {
                tracing::info!(dir = %vector_dir.display(), "no HNSW dump; vectors will be rebuilt from the text index");
                Ok(None)
            }
        }
    }

    /// [`VectorGraph::load`] given the manifest's bytes as first read.
    fn load_from_manifest(
        vector_dir: &Path,
        config: &IndexConfig,
        mut bytes: Vec<u8>,
    ) -> Option<(VectorGraph, VectorManifest)> {
        let mut attempt = 1;
        loop {
            let manifest: VectorManifest = match serde_json::from_slice(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "HNSW manifest unreadable; rebuilding vectors");
                    return None;
                }
            };
            let reason = match Self::load_checked(vector_dir, &manifest, config) {
                Ok(graph) => return Some((graph, manifest)),
                Err(reason) => reason,
            };
            match read_manifest(vector_dir) {
                Ok(Some(now)) if now != bytes && attempt < LOAD_ATTEMPTS => {
                    tracing::debug!(%reason, dump = %manifest.dump_dir, "HNSW dump replaced while loading; loading the new one");
                    bytes = now;
                    attempt += 1;
                }
                _ => {
                    tracing::warn!(%reason, dump = %manifest.dump_dir, "HNSW dump unusable; rebuilding vectors");
                    return None;
                }
            }
        }
    }

    fn load_checked(
        vector_dir: &Path,
        manifest: &VectorManifest,
        config: &IndexConfig,
    ) -> std::result::Result<VectorGraph, String> {
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(format!(
                "manifest version {} unknown",
                manifest.manifest_version
            ));
        }
        if manifest.dim != config.dim {
            return Err(format!(
                "dump has dimension {}, index has {}",
                manifest.dim, config.dim
            ));
        }
        let dump_dir: PathBuf = vector_dir.join(&manifest.dump_dir);
        let graph_path = dump_dir.join(format!("{}.hnsw.graph", manifest.basename));
        let data_path = dump_dir.join(format!("{}.hnsw.data", manifest.basename));
        for (path, bytes, crc) in [
            (&graph_path, manifest.graph_bytes, manifest.graph_crc32),
            (&data_path, manifest.data_bytes, manifest.data_crc32),
        ] {
            let (found_bytes, found_crc) = checksum(path).map_err(|e| e.to_string())?;
            if (found_bytes, found_crc) != (bytes, crc) {
                return Err(format!("{} does not match its checksum", path.display()));
            }
        }
        if manifest.points == 0 {
            // hnsw_rs cannot reload an empty graph; nothing is lost by starting afresh.
            return Ok(VectorGraph::new(config, 0));
        }
        let loader = Box::new(HnswIo::new(&dump_dir, &manifest.basename));
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            GraphCell::try_new(loader, |io| io.load_hnsw_with_dist(ClampedCosine))
        }));
        let cell = match loaded {
            Ok(Ok(cell)) => cell,
            Ok(Err(e)) => return Err(format!("loader failed: {e}")),
            Err(_) => return Err("loader panicked".into()),
        };
        let ids: HashSet<u64> = cell.with_dependent(|_, graph| {
            graph
                .get_point_indexation()
                .into_iter()
                .map(|p| p.get_origin_id() as u64)
                .collect()
        });
        if ids.len() as u64 != manifest.points {
            return Err(format!(
                "dump holds {} points, manifest says {}",
                ids.len(),
                manifest.points
            ));
        }
        Ok(VectorGraph {
            cell,
            ids,
            dim: config.dim,
        })
    }
}

/// The manifest's bytes; `Ok(None)` when there is none.
fn read_manifest(vector_dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = vector_dir.join(MANIFEST_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Removes leftovers of interrupted or superseded dumps (best effort: failures are logged).
pub fn remove_stale_dumps(vector_dir: &Path, keep: Option<&str>) {
    let Ok(entries) = fs::read_dir(vector_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_dump = name.starts_with("hnsw-") || name.starts_with("tmp-");
        if is_dump && Some(name) != keep {
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %e, dir = %entry.path().display(), "cannot remove stale HNSW dump");
            }
        }
    }
}

/// Keeps the `k` highest scores, best first; ties broken by id for determinism.
pub fn top_k_by_score(scored: &mut Vec<(u64, f32)>, k: usize) {
    let order = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if scored.len() > k {
        scored.select_nth_unstable_by(k, order);
        scored.truncate(k);
    }
    scored.sort_by(order);
}

fn checksum(path: &Path) -> Result<(u64, u32)> {
    let mut file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dim: usize) -> IndexConfig {
        IndexConfig {
            dim,
            model_id: "test".into(),
            ..IndexConfig::default()
        }
    }

    /// Deterministic pseudo-random unit vectors (splitmix64).
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<(u64, Vec<f32>)> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        (0..n)
            .map(|i| {
                let raw: Vec<f32> = (0..dim).map(|_| next()).collect();
                (i as u64, normalized(&raw, dim).unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn distance_is_clamped_and_never_nan() {
        let a = [1.0f32, 0.0];
        assert_eq!(ClampedCosine.eval(&a, &a), 0.0);
        // Slightly over-long vectors would give a negative raw distance.
        let long = [1.0001f32, 0.0];
        assert_eq!(ClampedCosine.eval(&long, &long), 0.0);
        assert_eq!(ClampedCosine.eval(&[f32::NAN, 0.0], &a), 2.0);
        assert!((ClampedCosine.eval(&a, &[-1.0, 0.0]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn normalized_rejects_bad_vectors() {
        assert!(normalized(&[3.0, 4.0], 2).is_ok_and(|v| (v[0] - 0.6).abs() < 1e-6));
        assert!(matches!(normalized(&[1.0], 2), Err(Error::InvalidInput(_))));
        assert!(matches!(
            normalized(&[0.0, 0.0], 2),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            normalized(&[f32::INFINITY, 0.0], 2),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn config_that_would_crash_hnsw_is_rejected() {
        let bad = IndexConfig {
            hnsw_m: 300,
            ..config(4)
        };
        assert!(matches!(validate_config(&bad), Err(Error::InvalidInput(_))));
        assert!(validate_config(&config(4)).is_ok());
    }

    #[test]
    fn identical_query_and_filter_work() {
        let items = vectors(300, 16, 1);
        let graph = VectorGraph::build(&config(16), &items);
        assert_eq!(graph.len(), 300);
        // A query identical to a stored vector is the case hnsw_rs's DistDot asserts on.
        let hits = graph.search(&items[42].1, 5, 64, &|_| true);
        assert_eq!(hits.first().map(|h| h.0), Some(42));
        assert!(hits[0].1 > 0.999);
        let even_only = |id: u64| id.is_multiple_of(2);
        let hits = graph.search(&items[43].1, 10, 64, &even_only);
        assert!(!hits.is_empty());
        assert!(hits.iter().all(|(id, _)| id % 2 == 0));
        let exact = graph.exact_search(&items[43].1, 10, &even_only);
        assert_eq!(exact.len(), 10);
        assert!(exact.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn an_empty_graph_is_scanned_without_panicking() {
        let graph = VectorGraph::new(&config(4), 0);
        let query = normalized(&[1.0, 0.0, 0.0, 0.0], 4).unwrap_or_default();
        assert!(graph.exact_search(&query, 3, &|_| true).is_empty());
        assert!(graph.search(&query, 3, 16, &|_| true).is_empty());
        assert!(graph.vectors_where(&|_| true).is_empty());
    }

    #[test]
    fn an_emptied_graph_persists_as_no_dump() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let cfg = config(8);
        VectorGraph::build(&cfg, &vectors(20, 8, 3)).persist(dir.path(), 1)?;
        assert!(VectorGraph::load(dir.path(), &cfg)?.is_some());
        let manifest = VectorGraph::build(&cfg, &[]).persist(dir.path(), 2)?;
        assert_eq!(manifest.points, 0);
        assert!(VectorGraph::load(dir.path(), &cfg)?.is_none());
        assert_eq!(
            fs::read_dir(dir.path())
                .map_err(|e| Error::io(dir.path(), e))?
                .count(),
            0
        );
        Ok(())
    }

    #[test]
    fn a_dump_replaced_while_loading_is_followed_to_the_new_one() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let cfg = config(8);
        let first = VectorGraph::build(&cfg, &vectors(30, 8, 5)).persist(dir.path(), 1)?;
        let stale =
            read_manifest(dir.path())?.ok_or_else(|| Error::Vector("no manifest".into()))?;
        // A writer dumps again and deletes the dump the manifest we read names.
        let second = VectorGraph::build(&cfg, &vectors(40, 8, 6)).persist(dir.path(), 2)?;
        assert!(!dir.path().join(&first.dump_dir).exists());
        let (graph, manifest) = VectorGraph::load_from_manifest(dir.path(), &cfg, stale)
            .ok_or_else(|| Error::Vector("replaced dump not followed".into()))?;
        assert_eq!((manifest, graph.len()), (second, 40));
        Ok(())
    }

    #[test]
    fn dump_and_reload_round_trip_then_corruption_is_detected() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let cfg = config(8);
        let items = vectors(200, 8, 7);
        let graph = VectorGraph::build(&cfg, &items);
        let manifest = graph.persist(dir.path(), 3)?;
        assert_eq!(manifest.points, 200);
        let first_dump = manifest.dump_dir.clone();
        // A second dump supersedes and removes the first.
        let manifest = graph.persist(dir.path(), 4)?;
        assert!(!dir.path().join(&first_dump).exists());

        let (reloaded, loaded_manifest) =
            VectorGraph::load(dir.path(), &cfg)?.ok_or_else(|| Error::Vector("no dump".into()))?;
        assert_eq!(loaded_manifest, manifest);
        assert_eq!(reloaded.len(), 200);
        let hits = reloaded.search(&items[5].1, 1, 32, &|_| true);
        assert_eq!(hits.first().map(|h| h.0), Some(5));

        // A reloaded graph can be dumped again (hnsw_rs would pick a new basename in place).
        let again = reloaded.persist(dir.path(), 5)?;
        assert_eq!(again.points, 200);

        // Wrong dimension: unusable, caller rebuilds.
        assert!(VectorGraph::load(dir.path(), &config(9))?.is_none());
        // Flip bytes in the data file: detected by checksum, no panic.
        let data = dir
            .path()
            .join(&again.dump_dir)
            .join(format!("{}.hnsw.data", again.basename));
        let mut bytes = fs::read(&data).map_err(|e| Error::io(&data, e))?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        fs::write(&data, &bytes).map_err(|e| Error::io(&data, e))?;
        assert!(VectorGraph::load(dir.path(), &cfg)?.is_none());
        Ok(())
    }
}
