//! Filesystem helpers shared by the upload store, the watch journal, ingestion and the
//! server: atomic replacement with unique temporaries, opening a file only when it
//! resolves inside a given folder, and keeping the data directory private.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file or folder that could not be created, written or moved into place.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct WriteError {
    action: &'static str,
    path: std::path::PathBuf,
    #[source]
    source: std::io::Error,
}

/// Turns an I/O error into a [`WriteError`] saying what was done (`"create"`, `"write"`)
/// to which path.
pub fn failed_to(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError {
        action,
        path,
        source,
    }
}

/// Replaces `path` with `bytes` atomically: readers (and a restart after a crash) see the
/// old file or the new one, never a torn mix. The temporary file is hidden (`.name.part`),
/// so folder walks and watches pass over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_replacing(path, bytes, false)
}

/// [`write_atomically`] for secrets: the file is created readable and writable by its
/// owner only (mode 0600 on Unix), never briefly wider.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_replacing(path, bytes, true)
}

/// Temporaries made by this process so far: with the process id, a name no other writer
/// (thread or process) uses at the same time.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// Longest part of the final name kept in a temporary's name (bytes): the temporary must fit
/// the file system's name limit (255 bytes) whatever the final name's length.
const TEMP_NAME_KEEP: usize = 96;

fn write_replacing(path: &Path, bytes: &[u8], private: bool) -> Result<(), WriteError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let name = truncate_bytes(&name, TEMP_NAME_KEEP);
    let mut options = std::fs::OpenOptions::new();
    // A fresh file every time: never another writer's temporary, never a leftover with wider
    // permissions.
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let (temp, mut file) = loop {
        let n = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.{}-{n}.part", std::process::id()));
        match options.open(&temp) {
            Ok(file) => break (temp, file),
            // Left behind by a process that had this id before (killed mid-write).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(failed_to("write", &temp)(e)),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(failed_to("write", &temp))
        .and_then(|()| std::fs::rename(&temp, path).map_err(failed_to("move into place", path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why a file could not be opened inside its folder.
#[derive(Debug, thiserror::Error)]
pub enum OpenWithinError {
    /// The path (through a link) leads out of the folder.
    #[error("resolves to {}, outside {}", target.display(), root.display())]
    Outside { target: PathBuf, root: PathBuf },
    #[error("not a regular file")]
    NotAFile,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens the regular file at `path` for reading only if it resolves inside one of `roots`
/// (canonical folders). The check is made on the file actually opened (its descriptor's
/// path, on Linux), so a link swapped in between the check and the read cannot lead out.
/// Opening never blocks (a FIFO put in the file's place is refused, not waited on).
pub fn open_within(path: &Path, roots: &[PathBuf]) -> Result<std::fs::File, OpenWithinError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOCTTY,
    );
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(OpenWithinError::NotAFile);
    }
    let real = real_path(&file, path)?;
    if roots.iter().any(|root| real.starts_with(root)) {
        Ok(file)
    } else {
        Err(OpenWithinError::Outside {
            target: real,
            root: roots.first().cloned().unwrap_or_default(),
        })
    }
}

/// Where an open file really is: its descriptor's path on Linux, else the path resolved.
fn real_path(file: &std::fs::File, path: &Path) -> std::io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            return Ok(real);
        }
    }
    let _ = file;
    std::fs::canonicalize(path)
}

/// Creates `dir` (and its parents) readable by its owner only (0700 on Unix).
pub fn create_private_dir(dir: &Path) -> Result<(), WriteError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed_to("create", dir))
}

/// Makes `data_dir` private to the account running Lore, whatever the umask it was
/// started with: the process's umask becomes 077, so every file and folder created from
/// now on (uploads, the index's tantivy segments and graph dumps, the journal, the audit
/// log) is 0600 or 0700; the directory itself is created 0700 and what an earlier run
/// left in it with wider modes is narrowed. Other local users then cannot read uploads or
/// the index. Links inside are not followed.
pub fn secure_data_dir(data_dir: &Path) -> Result<(), WriteError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // SAFETY: umask only changes this process's default mode for new files; it has no
        // memory-safety preconditions.
        unsafe { libc::umask(0o077) };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(failed_to("create", data_dir))?;
        for entry in walkdir::WalkDir::new(data_dir).follow_links(false) {
            let Ok(entry) = entry else { continue };
            if entry.path_is_symlink() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let mode = meta.permissions().mode();
            let wanted = if meta.is_dir() { 0o700 } else { mode & 0o700 };
            if mode & 0o777 != wanted {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(wanted))
                    .map_err(failed_to("restrict the permissions of", entry.path()))?;
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(data_dir).map_err(failed_to("create", data_dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        super::write_atomically(&path, b"one").expect("write");
        super::write_atomically(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    /// Writers of one name at once each use their own temporary: every write lands whole,
    /// the last one wins, nothing is left behind. A very long name still fits.
    #[test]
    fn concurrent_writers_of_one_name_never_share_a_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("{}.md", "é".repeat(120));
        let path = dir.path().join(&name);
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let body = vec![b'a' + i; 256 * 1024];
                    for _ in 0..5 {
                        super::write_atomically(&path, &body).expect("write");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let written = std::fs::read(&path).expect("read");
        assert_eq!(written.len(), 256 * 1024);
        assert!(written.iter().all(|b| *b == written[0]), "a torn mix");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(name)]);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(super::truncate_bytes("abc", 5), "abc");
        assert_eq!(super::truncate_bytes("ééé", 5), "éé");
        assert_eq!(super::truncate_bytes("ééé", 1), "");
    }

    #[cfg(unix)]
    #[test]
    fn only_files_resolving_inside_the_folder_open() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "x").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::write(root.join("kept.md"), "x").expect("write");
        std::os::unix::fs::symlink(root.join("kept.md"), root.join("alias.md")).expect("link");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("os-release"))
            .expect("link");
        let roots = [root.clone()];
        assert!(super::open_within(&root.join("kept.md"), &roots).is_ok());
        assert!(super::open_within(&root.join("alias.md"), &roots).is_ok());
        let refused = super::open_within(&root.join("os-release"), &roots);
        assert!(
            matches!(refused, Err(super::OpenWithinError::Outside { .. })),
            "{refused:?}"
        );
        assert!(matches!(
            super::open_within(&root, &roots),
            Err(super::OpenWithinError::NotAFile)
        ));
    }
}
