//! The crate's one error type: everything that can go wrong loading a GGUF (file, metadata,
//! tokenizer, template) or generating with it, locally or on a remote server.

use std::path::PathBuf;

use crate::model::SUPPORTED_ARCHITECTURES;

/// What can go wrong loading or running a language model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "language model not found at {}: run `scripts/fetch-models` (or set --llm-model to a GGUF file)",
        path.display()
    )]
    MissingModel { path: PathBuf },
    #[error("{}: unsupported model architecture {architecture:?}; supported: {}", path.display(), SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture { path: PathBuf, architecture: String },
    #[error("{}: not a valid GGUF model: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// A tensor the engine cannot load (type, shape or size); loading a model reports it as
    /// [`Error::Corrupt`] with the file's path.
    #[error("{0}")]
    Weights(String),
    /// The GGUF header could not be read (loading only its tokenizer).
    #[error("cannot read the GGUF header of {}: {reason}", path.display())]
    ReadHeader { path: PathBuf, reason: String },
    #[error("GGUF metadata has no `{0}`")]
    MissingMetadata(&'static str),
    #[error("GGUF metadata `{key}` is malformed: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    #[error("unsupported GGUF tokenizer model `{0}`: Lore supports only `gpt2` (byte-level BPE)")]
    UnsupportedTokenizer(String),
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

/// The name the rest of Lore knows the error by.
pub type LlmError = Error;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
