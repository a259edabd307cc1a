//! Owns rank fusion: reciprocal rank fusion (RRF) of the BM25 and vector result lists.
//! RRF uses only ranks, so the incomparable BM25 and cosine scores never need calibrating.

use std::collections::HashMap;

/// The constant `k` of RRF (`score = Σ 1 / (k + rank)`), the value from Cormack et al. 2009.
pub const RRF_K: f32 = 60.0;

/// One fused result: chunk id, RRF score, 1-based rank in the BM25 and in the vector list.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub chunk_id: u64,
    pub score: f32,
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
}

/// Fuses two best-first id lists and returns the `k` best, best first. Ties (equal scores)
/// are broken by the better single rank, then by chunk id, so results are deterministic.
pub fn reciprocal_rank_fusion(bm25: &[u64], vector: &[u64], k: usize) -> Vec<Fused> {
    let mut fused: HashMap<u64, Fused> = HashMap::with_capacity(bm25.len() + vector.len());
    for (index, &chunk_id) in bm25.iter().enumerate() {
        let entry = fused.entry(chunk_id).or_insert(Fused {
            chunk_id,
            score: 0.0,
            bm25_rank: None,
            vector_rank: None,
        });
        if entry.bm25_rank.is_none() {
            entry.bm25_rank = Some(index + 1);
            entry.score += 1.0 / (RRF_K + (index + 1) as f32);
        }
    }
    for (index, &chunk_id) in vector.iter().enumerate() {
        let entry = fused.entry(chunk_id).or_insert(Fused {
            chunk_id,
            score: 0.0,
            bm25_rank: None,
            vector_rank: None,
        });
        if entry.vector_rank.is_none() {
            entry.vector_rank = Some(index + 1);
            entry.score += 1.0 / (RRF_K + (index + 1) as f32);
        }
    }
    let mut results: Vec<Fused> = fused.into_values().collect();
    let best_rank = |f: &Fused| {
        f.bm25_rank
            .unwrap_or(usize::MAX)
            .min(f.vector_rank.unwrap_or(usize::MAX))
    };
    results.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(best_rank(a).cmp(&best_rank(b)))
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    results.truncate(k);
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_first_place() {
        // 7 is second in both lists; 1 is first in BM25 only; 9 first in vectors only.
        let fused = reciprocal_rank_fusion(&[1, 7, 3], &[9, 7, 4], 10);
        assert_eq!(fused[0].chunk_id, 7);
        assert_eq!(fused[0].bm25_rank, Some(2));
        assert_eq!(fused[0].vector_rank, Some(2));
        let expected = 2.0 / (RRF_K + 2.0);
        assert!((fused[0].score - expected).abs() < 1e-7);
        // 1 and 9 tie on score; the tie is broken by chunk id.
        assert_eq!(fused[1].chunk_id, 1);
        assert_eq!(fused[2].chunk_id, 9);
        assert_eq!(fused.len(), 5);
    }

    #[test]
    fn truncates_and_ignores_duplicates_within_a_list() {
        let fused = reciprocal_rank_fusion(&[5, 5, 6], &[], 1);
        assert_eq!(fused.len(), 1);
        assert_eq!(fused[0].chunk_id, 5);
        assert!((fused[0].score - 1.0 / (RRF_K + 1.0)).abs() < 1e-7);
        assert!(reciprocal_rank_fusion(&[], &[], 3).is_empty());
    }
}
