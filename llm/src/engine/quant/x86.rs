//! What the x86 kernels ([`super::avx2`], [`super::avx512`]) share: each layout's tile format
//! and each way a matrix stores its scales, as marker types carrying their constants. Each
//! instruction set adds its own loads on top ([`super::avx2::Fmt256`], [`super::avx2::Sc256`],
//! [`super::avx512::Fmt512`], [`super::avx512::Sc512`]); [`super::pick`] names the kernel for
//! a (layout, scales, instruction set).
//!
//! Register lane `r` (i32 / f32) holds row `r` of the group: a 64-byte chunk of a tile is
//! 16 rows × 4 consecutive codes, multiplied against 4 activation bytes broadcast to all
//! lanes (`vpdpbusd`, or `vpmaddubsw` + `vpmaddwd` on AVX2, 8 rows per register).

/// A layout's tile format.
pub(super) trait Fmt {
    /// Codes are signed (Q8_0).
    const SIGNED: bool;
    /// Two scales per block (per 16 elements).
    const SUB16: bool;
    /// Bytes per tile.
    const TB: usize;
    /// AVX2: how many `maddubs` results fit in i16 before `madd` (2·u_max·127 each).
    const I16_SUMS: usize;
}

pub(super) struct Q4;
pub(super) struct Q5;
pub(super) struct Q8;
pub(super) struct U8;

impl Fmt for Q4 {
    const SIGNED: bool = false;
    const SUB16: bool = false;
    const TB: usize = 256;
    const I16_SUMS: usize = 8;
}

impl Fmt for Q5 {
    const SIGNED: bool = false;
    const SUB16: bool = false;
    const TB: usize = 320;
    const I16_SUMS: usize = 4;
}

impl Fmt for Q8 {
    const SIGNED: bool = true;
    const SUB16: bool = false;
    const TB: usize = 512;
    const I16_SUMS: usize = 1;
}

impl Fmt for U8 {
    const SIGNED: bool = false;
    const SUB16: bool = true;
    const TB: usize = 512;
    const I16_SUMS: usize = 2;
}

/// How a matrix stores its scales `d` and mins `m` (f32 or f16; `m` stored, or computed
/// as `K·d`).
pub(super) trait Sc {
    /// `m = K·d` (folded into the integer sums as `−K·Σq`), or 0: `m` is loaded.
    const K: i32;
}

pub(super) struct ScF32;
pub(super) struct ScF16;
pub(super) struct ScK<const K: u32>;
pub(super) struct ScF32K<const K: u32>;

impl<const K: u32> Sc for ScF32K<K> {
    const K: i32 = K as i32;
}

impl Sc for ScF32 {
    const K: i32 = 0;
}

impl Sc for ScF16 {
    const K: i32 = 0;
}

impl<const K: u32> Sc for ScK<K> {
    const K: i32 = K as i32;
}
