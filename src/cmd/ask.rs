//! `lore ask`: a question answered on the terminal (streamed) or as JSON.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::Result;
use lore_index::Filter;
use serde::Serialize;

use crate::config::{Config, ConfigLayer};
use crate::engine::{load_generator, Engine};
use crate::rag::{self, Answer, AskOptions, Source};
use lore_llm::GenerationParams;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The question, in plain words.
    pub question: String,
    /// Passages retrieved for the answer.
    #[arg(long, short, default_value_t = crate::rag::DEFAULT_K, value_parser = super::passage_count())]
    pub k: usize,
    /// Restrict to these collections (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Maximum tokens in the answer.
    #[arg(long, default_value_t = 384, value_parser = super::answer_tokens())]
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
    /// Ask the larger model (escalate_url) instead of the local one, with e-mail
    /// addresses, phone numbers, IBANs, card numbers, IP addresses and the names an admin
    /// listed masked in everything sent. Only where an admin allowed it for the collections
    /// the passages come from (escalate_collections); giving this flag is your consent for
    /// this question.
    #[arg(long)]
    pub escalate: bool,
}

impl Args {
    pub(super) fn layer(&self, layer: &mut ConfigLayer) {
        layer.min_similarity = self.min_similarity;
        layer.context_tokens = self.context_tokens;
    }
}

/// `lore ask --json`: the scorer's fields plus the cited sources apart from the retrieved.
#[derive(Debug, Serialize)]
struct AskJson<'a> {
    question: &'a str,
    answer: &'a str,
    abstained: bool,
    abstention: Option<rag::Abstention>,
    cited: &'a [usize],
    citations: &'a [Source],
    sources: &'a [Source],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    unsupported: &'a [String],
    quote: Option<&'a rag::Quote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<&'a lore_llm::GenerationStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    escalated: Option<&'a crate::escalate::Escalated>,
}

fn options(config: &Config, args: &Args) -> AskOptions {
    AskOptions {
        k: args.k.max(1),
        generation: GenerationParams {
            max_tokens: args.max_tokens.max(1),
            temperature: args.temperature.max(0.0),
            top_p: args.top_p,
            repeat_penalty: args.repeat_penalty,
            stop: args.stop.clone(),
            ..GenerationParams::default()
        },
        filter: Filter {
            collections: (!args.collections.is_empty()).then(|| args.collections.clone()),
        },
        ..config.ask_options()
    }
}

/// `lore ask`.
pub fn run(config: &Config, args: &Args) -> Result<i32> {
    if args.question.trim().is_empty() {
        anyhow::bail!(
            "the question is empty: ask something, e.g. lore ask \"how do I reset my VPN token?\""
        );
    }
    let engine = Engine::open_read_only(config)?;
    super::require_documents(&engine, config)?;
    let options = options(config, args);
    if args.escalate {
        return escalate(config, args, &engine, &options);
    }
    let generator = load_generator(config, config.answer_queue)?;
    let mut out = std::io::stdout().lock();
    let stream = !args.json;
    let started = std::time::Instant::now();
    let answer = rag::ask(
        &engine.embedder,
        &engine.index,
        &generator,
        &args.question,
        &[],
        &options,
        |text| {
            if stream {
                // Streaming to a closed pipe is not an error worth stopping for.
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            ControlFlow::Continue(())
        },
    );
    record(
        config,
        &args.question,
        answer.as_ref().map_err(|e| e as &dyn std::fmt::Display),
        None,
        started,
    );
    let answer = answer?;
    if stream {
        writeln!(out)?;
        // The draft has already streamed: say plainly that it does not stand.
        let why = match answer.abstention {
            Some(rag::Abstention::Ungrounded) if answer.unsupported.is_empty() => {
                Some("it only restates the question".to_string())
            }
            Some(rag::Abstention::Ungrounded) => Some(format!(
                "no retrieved passage holds {}",
                answer.unsupported.join(", ")
            )),
            Some(rag::Abstention::Instructed) => Some(format!(
                "it follows an instruction a document gives the assistant ({})",
                answer.unsupported.join(", ")
            )),
            _ => None,
        };
        if let Some(why) = why {
            writeln!(out, "\nWithdrawn: {why}.\n{}", answer.answer)?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &ask_json(&answer))?;
        writeln!(out)?;
        return Ok(0);
    }
    print_sources(&mut out, &answer)?;
    if let Some(stats) = &answer.generation {
        tracing::info!(
            ttft_s = stats.time_to_first_token_s,
            decode_tok_s = stats.decode_tok_s,
            prompt_tokens = stats.prompt_tokens,
            "generated"
        );
    }
    Ok(0)
}

/// `lore ask --escalate`: retrieval here, the answer from the larger model, anonymised.
/// The local model is not loaded. The answer is printed whole once it is unmasked (a
/// placeholder split across streamed pieces could not be mapped back).
fn escalate(config: &Config, args: &Args, engine: &Engine, options: &AskOptions) -> Result<i32> {
    let started = std::time::Instant::now();
    let escalator = crate::escalate::Escalator::from_config(config)?
        .ok_or(crate::escalate::EscalateError::Off)?;
    let question = args.question.trim();
    let retrieved = crate::retrieval::search(
        &engine.embedder,
        &engine.index,
        question,
        options.mode,
        options.k.max(1),
        &options.filter,
    )?;
    let evidence = rag::select_evidence(
        &engine.embedder,
        &engine.index,
        question,
        &retrieved,
        options,
    )?;
    let escalation = escalator.escalate(
        &engine.embedder,
        question,
        &[],
        retrieved,
        &evidence,
        options,
    );
    match &escalation {
        // What went to the larger model, masked, exactly as sent.
        Ok(e) => record(
            config,
            question,
            Ok(&e.answer),
            Some(serde_json::json!({ "escalation_request": e.sent })),
            started,
        ),
        Err(e) => record(config, question, Err(e), None, started),
    }
    let answer = escalation?.answer;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &ask_json(&answer))?;
        writeln!(out)?;
        return Ok(0);
    }
    writeln!(out, "{}", answer.answer)?;
    if let Some(marker) = &answer.escalated {
        let hidden: Vec<String> = marker
            .masked
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let hidden = if hidden.is_empty() {
            "nothing needed masking".to_string()
        } else {
            format!("masked: {}", hidden.join(", "))
        };
        writeln!(
            out,
            "\n(answered by the larger model {}; {hidden})",
            marker.model
        )?;
    }
    print_sources(&mut out, &answer)?;
    Ok(0)
}

fn print_sources(out: &mut impl Write, answer: &Answer) -> Result<()> {
    if let Some(quote) = &answer.quote {
        let text = crate::retrieval::snippet(&quote.text, 400);
        writeln!(out, "\n> \"{text}\" [{}]", quote.n)?;
    }
    if !answer.citations.is_empty() {
        writeln!(out, "\nSources:")?;
        for s in &answer.citations {
            writeln!(out, "  [{}] {}", s.n, s.passage.location())?;
        }
    }
    Ok(())
}

/// Writes the question to the audit log, as the server does for `/api/ask`: the command
/// line reads the same documents, so who asked what is kept for it too (the user is the
/// login name). Best effort: a data directory this user cannot write to costs a warning,
/// not the answer.
fn record(
    config: &Config,
    question: &str,
    answer: Result<&Answer, &dyn std::fmt::Display>,
    extra: Option<serde_json::Value>,
    started: std::time::Instant,
) {
    let log = match crate::audit::AuditLog::open(&config.audit_dir(), config.audit_options()) {
        Ok(log) => log,
        Err(e) => {
            tracing::warn!("this question is not in the audit log: {e}");
            return;
        }
    };
    let (documents, outcome) = match answer {
        Ok(a) => (
            crate::audit::cited_documents(&a.citations),
            if a.abstained { "abstained" } else { "answered" }.to_string(),
        ),
        Err(e) => (Vec::new(), format!("error: {e}")),
    };
    log.record(crate::audit::AuditEntry {
        user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        question: Some(question.trim().to_string()),
        documents,
        outcome,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        extra,
        ..crate::audit::AuditEntry::new("lore ask")
    });
    // Dropping the log writes the entry before the command exits.
}

fn ask_json(answer: &Answer) -> AskJson<'_> {
    AskJson {
        question: &answer.question,
        answer: &answer.answer,
        abstained: answer.abstained,
        abstention: answer.abstention,
        cited: &answer.cited,
        citations: &answer.citations,
        sources: &answer.sources,
        unsupported: &answer.unsupported,
        quote: answer.quote.as_ref(),
        generation: answer.generation.as_ref(),
        escalated: answer.escalated.as_ref(),
    }
}
