//! Retrieval: a question in, ranked passages out. Embeds the query, asks the index in the
//! chosen mode (BM25, vector or hybrid fusion), and shapes results for the CLI (text or
//! JSON) and for the retrieval evaluation.

use crate::cli::{EvalRetrievalArgs, SearchArgs};
use crate::config::Config;
use crate::pipeline::Engine;
use anyhow::{Context, Result};
use lore_index::{Filter, Fusion, Hit, SearchMode};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// One passage as shown to users and written by `lore search --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Passage {
    pub rank: usize,
    pub score: f32,
    /// Cosine similarity to the query (vector and hybrid modes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The document's path as ingested.
    pub doc: String,
    pub page: Option<u32>,
    pub page_end: Option<u32>,
    pub heading: Option<String>,
    pub title: String,
    pub collection: String,
    pub char_start: u64,
    pub char_end: u64,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct SearchOutput<'a> {
    pub query: &'a str,
    pub mode: SearchMode,
    pub results: Vec<Passage>,
}

/// Runs one query against the engine.
pub fn search(
    engine: &Engine,
    query: &str,
    mode: SearchMode,
    k: usize,
    filter: &Filter,
) -> Result<Vec<Passage>> {
    let vector = match mode {
        SearchMode::Bm25 => None,
        SearchMode::Vector | SearchMode::Hybrid => {
            let mut v = engine
                .embedder
                .embed(&[query])
                .context("cannot embed the query")?;
            v.pop()
        }
    };
    let hits = engine
        .index
        .search(mode, query, vector.as_deref(), k, filter)?;
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, h)| passage(i + 1, h))
        .collect())
}

fn passage(rank: usize, hit: Hit) -> Passage {
    let c = hit.chunk;
    Passage {
        rank,
        score: hit.score,
        similarity: hit.similarity,
        doc: c.path,
        page: c.page_start,
        page_end: c.page_end,
        heading: c.heading,
        title: c.title,
        collection: c.collection,
        char_start: c.char_start,
        char_end: c.char_end,
        text: c.text,
    }
}

/// `lore search`.
pub fn run_search(config: &Config, args: &SearchArgs) -> Result<()> {
    if args.query.trim().is_empty() {
        anyhow::bail!("the query is empty: give some words to search for");
    }
    let engine = Engine::open(config)?;
    let filter = Filter {
        collections: (!args.collections.is_empty()).then(|| args.collections.clone()),
    };
    let results = search(&engine, &args.query, args.mode, args.k.max(1), &filter)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = SearchOutput {
            query: &args.query,
            mode: args.mode,
            results,
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    if results.is_empty() {
        writeln!(out, "no passages found")?;
    }
    for p in &results {
        let page = match (p.page, p.page_end) {
            (Some(a), Some(b)) if b != a => format!("  p.{a}-{b}"),
            (Some(a), _) => format!("  p.{a}"),
            _ => String::new(),
        };
        let heading = p
            .heading
            .as_deref()
            .map(|h| format!("  § {h}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{:>2}. {:.4}  {}{page}{heading}",
            p.rank, p.score, p.doc
        )?;
        writeln!(out, "    {}", snippet(&p.text, 240))?;
    }
    Ok(())
}

/// The passage on one line, cut at a word boundary.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    let cut: String = flat.chars().take(max_chars).collect();
    let cut = cut
        .rsplit_once(' ')
        .map_or(cut.as_str(), |(a, _)| a)
        .to_string();
    format!("{cut} …")
}

#[derive(Debug, Deserialize)]
struct EvalQuestion {
    id: String,
    question: String,
}

#[derive(Debug, Serialize)]
struct EvalOutput<'a> {
    id: &'a str,
    answer: &'a str,
    sources: Vec<EvalSource<'a>>,
}

#[derive(Debug, Serialize)]
struct EvalSource<'a> {
    doc: &'a str,
    page: Option<u32>,
    char_start: u64,
    score: f32,
    text: &'a str,
}

/// Hidden `lore eval-retrieval`: writes `retrieval-<mode>.jsonl` in the reference scorer's
/// format (`{id, answer, sources:[{doc, text}]}`) for each mode; the answer stays empty.
pub fn run_eval_retrieval(config: &Config, args: &EvalRetrievalArgs) -> Result<()> {
    let mut engine = Engine::open(config)?;
    let file = std::fs::File::open(&args.questions)
        .with_context(|| format!("cannot open {}", args.questions.display()))?;
    let mut questions = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let q: EvalQuestion = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: not a question object",
                args.questions.display(),
                n + 1
            )
        })?;
        questions.push(q);
    }
    std::fs::create_dir_all(&args.out)?;
    let modes = if args.modes.is_empty() {
        vec![SearchMode::Hybrid, SearchMode::Bm25, SearchMode::Vector]
    } else {
        args.modes.clone()
    };
    let default_fusion = engine.index.fusion();
    let mut runs: Vec<(SearchMode, Fusion, String)> = modes
        .into_iter()
        .map(|m| (m, default_fusion, m.to_string()))
        .collect();
    for fusion in &args.fusions {
        runs.push((
            SearchMode::Hybrid,
            *fusion,
            format!("hybrid-{}", fusion_label(*fusion)),
        ));
    }
    for (mode, fusion, label) in runs {
        engine.index.set_fusion(fusion);
        let path = args.out.join(format!("retrieval-{label}.jsonl"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for q in &questions {
            let results = search(&engine, &q.question, mode, args.k, &Filter::default())?;
            let line = EvalOutput {
                id: &q.id,
                answer: "",
                sources: results
                    .iter()
                    .map(|p| EvalSource {
                        doc: &p.doc,
                        page: p.page,
                        char_start: p.char_start,
                        score: p.score,
                        text: &p.text,
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
        }
        out.flush()?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Parses `rrf` or `convex:W` (W = vector weight in [0, 1]).
pub fn parse_fusion(text: &str) -> std::result::Result<Fusion, String> {
    match text.split_once(':') {
        None if text == "rrf" => Ok(Fusion::Rrf),
        Some(("convex", weight)) => match weight.parse::<f32>() {
            Ok(w) if (0.0..=1.0).contains(&w) => Ok(Fusion::Convex { vector_weight: w }),
            _ => Err(format!(
                "vector weight {weight:?} is not a number in [0, 1]"
            )),
        },
        _ => Err(format!(
            "unknown fusion {text:?} (expected `rrf` or `convex:W`, e.g. convex:0.7)"
        )),
    }
}

fn fusion_label(fusion: Fusion) -> String {
    match fusion {
        Fusion::Rrf => "rrf".into(),
        Fusion::Convex { vector_weight } => format!("convex{vector_weight}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_cut_at_words() {
        assert_eq!(snippet("a  b\nc", 10), "a b c");
        let s = snippet("alpha beta gamma delta", 12);
        assert_eq!(s, "alpha beta …");
    }

    #[test]
    fn fusions_parse() {
        assert_eq!(parse_fusion("rrf"), Ok(Fusion::Rrf));
        assert_eq!(
            parse_fusion("convex:0.25"),
            Ok(Fusion::Convex {
                vector_weight: 0.25
            })
        );
        assert!(parse_fusion("convex:2").is_err());
        assert!(parse_fusion("max").is_err());
    }
}
