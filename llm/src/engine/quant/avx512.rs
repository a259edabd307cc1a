//! The AVX-512 VNNI kernels: all 16 rows of a group in one zmm register (one 32-bit lane per
//! row), `vpdpbusd` against 4 broadcast activation bytes; signed Q8_0 codes are offset by
//! +128 here (so its `m = 128·d` folds into the integer sums). Every function here is
//! `unsafe`: it needs AVX-512 F/BW/VL/VNNI (checked by `Isa::available` before a kernel is
//! picked) and reads `nb` tiles, scale sets and token blocks through raw pointers that the
//! caller derived from slices long enough for that.

use std::arch::x86_64::*;

use super::x86::{Fmt, Sc, ScF16, ScF32, ScF32K, ScK, Q4, Q5, Q8, U8};
use super::{GroupPtrs, G};

/// A tile format's AVX-512 loads.
pub(super) trait Fmt512: Fmt {
    /// The 8 chunks of all 16 rows, as u8 (`SIGNED` codes are offset by +128).
    unsafe fn load512(tile: *const u8) -> [__m512i; 8];
}

#[inline(always)]
unsafe fn nib512(tile: *const u8) -> [__m512i; 8] {
    let mask = _mm512_set1_epi8(0x0F);
    let mut w = [_mm512_setzero_si512(); 8];
    for h in 0..4 {
        let v = _mm512_loadu_si512(tile.add(h * 64) as *const __m512i);
        w[2 * h] = _mm512_and_si512(v, mask);
        w[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
    }
    w
}

impl Fmt512 for Q4 {
    #[inline(always)]
    unsafe fn load512(tile: *const u8) -> [__m512i; 8] {
        nib512(tile)
    }
}

impl Fmt512 for Q5 {
    #[inline(always)]
    unsafe fn load512(tile: *const u8) -> [__m512i; 8] {
        let mut w = nib512(tile);
        let hb = _mm512_loadu_si512(tile.add(256) as *const __m512i);
        let b4 = _mm512_set1_epi8(0x10);
        for (q, w) in w.iter_mut().enumerate() {
            let k = _mm512_test_epi8_mask(hb, _mm512_set1_epi8(1 << q));
            *w = _mm512_mask_add_epi8(*w, k, *w, b4);
        }
        w
    }
}

#[inline(always)]
unsafe fn bytes512(tile: *const u8) -> [__m512i; 8] {
    let mut w = [_mm512_setzero_si512(); 8];
    for (q, w) in w.iter_mut().enumerate() {
        *w = _mm512_loadu_si512(tile.add(q * 64) as *const __m512i);
    }
    w
}

impl Fmt512 for Q8 {
    #[inline(always)]
    unsafe fn load512(tile: *const u8) -> [__m512i; 8] {
        let mut w = bytes512(tile);
        let off = _mm512_set1_epi8(-128);
        for w in w.iter_mut() {
            *w = _mm512_xor_si512(*w, off);
        }
        w
    }
}

impl Fmt512 for U8 {
    #[inline(always)]
    unsafe fn load512(tile: *const u8) -> [__m512i; 8] {
        bytes512(tile)
    }
}

/// How AVX-512 reads a matrix's scales: 16 consecutive values from element `i`; `m` may
/// be computed from `d`.
pub(super) trait Sc512: Sc {
    unsafe fn d512(d: *const u8, i: usize) -> __m512;
    unsafe fn m512(m: *const u8, i: usize, d: __m512) -> __m512;
}

impl<const K: u32> Sc512 for ScF32K<K> {
    #[inline(always)]
    unsafe fn d512(d: *const u8, i: usize) -> __m512 {
        _mm512_loadu_ps((d as *const f32).add(i))
    }
    #[inline(always)]
    unsafe fn m512(_m: *const u8, _i: usize, d: __m512) -> __m512 {
        _mm512_mul_ps(d, _mm512_set1_ps(K as f32))
    }
}

impl Sc512 for ScF32 {
    #[inline(always)]
    unsafe fn d512(d: *const u8, i: usize) -> __m512 {
        _mm512_loadu_ps((d as *const f32).add(i))
    }
    #[inline(always)]
    unsafe fn m512(m: *const u8, i: usize, _d: __m512) -> __m512 {
        _mm512_loadu_ps((m as *const f32).add(i))
    }
}

#[inline(always)]
unsafe fn h512(p: *const u8, i: usize) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(
        (p as *const u16).add(i) as *const __m256i
    ))
}

impl Sc512 for ScF16 {
    #[inline(always)]
    unsafe fn d512(d: *const u8, i: usize) -> __m512 {
        h512(d, i)
    }
    #[inline(always)]
    unsafe fn m512(m: *const u8, i: usize, _d: __m512) -> __m512 {
        h512(m, i)
    }
}

impl<const K: u32> Sc512 for ScK<K> {
    #[inline(always)]
    unsafe fn d512(d: *const u8, i: usize) -> __m512 {
        h512(d, i)
    }
    #[inline(always)]
    unsafe fn m512(_m: *const u8, _i: usize, d: __m512) -> __m512 {
        _mm512_mul_ps(d, _mm512_set1_ps(K as f32))
    }
}

#[inline(always)]
unsafe fn bcast4_512(x: *const i8) -> __m512i {
    _mm512_set1_epi32(std::ptr::read_unaligned(x as *const i32))
}

/// AVX-512 VNNI: all 16 rows × `T` tokens in zmm registers.
#[allow(clippy::needless_range_loop)] // t indexes the token pointers and accumulators
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn group_vnni<F: Fmt512, S: Sc512, const T: usize>(
    p: &GroupPtrs<T>,
    nb: usize,
    out: &mut [[f32; G]; T],
) {
    let hs = if F::SUB16 { 2 } else { 1 };
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        let w = F::load512(p.qs.add(b * F::TB));
        let sb = b * hs * G;
        let d0 = S::d512(p.d, sb);
        let m0 = S::m512(p.m, sb, d0);
        let (d1, m1) = if F::SUB16 {
            let d1 = S::d512(p.d, sb + G);
            (d1, S::m512(p.m, sb + G, d1))
        } else {
            (d0, m0)
        };
        for t in 0..T {
            let x = p.xq[t].add(32 * b);
            let dx = _mm512_set1_ps(*p.dx[t].add(b));
            // Two independent chains of 4 for latency. K formats (including Q8_0, offset
            // by +128 here) start from −K·Σq instead of subtracting a float min term.
            let (mut i0, mut i1) = if S::K == 0 {
                (_mm512_setzero_si512(), _mm512_setzero_si512())
            } else if F::SUB16 {
                (
                    _mm512_set1_epi32(-S::K * *p.qsum[t].add(2 * b)),
                    _mm512_set1_epi32(-S::K * *p.qsum[t].add(2 * b + 1)),
                )
            } else {
                (
                    _mm512_set1_epi32(-S::K * *p.qsum[t].add(b)),
                    _mm512_setzero_si512(),
                )
            };
            for k in 0..4 {
                i0 = _mm512_dpbusd_epi32(i0, w[k], bcast4_512(x.add(4 * k)));
                i1 = _mm512_dpbusd_epi32(i1, w[4 + k], bcast4_512(x.add(16 + 4 * k)));
            }
            if F::SUB16 {
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(d0, dx), acc[t]);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), _mm512_mul_ps(d1, dx), acc[t]);
                if S::K == 0 {
                    acc[t] = _mm512_fnmadd_ps(m0, _mm512_set1_ps(*p.s[t].add(2 * b)), acc[t]);
                    acc[t] = _mm512_fnmadd_ps(m1, _mm512_set1_ps(*p.s[t].add(2 * b + 1)), acc[t]);
                }
            } else {
                let i = _mm512_add_epi32(i0, i1);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(d0, dx), acc[t]);
                if S::K == 0 {
                    acc[t] = _mm512_fnmadd_ps(m0, _mm512_set1_ps(*p.s[t].add(b)), acc[t]);
                }
            }
        }
    }
    for t in 0..T {
        _mm512_storeu_ps(out[t].as_mut_ptr(), acc[t]);
    }
}
