//! Throughput benchmark for `lore_embed::Embedder`, driven by `scripts/bench-embed`.
//!
//! Reads chunk texts (a JSON array of strings), embeds them in calls of `--batch` texts for
//! `--windows` windows of `--seconds` each (after one warm-up pass), and prints one JSON line
//! with the best window's chunks/s.
//! Threads: candle reads RAYON_NUM_THREADS when its pools start, so `--threads` is applied
//! to the environment before the model runs anything.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lore_embed::Embedder;

struct Args {
    model_dir: PathBuf,
    texts: PathBuf,
    threads: usize,
    batch: usize,
    seconds: f64,
    windows: usize,
}

fn parse_args() -> Result<Args> {
    let mut model_dir = PathBuf::from("models/all-minilm-l6-v2");
    let mut texts = None;
    let mut threads = 2;
    let mut batch = 8;
    let mut seconds = 2.0;
    let mut windows = 4;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model-dir" => model_dir = PathBuf::from(value()?),
            "--texts" => texts = Some(PathBuf::from(value()?)),
            "--threads" => threads = value()?.parse()?,
            "--batch" => batch = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            "--windows" => windows = value()?.parse()?,
            other => bail!(
                "unknown argument {other}; usage: bench_embed --texts FILE.json \
                 [--model-dir DIR] [--threads N] [--batch B] [--seconds S] [--windows W]"
            ),
        }
    }
    let texts = texts.context("--texts FILE.json is required")?;
    if threads == 0 || batch == 0 || windows == 0 {
        bail!("--threads, --batch and --windows must be at least 1");
    }
    Ok(Args {
        model_dir,
        texts,
        threads,
        batch,
        seconds,
        windows,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // Must happen before candle builds its thread pools (first matmul).
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());

    let texts: Vec<String> = serde_json::from_slice(
        &std::fs::read(&args.texts).with_context(|| args.texts.display().to_string())?,
    )?;
    if texts.is_empty() {
        bail!("{} holds no texts", args.texts.display());
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    // The backend is a setting of Lore's config; this benchmark takes it from the same
    // environment variable the `lore` binary reads (scripts/bench-embed sets it).
    let backend = match std::env::var("LORE_EMBED_BACKEND") {
        Ok(name) => name.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        Err(_) => lore_embed::Backend::default(),
    };
    let embedder = Embedder::load_with(&args.model_dir, backend)?;

    for batch in texts.chunks(args.batch) {
        embedder.embed(batch)?;
    }
    // Best of several windows: other load on the machine can only slow a window down.
    let mut best: Option<(usize, f64)> = None;
    for _ in 0..args.windows {
        let start = Instant::now();
        let mut done = 0usize;
        'window: loop {
            for batch in texts.chunks(args.batch) {
                embedder.embed(batch)?;
                done += batch.len();
                if start.elapsed().as_secs_f64() >= args.seconds {
                    break 'window;
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        if best.is_none_or(|(d, e)| done as f64 / elapsed > d as f64 / e) {
            best = Some((done, elapsed));
        }
    }
    let (done, elapsed) = best.context("no timed window ran")?;
    println!(
        "{}",
        serde_json::json!({
            "impl": "lore",
            "backend": format!("{:?}", embedder.backend()),
            "threads": args.threads,
            "batch": args.batch,
            "chunks": done,
            "seconds": elapsed,
            "chunks_per_s": done as f64 / elapsed,
        })
    );
    Ok(())
}
