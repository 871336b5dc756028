//! The Loghub 2k parsing benchmark: each system's header format, and grouping accuracy.
//!
//! Grouping accuracy (Zhu et al., ICSE-SEIP 2019): a line is parsed correctly when the set of
//! lines the parser put in its group equals the set of lines that share its ground-truth
//! `EventId`. The accuracy is the share of such lines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::drain::{Drain, DrainConfig};
use crate::format::LogFormat;

/// A Loghub system: its header format and the parameters logparser's Drain benchmark tuned
/// for it (`similarity`, `depth`), which the published accuracies were obtained with.
#[derive(Debug, Clone, Copy)]
pub struct System {
    /// Folder and file prefix, e.g. `HDFS`.
    pub name: &'static str,
    /// Header format.
    pub format: &'static str,
    /// logparser's tuned similarity threshold.
    pub tuned_similarity: f64,
    /// logparser's tuned tree depth.
    pub tuned_depth: usize,
    /// Drain's published grouping accuracy (logpai/logparser).
    pub published: f64,
}

/// The Loghub systems Vigil knows the format of.
pub const SYSTEMS: &[System] = &[
    System {
        name: "HDFS",
        format: "<Date> <Time> <Pid> <Level> <Component>: <Content>",
        tuned_similarity: 0.5,
        tuned_depth: 4,
        published: 0.9975,
    },
    System {
        name: "Hadoop",
        format: r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
        tuned_similarity: 0.5,
        tuned_depth: 4,
        published: 0.9475,
    },
    System {
        name: "Spark",
        format: "<Date> <Time> <Level> <Component>: <Content>",
        tuned_similarity: 0.5,
        tuned_depth: 4,
        published: 0.92,
    },
    System {
        name: "Zookeeper",
        format: r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
        tuned_similarity: 0.5,
        tuned_depth: 4,
        published: 0.9665,
    },
    System {
        name: "BGL",
        format: "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
        tuned_similarity: 0.5,
        tuned_depth: 4,
        published: 0.9625,
    },
    System {
        name: "Linux",
        format: r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
        tuned_similarity: 0.39,
        tuned_depth: 6,
        published: 0.69,
    },
    System {
        name: "Apache",
        format: r"\[<Time>\] \[<Level>\] <Content>",
        tuned_similarity: 0.5,
        tuned_depth: 4,
        published: 1.0,
    },
    System {
        name: "OpenSSH",
        format: r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
        tuned_similarity: 0.6,
        tuned_depth: 5,
        published: 0.7875,
    },
];

/// Looks a system up by name (case-insensitive).
pub fn system(name: &str) -> Option<&'static System> {
    SYSTEMS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// One labelled line of a `_structured.csv`.
#[derive(Debug, Clone)]
pub struct Truth {
    /// The message as Loghub cut it.
    pub content: String,
    /// The ground-truth template id.
    pub event_id: String,
}

/// The result for one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemResult {
    /// System name.
    pub system: String,
    /// Lines.
    pub lines: usize,
    /// Ground-truth templates.
    pub true_templates: usize,
    /// Templates Vigil found.
    pub templates: usize,
    /// Grouping accuracy with Vigil's defaults (similarity 0.5, depth 4, masking).
    pub accuracy: f64,
    /// Grouping accuracy with logparser's tuned similarity and depth for this system (the
    /// defaults' figure for a system without tuned parameters).
    pub accuracy_tuned: f64,
    /// Drain's published accuracy.
    pub published: Option<f64>,
    /// Lines whose message, cut by the header format, differs from Loghub's `Content`.
    pub content_mismatches: usize,
    /// Lines per second through header cutting and Drain (defaults).
    pub lines_per_second: f64,
}

/// Problems reading a Loghub folder.
#[derive(Debug, thiserror::Error)]
pub enum LoghubError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The structured CSV is not in Loghub's shape.
    #[error("{path}: {reason}")]
    Csv {
        /// Which file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The raw log and the CSV do not line up.
    #[error("{0}")]
    Mismatch(String),
}

/// Reads `<System>_2k.log_structured.csv`: `Content` and `EventId` of each line.
pub fn read_truth(path: &Path) -> Result<Vec<Truth>, LoghubError> {
    let csv_err = |reason: String| LoghubError::Csv {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_err(e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| csv_err(e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            csv_err(format!(
                "no {name} column (is this a Loghub _structured.csv?)"
            ))
        })
    };
    let (content, event) = (col("Content")?, col("EventId")?);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_err(e.to_string()))?;
        out.push(Truth {
            content: record.get(content).unwrap_or("").to_string(),
            event_id: record.get(event).unwrap_or("").to_string(),
        });
    }
    Ok(out)
}

/// Grouping accuracy of `parsed` template ids against `truth` event ids (same length).
pub fn grouping_accuracy<T: Eq + std::hash::Hash, U: Eq + std::hash::Hash>(
    parsed: &[T],
    truth: &[U],
) -> f64 {
    assert_eq!(parsed.len(), truth.len(), "one id per line on each side");
    if parsed.is_empty() {
        return 0.0;
    }
    let mut truth_sizes: HashMap<&U, usize> = HashMap::new();
    for t in truth {
        *truth_sizes.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<&T, Vec<usize>> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let mut correct = 0;
    for lines in groups.values() {
        let first = &truth[lines[0]];
        if lines.iter().all(|&i| &truth[i] == first) && truth_sizes[first] == lines.len() {
            correct += lines.len();
        }
    }
    correct as f64 / parsed.len() as f64
}

/// Parses every line's message with a fresh Drain and returns the ids.
pub fn parse_all(messages: &[&str], config: DrainConfig) -> Vec<u32> {
    let mut drain = Drain::new(config);
    messages.iter().map(|m| drain.parse(m).id).collect()
}

/// The systems under a Loghub folder: every `<System>/<System>_2k.log` that has its
/// `_structured.csv`, sorted by name.
pub fn systems_in(dir: &Path) -> Result<Vec<String>, LoghubError> {
    let entries = std::fs::read_dir(dir).map_err(|error| LoghubError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            let folder = dir.join(name);
            folder.join(format!("{name}_2k.log")).is_file()
                && folder
                    .join(format!("{name}_2k.log_structured.csv"))
                    .is_file()
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Evaluates one system folder (`DIR/<name>/<name>_2k.log` and its `_structured.csv`).
/// A system Vigil does not know the header format of is mined from the CSV's `Content`
/// column, with Vigil's defaults only.
pub fn evaluate(dir: &Path, name: &str) -> Result<SystemResult, LoghubError> {
    let known = system(name);
    let folder = dir.join(name);
    let log_path = folder.join(format!("{name}_2k.log"));
    let csv_path = folder.join(format!("{name}_2k.log_structured.csv"));
    let raw = std::fs::read(&log_path).map_err(|error| LoghubError::Io {
        path: log_path.clone(),
        error,
    })?;
    let raw = String::from_utf8_lossy(&raw);
    let lines: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
    let truth = read_truth(&csv_path)?;
    if truth.len() != lines.len() {
        return Err(LoghubError::Mismatch(format!(
            "{} has {} lines but {} has {} rows",
            log_path.display(),
            lines.len(),
            csv_path.display(),
            truth.len()
        )));
    }
    let format = known.map(|s| LogFormat::new(s.format).expect("built-in formats compile"));
    let mut mismatches = 0;
    let messages: Vec<&str> = lines
        .iter()
        .zip(&truth)
        .map(|(line, t)| match format.as_ref().map(|f| f.split(line)) {
            Some(Some(h)) => {
                if h.content != t.content.trim() {
                    mismatches += 1;
                }
                h.content
            }
            Some(None) => {
                mismatches += 1;
                line
            }
            None => t.content.as_str(),
        })
        .collect();
    let truth_ids: Vec<&str> = truth.iter().map(|t| t.event_id.as_str()).collect();

    // Speed: header cutting and mining of the whole file, best of a few passes.
    let mut best = f64::INFINITY;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let mut drain = Drain::new(DrainConfig::default());
        ids = lines
            .iter()
            .zip(&messages)
            .map(|(l, m)| match &format {
                Some(f) => drain.parse(f.split(l).map_or(*l, |h| h.content)).id,
                None => drain.parse(m).id,
            })
            .collect();
        best = best.min(start.elapsed().as_secs_f64());
    }
    let templates = ids.iter().collect::<std::collections::HashSet<_>>().len();
    let tuned = match known {
        Some(sys) => grouping_accuracy(
            &parse_all(
                &messages,
                DrainConfig {
                    similarity: sys.tuned_similarity,
                    depth: sys.tuned_depth,
                    ..DrainConfig::default()
                },
            ),
            &truth_ids,
        ),
        None => grouping_accuracy(&ids, &truth_ids),
    };
    Ok(SystemResult {
        system: name.to_string(),
        lines: lines.len(),
        true_templates: truth_ids
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        templates,
        accuracy: grouping_accuracy(&ids, &truth_ids),
        accuracy_tuned: tuned,
        published: known.map(|s| s.published),
        content_mismatches: mismatches,
        lines_per_second: lines.len() as f64 / best.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_accuracy_follows_the_definition() {
        // Truth: {0,1} A, {2} B, {3,4} C. Parsed: {0,1} right, {2,3} wrong, {4} wrong.
        let truth = ["A", "A", "B", "C", "C"];
        assert_eq!(grouping_accuracy(&[1, 1, 2, 2, 3], &truth), 0.4);
        assert_eq!(grouping_accuracy(&[7, 7, 8, 9, 9], &truth), 1.0);
        // Splitting a true group fails all its lines.
        assert_eq!(grouping_accuracy(&[1, 2, 3, 4, 4], &truth), 0.6);
        assert_eq!(grouping_accuracy::<u32, &str>(&[], &[]), 0.0);
    }

    #[test]
    fn every_builtin_format_compiles() {
        for s in SYSTEMS {
            LogFormat::new(s.format).unwrap();
            assert!(system(&s.name.to_lowercase()).is_some());
        }
    }
}
