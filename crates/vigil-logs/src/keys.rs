//! Log-key sequences: the unit the detectors learn from and score.
//!
//! A session is the sequence of template ids (log keys) of the lines that belong together:
//! one HDFS block, one host's window. Two file shapes are read, the ones DeepLog's and
//! logdeep's HDFS data use: one session a line as space-separated keys, and a labelled CSV
//! `Sequence,label` (0 normal, 1 anomalous).

use std::path::{Path, PathBuf};

/// Most keys kept of one session; longer sessions are cut (and say so).
pub const MAX_SESSION_KEYS: usize = 100_000;

/// A session with an optional label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The log keys in order.
    pub keys: Vec<u32>,
    /// `Some(true)` for a labelled anomaly.
    pub label: Option<bool>,
}

/// A key-sequence file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A line is not in the expected shape.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// Which file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

fn parse_keys(text: &str) -> Result<Vec<u32>, String> {
    let mut keys = Vec::new();
    for token in text.split_ascii_whitespace() {
        let key: u32 = token
            .parse()
            .map_err(|_| format!("{token:?} is not a log key (expected non-negative integers)"))?;
        if keys.len() < MAX_SESSION_KEYS {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn read_text(path: &Path) -> Result<String, KeysError> {
    let bytes = std::fs::read(path).map_err(|error| KeysError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    String::from_utf8(bytes).map_err(|e| KeysError::Line {
        path: path.to_path_buf(),
        line: 0,
        reason: format!("not UTF-8 text ({e})"),
    })
}

/// Reads a file of one session a line (space-separated keys), all with `label`. Empty
/// lines are empty sessions (HDFS has sessions whose keys all fell outside the key set).
pub fn read_sequences(path: &Path, label: Option<bool>) -> Result<Vec<Session>, KeysError> {
    let text = read_text(path)?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            parse_keys(line)
                .map(|keys| Session { keys, label })
                .map_err(|reason| KeysError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason,
                })
        })
        .collect()
}

/// Reads a labelled CSV with a header and rows `Sequence,label`.
pub fn read_labelled(path: &Path) -> Result<Vec<Session>, KeysError> {
    let text = read_text(path)?;
    let err = |line: usize, reason: String| KeysError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim().eq_ignore_ascii_case("sequence,label") => {}
        _ => return Err(err(1, "expected the header Sequence,label".into())),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (seq, label) = line
            .rsplit_once(',')
            .ok_or_else(|| err(i + 1, "expected Sequence,label".into()))?;
        let label = match label.trim() {
            "0" => false,
            "1" => true,
            other => return Err(err(i + 1, format!("label {other:?} is neither 0 nor 1"))),
        };
        let keys = parse_keys(seq.trim().trim_matches('"')).map_err(|r| err(i + 1, r))?;
        out.push(Session {
            keys,
            label: Some(label),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_both_shapes() {
        let f = file("5 5 22 11\n\n9 26 \n");
        let s = read_sequences(f.path(), None).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].keys, vec![5, 5, 22, 11]);
        assert!(s[1].keys.is_empty());
        let f = file("Sequence,label\n22 5 5,0\n\"5 9\",1\n");
        let s = read_labelled(f.path()).unwrap();
        assert_eq!(
            s[1],
            Session {
                keys: vec![5, 9],
                label: Some(true)
            }
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let f = file("5 5\n5 x\n");
        let e = read_sequences(f.path(), None).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("\"x\""), "{e}");
        let f = file("Sequence,label\n1 2,7\n");
        assert!(
            read_labelled(f.path())
                .unwrap_err()
                .to_string()
                .contains("neither 0 nor 1")
        );
        let f = file("a,b\n");
        assert!(
            read_labelled(f.path())
                .unwrap_err()
                .to_string()
                .contains("header")
        );
        let f = file("\u{0}\u{ff}");
        assert!(read_sequences(f.path(), None).is_err() || read_labelled(f.path()).is_err());
        let f = file("-1\n");
        assert!(read_sequences(f.path(), None).is_err());
        assert!(read_sequences(Path::new("/nonexistent/x"), None).is_err());
    }
}
