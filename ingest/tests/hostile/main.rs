//! No single file holds a core for more than a few seconds: each class of hostile input
//! (generated here at test time, see `generate.rs`) is parsed within a bound of CPU time, and
//! fails with its reason when it is over its work budget; the inputs found by fuzzing
//! (`fuzz-regressions/`) likewise. Normal documents are covered by the parsers' own tests and
//! `pdf_quality`, which run under the same default limits.

mod generate;

use lore_ingest::{parse_bytes, DocumentFormat, Error, Limits, ParsedDocument};
use std::path::Path;
use std::time::Duration;

/// CPU time one hostile file may take in the test profile (the cut-offs land well below).
const CPU_BOUND: Duration = Duration::from_secs(2);

/// CPU time of the calling thread: what "holding a core" means, and unaffected by how busy
/// the machine is.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Parses under `limits`, asserting the CPU bound; returns the outcome.
fn parse_within_bound(
    name: &str,
    bytes: &[u8],
    format: DocumentFormat,
    limits: &Limits,
) -> lore_ingest::Result<ParsedDocument> {
    let started = thread_cpu_time();
    let outcome = parse_bytes(bytes, format, Path::new(name), limits);
    let spent = thread_cpu_time() - started;
    assert!(
        spent < CPU_BOUND,
        "{name} ({} bytes) took {spent:?} of CPU, over {CPU_BOUND:?}: {:?}",
        bytes.len(),
        outcome.as_ref().map(|d| d.text.len())
    );
    outcome
}

#[test]
fn deeply_nested_html_is_flattened_and_keeps_its_text() {
    // 200 000 nested <div>s took 201 s of CPU before the nesting cap (2.2 MB).
    for tag in ["div", "span", "table", "li", "b"] {
        let bytes = generate::nested_html(tag, 200_000);
        let doc = parse_within_bound(
            &format!("nested-{tag}"),
            &bytes,
            DocumentFormat::Html,
            &Limits::default(),
        )
        .unwrap_or_else(|e| panic!("nested {tag}: {e}"));
        assert!(
            doc.text.contains("The innermost sentence survives."),
            "{tag}: {}",
            doc.text
        );
        assert!(
            doc.text.contains("A paragraph after the nesting."),
            "{tag}: {}",
            doc.text
        );
    }
}

#[test]
fn html_nesting_below_the_cap_parses_as_before() {
    // The same document nested less deeply than the cap is not touched by the pre-pass: its
    // text comes out exactly as with an unlimited cap.
    let bytes = generate::nested_html("div", 400);
    let capped = parse_bytes(
        &bytes,
        DocumentFormat::Html,
        Path::new("a"),
        &Limits::default(),
    )
    .expect("parses");
    let uncapped = Limits {
        max_html_depth: usize::MAX,
        ..Limits::default()
    };
    let reference =
        parse_bytes(&bytes, DocumentFormat::Html, Path::new("a"), &uncapped).expect("parses");
    assert_eq!(capped.text, reference.text);
    assert_eq!(capped.blocks, reference.blocks);
}

#[test]
fn html_formatting_left_open_is_capped_and_keeps_its_text() {
    // html5ever re-opens every `<b>` left open inside each new block (n² element insertions;
    // 20 000 of them ran past the 30 s deadline): beyond 16 open at once their tags go.
    let bytes = generate::reopened_formatting_html(50_000);
    let doc = parse_within_bound("reopened", &bytes, DocumentFormat::Html, &Limits::default())
        .expect("parses");
    for word in ["w0", "w17", "w49999", "The end."] {
        assert!(doc.text.contains(word), "{word} missing");
    }
}

#[test]
fn pdf_form_bombs_run_out_of_work_budget_quickly() {
    // Forms drawing the next one 10 times: 10^depth form invocations in 3–5 KB. Depth 7 took
    // 2.7 s of CPU before, depth 12 would take days; each now stops at the work budget.
    for depth in [7, 9, 12] {
        let bytes = generate::form_bomb_pdf(depth, 10);
        let outcome = parse_within_bound(
            &format!("form-bomb-{depth}"),
            &bytes,
            DocumentFormat::Pdf,
            &Limits::default(),
        );
        match outcome {
            Err(Error::OverBudget(reason)) => {
                assert!(reason.contains("PDF content work"), "{reason}")
            }
            other => panic!("depth {depth}: expected the work budget's error, got {other:?}"),
        }
    }
}

#[test]
fn pdf_forms_reused_a_thousand_times_stay_within_budget() {
    // A logo on every page, a marker in a plot: form reuse of this order is normal.
    let bytes = generate::form_bomb_pdf(3, 10);
    let doc = parse_within_bound("reuse", &bytes, DocumentFormat::Pdf, &Limits::default())
        .expect("within budget");
    assert!(
        doc.text.contains("A page that draws a form bomb."),
        "{}",
        doc.text
    );
}

#[test]
fn the_deadline_stops_a_pdf_whose_work_budget_is_lifted() {
    let bytes = generate::form_bomb_pdf(12, 10);
    let limits = Limits {
        parse_timeout: Some(Duration::from_millis(300)),
        pdf_work_base: u64::MAX,
        ..Limits::default()
    };
    match parse_within_bound("deadline", &bytes, DocumentFormat::Pdf, &limits) {
        Err(e @ Error::TimedOut { .. }) => assert_eq!(
            e.to_string(),
            "parsing took longer than the 0.3 s limit (parse_timeout_secs)"
        ),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn every_parser_sees_the_deadline() {
    // A deadline already passed: each parser must notice it rather than run to the end.
    let limits = Limits {
        parse_timeout: Some(Duration::ZERO),
        ..Limits::default()
    };
    let cases: Vec<(&str, DocumentFormat, Vec<u8>)> = vec![
        ("pdf", DocumentFormat::Pdf, generate::form_bomb_pdf(2, 2)),
        ("html", DocumentFormat::Html, generate::nested_html("p", 10)),
        (
            "md",
            DocumentFormat::Markdown,
            generate::nested_markdown(">", 10),
        ),
        (
            "txt",
            DocumentFormat::Text,
            generate::one_paragraph_text(10, 40),
        ),
        ("docx", DocumentFormat::Docx, generate::nested_docx(10)),
    ];
    for (name, format, bytes) in cases {
        match parse_bytes(&bytes, format, Path::new(name), &limits) {
            Err(Error::TimedOut { .. }) => {}
            other => panic!("{name}: expected a timeout, got {other:?}"),
        }
    }
}

#[test]
fn deep_markdown_docx_and_long_text_stay_within_bound() {
    let cases: Vec<(String, DocumentFormat, Vec<u8>)> = vec![
        (
            "md-quotes".into(),
            DocumentFormat::Markdown,
            generate::nested_markdown(">", 2_000),
        ),
        (
            "md-lists".into(),
            DocumentFormat::Markdown,
            generate::nested_markdown("-", 2_000),
        ),
        (
            "md-brackets".into(),
            DocumentFormat::Markdown,
            generate::unclosed_markdown_inline("[", 100_000),
        ),
        (
            "md-emphasis".into(),
            DocumentFormat::Markdown,
            generate::unclosed_markdown_inline("*a", 100_000),
        ),
        (
            "docx-nested".into(),
            DocumentFormat::Docx,
            generate::nested_docx(100_000),
        ),
        (
            "text-one-paragraph".into(),
            DocumentFormat::Text,
            generate::one_paragraph_text(125_000, 80),
        ),
    ];
    for (name, format, bytes) in cases {
        // Parsed or refused with a reason: either is fine, taking the core is not.
        let _ = parse_within_bound(&name, &bytes, format, &Limits::default());
    }
}

/// Inputs the fuzzers found slow or crashing, kept as they were found: each parses (or is
/// refused) within the bound, without panicking. The file's extension names its format;
/// the folder is empty while fuzzing has found nothing.
#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("pdf") => DocumentFormat::Pdf,
            Some("html") => DocumentFormat::Html,
            Some("md") => DocumentFormat::Markdown,
            Some("txt") => DocumentFormat::Text,
            Some("docx") => DocumentFormat::Docx,
            _ => continue,
        };
        let bytes = std::fs::read(&path).expect("readable fixture");
        let name = path.display().to_string();
        let _ = parse_within_bound(&name, &bytes, format, &Limits::default());
    }
}
