//! Filesystem helpers shared by the upload store and the watch journal.

use std::io::Write;
use std::path::Path;

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

fn write_replacing(path: &Path, bytes: &[u8], private: bool) -> Result<(), WriteError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let temp = dir.join(format!(".{name}.part"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        // A leftover temporary could carry wider permissions: start from a fresh file.
        let _ = std::fs::remove_file(&temp);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(&temp).map_err(failed_to("write", &temp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(failed_to("write", &temp))?;
    std::fs::rename(&temp, path).map_err(failed_to("move into place", path))?;
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
}
