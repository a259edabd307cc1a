//! `lore ask`: a question answered on the terminal (streamed) or as JSON, and the choice of
//! generator (the local GGUF or an OpenAI-compatible server) every answering command uses.

use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::{Context, Result};
use lore_index::Filter;
use serde::Serialize;

use crate::cli::AskArgs;
use crate::config::Config;
use crate::pipeline::Engine;
use crate::rag::{self, Answer, AskOptions, Source};
use lore_llm::{GenerationParams, Generator, LanguageModel, RemoteConfig};

/// The configured generator: the local GGUF on its own thread, or the remote server. At
/// most `queue_capacity` requests wait for the local model (the remote one runs that many
/// at once); more are refused as busy.
pub fn load_generator(config: &Config, queue_capacity: usize) -> Result<Generator> {
    match config.generator.as_str() {
        "local" => {}
        "openai" => {
            let base_url = config.openai_url.clone().context(
                "generator = \"openai\" needs openai_url (--openai-url or LORE_OPENAI_URL)",
            )?;
            let remote = RemoteConfig {
                base_url,
                model: config
                    .openai_model
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                api_key: config.openai_api_key.clone(),
                timeout: std::time::Duration::from_secs(600),
            };
            return Ok(Generator::remote(
                remote,
                config.context_tokens.max(512),
                queue_capacity,
            )?);
        }
        other => anyhow::bail!("unknown generator {other:?} (expected local or openai)"),
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
}

fn options(config: &Config, args: &AskArgs) -> AskOptions {
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
pub fn run_ask(config: &Config, args: &AskArgs) -> Result<i32> {
    if args.question.trim().is_empty() {
        anyhow::bail!(
            "the question is empty: ask something, e.g. lore ask \"how do I reset my VPN token?\""
        );
    }
    let engine = Engine::open(config)?;
    let generator = load_generator(config, config.answer_queue)?;
    let options = options(config, args);
    let mut out = std::io::stdout().lock();
    let stream = !args.json;
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
    )?;
    if stream {
        writeln!(out)?;
        if answer.abstention == Some(rag::Abstention::Ungrounded) {
            // The draft has already streamed: say plainly that it does not stand.
            let why = if answer.unsupported.is_empty() {
                "it only restates the question".to_string()
            } else {
                format!(
                    "no retrieved passage holds {}",
                    answer.unsupported.join(", ")
                )
            };
            writeln!(out, "\nWithdrawn: {why}.\n{}", answer.answer)?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &ask_json(&answer))?;
        writeln!(out)?;
        return Ok(0);
    }
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
    }
}
