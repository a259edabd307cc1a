//! `lore audit verify` and `lore audit tail`: check the audit log's hash chain, and read
//! its newest entries (optionally following new ones as they are written).

use crate::audit::{self, Record, VerifyError};
use crate::config::Config;
use anyhow::{Context, Result};
use std::io::{BufRead, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no entry was edited, deleted, inserted or reordered, in any segment.
    ///
    /// Exit status: 0 when the chain holds (a summary line with the newest entry's hash:
    /// keep it elsewhere to pin the log up to it), 1 naming the first bad entry and why.
    #[command(verbatim_doc_comment)]
    Verify,
    /// Print the newest entries, oldest first.
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Keep printing entries as they are written (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,
    /// Print the stored JSON lines as they are.
    #[arg(long)]
    pub json: bool,
}

/// `lore audit ...`.
pub fn run(config: &Config, args: &Args) -> Result<i32> {
    let dir = config.audit_dir();
    match &args.command {
        AuditCommand::Verify => verify(&dir),
        AuditCommand::Tail(tail) => self::tail(&dir, tail),
    }
}

fn verify(dir: &Path) -> Result<i32> {
    match audit::verify(dir) {
        Ok(v) if v.entries == 0 => {
            println!("audit log {}: no entries yet", dir.display());
            Ok(0)
        }
        Ok(v) => {
            println!(
                "audit log {}: OK, {} entries in {} file{}, newest entry {} {}",
                dir.display(),
                v.entries,
                v.files,
                if v.files == 1 { "" } else { "s" },
                v.tip.seq,
                v.tip.hash
            );
            if v.beyond_head > 0 {
                println!(
                    "note: {} entries after the recorded head (a write was interrupted before \
                     the head was updated; the next write brings it up to date)",
                    v.beyond_head
                );
            }
            Ok(0)
        }
        Err(e @ VerifyError::Broken { .. }) => {
            eprintln!("audit log {}: BROKEN: {e}", dir.display());
            Ok(1)
        }
        Err(VerifyError::Read(e)) => Err(e.into()),
    }
}

fn tail(dir: &Path, args: &TailArgs) -> Result<i32> {
    if !dir.exists() {
        anyhow::bail!(
            "no audit log in {}: entries are written by `lore serve` and `lore ask`",
            dir.display()
        );
    }
    let mut out = std::io::stdout().lock();
    for line in audit::read_tail(dir, args.lines)? {
        print_line(&mut out, &line, args.json)?;
    }
    out.flush()?;
    if args.follow {
        follow(dir, &mut out, args.json)?;
    }
    Ok(0)
}

/// Polls `audit.jsonl` for new lines; a rotation (a new file under that name) is read from
/// its start.
fn follow(dir: &Path, out: &mut impl Write, json: bool) -> Result<()> {
    let path = dir.join("audit.jsonl");
    let open = |path: &Path| -> Option<(std::io::BufReader<std::fs::File>, u64)> {
        let file = std::fs::File::open(path).ok()?;
        let inode = file.metadata().ok()?.ino();
        Some((std::io::BufReader::new(file), inode))
    };
    let mut reader = open(&path);
    if let Some((r, _)) = reader.as_mut() {
        r.seek(std::io::SeekFrom::End(0))
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    let mut pending = String::new();
    loop {
        if let Some((r, _)) = reader.as_mut() {
            while r.read_line(&mut pending)? > 0 {
                if !pending.ends_with('\n') {
                    break; // a line being written: the rest comes next time
                }
                print_line(out, pending.trim_end(), json)?;
                pending.clear();
            }
            out.flush()?;
        }
        let rotated = match (&reader, std::fs::metadata(&path)) {
            (Some((_, inode)), Ok(meta)) => meta.ino() != *inode,
            (None, Ok(_)) => true,
            (_, Err(_)) => false,
        };
        if rotated {
            // Finish the old file first (a writer may have appended before rotating).
            if let Some((r, _)) = reader.as_mut() {
                while r.read_line(&mut pending)? > 0 {
                    print_line(out, pending.trim_end(), json)?;
                    pending.clear();
                }
            }
            reader = open(&path);
            pending.clear();
            continue;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn print_line(out: &mut impl Write, line: &str, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{line}")?;
        return Ok(());
    }
    match serde_json::from_str::<Record>(line) {
        Ok(r) => {
            let mut text = format!(
                "#{} {} {} {} {} {} {} ms",
                r.seq,
                r.time,
                r.user.as_deref().unwrap_or("-"),
                r.address.as_deref().unwrap_or("-"),
                r.route,
                r.outcome,
                r.latency_ms
            );
            if let Some(q) = &r.question {
                text.push_str(&format!(" {:?}", one_line(q, 120)));
            }
            if !r.documents.is_empty() {
                text.push_str(&format!(" docs: {}", r.documents.join(",")));
            }
            writeln!(out, "{text}")?;
        }
        Err(e) => writeln!(out, "(not an audit entry: {e}) {}", one_line(line, 120))?,
    }
    Ok(())
}

/// Whitespace folded and at most `max` characters, so one entry prints as one line.
fn one_line(text: &str, max: usize) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match folded.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &folded[..end]),
        None => folded,
    }
}
