//! Discovery: which files an ingestion takes. Expands the paths given into [`Candidate`]s
//! (where a file is, and the path and collection it is indexed under), walking folders
//! recursively with links followed and loops reported, and passing over hidden and
//! half-written files ([`is_ignored_name`]). Also the path cleaning that makes document
//! paths compare across platforms.

use super::FileIssue;
use std::path::{Component, Path, PathBuf};

/// A file found on disk and the identity it gets in the index.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub fs_path: PathBuf,
    /// The path as ingested: relative to the folder given, or as given for a file.
    pub doc_path: String,
    pub collection: String,
}

/// Expands the command-line paths into files. Folders are walked recursively (following
/// symlinks, with loops reported), hidden entries inside them are passed over.
pub fn discover(paths: &[PathBuf], collection: &str) -> (Vec<Candidate>, Vec<FileIssue>) {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for root in paths {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                failures.push(FileIssue {
                    path: display(root),
                    reason: format!("cannot open: {e}"),
                });
                continue;
            }
        };
        if !meta.is_dir() {
            found.push(Candidate {
                fs_path: root.clone(),
                doc_path: clean_path(root),
                collection: collection.to_string(),
            });
            continue;
        }
        for entry in walk(root) {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                    found.push(Candidate {
                        fs_path: e.path().to_path_buf(),
                        doc_path: clean_path(rel),
                        collection: collection.to_string(),
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    let path = err.path().map(display).unwrap_or_else(|| display(root));
                    let reason = match err.loop_ancestor() {
                        Some(a) => format!("symlink loop back to {}", a.display()),
                        None => err
                            .io_error()
                            .map_or_else(|| err.to_string(), |io| io.to_string()),
                    };
                    failures.push(FileIssue { path, reason });
                }
            }
        }
    }
    (found, failures)
}

/// A recursive walk of `root` as ingestion sees folders: links followed (walkdir reports
/// loops), entries in file-name order, ignored names ([`is_ignored_name`]) passed over.
pub fn walk(root: &Path) -> impl Iterator<Item = walkdir::Result<walkdir::DirEntry>> {
    walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_ignored_name(&e.file_name().to_string_lossy()))
}

/// Names a folder walk passes over: hidden files and folders (`.git`, LibreOffice's
/// `.~lock.*#`), and files still being written or left behind by editors and downloads
/// (`*.part`, `*.tmp`, `*.crdownload`, `*.swp`, `*~`, Office's `~$*` owner files). A file
/// named explicitly is always taken.
pub fn is_ignored_name(name: &str) -> bool {
    const PARTIAL_SUFFIXES: [&str; 6] = [".part", ".partial", ".tmp", ".crdownload", ".swp", "~"];
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with("~$")
        || PARTIAL_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// `a/./b`, `./a/b` → `a/b`; separators always `/` so paths compare across platforms.
pub fn clean_path(p: &Path) -> String {
    let parts: Vec<String> = p
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::RootDir => String::new(),
            other => other.as_os_str().to_string_lossy().into_owned(),
        })
        .collect();
    parts.join("/")
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_relative() {
        assert_eq!(clean_path(Path::new("./a/./b.pdf")), "a/b.pdf");
        assert_eq!(clean_path(Path::new("docs/x.md")), "docs/x.md");
    }

    #[test]
    fn temporary_and_hidden_names_are_ignored() {
        for name in [
            ".git",
            ".~lock.report.odt#",
            "~$report.docx",
            "report.pdf.part",
            "report.PDF.crdownload",
            "notes.md~",
            "x.tmp",
            ".notes.md.swp",
        ] {
            assert!(is_ignored_name(name), "{name}");
        }
        for name in [
            "report.pdf",
            "tmp-notes.md",
            "partial-results.txt",
            "a~b.md",
        ] {
            assert!(!is_ignored_name(name), "{name}");
        }
    }

    #[test]
    fn discovery_walks_folders_skips_hidden_and_reports_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/.git")).expect("mkdir");
        std::fs::write(root.join("sub/a.md"), "# A").expect("write");
        std::fs::write(root.join("sub/.git/config"), "x").expect("write");
        std::fs::write(root.join(".hidden.txt"), "x").expect("write");
        std::fs::write(root.join("sub/b.pdf.part"), "x").expect("write");
        std::fs::write(root.join("sub/~$c.docx"), "x").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("sub/loop")).expect("symlink");
        let (found, failures) = discover(&[root.to_path_buf()], "default");
        let paths: Vec<&str> = found.iter().map(|c| c.doc_path.as_str()).collect();
        assert_eq!(paths, vec!["sub/a.md"]);
        #[cfg(unix)]
        assert!(
            failures.iter().any(|f| f.reason.contains("symlink loop")),
            "{failures:?}"
        );
    }
}
