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

/// The Python venv scripts/install-test-deps fills (llama-cpp-python's server, the openai
/// client, Playwright): `LORE_LLAMA_VENV`, else ~/.cache/lore-llama-venv.
pub fn python_venv() -> PathBuf {
    std::env::var_os("LORE_LLAMA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lore-llama-venv")
        })
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

    /// Starts a long-running command (`lore watch`) with its output discarded.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lore")
    }

    /// Starts the command and SIGKILLs it after `delay_ms` (if still running).
    pub fn kill_after(&self, args: &[&str], delay_ms: u64) {
        let mut child = self.spawn(args);
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
        .expect("ghostscript (gs) is needed: scripts/install-test-deps installs it");
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

/// A running `lore serve` on a free loopback port; killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub url: String,
}

impl Lore {
    /// Starts `lore serve --bind 127.0.0.1:0 <extra>` and waits until it listens.
    pub fn serve(&self, extra: &[&str]) -> Server {
        self.serve_with_log(extra, Stdio::inherit())
    }

    /// [`Lore::serve`] with the server's log (stderr) going to `log`.
    pub fn serve_with_log(&self, extra: &[&str], log: impl Into<Stdio>) -> Server {
        use std::io::BufRead;
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn lore serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the serving line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, url }
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server now, in KiB (Linux: /proc/<pid>/status VmRSS).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would, and waits for it.
    pub fn kill_dash_nine(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client for the tests: one request per connection, the whole
/// response read (status, headers, body). Good enough for JSON, SSE and multipart.
pub fn http(method: &str, url: &str, content_type: Option<&str>, body: &[u8]) -> HttpResponse {
    http_with(method, url, content_type, body, &[])
}

/// [`http`] with extra request headers (`Authorization`, `Cookie`, …).
pub fn http_with(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
    headers: &[(&str, &str)],
) -> HttpResponse {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    // A server may answer (413) and close before reading a large body: keep its answer.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    HttpResponse::parse(&raw)
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> HttpResponse {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            body = dechunk(&body);
        }
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

/// A loopback connection whose receive buffer is as small as the kernel allows (about
/// 4 KiB), for a client that sends a request and then never reads: the server's writes
/// block after a few KiB instead of filling a large buffer.
pub fn connect_with_small_receive_buffer(address: &str) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let address: std::net::SocketAddrV4 = address.parse().expect("an IPv4 address");
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it to
    // TcpStream; every result is checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 4096;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(set, 0, "setsockopt SO_RCVBUF");
        let sockaddr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: address.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*address.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let connected = libc::connect(
            fd,
            (&sockaddr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(connected, 0, "connect");
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// A multipart/form-data body with one file part per `(name, bytes)`: (content type, body).
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "lore-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The `(event, data)` pairs of a text/event-stream body.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = "message".to_string();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            (!data.is_empty()).then(|| {
                let value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("bad SSE data ({e}): {data}"));
                (event, value)
            })
        })
        .collect()
}
