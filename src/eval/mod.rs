//! `lore eval`: runs a question set through the real pipeline (retrieval in each mode
//! asked for, then the answering path of `lore ask`) against the current index, and
//! reports retrieval and answer quality with latency. Writes, in the output folder:
//! `outputs-<mode>.jsonl` (the reference scorer's input format, plus answer details),
//! `metrics.json`, and `report.html` (self-contained, opens offline). `--compare` diffs two
//! `metrics.json` files.

mod report;
pub mod score;

use crate::config::Config;
use crate::engine::load_generator;
use crate::engine::Engine;
use crate::rag::{self, AskOptions};
use crate::retrieval::{self, Passage};
use indicatif::{ProgressBar, ProgressStyle};
use lore_index::{Filter, SearchMode};
use score::{Metrics, Question, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What stops an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: not a question object ({{\"id\", \"question\", \"doc\", \"answer_contains\", \"evidence\", \"kind\"}}): {source}")]
    NotAQuestion {
        at: String,
        #[source]
        source: serde_json::Error,
    },
    /// A question line that parses but cannot be measured; the message says why.
    #[error("{at}: {reason}")]
    BadQuestion { at: String, reason: String },
    #[error("{} holds no questions", .0.display())]
    NoQuestions(PathBuf),
    #[error("question {id}: {source}")]
    Question {
        id: String,
        #[source]
        source: rag::RagError,
    },
    #[error("cannot encode the results: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot render the report: {0}")]
    Report(#[from] minijinja::Error),
    #[error(transparent)]
    Engine(Box<crate::engine::EngineError>),
}

impl From<crate::engine::EngineError> for EvalError {
    fn from(e: crate::engine::EngineError) -> Self {
        EvalError::Engine(Box::new(e))
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// An I/O error, with what was done to which path.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EvalError {
    let path = path.to_path_buf();
    move |source| EvalError::Io {
        action,
        path,
        source,
    }
}

/// Passages kept per question for recall, whatever `k` the answer uses: recall@10 needs 10.
const RECALL_DEPTH: usize = 10;

/// One question's outcome, as written to `outputs-<mode>.jsonl`. `id`, `answer` and
/// `sources` (`doc`, `text`, best first) are what the reference scorer reads.
#[derive(Debug, Clone, Serialize)]
pub struct OutputLine {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub abstained: bool,
    /// Passage numbers (into `sources`, from 1) the answer cites.
    pub cited: Vec<usize>,
    pub sources: Vec<Passage>,
    /// The evidence sentence quoted beside the answer.
    pub quote: Option<String>,
    /// The excerpts the model read, best first, as `(doc, text)`.
    pub evidence: Vec<(String, String)>,
    /// Seconds from the question to the first answer text (retrieval included).
    pub ttft_s: Option<f64>,
    pub total_s: f64,
    pub retrieval_s: f64,
    pub verdict: Verdict,
}

/// Latency percentiles over a run's questions, in seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub retrieval_p50_s: Option<f64>,
    pub retrieval_p95_s: Option<f64>,
    pub ttft_p50_s: Option<f64>,
    pub ttft_p95_s: Option<f64>,
    pub total_p50_s: Option<f64>,
    pub total_p95_s: Option<f64>,
}

/// Everything measured for one retrieval mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeReport {
    pub metrics: Metrics,
    pub latency: Latency,
}

/// The `metrics.json` of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub questions: String,
    pub k: usize,
    pub threshold: f64,
    pub answers: bool,
    pub llm_model: Option<String>,
    pub embed_model: String,
    pub modes: BTreeMap<String, ModeReport>,
}

/// What one `lore eval` run measures and where it writes.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The questions, JSONL.
    pub questions: PathBuf,
    /// Retrieval modes to measure (duplicates are measured once); empty means hybrid.
    pub modes: Vec<SearchMode>,
    /// Passages retrieved for each answer.
    pub k: usize,
    /// Folder for metrics.json, report.html and `outputs-<mode>.jsonl`.
    pub out: PathBuf,
    /// No language model, no answers.
    pub retrieval_only: bool,
    pub max_tokens: usize,
    /// Share of an evidence's words a passage must hold to count as containing it.
    pub threshold: f64,
    /// Show a progress bar on the terminal.
    pub progress: bool,
}

/// A finished run: its report and where it was written.
#[derive(Debug)]
pub struct Evaluation {
    pub report: RunReport,
    /// The recall cut-offs measured (1, 3, 5, 10 and `k`).
    pub cutoffs: Vec<usize>,
    pub metrics_path: PathBuf,
    pub html_path: PathBuf,
}

/// Runs every question through the pipeline in each mode, scores it, and writes
/// `metrics.json`, `report.html` and `outputs-<mode>.jsonl` into `options.out`.
pub fn evaluate(config: &Config, options: &EvalOptions) -> Result<Evaluation> {
    let args = options;
    let questions_path = options.questions.as_path();
    let questions = load_questions(questions_path)?;
    let k = args.k.max(1);
    let modes = if args.modes.is_empty() {
        vec![SearchMode::Hybrid]
    } else {
        let mut seen = HashSet::new();
        args.modes
            .iter()
            .copied()
            .filter(|m| seen.insert(*m))
            .collect()
    };
    let engine = Engine::open_read_only(config)?;
    let generator = if args.retrieval_only {
        None
    } else {
        Some(load_generator(config, config.answer_queue)?)
    };
    let mut cutoffs: Vec<usize> = score::RECALL_CUTOFFS.to_vec();
    if !cutoffs.contains(&k) && k <= RECALL_DEPTH {
        cutoffs.push(k);
        cutoffs.sort_unstable();
    }
    std::fs::create_dir_all(&args.out).map_err(io("create", &args.out))?;
    let mut report = RunReport {
        questions: questions_path.display().to_string(),
        k,
        threshold: args.threshold,
        answers: generator.is_some(),
        llm_model: generator.as_ref().map(|_| config.llm_model.clone()),
        embed_model: config.embed_model.clone(),
        modes: BTreeMap::new(),
    };
    let mut all_lines = BTreeMap::new();
    for mode in modes {
        let ask_options = AskOptions {
            k,
            mode,
            generation: lore_llm::GenerationParams {
                max_tokens: args.max_tokens,
                ..Default::default()
            },
            filter: Filter::default(),
            ..config.ask_options()
        };
        let lines = run_mode(&engine, generator.as_ref(), &questions, &ask_options, args)?;
        let path = args.out.join(format!("outputs-{mode}.jsonl"));
        write_jsonl(&path, &lines)?;
        let verdicts: Vec<Verdict> = lines.iter().map(|l| l.verdict.clone()).collect();
        let mode_report = ModeReport {
            metrics: score::aggregate(&verdicts, &cutoffs, generator.is_some()),
            latency: latency(&lines),
        };
        report.modes.insert(mode.to_string(), mode_report);
        all_lines.insert(mode.to_string(), lines);
    }
    let metrics_path = args.out.join("metrics.json");
    std::fs::write(&metrics_path, serde_json::to_vec_pretty(&report)?)
        .map_err(io("write", &metrics_path))?;
    let html_path = args.out.join("report.html");
    let html = report::render(&report, &questions, &all_lines, &cutoffs)?;
    std::fs::write(&html_path, html).map_err(io("write", &html_path))?;
    Ok(Evaluation {
        report,
        cutoffs,
        metrics_path,
        html_path,
    })
}

/// Reads a questions JSONL; every line must parse, ids must be unique, and answerable
/// questions need their document(s) and evidence (or recall cannot be measured).
pub fn load_questions(path: &Path) -> Result<Vec<Question>> {
    let file = std::fs::File::open(path).map_err(io("open", path))?;
    let mut questions: Vec<Question> = Vec::new();
    let mut ids = HashSet::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io("read", path))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let q: Question = serde_json::from_str(&line)
            .map_err(|source| EvalError::NotAQuestion { at: at(), source })?;
        let bad = |reason: String| EvalError::BadQuestion { at: at(), reason };
        if q.question.trim().is_empty() {
            return Err(bad(format!("question {:?} is empty", q.id)));
        }
        if !ids.insert(q.id.clone()) {
            return Err(bad(format!("id {:?} appears twice", q.id)));
        }
        if q.answerable() && (q.doc.items().is_empty() || q.evidence.items().is_empty()) {
            return Err(bad(format!(
                "question {:?} is answerable (kind {:?}) but gives no \"doc\" or no \"evidence\"; mark it \"kind\": \"unanswerable\" or add them",
                q.id, q.kind
            )));
        }
        questions.push(q);
    }
    if questions.is_empty() {
        return Err(EvalError::NoQuestions(path.to_path_buf()));
    }
    Ok(questions)
}

fn run_mode(
    engine: &Engine,
    generator: Option<&lore_llm::Generator>,
    questions: &[Question],
    options: &AskOptions,
    args: &EvalOptions,
) -> Result<Vec<OutputLine>> {
    let bar = if !args.progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(questions.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos}/{len} questions  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(options.mode.to_string());
    let mut lines = Vec::with_capacity(questions.len());
    for q in questions {
        bar.set_message(q.id.clone());
        let started = Instant::now();
        let retrieved = retrieval::search(
            &engine.embedder,
            &engine.index,
            &q.question,
            options.mode,
            RECALL_DEPTH.max(options.k),
            &options.filter,
        )
        .map_err(|e| EvalError::Question {
            id: q.id.clone(),
            source: e.into(),
        })?;
        let retrieval_s = started.elapsed().as_secs_f64();
        let mut line = OutputLine {
            id: q.id.clone(),
            question: q.question.clone(),
            answer: String::new(),
            abstained: false,
            cited: Vec::new(),
            sources: retrieved.clone(),
            quote: None,
            evidence: Vec::new(),
            ttft_s: None,
            total_s: retrieval_s,
            retrieval_s,
            verdict: score::score(q, &score::Output::default(), args.threshold),
        };
        let shown: Vec<Passage> = retrieved.iter().take(options.k).cloned().collect();
        let evidence = rag::select_evidence(
            &engine.embedder,
            &engine.index,
            &q.question,
            &shown,
            options,
        )
        .map_err(|source| EvalError::Question {
            id: q.id.clone(),
            source,
        })?;
        line.evidence = evidence
            .excerpts
            .iter()
            .map(|x| {
                let p = &shown[x.passage];
                (p.doc.clone(), x.text(&p.text))
            })
            .collect();
        if let Some(generator) = generator {
            let mut first_text: Option<f64> = None;
            let answer = rag::answer_from(
                &engine.embedder,
                generator,
                &q.question,
                &[],
                shown,
                &evidence,
                options,
                |_| {
                    first_text.get_or_insert_with(|| started.elapsed().as_secs_f64());
                    std::ops::ControlFlow::Continue(())
                },
            )
            .map_err(|source| EvalError::Question {
                id: q.id.clone(),
                source,
            })?;
            line.quote = answer.quote.map(|q| q.text);
            line.answer = answer.answer;
            line.abstained = answer.abstained;
            line.ttft_s = first_text;
            line.total_s = started.elapsed().as_secs_f64();
            // The answer's numbers refer to the passages it was shown, in prompt order;
            // map them to positions in `sources` (retrieval order).
            line.cited = answer
                .citations
                .iter()
                .filter_map(|c| {
                    retrieved
                        .iter()
                        .position(|p| {
                            p.doc == c.passage.doc && p.char_start == c.passage.char_start
                        })
                        .map(|i| i + 1)
                })
                .collect();
        }
        let cited: Vec<&str> = line
            .cited
            .iter()
            .filter_map(|&n| line.sources.get(n - 1).map(|s| s.text.as_str()))
            .collect();
        let output = score::Output {
            answer: &line.answer,
            sources: line
                .sources
                .iter()
                .map(|s| (s.doc.as_str(), s.text.as_str()))
                .collect(),
            cited,
            quote: line.quote.as_deref(),
            evidence: line
                .evidence
                .iter()
                .map(|(_, text)| text.as_str())
                .collect(),
        };
        line.verdict = score::score(q, &output, args.threshold);
        lines.push(line);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(lines)
}

fn write_jsonl(path: &Path, lines: &[OutputLine]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io("write", path))?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        serde_json::to_writer(&mut out, line)?;
        writeln!(out).map_err(io("write", path))?;
    }
    out.flush().map_err(io("write", path))?;
    Ok(())
}

/// The `p`-th percentile (nearest rank) of `values`.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn latency(lines: &[OutputLine]) -> Latency {
    let retrieval: Vec<f64> = lines.iter().map(|l| l.retrieval_s).collect();
    let ttft: Vec<f64> = lines.iter().filter_map(|l| l.ttft_s).collect();
    let total: Vec<f64> = lines.iter().map(|l| l.total_s).collect();
    let answered = !ttft.is_empty();
    Latency {
        retrieval_p50_s: percentile(&retrieval, 50.0),
        retrieval_p95_s: percentile(&retrieval, 95.0),
        ttft_p50_s: percentile(&ttft, 50.0),
        ttft_p95_s: percentile(&ttft, 95.0),
        total_p50_s: answered.then(|| percentile(&total, 50.0)).flatten(),
        total_p95_s: answered.then(|| percentile(&total, 95.0)).flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v = [3.0, 1.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), Some(2.0));
        assert_eq!(percentile(&v, 95.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn questions_file_errors_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.jsonl");
        std::fs::write(
            &path,
            "{\"id\": \"a\", \"question\": \"Why?\", \"kind\": \"unanswerable\"}\n\nnot json\n",
        )
        .expect("write");
        let err = format!("{:#}", load_questions(&path).expect_err("bad line"));
        assert!(err.contains("q.jsonl:3"), "{err}");
        std::fs::write(
            &path,
            "{\"id\": \"a\", \"question\": \"Why?\", \"kind\": \"txt\", \"doc\": \"a.txt\"}\n",
        )
        .expect("write");
        let err = format!("{:#}", load_questions(&path).expect_err("no evidence"));
        assert!(err.contains("no \"evidence\""), "{err}");
    }

    #[test]
    fn the_second_development_set_loads_and_has_the_kinds_it_promises() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/dev2/questions.jsonl");
        let questions = load_questions(&path).expect("eval/dev2/questions.jsonl loads");
        let count = |kind: &str| questions.iter().filter(|q| q.kind == kind).count();
        assert!(questions.len() >= 60, "{} questions", questions.len());
        assert!(count("unanswerable") >= 10);
        assert!(count("multi") >= 5);
        for q in questions.iter().filter(|q| q.answerable()) {
            assert!(
                !q.answer_contains.is_empty(),
                "{} has no answer strings",
                q.id
            );
        }
        for q in questions.iter().filter(|q| q.kind == "multi") {
            assert!(q.doc.items().len() >= 2, "{} names one document", q.id);
        }
    }
}
