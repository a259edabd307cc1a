//! PDF parsing: loads the file with lopdf, builds the text layer from each page's content
//! streams itself (fonts, ToUnicode CMaps, encodings, glyph positions — see the submodules),
//! then recovers structure: lines, paragraphs, joined hyphenation, running headers/footers
//! dropped, headings from the outline or from font sizes, and the title.
//!
//! lopdf's own `extract_text` is deliberately not used: it runs a page's lines together and
//! ignores glyph positions, which loses word and line boundaries.
//!
//! The work is bounded per document ([`crate::Budget`]): content operations, glyphs and
//! content bytes, counted again each time a Form XObject is drawn. A document over budget
//! fails as a whole rather than yielding the text read so far: its pages past the cut would
//! be silently missing from the index, and the text of a form bomb is the same few words
//! repeated; a recorded failure tells the user, who can raise `max_pdf_work` for a real file.

mod cmap;
mod content;
mod font;
mod layout;
mod outline;
mod tables;

pub use content::CONTENT_BYTES_PER_UNIT;

use crate::document::{BlockKind, ParsedDocument};
use crate::{Budget, Error, Result};
use layout::{Line, Paragraph};
use lopdf::Document;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Warning given for PDFs whose pages carry no text (scans, pictures of text).
pub const NO_TEXT_WARNING: &str = "no text layer (scanned?)";

/// A parsed PDF plus what was left out of the indexed text, for inspection and tests.
#[derive(Debug, Clone)]
pub struct PdfExtraction {
    pub document: ParsedDocument,
    /// For each page (index 0 = page 1), the lines not indexed on that page because they are
    /// running headers, footers or page numbers repeated across the document.
    pub furniture: Vec<Vec<String>>,
}

/// Parses a PDF into text blocks with page numbers, headings and a title, within `budget`.
pub fn parse(bytes: &[u8], budget: &Budget) -> Result<ParsedDocument> {
    parse_detailed(bytes, budget).map(|e| e.document)
}

/// [`parse`], also reporting the page furniture (headers/footers) it removed.
pub fn parse_detailed(bytes: &[u8], budget: &Budget) -> Result<PdfExtraction> {
    let doc = load(bytes)?;
    budget.check()?;
    let pages: Vec<lopdf::ObjectId> = catch_unwind(AssertUnwindSafe(|| doc.page_iter().collect()))
        .map_err(|_| Error::Pdf("unreadable page tree".into()))?;
    if pages.is_empty() {
        return Err(Error::Pdf("document has no pages".into()));
    }
    let mut fonts = content::FontCache::default();
    let mut page_lines: Vec<Vec<Line>> = Vec::with_capacity(pages.len());
    for &page_id in &pages {
        // A page that trips a bug in a dependency loses its text, not the whole document;
        // a page over the budget or the deadline ends the document with that error.
        let glyphs = catch_unwind(AssertUnwindSafe(|| {
            content::page_glyphs(&doc, page_id, &mut fonts, budget)
        }))
        .unwrap_or_else(|_| Ok(content::PageGlyphs::default()))?;
        let lines = catch_unwind(AssertUnwindSafe(|| layout::lines(&glyphs))).unwrap_or_default();
        page_lines.push(lines);
    }

    let page_numbers: HashMap<lopdf::ObjectId, u32> = pages
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32 + 1))
        .collect();
    let outline =
        catch_unwind(AssertUnwindSafe(|| outline::read(&doc, &page_numbers))).unwrap_or_default();
    let info_title = catch_unwind(AssertUnwindSafe(|| info_title(&doc)))
        .ok()
        .flatten();
    assemble(page_lines, &outline, info_title, budget)
}

/// Builds the document from the lines of every page. Separate from loading so the
/// structure logic is testable on synthetic lines.
fn assemble(
    page_lines: Vec<Vec<Line>>,
    outline: &[outline::Entry],
    info_title: Option<String>,
    budget: &Budget,
) -> Result<PdfExtraction> {
    let page_count = page_lines.len();
    let mut document = ParsedDocument {
        pages: Some(page_count as u32),
        ..Default::default()
    };
    if page_lines.iter().all(|lines| lines.is_empty()) {
        document.title = info_title;
        document.warnings.push(NO_TEXT_WARNING.to_owned());
        return Ok(PdfExtraction {
            document,
            furniture: vec![Vec::new(); page_count],
        });
    }

    let spacing = line_spacing(&page_lines);
    let furniture_flags = furniture::detect(&page_lines, spacing);
    let mut furniture = vec![Vec::new(); page_count];
    let mut page_paragraphs: Vec<Vec<Paragraph>> = Vec::with_capacity(page_count);
    for (i, lines) in page_lines.iter().enumerate() {
        let mut body = Vec::with_capacity(lines.len());
        for (line, &drop) in lines.iter().zip(&furniture_flags[i]) {
            if drop {
                furniture[i].push(line.text.clone());
            } else {
                body.push(line.clone());
            }
        }
        page_paragraphs.push(layout::paragraphs(&body, spacing));
    }

    budget.check()?;
    let kinds = headings::classify(&page_paragraphs, outline, budget)?;
    let mut first_large: Option<(f32, String)> = None;
    let body_size = headings::body_size(&page_paragraphs);
    for (i, paras) in page_paragraphs.iter().enumerate() {
        for (para, kind) in paras.iter().zip(&kinds[i]) {
            if i < 3 && para.size >= body_size * 1.15 && para.text.chars().any(char::is_alphabetic)
            {
                let is_larger = first_large
                    .as_ref()
                    .is_none_or(|(s, _)| para.size > *s + 0.01);
                if is_larger && para.text.len() <= 200 {
                    first_large = Some((para.size, para.text.replace('\n', " ")));
                }
            }
            document.push_block(*kind, &para.text, Some(i as u32 + 1));
        }
    }
    document.title = info_title.or_else(|| first_large.map(|(_, t)| t));
    if document.text.trim().is_empty() {
        document.warnings.push(NO_TEXT_WARNING.to_owned());
    }
    Ok(PdfExtraction {
        document,
        furniture,
    })
}

/// Loads the document, mapping every failure (including a panic inside lopdf, as a last line
/// of defence) to a typed error.
fn load(bytes: &[u8]) -> Result<Document> {
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(Error::Pdf("not a PDF file (no %PDF- header)".into()));
    }
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(Error::Pdf("file is truncated (no %%EOF end marker)".into()));
    }
    let doc = match catch_unwind(|| Document::load_mem(bytes)) {
        Err(_) => {
            return Err(Error::Pdf(
                "the PDF parser failed on malformed input".into(),
            ))
        }
        Ok(Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword)) => {
            return Err(Error::Encrypted)
        }
        Ok(Err(e)) => return Err(Error::Pdf(e.to_string())),
        Ok(Ok(doc)) => doc,
    };
    // lopdf decrypts documents whose user password is empty (anyone may open them); the
    // others stay encrypted and have no readable objects.
    if doc.trailer.has(b"Encrypt") && doc.encryption_state.is_none() {
        return Err(Error::Encrypted);
    }
    Ok(doc)
}

/// The /Info Title when it names the document (not a file name or a placeholder).
fn info_title(doc: &Document) -> Option<String> {
    let info = font::deref(doc, doc.trailer.get(b"Info").ok())?
        .as_dict()
        .ok()?;
    let title = lopdf::decode_text_string(font::deref(doc, info.get(b"Title").ok())?).ok()?;
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = title.to_lowercase();
    let placeholder = ["untitled", "title", "document", "no title", "slide 1"]
        .contains(&lower.as_str())
        || lower.starts_with("microsoft word - ")
        || [
            ".dvi", ".tex", ".doc", ".docx", ".pdf", ".odt", ".ps", ".indd", ".rtf",
        ]
        .iter()
        .any(|e| lower.ends_with(e));
    let meaningful = title.chars().filter(|c| c.is_alphanumeric()).count() >= 2;
    (meaningful && !placeholder).then_some(title)
}

/// The typical baseline distance of consecutive body lines, as a multiple of font size.
fn line_spacing(pages: &[Vec<Line>]) -> f32 {
    let mut ratios: Vec<f32> = Vec::new();
    for lines in pages {
        for pair in lines.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.size <= 0.0 || (a.size - b.size).abs() > 0.05 * a.size {
                continue;
            }
            let ratio = (a.y - b.y) / a.size;
            if (0.9..2.2).contains(&ratio) {
                ratios.push(ratio);
            }
        }
    }
    if ratios.is_empty() {
        return 1.2;
    }
    let mid = ratios.len() / 2;
    ratios.select_nth_unstable_by(mid, f32::total_cmp);
    ratios[mid]
}

/// Running headers and footers: lines at the top or bottom of a page, set apart from the
/// body, whose text (digits ignored) recurs in the same place on several pages.
mod furniture {
    use super::Line;
    use std::collections::HashMap;

    /// Pages a header text must appear on before it counts as page furniture.
    const MIN_PAGES: usize = 3;

    #[derive(Hash, PartialEq, Eq, Clone, Copy)]
    enum Zone {
        Top,
        Bottom,
    }

    /// For every line of every page, whether it is furniture to drop. The first occurrence of
    /// each repeated header text stays in the body (kept once); bare page numbers never do.
    pub(super) fn detect(pages: &[Vec<Line>], spacing: f32) -> Vec<Vec<bool>> {
        let mut candidates: Vec<Vec<(usize, Zone, String)>> = Vec::with_capacity(pages.len());
        let mut counts: HashMap<(Zone, String), usize> = HashMap::new();
        for lines in pages {
            let found = page_candidates(lines, spacing);
            let mut seen = std::collections::HashSet::new();
            for (_, zone, key) in &found {
                if seen.insert((*zone, key.clone())) {
                    *counts.entry((*zone, key.clone())).or_default() += 1;
                }
            }
            candidates.push(found);
        }
        let mut kept_once = std::collections::HashSet::new();
        let mut flags: Vec<Vec<bool>> = pages.iter().map(|l| vec![false; l.len()]).collect();
        for (page, found) in candidates.into_iter().enumerate() {
            for (idx, zone, key) in found {
                if is_page_number(&key) {
                    flags[page][idx] = true;
                    continue;
                }
                let repeated = counts.get(&(zone, key.clone())).copied().unwrap_or(0) >= MIN_PAGES;
                if repeated && !kept_once.insert(key) {
                    flags[page][idx] = true;
                }
            }
        }
        flags
    }

    /// Up to two lines at each end of the page, each separated from the body by more than a
    /// line's distance (a header may span two lines: the outer one qualifies when the inner
    /// one does).
    fn page_candidates(lines: &[Line], spacing: f32) -> Vec<(usize, Zone, String)> {
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by(|&a, &b| lines[b].y.total_cmp(&lines[a].y));
        let n = order.len();
        let mut out = Vec::new();
        if n < 2 {
            return out;
        }
        let apart = |a: usize, b: usize| {
            let (la, lb) = (&lines[a], &lines[b]);
            (la.y - lb.y).abs() > 1.3 * spacing * la.size.max(lb.size)
        };
        let depth = 2.min(n - 1);
        // Top: inner candidates first so an outer one can lean on them.
        let mut inner_ok = false;
        for k in (0..depth).rev() {
            let ok = apart(order[k], order[k + 1]) || (inner_ok && k + 1 < depth);
            if ok {
                out.push((order[k], Zone::Top, normalise(&lines[order[k]].text)));
            }
            inner_ok = ok;
        }
        let mut inner_ok = false;
        for k in (0..depth).rev() {
            let (line, toward_body) = (order[n - 1 - k], order[n - 2 - k]);
            if out.iter().any(|(i, _, _)| *i == line) {
                continue;
            }
            let ok = apart(line, toward_body) || (inner_ok && k + 1 < depth);
            if ok {
                out.push((line, Zone::Bottom, normalise(&lines[line].text)));
            }
            inner_ok = ok;
        }
        out
    }

    /// Lowercase, digits folded to `#`, whitespace collapsed.
    pub(super) fn normalise(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last_hash = false;
        for word in text.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !last_hash {
                        out.push('#');
                    }
                    last_hash = true;
                } else {
                    out.extend(c.to_lowercase());
                    last_hash = false;
                }
            }
            last_hash = false;
        }
        out
    }

    /// "#", "- # -", "page #", "# / #", "#/#" and lowercase roman numerals.
    pub(super) fn is_page_number(key: &str) -> bool {
        let stripped: String = key
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '–' | '—' | '/' | '|' | '.'))
            .collect();
        let stripped = stripped.strip_prefix("page").unwrap_or(&stripped);
        let stripped = stripped.replace("of", "");
        if !stripped.is_empty() && stripped.chars().all(|c| c == '#') {
            return true;
        }
        stripped.len() <= 7 && !stripped.is_empty() && stripped.chars().all(|c| "ivxlc".contains(c))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn page_number_keys() {
            assert!(is_page_number(&normalise("17")));
            assert!(is_page_number(&normalise("- 17 -")));
            assert!(is_page_number(&normalise("Page 3 of 12")));
            assert!(is_page_number(&normalise("xiv")));
            assert!(!is_page_number(&normalise("Chapter 3")));
            assert_eq!(normalise("Chapter 12. Setup  2"), "chapter #. setup #");
        }
    }
}

/// Heading detection: from the document outline when it can be matched to the text, else
/// from font sizes larger than the body text (and bold numbered section titles).
mod headings {
    use super::outline::Entry;
    use super::{BlockKind, Paragraph};
    use crate::{Budget, Result};
    use std::collections::HashMap;

    /// The font size carrying the most text (rounded to half points).
    pub(super) fn body_size(pages: &[Vec<Paragraph>]) -> f32 {
        let mut tally: HashMap<i32, usize> = HashMap::new();
        for p in pages.iter().flatten() {
            *tally.entry((p.size * 2.0).round() as i32).or_default() += p.text.len();
        }
        tally
            .into_iter()
            .max_by_key(|(s, n)| (*n, *s))
            .map(|(s, _)| s as f32 / 2.0)
            .unwrap_or(10.0)
    }

    pub(super) fn classify(
        pages: &[Vec<Paragraph>],
        outline: &[Entry],
        budget: &Budget,
    ) -> Result<Vec<Vec<BlockKind>>> {
        let mut kinds: Vec<Vec<BlockKind>> = pages
            .iter()
            .map(|p| vec![BlockKind::Paragraph; p.len()])
            .collect();
        if !outline.is_empty() {
            let matched = from_outline(pages, outline, &mut kinds, budget)?;
            if matched * 3 >= outline.len() && matched > 0 {
                return Ok(kinds);
            }
            kinds = pages
                .iter()
                .map(|p| vec![BlockKind::Paragraph; p.len()])
                .collect();
        }
        from_sizes(pages, &mut kinds);
        Ok(kinds)
    }

    fn squash(text: &str) -> String {
        text.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    }

    /// Matches every short paragraph of a page against the outline titles pointing at that
    /// page: paragraphs × titles, so a hostile outline aiming 20 000 titles at one long page
    /// is work the deadline must see.
    fn from_outline(
        pages: &[Vec<Paragraph>],
        outline: &[Entry],
        kinds: &mut [Vec<BlockKind>],
        budget: &Budget,
    ) -> Result<usize> {
        let mut by_page: HashMap<u32, Vec<&Entry>> = HashMap::new();
        for e in outline {
            by_page.entry(e.page).or_default().push(e);
        }
        let mut matched = 0;
        for (i, paras) in pages.iter().enumerate() {
            let Some(entries) = by_page.get(&(i as u32 + 1)) else {
                continue;
            };
            let titles: Vec<(String, u8)> = entries
                .iter()
                .map(|e| (squash(&e.title), e.depth))
                .collect();
            let mut used = vec![false; titles.len()];
            for (j, para) in paras.iter().enumerate() {
                if para.lines > 4 || para.text.len() > 300 {
                    continue;
                }
                budget.tick()?;
                let p = squash(&para.text);
                if p.is_empty() {
                    continue;
                }
                let hit = titles.iter().enumerate().find(|(k, (t, _))| {
                    !used[*k]
                        && !t.is_empty()
                        && (p == *t
                            || (p.ends_with(t.as_str()) && p.len() - t.len() <= 14)
                            || (t.ends_with(p.as_str()) && p.len() >= 4 && t.len() - p.len() <= 14))
                });
                if let Some((k, (_, depth))) = hit {
                    used[k] = true;
                    matched += 1;
                    kinds[i][j] = BlockKind::Heading {
                        level: (depth + 1).min(6),
                    };
                }
            }
        }
        Ok(matched)
    }

    fn from_sizes(pages: &[Vec<Paragraph>], kinds: &mut [Vec<BlockKind>]) {
        let body = body_size(pages);
        let is_candidate = |p: &Paragraph| {
            p.lines <= 3
                && p.text.len() <= 200
                && p.size >= body * 1.15
                && p.text.chars().any(char::is_alphabetic)
        };
        let mut sizes: Vec<i32> = pages
            .iter()
            .flatten()
            .filter(|p| is_candidate(p))
            .map(|p| (p.size * 2.0).round() as i32)
            .collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes.dedup();
        // Left margins of odd and even pages (they differ in two-sided layouts).
        let mut margins = [f32::MAX; 2];
        for (i, paras) in pages.iter().enumerate() {
            let page_min = paras.iter().map(|p| p.x0).fold(f32::MAX, f32::min);
            margins[i % 2] = margins[i % 2].min(page_min);
        }
        for (i, paras) in pages.iter().enumerate() {
            let margin = margins[i % 2];
            let mut starts: Vec<f32> = paras.iter().map(|p| p.x0).collect();
            starts.sort_unstable_by(f32::total_cmp);
            let typical_start = starts.get(starts.len() / 2).copied().unwrap_or(margin);
            for (j, p) in paras.iter().enumerate() {
                if is_candidate(p) {
                    let key = (p.size * 2.0).round() as i32;
                    let rank = sizes.iter().position(|s| *s == key).unwrap_or(0);
                    kinds[i][j] = BlockKind::Heading {
                        level: (rank as u8 + 1).min(6),
                    };
                } else if is_numbered_bold_title(p, body)
                    || is_outdented_caps_title(p, body, margin, typical_start)
                {
                    kinds[i][j] = BlockKind::Heading {
                        level: (sizes.len() as u8 + 1).min(6),
                    };
                }
            }
        }
    }

    /// Manual-page style section titles: "DESCRIPTION" in bold capitals on a line of its own
    /// at the left margin, with most of the page's text indented further.
    fn is_outdented_caps_title(p: &Paragraph, body: f32, margin: f32, typical_start: f32) -> bool {
        p.lines == 1
            && p.bold_share >= 0.9
            && p.size >= body * 0.95
            && p.text.split_whitespace().count() <= 6
            && p.text.chars().any(char::is_alphabetic)
            && !p.text.chars().any(char::is_lowercase)
            && p.x0 <= margin + 1.0
            && typical_start > margin + p.size
    }

    /// "3.2.1 Configuring the server" set in bold at body size on a line of its own.
    fn is_numbered_bold_title(p: &Paragraph, body: f32) -> bool {
        if p.lines != 1 || p.bold_share < 0.9 || p.size < body * 0.95 || p.text.len() > 120 {
            return false;
        }
        let mut parts = p.text.splitn(2, ' ');
        let number = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit() || c == '.')
            && number.chars().next().is_some_and(|c| c.is_ascii_digit())
            && rest.chars().next().is_some_and(char::is_alphabetic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
        super::parse(bytes, &Budget::unlimited())
    }

    fn assemble(
        pages: Vec<Vec<Line>>,
        outline: &[outline::Entry],
        title: Option<String>,
    ) -> PdfExtraction {
        super::assemble(pages, outline, title, &Budget::unlimited()).expect("no budget to exceed")
    }

    fn line(text: &str, y: f32, size: f32) -> Line {
        Line {
            text: text.into(),
            y,
            x0: 72.0,
            x1: 72.0 + text.len() as f32 * size * 0.5,
            size,
            bold_share: 0.0,
        }
    }

    fn page(n: u32, body: &[&str]) -> Vec<Line> {
        let mut lines = vec![line("The Handbook of Things", 770.0, 9.0)];
        let mut y = 700.0;
        for text in body {
            lines.push(line(text, y, 10.0));
            y -= 12.0;
        }
        lines.push(line(&n.to_string(), 60.0, 10.0));
        lines
    }

    #[test]
    fn running_headers_and_page_numbers_are_dropped_once_kept() {
        let pages: Vec<Vec<Line>> = (1..=4)
            .map(|n| {
                page(
                    n,
                    &[&format!("Body text of page {n} goes here."), "More text."],
                )
            })
            .collect();
        let out = assemble(pages, &[], None);
        let text = &out.document.text;
        assert_eq!(text.matches("The Handbook of Things").count(), 1, "{text}");
        assert!(!text.contains("\n3\n") && !text.ends_with('4'), "{text}");
        assert!(text.contains("Body text of page 3 goes here."));
        assert_eq!(
            out.furniture[2],
            vec!["The Handbook of Things".to_owned(), "3".to_owned()]
        );
        let pages: Vec<Option<u32>> = out.document.blocks.iter().map(|b| b.page).collect();
        assert!(pages.contains(&Some(4)));
    }

    #[test]
    fn larger_fonts_become_headings_and_title() {
        let pages = vec![vec![
            line("A Guide", 750.0, 20.0),
            line("Introduction", 700.0, 14.0),
            line(
                "Plain body text that is long enough to dominate the page.",
                680.0,
                10.0,
            ),
            line(
                "More plain body text that keeps going and going.",
                668.0,
                10.0,
            ),
        ]];
        let out = assemble(pages, &[], None);
        let kinds: Vec<BlockKind> = out.document.blocks.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BlockKind::Heading { level: 1 },
                BlockKind::Heading { level: 2 },
                BlockKind::Paragraph
            ]
        );
        assert_eq!(out.document.title.as_deref(), Some("A Guide"));
    }

    #[test]
    fn outline_entries_mark_headings_by_depth() {
        let pages = vec![vec![
            line("1 Getting started", 700.0, 10.0),
            line(
                "Body text that is long enough to dominate the page.",
                670.0,
                10.0,
            ),
            line("1.1 Installing", 640.0, 10.0),
            line("More body text here that keeps going.", 610.0, 10.0),
        ]];
        let outline = vec![
            outline::Entry {
                title: "Getting started".into(),
                page: 1,
                depth: 0,
            },
            outline::Entry {
                title: "Installing".into(),
                page: 1,
                depth: 1,
            },
        ];
        let out = assemble(pages, &outline, Some("Manual".into()));
        let kinds: Vec<BlockKind> = out.document.blocks.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BlockKind::Heading { level: 1 },
                BlockKind::Paragraph,
                BlockKind::Heading { level: 2 },
                BlockKind::Paragraph
            ]
        );
        assert_eq!(out.document.title.as_deref(), Some("Manual"));
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pdf")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run tests/fixtures/make-pdf-fixtures.sh)",
                path.display()
            )
        })
    }

    fn block_of<'d>(doc: &'d ParsedDocument, needle: &str) -> &'d crate::document::Block {
        doc.blocks
            .iter()
            .find(|b| doc.block_text(b).contains(needle))
            .unwrap_or_else(|| panic!("no block contains {needle:?} in:\n{}", doc.text))
    }

    #[test]
    fn groff_pdf_hyphenation_is_joined() {
        let doc = parse(&fixture("groff-ms.pdf")).expect("parses");
        // groff broke "particu-lar", "in-comprehensibility", "electroen-cephalography"… at line ends.
        for word in [
            "particular",
            "incomprehensibility",
            "electroencephalography",
            "counterrevolutionaries",
        ] {
            assert_eq!(
                doc.text.matches(word).count(),
                if word == "particular" { 1 } else { 3 },
                "{word} in\n{}",
                doc.text
            );
        }
        assert!(!doc.text.contains("particu-"), "{}", doc.text);
        assert!(
            !doc.text
                .lines()
                .any(|l| l.ends_with("in-") || l.ends_with("coun-")),
            "{}",
            doc.text
        );
    }

    #[test]
    fn groff_pdf_keeps_pages_paragraphs_and_headings() {
        let doc = parse(&fixture("groff-ms.pdf")).expect("parses");
        assert_eq!(doc.pages, Some(3));
        assert_eq!(block_of(&doc, "Marker sentence for page two").page, Some(2));
        assert_eq!(
            block_of(&doc, "Marker sentence for page three").page,
            Some(3)
        );
        assert_eq!(block_of(&doc, "First paragraph sentence").page, Some(1));
        // ms prints "- N -" page headers; they are page furniture, not text.
        assert!(
            !doc.text.contains("-2-") && !doc.text.contains("- 2 -"),
            "{}",
            doc.text
        );
        let first = block_of(&doc, "First paragraph sentence");
        let second = block_of(&doc, "Second paragraph sentence");
        assert_ne!(first, second, "paragraphs must be separate blocks");
        assert_eq!(first.kind, BlockKind::Paragraph);
        assert!(matches!(
            block_of(&doc, "Introduction").kind,
            BlockKind::Heading { .. }
        ));
        assert!(matches!(
            block_of(&doc, "Details").kind,
            BlockKind::Heading { .. }
        ));
        assert_eq!(doc.title.as_deref(), Some("Fixture Handbook"));
        // Lines inside a paragraph stay separate lines.
        assert!(
            doc.block_text(block_of(&doc, "Marker sentence for page two"))
                .lines()
                .count()
                > 1
        );
    }

    #[test]
    fn password_protected_pdf_is_an_encryption_error() {
        assert!(matches!(
            parse(&fixture("encrypted.pdf")),
            Err(Error::Encrypted)
        ));
    }

    #[test]
    fn owner_password_only_pdf_opens_like_a_viewer_would() {
        let doc = parse(&fixture("owner-only.pdf")).expect("readable without a password");
        assert!(doc.text.contains("Marker sentence for page three"));
    }

    #[test]
    fn image_only_pdf_warns_about_missing_text_layer() {
        let doc = parse(&fixture("scanned.pdf")).expect("not an error");
        assert!(doc.text.is_empty());
        assert_eq!(doc.warnings, vec![NO_TEXT_WARNING.to_owned()]);
    }

    #[test]
    fn truncated_pdf_is_a_pdf_error() {
        let bytes = fixture("groff-ms.pdf");
        for cut in [bytes.len() / 2, bytes.len() - 40, 100] {
            assert!(
                matches!(parse(&bytes[..cut]), Err(Error::Pdf(_))),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn damaged_pdfs_never_panic() {
        let bytes = fixture("groff-ms.pdf");
        // Overwrite a window at many offsets: every outcome is fine except a panic.
        for offset in (0..bytes.len()).step_by(bytes.len() / 60 + 1) {
            let mut damaged = bytes.clone();
            let end = (offset + 64).min(damaged.len() - 10);
            for b in damaged.iter_mut().take(end).skip(offset) {
                *b = b'7';
            }
            let _ = parse(&damaged);
        }
    }

    #[test]
    fn garbage_is_a_pdf_error() {
        assert!(matches!(parse(b"hello world"), Err(Error::Pdf(_))));
        assert!(matches!(
            parse(b"%PDF-1.4\n1 0 obj\n<<"),
            Err(Error::Pdf(_))
        ));
        assert!(matches!(
            parse(b"%PDF-1.4\ngarbage\n%%EOF\n"),
            Err(Error::Pdf(_))
        ));
    }
}
