#!/usr/bin/env python3
"""Record llama.cpp's token ids for Lore's GGUF tokenizer test.

Writes llm/tests/fixtures/tokenizer-reference.json: for each GGUF language model Lore ships,
the ids that llama.cpp (through llama-cpp-python) produces for a fixed list of inputs — ASCII prose,
numbers, accents, CJK, emoji with modifiers and joiners, code, whitespace runs, contractions,
URLs, non-ASCII whitespace and digits, and chat special tokens. The Rust test in
llm/src/tokenizer.rs builds a tokenizer from the same GGUF metadata and asserts the very same
ids, so tests never need llama.cpp. Rerun this only when a model or the inputs change.

Tokenization is Llama.tokenize(text.encode(), add_bos=False, special=True): no BOS (Lore adds
special tokens itself through the chat template) and special tokens such as <|im_start|> are
parsed, which is how Lore encodes a rendered chat prompt.

Needs llama-cpp-python, which compiles llama.cpp from source (slow on a small machine); one way,
in a venv of its own:

    python3 -m venv ~/.cache/lore-llama-venv
    CMAKE_BUILD_PARALLEL_LEVEL=2 ~/.cache/lore-llama-venv/bin/pip install llama-cpp-python
    ~/.cache/lore-llama-venv/bin/python scripts/tokenizer-reference.py [--models-dir models]
"""
import argparse
import hashlib
import json
import os
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "llm" / "tests" / "fixtures" / "tokenizer-reference.json"

# <model dir>/<file> under the models directory, as scripts/fetch-models installs them.
MODELS = [
    "qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "smollm2-135m-instruct/smollm2-135m-instruct-q4_1.gguf",
]

INPUTS = [
    # Plain ASCII prose.
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Lore is a private knowledge appliance: drop your documents into it and ask questions.",
    # Numbers: Qwen2 splits every digit, SmolLM splits digits before its GPT-2 regex.
    "12345 3.14159",
    "Version 2.0.1 shipped on 2024-11-23 at 09:45 and costs $1,299.99 (or €1.299,99).",
    "x = 1e-10; y = 0x1F; z = 1_000_000",
    # Accents, precomposed and combining.
    "café naïve Ångström",
    "Crème brûlée, jalapeño, Straße, Ærøskøbing, São Paulo — déjà vu…",
    "cafe\u0301 decomposed e\u0301 and n\u0303",
    # CJK and other scripts.
    "日本語のテキスト",
    "中文分词测试",
    "한국어 문장도 있습니다. Привет, мир! Γειά σου κόσμε. مرحبا بالعالم",
    # Emoji: skin-tone modifier, zero-width joiners.
    "👍🏽 🎉 family 👨\u200d👩\u200d👧",
    # Code: braces, indentation, tabs.
    'fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n',
    "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n\treturn -x  # negative\n",
    # Whitespace runs, leading/trailing spaces, CRLF, non-ASCII spaces.
    "a  b   c\n\n\n  d",
    "   leading spaces",
    "trailing spaces   ",
    "line one\r\nline two\r\n",
    "\t\tindented\ttabs\t",
    "   \n   \n",
    "\u00a0non-breaking\u00a0space and\u2003em\u3000ideographic space",
    " ",
    "\n",
    "",
    # Contractions, lower and upper case (Qwen2 matches them case-insensitively, GPT-2 does not).
    "don't I'm we'll they've she'd it's you're",
    "DON'T I'M WE'LL THEY'VE SHE'D",
    # Mixed case identifiers.
    "camelCaseIdentifier snake_case_name SCREAMING_CASE MixedCASEWord iPhone",
    # URLs and punctuation runs.
    "https://example.com/path/to/page?query=a%20b&lang=en#section-2",
    "mailto:someone@example.org, ftp://files.example.net/pub/README.md",
    "!!! ??? ... --- *** ### <<>> ((()))",
    # Non-ASCII numbers: Arabic-Indic digits, vulgar fraction, superscript, fullwidth.
    "١٢٣ ½ x² ４２",
    # Chat special tokens (control tokens), and Qwen's user-defined tool-call tokens.
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after the end",
    '<tool_call>\n{"name": "search", "arguments": {"q": "vpn"}}\n</tool_call>',
]


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models-dir",
        default=os.environ.get("LORE_MODELS_DIR", str(REPO / "models")),
        help="directory holding the GGUF models (default: $LORE_MODELS_DIR or <repo>/models)",
    )
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import llama_cpp

    models = {}
    for rel in MODELS:
        path = pathlib.Path(args.models_dir) / rel
        if not path.is_file():
            sys.exit(f"missing {path}: run scripts/fetch-models all")
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        cases = [
            {"text": text, "ids": llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)}
            for text in INPUTS
        ]
        models[path.name] = {
            "sha256": sha256_of(path),
            "tokenizer_pre": llm.metadata.get("tokenizer.ggml.pre"),
            "cases": cases,
        }
        del llm
        print(f"{path.name}: {len(cases)} cases")

    doc = {
        "generator": "scripts/tokenizer-reference.py",
        "llama_cpp_python": llama_cpp.__version__,
        "tokenize": "Llama.tokenize(text.encode(), add_bos=False, special=True)",
        "models": models,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    # One line per id list keeps the fixture short and its diffs readable.
    text = re.sub(
        r'"ids": \[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]',
        lambda m: '"ids": [' + re.sub(r"\s+", " ", m.group(1)) + "]",
        text,
    )
    out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
