//! Search benchmark on a synthetic corpus: clustered, normalised 384-d vectors and
//! ~150-word texts drawn from a Zipf vocabulary. For each corpus size it prints build time,
//! open time (from the HNSW dump), rebuild time (dump deleted), hybrid/BM25/vector latency
//! p50/p99 and HNSW recall@10 against exact cosine search.
//!
//! `cargo run --release -p lore-index --example bench_search [-- 10000 100000]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{chunk, clustered_vectors, document, exact_top_k, Rng, ZipfWords};
use lore_index::{Batch, Filter, Index, IndexConfig};

const DIM: usize = 384;
const CHUNKS_PER_DOC: usize = 10;
const DOCS_PER_COMMIT: usize = 200;
const WORDS_PER_CHUNK: usize = 150;
const QUERIES: usize = 300;
const K: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn config() -> IndexConfig {
    IndexConfig {
        dim: DIM,
        model_id: "bench-synthetic".into(),
        ..IndexConfig::default()
    }
}

fn run(n: usize, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("== {n} chunks ==");
    let mut rng = Rng::new(n as u64);
    let words = ZipfWords::new(20_000, &mut rng);
    let clusters = (n / 100).clamp(10, 1000);
    let vectors = clustered_vectors(n, DIM, clusters, 0.8, 7);

    let started = Instant::now();
    {
        let mut index = Index::open(dir, config())?;
        let docs = n.div_ceil(CHUNKS_PER_DOC);
        let mut batch = Batch::default();
        for d in 0..docs {
            let doc = document(
                &format!("doc{d}"),
                &format!("c{}", d % 4),
                CHUNKS_PER_DOC as u32,
            );
            let chunks = (0..CHUNKS_PER_DOC)
                .map(|c| d * CHUNKS_PER_DOC + c)
                .filter(|&i| i < n)
                .map(|i| {
                    let text = words.text(WORDS_PER_CHUNK, &mut rng);
                    chunk(&doc, (i % CHUNKS_PER_DOC) as u32, &text, vectors[i].clone())
                })
                .collect();
            batch.upserts.push((doc, chunks));
            if batch.upserts.len() == DOCS_PER_COMMIT || d + 1 == docs {
                index.commit(std::mem::take(&mut batch))?;
            }
        }
        let stats = index.stats()?;
        println!(
            "build: {:.1} s ({} chunks, {} documents, {:.0} MiB on disk)",
            started.elapsed().as_secs_f64(),
            stats.chunks,
            stats.documents,
            stats.disk_bytes as f64 / (1024.0 * 1024.0)
        );
    }

    let started = Instant::now();
    let index = Index::open(dir, config())?;
    println!("open (HNSW dump present): {}", ms(started.elapsed()));

    // In-distribution queries: a stored vector plus noise of the same size as the clusters'.
    let noise = clustered_vectors(QUERIES, DIM, QUERIES, 0.0, 99);
    let query_vectors: Vec<Vec<f32>> = noise
        .iter()
        .map(|direction| {
            let base = &vectors[rng.below(n)];
            let mut v: Vec<f32> = base
                .iter()
                .zip(direction)
                .map(|(b, d)| b + 0.5 * d)
                .collect();
            common::normalize(&mut v);
            v
        })
        .collect();
    let query_texts: Vec<String> = (0..QUERIES)
        .map(|_| {
            (0..3)
                .map(|_| words.ranked(20 + rng.below(2000)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();

    let timings = |label: &str, f: &dyn Fn(usize) -> Result<usize, lore_index::Error>| {
        let mut times = Vec::with_capacity(QUERIES);
        let mut empty = 0;
        for q in 0..QUERIES {
            let t = Instant::now();
            match f(q) {
                Ok(0) => empty += 1,
                Ok(_) => {}
                Err(e) => println!("{label}: query {q} failed: {e}"),
            }
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{label:<22} p50 {}  p99 {}  max {}  (empty results: {empty})",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(percentile(&times, 1.0))
        );
    };
    let all = Filter::default();
    let one = Filter::collections(["c1"]);
    timings("hybrid", &|q| {
        Ok(index
            .search_hybrid(&query_texts[q], &query_vectors[q], K, &all)?
            .len())
    });
    timings("hybrid, 1 collection", &|q| {
        Ok(index
            .search_hybrid(&query_texts[q], &query_vectors[q], K, &one)?
            .len())
    });
    timings("bm25", &|q| {
        Ok(index.search_bm25(&query_texts[q], K, &all)?.len())
    });
    timings("vector", &|q| {
        Ok(index.search_vector(&query_vectors[q], K, &all)?.len())
    });

    let mut found = 0;
    for query in &query_vectors {
        let truth = exact_top_k(&vectors, query, K);
        let hits = index.search_vector(query, K, &all)?;
        found += hits
            .iter()
            .filter(|h| truth.contains(&(h.chunk_id as usize)))
            .count();
    }
    println!(
        "HNSW recall@10 vs exact: {:.4}",
        found as f64 / (QUERIES * K) as f64
    );
    drop(index);

    std::fs::remove_dir_all(dir.join("vectors"))?;
    let started = Instant::now();
    let index = Index::open(dir, config())?;
    println!(
        "open (dump deleted, HNSW rebuilt from tantivy): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(index);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        let dir = tempfile::tempdir()?;
        run(n, dir.path())?;
    }
    Ok(())
}
