//! Following log files: glob patterns, rotation, truncation, and offsets that survive a
//! restart.
//!
//! Files are tracked by identity (device and inode), not by name, so a rotated file
//! (`app.log` renamed to `app.log.1` and a new `app.log` created) is read to its end through
//! the handle already open, and the new file is read from its start. A file that shrinks
//! below the read offset was truncated in place (`copytruncate`) and is read again from the
//! start. Only complete lines are handed out; the offset of a file counts only the bytes of
//! lines handed out, so a [`Checkpoint`] taken after the caller has processed the lines
//! resumes exactly after them: a restart neither loses nor repeats a line.
//!
//! Bounds: a line longer than `max_line` bytes is cut (and flagged); each poll reads at
//! most `max_bytes_per_poll` from each file; at most `max_files` files are followed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where reading of one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffset {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// The path it was last seen at.
    pub path: PathBuf,
    /// Bytes of the file handed out as complete lines.
    pub offset: u64,
}

/// The offsets of every followed file, to save and restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// One entry per file.
    pub files: Vec<FileOffset>,
}

/// A line read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The file it came from.
    pub path: PathBuf,
    /// Its text (invalid UTF-8 replaced), without the line end.
    pub text: String,
    /// The line was longer than the limit and was cut.
    pub truncated: bool,
    /// Device and inode of the file, and the offset of the line's first byte: together a
    /// stable identity of the line (a re-read after a crash gives the same one).
    pub origin: (u64, u64, u64),
}

/// Limits of a [`Tailer`].
#[derive(Debug, Clone, Copy)]
pub struct TailLimits {
    /// Longest line kept, in bytes.
    pub max_line: usize,
    /// Most bytes read from one file in one poll.
    pub max_bytes_per_poll: usize,
    /// Most files followed at once.
    pub max_files: usize,
}

impl Default for TailLimits {
    fn default() -> Self {
        TailLimits {
            max_line: 64 * 1024,
            max_bytes_per_poll: 8 << 20,
            max_files: 1024,
        }
    }
}

struct Followed {
    file: File,
    path: PathBuf,
    /// Offset of the first byte of `pending` in the file.
    offset: u64,
    /// Bytes read after the last complete line.
    pending: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    /// Seen under a matching path in the latest scan.
    present: bool,
}

/// Follows the files matching some patterns.
pub struct Tailer {
    patterns: Vec<PathBuf>,
    limits: TailLimits,
    files: HashMap<(u64, u64), Followed>,
    /// Offsets restored from a checkpoint, applied when the file is seen again.
    resume: HashMap<(u64, u64), u64>,
    /// Applies to the files found by the first poll only; later files are new.
    start_at_end: bool,
    /// Read buffer, kept between polls.
    buf: Vec<u8>,
}

/// `*` and `?` in a file name (not across `/`).
fn name_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            name_matches(&pattern[1..], name)
                || (!name.is_empty() && name_matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => name_matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => name_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The files matching a pattern whose last component may hold `*` and `?`.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.as_encoded_bytes();
    if !name.contains(&b'*') && !name.contains(&b'?') {
        return if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| name_matches(name, e.file_name().as_encoded_bytes()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

impl Tailer {
    /// Follows files matching `patterns` (a `*`/`?` glob in the file name). Files are read
    /// from their start; with `start_at_end`, the files already there at the first poll
    /// (and not in a restored checkpoint) are read from their end.
    pub fn new(patterns: Vec<PathBuf>, limits: TailLimits, start_at_end: bool) -> Tailer {
        Tailer {
            patterns,
            limits,
            files: HashMap::new(),
            resume: HashMap::new(),
            start_at_end,
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// Resumes from a checkpoint: files still there continue after their offset.
    pub fn restore(&mut self, checkpoint: &Checkpoint) {
        for f in &checkpoint.files {
            self.resume.insert((f.dev, f.ino), f.offset);
        }
    }

    /// The offsets of the lines handed out so far.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut files: Vec<FileOffset> = self
            .files
            .iter()
            .map(|(&(dev, ino), f)| FileOffset {
                dev,
                ino,
                path: f.path.clone(),
                offset: f.offset,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Checkpoint { files }
    }

    /// Files followed now.
    pub fn followed(&self) -> usize {
        self.files.len()
    }

    /// Reads every complete new line of every matching file.
    pub fn poll(&mut self) -> Vec<Line> {
        for f in self.files.values_mut() {
            f.present = false;
        }
        let paths: Vec<PathBuf> = self.patterns.iter().flat_map(|p| expand(p)).collect();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if let Some(f) = self.files.get_mut(&id) {
                f.present = true;
                f.path = path;
                if meta.len() < f.offset + f.pending.len() as u64 {
                    // Truncated in place: read again from the start.
                    f.offset = 0;
                    f.pending.clear();
                    f.skipping = false;
                    let _ = f.file.seek(SeekFrom::Start(0));
                }
                continue;
            }
            if self.files.len() >= self.limits.max_files {
                continue;
            }
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let mut offset = match self.resume.remove(&id) {
                Some(o) => o,
                None if self.start_at_end => meta.len(),
                None => 0,
            };
            if offset > meta.len() {
                offset = 0;
            }
            if file.seek(SeekFrom::Start(offset)).is_err() {
                continue;
            }
            self.files.insert(
                id,
                Followed {
                    file,
                    path,
                    offset,
                    pending: Vec::new(),
                    skipping: false,
                    present: true,
                },
            );
        }
        self.start_at_end = false;
        let mut lines = Vec::new();
        let limits = self.limits;
        let buf = &mut self.buf;
        self.files.retain(|&id, f| {
            let at_end = read_lines(id, f, &limits, buf, &mut lines);
            // A file renamed away or deleted is dropped once read to its end.
            f.present || !at_end
        });
        lines
    }
}

/// Reads what is new in one file; returns whether its end was reached.
fn read_lines(
    id: (u64, u64),
    f: &mut Followed,
    limits: &TailLimits,
    buf: &mut [u8],
    out: &mut Vec<Line>,
) -> bool {
    let mut budget = limits.max_bytes_per_poll;
    loop {
        if budget == 0 {
            return false;
        }
        let want = buf.len().min(budget);
        let n = match f.file.read(&mut buf[..want]) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        };
        budget -= n;
        let mut chunk = &buf[..n];
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(nl);
            let consumed = f.pending.len() + head.len() + 1;
            if f.skipping {
                f.skipping = false;
            } else {
                let mut bytes = std::mem::take(&mut f.pending);
                bytes.extend_from_slice(head);
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                let truncated = bytes.len() > limits.max_line;
                bytes.truncate(limits.max_line);
                out.push(Line {
                    path: f.path.clone(),
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    truncated,
                    origin: (id.0, id.1, f.offset),
                });
            }
            f.pending.clear();
            f.offset += consumed as u64;
            chunk = &rest[1..];
        }
        if f.skipping {
            f.offset += chunk.len() as u64;
        } else {
            f.pending.extend_from_slice(chunk);
            if f.pending.len() > limits.max_line {
                // Hand out the first max_line bytes now and skip to the line's end.
                let bytes = std::mem::take(&mut f.pending);
                out.push(Line {
                    path: f.path.clone(),
                    text: String::from_utf8_lossy(&bytes[..limits.max_line]).into_owned(),
                    truncated: true,
                    origin: (id.0, id.1, f.offset),
                });
                f.offset += bytes.len() as u64;
                f.skipping = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn follows_rotation_and_restarts_without_loss_or_duplication() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let pattern = dir.path().join("app.log*");
        append(&log, "one\ntwo\nthr");
        let mut t = Tailer::new(vec![pattern.clone()], TailLimits::default(), false);
        assert_eq!(texts(&t.poll()), ["one", "two"]);
        append(&log, "ee\n");
        assert_eq!(texts(&t.poll()), ["three"]);
        // Rotation: lines written to the old file after the rename are still read once.
        append(&log, "four\n");
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&dir.path().join("app.log.1"), "five\n");
        append(&log, "six\n");
        let mut got = texts(&t.poll())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        got.sort();
        assert_eq!(got, ["five", "four", "six"]);
        // Restart from a checkpoint: only what came after.
        let saved = serde_json::to_string(&t.checkpoint()).unwrap();
        append(&log, "seven\neig");
        drop(t);
        let mut t = Tailer::new(vec![pattern.clone()], TailLimits::default(), false);
        t.restore(&serde_json::from_str(&saved).unwrap());
        assert_eq!(texts(&t.poll()), ["seven"]);
        append(&log, "ht\n");
        assert_eq!(texts(&t.poll()), ["eight"]);
        // Deleted files are let go once read.
        std::fs::remove_file(dir.path().join("app.log.1")).unwrap();
        assert!(t.poll().is_empty());
        assert_eq!(t.followed(), 1);
    }

    #[test]
    fn truncation_garbage_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        append(&log, "a\nb\n");
        let limits = TailLimits {
            max_line: 8,
            ..TailLimits::default()
        };
        let mut t = Tailer::new(vec![log.clone()], limits, false);
        assert_eq!(t.poll().len(), 2);
        // copytruncate: the file starts over.
        std::fs::write(&log, "c\n").unwrap();
        assert_eq!(texts(&t.poll()), ["c"]);
        // Binary garbage and CRLF.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"\xff\x00\xfe\r\nok\r\n")
            .unwrap();
        let lines = t.poll();
        assert_eq!(lines[0].text, "\u{fffd}\u{0}\u{fffd}");
        assert_eq!(lines[1].text, "ok");
        // A line far over the limit: cut once, the rest skipped, the next line intact.
        append(&log, &"z".repeat(100_000));
        let lines = t.poll();
        assert_eq!(
            (lines.len(), lines[0].truncated, lines[0].text.len()),
            (1, true, 8)
        );
        append(&log, "zzz\nnext\n");
        assert_eq!(texts(&t.poll()), ["next"]);
        // The offsets count every byte: a restart resumes at the end.
        let mut t2 = Tailer::new(vec![log.clone()], limits, false);
        t2.restore(&t.checkpoint());
        assert!(t2.poll().is_empty());
    }

    #[test]
    fn globs_and_start_at_end() {
        assert!(name_matches(b"*.log", b"a.log"));
        assert!(name_matches(b"app-?.log", b"app-1.log"));
        assert!(!name_matches(b"*.log", b"a.txt"));
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a.log"), "old\n");
        let mut t = Tailer::new(vec![dir.path().join("*.log")], TailLimits::default(), true);
        assert!(t.poll().is_empty());
        append(&dir.path().join("a.log"), "new\n");
        append(&dir.path().join("b.log"), "b1\n");
        let mut got = texts(&t.poll())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        got.sort();
        // A file that appears later is new: read from its start.
        assert_eq!(got, ["b1", "new"]);
        let mut none = Tailer::new(
            vec![dir.path().join("missing/*.log")],
            TailLimits::default(),
            false,
        );
        assert!(none.poll().is_empty());
    }
}
