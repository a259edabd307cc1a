//! Times `parse_bytes` on the hostile input classes of `tests/hostile/generate.rs`, at sizes
//! beyond what the regression tests use: `cargo run --release -p lore-ingest --example
//! hostile-inputs [CLASS...]`.

#[path = "../tests/hostile/generate.rs"]
mod generate;

use lore_ingest::{parse_bytes, DocumentFormat, Limits};
use std::path::Path;
use std::time::Instant;

/// A named input: its format and how to make it.
type Case = (String, DocumentFormat, Box<dyn Fn() -> Vec<u8>>);

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    let mut cases: Vec<Case> = Vec::new();
    for depth in [50_000, 100_000, 200_000] {
        cases.push((
            format!("html-div-{depth}"),
            DocumentFormat::Html,
            Box::new(move || generate::nested_html("div", depth)),
        ));
    }
    for depth in [5, 6, 7, 8, 12] {
        cases.push((
            format!("pdf-forms-{depth}"),
            DocumentFormat::Pdf,
            Box::new(move || generate::form_bomb_pdf(depth, 10)),
        ));
    }
    for n in [20_000, 50_000] {
        cases.push((
            format!("html-reopened-b-{n}"),
            DocumentFormat::Html,
            Box::new(move || generate::reopened_formatting_html(n)),
        ));
    }
    for tag in ["span", "table", "li", "b", "svg"] {
        cases.push((
            format!("html-{tag}-200000"),
            DocumentFormat::Html,
            Box::new(move || generate::nested_html(tag, 200_000)),
        ));
    }
    for marker in [">", "-"] {
        for depth in [1_000, 5_000, 10_000] {
            cases.push((
                format!("md-nested-{marker}-{depth}"),
                DocumentFormat::Markdown,
                Box::new(move || generate::nested_markdown(marker, depth)),
            ));
        }
    }
    for unit in ["[", "*a", "_a", "`", "<a", "![", "[a](", "**_"] {
        cases.push((
            format!("md-inline-{unit}-200000"),
            DocumentFormat::Markdown,
            Box::new(move || generate::unclosed_markdown_inline(unit, 200_000)),
        ));
    }
    for depth in [10_000, 100_000] {
        cases.push((
            format!("docx-nested-{depth}"),
            DocumentFormat::Docx,
            Box::new(move || generate::nested_docx(depth)),
        ));
    }
    cases.push((
        "text-one-paragraph-10MB".into(),
        DocumentFormat::Text,
        Box::new(|| generate::one_paragraph_text(125_000, 80)),
    ));
    let limits = Limits::default();
    for (name, format, make) in cases {
        if !wanted(&name) {
            continue;
        }
        let bytes = make();
        let started = Instant::now();
        let outcome = parse_bytes(&bytes, format, Path::new(&name), &limits);
        let secs = started.elapsed().as_secs_f64();
        let outcome = match outcome {
            Ok(doc) => format!("ok, {} bytes of text", doc.text.len()),
            Err(e) => format!("error: {e}"),
        };
        println!(
            "{name:<20} {:>9} bytes {secs:>8.3} s  {outcome}",
            bytes.len()
        );
    }
}
