//! Lore's one configuration struct and where its values come from.
//!
//! Precedence, lowest first: built-in defaults < `lore.toml` < `LORE_*` environment
//! variables < command-line flags. Clap already resolves env < flags (every flag is an
//! `Option` with an `env` name), so this module only lays the file underneath.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Settings shared by every command. Each field has a flag and an env variable
/// (see `cmd::GlobalArgs`) and a key of the same name in `lore.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the index and Lore's state live.
    pub data_dir: PathBuf,
    /// Where `scripts/fetch-models` put the models.
    pub models_dir: PathBuf,
    /// Embedding model: a directory name under `models_dir`, or a path.
    pub embed_model: String,
    /// Collection that documents go to unless told otherwise.
    pub collection: String,
    /// Files larger than this are skipped with a reason.
    pub max_file_mb: u64,
    /// Seconds one file's parse may take before it is recorded as failed (0: no limit).
    pub parse_timeout_secs: u64,
    /// Chunk size the chunker aims for, in embedding tokens.
    pub chunk_tokens: usize,
    /// Tokens repeated between consecutive chunks of a section.
    pub chunk_overlap: usize,
    /// Language model: `quality` (default) or `tiny`, a directory under `models_dir`
    /// holding one GGUF, or a path to a GGUF file.
    pub llm_model: String,
    /// Abstain without the model when no passage is at least this similar (cosine) to the
    /// question.
    pub min_similarity: f32,
    /// Sentences of the retrieved passages the model reads (0: whole passages).
    pub evidence_sentences: usize,
    /// Tokens of context Lore uses (prompt + answer), at most what the model supports:
    /// longer prompts cost time to first token on a CPU.
    pub context_tokens: usize,
    /// `local` (the GGUF in-process) or `openai` (a chat-completions server on the network).
    pub generator: String,
    /// Base URL of the OpenAI-compatible server, e.g. `http://10.0.0.5:8000/v1`.
    pub openai_url: Option<String>,
    /// Model name sent to that server.
    pub openai_model: Option<String>,
    /// Bearer token for that server, if it wants one.
    pub openai_api_key: Option<String>,
    /// Address `lore serve` listens on (loopback unless told otherwise).
    pub bind: String,
    /// Answers `lore serve` admits at once (running + waiting); more get 429.
    pub answer_queue: usize,
    /// Files one upload request may carry; more get 413.
    pub max_upload_files: usize,
    /// Upload jobs waiting for the one ingestion worker (uploads in progress count too);
    /// more get 503 with Retry-After.
    pub ingest_queue: usize,
    /// Seconds a request may take until its response starts (uploads excepted: their
    /// bodies are bounded by `body_timeout_secs` and the size limits); then 503.
    pub request_timeout_secs: u64,
    /// Seconds a request body may pause between bytes before the request fails (408).
    pub body_timeout_secs: u64,
    /// Seconds a response may wait on a client that does not read it: an answer's worker
    /// then stops and frees its answer slot, and the connection is closed.
    pub stream_idle_secs: u64,
    /// Threads the language model computes with (default: one per core).
    pub llm_threads: usize,
    /// Instruction set of the language model's kernels: `None` takes the best the CPU has;
    /// `scalar`, `avx2` or `avx512` force one, for comparisons.
    pub quant_isa: Option<lore_llm::Isa>,
    /// What runs the embedding model: `packed` (Lore's kernels) or `candle` (the reference).
    pub embed_backend: lore_embed::Backend,
    /// Folders `lore serve` and `lore watch` keep the index in step with.
    pub watch: Vec<PathBuf>,
    /// How changes are noticed: `notify` (filesystem notifications) or `poll` (for network
    /// shares and volume drivers that deliver no notifications).
    pub watch_mode: WatchMode,
    /// Seconds between polls in `poll` mode.
    pub watch_poll_secs: u64,
    /// A file is taken once its size and times stayed the same this long (milliseconds).
    pub watch_settle_ms: u64,
    /// Seconds between full comparisons of the folders with the index (the safety net for
    /// missed notifications).
    pub watch_rescan_secs: u64,
    /// The audit log keeps questions as asked (`text`) or only their SHA-256 (`hash`).
    pub audit_question: crate::audit::QuestionMode,
    /// The audit log's current file is rotated into a numbered segment past this size.
    pub audit_max_mb: u64,
    /// Host names `lore serve` answers to besides localhost, 127.0.0.1, `[::1]` and the bind
    /// address (others get 421: the DNS-rebinding defence).
    pub allowed_hosts: Vec<crate::hosts::AllowedHost>,
    /// Origins of web applications allowed to call the API from a browser (CORS); none by
    /// default.
    pub cors_origins: Vec<crate::hosts::CorsOrigin>,
    /// Serve without accounts on a non-loopback address: the network is trusted.
    pub insecure_no_auth: bool,
    /// Header a trusted reverse proxy names the signed-in user in (single sign-on), e.g.
    /// `X-Remote-User`; honoured only from `auth_proxy_addresses`.
    pub auth_proxy_header: Option<String>,
    /// Addresses of the reverse proxies whose user header (and `X-Forwarded-Proto`) is
    /// believed.
    pub auth_proxy_addresses: Vec<std::net::IpAddr>,
    /// Hours a portal sign-in lasts.
    pub session_hours: u64,
    /// Base URL of the larger OpenAI-compatible model answers may be escalated to, on a
    /// user's request and anonymised (see `crate::escalate`). Unset (the default): never.
    pub escalate_url: Option<String>,
    /// Model name sent to that server.
    pub escalate_model: Option<String>,
    /// Bearer token for that server, if it wants one.
    pub escalate_api_key: Option<String>,
    /// Collections whose passages may be sent there (`*`: all). Empty: none.
    pub escalate_collections: Vec<String>,
    /// Names masked (case-insensitively, whole words) before anything is escalated.
    pub mask_names: Vec<String>,
}

/// How the watcher notices changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    #[default]
    Notify,
    Poll,
}

impl WatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchMode::Notify => "notify",
            WatchMode::Poll => "poll",
        }
    }
}

impl std::str::FromStr for WatchMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "notify" => Ok(WatchMode::Notify),
            "poll" => Ok(WatchMode::Poll),
            other => Err(format!(
                "unknown watch mode {other:?} (expected notify or poll)"
            )),
        }
    }
}

/// One layer of settings, every key optional (`None` = not given): the parsed `lore.toml`
/// (unknown keys rejected so typos are caught), or what env and flags gave.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub data_dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub embed_model: Option<String>,
    pub collection: Option<String>,
    pub max_file_mb: Option<u64>,
    pub parse_timeout_secs: Option<u64>,
    pub chunk_tokens: Option<usize>,
    pub chunk_overlap: Option<usize>,
    pub llm_model: Option<String>,
    pub min_similarity: Option<f32>,
    pub evidence_sentences: Option<usize>,
    pub context_tokens: Option<usize>,
    pub generator: Option<String>,
    pub openai_url: Option<String>,
    pub openai_model: Option<String>,
    pub openai_api_key: Option<String>,
    pub bind: Option<String>,
    pub answer_queue: Option<usize>,
    pub max_upload_files: Option<usize>,
    pub ingest_queue: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub stream_idle_secs: Option<u64>,
    pub llm_threads: Option<usize>,
    pub quant_isa: Option<lore_llm::Isa>,
    pub embed_backend: Option<lore_embed::Backend>,
    pub watch: Option<Vec<PathBuf>>,
    pub watch_mode: Option<WatchMode>,
    pub watch_poll_secs: Option<u64>,
    pub watch_settle_ms: Option<u64>,
    pub watch_rescan_secs: Option<u64>,
    pub audit_question: Option<crate::audit::QuestionMode>,
    pub audit_max_mb: Option<u64>,
    pub allowed_hosts: Option<Vec<crate::hosts::AllowedHost>>,
    pub cors_origins: Option<Vec<crate::hosts::CorsOrigin>>,
    pub insecure_no_auth: Option<bool>,
    pub auth_proxy_header: Option<String>,
    pub auth_proxy_addresses: Option<Vec<std::net::IpAddr>>,
    pub session_hours: Option<u64>,
    pub escalate_url: Option<String>,
    pub escalate_model: Option<String>,
    pub escalate_api_key: Option<String>,
    pub escalate_collections: Option<Vec<String>>,
    pub mask_names: Option<Vec<String>>,
}

/// What reading the configuration or resolving a model path can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("cannot list {}: {source}", path.display())]
    ListModels {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no .gguf file in {}: run `scripts/fetch-models all`", .0.display())]
    NoModel(PathBuf),
    #[error("{} holds several .gguf files: set llm_model to one of them", .0.display())]
    SeveralModels(PathBuf),
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

pub const DEFAULT_EMBED_MODEL: &str = "all-minilm-l6-v2";
/// Directories `scripts/fetch-models` fills for the two language-model profiles.
pub const QUALITY_LLM: &str = "qwen2.5-coder-0.5b-instruct";
pub const TINY_LLM: &str = "smollm2-135m-instruct";

impl Config {
    /// How answers are made by default under this configuration (callers set `k`,
    /// generation and filters per request).
    pub fn ask_options(&self) -> crate::rag::AskOptions {
        crate::rag::AskOptions {
            min_similarity: self.min_similarity,
            evidence: crate::rag::EvidenceOptions {
                sentences: self.evidence_sentences,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Loads `config_path` (or `./lore.toml` when it exists) and applies `overrides` on top.
    pub fn load(config_path: Option<&Path>, overrides: ConfigLayer) -> Result<Config> {
        let file = match config_path {
            Some(p) => read_file(p)?,
            None if Path::new("lore.toml").is_file() => read_file(Path::new("lore.toml"))?,
            None => ConfigLayer::default(),
        };
        Ok(Config::merge(file, overrides))
    }

    fn merge(file: ConfigLayer, o: ConfigLayer) -> Config {
        Config {
            data_dir: o
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            models_dir: o
                .models_dir
                .or(file.models_dir)
                .unwrap_or_else(|| PathBuf::from("models")),
            embed_model: o
                .embed_model
                .or(file.embed_model)
                .unwrap_or_else(|| DEFAULT_EMBED_MODEL.to_string()),
            collection: o
                .collection
                .or(file.collection)
                .unwrap_or_else(|| "default".to_string()),
            max_file_mb: o.max_file_mb.or(file.max_file_mb).unwrap_or(100),
            parse_timeout_secs: o
                .parse_timeout_secs
                .or(file.parse_timeout_secs)
                .unwrap_or(lore_ingest::DEFAULT_PARSE_TIMEOUT.as_secs()),
            chunk_tokens: o.chunk_tokens.or(file.chunk_tokens).unwrap_or(200),
            chunk_overlap: o.chunk_overlap.or(file.chunk_overlap).unwrap_or(40),
            llm_model: o
                .llm_model
                .or(file.llm_model)
                .unwrap_or_else(|| "quality".to_string()),
            min_similarity: o
                .min_similarity
                .or(file.min_similarity)
                .unwrap_or(crate::rag::DEFAULT_MIN_SIMILARITY),
            evidence_sentences: o
                .evidence_sentences
                .or(file.evidence_sentences)
                .unwrap_or(crate::rag::EvidenceOptions::default().sentences),
            context_tokens: o.context_tokens.or(file.context_tokens).unwrap_or(4096),
            generator: o
                .generator
                .or(file.generator)
                .unwrap_or_else(|| "local".to_string()),
            openai_url: o.openai_url.or(file.openai_url),
            openai_model: o.openai_model.or(file.openai_model),
            openai_api_key: o.openai_api_key.or(file.openai_api_key),
            bind: o
                .bind
                .or(file.bind)
                .unwrap_or_else(|| "127.0.0.1:8080".to_string()),
            answer_queue: o.answer_queue.or(file.answer_queue).unwrap_or(4).max(1),
            max_upload_files: o
                .max_upload_files
                .or(file.max_upload_files)
                .unwrap_or(100)
                .max(1),
            ingest_queue: o.ingest_queue.or(file.ingest_queue).unwrap_or(32).max(1),
            request_timeout_secs: o
                .request_timeout_secs
                .or(file.request_timeout_secs)
                .unwrap_or(300)
                .max(1),
            body_timeout_secs: o
                .body_timeout_secs
                .or(file.body_timeout_secs)
                .unwrap_or(30)
                .max(1),
            stream_idle_secs: o
                .stream_idle_secs
                .or(file.stream_idle_secs)
                .unwrap_or(30)
                .max(1),
            llm_threads: o
                .llm_threads
                .or(file.llm_threads)
                .unwrap_or_else(lore_llm::default_threads)
                .max(1),
            quant_isa: o.quant_isa.or(file.quant_isa),
            embed_backend: o.embed_backend.or(file.embed_backend).unwrap_or_default(),
            watch: o.watch.or(file.watch).unwrap_or_default(),
            watch_mode: o.watch_mode.or(file.watch_mode).unwrap_or_default(),
            watch_poll_secs: o.watch_poll_secs.or(file.watch_poll_secs).unwrap_or(10),
            watch_settle_ms: o.watch_settle_ms.or(file.watch_settle_ms).unwrap_or(2000),
            watch_rescan_secs: o
                .watch_rescan_secs
                .or(file.watch_rescan_secs)
                .unwrap_or(600),
            audit_question: o.audit_question.or(file.audit_question).unwrap_or_default(),
            audit_max_mb: o.audit_max_mb.or(file.audit_max_mb).unwrap_or(16).max(1),
            allowed_hosts: o.allowed_hosts.or(file.allowed_hosts).unwrap_or_default(),
            cors_origins: o.cors_origins.or(file.cors_origins).unwrap_or_default(),
            insecure_no_auth: o
                .insecure_no_auth
                .or(file.insecure_no_auth)
                .unwrap_or(false),
            auth_proxy_header: o
                .auth_proxy_header
                .or(file.auth_proxy_header)
                .filter(|h| !h.trim().is_empty()),
            auth_proxy_addresses: o
                .auth_proxy_addresses
                .or(file.auth_proxy_addresses)
                .unwrap_or_default(),
            session_hours: o.session_hours.or(file.session_hours).unwrap_or(12).max(1),
            escalate_url: o
                .escalate_url
                .or(file.escalate_url)
                .filter(|u| !u.trim().is_empty()),
            escalate_model: o.escalate_model.or(file.escalate_model),
            escalate_api_key: o.escalate_api_key.or(file.escalate_api_key),
            escalate_collections: o
                .escalate_collections
                .or(file.escalate_collections)
                .unwrap_or_default(),
            mask_names: o.mask_names.or(file.mask_names).unwrap_or_default(),
        }
    }

    /// The embedding model directory: `embed_model` as a path when it is one, else a
    /// directory of that name under `models_dir`.
    pub fn embed_model_dir(&self) -> PathBuf {
        let as_path = Path::new(&self.embed_model);
        if as_path.is_absolute() || as_path.components().count() > 1 {
            as_path.to_path_buf()
        } else {
            self.models_dir.join(as_path)
        }
    }

    /// The GGUF file `llm_model` names: a profile (`quality`, `tiny`), a GGUF path, or a
    /// directory (under `models_dir`, or a path) holding exactly one GGUF.
    pub fn llm_model_path(&self) -> Result<PathBuf> {
        let name = match self.llm_model.as_str() {
            "quality" | "default" => QUALITY_LLM,
            "tiny" => TINY_LLM,
            other => other,
        };
        let as_path = Path::new(name);
        let candidate = if as_path.is_absolute() || as_path.components().count() > 1 {
            as_path.to_path_buf()
        } else {
            self.models_dir.join(as_path)
        };
        if !candidate.is_dir() {
            // A file, or missing: loading reports a missing file with the fetch command.
            return Ok(candidate);
        }
        let ggufs: Vec<PathBuf> = std::fs::read_dir(&candidate)
            .map_err(|source| ConfigError::ListModels {
                path: candidate.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
            })
            .collect();
        match ggufs.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ConfigError::NoModel(candidate)),
            _ => Err(ConfigError::SeveralModels(candidate)),
        }
    }

    /// How the local language model is loaded (`llm_threads`, `quant_isa`).
    pub fn llm_load_options(&self) -> lore_llm::LoadOptions {
        lore_llm::LoadOptions {
            threads: self.llm_threads,
            isa: self.quant_isa,
        }
    }

    /// The parsing limits: `max_file_mb` and `parse_timeout_secs`, the rest the parsers'
    /// defaults.
    pub fn parse_limits(&self) -> lore_ingest::Limits {
        lore_ingest::Limits {
            max_file_bytes: self.max_file_mb.saturating_mul(1024 * 1024),
            parse_timeout: (self.parse_timeout_secs > 0)
                .then(|| std::time::Duration::from_secs(self.parse_timeout_secs)),
            ..lore_ingest::Limits::default()
        }
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// Where the audit log lives.
    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join("audit")
    }

    /// The audit log's settings (the log knows nothing of `Config`: no module cycle).
    pub fn audit_options(&self) -> crate::audit::AuditOptions {
        crate::audit::AuditOptions {
            question: self.audit_question,
            max_bytes: self.audit_max_mb.max(1).saturating_mul(1 << 20),
        }
    }
}

fn read_file(path: &Path) -> Result<ConfigLayer> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_defaults_then_file_then_overrides() {
        let file: ConfigLayer =
            toml::from_str("data_dir = \"/srv/lore\"\ncollection = \"hr\"\nchunk_tokens = 150\n")
                .expect("valid toml");
        let overrides = ConfigLayer {
            collection: Some("legal".into()),
            ..Default::default()
        };
        let c = Config::merge(file, overrides);
        assert_eq!(c.data_dir, PathBuf::from("/srv/lore"));
        assert_eq!(c.collection, "legal");
        assert_eq!(c.chunk_tokens, 150);
        assert_eq!(c.models_dir, PathBuf::from("models"));
    }

    #[test]
    fn watched_folders_come_from_the_file_unless_flags_name_others() {
        let file: ConfigLayer = toml::from_str(
            "watch = [\"/srv/share\", \"/srv/hr\"]\nwatch_mode = \"poll\"\nwatch_settle_ms = 5000\n",
        )
        .expect("valid toml");
        let c = Config::merge(file.clone(), ConfigLayer::default());
        assert_eq!(
            c.watch,
            vec![PathBuf::from("/srv/share"), PathBuf::from("/srv/hr")]
        );
        assert_eq!(c.watch_mode, WatchMode::Poll);
        assert_eq!((c.watch_settle_ms, c.watch_rescan_secs), (5000, 600));
        let flags = ConfigLayer {
            watch: Some(vec![PathBuf::from("/tmp/drop")]),
            ..Default::default()
        };
        assert_eq!(
            Config::merge(file, flags).watch,
            vec![PathBuf::from("/tmp/drop")]
        );
    }

    #[test]
    fn kernel_isa_and_embedding_backend_are_settings() {
        let c = Config::merge(ConfigLayer::default(), ConfigLayer::default());
        assert_eq!(c.quant_isa, None);
        assert_eq!(c.llm_load_options().isa, None);
        let file: ConfigLayer = toml::from_str("quant_isa = \"avx2\"\n").expect("valid toml");
        let c = Config::merge(file.clone(), ConfigLayer::default());
        assert_eq!(c.llm_load_options().isa, Some(lore_llm::Isa::Avx2));
        let env = ConfigLayer {
            quant_isa: Some("scalar".parse().expect("an instruction set")),
            ..Default::default()
        };
        assert_eq!(
            Config::merge(file, env).quant_isa,
            Some(lore_llm::Isa::Scalar)
        );
        assert!(toml::from_str::<ConfigLayer>("quant_isa = \"sse\"").is_err());
        // The embedder's backend is a setting like any other, not a stray environment read.
        let file: ConfigLayer = toml::from_str("embed_backend = \"candle\"\n").expect("valid toml");
        assert_eq!(
            Config::merge(file, ConfigLayer::default()).embed_backend,
            lore_embed::Backend::Candle
        );
        assert!(toml::from_str::<ConfigLayer>("embed_backend = \"onnx\"").is_err());
    }

    #[test]
    fn parse_timeout_is_a_setting_and_zero_lifts_it() {
        let c = Config::merge(ConfigLayer::default(), ConfigLayer::default());
        assert_eq!(c.parse_timeout_secs, 30);
        assert_eq!(
            c.parse_limits().parse_timeout,
            Some(std::time::Duration::from_secs(30))
        );
        let file: ConfigLayer = toml::from_str(
            "parse_timeout_secs = 5
max_file_mb = 2
",
        )
        .expect("valid toml");
        let c = Config::merge(file.clone(), ConfigLayer::default());
        let limits = c.parse_limits();
        assert_eq!(
            limits.parse_timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(limits.max_file_bytes, 2 * 1024 * 1024);
        let flags = ConfigLayer {
            parse_timeout_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(
            Config::merge(file, flags).parse_limits().parse_timeout,
            None
        );
    }

    #[test]
    fn access_settings_default_to_closed() {
        let c = Config::merge(ConfigLayer::default(), ConfigLayer::default());
        assert!(!c.insecure_no_auth && c.auth_proxy_header.is_none());
        assert!(c.auth_proxy_addresses.is_empty());
        assert_eq!(c.session_hours, 12);
        let file: ConfigLayer = toml::from_str(
            "auth_proxy_header = \"X-Remote-User\"\nauth_proxy_addresses = [\"10.0.0.2\", \"::1\"]\nsession_hours = 2\n",
        )
        .expect("valid toml");
        let c = Config::merge(file, ConfigLayer::default());
        assert_eq!(c.auth_proxy_header.as_deref(), Some("X-Remote-User"));
        assert_eq!(c.auth_proxy_addresses.len(), 2);
        assert_eq!(c.session_hours, 2);
        assert!(toml::from_str::<ConfigLayer>("auth_proxy_addresses = [\"proxy\"]").is_err());
    }

    #[test]
    fn escalation_is_off_unless_configured() {
        let c = Config::merge(ConfigLayer::default(), ConfigLayer::default());
        assert_eq!(c.escalate_url, None);
        assert!(c.escalate_collections.is_empty() && c.mask_names.is_empty());
        let file: ConfigLayer = toml::from_str(
            "escalate_url = \"http://10.0.0.9:8000/v1\"\nescalate_collections = [\"it\"]\n\
             mask_names = [\"Jane Doe\"]\n",
        )
        .expect("valid toml");
        let c = Config::merge(file, ConfigLayer::default());
        assert_eq!(c.escalate_url.as_deref(), Some("http://10.0.0.9:8000/v1"));
        assert_eq!(c.escalate_collections, ["it"]);
        assert_eq!(c.mask_names, ["Jane Doe"]);
    }

    #[test]
    fn client_limits_have_defaults_and_are_settings() {
        let c = Config::merge(ConfigLayer::default(), ConfigLayer::default());
        assert_eq!(
            (c.max_upload_files, c.ingest_queue),
            (100, 32),
            "upload defaults"
        );
        assert_eq!(
            (
                c.request_timeout_secs,
                c.body_timeout_secs,
                c.stream_idle_secs
            ),
            (300, 30, 30)
        );
        let file: ConfigLayer = toml::from_str(
            "max_upload_files = 5\ningest_queue = 2\nstream_idle_secs = 0\nbody_timeout_secs = 7\n",
        )
        .expect("valid toml");
        let flags = ConfigLayer {
            ingest_queue: Some(3),
            ..Default::default()
        };
        let c = Config::merge(file, flags);
        assert_eq!((c.max_upload_files, c.ingest_queue), (5, 3));
        // Zero would mean "give up at once": the smallest is one second.
        assert_eq!((c.stream_idle_secs, c.body_timeout_secs), (1, 7));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<ConfigLayer>("data_dri = \"x\"").expect_err("typo must fail");
        assert!(err.to_string().contains("data_dri"), "{err}");
    }

    #[test]
    fn model_name_or_path() {
        let mut c = Config::merge(ConfigLayer::default(), ConfigLayer::default());
        c.models_dir = PathBuf::from("/m");
        assert_eq!(c.embed_model_dir(), PathBuf::from("/m/all-minilm-l6-v2"));
        c.embed_model = "/opt/bge-small".into();
        assert_eq!(c.embed_model_dir(), PathBuf::from("/opt/bge-small"));
    }
}
