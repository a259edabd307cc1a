//! The on-prem language model runtime: GGUF files loaded ([`model`]) and run on Lore's own
//! quantized engine ([`engine`]; candle's quantized models remain selectable), a tokenizer
//! rebuilt from the GGUF metadata ([`tokenizer`]), the chat template ([`template`]), and a
//! generation thread fed by a bounded queue that streams tokens back to each caller
//! ([`generate`]), or a remote OpenAI-compatible server ([`remote`]).

pub mod engine;
pub mod generate;
pub mod model;
pub mod remote;
pub mod template;
pub mod tokenizer;

use std::path::PathBuf;

pub use generate::{
    FinishReason, GenerationEvent, GenerationHandle, GenerationParams, GenerationStats, Generator,
};
pub use model::{LanguageModel, ModelInfo, SUPPORTED_ARCHITECTURES};
pub use remote::RemoteConfig;
pub use template::ChatMessage;

/// What can go wrong loading or running a language model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(
        "language model not found at {}: run `scripts/fetch-models` (or set --llm-model to a GGUF file)",
        path.display()
    )]
    MissingModel { path: PathBuf },
    #[error("{}: unsupported model architecture {architecture:?}; supported: {}", path.display(), SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture { path: PathBuf, architecture: String },
    #[error("{}: not a valid GGUF model: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("the prompt needs {tokens} tokens but the model's context holds {limit}")]
    ContextOverflow { tokens: usize, limit: usize },
    #[error("the model is busy: {queued} requests are already waiting")]
    Busy { queued: usize },
    #[error("generation failed: {0}")]
    Generation(String),
    #[error("remote model: {0}")]
    Remote(String),
    #[error("the model thread has stopped")]
    Stopped,
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}
