//! `lore eval`: runs a question set and prints its table, or compares two runs.

use super::parse_mode;
use crate::config::Config;
use crate::eval::{self, EvalOptions, RunReport};
use anyhow::{Context, Result};
use lore_index::SearchMode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Questions JSONL: {"id", "question", "doc", "answer_contains", "evidence", "kind"} per
    /// line (see README).
    #[arg(value_name = "QUESTIONS", required_unless_present = "compare")]
    pub questions: Option<PathBuf>,
    /// Retrieval mode to measure (repeatable) [default: hybrid]
    #[arg(long = "mode", value_parser = parse_mode)]
    pub modes: Vec<SearchMode>,
    /// Passages retrieved for each answer (recall is measured over the top 10).
    #[arg(long, default_value_t = crate::rag::DEFAULT_K, value_parser = super::passage_count())]
    pub k: usize,
    /// Folder for metrics.json, report.html and `outputs-<mode>.jsonl`.
    #[arg(long, default_value = "eval-out", value_name = "DIR")]
    pub out: PathBuf,
    /// Measure retrieval only: no language model, no answers.
    #[arg(long)]
    pub retrieval_only: bool,
    /// Maximum tokens per answer.
    #[arg(long, default_value_t = 256, value_parser = super::answer_tokens())]
    pub max_tokens: usize,
    /// Share of an evidence's words a passage must hold to count as containing it.
    #[arg(long, default_value_t = eval::score::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Compare two metrics.json files (B − A) instead of running.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with_all = ["questions", "modes", "retrieval_only"])]
    pub compare: Vec<PathBuf>,
    /// Print metrics.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `lore eval`. Returns the exit code.
pub fn run(config: &Config, args: &Args, quiet: bool) -> Result<i32> {
    if !args.compare.is_empty() {
        return compare(&args.compare[0], &args.compare[1]);
    }
    let Some(questions) = args.questions.clone() else {
        anyhow::bail!("give a questions file (JSONL), or --compare A.json B.json");
    };
    let options = EvalOptions {
        questions,
        modes: args.modes.clone(),
        k: args.k,
        out: args.out.clone(),
        retrieval_only: args.retrieval_only,
        max_tokens: args.max_tokens,
        threshold: args.threshold,
        progress: !(args.json || quiet),
    };
    let done = eval::evaluate(config, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done.report)?);
    } else {
        print_table(&done.report, &done.cutoffs);
        println!(
            "\nwrote {}, {} and outputs-<mode>.jsonl in {}",
            done.metrics_path.display(),
            done.html_path.display(),
            args.out.display()
        );
    }
    Ok(0)
}

fn fmt_share(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

fn fmt_secs(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.2}s"))
}

/// The terminal summary: one row per mode.
fn print_table(report: &RunReport, cutoffs: &[usize]) {
    let mut header = format!("{:<8}", "mode");
    for k in cutoffs {
        header.push_str(&format!(" {:>7}", format!("ev@{k}")));
    }
    header.push_str(&format!(
        " {:>6} {:>7} {:>7}",
        "MRR",
        format!("doc@{}", report.k),
        "sel-ans"
    ));
    if report.answers {
        header.push_str(&format!(
            " {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8}",
            "answer", "abstain", "false-a", "cit-p", "quote", "ttft50", "ttft95", "total95"
        ));
    }
    println!("{header}");
    for (mode, r) in &report.modes {
        let m = &r.metrics;
        let mut row = format!("{mode:<8}");
        for k in cutoffs {
            row.push_str(&format!(
                " {:>7}",
                fmt_share(
                    m.recall
                        .get(&format!("evidence_recall@{k}"))
                        .copied()
                        .flatten()
                )
            ));
        }
        row.push_str(&format!(
            " {:>6} {:>7} {:>7}",
            fmt_share(m.mrr),
            fmt_share(
                m.recall
                    .get(&format!("doc_recall@{}", report.k))
                    .copied()
                    .flatten()
            ),
            fmt_share(m.evidence_answer_recall)
        ));
        if report.answers {
            row.push_str(&format!(
                " {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8}",
                fmt_share(m.answer_accuracy),
                fmt_share(m.abstention_accuracy),
                fmt_share(m.false_abstention_rate),
                fmt_share(m.citation_precision),
                fmt_share(m.quote_accuracy),
                fmt_secs(r.latency.ttft_p50_s),
                fmt_secs(r.latency.ttft_p95_s),
                fmt_secs(r.latency.total_p95_s),
            ));
        }
        println!("{row}");
        if let Some(rate) = m.injection_success_rate {
            println!("{mode:<8} injection success rate {}", fmt_share(Some(rate)));
        }
    }
    println!(
        "\n{} questions ({} answerable, {} unanswerable); k = {}; evidence threshold {}",
        report
            .modes
            .values()
            .next()
            .map_or(0, |r| r.metrics.n_questions),
        report
            .modes
            .values()
            .next()
            .map_or(0, |r| r.metrics.n_answerable),
        report
            .modes
            .values()
            .next()
            .map_or(0, |r| r.metrics.n_unanswerable),
        report.k,
        report.threshold
    );
}

/// Every numeric leaf of a JSON value, keyed by its path (`hybrid.metrics.mrr`).
fn numeric_leaves(value: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, f64>) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(prefix.to_string(), x);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                numeric_leaves(v, &path, out);
            }
        }
        _ => {}
    }
}

fn read_report(path: &Path) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    if value.get("modes").is_none() {
        anyhow::bail!(
            "{} is not a metrics.json written by `lore eval` (no \"modes\")",
            path.display()
        );
    }
    Ok(value)
}

/// `lore eval --compare A B`: every metric of either run, with B − A.
fn compare(a_path: &Path, b_path: &Path) -> Result<i32> {
    let (a, b) = (read_report(a_path)?, read_report(b_path)?);
    let (mut a_leaves, mut b_leaves) = (BTreeMap::new(), BTreeMap::new());
    numeric_leaves(&a["modes"], "", &mut a_leaves);
    numeric_leaves(&b["modes"], "", &mut b_leaves);
    let keys: std::collections::BTreeSet<&String> =
        a_leaves.keys().chain(b_leaves.keys()).collect();
    println!("A = {}\nB = {}\n", a_path.display(), b_path.display());
    println!("{:<44} {:>9} {:>9} {:>9}", "metric", "A", "B", "B - A");
    let show = |x: Option<&f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    for key in keys {
        let (x, y) = (a_leaves.get(key), b_leaves.get(key));
        let delta = match (x, y) {
            (Some(x), Some(y)) => format!("{:+.3}", y - x),
            _ => "-".to_string(),
        };
        let name = key.replace(".metrics.", " ").replace(".latency.", " ");
        println!("{name:<44} {:>9} {:>9} {delta:>9}", show(x), show(y));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_leaves_flatten_nested_metrics() {
        let v: serde_json::Value = serde_json::json!({"hybrid": {"metrics": {"mrr": 0.5, "x": null}, "latency": {"ttft_p50_s": 2.0}}});
        let mut out = BTreeMap::new();
        numeric_leaves(&v, "", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out["hybrid.metrics.mrr"], 0.5);
    }
}
