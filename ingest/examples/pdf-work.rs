//! Work units (see `Limits::max_pdf_work`) and time each PDF given takes to parse:
//! `cargo run -p lore-ingest --example pdf-work -- FILE.pdf...`.

use lore_ingest::{pdf, Budget};
use std::time::Instant;

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        let budget = Budget::unlimited();
        let started = Instant::now();
        let outcome = pdf::parse(&bytes, &budget);
        let secs = started.elapsed().as_secs_f64();
        let pages = outcome.as_ref().ok().and_then(|d| d.pages).unwrap_or(0);
        println!(
            "{:>12} units {:>5} pages {:>7.3} s  {}{}",
            budget.spent(),
            pages,
            secs,
            path,
            outcome
                .err()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
    }
}
