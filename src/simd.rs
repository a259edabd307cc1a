//! Element-wise float kernels shared by the embedder ([`crate::embed`]) and the language
//! model engine ([`crate::llm`]): lane-parallel sum and max, a polynomial `e^x`, softmax and
//! the SiLU gate of SwiGLU.
//!
//! They are written so LLVM vectorises them: no libm calls, no branches in the loops,
//! reductions over 8 independent lanes. Each kernel exists twice, the baseline build and an
//! AVX2+FMA build, and [`dispatch!`] picks one at run time, so a portable binary gets the
//! wide code path too.

/// Calls `$module::$f` compiled for AVX2+FMA (`$module::avx2::$f`) when the CPU has them,
/// checked at run time, else the baseline build of the same code.
macro_rules! dispatch {
    ($($module:ident)::+ ; $f:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the features this variant was compiled for were just detected.
                unsafe { $($module)::+::avx2::$f($($arg),*) }
            } else {
                $($module)::+::$f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $($module)::+::$f($($arg),*)
        }
    }};
}
pub(crate) use dispatch;

pub(crate) const LANES: usize = 8;

#[inline(always)]
pub(crate) fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
pub(crate) fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |a, &b| if b > a { b } else { a })
}

/// e^x for x ≤ 0 (softmax after subtracting the max), Cephes `expf` polynomial: ~1 ulp.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Rounds to nearest without SSE4.1 `roundps`: adding 1.5·2²³ pushes the fraction out.
    const ROUND: f32 = 12_582_912.0;
    // Below this e^x is < 1e-37: zero for softmax purposes, and 2^n stays a normal float.
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // n's integer value sits in the low mantissa bits of `shifted`; reading it from there
    // (instead of `n as i32`, a saturating cast LLVM can only do one lane at a time)
    // keeps the loop vectorised.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits((n_int.wrapping_add(127) << 23) as u32)
}

macro_rules! define_kernels {
    ($($attr:meta)?; $($unsafety:ident)?) => {
        $(#[$attr])?
        pub(crate) $($unsafety)? fn softmax_row(row: &mut [f32]) {
            let max = lane_max(row);
            for v in row.iter_mut() {
                *v = exp_nonpositive(*v - max);
            }
            let inv = 1.0 / lane_sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }

        /// `gate[i] = silu(gate[i]) · up[i]`, with `silu(g) = g / (1 + e^-g)` computed from
        /// `e^-|g|` so the exponential never overflows.
        $(#[$attr])?
        pub(crate) $($unsafety)? fn silu_mul_slice(gate: &mut [f32], up: &[f32]) {
            for (g, u) in gate.iter_mut().zip(up) {
                let x = *g;
                let e = exp_nonpositive(-x.abs());
                let numerator = if x >= 0.0 { 1.0 } else { e };
                *g = x * numerator / (1.0 + e) * u;
            }
        }
    };
}

mod kernels {
    use super::{exp_nonpositive, lane_max, lane_sum};
    define_kernels!(;);

    #[cfg(target_arch = "x86_64")]
    pub(super) mod avx2 {
        use super::super::{exp_nonpositive, lane_max, lane_sum};
        define_kernels!(target_feature(enable = "avx2,fma"); unsafe);
    }
}

/// Softmax of `row` in place.
pub fn softmax(row: &mut [f32]) {
    dispatch!(kernels; softmax_row(row))
}

/// SwiGLU's gating: `gate[i] = silu(gate[i]) · up[i]`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    dispatch!(kernels; silu_mul_slice(gate, up))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_on_softmax_inputs() {
        for i in 0..2000 {
            let x = -(i as f32) * 0.05;
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!(
                (got - want).abs() <= want * 2e-7 + 1e-37,
                "exp({x}) = {got} ≠ {want}"
            );
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = vec![1.0f32, 3.0, 2.0, -50.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[1] > row[2] && row[2] > row[0] && row[0] > row[3]);
    }

    #[test]
    fn silu_mul_matches_the_direct_formula_without_overflow() {
        let mut gate: Vec<f32> = (0..203).map(|i| (i as f32 - 101.0) * 0.9).collect();
        let up: Vec<f32> = (0..203).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let want: Vec<f64> = gate
            .iter()
            .zip(&up)
            .map(|(&g, &u)| {
                let g = f64::from(g);
                g / (1.0 + (-g).exp()) * f64::from(u)
            })
            .collect();
        silu_mul(&mut gate, &up);
        for (i, (got, want)) in gate.iter().zip(&want).enumerate() {
            assert!(got.is_finite(), "element {i} is {got}");
            assert!(
                (f64::from(*got) - want).abs() <= want.abs() * 1e-6 + 1e-30,
                "element {i}: {got} ≠ {want}"
            );
        }
    }
}
