//! Structure-aware chunking: turns a [`ParsedDocument`] into passages of about
//! `target_tokens` embedding tokens that follow the document's sections and paragraphs.
//!
//! Rules, in order of priority:
//! - a chunk never crosses a section heading (a new heading starts a new chunk), so every
//!   chunk has one section it belongs to;
//! - paragraphs are packed whole into chunks of even size near the target (no runt chunk
//!   left at a section's end); a paragraph too long for one chunk is split at sentence
//!   ends, and a sentence too long at word boundaries;
//! - consecutive chunks of one section overlap by up to `overlap_tokens` (whole sentences),
//!   so an answer that straddles a boundary is still found in one passage;
//! - every chunk is a contiguous slice of the document text, so its offsets can highlight it.

use crate::document::{BlockKind, ParsedDocument};
use serde::{Deserialize, Serialize};

/// How large chunks are. Token counts come from the caller's tokenizer (the embedding
/// model's), because what matters is what the embedder sees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// Chunks are filled up to about this many tokens.
    pub target_tokens: usize,
    /// Hard ceiling; a unit longer than this is split (keep it under the embedder's window).
    pub max_tokens: usize,
    /// Tokens of the previous chunk's tail repeated at the start of the next one.
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            target_tokens: 200,
            max_tokens: 240,
            overlap_tokens: 40,
        }
    }
}

/// One passage ready for embedding and indexing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub text: String,
    /// The innermost section heading the chunk belongs to.
    pub heading: Option<String>,
    /// Headings from the top level down to `heading`.
    pub section_path: Vec<String>,
    /// First and last 1-based page the chunk spans (paginated formats only).
    pub pages: Option<(u32, u32)>,
    /// Offsets into [`ParsedDocument::text`], counted in Unicode scalar values (chars).
    pub char_start: usize,
    pub char_end: usize,
    /// Position of the chunk within its document, from 0.
    pub ordinal: u32,
}

/// A piece of text that is never split further: a paragraph, a sentence or a word run.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    page: Option<u32>,
    tokens: usize,
    /// Index of the section (heading run) the unit belongs to.
    section: usize,
}

/// Splits a document into chunks. `count_tokens` counts tokens of a piece of text without
/// special tokens; any monotone counter works (tests use whitespace words).
pub fn chunk_document(
    doc: &ParsedDocument,
    opts: &ChunkOptions,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    let max_tokens = opts.max_tokens.max(opts.target_tokens).max(8);
    let target = opts.target_tokens.clamp(1, max_tokens);
    let (units, sections) = units_of(doc, max_tokens, count_tokens);
    let mut spans: Vec<(usize, usize)> = Vec::new(); // unit index ranges [from, to)
    let mut section_start = 0;
    while section_start < units.len() {
        let section = units[section_start].section;
        let section_end = units[section_start..]
            .iter()
            .position(|u| u.section != section)
            .map_or(units.len(), |n| section_start + n);
        let tokens: Vec<usize> = units[section_start..section_end]
            .iter()
            .map(|u| u.tokens)
            .collect();
        let runs = balanced_runs(&tokens, target, max_tokens);
        for (k, &(a, b)) in runs.iter().enumerate() {
            let core: usize = tokens[a..b].iter().sum();
            // Overlap: the next chunk also starts with whole trailing units of the previous
            // one, up to the overlap budget and never past the ceiling.
            let mut start = a;
            if k > 0 {
                let previous_start = runs[k - 1].0;
                let mut overlap = 0;
                while start > previous_start + 1
                    && overlap + tokens[start - 1] <= opts.overlap_tokens
                    && core + overlap + tokens[start - 1] <= max_tokens
                {
                    overlap += tokens[start - 1];
                    start -= 1;
                }
            }
            spans.push((section_start + start, section_start + b));
        }
        section_start = section_end;
    }

    let mut offsets: Vec<usize> = spans
        .iter()
        .flat_map(|&(a, b)| [units[a].start, units[b - 1].end])
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    let char_of = byte_to_char_offsets(&doc.text, &offsets);
    let char_at = |b: usize| match offsets.binary_search(&b) {
        Ok(k) => char_of[k],
        Err(_) => doc.text[..b].chars().count(),
    };

    spans
        .iter()
        .enumerate()
        .map(|(ordinal, &(a, b))| {
            let (start, end) = (units[a].start, units[b - 1].end);
            let pages = units[a..b]
                .iter()
                .filter_map(|u| u.page)
                .fold(None, |acc, p| match acc {
                    None => Some((p, p)),
                    Some((lo, hi)) => Some((p.min(lo), p.max(hi))),
                });
            let path = &sections[units[a].section];
            Chunk {
                text: doc.text[start..end].to_string(),
                heading: path.last().cloned(),
                section_path: path.clone(),
                pages,
                char_start: char_at(start),
                char_end: char_at(end),
                ordinal: u32::try_from(ordinal).unwrap_or(u32::MAX),
            }
        })
        .collect()
}

/// Cuts one section's units (their token counts) into contiguous runs of about `target`
/// tokens, none above `max` unless it is a single unit. Greedy filling leaves runts: a
/// paragraph that misses the target by a little becomes a chunk of its own, too short for
/// its embedding to say what it is about. So breaks are chosen together, minimising the
/// summed squared distance of every run from the target (a section that fits under `max`
/// stays whole; a long one splits into runs of even size).
fn balanced_runs(tokens: &[usize], target: usize, max: usize) -> Vec<(usize, usize)> {
    let n = tokens.len();
    // cost[j]: best cost of cutting tokens[..j]; from[j]: where its last run starts.
    let mut cost = vec![u64::MAX; n + 1];
    let mut from = vec![0usize; n + 1];
    cost[0] = 0;
    for j in 1..=n {
        let mut sum = 0usize;
        for i in (0..j).rev() {
            sum += tokens[i];
            if sum > max && i + 1 < j {
                break;
            }
            let gap = sum.abs_diff(target) as u64;
            let total = cost[i].saturating_add(gap * gap);
            if total < cost[j] {
                cost[j] = total;
                from[j] = i;
            }
        }
    }
    let mut runs = Vec::new();
    let mut j = n;
    while j > 0 {
        runs.push((from[j], j));
        j = from[j];
    }
    runs.reverse();
    runs
}

/// Cuts the document into units no larger than `max_tokens`, each tagged with its section.
/// Returns the units and, per section, the heading path.
fn units_of(
    doc: &ParsedDocument,
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
) -> (Vec<Unit>, Vec<Vec<String>>) {
    let mut sections: Vec<Vec<String>> = vec![Vec::new()];
    let mut heading_stack: Vec<(u8, String)> = Vec::new();
    let mut units = Vec::new();
    let mut previous_was_heading = false;
    for block in &doc.blocks {
        let text = doc.block_text(block);
        match block.kind {
            BlockKind::Heading { level } => {
                heading_stack.retain(|(l, _)| *l < level);
                heading_stack.push((level, one_line(text)));
                let path: Vec<String> = heading_stack.iter().map(|(_, h)| h.clone()).collect();
                // Consecutive headings (chapter title then section title) share one section.
                if previous_was_heading {
                    if let Some(last) = sections.last_mut() {
                        *last = path;
                    }
                } else {
                    sections.push(path);
                }
                previous_was_heading = true;
            }
            BlockKind::Paragraph => previous_was_heading = false,
        }
        // Headings are units too, so they appear in the chunk text they open.
        let section = sections.len() - 1;
        split_block(
            block.start,
            block.end,
            &doc.text,
            max_tokens,
            count_tokens,
            &mut |s, e, t| {
                units.push(Unit {
                    start: s,
                    end: e,
                    page: block.page,
                    tokens: t,
                    section,
                })
            },
        );
    }
    (units, sections)
}

/// Splits `text[start..end]` into pieces of at most `max_tokens`: whole if it fits, else
/// by sentences, else by word runs.
fn split_block(
    start: usize,
    end: usize,
    text: &str,
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
    emit: &mut dyn FnMut(usize, usize, usize),
) {
    let tokens = count_tokens(&text[start..end]);
    if tokens <= max_tokens {
        emit(start, end, tokens);
        return;
    }
    for (s, e) in sentence_spans(text, start, end) {
        let t = count_tokens(&text[s..e]);
        if t <= max_tokens {
            emit(s, e, t);
        } else {
            split_words(s, e, text, max_tokens, count_tokens, emit);
        }
    }
}

/// Splits an over-long sentence into runs of words, halving a run until it fits.
fn split_words(
    start: usize,
    end: usize,
    text: &str,
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
    emit: &mut dyn FnMut(usize, usize, usize),
) {
    let words: Vec<(usize, usize)> = word_spans(text, start, end);
    let mut i = 0;
    while i < words.len() {
        // max_tokens/2 words is a cheap first guess: a word is rarely less than one token
        // and seldom more than two.
        let mut take = (max_tokens / 2).clamp(1, words.len() - i);
        loop {
            let (s, e) = (words[i].0, words[i + take - 1].1);
            let t = count_tokens(&text[s..e]);
            if t <= max_tokens || take == 1 {
                emit(s, e, t);
                i += take;
                break;
            }
            take = (take / 2).max(1);
        }
    }
}

fn word_spans(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut word_start: Option<usize> = None;
    for (off, ch) in text[start..end].char_indices() {
        let pos = start + off;
        if ch.is_whitespace() {
            if let Some(ws) = word_start.take() {
                spans.push((ws, pos));
            }
        } else if word_start.is_none() {
            word_start = Some(pos);
        }
    }
    if let Some(ws) = word_start {
        spans.push((ws, end));
    }
    spans
}

/// Sentence boundaries: `.`, `!`, `?` (optionally followed by closing quotes/brackets)
/// then whitespace, or a line break followed by a blank line or a list marker.
pub fn sentence_spans(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let slice = &text[start..end];
    let mut spans = Vec::new();
    let mut sent_start = 0;
    let chars: Vec<(usize, char)> = slice.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (off, ch) = chars[k];
        let mut boundary = None;
        if matches!(ch, '.' | '!' | '?' | ';') {
            let mut m = k + 1;
            while m < chars.len() && matches!(chars[m].1, '"' | '\'' | ')' | ']' | '’' | '”') {
                m += 1;
            }
            if m < chars.len() && chars[m].1.is_whitespace() {
                let cut = chars[m].0;
                // Avoid cutting after a single-letter abbreviation ("e.g. ", "J. Smith").
                let word_len = slice[sent_start..off]
                    .rsplit(|c: char| c.is_whitespace())
                    .next()
                    .map_or(0, |w| w.chars().count());
                if word_len > 1 || ch != '.' {
                    boundary = Some(cut);
                }
            }
        } else if ch == '\n' {
            boundary = Some(off);
        }
        if let Some(cut) = boundary {
            if !slice[sent_start..cut].trim().is_empty() {
                spans.push(trim_span(slice, sent_start, cut));
            }
            sent_start = cut;
        }
        k += 1;
    }
    if !slice[sent_start..].trim().is_empty() {
        spans.push(trim_span(slice, sent_start, slice.len()));
    }
    spans
        .into_iter()
        .map(|(s, e)| (start + s, start + e))
        .collect()
}

fn trim_span(s: &str, a: usize, b: usize) -> (usize, usize) {
    let piece = &s[a..b];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    (a + lead, b - trail)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Converts sorted byte offsets into char offsets in one pass over the text.
fn byte_to_char_offsets(text: &str, sorted_bytes: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(sorted_bytes.len());
    let mut chars = 0usize;
    let mut iter = text.char_indices().peekable();
    for &target in sorted_bytes {
        while let Some(&(b, _)) = iter.peek() {
            if b >= target {
                break;
            }
            iter.next();
            chars += 1;
        }
        out.push(chars);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn doc_with(blocks: &[(BlockKind, &str, Option<u32>)]) -> ParsedDocument {
        let mut d = ParsedDocument::default();
        for (k, t, p) in blocks {
            d.push_block(*k, t, *p);
        }
        d
    }

    fn para(n: usize, tag: &str) -> String {
        (0..n)
            .map(|i| format!("{tag}{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            + "."
    }

    #[test]
    fn chunks_follow_sections_and_keep_headings() {
        let h = BlockKind::Heading { level: 1 };
        let h2 = BlockKind::Heading { level: 2 };
        let p = BlockKind::Paragraph;
        let d = doc_with(&[
            (h, "Install", None),
            (p, &para(30, "a"), None),
            (h2, "Upgrade", None),
            (p, &para(30, "b"), None),
        ]);
        let chunks = chunk_document(&d, &ChunkOptions::default(), &words);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading.as_deref(), Some("Install"));
        assert!(chunks[0].text.starts_with("Install"));
        assert!(!chunks[0].text.contains("b0"));
        assert_eq!(
            chunks[1].section_path,
            vec!["Install".to_string(), "Upgrade".to_string()]
        );
        assert_eq!(chunks[1].ordinal, 1);
    }

    #[test]
    fn long_sections_split_near_target_with_overlap() {
        let p = BlockKind::Paragraph;
        let paras: Vec<String> = (0..20).map(|i| para(40, &format!("p{i}w"))).collect();
        let blocks: Vec<_> = paras.iter().map(|t| (p, t.as_str(), Some(1))).collect();
        let d = doc_with(&blocks);
        let opts = ChunkOptions {
            target_tokens: 200,
            max_tokens: 240,
            overlap_tokens: 50,
        };
        let chunks = chunk_document(&d, &opts, &words);
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(words(&c.text) <= 240, "chunk of {} words", words(&c.text));
        }
        // Overlap: each chunk after the first starts inside the previous one.
        for w in chunks.windows(2) {
            assert!(
                w[1].char_start < w[0].char_end,
                "no overlap between consecutive chunks"
            );
        }
        // Every paragraph is covered.
        for i in 0..20 {
            assert!(chunks.iter().any(|c| c.text.contains(&format!("p{i}w39"))));
        }
    }

    #[test]
    fn a_short_paragraph_joins_a_neighbour_instead_of_standing_alone() {
        // 190 + 70 + 170 words: greedy filling to 200 left the 70-word paragraph alone.
        let p = BlockKind::Paragraph;
        let (a, b, c) = (para(190, "a"), para(70, "b"), para(170, "c"));
        let d = doc_with(&[(p, &a, None), (p, &b, None), (p, &c, None)]);
        let chunks = chunk_document(&d, &ChunkOptions::default(), &words);
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert!(chunks.iter().all(|c| words(&c.text) <= 240));
        assert!(chunks.iter().all(|c| words(&c.text) > 150));
        // A section that fits under the ceiling stays one chunk.
        let (x, y) = (para(130, "x"), para(100, "y"));
        let d = doc_with(&[(p, &x, None), (p, &y, None)]);
        assert_eq!(
            chunk_document(&d, &ChunkOptions::default(), &words).len(),
            1
        );
    }

    #[test]
    fn balanced_runs_are_even_and_cover_every_unit() {
        assert_eq!(
            balanced_runs(&[100; 6], 200, 240),
            vec![(0, 2), (2, 4), (4, 6)]
        );
        assert_eq!(balanced_runs(&[150, 150, 150], 200, 240).len(), 3);
        // A unit over the ceiling still gets a run of its own.
        assert_eq!(
            balanced_runs(&[10, 500, 10], 200, 240),
            vec![(0, 1), (1, 2), (2, 3)]
        );
        assert!(balanced_runs(&[], 200, 240).is_empty());
    }

    #[test]
    fn oversized_paragraph_is_split_by_sentences_then_words() {
        let sentence = |i: usize| {
            format!(
                "{} end{i}.",
                para(30, &format!("s{i}x")).trim_end_matches('.')
            )
        };
        let long: String = (0..12).map(sentence).collect::<Vec<_>>().join(" ");
        let run_on = para(600, "r");
        let p = BlockKind::Paragraph;
        let d = doc_with(&[(p, &long, None), (p, &run_on, None)]);
        let chunks = chunk_document(&d, &ChunkOptions::default(), &words);
        assert!(chunks.iter().all(|c| words(&c.text) <= 240));
        assert!(chunks.iter().any(|c| c.text.contains("r599")));
        assert!(chunks.iter().any(|c| c.text.contains("end11.")));
    }

    #[test]
    fn offsets_are_char_offsets_into_the_text() {
        let p = BlockKind::Paragraph;
        let d = doc_with(&[
            (p, "Ünïcödé first paragraph — with dashes.", Some(2)),
            (p, "Zweiter Absatz.", Some(3)),
        ]);
        let chunks = chunk_document(&d, &ChunkOptions::default(), &words);
        assert_eq!(chunks.len(), 1);
        let c = &chunks[0];
        let via_chars: String = d
            .text
            .chars()
            .skip(c.char_start)
            .take(c.char_end - c.char_start)
            .collect();
        assert_eq!(via_chars, c.text);
        assert_eq!(c.pages, Some((2, 3)));
    }

    #[test]
    fn empty_document_has_no_chunks() {
        let d = ParsedDocument::default();
        assert!(chunk_document(&d, &ChunkOptions::default(), &words).is_empty());
    }
}
