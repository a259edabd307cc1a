//! Command-line interface: argument definitions (clap) and dispatch to the commands.

use crate::config::{Config, ConfigLayer};
use crate::{pipeline, retrieval, status};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use lore_index::SearchMode;
use std::path::PathBuf;

/// Lore: ask your documents. Private, local, one binary.
///
/// Examples:
///   lore ingest ~/handbook ~/policies.pdf     # parse, chunk, embed and index
///   lore search "how do I reset the VPN token" --k 5
///   lore search "backup retention" --mode bm25 --json
///   lore remove handbook/old-vpn.md
///   lore status
///   lore ask "how long are backups kept?"
///   lore watch /srv/share                        # keep the index in step with a folder
///   lore serve --watch /srv/share                 # the same, behind the portal
///   lore eval questions.jsonl --out eval-out
///   lore bench generate --threads 2               # model speed: prompt, decode, first token
#[derive(Debug, Parser)]
#[command(name = "lore", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes. Each has an env variable; a config file sits beneath both.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (TOML). Default: ./lore.toml when present.
    #[arg(long, global = true, env = "LORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the index and Lore's state [default: data]
    #[arg(long, global = true, env = "LORE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory holding the models fetched by scripts/fetch-models [default: models]
    #[arg(long, global = true, env = "LORE_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Embedding model: a directory name under the models dir, or a path to a
    /// BERT-family sentence-embedding directory [default: all-minilm-l6-v2]
    #[arg(long, global = true, env = "LORE_EMBED_MODEL", value_name = "NAME|DIR")]
    pub embed_model: Option<String>,
    /// Language model: quality (Qwen2.5-Coder-0.5B), tiny (SmolLM2-135M), a directory
    /// under the models dir, or a path to a GGUF file [default: quality]
    #[arg(
        long,
        global = true,
        env = "LORE_LLM_MODEL",
        value_name = "PROFILE|GGUF"
    )]
    pub llm_model: Option<String>,
    /// Where answers are generated: local (the GGUF, in-process) or openai (an
    /// OpenAI-compatible server on your network: llama.cpp, vLLM, Ollama) [default: local]
    #[arg(
        long,
        global = true,
        env = "LORE_GENERATOR",
        value_name = "local|openai"
    )]
    pub generator: Option<String>,
    /// Base URL of the OpenAI-compatible server, e.g. http://10.0.0.5:8000/v1
    #[arg(long, global = true, env = "LORE_OPENAI_URL", value_name = "URL")]
    pub openai_url: Option<String>,
    /// Model name to request from that server.
    #[arg(long, global = true, env = "LORE_OPENAI_MODEL", value_name = "NAME")]
    pub openai_model: Option<String>,
    /// Threads the language model computes with [default: one per core]
    #[arg(long, global = true, env = "LORE_LLM_THREADS", value_name = "N")]
    pub llm_threads: Option<usize>,
    /// Instruction set of the language model's kernels: scalar, avx2 or avx512 force one
    /// (for comparisons; one the CPU lacks falls back to the best it has) [default: the
    /// best the CPU has]
    #[arg(
        long,
        global = true,
        env = "LORE_QUANT_ISA",
        value_name = "scalar|avx2|avx512"
    )]
    pub quant_isa: Option<lore_llm::Isa>,
    /// Show the model the N best sentences of the retrieved passages (each with a
    /// neighbour on either side) instead of whole passages; 0 shows whole passages
    /// [default: 0]
    #[arg(long, global = true, env = "LORE_EVIDENCE_SENTENCES", value_name = "N")]
    pub evidence_sentences: Option<usize>,
    /// Only errors on stderr; no progress bar.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, chunk, embed and index files and folders (recursively).
    ///
    /// Unchanged files are skipped (content hash), changed files replace their
    /// passages. Each batch becomes visible atomically; an interrupted run is completed by
    /// running it again. Exit status: 0 when every file was ingested, unchanged or skipped
    /// by policy (type, size), 2 when some files failed, 1 on a fatal error.
    #[command(verbatim_doc_comment)]
    Ingest(IngestArgs),
    /// Search the index and print the best passages.
    Search(SearchArgs),
    /// Answer a question from the indexed documents, with citations.
    ///
    /// The answer streams as it is generated, then its sources. When no passage is
    /// similar enough to the question, Lore says it could not find the answer without
    /// asking the model.
    #[command(verbatim_doc_comment)]
    Ask(AskArgs),
    /// Serve the web portal and the HTTP API.
    ///
    /// Examples:
    ///   lore serve                          # http://127.0.0.1:8080/
    ///   lore serve --bind 0.0.0.0:8080      # reachable from the network (e.g. in Docker)
    ///   lore serve --watch /srv/share       # and keep the index in step with a folder
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Keep the index in step with folders: new files are ingested, changed ones
    /// re-indexed, deleted ones removed, renamed and moved ones re-filed without embedding
    /// them again.
    ///
    /// Each top-level subfolder is a collection (files directly in the folder go to
    /// "default"). A file is taken once it has stopped changing for --settle-ms; hidden and
    /// temporary names (.part, .tmp, ~$*, dotfiles) are passed over. The folders are compared
    /// with the index at start and every --rescan-secs, so nothing is missed while Lore was
    /// stopped. Progress: `lore status`. Stop with Ctrl-C or SIGTERM; kill -9 loses nothing.
    ///
    /// Examples:
    ///   lore watch /srv/share
    ///   lore watch /mnt/nfs/docs --watch-mode poll --poll-secs 30
    #[command(verbatim_doc_comment)]
    Watch(WatchArgs),
    /// Remove documents (by path as ingested, or a folder prefix) from the index.
    Remove(RemoveArgs),
    /// Show documents, chunks, index size and models in use.
    Status(StatusArgs),
    /// Measure retrieval and answer quality on your own questions.
    ///
    /// Runs every question of a JSONL file through the real pipeline against the
    /// current index and reports evidence recall@1/3/5/10, MRR, document recall, answer
    /// accuracy, abstention accuracy, false-abstention rate, citation precision and
    /// latency. Writes metrics.json, report.html (opens offline) and the per-question
    /// outputs-<mode>.jsonl in --out.
    ///
    /// Examples:
    ///   lore eval questions.jsonl                       # hybrid retrieval + answers
    ///   lore eval questions.jsonl --mode hybrid --mode bm25 --mode vector --retrieval-only
    ///   lore eval --compare before/metrics.json after/metrics.json
    #[command(verbatim_doc_comment)]
    Eval(EvalArgs),
    /// Measure Lore's own speed.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prompt processing and decode speed of the language model on a fixed synthetic
    /// prompt, time to first token and peak memory; compare with llama.cpp's llama-bench
    /// on the same GGUF and thread count (scripts/bench-generate runs both).
    ///
    /// Examples:
    ///   lore bench generate                                   # default model, all cores
    ///   lore --llm-model tiny bench generate --threads 1 --json
    ///   lore bench generate --model models/other.gguf --prompt-tokens 512
    #[command(verbatim_doc_comment)]
    Generate(GenerateBenchArgs),
}

#[derive(Debug, Args)]
pub struct GenerateBenchArgs {
    /// Model: quality, tiny, a directory under the models dir or a GGUF path
    /// [default: --llm-model]
    #[arg(long, value_name = "PROFILE|GGUF")]
    pub model: Option<String>,
    /// Threads [default: --llm-threads]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Tokens in the prompt.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub prompt_tokens: usize,
    /// Tokens decoded after it (greedy, never stopping early).
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub gen_tokens: usize,
    /// One JSON object: {"prompt_tok_s", "decode_tok_s", "ttft_s", "rss_mb", ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders to ingest.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Collection the documents belong to [default: default]
    #[arg(long, env = "LORE_COLLECTION")]
    pub collection: Option<String>,
    /// Files larger than this many MiB are skipped [default: 100]
    #[arg(long, env = "LORE_MAX_FILE_MB", value_name = "MIB")]
    pub max_file_mb: Option<u64>,
    /// Target chunk size in embedding tokens [default: 200]
    #[arg(long, env = "LORE_CHUNK_TOKENS", value_name = "N")]
    pub chunk_tokens: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Commit after this many documents (each commit becomes visible atomically).
    #[arg(long, hide = true, default_value_t = pipeline::COMMIT_EVERY_DOCS)]
    pub commit_every: usize,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for, in plain words.
    pub query: String,
    /// Number of passages.
    #[arg(long, short, default_value_t = 5)]
    pub k: usize,
    /// Retrieval mode.
    #[arg(long, short, default_value = "hybrid", value_parser = parse_mode)]
    pub mode: SearchMode,
    /// Restrict to these collections (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Print full passages as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question, in plain words.
    pub question: String,
    /// Passages retrieved for the answer.
    #[arg(long, short, default_value_t = crate::rag::DEFAULT_K)]
    pub k: usize,
    /// Restrict to these collections (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Maximum tokens in the answer.
    #[arg(long, default_value_t = 384)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy (deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling (with a temperature above 0).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Penalty on tokens the answer already repeated (1 disables it).
    #[arg(long, default_value_t = 1.1)]
    pub repeat_penalty: f32,
    /// Stop the answer at this string (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Abstain when no passage reaches this cosine similarity [default: 0.45]
    #[arg(long, env = "LORE_MIN_SIMILARITY", value_name = "COS")]
    pub min_similarity: Option<f32>,
    /// Context window Lore uses, in tokens (capped by the model's) [default: 4096]
    #[arg(long, env = "LORE_CONTEXT_TOKENS", value_name = "N")]
    pub context_tokens: Option<usize>,
    /// Print one JSON object (answer, abstained, cited, sources).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "LORE_BIND", value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Answers admitted at once (one runs, the rest wait); more get 429 Retry-After
    /// [default: 4]
    #[arg(long, env = "LORE_ANSWER_QUEUE", value_name = "N")]
    pub answer_queue: Option<usize>,
    /// Folder to keep the index in step with (repeatable; see `lore watch --help`)
    #[arg(
        long = "watch",
        env = "LORE_WATCH",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    pub watch: Vec<PathBuf>,
    #[command(flatten)]
    pub watch_flags: WatchFlags,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Folders to watch [default: `watch` in lore.toml]
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Files per atomic commit (tests set it low to crash between commits).
    #[arg(long, hide = true, default_value_t = crate::watch::BATCH_FILES)]
    pub batch_files: usize,
    #[command(flatten)]
    pub flags: WatchFlags,
}

/// How a watcher notices and takes changes (`lore watch`, `lore serve --watch`).
#[derive(Debug, Args)]
pub struct WatchFlags {
    /// notify (filesystem notifications) or poll (network shares and Docker volume drivers
    /// that deliver none) [default: notify]
    #[arg(long, env = "LORE_WATCH_MODE", value_name = "notify|poll")]
    pub watch_mode: Option<crate::config::WatchMode>,
    /// Seconds between polls in poll mode [default: 10]
    #[arg(long, env = "LORE_WATCH_POLL_SECS", value_name = "SECS")]
    pub poll_secs: Option<u64>,
    /// Take a file once its size and times stayed the same this long [default: 2000]
    #[arg(long, env = "LORE_WATCH_SETTLE_MS", value_name = "MS")]
    pub settle_ms: Option<u64>,
    /// Seconds between full comparisons of the folders with the index [default: 600]
    #[arg(long, env = "LORE_WATCH_RESCAN_SECS", value_name = "SECS")]
    pub rescan_secs: Option<u64>,
}

impl WatchFlags {
    fn apply(&self, o: &mut ConfigLayer) {
        o.watch_mode = self.watch_mode;
        o.watch_poll_secs = self.poll_secs;
        o.watch_settle_ms = self.settle_ms;
        o.watch_rescan_secs = self.rescan_secs;
    }
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Document paths as ingested (see `lore status --documents`), or folder prefixes.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// List every document.
    #[arg(long)]
    pub documents: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Questions JSONL: {"id", "question", "doc", "answer_contains", "evidence", "kind"} per
    /// line (see README).
    #[arg(value_name = "QUESTIONS", required_unless_present = "compare")]
    pub questions: Option<PathBuf>,
    /// Retrieval mode to measure (repeatable) [default: hybrid]
    #[arg(long = "mode", value_parser = parse_mode)]
    pub modes: Vec<SearchMode>,
    /// Passages retrieved for each answer (recall is measured over the top 10).
    #[arg(long, default_value_t = crate::rag::DEFAULT_K)]
    pub k: usize,
    /// Folder for metrics.json, report.html and outputs-<mode>.jsonl.
    #[arg(long, default_value = "eval-out", value_name = "DIR")]
    pub out: PathBuf,
    /// Measure retrieval only: no language model, no answers.
    #[arg(long)]
    pub retrieval_only: bool,
    /// Maximum tokens per answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Share of an evidence's words a passage must hold to count as containing it.
    #[arg(long, default_value_t = crate::eval::score::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Compare two metrics.json files (B − A) instead of running.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with_all = ["questions", "modes", "retrieval_only"])]
    pub compare: Vec<PathBuf>,
    /// Print metrics.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    #[arg(skip)]
    pub quiet: bool,
}

fn parse_mode(s: &str) -> std::result::Result<SearchMode, String> {
    s.parse::<SearchMode>().map_err(|e| e.to_string())
}

impl Cli {
    fn config(&self) -> Result<Config> {
        let g = &self.global;
        let mut o = ConfigLayer {
            data_dir: g.data_dir.clone(),
            models_dir: g.models_dir.clone(),
            embed_model: g.embed_model.clone(),
            ..Default::default()
        };
        o.llm_model = self.global.llm_model.clone();
        o.generator = self.global.generator.clone();
        o.openai_url = self.global.openai_url.clone();
        o.openai_model = self.global.openai_model.clone();
        o.openai_api_key = std::env::var("LORE_OPENAI_API_KEY").ok();
        o.llm_threads = self.global.llm_threads;
        o.quant_isa = self.global.quant_isa;
        o.evidence_sentences = self.global.evidence_sentences;
        if let Command::Ask(a) = &self.command {
            o.min_similarity = a.min_similarity;
            o.context_tokens = a.context_tokens;
        }
        if let Command::Bench(BenchCommand::Generate(a)) = &self.command {
            if a.model.is_some() {
                o.llm_model = a.model.clone();
            }
            if a.threads.is_some() {
                o.llm_threads = a.threads;
            }
        }
        if let Command::Serve(a) = &self.command {
            o.bind = a.bind.clone();
            o.answer_queue = a.answer_queue;
            o.watch = (!a.watch.is_empty()).then(|| a.watch.clone());
            a.watch_flags.apply(&mut o);
        }
        if let Command::Watch(a) = &self.command {
            o.watch = (!a.dirs.is_empty()).then(|| a.dirs.clone());
            a.flags.apply(&mut o);
        }
        if let Command::Ingest(a) = &self.command {
            o.collection = a.collection.clone();
            o.max_file_mb = a.max_file_mb;
            o.chunk_tokens = a.chunk_tokens;
        }
        Config::load(g.config.as_deref(), o)
    }
}

/// Parses arguments and runs the command; the exit code on success.
pub fn run() -> Result<i32> {
    let cli = Cli::parse();
    crate::logging::init(cli.global.quiet);
    let config = cli.config()?;
    let quiet = cli.global.quiet;
    match cli.command {
        Command::Ingest(args) => pipeline::run_ingest(&config, &args, quiet),
        Command::Search(args) => retrieval::run_search(&config, &args).map(|_| 0),
        Command::Ask(args) => crate::ask::run_ask(&config, &args),
        Command::Serve(_) => crate::serve::run_serve(&config),
        Command::Watch(args) => crate::watch::run_watch(&config, args.batch_files),
        Command::Remove(args) => pipeline::run_remove(&config, &args.paths).map(|_| 0),
        Command::Status(args) => status::run_status(&config, args.documents, args.json).map(|_| 0),
        Command::Bench(BenchCommand::Generate(args)) => crate::bench::run_generate(&config, &args),
        Command::Eval(mut args) => {
            args.quiet = quiet;
            crate::eval::run_eval(&config, &args)
        }
    }
}
