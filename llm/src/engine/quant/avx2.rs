//! The AVX2 kernels: a group's 16 rows as two halves of 8 (one 32-bit lane per row of a ymm
//! register, `vpmaddubsw` + `vpmaddwd` against 4 broadcast activation bytes), and the
//! activation quantizer's AVX2 version. Every function here is `unsafe`: it needs AVX2, FMA
//! and F16C (checked by `Isa::available` before a kernel is picked) and reads `nb` tiles,
//! scale sets and token blocks through raw pointers that the caller derived from slices
//! long enough for that.

use std::arch::x86_64::*;

use super::x86::{Fmt, Sc, ScF16, ScF32, ScF32K, ScK, Q4, Q5, Q8, U8};
use super::{GroupPtrs, G};

/// A tile format's AVX2 loads.
pub(super) trait Fmt256: Fmt {
    /// The 8 chunks (codes 4q..4q+3 of the 8 rows `8·half..`) of a tile, as u8 (i8 for `SIGNED`).
    unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8];
}

#[inline(always)]
unsafe fn nib256(tile: *const u8, half: usize) -> [__m256i; 8] {
    let mask = _mm256_set1_epi8(0x0F);
    let mut w = [_mm256_setzero_si256(); 8];
    for h in 0..4 {
        let v = _mm256_loadu_si256(tile.add(h * 64 + half * 32) as *const __m256i);
        w[2 * h] = _mm256_and_si256(v, mask);
        w[2 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    }
    w
}

impl Fmt256 for Q4 {
    #[inline(always)]
    unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
        nib256(tile, half)
    }
}

impl Fmt256 for Q5 {
    #[inline(always)]
    unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
        let mut w = nib256(tile, half);
        let hb = _mm256_loadu_si256(tile.add(256 + half * 32) as *const __m256i);
        let b4 = _mm256_set1_epi8(0x10);
        for (q, w) in w.iter_mut().enumerate() {
            // Bit q of each byte → bit 4 (16-bit shifts: with |shift| ≤ 4 the bit that
            // lands on bit 4 of each byte comes from the same byte).
            let moved = if q <= 4 {
                _mm256_sll_epi16(hb, _mm_cvtsi32_si128(4 - q as i32))
            } else {
                _mm256_srl_epi16(hb, _mm_cvtsi32_si128(q as i32 - 4))
            };
            *w = _mm256_or_si256(*w, _mm256_and_si256(moved, b4));
        }
        w
    }
}

#[inline(always)]
unsafe fn bytes256(tile: *const u8, half: usize) -> [__m256i; 8] {
    let mut w = [_mm256_setzero_si256(); 8];
    for (q, w) in w.iter_mut().enumerate() {
        *w = _mm256_loadu_si256(tile.add(q * 64 + half * 32) as *const __m256i);
    }
    w
}

impl Fmt256 for Q8 {
    #[inline(always)]
    unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
        bytes256(tile, half)
    }
}

impl Fmt256 for U8 {
    #[inline(always)]
    unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
        bytes256(tile, half)
    }
}

/// How AVX2 reads a matrix's scales: 8 consecutive values from element `i`; `m` may be
/// computed from `d`.
pub(super) trait Sc256: Sc {
    unsafe fn d256(d: *const u8, i: usize) -> __m256;
    unsafe fn m256(m: *const u8, i: usize, d: __m256) -> __m256;
}

impl<const K: u32> Sc256 for ScF32K<K> {
    #[inline(always)]
    unsafe fn d256(d: *const u8, i: usize) -> __m256 {
        _mm256_loadu_ps((d as *const f32).add(i))
    }
    #[inline(always)]
    unsafe fn m256(_m: *const u8, _i: usize, d: __m256) -> __m256 {
        _mm256_mul_ps(d, _mm256_set1_ps(K as f32))
    }
}

impl Sc256 for ScF32 {
    #[inline(always)]
    unsafe fn d256(d: *const u8, i: usize) -> __m256 {
        _mm256_loadu_ps((d as *const f32).add(i))
    }
    #[inline(always)]
    unsafe fn m256(m: *const u8, i: usize, _d: __m256) -> __m256 {
        _mm256_loadu_ps((m as *const f32).add(i))
    }
}

#[inline(always)]
unsafe fn h256(p: *const u8, i: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128((p as *const u16).add(i) as *const __m128i))
}

impl Sc256 for ScF16 {
    #[inline(always)]
    unsafe fn d256(d: *const u8, i: usize) -> __m256 {
        h256(d, i)
    }
    #[inline(always)]
    unsafe fn m256(m: *const u8, i: usize, _d: __m256) -> __m256 {
        h256(m, i)
    }
}

impl<const K: u32> Sc256 for ScK<K> {
    #[inline(always)]
    unsafe fn d256(d: *const u8, i: usize) -> __m256 {
        h256(d, i)
    }
    #[inline(always)]
    unsafe fn m256(_m: *const u8, _i: usize, d: __m256) -> __m256 {
        _mm256_mul_ps(d, _mm256_set1_ps(K as f32))
    }
}

/// `quantize_block` for AVX2: 32 f32 at `x` → 32 i8 at `q`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_block_avx2(x: *const f32, q: *mut i8) -> (f32, i32, i32) {
    let v = [
        _mm256_loadu_ps(x),
        _mm256_loadu_ps(x.add(8)),
        _mm256_loadu_ps(x.add(16)),
        _mm256_loadu_ps(x.add(24)),
    ];
    let sign = _mm256_set1_ps(-0.0);
    let a = _mm256_max_ps(
        _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
        _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])),
    );
    let m = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    let amax = _mm_cvtss_f32(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
    let r: [__m256i; 4] = std::array::from_fn(|k| {
        _mm256_cvtps_epi32(_mm256_round_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(_mm256_mul_ps(v[k], id)))
    });
    let hsum = |v: __m256i| -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    };
    let s0 = hsum(_mm256_add_epi32(r[0], r[1]));
    let s1 = hsum(_mm256_add_epi32(r[2], r[3]));
    // ggml's packing: packs interleave 128-bit lanes, the permute restores the order.
    let p01 = _mm256_packs_epi32(r[0], r[1]);
    let p23 = _mm256_packs_epi32(r[2], r[3]);
    let p = _mm256_packs_epi16(p01, p23);
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q as *mut __m256i, p);
    (d, s0, s1)
}

/// 4 activation bytes broadcast to every 32-bit lane.
#[inline(always)]
unsafe fn bcast4_256(x: *const i8) -> __m256i {
    _mm256_set1_epi32(std::ptr::read_unaligned(x as *const i32))
}

/// AVX2: 8 rows (`half`) × `T` tokens, then the other 8.
#[allow(clippy::needless_range_loop)] // t indexes the token pointers and accumulators
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn group_avx2<F: Fmt256, S: Sc256, const T: usize>(
    p: &GroupPtrs<T>,
    nb: usize,
    out: &mut [[f32; G]; T],
) {
    let hs = if F::SUB16 { 2 } else { 1 };
    let ones = _mm256_set1_epi16(1);
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..nb {
            let w = F::load256(p.qs.add(b * F::TB), half);
            let mut wabs = w;
            if F::SIGNED {
                for v in wabs.iter_mut() {
                    *v = _mm256_sign_epi8(*v, *v);
                }
            }
            let sb = b * hs * G + half * 8;
            for t in 0..T {
                let x = p.xq[t].add(32 * b);
                let dx = _mm256_set1_ps(*p.dx[t].add(b));
                let per_half = 8 / hs;
                // K formats: start from −K·Σq (Q8_0 is signed here: no offset).
                let koff = !F::SIGNED && S::K != 0;
                for h in 0..hs {
                    let mut isum = if koff {
                        _mm256_set1_epi32(-S::K * *p.qsum[t].add(b * hs + h))
                    } else {
                        _mm256_setzero_si256()
                    };
                    let mut q = h * per_half;
                    while q < (h + 1) * per_half {
                        let mut s16 = _mm256_setzero_si256();
                        for k in q..(q + F::I16_SUMS).min((h + 1) * per_half) {
                            let xv = bcast4_256(x.add(4 * k));
                            let prod = if F::SIGNED {
                                _mm256_maddubs_epi16(wabs[k], _mm256_sign_epi8(xv, w[k]))
                            } else {
                                _mm256_maddubs_epi16(w[k], xv)
                            };
                            s16 = _mm256_add_epi16(s16, prod);
                        }
                        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16, ones));
                        q += F::I16_SUMS;
                    }
                    let dv = S::d256(p.d, sb + h * G);
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dv, dx), acc[t]);
                }
                if !F::SIGNED && !koff {
                    for h in 0..hs {
                        let mv = S::m256(p.m, sb + h * G, S::d256(p.d, sb + h * G));
                        let sv = _mm256_set1_ps(*p.s[t].add(b * hs + h));
                        acc[t] = _mm256_fnmadd_ps(mv, sv, acc[t]);
                    }
                }
            }
        }
        for t in 0..T {
            _mm256_storeu_ps(out[t].as_mut_ptr().add(half * 8), acc[t]);
        }
    }
}
