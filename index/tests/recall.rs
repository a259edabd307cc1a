//! HNSW quality: recall@10 of the index's vector search against exact brute-force cosine
//! search on 5,000 clustered 384-d vectors must be at least 0.95, with and without a
//! collection filter that sends the search through the graph.

mod common;

use common::{chunk, clustered_vectors, document, exact_top_k};
use lore_index::{Batch, Filter, Index, IndexConfig};

const DIM: usize = 384;
const N: usize = 5_000;
const QUERIES: usize = 200;
const K: usize = 10;

#[test]
fn hnsw_recall_at_10_is_at_least_095() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = IndexConfig {
        dim: DIM,
        model_id: "recall".into(),
        ..IndexConfig::default()
    };
    let mut index = Index::open(dir.path(), config)?;
    let vectors = clustered_vectors(N, DIM, 50, 0.8, 42);
    let mut batch = Batch::default();
    for (d, group) in vectors.chunks(10).enumerate() {
        let doc = document(
            &format!("doc{d}"),
            if d % 2 == 0 { "a" } else { "b" },
            group.len() as u32,
        );
        let chunks = group
            .iter()
            .enumerate()
            .map(|(c, v)| chunk(&doc, c as u32, "text", v.clone()))
            .collect();
        batch.upserts.push((doc, chunks));
    }
    index.commit(batch)?;

    let queries = clustered_vectors(QUERIES, DIM, 50, 0.8, 42 + 1);
    // Collection "b" holds documents with odd numbers, i.e. vectors whose (index / 10) is odd.
    let b_ids: Vec<usize> = (0..N).filter(|i| (i / 10) % 2 == 1).collect();
    let in_b: Vec<Vec<f32>> = b_ids.iter().map(|&i| vectors[i].clone()).collect();
    let (mut found, mut found_filtered) = (0usize, 0usize);
    for query in &queries {
        // Chunk ids are assigned in insertion order, so id == position in `vectors`.
        let truth = exact_top_k(&vectors, query, K);
        let hits = index.search_vector(query, K, &Filter::default())?;
        found += hits
            .iter()
            .filter(|h| truth.contains(&(h.chunk_id as usize)))
            .count();

        let truth_b: Vec<usize> = exact_top_k(&in_b, query, K)
            .into_iter()
            .map(|i| b_ids[i])
            .collect();
        let hits = index.search_vector(query, K, &Filter::collections(["b"]))?;
        assert!(hits.iter().all(|h| h.chunk.collection == "b"));
        found_filtered += hits
            .iter()
            .filter(|h| truth_b.contains(&(h.chunk_id as usize)))
            .count();
    }
    let recall = found as f64 / (QUERIES * K) as f64;
    let recall_filtered = found_filtered as f64 / (QUERIES * K) as f64;
    println!("recall@10 = {recall:.4}, filtered recall@10 = {recall_filtered:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");
    assert!(
        recall_filtered >= 0.95,
        "filtered recall@10 {recall_filtered}"
    );
    Ok(())
}
