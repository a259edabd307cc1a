#!/usr/bin/env python3
"""Record sentence-transformers reference vectors for Lore's embedding test.

Writes embed/tests/fixtures/embedding-reference.json: a list of varied inputs (short, longer than the
model's 256-token limit, accented, CJK, code, odd whitespace, empty-ish) and the vectors that
sentence-transformers computes for them, rounded to 6 decimals. The Rust test in embed/src/lib.rs
embeds the same inputs with Lore's Embedder and asserts cosine >= 0.9999, so tests never need
torch. Rerun this only when the model or the inputs change.

Needs sentence-transformers (and torch) importable; one way, in a venv of its own:

    python3 -m venv ~/.cache/lore-st-venv
    ~/.cache/lore-st-venv/bin/pip install torch sentence-transformers
    ~/.cache/lore-st-venv/bin/python scripts/embedding-reference.py [--models-dir models]
"""
import argparse
import json
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
MODEL_DIR_NAME = "all-minilm-l6-v2"
OUT = REPO / "embed" / "tests" / "fixtures" / "embedding-reference.json"

LONG_PARAGRAPH = (
    "The retrieval pipeline splits every document into chunks of roughly two hundred tokens, "
    "embeds each chunk into a dense vector, and stores the vectors in an approximate nearest "
    "neighbour graph next to a classic inverted index. At query time both indexes are searched "
    "and their rankings are fused, so that exact keyword matches and paraphrases both surface. "
)

INPUTS = [
    "hello",
    "How do I configure a static IP address on Debian?",
    "A quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    # > 256 word pieces: exercises truncation at max_seq_length (special tokens included).
    LONG_PARAGRAPH * 6,
    "Café crème, naïve façade, jalapeño, Ærøskøbing and São Paulo — déjà vu.",
    "机器学习是人工智能的一个分支。東京は日本の首都です。한국어 문장도 있습니다.",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "   leading and trailing   spaces\t\twith\ttabs\n\nand blank lines   ",
    "",
    "   ",
    "!!! ??? ... ---",
    "apt-get install --no-install-recommends build-essential libssl-dev pkg-config",
    "The Linux kernel schedules processes using the Completely Fair Scheduler (CFS).",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models-dir",
        default=os.environ.get("LORE_MODELS_DIR", str(REPO / "models")),
        help="directory holding all-minilm-l6-v2 (default: $LORE_MODELS_DIR or <repo>/models)",
    )
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model_dir = pathlib.Path(args.models_dir) / MODEL_DIR_NAME
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(INPUTS, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    token_counts = [len(model.tokenizer(t, truncation=False)["input_ids"]) for t in INPUTS]
    records = [
        {"text": text, "tokens_with_special": n, "vector": [round(float(x), 6) for x in vec]}
        for text, n, vec in zip(INPUTS, token_counts, vectors)
    ]
    doc = {
        "model": MODEL_DIR_NAME,
        "max_seq_length": model.max_seq_length,
        "generator": "scripts/embedding-reference.py",
        "sentence_transformers": __import__("sentence_transformers").__version__,
        "torch": torch.__version__,
        "inputs": records,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} reference vectors to {out}")


if __name__ == "__main__":
    main()
