//! Causal grouped-query attention over the f32 KV cache: the scores `q·kⱼ`, their softmax,
//! and the weighted sum of the values, per head on the pool.
//!
//! Greedy tokens must equal llama.cpp's, and SmolLM2's are sensitive to the last bit (an
//! FMA in the dot products, or a polynomial `exp`, each flipped a near-tie of the greedy
//! test), so every variant here computes the bits of the plain loops in [`scalar`]: each
//! score one dot product summed per 8-float lane (multiply, then add) and the lanes then
//! summed in order; `exp` from libm, summed in order; each output the values summed over
//! positions in order. The AVX2 kernels, chosen at run time (the model's [`Isa`]; forcing
//! `Isa::Scalar` runs the plain loops), gain their speed from independence,
//! not reordering: eight keys are scored at once (eight add chains instead of one
//! latency-bound chain, the lane sums done as 4×8 transposes) and the output row stays
//! in registers across all positions. On AVX-512 a prompt's queries are also taken four
//! at a time (`avx512`), each key and value loaded once for the four, with every score
//! and output still computed by the same operations in the same order. A GEMM over query
//! blocks that reorders the sums would be faster still but moved SmolLM2's logits by up
//! to 0.5.

use std::sync::Mutex;

use super::pool::Pool;
use super::quant::Isa;
use super::transformer::TransformerConfig;

/// Attention for `n` new tokens at positions `start..start + n` against every cached key
/// and value (`keys`/`values`: token-major, `kv_dim` floats per position). `q` is
/// token-major too; the output is head-major: head h, token t at `(h * n + t) * head_dim`.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention(
    c: &TransformerConfig,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    start: usize,
    n: usize,
    out: &mut Vec<f32>,
    pool: &Pool,
    isa: Isa,
) {
    // The unsafe kernels below need the CPU to have `isa`.
    let isa = if isa.available() { isa } else { Isa::Scalar };
    let hd = c.head_dim;
    out.clear();
    out.resize(c.n_heads * n * hd, 0.0);
    let group = c.n_heads / c.n_kv_heads;
    let (q_dim, kv_dim) = (c.n_heads * hd, c.n_kv_heads * hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let wide = isa != Isa::Scalar && hd.is_multiple_of(8);
    let blocked = isa == Isa::Avx512Vnni && hd.is_multiple_of(32) && n >= QUERY_BLOCK;
    // Each task owns one head's output; the mutexes are never contended.
    let slots: Vec<Mutex<&mut [f32]>> = out.chunks_mut(n * hd).map(Mutex::new).collect();
    pool.run(c.n_heads, &|h| {
        let Ok(mut slot) = slots[h].lock() else {
            return;
        };
        let kv = h / group;
        let head_keys = &keys[kv * hd..];
        let head_values = &values[kv * hd..];
        let mut scores = vec![0.0f32; start + n];
        let mut t = 0;
        if blocked {
            let width = start + n;
            let mut block_scores = vec![0.0f32; QUERY_BLOCK * width];
            while t + QUERY_BLOCK <= n {
                let query = |i: usize| {
                    let at = (t + i) * q_dim + h * hd;
                    &q[at..at + hd]
                };
                let queries: [&[f32]; QUERY_BLOCK] = std::array::from_fn(query);
                // Every query of the block is scored against the block's longest prefix;
                // the few scores past a query's own position are computed and ignored.
                let longest = start + t + QUERY_BLOCK;
                let rows = &mut slot[t * hd..(t + QUERY_BLOCK) * hd];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `blocked` means the CPU has AVX-512 F/VL (and AVX2);
                // shapes are checked inside.
                unsafe {
                    avx512::scores(
                        &queries,
                        head_keys,
                        kv_dim,
                        scale,
                        longest,
                        &mut block_scores,
                        width,
                    );
                    let mut weights: [&[f32]; QUERY_BLOCK] = [&[]; QUERY_BLOCK];
                    for (i, (w, own)) in weights
                        .iter_mut()
                        .zip(block_scores.chunks_mut(width))
                        .enumerate()
                    {
                        let own = &mut own[..start + t + i + 1];
                        softmax(own);
                        *w = own;
                    }
                    avx512::weighted_sum(&weights, head_values, kv_dim, rows);
                }
                t += QUERY_BLOCK;
            }
        }
        for t in t..n {
            let query = &q[t * q_dim + h * hd..t * q_dim + (h + 1) * hd];
            let scores = &mut scores[..start + t + 1];
            let row = &mut slot[t * hd..(t + 1) * hd];
            if wide {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `wide` means the CPU has AVX2 and FMA; shapes are checked inside.
                unsafe {
                    avx2::scores(query, head_keys, kv_dim, scale, scores);
                    softmax(scores);
                    avx2::weighted_sum(scores, head_values, kv_dim, row);
                }
            } else {
                scalar::scores(query, head_keys, kv_dim, scale, scores);
                softmax(scores);
                scalar::weighted_sum(scores, head_values, kv_dim, row);
            }
        }
    });
}

/// Prompt tokens attended together by the blocked kernels. The one-query loop reads the
/// head's whole cache for every query (256 KB at 1,000 positions: from L2, whose
/// bandwidth then bounds it); a block of four reads each key and value once for all four.
const QUERY_BLOCK: usize = 4;

/// Softmax in place: libm's `exp`, summed in order.
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - max).exp();
        sum += *score;
    }
    let inv = 1.0 / sum;
    for score in scores.iter_mut() {
        *score *= inv;
    }
}

mod scalar {
    /// `scores[j] = (query · key j) · scale`, key j at `keys[j * stride..][..query.len()]`.
    pub(super) fn scores(query: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
        let hd = query.len();
        for (j, score) in out.iter_mut().enumerate() {
            *score = dot(query, &keys[j * stride..j * stride + hd]) * scale;
        }
    }

    /// `row = Σⱼ weights[j] · value j`, value j at `values[j * stride..][..row.len()]`.
    pub(super) fn weighted_sum(weights: &[f32], values: &[f32], stride: usize, row: &mut [f32]) {
        let hd = row.len();
        row.fill(0.0);
        for (j, &weight) in weights.iter().enumerate() {
            for (o, v) in row.iter_mut().zip(&values[j * stride..j * stride + hd]) {
                *o += weight * v;
            }
        }
    }

    /// Summed per 8-float lane, then across lanes, like the AVX2 kernel.
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = a.len() / 8 * 8;
        for (x, y) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        let tail: f32 = a[chunks..]
            .iter()
            .zip(&b[chunks..])
            .map(|(x, y)| x * y)
            .sum();
        acc.iter().sum::<f32>() + tail
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// The 8 lanes of each of `a..d` summed in lane order (`((x₀ + x₁) + x₂) + …`, as
    /// [`super::scalar::dot`] sums its lanes), as one `[a, b, c, d]` vector.
    #[inline(always)]
    pub(super) unsafe fn lane_sums4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
        // Transposes the 4×8 lanes into eight [aₖ, bₖ, cₖ, dₖ] columns, added in order.
        let columns = |a: __m128, b: __m128, c: __m128, d: __m128| {
            let (t0, t1) = (_mm_unpacklo_ps(a, b), _mm_unpacklo_ps(c, d));
            let (t2, t3) = (_mm_unpackhi_ps(a, b), _mm_unpackhi_ps(c, d));
            [
                _mm_movelh_ps(t0, t1),
                _mm_movehl_ps(t1, t0),
                _mm_movelh_ps(t2, t3),
                _mm_movehl_ps(t3, t2),
            ]
        };
        let low = columns(
            _mm256_castps256_ps128(a),
            _mm256_castps256_ps128(b),
            _mm256_castps256_ps128(c),
            _mm256_castps256_ps128(d),
        );
        let high = columns(
            _mm256_extractf128_ps(a, 1),
            _mm256_extractf128_ps(b, 1),
            _mm256_extractf128_ps(c, 1),
            _mm256_extractf128_ps(d, 1),
        );
        let mut sum = low[0];
        for column in low[1..].iter().chain(&high) {
            sum = _mm_add_ps(sum, *column);
        }
        sum
    }

    /// [`super::scalar::scores`], eight keys at a time, bit for bit. `query.len()` must be a
    /// multiple of 8.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scores(
        query: &[f32],
        keys: &[f32],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = query.len();
        assert!(hd.is_multiple_of(8));
        if out.is_empty() {
            return;
        }
        assert!((out.len() - 1) * stride + hd <= keys.len());
        // Pointer arithmetic by `wrapping_add`: `add` carries a precondition check in debug
        // builds that costs more than the arithmetic here; the bounds are asserted above.
        let q = query.as_ptr();
        let k = keys.as_ptr();
        let scale4 = _mm_set1_ps(scale);
        let mut j = 0;
        // Eight keys per pass: eight independent add chains keep both vector units busy.
        while j + 8 <= out.len() {
            let key = |i: usize| k.wrapping_add((j + i) * stride);
            let mut acc = [_mm256_setzero_ps(); 8];
            let mut d = 0;
            while d < hd {
                let qv = _mm256_loadu_ps(q.wrapping_add(d));
                for (i, a) in acc.iter_mut().enumerate() {
                    let kv = _mm256_loadu_ps(key(i).wrapping_add(d));
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(qv, kv));
                }
                d += 8;
            }
            let low = _mm_mul_ps(lane_sums4(acc[0], acc[1], acc[2], acc[3]), scale4);
            let high = _mm_mul_ps(lane_sums4(acc[4], acc[5], acc[6], acc[7]), scale4);
            _mm_storeu_ps(out.as_mut_ptr().wrapping_add(j), low);
            _mm_storeu_ps(out.as_mut_ptr().wrapping_add(j + 4), high);
            j += 8;
        }
        for (i, score) in out.iter_mut().enumerate().skip(j) {
            *score = super::scalar::dot(query, &keys[i * stride..i * stride + hd]) * scale;
        }
    }

    /// [`super::scalar::weighted_sum`] bit for bit, with the row held in registers, 64
    /// floats (8 registers) at a time, else 8. `row.len()` must be a multiple of 8.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn weighted_sum(
        weights: &[f32],
        values: &[f32],
        stride: usize,
        row: &mut [f32],
    ) {
        let hd = row.len();
        assert!(hd.is_multiple_of(8));
        if weights.is_empty() {
            row.fill(0.0);
            return;
        }
        assert!((weights.len() - 1) * stride + hd <= values.len());
        let v = values.as_ptr();
        let o = row.as_mut_ptr();
        let mut base = 0;
        while base + 64 <= hd {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &w) in weights.iter().enumerate() {
                let wv = _mm256_set1_ps(w);
                let vj = v.wrapping_add(j * stride + base);
                for (r, a) in acc.iter_mut().enumerate() {
                    let term = _mm256_mul_ps(wv, _mm256_loadu_ps(vj.wrapping_add(8 * r)));
                    *a = _mm256_add_ps(*a, term);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.wrapping_add(base + 8 * r), *a);
            }
            base += 64;
        }
        while base < hd {
            let mut acc = _mm256_setzero_ps();
            for (j, &w) in weights.iter().enumerate() {
                let vj = v.wrapping_add(j * stride + base);
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w), _mm256_loadu_ps(vj)));
            }
            _mm256_storeu_ps(o.wrapping_add(base), acc);
            base += 8;
        }
    }
}

/// Query-blocked kernels: four queries at once, each score and output computed with
/// exactly the operations of the one-query kernels (so the same bits), the keys and values
/// loaded once per block. AVX-512 VL gives the 32 vector registers the 4 × 4 accumulator
/// tiles need; the arithmetic stays 256-bit.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::avx2::lane_sums4;
    use super::QUERY_BLOCK;
    use std::arch::x86_64::*;

    /// `out[i * out_stride + j] = (queries[i] · key j) · scale` for `j < len`, each as
    /// [`super::scalar::scores`] computes it. Every query has the same length, a multiple
    /// of 8.
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    pub(super) unsafe fn scores(
        queries: &[&[f32]; QUERY_BLOCK],
        keys: &[f32],
        stride: usize,
        scale: f32,
        len: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let hd = queries[0].len();
        assert!(hd.is_multiple_of(8) && queries.iter().all(|q| q.len() == hd));
        if len == 0 {
            return;
        }
        assert!((len - 1) * stride + hd <= keys.len());
        assert!(len <= out_stride && (QUERY_BLOCK - 1) * out_stride + len <= out.len());
        let k = keys.as_ptr();
        let o = out.as_mut_ptr();
        let scale4 = _mm_set1_ps(scale);
        let mut j = 0;
        while j + 4 <= len {
            let mut acc = [[_mm256_setzero_ps(); 4]; QUERY_BLOCK];
            let mut d = 0;
            while d < hd {
                let kv: [__m256; 4] =
                    std::array::from_fn(|i| _mm256_loadu_ps(k.wrapping_add((j + i) * stride + d)));
                for (query, acc) in queries.iter().zip(acc.iter_mut()) {
                    let qv = _mm256_loadu_ps(query.as_ptr().wrapping_add(d));
                    for (a, kv) in acc.iter_mut().zip(kv) {
                        *a = _mm256_add_ps(*a, _mm256_mul_ps(qv, kv));
                    }
                }
                d += 8;
            }
            for (i, acc) in acc.iter().enumerate() {
                let sums = _mm_mul_ps(lane_sums4(acc[0], acc[1], acc[2], acc[3]), scale4);
                _mm_storeu_ps(o.wrapping_add(i * out_stride + j), sums);
            }
            j += 4;
        }
        for j in j..len {
            let key = &keys[j * stride..j * stride + hd];
            for (i, query) in queries.iter().enumerate() {
                out[i * out_stride + j] = super::scalar::dot(query, key) * scale;
            }
        }
    }

    /// `acc += weight · values`, multiply then add (no FMA), as the plain loop rounds.
    #[inline(always)]
    unsafe fn accumulate(acc: &mut [__m256; 4], weight: f32, values: [__m256; 4]) {
        let wv = _mm256_set1_ps(weight);
        for (a, v) in acc.iter_mut().zip(values) {
            *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, v));
        }
    }

    /// `rows[i] = Σⱼ weights[i][j] · value j` for each query `i`, as
    /// [`super::scalar::weighted_sum`] computes it: `rows` holds the four rows one after
    /// the other, each of a length that is a multiple of 32; `weights[i]` may differ in
    /// length (each query sees its own causal prefix).
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    pub(super) unsafe fn weighted_sum(
        weights: &[&[f32]; QUERY_BLOCK],
        values: &[f32],
        stride: usize,
        rows: &mut [f32],
    ) {
        let hd = rows.len() / QUERY_BLOCK;
        assert!(hd.is_multiple_of(32) && rows.len() == hd * QUERY_BLOCK);
        let longest = weights.iter().map(|w| w.len()).max().unwrap_or(0);
        if longest == 0 {
            rows.fill(0.0);
            return;
        }
        assert!((longest - 1) * stride + hd <= values.len());
        let shared = weights.iter().map(|w| w.len()).min().unwrap_or(0);
        let v = values.as_ptr();
        let o = rows.as_mut_ptr();
        let mut base = 0;
        while base < hd {
            let mut acc = [[_mm256_setzero_ps(); 4]; QUERY_BLOCK];
            // Positions every query sees: each value vector loaded once for all four.
            let load = |j: usize| -> [__m256; 4] {
                let vj = v.wrapping_add(j * stride + base);
                std::array::from_fn(|r| _mm256_loadu_ps(vj.wrapping_add(8 * r)))
            };
            for j in 0..shared {
                let vv = load(j);
                for (w, acc) in weights.iter().zip(acc.iter_mut()) {
                    accumulate(acc, w[j], vv);
                }
            }
            // Then each query's own tail, continuing its sums in order.
            for (i, (w, acc)) in weights.iter().zip(acc.iter_mut()).enumerate() {
                for (j, &weight) in w.iter().enumerate().skip(shared) {
                    accumulate(acc, weight, load(j));
                }
                for (r, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(o.wrapping_add(i * hd + base + 8 * r), *a);
                }
            }
            base += 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys/values with 3 heads' worth of interleaving, so strides and offsets matter.
    fn cache(positions: usize, stride: usize, seed: u32) -> Vec<f32> {
        (0..positions * stride)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn wide_kernels_compute_the_bits_of_the_plain_loops() {
        if Isa::detect() == Isa::Scalar {
            return;
        }
        for (hd, positions) in [(64, 1), (64, 7), (64, 130), (128, 33), (40, 9), (8, 5)] {
            let stride = hd * 3;
            let keys = cache(positions, stride, 1);
            let values = cache(positions, stride, 2);
            let query = &cache(1, hd, 3)[..hd];
            let offset = hd; // the second kv head
            let scale = 1.0 / (hd as f32).sqrt();
            let mut want = vec![0.0; positions];
            let mut got = vec![0.0; positions];
            scalar::scores(query, &keys[offset..], stride, scale, &mut want);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 and FMA were detected above.
            unsafe {
                avx2::scores(query, &keys[offset..], stride, scale, &mut got)
            };
            let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "scores, hd {hd}, {positions} positions"
            );
            softmax(&mut want);
            let (mut row_want, mut row_got) = (vec![0.0; hd], vec![1.0; hd]);
            scalar::weighted_sum(&want, &values[offset..], stride, &mut row_want);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            unsafe {
                avx2::weighted_sum(&want, &values[offset..], stride, &mut row_got)
            };
            assert_eq!(
                bits(&row_got),
                bits(&row_want),
                "values, hd {hd}, {positions} positions"
            );
        }
    }

    #[test]
    fn blocked_kernels_compute_the_bits_of_the_plain_loops() {
        if Isa::detect() != Isa::Avx512Vnni {
            return;
        }
        let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (hd, start) in [(64, 0), (64, 5), (64, 129), (128, 30), (32, 2)] {
            let stride = hd * 3;
            let positions = start + QUERY_BLOCK;
            let keys = cache(positions, stride, 1);
            let values = cache(positions, stride, 2);
            let queries_data = cache(QUERY_BLOCK, hd, 3);
            let queries: [&[f32]; QUERY_BLOCK] =
                std::array::from_fn(|i| &queries_data[i * hd..(i + 1) * hd]);
            let offset = hd;
            let scale = 1.0 / (hd as f32).sqrt();
            let width = positions + 3; // rows of the score buffer longer than needed
            let mut got = vec![0.0; QUERY_BLOCK * width];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512 was detected above.
            unsafe {
                avx512::scores(
                    &queries,
                    &keys[offset..],
                    stride,
                    scale,
                    positions,
                    &mut got,
                    width,
                )
            };
            let mut weights: Vec<Vec<f32>> = Vec::new();
            for (i, query) in queries.iter().enumerate() {
                let mut want = vec![0.0; positions];
                scalar::scores(query, &keys[offset..], stride, scale, &mut want);
                assert_eq!(
                    bits(&got[i * width..i * width + positions]),
                    bits(&want),
                    "scores, hd {hd}, start {start}, query {i}"
                );
                let mut own = want[..start + i + 1].to_vec();
                softmax(&mut own);
                weights.push(own);
            }
            let refs: [&[f32]; QUERY_BLOCK] = std::array::from_fn(|i| weights[i].as_slice());
            let mut rows = vec![1.0; QUERY_BLOCK * hd];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            unsafe {
                avx512::weighted_sum(&refs, &values[offset..], stride, &mut rows)
            };
            for (i, w) in weights.iter().enumerate() {
                let mut want = vec![0.0; hd];
                scalar::weighted_sum(w, &values[offset..], stride, &mut want);
                assert_eq!(
                    bits(&rows[i * hd..(i + 1) * hd]),
                    bits(&want),
                    "values, hd {hd}, start {start}, query {i}"
                );
            }
        }
    }

    #[test]
    fn one_position_attends_to_itself_only() {
        // With a single cached position the softmax weight is 1: the output is that value.
        let values = [0.5f32, -1.0, 2.0, 0.25, 1.0, 1.0, 1.0, 1.0];
        let mut weights = [3.7f32];
        softmax(&mut weights);
        let mut row = [0.0f32; 8];
        scalar::weighted_sum(&weights, &values, 8, &mut row);
        assert_eq!(row, values);
    }
}
