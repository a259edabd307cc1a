//! Sentence embeddings: owns loading a BERT-family sentence-transformers model from a local
//! directory (never a hub), tokenising with the model's own `tokenizer.json`, running the
//! encoder on CPU through candle, pooling (mean or CLS, as `1_Pooling/config.json` says) and
//! L2-normalising, so that vectors match sentence-transformers on the same inputs.
//!
//! Throughput matters because every chunk of every document goes through here: inputs are
//! sorted by token length and embedded in buckets of similar length, and the original order is
//! restored before returning. The forward pass itself is the `encoder` module's packed, fused CPU
//! implementation; candle-transformers' `BertModel` stays available as a cross-check
//! (`embed_backend = "candle"`), and the tests hold both to sentence-transformers' vectors.

mod encoder;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use encoder::Encoder;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// The command that puts the default embedding model in place; named in every missing-file error.
pub const FETCH_COMMAND: &str =
    "scripts/fetch-models embed (or scripts/fetch-models --models-dir DIR embed)";

/// Most sequences run through the encoder at once (sentence-transformers' default batch).
const MAX_BATCH: usize = 32;

/// Most tokens run through the encoder at once. Past ~2k rows the GEMMs gain nothing, while
/// activations (tokens × 1536 floats in the feed-forward) outgrow the caches and malloc's
/// reuse threshold (32 MiB), so every layer would fault in fresh pages: measured 15-20%
/// slower at 32 × 200-token chunks than 8 × 200.
const MAX_BUCKET_TOKENS: usize = 2048;

/// Fallback when a model directory has no `sentence_bert_config.json`.
const DEFAULT_MAX_SEQ_LEN: usize = 256;

/// What went wrong while loading the model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model file {} is missing; fetch it with: {FETCH_COMMAND}", path.display())]
    MissingFile { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {}: {message}", path.display())]
    InvalidFile { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EmbedError>;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average over the real (non-padding) tokens.
    Mean,
    /// The first token's (`[CLS]`) vector.
    Cls,
}

/// Which implementation runs the encoder (`embed_backend` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Lore's packed, fused forward pass (the `encoder` module); the default.
    #[default]
    Packed,
    /// candle-transformers' `BertModel` on padded batches: the reference implementation.
    Candle,
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Backend, String> {
        match s.to_ascii_lowercase().as_str() {
            "packed" => Ok(Backend::Packed),
            "candle" => Ok(Backend::Candle),
            other => Err(format!(
                "unknown embedding backend {other:?} (expected packed or candle)"
            )),
        }
    }
}

enum Model {
    Packed(Encoder),
    Candle(BertModel),
}

/// A loaded sentence-embedding model. Cheap to share: wrap it in an `Arc`; `embed` takes `&self`.
pub struct Embedder {
    model: Model,
    /// Truncates to `max_seq_len` (special tokens included); padding is done per length bucket.
    tokenizer: Tokenizer,
    /// Same vocabulary, no truncation: counts what a chunk really holds.
    counter: Tokenizer,
    pooling: Pooling,
    dim: usize,
    max_seq_len: usize,
    pad_id: u32,
    model_id: String,
    device: Device,
}

#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(serde::Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

fn required(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EmbedError::MissingFile { path })
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| EmbedError::InvalidFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_pooling(dir: &Path) -> Result<Pooling> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(Pooling::Mean);
    }
    let config: PoolingConfig = parse_json(&path, &read_bytes(&path)?)?;
    let invalid = |message: &str| EmbedError::InvalidFile {
        path: path.clone(),
        message: message.to_string(),
    };
    if config.pooling_mode_max_tokens || config.pooling_mode_mean_sqrt_len_tokens {
        return Err(invalid(
            "only mean and CLS pooling are supported (max / mean_sqrt_len requested)",
        ));
    }
    match (
        config.pooling_mode_mean_tokens,
        config.pooling_mode_cls_token,
    ) {
        (true, true) => Err(invalid(
            "mean and CLS pooling together (concatenated) are not supported",
        )),
        (false, true) => Ok(Pooling::Cls),
        _ => Ok(Pooling::Mean),
    }
}

fn read_max_seq_len(dir: &Path, max_positions: usize) -> Result<usize> {
    let path = dir.join("sentence_bert_config.json");
    let configured = if path.is_file() {
        let config: SentenceBertConfig = parse_json(&path, &read_bytes(&path)?)?;
        config.max_seq_length.unwrap_or(DEFAULT_MAX_SEQ_LEN)
    } else {
        DEFAULT_MAX_SEQ_LEN
    };
    // sentence-transformers caps at the position table too; beyond it the model cannot run.
    Ok(configured.min(max_positions).max(2))
}

/// `<dir name>-<8 hex of sha256(config.json bytes ‖ weights size)>`: stable across runs and
/// machines, changes when the model does, and cheap (no hashing of the 90 MB weights).
fn model_id_for(dir: &Path, config_bytes: &[u8], weights_len: u64) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    let mut hasher = Sha256::new();
    hasher.update(config_bytes);
    hasher.update(weights_len.to_le_bytes());
    let digest = hasher.finalize();
    format!("{name}-{}", hex::encode(&digest[..4]))
}

impl Embedder {
    /// Loads a sentence-transformers BERT directory: `config.json`, `tokenizer.json`,
    /// `model.safetensors`, optionally `sentence_bert_config.json` and `1_Pooling/config.json`.
    /// On the default backend ([`Backend::Packed`]).
    pub fn load(dir: &Path) -> Result<Embedder> {
        Embedder::load_with(dir, Backend::default())
    }

    /// [`Embedder::load`] with an explicit backend.
    pub fn load_with(dir: &Path, backend: Backend) -> Result<Embedder> {
        if !dir.is_dir() {
            return Err(EmbedError::MissingFile {
                path: dir.to_path_buf(),
            });
        }
        let config_path = required(dir, "config.json")?;
        let tokenizer_path = required(dir, "tokenizer.json")?;
        let weights_path = required(dir, "model.safetensors")?;

        let config_bytes = read_bytes(&config_path)?;
        let config: BertConfig = parse_json(&config_path, &config_bytes)?;
        let pooling = read_pooling(dir)?;
        let max_seq_len = read_max_seq_len(dir, config.max_position_embeddings)?;

        let tokenizer_bytes = read_bytes(&tokenizer_path)?;
        let mut counter =
            Tokenizer::from_bytes(&tokenizer_bytes).map_err(|e| EmbedError::InvalidFile {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        // The shipped tokenizer.json pads to a fixed 128 and truncates at 128; neither is what
        // sentence-transformers does (it truncates at max_seq_length and pads to the longest).
        let pad_id = counter
            .get_padding()
            .map(|p| p.pad_id)
            .unwrap_or(config.pad_token_id as u32);
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;

        let weights = read_bytes(&weights_path)?;
        let weights_len = weights.len() as u64;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = match backend {
            Backend::Packed => Model::Packed(Encoder::load(vb, &config)?),
            Backend::Candle => Model::Candle(BertModel::load(vb, &config)?),
        };

        Ok(Embedder {
            model,
            tokenizer,
            counter,
            pooling,
            dim: config.hidden_size,
            max_seq_len,
            pad_id,
            model_id: model_id_for(dir, &config_bytes, weights_len),
            device,
        })
    }

    /// One L2-normalised vector per text, in input order. Any number of texts; empty input
    /// gives an empty output. Texts longer than [`Self::max_seq_len`] tokens are truncated.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // Longest first, so buckets hold similar lengths and padding stays small.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let lengths: Vec<usize> = order
            .iter()
            .map(|&i| encodings[i].get_ids().len())
            .collect();
        for bucket in buckets(&lengths) {
            let members = &order[bucket];
            let seqs: Vec<&[u32]> = members.iter().map(|&i| encodings[i].get_ids()).collect();
            let vectors = self.embed_ids(&seqs)?;
            for (&i, v) in members.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Runs one bucket through the encoder, pools and normalises.
    fn embed_ids(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        match &self.model {
            Model::Packed(encoder) => {
                let hidden = encoder.forward(seqs)?;
                let mut rows = hidden.chunks_exact(self.dim);
                let mut out = Vec::with_capacity(seqs.len());
                for s in seqs {
                    // `forward` returns exactly one row per token, so these rows exist.
                    let tokens: Vec<&[f32]> = rows.by_ref().take(s.len()).collect();
                    out.push(pool_and_normalise(&tokens, self.pooling, self.dim));
                }
                Ok(out)
            }
            Model::Candle(model) => self.embed_ids_candle(model, seqs),
        }
    }

    /// The reference path: one padded batch through candle-transformers' `BertModel`.
    fn embed_ids_candle(&self, model: &BertModel, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let batch = seqs.len();
        let seq_len = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch * seq_len);
        let mut mask = Vec::with_capacity(batch * seq_len);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(self.pad_id, seq_len - s.len()));
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.extend(std::iter::repeat_n(0u32, seq_len - s.len()));
        }
        let ids = Tensor::from_vec(ids, (batch, seq_len), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch, seq_len), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let hidden = model.forward(&ids, &type_ids, Some(&mask))?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        let norms = pooled
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        Ok(pooled.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }

    /// Width of every vector `embed` returns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Names the model for index compatibility checks: directory name plus a short hash.
    pub fn model_id(&self) -> String {
        self.model_id.clone()
    }

    /// Word-piece tokens in `text`, without special tokens and without truncation.
    pub fn count_tokens(&self, text: &str) -> usize {
        // Tokenising a &str with BERT's pipeline has no failure mode in practice; 0 would only
        // make the chunker put more text in a chunk, never lose any.
        self.counter
            .encode(text, false)
            .map(|e| e.get_ids().len())
            .unwrap_or(0)
    }

    /// Longest input in tokens (special tokens included) before truncation.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Pooling read from the model directory.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The implementation running the encoder.
    pub fn backend(&self) -> Backend {
        match self.model {
            Model::Packed(_) => Backend::Packed,
            Model::Candle(_) => Backend::Candle,
        }
    }
}

/// Splits sequences (already sorted by length) into consecutive runs of at most `MAX_BATCH`
/// sequences and, where more than one sequence, at most `MAX_BUCKET_TOKENS` tokens.
fn buckets(lengths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut tokens = 0;
    for (i, &len) in lengths.iter().enumerate() {
        let full = i - start == MAX_BATCH || tokens + len > MAX_BUCKET_TOKENS;
        if i > start && full {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += len;
    }
    if start < lengths.len() {
        out.push(start..lengths.len());
    }
    out
}

/// Mean (or CLS) of one sequence's token rows, scaled to unit length as sentence-transformers'
/// `Normalize` does (norm clamped at 1e-12 so an all-zero vector stays zero, not NaN).
fn pool_and_normalise(tokens: &[&[f32]], pooling: Pooling, dim: usize) -> Vec<f32> {
    let mut pooled = vec![0f32; dim];
    match pooling {
        Pooling::Cls => {
            if let Some(first) = tokens.first() {
                pooled.copy_from_slice(first);
            }
        }
        Pooling::Mean => {
            for row in tokens {
                for (p, v) in pooled.iter_mut().zip(row.iter()) {
                    *p += v;
                }
            }
            let n = (tokens.len() as f32).max(1e-9);
            pooled.iter_mut().for_each(|p| *p /= n);
        }
    }
    let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    pooled.iter_mut().for_each(|p| *p /= norm);
    pooled
}

/// A stand-in embedding model for tests whose subject is not the model (HTTP routes,
/// errors, metrics): a one-layer BERT with random weights, a WordPiece tokenizer over a few
/// words, written as a sentence-transformers directory that [`Embedder::load`] reads like a
/// real one. Its vectors carry no meaning; the real model is tested in the `real-data` tier.
#[cfg(any(test, feature = "stand-in"))]
pub fn write_stand_in_model(
    dir: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;

    std::fs::create_dir_all(dir)?;
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "a", "when", "do", "does", "run", "how",
        "backup", "##s", "server", "mail", "kept", "long", "search", "question", "answer",
    ];
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": words.len(),
        "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 128, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 64,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute", "use_cache": true,
        "classifier_dropout": null
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&config)?)?;

    // The vocabulary file sentence-transformers directories ship beside tokenizer.json.
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, words.join("\n"))?;
    let model = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::default()))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), 3),
        ("[CLS]".into(), 2),
    )));
    tokenizer.save(dir.join("tokenizer.json"), false)?;

    // candle-transformers' BERT asks for every weight it needs; the var map creates each
    // (random embeddings and linear layers, unit layer norms) and saves them by name.
    let config: BertConfig = serde_json::from_value(config)?;
    let weights = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&weights, DType::F32, &Device::Cpu);
    BertModel::load(vb, &config)?;
    weights.save(dir.join("model.safetensors"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The real model: `$LORE_MODELS_DIR/all-minilm-l6-v2` or `<repo>/models/all-minilm-l6-v2`.
    /// Absent → the test fails and says how to fetch it; CI fetches models, so no silent skip.
    fn model_dir() -> PathBuf {
        let base = std::env::var_os("LORE_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
        let dir = base.join("all-minilm-l6-v2");
        assert!(
            dir.join("model.safetensors").is_file(),
            "embedding model not found at {}; run: {FETCH_COMMAND}",
            dir.display()
        );
        dir
    }

    fn load_once(cell: &'static OnceLock<Embedder>, backend: Backend) -> &'static Embedder {
        cell.get_or_init(|| match Embedder::load_with(&model_dir(), backend) {
            Ok(e) => e,
            Err(e) => panic!("loading the embedding model failed: {e}"),
        })
    }

    fn embedder() -> &'static Embedder {
        static PACKED: OnceLock<Embedder> = OnceLock::new();
        load_once(&PACKED, Backend::Packed)
    }

    fn candle_embedder() -> &'static Embedder {
        static CANDLE: OnceLock<Embedder> = OnceLock::new();
        load_once(&CANDLE, Backend::Candle)
    }

    fn both_backends() -> [&'static Embedder; 2] {
        [embedder(), candle_embedder()]
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        max_seq_length: usize,
        inputs: Vec<ReferenceInput>,
    }

    #[derive(serde::Deserialize)]
    struct ReferenceInput {
        text: String,
        tokens_with_special: usize,
        vector: Vec<f32>,
    }

    fn reference() -> Reference {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embedding-reference.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    }

    fn assert_matches_reference(label: &str, got: &[Vec<f32>], want: &[ReferenceInput]) {
        assert_eq!(got.len(), want.len(), "{label}: one vector per input");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                g.len(),
                w.vector.len(),
                "{label}: dimension for {:?}",
                w.text
            );
            let c = cosine(g, &w.vector);
            assert!(
                c >= 0.9999,
                "{label}: cosine {c} < 0.9999 against sentence-transformers for {:?}",
                w.text
            );
            let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-4,
                "{label}: not normalised ({norm})"
            );
        }
    }

    /// The stand-in loads through the same path as a real model, on both backends, and
    /// gives unit vectors of its own dimension.
    #[test]
    fn the_stand_in_model_loads_on_both_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_stand_in_model(dir.path()).expect("stand-in written");
        for backend in [Backend::Packed, Backend::Candle] {
            let embedder = Embedder::load_with(dir.path(), backend).expect("loads");
            assert_eq!(embedder.dim(), 64);
            let vectors = embedder
                .embed(&["when do the backups run", "mail server"])
                .expect("embeds");
            for v in &vectors {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-4, "{backend:?}: norm {norm}");
            }
        }
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn embed_matches_sentence_transformers_one_by_one() {
        let reference = reference();
        for e in both_backends() {
            assert_eq!(e.max_seq_len(), reference.max_seq_length);
            let got = reference
                .inputs
                .iter()
                .map(|r| {
                    let mut v = e
                        .embed(&[r.text.as_str()])
                        .unwrap_or_else(|err| panic!("{err}"));
                    assert_eq!(v.len(), 1);
                    v.remove(0)
                })
                .collect::<Vec<_>>();
            assert_matches_reference(
                &format!("{:?} one by one", e.backend()),
                &got,
                &reference.inputs,
            );
        }
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn embed_matches_sentence_transformers_in_one_mixed_batch() {
        let reference = reference();
        // Interleave lengths so that bucketing must reorder and padding is exercised.
        let mut inputs: Vec<&ReferenceInput> = reference.inputs.iter().collect();
        inputs.reverse();
        inputs.rotate_left(3);
        let texts: Vec<&str> = inputs.iter().map(|r| r.text.as_str()).collect();
        let want: Vec<ReferenceInput> = inputs
            .iter()
            .map(|r| ReferenceInput {
                text: r.text.clone(),
                tokens_with_special: r.tokens_with_special,
                vector: r.vector.clone(),
            })
            .collect();
        for e in both_backends() {
            let got = e.embed(&texts).unwrap_or_else(|err| panic!("{err}"));
            assert_matches_reference(&format!("{:?} mixed batch", e.backend()), &got, &want);
        }
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn batches_larger_than_one_bucket_keep_input_order() {
        let reference = reference();
        // 3 × 13 inputs > MAX_BATCH: several buckets, results must come back in input order.
        let texts: Vec<&str> = (0..3)
            .flat_map(|_| reference.inputs.iter().map(|r| r.text.as_str()))
            .collect();
        assert!(texts.len() > MAX_BATCH);
        let got = embedder().embed(&texts).unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<ReferenceInput> = (0..3)
            .flat_map(|_| reference.inputs.iter())
            .map(|r| ReferenceInput {
                text: r.text.clone(),
                tokens_with_special: r.tokens_with_special,
                vector: r.vector.clone(),
            })
            .collect();
        assert_matches_reference("many buckets", &got, &want);
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn count_tokens_counts_without_special_tokens_or_truncation() {
        let reference = reference();
        let e = embedder();
        for r in &reference.inputs {
            // sentence-transformers counted [CLS] and [SEP] too.
            assert_eq!(
                e.count_tokens(&r.text),
                r.tokens_with_special - 2,
                "{:?}",
                r.text
            );
        }
        assert!(reference
            .inputs
            .iter()
            .any(|r| r.tokens_with_special > e.max_seq_len()));
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn reports_dimension_model_id_and_empty_input() {
        let e = embedder();
        assert_eq!(e.dim(), 384);
        assert_eq!(e.pooling(), Pooling::Mean);
        let id = e.model_id();
        assert!(id.starts_with("all-minilm-l6-v2-"), "{id}");
        assert_eq!(id.len(), "all-minilm-l6-v2-".len() + 8, "{id}");
        assert_eq!(id, e.model_id());
        assert!(e.embed(&[]).map(|v| v.is_empty()).unwrap_or(false));
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn each_backend_reports_itself() {
        assert_eq!(embedder().backend(), Backend::Packed);
        assert_eq!(candle_embedder().backend(), Backend::Candle);
    }

    #[test]
    fn buckets_respect_sequence_and_token_budgets() {
        assert!(buckets(&[]).is_empty());
        // One over-long sequence still gets a bucket of its own.
        assert_eq!(buckets(&[5000, 10]), vec![0..1, 1..2]);
        assert_eq!(buckets(&[256; 20]), vec![0..8, 8..16, 16..20]);
        assert_eq!(buckets(&[3; 70]), vec![0..32, 32..64, 64..70]);
        let lengths = [200, 180, 150, 100, 3, 3];
        let all: Vec<usize> = buckets(&lengths).into_iter().flatten().collect();
        assert_eq!(all, (0..lengths.len()).collect::<Vec<_>>());
    }

    #[test]
    fn embedder_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Embedder>();
    }

    #[test]
    fn missing_files_name_the_path_and_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let err = match Embedder::load(dir.path()) {
            Ok(_) => panic!("loading an empty directory must fail"),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(message.contains("config.json"), "{message}");
        assert!(message.contains("scripts/fetch-models embed"), "{message}");
        assert!(message.contains("--models-dir"), "{message}");

        let absent = dir.path().join("no-such-model");
        let message = match Embedder::load(&absent) {
            Ok(_) => panic!("loading a missing directory must fail"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("no-such-model"), "{message}");
        assert!(message.contains("scripts/fetch-models embed"), "{message}");
    }

    #[test]
    fn pooling_config_selects_cls_and_rejects_unsupported_modes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pooling_dir = dir.path().join("1_Pooling");
        std::fs::create_dir_all(&pooling_dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_pooling(dir.path()).ok(), Some(Pooling::Mean));
        let write = |json: &str| {
            std::fs::write(pooling_dir.join("config.json"), json).unwrap_or_else(|e| panic!("{e}"))
        };
        write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
        assert_eq!(read_pooling(dir.path()).ok(), Some(Pooling::Cls));
        write(r#"{"pooling_mode_mean_tokens": true}"#);
        assert_eq!(read_pooling(dir.path()).ok(), Some(Pooling::Mean));
        write(r#"{"pooling_mode_max_tokens": true}"#);
        assert!(read_pooling(dir.path()).is_err());
        write("not json");
        assert!(read_pooling(dir.path()).is_err());
    }
}
