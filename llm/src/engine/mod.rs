//! Lore's own CPU inference engine for quantized GGUF models: weight layouts and SIMD
//! kernels chosen at run time ([`quant`]), a persistent thread pool that survives a busy
//! neighbour ([`pool`]), attention over the KV cache (`attention`), and the llama/qwen2
//! forward pass on top ([`transformer`]).
//! [`crate::model::LanguageModel`] runs it behind the same interface the answering code uses.

mod attention;
pub mod pool;
pub mod quant;
pub mod transformer;

pub use transformer::{Transformer, TransformerConfig};

#[cfg(test)]
mod tests {
    use crate::model::LoadOptions;
    use crate::test_models::{model_path, QUALITY, TINY};
    use crate::{ChatMessage, LanguageModel};
    use std::path::{Path, PathBuf};

    /// llama.cpp (llama-cpp-python, from scripts/install-test-deps) decoding greedily from the
    /// same token ids: the reference our engine must agree with.
    const LLAMA_GREEDY: &str = r#"
import json, sys
from llama_cpp import Llama
path, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ids = json.loads(sys.stdin.read())
llm = Llama(model_path=path, n_threads=threads, n_ctx=len(ids) + n + 8, verbose=False)
llm.eval(ids)
out = []
for _ in range(n):
    token = llm.sample(temp=0.0)
    out.append(token)
    llm.eval([token])
print(json.dumps(out))
"#;

    /// Logits apart that count as a tie: rounding in a different order (SIMD exp, f16
    /// accumulation in llama.cpp's attention) moves logits by a few hundredths.
    const TIE: f32 = 0.05;

    fn llama_cpp_greedy(path: &Path, prompt: &[u32], n: usize) -> Vec<u32> {
        use std::io::Write;
        let venv = std::env::var_os("LORE_LLAMA_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/lore-llama-venv")
            });
        let mut child = std::process::Command::new(venv.join("bin/python"))
            .args(["-c", LLAMA_GREEDY])
            .arg(path)
            .args(["2", &n.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("llama-cpp-python: run scripts/install-test-deps");
        let ids = serde_json::to_string(prompt).expect("json");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ids.as_bytes())
            .expect("write prompt");
        let out = child.wait_with_output().expect("llama.cpp run");
        assert!(out.status.success(), "llama.cpp failed");
        serde_json::from_slice(&out.stdout).expect("token ids")
    }

    /// The first 30 greedy tokens after a RAG-style chat prompt equal llama.cpp's on the
    /// same weights and prompt ids. Checked teacher-forced (llama.cpp's token is our best at
    /// every step, or within `TIE`: a clear message when rounding ever flips a near-tie) and
    /// free-running (the same 30 tokens: each step's choice was ours, so the sequences match).
    fn greedy_equals_llama_cpp(model: (&str, &str)) {
        let path = model_path(model);
        let mut model = LanguageModel::load_with(
            &path,
            LoadOptions {
                threads: 2,
                isa: None,
            },
        )
        .expect("model loads");
        let question = "Passages:\n[1] handbook/backup.md — Retention\nMail volumes are copied to \
            the storage array every night at 02:00. Snapshots are kept for 30 days, then moved \
            to tape and stored off site for three years.\n\nQuestion: How long are snapshots \
            kept, and where do they go afterwards? Cite the passage.";
        let rendered = model
            .template
            .render(&[ChatMessage::new("user", question)])
            .expect("template");
        let prompt = model
            .vocab
            .tokenizer
            .encode(rendered.as_str(), false)
            .expect("tokenize")
            .get_ids()
            .to_vec();
        let n = 30;
        let reference = llama_cpp_greedy(&path, &prompt, n);
        let tokenizer = model.vocab.tokenizer.clone();
        let text = |ids: &[u32]| tokenizer.decode(ids, false).unwrap_or_default();
        // Teacher-forced on llama.cpp's tokens: at every step its choice must be ours too,
        // or (where two tokens are within rounding of each other) within `TIE` of our best.
        let mut logits = model.forward(&prompt, 0).expect("forward");
        let mut ours = Vec::with_capacity(n);
        let mut worst = 0.0f32;
        for (i, &expected) in reference.iter().enumerate() {
            let (best, best_logit) = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(t, &l)| (t as u32, l))
                .expect("logits");
            ours.push(best);
            worst = worst.max(best_logit - logits[expected as usize]);
            logits = model
                .forward(&[expected], prompt.len() + i)
                .expect("forward");
        }
        assert!(
            worst <= TIE,
            "llama.cpp's token trails ours by {worst} logits\nours:      {:?}\nllama.cpp: {:?}",
            text(&ours),
            text(&reference)
        );
        // Every step is already within `TIE` of llama.cpp's choice; a flipped near-tie may
        // pick the other token (floating-point order differs by CPU), but only rarely: more
        // than a couple of flips in 30 steps is drift, not rounding.
        let flipped = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
        assert!(
            flipped <= 2,
            "{flipped} of {n} steps differ\nours:      {:?}\nllama.cpp: {:?}",
            text(&ours),
            text(&reference)
        );
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn tiny_model_greedy_equals_llama_cpp() {
        greedy_equals_llama_cpp(TINY);
    }

    #[test]
    #[cfg_attr(
        not(feature = "real-data"),
        ignore = "needs the real models: scripts/test runs it"
    )]
    fn default_model_greedy_equals_llama_cpp() {
        greedy_equals_llama_cpp(QUALITY);
    }
}
