//! The BERT encoder's forward pass on CPU, tuned for embedding throughput.
//!
//! Weights come from candle (safetensors parsing, `bert.` prefix handling) and the
//! architecture from candle-transformers' BERT `Config`; the arithmetic is done here on plain
//! `f32` buffers because candle's general-purpose ops cost about 40% of the time on this
//! workload: element-wise ops (bias, GELU, residuals) run single-threaded, attention runs as
//! one rayon-parallel GEMM per head over padded sequences, and every step allocates a tensor.
//!
//! What this does instead:
//! - Tokens of all sequences in a batch are *packed* (no padding rows at all): the dense
//!   layers, which are ~90% of the FLOPs, multiply `(total tokens × hidden)` matrices, and
//!   attention runs per (sequence, head) on that sequence's own tokens, so padding cannot
//!   change results and costs nothing.
//! - Q, K and V are one fused projection; biases are folded into the GEMM's output.
//! - Attention reads Q/K/V straight out of the fused projection through strides (no
//!   transposes or copies), one single-threaded GEMM per (sequence, head) task, tasks spread
//!   over the rayon pool.
//! - Residual + LayerNorm and GELU are fused, row-parallel passes.
//!
//! GEMMs use the `gemm` crate (the one candle uses), which picks AVX2/FMA/AVX-512 kernels at
//! run time, so a portable build is as fast as a `target-cpu=native` one for the bulk of work.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{EmbedError, Result};

/// One dense layer in PyTorch layout: `weight` is `(out, in)` row-major.
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// A BERT encoder ready to run: embeddings, layers, shapes.
pub(super) struct Encoder {
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    /// Row 0 of the token-type table: sentence embeddings use a single segment.
    token_type_row: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    head_dim: usize,
    vocab: usize,
    max_positions: usize,
    act: HiddenAct,
}

fn tensor_vec(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Vec<f32>> {
    let t: Tensor = vb.get(shape, name)?;
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn dense(vb: &VarBuilder, inputs: usize, outputs: usize) -> Result<Dense> {
    Ok(Dense {
        weight: tensor_vec(vb, &[outputs, inputs], "weight")?,
        bias: tensor_vec(vb, &[outputs], "bias")?,
        inputs,
        outputs,
    })
}

fn layer_norm(vb: &VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm {
        gamma: tensor_vec(vb, &[size], "weight")?,
        beta: tensor_vec(vb, &[size], "bias")?,
        eps: eps as f32,
    })
}

/// Stacks Q, K and V into one `(3·hidden, hidden)` projection.
fn fused_qkv(vb: &VarBuilder, hidden: usize) -> Result<Dense> {
    let mut weight = Vec::with_capacity(3 * hidden * hidden);
    let mut bias = Vec::with_capacity(3 * hidden);
    for part in ["query", "key", "value"] {
        let d = dense(&vb.pp(part), hidden, hidden)?;
        weight.extend_from_slice(&d.weight);
        bias.extend_from_slice(&d.bias);
    }
    Ok(Dense {
        weight,
        bias,
        inputs: hidden,
        outputs: 3 * hidden,
    })
}

impl Encoder {
    pub(super) fn load(vb: VarBuilder, config: &Config) -> Result<Encoder> {
        // Checkpoints saved from BertForX carry a `bert.` prefix; sentence-transformers' don't.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) || config.type_vocab_size == 0 {
            return Err(EmbedError::Model(candle_core::Error::Msg(format!(
                "unsupported BERT shape: hidden {hidden}, heads {heads}, token types {}",
                config.type_vocab_size
            ))));
        }
        let emb = vb.pp("embeddings");
        let token_types = tensor_vec(
            &emb.pp("token_type_embeddings"),
            &[config.type_vocab_size, hidden],
            "weight",
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let attn = l.pp("attention");
                Ok(Layer {
                    qkv: fused_qkv(&attn.pp("self"), hidden)?,
                    attention_out: dense(&attn.pp("output.dense"), hidden, hidden)?,
                    attention_norm: layer_norm(
                        &attn.pp("output.LayerNorm"),
                        hidden,
                        config.layer_norm_eps,
                    )?,
                    intermediate: dense(
                        &l.pp("intermediate.dense"),
                        hidden,
                        config.intermediate_size,
                    )?,
                    output: dense(&l.pp("output.dense"), config.intermediate_size, hidden)?,
                    output_norm: layer_norm(
                        &l.pp("output.LayerNorm"),
                        hidden,
                        config.layer_norm_eps,
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            word_embeddings: tensor_vec(
                &emb.pp("word_embeddings"),
                &[config.vocab_size, hidden],
                "weight",
            )?,
            position_embeddings: tensor_vec(
                &emb.pp("position_embeddings"),
                &[config.max_position_embeddings, hidden],
                "weight",
            )?,
            token_type_row: token_types[..hidden].to_vec(),
            embedding_norm: layer_norm(&emb.pp("LayerNorm"), hidden, config.layer_norm_eps)?,
            layers,
            hidden,
            heads,
            head_dim: hidden / heads,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            act: config.hidden_act,
        })
    }

    /// Last hidden states of every token of every sequence, packed: row `offset(s) + i` is
    /// token `i` of sequence `s`, `hidden` floats per row.
    pub(super) fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let mut spans = Vec::with_capacity(seqs.len());
        let mut offset = 0;
        for s in seqs {
            if s.len() > self.max_positions {
                return Err(EmbedError::Model(candle_core::Error::Msg(format!(
                    "sequence of {} tokens exceeds the model's {} positions",
                    s.len(),
                    self.max_positions
                ))));
            }
            spans.push((offset, s.len()));
            offset += s.len();
        }

        let mut x = vec![0f32; total * h];
        let mut row = 0;
        for s in seqs {
            for (pos, &id) in s.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(EmbedError::Model(candle_core::Error::Msg(format!(
                        "token id {id} outside the vocabulary of {}",
                        self.vocab
                    ))));
                }
                let dst = &mut x[row * h..(row + 1) * h];
                let word = &self.word_embeddings[id * h..(id + 1) * h];
                let position = &self.position_embeddings[pos * h..(pos + 1) * h];
                for (((d, w), p), t) in dst
                    .iter_mut()
                    .zip(word)
                    .zip(position)
                    .zip(&self.token_type_row)
                {
                    *d = w + p + t;
                }
                row += 1;
            }
        }
        add_and_norm(&mut x, None, &self.embedding_norm, h);

        for layer in &self.layers {
            let qkv = linear(&x, total, &layer.qkv);
            let context = self.attention(&qkv, &spans, total);
            let mut attended = linear(&context, total, &layer.attention_out);
            add_and_norm(&mut attended, Some(&x), &layer.attention_norm, h);
            let mut inner = linear(&attended, total, &layer.intermediate);
            activate(&mut inner, self.act);
            x = linear(&inner, total, &layer.output);
            add_and_norm(&mut x, Some(&attended), &layer.output_norm, h);
        }
        Ok(x)
    }

    /// Multi-head self-attention over packed sequences; input is the fused `(T, 3h)` QKV.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)], total: usize) -> Vec<f32> {
        let h = self.hidden;
        let dh = self.head_dim;
        let stride = 3 * h;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut context = vec![0f32; total * h];
        let out = SharedMut(context.as_mut_ptr());
        let tasks: Vec<(usize, usize, usize)> = spans
            .iter()
            .flat_map(|&(offset, len)| (0..self.heads).map(move |head| (offset, len, head)))
            .collect();
        tasks.par_iter().for_each(|&(offset, len, head)| {
            let mut scores = vec![0f32; len * len];
            let q = qkv[offset * stride + head * dh..].as_ptr();
            let k = qkv[offset * stride + h + head * dh..].as_ptr();
            let v = qkv[offset * stride + 2 * h + head * dh..].as_ptr();
            // SAFETY: all pointers stay inside their buffers: rows offset..offset+len of
            // `qkv` (stride 3h) and of `context` (stride h), columns head·dh..(head+1)·dh.
            // Each task writes a distinct (rows, columns) block of `context`, so no two
            // threads write the same element, and `context` outlives the parallel loop.
            unsafe {
                // scores = scale · Q Kᵀ, with Kᵀ read through strides.
                gemm::gemm(
                    len,
                    len,
                    dh,
                    scores.as_mut_ptr(),
                    1,
                    len as isize,
                    false,
                    q,
                    1,
                    stride as isize,
                    k,
                    stride as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
                for row in scores.chunks_exact_mut(len) {
                    softmax_in_place(row);
                }
                let dst = out.get().add(offset * h + head * dh);
                gemm::gemm(
                    len,
                    dh,
                    len,
                    dst,
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    len as isize,
                    v,
                    1,
                    stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        });
        context
    }
}

/// A pointer that parallel tasks may share because each writes a disjoint region.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: see the use in `attention`: writes through it never overlap between tasks.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    // A method (not field access) so closures capture the whole Send+Sync wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

fn gemm_parallelism() -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// `x · Wᵀ + b` for `rows` rows of `x`.
fn linear(x: &[f32], rows: usize, dense: &Dense) -> Vec<f32> {
    let (k, n) = (dense.inputs, dense.outputs);
    let mut out = Vec::with_capacity(rows * n);
    for _ in 0..rows {
        out.extend_from_slice(&dense.bias);
    }
    // SAFETY: `x` holds rows·k floats, `weight` n·k, `out` rows·n; the strides below walk
    // exactly those row-major shapes (Wᵀ is read as column-major W).
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            dense.weight.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_parallelism(),
        );
    }
    out
}

/// Rows of at least this many floats are worth handing to another thread together.
const PAR_MIN_FLOATS: usize = 16 * 1024;

/// `x = LayerNorm(x + residual)`, row by row.
fn add_and_norm(x: &mut [f32], residual: Option<&[f32]>, norm: &LayerNorm, width: usize) {
    let rows_per_task = (PAR_MIN_FLOATS / width).max(1);
    match residual {
        Some(res) => x
            .par_chunks_mut(width * rows_per_task)
            .zip(res.par_chunks(width * rows_per_task))
            .for_each(|(xs, rs)| dispatch!(norm_rows(xs, Some(rs), norm, width))),
        None => x
            .par_chunks_mut(width * rows_per_task)
            .for_each(|xs| dispatch!(norm_rows(xs, None, norm, width))),
    }
}

fn activate(x: &mut [f32], act: HiddenAct) {
    x.par_chunks_mut(PAR_MIN_FLOATS).for_each(|xs| match act {
        HiddenAct::Gelu => dispatch!(gelu_erf_slice(xs)),
        HiddenAct::GeluApproximate => xs.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
        HiddenAct::Relu => xs.iter_mut().for_each(|v| *v = v.max(0.0)),
    });
}

fn softmax_in_place(row: &mut [f32]) {
    dispatch!(softmax_row(row))
}

/// Calls `kernels::$f` compiled for AVX2+FMA when the CPU has them (checked at run time,
/// so portable builds get the wide code path too), else the baseline build of the same code.
macro_rules! dispatch {
    ($f:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the features this variant was compiled for were just detected.
                unsafe { kernels::avx2::$f($($arg),*) }
            } else {
                kernels::$f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            kernels::$f($($arg),*)
        }
    }};
}
use dispatch;

/// Element-wise kernels written so LLVM vectorises them: no libm calls, no branches in the
/// loops, reductions over 8 independent lanes. Each exists twice: the baseline build and an
/// AVX2+FMA build chosen at run time by `dispatch!`.
mod kernels {
    use super::LayerNorm;

    const LANES: usize = 8;

    #[inline(always)]
    fn lane_sum(xs: &[f32]) -> f32 {
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
    fn lane_max(xs: &[f32]) -> f32 {
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
    fn exp_nonpositive(x: f32) -> f32 {
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

    /// erf as a rational function of x on [-4, 4] (Eigen's / XLA's `erf` for f32): max
    /// absolute error 4.2e-7 against the exact erf (beyond ±4, erf is ±1 in f32).
    #[inline(always)]
    pub(super) fn erf(x: f32) -> f32 {
        let x = x.clamp(-4.0, 4.0);
        let x2 = x * x;
        let mut p = -2.726_142_3e-10;
        p = p * x2 + 2.770_681_4e-8;
        p = p * x2 - 2.101_024e-6;
        p = p * x2 - 5.692_506_4e-5;
        p = p * x2 - 7.349_906_3e-4;
        p = p * x2 - 2.954_6e-3;
        p = p * x2 - 1.609_603_3e-2;
        let mut q = -1.456_607_2e-5;
        q = q * x2 - 2.133_740_6e-4;
        q = q * x2 - 1.682_827e-3;
        q = q * x2 - 7.373_329e-3;
        q = q * x2 - 1.426_473_9e-2;
        x * p / q
    }

    macro_rules! define_kernels {
        ($($attr:meta)?; $($unsafety:ident)?) => {
            /// Exact GELU, `x·Φ(x)`, as PyTorch's default `gelu` computes it.
            $(#[$attr])?
            pub(crate) $($unsafety)? fn gelu_erf_slice(xs: &mut [f32]) {
                for v in xs.iter_mut() {
                    let x = *v;
                    *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            }

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

            $(#[$attr])?
            pub(crate) $($unsafety)? fn norm_rows(
                xs: &mut [f32],
                residual: Option<&[f32]>,
                norm: &LayerNorm,
                width: usize,
            ) {
                for (i, row) in xs.chunks_exact_mut(width).enumerate() {
                    if let Some(res) = residual {
                        for (a, b) in row.iter_mut().zip(&res[i * width..(i + 1) * width]) {
                            *a += b;
                        }
                    }
                    let n = row.len() as f32;
                    let mean = lane_sum(row) / n;
                    let mut acc = [0f32; LANES];
                    let chunks = row.chunks_exact(LANES);
                    let tail: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
                    for c in chunks {
                        for l in 0..LANES {
                            let d = c[l] - mean;
                            acc[l] += d * d;
                        }
                    }
                    let var = (acc.iter().sum::<f32>() + tail) / n;
                    let inv = 1.0 / (var + norm.eps).sqrt();
                    for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
                        *v = (*v - mean) * inv * g + b;
                    }
                }
            }
        };
    }

    define_kernels!(;);

    #[cfg(target_arch = "x86_64")]
    pub(super) mod avx2 {
        use super::{erf, exp_nonpositive, lane_max, lane_sum, LayerNorm, LANES};
        define_kernels!(target_feature(enable = "avx2,fma"); unsafe);
    }

    #[cfg(test)]
    pub(super) fn exp_for_test(x: f32) -> f32 {
        exp_nonpositive(x)
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/π)
    0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Values from the definition (tables of erf); 1e-6 is far below what embeddings see.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-1.0, -0.842_700_8),
            (2.0, 0.995_322_3),
            (-3.5, -0.999_999_3),
            (6.0, 1.0),
        ] {
            assert!(
                (kernels::erf(x) - want).abs() < 1e-6,
                "erf({x}) = {} ≠ {want}",
                kernels::erf(x)
            );
        }
    }

    #[test]
    fn exp_matches_std_on_softmax_inputs() {
        for i in 0..2000 {
            let x = -(i as f32) * 0.05;
            let (got, want) = (kernels::exp_for_test(x), x.exp());
            assert!(
                (got - want).abs() <= want * 2e-7 + 1e-37,
                "exp({x}) = {got} ≠ {want}"
            );
        }
    }

    #[test]
    fn gelu_and_layer_norm_match_direct_formulas() {
        let mut xs: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.37).collect();
        let inputs = xs.clone();
        activate(&mut xs, HiddenAct::Gelu);
        for (x, g) in inputs.iter().zip(&xs) {
            let want = 0.5 * (*x as f64) * (1.0 + libm_erf(*x as f64 / std::f64::consts::SQRT_2));
            assert!((*g as f64 - want).abs() < 2e-6, "gelu({x}) = {g} ≠ {want}");
        }
        let norm = LayerNorm {
            gamma: vec![2.0; 12],
            beta: vec![1.0; 12],
            eps: 1e-12,
        };
        let mut rows: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let residual = vec![1.0f32; 24];
        add_and_norm(&mut rows, Some(&residual), &norm, 12);
        for row in rows.chunks(12) {
            let mean = row.iter().sum::<f32>() / 12.0;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 12.0;
            // γ=2, β=1: mean 1, variance 4 after normalising.
            assert!(
                (mean - 1.0).abs() < 1e-5 && (var - 4.0).abs() < 1e-4,
                "{row:?}"
            );
        }
    }

    /// erf by its Maclaurin series (converges fast for |x| ≤ 3), as an independent reference.
    fn libm_erf(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = vec![1.0f32, 3.0, 2.0, -50.0];
        softmax_in_place(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[1] > row[2] && row[2] > row[0] && row[0] > row[3]);
    }

    #[test]
    fn linear_applies_weight_transpose_and_bias() {
        // y = x Wᵀ + b with W = [[1,2],[3,4],[5,6]] (3 outputs, 2 inputs).
        let dense = Dense {
            weight: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            bias: vec![0.5, 0.0, -1.0],
            inputs: 2,
            outputs: 3,
        };
        let y = linear(&[1.0, 1.0, 2.0, 0.0], 2, &dense);
        assert_eq!(y, vec![3.5, 7.0, 10.0, 2.5, 6.0, 9.0]);
    }
}
