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

use std::cell::RefCell;
use std::sync::OnceLock;

use candle_core::quantized::GgmlDType;

use super::pool::Pool;

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

fn f16_at(b: &[u8], o: usize) -> f32 {
    half::f16::from_le_bytes([b[o], b[o + 1]]).to_f32()
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// ggml's 6-bit scale/min unpacking for Q4_K/Q5_K.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Places 32-element units (codes, and scale/min for each 16-half) into the interleaved
/// tiles of a layout, in row-major unit order.
struct Builder {
    layout: Layout,
    scales: Scales,
    nb: usize,
    next: usize,
    qs: Vec<u8>,
    d: Vec<f32>,
    m: Vec<f32>,
    dh: Vec<u16>,
    mh: Vec<u16>,
}

impl Builder {
    fn new(layout: Layout, scales: Scales, rows: usize, nb: usize) -> Builder {
        let groups = rows.div_ceil(G);
        let n = groups * nb * layout.halves() * G;
        let (nf, nh, nmh) = match scales {
            Scales::F32 => (n, 0, 0),
            Scales::F16 => (0, n, n),
            Scales::F16K(_) => (0, n, 0),
            Scales::F32K(_) => (n, 0, 0),
        };
        Builder {
            layout,
            scales,
            nb,
            next: 0,
            qs: vec![0; groups * nb * layout.tb()],
            d: vec![0.0; nf],
            m: vec![0.0; nf],
            dh: vec![0; nh],
            mh: vec![0; nmh],
        }
    }

    /// The next 32-element unit: codes `u` (unsigned, or i8 bit patterns for `Q8`), and
    /// `w = d[h]·u − m[h]` for the half `h` (halves equal unless `sub16`).
    fn push(&mut self, u: &[u8; 32], d: [f32; 2], m: [f32; 2]) {
        let (row, b) = (self.next / self.nb, self.next % self.nb);
        self.next += 1;
        let (g, r) = (row / G, row % G);
        let tile = &mut self.qs[(g * self.nb + b) * self.layout.tb()..][..self.layout.tb()];
        match self.layout {
            Layout::Q4 | Layout::Q5 => {
                for h in 0..4 {
                    for j in 0..4 {
                        tile[h * 64 + r * 4 + j] =
                            (u[8 * h + j] & 0xF) | ((u[8 * h + 4 + j] & 0xF) << 4);
                    }
                }
                if self.layout == Layout::Q5 {
                    for j in 0..4 {
                        let mut hb = 0u8;
                        for q in 0..8 {
                            hb |= ((u[4 * q + j] >> 4) & 1) << q;
                        }
                        tile[256 + r * 4 + j] = hb;
                    }
                }
            }
            Layout::Q8 | Layout::U8 => {
                for q in 0..8 {
                    for j in 0..4 {
                        tile[q * 64 + r * 4 + j] = u[4 * q + j];
                    }
                }
            }
            Layout::F32 => {}
        }
        let hs = self.layout.halves();
        for h in 0..hs {
            let i = ((g * self.nb + b) * hs + h) * G + r;
            // f16 modes get values read from f16 fields (or k·d), so the conversion is exact.
            match self.scales {
                Scales::F32 => {
                    self.d[i] = d[h];
                    self.m[i] = m[h];
                }
                Scales::F16 => {
                    self.dh[i] = half::f16::from_f32(d[h]).to_bits();
                    self.mh[i] = half::f16::from_f32(m[h]).to_bits();
                }
                Scales::F16K(_) => self.dh[i] = half::f16::from_f32(d[h]).to_bits(),
                Scales::F32K(_) => self.d[i] = d[h],
            }
        }
    }
}

impl QMatrix {
    /// From a GGUF tensor's raw bytes in ggml's layout (`rows` rows of `cols` elements).
    pub fn from_ggml(
        dtype: GgmlDType,
        raw: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<QMatrix, String> {
        use GgmlDType as G;
        let (blck, tsize) = match dtype {
            G::F32 => (1, 4),
            G::F16 | G::BF16 => (1, 2),
            G::Q4_0 => (32, 18),
            G::Q4_1 => (32, 20),
            G::Q5_0 => (32, 22),
            G::Q5_1 => (32, 24),
            G::Q8_0 => (32, 34),
            G::Q2K => (256, 84),
            G::Q3K => (256, 110),
            G::Q4K => (256, 144),
            G::Q5K => (256, 176),
            G::Q6K => (256, 210),
            other => {
                return Err(format!(
                    "weight type {other:?} is not supported by the quantized matmul"
                ))
            }
        };
        if rows == 0 || cols == 0 || !cols.is_multiple_of(blck) {
            return Err(format!(
                "{dtype:?} matrix of {rows}×{cols}: cols must be a non-zero multiple of {blck}"
            ));
        }
        let row_bytes = cols / blck * tsize;
        let expected = rows
            .checked_mul(row_bytes)
            .ok_or_else(|| format!("{dtype:?} matrix of {rows}×{cols} is too large"))?;
        if raw.len() != expected {
            return Err(format!(
                "{dtype:?} matrix of {rows}×{cols} needs {expected} bytes, got {}",
                raw.len()
            ));
        }
        let mut mat = QMatrix {
            dtype,
            layout: Layout::F32,
            rows,
            cols,
            nb: cols / QK,
            nsub: 0,
            groups: 0,
            qs: Vec::new(),
            scales: Scales::F32,
            dh: Vec::new(),
            mh: Vec::new(),
            d: Vec::new(),
            m: Vec::new(),
            f: Vec::new(),
        };
        match dtype {
            G::F32 | G::F16 | G::BF16 => {
                mat.f = match dtype {
                    G::F32 => raw
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    G::F16 => raw
                        .chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                    _ => raw
                        .chunks_exact(2)
                        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                };
                return Ok(mat);
            }
            _ => {}
        }
        let layout = match dtype {
            G::Q4_0 | G::Q4_1 | G::Q4K => Layout::Q4,
            G::Q5_0 | G::Q5_1 | G::Q5K => Layout::Q5,
            G::Q8_0 => Layout::Q8,
            _ => Layout::U8,
        };
        let scales = match dtype {
            G::Q4_0 => Scales::F16K(8),
            G::Q5_0 => Scales::F16K(16),
            G::Q8_0 => Scales::F16K(128),
            G::Q4_1 | G::Q5_1 => Scales::F16,
            G::Q6K => Scales::F32K(32),
            G::Q3K => Scales::F32K(4),
            _ => Scales::F32,
        };
        let mut bld = Builder::new(layout, scales, rows, mat.nb);
        let mut u = [0u8; 32];
        let mut full = [0u8; 256];
        for blk in raw.chunks_exact(tsize) {
            match dtype {
                G::Q4_0 | G::Q4_1 => {
                    let d = f16_at(blk, 0);
                    let (m, off) = if dtype == G::Q4_0 {
                        (8.0 * d, 2)
                    } else {
                        (-f16_at(blk, 2), 4)
                    };
                    for j in 0..16 {
                        u[j] = blk[off + j] & 0xF;
                        u[j + 16] = blk[off + j] >> 4;
                    }
                    bld.push(&u, [d; 2], [m; 2]);
                }
                G::Q5_0 | G::Q5_1 => {
                    let d = f16_at(blk, 0);
                    let (m, off) = if dtype == G::Q5_0 {
                        (16.0 * d, 2)
                    } else {
                        (-f16_at(blk, 2), 4)
                    };
                    let qh = u32_at(blk, off);
                    for j in 0..16 {
                        let q = blk[off + 4 + j];
                        u[j] = (q & 0xF) | ((((qh >> j) & 1) as u8) << 4);
                        u[j + 16] = (q >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                    }
                    bld.push(&u, [d; 2], [m; 2]);
                }
                G::Q8_0 => {
                    let d = f16_at(blk, 0);
                    u.copy_from_slice(&blk[2..34]);
                    // m is used only by the VNNI kernel, which offsets the codes by +128.
                    bld.push(&u, [d; 2], [128.0 * d; 2]);
                }
                G::Q4K | G::Q5K => {
                    let d = f16_at(blk, 0);
                    let dmin = f16_at(blk, 2);
                    let scales = &blk[4..16];
                    let (qh, qs) = if dtype == G::Q4K {
                        (&blk[0..0], &blk[16..144])
                    } else {
                        (&blk[16..48], &blk[48..176])
                    };
                    for j in 0..4 {
                        let q = &qs[32 * j..32 * j + 32];
                        for half in 0..2 {
                            let (sc, mn) = scale_min_k4(2 * j + half, scales);
                            for i in 0..32 {
                                let low = if half == 0 { q[i] & 0xF } else { q[i] >> 4 };
                                let high = if qh.is_empty() {
                                    0
                                } else {
                                    ((qh[i] >> (2 * j + half)) & 1) << 4
                                };
                                u[i] = low | high;
                            }
                            bld.push(&u, [d * sc as f32; 2], [dmin * mn as f32; 2]);
                        }
                    }
                }
                G::Q6K => {
                    let (ql, qh, sc) = (&blk[0..128], &blk[128..192], &blk[192..208]);
                    let d = f16_at(blk, 208);
                    for n in 0..2 {
                        let (ql, qh) = (&ql[64 * n..], &qh[32 * n..]);
                        for l in 0..32 {
                            full[128 * n + l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                            full[128 * n + l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                            full[128 * n + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                            full[128 * n + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                        }
                    }
                    for k in 0..8 {
                        u.copy_from_slice(&full[32 * k..32 * k + 32]);
                        let d0 = d * (sc[2 * k] as i8) as f32;
                        let d1 = d * (sc[2 * k + 1] as i8) as f32;
                        bld.push(&u, [d0, d1], [32.0 * d0, 32.0 * d1]);
                    }
                }
                G::Q3K => {
                    let (hmask, qs, sraw) = (&blk[0..32], &blk[32..96], &blk[96..108]);
                    let d = f16_at(blk, 108);
                    let mut aux = [u32_at(sraw, 0), u32_at(sraw, 4), u32_at(sraw, 8), 0];
                    const KM1: u32 = 0x0303_0303;
                    const KM2: u32 = 0x0f0f_0f0f;
                    let tmp = aux[2];
                    aux[2] = ((aux[0] >> 4) & KM2) | (((tmp >> 4) & KM1) << 4);
                    aux[3] = ((aux[1] >> 4) & KM2) | (((tmp >> 6) & KM1) << 4);
                    aux[0] = (aux[0] & KM2) | ((tmp & KM1) << 4);
                    aux[1] = (aux[1] & KM2) | (((tmp >> 2) & KM1) << 4);
                    let mut scales = [0u8; 16];
                    for (i, a) in aux.iter().enumerate() {
                        scales[4 * i..4 * i + 4].copy_from_slice(&a.to_le_bytes());
                    }
                    for n in 0..2 {
                        for j in 0..4 {
                            for sub in 0..2 {
                                for i in 0..16 {
                                    let k = 16 * sub + i;
                                    let q = (qs[32 * n + k] >> (2 * j)) & 3;
                                    let h = if hmask[k] & (1 << (4 * n + j)) != 0 {
                                        4
                                    } else {
                                        0
                                    };
                                    full[128 * n + 32 * j + k] = q + h;
                                }
                            }
                        }
                    }
                    for k in 0..8 {
                        u.copy_from_slice(&full[32 * k..32 * k + 32]);
                        let d0 = d * ((scales[2 * k] as i8) as f32 - 32.0);
                        let d1 = d * ((scales[2 * k + 1] as i8) as f32 - 32.0);
                        bld.push(&u, [d0, d1], [4.0 * d0, 4.0 * d1]);
                    }
                }
                G::Q2K => {
                    let (sc, qs) = (&blk[0..16], &blk[16..80]);
                    let d = f16_at(blk, 80);
                    let dmin = f16_at(blk, 82);
                    for n in 0..2 {
                        for j in 0..4 {
                            for k in 0..32 {
                                full[128 * n + 32 * j + k] = (qs[32 * n + k] >> (2 * j)) & 3;
                            }
                        }
                    }
                    for k in 0..8 {
                        u.copy_from_slice(&full[32 * k..32 * k + 32]);
                        let (s0, s1) = (sc[2 * k], sc[2 * k + 1]);
                        bld.push(
                            &u,
                            [d * (s0 & 0xF) as f32, d * (s1 & 0xF) as f32],
                            [dmin * (s0 >> 4) as f32, dmin * (s1 >> 4) as f32],
                        );
                    }
                }
                _ => unreachable!("handled above"),
            }
        }
        mat.layout = layout;
        mat.nsub = if layout.sub16() { 2 * mat.nb } else { mat.nb };
        mat.qs = bld.qs;
        mat.groups = rows.div_ceil(G);
        mat.scales = scales;
        mat.d = bld.d;
        mat.m = bld.m;
        mat.dh = bld.dh;
        mat.mh = bld.mh;
        Ok(mat)
    }

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

    /// The codes of block `b` of `row` (i8 bit patterns for `Q8`).
    fn codes(&self, row: usize, b: usize) -> [u8; 32] {
        let mut u = [0u8; 32];
        let (g, r) = (row / G, row % G);
        let tile = &self.qs[(g * self.nb + b) * self.layout.tb()..][..self.layout.tb()];
        match self.layout {
            Layout::Q4 | Layout::Q5 => {
                for h in 0..4 {
                    for j in 0..4 {
                        let byte = tile[h * 64 + r * 4 + j];
                        u[8 * h + j] = byte & 0xF;
                        u[8 * h + 4 + j] = byte >> 4;
                    }
                }
                if self.layout == Layout::Q5 {
                    for j in 0..4 {
                        let hb = tile[256 + r * 4 + j];
                        for q in 0..8 {
                            u[4 * q + j] |= ((hb >> q) & 1) << 4;
                        }
                    }
                }
            }
            Layout::Q8 | Layout::U8 => {
                for q in 0..8 {
                    for j in 0..4 {
                        u[4 * q + j] = tile[q * 64 + r * 4 + j];
                    }
                }
            }
            Layout::F32 => {}
        }
        u
    }

    /// Scale and min number `k`.
    fn dm(&self, k: usize) -> (f32, f32) {
        let h = |v: u16| half::f16::from_bits(v).to_f32();
        match self.scales {
            Scales::F32 => (self.d[k], self.m[k]),
            Scales::F16 => (h(self.dh[k]), h(self.mh[k])),
            Scales::F16K(c) => {
                let d = h(self.dh[k]);
                (d, c as f32 * d)
            }
            Scales::F32K(c) => (self.d[k], c as f32 * self.d[k]),
        }
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

    /// Index of the scale (and min) of `row`, block `b`, half `h`.
    fn sidx(&self, row: usize, b: usize, h: usize) -> usize {
        let hs = self.layout.halves();
        (((row / G) * self.nb + b) * hs + h) * G + row % G
    }

    /// One row dequantized to f32 (embedding lookup). `out.len()` must be `cols`.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(
            row < self.rows && out.len() == self.cols,
            "dequantize_row: row {row} / len {} out of range",
            out.len()
        );
        if self.layout == Layout::F32 {
            out.copy_from_slice(&self.f[row * self.cols..(row + 1) * self.cols]);
            return;
        }
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let u = self.codes(row, b);
            for (i, (o, &c)) in o.iter_mut().zip(&u).enumerate() {
                let k = self.sidx(row, b, if self.layout.sub16() { i / 16 } else { 0 });
                let (d, m) = self.dm(k);
                *o = match self.layout {
                    Layout::Q8 => d * (c as i8) as f32,
                    _ => d * c as f32 - m,
                };
            }
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

    /// One (row, token) dot product, in the same f32 operation order as the AVX2 kernel's
    /// lane for that row (so the two agree to the last bit but for Q8_0 under VNNI).
    fn dot_scalar(&self, row: usize, act: &Act, t: usize) -> f32 {
        let xq = &act.xq[t * self.cols..(t + 1) * self.cols];
        let dx = &act.dx[t * self.nb..(t + 1) * self.nb];
        let s = &act.s[t * self.nsub..(t + 1) * self.nsub];
        let qsum = &act.qsum[t * self.nsub..(t + 1) * self.nsub];
        let signed = self.layout == Layout::Q8;
        let hs = self.layout.halves();
        let mut acc = 0f32;
        for b in 0..self.nb {
            let u = self.codes(row, b);
            let x = &xq[32 * b..32 * b + 32];
            let isum = |lo: usize, hi: usize| -> i32 {
                (lo..hi)
                    .map(|i| {
                        let w = if signed {
                            (u[i] as i8) as i32
                        } else {
                            u[i] as i32
                        };
                        w * x[i] as i32
                    })
                    .sum()
            };
            let n = 32 / hs;
            // m = k·d folded into the integer sum (Q8_0 is signed here: no offset, no min).
            let koff = if signed { 0 } else { self.scales.k() };
            for h in 0..hs {
                let k = self.sidx(row, b, h);
                let i = isum(h * n, h * n + n) - koff * qsum[b * hs + h];
                acc = (i as f32).mul_add(self.dm(k).0 * dx[b], acc);
            }
            if !signed && koff == 0 {
                for h in 0..hs {
                    let k = self.sidx(row, b, h);
                    acc = (-self.dm(k).1).mul_add(s[b * hs + h], acc);
                }
            }
        }
        acc
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

/// Quantized activations: per token `cols` int8 values, `nb` scales, and (affine weights)
/// `nsub` scaled sums.
#[derive(Default)]
struct Act {
    xq: Vec<i8>,
    dx: Vec<f32>,
    s: Vec<f32>,
    /// Integer sums `Σq` per 32 (or 16) block.
    qsum: Vec<i32>,
}

thread_local! {
    /// Reused activation buffer of the calling thread (no allocation per decode step).
    static ACT: RefCell<Act> = RefCell::new(Act::default());
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
    fn quantize(
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
        return unsafe { x86::quantize_block_avx2(x.as_ptr(), q.as_mut_ptr()) };
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

/// f32 dot product with 8 independent accumulators (vectorised by the compiler; the same
/// code in every path, so it does not make the paths differ).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    for (x, y) in ac.iter().zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
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
        use x86::{
            group_avx2 as a, group_vnni as v, ScF16 as H, ScF32 as F, ScF32K, ScK, Q4, Q5, Q8, U8,
        };
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 and AVX-512 VNNI group kernels. Every function here is `unsafe`: it needs the CPU
    //! features of its `target_feature` (checked by `Isa::available` before a kernel is
    //! picked) and reads `nb` tiles, scale sets and token blocks through raw pointers that
    //! the caller derived from slices long enough for that.
    //!
    //! Register lane `r` (i32 / f32) holds row `r` of the group: a 64-byte chunk of a tile is
    //! 16 rows × 4 consecutive codes, multiplied against 4 activation bytes broadcast to all
    //! lanes (`vpdpbusd`, or `vpmaddubsw` + `vpmaddwd` on AVX2, 8 rows per register).
    use super::{GroupPtrs, G};
    use std::arch::x86_64::*;

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
        /// The 8 chunks (codes 4q..4q+3 of the 8 rows `8·half..`) of a tile, as u8 (i8 for `SIGNED`).
        unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8];
        /// The 8 chunks of all 16 rows, as u8 (`SIGNED` codes are offset by +128).
        unsafe fn load512(tile: *const u8) -> [__m512i; 8];
    }

    pub(super) struct Q4;
    pub(super) struct Q5;
    pub(super) struct Q8;
    pub(super) struct U8;

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

    impl Fmt for Q4 {
        const SIGNED: bool = false;
        const SUB16: bool = false;
        const TB: usize = 256;
        const I16_SUMS: usize = 8;
        #[inline(always)]
        unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
            nib256(tile, half)
        }
        #[inline(always)]
        unsafe fn load512(tile: *const u8) -> [__m512i; 8] {
            nib512(tile)
        }
    }

    impl Fmt for Q5 {
        const SIGNED: bool = false;
        const SUB16: bool = false;
        const TB: usize = 320;
        const I16_SUMS: usize = 4;
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
    unsafe fn bytes256(tile: *const u8, half: usize) -> [__m256i; 8] {
        let mut w = [_mm256_setzero_si256(); 8];
        for (q, w) in w.iter_mut().enumerate() {
            *w = _mm256_loadu_si256(tile.add(q * 64 + half * 32) as *const __m256i);
        }
        w
    }

    #[inline(always)]
    unsafe fn bytes512(tile: *const u8) -> [__m512i; 8] {
        let mut w = [_mm512_setzero_si512(); 8];
        for (q, w) in w.iter_mut().enumerate() {
            *w = _mm512_loadu_si512(tile.add(q * 64) as *const __m512i);
        }
        w
    }

    impl Fmt for Q8 {
        const SIGNED: bool = true;
        const SUB16: bool = false;
        const TB: usize = 512;
        const I16_SUMS: usize = 1;
        #[inline(always)]
        unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
            bytes256(tile, half)
        }
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

    impl Fmt for U8 {
        const SIGNED: bool = false;
        const SUB16: bool = true;
        const TB: usize = 512;
        const I16_SUMS: usize = 2;
        #[inline(always)]
        unsafe fn load256(tile: *const u8, half: usize) -> [__m256i; 8] {
            bytes256(tile, half)
        }
        #[inline(always)]
        unsafe fn load512(tile: *const u8) -> [__m512i; 8] {
            bytes512(tile)
        }
    }

    /// How a matrix's scales are read: 8 (AVX2) or 16 (AVX-512) consecutive values from
    /// element `i`; `m` may be computed from `d`.
    pub(super) trait Sc {
        /// `m = K·d` (folded into the integer sums as `−K·Σq`), or 0: `m` is loaded.
        const K: i32;
        unsafe fn d256(d: *const u8, i: usize) -> __m256;
        unsafe fn m256(m: *const u8, i: usize, d: __m256) -> __m256;
        unsafe fn d512(d: *const u8, i: usize) -> __m512;
        unsafe fn m512(m: *const u8, i: usize, d: __m512) -> __m512;
    }

    pub(super) struct ScF32;
    pub(super) struct ScF16;
    pub(super) struct ScK<const K: u32>;
    pub(super) struct ScF32K<const K: u32>;

    impl<const K: u32> Sc for ScF32K<K> {
        const K: i32 = K as i32;
        #[inline(always)]
        unsafe fn d256(d: *const u8, i: usize) -> __m256 {
            _mm256_loadu_ps((d as *const f32).add(i))
        }
        #[inline(always)]
        unsafe fn m256(_m: *const u8, _i: usize, d: __m256) -> __m256 {
            _mm256_mul_ps(d, _mm256_set1_ps(K as f32))
        }
        #[inline(always)]
        unsafe fn d512(d: *const u8, i: usize) -> __m512 {
            _mm512_loadu_ps((d as *const f32).add(i))
        }
        #[inline(always)]
        unsafe fn m512(_m: *const u8, _i: usize, d: __m512) -> __m512 {
            _mm512_mul_ps(d, _mm512_set1_ps(K as f32))
        }
    }

    impl Sc for ScF32 {
        const K: i32 = 0;
        #[inline(always)]
        unsafe fn d256(d: *const u8, i: usize) -> __m256 {
            _mm256_loadu_ps((d as *const f32).add(i))
        }
        #[inline(always)]
        unsafe fn m256(m: *const u8, i: usize, _d: __m256) -> __m256 {
            _mm256_loadu_ps((m as *const f32).add(i))
        }
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
    unsafe fn h256(p: *const u8, i: usize) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128((p as *const u16).add(i) as *const __m128i))
    }

    #[inline(always)]
    unsafe fn h512(p: *const u8, i: usize) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(
            (p as *const u16).add(i) as *const __m256i
        ))
    }

    impl Sc for ScF16 {
        const K: i32 = 0;
        #[inline(always)]
        unsafe fn d256(d: *const u8, i: usize) -> __m256 {
            h256(d, i)
        }
        #[inline(always)]
        unsafe fn m256(m: *const u8, i: usize, _d: __m256) -> __m256 {
            h256(m, i)
        }
        #[inline(always)]
        unsafe fn d512(d: *const u8, i: usize) -> __m512 {
            h512(d, i)
        }
        #[inline(always)]
        unsafe fn m512(m: *const u8, i: usize, _d: __m512) -> __m512 {
            h512(m, i)
        }
    }

    impl<const K: u32> Sc for ScK<K> {
        const K: i32 = K as i32;
        #[inline(always)]
        unsafe fn d256(d: *const u8, i: usize) -> __m256 {
            h256(d, i)
        }
        #[inline(always)]
        unsafe fn m256(_m: *const u8, _i: usize, d: __m256) -> __m256 {
            _mm256_mul_ps(d, _mm256_set1_ps(K as f32))
        }
        #[inline(always)]
        unsafe fn d512(d: *const u8, i: usize) -> __m512 {
            h512(d, i)
        }
        #[inline(always)]
        unsafe fn m512(_m: *const u8, _i: usize, d: __m512) -> __m512 {
            _mm512_mul_ps(d, _mm512_set1_ps(K as f32))
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

    #[inline(always)]
    unsafe fn bcast4_512(x: *const i8) -> __m512i {
        _mm512_set1_epi32(std::ptr::read_unaligned(x as *const i32))
    }

    /// AVX2: 8 rows (`half`) × `T` tokens, then the other 8.
    #[allow(clippy::needless_range_loop)] // t indexes the token pointers and accumulators
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn group_avx2<F: Fmt, S: Sc, const T: usize>(
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
                        acc[t] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(isum),
                            _mm256_mul_ps(dv, dx),
                            acc[t],
                        );
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

    /// AVX-512 VNNI: all 16 rows × `T` tokens in zmm registers.
    #[allow(clippy::needless_range_loop)] // t indexes the token pointers and accumulators
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn group_vnni<F: Fmt, S: Sc, const T: usize>(
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
                        acc[t] =
                            _mm512_fnmadd_ps(m1, _mm512_set1_ps(*p.s[t].add(2 * b + 1)), acc[t]);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    /// Deterministic pseudo-random values in [-1, 1) (xorshift).
    fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    struct Case {
        q: QTensor,
        mat: QMatrix,
        /// candle's dequantized matrix, rows × cols.
        w: Vec<f32>,
    }

    fn make(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> Case {
        // Rows with different magnitudes (and an offset) so scales and mins vary.
        let mut data = rand_vec(rows * cols, seed);
        for (r, row) in data.chunks_mut(cols).enumerate() {
            let g = 0.2 + (r % 7) as f32 * 0.3;
            for (i, v) in row.iter_mut().enumerate() {
                *v = *v * g + if i % 64 < 32 { 0.05 } else { -0.1 };
            }
        }
        let t = Tensor::from_vec(data, (rows, cols), &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&t, dtype).expect("quantize");
        let raw = q.data().expect("raw bytes");
        let mat = QMatrix::from_ggml(dtype, &raw, rows, cols).expect("from_ggml");
        let w = q
            .dequantize(&Device::Cpu)
            .expect("dequantize")
            .flatten_all()
            .expect("flatten")
            .to_vec1::<f32>()
            .expect("to_vec");
        Case { q, mat, w }
    }

    fn reference(w: &[f32], x: &[f32], rows: usize, cols: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0f32; n * rows];
        for t in 0..n {
            for r in 0..rows {
                y[t * rows + r] = (0..cols)
                    .map(|i| w[r * cols + i] as f64 * x[t * cols + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    /// ‖y − yref‖ over the typical output size: √(Σ_{t,r} ‖w_r‖²‖x_t‖² / cols), which is
    /// what ‖yref‖ is on average for random data but is not noisy when there are few outputs.
    fn rel_err(y: &[f32], yref: &[f32], w: &[f32], x: &[f32], cols: usize) -> f32 {
        let num: f64 = y
            .iter()
            .zip(yref)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let wn: f64 = w.iter().map(|v| (*v as f64).powi(2)).sum();
        let xn: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        (num / (wn * xn / cols as f64).max(1e-30)).sqrt() as f32
    }

    fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (num / den.max(1e-30)).sqrt() as f32
    }

    const ALL: [GgmlDType; 13] = [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q8_0,
        GgmlDType::Q2K,
        GgmlDType::Q3K,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ];

    fn shapes(dtype: GgmlDType) -> Vec<(usize, usize)> {
        let k = matches!(
            dtype,
            GgmlDType::Q2K | GgmlDType::Q3K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K
        );
        if k {
            vec![(37, 256), (20, 1536), (9, 4864)]
        } else {
            vec![(37, 896), (20, 576), (12, 1536), (9, 4864), (5, 64)]
        }
    }

    /// matmul against candle's dequantized matrix times f32 x, for every dtype, several
    /// shapes and token counts, with 1 and 2 threads and every available instruction set.
    ///
    /// Tolerance: relative error (see `rel_err`) 1e-2 for quantized types. The weights are used exactly
    /// (same dequantized values); the error comes only from rounding the activations to int8
    /// per 32-block (step max|x|/127, i.e. ~0.2% relative noise per dot product for these
    /// random inputs, so 1e-2 leaves a 4x margin). F32/F16/BF16 are computed in f32: 1e-5.
    #[test]
    fn matmul_matches_dequantized_reference() {
        let pools = [Pool::new(1), Pool::new(2)];
        for (di, dtype) in ALL.into_iter().enumerate() {
            for (si, (rows, cols)) in shapes(dtype).into_iter().enumerate() {
                let c = make(dtype, rows, cols, (di * 10 + si) as u64 + 1);
                for n in [1, 3, 37, 70] {
                    let x = rand_vec(n * cols, 1000 + n as u64);
                    let yref = reference(&c.w, &x, rows, cols, n);
                    for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni] {
                        if !isa.available() {
                            continue;
                        }
                        for pool in &pools {
                            let mut y = vec![f32::NAN; n * rows];
                            c.mat.matmul_isa(&x, n, &mut y, pool, isa);
                            let e = rel_err(&y, &yref, &c.w, &x, cols);
                            let tol = if c.mat.layout == Layout::F32 {
                                1e-5
                            } else {
                                1e-2
                            };
                            assert!(
                                e < tol,
                                "{dtype:?} {rows}x{cols} n={n} {isa:?} threads={}: rel err {e}",
                                pool.threads()
                            );
                        }
                    }
                }
            }
        }
    }

    /// Against candle's own quantized matmul (which quantizes activations its own way:
    /// Q8_0/Q8_1/Q8_K), so the tolerance is the sum of both errors: 2e-2.
    #[test]
    fn matmul_matches_candle_qmatmul() {
        let pool = Pool::new(2);
        for (di, dtype) in ALL.into_iter().enumerate() {
            let (rows, cols) = shapes(dtype)[1];
            let c = make(dtype, rows, cols, di as u64 + 77);
            let qmm = QMatMul::from_qtensor(c.q).expect("qmatmul");
            for n in [1, 3, 37] {
                let x = rand_vec(n * cols, 7 + n as u64);
                let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).expect("x");
                let yc = qmm
                    .forward(&xt)
                    .expect("forward")
                    .flatten_all()
                    .expect("flat")
                    .to_vec1::<f32>()
                    .expect("vec");
                let mut y = vec![0f32; n * rows];
                c.mat.matmul(&x, n, &mut y, &pool);
                let e = rel_l2(&y, &yc);
                assert!(e < 2e-2, "{dtype:?} n={n}: rel err vs candle {e}");
            }
        }
    }

    #[test]
    fn dequantize_row_matches_candle() {
        for (di, dtype) in ALL.into_iter().enumerate() {
            for (rows, cols) in shapes(dtype) {
                let c = make(dtype, rows, cols, di as u64 + 300);
                let mut out = vec![0f32; cols];
                for r in 0..rows {
                    c.mat.dequantize_row(r, &mut out);
                    let want = &c.w[r * cols..(r + 1) * cols];
                    let amax = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                    for (i, (a, b)) in out.iter().zip(want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-6 * amax,
                            "{dtype:?} row {r} col {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// All instruction sets compute the same integer sums; only f32 summation order differs.
    #[test]
    fn simd_paths_match_scalar() {
        let pool = Pool::new(2);
        for (di, dtype) in ALL.into_iter().enumerate() {
            for (si, (rows, cols)) in shapes(dtype).into_iter().enumerate() {
                let c = make(dtype, rows, cols, (di * 10 + si) as u64 + 500);
                for n in [1, 5, 37] {
                    let x = rand_vec(n * cols, 2000 + n as u64);
                    let mut ys = vec![0f32; n * rows];
                    c.mat.matmul_isa(&x, n, &mut ys, &pool, Isa::Scalar);
                    let scale = ys.iter().fold(0f32, |a, v| a.max(v.abs()));
                    for isa in [Isa::Avx2, Isa::Avx512Vnni] {
                        if !isa.available() {
                            continue;
                        }
                        let mut y = vec![0f32; n * rows];
                        c.mat.matmul_isa(&x, n, &mut y, &pool, isa);
                        for (a, b) in y.iter().zip(&ys) {
                            assert!(
                                (a - b).abs() <= 1e-5 * scale,
                                "{dtype:?} {rows}x{cols} n={n} {isa:?}: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }

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
    fn qmatrix_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<QMatrix>();
    }

    #[test]
    fn rejects_bad_input() {
        let e =
            QMatrix::from_ggml(GgmlDType::Q8K, &[0u8; 292], 1, 256).expect_err("Q8K unsupported");
        assert!(e.contains("Q8K"), "{e}");
        let e = QMatrix::from_ggml(GgmlDType::Q4_0, &[0u8; 17], 1, 32).expect_err("short");
        assert!(e.contains("18"), "{e}");
        assert!(QMatrix::from_ggml(GgmlDType::Q4K, &[0u8; 144], 1, 32).is_err());
    }

    /// `cargo test --release -- --ignored --nocapture bench_matmul`
    #[test]
    #[ignore]
    fn bench_matmul() {
        use std::time::Instant;
        let cases = [
            (GgmlDType::Q5_0, 4864, 896),
            (GgmlDType::Q4K, 896, 4864),
            (GgmlDType::Q6K, 896, 4864),
            (GgmlDType::Q4_1, 1536, 576),
            (GgmlDType::Q8_0, 896, 896),
        ];
        println!("| matrix | n_tokens | threads | lore GMAC/s | candle GMAC/s |");
        println!("| --- | --- | --- | --- | --- |");
        for (dtype, rows, cols) in cases {
            let c = make(dtype, rows, cols, 9);
            let qmm = QMatMul::from_qtensor(c.q).expect("qmatmul");
            for n in [1usize, 512] {
                let x = rand_vec(n * cols, 5);
                let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).expect("x");
                let mut y = vec![0f32; n * rows];
                let macs = (rows * cols * n) as f64;
                let reps = if n == 1 { 400 } else { 3 };
                for threads in [1, 2] {
                    let pool = Pool::new(threads);
                    c.mat.matmul(&x, n, &mut y, &pool);
                    let t0 = Instant::now();
                    for _ in 0..reps {
                        c.mat.matmul(&x, n, &mut y, &pool);
                    }
                    let ours = macs * reps as f64 / t0.elapsed().as_secs_f64() / 1e9;
                    let rp = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .expect("rayon");
                    let creps = if n == 1 { 100 } else { 1 };
                    let theirs = rp.install(|| {
                        let _ = qmm.forward(&xt).expect("fwd");
                        let t0 = Instant::now();
                        for _ in 0..creps {
                            let _ = qmm.forward(&xt).expect("fwd");
                        }
                        macs * creps as f64 / t0.elapsed().as_secs_f64() / 1e9
                    });
                    println!(
                        "| {dtype:?} {rows}x{cols} | {n} | {threads} | {ours:.1} | {theirs:.1} |"
                    );
                }
            }
        }
    }

    /// Random raw GGUF bytes for a `rows × cols` matrix of `dtype`, with sane f16 scales.
    fn random_raw(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let (blck, tsize, scale_offs): (usize, usize, &[usize]) = match dtype {
            GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q8_0 => (32, dtype.type_size(), &[0]),
            GgmlDType::Q4_1 | GgmlDType::Q5_1 => (32, dtype.type_size(), &[0, 2]),
            GgmlDType::Q4K | GgmlDType::Q5K => (256, dtype.type_size(), &[0, 2]),
            GgmlDType::Q6K => (256, 210, &[208]),
            _ => panic!("not in the benchmark"),
        };
        let mut s = seed | 1;
        let mut raw: Vec<u8> = (0..rows * cols / blck * tsize)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect();
        let small = half::f16::from_f32(0.01).to_le_bytes();
        for blk in raw.chunks_exact_mut(tsize) {
            for &o in scale_offs {
                blk[o..o + 2].copy_from_slice(&small);
            }
        }
        raw
    }

    /// A Qwen2.5-0.5B-shaped stack (24 layers, Q4_K_M-like types, distinct memory so the
    /// weights come from DRAM) plus the tied Q8_0 output matrix: decode and prompt tokens/s
    /// of the matmuls alone. `cargo test --release -- --ignored --nocapture bench_model`
    #[test]
    #[ignore]
    fn bench_model() {
        use std::time::Instant;
        let (h, kv, ff, vocab) = (896, 128, 4864, 151936);
        let mut mats = Vec::new();
        for l in 0..24u64 {
            let down = if l % 3 == 0 {
                GgmlDType::Q6K
            } else {
                GgmlDType::Q4K
            };
            for (i, (dt, r, c)) in [
                (GgmlDType::Q5_0, h, h),
                (GgmlDType::Q5_0, kv, h),
                (GgmlDType::Q8_0, kv, h),
                (GgmlDType::Q5_0, h, h),
                (GgmlDType::Q5_0, ff, h),
                (GgmlDType::Q5_0, ff, h),
                (down, h, ff),
            ]
            .into_iter()
            .enumerate()
            {
                let raw = random_raw(dt, r, c, l * 16 + i as u64 + 1);
                mats.push(QMatrix::from_ggml(dt, &raw, r, c).expect("layer matrix"));
            }
        }
        let raw = random_raw(GgmlDType::Q8_0, vocab, h, 99);
        mats.push(QMatrix::from_ggml(GgmlDType::Q8_0, &raw, vocab, h).expect("output"));
        drop(raw);
        let macs: usize = mats.iter().map(|m| m.rows() * m.cols()).sum();
        let bytes: usize = mats.iter().map(|m| m.size_bytes()).sum();
        println!(
            "model: {:.0} M MACs/token, {:.0} MB of weights",
            macs as f64 / 1e6,
            bytes as f64 / 1e6
        );
        let maxc = ff;
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let x = rand_vec(512 * maxc, 3);
            let mut y = vec![0f32; 512 * vocab.max(ff)];
            let tokens = 30;
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t0 = Instant::now();
                for _ in 0..tokens {
                    for m in &mats {
                        m.matmul(&x[..m.cols()], 1, &mut y[..m.rows()], &pool);
                    }
                }
                best = best.min(t0.elapsed().as_secs_f64() / tokens as f64);
            }
            println!(
                "threads {threads}: decode {:.1} tok/s ({:.1} GMAC/s, {:.1} GB/s of weights)",
                1.0 / best,
                macs as f64 / best / 1e9,
                bytes as f64 / best / 1e9
            );
            let n = 512;
            let t0 = Instant::now();
            for m in &mats[..mats.len() - 1] {
                m.matmul(&x[..n * m.cols()], n, &mut y[..n * m.rows()], &pool);
            }
            let layers = t0.elapsed().as_secs_f64();
            let lm = mats.len() - 1;
            let t0 = Instant::now();
            mats[lm].matmul(&x[..n * h], n, &mut y[..n * vocab], &pool);
            let out = t0.elapsed().as_secs_f64();
            println!(
                "threads {threads}: prompt {n} tokens: layers {:.1} tok/s ({:.1} GMAC/s); output matrix for all {n} tokens {:.2} s",
                n as f64 / layers,
                (macs - vocab * h) as f64 * n as f64 / layers / 1e9,
                out
            );
        }
    }
}
#[cfg(test)]
mod qbench {
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
