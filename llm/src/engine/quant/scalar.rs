//! The scalar kernels: one (row, token) dot product of the integer method in plain Rust (any
//! CPU; in the f32 operation order of the AVX2 kernel's lane for that row), and the f32
//! dot product of the `F32` layout, which every instruction set uses.

use super::activation::Act;
use super::{Layout, QMatrix};

impl QMatrix {
    /// One (row, token) dot product, in the same f32 operation order as the AVX2 kernel's
    /// lane for that row (so the two agree to the last bit but for Q8_0 under VNNI).
    pub(super) fn dot_scalar(&self, row: usize, act: &Act, t: usize) -> f32 {
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

/// f32 dot product with 8 independent accumulators (vectorised by the compiler; the same
/// code in every path, so it does not make the paths differ).
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
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
