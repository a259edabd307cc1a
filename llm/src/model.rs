//! Loads a GGUF language model and runs its forward pass on Lore's own engine
//! ([`crate::engine`]). Owns architecture detection, the up-front integrity checks that turn a
//! truncated or corrupt file into an error instead of a panic, and the model's context limit.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::engine::quant::Isa;
use crate::engine::Transformer;
use crate::template::ChatTemplate;
use crate::tokenizer::{vocab_from_gguf, GgufVocab};
use crate::LlmError;

/// GGUF `general.architecture` values Lore can run.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["qwen2", "llama", "mistral", "smollm"];

/// What Lore needs to know about a loaded model, shareable with other threads.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// File stem of the GGUF, e.g. `qwen2.5-coder-0.5b-instruct-q4_k_m`.
    pub name: String,
    pub path: PathBuf,
    pub architecture: String,
    /// Usable context window in tokens (prompt + answer).
    pub context_length: usize,
}

/// How a model is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Threads of the engine's matmuls and attention.
    pub threads: usize,
    /// The engine's kernel family: `None` takes the best this CPU has
    /// ([`Isa::detect`]); `Some` forces a lesser one, for comparisons (one the CPU lacks
    /// falls back to the best it has, with a warning).
    pub isa: Option<Isa>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: default_threads(),
            isa: None,
        }
    }
}

/// One thread per core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A loaded GGUF model with its tokenizer and chat template.
pub struct LanguageModel {
    transformer: Transformer,
    pub vocab: GgufVocab,
    pub template: Arc<ChatTemplate>,
    pub info: ModelInfo,
}

impl LanguageModel {
    /// Loads the GGUF at `path` with one thread per core and the best kernels the CPU has.
    /// The tokenizer and chat template come from its metadata.
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        Self::load_with(path, LoadOptions::default())
    }

    pub fn load_with(path: &Path, options: LoadOptions) -> Result<Self, LlmError> {
        if !path.is_file() {
            return Err(LlmError::MissingModel {
                path: path.to_path_buf(),
            });
        }
        let corrupt = |reason: String| LlmError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| corrupt(format!("cannot open: {e}")))?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| corrupt(e.to_string()))?;
        let architecture = metadata_string(&content, "general.architecture")
            .ok_or_else(|| corrupt("no general.architecture in the metadata".into()))?;
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(LlmError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture,
            });
        }
        check_tensor_extents(&content, file_len).map_err(corrupt)?;
        let context_length = metadata_u64(&content, &format!("{architecture}.context_length"))
            .map(|n| n as usize)
            .unwrap_or(2048);
        let vocab = vocab_from_gguf(&content).map_err(|e| corrupt(e.to_string()))?;
        let template = Arc::new(ChatTemplate::from_gguf(&content, &vocab)?);
        // A malformed tensor (a shape mismatch) must cost an error, not the process.
        let transformer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Transformer::load(
                &content,
                &mut reader,
                &architecture,
                options.threads,
                options.isa,
            )
        }))
        .map_err(|_| corrupt("the model loader panicked".into()))?
        .map_err(|e| match e {
            LlmError::Weights(reason) => corrupt(reason),
            other => other,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            transformer,
            vocab,
            template,
            info: ModelInfo {
                name,
                path: path.to_path_buf(),
                architecture,
                context_length,
            },
        })
    }

    /// Runs `tokens` at positions `position..` and returns the logits of the last one.
    /// `position == 0` starts a new sequence (the KV cache is reset).
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, LlmError> {
        if position + tokens.len() > self.info.context_length {
            return Err(LlmError::ContextOverflow {
                tokens: position + tokens.len(),
                limit: self.info.context_length,
            });
        }
        self.transformer
            .forward(tokens, position)
            .map(<[f32]>::to_vec)
    }

    /// The kernel family the engine runs on.
    pub fn isa(&self) -> Isa {
        self.transformer.isa()
    }

    /// Keeps the first `positions` positions of the current sequence in the KV cache, so a
    /// prompt that shares them continues at `positions`. False when fewer are cached.
    pub fn rewind(&mut self, positions: usize) -> bool {
        self.transformer.truncate(positions)
    }
}

/// Every tensor must lie inside the file: a truncated download is reported before any
/// weight is read.
fn check_tensor_extents(content: &Content, file_len: u64) -> Result<(), String> {
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if block == 0 || elems % block != 0 {
            return Err(format!("tensor {name} has an invalid shape for its type"));
        }
        let bytes = (elems / block) as u64 * info.ggml_dtype.type_size() as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(bytes);
        if end > file_len {
            return Err(format!(
                "truncated: tensor {name} ends at byte {end}, the file has {file_len} bytes"
            ));
        }
    }
    Ok(())
}

pub(crate) fn metadata_string(content: &Content, key: &str) -> Option<String> {
    match content.metadata.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn metadata_u64(content: &Content, key: &str) -> Option<u64> {
    let value = content.metadata.get(key)?;
    value
        .to_u64()
        .ok()
        .or_else(|| value.to_u32().ok().map(u64::from))
        .or_else(|| value.to_i32().ok().and_then(|v| u64::try_from(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn smollm() -> PathBuf {
        crate::test_models::model_path(crate::test_models::TINY)
    }

    fn load_err(path: &Path) -> LlmError {
        match LanguageModel::load(path) {
            Ok(_) => panic!("{} must not load", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn missing_file_names_the_fetch_command() {
        let err = load_err(Path::new("/nonexistent/model.gguf"));
        assert!(matches!(err, LlmError::MissingModel { .. }));
        assert!(err.to_string().contains("scripts/fetch-models"), "{err}");
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn garbage_and_truncated_files_are_errors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let garbage = dir.path().join("garbage.gguf");
        std::fs::write(&garbage, b"this is not a model at all, just text")?;
        assert!(matches!(load_err(&garbage), LlmError::Corrupt { .. }));

        // The first 8 MiB of a real model: header intact, tensors cut off.
        let mut head = vec![0u8; 8 << 20];
        File::open(smollm())?.read_exact(&mut head)?;
        let truncated = dir.path().join("truncated.gguf");
        File::create(&truncated)?.write_all(&head)?;
        let err = load_err(&truncated);
        assert!(
            matches!(&err, LlmError::Corrupt { reason, .. } if reason.contains("truncated")),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn unsupported_architecture_lists_the_supported_ones() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("neox.gguf");
        let arch = Value::String("gptneox".into());
        let mut file = File::create(&path)?;
        candle_core::quantized::gguf_file::write(
            &mut file,
            &[("general.architecture", &arch)],
            &[],
        )?;
        drop(file);
        let err = load_err(&path);
        assert!(matches!(err, LlmError::UnsupportedArchitecture { .. }));
        let message = err.to_string();
        assert!(
            message.contains("gptneox") && message.contains("qwen2, llama"),
            "{message}"
        );
        Ok(())
    }

    /// The caller's instruction set reaches the kernels: forced to the plain loops, the
    /// tiny model predicts what it does on the best kernels (which compute the same integer
    /// sums, so logits differ by rounding at most).
    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn a_forced_instruction_set_is_used_and_predicts_the_same() -> anyhow::Result<()> {
        let load = |isa| LanguageModel::load_with(&smollm(), LoadOptions { threads: 2, isa });
        let mut best = load(None)?;
        let mut scalar = load(Some(Isa::Scalar))?;
        assert_eq!(best.isa(), Isa::detect());
        assert_eq!(scalar.isa(), Isa::Scalar);
        let ids = best
            .vocab
            .tokenizer
            .encode("The lighthouse keeper lit the lamp at", false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_ids()
            .to_vec();
        let (a, b) = (best.forward(&ids, 0)?, scalar.forward(&ids, 0)?);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-2, "logits differ by up to {worst}");
        Ok(())
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn real_tiny_model_loads_and_predicts() -> anyhow::Result<()> {
        let mut model = LanguageModel::load(&smollm())?;
        assert_eq!(model.info.architecture, "llama");
        assert!(model.info.context_length >= 2048);
        let ids = model
            .vocab
            .tokenizer
            .encode("The capital of France is", false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_ids()
            .to_vec();
        let logits = model.forward(&ids, 0)?;
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap_or_default();
        let word = model
            .vocab
            .tokenizer
            .decode(&[best], true)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(word.trim(), "Paris");
        Ok(())
    }
}
