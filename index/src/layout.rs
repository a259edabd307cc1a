//! Owns the index directory itself: the file names, the format/model meta file,
//! the writer lock, and the small file-system primitives the commit protocol relies on
//! (write-temp + fsync + rename, directory fsync, disk usage).
//!
//! ```text
//! <dir>/lore-index.json    format version, embedding model id, dimension
//! <dir>/LOCK               advisory exclusive lock, held while a writer (`Index::open`) is
//!                          open; read-only opens (`Index::open_read_only`) never touch it
//! <dir>/text/              tantivy index: the source of truth (records, chunks, vectors)
//! <dir>/vectors/           HNSW dump (derived cache) + manifest.json
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use crate::{Error, IndexConfig, Result};

/// On-disk format this build writes and understands. Bump on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

pub const META_FILE: &str = "lore-index.json";
pub const LOCK_FILE: &str = "LOCK";
pub const TEXT_DIR: &str = "text";
pub const VECTOR_DIR: &str = "vectors";

/// Contents of `lore-index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format_version: u32,
    pub model_id: String,
    pub dim: usize,
    pub created_at: i64,
}

pub fn text_dir(root: &Path) -> PathBuf {
    root.join(TEXT_DIR)
}

pub fn vector_dir(root: &Path) -> PathBuf {
    root.join(VECTOR_DIR)
}

/// An exclusive advisory lock on `<dir>/LOCK`; released when dropped (or when the process dies,
/// so a crashed writer never leaves a stale lock behind).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(root: &Path) -> Result<DirLock> {
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock_exclusive() {
            Ok(true) => Ok(DirLock { _file: file }),
            Ok(false) => Err(Error::Locked(root.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(Error::Locked(root.to_path_buf()))
            }
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// Reads the meta file, or writes it for a new index. Checks format version and model identity.
pub fn check_or_create_meta(root: &Path, config: &IndexConfig, now: i64) -> Result<IndexMeta> {
    if let Some(meta) = read_meta(root, config)? {
        return Ok(meta);
    }
    ensure_only_our_files(root)?;
    let meta = IndexMeta {
        format_version: FORMAT_VERSION,
        model_id: config.model_id.clone(),
        dim: config.dim,
        created_at: now,
    };
    let path = root.join(META_FILE);
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    atomic_write(&path, &json)?;
    Ok(meta)
}

/// Reads and checks the meta file of an existing index without creating or changing anything:
/// [`Error::NoIndex`] when there is none (missing or empty directory, or only the leftovers of
/// an interrupted creation), [`Error::NotAnIndex`] when the directory holds unrelated files.
pub fn require_meta(root: &Path, config: &IndexConfig) -> Result<IndexMeta> {
    match read_meta(root, config)? {
        Some(meta) => Ok(meta),
        None => {
            if root.is_dir() {
                ensure_only_our_files(root)?;
            }
            Err(Error::NoIndex(root.to_path_buf()))
        }
    }
}

/// Reads the meta file and checks format version and model identity; `Ok(None)` when there
/// is no meta file (or no directory).
fn read_meta(root: &Path, config: &IndexConfig) -> Result<Option<IndexMeta>> {
    let path = root.join(META_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let meta: IndexMeta = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                reason: format!("unreadable meta file: {e}"),
            })?;
            if meta.format_version > FORMAT_VERSION {
                return Err(Error::UnsupportedFormat {
                    found: meta.format_version,
                    supported: FORMAT_VERSION,
                });
            }
            if meta.model_id != config.model_id || meta.dim != config.dim {
                return Err(Error::ModelMismatch {
                    index_model: meta.model_id,
                    index_dim: meta.dim,
                    requested_model: config.model_id.clone(),
                    requested_dim: config.dim,
                });
            }
            Ok(Some(meta))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Refuses to turn a directory holding unrelated files into an index. Our own names are
/// tolerated: a crash while creating an index can leave them without the meta file.
fn ensure_only_our_files(root: &Path) -> Result<()> {
    let entries = fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let name = entry.file_name();
        let known = [LOCK_FILE, TEXT_DIR, VECTOR_DIR];
        let is_ours = name
            .to_str()
            .is_some_and(|n| known.contains(&n) || n.starts_with(META_FILE));
        if !is_ours {
            return Err(Error::NotAnIndex {
                path: root.to_path_buf(),
                reason: format!("it has no {META_FILE} but contains {:?}", entry.file_name()),
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` so that readers see either the old or the new content, never a
/// torn file: write a sibling temp file, fsync it, rename over, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| Error::io(path, std::io::Error::other("path has no parent")))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = parent.join(format!("{file_name}.tmp-{}", std::process::id()));
    {
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(parent)
}

/// Makes a rename or file creation inside `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| Error::io(dir, e))?;
    handle.sync_all().map_err(|e| Error::io(dir, e))
}

/// fsyncs a file that was written by someone else (hnsw_rs's dumper does not).
pub fn sync_file(path: &Path) -> Result<()> {
    let handle = File::open(path).map_err(|e| Error::io(path, e))?;
    handle.sync_all().map_err(|e| Error::io(path, e))
}

/// Total size of regular files below `dir`.
pub fn disk_usage(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            // Tantivy deletes merged segment files concurrently; a vanished entry is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&current, e)),
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(model: &str, dim: usize) -> IndexConfig {
        IndexConfig {
            dim,
            model_id: model.to_string(),
            ..IndexConfig::default()
        }
    }

    #[test]
    fn meta_is_created_then_checked() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let created = check_or_create_meta(dir.path(), &config("m1", 8), 7)?;
        assert_eq!(created.format_version, FORMAT_VERSION);
        let reopened = check_or_create_meta(dir.path(), &config("m1", 8), 99)?;
        assert_eq!(reopened.created_at, 7);
        assert!(matches!(
            check_or_create_meta(dir.path(), &config("m2", 8), 0),
            Err(Error::ModelMismatch { .. })
        ));
        assert!(matches!(
            check_or_create_meta(dir.path(), &config("m1", 16), 0),
            Err(Error::ModelMismatch { .. })
        ));
        Ok(())
    }

    #[test]
    fn future_format_is_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let meta = IndexMeta {
            format_version: FORMAT_VERSION + 1,
            model_id: "m".into(),
            dim: 4,
            created_at: 0,
        };
        let json = serde_json::to_vec(&meta).unwrap_or_default();
        atomic_write(&dir.path().join(META_FILE), &json)?;
        let err = check_or_create_meta(dir.path(), &config("m", 4), 0);
        assert!(
            matches!(err, Err(Error::UnsupportedFormat { found, .. }) if found == FORMAT_VERSION + 1)
        );
        Ok(())
    }

    #[test]
    fn foreign_directory_is_not_taken_over() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        fs::write(dir.path().join("notes.txt"), b"mine").map_err(|e| Error::io(dir.path(), e))?;
        assert!(matches!(
            check_or_create_meta(dir.path(), &config("m", 4), 0),
            Err(Error::NotAnIndex { .. })
        ));
        Ok(())
    }

    #[test]
    fn require_meta_never_creates_anything() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let missing = dir.path().join("missing");
        assert!(matches!(
            require_meta(&missing, &config("m", 4)),
            Err(Error::NoIndex(p)) if p == missing
        ));
        assert!(!missing.exists());
        assert!(matches!(
            require_meta(dir.path(), &config("m", 4)),
            Err(Error::NoIndex(_))
        ));
        let entries = || {
            fs::read_dir(dir.path())
                .map(|d| d.count())
                .unwrap_or(usize::MAX)
        };
        assert_eq!(entries(), 0);
        fs::write(dir.path().join("notes.txt"), b"mine").map_err(|e| Error::io(dir.path(), e))?;
        assert!(matches!(
            require_meta(dir.path(), &config("m", 4)),
            Err(Error::NotAnIndex { .. })
        ));
        fs::remove_file(dir.path().join("notes.txt")).map_err(|e| Error::io(dir.path(), e))?;
        check_or_create_meta(dir.path(), &config("m", 4), 5)?;
        assert_eq!(require_meta(dir.path(), &config("m", 4))?.created_at, 5);
        assert!(matches!(
            require_meta(dir.path(), &config("m", 8)),
            Err(Error::ModelMismatch { .. })
        ));
        Ok(())
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let first = DirLock::acquire(dir.path())?;
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(Error::Locked(_))
        ));
        drop(first);
        DirLock::acquire(dir.path())?;
        Ok(())
    }
}
