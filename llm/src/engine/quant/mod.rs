//! Quantized weight matrices and the integer matmul kernels behind Lore's own LLM engine.
//!
//! # Method (llama.cpp's)
//! `y = x · Wᵀ` with `W` quantized in blocks of 32 (or 16) elements along a row. The
//! activations `x` are quantized once per call, per block of 32, to int8 with an f32 scale
//! `dx` (Q8_0-like: `dx = max|x| / 127`, `q = round(x / dx)`), keeping for affine weight
//! formats the scaled sum `s = dx · Σq` of each 32 (or 16) block. Every weight format is
//! loaded (repacked once) into an *affine* form: per group `g` of 32 (or 16) elements
//! `w = d_g · u − m_g` with small unsigned integer codes `u`, so that
//!
//! `Σ w·x ≈ Σ_g d_g·dx_g·(Σ u·q) − Σ_g m_g·s_g`.
//!
//! The integer sums `Σ u·q` are computed exactly (AVX-512 VNNI `vpdpbusd`, or AVX2
//! `vpmaddubsw` + `vpmaddwd`), then scaled and accumulated in f32 lanes (one per weight row).
//! Where `m = k·d` (Q4_0, Q5_0, Q6_K, Q3_K, and Q8_0 stored with a +128 offset on the VNNI
//! path) the min term is folded into the integer sum as `−k·Σq`; otherwise (Q4_1, Q5_1,
//! Q4_K, Q5_K, Q2_K) it is one f32 FMA per block. On AVX2 and in the scalar code Q8_0 stays
//! signed and uses ggml's sign trick (`|w| · sign(x, w)`), since `vpmaddubsw` would saturate
//! on codes up to 255.
//!
//! # Layouts
//! Rows are stored in groups of `G = 16` (the last group padded with zero rows). For each
//! group and each 32-element block `b` of the row there is one *tile* of codes, and the tiles
//! of a group follow each other (`qs[(g·nb + b)·tile_bytes ..]`), so a kernel streams one
//! group's weights linearly. Inside a tile, a 64-byte chunk holds 4 consecutive codes of each
//! of the 16 rows (`chunk[4·r + j]`), i.e. one 32-bit lane per row, which is exactly what
//! `vpdpbusd` / `vpmaddubsw + vpmaddwd` against 4 broadcast activation bytes consume:
//!
//! | layout | from | tile | chunk `h` / `q` holds |
//! | --- | --- | --- | --- |
//! | `Q4` | Q4_0, Q4_1, Q4_K | 256 B = 4 chunks | byte `4r+j` of chunk `h` = `u[8h+j] | u[8h+4+j] << 4` |
//! | `Q5` | Q5_0, Q5_1, Q5_K | 320 B: `Q4` + 64 B | the extra chunk: bit `q` of byte `4r+j` = bit 4 of `u[4q+j]` |
//! | `Q8` | Q8_0 | 512 B = 8 chunks | byte `4r+j` of chunk `q` = `u[4q+j]` (signed) |
//! | `U8` | Q6_K, Q3_K, Q2_K | 512 B = 8 chunks | as `Q8`, unsigned codes ≤ 63 |
//! | `F32` | F32, F16, BF16 | – | plain row-major f32 (`f`) |
//!
//! Scales `d` and mins `m` are stored per (group, block, half, row):
//! `[(g·nb + b)·halves + h]·16 + r`, with `halves = 2` for `U8` (per-16 scales) and 1
//! otherwise, and kept as compact as exactness allows (`Scales`): f16 as in the GGUF
//! block for Q4_0/Q5_0/Q8_0 (`m = 8d`, `16d`, `128d` computed, not stored) and Q4_1/Q5_1
//! (`m` stored as f16), f32 for the K-quants (`d·sc` is no f16).
//!
//! The repacks are exact (every weight dequantizes to the value ggml computes, up to one f32
//! rounding where ggml's own expression rounds):
//! - Q4_0 `d·(q−8)` → `u = q, m = 8d`; Q5_0 likewise with `m = 16d`; Q4_1/Q5_1 `d·q + m` →
//!   `m_g = −m`.
//! - Q4_K / Q5_K: each 32-element sub-block of a 256 super-block is `(d·sc)·q − dmin·mn`,
//!   stored as `d_g = d·sc`, `m_g = dmin·mn` (both exact in f32).
//! - Q6_K: 16-element sub-blocks `d·sc·(q−32)` → `u = q` (6 bits), `d_g = d·sc`, `m_g = 32·d_g`.
//! - Q3_K: `d·(sc−32)·(q−4·[hbit=0])` → `u = q + 4·hbit` (0..7), `d_g = d·(sc−32)`,
//!   `m_g = 4·d_g`.
//! - Q2_K: `d·(sc&15)·q − dmin·(sc>>4)` per 16 → `d_g`, `m_g` directly.
//! - F16/BF16 are widened to f32 (matmul in f32; these are rare for matrices).
//!
//! Sizes per weight (GGUF in brackets): Q4_0 4.5 (4.5), Q4_1 5 (5), Q5_0 5.5 (5.5), Q5_1 6
//! (6), Q8_0 8.5 (8.5), Q4_K 6 (4.5), Q5_K 7 (5.5), Q6_K 10 (6.56), Q3_K 10 (3.44), Q2_K 12
//! (2.63) bits. The `U8` layout trades memory (and decode bandwidth) for one simple kernel:
//! worth revisiting if Q6_K/Q3_K/Q2_K matrices dominate a model.
//!
//! # Kernels
//! A kernel computes one group (16 rows) against `T` tokens over the whole row: per 32-block
//! it decodes the group's tile once into registers (8 × 64 bytes) and reuses it for `T`
//! tokens (8 `vpdpbusd` per token and block, whose 16 i32 lanes are the 16 rows; then one
//! convert + FMA with the 16 row scales × the token's scale, and one FMA for a stored min).
//! Decode (`n_tokens == 1`) uses `T = 1` and splits groups over the [`Pool`]; the prompt path
//! uses `T = 8` (AVX-512; 4 for 2–4 tokens) or 3 (AVX2: 8 rows per register, two passes), splits
//! (4 groups × 64 tokens) tasks, so a task's weights stay in L1/L2 and its int8 activations
//! in L2. Activations are quantized with AVX2 (bit-identical to the scalar code), over the
//! pool for long prompts, into a thread-local buffer reused across calls. The instruction
//! set (scalar, AVX2+FMA+F16C, AVX-512 F/BW/VL/VNNI) is detected once at run time; the
//! caller may force a lesser one ([`Isa::choose`], from [`crate::LoadOptions::isa`]: Lore's
//! `quant_isa` setting, `LORE_QUANT_ISA=scalar|avx2`). All paths compute the same integer
//! sums, so they differ only in f32 rounding.
//!
//! # Modules
//! - `repack`: GGUF blocks into the layouts above, and values read back out of them;
//! - `activation`: the per-call int8 quantization of the activations;
//! - the kernels, one module per instruction set: `scalar`, `avx2`, `avx512` (AVX-512 VNNI),
//!   the last two sharing the tile formats and scale storage of `x86`;
//! - this module: the matrix type ([`QMatrix`]), the instruction set ([`Isa`]), and the
//!   matmul driver that splits the work over the [`Pool`] and picks a kernel per layout,
//!   scale storage and instruction set.

mod activation;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod repack;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

use candle_core::quantized::GgmlDType;

use super::pool::Pool;
use activation::{Act, ACT};
use scalar::dot_f32;

const QK: usize = 32;

/// Internal weight layout (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    F32,
    Q4,
    Q5,
    Q8,
    U8,
}

/// How a matrix stores its per-group scales `d` and mins `m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scales {
    /// Both f32 (K-quants: `d·sc` is not an f16).
    F32,
    /// Both f16, as in the GGUF block (Q4_1, Q5_1).
    F16,
    /// `d` f16, `m = k·d` not stored (Q4_0: 8, Q5_0: 16, Q8_0: 128 for the VNNI offset).
    F16K(u32),
    /// `d` f32, `m = k·d` not stored (Q6_K: 32, Q3_K: 4).
    F32K(u32),
}

/// Rows per interleaved group.
const G: usize = 16;

impl Scales {
    /// The `k` of `m = k·d`, or 0 when `m` is stored. Kernels fold `−k·Σq` into the integer
    /// sum instead of a float min term.
    fn k(self) -> i32 {
        match self {
            Scales::F16K(k) | Scales::F32K(k) => k as i32,
            _ => 0,
        }
    }
}

impl Layout {
    /// Bytes of codes per (group, 32-block) tile.
    fn tb(self) -> usize {
        match self {
            Layout::Q4 => 256,
            Layout::Q5 => 320,
            Layout::Q8 | Layout::U8 => 512,
            Layout::F32 => 0,
        }
    }
    /// Scales are per 16 elements (else per 32).
    fn sub16(self) -> bool {
        self == Layout::U8
    }
    /// Scale halves per block.
    fn halves(self) -> usize {
        if self.sub16() {
            2
        } else {
            1
        }
    }
}

/// The kernel family: the best this CPU has ([`Isa::detect`]), unless the caller forces a
/// lesser one ([`crate::LoadOptions::isa`]) for comparisons. All compute the same integer
/// sums; they differ only in f32 rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isa {
    /// Plain Rust loops (any CPU).
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512 F/BW/VL with VNNI.
    #[serde(rename = "avx512", alias = "avx512vnni")]
    Avx512Vnni,
}

impl Isa {
    /// The best instruction set this CPU has (detected once).
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(Isa::best)
    }

    /// The kernel family to run: `requested` when this CPU has it, else (and when `None`)
    /// the best it has.
    pub fn choose(requested: Option<Isa>) -> Isa {
        match requested {
            Some(isa) if isa.available() => isa,
            Some(isa) => {
                let best = Isa::detect();
                tracing::warn!(
                    requested = isa.as_str(),
                    using = best.as_str(),
                    "this CPU lacks the requested quantized-kernel instruction set"
                );
                best
            }
            None => Isa::detect(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512",
        }
    }

    fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
                {
                    return Isa::Avx512Vnni;
                }
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        match (self, Isa::best()) {
            (Isa::Scalar, _) => true,
            (Isa::Avx2, b) => b != Isa::Scalar,
            (Isa::Avx512Vnni, b) => b == Isa::Avx512Vnni,
        }
    }
}

impl std::str::FromStr for Isa {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" | "avx512vnni" => Ok(Isa::Avx512Vnni),
            other => Err(format!(
                "unknown instruction set {other:?} (expected scalar, avx2 or avx512)"
            )),
        }
    }
}

/// A `rows × cols` weight matrix (row-major as in GGUF) in one of the layouts above.
pub struct QMatrix {
    dtype: GgmlDType,
    layout: Layout,
    rows: usize,
    cols: usize,
    /// 32-element blocks per row.
    nb: usize,
    /// Scale groups per row (`nb`, or `2·nb` for per-16 scales).
    nsub: usize,
    /// Groups of `G` rows (the last one padded with zero rows).
    groups: usize,
    /// Codes: `groups × nb` tiles of `layout.tb()` bytes.
    qs: Vec<u8>,
    /// How `d`/`m` are stored: f32 in `d`, `m`, or f16 bits in `dh`, `mh`; each
    /// `groups × nb × halves × G` values.
    scales: Scales,
    d: Vec<f32>,
    m: Vec<f32>,
    dh: Vec<u16>,
    mh: Vec<u16>,
    /// `F32` layout: the matrix.
    f: Vec<f32>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("dtype", &self.dtype)
            .field("layout", &self.layout)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl QMatrix {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The GGUF type this matrix was loaded from.
    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    /// Bytes held (for memory reports).
    pub fn size_bytes(&self) -> usize {
        self.qs.len()
            + 4 * (self.d.len() + self.m.len() + self.f.len())
            + 2 * (self.dh.len() + self.mh.len())
    }

    /// Pointers to the scales and mins of group `g` (raw: f32 or f16 bits per `scales`).
    fn scale_ptrs(&self, g: usize) -> (*const u8, *const u8) {
        let off = g * self.nb * self.layout.halves() * G;
        match self.scales {
            Scales::F32 => (
                self.d[off..].as_ptr() as *const u8,
                self.m[off..].as_ptr() as *const u8,
            ),
            Scales::F16 => (
                self.dh[off..].as_ptr() as *const u8,
                self.mh[off..].as_ptr() as *const u8,
            ),
            Scales::F16K(_) => (
                self.dh[off..].as_ptr() as *const u8,
                self.mh.as_ptr() as *const u8,
            ),
            Scales::F32K(_) => (
                self.d[off..].as_ptr() as *const u8,
                self.m.as_ptr() as *const u8,
            ),
        }
    }

    /// y = x · Wᵀ: `x` is `n_tokens × cols` (row-major), `y` is `n_tokens × rows`, on the
    /// best kernels this CPU has.
    pub fn matmul(&self, x: &[f32], n_tokens: usize, y: &mut [f32], pool: &Pool) {
        self.matmul_isa(x, n_tokens, y, pool, Isa::detect());
    }

    /// [`matmul`](Self::matmul) with a given kernel family (falls back to scalar if the CPU
    /// lacks it).
    pub fn matmul_isa(&self, x: &[f32], n_tokens: usize, y: &mut [f32], pool: &Pool, isa: Isa) {
        assert!(
            x.len() >= n_tokens * self.cols && y.len() >= n_tokens * self.rows,
            "matmul: x has {} values, y {}, for {n_tokens} tokens of a {}×{} matrix",
            x.len(),
            y.len(),
            self.rows,
            self.cols
        );
        if n_tokens == 0 {
            return;
        }
        let isa = if isa.available() { isa } else { Isa::Scalar };
        let yp = SyncPtr(y.as_mut_ptr());
        if self.layout == Layout::F32 {
            let chunk = 16;
            let n_rc = self.rows.div_ceil(chunk);
            pool.run(n_rc, &|task| {
                let r0 = task * chunk;
                for r in r0..(r0 + chunk).min(self.rows) {
                    let w = &self.f[r * self.cols..(r + 1) * self.cols];
                    for t in 0..n_tokens {
                        let v = dot_f32(w, &x[t * self.cols..(t + 1) * self.cols]);
                        // SAFETY: each (t, r) is written by exactly one task; in bounds (asserted above).
                        unsafe { *yp.at(t * self.rows + r) = v };
                    }
                }
            });
            return;
        }
        ACT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut act) => self.matmul_q(&mut act, x, n_tokens, yp, pool, isa),
            Err(_) => self.matmul_q(&mut Act::default(), x, n_tokens, yp, pool, isa),
        });
    }

    fn matmul_q(&self, act: &mut Act, x: &[f32], n: usize, yp: SyncPtr, pool: &Pool, isa: Isa) {
        // llama.cpp pairs the 32-block formats with Q8_0/Q8_1 activations whose scale and
        // sum are stored as f16: rounding them the same way keeps greedy outputs identical.
        let f16_scales = matches!(self.scales, Scales::F16 | Scales::F16K(_));
        act.quantize(x, n, self.cols, self.layout.sub16(), f16_scales, isa, pool);
        let act = &*act;
        let threads = pool.threads().max(1);
        if n == 1 {
            // Decode: chunks of groups, several per thread for balance.
            let chunk = self.groups.div_ceil(threads * 4).max(1);
            let n_gc = self.groups.div_ceil(chunk);
            let kern = pick::<1>(self.layout, self.scales, isa);
            pool.run(n_gc, &|task| {
                let g0 = task * chunk;
                self.run_groups::<1>(kern, isa, act, g0, (g0 + chunk).min(self.groups), 0, 1, yp);
            });
            return;
        }
        const TB: usize = 64;
        let chunk = if self.groups >= 8 * threads { 4 } else { 1 };
        let n_gc = self.groups.div_ceil(chunk);
        let n_tb = n.div_ceil(TB);
        let tasks = n_gc * n_tb;
        macro_rules! go {
            ($t:expr) => {{
                let kern = pick::<{ $t }>(self.layout, self.scales, isa);
                pool.run(tasks, &|task| {
                    let (tb, gc) = (task / n_gc, task % n_gc);
                    let (g0, t0) = (gc * chunk, tb * TB);
                    self.run_groups::<{ $t }>(
                        kern,
                        isa,
                        act,
                        g0,
                        (g0 + chunk).min(self.groups),
                        t0,
                        (t0 + TB).min(n),
                        yp,
                    );
                });
            }};
        }
        match isa {
            // A few tokens (e.g. speculative or batched decode): a narrower tile wastes less.
            Isa::Avx512Vnni if n <= 4 => go!(4),
            Isa::Avx512Vnni => go!(PT_V),
            _ => go!(PT_A),
        }
    }

    /// Computes `y[t][r]` for the rows of groups `g0..g1` and tokens `t0..t1`, `T` tokens at a
    /// time (`kern`, or the scalar code when `None`).
    #[allow(clippy::too_many_arguments)]
    fn run_groups<const T: usize>(
        &self,
        kern: Option<GroupFn<T>>,
        isa: Isa,
        act: &Act,
        g0: usize,
        g1: usize,
        t0: usize,
        t1: usize,
        yp: SyncPtr,
    ) {
        for g in g0..g1 {
            let rows = G.min(self.rows - g * G);
            let mut t = t0;
            while t < t1 {
                let mut out = [[0f32; G]; T];
                match kern {
                    Some(k) => {
                        // Tokens past the end repeat the last valid one (results dropped), so
                        // every pointer addresses a full valid row.
                        let (d, m) = self.scale_ptrs(g);
                        let p = GroupPtrs::<T> {
                            qs: self.qs[g * self.nb * self.layout.tb()..].as_ptr(),
                            d,
                            m,
                            xq: std::array::from_fn(|j| {
                                act.xq[(t + j).min(t1 - 1) * self.cols..].as_ptr()
                            }),
                            dx: std::array::from_fn(|j| {
                                act.dx[(t + j).min(t1 - 1) * self.nb..].as_ptr()
                            }),
                            s: std::array::from_fn(|j| {
                                act.s[(t + j).min(t1 - 1) * self.nsub..].as_ptr()
                            }),
                            qsum: std::array::from_fn(|j| {
                                act.qsum[(t + j).min(t1 - 1) * self.nsub..].as_ptr()
                            }),
                        };
                        // SAFETY: the kernel reads `nb` tiles/scale sets of group `g` and `nb`
                        // blocks of each token, all inside the slices taken above; it was
                        // picked for an instruction set the CPU has (`Isa::available`).
                        unsafe { k(&p, self.nb, &mut out) };
                    }
                    None => {
                        for (j, o) in out.iter_mut().enumerate() {
                            for (i, o) in o.iter_mut().enumerate().take(rows) {
                                *o = self.dot_scalar(g * G + i, act, (t + j).min(t1 - 1));
                            }
                        }
                    }
                }
                let _ = isa;
                for (j, o) in out.iter().enumerate().take(T.min(t1 - t)) {
                    for (i, &v) in o.iter().enumerate().take(rows) {
                        // SAFETY: each (token, row) belongs to exactly one task's range; the
                        // caller checked `y.len() >= n_tokens * rows`.
                        unsafe { *yp.at((t + j) * self.rows + g * G + i) = v };
                    }
                }
                t += T;
            }
        }
    }
}

/// Prompt tile: tokens per kernel call for AVX2 (16 vector registers) and AVX-512 (32).
const PT_A: usize = 3;
const PT_V: usize = 8;

/// A raw output pointer shared by the tasks of one matmul, each writing disjoint elements.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: tasks write disjoint elements (see `run_tiles`), and `run` returns before `y`'s
// borrow ends.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Pointers for one group of `G` rows against `T` tokens: the group's tiles, scales and
/// mins (`nb` consecutive sets), and each token's int8 values, scales and sums.
struct GroupPtrs<const T: usize> {
    qs: *const u8,
    /// f32 or f16 values, per the kernel's `Sc` parameter.
    d: *const u8,
    m: *const u8,
    xq: [*const i8; T],
    dx: [*const f32; T],
    s: [*const f32; T],
    qsum: [*const i32; T],
}

/// A kernel: `out[t][r]` for the group's `G` rows and `T` tokens.
type GroupFn<const T: usize> = unsafe fn(&GroupPtrs<T>, usize, &mut [[f32; G]; T]);

/// The SIMD kernel for a layout, scale storage and instruction set (`None`: scalar code).
fn pick<const T: usize>(layout: Layout, scales: Scales, isa: Isa) -> Option<GroupFn<T>> {
    #[cfg(target_arch = "x86_64")]
    {
        use avx2::group_avx2 as a;
        use avx512::group_vnni as v;
        use x86::{ScF16 as H, ScF32 as F, ScF32K, ScK, Q4, Q5, Q8, U8};
        use Layout as L;
        use Scales as S;
        let k: Option<GroupFn<T>> = match (isa, layout, scales) {
            (Isa::Avx2, L::Q4, S::F32) => Some(a::<Q4, F, T>),
            (Isa::Avx2, L::Q4, S::F16) => Some(a::<Q4, H, T>),
            (Isa::Avx2, L::Q4, S::F16K(8)) => Some(a::<Q4, ScK<8>, T>),
            (Isa::Avx2, L::Q5, S::F32) => Some(a::<Q5, F, T>),
            (Isa::Avx2, L::Q5, S::F16) => Some(a::<Q5, H, T>),
            (Isa::Avx2, L::Q5, S::F16K(16)) => Some(a::<Q5, ScK<16>, T>),
            (Isa::Avx2, L::Q8, S::F16K(128)) => Some(a::<Q8, ScK<128>, T>),
            (Isa::Avx2, L::U8, S::F32) => Some(a::<U8, F, T>),
            (Isa::Avx2, L::U8, S::F32K(32)) => Some(a::<U8, ScF32K<32>, T>),
            (Isa::Avx2, L::U8, S::F32K(4)) => Some(a::<U8, ScF32K<4>, T>),
            (Isa::Avx512Vnni, L::Q4, S::F32) => Some(v::<Q4, F, T>),
            (Isa::Avx512Vnni, L::Q4, S::F16) => Some(v::<Q4, H, T>),
            (Isa::Avx512Vnni, L::Q4, S::F16K(8)) => Some(v::<Q4, ScK<8>, T>),
            (Isa::Avx512Vnni, L::Q5, S::F32) => Some(v::<Q5, F, T>),
            (Isa::Avx512Vnni, L::Q5, S::F16) => Some(v::<Q5, H, T>),
            (Isa::Avx512Vnni, L::Q5, S::F16K(16)) => Some(v::<Q5, ScK<16>, T>),
            (Isa::Avx512Vnni, L::Q8, S::F16K(128)) => Some(v::<Q8, ScK<128>, T>),
            (Isa::Avx512Vnni, L::U8, S::F32) => Some(v::<U8, F, T>),
            (Isa::Avx512Vnni, L::U8, S::F32K(32)) => Some(v::<U8, ScF32K<32>, T>),
            (Isa::Avx512Vnni, L::U8, S::F32K(4)) => Some(v::<U8, ScF32K<4>, T>),
            _ => None,
        };
        if k.is_some() {
            return k;
        }
    }
    let _ = (layout, scales, isa);
    None
}
