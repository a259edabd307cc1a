//! Weight repacking: GGUF blocks (Q4_0 … Q6_K, F32/F16/BF16) into the interleaved tiles and
//! compact scales of a [`QMatrix`] (the layouts and the exact conversions are in the
//! [module doc](super)), and single values read back out of them (the embedding lookup,
//! the scalar kernel).

use candle_core::quantized::GgmlDType;

use super::{Layout, QMatrix, Scales, G, QK};
use crate::{Error, Result};

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
    pub fn from_ggml(dtype: GgmlDType, raw: &[u8], rows: usize, cols: usize) -> Result<QMatrix> {
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
                return Err(Error::Weights(format!(
                    "weight type {other:?} is not supported by the quantized matmul"
                )))
            }
        };
        if rows == 0 || cols == 0 || !cols.is_multiple_of(blck) {
            return Err(Error::Weights(format!(
                "{dtype:?} matrix of {rows}×{cols}: cols must be a non-zero multiple of {blck}"
            )));
        }
        let row_bytes = cols / blck * tsize;
        let expected = rows.checked_mul(row_bytes).ok_or_else(|| {
            Error::Weights(format!("{dtype:?} matrix of {rows}×{cols} is too large"))
        })?;
        if raw.len() != expected {
            return Err(Error::Weights(format!(
                "{dtype:?} matrix of {rows}×{cols} needs {expected} bytes, got {}",
                raw.len()
            )));
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

    /// The codes of block `b` of `row` (i8 bit patterns for `Q8`).
    pub(super) fn codes(&self, row: usize, b: usize) -> [u8; 32] {
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
    pub(super) fn dm(&self, k: usize) -> (f32, f32) {
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

    /// Index of the scale (and min) of `row`, block `b`, half `h`.
    pub(super) fn sidx(&self, row: usize, b: usize, h: usize) -> usize {
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
}
