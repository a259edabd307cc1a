//! The command line: the global flags, the subcommands and dispatch. Each subcommand owns
//! its clap `Args` and its `run` in a module of its own; the core (pipeline, retrieval, rag,
//! llm, watch, serve) takes plain option structs and never imports this module. Settings
//! given here become the top layer of [`Config`] (file < environment < flags).

mod ask;
mod audit;
mod bench;
mod eval;
mod grant;
mod ingest;
mod remove;
mod revoke;
mod search;
mod serve;
mod status;
mod token;
mod user;
mod watch;

use crate::config::{Config, ConfigLayer};
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
///   lore user add admin --role admin              # accounts: then serve asks for a sign-in
///   lore grant ann hr legal                       # what an account may see
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
    /// What runs the embedding model: packed (Lore's kernels) or candle
    /// (candle-transformers, the reference) [default: packed]
    #[arg(
        long,
        global = true,
        env = "LORE_EMBED_BACKEND",
        value_name = "packed|candle"
    )]
    pub embed_backend: Option<lore_embed::Backend>,
    /// Show the model the N best sentences of the retrieved passages (each with a
    /// neighbour on either side) instead of whole passages; 0 shows whole passages
    /// [default: 0]
    #[arg(long, global = true, env = "LORE_EVIDENCE_SENTENCES", value_name = "N")]
    pub evidence_sentences: Option<usize>,
    /// Seconds one file's parse may take before the file is recorded as failed and the
    /// next one is taken (ingest, watch, uploads); 0 lifts the limit [default: 30]
    #[arg(
        long,
        global = true,
        env = "LORE_PARSE_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub parse_timeout_secs: Option<u64>,
    /// Audit log questions as asked (text) or only as their SHA-256 (hash) [default: text]
    #[arg(
        long,
        global = true,
        env = "LORE_AUDIT_QUESTION",
        value_name = "text|hash"
    )]
    pub audit_question: Option<crate::audit::QuestionMode>,
    /// Rotate the audit log into a numbered segment past this size [default: 16]
    #[arg(long, global = true, env = "LORE_AUDIT_MAX_MB", value_name = "MB")]
    pub audit_max_mb: Option<u64>,
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
    Ingest(ingest::Args),
    /// Search the index and print the best passages.
    Search(search::Args),
    /// Answer a question from the indexed documents, with citations.
    ///
    /// The answer streams as it is generated, then its sources. When no passage is
    /// similar enough to the question, Lore says it could not find the answer without
    /// asking the model.
    #[command(verbatim_doc_comment)]
    Ask(ask::Args),
    /// Serve the web portal and the HTTP API.
    ///
    /// Examples:
    ///   lore serve                          # http://127.0.0.1:8080/
    ///   lore serve --bind 0.0.0.0:8080      # reachable from the network (e.g. in Docker)
    ///   lore serve --watch /srv/share       # and keep the index in step with a folder
    #[command(verbatim_doc_comment)]
    Serve(serve::Args),
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
    Watch(watch::Args),
    /// Remove documents (by path as ingested, or a folder prefix) from the index.
    Remove(remove::Args),
    /// Show documents, chunks, index size and models in use.
    Status(status::Args),
    /// Measure retrieval and answer quality on your own questions.
    ///
    /// Runs every question of a JSONL file through the real pipeline against the
    /// current index and reports evidence recall@1/3/5/10, MRR, document recall, answer
    /// accuracy, abstention accuracy, false-abstention rate, citation precision and
    /// latency. Writes metrics.json, report.html (opens offline) and the per-question
    /// `outputs-<mode>.jsonl` in --out.
    ///
    /// Examples:
    ///   lore eval questions.jsonl                       # hybrid retrieval + answers
    ///   lore eval questions.jsonl --mode hybrid --mode bm25 --mode vector --retrieval-only
    ///   lore eval --compare before/metrics.json after/metrics.json
    #[command(verbatim_doc_comment)]
    Eval(eval::Args),
    /// Check or read the audit log (who asked what, what changed in the library).
    ///
    /// Examples:
    ///   lore audit verify              # exit 1 naming the first edited, missing or moved entry
    ///   lore audit tail -n 50
    ///   lore audit tail --follow --json
    #[command(verbatim_doc_comment)]
    Audit(audit::Args),
    /// Manage accounts: add, list, remove, passwd.
    User(user::Args),
    /// Let an account see collections (`*` = all).
    Grant(grant::Args),
    /// Take collections away from an account.
    Revoke(revoke::Args),
    /// API tokens for programs: create (printed once), list, revoke.
    Token(token::Args),
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
    Generate(bench::GenerateArgs),
}

impl Cli {
    /// The configuration: lore.toml, then the environment, then these flags.
    fn config(&self) -> Result<Config> {
        let g = &self.global;
        let mut layer = ConfigLayer {
            data_dir: g.data_dir.clone(),
            models_dir: g.models_dir.clone(),
            embed_model: g.embed_model.clone(),
            llm_model: g.llm_model.clone(),
            generator: g.generator.clone(),
            openai_url: g.openai_url.clone(),
            openai_model: g.openai_model.clone(),
            openai_api_key: std::env::var("LORE_OPENAI_API_KEY").ok(),
            // Escalation is an admin's setting: lore.toml or the environment, no flags.
            escalate_url: std::env::var("LORE_ESCALATE_URL").ok(),
            escalate_model: std::env::var("LORE_ESCALATE_MODEL").ok(),
            escalate_api_key: std::env::var("LORE_ESCALATE_API_KEY").ok(),
            escalate_collections: env_list("LORE_ESCALATE_COLLECTIONS"),
            mask_names: env_list("LORE_MASK_NAMES"),
            llm_threads: g.llm_threads,
            quant_isa: g.quant_isa,
            embed_backend: g.embed_backend,
            evidence_sentences: g.evidence_sentences,
            parse_timeout_secs: g.parse_timeout_secs,
            audit_question: g.audit_question,
            audit_max_mb: g.audit_max_mb,
            ..Default::default()
        };
        match &self.command {
            Command::Ingest(a) => a.layer(&mut layer),
            Command::Ask(a) => a.layer(&mut layer),
            Command::Serve(a) => a.layer(&mut layer),
            Command::Watch(a) => a.layer(&mut layer),
            Command::Bench(BenchCommand::Generate(a)) => a.layer(&mut layer),
            Command::Search(_)
            | Command::Remove(_)
            | Command::Status(_)
            | Command::Eval(_)
            | Command::Audit(_)
            | Command::User(_)
            | Command::Grant(_)
            | Command::Revoke(_)
            | Command::Token(_) => {}
        }
        Ok(Config::load(g.config.as_deref(), layer)?)
    }
}

/// A comma-separated list from the environment (`None` when unset).
fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// Parses arguments and runs the command; the exit code on success.
pub fn run() -> Result<i32> {
    let cli = Cli::parse();
    crate::logging::init(cli.global.quiet);
    let config = cli.config()?;
    let quiet = cli.global.quiet;
    match cli.command {
        Command::Ingest(args) => ingest::run(&config, &args, quiet),
        Command::Search(args) => search::run(&config, &args),
        Command::Ask(args) => ask::run(&config, &args),
        Command::Serve(_) => serve::run(&config),
        Command::Watch(args) => watch::run(&config, &args),
        Command::Remove(args) => remove::run(&config, &args),
        Command::Status(args) => status::run(&config, &args),
        Command::Bench(BenchCommand::Generate(args)) => bench::run(&config, &args),
        Command::Eval(args) => eval::run(&config, &args, quiet),
        Command::Audit(args) => audit::run(&config, &args),
        Command::User(args) => user::run(&config, &args),
        Command::Grant(args) => grant::run(&config, &args),
        Command::Revoke(args) => revoke::run(&config, &args),
        Command::Token(args) => token::run(&config, &args),
    }
}

/// Refuses to search an index that holds nothing, saying how to fill it (an empty result
/// would look like a bad query).
fn require_documents(engine: &crate::engine::Engine, config: &Config) -> Result<()> {
    if engine.index.is_empty() {
        anyhow::bail!(
            "the index in {} is empty: add documents first, with `lore ingest PATH...`, the \
             portal's Library page (`lore serve`), or a watched folder (`lore serve --watch DIR`)",
            config.index_dir().display()
        );
    }
    Ok(())
}

/// `--k`: passages per search or answer, refused outside what the API accepts.
fn passage_count() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=crate::retrieval::MAX_K as u64)
}

/// `--max-tokens`: an answer's budget, refused outside what the API accepts.
fn answer_tokens() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=crate::rag::MAX_ANSWER_TOKENS as u64)
}

/// Parses a retrieval mode for clap.
fn parse_mode(s: &str) -> std::result::Result<SearchMode, String> {
    s.parse::<SearchMode>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn out_of_range_counts_are_refused_as_the_api_refuses_them() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        for bad in [
            &["lore", "search", "backups", "--k", "0"][..],
            &["lore", "search", "backups", "--k", "21"],
            &["lore", "ask", "when?", "--k", "0"],
            &["lore", "ask", "when?", "--max-tokens", "0"],
            &["lore", "ask", "when?", "--max-tokens", "4096"],
            &["lore", "eval", "q.jsonl", "--k", "0"],
        ] {
            let err = parse(bad).expect_err("out of range");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}"
            );
        }
        match parse(&["lore", "search", "backups", "--k", "20"]) {
            Ok(Command::Search(args)) => assert_eq!(args.k, 20),
            other => panic!("{other:?}"),
        }
        match parse(&["lore", "ask", "when?"]) {
            Ok(Command::Ask(args)) => {
                assert_eq!((args.k, args.max_tokens), (crate::rag::DEFAULT_K, 384))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_flags_become_the_top_config_layer() {
        let cli = Cli::try_parse_from([
            "lore",
            "--data-dir",
            "/tmp/lore-flags",
            "ingest",
            "--collection",
            "legal",
            "--chunk-tokens",
            "120",
            "docs",
        ])
        .expect("parses");
        let config = cli.config().expect("config");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/lore-flags"));
        assert_eq!(
            (config.collection.as_str(), config.chunk_tokens),
            ("legal", 120)
        );
    }
}
