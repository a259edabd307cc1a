//! `lore-llm` is Lore's language model runtime. It owns everything between a GGUF file and
//! streamed answer text:
//!
//! - loading a GGUF model ([`model`]): architecture detection, integrity checks that turn a
//!   truncated or corrupt file into an [`Error`] instead of a panic, the context limit;
//! - Lore's own quantized CPU engine ([`engine`]): weights repacked once into SIMD-friendly
//!   layouts, integer kernels chosen per CPU at load time ([`Isa`], overridable through
//!   [`LoadOptions::isa`]), a persistent thread pool, attention over a KV cache and the
//!   llama/qwen2 forward pass, whose greedy tokens equal llama.cpp's on the same file;
//! - the tokenizer rebuilt from the GGUF metadata, with llama.cpp's token ids ([`tokenizer`]);
//! - the chat template the GGUF carries, rendered with minijinja ([`template`]);
//! - generation ([`generate`]): the model on its own thread behind a bounded queue, each
//!   request streaming text deltas and then its statistics back to the caller, with
//!   cancellation, stop strings and KV-cache reuse of a shared prompt prefix;
//! - or, in place of a local model, a remote OpenAI-compatible server ([`remote`]).
//!
//! It knows nothing of documents, retrieval or HTTP: callers hand it messages and
//! [`GenerationParams`], and get text back (the `openapi` feature derives OpenAPI schemas for
//! the types an HTTP API returns). Errors are one enum, [`Error`] (also known as
//! [`LlmError`]).
//!
//! ```no_run
//! use std::path::Path;
//!
//! use lore_llm::{ChatMessage, GenerationParams, Generator, LanguageModel, LoadOptions};
//!
//! # fn main() -> lore_llm::Result<()> {
//! let path = Path::new("models/smollm2-135m-instruct/smollm2-135m-instruct-q4_1.gguf");
//! let model = LanguageModel::load_with(path, LoadOptions { threads: 2, ..LoadOptions::default() })?;
//! // The model moves onto its own thread; up to 4 requests may wait for it.
//! let generator = Generator::spawn(model, 4)?;
//! let question = ChatMessage::new("user", "Name the capital of France in one word.");
//! let params = GenerationParams { max_tokens: 16, ..GenerationParams::default() };
//! let (answer, stats) = generator
//!     .chat(vec![question], params)?
//!     .collect_blocking(|delta| print!("{delta}"))?;
//! println!("\n{answer:?}: {} tokens, {:.1} tokens/s", stats.generated_tokens, stats.decode_tok_s);
//! # Ok(())
//! # }
//! ```

pub mod engine;
mod error;
pub mod generate;
pub mod model;
pub mod remote;
pub mod template;
pub mod tokenizer;

#[cfg(test)]
mod test_models;

pub use engine::quant::Isa;
pub use error::{Error, LlmError, Result};
pub use generate::{
    FinishReason, GenerationEvent, GenerationHandle, GenerationParams, GenerationStats, Generator,
};
pub use model::{default_threads, LanguageModel, LoadOptions, ModelInfo, SUPPORTED_ARCHITECTURES};
pub use remote::RemoteConfig;
pub use template::ChatMessage;
