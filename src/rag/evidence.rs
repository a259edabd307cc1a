//! Owns evidence selection: which sentences of the retrieved passages support an answer,
//! and which the model reads.
//!
//! The passages are split into sentences, each scored against the question on signals that
//! carry over to questions nobody tuned for:
//! - the embedder's cosine between the question and the sentence, alone and with its
//!   neighbours (a sentence alone often names neither the thing it is about, "It defaults
//!   to 5 days.", while its neighbours dilute a precise one);
//! - the question's terms the sentence holds, each weighted by its rarity in the corpus
//!   (BM25's IDF from the index, so "lockout" outweighs "set");
//! - whether the sentence holds the kind of value the question asks for (a port, a
//!   duration, a number, a version, a path, an option or command, a stated default);
//! - the passage's retrieval rank.
//!
//! The best sentence of the passages an answer cites is its quote. With
//! [`EvidenceOptions::sentences`] above 0, the best sentences, each with its neighbours,
//! also replace the whole passages in the prompt. That is off by default: on both
//! development sets the 0.5B reader answered less accurately from excerpts than from whole
//! passages (README, "Evidence selection").

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use lore_index::{Index, TermFrequencies};
use regex::Regex;

use super::citations::content_words;
use crate::retrieval::{Passage, SearchError};
use lore_embed::Embedder;

/// What the prompt shows.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceOptions {
    /// Best sentences shown (each with its neighbours) instead of whole passages; 0 shows
    /// whole passages.
    pub sentences: usize,
    /// With whole passages: how many at most, in retrieval order.
    pub passages: usize,
    /// Sentences shown on either side of a kept one.
    pub neighbours: usize,
    /// Characters of excerpt text at most, over all passages.
    pub max_chars: usize,
}

impl Default for EvidenceOptions {
    fn default() -> Self {
        Self {
            sentences: 0,
            passages: 5,
            neighbours: 1,
            max_chars: 3000,
        }
    }
}

/// Sentences longer than this (tables, code without stops) are cut at a word boundary, so
/// one unit never fills the prompt.
const MAX_SENTENCE_CHARS: usize = 320;

/// Weights of the sentence score's parts (cosines and term shares are in [0, 1]). Round
/// values chosen on both development sets together (see README, "Evidence selection").
const W_COSINE: f32 = 0.5;
const W_COSINE_AROUND: f32 = 0.5;
const W_TERMS: f32 = 0.3;
const W_TERMS_AROUND: f32 = 0.3;
const W_ANSWER_KIND: f32 = 0.3;
const W_RANK: f32 = 0.3;

/// One sentence of a retrieved passage, scored against the question.
#[derive(Debug, Clone)]
pub struct ScoredSentence {
    /// Index of its passage in the list given to [`select`].
    pub passage: usize,
    /// Its position among the passage's sentences.
    pub index: usize,
    /// Byte range of the sentence in the passage's text.
    pub start: usize,
    pub end: usize,
    pub score: f32,
    /// The sentence holds the kind of value the question asks for.
    pub answer_kind: bool,
}

/// The excerpt of one passage the prompt shows: byte ranges of its text, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Excerpt {
    pub passage: usize,
    pub ranges: Vec<(usize, usize)>,
    /// Best score among its sentences (excerpts are ordered by it, best first).
    pub score: f32,
}

impl Excerpt {
    /// The excerpt's text: its ranges, with "…" where sentences were left out.
    pub fn text(&self, passage_text: &str) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for (i, &(s, e)) in self.ranges.iter().enumerate() {
            // Ranges are merged when adjacent, so two of them always have a gap between.
            if i > 0 || !passage_text[..s].trim().is_empty() {
                parts.push("…");
            }
            parts.push(passage_text[s..e].trim());
        }
        if let Some(&(_, e)) = self.ranges.last() {
            if !passage_text[e..].trim().is_empty() {
                parts.push("…");
            }
        }
        parts.join(" ")
    }
}

/// The question as sentences are scored against it: its terms and their corpus statistics,
/// read from the index (one lookup per term) while the index is at hand.
#[derive(Debug, Clone)]
pub struct ScoredQuestion {
    pub question: String,
    /// Its terms as the index analyses them, without function words.
    pub terms: Vec<String>,
    pub stats: TermFrequencies,
}

/// The selected evidence for one question.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub question: ScoredQuestion,
    /// Every sentence of the passages read, best first; empty when the prompt shows whole
    /// passages (the quote's sentences are scored after the answer, off the first token's
    /// path).
    pub sentences: Vec<ScoredSentence>,
    /// What the prompt shows, best passage first.
    pub excerpts: Vec<Excerpt>,
}

/// What kind of value a question asks for, read from its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    Port,
    Duration,
    Number,
    Version,
    Path,
    Option,
    Default,
}

static WANTS: LazyLock<Vec<(AnswerKind, Regex)>> = LazyLock::new(|| {
    let r = |p: &str| Regex::new(p).unwrap_or_else(|e| unreachable!("static regex: {e}"));
    vec![
        (AnswerKind::Port, r(r"(?i)\bports?\b")),
        (
            AnswerKind::Duration,
            r(
                r"(?i)\bhow (long|often|soon)\b|\bhow much time\b|\btime-?outs?\b|\bintervals?\b|\bexpir|\blifetime\b|\bretention\b|\bdelay\b|\bhow many (seconds|minutes|hours|days|weeks|months|years)\b",
            ),
        ),
        (
            AnswerKind::Number,
            r(
                r"(?i)\bhow (many|much|large|big|far|small)\b|\bwhat size\b|\bmaximum\b|\bminimum\b|\blimits?\b|\bnumber of\b|\bthreshold\b|\bpercent",
            ),
        ),
        (AnswerKind::Version, r(r"(?i)\bversions?\b|\brelease\b")),
        (
            AnswerKind::Path,
            r(
                r"(?i)\b(which|what) (file|directory|folder|path)\b|\bwhere\b|\bpath\b|\bdirectory\b|\bfolder\b|\bfile\b",
            ),
        ),
        (
            AnswerKind::Option,
            r(
                r"(?i)\b(option|flag|switch|setting|parameter|directive|variable|keyword|command|tag|field)s?\b|\bhow (do|can|should|would) (i|we|you|one)\b|\b(enable|disable|turn on|turn off|switch on|switch off|configure|prevent|stop|allow|tell)\b",
            ),
        ),
        (
            AnswerKind::Default,
            r(r"(?i)\bdefaults?\b|\bout of the box\b"),
        ),
    ]
});

/// What a sentence holds, for each [`AnswerKind`].
static HOLDS: LazyLock<Vec<(AnswerKind, Regex)>> = LazyLock::new(|| {
    let r = |p: &str| Regex::new(p).unwrap_or_else(|e| unreachable!("static regex: {e}"));
    let units = r"(ms|milliseconds?|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|days?|weeks?|months?|years?)";
    vec![
        (AnswerKind::Port, r(r"\b\d{2,5}\b")),
        (
            AnswerKind::Duration,
            r(&format!(
                r"(?i)\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|sixty)[ -]?{units}\b"
            )),
        ),
        (AnswerKind::Number, r(r"\b\d+(?:[.,]\d+)*\b")),
        (AnswerKind::Version, r(r"\b\d+\.\d+(?:\.\d+)*\b")),
        (
            AnswerKind::Path,
            r(
                r"(?:^|[\s(`'\x22])(?:~?/[\w.-]+|\.[\w-]+)|\b[\w-]+\.(?:conf|cfg|ini|ya?ml|json|xml|txt|log|d|cf|rc|service|timer|socket|pem|key)\b",
            ),
        ),
        (
            AnswerKind::Option,
            r(
                r"(?:^|[\s(`'\x22])--?[A-Za-z][\w-]*|\b[A-Za-z]+_[\w]+\b|\b\w+=\S+|\b[a-z]+[A-Z]\w*\b|`[^`]+`|\b[A-Z]{2,}_[A-Z_]+\b",
            ),
        ),
        (AnswerKind::Default, r(r"(?i)\bdefaults?\b|\bby default\b")),
    ]
});

/// The kinds of value `question` asks for.
pub fn answer_kinds(question: &str) -> Vec<AnswerKind> {
    WANTS
        .iter()
        .filter(|(_, re)| re.is_match(question))
        .map(|(kind, _)| *kind)
        .collect()
}

fn holds(sentence: &str, kind: AnswerKind) -> bool {
    HOLDS
        .iter()
        .any(|(k, re)| *k == kind && re.is_match(sentence))
}

/// The question's terms as the index analyses them, without the question's function words.
pub fn question_terms(question: &str) -> Vec<String> {
    let content = content_words(question);
    let mut terms: Vec<String> = Vec::new();
    for word in question
        .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-' && c != '.')
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '-'))
        .filter(|w| content.contains(&w.to_lowercase()))
    {
        for term in lore_index::analyze(word) {
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
    }
    terms
}

/// Byte spans of the sentences of `text`, over-long ones cut at word boundaries.
pub fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (s, e) in lore_ingest::chunk::sentence_spans(text, 0, text.len()) {
        let mut start = s;
        while text[start..e].chars().count() > MAX_SENTENCE_CHARS {
            let limit = text[start..e]
                .char_indices()
                .nth(MAX_SENTENCE_CHARS)
                .map_or(e, |(i, _)| start + i);
            let cut = text[start..limit]
                .rfind(char::is_whitespace)
                .map(|i| start + i)
                .filter(|&c| c > start)
                .unwrap_or(limit);
            out.push((start, cut));
            start = cut + text[cut..e].len() - text[cut..e].trim_start().len();
        }
        if start < e {
            out.push((start, e));
        }
    }
    out
}

/// IDF-weighted share of `weights`' terms found in `terms`.
fn weighted_share(weights: &[(String, f32)], terms: &HashSet<String>) -> f32 {
    let total: f32 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return 0.0;
    }
    weights
        .iter()
        .filter(|(t, _)| terms.contains(t))
        .map(|(_, w)| w)
        .sum::<f32>()
        / total
}

fn term_set(text: &str) -> HashSet<String> {
    lore_index::analyze(text).into_iter().collect()
}

impl ScoredQuestion {
    /// Reads the corpus statistics of `question`'s terms from `index`.
    pub fn read(index: &Index, question: &str) -> lore_index::Result<ScoredQuestion> {
        let terms = question_terms(question);
        Ok(ScoredQuestion {
            question: question.to_string(),
            stats: index.term_frequencies(&terms)?,
            terms,
        })
    }

    /// Scores every sentence of the passages `keep` accepts (indices into `passages`, best
    /// first as retrieved), best first.
    pub fn score(
        &self,
        embedder: &Embedder,
        passages: &[Passage],
        keep: impl Fn(usize) -> bool,
    ) -> Result<Vec<ScoredSentence>, SearchError> {
        let spans: Vec<Vec<(usize, usize)>> = passages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if keep(i) {
                    sentence_spans(&p.text)
                } else {
                    Vec::new()
                }
            })
            .collect();
        // The question, each sentence alone, then each with its neighbours: one batch.
        let mut texts: Vec<&str> = vec![self.question.as_str()];
        for (p, s) in passages.iter().zip(&spans) {
            texts.extend(s.iter().map(|&(a, b)| &p.text[a..b]));
        }
        let sentences = texts.len() - 1;
        for (p, s) in passages.iter().zip(&spans) {
            texts.extend((0..s.len()).map(|i| window_text(&p.text, s, i, 1)));
        }
        let vectors = embedder.embed(&texts)?;
        let Some((question, rest)) = vectors.split_first() else {
            return Ok(Vec::new());
        };
        let cosines: Vec<f32> = rest
            .iter()
            .map(|v| v.iter().zip(question).map(|(a, b)| a * b).sum())
            .collect();
        let (alone, around) = cosines.split_at(sentences.min(cosines.len()));
        Ok(self.score_with(passages, &spans, alone, around))
    }

    /// The scoring behind [`Self::score`], given each sentence's cosine alone and with its
    /// neighbours (in the order of `spans`, passage by passage).
    pub fn score_with(
        &self,
        passages: &[Passage],
        spans: &[Vec<(usize, usize)>],
        cosines: &[f32],
        cosines_around: &[f32],
    ) -> Vec<ScoredSentence> {
        let weights: Vec<(String, f32)> = self
            .terms
            .iter()
            .map(|t| (t.clone(), self.stats.idf(t)))
            .collect();
        let kinds = answer_kinds(&self.question);
        let mut sentences: Vec<ScoredSentence> = Vec::new();
        let mut cosine_at = cosines.iter().zip(cosines_around);
        for (pi, (passage, spans)) in passages.iter().zip(spans).enumerate() {
            let sentence_terms: Vec<HashSet<String>> = spans
                .iter()
                .map(|&(s, e)| term_set(&passage.text[s..e]))
                .collect();
            let heading_terms = term_set(passage.heading.as_deref().unwrap_or(""));
            let rank_prior = 1.0 / (1.0 + pi as f32 / 3.0);
            for (i, &(s, e)) in spans.iter().enumerate() {
                let (cosine, cosine_around) = cosine_at
                    .next()
                    .map_or((0.0, 0.0), |(&a, &b)| (a.max(0.0), b.max(0.0)));
                let own = weighted_share(&weights, &sentence_terms[i]);
                let mut around = heading_terms.clone();
                for terms in &sentence_terms[i.saturating_sub(1)..=(i + 1).min(spans.len() - 1)] {
                    around.extend(terms.iter().cloned());
                }
                let around = weighted_share(&weights, &around);
                let text = &passage.text[s..e];
                let answer_kind = kinds.iter().any(|&k| holds(text, k));
                let score = W_COSINE * cosine
                    + W_COSINE_AROUND * cosine_around
                    + W_TERMS * own
                    + W_TERMS_AROUND * around
                    + W_ANSWER_KIND * f32::from(u8::from(answer_kind))
                    + W_RANK * rank_prior;
                sentences.push(ScoredSentence {
                    passage: pi,
                    index: i,
                    start: s,
                    end: e,
                    score,
                    answer_kind,
                });
            }
        }
        sentences.sort_by(|a, b| b.score.total_cmp(&a.score));
        sentences
    }
}

/// Selects what the prompt shows of `passages` (best first, as retrieved) for `question`:
/// whole passages, or with [`EvidenceOptions::sentences`] above 0 the best sentences.
pub fn select(
    embedder: &Embedder,
    index: &Index,
    question: &str,
    passages: &[Passage],
    options: &EvidenceOptions,
) -> Result<Evidence, SearchError> {
    let question = ScoredQuestion::read(index, question)?;
    if options.sentences == 0 {
        return Ok(Evidence {
            question,
            sentences: Vec::new(),
            excerpts: whole_passages(passages, options.passages),
        });
    }
    let sentences = question.score(embedder, passages, |_| true)?;
    let excerpts = excerpts_of(&sentences, passages, options);
    Ok(Evidence {
        question,
        sentences,
        excerpts,
    })
}

/// The first `n` passages, whole, in retrieval order.
pub(crate) fn whole_passages(passages: &[Passage], n: usize) -> Vec<Excerpt> {
    passages
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, p)| Excerpt {
            passage: i,
            ranges: vec![(0, p.text.len())],
            score: 0.0,
        })
        .collect()
}

/// The text of sentence `i` with `n` neighbours on either side.
fn window_text<'a>(text: &'a str, spans: &[(usize, usize)], i: usize, n: usize) -> &'a str {
    let from = i.saturating_sub(n);
    let to = (i + n).min(spans.len() - 1);
    &text[spans[from].0..spans[to].1]
}

/// The best sentences with their neighbours, merged per passage, within the budget.
fn excerpts_of(
    sentences: &[ScoredSentence],
    passages: &[Passage],
    options: &EvidenceOptions,
) -> Vec<Excerpt> {
    let spans: Vec<Vec<(usize, usize)>> =
        passages.iter().map(|p| sentence_spans(&p.text)).collect();
    // Sentence indices chosen per passage, and each passage's best score.
    let mut chosen: HashMap<usize, (f32, Vec<usize>)> = HashMap::new();
    let mut used_chars = 0;
    let mut kept = 0;
    for s in sentences {
        if kept == options.sentences {
            break;
        }
        let spans_p = &spans[s.passage];
        let i = s.index;
        if i >= spans_p.len() {
            continue;
        }
        let entry = chosen.entry(s.passage).or_insert((s.score, Vec::new()));
        let from = i.saturating_sub(options.neighbours);
        let to = (i + options.neighbours).min(spans_p.len() - 1);
        let new: Vec<usize> = (from..=to).filter(|j| !entry.1.contains(j)).collect();
        let cost: usize = new.iter().map(|&j| spans_p[j].1 - spans_p[j].0 + 1).sum();
        if used_chars + cost > options.max_chars && kept > 0 {
            continue;
        }
        used_chars += cost;
        entry.1.extend(new);
        kept += 1;
    }
    let mut excerpts: Vec<Excerpt> = chosen
        .into_iter()
        .filter(|(_, (_, idx))| !idx.is_empty())
        .map(|(passage, (score, mut idx))| {
            idx.sort_unstable();
            let spans_p = &spans[passage];
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            let mut prev: Option<usize> = None;
            for j in idx {
                let (a, b) = spans_p[j];
                match (prev, ranges.last_mut()) {
                    (Some(p), Some(last)) if p + 1 == j => last.1 = b,
                    _ => ranges.push((a, b)),
                }
                prev = Some(j);
            }
            Excerpt {
                passage,
                ranges,
                score,
            }
        })
        .collect();
    excerpts.sort_by(|a, b| b.score.total_cmp(&a.score));
    excerpts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(text: &str, heading: &str) -> Passage {
        Passage {
            rank: 1,
            score: 1.0,
            similarity: Some(0.5),
            doc: "guide.pdf".into(),
            doc_id: "guide".into(),
            page: Some(4),
            page_end: Some(4),
            heading: Some(heading.into()),
            title: "Guide".into(),
            collection: "default".into(),
            char_start: 0,
            char_end: text.chars().count() as u64,
            text: text.into(),
        }
    }

    #[test]
    fn questions_say_what_kind_of_value_they_want() {
        assert!(answer_kinds("Which port does the daemon listen on?").contains(&AnswerKind::Port));
        assert!(answer_kinds("How long are messages kept in the queue?")
            .contains(&AnswerKind::Duration));
        assert!(answer_kinds("Is the lockout on by default?").contains(&AnswerKind::Default));
        assert!(answer_kinds("Who wrote it?").is_empty());
        assert!(holds("It listens on 3493 by default.", AnswerKind::Port));
        assert!(holds("Retries stop after five days.", AnswerKind::Duration));
        assert!(holds("Edit /etc/nut/upsd.conf first.", AnswerKind::Path));
        assert!(holds("Set maximal_queue_lifetime.", AnswerKind::Option));
        assert!(!holds("Retries stop eventually.", AnswerKind::Duration));
    }

    #[test]
    fn long_sentences_are_cut_at_words_and_offsets_stay_on_char_boundaries() {
        let text = format!("Short one. {}", "é word ".repeat(100));
        let spans = sentence_spans(&text);
        assert_eq!(&text[spans[0].0..spans[0].1], "Short one.");
        assert!(spans.len() > 2);
        for &(s, e) in &spans {
            assert!(text[s..e].chars().count() <= MAX_SENTENCE_CHARS);
            assert!(!text[s..e].starts_with(' ') && s < e);
        }
    }

    fn question(text: &str, rare: &str) -> ScoredQuestion {
        let terms = question_terms(text);
        let mut stats = TermFrequencies {
            chunks: 1000,
            ..Default::default()
        };
        for t in &terms {
            let df = if t == rare { 3 } else { 300 };
            stats.doc_freq.insert(t.clone(), df);
        }
        ScoredQuestion {
            question: text.into(),
            terms,
            stats,
        }
    }

    #[test]
    fn the_sentence_naming_the_rare_terms_and_the_asked_value_wins() {
        let text = "The daemon reads its settings at start. Clients connect over the network. \
                    The upsd server listens on port 3493 for clients. Logs go to syslog.";
        let passages = vec![passage(text, "Network")];
        let spans = vec![sentence_spans(text)];
        let q = question(
            "Which port must the firewall open for upsd clients?",
            "upsd",
        );
        assert!(
            !q.terms.iter().any(|t| t == "which"),
            "function words are left out"
        );
        // Equal cosines: the terms and the answer kind decide.
        let cosines = vec![0.3; spans[0].len()];
        let sentences = q.score_with(&passages, &spans, &cosines, &cosines);
        let best = &sentences[0];
        assert_eq!(
            &text[best.start..best.end],
            "The upsd server listens on port 3493 for clients."
        );
        assert!(best.answer_kind);
        let options = EvidenceOptions {
            sentences: 1,
            neighbours: 0,
            ..EvidenceOptions::default()
        };
        let excerpts = excerpts_of(&sentences, &passages, &options);
        assert_eq!(excerpts.len(), 1);
        assert_eq!(
            excerpts[0].text(text),
            "… The upsd server listens on port 3493 for clients. …"
        );
    }

    #[test]
    fn neighbours_join_one_range() {
        let text = "One. Two. Three. Four.";
        let passages = vec![passage(text, "")];
        let spans = vec![sentence_spans(text)];
        let q = question("two?", "two");
        let cosines = vec![0.1, 0.9, 0.2, 0.0];
        let sentences = q.score_with(&passages, &spans, &cosines, &cosines);
        let options = EvidenceOptions {
            sentences: 1,
            neighbours: 1,
            ..EvidenceOptions::default()
        };
        let excerpts = excerpts_of(&sentences, &passages, &options);
        assert_eq!(excerpts[0].text(text), "One. Two. Three. …");
        let whole = whole_passages(&passages, 5);
        assert_eq!(whole[0].text(text), text);
    }
}
