//! Caps the element nesting of HTML before html5ever sees it. html5ever checks "is there a
//! `<p>` in scope" by walking its stack of open elements, so every start tag costs the depth
//! it is opened at and a document of `n` nested `<div>`s costs `n²` (200 000 of them, 2.2 MB,
//! take minutes). Browsers' parsers stop nesting at 512; this pre-pass does the same:
//! a start tag that would open an element deeper than the cap is removed, and so is its end
//! tag, so the element's content joins its ancestor at the cap. Text is never removed; a
//! removed block-level tag leaves a `<br>` so that words stay apart.
//!
//! The pass is a light tokenizer (comments, raw-text elements, quoted attribute values) with
//! the stack of open elements approximated: void elements, self-closing tags in SVG and
//! MathML, the common implied end tags (`<p>`, `<li>`, `<dd>`, cells and rows) and the scope
//! boundaries that make html5ever ignore an end tag (`</div>` inside a `<table>` opened
//! after the div) are modelled, so the estimate errs deep, never shallow, for the nesting
//! that makes html5ever slow. A document that never reaches the cap is passed on unchanged.

use std::borrow::Cow;
use std::collections::HashMap;

/// Elements without content: they never stay open.
const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image", "img",
    "input", "keygen", "link", "meta", "param", "source", "track", "wbr",
];

/// Elements whose content is raw text up to their end tag: no tags inside.
const RAW_TEXT: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript",
];

/// Elements that bound html5ever's "has an element in scope" search: an end tag whose
/// element lies below one of these is ignored.
const SCOPE_BOUNDARIES: &[&str] = &[
    "applet",
    "caption",
    "html",
    "table",
    "td",
    "th",
    "marquee",
    "object",
    "template",
    "foreignobject",
    "desc",
    "mi",
    "mo",
    "mn",
    "ms",
    "mtext",
    "annotation-xml",
];

/// Formatting elements html5ever keeps in its list of active formatting elements until their
/// own end tag, re-opening all of them inside each new block: left open, `n` of them cost
/// `n²` (its "Noah's Ark" limit only counts identical ones). Text extraction ignores them, so
/// beyond this many open at once their tags are removed. `<a>` is not among them: html5ever
/// closes an open one at the next, and link density decides what is navigation.
const FORMATTING: &[&str] = &[
    "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u",
];
const MAX_OPEN_FORMATTING: usize = 16;

/// Open elements an end tag is looked for among: an end tag whose element is deeper is taken
/// as closing nothing, which errs deep (safe) and keeps the pass linear.
const MAX_CLOSE_WALK: usize = 64;

/// Start tags that close an open `<p>` at the top of the stack (`<table>` does only in
/// no-quirks mode, so it is left out: erring deep).
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "listing",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "ul",
    "li",
    "dd",
    "dt",
];

/// Block-level elements: removing one of their tags leaves a line break in its place.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// Open elements between two scope boundaries, with how often each name occurs among them,
/// so that an end tag with no element to close is found out without walking the stack.
#[derive(Default)]
struct Segment {
    names: Vec<Box<str>>,
    counts: HashMap<Box<str>, usize>,
}

/// The approximate stack of open elements, as segments split at scope boundaries (each
/// boundary element starts a new segment).
struct Stack {
    segments: Vec<Segment>,
    depth: usize,
    /// Open `<svg>`/`<math>` elements: inside them `<x/>` closes itself.
    foreign: usize,
}

impl Stack {
    fn top(&self) -> Option<&str> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.names.last())
            .map(|n| &**n)
    }

    fn push(&mut self, name: &str) {
        if SCOPE_BOUNDARIES.contains(&name) || self.segments.is_empty() {
            self.segments.push(Segment::default());
        }
        let seg = self
            .segments
            .last_mut()
            .expect("a segment was just ensured");
        seg.names.push(name.into());
        *seg.counts.entry(name.into()).or_default() += 1;
        self.depth += 1;
        if matches!(name, "svg" | "math") {
            self.foreign += 1;
        }
    }

    fn pop(&mut self) {
        let Some(seg) = self.segments.last_mut() else {
            return;
        };
        if let Some(name) = seg.names.pop() {
            if let Some(c) = seg.counts.get_mut(&name) {
                *c -= 1;
            }
            self.depth -= 1;
            if matches!(&*name, "svg" | "math") {
                self.foreign -= 1;
            }
        }
        if seg.names.is_empty() {
            self.segments.pop();
        }
    }

    /// Closes the innermost open `name` if it is in scope (not below a scope boundary, nor
    /// for `</li>` and `</p>` below the list or button that bounds their scope); whether one
    /// was.
    fn close(&mut self, name: &str) -> bool {
        let Some(seg) = self.segments.last() else {
            return false;
        };
        if seg.counts.get(name).copied().unwrap_or(0) == 0 {
            return false;
        }
        let extra_boundaries: &[&str] = match name {
            "li" => &["ol", "ul"],
            "p" => &["button"],
            _ => &[],
        };
        let Some(up) = seg
            .names
            .iter()
            .rev()
            .take(MAX_CLOSE_WALK)
            .take_while(|n| &***n == name || !extra_boundaries.contains(&&***n))
            .position(|n| &**n == name)
        else {
            return false;
        };
        for _ in 0..=up {
            self.pop();
        }
        true
    }

    /// The implied end tags html5ever generates before opening `name`, as far as they can be
    /// seen at the top of the stack.
    fn close_implied(&mut self, name: &str) {
        let top_in =
            |stack: &Stack, names: &[&str]| stack.top().is_some_and(|t| names.contains(&t));
        // An open <p> closes first, as html5ever does before looking at list items.
        if CLOSES_P.contains(&name) && top_in(self, &["p"]) {
            self.pop();
        }
        match name {
            "li" if top_in(self, &["li"]) => self.pop(),
            "dd" | "dt" if top_in(self, &["dd", "dt"]) => self.pop(),
            "td" | "th" if top_in(self, &["td", "th"]) => self.pop(),
            "tr" | "tbody" | "thead" | "tfoot" => {
                if top_in(self, &["td", "th"]) {
                    self.pop();
                }
                if top_in(self, &["tr"]) {
                    self.pop();
                }
                if name != "tr" && top_in(self, &["tbody", "thead", "tfoot"]) {
                    self.pop();
                }
            }
            "option" | "optgroup" => {
                if top_in(self, &["option"]) {
                    self.pop();
                }
                if name == "optgroup" && top_in(self, &["optgroup"]) {
                    self.pop();
                }
            }
            _ => {}
        }
        if top_in(self, &["h1", "h2", "h3", "h4", "h5", "h6"])
            && matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
        {
            self.pop();
        }
    }
}

/// `source` with elements nested deeper than `max_depth` flattened into their ancestor at
/// that depth; borrowed unchanged when no element is that deep.
pub(super) fn cap_nesting(source: &str, max_depth: usize) -> Cow<'_, str> {
    // Fewer tags than either cap cannot reach it.
    if source.bytes().filter(|&b| b == b'<').count() <= max_depth.min(MAX_OPEN_FORMATTING) {
        return Cow::Borrowed(source);
    }
    let bytes = source.as_bytes();
    let mut stack = Stack {
        segments: Vec::new(),
        depth: 0,
        foreign: 0,
    };
    // Names of the removed start tags whose end tags are still to come, per name.
    let mut removed: HashMap<Box<str>, usize> = HashMap::new();
    // Formatting start tags passed on whose end tag has not come (an over-estimate).
    let mut open_formatting = 0usize;
    let mut out: Option<String> = None;
    // Bytes of `source` before this have been copied to `out` (or need not be).
    let mut copied = 0;
    let mut pos = 0;
    let replace =
        |out: &mut Option<String>, copied: &mut usize, from: usize, to: usize, with: &str| {
            let out = out.get_or_insert_with(|| String::with_capacity(source.len()));
            out.push_str(&source[*copied..from]);
            out.push_str(with);
            *copied = to;
        };
    while let Some(offset) = source[pos..].find('<') {
        let lt = pos + offset;
        let rest = &bytes[lt + 1..];
        if rest.starts_with(b"!--") {
            pos = match source[lt + 4..].find("-->") {
                Some(end) => lt + 4 + end + 3,
                None => break,
            };
            continue;
        }
        if rest.first().is_some_and(|&b| b == b'!' || b == b'?') {
            pos = tag_end(bytes, lt + 1);
            continue;
        }
        let is_end = rest.first() == Some(&b'/');
        let name_start = lt + 1 + usize::from(is_end);
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            pos = lt + 1;
            continue;
        }
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
            .map_or(bytes.len(), |p| name_start + p);
        let name = source[name_start..name_end].to_ascii_lowercase();
        let end = tag_end(bytes, name_end);
        let self_closing = end >= 2 && bytes[end - 2] == b'/';
        pos = end;
        if is_end {
            // Removed elements are the innermost open ones: an end tag closes them first.
            if removed.get(name.as_str()).is_none_or(|n| *n == 0) {
                if FORMATTING.contains(&name.as_str()) {
                    open_formatting = open_formatting.saturating_sub(1);
                }
                stack.close(&name);
                continue;
            }
            if let Some(n) = removed.get_mut(name.as_str()) {
                *n -= 1;
                let with = if BLOCK.contains(&name.as_str()) {
                    "<br>"
                } else {
                    ""
                };
                replace(&mut out, &mut copied, lt, end, with);
            }
            continue;
        }
        if VOID.contains(&name.as_str()) || (self_closing && stack.foreign > 0) {
            continue;
        }
        stack.close_implied(&name);
        let formatting = FORMATTING.contains(&name.as_str());
        if formatting && open_formatting >= MAX_OPEN_FORMATTING {
            *removed.entry(name.as_str().into()).or_default() += 1;
            replace(&mut out, &mut copied, lt, end, "");
            continue;
        }
        open_formatting += usize::from(formatting);
        if stack.depth >= max_depth {
            *removed.entry(name.as_str().into()).or_default() += 1;
            let with = if BLOCK.contains(&name.as_str()) {
                "<br>"
            } else {
                ""
            };
            replace(&mut out, &mut copied, lt, end, with);
            continue;
        }
        stack.push(&name);
        if name == "plaintext" {
            break;
        }
        if RAW_TEXT.contains(&name.as_str()) {
            pos = raw_text_end(source, pos, &name);
        }
    }
    match out {
        None => Cow::Borrowed(source),
        Some(mut out) => {
            out.push_str(&source[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Just past the `>` closing the tag whose name ends at `from`, skipping quoted attribute
/// values (a `>` inside one does not close the tag); the end of input when unclosed.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    let mut after_equals = false;
    while i < bytes.len() {
        match bytes[i] {
            b'>' => return i + 1,
            b'"' | b'\'' if after_equals => {
                let quote = bytes[i];
                i = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(bytes.len(), |p| i + 1 + p);
                after_equals = false;
            }
            b'=' => after_equals = true,
            b if b.is_ascii_whitespace() => {}
            _ => after_equals = false,
        }
        i += 1;
    }
    bytes.len()
}

/// Where the end tag of raw-text element `name` starts (case-insensitively), searching from
/// `from`; the end of input when it never comes.
fn raw_text_end(source: &str, from: usize, name: &str) -> usize {
    let bytes = source.as_bytes();
    let mut pos = from;
    while let Some(offset) = source[pos..].find("</") {
        let at = pos + offset;
        let candidate = &bytes[at + 2..];
        if candidate.len() >= name.len()
            && candidate[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            return at;
        }
        pos = at + 2;
    }
    source.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass_unchanged() {
        let html = "<html><body><div><p>One<p>Two<ul><li>a<li>b</ul><table><tr><td>x<td>y<tr><td>z</table>\
                    <svg><path d='M0 0'/><path/></svg><script>if (a < b) { x = '<div>'; }</script></div>";
        assert!(matches!(cap_nesting(html, 8), Cow::Borrowed(_)));
    }

    #[test]
    fn nesting_beyond_the_cap_is_flattened_keeping_text() {
        let html = "<div><div><div><div><span>deep</span> text</div></div></div></div><p>after</p>";
        let capped = cap_nesting(html, 2);
        assert_eq!(
            capped,
            "<div><div><br><br>deep text<br><br></div></div><p>after</p>"
        );
    }

    #[test]
    fn unclosed_paragraphs_and_items_do_not_count_as_nesting() {
        let mut html = String::new();
        for i in 0..100 {
            html.push_str(&format!("<p>para {i}<li>item {i}"));
        }
        assert!(matches!(cap_nesting(&html, 10), Cow::Borrowed(_)));
    }

    #[test]
    fn end_tags_below_a_scope_boundary_do_not_shrink_the_estimate() {
        // html5ever ignores each </div>: the object elements keep it out of scope.
        let html = "<div><object></div>".repeat(50);
        let capped = cap_nesting(&html, 20);
        assert!(matches!(capped, Cow::Owned(_)), "{capped}");
    }

    #[test]
    fn formatting_left_open_beyond_the_limit_is_removed() {
        let html = "<div><b>x</div>".repeat(MAX_OPEN_FORMATTING + 2);
        let capped = cap_nesting(&html, 512);
        assert_eq!(capped.matches("<b>").count(), MAX_OPEN_FORMATTING);
        assert_eq!(capped.matches('x').count(), MAX_OPEN_FORMATTING + 2);
        // Closed ones do not count.
        let closed = "<div><b>x</b></div>".repeat(MAX_OPEN_FORMATTING + 2);
        assert!(matches!(cap_nesting(&closed, 512), Cow::Borrowed(_)));
    }

    #[test]
    fn quoted_angle_brackets_and_comments_are_not_tags() {
        let html = format!("{}<a title='<div>'>x</a>", "<!-- <div> -->".repeat(20));
        assert!(matches!(cap_nesting(&html, 2), Cow::Borrowed(_)));
    }
}
