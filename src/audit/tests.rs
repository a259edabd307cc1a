use super::*;
use std::os::unix::fs::PermissionsExt;

fn entry(n: usize) -> AuditEntry {
    AuditEntry {
        user: Some("alice".into()),
        address: Some("127.0.0.1".into()),
        question: Some(format!("question {n}: when do backups run?")),
        documents: vec![format!("doc{n}")],
        outcome: "answered".into(),
        latency_ms: n as u64,
        ..AuditEntry::new("/api/ask")
    }
}

/// A log of `n` entries written through the writer thread, rotated at `max_bytes`.
fn written(dir: &Path, n: usize, max_bytes: u64) {
    let log = AuditLog::open(
        dir,
        AuditOptions {
            max_bytes,
            ..AuditOptions::default()
        },
    )
    .expect("open");
    for i in 1..=n {
        log.record(entry(i));
    }
    log.flush();
    assert_eq!((log.written(), log.failures()), (n as u64, 0));
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write");
}

fn broken_reason(dir: &Path) -> String {
    match verify(dir) {
        Err(e @ VerifyError::Broken { .. }) => e.to_string(),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn a_written_log_verifies_and_holds_what_was_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit");
    written(&audit, 5, 1 << 20);
    let verified = verify(&audit).expect("verifies");
    assert_eq!(
        (verified.entries, verified.files, verified.beyond_head),
        (5, 1, 0)
    );
    let current = lines(&audit.join("audit.jsonl"));
    assert_eq!(current.len(), 5);
    let first: Record = serde_json::from_str(&current[0]).expect("record");
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev, GENESIS);
    assert_eq!(first.user.as_deref(), Some("alice"));
    assert_eq!(
        first.question.as_deref(),
        Some("question 1: when do backups run?")
    );
    assert_eq!(first.documents, vec!["doc1".to_string()]);
    assert!(
        first.time.ends_with('Z') && first.time.contains('T'),
        "{}",
        first.time
    );
    let second: Record = serde_json::from_str(&current[1]).expect("record");
    assert_eq!(second.prev, line_hash(current[0].as_bytes()));
    assert_eq!(verified.tip.hash, line_hash(current[4].as_bytes()));
    // Reopening continues the chain.
    written(&audit, 2, 1 << 20);
    assert_eq!(verify(&audit).expect("verifies").entries, 7);
}

#[test]
fn an_edited_entry_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 5, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    let mut all = lines(&path);
    all[2] = all[2].replace("alice", "mallory");
    write_lines(&path, &all);
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.jsonl:4"), "{reason}");
    assert!(reason.contains("does not match entry 3"), "{reason}");
    assert!(reason.contains("edited"), "{reason}");
}

#[test]
fn an_edited_last_entry_is_found_through_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 3, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    let mut all = lines(&path);
    all[2] = all[2].replace("question 3", "question 9");
    write_lines(&path, &all);
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.head"), "{reason}");
    assert!(
        reason.contains("entry 3 is not the one the head records"),
        "{reason}"
    );
}

#[test]
fn a_deleted_entry_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 5, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    let mut all = lines(&path);
    all.remove(1);
    write_lines(&path, &all);
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.jsonl:2"), "{reason}");
    assert!(
        reason.contains("entry 3 where entry 2 should be: entries were deleted"),
        "{reason}"
    );
}

#[test]
fn swapped_entries_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 5, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    let mut all = lines(&path);
    all.swap(1, 2);
    write_lines(&path, &all);
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.jsonl:2"), "{reason}");
    assert!(
        reason.contains("entry 3 where entry 2 should be"),
        "{reason}"
    );
    assert!(reason.contains("reordered"), "{reason}");
}

#[test]
fn an_inserted_entry_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 4, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    let mut all = lines(&path);
    // A copy of entry 2 slipped in after it: same number again.
    let copy = all[1].clone();
    all.insert(2, copy);
    write_lines(&path, &all);
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.jsonl:3"), "{reason}");
    assert!(
        reason.contains("entry 2 after entry 2: entries were inserted"),
        "{reason}"
    );
}

#[test]
fn truncation_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 5, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    // Whole entries cut from the end: only the head knows.
    let all = lines(&path);
    write_lines(&path, &all[..3]);
    let reason = broken_reason(dir.path());
    assert!(
        reason.contains("records entry 5 but the log ends at entry 3")
            && reason.contains("cut from the end"),
        "{reason}"
    );
    // Cut in the middle of a line.
    let mut text = all[..4].join("\n");
    text.push('\n');
    text.push_str(&all[4][..20]);
    std::fs::write(&path, text).expect("write");
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.jsonl:5"), "{reason}");
    assert!(reason.contains("partial entry"), "{reason}");
    // The head itself deleted.
    write_lines(&path, &all);
    verify(dir.path()).expect("restored");
    std::fs::remove_file(dir.path().join("audit.head")).expect("rm head");
    assert!(broken_reason(dir.path()).contains("missing"));
}

/// Rotation at a small size: several segments, one chain; each boundary links the last
/// entry of a segment to the first of the next.
#[test]
fn rotation_keeps_the_chain_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 40, 2_000);
    let files = segments(dir.path()).expect("segments");
    assert!(files.len() >= 4, "{files:?}");
    for segment in &files {
        let size = std::fs::metadata(&segment.path).expect("stat").len();
        assert!(size <= 2_000, "{} is {size} bytes", segment.path.display());
    }
    let verified = verify(dir.path()).expect("verifies");
    assert_eq!((verified.entries, verified.files), (40, files.len()));
    let first_of_second: Record = serde_json::from_str(&lines(&files[1].path)[0]).expect("record");
    let last_of_first = lines(&files[0].path).pop().expect("a line");
    assert_eq!(first_of_second.prev, line_hash(last_of_first.as_bytes()));
    assert_eq!(read_tail(dir.path(), 25).expect("tail").len(), 25);
    let tail = read_tail(dir.path(), 3).expect("tail");
    let newest: Record = serde_json::from_str(&tail[2]).expect("record");
    assert_eq!(newest.seq, 40);
}

#[test]
fn a_deleted_middle_segment_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 40, 2_000);
    std::fs::remove_file(dir.path().join("audit.000002.jsonl")).expect("rm");
    let reason = broken_reason(dir.path());
    assert!(reason.contains("segment 2 is missing"), "{reason}");
    // Renumbering the later segments to close the gap does not hide it.
    let files = segments(dir.path()).expect("segments");
    for segment in files.iter().filter(|s| s.number.is_some_and(|n| n > 2)) {
        let n = segment.number.expect("numbered");
        std::fs::rename(&segment.path, dir.path().join(chain::segment_name(n - 1)))
            .expect("rename");
    }
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.000002.jsonl:1"), "{reason}");
    assert!(reason.contains("entries were deleted"), "{reason}");
    assert!(
        reason.contains("a segment is missing, reordered"),
        "{reason}"
    );
}

#[test]
fn reordered_segments_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 40, 2_000);
    let (one, two) = (
        dir.path().join("audit.000001.jsonl"),
        dir.path().join("audit.000002.jsonl"),
    );
    let swap = dir.path().join("swap");
    std::fs::rename(&one, &swap).expect("rename");
    std::fs::rename(&two, &one).expect("rename");
    std::fs::rename(&swap, &two).expect("rename");
    let reason = broken_reason(dir.path());
    assert!(reason.contains("audit.000001.jsonl:1"), "{reason}");
    assert!(reason.contains("where entry 1 should be"), "{reason}");
}

/// Two writers in one process (two logs, as two processes would have) and several threads
/// recording into each: one unbroken chain holding every entry.
#[test]
fn concurrent_writers_keep_one_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AuditOptions {
        max_bytes: 8_000,
        ..AuditOptions::default()
    };
    let logs = [
        AuditLog::open(dir.path(), options).expect("open"),
        AuditLog::open(dir.path(), options).expect("open"),
    ];
    std::thread::scope(|scope| {
        for log in &logs {
            for _ in 0..2 {
                scope.spawn(move || {
                    for i in 0..50 {
                        log.record(entry(i));
                    }
                });
            }
        }
    });
    for log in &logs {
        log.flush();
        assert_eq!(log.failures(), 0);
    }
    let verified = verify(dir.path()).expect("verifies");
    assert_eq!(verified.entries, 200);
    assert!(verified.files > 1);
}

/// Two processes: this test binary runs itself twice as a writer.
#[test]
fn concurrent_processes_keep_one_chain() {
    if let Ok(dir) = std::env::var("LORE_AUDIT_TEST_CHILD") {
        written(Path::new(&dir), 100, 6_000);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "audit::tests::concurrent_processes_keep_one_chain",
                    "--test-threads=1",
                ])
                .env("LORE_AUDIT_TEST_CHILD", dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let verified = verify(dir.path()).expect("verifies");
    assert_eq!(verified.entries, 200);
}

#[test]
fn files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit");
    // SAFETY: umask only changes this process's default file mode.
    let old = unsafe { libc::umask(0) };
    written(&audit, 30, 2_000);
    unsafe { libc::umask(old) };
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&audit), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&audit).expect("list") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 4, "{files}");
}

#[test]
fn questions_can_be_kept_as_hashes_and_fields_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(
        dir.path(),
        AuditOptions {
            question: QuestionMode::Hash,
            ..AuditOptions::default()
        },
    )
    .expect("open");
    log.record(AuditEntry {
        question: Some("what is Jane Doe's salary?".into()),
        documents: (0..500).map(|i| format!("doc{i}")).collect(),
        extra: Some(serde_json::json!({ "body": "x".repeat(MAX_EXTRA_BYTES) })),
        ..AuditEntry::new("/api/ask")
    });
    log.flush();
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("read");
    assert!(!text.contains("Jane"), "{text}");
    let record: Record = serde_json::from_str(text.trim_end()).expect("record");
    assert_eq!(
        record.question.as_deref(),
        Some(
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(b"what is Jane Doe's salary?"))
            )
            .as_str()
        )
    );
    assert_eq!(record.documents.len(), MAX_DOCUMENTS);
    let extra = record.extra.expect("extra");
    assert!(extra["omitted_bytes"]
        .as_u64()
        .is_some_and(|n| n > MAX_EXTRA_BYTES as u64));
    // As text, a long question is cut at a character boundary.
    let long = "é".repeat(MAX_QUESTION_BYTES);
    let kept = Record::new(
        AuditEntry {
            question: Some(long),
            ..AuditEntry::new("/api/ask")
        },
        QuestionMode::Text,
        1,
        GENESIS.into(),
    )
    .question
    .expect("question");
    assert!(
        kept.len() <= MAX_QUESTION_BYTES && kept.ends_with('…'),
        "{}",
        kept.len()
    );
    verify(dir.path()).expect("verifies");
}

/// A write cut short (a crash mid-line) is cut off by the next writer, which chains to the
/// last whole entry.
#[test]
fn an_interrupted_write_is_repaired_by_the_next_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 3, 1 << 20);
    let path = dir.path().join("audit.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    std::io::Write::write_all(&mut file, b"{\"seq\":4,\"ti").expect("write");
    assert!(broken_reason(dir.path()).contains("partial entry"));
    written(dir.path(), 1, 1 << 20);
    assert_eq!(verify(dir.path()).expect("verifies").entries, 4);
}
