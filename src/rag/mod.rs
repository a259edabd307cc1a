//! Answering: a question in, a grounded answer with citations out. Retrieves passages
//! ([`crate::retrieval`]), abstains without calling the model when the evidence is weak,
//! builds the prompt ([`prompt`]), streams the model's answer ([`crate::llm`]) through a
//! citation filter, and checks the result: phantom markers removed, uncited sentences
//! attributed ([`citations`]), the model's own refusals recognised, and an answer whose
//! specifics the passages do not hold withdrawn ([`grounding`]).

pub mod citations;
pub mod grounding;
pub mod prompt;

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::{Context, Result};
use lore_index::{Filter, Index, SearchMode};
use serde::Serialize;

use crate::embed::Embedder;
use crate::llm::{ChatMessage, GenerationParams, GenerationStats, Generator, LlmError};
use crate::retrieval::{self, Passage};
pub use prompt::NOT_FOUND;

/// Below this cosine similarity between the question and its best passage, Lore answers
/// [`NOT_FOUND`] without asking the model. Calibrated on the development set (see README).
pub const DEFAULT_MIN_SIMILARITY: f32 = 0.45;

/// How to answer.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Passages retrieved (fewer may reach the prompt when the context is short).
    pub k: usize,
    pub generation: GenerationParams,
    /// Abstain without the model when the best passage's similarity is below this.
    pub min_similarity: f32,
    pub filter: Filter,
    /// Retrieval mode (hybrid unless comparing modes in an evaluation).
    pub mode: SearchMode,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            k: 5,
            generation: GenerationParams::default(),
            min_similarity: DEFAULT_MIN_SIMILARITY,
            filter: Filter::default(),
            mode: SearchMode::Hybrid,
        }
    }
}

/// Why an answer is "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Abstention {
    /// No passage was similar enough to the question; the model was not called.
    WeakEvidence,
    /// The model said the passages do not hold the answer.
    ModelRefused,
    /// The model answered, but more of the commands, options, files, settings or values it
    /// named are in no passage than in one, or it only restated the question: withdrawn
    /// (see [`grounding`]).
    Ungrounded,
}

/// A passage as a source of an answer: `n` is its number in the prompt (the `[n]` the
/// answer cites).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Source {
    pub n: usize,
    #[serde(flatten)]
    pub passage: Passage,
}

/// A finished answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub question: String,
    pub answer: String,
    pub abstained: bool,
    pub abstention: Option<Abstention>,
    /// Numbers of the passages the answer cites.
    pub cited: Vec<usize>,
    /// The cited passages.
    pub citations: Vec<Source>,
    /// Every retrieved passage, best first (those shown to the model are numbered 1..).
    pub sources: Vec<Source>,
    pub generation: Option<GenerationStats>,
    pub retrieval_s: f64,
    /// With [`Abstention::Ungrounded`]: the specifics of the withdrawn answer that no
    /// passage holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
}

/// Retrieves, decides, generates and checks. `on_text` receives the answer as it streams
/// (phantom citation markers already removed); breaking from it cancels generation.
pub fn ask(
    embedder: &Embedder,
    index: &Index,
    generator: &Generator,
    question: &str,
    history: &[ChatMessage],
    options: &AskOptions,
    on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer> {
    let started = Instant::now();
    let retrieved = retrieval::search(
        embedder,
        index,
        question.trim(),
        options.mode,
        options.k.max(1),
        &options.filter,
    )?;
    let retrieval_s = started.elapsed().as_secs_f64();
    let mut answer = answer_from(generator, question, history, retrieved, options, on_text)?;
    answer.retrieval_s = retrieval_s;
    Ok(answer)
}

/// Rejects an empty question, or one that cannot fit the model's context with room for
/// an answer, whatever retrieval would find.
fn check_question(generator: &Generator, question: &str, options: &AskOptions) -> Result<()> {
    let question = question.trim();
    if question.is_empty() {
        anyhow::bail!("the question is empty");
    }
    // A question that cannot fit the model's context with room for an answer is an error,
    // whatever retrieval would find.
    let question_tokens = generator.count_tokens(question)?;
    let context = generator.info().context_length;
    if question_tokens + options.generation.max_tokens >= context {
        // Typed underneath, so callers (the HTTP API) can tell it from a failure.
        return Err(anyhow::Error::new(LlmError::ContextOverflow {
            tokens: question_tokens + options.generation.max_tokens,
            limit: context,
        })
        .context(format!(
            "the question is {question_tokens} tokens long: with {} tokens kept for the answer it does not fit the model's context of {context} tokens",
            options.generation.max_tokens
        )));
    }
    Ok(())
}

/// Answers `question` from passages already retrieved (best first): abstains when the
/// evidence is weak, otherwise prompts the model and checks its answer.
pub fn answer_from(
    generator: &Generator,
    question: &str,
    history: &[ChatMessage],
    retrieved: Vec<Passage>,
    options: &AskOptions,
    mut on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer> {
    check_question(generator, question, options)?;
    let question = question.trim();
    let best_similarity = retrieved
        .iter()
        .filter_map(|p| p.similarity)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut answer = Answer {
        question: question.to_string(),
        answer: NOT_FOUND.to_string(),
        abstained: true,
        abstention: Some(Abstention::WeakEvidence),
        cited: Vec::new(),
        citations: Vec::new(),
        sources: Vec::new(),
        generation: None,
        retrieval_s: 0.0,
        unsupported: Vec::new(),
    };
    if retrieved.is_empty() || best_similarity < options.min_similarity {
        tracing::info!(best_similarity, "weak evidence: abstaining");
        answer.sources = numbered(&retrieved);
        let _ = on_text(NOT_FOUND);
        return Ok(answer);
    }
    let built = prompt::build(
        generator,
        question,
        history,
        retrieved.clone(),
        options.generation.max_tokens,
    )
    .context("cannot build the prompt")?;
    let shown = built.passages.len();
    let mut params = options.generation.clone();
    params.banned_prefixes.push("[".into());
    params.stop.push(prompt::PASSAGE_HEADER.into());
    let handle = generator
        .chat(built.messages, params)
        .context("cannot start generation")?;
    let mut filter = citations::StreamFilter::new(shown);
    let (raw, stats) = handle
        .collect_until(|delta| {
            let out = filter.push(delta);
            if out.is_empty() {
                ControlFlow::Continue(())
            } else {
                on_text(&out)
            }
        })
        .context("generation failed")?;
    let tail = filter.finish();
    if !tail.is_empty() {
        let _ = on_text(&tail);
    }
    // Shown passages first (numbered as in the prompt), then the ones that did not fit.
    let mut ordered = built.passages.clone();
    ordered.extend(retrieved.into_iter().filter(|p| {
        !built
            .passages
            .iter()
            .any(|b| b.char_start == p.char_start && b.doc == p.doc)
    }));
    answer.sources = numbered(&ordered);
    answer.generation = Some(stats);
    let cited = citations::validate(raw.trim(), shown);
    if citations::is_refusal(&cited.text) {
        answer.abstention = Some(Abstention::ModelRefused);
        answer.answer = cited.text;
        return Ok(answer);
    }
    let texts: Vec<&str> = built.passages.iter().map(|p| p.text.as_str()).collect();
    if grounding::restates_question(&cited.text, question) {
        tracing::info!(draft = %cited.text, "the answer only restates the question: abstaining");
        answer.abstention = Some(Abstention::Ungrounded);
        return Ok(answer);
    }
    let agreement = grounding::agreement(&cited.text, &texts, question);
    if agreement.is_ungrounded() {
        tracing::info!(
            unsupported = ?agreement.unsupported,
            supported = ?agreement.supported,
            draft = %cited.text,
            "the answer names specifics no passage holds: abstaining"
        );
        answer.abstention = Some(Abstention::Ungrounded);
        answer.unsupported = agreement.unsupported;
        return Ok(answer);
    }
    let cited = citations::attribute(cited, &texts);
    answer.abstained = false;
    answer.abstention = None;
    answer.citations = cited
        .cited
        .iter()
        .filter_map(|&n| answer.sources.get(n - 1).cloned())
        .collect();
    answer.cited = cited.cited;
    answer.answer = cited.text;
    Ok(answer)
}

fn numbered(passages: &[Passage]) -> Vec<Source> {
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| Source {
            n: i + 1,
            passage: p.clone(),
        })
        .collect()
}
