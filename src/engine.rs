//! Opens what the commands work with: the embedding model and the index (as its one
//! writer, or read-only beside a running server), and the configured generator (the local
//! GGUF on its own thread, or an OpenAI-compatible server).

use crate::config::Config;
use lore_embed::Embedder;
use lore_index::{Index, IndexConfig};
use lore_llm::{Generator, LanguageModel, RemoteConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What opening the models or the index can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot load the embedding model from {}: {source}", dir.display())]
    Embedder {
        dir: PathBuf,
        #[source]
        source: lore_embed::EmbedError,
    },
    #[error("cannot open the index in {}: {source}", dir.display())]
    Index {
        dir: PathBuf,
        #[source]
        source: lore_index::Error,
    },
    #[error("generator = \"openai\" needs openai_url (--openai-url or LORE_OPENAI_URL)")]
    NoOpenaiUrl,
    #[error("unknown generator {0:?} (expected local or openai)")]
    UnknownGenerator(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Model(#[from] lore_llm::Error),
    #[error(transparent)]
    DataDir(#[from] crate::files::WriteError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The models and index a command works with, opened once.
pub struct Engine {
    pub embedder: Embedder,
    pub index: Index,
}

impl Engine {
    /// Opens the index as its one writer (ingest, remove): fails while a running `lore
    /// serve` or `lore watch` holds it.
    pub fn open(config: &Config) -> Result<Engine> {
        Engine::open_waiting(config, Duration::ZERO)
    }

    /// Opens the index read-only (search, ask, status, eval): no lock, so it works beside a
    /// running server or watcher, and sees the last batch the writer committed.
    pub fn open_read_only(config: &Config) -> Result<Engine> {
        let embedder = load_embedder(config)?;
        let index_dir = config.index_dir();
        let index =
            Index::open_read_only(&index_dir, index_config(&embedder)).map_err(|source| {
                EngineError::Index {
                    dir: index_dir.clone(),
                    source,
                }
            })?;
        Ok(Engine { embedder, index })
    }

    /// Like [`Engine::open`], but waits up to `patience` for another Lore process to
    /// release the index: a long-running watcher or server must not fail to start because
    /// a `lore status` or `lore search` holds the index for a moment.
    pub fn open_waiting(config: &Config, patience: Duration) -> Result<Engine> {
        // The writer's process makes everything it writes from here on private (umask 077)
        // and narrows what an earlier run left.
        crate::files::secure_data_dir(&config.data_dir)?;
        let embedder = load_embedder(config)?;
        let index_dir = config.index_dir();
        let index_config = index_config(&embedder);
        let deadline = Instant::now() + patience;
        let index = loop {
            match Index::open(&index_dir, index_config.clone()) {
                Err(lore_index::Error::Locked(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => {
                    break other.map_err(|source| EngineError::Index {
                        dir: index_dir.clone(),
                        source,
                    })?
                }
            }
        };
        Ok(Engine { embedder, index })
    }
}

/// The index settings that must match the embedder (model id and dimension).
fn index_config(embedder: &Embedder) -> IndexConfig {
    IndexConfig {
        dim: embedder.dim(),
        model_id: embedder.model_id(),
        ..IndexConfig::default()
    }
}

pub fn load_embedder(config: &Config) -> Result<Embedder> {
    let dir = config.embed_model_dir();
    Embedder::load_with(&dir, config.embed_backend)
        .map_err(|source| EngineError::Embedder { dir, source })
}

/// The configured generator: the local GGUF on its own thread, or the remote server. At
/// most `queue_capacity` requests wait for the local model (the remote one runs that many
/// at once); more are refused as busy.
pub fn load_generator(config: &Config, queue_capacity: usize) -> Result<Generator> {
    match config.generator.as_str() {
        "local" => {}
        "openai" => {
            let base_url = config.openai_url.clone().ok_or(EngineError::NoOpenaiUrl)?;
            let remote = RemoteConfig {
                base_url,
                model: config
                    .openai_model
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                api_key: config.openai_api_key.clone(),
                timeout: std::time::Duration::from_secs(600),
                sent_bodies: None,
            };
            return Ok(Generator::remote(
                remote,
                config.context_tokens.max(512),
                queue_capacity,
            )?);
        }
        other => return Err(EngineError::UnknownGenerator(other.to_string())),
    }
    let path = config.llm_model_path()?;
    let started = Instant::now();
    let mut model = LanguageModel::load_with(&path, config.llm_load_options())?;
    model.info.context_length = model
        .info
        .context_length
        .min(config.context_tokens.max(512));
    tracing::info!(
        model = %model.info.name,
        architecture = %model.info.architecture,
        context = model.info.context_length,
        load_s = started.elapsed().as_secs_f64(),
        "language model loaded"
    );
    Ok(Generator::spawn(model, queue_capacity)?)
}
