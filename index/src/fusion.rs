//! Owns rank fusion: how the BM25 and vector candidate lists become one ranking.
//! Two fusions are offered: reciprocal rank fusion (RRF, ranks only) and a convex
//! combination of normalised scores, which keeps how much better one candidate is than the
//! next (RRF throws that away) and lets the stronger retriever weigh more.

use serde::{Deserialize, Serialize};
use tantivy::DocAddress;

/// The constant `k` of RRF (`score = Σ 1 / (k + rank)`), the value from Cormack et al. 2009.
pub const RRF_K: f32 = 60.0;

/// One chunk found by either retriever, with everything fusion may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub chunk_id: u64,
    /// 1-based rank and BM25 score, when BM25 returned the chunk.
    pub bm25: Option<(usize, f32)>,
    /// 1-based rank in the vector list, when the vector search returned the chunk.
    pub vector_rank: Option<usize>,
    /// Exact cosine similarity between the query and the chunk, known for every candidate.
    pub similarity: f32,
    pub(crate) address: Option<DocAddress>,
}

/// How hybrid search combines its two lists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// `Σ 1/(60 + rank)` over the lists a chunk appears in.
    Rrf,
    /// `w · cos' + (1 − w) · bm25'`, each score min–max normalised over its own
    /// retriever's list (a chunk BM25 did not return scores 0 there; a BM25 hit less
    /// similar than the vector list's last scores 0 in cosine).
    Convex { vector_weight: f32 },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Convex { vector_weight: 0.7 }
    }
}

/// One fused result: chunk id, fused score, 1-based rank in the BM25 and vector lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub chunk_id: u64,
    pub score: f32,
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    pub similarity: f32,
}

/// Fuses `candidates` (one entry per chunk, as `Index::hybrid_candidates` gives them) and returns the `k` best, best first. Ties are broken by the better
/// single rank, then by chunk id, so results are deterministic.
pub fn fuse(candidates: &[Candidate], fusion: Fusion, k: usize) -> Vec<Fused> {
    let scores: Vec<f32> = match fusion {
        Fusion::Rrf => candidates
            .iter()
            .map(|c| {
                c.bm25.map_or(0.0, |(r, _)| 1.0 / (RRF_K + r as f32))
                    + c.vector_rank.map_or(0.0, |r| 1.0 / (RRF_K + r as f32))
            })
            .collect(),
        Fusion::Convex { vector_weight } => {
            let w = vector_weight.clamp(0.0, 1.0);
            let bm25 = |c: &Candidate| c.bm25.map(|(_, s)| s);
            let (bm25_min, bm25_max) = min_max(candidates.iter().filter_map(bm25));
            // Each score is scaled over its own retriever's list: the vector range from the
            // chunks the vector search returned, not from BM25-only stragglers, whose
            // similarity can be anything (one unrelated chunk at -0.2 would compress every
            // real difference between the vector hits). Below the list's floor is 0.
            let listed = candidates.iter().filter(|c| c.vector_rank.is_some());
            let (cos_min, cos_max) = match min_max(listed.map(|c| c.similarity)) {
                (lo, hi) if lo <= hi => (lo, hi),
                // No vector list (empty index side): scale over every candidate.
                _ => min_max(candidates.iter().map(|c| c.similarity)),
            };
            candidates
                .iter()
                .map(|c| {
                    let lexical = bm25(c).map_or(0.0, |s| scaled(s, bm25_min, bm25_max));
                    w * scaled(c.similarity, cos_min, cos_max) + (1.0 - w) * lexical
                })
                .collect()
        }
    };
    let mut fused: Vec<Fused> = candidates
        .iter()
        .zip(scores)
        .map(|(c, score)| Fused {
            chunk_id: c.chunk_id,
            score,
            bm25_rank: c.bm25.map(|(r, _)| r),
            vector_rank: c.vector_rank,
            similarity: c.similarity,
        })
        .collect();
    let best_rank = |f: &Fused| {
        f.bm25_rank
            .unwrap_or(usize::MAX)
            .min(f.vector_rank.unwrap_or(usize::MAX))
    };
    fused.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(best_rank(a).cmp(&best_rank(b)))
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    fused.truncate(k);
    fused
}

fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// `value` mapped to [0, 1] over `[lo, hi]` (clamped); 1 when every candidate scored the
/// same.
fn scaled(value: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        ((value - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        id: u64,
        bm25: Option<(usize, f32)>,
        vector_rank: Option<usize>,
        sim: f32,
    ) -> Candidate {
        Candidate {
            chunk_id: id,
            bm25,
            vector_rank,
            similarity: sim,
            address: None,
        }
    }

    #[test]
    fn rrf_agreement_beats_a_single_first_place() {
        // 7 is second in both lists; 1 is first in BM25 only; 9 first in vectors only.
        let candidates = [
            candidate(9, None, Some(1), 0.9),
            candidate(7, Some((2, 5.0)), Some(2), 0.8),
            candidate(4, None, Some(3), 0.7),
            candidate(1, Some((1, 6.0)), None, 0.1),
            candidate(3, Some((3, 4.0)), None, 0.1),
        ];
        let fused = fuse(&candidates, Fusion::Rrf, 10);
        assert_eq!(fused[0].chunk_id, 7);
        assert_eq!(fused[0].bm25_rank, Some(2));
        assert_eq!(fused[0].vector_rank, Some(2));
        let expected = 2.0 / (RRF_K + 2.0);
        assert!((fused[0].score - expected).abs() < 1e-7);
        // 1 and 9 tie on score; the tie is broken by chunk id.
        assert_eq!(fused[1].chunk_id, 1);
        assert_eq!(fused[2].chunk_id, 9);
        assert_eq!(fused.len(), 5);
        assert_eq!(fuse(&candidates, Fusion::Rrf, 1).len(), 1);
        assert!(fuse(&[], Fusion::Rrf, 3).is_empty());
    }

    #[test]
    fn convex_keeps_score_margins_and_weights() {
        // BM25 barely prefers 1 over 2; the vectors strongly prefer 2.
        let candidates = [
            candidate(1, Some((1, 10.0)), Some(2), 0.30),
            candidate(2, Some((2, 9.9)), Some(1), 0.80),
            candidate(3, Some((3, 1.0)), None, 0.20),
        ];
        let fused = fuse(&candidates, Fusion::Convex { vector_weight: 0.5 }, 3);
        let order: Vec<u64> = fused.iter().map(|f| f.chunk_id).collect();
        assert_eq!(order, vec![2, 1, 3]);
        // All weight on BM25 gives BM25's order back; all on vectors, the cosine order.
        let lexical = fuse(&candidates, Fusion::Convex { vector_weight: 0.0 }, 3);
        assert_eq!(lexical[0].chunk_id, 1);
        let semantic = fuse(&candidates, Fusion::Convex { vector_weight: 1.0 }, 3);
        assert_eq!(semantic[0].chunk_id, 2);
        assert!((semantic[0].score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn convex_handles_a_missing_bm25_list() {
        let candidates = [
            candidate(1, None, Some(1), 0.5),
            candidate(2, None, Some(2), 0.4),
        ];
        let fused = fuse(&candidates, Fusion::Convex { vector_weight: 0.7 }, 5);
        assert_eq!(fused.len(), 2);
        assert_eq!(fused[0].chunk_id, 1);
        assert!(fused.iter().all(|f| f.score.is_finite()));
    }

    #[test]
    fn convex_scales_cosine_over_the_vector_list_only() {
        // 5 is BM25's first but unrelated in meaning (cosine -0.2): it must not stretch the
        // cosine scale so far that the vector hits' real differences vanish.
        let candidates = [
            candidate(1, None, Some(1), 0.60),
            candidate(2, Some((2, 5.0)), Some(2), 0.40),
            candidate(5, Some((1, 6.0)), None, -0.20),
        ];
        let fused = fuse(&candidates, Fusion::Convex { vector_weight: 0.7 }, 3);
        let order: Vec<u64> = fused.iter().map(|f| f.chunk_id).collect();
        assert_eq!(order, vec![1, 5, 2]);
        // 5 gets its BM25 share and nothing from the cosine side.
        assert!((fused[1].score - 0.3).abs() < 1e-6, "{fused:?}");
    }
}
