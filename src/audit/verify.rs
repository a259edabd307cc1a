//! `lore audit verify`: walks every segment in order and checks each line is an entry,
//! numbered one after the one before, whose `prev` is the hash of the line before it; then
//! that the last entry is the one `audit.head` records.

use super::chain::{read_head, segment_name, segments, Tip};
use super::{line_hash, AuditError, Record, MAX_LINE_BYTES};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A log that checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub files: usize,
    /// The newest entry: keep its hash elsewhere to pin the log up to it.
    pub tip: Tip,
    /// Entries written after the head was last updated (an interrupted write; the next
    /// write brings the head up to date).
    pub beyond_head: u64,
}

/// Where the chain breaks, and why.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Broken {
        path: PathBuf,
        /// 1-based line in that file.
        line: Option<u64>,
        reason: String,
    },
    #[error(transparent)]
    Read(#[from] AuditError),
}

fn broken(path: &Path, line: Option<u64>, reason: String) -> VerifyError {
    VerifyError::Broken {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

/// Checks the whole chain in `dir` (an absent or empty directory is an empty, valid log).
pub fn verify(dir: &Path) -> Result<Verified, VerifyError> {
    if !dir.exists() {
        return Ok(Verified {
            entries: 0,
            files: 0,
            tip: Tip::genesis(),
            beyond_head: 0,
        });
    }
    let files = segments(dir)?;
    let numbers: Vec<u64> = files.iter().filter_map(|s| s.number).collect();
    for (i, &number) in numbers.iter().enumerate() {
        let expected = i as u64 + 1;
        if number != expected {
            return Err(broken(
                &dir.join(segment_name(expected)),
                None,
                format!(
                    "segment {expected} is missing (segments present: {})",
                    numbers
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let head = read_head(dir)?;
    let mut tip = Tip::genesis();
    let mut tip_place: Option<(PathBuf, u64)> = None;
    let mut head_hash_seen: Option<String> = None;
    for (index, segment) in files.iter().enumerate() {
        let path = &segment.path;
        let file = std::fs::File::open(path).map_err(super::io_error("open", path))?;
        let mut reader = BufReader::new(file);
        let mut line_no = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(super::io_error("read", path))?;
            if read == 0 {
                break;
            }
            line_no += 1;
            if line.last() != Some(&b'\n') {
                let reason = if line.len() > MAX_LINE_BYTES {
                    format!("a line longer than {MAX_LINE_BYTES} bytes: not an audit entry")
                } else {
                    "the file ends in a partial entry (truncated, or a write was interrupted)"
                        .to_string()
                };
                return Err(broken(path, Some(line_no), reason));
            }
            let text = &line[..line.len() - 1];
            let record: Record = serde_json::from_slice(text)
                .map_err(|e| broken(path, Some(line_no), format!("not an audit entry ({e})")))?;
            let expected = tip.seq + 1;
            let first_of_file = line_no == 1 && index > 0;
            let boundary = || match (&tip_place, first_of_file) {
                (Some((before, _)), true) => format!(
                    "; it opens this file and the entry before it closes {}, so a segment is \
                     missing, reordered or was edited",
                    before.display()
                ),
                _ => String::new(),
            };
            if record.seq != expected {
                let reason = if record.seq > expected {
                    format!(
                        "entry {} where entry {expected} should be: entries were deleted or \
                         reordered{}",
                        record.seq,
                        boundary()
                    )
                } else {
                    format!(
                        "entry {} after entry {}: entries were inserted or reordered{}",
                        record.seq,
                        tip.seq,
                        boundary()
                    )
                };
                return Err(broken(path, Some(line_no), reason));
            }
            if record.prev != tip.hash {
                let before = match &tip_place {
                    Some((p, l)) => format!("entry {} at {}:{l}", tip.seq, p.display()),
                    None => "the start of the log".to_string(),
                };
                return Err(broken(
                    path,
                    Some(line_no),
                    format!(
                        "entry {}: its prev hash does not match {before}: that entry was edited \
                         (or this one was){}",
                        record.seq,
                        boundary()
                    ),
                ));
            }
            tip = Tip {
                seq: record.seq,
                hash: line_hash(text),
            };
            if head.as_ref().is_some_and(|h| h.seq == tip.seq) {
                head_hash_seen = Some(tip.hash.clone());
            }
            tip_place = Some((path.clone(), line_no));
        }
        if line_no == 0 && segment.number.is_some() {
            return Err(broken(path, None, "a segment with no entries".to_string()));
        }
    }
    let head_path = dir.join(super::chain::HEAD);
    let last = || match &tip_place {
        Some((p, l)) => format!("{}:{l}", p.display()),
        None => "no entries".to_string(),
    };
    let beyond_head = match head {
        None if tip.seq == 0 => 0,
        None => {
            return Err(broken(
                &head_path,
                None,
                "missing, though the log holds entries: it was deleted".to_string(),
            ))
        }
        Some(head) if head.seq > tip.seq => {
            return Err(broken(
                &head_path,
                None,
                format!(
                    "records entry {} but the log ends at entry {} ({}): entries were cut \
                     from the end",
                    head.seq,
                    tip.seq,
                    last()
                ),
            ))
        }
        Some(head) if head_hash_seen.as_deref() != Some(head.hash.as_str()) => {
            return Err(broken(
                &head_path,
                None,
                format!(
                    "entry {} is not the one the head records: it was edited",
                    head.seq
                ),
            ))
        }
        Some(head) => tip.seq - head.seq,
    };
    Ok(Verified {
        entries: tip.seq,
        files: files.len(),
        tip,
        beyond_head,
    })
}
