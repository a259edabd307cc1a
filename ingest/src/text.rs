//! Plain-text files: decoding (UTF-8, UTF-16 with BOM, Windows-1252 fallback), telling text
//! from binary garbage, and recovering structure from typographic conventions — blank-line
//! paragraphs and conservatively detected headings (setext/reST underlines, numbered section
//! lines, ALL-CAPS lines, FAQ "Q1.2 --" lines).

use crate::document::{BlockKind, ParsedDocument};
use crate::{Budget, Error, Result};
use encoding_rs::{Encoding, WINDOWS_1252};
use std::collections::HashMap;

/// Share of control characters (or, for UTF-16, undecodable units) above which content is
/// treated as binary. Real text has almost none; random bytes have ~12% below 0x20.
const MAX_CONTROL_PERMILLE: usize = 10;

/// Longest line considered as a heading candidate: headings are short, prose lines are not.
const MAX_HEADING_CHARS: usize = 80;

/// Whether `bytes` decode as text rather than binary data. Used to sniff files without a
/// known extension.
pub fn looks_like_text(bytes: &[u8]) -> bool {
    decode(bytes).is_ok()
}

/// Parses a plain-text file into paragraphs and headings, seeing the deadline of `budget`
/// between paragraphs.
pub fn parse(bytes: &[u8], budget: &Budget) -> Result<ParsedDocument> {
    let text = decode(bytes).map_err(Error::Binary)?;
    let text = normalise_newlines(&text);
    let paras = split_paragraphs(&text);
    let mut structurer = Structurer {
        doc: ParsedDocument::default(),
        styles: UnderlineStyles::default(),
        body_indent: body_indent(&paras),
        toc_indent: None,
    };
    let mut first_para_line: Option<Option<String>> = None;
    budget.check()?;
    for para in &paras {
        budget.tick()?;
        if first_para_line.is_none() {
            let non_rule: Vec<&str> = para
                .iter()
                .copied()
                .filter(|l| rule_char(l).is_none())
                .collect();
            if !non_rule.is_empty() {
                // A short first line, or a short title wrapped (or centred) over two lines.
                let joined = non_rule
                    .iter()
                    .map(|l| l.trim())
                    .collect::<Vec<_>>()
                    .join(" ");
                let is_title = non_rule.len() <= 2
                    && joined.chars().count() <= 100
                    && !joined.ends_with(['.', ',', ';', ':']);
                first_para_line = Some(is_title.then_some(joined));
            }
        }
        structurer.emit_paragraph(para);
    }
    let mut doc = structurer.doc;
    doc.title = first_para_line.flatten().or_else(|| {
        doc.blocks
            .iter()
            .take(3)
            .find(|b| matches!(b.kind, BlockKind::Heading { .. }))
            .map(|b| doc.block_text(b).replace('\n', " "))
    });
    Ok(doc)
}

/// Decodes bytes to text, or explains why they look like binary data.
///
/// UTF-8 (BOM stripped) and UTF-16 are recognised by their BOM; BOM-less input is UTF-8 when
/// it validates and Windows-1252 (a superset of printable Latin-1) otherwise, since legacy
/// text files are far more often Latin-1 than anything else.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<String, String> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        check_text(&text)?;
        return Ok(text.into_owned());
    }
    if bytes.contains(&0) {
        return Err("contains NUL bytes".into());
    }
    let text = decode_utf8_or_latin1(bytes);
    check_text(&text)?;
    Ok(text)
}

/// UTF-8 when valid (a sequence cut off at the very end, as in a truncated file, still
/// counts), otherwise Windows-1252.
pub(crate) fn decode_utf8_or_latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // Drop the incomplete last character rather than flagging it as undecodable.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    }
}

/// Rejects decoded content with too many control characters or replacement characters.
pub(crate) fn check_text(text: &str) -> std::result::Result<(), String> {
    let mut total = 0usize;
    let mut suspicious = 0usize;
    for c in text.chars() {
        total += 1;
        let is_control =
            c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1b');
        if is_control || c == '\u{FFFD}' {
            suspicious += 1;
        }
    }
    if total > 0 && suspicious * 1000 > total * MAX_CONTROL_PERMILLE {
        return Err(format!(
            "{suspicious} of {total} characters are control or undecodable characters"
        ));
    }
    Ok(())
}

fn normalise_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Splits text into runs of non-blank lines. Form feeds separate pages; RFC-style page
/// footers ("Author   [Page 3]") and headers ("RFC 1234   Title   May 1990") around them
/// are dropped so they do not interrupt paragraphs.
fn split_paragraphs(text: &str) -> Vec<Vec<&str>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut paras = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.contains('\x0c') {
            if current.last().is_some_and(|l| is_page_footer(l)) {
                current.pop();
            }
            if !current.is_empty() {
                paras.push(std::mem::take(&mut current));
            }
            let rest = line.trim_matches(|c: char| c == '\x0c' || c.is_whitespace());
            if rest.starts_with("RFC ") {
                // The header sits on the form-feed line itself.
            } else if !rest.is_empty() {
                current.push(line.trim_start_matches('\x0c'));
            } else if lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("RFC "))
            {
                i += 1;
            }
            i += 1;
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                paras.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
        i += 1;
    }
    if current.last().is_some_and(|l| is_page_footer(l)) {
        current.pop();
    }
    if !current.is_empty() {
        paras.push(current);
    }
    paras
}

fn is_page_footer(line: &str) -> bool {
    let t = line.trim_end();
    t.ends_with(']')
        && t.rfind("[Page ").is_some_and(|p| {
            t[p + 6..t.len() - 1].chars().all(|c| c.is_ascii_digit()) && p + 7 < t.len()
        })
}

/// The character of a decorative rule line ("=====", "-----", "*****", "_____"), if it is one.
fn rule_char(line: &str) -> Option<char> {
    let t = line.trim();
    let first = t.chars().next()?;
    let is_rule =
        t.chars().count() >= 3 && "=-~^*#+_\"`.:".contains(first) && t.chars().all(|c| c == first);
    is_rule.then_some(first)
}

/// Heading levels for underline styles in order of first appearance, as reStructuredText
/// does: the first style seen is level 1, the next new one level 2, and so on.
#[derive(Default)]
struct UnderlineStyles {
    seen: Vec<(char, bool)>,
}

impl UnderlineStyles {
    fn level(&mut self, ch: char, overlined: bool) -> u8 {
        let key = (ch, overlined);
        let idx = match self.seen.iter().position(|s| *s == key) {
            Some(i) => i,
            None => {
                self.seen.push(key);
                self.seen.len() - 1
            }
        };
        (idx + 1).min(6) as u8
    }
}

/// Indentation width of a line (a tab counts as 8 columns).
fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 8 } else { 1 })
        .sum()
}

/// The usual indentation of body text: the indentation of multi-line paragraphs, weighted by
/// their amount of text so that long prose outweighs deeply indented lists and trees. Text
/// dumped from HTML (lynx, w3m) indents the body by 3 and leaves headings at column 0.
fn body_indent(paras: &[Vec<&str>]) -> usize {
    let mut weights: HashMap<usize, usize> = HashMap::new();
    for para in paras {
        let lines: Vec<&&str> = para.iter().filter(|l| rule_char(l).is_none()).collect();
        if lines.len() >= 2 {
            if let Some(min) = lines.iter().map(|l| indent_of(l)).min() {
                let chars: usize = lines.iter().map(|l| l.trim().len()).sum();
                *weights.entry(min).or_default() += chars;
            }
        }
    }
    weights
        .into_iter()
        .max_by_key(|(indent, chars)| (*chars, std::cmp::Reverse(*indent)))
        .map_or(0, |(indent, _)| indent)
}

/// "Table of Contents" and friends: what follows are entries that look like headings.
fn is_toc_marker(line: &str) -> bool {
    matches!(
        line.trim().to_lowercase().as_str(),
        "table of contents"
            | "contents"
            | "list of tables"
            | "list of figures"
            | "list of examples"
    )
}

/// Turns paragraphs into blocks, remembering document-wide conventions.
struct Structurer {
    doc: ParsedDocument,
    styles: UnderlineStyles,
    body_indent: usize,
    /// Inside a table of contents (the indentation of its marker line): entries are kept as
    /// plain paragraphs so they do not become empty sections.
    toc_indent: Option<usize>,
}

impl Structurer {
    /// Emits one blank-line separated paragraph as heading and paragraph blocks.
    fn emit_paragraph(&mut self, para: &[&str]) {
        let doc = &mut self.doc;
        // Overline + text + underline (reST title style): "=====\nTitle\n=====".
        if para.len() >= 3 && para.len() <= 5 {
            if let (Some(over), Some(under)) = (rule_char(para[0]), rule_char(para[para.len() - 1]))
            {
                let inner = &para[1..para.len() - 1];
                if over == under
                    && "_.:".find(over).is_none()
                    && inner.iter().all(|l| {
                        rule_char(l).is_none() && l.trim().chars().count() <= MAX_HEADING_CHARS
                    })
                {
                    let title = inner.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                    let level = self.styles.level(over, true);
                    doc.push_block(BlockKind::Heading { level }, &title, None);
                    self.toc_indent = None;
                    return;
                }
            }
        }

        let mut body: Vec<&str> = Vec::new();
        let mut i = 0;
        while i < para.len() {
            let line = para[i];
            if let Some(ch) = para.get(i + 1).and_then(|next| underline_for(line, next)) {
                flush_body(doc, &mut body);
                let level = self.styles.level(ch, false);
                doc.push_block(BlockKind::Heading { level }, line.trim(), None);
                self.toc_indent = None;
                i += 2;
                continue;
            }
            if rule_char(line).is_none() {
                body.push(line);
            }
            i += 1;
        }
        let Some(first) = body.first().copied() else {
            return;
        };
        if let Some(toc_indent) = self.toc_indent {
            let toc_ended =
                body.len() >= 3 || indent_of(first) < toc_indent || is_chapter_line(first.trim());
            if !toc_ended {
                flush_body(doc, &mut body);
                return;
            }
            self.toc_indent = None;
        }
        if body.len() == 1 && is_toc_marker(first) {
            self.toc_indent = Some(indent_of(first));
            flush_body(doc, &mut body);
            return;
        }
        if let Some(level) = standalone_heading_level(&body, self.body_indent) {
            let title = body.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
            // A digest's "Subject: Q4.5 -- …" is the question; the field name is noise.
            let title = title
                .strip_prefix(FAQ_SUBJECT)
                .unwrap_or(&title)
                .trim_start();
            doc.push_block(BlockKind::Heading { level }, title, None);
            return;
        }
        flush_body(doc, &mut body);
    }
}

/// Whether `next` underlines `line` as a setext heading, returning the underline character.
fn underline_for(line: &str, next: &str) -> Option<char> {
    let ch = rule_char(next)?;
    // Column layouts ("Name   Mode   KeyID" over "=====") are table headers, not headings.
    if !"=-~^*#+\"`".contains(ch) || rule_char(line).is_some() || line.trim().contains("   ") {
        return None;
    }
    let text_len = line.trim().chars().count();
    let rule_len = next.trim().chars().count();
    let starts_aligned =
        line.len() - line.trim_start().len() == next.len() - next.trim_start().len();
    (text_len > 0
        && text_len <= MAX_HEADING_CHARS
        && rule_len * 10 >= text_len * 6
        && starts_aligned)
        .then_some(ch)
}

/// Pushes the accumulated lines as one paragraph, removing their common indentation.
fn flush_body(doc: &mut ParsedDocument, body: &mut Vec<&str>) {
    if body.is_empty() {
        return;
    }
    let indent = body
        .iter()
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    let text = body
        .iter()
        .map(|l| l[indent..].trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    doc.push_block(BlockKind::Paragraph, &text, None);
    body.clear();
}

/// Recognises a paragraph that is nothing but a section heading: a numbered section line
/// ("2.1. General rules", "1.  Introduction"), a "Chapter 3. …"/"Appendix A. …" line, an
/// FAQ question line ("Q3.2 -- How do I …?"), a short ALL-CAPS line, or — in documents whose
/// body is indented — a line standing out at column 0. Lines indented deeper than the body
/// are list items or code, never headings (except centred "Chapter" titles).
fn standalone_heading_level(lines: &[&str], body_indent: usize) -> Option<u8> {
    let first = lines.first()?;
    let indent = indent_of(first);
    if let Some(level) = faq_question_level(first) {
        let total: usize = lines.iter().map(|l| l.trim().len()).sum();
        if indent <= body_indent && lines.len() <= 3 && total <= 240 {
            return Some(level);
        }
    }
    if let [_, second] = lines {
        // A numbered question wrapped onto a second line.
        let joined = format!("{} {}", first.trim(), second.trim());
        if indent <= body_indent
            && indent_of(second) >= indent
            && joined.ends_with('?')
            && joined.chars().count() <= 2 * MAX_HEADING_CHARS
        {
            return numbered_heading_level(&joined, 24);
        }
    }
    let [line] = lines else { return None };
    let t = line.trim();
    if t.chars().count() > MAX_HEADING_CHARS || t.ends_with(['.', ',', ';']) || t.contains("   ") {
        return None;
    }
    if is_chapter_line(t) {
        return Some(1);
    }
    if indent > body_indent {
        return None;
    }
    if let Some(level) = numbered_heading_level(t, 12) {
        return Some(level);
    }
    if is_all_caps_heading(t) {
        return Some(1);
    }
    // "Owner: foo@example.com" at column 0 is a mail header example, not a heading.
    let looks_like_header_field = t
        .split_once(": ")
        .is_some_and(|(name, _)| !name.is_empty() && !name.contains(' '));
    let outdented = body_indent >= 2
        && indent == 0
        && t.chars().next().is_some_and(char::is_alphanumeric)
        && t.chars().any(char::is_alphabetic)
        && !looks_like_header_field;
    outdented.then_some(1)
}

/// "Chapter 3. Title", "Appendix A. Title", "Part II: Title".
fn is_chapter_line(t: &str) -> bool {
    let mut words = t.split_whitespace();
    let (Some(kind), Some(number)) = (words.next(), words.next()) else {
        return false;
    };
    let number = number.trim_end_matches(['.', ':']);
    matches!(
        kind,
        "Chapter" | "CHAPTER" | "Appendix" | "APPENDIX" | "Part" | "PART"
    ) && !number.is_empty()
        && (number.chars().all(|c| c.is_ascii_digit())
            || number.chars().all(|c| "IVXLC".contains(c))
            || (number.len() == 1 && number.chars().all(|c| c.is_ascii_uppercase())))
}

/// "1.2.3. Title" / "1.2 Title" / "4) Title": level = number of components.
fn numbered_heading_level(t: &str, max_words: usize) -> Option<u8> {
    let (number, title) = t.split_once(char::is_whitespace)?;
    let number = number.trim_end_matches(['.', ')']);
    let parts: Vec<&str> = number.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()));
    let title = title.trim();
    let title_ok = title.chars().next().is_some_and(char::is_alphabetic)
        && title.split_whitespace().count() <= max_words
        && !title.ends_with(':');
    (numeric && title_ok).then(|| parts.len().min(6) as u8)
}

/// Usenet-style FAQ digests head each entry with a mail header: "Subject: Q4.5 -- …".
const FAQ_SUBJECT: &str = "Subject:";

/// "Q3.2 -- How do I …?" (or "Subject: Q3.2 -- …" in a digest): level = depth of the number.
fn faq_question_level(line: &str) -> Option<u8> {
    let line = line.strip_prefix(FAQ_SUBJECT).map_or(line, str::trim_start);
    let rest = line.strip_prefix('Q')?;
    let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let number = rest[..number_len].trim_end_matches('.');
    let after = rest[number_len..].trim_start();
    let has_separator = ["--", ":", ")", "-"].iter().any(|s| after.starts_with(s));
    (!number.is_empty() && number.split('.').all(|p| !p.is_empty()) && has_separator)
        .then(|| (number.split('.').count() as u8).clamp(1, 6))
}

fn is_all_caps_heading(t: &str) -> bool {
    let letters = t.chars().filter(|c| c.is_alphabetic()).count();
    let has_word = t
        .split_whitespace()
        .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3);
    t.chars().count() <= 60
        && letters >= 3
        && has_word
        && !t.chars().any(char::is_lowercase)
        && t.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "-:&,'()/.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
        super::parse(bytes, &Budget::unlimited())
    }

    fn headings(doc: &ParsedDocument) -> Vec<(u8, String)> {
        doc.blocks
            .iter()
            .filter_map(|b| match b.kind {
                BlockKind::Heading { level } => Some((level, doc.block_text(b).to_string())),
                BlockKind::Paragraph => None,
            })
            .collect()
    }

    fn paragraphs(doc: &ParsedDocument) -> Vec<&str> {
        doc.blocks
            .iter()
            .filter(|b| b.kind == BlockKind::Paragraph)
            .map(|b| doc.block_text(b))
            .collect()
    }

    #[test]
    fn blank_lines_separate_paragraphs_and_common_indent_is_removed() {
        let doc =
            parse(b"Notes\n\n   first line\n     indented more\n\n\nsecond para\r\nstill second\n")
                .unwrap();
        assert_eq!(doc.title.as_deref(), Some("Notes"));
        assert_eq!(
            paragraphs(&doc),
            vec![
                "Notes",
                "first line\n  indented more",
                "second para\nstill second"
            ]
        );
    }

    #[test]
    fn setext_and_overlined_headings_get_levels_in_order_of_appearance() {
        let src = "=====\nDeveloping Filters\n=====\n\nIntro text.\n\nTest Cases\n==========\n\nPurpose\n-------\nBody under purpose.\n\nCause\n-----\n\nMore.\n";
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            headings(&doc),
            vec![
                (1, "Developing Filters".to_string()),
                (2, "Test Cases".to_string()),
                (3, "Purpose".to_string()),
                (3, "Cause".to_string()),
            ]
        );
        assert_eq!(
            paragraphs(&doc),
            vec!["Intro text.", "Body under purpose.", "More."]
        );
        // The first paragraph is a rule plus heading, so the title is the first heading.
        assert_eq!(doc.title.as_deref(), Some("Developing Filters"));
    }

    #[test]
    fn digest_subject_lines_head_faq_entries() {
        let src = "\
Subject: Q4.4 -- Why does it deliver the mail interactively?

   The -v flag tells sendmail to watch the transaction.
     _________________________________________________________________

Subject: Q4.5 -- How can I solve \"MX list for hostname points back to hostname\"
and \"config error: mail loops back to myself\" messages?

   I'm getting these error messages.

Subject: Re: lunch
";
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            headings(&doc),
            vec![
                (2, "Q4.4 -- Why does it deliver the mail interactively?".to_string()),
                (
                    2,
                    "Q4.5 -- How can I solve \"MX list for hostname points back to hostname\" and \"config error: mail loops back to myself\" messages?"
                        .to_string()
                ),
            ]
        );
        assert!(paragraphs(&doc).contains(&"Subject: Re: lunch"));
    }

    #[test]
    fn numbered_caps_and_faq_lines_are_headings_only_when_standing_alone() {
        let src = "\
1. Introduction

   Some prose that wraps over several lines of body text, long enough
   to show that the body of this document is indented by three columns
   the way text dumped from HTML is.

  2.1. General rules

    1. Nothing in this list is a heading
    2. Nor this

    3. Nor this standalone list item

SECURITY NOTES

Q3.2 -- How do I rewrite my From: lines to read or
``Different_Name@My.Domain''?

1. Do this first.

   2022-12-17
";
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            headings(&doc),
            vec![
                (1, "1. Introduction".to_string()),
                (2, "2.1. General rules".to_string()),
                (1, "SECURITY NOTES".to_string()),
                (
                    2,
                    "Q3.2 -- How do I rewrite my From: lines to read or ``Different_Name@My.Domain''?"
                        .to_string()
                ),
            ]
        );
        let paras = paragraphs(&doc);
        assert!(
            paras.contains(&"3. Nor this standalone list item"),
            "{paras:?}"
        );
        assert!(paras.contains(&"1. Do this first."));
        assert!(paras.contains(&"2022-12-17"));
    }

    #[test]
    fn html_dump_conventions_outdented_headings_chapters_and_tables_of_contents() {
        let src = "\
                     Information regarding the bug system
                              for maintainers

   Table of Contents

   1. About this document

   2. Structure

                2.1. Preferred structure

                         Chapter 1. About this document

   This document is distributed as part of the package and explains
   how the system works.

Closing bug reports

   Bug reports should be closed by sending email to the done address
   of the bug.

Owner: foo@example.com

   2.4. Must I specify servers by IP address if DNS is not available on
   start?

   Column   Layout   Header
   ========================
";
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            doc.title.as_deref(),
            Some("Information regarding the bug system for maintainers")
        );
        assert_eq!(
            headings(&doc),
            vec![
                (1, "Chapter 1. About this document".to_string()),
                (1, "Closing bug reports".to_string()),
                (
                    2,
                    "2.4. Must I specify servers by IP address if DNS is not available on start?"
                        .to_string()
                ),
            ]
        );
        let paras = paragraphs(&doc);
        assert!(
            paras.contains(&"1. About this document"),
            "TOC entry: {paras:?}"
        );
        assert!(paras.contains(&"Owner: foo@example.com"));
        assert!(paras.contains(&"Column   Layout   Header"));
    }

    #[test]
    fn long_first_line_gives_no_title_and_rules_are_dropped() {
        let doc = parse(b"This first paragraph is long enough to be prose and it spans\ntwo lines.\n\n__________\n\nEnd.\n").unwrap();
        assert_eq!(doc.title, None);
        assert_eq!(paragraphs(&doc).len(), 2);
        assert!(!doc.text.contains("___"));
    }

    #[test]
    fn rfc_page_breaks_are_removed() {
        let src = "paragraph starts here\nAuthor                                                 [Page 1]\n\x0c\nRFC 9999                 Some Protocol                  May 2024\n\ncontinues after the break\n";
        let doc = parse(src.as_bytes()).unwrap();
        assert!(!doc.text.contains("[Page 1]"));
        assert!(!doc.text.contains("RFC 9999"));
        assert_eq!(
            paragraphs(&doc),
            vec!["paragraph starts here", "continues after the break"]
        );
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let doc = parse("\u{feff}Grüße\n".as_bytes()).unwrap();
        assert_eq!(doc.text, "Grüße");
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let text = "Überschrift\n\nZweiter Absatz – mit Gedankenstrich.";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        for bytes in [le, be] {
            assert!(looks_like_text(&bytes));
            let doc = parse(&bytes).unwrap();
            assert_eq!(
                doc.text,
                "Überschrift\n\nZweiter Absatz – mit Gedankenstrich."
            );
        }
    }

    #[test]
    fn latin1_and_windows_1252_fall_back() {
        let (bytes, _, _) = WINDOWS_1252.encode("Café “quoted” naïve – 5 €");
        assert!(std::str::from_utf8(&bytes).is_err());
        let doc = parse(&bytes).unwrap();
        assert_eq!(doc.text, "Café “quoted” naïve – 5 €");
    }

    #[test]
    fn truncated_utf8_stays_utf8() {
        let mut bytes = "Grüße aus Köln ".as_bytes().to_vec();
        bytes.extend_from_slice(&"ö".as_bytes()[..1]);
        let doc = parse(&bytes).unwrap();
        assert_eq!(doc.text, "Grüße aus Köln");
    }

    #[test]
    fn binary_garbage_is_rejected() {
        // A deterministic pseudo-random byte stream, like compressed or encrypted data.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(!looks_like_text(&garbage));
        assert!(matches!(parse(&garbage), Err(Error::Binary(_))));

        // No NULs but full of control bytes.
        let controls: Vec<u8> = (0..2000)
            .map(|i| if i % 7 == 0 { 0x01 } else { b'a' })
            .collect();
        assert!(!looks_like_text(&controls));
        assert!(matches!(parse(&controls), Err(Error::Binary(_))));

        // A UTF-16 BOM in front of random data does not make it text.
        let mut fake = vec![0xFF, 0xFE];
        fake.extend_from_slice(&garbage);
        assert!(!looks_like_text(&fake));
    }

    #[test]
    fn a_few_escape_and_form_feed_bytes_are_still_text() {
        assert!(looks_like_text(
            b"\x1b[31mred\x1b[0m log line\n\x0cnext page\n"
        ));
        assert!(looks_like_text(b"plain ascii\n"));
    }

    #[test]
    fn iconv_made_fixtures_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text");
        let expected = std::fs::read_to_string(dir.join("src/latin1.txt")).unwrap();
        for name in ["latin1.txt", "utf16-bom.txt"] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert!(looks_like_text(&bytes), "{name}");
            let doc = parse(&bytes).unwrap();
            assert_eq!(doc.title.as_deref(), Some("Café Menü"), "{name}");
            assert_eq!(
                headings(&doc),
                vec![
                    (1, "Café Menü".to_string()),
                    (2, "Opening hours".to_string())
                ]
            );
            assert!(
                doc.text.contains("Crème brûlée costs five euros."),
                "{name}"
            );
            assert!(expected.contains("Crème brûlée"));
        }
    }

    fn corpus_doc(rel: &str) -> ParsedDocument {
        let bytes = crate::read_eval_dev(rel);
        assert!(looks_like_text(&bytes), "{rel} should sniff as text");
        parse(&bytes).unwrap()
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "reads ../shared/eval-dev: scripts/test runs it"
    )]
    fn corpus_files_without_extension() {
        let faq = corpus_doc("chrony/FAQ");
        assert_eq!(faq.title.as_deref(), Some("Frequently Asked Questions"));
        let h = headings(&faq);
        assert!(
            h.contains(&(1, "1. chrony compared to other programs".to_string())),
            "{h:?}"
        );
        assert!(h.contains(&(2, "2.2. How do I make an NTP server?".to_string())));
        assert!(faq.text.contains("allow 192.168.1.0/24"));

        let manifesto = corpus_doc("doc-debian/debian-manifesto");
        let h = headings(&manifesto);
        assert_eq!(h[0], (1, "Appendix The Debian Manifesto".to_string()));
        assert!(h.contains(&(2, "What is Debian Linux?".to_string())));
        assert_eq!(
            manifesto.title.as_deref(),
            Some("Appendix The Debian Manifesto")
        );

        let filters = corpus_doc("fail2ban/FILTERS");
        let h = headings(&filters);
        assert_eq!(h[0], (1, "Developing Filters".to_string()));
        assert!(h.contains(&(2, "Filter Test Cases".to_string())));
        assert!(h.contains(&(3, "Purpose".to_string())));
    }
}
