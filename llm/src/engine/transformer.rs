//! The decoder-only transformer forward pass (llama family and qwen2) on Lore's own
//! quantized kernels ([`super::quant`]): embedding lookup, RMSNorm, rotary position
//! embedding, grouped-query attention over an f32 KV cache, SwiGLU feed-forward, and the
//! output projection, computed for a whole prompt at once (batched matmuls) or one token at
//! a time. Buffers are reused between calls: decoding a token allocates nothing.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;

use super::attention::attention;
use super::pool::Pool;
use super::quant::{Isa, QMatrix};
use crate::Error;

/// How rotary embedding pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1): llama, mistral (GGUF's "normal" mode).
    Interleaved,
    /// Pairs (i, i + d/2): qwen2 (GGUF's "neox" mode).
    Halves,
}

/// The shape of a model, read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerConfig {
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
}

impl TransformerConfig {
    /// Reads `{arch}.*` keys; `arch` is the GGUF `general.architecture`.
    pub(crate) fn from_gguf(content: &Content, arch: &str) -> Result<Self, String> {
        let get = |key: &str| -> Result<u64, String> {
            crate::model::metadata_u64(content, &format!("{arch}.{key}"))
                .ok_or_else(|| format!("metadata {arch}.{key} is missing"))
        };
        let get_f32 = |key: &str| -> Option<f32> {
            content
                .metadata
                .get(&format!("{arch}.{key}"))
                .and_then(|v| v.to_f32().ok())
        };
        let dim = get("embedding_length")? as usize;
        let n_heads = get("attention.head_count")? as usize;
        let n_kv_heads = get("attention.head_count_kv").unwrap_or(n_heads as u64) as usize;
        if n_heads == 0
            || n_kv_heads == 0
            || !dim.is_multiple_of(n_heads)
            || !n_heads.is_multiple_of(n_kv_heads)
        {
            return Err(format!(
                "inconsistent attention shape: dim {dim}, {n_heads} heads, {n_kv_heads} KV heads"
            ));
        }
        let head_dim = get("attention.key_length").unwrap_or((dim / n_heads) as u64) as usize;
        if !head_dim.is_multiple_of(2) {
            return Err(format!("odd head dimension {head_dim}"));
        }
        let rope_style = match arch {
            "qwen2" => RopeStyle::Halves,
            _ => RopeStyle::Interleaved,
        };
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or("tensor token_embd.weight is missing")?;
        Ok(TransformerConfig {
            dim,
            n_layers: get("block_count")? as usize,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: get("feed_forward_length")? as usize,
            vocab,
            rms_eps: get_f32("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            rope_theta: get_f32("rope.freq_base").unwrap_or(10_000.0),
            rope_style,
        })
    }

    fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    /// qwen2 has biases on the query, key and value projections.
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
    /// Keys and values of every position so far, `kv_dim` floats each.
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// Activations of one forward call, kept between calls so decoding allocates nothing.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    attn_heads: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
}

/// A loaded model, its KV cache and its thread pool.
pub struct Transformer {
    pub config: TransformerConfig,
    embedding: QMatrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    /// `None`: the output projection is tied to the embedding matrix.
    output: Option<QMatrix>,
    /// cos/sin of position × frequency, `head_dim / 2` per position, grown on demand.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
    /// Positions held in the KV cache.
    cached: usize,
    pool: Pool,
    /// The kernel family every matmul and attention runs on (one this CPU has).
    isa: Isa,
    scratch: Scratch,
}

/// Reads one tensor's raw bytes from the GGUF file.
fn read_tensor<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
) -> Result<(GgmlDType, Vec<usize>, Vec<u8>), String> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| format!("tensor {name} is missing"))?;
    let elems = info.shape.elem_count();
    let block = info.ggml_dtype.block_size();
    let bytes = elems / block * info.ggml_dtype.type_size();
    let mut raw = vec![0u8; bytes];
    reader
        .seek(SeekFrom::Start(content.tensor_data_offset + info.offset))
        .and_then(|_| reader.read_exact(&mut raw))
        .map_err(|e| format!("cannot read tensor {name}: {e}"))?;
    Ok((info.ggml_dtype, info.shape.dims().to_vec(), raw))
}

fn load_matrix<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<QMatrix, String> {
    let (dtype, dims, raw) = read_tensor(content, reader, name)?;
    if dims.iter().product::<usize>() != rows * cols || dims.last() != Some(&cols) {
        return Err(format!(
            "tensor {name} has shape {dims:?}, expected {rows} × {cols}"
        ));
    }
    QMatrix::from_ggml(dtype, &raw, rows, cols).map_err(|e| format!("tensor {name}: {e}"))
}

fn load_vector<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
    len: usize,
) -> Result<Vec<f32>, String> {
    let matrix = load_matrix(content, reader, name, 1, len)?;
    let mut out = vec![0.0; len];
    matrix.dequantize_row(0, &mut out);
    Ok(out)
}

impl Transformer {
    /// Loads every weight of a llama-family or qwen2 GGUF into Lore's kernel layouts, to run
    /// on `threads` threads with the kernels of `isa` (`None`, or one this CPU lacks: the
    /// best it has; see [`Isa::choose`]).
    pub fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        arch: &str,
        threads: usize,
        isa: Option<Isa>,
    ) -> crate::Result<Self> {
        Self::load_weights(content, reader, arch, threads, isa).map_err(crate::Error::Weights)
    }

    fn load_weights<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        arch: &str,
        threads: usize,
        isa: Option<Isa>,
    ) -> Result<Self, String> {
        let config = TransformerConfig::from_gguf(content, arch)?;
        let c = &config;
        let embedding = load_matrix(content, reader, "token_embd.weight", c.vocab, c.dim)?;
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let name = |t: &str| format!("blk.{i}.{t}");
            let optional_bias = |reader: &mut R, t: &str, len: usize| {
                if content.tensor_infos.contains_key(&name(t)) {
                    load_vector(content, reader, &name(t), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: load_vector(content, reader, &name("attn_norm.weight"), c.dim)?,
                wq: load_matrix(content, reader, &name("attn_q.weight"), c.q_dim(), c.dim)?,
                wk: load_matrix(content, reader, &name("attn_k.weight"), c.kv_dim(), c.dim)?,
                wv: load_matrix(content, reader, &name("attn_v.weight"), c.kv_dim(), c.dim)?,
                bq: optional_bias(reader, "attn_q.bias", c.q_dim())?,
                bk: optional_bias(reader, "attn_k.bias", c.kv_dim())?,
                bv: optional_bias(reader, "attn_v.bias", c.kv_dim())?,
                wo: load_matrix(
                    content,
                    reader,
                    &name("attn_output.weight"),
                    c.dim,
                    c.q_dim(),
                )?,
                ffn_norm: load_vector(content, reader, &name("ffn_norm.weight"), c.dim)?,
                w_gate: load_matrix(content, reader, &name("ffn_gate.weight"), c.ffn_dim, c.dim)?,
                w_up: load_matrix(content, reader, &name("ffn_up.weight"), c.ffn_dim, c.dim)?,
                w_down: load_matrix(content, reader, &name("ffn_down.weight"), c.dim, c.ffn_dim)?,
                keys: Vec::new(),
                values: Vec::new(),
            });
        }
        let output_norm = load_vector(content, reader, "output_norm.weight", c.dim)?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(load_matrix(
                content,
                reader,
                "output.weight",
                c.vocab,
                c.dim,
            )?)
        } else {
            None
        };
        Ok(Transformer {
            config,
            embedding,
            layers,
            output_norm,
            output,
            rope_cos: Vec::new(),
            rope_sin: Vec::new(),
            cached: 0,
            pool: Pool::new(threads.max(1)),
            isa: Isa::choose(isa),
            scratch: Scratch::default(),
        })
    }

    /// The kernel family the model runs on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Bytes of weights held (quantized), for memory reports.
    pub fn weight_bytes(&self) -> usize {
        let layer = |l: &Layer| {
            [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .iter()
                .map(|m| m.size_bytes())
                .sum::<usize>()
        };
        self.embedding.size_bytes()
            + self.output.as_ref().map_or(0, QMatrix::size_bytes)
            + self.layers.iter().map(layer).sum::<usize>()
    }

    /// Forgets the sequence (the KV cache keeps its memory for the next one).
    pub fn clear(&mut self) {
        self.cached = 0;
        for layer in &mut self.layers {
            layer.keys.clear();
            layer.values.clear();
        }
    }

    /// Keeps the first `positions` cached positions and forgets the rest, so a prompt that
    /// shares them with the previous sequence continues from there. False (and nothing
    /// changes) when fewer are cached.
    pub fn truncate(&mut self, positions: usize) -> bool {
        if positions > self.cached {
            return false;
        }
        let kv_dim = self.config.kv_dim();
        for layer in &mut self.layers {
            layer.keys.truncate(positions * kv_dim);
            layer.values.truncate(positions * kv_dim);
        }
        self.cached = positions;
        true
    }

    /// Runs `tokens` at positions `position..` (which must equal the cached length, or 0 to
    /// start over) and returns the logits of the last token.
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> crate::Result<&[f32]> {
        if tokens.is_empty() {
            return Err(Error::Generation("no tokens to run".into()));
        }
        if position == 0 {
            self.clear();
        }
        if position != self.cached {
            return Err(Error::Generation(format!(
                "position {position} does not follow the {} cached positions",
                self.cached
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.config.vocab) {
            return Err(Error::Generation(format!(
                "token id {bad} is outside the vocabulary ({})",
                self.config.vocab
            )));
        }
        let n = tokens.len();
        self.extend_rope(position + n);
        let Transformer {
            config: c,
            embedding,
            layers,
            output_norm,
            output,
            rope_cos,
            rope_sin,
            cached,
            pool,
            isa,
            scratch: s,
        } = self;
        let isa = *isa;
        let half = c.head_dim / 2;
        resize(&mut s.x, n * c.dim);
        for (t, &token) in tokens.iter().enumerate() {
            embedding.dequantize_row(token as usize, &mut s.x[t * c.dim..(t + 1) * c.dim]);
        }
        for layer in layers.iter_mut() {
            // Attention block.
            rms_norm_rows(&s.x, &layer.attn_norm, c.rms_eps, &mut s.normed);
            resize(&mut s.q, n * c.q_dim());
            resize(&mut s.k, n * c.kv_dim());
            resize(&mut s.v, n * c.kv_dim());
            layer.wq.matmul_isa(&s.normed, n, &mut s.q, pool, isa);
            layer.wk.matmul_isa(&s.normed, n, &mut s.k, pool, isa);
            layer.wv.matmul_isa(&s.normed, n, &mut s.v, pool, isa);
            add_bias(&mut s.q, layer.bq.as_deref());
            add_bias(&mut s.k, layer.bk.as_deref());
            add_bias(&mut s.v, layer.bv.as_deref());
            for t in 0..n {
                let pos = position + t;
                let cos = &rope_cos[pos * half..(pos + 1) * half];
                let sin = &rope_sin[pos * half..(pos + 1) * half];
                for head in s.q[t * c.q_dim()..(t + 1) * c.q_dim()].chunks_exact_mut(c.head_dim) {
                    rotate(head, cos, sin, c.rope_style);
                }
                for head in s.k[t * c.kv_dim()..(t + 1) * c.kv_dim()].chunks_exact_mut(c.head_dim) {
                    rotate(head, cos, sin, c.rope_style);
                }
            }
            layer.keys.extend_from_slice(&s.k);
            layer.values.extend_from_slice(&s.v);
            attention(
                c,
                &s.q,
                &layer.keys,
                &layer.values,
                position,
                n,
                &mut s.attn_heads,
                pool,
                isa,
            );
            // Heads were computed head-major (each task owns one); back to token-major.
            resize(&mut s.attn, n * c.q_dim());
            for h in 0..c.n_heads {
                for t in 0..n {
                    let from = (h * n + t) * c.head_dim;
                    let to = t * c.q_dim() + h * c.head_dim;
                    s.attn[to..to + c.head_dim]
                        .copy_from_slice(&s.attn_heads[from..from + c.head_dim]);
                }
            }
            resize(&mut s.proj, n * c.dim);
            layer.wo.matmul_isa(&s.attn, n, &mut s.proj, pool, isa);
            add_into(&mut s.x, &s.proj);

            // Feed-forward block (SwiGLU).
            rms_norm_rows(&s.x, &layer.ffn_norm, c.rms_eps, &mut s.normed);
            resize(&mut s.gate, n * c.ffn_dim);
            resize(&mut s.up, n * c.ffn_dim);
            layer
                .w_gate
                .matmul_isa(&s.normed, n, &mut s.gate, pool, isa);
            layer.w_up.matmul_isa(&s.normed, n, &mut s.up, pool, isa);
            silu_mul(&mut s.gate, &s.up, pool);
            layer.w_down.matmul_isa(&s.gate, n, &mut s.proj, pool, isa);
            add_into(&mut s.x, &s.proj);
        }
        *cached = position + n;
        // Only the last position's logits are needed.
        let last = &s.x[(n - 1) * c.dim..n * c.dim];
        rms_norm_rows(last, output_norm, c.rms_eps, &mut s.normed);
        resize(&mut s.logits, c.vocab);
        let output = output.as_ref().unwrap_or(embedding);
        output.matmul_isa(&s.normed, 1, &mut s.logits, pool, isa);
        Ok(&s.logits)
    }

    fn extend_rope(&mut self, positions: usize) {
        let half = self.config.head_dim / 2;
        let have = self.rope_cos.len() / half;
        if have >= positions {
            return;
        }
        // Grown in steps, so decoding token by token does not reallocate each time.
        let target = positions.max(have * 2).max(1024);
        // As ggml computes it (a running product of one f32 ratio), so positions far into
        // the context get the very angles llama.cpp uses.
        let ratio = self
            .config
            .rope_theta
            .powf(-2.0 / self.config.head_dim as f32);
        for pos in have..target {
            let mut angle = pos as f32;
            for _ in 0..half {
                self.rope_cos.push(angle.cos());
                self.rope_sin.push(angle.sin());
                angle *= ratio;
            }
        }
    }
}

/// SwiGLU's gate, `gate = silu(gate) · up`. Over a prompt (`tokens × ffn_dim` libm `exp`s
/// per layer; a polynomial one flipped a near-tie of SmolLM2's greedy test against
/// llama.cpp) it is worth both cores; a decode step's single row runs inline, with no
/// dispatch and no allocation.
fn silu_mul(gate: &mut [f32], up: &[f32], pool: &Pool) {
    const CHUNK: usize = 4096;
    fn apply(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
    }
    if gate.len() <= 4 * CHUNK {
        apply(gate, up);
        return;
    }
    // Each task owns one chunk; the mutexes are never contended.
    let slots: Vec<Mutex<(&mut [f32], &[f32])>> = gate
        .chunks_mut(CHUNK)
        .zip(up.chunks(CHUNK))
        .map(Mutex::new)
        .collect();
    pool.run(slots.len(), &|i| {
        if let Ok(mut slot) = slots[i].lock() {
            let (gate, up) = &mut *slot;
            apply(gate, up);
        }
    });
}

fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.clear();
    buffer.resize(len, 0.0);
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn add_bias(rows: &mut [f32], bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        for row in rows.chunks_exact_mut(bias.len()) {
            add_into(row, bias);
        }
    }
}

/// RMSNorm of each `weight.len()`-long row of `x` into `out`.
fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut Vec<f32>) {
    resize(out, x.len());
    for (row, out) in x
        .chunks_exact(weight.len())
        .zip(out.chunks_exact_mut(weight.len()))
    {
        // Summed in f64 as ggml does: long rows lose no precision.
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let mean_square = (sum / row.len() as f64) as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

fn rotate(head: &mut [f32], cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = head.len() / 2;
    for i in 0..half {
        let (a, b) = match style {
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            RopeStyle::Halves => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos[i] - x1 * sin[i];
        head[b] = x0 * sin[i] + x1 * cos[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_styles_rotate_the_right_pairs() {
        let cos = [0.0, 1.0];
        let sin = [1.0, 0.0];
        let mut interleaved = [1.0, 2.0, 3.0, 4.0];
        rotate(&mut interleaved, &cos, &sin, RopeStyle::Interleaved);
        // Pair (0,1) turned by 90°, pair (2,3) unchanged.
        assert_eq!(interleaved, [-2.0, 1.0, 3.0, 4.0]);
        let mut halves = [1.0, 2.0, 3.0, 4.0];
        rotate(&mut halves, &cos, &sin, RopeStyle::Halves);
        // Pair (0,2) turned by 90°, pair (1,3) unchanged.
        assert_eq!(halves, [-3.0, 2.0, 1.0, 4.0]);
    }

    #[test]
    fn rms_norm_scales_to_unit_root_mean_square() {
        let mut out = Vec::new();
        rms_norm_rows(&[3.0, 4.0, 0.0, 0.0], &[1.0, 1.0, 2.0, 2.0], 0.0, &mut out);
        let rms = (25.0f32 / 4.0).sqrt();
        assert_eq!(out, vec![3.0 / rms, 4.0 / rms, 0.0, 0.0]);
    }
}
