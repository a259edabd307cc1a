//! The HTML report of `lore eval`: one self-contained file (inline CSS, no script, no
//! external asset) with the metrics per mode and, per question, the answer, pass or fail,
//! and the cited passages (or the best ones) with the expected evidence highlighted.

use super::score::{self, Question};
use super::Result;
use super::{OutputLine, RunReport};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

const TEMPLATE: &str = include_str!("report.html.j2");

/// Passages shown per question when the answer cites none.
const SHOWN_WHEN_UNCITED: usize = 3;

/// A run of evidence words shorter than this is not highlighted: single common words
/// ("the", "is") would light up everywhere.
const MIN_HIGHLIGHT_WORDS: usize = 3;

#[derive(Serialize)]
struct Segment {
    text: String,
    mark: bool,
}

#[derive(Serialize)]
struct ShownPassage {
    n: usize,
    doc: String,
    page: Option<u32>,
    heading: Option<String>,
    cited: bool,
    has_evidence: bool,
    segments: Vec<Segment>,
}

#[derive(Serialize)]
struct QuestionView {
    id: String,
    kind: String,
    question: String,
    answer: String,
    pass: bool,
    /// "answer correct", "abstained correctly", …
    verdict: String,
    evidence_rank: String,
    expected: String,
    ttft: String,
    passages: Vec<ShownPassage>,
}

#[derive(Serialize)]
struct Page<'a> {
    report: &'a RunReport,
    modes: Vec<String>,
    rows: Vec<MetricRow>,
    sections: Vec<Section>,
}

#[derive(Serialize)]
struct Section {
    mode: String,
    questions: Vec<QuestionView>,
    passed: usize,
}

#[derive(Serialize)]
struct MetricRow {
    name: String,
    values: Vec<String>,
}

/// Renders the report for `lines` (per mode) of `questions`.
pub fn render(
    report: &RunReport,
    questions: &[Question],
    lines: &BTreeMap<String, Vec<OutputLine>>,
    cutoffs: &[usize],
) -> Result<String> {
    let by_id: BTreeMap<&str, &Question> = questions.iter().map(|q| (q.id.as_str(), q)).collect();
    let modes: Vec<String> = report.modes.keys().cloned().collect();
    let rows = metric_rows(report, cutoffs);
    let mut sections = Vec::new();
    for (mode, mode_lines) in lines {
        let views: Vec<QuestionView> = mode_lines
            .iter()
            .filter_map(|l| by_id.get(l.id.as_str()).map(|q| view(q, l, report.answers)))
            .collect();
        let passed = views.iter().filter(|v| v.pass).count();
        sections.push(Section {
            mode: mode.clone(),
            questions: views,
            passed,
        });
    }
    let mut env = minijinja::Environment::new();
    // The name ends in .html, so every value is HTML-escaped.
    env.add_template("report.html", TEMPLATE)?;
    let template = env.get_template("report.html")?;
    Ok(template.render(minijinja::value::Serde(Page {
        report,
        modes,
        rows,
        sections,
    }))?)
}

fn metric_rows(report: &RunReport, cutoffs: &[usize]) -> Vec<MetricRow> {
    let share = |x: Option<f64>| x.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    let secs = |x: Option<f64>| x.map_or_else(|| "–".to_string(), |v| format!("{v:.2} s"));
    let mut rows = Vec::new();
    let mut row = |name: String, f: &dyn Fn(&super::ModeReport) -> String| {
        rows.push(MetricRow {
            name,
            values: report.modes.values().map(f).collect(),
        });
    };
    for &k in cutoffs {
        let key = format!("evidence_recall@{k}");
        row(format!("evidence recall@{k}"), &|r| {
            share(r.metrics.recall.get(&key).copied().flatten())
        });
    }
    row("MRR".into(), &|r| share(r.metrics.mrr));
    let doc_key = format!("doc_recall@{}", report.k);
    row(format!("document recall@{}", report.k), &|r| {
        share(r.metrics.recall.get(&doc_key).copied().flatten())
    });
    if report.answers {
        row("answer accuracy".into(), &|r| {
            share(r.metrics.answer_accuracy)
        });
        row("abstention accuracy".into(), &|r| {
            share(r.metrics.abstention_accuracy)
        });
        row("false-abstention rate".into(), &|r| {
            share(r.metrics.false_abstention_rate)
        });
        row("citation precision".into(), &|r| {
            share(r.metrics.citation_precision)
        });
        row("time to first token p50 / p95".into(), &|r| {
            format!(
                "{} / {}",
                secs(r.latency.ttft_p50_s),
                secs(r.latency.ttft_p95_s)
            )
        });
        row("total p50 / p95".into(), &|r| {
            format!(
                "{} / {}",
                secs(r.latency.total_p50_s),
                secs(r.latency.total_p95_s)
            )
        });
    }
    row("retrieval p50 / p95".into(), &|r| {
        format!(
            "{} / {}",
            secs(r.latency.retrieval_p50_s),
            secs(r.latency.retrieval_p95_s)
        )
    });
    rows
}

fn view(q: &Question, line: &OutputLine, answers: bool) -> QuestionView {
    let v = &line.verdict;
    let evidence = q.evidence.items();
    let retrieved_in_time = v.all_evidence_rank().is_some_and(|r| r <= 5);
    let (pass, verdict) = match (q.answerable(), answers) {
        (false, true) if v.abstained => (true, "abstained, as it should".to_string()),
        (false, true) => (
            false,
            "answered a question the documents cannot answer".into(),
        ),
        (false, false) => (true, "unanswerable (no retrieval target)".into()),
        (true, true) if v.answer_correct == Some(true) => (true, "correct answer".into()),
        (true, true) if v.abstained => (false, "abstained on an answerable question".into()),
        (true, true) => (false, "answer lacks the expected content".into()),
        (true, false) if retrieved_in_time => (true, "evidence in the top 5".into()),
        (true, false) => (false, "evidence not in the top 5".into()),
    };
    let shown: Vec<usize> = if line.cited.is_empty() {
        (1..=line.sources.len().min(SHOWN_WHEN_UNCITED)).collect()
    } else {
        line.cited.clone()
    };
    let passages = shown
        .iter()
        .filter_map(|&n| line.sources.get(n - 1).map(|s| (n, s)))
        .map(|(n, s)| ShownPassage {
            n,
            doc: s.doc.clone(),
            page: s.page,
            heading: s.heading.clone(),
            cited: line.cited.contains(&n),
            has_evidence: evidence
                .iter()
                .any(|e| score::coverage(e, &s.text) >= super::score::DEFAULT_THRESHOLD),
            segments: highlight(&s.text, &evidence),
        })
        .collect();
    let rank = |r: &Option<usize>| r.map_or_else(|| "not found".to_string(), |r| r.to_string());
    QuestionView {
        id: q.id.clone(),
        kind: q.kind.clone(),
        question: q.question.clone(),
        answer: line.answer.clone(),
        pass,
        verdict,
        evidence_rank: v
            .evidence_rank
            .iter()
            .map(rank)
            .collect::<Vec<_>>()
            .join(", "),
        expected: q.answer_contains.join(" | "),
        ttft: line
            .ttft_s
            .map_or_else(String::new, |t| format!("{t:.1} s to first token")),
        passages,
    }
}

/// Splits `text` into plain and highlighted segments: a highlight is a run of at least
/// [`MIN_HIGHLIGHT_WORDS`] consecutive words that all occur in some evidence piece.
fn highlight(text: &str, evidence: &[&str]) -> Vec<Segment> {
    let wanted: HashSet<String> = evidence.iter().flat_map(|e| score::words(e)).collect();
    static WORD: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\w+").expect("static regex"));
    let spans: Vec<(usize, usize, bool)> = WORD
        .find_iter(text)
        .map(|m| {
            let known = score::words(m.as_str()).iter().all(|w| wanted.contains(w));
            (m.start(), m.end(), known)
        })
        .collect();
    // Byte ranges of qualifying runs.
    let mut marks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < spans.len() {
        if !spans[i].2 {
            i += 1;
            continue;
        }
        let start = i;
        while i < spans.len() && spans[i].2 {
            i += 1;
        }
        if i - start >= MIN_HIGHLIGHT_WORDS {
            marks.push((spans[start].0, spans[i - 1].1));
        }
    }
    let mut segments = Vec::new();
    let mut at = 0;
    for (start, end) in marks {
        if start > at {
            segments.push(Segment {
                text: text[at..start].to_string(),
                mark: false,
            });
        }
        segments.push(Segment {
            text: text[start..end].to_string(),
            mark: true,
        });
        at = end;
    }
    if at < text.len() {
        segments.push(Segment {
            text: text[at..].to_string(),
            mark: false,
        });
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(segments: &[Segment]) -> Vec<&str> {
        segments
            .iter()
            .filter(|s| s.mark)
            .map(|s| s.text.as_str())
            .collect()
    }

    #[test]
    fn runs_of_evidence_words_are_highlighted_and_lone_words_are_not() {
        let text = "The cron job runs nightly at two. Restores are the exception.";
        let segments = highlight(text, &["Backups: the job runs nightly at 2."]);
        assert_eq!(marked(&segments), vec!["job runs nightly at"]);
        let rebuilt: String = segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(rebuilt, text, "segments cover the text exactly");
        assert!(marked(&highlight(text, &[])).is_empty());
    }
}
