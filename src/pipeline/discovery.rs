//! Discovery: which files an ingestion takes. Expands the paths given into [`Candidate`]s
//! (where a file is, and the path and collection it is indexed under), walking folders
//! recursively with links followed while they stay inside the folder, loops reported, and passing over hidden and
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
    /// The canonical folder the file must resolve inside (the folder walked or watched,
    /// the upload area): a link leading out of it is not followed. `None` for a file named
    /// explicitly, which is taken wherever it leads.
    pub root: Option<PathBuf>,
}

/// What [`discover`] found: the files to ingest, and the paths passed over or failed, each
/// with its reason.
#[derive(Debug, Default)]
pub struct Discovered {
    pub candidates: Vec<Candidate>,
    /// Links leading out of the folder they were found in (not followed).
    pub skipped: Vec<FileIssue>,
    /// Paths that cannot be opened, unreadable entries, link loops.
    pub failed: Vec<FileIssue>,
}

/// Expands the command-line paths into files. Folders are walked recursively (following
/// links that stay inside the folder, with loops reported), hidden entries inside them are
/// passed over.
pub fn discover(paths: &[PathBuf], collection: &str) -> Discovered {
    let mut found = Discovered::default();
    for root in paths {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                found.failed.push(FileIssue {
                    path: display(root),
                    reason: format!("cannot open: {e}"),
                });
                continue;
            }
        };
        if !meta.is_dir() {
            found.candidates.push(Candidate {
                fs_path: root.clone(),
                doc_path: clean_path(root),
                collection: collection.to_string(),
                root: None,
            });
            continue;
        }
        let canonical_root = std::fs::canonicalize(root).ok();
        for entry in walk(root) {
            match entry {
                Walked::File(path) => {
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    found.candidates.push(Candidate {
                        doc_path: clean_path(rel),
                        fs_path: path.clone(),
                        collection: collection.to_string(),
                        root: canonical_root.clone(),
                    });
                }
                Walked::Outside { path, target } => found.skipped.push(FileIssue {
                    reason: outside_reason(&target, root),
                    path: display(&path),
                }),
                Walked::Failed(err) => {
                    let path = err.path().map(display).unwrap_or_else(|| display(root));
                    let reason = match err.loop_ancestor() {
                        Some(a) => format!("symlink loop back to {}", a.display()),
                        None => err
                            .io_error()
                            .map_or_else(|| err.to_string(), |io| io.to_string()),
                    };
                    found.failed.push(FileIssue { path, reason });
                }
            }
        }
    }
    found
}

/// Why a link is not followed: where it leads and which folder it leaves.
pub fn outside_reason(target: &Path, root: &Path) -> String {
    format!(
        "not followed: a link to {}, outside {}",
        target.display(),
        root.display()
    )
}

/// One entry of a folder [`walk`].
#[derive(Debug)]
pub enum Walked {
    File(PathBuf),
    /// A link (to a file or a folder) resolving outside the folder walked: not followed.
    Outside {
        path: PathBuf,
        target: PathBuf,
    },
    /// An unreadable entry or a link loop.
    Failed(walkdir::Error),
}

/// A recursive walk of `root` as ingestion sees folders: links followed while they stay
/// inside `root` (walkdir reports loops; a link out of it is reported, and a linked folder
/// outside is not entered), entries in file-name order, ignored names
/// ([`is_ignored_name`]) passed over. Only files and links out are yielded.
pub fn walk(root: &Path) -> impl Iterator<Item = Walked> {
    let canonical_root = std::fs::canonicalize(root).ok();
    let mut entries = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_ignored_name(&e.file_name().to_string_lossy()));
    std::iter::from_fn(move || loop {
        let entry = match entries.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Walked::Failed(e)),
        };
        // Every way out of the folder passes through a link: only links need resolving.
        if let (true, Some(inside)) = (entry.path_is_symlink(), &canonical_root) {
            if let Ok(target) = std::fs::canonicalize(entry.path()) {
                if !target.starts_with(inside) {
                    if entry.file_type().is_dir() {
                        entries.skip_current_dir();
                    }
                    return Some(Walked::Outside {
                        path: entry.into_path(),
                        target,
                    });
                }
            }
        }
        if entry.file_type().is_file() {
            return Some(Walked::File(entry.into_path()));
        }
    })
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
        let found = discover(&[root.to_path_buf()], "default");
        let paths: Vec<&str> = found
            .candidates
            .iter()
            .map(|c| c.doc_path.as_str())
            .collect();
        assert_eq!(paths, vec!["sub/a.md"]);
        #[cfg(unix)]
        assert!(
            found
                .failed
                .iter()
                .any(|f| f.reason.contains("symlink loop")),
            "{:?}",
            found.failed
        );
    }

    /// Links that stay inside the folder are followed; a link to a file or a folder outside
    /// it is reported as not followed, and the outside folder is not entered.
    #[cfg(unix)]
    #[test]
    fn links_out_of_the_folder_are_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.md"), "# Secret").expect("write");
        std::fs::create_dir(outside.path().join("more")).expect("mkdir");
        std::fs::write(outside.path().join("more/other.md"), "# Other").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir(root.join("real")).expect("mkdir");
        std::fs::write(root.join("real/kept.md"), "# Kept").expect("write");
        let link = std::os::unix::fs::symlink;
        link(root.join("real/kept.md"), root.join("alias.md")).expect("symlink");
        link(root.join("real"), root.join("mirror")).expect("symlink");
        link(outside.path().join("secret.md"), root.join("os-release")).expect("symlink");
        link(outside.path().join("more"), root.join("elsewhere")).expect("symlink");

        let found = discover(&[root.to_path_buf()], "default");
        let paths: Vec<&str> = found
            .candidates
            .iter()
            .map(|c| c.doc_path.as_str())
            .collect();
        assert_eq!(paths, vec!["alias.md", "mirror/kept.md", "real/kept.md"]);
        let skipped: Vec<(String, &str)> = found
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path.rsplit('/').next().unwrap_or("").to_string(),
                    s.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0].0, "elsewhere");
        assert_eq!(skipped[1].0, "os-release");
        for (_, reason) in &skipped {
            assert!(reason.starts_with("not followed: a link to "), "{reason}");
        }
        assert!(found.failed.is_empty(), "{:?}", found.failed);
    }
}
