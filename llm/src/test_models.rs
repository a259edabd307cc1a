//! Where the tests find the real models: `$LORE_MODELS_DIR`, else the workspace's `models/`
//! (what `scripts/fetch-models` fills and `scripts/test` points `LORE_MODELS_DIR` at). A
//! missing model fails the test with the fetch command rather than skipping it, so a machine
//! without models cannot pass by testing nothing.

use std::path::{Path, PathBuf};

/// The tiny profile: SmolLM2-135M-Instruct, Q4_1 (llama family).
pub const TINY: (&str, &str) = ("smollm2-135m-instruct", "smollm2-135m-instruct-q4_1.gguf");
/// The default profile: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2).
pub const QUALITY: (&str, &str) = (
    "qwen2.5-coder-0.5b-instruct",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
);

/// The workspace root (this crate lives in its `llm/` folder).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("llm/ has a parent")
        .to_path_buf()
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("LORE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models"))
}

/// The GGUF of a model (`(directory, file)`), which must be there.
pub fn model_path((dir, file): (&str, &str)) -> PathBuf {
    let path = models_dir().join(dir).join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/fetch-models all`",
        path.display()
    );
    path
}
