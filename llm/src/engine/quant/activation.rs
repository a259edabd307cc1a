//! Activation quantization: each call's `x` to int8 per block of 32 with an f32 scale and the
//! blocks' integer (and scaled) sums, as the [module doc](super) describes; over the pool
//! for long prompts, into a thread-local buffer reused across calls. The AVX2 quantizer
//! ([`super::avx2`]) computes the bits of the scalar one here.

use std::cell::RefCell;

use super::{Isa, Pool, QK};

/// Quantized activations: per token `cols` int8 values, `nb` scales, and (affine weights)
/// `nsub` scaled sums.
#[derive(Default)]
pub(super) struct Act {
    pub(super) xq: Vec<i8>,
    pub(super) dx: Vec<f32>,
    pub(super) s: Vec<f32>,
    /// Integer sums `Σq` per 32 (or 16) block.
    pub(super) qsum: Vec<i32>,
}

thread_local! {
    /// Reused activation buffer of the calling thread (no allocation per decode step).
    pub(super) static ACT: RefCell<Act> = RefCell::new(Act::default());
}

/// Raw pointers into an [`Act`]'s buffers, for filling disjoint token ranges in parallel.
#[derive(Clone, Copy)]
struct ActPtrs {
    xq: *mut i8,
    dx: *mut f32,
    s: *mut f32,
    qsum: *mut i32,
}
// SAFETY: the tasks of one `Act::quantize` write disjoint token ranges, and `run` returns
// before the buffers' borrow ends.
unsafe impl Send for ActPtrs {}
unsafe impl Sync for ActPtrs {}

impl ActPtrs {
    /// The pointers offset to block `bi` (methods, so closures capture the whole `Sync`
    /// struct rather than its raw-pointer fields).
    fn at(&self, bi: usize, sub16: bool) -> (*mut i8, *mut f32, *mut f32, *mut i32) {
        let k = if sub16 { 2 * bi } else { bi };
        (
            self.xq.wrapping_add(bi * QK),
            self.dx.wrapping_add(bi),
            self.s.wrapping_add(k),
            self.qsum.wrapping_add(k),
        )
    }
}

impl Act {
    /// Quantizes `n` tokens of `cols` values (in parallel over the pool for long prompts).
    /// `f16_scales` rounds each block's scale and scaled sum to f16, as ggml's Q8_0/Q8_1
    /// blocks store them (the integer codes are computed with the exact scale, as there).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn quantize(
        &mut self,
        x: &[f32],
        n: usize,
        cols: usize,
        sub16: bool,
        f16_scales: bool,
        isa: Isa,
        pool: &Pool,
    ) {
        let nb = cols / QK;
        self.xq.resize(n * cols, 0);
        self.dx.resize(n * nb, 0.0);
        let nsub = if sub16 { 2 * nb } else { nb };
        self.s.resize(n * nsub, 0.0);
        self.qsum.resize(n * nsub, 0);
        let p = ActPtrs {
            xq: self.xq.as_mut_ptr(),
            dx: self.dx.as_mut_ptr(),
            s: self.s.as_mut_ptr(),
            qsum: self.qsum.as_mut_ptr(),
        };
        // `isa` is one the CPU has (checked by `matmul_isa`).
        let simd = isa != Isa::Scalar;
        let work = |t0: usize, t1: usize| {
            for bi in t0 * nb..t1 * nb {
                let xb = &x[bi * QK..(bi + 1) * QK];
                // SAFETY: block `bi` of the buffers (sized above for `n` tokens) belongs to
                // exactly one token, and each token to exactly one call of `work`.
                let (xq, dx, ps, pq) = p.at(bi, sub16);
                let qb = unsafe { std::slice::from_raw_parts_mut(xq, QK) };
                let (d, s0, s1) = quantize_block(xb, qb, simd);
                let stored = |v: f32| {
                    if f16_scales {
                        half::f16::from_f32(v).to_f32()
                    } else {
                        v
                    }
                };
                // SAFETY: as above; `bi < n·nb` and `2·bi + 1 < n·nsub` when `sub16`.
                unsafe {
                    *dx = stored(d);
                    if sub16 {
                        *ps = stored(d * s0 as f32);
                        *ps.add(1) = stored(d * s1 as f32);
                        *pq = s0;
                        *pq.add(1) = s1;
                    } else {
                        *ps = stored(d * (s0 + s1) as f32);
                        *pq = s0 + s1;
                    }
                }
            }
        };
        const CHUNK: usize = 16;
        if n >= 2 * CHUNK && pool.threads() > 1 {
            pool.run(n.div_ceil(CHUNK), &|c| {
                work(c * CHUNK, ((c + 1) * CHUNK).min(n))
            });
        } else {
            work(0, n);
        }
    }
}

/// Quantizes 32 values to int8 (`q = round_ties_even(x·127/max|x|)`); returns the scale
/// `max|x|/127` and the integer sums of the two halves. The AVX2 version computes the
/// same values bit for bit.
fn quantize_block(x: &[f32], q: &mut [i8], simd: bool) -> (f32, i32, i32) {
    assert!(x.len() == QK && q.len() == QK);
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is set only when AVX2/FMA/F16C were detected; both slices hold 32
        // elements (asserted).
        return unsafe { super::avx2::quantize_block_avx2(x.as_ptr(), q.as_mut_ptr()) };
    }
    let _ = simd;
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let mut s = [0i32; 2];
    for (i, (q, v)) in q.iter_mut().zip(x).enumerate() {
        let r = (v * id).round_ties_even().clamp(-127.0, 127.0) as i32;
        *q = r as i8;
        s[i / 16] += r;
    }
    (d, s[0], s[1])
}

#[cfg(test)]
mod tests {
    use super::super::tests::rand_vec;
    use super::*;

    /// The AVX2 activation quantizer equals the scalar one bit for bit (ties, zeros, sums).
    #[test]
    fn quantize_block_simd_matches_scalar() {
        if Isa::detect() == Isa::Scalar {
            return;
        }
        let mut blocks = vec![
            vec![0f32; 32],
            (0..32).map(|i| i as f32 - 15.5).collect::<Vec<_>>(),
        ];
        // Exact ties after scaling: max 127 → id = 1.
        blocks.push(
            (0..32)
                .map(|i| if i == 0 { 127.0 } else { (i as f32) + 0.5 })
                .collect(),
        );
        for seed in 0..200 {
            blocks.push(
                rand_vec(32, seed)
                    .iter()
                    .map(|v| v * (seed as f32 + 1.0))
                    .collect(),
            );
        }
        for x in &blocks {
            let (mut a, mut b) = ([0i8; 32], [0i8; 32]);
            let ra = quantize_block(x, &mut a, false);
            let rb = quantize_block(x, &mut b, true);
            assert_eq!(a, b, "{x:?}");
            assert_eq!(ra.0.to_bits(), rb.0.to_bits());
            assert_eq!((ra.1, ra.2), (rb.1, rb.2));
        }
    }

    #[test]
    #[ignore]
    fn bench_act_quantize() {
        let x: Vec<f32> = (0..512 * 4864)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut a = super::Act::default();
        let pool = super::Pool::new(1);
        let isa = super::Isa::detect();
        a.quantize(&x, 512, 4864, false, false, isa, &pool);
        let t0 = std::time::Instant::now();
        for _ in 0..10 {
            a.quantize(&x, 512, 4864, false, false, isa, &pool);
        }
        println!("quantize 512x4864: {:?} per call", t0.elapsed() / 10);
    }
}
