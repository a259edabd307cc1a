//! Page layout from positioned glyphs: glyphs → text lines (word gaps become spaces,
//! baseline changes become line breaks) and lines → paragraphs (vertical gaps, indentation,
//! font size changes), with end-of-line hyphenation joined.

use super::content::PageGlyphs;

/// A horizontal gap wider than this fraction of the font size separates words. Kerning
/// stays well below it, the narrowest justified inter-word space (≈0.2 em) above.
const WORD_GAP: f32 = 0.15;
/// A baseline shift beyond this fraction of the font size starts a new line (super- and
/// subscripts stay below it).
const BASELINE_SHIFT: f32 = 0.5;

/// One line of text on a page.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub text: String,
    /// Baseline (of the line's largest glyphs) in default user space.
    pub y: f32,
    pub x0: f32,
    pub x1: f32,
    /// Font size covering most of the line's characters.
    pub size: f32,
    /// Share of characters set in a bold font.
    pub bold_share: f32,
}

struct LineBuilder {
    text: String,
    y: f32,
    y_size: f32,
    x0: f32,
    x1: f32,
    /// (size rounded to 0.1, chars) tallies for the dominant size.
    sizes: Vec<(i32, usize)>,
    chars: usize,
    bold_chars: usize,
    pending_space: bool,
    last_glyph: Option<(f32, f32, u32, u32)>,
}

impl LineBuilder {
    fn finish(self) -> Option<Line> {
        let text = self.text.trim_end().to_owned();
        if text.is_empty() {
            return None;
        }
        let size = self
            .sizes
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|(s, _)| *s as f32 / 10.0)
            .unwrap_or(self.y_size);
        Some(Line {
            text,
            y: self.y,
            x0: self.x0,
            x1: self.x1,
            size,
            bold_share: if self.chars == 0 {
                0.0
            } else {
                self.bold_chars as f32 / self.chars as f32
            },
        })
    }
}

/// Groups a page's glyphs into lines, in content-stream order.
pub(super) fn lines(page: &PageGlyphs) -> Vec<Line> {
    let mut out = Vec::new();
    let mut current: Option<LineBuilder> = None;
    for g in &page.glyphs {
        let text = page.glyph_text(g);
        let is_space = text.chars().all(char::is_whitespace);
        if is_space {
            if let Some(line) = current.as_mut() {
                line.pending_space |= g.x_end - g.x > WORD_GAP * g.size;
            }
            continue;
        }
        let size = g.size.max(0.1);
        if let Some(line) = current.as_mut() {
            let reference = size.max(line.y_size);
            let same_line =
                (g.y - line.y).abs() <= BASELINE_SHIFT * reference && g.x >= line.x1 - reference;
            if same_line {
                // Some producers draw text twice for a bold effect: skip exact overprints.
                if let Some((lx, ly, ls, le)) = line.last_glyph {
                    if (g.x - lx).abs() < 0.05 * size
                        && (g.y - ly).abs() < 0.05 * size
                        && page.text[ls as usize..le as usize] == *text
                    {
                        continue;
                    }
                }
                let gap = g.x - line.x1;
                if (line.pending_space || gap > WORD_GAP * size.min(line.y_size))
                    && !line.text.ends_with(' ')
                {
                    line.text.push(' ');
                }
                line.pending_space = false;
                line.text.push_str(text);
                line.x1 = g.x_end.max(g.x);
                if size > line.y_size * 1.05 {
                    // The largest glyphs define the baseline (a line opening with a superscript).
                    line.y = g.y;
                    line.y_size = size;
                }
                tally(line, g.size, text, g.bold);
                line.last_glyph = Some((g.x, g.y, g.start, g.end));
                continue;
            }
        }
        if let Some(done) = current.take().and_then(LineBuilder::finish) {
            out.push(done);
        }
        let mut line = LineBuilder {
            text: text.to_owned(),
            y: g.y,
            y_size: size,
            x0: g.x,
            x1: g.x_end.max(g.x),
            sizes: Vec::new(),
            chars: 0,
            bold_chars: 0,
            pending_space: false,
            last_glyph: Some((g.x, g.y, g.start, g.end)),
        };
        tally(&mut line, g.size, text, g.bold);
        current = Some(line);
    }
    if let Some(done) = current.take().and_then(LineBuilder::finish) {
        out.push(done);
    }
    out
}

fn tally(line: &mut LineBuilder, size: f32, text: &str, bold: bool) {
    let n = text.chars().count();
    let key = (size * 10.0).round() as i32;
    match line.sizes.iter_mut().find(|(s, _)| *s == key) {
        Some(entry) => entry.1 += n,
        None => line.sizes.push((key, n)),
    }
    line.chars += n;
    if bold {
        line.bold_chars += n;
    }
}

/// A paragraph: consecutive lines of one text block on one page.
#[derive(Debug, Clone)]
pub(super) struct Paragraph {
    pub text: String,
    pub size: f32,
    pub bold_share: f32,
    pub lines: usize,
    /// Left edge of the first line.
    pub x0: f32,
}

/// Splits a page's lines (already without running headers/footers) into paragraphs.
/// `spacing` is the document's typical baseline distance as a multiple of the font size.
pub(super) fn paragraphs(lines: &[Line], spacing: f32) -> Vec<Paragraph> {
    let right_edge = lines.iter().map(|l| l.x1).fold(f32::MIN, f32::max);
    let mut out: Vec<Paragraph> = Vec::new();
    let mut group: Vec<&Line> = Vec::new();
    for line in lines {
        if let Some(prev) = group.last() {
            if starts_paragraph(prev, line, spacing, right_edge) {
                out.push(join(&group));
                group.clear();
            }
        }
        group.push(line);
    }
    if !group.is_empty() {
        out.push(join(&group));
    }
    out
}

fn starts_paragraph(prev: &Line, cur: &Line, spacing: f32, right_edge: f32) -> bool {
    let size = prev.size.max(cur.size);
    let drop = prev.y - cur.y;
    // Upwards or sideways moves: a new column, a float or out-of-order drawing.
    if drop < 0.3 * size {
        return true;
    }
    if drop > spacing * size * 1.3 {
        return true;
    }
    if (prev.size - cur.size).abs() > 0.12 * prev.size.min(cur.size) {
        return true;
    }
    // Bold lines next to regular ones: a run of heading text against body text.
    if (prev.bold_share > 0.9) != (cur.bold_share > 0.9)
        && (prev.bold_share - cur.bold_share).abs() > 0.8
    {
        return true;
    }
    let short_prev = prev.x1 < right_edge - 3.0 * size;
    // First-line indentation after a line that ended short.
    if cur.x0 > prev.x0 + 0.8 * size && short_prev {
        return true;
    }
    starts_with_bullet(&cur.text)
}

fn starts_with_bullet(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(
        chars.next(),
        Some('•' | '◦' | '▪' | '‣' | '●' | '○' | '■' | '□' | '∗')
    ) && matches!(chars.next(), Some(' ') | None)
}

fn join(lines: &[&Line]) -> Paragraph {
    let mut text = String::new();
    for line in lines {
        if text.is_empty() {
            text.push_str(&line.text);
        } else if joins_hyphenated(&text, &line.text) {
            text.pop();
            text.push_str(&line.text);
        } else {
            text.push('\n');
            text.push_str(&line.text);
        }
    }
    let chars: usize = lines.iter().map(|l| l.text.len()).sum::<usize>().max(1);
    let bold = lines
        .iter()
        .map(|l| l.bold_share * l.text.len() as f32)
        .sum::<f32>()
        / chars as f32;
    let size = lines
        .iter()
        .max_by_key(|l| l.text.len())
        .map(|l| l.size)
        .unwrap_or(0.0);
    Paragraph {
        text,
        size,
        bold_share: bold,
        lines: lines.len(),
        x0: lines.first().map_or(0.0, |l| l.x0),
    }
}

/// Whether a line ending in `-` continues a word broken by hyphenation on the next line:
/// a letter before the hyphen, a lowercase letter after it, and the broken word not a number
/// or an option (`--foo`).
pub(super) fn joins_hyphenated(before: &str, after: &str) -> bool {
    let Some(head) = before.strip_suffix('-') else {
        return false;
    };
    let word: String = head
        .chars()
        .rev()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let Some(last) = word.chars().next() else {
        return false;
    };
    let next_word: &str = after.split_whitespace().next().unwrap_or("");
    // "EVALUA-" + "TION": a capitalised word broken like any other.
    let all_caps = |w: &str| {
        w.chars().filter(|c| c.is_alphabetic()).count() >= 2 && !w.chars().any(char::is_lowercase)
    };
    if word.chars().all(char::is_uppercase) && word.chars().count() >= 2 && all_caps(next_word) {
        return true;
    }
    if !last.is_alphabetic() || word.contains('-') || word.contains('/') {
        return false;
    }
    if word.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    after.chars().next().is_some_and(|c| c.is_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, y: f32, x0: f32, x1: f32) -> Line {
        Line {
            text: text.into(),
            y,
            x0,
            x1,
            size: 10.0,
            bold_share: 0.0,
        }
    }

    #[test]
    fn hyphenation_rule() {
        assert!(joins_hyphenated("the infor-", "mation is"));
        assert!(!joins_hyphenated("the infor-", "Mation"));
        assert!(joins_hyphenated("ARITHMETIC EVALUA-", "TION. If"));
        assert!(!joins_hyphenated("the non-", "Linux ports"));
        assert!(!joins_hyphenated("pages 10-", "twelve"));
        assert!(!joins_hyphenated("use --", "foo"));
        // A line-end hyphen after an explicit one is taken as the explicit compound hyphen.
        assert!(!joins_hyphenated("a copy-on-", "write page"));
        assert!(!joins_hyphenated("no hyphen", "here"));
    }

    #[test]
    fn vertical_gap_and_indent_split_paragraphs() {
        let lines = vec![
            line("First paragraph line one that fills", 700.0, 72.0, 540.0),
            line("the whole measure and ends here.", 688.0, 72.0, 300.0),
            line("Indented second paragraph starts", 676.0, 87.0, 540.0),
            line("and con-", 664.0, 72.0, 540.0),
            line("tinues.", 652.0, 72.0, 120.0),
            line("After a gap.", 620.0, 72.0, 200.0),
        ];
        let paras = paragraphs(&lines, 1.2);
        let texts: Vec<&str> = paras.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "First paragraph line one that fills\nthe whole measure and ends here.",
                "Indented second paragraph starts\nand continues.",
                "After a gap.",
            ]
        );
    }
}
