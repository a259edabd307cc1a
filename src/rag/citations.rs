//! Owns citations: reading the `[n]` markers a model wrote, removing those that point at no
//! passage, and attributing sentences the model left uncited to the passage that supports
//! them (by word overlap), so every statement shown to a user can be traced to a source.

use std::collections::HashSet;

/// Share of a sentence's content words that must occur in a passage for the sentence to be
/// attributed to it.
pub const ATTRIBUTION_MIN_OVERLAP: f32 = 0.5;
/// Sentences with fewer content words are not attributed.
const MIN_ATTRIBUTED_WORDS: usize = 3;

/// The answer with valid markers only, and the passage numbers it cites (1-based, in order
/// of first appearance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cited {
    pub text: String,
    pub cited: Vec<usize>,
}

/// Keeps `[n]` markers with `1 <= n <= passages`, removes the others (also inside lists such
/// as `[1, 7]`), and tidies the spaces a removed marker leaves behind.
pub fn validate(answer: &str, passages: usize) -> Cited {
    let mut text = String::with_capacity(answer.len());
    let mut cited: Vec<usize> = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            text.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inside = &after[..close];
        let numbers: Option<Vec<usize>> = inside
            .split([',', ';'])
            .map(|n| n.trim().parse::<usize>().ok())
            .collect();
        match numbers {
            Some(numbers) if !inside.trim().is_empty() => {
                let valid: Vec<usize> = numbers
                    .into_iter()
                    .filter(|&n| n >= 1 && n <= passages)
                    .collect();
                if valid.is_empty() {
                    // A phantom citation: drop it and the space before it.
                    while text.ends_with(' ') {
                        text.pop();
                    }
                } else {
                    for &n in &valid {
                        text.push_str(&format!("[{n}]"));
                        if !cited.contains(&n) {
                            cited.push(n);
                        }
                    }
                }
            }
            // Not a citation (e.g. "[default]" in a config excerpt): kept as written.
            _ => text.push_str(&rest[open..open + 1 + close + 1]),
        }
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    Cited { text, cited }
}

/// Lower-cased words of three letters or more that are not stop words.
pub(crate) fn content_words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-' && c != '.')
        .map(|w| {
            w.trim_matches(|c: char| c == '.' || c == '-')
                .to_lowercase()
        })
        .filter(|w| w.chars().count() >= 3 && !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "has", "have", "had",
    "was", "were", "this", "that", "these", "those", "with", "from", "into", "than", "then",
    "they", "them", "their", "there", "which", "what", "when", "where", "who", "will", "would",
    "should", "could", "your", "its", "also", "use", "used", "using", "may", "might", "such",
    "each", "other", "only", "about", "does", "how", "why", "more", "most", "some", "one",
];

/// Share of `sentence`'s content words found in `passage` (0 when it has none).
pub fn overlap(sentence: &str, passage: &str) -> f32 {
    let words = content_words(sentence);
    if words.is_empty() {
        return 0.0;
    }
    let in_passage = content_words(passage);
    words.iter().filter(|w| in_passage.contains(*w)).count() as f32 / words.len() as f32
}

/// Splits after `.`, `!`, `?` or a newline that ends a sentence, keeping the delimiters.
fn sentences(text: &str) -> Vec<&str> {
    sentence_spans(text)
        .into_iter()
        .map(|span| &text[span])
        .collect()
}

/// The byte ranges of [`sentences`], covering `text` end to end.
pub(crate) fn sentence_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(i + 1).is_none_or(|&(_, n)| n.is_whitespace());
        if (matches!(c, '.' | '!' | '?') && next_is_space) || c == '\n' {
            let end = at + c.len_utf8();
            out.push(start..end);
            start = end;
        }
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// Adds a marker after each sentence without one when a passage clearly supports it
/// (word overlap >= [`ATTRIBUTION_MIN_OVERLAP`]). Returns the new answer and the markers.
pub fn attribute(cited: Cited, passages: &[&str]) -> Cited {
    let mut text = String::with_capacity(cited.text.len() + 16);
    let mut numbers = cited.cited;
    for sentence in sentences(&cited.text) {
        let has_marker = !validate(sentence, passages.len()).cited.is_empty();
        // Fragments (list items, headings) carry too few words to attribute reliably.
        if has_marker || content_words(sentence).len() < MIN_ATTRIBUTED_WORDS {
            text.push_str(sentence);
            continue;
        }
        let best = passages
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, overlap(sentence, p)))
            .filter(|&(_, o)| o >= ATTRIBUTION_MIN_OVERLAP)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        match best {
            Some((n, _)) => {
                // The marker goes before the sentence's final punctuation and spacing.
                let body = sentence.trim_end();
                let trailing = &sentence[body.len()..];
                let (core, punct) = match body.char_indices().last() {
                    Some((at, '.' | '!' | '?')) => (&body[..at], &body[at..]),
                    _ => (body, ""),
                };
                text.push_str(&format!("{core} [{n}]{punct}{trailing}"));
                if !numbers.contains(&n) {
                    numbers.push(n);
                }
            }
            None => text.push_str(sentence),
        }
    }
    Cited {
        text,
        cited: numbers,
    }
}

/// Removes phantom markers from streamed text: text after an unclosed `[` that may still
/// become a citation is held back until the bracket closes or clearly is not one.
#[derive(Debug)]
pub struct StreamFilter {
    passages: usize,
    pending: String,
}

impl StreamFilter {
    pub fn new(passages: usize) -> Self {
        Self {
            passages,
            pending: String::new(),
        }
    }

    /// Adds a delta and returns what can be shown now.
    pub fn push(&mut self, delta: &str) -> String {
        self.pending.push_str(delta);
        let hold_from = self.pending.rfind('[').filter(|&at| {
            let after = &self.pending[at + 1..];
            !after.contains(']')
                && after.len() <= 12
                && after
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == ';' || c == ' ')
        });
        let mut release = hold_from.unwrap_or(self.pending.len());
        // Spaces wait too: if a phantom marker follows, they go with it.
        release = self.pending[..release].trim_end_matches(' ').len();
        let ready: String = self.pending.drain(..release).collect();
        validate(&ready, self.passages).text
    }

    /// Whatever is still held at the end.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        validate(&rest, self.passages).text
    }
}

/// Phrases with which a model says the passages do not answer the question.
const REFUSALS: &[&str] = &[
    "couldn't find",
    "could not find",
    "can't find",
    "cannot find",
    "unable to find",
    "not find",
    "do not contain",
    "does not contain",
    "don't contain",
    "doesn't contain",
    "no information",
    "not mentioned",
    "not provided",
    "not specified",
    "not covered",
    "no mention",
    "does not mention",
    "don't mention",
    "does not say",
    "not enough information",
    "cannot answer",
    "can't answer",
    "unable to answer",
    "i don't know",
    "i do not know",
];

/// True when the answer's first sentence says the documents lack the answer: a refusal
/// later in an answer ("… but the passages do not mention X") does not void what precedes.
pub fn is_refusal(answer: &str) -> bool {
    let first = sentences(answer.trim())
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .unwrap_or("")
        .to_lowercase()
        .replace('\u{2019}', "'");
    REFUSALS.iter().any(|p| first.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_markers_are_removed_and_valid_ones_kept() {
        let c = validate("Backups run nightly [1]. Restores need a ticket [7].", 3);
        assert_eq!(c.text, "Backups run nightly [1]. Restores need a ticket.");
        assert_eq!(c.cited, vec![1]);
        let c = validate("See [2, 9] and [3][2].", 3);
        assert_eq!(c.text, "See [2] and [3][2].");
        assert_eq!(c.cited, vec![2, 3]);
    }

    #[test]
    fn brackets_that_are_not_citations_stay() {
        let c = validate(
            "Set [default] in the file; arrays like [] and [a, b] [0].",
            2,
        );
        assert_eq!(
            c.text,
            "Set [default] in the file; arrays like [] and [a, b]."
        );
        assert!(c.cited.is_empty());
        let c = validate("unclosed [1", 2);
        assert_eq!(c.text, "unclosed [1");
    }

    #[test]
    fn uncited_sentences_are_attributed_to_the_supporting_passage() {
        let passages = [
            "Restores of deleted mailboxes need a ticket to the helpdesk.",
            "The backup server bkp-07 runs full backups nightly at 02:00.",
        ];
        let answer = Cited {
            text: "Full backups run nightly at 02:00 on bkp-07. Ask me anything!".into(),
            cited: vec![],
        };
        let c = attribute(answer, &passages);
        assert_eq!(
            c.text,
            "Full backups run nightly at 02:00 on bkp-07 [2]. Ask me anything!"
        );
        assert_eq!(c.cited, vec![2]);
    }

    #[test]
    fn streamed_markers_are_filtered_across_deltas() {
        let mut f = StreamFilter::new(2);
        let mut shown = String::new();
        for delta in [
            "Nightly ",
            "[",
            "1",
            "]. Tickets [",
            "9",
            "] and [x] done",
            ".",
        ] {
            shown.push_str(&f.push(delta));
        }
        shown.push_str(&f.finish());
        assert_eq!(shown, "Nightly [1]. Tickets and [x] done.");
    }

    #[test]
    fn refusals_are_recognised_in_the_first_sentence_only() {
        assert!(is_refusal("I couldn't find this in the indexed documents."));
        assert!(is_refusal(
            "The passages do not contain information about VPNs."
        ));
        assert!(is_refusal("The documents don\u{2019}t mention it."));
        assert!(!is_refusal(
            "Backups run nightly [1]. Restores are not mentioned."
        ));
    }

    #[test]
    fn cited_sentences_are_left_alone() {
        let passages = ["alpha beta gamma", "alpha beta gamma delta"];
        let c = attribute(validate("Alpha beta gamma [1].", 2), &passages);
        assert_eq!(c.text, "Alpha beta gamma [1].");
        assert_eq!(c.cited, vec![1]);
    }
}
