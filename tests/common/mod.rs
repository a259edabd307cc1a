//! Helpers shared by the end-to-end tests: a `Lore` runner with its own data directory,
//! scratch corpora copied from the dev corpus, and bad-input fixtures made by real tools.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The models directory; the real models must be there (CI fetches them).
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("LORE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models"));
    assert!(
        dir.join("all-minilm-l6-v2/model.safetensors").is_file(),
        "embedding model missing in {}: run scripts/fetch-models embed",
        dir.display()
    );
    dir
}

/// The development corpus shipped beside the repository (../shared/eval-dev/corpus).
pub fn dev_corpus() -> PathBuf {
    let dir = repo_root().join("../shared/eval-dev/corpus");
    assert!(dir.is_dir(), "dev corpus missing at {}", dir.display());
    dir
}

/// Runs the real binary against a private data directory.
pub struct Lore {
    data: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Lore {
    pub fn new() -> Lore {
        Lore {
            data: tempfile::tempdir().expect("tempdir"),
            envs: Vec::new(),
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Lore {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lore"));
        cmd.args(args)
            .env("LORE_DATA_DIR", self.data.path())
            .env("LORE_MODELS_DIR", models_dir())
            .env_remove("LORE_CONFIG")
            .current_dir(self.data.path());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to completion: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().expect("run lore");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(
            code, 0,
            "lore {args:?} failed ({code}):\n{stderr}\n{stdout}"
        );
        stdout
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_ne!(code, 0, "lore {args:?} should have failed:\n{stdout}");
        stderr
    }

    pub fn ingest_json(&self, paths: &[&Path]) -> Value {
        let mut args = vec!["ingest".to_string(), "--json".to_string()];
        args.extend(paths.iter().map(|p| p.to_string_lossy().into_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = self.run(&refs);
        assert!(code == 0 || code == 2, "ingest crashed ({code}): {stderr}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("bad summary ({e}): {stdout}\n{stderr}"))
    }

    /// Starts the command and SIGKILLs it after `delay_ms` (if still running).
    pub fn kill_after(&self, args: &[&str], delay_ms: u64) {
        let mut child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
    }
}

/// A scratch copy of some dev-corpus documents, keeping their relative paths.
pub struct TempCorpus {
    dir: tempfile::TempDir,
}

impl TempCorpus {
    pub fn from_dev_corpus(docs: &[&str]) -> TempCorpus {
        let src = dev_corpus();
        let dir = tempfile::tempdir().expect("tempdir");
        for d in docs {
            let to = dir.path().join(d);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(src.join(d), &to).unwrap_or_else(|e| panic!("copy {d}: {e}"));
        }
        TempCorpus { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Deterministic bytes that are not text (xorshift).
pub fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Re-writes a real PDF with a user password, with ghostscript.
pub fn make_encrypted_pdf(src: &Path, dst: &Path) {
    let status = Command::new("gs")
        .args([
            "-q",
            "-dNOPAUSE",
            "-dBATCH",
            "-sDEVICE=pdfwrite",
            "-sOwnerPassword=owner",
            "-sUserPassword=secret",
        ])
        .arg(format!("-sOutputFile={}", dst.display()))
        .arg(src)
        .status()
        .expect("ghostscript (gs) is needed: scripts/install-deps installs it");
    assert!(status.success(), "gs failed to encrypt {}", src.display());
}

/// A DOCX whose document.xml inflates to 1 GiB of spaces, made with Python's zipfile.
pub fn make_zip_bomb_docx(dst: &Path) {
    let script = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    with z.open("word/document.xml", "w", force_zip64=True) as f:
        f.write(b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>')
        block = b" " * (1 << 20)
        for _ in range(1024):
            f.write(block)
        f.write(b"</w:t></w:r></w:p></w:body></w:document>")
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dst)
        .status()
        .expect("python3");
    assert!(status.success(), "python3 failed to build the zip bomb");
}
