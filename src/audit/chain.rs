//! The log's files: the current file, numbered segments, the head and the lock; finding
//! the chain's tip and appending batches to it (rotating by size) under the lock.

use super::{io_error, line_hash, AuditEntry, AuditError, AuditOptions, Record, GENESIS};
use super::{QuestionMode, MAX_LINE_BYTES};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(super) const CURRENT: &str = "audit.jsonl";
pub(super) const HEAD: &str = "audit.head";
const LOCK: &str = "audit.lock";

/// The chain's newest entry: its number and the hash of its line (0 and [`GENESIS`] before
/// the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    pub seq: u64,
    pub hash: String,
}

impl Tip {
    pub fn genesis() -> Tip {
        Tip {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// One file of the chain: a numbered segment, or the current file (`number: None`, last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub number: Option<u64>,
    pub path: PathBuf,
}

pub(super) fn segment_name(number: u64) -> String {
    format!("audit.{number:06}.jsonl")
}

/// The chain's files in order: numbered segments by number, then the current file.
pub fn segments(dir: &Path) -> Result<Vec<Segment>, AuditError> {
    let mut numbered = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(number) = name
            .strip_prefix("audit.")
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            numbered.push(Segment {
                number: Some(number),
                path: entry.path(),
            });
        }
    }
    numbered.sort_by_key(|s| s.number);
    let current = dir.join(CURRENT);
    if current.exists() {
        numbered.push(Segment {
            number: None,
            path: current,
        });
    }
    Ok(numbered)
}

/// The last complete line of a file (without its newline) and where complete lines end
/// (a write cut short leaves bytes after that).
fn last_line(path: &Path) -> Result<(Option<Vec<u8>>, u64), AuditError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("stat", path))?.len();
    let start = len.saturating_sub(MAX_LINE_BYTES as u64 + 1);
    file.seek(SeekFrom::Start(start))
        .map_err(io_error("read", path))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(io_error("read", path))?;
    let Some(last_newline) = tail.iter().rposition(|&b| b == b'\n') else {
        return Ok((None, if start == 0 { 0 } else { len }));
    };
    let complete_end = start + last_newline as u64 + 1;
    let line_start = tail[..last_newline]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if line_start == 0 && start > 0 {
        return Err(AuditError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("its last entry is longer than {MAX_LINE_BYTES} bytes"),
        });
    }
    Ok((Some(tail[line_start..last_newline].to_vec()), complete_end))
}

fn tip_of_line(path: &Path, line: &[u8]) -> Result<Tip, AuditError> {
    let record: Record = serde_json::from_slice(line).map_err(|e| AuditError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("its last line is not an audit entry ({e}); run `lore audit verify`"),
    })?;
    Ok(Tip {
        seq: record.seq,
        hash: line_hash(line),
    })
}

/// The chain's newest entry, from the newest file that holds one.
pub fn tip(dir: &Path) -> Result<Tip, AuditError> {
    for segment in segments(dir)?.iter().rev() {
        if let (Some(line), _) = last_line(&segment.path)? {
            return tip_of_line(&segment.path, &line);
        }
    }
    Ok(Tip::genesis())
}

/// The last `n` lines of the chain, oldest first (reading back through segments).
pub fn read_tail(dir: &Path, n: usize) -> Result<Vec<String>, AuditError> {
    let mut lines: Vec<String> = Vec::new();
    for segment in segments(dir)?.iter().rev() {
        if lines.len() >= n {
            break;
        }
        let text = std::fs::read(&segment.path).map_err(io_error("read", &segment.path))?;
        let text = String::from_utf8_lossy(&text);
        let mut these: Vec<String> = text.lines().map(str::to_string).collect();
        let keep = these.len().saturating_sub(n - lines.len());
        these.drain(..keep);
        these.append(&mut lines);
        lines = these;
    }
    Ok(lines)
}

/// Creates `path` (0600 whatever the umask) or opens it for appending, tightening its mode.
fn open_private(path: &Path, append: bool) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("open", path))?;
    let mode = file.metadata().map_err(io_error("stat", path))?.mode() & 0o777;
    if mode != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("set the mode of", path))?;
    }
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))
}

/// What this process last left in `audit.jsonl`: when the file is still that one (same
/// inode, same length) nobody else wrote since and its tip need not be read again.
struct Known {
    inode: u64,
    len: u64,
    tip: Tip,
}

/// Appends to the chain; one per process (the writer thread owns it).
pub(super) struct Appender {
    dir: PathBuf,
    options: AuditOptions,
    lock: File,
    known: Option<Known>,
}

impl Appender {
    pub(super) fn open(dir: &Path, options: AuditOptions) -> Result<Appender, AuditError> {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_error("set the mode of", dir))?;
        let lock = open_private(&dir.join(LOCK), false)?;
        let appender = Appender {
            dir: dir.to_path_buf(),
            options,
            lock,
            known: None,
        };
        // A log this process cannot read is an error at start-up, not at the first entry.
        appender.locked(|| tip(dir).map(drop))?;
        Ok(appender)
    }

    fn locked<T>(&self, work: impl FnOnce() -> Result<T, AuditError>) -> Result<T, AuditError> {
        let lock_path = self.dir.join(LOCK);
        self.lock.lock().map_err(io_error("lock", &lock_path))?;
        let result = work();
        let _ = self.lock.unlock();
        result
    }

    /// Appends `entries` in order, rotating when the current file would pass the limit;
    /// the file is fsynced, then the head updated, before the lock is released.
    pub(super) fn append(&mut self, entries: Vec<AuditEntry>) -> Result<(), AuditError> {
        let lock_path = self.dir.join(LOCK);
        self.lock.lock().map_err(io_error("lock", &lock_path))?;
        let result = self.append_locked(entries);
        if result.is_err() {
            // Read the tip again next time rather than trust a half-done batch.
            self.known = None;
        }
        let _ = self.lock.unlock();
        result
    }

    fn append_locked(&mut self, entries: Vec<AuditEntry>) -> Result<(), AuditError> {
        let current = self.dir.join(CURRENT);
        let mut tip = self.current_tip(&current)?;
        let mut file = open_private(&current, true)?;
        let mut len = file.metadata().map_err(io_error("stat", &current))?.len();
        let mode: QuestionMode = self.options.question;
        for entry in entries {
            let record = Record::new(entry, mode, tip.seq + 1, tip.hash.clone());
            let line = serde_json::to_string(&record).map_err(|e| AuditError::Corrupt {
                path: current.clone(),
                reason: format!("cannot serialise an entry: {e}"),
            })?;
            let bytes = line.len() as u64 + 1;
            if len > 0 && len + bytes > self.options.max_bytes {
                file.sync_data().map_err(io_error("sync", &current))?;
                drop(file);
                self.rotate(&current)?;
                file = open_private(&current, true)?;
                len = 0;
            }
            let mut with_newline = line.into_bytes();
            with_newline.push(b'\n');
            file.write_all(&with_newline)
                .map_err(io_error("append to", &current))?;
            len += bytes;
            tip = Tip {
                seq: record.seq,
                hash: line_hash(&with_newline[..with_newline.len() - 1]),
            };
        }
        file.sync_data().map_err(io_error("sync", &current))?;
        let inode = file.metadata().map_err(io_error("stat", &current))?.ino();
        self.write_head(&tip)?;
        self.known = Some(Known { inode, len, tip });
        Ok(())
    }

    /// The tip to chain to: remembered when `audit.jsonl` is as this process left it, else
    /// read from the files (another process wrote or rotated), after cutting off a torn
    /// final line that an interrupted write left (it was never acknowledged, and the head
    /// never counted it).
    fn current_tip(&mut self, current: &Path) -> Result<Tip, AuditError> {
        if let (Some(known), Ok(meta)) = (&self.known, std::fs::metadata(current)) {
            if meta.ino() == known.inode && meta.len() == known.len {
                return Ok(known.tip.clone());
            }
        }
        if current.exists() {
            let (_, complete_end) = last_line(current)?;
            let len = std::fs::metadata(current)
                .map_err(io_error("stat", current))?
                .len();
            if complete_end < len {
                tracing::warn!(
                    path = %current.display(),
                    "cutting {} bytes of an interrupted audit write",
                    len - complete_end
                );
                let file = open_private(current, false)?;
                file.set_len(complete_end)
                    .map_err(io_error("truncate", current))?;
                file.sync_data().map_err(io_error("sync", current))?;
            }
        }
        tip(&self.dir)
    }

    /// `audit.jsonl` becomes the next numbered segment.
    fn rotate(&self, current: &Path) -> Result<(), AuditError> {
        let next = segments(&self.dir)?
            .iter()
            .filter_map(|s| s.number)
            .max()
            .unwrap_or(0)
            + 1;
        let target = self.dir.join(segment_name(next));
        std::fs::rename(current, &target).map_err(io_error("rotate", current))?;
        sync_dir(&self.dir)
    }

    fn write_head(&self, tip: &Tip) -> Result<(), AuditError> {
        let head = self.dir.join(HEAD);
        let temporary = self.dir.join(format!("{HEAD}.tmp"));
        let mut text = serde_json::to_string(tip).unwrap_or_default();
        text.push('\n');
        let mut file = open_private(&temporary, false)?;
        file.set_len(0).map_err(io_error("write", &temporary))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(io_error("write", &temporary))?;
        std::fs::rename(&temporary, &head).map_err(io_error("replace", &head))?;
        sync_dir(&self.dir)
    }
}

/// The head as recorded, if there is one.
pub(super) fn read_head(dir: &Path) -> Result<Option<Tip>, AuditError> {
    let path = dir.join(HEAD);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditError::Corrupt {
                path,
                reason: format!("not a head record: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io {
            action: "read",
            path,
            source,
        }),
    }
}
