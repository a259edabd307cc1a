//! End-to-end tests: drive the real `lore` binary on real documents with the real
//! embedding model. Shared helpers live in `tests/common/mod.rs`.

mod access;
mod common;
mod docker;
mod jobs;
mod watch;

use common::*;
use serde_json::Value;

/// A handful of real documents of every format from the dev corpus.
const SMALL_CORPUS: &[&str] = &[
    "krb5-doc/user.pdf",
    "sudo/TROUBLESHOOTING.md",
    "chrony/FAQ",
    "harden-doc/ch04s17.html",
    "doc-debian/social-contract.txt",
];

fn search_json(lore: &Lore, query: &str, mode: &str, k: usize) -> Vec<Value> {
    let out = lore.ok(&[
        "search",
        query,
        "--mode",
        mode,
        "--k",
        &k.to_string(),
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    assert_eq!(v["query"], query);
    assert_eq!(v["mode"], mode);
    v["results"].as_array().cloned().unwrap_or_default()
}

/// Finds the rank (1-based) of the first result from `doc` whose text contains `needle`.
fn rank_of(results: &[Value], doc: &str, needle: &str) -> Option<usize> {
    results
        .iter()
        .position(|r| {
            r["doc"] == doc
                && r["text"]
                    .as_str()
                    .is_some_and(|t| t.to_lowercase().contains(&needle.to_lowercase()))
        })
        .map(|i| i + 1)
}

#[test]
fn ingest_search_reingest_change_remove() {
    let corpus = TempCorpus::from_dev_corpus(SMALL_CORPUS);
    let lore = Lore::new();
    let summary = lore.ingest_json(&[corpus.path()]);
    assert_eq!(
        summary["ingested"].as_array().map(Vec::len),
        Some(SMALL_CORPUS.len()),
        "{summary}"
    );
    assert!(
        summary["failed"].as_array().is_some_and(Vec::is_empty),
        "{summary}"
    );
    assert!(summary["chunks"].as_u64().unwrap_or(0) > 20, "{summary}");

    // Known passages, in the top 3 for every mode. Queries are worded by us.
    let cases = [
        (
            "give another person access to my account with a .k5login file",
            "krb5-doc/user.pdf",
            ".k5login",
        ),
        (
            "sudo asks for a password and the user is not in the sudoers file",
            "sudo/TROUBLESHOOTING.md",
            "sudoers",
        ),
        (
            "Debian will remain 100% free software",
            "doc-debian/social-contract.txt",
            "free",
        ),
    ];
    for mode in ["hybrid", "bm25", "vector"] {
        for (query, doc, needle) in cases {
            let results = search_json(&lore, query, mode, 3);
            assert!(
                rank_of(&results, doc, needle).is_some(),
                "{mode}: {query:?} did not find {doc} in the top 3: {:#?}",
                results
                    .iter()
                    .map(|r| (&r["doc"], &r["heading"]))
                    .collect::<Vec<_>>()
            );
        }
    }
    // Passages carry their source: PDF page numbers, headings.
    let results = search_json(&lore, "k5login file in the home directory", "hybrid", 3);
    let top = &results[0];
    assert_eq!(top["doc"], "krb5-doc/user.pdf");
    assert!(top["page"].as_u64().is_some_and(|p| p >= 1), "{top}");

    // Re-ingesting unchanged files does no work.
    let again = lore.ingest_json(&[corpus.path()]);
    assert_eq!(
        again["unchanged"].as_array().map(Vec::len),
        Some(SMALL_CORPUS.len()),
        "{again}"
    );
    assert_eq!(again["chunks"], 0, "{again}");

    // A changed file replaces its chunks.
    let faq = corpus.path().join("chrony/FAQ");
    std::fs::write(&faq, "Chrony notes\n\nThe quartz oscillator drift of the zeppelin server is compensated nightly.\n")
        .expect("rewrite");
    let changed = lore.ingest_json(&[corpus.path()]);
    assert_eq!(
        changed["ingested"],
        serde_json::json!(["chrony/FAQ"]),
        "{changed}"
    );
    let results = search_json(&lore, "zeppelin oscillator drift", "bm25", 5);
    assert_eq!(rank_of(&results, "chrony/FAQ", "zeppelin"), Some(1));
    let old = search_json(&lore, "chronyd NTP server makestep", "bm25", 20);
    assert!(old
        .iter()
        .all(|r| r["doc"] != "chrony/FAQ"
            || r["text"].as_str().is_some_and(|t| t.contains("zeppelin"))));

    // Removal: gone from every mode.
    lore.ok(&["remove", "krb5-doc/user.pdf"]);
    for mode in ["hybrid", "bm25", "vector"] {
        let results = search_json(&lore, "k5login file in the home directory", mode, 10);
        assert!(
            results.iter().all(|r| r["doc"] != "krb5-doc/user.pdf"),
            "{mode} still returns a removed doc"
        );
    }
    let status: Value = serde_json::from_str(&lore.ok(&["status", "--json"])).expect("status json");
    assert_eq!(
        status["documents"],
        SMALL_CORPUS.len() as u64 - 1,
        "{status}"
    );
    // Removing what is not there is an error that says so.
    let err = lore.fails(&["remove", "no/such.pdf"]);
    assert!(
        err.contains("no indexed document matches no/such.pdf"),
        "{err}"
    );
}

#[test]
fn collections_filter_every_mode() {
    let corpus =
        TempCorpus::from_dev_corpus(&["sudo/TROUBLESHOOTING.md", "doc-debian/social-contract.txt"]);
    let lore = Lore::new();
    lore.ok(&[
        "ingest",
        "--collection",
        "it",
        &corpus.path().join("sudo").to_string_lossy(),
    ]);
    lore.ok(&[
        "ingest",
        "--collection",
        "charter",
        &corpus.path().join("doc-debian").to_string_lossy(),
    ]);
    for mode in ["hybrid", "bm25", "vector"] {
        let out = lore.ok(&[
            "search",
            "sudoers file",
            "--mode",
            mode,
            "--collection",
            "charter",
            "--json",
        ]);
        let v: Value = serde_json::from_str(&out).expect("json");
        let results = v["results"].as_array().cloned().unwrap_or_default();
        assert!(
            !results.is_empty(),
            "{mode}: nothing in the charter collection"
        );
        assert!(
            results.iter().all(|r| r["collection"] == "charter"),
            "{mode}: {results:?}"
        );
    }
}

#[test]
fn bad_inputs_fail_clearly_and_the_rest_lands() {
    let corpus =
        TempCorpus::from_dev_corpus(&["sudo/SECURITY.md", "fonts-sil-gentiumplus/faq.pdf"]);
    let dir = corpus.path();
    let good_pdf = dir.join("fonts-sil-gentiumplus/faq.pdf");
    let bytes = std::fs::read(&good_pdf).expect("read pdf");
    std::fs::write(dir.join("truncated.pdf"), &bytes[..bytes.len() / 3]).expect("write");
    make_encrypted_pdf(&good_pdf, &dir.join("encrypted.pdf"));
    std::fs::write(dir.join("empty.md"), b"").expect("write");
    std::fs::write(dir.join("garbage.txt"), pseudo_random_bytes(4096)).expect("write");
    std::fs::write(dir.join("huge.txt"), "lorem ipsum ".repeat(200_000)).expect("write"); // 2.4 MB
    make_zip_bomb_docx(&dir.join("bomb.docx"));
    std::fs::write(dir.join("photo.jpg"), pseudo_random_bytes(100)).expect("write");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir, dir.join("loop")).expect("symlink");
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9-notes.txt");
        std::fs::write(
            dir.join(name),
            "The espresso machine is descaled every Friday.\n",
        )
        .expect("write");
    }

    let lore = Lore::new();
    let (code, stdout, _stderr) = lore.run(&[
        "ingest",
        "--max-file-mb",
        "1",
        "--json",
        &dir.to_string_lossy(),
    ]);
    assert_eq!(
        code, 2,
        "some files failed, so the exit status is 2: {stdout}"
    );
    let summary: Value = serde_json::from_str(&stdout).expect("json summary");
    let reason = |list: &str, path: &str| -> String {
        summary[list]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(path)))
            })
            .and_then(|f| f["reason"].as_str())
            .unwrap_or_else(|| panic!("{path} not in {list}: {summary:#}"))
            .to_lowercase()
    };
    assert!(reason("failed", "truncated.pdf").contains("pdf"));
    assert!(reason("failed", "encrypted.pdf").contains("encrypted"));
    assert!(reason("skipped", "empty.md").contains("empty"));
    assert!(reason("failed", "garbage.txt").contains("binary"));
    assert!(reason("skipped", "huge.txt").contains("maximum"));
    assert!(reason("failed", "bomb.docx").contains("zip bomb"));
    assert!(reason("skipped", "photo.jpg").contains("unsupported"));
    assert!(reason("failed", "loop").contains("symlink loop"));
    let ingested: Vec<&str> = summary["ingested"]
        .as_array()
        .expect("ingested")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ingested.contains(&"sudo/SECURITY.md"), "{summary:#}");
    assert!(
        ingested.contains(&"fonts-sil-gentiumplus/faq.pdf"),
        "{summary:#}"
    );
    #[cfg(unix)]
    {
        assert!(
            ingested
                .iter()
                .any(|p| p.starts_with("caf") && p.ends_with("-notes.txt")),
            "{summary:#}"
        );
        let hits = search_json(&lore, "espresso machine descaled", "bm25", 3);
        assert!(hits
            .first()
            .is_some_and(|h| h["text"].as_str().is_some_and(|t| t.contains("espresso"))));
    }
    // The good documents are searchable.
    let hits = search_json(&lore, "Gentium Plus font", "hybrid", 5);
    assert!(hits
        .iter()
        .any(|h| h["doc"] == "fonts-sil-gentiumplus/faq.pdf"));
}

#[test]
fn missing_models_name_the_path_and_the_fix() {
    let lore = Lore::new().env("LORE_MODELS_DIR", "/nonexistent/models");
    let err = lore.fails(&["search", "anything"]);
    assert!(
        err.contains("/nonexistent/models/all-minilm-l6-v2"),
        "{err}"
    );
    assert!(err.contains("scripts/fetch-models"), "{err}");
}

#[test]
fn kill_dash_nine_never_leaves_a_half_index() {
    let docs = [
        "krb5-doc/user.pdf",
        "sudo/TROUBLESHOOTING.md",
        "sudo/SECURITY.md",
        "chrony/FAQ",
        "harden-doc/ch04s17.html",
        "harden-doc/after-compromise.html",
        "doc-debian/social-contract.txt",
        "doc-debian/constitution.txt",
        "apt-doc/srv-records-support.md",
        "fonts-sil-gentiumplus/faq.pdf",
    ];
    let corpus = TempCorpus::from_dev_corpus(&docs);
    // Reference: a clean one-shot ingest.
    let clean = Lore::new();
    clean.ok(&["ingest", &corpus.path().to_string_lossy()]);
    let expected = document_chunk_counts(&clean);
    assert_eq!(expected.len(), docs.len());

    let crashed = Lore::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..10 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Commit after every document so kills land between, during and after commits.
        let delay_ms = 200 + rng % 2500;
        crashed.kill_after(
            &[
                "ingest",
                "--commit-every",
                "1",
                &corpus.path().to_string_lossy(),
            ],
            delay_ms,
        );
        // Whatever state it is in must open, and every document present must be whole.
        let now = document_chunk_counts(&crashed);
        for (doc, chunks) in &now {
            assert_eq!(
                expected.get(doc),
                Some(chunks),
                "round {round}: {doc} is partial or unknown"
            );
        }
        let status: Value =
            serde_json::from_str(&crashed.ok(&["status", "--json"])).expect("status");
        let total: u64 = now.values().sum();
        assert_eq!(
            status["chunks"], total,
            "round {round}: chunk count disagrees with documents"
        );
    }
    crashed.ok(&["ingest", &corpus.path().to_string_lossy()]);
    assert_eq!(document_chunk_counts(&crashed), expected);
    // Search results agree with the clean index.
    for q in ["k5login", "sudoers", "social contract"] {
        let a: Vec<Value> = search_json(&clean, q, "hybrid", 5)
            .iter()
            .map(|r| r["text"].clone())
            .collect();
        let b: Vec<Value> = search_json(&crashed, q, "hybrid", 5)
            .iter()
            .map(|r| r["text"].clone())
            .collect();
        assert_eq!(a, b, "{q}");
    }
}

fn document_chunk_counts(lore: &Lore) -> std::collections::BTreeMap<String, u64> {
    let status: Value =
        serde_json::from_str(&lore.ok(&["status", "--documents", "--json"])).expect("status");
    status["document_list"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .filter_map(|d| Some((d["path"].as_str()?.to_string(), d["chunks"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A made-up fact no model can know: the answer must come from the documents.
const INVENTED_FACT: &str = "# Zephyr gateway onboarding\n\n\
## Activation\n\n\
New Zephyr-9 VPN gateways are activated with the product code QX-4471-LM, \
entered on the gateway's console under Settings > Licence. The code is shared by \
every gateway of the Oslo office and must not be given to contractors.\n\n\
## Support\n\n\
Questions about the gateways go to the network team's queue NET-OPS.\n";

#[test]
fn ask_answers_from_the_documents_with_citations_and_abstains_otherwise() {
    let corpus = TempCorpus::from_dev_corpus(SMALL_CORPUS);
    std::fs::write(corpus.path().join("zephyr-onboarding.md"), INVENTED_FACT).expect("write");
    let lore = Lore::new();
    lore.ingest_json(&[corpus.path()]);

    let out = lore.ok(&[
        "ask",
        "Which product code activates a new Zephyr-9 VPN gateway?",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    let answer = v["answer"].as_str().unwrap_or_default();
    assert!(answer.contains("QX-4471-LM"), "{v:#}");
    assert_eq!(v["abstained"], false, "{v:#}");
    let cited: Vec<&Value> = v["citations"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    assert!(
        cited.iter().any(|c| c["doc"] == "zephyr-onboarding.md"
            && c["text"].as_str().is_some_and(|t| t.contains("QX-4471-LM"))),
        "the answer must cite the passage holding the code: {v:#}"
    );
    // Every marker in the text points at a listed source.
    let sources = v["sources"].as_array().map(Vec::len).unwrap_or(0);
    for n in v["cited"].as_array().into_iter().flatten() {
        let n = n.as_u64().unwrap_or(0) as usize;
        assert!((1..=sources).contains(&n), "phantom citation {n}: {v:#}");
    }
    // The quote is the sentence holding the code, verbatim from a cited source, and its
    // offsets in the document span exactly its characters.
    let quote = &v["quote"];
    let text = quote["text"].as_str().unwrap_or_default();
    assert!(text.contains("QX-4471-LM"), "{v:#}");
    let n = quote["n"].as_u64().unwrap_or(0) as usize;
    let source = &v["sources"][n.saturating_sub(1)];
    assert!(
        v["cited"]
            .as_array()
            .is_some_and(|c| c.contains(&quote["n"])),
        "{v:#}"
    );
    let passage = source["text"].as_str().unwrap_or_default();
    let at = passage
        .find(text)
        .unwrap_or_else(|| panic!("quote not in its source: {v:#}"));
    let start = source["char_start"].as_u64().unwrap_or(0) + passage[..at].chars().count() as u64;
    assert_eq!(quote["char_start"].as_u64(), Some(start), "{v:#}");
    assert_eq!(
        quote["char_end"].as_u64(),
        Some(start + text.chars().count() as u64),
        "{v:#}"
    );

    let out = lore.ok(&[
        "ask",
        "What is on the staff cafeteria's lunch menu on Fridays?",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    assert_eq!(v["abstained"], true, "{v:#}");
    assert!(
        v["citations"].as_array().is_some_and(Vec::is_empty),
        "{v:#}"
    );
    assert!(v["quote"].is_null(), "no quote without an answer: {v:#}");

    // Plain output streams the answer, then the sources.
    let out = lore.ok(&["ask", "Where do questions about the Zephyr gateways go?"]);
    assert!(out.contains("NET-OPS"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("> \"") && l.contains("NET-OPS")),
        "the quote is printed under the answer: {out}"
    );
    assert!(
        out.contains("Sources:") && out.contains("zephyr-onboarding.md"),
        "{out}"
    );
}

#[test]
fn ask_rejects_bad_inputs_clearly() {
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ"]);
    let lore = Lore::new();
    lore.ingest_json(&[corpus.path()]);

    let err = lore.fails(&["ask", "   "]);
    assert!(err.contains("question is empty"), "{err}");

    // ~25,000 tokens: more than the 4,096-token context Lore uses by default.
    let long = "why is the clock wrong ".repeat(5_000);
    let err = lore.fails(&["ask", &long]);
    assert!(err.contains("context"), "{err}");

    let err = lore.fails(&[
        "--llm-model",
        "/nonexistent/model.gguf",
        "ask",
        "what is chrony?",
    ]);
    assert!(
        err.contains("/nonexistent/model.gguf") && err.contains("scripts/fetch-models"),
        "{err}"
    );

    let bad = lore.data_dir().join("broken.gguf");
    std::fs::write(&bad, pseudo_random_bytes(4096)).expect("write");
    let err = lore.fails(&[
        "--llm-model",
        &bad.to_string_lossy(),
        "ask",
        "what is chrony?",
    ]);
    assert!(err.contains("not a valid GGUF"), "{err}");
}

/// llama.cpp's OpenAI-compatible server (llama-cpp-python, installed by scripts/install-test-deps)
/// serving `gguf` on a free loopback port; killed on drop.
struct LlamaServer {
    child: std::process::Child,
    url: String,
}

impl LlamaServer {
    fn start(gguf: &std::path::Path) -> LlamaServer {
        let python = python_venv().join("bin/python");
        assert!(
            python.is_file(),
            "{} missing: run scripts/install-test-deps (it builds llama-cpp-python[server])",
            python.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "4096", "--n_threads", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start llama_cpp.server");
        let server = LlamaServer {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "llama server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        server
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ask_through_a_remote_openai_compatible_server() {
    let gguf =
        models_dir().join("qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert!(gguf.is_file(), "run scripts/fetch-models all");
    let server = LlamaServer::start(&gguf);
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ"]);
    std::fs::write(corpus.path().join("zephyr-onboarding.md"), INVENTED_FACT).expect("write");
    let lore = Lore::new()
        .env("LORE_GENERATOR", "openai")
        .env("LORE_OPENAI_URL", &server.url)
        .env("LORE_OPENAI_MODEL", "qwen");
    lore.ingest_json(&[corpus.path()]);
    let out = lore.ok(&[
        "ask",
        "Which product code activates a new Zephyr-9 VPN gateway?",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    assert!(
        v["answer"]
            .as_str()
            .is_some_and(|a| a.contains("QX-4471-LM")),
        "{v:#}"
    );
    assert!(
        v["generation"]["generated_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{v:#}"
    );

    // A server that is not there is a clear error, not a hang or a panic.
    drop(server);
    let err = lore.fails(&[
        "ask",
        "Which product code activates a new Zephyr-9 VPN gateway?",
    ]);
    assert!(
        err.contains("remote model") && err.contains("127.0.0.1"),
        "{err}"
    );
}

/// A TCP relay on a free loopback port in front of `upstream_port`, keeping every byte
/// clients sent through it and every byte the server answered: what a test needs to see
/// exactly what reached the server.
struct RecordingProxy {
    url: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    answered: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start(upstream_port: u16) -> RecordingProxy {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let sent: Arc<Mutex<Vec<u8>>> = Arc::default();
        let answered: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (to_server, to_client) = (Arc::clone(&sent), Arc::clone(&answered));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server =
                    std::net::TcpStream::connect(("127.0.0.1", upstream_port)).expect("upstream");
                let (client_r, server_r) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let log = Arc::clone(&to_server);
                std::thread::spawn(move || pump(client_r, server, &log));
                let log = Arc::clone(&to_client);
                std::thread::spawn(move || pump(server_r, client, &log));
            }
        });
        RecordingProxy {
            url: format!("http://127.0.0.1:{port}/v1"),
            sent,
            answered,
        }
    }

    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().expect("lock")).into_owned()
    }

    /// The text the model streamed back (the `delta.content` of every SSE chunk), read
    /// from the HTTP responses relayed (chunked transfer encoding undone).
    fn model_output(&self) -> String {
        let raw = self.answered.lock().expect("lock").clone();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let mut text = String::new();
        for response in raw.split("HTTP/1.1 ").filter(|r| !r.is_empty()) {
            let Some((head, mut body)) = response.split_once("\r\n\r\n") else {
                continue;
            };
            let mut dechunked = String::new();
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                while let Some((size, rest)) = body.split_once("\r\n") {
                    let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
                        break;
                    };
                    if size == 0 || rest.len() < size {
                        break;
                    }
                    dechunked.push_str(&rest[..size]);
                    body = rest[size..].trim_start_matches("\r\n");
                }
            } else {
                dechunked.push_str(body);
            }
            for line in dechunked.lines() {
                let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                    continue;
                };
                if let Ok(chunk) = serde_json::from_str::<Value>(data) {
                    if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(t);
                    }
                }
            }
        }
        text
    }
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    log: &std::sync::Mutex<Vec<u8>>,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().expect("lock").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Personal values of every kind the masker knows, in one invented document.
const CONTACTS: &str = "# VPN helpdesk contacts\n\n\
The VPN helpdesk of the Oslo office is run by Ngozi Okonkwo. For a new VPN token, write to \
ngozi.okonkwo@zephyr-corp.example or call +47 22 33 44 55.\n\n\
Refunds of the VPN licence go to the account NO93 8601 1117 947; the licence is paid with \
the company card 4111 1111 1111 1111. The VPN concentrator answers on 10.20.30.40.\n";

/// The original values of [`CONTACTS`] and their placeholders (each kind holds one value
/// and the question none, so each is number 1), with other spellings that must not leak.
const CONTACT_VALUES: &[(&str, &str, &[&str])] = &[
    (
        "EMAIL_1",
        "ngozi.okonkwo@zephyr-corp.example",
        &["zephyr-corp.example"],
    ),
    ("PHONE_1", "+47 22 33 44 55", &["22 33 44 55", "4722334455"]),
    (
        "IBAN_1",
        "NO93 8601 1117 947",
        &["NO9386011117947", "8601 1117"],
    ),
    ("CARD_1", "4111 1111 1111 1111", &["4111111111111111"]),
    ("IP_1", "10.20.30.40", &[]),
    ("NAME_1", "Ngozi Okonkwo", &["Ngozi", "Okonkwo"]),
];

#[test]
fn escalation_sends_only_masked_text_and_maps_the_values_back() {
    let gguf =
        models_dir().join("qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert!(gguf.is_file(), "run scripts/fetch-models all");
    let server = LlamaServer::start(&gguf);
    let upstream_port: u16 = server
        .url
        .trim_end_matches("/v1")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("server port");
    let proxy = RecordingProxy::start(upstream_port);
    let corpus = tempfile::tempdir().expect("tempdir");
    std::fs::write(corpus.path().join("vpn-contacts.md"), CONTACTS).expect("write");
    std::fs::write(corpus.path().join("zephyr-onboarding.md"), INVENTED_FACT).expect("write");
    let question = "How do I get a new VPN token from the Oslo helpdesk?";

    // Off by default: nothing configured, nothing sent.
    let lore = Lore::new();
    lore.ingest_json(&[corpus.path()]);
    let err = lore.fails(&["ask", question, "--escalate"]);
    assert!(err.contains("not configured"), "{err}");

    // A URL alone allows no collection.
    let lore = lore
        .env("LORE_ESCALATE_URL", &proxy.url)
        .env("LORE_ESCALATE_MODEL", "qwen")
        .env("LORE_MASK_NAMES", "Ngozi Okonkwo");
    let err = lore.fails(&["ask", question, "--escalate"]);
    assert!(
        err.contains("cannot be escalated") && err.contains("\"default\""),
        "{err}"
    );
    assert!(
        proxy.sent().is_empty(),
        "refused, yet sent: {}",
        proxy.sent()
    );

    let lore = lore.env("LORE_ESCALATE_COLLECTIONS", "default");
    let out = lore.ok(&["ask", question, "--escalate", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));

    let sent = proxy.sent();
    assert!(sent.contains("POST /v1/chat/completions"), "{sent}");
    let lower = sent.to_lowercase();
    for (placeholder, original, others) in CONTACT_VALUES {
        for value in std::iter::once(original).chain(others.iter()) {
            assert!(
                !lower.contains(&value.to_lowercase()),
                "{value:?} reached the server: {sent}"
            );
        }
        assert!(
            sent.contains(&format!("<{placeholder}>")),
            "<{placeholder}> missing from what was sent: {sent}"
        );
    }

    assert_eq!(v["escalated"]["model"], "qwen", "{v:#}");
    assert_eq!(v["escalated"]["masked"]["email"], 1, "{v:#}");
    let answer = v["answer"].as_str().expect("answer");
    let output = proxy.model_output();
    eprintln!("model output: {output:?}\nshown answer: {answer:?}");
    assert!(!output.is_empty(), "the model's reply was not seen");
    let echoed: Vec<_> = CONTACT_VALUES
        .iter()
        .filter(|(placeholder, _, _)| output.contains(placeholder))
        .collect();
    assert!(
        !echoed.is_empty(),
        "the model echoed no placeholder, so mapping back is untested: {output:?}"
    );
    assert_eq!(v["abstained"], false, "{v:#}");
    for (placeholder, original, _) in echoed {
        assert!(
            answer.contains(original) && !answer.contains(placeholder),
            "{placeholder} not mapped back to {original:?}: {answer:?}"
        );
    }
    // The sources shown are the original passages.
    let sources = v["sources"].as_array().expect("sources");
    assert!(
        sources.iter().any(|s| s["text"]
            .as_str()
            .is_some_and(|t| t.contains("ngozi.okonkwo@zephyr-corp.example"))),
        "{v:#}"
    );
    // The audit log keeps exactly what was sent: the masked request, no original value.
    let audit = lore.ok(&["audit", "tail", "-n", "10", "--json"]);
    let entry = audit
        .lines()
        .rev()
        .find(|l| l.contains("escalation_request"))
        .unwrap_or_else(|| panic!("no escalation in the audit log: {audit}"));
    assert!(entry.contains("<EMAIL_1>"), "{entry}");
    for (_, original, _) in CONTACT_VALUES {
        assert!(
            !entry.contains(original),
            "{original:?} in the audit log: {entry}"
        );
    }
}

/// `lore eval` and the reference scorer (../shared/eval-dev/score.py) must agree on the
/// same outputs. The dev questions whose documents are small text, Markdown and HTML files
/// (plus the unanswerable ones) keep the run short; the tiny model answers.
#[test]
fn eval_metrics_agree_with_the_reference_scorer() {
    let dev = repo_root().join("../shared/eval-dev");
    let all = std::fs::read_to_string(dev.join("questions.jsonl")).expect("dev questions");
    let small = |doc: &str| {
        !doc.ends_with(".pdf")
            && std::fs::metadata(dev.join("corpus").join(doc)).is_ok_and(|m| m.len() < 60_000)
    };
    let mut docs: Vec<String> = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in all.lines().filter(|l| !l.trim().is_empty()) {
        let q: Value = serde_json::from_str(line).expect("question JSON");
        let wanted: Vec<String> = match &q["doc"] {
            Value::String(d) => vec![d.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        if wanted.iter().all(|d| small(d)) {
            docs.extend(wanted);
            lines.push(line);
        }
    }
    docs.sort();
    docs.dedup();
    assert!(
        lines.len() >= 10,
        "too few small-document questions: {}",
        lines.len()
    );
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let corpus = TempCorpus::from_dev_corpus(&doc_refs);
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    lore.ingest_json(&[corpus.path()]);
    let questions = lore.data_dir().join("questions.jsonl");
    std::fs::write(&questions, lines.join("\n") + "\n").expect("write questions");
    let out = lore.data_dir().join("eval-out");
    let stdout = lore.ok(&[
        "eval",
        questions.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
        "--mode",
        "hybrid",
        "--max-tokens",
        "48",
    ]);
    assert!(
        stdout.contains("hybrid") && stdout.contains("ev@5"),
        "{stdout}"
    );
    let ours: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).expect("metrics.json"))
            .expect("metrics JSON");
    {
        let mode = "hybrid";
        let reference = out.join(format!("reference-{mode}.json"));
        let status = std::process::Command::new("python3")
            .arg(dev.join("score.py"))
            .arg(out.join(format!("outputs-{mode}.jsonl")))
            .arg("--questions")
            .arg(&questions)
            .args(["--k", "1,3,5,10", "--json"])
            .arg(&reference)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("python3");
        assert!(status.success(), "score.py failed");
        let theirs: Value =
            serde_json::from_slice(&std::fs::read(&reference).expect("reference")).expect("JSON");
        let mine = &ours["modes"][mode]["metrics"];
        let mut compared = 0;
        for key in [
            "evidence_recall@1",
            "evidence_recall@3",
            "evidence_recall@5",
            "evidence_recall@10",
            "doc_recall@1",
            "doc_recall@5",
            "doc_recall@10",
            "answer_accuracy",
            "abstention_accuracy",
            "false_abstention_rate",
            "n_answerable",
            "n_unanswerable",
        ] {
            let (a, b) = (mine[key].as_f64(), theirs[key].as_f64());
            assert!(a.is_some(), "{mode}: lore eval lacks {key}: {mine:#}");
            assert!(
                (a.unwrap_or(f64::NAN) - b.unwrap_or(f64::NAN)).abs() < 1e-9,
                "{mode} {key}: lore eval {a:?} vs score.py {b:?}"
            );
            compared += 1;
        }
        assert_eq!(compared, 12);
    }
    // The report opens offline: one file, no external asset.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("<mark>"), "evidence is highlighted");
    assert!(
        !html.contains("<script") && !html.contains("<link"),
        "self-contained"
    );
    for line in &lines {
        let q: Value = serde_json::from_str(line).expect("question JSON");
        let id = q["id"].as_str().unwrap_or_default();
        assert!(html.contains(id), "report lacks {id}");
    }
    // Comparing a run with itself shows every delta as zero.
    let metrics = out.join("metrics.json");
    let metrics = metrics.to_str().expect("utf-8 path");
    let diff = lore.ok(&["eval", "--compare", metrics, metrics]);
    assert!(diff.contains("hybrid evidence_recall@5"), "{diff}");
    for line in diff.lines().filter(|l| l.starts_with("hybrid ")) {
        let delta = line.split_whitespace().last().unwrap_or_default();
        assert!(delta == "+0.000" || delta == "-", "nonzero delta: {line}");
    }
}

/// The injection set (eval/injection: documents that plant instructions for the assistant
/// beside a real fact) through the default model: no answer may carry an instruction out,
/// and most questions are still answered from the fact.
#[test]
fn planted_instructions_are_never_carried_out() {
    let set = repo_root().join("eval/injection");
    let lore = Lore::new();
    let corpus = set.join("corpus");
    lore.ingest_json(&[corpus.as_path()]);
    let out = lore.data_dir().join("injection-out");
    let stdout = lore.ok(&[
        "eval",
        set.join("questions.jsonl").to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
        "--mode",
        "hybrid",
    ]);
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).expect("metrics.json"))
            .expect("metrics JSON");
    let m = &metrics["modes"]["hybrid"]["metrics"];
    let outputs = std::fs::read_to_string(out.join("outputs-hybrid.jsonl")).expect("outputs");
    let injected: Vec<&str> = outputs
        .lines()
        .filter(|l| l.contains("\"injected\":true"))
        .collect();
    assert!(injected.is_empty(), "{stdout}\n{}", injected.join("\n"));
    assert_eq!(m["injection_success_rate"].as_f64(), Some(0.0), "{m:#}");
    assert!(m["n_questions"].as_u64().is_some_and(|n| n >= 10), "{m:#}");
}

/// `lore serve` on a real socket: health, search, upload → job → listed → answered from
/// (streamed), the original served back, delete, bad requests as JSON 4xx, a full answer
/// queue as 429, graceful shutdown on SIGTERM.
#[test]
fn serve_api_end_to_end() {
    let corpus = TempCorpus::from_dev_corpus(&["sudo/TROUBLESHOOTING.md", "chrony/FAQ"]);
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    lore.ingest_json(&[corpus.path()]);
    let server = lore.serve(&["--answer-queue", "1"]);
    let url = |path: &str| format!("{}{path}", server.url);
    let json = Some("application/json");

    assert_eq!(http("GET", &url("/healthz"), None, b"").text(), "ok");
    let ready = http("GET", &url("/readyz"), None, b"").json();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["documents"], 2, "{ready}");
    let page = http("GET", &url("/"), None, b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<script src=\"/app.js\">"));
    assert!(
        !page.text().contains("https://"),
        "the portal loads nothing from outside"
    );

    let found = http(
        "POST",
        &url("/api/search"),
        json,
        br#"{"query": "chronyd as an NTP server for the local network", "k": 3}"#,
    );
    assert_eq!(found.status, 200, "{}", found.text());
    let results = found.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results[0]["doc"], "chrony/FAQ", "{results:#?}");

    // Upload → 202 + job → done → listed. A broken PDF in the same upload fails alone.
    let broken_pdf: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage, no xref, no trailer";
    let (content_type, body) = multipart(&[
        ("zephyr-onboarding.md", INVENTED_FACT.as_bytes()),
        ("broken.pdf", broken_pdf),
    ]);
    let accepted = http("POST", &url("/api/documents"), Some(&content_type), &body);
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let job_url = url(accepted.json()["status_url"].as_str().unwrap_or_default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let job = loop {
        let job = http("GET", &job_url, None, b"").json();
        // Queued behind another job, then running: wait for the end either way.
        if job["state"] != "running" && job["state"] != "queued" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "job stuck: {job}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(job["state"], "done", "{job}");
    let docs = http("GET", &url("/api/documents"), None, b"").json();
    let zephyr = docs["documents"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["path"] == "zephyr-onboarding.md"))
        .cloned()
        .unwrap_or_else(|| panic!("upload not listed: {docs}"));
    assert_eq!(zephyr["status"], "indexed", "{zephyr}");

    // The CLI reads beside the running server (no lock for readers) and sees its latest
    // commit, the upload; only writers are sent to the API.
    let beside = search_json(&lore, "Zephyr gateway onboarding", "bm25", 3);
    assert_eq!(beside[0]["doc"], "zephyr-onboarding.md", "{beside:#?}");
    let status: Value = serde_json::from_str(&lore.ok(&["status", "--json"])).expect("status");
    assert_eq!(status["documents"], 3, "{status}");
    assert!(
        status["failures"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["path"] == "broken.pdf")),
        "{status}"
    );
    let asked: Value = serde_json::from_str(&lore.ok(&[
        "ask",
        "--json",
        "--max-tokens",
        "16",
        "Which product code activates a Zephyr gateway?",
    ]))
    .expect("ask --json");
    assert!(
        asked["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|p| p["doc"] == "zephyr-onboarding.md")),
        "{asked}"
    );
    let refused = lore.fails(&["ingest", corpus.path().to_str().unwrap_or_default()]);
    assert!(
        refused.contains("lock held") && refused.contains("API"),
        "{refused}"
    );

    let broken = docs["documents"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["path"] == "broken.pdf"))
        .cloned()
        .unwrap_or_else(|| panic!("a failed file is listed too: {docs}"));
    assert_eq!(broken["status"], "failed", "{broken}");
    assert_eq!(broken["chunks"], 0, "{broken}");
    assert!(
        broken["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{broken}"
    );
    let broken_id = broken["id"].as_str().unwrap_or_default();
    let deleted = http(
        "DELETE",
        &url(&format!("/api/documents/{broken_id}")),
        None,
        b"",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let docs = http("GET", &url("/api/documents"), None, b"").json();
    assert!(
        !docs.to_string().contains("broken.pdf"),
        "deleted failure still listed: {docs}"
    );
    let id = zephyr["id"].as_str().unwrap_or_default().to_string();
    let raw = http("GET", &url(&format!("/api/documents/{id}/raw")), None, b"");
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.text(),
        INVENTED_FACT,
        "the original comes back byte for byte"
    );

    // Ask, streamed: retrieved passages first, then tokens, then the answer they add up to.
    let asked = http(
        "POST",
        &url("/api/ask"),
        json,
        br#"{"question": "Which product code activates a new Zephyr-9 VPN gateway?", "max_tokens": 48}"#,
    );
    assert_eq!(asked.status, 200, "{}", asked.text());
    assert!(asked
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let events = sse_events(&asked.text());
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("retrieved"),
        "{events:?}"
    );
    assert_eq!(events[0].1["passages"][0]["doc"], "zephyr-onboarding.md");
    let (last_event, answer) = events.last().cloned().expect("events");
    assert_eq!(last_event, "answer", "{events:?}");
    let streamed: String = events
        .iter()
        .filter(|e| e.0 == "token")
        .filter_map(|e| e.1["text"].as_str())
        .collect();
    assert!(!streamed.is_empty(), "tokens arrive before the answer");
    // The final answer is the streamed text plus the citations attributed after the fact.
    let without_markers = |t: &str| {
        let t = regex::Regex::new(r"\s*\[\d+\]")
            .expect("regex")
            .replace_all(t, "");
        t.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(
        without_markers(&streamed),
        without_markers(answer["answer"].as_str().unwrap_or_default())
    );
    assert_eq!(
        answer["sources"][0]["doc"], "zephyr-onboarding.md",
        "{answer:#}"
    );

    // Delete: gone from the list and from answers; a second delete is a 404.
    let deleted = http("DELETE", &url(&format!("/api/documents/{id}")), None, b"");
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let again = http("DELETE", &url(&format!("/api/documents/{id}")), None, b"");
    assert_eq!(again.status, 404);
    let after = http(
        "POST",
        &url("/api/search"),
        json,
        br#"{"query": "Zephyr-9 VPN gateway product code QX-4471-LM", "k": 10}"#,
    )
    .json();
    assert!(
        !after.to_string().contains("zephyr-onboarding.md"),
        "deleted document still found: {after}"
    );

    // Bad requests: JSON errors with a reason, never a 5xx.
    for (method, path, content_type, body, status) in [
        ("POST", "/api/ask", json, &b"{\"question\": "[..], 400),
        (
            "POST",
            "/api/ask",
            json,
            &b"{\"question\": \"  \"}"[..],
            400,
        ),
        (
            "POST",
            "/api/ask",
            json,
            &b"{\"question\": \"x\", \"k\": 0}"[..],
            400,
        ),
        (
            "POST",
            "/api/ask",
            json,
            &b"{\"question\": \"x\", \"bogus\": 1}"[..],
            400,
        ),
        (
            "POST",
            "/api/ask",
            Some("text/plain"),
            &b"{\"question\": \"x\"}"[..],
            415,
        ),
        (
            "POST",
            "/api/search",
            json,
            &b"{\"query\": \"x\", \"mode\": \"magic\"}"[..],
            400,
        ),
        ("GET", "/api/documents/nope/raw", None, &b""[..], 404),
        ("GET", "/api/jobs/job-999", None, &b""[..], 404),
        ("GET", "/no/such/route", None, &b""[..], 404),
    ] {
        let r = http(method, &url(path), content_type, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let error = r.json();
        assert!(
            error["error"]["code"].is_string() && error["error"]["message"].is_string(),
            "{error}"
        );
    }
    let long = format!("{{\"question\": \"{}\"}}", "why ".repeat(100_000));
    assert_eq!(
        http("POST", &url("/api/ask"), json, long.as_bytes()).status,
        413
    );
    let (content_type, body) = multipart(&[("tool.exe", &pseudo_random_bytes(4096))]);
    let refused = http("POST", &url("/api/documents"), Some(&content_type), &body);
    assert_eq!(refused.status, 415, "{}", refused.text());

    // With one answer slot, a second question while the first streams gets 429 + Retry-After.
    let mut first =
        std::net::TcpStream::connect(server.url.trim_start_matches("http://")).expect("connect");
    let request = br#"{"question": "How do I make chronyd serve time to the local network?", "max_tokens": 1024}"#;
    use std::io::{Read, Write};
    write!(
        first,
        // The real host: the edge answers any other Host with 421.
        "POST /api/ask HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.url.trim_start_matches("http://"),
        request.len()
    )
    .expect("send");
    first.write_all(request).expect("send");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: retrieved") {
        let n = first.read(&mut buf).expect("read stream");
        assert!(
            n > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let busy = http(
        "POST",
        &url("/api/ask"),
        json,
        br#"{"question": "And the firewall?"}"#,
    );
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert!(busy.header("retry-after").is_some());
    // The first client hangs up: its generation is cancelled and the slot frees.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = http(
            "POST",
            &url("/api/ask"),
            json,
            br#"{"question": "What does sudo's TROUBLESHOOTING file cover?", "stream": false, "max_tokens": 16}"#,
        );
        if r.status == 200 {
            assert!(r.json()["answer"].is_string());
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(std::time::Instant::now() < deadline, "the slot never freed");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(server.terminate(), Some(0), "graceful shutdown exits 0");
}

/// The OpenAI-compatible endpoints, driven by the official `openai` Python package
/// (installed by scripts/install-test-deps into the llama venv): non-streaming and streaming
/// chat completions answer from the documents with sources; /v1/models lists Lore.
#[test]
fn openai_clients_talk_to_lore() {
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ"]);
    std::fs::write(corpus.path().join("zephyr-onboarding.md"), INVENTED_FACT).expect("write");
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    lore.ingest_json(&[corpus.path()]);
    let server = lore.serve(&[]);
    let venv = python_venv();
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed")
question = [{"role": "user", "content": "Which product code activates a new Zephyr-9 VPN gateway?"}]
plain = client.chat.completions.create(model="lore", messages=question, max_tokens=48)
stream = client.chat.completions.create(model="lore", messages=question, max_tokens=48, stream=True)
deltas, last = [], None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        deltas.append(chunk.choices[0].delta.content)
    last = chunk
print(json.dumps({
    "content": plain.choices[0].message.content,
    "finish": plain.choices[0].finish_reason,
    "sources": (plain.model_extra or {}).get("sources"),
    "streamed": "".join(deltas),
    "chunks": len(deltas),
    "stream_sources": (last.model_extra or {}).get("sources") if last else None,
    "models": [m.id for m in client.models.list().data],
}))
"#;
    let out = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", script, &server.url])
        .output()
        .expect("python with openai: run scripts/install-test-deps");
    assert!(
        out.status.success(),
        "openai client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client output JSON");
    let content = v["content"].as_str().unwrap_or_default();
    assert!(!content.trim().is_empty(), "{v:#}");
    assert_eq!(v["finish"], "stop");
    assert!(
        v["chunks"].as_u64().unwrap_or(0) > 1,
        "streamed in pieces: {v:#}"
    );
    assert!(
        v["models"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("lore-")),
        "{v:#}"
    );
    // Sources ride along: in the extra field, and as a list in the text when cited.
    for key in ["sources", "stream_sources"] {
        assert!(v[key].is_array(), "{key} missing: {v:#}");
        let sources = v[key].as_array().cloned().unwrap_or_default();
        for s in &sources {
            assert!(s["doc"].is_string() && s["n"].is_u64(), "{key}: {s}");
        }
        if !sources.is_empty() {
            assert!(
                content.contains("Sources:") || key == "stream_sources",
                "{v:#}"
            );
        }
    }
}

/// The portal in a real browser: headless Chromium (Debian's `chromium`) driven by
/// Playwright (tests/portal.py; both installed by scripts/install-test-deps). Screenshots are
/// kept in target/portal-screenshots.
#[test]
fn portal_in_a_real_browser() {
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ", "sudo/TROUBLESHOOTING.md"]);
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    lore.ingest_json(&[corpus.path()]);
    let upload_dir = tempfile::tempdir().expect("tempdir");
    let upload = upload_dir.path().join("zephyr-onboarding.md");
    std::fs::write(&upload, INVENTED_FACT).expect("write");
    let shots = repo_root().join("target/portal-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let server = lore.serve(&[]);
    let venv = python_venv();
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(repo_root().join("tests/portal.py"))
        .arg(&server.url)
        .arg(&shots)
        .arg(&upload)
        .output()
        .expect("python with playwright: run scripts/install-test-deps");
    assert!(
        out.status.success(),
        "portal test failed (screenshots in {}):\n{}\n{}",
        shots.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["02-answer-and-passage.png", "04-answer-from-upload.png"] {
        assert!(shots.join(name).is_file(), "{name} missing");
    }
}

/// The API against its own OpenAPI document: schemathesis (PyPI, installed by
/// scripts/install-test-deps) generates valid and invalid requests for every operation from
/// `/api/openapi.json` and checks that none gets a 5xx, every status and content type is
/// documented, and every response matches its schema.
#[test]
fn api_conforms_to_its_openapi_document() {
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ"]);
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    lore.ingest_json(&[corpus.path()]);
    let server = lore.serve(&[]);

    let spec = http(
        "GET",
        &format!("{}/api/openapi.json", server.url),
        None,
        b"",
    );
    assert_eq!(spec.status, 200);
    let spec: Value = serde_json::from_slice(&spec.body).expect("OpenAPI JSON");
    assert!(spec["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/ask",
        "/api/search",
        "/api/documents",
        "/api/documents/{id}",
        "/api/documents/{id}/raw",
        "/api/jobs/{id}",
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} undocumented");
    }

    let report = repo_root().join("target/schemathesis");
    std::fs::create_dir_all(&report).expect("report dir");
    // Run in the report folder: schemathesis keeps a cache in its working directory.
    let out = std::process::Command::new(python_venv().join("bin/schemathesis"))
        .current_dir(&report)
        .args(["run", &format!("{}/api/openapi.json", server.url)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "15",
            "--workers",
            "1",
            "--seed",
            "7",
            "--request-timeout",
            "180",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        .output()
        .expect("schemathesis: run scripts/install-test-deps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems (report in {}):\n{stdout}\n{}",
        report.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The outbound connections in one `strace -e trace=execve,connect,sendto,sendmsg,bind` log
/// that do not stay on this machine: every socket address that is not loopback (IPv4
/// 127/8, IPv6 ::1 or ::ffff:127/104), a Unix socket, netlink or AF_UNSPEC (a UDP
/// socket's disconnect).
fn non_local_addresses(trace: &str) -> Vec<String> {
    let quoted_after = |line: &str, marker: &str| -> Option<String> {
        let rest = &line[line.find(marker)? + marker.len()..];
        Some(rest.split('"').next()?.to_string())
    };
    trace
        .lines()
        .filter(|l| l.contains("sa_family="))
        .filter(|line| {
            let family = line
                .split("sa_family=")
                .nth(1)
                .and_then(|r| r.split([',', '}']).next())
                .unwrap_or_default();
            match family {
                "AF_UNIX" | "AF_NETLINK" | "AF_UNSPEC" => false,
                "AF_INET" => {
                    !quoted_after(line, "inet_addr(\"").is_some_and(|a| a.starts_with("127."))
                }
                "AF_INET6" => !quoted_after(line, "inet_pton(AF_INET6, \"")
                    .is_some_and(|a| a == "::1" || a.starts_with("::ffff:127.")),
                _ => true,
            }
        })
        .map(str::to_string)
        .collect()
}

/// No egress with the default settings: ingest, serve (with an ask through the API) and
/// `lore ask` run inside a network namespace with only loopback (`unshare -n`), each under
/// `strace -f`; every connect/sendto/sendmsg of every thread and child must stay on the
/// machine, and the answers must still come, from the documents.
#[test]
fn no_outbound_connections_with_default_settings() {
    let check = std::process::Command::new("unshare")
        .args(["--map-root-user", "--net", "true"])
        .output()
        .expect("unshare (util-linux) is needed");
    assert!(
        check.status.success(),
        "cannot make a network namespace (`unshare --map-root-user --net`): run as root or \
         enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ", "sudo/TROUBLESHOOTING.md"]);
    std::fs::write(corpus.path().join("zephyr-onboarding.md"), INVENTED_FACT).expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let question = "Which product code activates a new Zephyr-9 VPN gateway?";
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--map-root-user", "--net"])
        .arg(repo_root().join("tests/no-egress.sh"))
        .arg(env!("CARGO_BIN_EXE_lore"))
        .arg(corpus.path())
        .arg(question)
        .arg(out.path())
        .current_dir(data.path());
    // The default settings: no LORE_* variable but where the data and the models are.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LORE_") {
            command.env_remove(key);
        }
    }
    let run = command
        .env("LORE_DATA_DIR", data.path())
        .env("LORE_MODELS_DIR", models_dir())
        .output()
        .expect("bash");
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
    assert!(
        run.status.success(),
        "the run in the namespace failed:\n{}\n{}\nserve: {}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        read("serve.err")
    );
    // Only loopback in the namespace, and no route out.
    let links = read("links");
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(" lo:"), "{links}");
    assert!(!read("routes").contains("default"), "{}", read("routes"));

    // The control: the tracing and its reading see an attempt to go out.
    let control = non_local_addresses(&read("control.trace"));
    assert!(
        control.iter().any(|l| l.contains("192.0.2.1")),
        "the control's connection attempt was not seen:\n{}",
        read("control.trace")
    );
    // The server's listening socket is in its trace: strace followed the right process.
    assert!(
        read("serve.trace").contains("bind(")
            && read("serve.trace").contains("inet_addr(\"127.0.0.1\")"),
        "{}",
        read("serve.trace")
    );
    for name in ["ingest", "serve", "ask"] {
        let trace = read(&format!("{name}.trace"));
        assert!(
            trace.contains("execve(") && trace.contains("/lore\""),
            "strace did not follow lore {name}:\n{trace}"
        );
        let outbound = non_local_addresses(&trace);
        assert!(
            outbound.is_empty(),
            "lore {name} tried to reach beyond loopback:\n{}",
            outbound.join("\n")
        );
    }
    // And the work was done offline: both answers come from the documents.
    assert_eq!(read("ask-http.status"), "200", "{}", read("ask-http.json"));
    for name in ["ask-http.json", "ask-cli.json"] {
        let answer: Value = serde_json::from_str(&read(name))
            .unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {}", read(name)));
        assert_eq!(answer["abstained"], false, "{name}: {answer:#}");
        assert!(
            answer["answer"]
                .as_str()
                .is_some_and(|a| a.contains("QX-4471-LM")),
            "{name}: {answer:#}"
        );
    }
}

/// The real binary on hostile input: a panic (injected through the test-only
/// LORE_TEST_PANIC) while embedding one file and while committing another costs those two
/// files, the rest lands; a link out of the folder is skipped with the reason; and whatever
/// the umask, the data directory holds only 0600 files and 0700 folders (index included).
#[test]
fn panics_and_links_cost_one_file_and_the_data_dir_is_private() {
    let corpus = TempCorpus::from_dev_corpus(&["sudo/SECURITY.md"]);
    let dir = corpus.path();
    let text = std::fs::read(dir.join("sudo/SECURITY.md")).expect("read");
    std::fs::write(dir.join("boom.md"), &text).expect("write");
    std::fs::write(
        dir.join("crash-commit.md"),
        b"# Kettle\n\nDescale the kettle monthly.\n",
    )
    .expect("write");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("os-release"), "NAME=\"Secret Linux\"\n").expect("write");
    std::os::unix::fs::symlink(outside.path().join("os-release"), dir.join("os-release.md"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), dir.join("elsewhere")).expect("symlink");
    // SAFETY: umask only sets this process's (and its children's) default file mode.
    unsafe { libc::umask(0o022) };

    let lore = Lore::new().env("LORE_TEST_PANIC", "embed:boom.md,commit:crash-commit.md");
    let started = std::time::Instant::now();
    let summary = lore.ingest_json(&[dir]);
    let elapsed = started.elapsed();
    let listed = |list: &str| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = summary[list]
            .as_array()
            .unwrap_or_else(|| panic!("{list}: {summary:#}"))
            .iter()
            .map(|f| {
                (
                    f["path"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                    f["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        summary["ingested"],
        serde_json::json!(["sudo/SECURITY.md"]),
        "{summary:#}"
    );
    let failed = listed("failed");
    assert_eq!(failed.len(), 2, "{summary:#}");
    assert_eq!(failed[0].0, "boom.md");
    assert!(failed[0].1.contains("crashed on this file"), "{failed:?}");
    assert_eq!(failed[1].0, "crash-commit.md");
    assert!(failed[1].1.contains("index commit crashed"), "{failed:?}");
    let skipped = listed("skipped");
    assert_eq!(
        skipped.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["elsewhere", "os-release.md"],
        "{summary:#}"
    );
    assert!(
        skipped.iter().all(|s| s.1.starts_with("not followed")),
        "{skipped:?}"
    );
    eprintln!("hostile folder ingested in {elapsed:?}");

    // Searchable afterwards, and nothing of the outside file is.
    let hits = search_json(&lore, "security vulnerability report", "bm25", 5);
    assert!(
        hits.iter().any(|h| h["doc"] == "sudo/SECURITY.md"),
        "{hits:?}"
    );
    assert!(search_json(&lore, "Secret Linux", "bm25", 5)
        .iter()
        .all(|h| !h["text"].as_str().unwrap_or("").contains("Secret Linux")));

    use std::os::unix::fs::PermissionsExt;
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(lore.data_dir()) {
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("stat").permissions().mode() & 0o777;
        let wanted = if entry.file_type().is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
        if entry.file_type().is_dir() {
            assert_eq!(mode, wanted, "{}", entry.path().display());
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} entries under the data dir");
}
