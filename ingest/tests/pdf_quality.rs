// Text-layer quality of the PDF parser against poppler's `pdftotext`, page by page, on the
// evaluation corpus (PDFs from LaTeX, DocBook, groff, FOP and cairo/HTML renderers).
//
// For every page the words pdftotext extracts (lowercased alphanumeric runs, ligatures
// expanded) are compared as a multiset with ours. Ours = the indexed blocks of that page plus
// the header/footer lines the parser removed from that page as repeated page furniture (they
// are in the document at most once by design, so they count as present — but the test also
// bounds how much text may be classified as furniture, so body text cannot hide there).

use lore_ingest::pdf::parse_detailed;
use lore_ingest::Limits;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Pages with fewer reference words are reported but not held to the bar (title pages,
/// figure-only pages: a couple of words differing would swing their ratio wildly).
const MIN_WORDS_FOR_BAR: usize = 20;
const REQUIRED_COVERAGE: f64 = 0.95;
/// Most of a document's words that may be set aside as running headers/footers.
const MAX_FURNITURE_SHARE: f64 = 0.10;

/// The development corpus (`LORE_EVAL_CORPUS`, else ../shared/eval-dev/corpus beside the
/// clone); this test is in the `real-data` tier, so a missing corpus is a failure.
fn corpus_dir() -> PathBuf {
    let dir = match std::env::var_os("LORE_EVAL_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval-dev/corpus"),
    };
    assert!(
        dir.is_dir(),
        "{} is missing: the development set belongs at ../shared/eval-dev beside the clone",
        dir.display()
    );
    dir
}

fn find_pdfs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_pdfs(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
        {
            out.push(path);
        }
    }
}

fn words(text: &str) -> Vec<String> {
    let expanded = text
        .replace('\u{FB00}', "ff")
        .replace('\u{FB01}', "fi")
        .replace('\u{FB02}', "fl")
        .replace('\u{FB03}', "ffi")
        .replace('\u{FB04}', "ffl");
    expanded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn multiset(words: Vec<String>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in words {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

/// Share of the reference words (with multiplicity) found among ours.
fn coverage(reference: &HashMap<String, usize>, ours: &HashMap<String, usize>) -> (usize, usize) {
    let total: usize = reference.values().sum();
    let found: usize = reference
        .iter()
        .map(|(w, n)| (*n).min(ours.get(w).copied().unwrap_or(0)))
        .sum();
    (found, total)
}

fn pdftotext_pages(path: &Path) -> Vec<String> {
    let out = Command::new("pdftotext")
        .arg("-enc")
        .arg("UTF-8")
        .arg(path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftotext ({e}); install it: apt-get install -y poppler-utils")
        });
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut pages: Vec<String> = text.split('\u{0C}').map(str::to_owned).collect();
    // pdftotext ends every page with a form feed, so the last piece is empty.
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

#[test]
#[cfg_attr(
    not(feature = "real-data"),
    ignore = "reads ../shared/eval-dev: scripts/test runs it"
)]
fn pdf_text_matches_pdftotext_page_by_page() {
    let dir = corpus_dir();
    assert!(
        Command::new("pdftotext").arg("-v").output().is_ok(),
        "pdftotext is missing: install poppler-utils (apt-get install -y poppler-utils)"
    );
    let mut pdfs = Vec::new();
    find_pdfs(&dir, &mut pdfs);
    pdfs.sort();
    assert!(!pdfs.is_empty(), "no PDFs under {}", dir.display());

    let mut failures = Vec::new();
    let mut total_pages = 0usize;
    let mut total_time = Duration::ZERO;
    println!(
        "{:<48} {:>5} {:>8} {:>8} {:>8} {:>7} {:>8}",
        "document", "pages", "min%", "mean%", "all%", "furn%", "ms"
    );
    for pdf in &pdfs {
        let name = pdf.strip_prefix(&dir).unwrap_or(pdf).display().to_string();
        let bytes = std::fs::read(pdf).unwrap_or_else(|e| panic!("read {name}: {e}"));
        let started = Instant::now();
        let parsed = parse_detailed(&bytes, &Limits::default().budget(bytes.len()))
            .unwrap_or_else(|e| panic!("{name}: parse failed: {e}"));
        let elapsed = started.elapsed();
        total_time += elapsed;
        let reference = pdftotext_pages(pdf);
        let doc = &parsed.document;
        assert_eq!(
            doc.pages,
            Some(reference.len() as u32),
            "{name}: page count differs from pdftotext"
        );
        total_pages += reference.len();

        let mut per_page_text = vec![String::new(); reference.len()];
        for block in &doc.blocks {
            let page = block
                .page
                .unwrap_or_else(|| panic!("{name}: block without page"))
                as usize;
            assert!(
                page >= 1 && page <= reference.len(),
                "{name}: block page {page} out of range"
            );
            per_page_text[page - 1].push_str(doc.block_text(block));
            per_page_text[page - 1].push('\n');
        }
        let (mut found_all, mut total_all, mut furniture_words, mut body_words) = (0, 0, 0, 0);
        let mut min_cov = 1.0f64;
        let mut sum_cov = 0.0f64;
        let mut counted = 0usize;
        for (i, ref_text) in reference.iter().enumerate() {
            let furniture = parsed.furniture[i].join("\n");
            furniture_words += words(&furniture).len();
            body_words += words(&per_page_text[i]).len();
            let ours = multiset(words(&format!("{}\n{}", per_page_text[i], furniture)));
            let (found, total) = coverage(&multiset(words(ref_text)), &ours);
            found_all += found;
            total_all += total;
            if total >= MIN_WORDS_FOR_BAR {
                let cov = found as f64 / total as f64;
                min_cov = min_cov.min(cov);
                sum_cov += cov;
                counted += 1;
                if cov < REQUIRED_COVERAGE {
                    failures.push(format!(
                        "{name} page {}: {:.1}% of {total} words",
                        i + 1,
                        cov * 100.0
                    ));
                }
            }
        }
        let furniture_share = furniture_words as f64 / (furniture_words + body_words).max(1) as f64;
        if furniture_share > MAX_FURNITURE_SHARE {
            failures.push(format!(
                "{name}: {:.1}% of words classified as headers/footers",
                furniture_share * 100.0
            ));
        }
        println!(
            "{:<48} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>8}",
            name,
            reference.len(),
            min_cov * 100.0,
            if counted > 0 {
                sum_cov / counted as f64 * 100.0
            } else {
                100.0
            },
            found_all as f64 / total_all.max(1) as f64 * 100.0,
            furniture_share * 100.0,
            elapsed.as_millis()
        );
    }
    println!(
        "total: {} PDFs, {total_pages} pages in {:.2}s = {:.0} pages/s",
        pdfs.len(),
        total_time.as_secs_f64(),
        total_pages as f64 / total_time.as_secs_f64().max(1e-9)
    );
    assert!(
        failures.is_empty(),
        "pages below {}% word coverage:\n{}",
        REQUIRED_COVERAGE * 100.0,
        failures.join("\n")
    );
}
