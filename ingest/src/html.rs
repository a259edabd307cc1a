//! HTML files: charset detection, and the walk from an html5ever DOM (via `scraper`) to
//! heading and paragraph blocks. Scripts, styles, forms and site navigation (nav bars,
//! DocBook/Publican "Prev | Up | Next" headers and footers, menus, tables of contents) are
//! dropped so that only the body text of the page gets indexed.
//!
//! The work is bounded: nesting is capped before html5ever builds its tree (`html::nesting`),
//! and the source is fed to it in slices with the deadline checked between them.

mod nesting;

use crate::document::{BlockKind, ParsedDocument};
use crate::{Budget, Error, Result};
use ego_tree::iter::Edge;
use ego_tree::{NodeId, NodeRef};
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};
use html5ever::tendril::TendrilSink;
use scraper::node::Element;
use scraper::{Html, HtmlTreeSink, Node};

/// How far into the file a `<meta charset>` declaration is looked for (the HTML standard
/// says 1024 bytes; real pages sometimes put a long comment first).
const CHARSET_PRESCAN_BYTES: usize = 4096;

/// Upper bound on nodes inspected when classifying a subtree (layout table, link density),
/// so pathological documents cannot make the walk quadratic.
const MAX_INSPECTED_NODES: usize = 5000;

/// Source bytes html5ever parses between two looks at the deadline: small enough that even
/// at the nesting cap a slice takes milliseconds.
const PARSE_SLICE_BYTES: usize = 64 * 1024;

/// Parses an HTML document into headings and paragraph-like blocks, with elements nested
/// deeper than `max_depth` flattened into their ancestor at that depth.
pub fn parse(bytes: &[u8], max_depth: usize, budget: &Budget) -> Result<ParsedDocument> {
    let source = decode(bytes)?;
    budget.check()?;
    let capped = nesting::cap_nesting(&source, max_depth);
    budget.check()?;
    let html = parse_html(&capped, budget)?;
    let mut doc = extract(&html, true);
    if doc.blocks.is_empty() {
        // Everything looked like navigation (e.g. a table-of-contents page): index all of it
        // rather than nothing.
        doc = extract(&html, false);
    }
    Ok(doc)
}

/// html5ever's tree of `source`, fed in slices so that the deadline is seen while it works.
fn parse_html(source: &str, budget: &Budget) -> Result<Html> {
    let mut parser = html5ever::driver::parse_document(
        HtmlTreeSink::new(Html::new_document()),
        Default::default(),
    );
    let mut rest = source;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PARSE_SLICE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (slice, tail) = rest.split_at(cut);
        parser.process(slice.into());
        budget.check()?;
        rest = tail;
    }
    Ok(parser.finish())
}

/// Decodes the document: a BOM wins, then a `<meta charset>`/XML declaration, then UTF-8 when
/// valid and Windows-1252 otherwise.
fn decode(bytes: &[u8]) -> Result<String> {
    let text = if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        encoding
            .decode_without_bom_handling(&bytes[bom_len..])
            .0
            .into_owned()
    } else {
        if bytes.contains(&0) {
            return Err(Error::Binary("contains NUL bytes".into()));
        }
        match declared_charset(bytes) {
            // A declared UTF-8 that does not validate is usually Latin-1 mislabelled.
            Some(enc) if enc != UTF_8 => enc.decode_without_bom_handling(bytes).0.into_owned(),
            _ => crate::text::decode_utf8_or_latin1(bytes),
        }
    };
    crate::text::check_text(&text).map_err(Error::Binary)?;
    Ok(text)
}

/// The encoding named by `<meta charset=…>`, `<meta http-equiv content="…; charset=…">` or an
/// XML declaration near the start of the file.
fn declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(CHARSET_PRESCAN_BYTES)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut candidates = Vec::new();
    if head.trim_start().starts_with("<?xml") {
        if let Some(decl_end) = head.find("?>") {
            let decl = &head[..decl_end];
            if let Some(pos) = decl.find("encoding") {
                candidates.push(&decl[pos + "encoding".len()..]);
            }
        }
    }
    let mut rest = head.as_str();
    while let Some(pos) = rest.find("<meta") {
        let tag = &rest[pos..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        if let Some(cpos) = tag.find("charset") {
            candidates.push(&tag[cpos + "charset".len()..]);
        }
        rest = &rest[pos + 5..];
    }
    candidates.into_iter().find_map(|after| {
        let value = after.trim_start().strip_prefix('=')?.trim_start();
        let value = value.trim_start_matches(['"', '\'']);
        let end = value
            .find(|c: char| c == '"' || c == '\'' || c == ';' || c == '/' || c.is_whitespace())
            .unwrap_or(value.len());
        let enc = Encoding::for_label(&value.as_bytes()[..end])?;
        // A document that decodes as ASCII cannot really be UTF-16 (HTML standard rule).
        Some(if enc == UTF_16LE || enc == UTF_16BE {
            UTF_8
        } else {
            enc
        })
    })
}

/// Collapses runs of spaces into one and trims each line; `\n` marks a deliberate line break
/// (`<br>`, Markdown hard break) and survives, blank lines are dropped.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split('\n') {
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        for (i, w) in words.enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    out
}

fn extract(html: &Html, filter_navigation: bool) -> ParsedDocument {
    let mut walker = Walker {
        filter_navigation,
        ..Walker::default()
    };
    for edge in html.tree.root().traverse() {
        match edge {
            Edge::Open(node) => walker.open(node),
            Edge::Close(node) => walker.close(node),
        }
    }
    walker.flush();
    let mut doc = walker.doc;
    doc.title = document_title(html).or(walker.first_h1);
    doc
}

fn document_title(html: &Html) -> Option<String> {
    let title = html
        .tree
        .root()
        .descendants()
        .find(|n| n.value().as_element().is_some_and(|e| e.name() == "title"))?;
    let text: String = title
        .descendants()
        .filter_map(|n| n.value().as_text())
        .map(|t| &**t)
        .collect();
    let text = collapse_whitespace(&text.replace('\n', " "));
    (!text.is_empty()).then_some(text)
}

/// The cells of a data-table row being read.
struct Row {
    id: NodeId,
    cells: Vec<String>,
}

#[derive(Default)]
struct Walker {
    doc: ParsedDocument,
    filter_navigation: bool,
    /// Pending inline text: whitespace is normalised to spaces on the way in, `\n` stands for
    /// `<br>`; inside `<pre>` text is kept verbatim.
    buf: String,
    /// The subtree being skipped (script, navigation…), if any.
    skip: Option<NodeId>,
    heading: Option<(NodeId, u8)>,
    row: Option<Row>,
    pre_depth: usize,
    /// Open `<article>`, `<main>` and `<section>` elements: a `<header>`/`<footer>` inside
    /// one belongs to the content, outside one it is the site's banner or footer.
    content_depth: usize,
    first_h1: Option<String>,
}

impl Walker {
    fn open(&mut self, node: NodeRef<'_, Node>) {
        if self.skip.is_some() {
            return;
        }
        match node.value() {
            Node::Text(t) => {
                if self.pre_depth > 0 && self.row.is_none() && self.heading.is_none() {
                    self.buf.push_str(t);
                } else {
                    self.buf
                        .extend(t.chars().map(|c| if c.is_whitespace() { ' ' } else { c }));
                }
            }
            Node::Element(e) => {
                if self.is_skipped(e, node) {
                    self.skip = Some(node.id());
                    return;
                }
                self.open_element(e, node);
            }
            _ => {}
        }
    }

    fn open_element(&mut self, e: &Element, node: NodeRef<'_, Node>) {
        let name = e.name();
        if matches!(name, "article" | "main" | "section") {
            self.content_depth += 1;
        }
        let inline_context = self.heading.is_some() || self.row.is_some();
        match name {
            "br" => self.buf.push('\n'),
            "td" | "th" if self.row.is_some() => self.buf.push(' '),
            _ if !is_block(name) => {}
            _ if inline_context => self.buf.push(' '),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let level = name.as_bytes()[1] - b'0';
                self.heading = Some((node.id(), level));
            }
            "pre" | "listing" | "xmp" | "plaintext" => {
                self.flush();
                self.pre_depth += 1;
            }
            "tr" => {
                self.flush();
                if !is_layout_row(node) {
                    self.row = Some(Row {
                        id: node.id(),
                        cells: Vec::new(),
                    });
                }
            }
            _ => self.flush(),
        }
    }

    fn close(&mut self, node: NodeRef<'_, Node>) {
        if let Some(skipped) = self.skip {
            if skipped == node.id() {
                self.skip = None;
            }
            return;
        }
        let Some(e) = node.value().as_element() else {
            return;
        };
        let name = e.name();
        if matches!(name, "article" | "main" | "section") {
            self.content_depth = self.content_depth.saturating_sub(1);
        }
        if self.heading.is_some_and(|(id, _)| id == node.id()) {
            self.flush();
            return;
        }
        if let Some(row) = self.row.as_mut() {
            if row.id == node.id() {
                self.flush_row();
                return;
            }
            if matches!(name, "td" | "th") {
                let cell = collapse_whitespace(&std::mem::take(&mut self.buf)).replace('\n', " ");
                row.cells.push(cell);
                return;
            }
        }
        if !is_block(name) {
            return;
        }
        if self.heading.is_some() || self.row.is_some() {
            self.buf.push(' ');
            return;
        }
        self.flush();
        if matches!(name, "pre" | "listing" | "xmp" | "plaintext") {
            self.pre_depth = self.pre_depth.saturating_sub(1);
        }
    }

    /// Emits the pending text as a block: a heading if one is open, verbatim preformatted
    /// text inside `<pre>`, a whitespace-collapsed paragraph otherwise.
    fn flush(&mut self) {
        let raw = std::mem::take(&mut self.buf);
        if let Some((_, level)) = self.heading.take() {
            let text = collapse_whitespace(&raw).replace('\n', " ");
            if level == 1 && self.first_h1.is_none() && !text.is_empty() {
                self.first_h1 = Some(text.clone());
            }
            self.doc
                .push_block(BlockKind::Heading { level }, &text, None);
            return;
        }
        let text = if self.pre_depth > 0 {
            let lines: Vec<&str> = raw.lines().map(str::trim_end).collect();
            let first = lines
                .iter()
                .position(|l| !l.is_empty())
                .unwrap_or(lines.len());
            let last = lines
                .iter()
                .rposition(|l| !l.is_empty())
                .map_or(first, |i| i + 1);
            lines[first..last.max(first)].join("\n")
        } else {
            collapse_whitespace(&raw)
        };
        if self.filter_navigation && is_navigation_text(&text) {
            return;
        }
        self.doc.push_block(BlockKind::Paragraph, &text, None);
    }

    fn flush_row(&mut self) {
        self.buf.clear();
        if let Some(row) = self.row.take() {
            let cells: Vec<String> = row.cells.into_iter().filter(|c| !c.is_empty()).collect();
            let text = cells.join(" | ");
            if self.filter_navigation && is_navigation_text(&text) {
                return;
            }
            self.doc.push_block(BlockKind::Paragraph, &text, None);
        }
    }

    /// Whether an element's whole subtree carries no body text.
    fn is_skipped(&self, e: &Element, node: NodeRef<'_, Node>) -> bool {
        let name = e.name();
        if matches!(
            name,
            "head"
                | "script"
                | "style"
                | "noscript"
                | "template"
                | "svg"
                | "iframe"
                | "object"
                | "embed"
                | "canvas"
                | "select"
                | "button"
                | "textarea"
                | "input"
                | "datalist"
        ) {
            return true;
        }
        if e.attr("hidden").is_some()
            || e.attr("aria-hidden")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || e.attr("style").is_some_and(|s| {
                let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
                s.to_ascii_lowercase().contains("display:none")
            })
        {
            return true;
        }
        if !self.filter_navigation {
            return false;
        }
        match name {
            "nav" => return true,
            // Search boxes and login forms; a form wrapping the whole page (ASP.NET) stays.
            "form" => {
                return !has_descendant(node, |n| {
                    matches!(n, "p" | "h1" | "h2" | "h3" | "article" | "main")
                })
            }
            "header" if self.content_depth == 0 => return !has_descendant(node, |n| n == "h1"),
            "footer" if self.content_depth == 0 => return true,
            "aside" if link_density_permille(node) > 500 => return true,
            _ => {}
        }
        // A "sidebar" is navigation on a website but a boxed note in DocBook (the Debian
        // handbook's): like an aside, it goes only when it is mostly links.
        is_navigation_marked(e) || (is_sidebar_marked(e) && link_density_permille(node) > 500)
    }
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "caption"
            | "center"
            | "dd"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "legend"
            | "li"
            | "listing"
            | "main"
            | "menu"
            | "nav"
            | "ol"
            | "p"
            | "plaintext"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "tfoot"
            | "th"
            | "thead"
            | "tr"
            | "ul"
            | "xmp"
    )
}

/// Class, id or ARIA role saying the element is navigation: `navheader`/`navfooter`
/// (DocBook), `docnav` (Publican), `breadcrumbs`, `menu`, `toc`, `role="navigation"`…
fn is_navigation_marked(e: &Element) -> bool {
    if e.attr("role").is_some_and(|r| {
        matches!(
            r.to_ascii_lowercase().as_str(),
            "navigation" | "banner" | "contentinfo" | "menu" | "menubar" | "search" | "toolbar"
        )
    }) {
        return true;
    }
    let names = e.attr("class").into_iter().chain(e.attr("id"));
    names.flat_map(str::split_whitespace).any(|token| {
        let token = token.to_ascii_lowercase();
        matches!(
            token.as_str(),
            "navheader"
                | "navfooter"
                | "docnav"
                | "navbar"
                | "navbox"
                | "navigation"
                | "skiplink"
                | "pagination"
                | "pager"
        ) || token.split(['-', '_']).any(|part| {
            matches!(
                part,
                "nav" | "navbar" | "menu" | "breadcrumb" | "breadcrumbs" | "toc"
            )
        })
    })
}

/// Class or id naming the element a sidebar (`sidebar`, `left-sidebar`).
fn is_sidebar_marked(e: &Element) -> bool {
    let names = e.attr("class").into_iter().chain(e.attr("id"));
    names.flat_map(str::split_whitespace).any(|token| {
        token
            .split(['-', '_'])
            .any(|p| p.eq_ignore_ascii_case("sidebar"))
    })
}

/// Text consisting only of navigation words ("Prev", "Up", "Home", "Next | Contents").
fn is_navigation_text(text: &str) -> bool {
    let mut words = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .peekable();
    words.peek().is_some()
        && words.all(|w| {
            matches!(
                w.as_str(),
                "prev"
                    | "previous"
                    | "next"
                    | "up"
                    | "home"
                    | "top"
                    | "contents"
                    | "index"
                    | "back"
                    | "toc"
            )
        })
}

fn has_descendant(node: NodeRef<'_, Node>, pred: impl Fn(&str) -> bool) -> bool {
    node.descendants()
        .skip(1)
        .take(MAX_INSPECTED_NODES)
        .any(|n| n.value().as_element().is_some_and(|e| pred(e.name())))
}

/// A table row used for page layout rather than data: it holds headings, nested tables or
/// many blocks. Its cells are then read as ordinary containers instead of joined with " | ".
fn is_layout_row(tr: NodeRef<'_, Node>) -> bool {
    let mut blocks = 0;
    for n in tr.descendants().skip(1).take(MAX_INSPECTED_NODES) {
        if let Some(e) = n.value().as_element() {
            match e.name() {
                "table" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => return true,
                "p" | "div" | "ul" | "ol" | "dl" | "pre" | "blockquote" => blocks += 1,
                _ => {}
            }
        }
    }
    blocks > 8
}

/// Share (in ‰) of an element's text that sits inside links.
fn link_density_permille(node: NodeRef<'_, Node>) -> usize {
    let mut total = 0;
    let mut linked = 0;
    for n in node.descendants().take(MAX_INSPECTED_NODES) {
        if let Some(t) = n.value().as_text() {
            let len = t.trim().chars().count();
            total += len;
            let in_link = n
                .ancestors()
                .take_while(|a| a.id() != node.id())
                .any(|a| a.value().as_element().is_some_and(|e| e.name() == "a"));
            if in_link {
                linked += len;
            }
        }
    }
    // An aside with no text at all is decoration: treat it as fully link-dense.
    (linked * 1000).checked_div(total).unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
        super::parse(
            bytes,
            crate::Limits::default().max_html_depth,
            &Budget::unlimited(),
        )
    }

    const P: BlockKind = BlockKind::Paragraph;
    const fn h(level: u8) -> BlockKind {
        BlockKind::Heading { level }
    }

    fn blocks(doc: &ParsedDocument) -> Vec<(BlockKind, &str)> {
        doc.blocks
            .iter()
            .map(|b| (b.kind, doc.block_text(b)))
            .collect()
    }

    #[test]
    fn structure_entities_and_whitespace() {
        let src = r##"<!DOCTYPE html><html><head><title> My
  Page </title><style>p{color:red}</style><script>var x = "<p>no</p>";</script></head>
<body>
<header><a href="/">Site</a> <nav><a href="/a">A</a></nav></header>
<main>
<h1>Main &amp; Title</h1>
<p>First   paragraph
   with <b>bold</b>&nbsp;text &lt;tag&gt; &eacute;t&eacute;.</p>
<ul><li>item one</li><li>item <i>two</i><ul><li>nested</li></ul></li></ul>
<h2>Section</h2>
<pre>  line 1
    line 2
</pre>
<blockquote><p>quoted</p></blockquote>
<dl><dt>term</dt><dd>definition<br>second line</dd></dl>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td></td><td>1</td></tr></table>
<form><input name=q><button>Search</button></form>
<noscript>enable js</noscript>
<div hidden>invisible</div>
<svg><text>svg text</text></svg>
</main>
<footer>Copyright footer</footer>
</body></html>"##;
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("My Page"));
        assert_eq!(
            blocks(&doc),
            vec![
                (h(1), "Main & Title"),
                (P, "First paragraph with bold text <tag> été."),
                (P, "item one"),
                (P, "item two"),
                (P, "nested"),
                (h(2), "Section"),
                (P, "line 1\n    line 2"),
                (P, "quoted"),
                (P, "term"),
                (P, "definition\nsecond line"),
                (P, "Name | Value"),
                (P, "a | 1"),
            ]
        );
    }

    #[test]
    fn docbook_navigation_is_dropped() {
        let src = r##"<html><head><title>Chapter 2. Using APT</title></head><body>
<div class="navheader"><table summary="Navigation header"><tr><th colspan="3">Chapter 2. Using APT</th></tr>
<tr><td><a accesskey="p" href="ch1.html">Prev</a></td><td></td><td><a href="ch3.html">Next</a></td></tr></table><hr/></div>
<div class="chapter"><div class="toc"><p><strong>Table of Contents</strong></p><dl><dt><a href="#s1">2.1. Overview</a></dt></dl></div>
<h2 class="title">2.1. Overview</h2><p>Body text stays.</p></div>
<ul class="docnav"><li class="previous"><a href="a.html"><strong>Prev</strong></a></li><li class="home">Manual</li></ul>
<table><tr><td><a href="a">Prev</a></td><td><a href="b">Up</a></td><td><a href="c">Next</a></td></tr></table>
<p><a href="index.html">Home</a> | <a href="#top">Top</a></p>
</body></html>"##;
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            blocks(&doc),
            vec![(h(2), "2.1. Overview"), (P, "Body text stays.")]
        );
        assert_eq!(doc.title.as_deref(), Some("Chapter 2. Using APT"));
    }

    #[test]
    fn docbook_sidebars_are_content_and_link_sidebars_navigation() {
        let src = r##"<html><body><div id="left-sidebar"><ul><li><a href="a.html">Install</a></li>
<li><a href="b.html">Upgrade</a></li></ul></div>
<h2>Remote desktops</h2><p>Body text stays.</p>
<div class="sidebar"><p class="title"><strong>TIP VNC over SSH</strong></p>
<p>The first display listens on port 5900.</p></div>
</body></html>"##;
        let doc = parse(src.as_bytes()).unwrap();
        let text = blocks(&doc)
            .iter()
            .map(|(_, t)| t.to_string())
            .collect::<Vec<_>>()
            .join("|");
        assert!(text.contains("port 5900"), "{text}");
        assert!(!text.contains("Upgrade"), "{text}");
    }

    #[test]
    fn page_of_only_navigation_falls_back_to_all_text() {
        let src = r##"<html><body><div class="toc"><ul><li><a href="a.html">Introduction</a></li></ul></div></body></html>"##;
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(blocks(&doc), vec![(P, "Introduction")]);
    }

    #[test]
    fn title_falls_back_to_first_h1() {
        let doc = parse(b"<h2>Sub</h2><h1>Real <em>Title</em></h1><p>x</p>").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Real Title"));
    }

    #[test]
    fn layout_tables_keep_their_block_structure() {
        let src =
            "<table><tr><td><h1>Title</h1><p>Body one.</p></td><td><p>Side</p></td></tr></table>";
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            blocks(&doc),
            vec![(h(1), "Title"), (P, "Body one."), (P, "Side")]
        );
    }

    #[test]
    fn charset_from_meta_and_xml_declaration_and_fallbacks() {
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode("<p>Café crème</p>");
        let mut with_meta = b"<html><head><meta charset=\"iso-8859-1\"></head><body>".to_vec();
        with_meta.extend_from_slice(&latin1);
        assert_eq!(parse(&with_meta).unwrap().text, "Café crème");

        let mut http_equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">"
                .to_vec();
        http_equiv.extend_from_slice(&latin1);
        assert_eq!(parse(&http_equiv).unwrap().text, "Café crème");

        let (koi8, _, _) = encoding_rs::KOI8_R.encode("<p>Привет</p>");
        let mut xml = b"<?xml version=\"1.0\" encoding=\"KOI8-R\"?><html><body>".to_vec();
        xml.extend_from_slice(&koi8);
        assert_eq!(parse(&xml).unwrap().text, "Привет");

        // Undeclared and not UTF-8: Latin-1.
        assert_eq!(parse(&latin1).unwrap().text, "Café crème");
        // Undeclared UTF-8.
        assert_eq!(
            parse("<p>Café crème</p>".as_bytes()).unwrap().text,
            "Café crème"
        );

        // UTF-16 with BOM beats the (bogus) meta declaration.
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(
            "<meta charset=latin1><p>Grüße</p>"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        );
        assert_eq!(parse(&utf16).unwrap().text, "Grüße");
    }

    #[test]
    fn iconv_made_latin1_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/html/latin1.html"
        );
        let doc = parse(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Réglages du serveur"));
        assert_eq!(
            blocks(&doc),
            vec![
                (h(1), "Réglages"),
                (
                    P,
                    "Le fichier de configuration se trouve dans /etc/café.conf."
                ),
            ]
        );
    }

    #[test]
    fn binary_content_is_refused() {
        assert!(matches!(
            parse(b"<html>\x00\x01\x02\x00binary"),
            Err(Error::Binary(_))
        ));
    }

    #[test]
    fn deeply_nested_markup_does_not_overflow_the_stack() {
        let depth = 20_000;
        let src = format!(
            "{}<p>deep text</p>{}",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(doc.text, "deep text");
    }

    fn corpus_html() -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (the development set belongs beside the clone)",
                    dir.display()
                )
            });
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|e| e == "html") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(std::path::Path::new(crate::EVAL_DEV_CORPUS), &mut out);
        out.sort();
        assert!(
            out.len() >= 10,
            "only {} HTML pages in the corpus",
            out.len()
        );
        out
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "reads ../shared/eval-dev: scripts/test runs it"
    )]
    fn corpus_pages_lose_navigation_and_keep_body_text() {
        for path in corpus_html() {
            let bytes = std::fs::read(&path).unwrap();
            let doc = parse(&bytes).unwrap();
            let name = path.display();
            assert!(doc.title.is_some(), "{name}: no title");
            assert!(
                doc.blocks
                    .iter()
                    .any(|b| matches!(b.kind, BlockKind::Heading { .. })),
                "{name}: no headings"
            );
            assert!(
                doc.text.len() > 1000,
                "{name}: only {} bytes of text",
                doc.text.len()
            );
            for b in &doc.blocks {
                let t = doc.block_text(b);
                assert!(!is_navigation_text(t), "{name}: navigation block {t:?}");
                assert!(!t.starts_with("Prev"), "{name}: navigation block {t:?}");
            }
        }
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "reads ../shared/eval-dev: scripts/test runs it"
    )]
    fn corpus_docbook_and_publican_pages() {
        let bytes = crate::read_eval_dev("apt-doc/offline/ch2.html");
        let doc = parse(&bytes).unwrap();
        assert_eq!(
            doc.title.as_deref(),
            Some("Chapter 2. Using APT on both machines")
        );
        assert!(doc
            .text
            .contains("APT being available on both machines gives the simplest configuration."));
        // Line breaks and relative indentation survive (push_block trims the first line).
        assert!(doc.text.contains("/disc/\n    archives/\n       partial/"));
        assert!(
            !doc.text.contains("Chapter 3. Using APT and wget"),
            "footer link text leaked"
        );
        assert!(!doc.text.contains("Table of Contents"));

        let bytes = crate::read_eval_dev("harden-doc/ch04s17.html");
        let doc = parse(&bytes).unwrap();
        assert_eq!(
            doc.title.as_deref(),
            Some("4.17. File system limits and control")
        );
        assert!(doc.text.contains("Having a good quota policy is important"));
        assert!(
            !doc.text.contains("4.18. Securing network access"),
            "docnav leaked"
        );
        assert!(
            !doc.text.contains("Securing Debian Manual"),
            "docnav leaked"
        );
    }
}
