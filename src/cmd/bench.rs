//! `lore bench generate`: the speed of Lore's own language-model runtime on a fixed
//! synthetic prompt (prompt processing tok/s, decode tok/s, time to first token, peak
//! memory), so it can be compared with llama.cpp's `llama-bench` or llama-cpp-python on the
//! same GGUF file and thread count (scripts/bench-generate does that side by side).

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, ConfigLayer};
use lore_llm::LanguageModel;

/// Text the synthetic prompt is cut from: English prose of the kind Lore's RAG prompts
/// carry (the tokens' identity hardly matters for speed, their count does).
const FILLER: &str = "The backup server copies every mail volume to the storage array each night \
at two o'clock. Snapshots are kept for thirty days, then moved to tape, which is stored off \
site for three years. Restores are requested through the service desk and take about four \
hours for a single mailbox. The retention policy is reviewed every year by the records team, \
and changes are announced in the quarterly operations bulletin. ";

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Model: quality, tiny, a directory under the models dir or a GGUF path
    /// [default: --llm-model]
    #[arg(long, value_name = "PROFILE|GGUF")]
    pub model: Option<String>,
    /// Threads [default: --llm-threads]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Tokens in the prompt.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub prompt_tokens: usize,
    /// Tokens decoded after it (greedy, never stopping early).
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub gen_tokens: usize,
    /// One JSON object: {"prompt_tok_s", "decode_tok_s", "ttft_s", "rss_mb", ...}.
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    pub(super) fn layer(&self, layer: &mut ConfigLayer) {
        if self.model.is_some() {
            layer.llm_model = self.model.clone();
        }
        if self.threads.is_some() {
            layer.llm_threads = self.threads;
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GenerateBench {
    pub model: String,
    /// The kernels' instruction set (`scalar`, `avx2`, `avx512`).
    pub isa: String,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub prompt_tok_s: f64,
    pub decode_tok_s: f64,
    pub ttft_s: f64,
    pub rss_mb: f64,
    pub load_s: f64,
}

/// `lore bench generate`.
pub fn run(config: &Config, args: &GenerateArgs) -> Result<i32> {
    let path = config.llm_model_path()?;
    let options = config.llm_load_options();
    let started = Instant::now();
    let mut model = LanguageModel::load_with(&path, options)?;
    let load_s = started.elapsed().as_secs_f64();
    let prompt = synthetic_prompt(&model, args.prompt_tokens)?;
    if prompt.len() + args.gen_tokens > model.info.context_length {
        anyhow::bail!(
            "{} prompt + {} generated tokens exceed the model's context of {}",
            prompt.len(),
            args.gen_tokens,
            model.info.context_length
        );
    }
    // One untimed short run: page the weights in, size the buffers.
    model.forward(&prompt[..prompt.len().min(16)], 0)?;

    let started = Instant::now();
    let logits = model.forward(&prompt, 0)?;
    let mut next = argmax(&logits);
    let ttft_s = started.elapsed().as_secs_f64();
    let prompt_s = ttft_s;

    let started = Instant::now();
    for i in 0..args.gen_tokens {
        // Greedy, never stopping at end-of-text: every run decodes the same count.
        let logits = model.forward(&[next], prompt.len() + i)?;
        next = argmax(&logits);
    }
    let decode_s = started.elapsed().as_secs_f64();
    let report = GenerateBench {
        model: model.info.name.clone(),
        isa: model.isa().as_str().to_string(),
        threads: options.threads,
        prompt_tokens: prompt.len(),
        gen_tokens: args.gen_tokens,
        prompt_tok_s: prompt.len() as f64 / prompt_s,
        decode_tok_s: args.gen_tokens as f64 / decode_s.max(1e-9),
        ttft_s,
        rss_mb: peak_rss_mb().unwrap_or(0.0),
        load_s,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "model         {} ({} kernels, {} threads)",
            report.model, report.isa, report.threads
        );
        println!(
            "prompt        {} tokens at {:.1} tok/s",
            report.prompt_tokens, report.prompt_tok_s
        );
        println!(
            "decode        {} tokens at {:.1} tok/s",
            report.gen_tokens, report.decode_tok_s
        );
        println!("first token   {:.2} s", report.ttft_s);
        println!(
            "peak RSS      {:.0} MB (load {:.1} s)",
            report.rss_mb, report.load_s
        );
    }
    Ok(0)
}

/// Exactly `n` tokens of filler text (repeated as needed), starting with the BOS token
/// when the model has one.
fn synthetic_prompt(model: &LanguageModel, n: usize) -> Result<Vec<u32>> {
    anyhow::ensure!(n > 0, "--prompt-tokens must be at least 1");
    let encoding = model
        .vocab
        .tokenizer
        .encode(FILLER, false)
        .map_err(|e| anyhow::anyhow!("cannot tokenize the synthetic prompt: {e}"))?;
    let filler = encoding.get_ids();
    anyhow::ensure!(!filler.is_empty(), "the tokenizer produced no tokens");
    Ok(filler.iter().copied().cycle().take(n).collect())
}

fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}

/// Peak resident memory of this process (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
