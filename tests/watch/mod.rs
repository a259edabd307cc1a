//! Drop-folder watching, end to end with the real binary: `lore serve --watch` follows
//! adds, changes, renames, moves between collections, deletions, slow copies and broken
//! files; `lore watch` survives kill -9 and ends exactly where a clean ingest does.

use crate::common::{http, Lore, Server, TempCorpus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long any one change may take to show (the settle time is a fraction of it).
const BOUND: Duration = Duration::from_secs(90);

fn wait_for(what: &str, check: impl FnMut() -> Option<Value>) -> Value {
    wait_up_to(BOUND, what, check)
}

fn wait_up_to(bound: Duration, what: &str, mut check: impl FnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn documents(server: &Server) -> Vec<Value> {
    http("GET", &format!("{}/api/documents", server.url), None, b"").json()["documents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn document(server: &Server, path: &str) -> Option<Value> {
    documents(server).into_iter().find(|d| d["path"] == path)
}

fn watch_status(server: &Server) -> Value {
    http("GET", &format!("{}/api/watch", server.url), None, b"").json()
}

/// Waits until the watcher has nothing queued and `check` holds on the documents.
fn settled(server: &Server, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let v = wait_for(what, || {
        let status = watch_status(server);
        let idle = status["status"]["state"] == "idle" && status["status"]["queue"] == 0;
        let docs = documents(server);
        (idle && check(&docs)).then_some(Value::Array(docs))
    });
    v.as_array().cloned().unwrap_or_default()
}

fn search(server: &Server, query: &str, collection: Option<&str>) -> Vec<Value> {
    let mut body = serde_json::json!({"query": query, "k": 3});
    if let Some(c) = collection {
        body["collections"] = serde_json::json!([c]);
    }
    let r = http(
        "POST",
        &format!("{}/api/search", server.url),
        Some("application/json"),
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"].as_array().cloned().unwrap_or_default()
}

fn top_doc(results: &[Value]) -> String {
    results
        .first()
        .and_then(|r| r["doc"].as_str())
        .unwrap_or_default()
        .to_string()
}

const PARKING: &str = "# Parking at the Tromsø office\n\n\
Visitors park in bay K-17 behind the loading dock. The barrier code for bay K-17 is \
4410, changed every quarter by facilities.\n";
const PARKING_CHANGED: &str = "# Parking at the Tromsø office\n\n\
From March, visitors park in the underground garage, level minus two. The old loading \
dock bays are closed for the heat-pump installation.\n";

#[test]
fn serve_watch_follows_adds_changes_renames_moves_and_deletes() {
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ"]);
    let share = tempfile::tempdir().expect("tempdir");
    let root = share.path();
    std::fs::copy(
        corpus.path().join("chrony/FAQ"),
        root.join("chrony-faq.txt"),
    )
    .expect("copy");
    std::fs::create_dir(root.join("hr")).expect("mkdir");
    std::fs::write(root.join("parking.md"), PARKING).expect("write");
    // Never taken: hidden, temporary and partial names.
    std::fs::write(root.join(".notes.md"), PARKING).expect("write");
    std::fs::write(root.join("hr/draft.md.part"), PARKING).expect("write");
    std::fs::write(root.join("hr/~$draft.docx"), b"owner file").expect("write");

    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    let root_arg = root.to_string_lossy().into_owned();
    let server = lore.serve(&["--watch", &root_arg, "--settle-ms", "600"]);

    // Initial scan: the two real files, nothing else.
    let docs = settled(&server, "the initial scan", |d| d.len() >= 2);
    let mut paths: Vec<&str> = docs.iter().filter_map(|d| d["path"].as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, vec!["chrony-faq.txt", "parking.md"], "{docs:#?}");
    assert!(docs.iter().all(|d| d["collection"] == "default"));
    let hit = search(&server, "barrier code for the visitor parking bay", None);
    assert_eq!(top_doc(&hit), "parking.md", "{hit:#?}");

    // Change: the new text is found, the old one is gone.
    std::fs::write(root.join("parking.md"), PARKING_CHANGED).expect("write");
    wait_for("the changed file", || {
        let hit = search(&server, "underground garage level minus two", None);
        let text = hit.first()?["text"].as_str()?.to_string();
        text.contains("underground garage").then_some(Value::Null)
    });
    assert!(search(&server, "barrier code K-17 4410", None)
        .iter()
        .all(|r| !r["text"].as_str().unwrap_or_default().contains("4410")));

    // Rename: same content, new path, passages re-filed without embedding.
    let reused_before = watch_status(&server)["status"]["reused"]
        .as_u64()
        .unwrap_or(0);
    std::fs::rename(root.join("parking.md"), root.join("parking-2025.md")).expect("rename");
    let docs = settled(&server, "the rename", |d| {
        d.iter().any(|x| x["path"] == "parking-2025.md")
            && d.iter().all(|x| x["path"] != "parking.md")
    });
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let status = watch_status(&server);
    assert!(
        status["status"]["reused"].as_u64().unwrap_or(0) > reused_before,
        "a rename must reuse the embeddings: {status}"
    );
    assert_eq!(
        top_doc(&search(&server, "underground garage level minus two", None)),
        "parking-2025.md"
    );

    // Move into a collection folder: the document changes collection.
    std::fs::rename(
        root.join("parking-2025.md"),
        root.join("hr/parking-2025.md"),
    )
    .expect("move");
    let docs = settled(&server, "the move", |d| {
        d.iter().any(|x| x["path"] == "hr/parking-2025.md")
            && d.iter().all(|x| x["path"] != "parking-2025.md")
    });
    let moved = docs
        .iter()
        .find(|d| d["path"] == "hr/parking-2025.md")
        .cloned()
        .unwrap_or_default();
    assert_eq!(moved["collection"], "hr", "{moved}");
    let in_hr = search(&server, "underground garage level minus two", Some("hr"));
    assert_eq!(top_doc(&in_hr), "hr/parking-2025.md", "{in_hr:#?}");
    assert!(search(&server, "underground garage", Some("default"))
        .iter()
        .all(|r| r["doc"] != "hr/parking-2025.md"));

    // A broken file is listed as failed with its reason, and retried once it changes.
    std::fs::write(root.join("hr/report.pdf"), b"%PDF-1.7 truncated, no xref").expect("write");
    settled(&server, "the broken file", |d| {
        d.iter()
            .any(|x| x["path"] == "hr/report.pdf" && x["status"] == "failed")
    });
    let failed = document(&server, "hr/report.pdf").unwrap_or_default();
    assert!(
        failed["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    let recent = |server: &Server| {
        watch_status(server)["status"]["recent_failures"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        recent(&server).iter().any(|f| f["path"] == "hr/report.pdf"),
        "{:?}",
        recent(&server)
    );
    // Fixed (a real PDF copied over it): retried, and indexed.
    std::fs::copy(
        crate::common::dev_corpus().join("fonts-sil-gentiumplus/faq.pdf"),
        root.join("hr/report.pdf"),
    )
    .expect("copy");
    settled(&server, "the fixed file", |d| {
        d.iter().any(|x| {
            x["path"] == "hr/report.pdf"
                && x["status"] == "indexed"
                && x["chunks"].as_u64() > Some(0)
        })
    });
    let hit = search(&server, "how is the name Gentium pronounced", Some("hr"));
    assert_eq!(top_doc(&hit), "hr/report.pdf", "{hit:#?}");
    assert!(recent(&server).is_empty(), "{:?}", recent(&server));

    // A whole collection folder renamed: its documents follow, re-filed without embedding.
    let reused_before = watch_status(&server)["status"]["reused"]
        .as_u64()
        .unwrap_or(0);
    std::fs::rename(root.join("hr"), root.join("people")).expect("rename folder");
    let docs = settled(&server, "the folder rename", |d| {
        d.iter().all(|x| x["collection"] != "hr")
            && d.iter().any(|x| x["path"] == "people/report.pdf")
            && d.iter().any(|x| x["path"] == "people/parking-2025.md")
    });
    assert!(
        docs.iter()
            .filter(|d| d["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("people/"))
            .all(|d| d["collection"] == "people"),
        "{docs:#?}"
    );
    let status = watch_status(&server);
    assert!(
        status["status"]["reused"].as_u64().unwrap_or(0) >= reused_before + 2,
        "{status}"
    );
    std::fs::rename(root.join("people"), root.join("hr")).expect("rename folder back");
    settled(&server, "the folder renamed back", |d| {
        d.iter().any(|x| x["path"] == "hr/report.pdf")
            && d.iter().all(|x| x["collection"] != "people")
    });

    // A slow copy (pieces over ~2 s, each gap shorter than the settle time) is taken
    // once, complete.
    let ingested_before = watch_status(&server)["status"]["ingested"]
        .as_u64()
        .unwrap_or(0);
    let pieces = [
        "# Wi-Fi for guests\n\n",
        "The guest network is called Lore-Guest. ",
        "Its password changes every Monday and is printed on the reception screen. ",
        "Guests may not use the staff VLAN under any circumstances.\n",
        "Ask reception for a printed voucher if the screen is off.\n",
    ];
    {
        use std::io::Write;
        let mut file = std::fs::File::create(root.join("wifi.md")).expect("create");
        for piece in pieces {
            file.write_all(piece.as_bytes()).expect("write");
            file.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    let full_size = pieces.iter().map(|p| p.len()).sum::<usize>() as u64;
    let docs = settled(&server, "the slow copy", |d| {
        d.iter().any(|x| x["path"] == "wifi.md")
    });
    let wifi = docs
        .iter()
        .find(|d| d["path"] == "wifi.md")
        .cloned()
        .unwrap_or_default();
    assert_eq!(wifi["bytes"], full_size, "{wifi}");
    let status = watch_status(&server);
    assert_eq!(
        status["status"]["ingested"].as_u64().unwrap_or(0),
        ingested_before + 1,
        "the slow copy must be ingested exactly once: {status}"
    );
    let hit = search(
        &server,
        "printed voucher when the reception screen is off",
        None,
    );
    assert_eq!(top_doc(&hit), "wifi.md", "{hit:#?}");

    // Delete: gone from the list and from search.
    std::fs::remove_file(root.join("hr/parking-2025.md")).expect("rm");
    settled(&server, "the deletion", |d| {
        d.iter().all(|x| x["path"] != "hr/parking-2025.md")
    });
    assert!(search(&server, "underground garage level minus two", None)
        .iter()
        .all(|r| r["doc"] != "hr/parking-2025.md"));

    // Never taken, all along.
    assert!(documents(&server).iter().all(|d| {
        let p = d["path"].as_str().unwrap_or_default();
        !p.contains(".notes") && !p.ends_with(".part") && !p.contains("~$")
    }));
    let metrics = http("GET", &format!("{}/metrics", server.url), None, b"").text();
    assert!(metrics.contains("lore_watch_queue_files 0"), "{metrics}");
    assert!(metrics.contains("lore_watch_files_done "), "{metrics}");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn poll_mode_follows_a_folder_without_notifications() {
    let share = tempfile::tempdir().expect("tempdir");
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    let share_arg = share.path().to_string_lossy().into_owned();
    let server = lore.serve(&[
        "--watch",
        &share_arg,
        "--watch-mode",
        "poll",
        "--poll-secs",
        "1",
        "--settle-ms",
        "300",
    ]);
    assert_eq!(watch_status(&server)["status"]["mode"], "poll");
    std::fs::create_dir(share.path().join("legal")).expect("mkdir");
    std::fs::write(share.path().join("legal/parking.md"), PARKING).expect("write");
    settled(&server, "the polled file", |d| {
        d.iter()
            .any(|x| x["path"] == "legal/parking.md" && x["collection"] == "legal")
    });
    std::fs::remove_file(share.path().join("legal/parking.md")).expect("rm");
    settled(&server, "the polled deletion", |d| d.is_empty());
    assert_eq!(server.terminate(), Some(0));
}

/// `n` real documents of 1–6 KB: the development corpus's plain-text and Markdown files
/// cut at paragraph boundaries (the repository's own data, not the host's, so the test
/// runs the same in a slim container), as (file name, text).
fn real_documents(n: usize) -> Vec<(String, String)> {
    let corpus = crate::common::dev_corpus();
    let mut sources: Vec<PathBuf> = walkdir(&corpus)
        .into_iter()
        .filter(|p| {
            let ext = p.extension().map(|e| e.to_string_lossy().into_owned());
            matches!(ext.as_deref(), None | Some("txt") | Some("md"))
        })
        .collect();
    sources.sort();
    let mut documents = Vec::new();
    for source in sources {
        let Ok(text) = std::fs::read_to_string(&source) else {
            continue;
        };
        let stem = source
            .strip_prefix(&corpus)
            .unwrap_or(&source)
            .to_string_lossy()
            .replace(['/', '.'], "-");
        let mut piece = String::new();
        for paragraph in text.split("\n\n") {
            piece.push_str(paragraph);
            piece.push_str("\n\n");
            if piece.len() >= 1024 {
                if piece.len() <= 6 * 1024 {
                    documents.push((format!("{stem}-{}.txt", documents.len()), piece.clone()));
                }
                piece.clear();
            }
            if documents.len() == n {
                return documents;
            }
        }
    }
    panic!("only {} documents of 1-6 KB in the corpus", documents.len());
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read corpus").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn copy_documents(documents: &[(String, String)], to: &Path) {
    for (name, text) in documents {
        std::fs::write(to.join(name), text).expect("write");
    }
}

#[test]
fn watch_survives_kill_dash_nine_and_ends_like_a_clean_ingest() {
    let files = real_documents(200);
    let folder = tempfile::tempdir().expect("tempdir");
    copy_documents(&files, folder.path());
    let folder_arg = folder.path().to_string_lossy().into_owned();

    let clean = Lore::new();
    clean.ok(&["ingest", &folder_arg]);
    let expected = crate::document_chunk_counts(&clean);
    assert_eq!(expected.len(), files.len());

    // The watcher starts on an empty folder; the documents are dropped while it runs.
    let drop = tempfile::tempdir().expect("tempdir");
    let drop_arg = drop.path().to_string_lossy().into_owned();
    let watched = Lore::new();
    // Small batches, so kills land before, during and between many commits.
    let args = [
        "watch",
        drop_arg.as_str(),
        "--settle-ms",
        "300",
        "--batch-files",
        "8",
    ];
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut interrupted_mid_work = 0;
    for round in 0..10 {
        let mut child = watched.spawn(&args);
        if round == 0 {
            std::thread::sleep(Duration::from_millis(1500));
            copy_documents(&files, drop.path());
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(1500 + rng % 4500));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever it had committed is whole: every document present has all its chunks.
        let now = crate::document_chunk_counts(&watched);
        if !now.is_empty() && now.len() < expected.len() {
            interrupted_mid_work += 1;
        }
        for (doc, chunks) in now {
            assert_eq!(
                expected.get(&doc),
                Some(&chunks),
                "round {round}: {doc} is partial or unknown"
            );
        }
    }
    assert!(
        interrupted_mid_work > 0,
        "no kill landed while the watcher was part-way through the folder"
    );
    // Restarted once more, it finishes the job; its journal says when.
    let mut child = watched.spawn(&args);
    let started = now_unix();
    // Bounded by the work left: embedding what the killed runs did not commit.
    let finishing = Instant::now();
    wait_up_to(Duration::from_secs(600), "the watcher to finish", || {
        let (_, out, _) = watched.run(&["status", "--json"]);
        let status: Value = serde_json::from_str(&out).ok()?;
        let w = &status["watch"];
        (w["state"] == "idle"
            && w["queue"] == 0
            && w["pid"] == child.id()
            && w["updated_at"].as_i64().unwrap_or(0) >= started)
            .then_some(Value::Null)
    });
    eprintln!(
        "watcher finished {:.1} s after its last restart; {interrupted_mid_work} of 10 kills landed mid-folder",
        finishing.elapsed().as_secs_f64()
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(0));
    assert_eq!(crate::document_chunk_counts(&watched), expected);
    let a: Value = serde_json::from_str(&clean.ok(&["status", "--json"])).expect("status");
    let b: Value = serde_json::from_str(&watched.ok(&["status", "--json"])).expect("status");
    assert_eq!(a["chunks"], b["chunks"], "no chunk missing or duplicated");
    assert_eq!(a["documents"], b["documents"]);
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
