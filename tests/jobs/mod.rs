//! Uploads and greedy clients against the real binary: an upload accepted before a
//! kill -9 is indexed or reported failed after the restart, under the job id it was given;
//! and a crowd of large uploads and answer streams nobody reads keeps the server within a
//! memory ceiling while other clients still get answers.

use crate::common::{connect_with_small_receive_buffer, dev_corpus, http, Lore, TempCorpus};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Polls `GET /api/jobs/{id}` until `done(job)`; the job.
fn wait_for_job(url: &str, id: &str, bound: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let response = http("GET", &format!("{url}/api/jobs/{id}"), None, b"");
        assert_eq!(response.status, 200, "{id}: {}", response.text());
        let job = response.json();
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "{id} did not get there: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finished(job: &Value) -> bool {
    job["state"] == "done" || job["state"] == "failed"
}

/// The `count` smallest files of the development corpus: (upload name, bytes).
fn small_corpus_files(count: usize) -> Vec<(String, Vec<u8>)> {
    let root = dev_corpus();
    let mut files: Vec<(u64, std::path::PathBuf)> = walk(&root)
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p)))
        .collect();
    files.sort();
    files
        .into_iter()
        .take(count)
        .map(|(_, path)| {
            let relative = path.strip_prefix(&root).expect("under the corpus");
            // One upload is one folder: the corpus path becomes the name.
            let name = relative.to_string_lossy().replace('/', "__");
            (name, std::fs::read(&path).expect("read"))
        })
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// 40 files uploaded, the server SIGKILLed while their job runs, started again: the job
/// answers under its id (resumed, finished), every file is indexed or listed as failed,
/// and new jobs get new ids.
#[test]
fn an_upload_accepted_before_kill_dash_nine_is_finished_after_the_restart() {
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    let files = small_corpus_files(40);
    let parts: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (content_type, body) = crate::common::multipart(&parts);

    let server = lore.serve(&[]);
    let accepted = http(
        "POST",
        &format!("{}/api/documents", server.url),
        Some(&content_type),
        &body,
    );
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let job_id = accepted.json()["job_id"]
        .as_str()
        .expect("job id")
        .to_string();
    // Mid-job: some files done, not all.
    let running = wait_for_job(&server.url, &job_id, Duration::from_secs(120), |job| {
        job["progress"]["files_done"].as_u64().unwrap_or(0) >= 1 || finished(job)
    });
    server.kill_dash_nine();
    let done_before = running["progress"]["files_done"].as_u64().unwrap_or(0);
    assert!(
        running["state"] == "running" && done_before < 40,
        "the kill must land mid-job: {running}"
    );
    // The journal holds the job, private to the server's user.
    let record = lore.data_dir().join(format!("jobs/{job_id}.json"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&record)
            .expect("job record")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", record.display());
    }

    let server = lore.serve(&[]);
    let job = wait_for_job(&server.url, &job_id, Duration::from_secs(300), finished);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["resumed"], true, "{job}");
    assert_eq!(job["files"].as_array().map(Vec::len), Some(40), "{job}");
    let documents = http("GET", &format!("{}/api/documents", server.url), None, b"").json();
    let status: BTreeMap<String, String> = documents["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or_default().to_string(),
                d["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (name, _) in &files {
        let state = status.get(name).map(String::as_str);
        assert!(
            matches!(state, Some("indexed" | "indexed_with_warnings" | "failed")),
            "{name} is {state:?} after the restart: {status:#?}"
        );
    }
    eprintln!(
        "kill -9 after {done_before}/40 files; after the restart: {} indexed, {} failed",
        status.values().filter(|s| s.starts_with("indexed")).count(),
        status.values().filter(|s| *s == "failed").count()
    );

    // The next upload gets an id never given before.
    let (content_type, body) =
        crate::common::multipart(&[("after-restart.md", b"# After\n\nA new note.\n")]);
    let next = http(
        "POST",
        &format!("{}/api/documents", server.url),
        Some(&content_type),
        &body,
    );
    assert_eq!(next.status, 202, "{}", next.text());
    let next_id = next.json()["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(next_id, job_id);
    let number = |id: &str| id.trim_start_matches("job-").parse::<u64>().unwrap_or(0);
    assert!(
        number(&next_id) > number(&job_id),
        "{next_id} after {job_id}"
    );
    let next_job = wait_for_job(&server.url, &next_id, Duration::from_secs(120), finished);
    assert_eq!(next_job["files"], serde_json::json!(["after-restart.md"]));
    assert_eq!(next_job["resumed"], false, "{next_job}");
    // The old job still answers as it ended.
    let old = http(
        "GET",
        &format!("{}/api/jobs/{job_id}", server.url),
        None,
        b"",
    )
    .json();
    assert_eq!(old["state"], "done", "{old}");
}

/// One 50 MB upload sent as it is produced (the client holds 1 MiB at a time): a PDF
/// header then bytes that are not a PDF, so the file is accepted, stored and then
/// recorded as failed quickly. The response's status and the job id.
fn upload_fifty_megabytes(address: &str, name: &str) -> (u16, Option<String>) {
    const SIZE: usize = 50 << 20;
    let boundary = "greedy-boundary-3b7e";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let block = crate::common::pseudo_random_bytes(1 << 20);
    let length = head.len() + SIZE + tail.len();
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    let request = format!(
        "POST /api/documents HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
    );
    let sent = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(head.as_bytes()))
        .and_then(|()| {
            for _ in 0..SIZE / block.len() {
                stream.write_all(&block)?;
            }
            stream.write_all(tail.as_bytes())
        });
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response ({sent:?}): {text}"));
    let job = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .and_then(|v| v["job_id"].as_str().map(String::from));
    (status, job)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Memory the server may grow by under the load below, over its resident size once
/// loaded and warmed up: one 50 MB file in the worker's hands (read, hashed, parsed),
/// buffers of the streams and the answers. Before the upload streamed, 20 such uploads
/// were held in memory whole (over 1 GB).
const RSS_GROWTH_CEILING_MIB: u64 = 300;

/// 20 concurrent 50 MB uploads and 10 answer streams whose clients never read, at once;
/// meanwhile another client asks five questions. The server's resident memory stays under
/// its ceiling, every upload is accepted and its job ends, the other client gets its
/// answers, and the silent streams are ended by the server.
#[test]
fn greedy_clients_are_bounded_and_others_still_get_answers() {
    let corpus = TempCorpus::from_dev_corpus(&["chrony/FAQ", "sudo/TROUBLESHOOTING.md"]);
    let lore = Lore::new().env("LORE_LLM_MODEL", "tiny");
    lore.ingest_json(&[corpus.path()]);
    let stall_secs = 5;
    let server = lore.serve(&[
        "--answer-queue",
        "4",
        "--stream-idle-secs",
        &stall_secs.to_string(),
    ]);
    let url = server.url.clone();
    let address = url.trim_start_matches("http://").to_string();
    let json = Some("application/json");
    let quick_ask = br#"{"question": "How do I use chronyd as an NTP server for the local network?", "max_tokens": 32, "stream": false}"#;
    // Warm up (the model's pages touched), then take the baseline.
    let warm = http("POST", &format!("{url}/api/ask"), json, quick_ask);
    assert_eq!(warm.status, 200, "{}", warm.text());
    let baseline_kib = server.rss_kib().expect("RSS");

    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline_kib));
    let pid = server.pid();
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    })
                    .unwrap_or(0);
                peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();

    // Ten answer streams nobody reads, on sockets with tiny receive buffers.
    let silent_ask = br#"{"question": "Explain in detail every way to configure chronyd, sudo and the local network, step by step, with all options.", "k": 8, "max_tokens": 128}"#;
    let silent: Vec<std::net::TcpStream> = (0..10)
        .map(|_| {
            let mut stream = connect_with_small_receive_buffer(&address);
            let request = format!(
                "POST /api/ask HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                silent_ask.len()
            );
            stream.write_all(request.as_bytes()).expect("request");
            stream.write_all(silent_ask).expect("body");
            stream
        })
        .collect();

    // Twenty 50 MB uploads at once.
    let uploads: Vec<_> = (0..20)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let (status, job) = upload_fifty_megabytes(&address, &format!("load-{i}.pdf"));
                (status, job, t.elapsed().as_secs_f64())
            })
        })
        .collect();

    // Another client: five questions, retrying a 429 after its Retry-After (capped at 1 s).
    let asker = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut refused = 0;
            for _ in 0..5 {
                let t = Instant::now();
                loop {
                    let r = http("POST", &format!("{url}/api/ask"), json, quick_ask);
                    match r.status {
                        200 => break,
                        429 => {
                            refused += 1;
                            assert!(t.elapsed() < Duration::from_secs(240), "never admitted");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        other => panic!("ask failed with {other}: {}", r.text()),
                    }
                }
                latencies.push(t.elapsed().as_secs_f64());
            }
            (latencies, refused)
        })
    };

    let mut upload_seconds = Vec::new();
    let mut jobs = Vec::new();
    for upload in uploads {
        let (status, job, seconds) = upload.join().expect("upload thread");
        assert_eq!(status, 202, "every upload fits the queue");
        jobs.extend(job);
        upload_seconds.push(seconds);
    }
    let (mut ask_seconds, refused) = asker.join().expect("asker");

    // The silent streams end: cut off by the server once they stalled (or complete, when
    // the whole answer fitted in the socket buffers). Read what is left to see which.
    let mut cut_off = 0;
    let mut silent_closed_after = Vec::new();
    for mut stream in silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let mut raw = Vec::new();
        let ended = stream.read_to_end(&mut raw);
        silent_closed_after.push(started.elapsed().as_secs_f64());
        let text = String::from_utf8_lossy(&raw);
        assert!(
            ended.is_ok() || text.starts_with("HTTP/1.1 200"),
            "silent stream: {ended:?}"
        );
        if text.starts_with("HTTP/1.1 200") && !text.contains("event: answer") {
            cut_off += 1;
        }
    }
    for id in &jobs {
        let job = wait_for_job(&url, id, Duration::from_secs(300), finished);
        assert_eq!(
            job["summary"]["failed"].as_array().map(Vec::len),
            Some(1),
            "the not-a-PDF is reported failed: {job}"
        );
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    // And an answer right after, with every slot free again.
    let t = Instant::now();
    let after = http("POST", &format!("{url}/api/ask"), json, quick_ask);
    assert_eq!(after.status, 200, "{}", after.text());
    let after_seconds = t.elapsed().as_secs_f64();

    let peak_kib = peak.load(std::sync::atomic::Ordering::Relaxed);
    upload_seconds.sort_by(f64::total_cmp);
    ask_seconds.sort_by(f64::total_cmp);
    eprintln!(
        "greedy load: RSS baseline {} MiB, peak {} MiB (+{} MiB, ceiling +{RSS_GROWTH_CEILING_MIB}); \
         20 × 50 MB uploads p50 {:.1} s max {:.1} s; other client's asks p50 {:.1} s max {:.1} s \
         ({refused} × 429 first); silent streams: {cut_off}/10 cut off, last closed at {:.1} s; \
         ask after the load {after_seconds:.1} s; total {:.0} s",
        baseline_kib >> 10,
        peak_kib >> 10,
        peak_kib.saturating_sub(baseline_kib) >> 10,
        percentile(&upload_seconds, 0.5),
        percentile(&upload_seconds, 1.0),
        percentile(&ask_seconds, 0.5),
        percentile(&ask_seconds, 1.0),
        silent_closed_after.iter().copied().fold(0.0, f64::max),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        peak_kib.saturating_sub(baseline_kib) < RSS_GROWTH_CEILING_MIB << 10,
        "RSS grew from {baseline_kib} KiB to {peak_kib} KiB"
    );
}
