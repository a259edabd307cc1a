//! Markdown files (CommonMark + GitHub tables, via pulldown-cmark): headings become heading
//! blocks; paragraphs, list items, code blocks and table rows become paragraph blocks. YAML or
//! TOML front matter is skipped (its `title` is used as the document title).

use crate::document::{BlockKind, ParsedDocument};
use crate::html::collapse_whitespace;
use crate::{Budget, Error, Result};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Parses a Markdown file into headings and paragraph-like blocks, seeing the deadline of
/// `budget` between events.
pub fn parse(bytes: &[u8], budget: &Budget) -> Result<ParsedDocument> {
    let source = crate::text::decode(bytes).map_err(Error::Binary)?;
    let source = source.strip_prefix('\u{feff}').unwrap_or(&source);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS
        | Options::ENABLE_GFM
        | Options::ENABLE_DEFINITION_LIST;
    let mut b = Builder::default();
    budget.check()?;
    for event in Parser::new_ext(source, options) {
        budget.tick()?;
        b.handle(event);
    }
    b.flush();
    let title = b.front_matter_title.or(b.first_h1).or(b.first_heading);
    let mut doc = b.doc;
    doc.title = title;
    Ok(doc)
}

/// Turns the event stream into blocks. Inline text accumulates in `buf` and is flushed as a
/// block at every block boundary, so nested structures (a paragraph inside a list item inside
/// a block quote) each yield their own block.
#[derive(Default)]
struct Builder {
    doc: ParsedDocument,
    buf: String,
    heading: Option<u8>,
    in_code_block: bool,
    in_metadata: bool,
    front_matter: String,
    /// Cells of the table row being read; `Some` while inside a row.
    row: Option<Vec<String>>,
    /// Inside an image: its alt text is not body text.
    image_depth: usize,
    front_matter_title: Option<String>,
    first_h1: Option<String>,
    first_heading: Option<String>,
    saw_h2: bool,
}

impl Builder {
    fn handle(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if self.in_metadata {
                    self.front_matter.push_str(&t);
                } else {
                    self.push_text(&t);
                }
            }
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => self.push_text(&t),
            Event::Html(t) => {
                // Newlines in raw HTML are source formatting, not hard line breaks.
                let stripped = strip_tags(&t).replace('\n', " ");
                self.push_text(&stripped);
                self.push_text(" ");
            }
            Event::SoftBreak => self.push_text(" "),
            Event::HardBreak => self.push_text("\n"),
            Event::Rule => self.flush(),
            Event::InlineHtml(_) | Event::FootnoteReference(_) | Event::TaskListMarker(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, .. } => {
                self.flush();
                self.heading = Some(heading_level(level));
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.in_code_block = true;
            }
            Tag::MetadataBlock(_) => self.in_metadata = true,
            Tag::TableHead | Tag::TableRow => {
                self.flush();
                self.row = Some(Vec::new());
            }
            Tag::TableCell => self.buf.clear(),
            Tag::Image { .. } => self.image_depth += 1,
            Tag::Paragraph
            | Tag::Item
            | Tag::BlockQuote(_)
            | Tag::List(_)
            | Tag::Table(_)
            | Tag::HtmlBlock
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition => self.flush(),
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. } => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => self.flush(),
            TagEnd::CodeBlock => {
                let code = std::mem::take(&mut self.buf);
                self.in_code_block = false;
                self.doc
                    .push_block(BlockKind::Paragraph, code.trim_end(), None);
            }
            TagEnd::MetadataBlock(_) => {
                self.in_metadata = false;
                self.front_matter_title = front_matter_title(&self.front_matter);
            }
            TagEnd::TableCell => {
                let cell = collapse_whitespace(&std::mem::take(&mut self.buf));
                if let Some(row) = self.row.as_mut() {
                    row.push(cell);
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if let Some(row) = self.row.take() {
                    let cells: Vec<String> = row.into_iter().filter(|c| !c.is_empty()).collect();
                    self.doc
                        .push_block(BlockKind::Paragraph, &cells.join(" | "), None);
                }
            }
            TagEnd::Image => self.image_depth = self.image_depth.saturating_sub(1),
            TagEnd::Paragraph
            | TagEnd::Item
            | TagEnd::BlockQuote(_)
            | TagEnd::List(_)
            | TagEnd::Table
            | TagEnd::HtmlBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition => self.flush(),
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link => {}
        }
    }

    fn push_text(&mut self, text: &str) {
        if self.image_depth == 0 {
            self.buf.push_str(text);
        }
    }

    /// Emits the pending inline text as a heading or paragraph block.
    fn flush(&mut self) {
        if self.in_code_block || self.row.is_some() {
            // Code text is kept verbatim until the block ends; table text until the row ends.
            return;
        }
        let text = collapse_whitespace(&std::mem::take(&mut self.buf));
        match self.heading.take() {
            Some(level) => {
                if !text.is_empty() {
                    // An h1 after the document has already used h2 sections is a late
                    // section ("# Changes"), not the title.
                    if level == 1 && self.first_h1.is_none() && !self.saw_h2 {
                        self.first_h1 = Some(text.clone());
                    }
                    self.saw_h2 |= level == 2;
                    if self.first_heading.is_none() {
                        self.first_heading = Some(text.clone());
                    }
                }
                self.doc
                    .push_block(BlockKind::Heading { level }, &text, None);
            }
            None => self.doc.push_block(BlockKind::Paragraph, &text, None),
        }
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// `title: "…"` (YAML) or `title = "…"` (TOML) at the top level of front matter.
fn front_matter_title(front_matter: &str) -> Option<String> {
    front_matter.lines().find_map(|line| {
        let rest = line.strip_prefix("title")?.trim_start();
        let value = rest
            .strip_prefix(':')
            .or_else(|| rest.strip_prefix('='))?
            .trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// The text of a raw HTML fragment embedded in Markdown, without its tags and comments.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
        super::parse(bytes, &Budget::unlimited())
    }

    fn blocks(doc: &ParsedDocument) -> Vec<(BlockKind, &str)> {
        doc.blocks
            .iter()
            .map(|b| (b.kind, doc.block_text(b)))
            .collect()
    }

    const P: BlockKind = BlockKind::Paragraph;
    const fn h(level: u8) -> BlockKind {
        BlockKind::Heading { level }
    }

    #[test]
    fn headings_paragraphs_lists_code_and_tables() {
        let src = "---\ntitle: \"Front Title\"\ntags: [a]\n---\n\
Intro with *emphasis*\nand a [link](http://x).\n\n\
Setext Heading\n==============\n\n\
## ATX Heading ##\n\n\
- item one\n- item **two**\n  continued\n\n\
1. loose item\n\n   second para of item\n\n\
```sh\nsudo apt-get install\n  --yes foo\n```\n\n\
| Option | Meaning |\n|---|---|\n| `-v` | verbose |\n\n\
> quoted text\n\n![badge alt](b.svg) after image\n";
        let doc = parse(src.as_bytes()).unwrap();
        assert_eq!(
            blocks(&doc),
            vec![
                (P, "Intro with emphasis and a link."),
                (h(1), "Setext Heading"),
                (h(2), "ATX Heading"),
                (P, "item one"),
                (P, "item two continued"),
                (P, "loose item"),
                (P, "second para of item"),
                (P, "sudo apt-get install\n  --yes foo"),
                (P, "Option | Meaning"),
                (P, "-v | verbose"),
                (P, "quoted text"),
                (P, "after image"),
            ]
        );
        assert_eq!(doc.title.as_deref(), Some("Front Title"));
        assert!(!doc.text.contains("tags:"));
    }

    #[test]
    fn title_is_first_h1_else_first_heading() {
        let doc = parse(b"### Minor\n\ntext\n\n# Major\n\nmore").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Major"));
        let doc = parse(b"## JSON Hooks\n\ntext\n\n# Changes:\n\n## Version 0.2").unwrap();
        assert_eq!(doc.title.as_deref(), Some("JSON Hooks"));
        let doc = parse(b"## Only Second Level\n\ntext").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Only Second Level"));
        let doc = parse(b"no headings at all").unwrap();
        assert_eq!(doc.title, None);
    }

    #[test]
    fn raw_html_blocks_keep_their_text_and_hard_breaks_keep_lines() {
        let doc = parse(
            b"<div align=\"center\">\n<b>Centered</b> note\n</div>\n\nline one  \nline two\n",
        )
        .unwrap();
        assert_eq!(
            blocks(&doc),
            vec![(P, "Centered note"), (P, "line one\nline two")]
        );
    }

    #[test]
    fn fixture_with_toml_front_matter() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/md/guide.md");
        let doc = parse(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Operator Guide"));
        assert_eq!(
            blocks(&doc),
            vec![
                (h(1), "Operator Guide"),
                (P, "Lore runs as a single binary. beta"),
                (h(2), "Backups"),
                (P, "Stop the service."),
                (P, "Copy the data directory:"),
                (P, "index/"),
                (P, "state.json"),
                (P, "Why stop first? The index files are written in place."),
                (P, "Path | Contents"),
                (P, "index/ | search index"),
                (P, "[backup]\nkeep = 7"),
            ]
        );
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "reads ../shared/eval-dev: scripts/test runs it"
    )]
    fn corpus_markdown_files_parse_with_structure() {
        let bytes = crate::read_eval_dev("sudo/README.md");
        let doc = parse(&bytes).unwrap();
        let headings: Vec<&str> = doc
            .blocks
            .iter()
            .filter(|b| matches!(b.kind, BlockKind::Heading { .. }))
            .map(|b| doc.block_text(b))
            .collect();
        assert!(headings.contains(&"The sudo philosophy"), "{headings:?}");
        assert!(doc
            .text
            .contains("The basic philosophy is to give as few privileges as possible"));

        let bytes = crate::read_eval_dev("apt-doc/acquire-additional-files.md");
        let doc = parse(&bytes).unwrap();
        assert_eq!(
            doc.title.as_deref(),
            Some("Acquire additional files in 'update' operations")
        );
    }
}
