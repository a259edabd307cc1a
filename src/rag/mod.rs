//! Answering: a question in, a grounded answer with citations and a quote out. Retrieves
//! passages ([`crate::retrieval`]), abstains without calling the model when the evidence is
//! weak, builds the prompt from the passages or their best sentences ([`evidence`],
//! [`prompt`]), streams the model's answer ([`lore_llm`]) through a citation filter, and
//! checks the result: phantom markers removed, uncited sentences attributed
//! ([`citations`]), the model's own refusals recognised, an answer whose specifics the
//! evidence does not hold withdrawn ([`grounding`]), and the sentence of a cited passage
//! that supports the answer quoted verbatim.

pub mod citations;
pub mod evidence;
pub mod grounding;
pub mod prompt;

use std::ops::ControlFlow;
use std::time::Instant;

use lore_index::{Filter, Index, SearchMode};
use serde::Serialize;

use crate::retrieval::{self, Passage, SearchError};
pub use evidence::{Evidence, EvidenceOptions};
use lore_embed::Embedder;
use lore_llm::{ChatMessage, GenerationParams, GenerationStats, Generator, LlmError};
pub use prompt::NOT_FOUND;

/// What answering can fail with. A question the model cannot take is the caller's
/// mistake (the HTTP API says 400); a busy model is a retry (429); the rest are failures.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    #[error("the question is empty")]
    EmptyQuestion,
    #[error(
        "the question is {question_tokens} tokens long: with {answer_tokens} tokens kept for \
         the answer it does not fit the model's context of {context} tokens"
    )]
    QuestionTooLong {
        question_tokens: usize,
        answer_tokens: usize,
        context: usize,
    },
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(transparent)]
    Model(#[from] LlmError),
}

pub type Result<T, E = RagError> = std::result::Result<T, E>;

/// Below this cosine similarity between the question and its best passage, Lore answers
/// [`NOT_FOUND`] without asking the model. Calibrated on the development set (see README).
pub const DEFAULT_MIN_SIMILARITY: f32 = 0.45;

/// Passages retrieved for an answer by default.
/// The largest answer budget, in tokens, a request may ask for (API and CLI).
pub const MAX_ANSWER_TOKENS: usize = 2048;

pub const DEFAULT_K: usize = 5;

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
    /// Which sentences of the passages the model reads.
    pub evidence: EvidenceOptions,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            k: DEFAULT_K,
            generation: GenerationParams::default(),
            min_similarity: DEFAULT_MIN_SIMILARITY,
            filter: Filter::default(),
            mode: SearchMode::Hybrid,
            evidence: EvidenceOptions::default(),
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
    /// The answer repeats what a passage tells the assistant to say or do (a link, value or
    /// sentence found only in text addressed to the assistant): it carries out a document's
    /// instruction, not the user's question, and is withdrawn (see [`grounding::directed`]).
    Instructed,
}

/// A passage as a source of an answer: `n` is its number in the prompt (the `[n]` the
/// answer cites).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Source {
    pub n: usize,
    #[serde(flatten)]
    pub passage: Passage,
}

/// The sentence(s) of a cited passage that support the answer, verbatim, and where they
/// stand: `n` is the source's number, `char_start..char_end` character offsets in the
/// document's text (as the passage's are).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Quote {
    pub text: String,
    pub n: usize,
    pub doc: String,
    pub doc_id: String,
    pub page: Option<u32>,
    pub char_start: u64,
    pub char_end: u64,
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
    /// passage holds; with [`Abstention::Instructed`]: what it took from text addressed to
    /// the assistant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
    /// The evidence sentence that supports the answer (none when Lore abstains). Shown
    /// beside the answer, never part of it.
    pub quote: Option<Quote>,
    /// Set when the larger model wrote this answer from anonymised passages
    /// ([`crate::escalate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated: Option<crate::escalate::Escalated>,
    /// Whether this answer may be asked again of the larger model, and if not why; absent
    /// when escalation is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<crate::escalate::EscalationOffer>,
}

/// Retrieves, selects evidence, decides, generates and checks. `on_text` receives the
/// answer as it streams (phantom citation markers already removed); breaking from it
/// cancels generation.
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
    let evidence = select_evidence(embedder, index, question.trim(), &retrieved, options)?;
    let retrieval_s = started.elapsed().as_secs_f64();
    let mut answer = answer_from(
        embedder, generator, question, history, retrieved, &evidence, options, on_text,
    )?;
    answer.retrieval_s = retrieval_s;
    Ok(answer)
}

/// The evidence the model reads for `query` from `retrieved` (best first): run where the
/// index is at hand, before answering.
pub fn select_evidence(
    embedder: &Embedder,
    index: &Index,
    query: &str,
    retrieved: &[Passage],
    options: &AskOptions,
) -> Result<Evidence> {
    Ok(evidence::select(
        embedder,
        index,
        query,
        retrieved,
        &options.evidence,
    )?)
}

/// Rejects an empty question, or one that cannot fit the model's context with room for
/// an answer, whatever retrieval would find.
fn check_question(generator: &Generator, question: &str, options: &AskOptions) -> Result<()> {
    let question = question.trim();
    if question.is_empty() {
        return Err(RagError::EmptyQuestion);
    }
    // A question that cannot fit the model's context with room for an answer is an error,
    // whatever retrieval would find.
    let question_tokens = generator.count_tokens(question)?;
    let context = generator.info().context_length;
    if question_tokens + options.generation.max_tokens >= context {
        return Err(RagError::QuestionTooLong {
            question_tokens,
            answer_tokens: options.generation.max_tokens,
            context,
        });
    }
    Ok(())
}

/// Answers `question` from passages already retrieved (best first) and the evidence
/// selected from them: abstains when the evidence is weak, otherwise prompts the model with
/// the evidence excerpts, checks its answer and quotes the sentence that supports it.
#[allow(clippy::too_many_arguments)]
pub fn answer_from(
    embedder: &Embedder,
    generator: &Generator,
    question: &str,
    history: &[ChatMessage],
    retrieved: Vec<Passage>,
    evidence: &Evidence,
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
        quote: None,
        escalated: None,
        escalation: None,
    };
    if retrieved.is_empty() || best_similarity < options.min_similarity {
        tracing::info!(best_similarity, "weak evidence: abstaining");
        answer.sources = numbered(&retrieved);
        let _ = on_text(NOT_FOUND);
        return Ok(answer);
    }
    // The excerpts stand in for their passages in the prompt, best first.
    let excerpts: Vec<Passage> = evidence
        .excerpts
        .iter()
        .filter_map(|x| {
            let p = retrieved.get(x.passage)?;
            Some(Passage {
                text: x.text(&p.text),
                ..p.clone()
            })
        })
        .collect();
    let built = prompt::build(
        generator,
        question,
        history,
        excerpts,
        options.generation.max_tokens,
    )?;
    let shown = built.passages.len();
    let mut params = options.generation.clone();
    params.banned_prefixes.push("[".into());
    params.stop.push(prompt::PASSAGE_HEADER.into());
    let handle = generator.chat(built.messages, params)?;
    let mut filter = citations::StreamFilter::new(shown);
    let (raw, stats) = handle.collect_until(|delta| {
        let out = filter.push(delta);
        if out.is_empty() {
            ControlFlow::Continue(())
        } else {
            on_text(&out)
        }
    })?;
    let tail = filter.finish();
    if !tail.is_empty() {
        let _ = on_text(&tail);
    }
    // Sources: the shown passages first, whole and numbered as in the prompt, then the
    // ones the model did not read.
    let position = |b: &Passage| {
        retrieved
            .iter()
            .position(|p| p.char_start == b.char_start && p.doc == b.doc)
    };
    let shown_at: Vec<usize> = built.passages.iter().filter_map(position).collect();
    let mut ordered: Vec<Passage> = shown_at.iter().map(|&i| retrieved[i].clone()).collect();
    ordered.extend(
        retrieved
            .iter()
            .enumerate()
            .filter(|(i, _)| !shown_at.contains(i))
            .map(|(_, p)| p.clone()),
    );
    answer.sources = numbered(&ordered);
    answer.generation = Some(stats);
    let cited = citations::validate(raw.trim(), shown);
    if cited.text.trim().is_empty() {
        // Nothing said (the model stopped at once, or said only citation markers): an
        // abstention, shown as "not found", never an empty answer.
        tracing::info!("the model answered nothing: abstaining");
        answer.abstention = Some(Abstention::ModelRefused);
        return Ok(answer);
    }
    if citations::is_refusal(&cited.text) {
        answer.abstention = Some(Abstention::ModelRefused);
        answer.answer = cited.text;
        return Ok(answer);
    }
    let directed = {
        let shown: Vec<&str> = built.passages.iter().map(|p| p.text.as_str()).collect();
        grounding::directed(&cited.text, &shown)
    };
    if !directed.is_empty() {
        tracing::warn!(
            taken = ?directed,
            draft = %cited.text,
            "the answer carries out an instruction found in a document: withdrawn"
        );
        answer.abstention = Some(Abstention::Instructed);
        answer.unsupported = directed;
        return Ok(answer);
    }
    // What the passages state, without the sentences that address the assistant: the
    // model was shown only this, and only this is evidence.
    let stated: Vec<String> = built
        .passages
        .iter()
        .map(|p| grounding::screen(&p.text).data)
        .collect();
    let texts: Vec<&str> = stated.iter().map(String::as_str).collect();
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
    // The quote comes from a cited passage (any shown one when none is cited); with whole
    // passages in the prompt their sentences are scored now, after the first token.
    let quoted: Vec<usize> = if cited.cited.is_empty() {
        shown_at.clone()
    } else {
        cited
            .cited
            .iter()
            .filter_map(|&n| shown_at.get(n - 1).copied())
            .collect()
    };
    let scored_now;
    let scored: &[evidence::ScoredSentence] = if evidence.sentences.is_empty() {
        scored_now = evidence
            .question
            .score(embedder, &retrieved, |i| quoted.contains(&i))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "cannot score sentences for the quote");
                Vec::new()
            });
        &scored_now
    } else {
        &evidence.sentences
    };
    answer.quote = quote(&cited.text, &cited.cited, scored, &retrieved, &shown_at);
    answer.cited = cited.cited;
    answer.answer = cited.text;
    Ok(answer)
}

/// The selected sentence that best supports `text`: the most of the answer's specifics
/// and words it holds, preferring sentences of cited passages, then selection score.
fn quote(
    text: &str,
    cited: &[usize],
    sentences: &[evidence::ScoredSentence],
    retrieved: &[Passage],
    shown_at: &[usize],
) -> Option<Quote> {
    let specifics = grounding::specifics(text);
    let words = citations::content_words(text);
    // Text addressed to the assistant is never quoted as evidence.
    let directives: Vec<Vec<std::ops::Range<usize>>> = retrieved
        .iter()
        .map(|p| grounding::directive_spans(&p.text))
        .collect();
    let best = sentences
        .iter()
        .filter_map(|s| {
            let n = shown_at.iter().position(|&i| i == s.passage)? + 1;
            let passage = retrieved.get(s.passage)?;
            if directives
                .get(s.passage)?
                .iter()
                .any(|d| d.start < s.end && s.start < d.end)
            {
                return None;
            }
            let sentence = &passage.text[s.start..s.end];
            let lower = sentence.to_lowercase();
            let held = specifics
                .iter()
                .filter(|x| lower.contains(&x.to_lowercase()))
                .count() as f32;
            let shared = citations::content_words(sentence)
                .intersection(&words)
                .count() as f32
                / words.len().max(1) as f32;
            let in_cited = f32::from(u8::from(cited.contains(&n)));
            let support = 2.0 * held + shared + 0.5 * in_cited + 0.25 * s.score;
            Some((support, n, passage, s))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    let (_, n, passage, s) = best;
    let chars_before = passage.text[..s.start].chars().count() as u64;
    let sentence = &passage.text[s.start..s.end];
    Some(Quote {
        text: sentence.to_string(),
        n,
        doc: passage.doc.clone(),
        doc_id: passage.doc_id.clone(),
        page: passage.page,
        char_start: passage.char_start + chars_before,
        char_end: passage.char_start + chars_before + sentence.chars().count() as u64,
    })
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
