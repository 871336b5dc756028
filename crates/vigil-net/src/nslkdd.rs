//! NSL-KDD (Tavallaee et al. 2009) rows, for evaluating the detector on public data.
//!
//! A row has 41 features (duration, protocol_type, service, flag, src_bytes, dst_bytes,
//! content features, time-window and host-window counts and rates), then the label
//! (`normal` or an attack name), then a difficulty level. [`to_features`] maps a row onto
//! the detector's feature families; the mapping is documented in `docs/network.md`.

use crate::model::{ModelParams, NetModel, NumericColumn, Sample, Schema, TrainingInfo};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Heavy-tailed columns taken as `ln(1 + x)`: sizes, durations and counts.
const LOG_COLUMNS: [&str; 16] = [
    "duration",
    "src_bytes",
    "dst_bytes",
    "hot",
    "num_failed_logins",
    "num_compromised",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "wrong_fragment",
    "urgent",
    "count",
    "srv_count",
    "dst_host_count",
    "dst_host_srv_count",
];

/// How NSL-KDD's columns map onto the detector's feature families:
///
/// | family (live feature)                         | NSL-KDD columns |
/// |-----------------------------------------------|-----------------|
/// | protocol (`protocol_tcp`, `protocol_udp`)     | `protocol_type` |
/// | remote port class / service                   | `service` |
/// | connection state (failed attempts)            | `flag` |
/// | bytes each way, ratio (`log_bytes_*`)         | `src_bytes`, `dst_bytes` |
/// | duration (`log_duration`)                     | `duration` |
/// | rate in window (`log_rate_in_window`)         | `count`, `srv_count`, `dst_host_count`, `dst_host_srv_count` |
/// | distinct remotes (`log_distinct_remotes_…`)   | `diff_srv_rate`, `srv_diff_host_rate`, `dst_host_diff_srv_rate`, `dst_host_srv_diff_host_rate`, `same_srv_rate`, `dst_host_same_srv_rate`, `dst_host_same_src_port_rate` |
/// | failed share (`failed_share_in_window`)       | `serror_rate`, `srv_serror_rate`, `rerror_rate`, `srv_rerror_rate`, `dst_host_*error_rate` |
/// | host content (no live counterpart)            | `land`, `wrong_fragment`, `urgent`, `hot`, logins, `num_*`, shells, root |
///
/// Every numeric column is kept (heavy-tailed ones on a log scale); the three categorical
/// columns compare by identity.
pub fn schema() -> Schema {
    Schema {
        numeric: COLUMNS
            .iter()
            .enumerate()
            .filter(|(j, _)| !(1..=3).contains(j))
            .map(|(_, c)| NumericColumn {
                name: (*c).to_string(),
                log: LOG_COLUMNS.contains(c),
            })
            .collect(),
        categorical: vec!["protocol_type".into(), "service".into(), "flag".into()],
    }
}

/// The row as a model sample.
pub fn sample(row: &KddRow) -> Sample {
    Sample {
        numeric: row.numeric.clone(),
        categorical: vec![row.protocol.clone(), row.service.clone(), row.flag.clone()],
    }
}

/// The figures of one evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The scorer.
    pub method: &'static str,
    /// ROC AUC of the raw scores on the test rows.
    pub auc: f64,
    /// Share of attacks flagged at the threshold.
    pub detection_rate: f64,
    /// Share of normal test rows flagged.
    pub fpr: f64,
    /// Flagged rows that are attacks.
    pub precision: f64,
    /// Harmonic mean of precision and detection rate.
    pub f1: f64,
    /// Accuracy at the threshold.
    pub accuracy: f64,
    /// Seconds to fit (preprocessing, scorer, calibration).
    pub fit_seconds: f64,
    /// Test rows scored per second (all threads).
    pub rows_per_second: f64,
    /// Normal training rows used (fit + calibration).
    pub train_normal_rows: usize,
    /// Test rows (attacks among them).
    pub test_rows: usize,
    /// Attacks among the test rows.
    pub test_attacks: usize,
    /// The target false-positive rate the threshold was set for (on training data).
    pub target_fpr: f64,
    /// Detection rate per attack name (test rows), for the ten most frequent.
    pub per_attack: Vec<(String, usize, f64)>,
}

/// Fits on the normal rows of `train` only and scores every row of `test` (the protocol in
/// `../shared/data/README.md`): no attack row or label is used to fit or to set the
/// threshold. `fit_seconds` includes calibration (scoring the held-out normal rows);
/// `rows_per_second` is the median of `timing_runs` scoring passes over the test rows,
/// preprocessing included, file parsing excluded.
pub fn evaluate(
    train: &[KddRow],
    test: &[KddRow],
    params: &ModelParams,
    threads: usize,
    timing_runs: usize,
) -> Result<(Evaluation, NetModel), crate::model::ModelError> {
    let normal: Vec<Sample> = train
        .iter()
        .filter(|r| !r.is_attack())
        .map(sample)
        .collect();
    let started = Instant::now();
    let model = NetModel::train(
        &schema(),
        &normal,
        params,
        TrainingInfo {
            source: "nsl-kdd".into(),
            ..TrainingInfo::default()
        },
    )?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let samples: Vec<Sample> = test.iter().map(sample).collect();
    // Scoring speed: the median of `timing_runs` passes (preprocessing included).
    let mut times = Vec::new();
    let mut scored = Vec::new();
    for _ in 0..timing_runs.max(1) {
        let started = Instant::now();
        scored = model.score_all(&samples, threads)?;
        times.push(started.elapsed().as_secs_f64().max(1e-9));
    }
    times.sort_by(f64::total_cmp);
    let score_seconds = times[times.len() / 2];
    let labels: Vec<u8> = test.iter().map(|r| u8::from(r.is_attack())).collect();
    let raw: Vec<f32> = scored.iter().map(|s| s.raw as f32).collect();
    let auc = vigil_ml::metrics::roc_auc(&raw, &labels).unwrap_or(f64::NAN);
    let (mut tp, mut fp, mut tn, mut fn_) = (0usize, 0usize, 0usize, 0usize);
    let mut per: std::collections::HashMap<&str, (usize, usize)> = Default::default();
    for (s, r) in scored.iter().zip(test) {
        match (s.is_anomaly, r.is_attack()) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
        if r.is_attack() {
            let e = per.entry(r.label.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(s.is_anomaly);
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let detection_rate = ratio(tp, tp + fn_);
    let precision = ratio(tp, tp + fp);
    let f1 = if precision + detection_rate > 0.0 {
        2.0 * precision * detection_rate / (precision + detection_rate)
    } else {
        0.0
    };
    let mut per_attack: Vec<(String, usize, f64)> = per
        .into_iter()
        .map(|(name, (n, hit))| (name.to_string(), n, ratio(hit, n)))
        .collect();
    per_attack.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    per_attack.truncate(10);
    Ok((
        Evaluation {
            method: model.params.method.as_str(),
            auc,
            detection_rate,
            fpr: ratio(fp, fp + tn),
            precision,
            f1,
            accuracy: ratio(tp + tn, test.len()),
            fit_seconds,
            rows_per_second: test.len() as f64 / score_seconds,
            train_normal_rows: normal.len(),
            test_rows: test.len(),
            test_attacks: tp + fn_,
            target_fpr: params.target_fpr,
            per_attack,
        },
        model,
    ))
}

/// NSL-KDD's 41 feature names, in file order.
pub const COLUMNS: [&str; 41] = [
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
];

/// One labelled connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KddRow {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// The destination service (`http`, `private`, `ecr_i`, …).
    pub service: String,
    /// The connection's end state (`SF`, `S0`, `REJ`, `RSTO`, …).
    pub flag: String,
    /// The 38 numeric columns, in file order (without protocol, service and flag).
    pub numeric: Vec<f64>,
    /// `normal` or the attack's name.
    pub label: String,
}

impl KddRow {
    /// Whether the row is an attack.
    pub fn is_attack(&self) -> bool {
        self.label != "normal"
    }

    /// A numeric column by name.
    pub fn get(&self, column: &str) -> Option<f64> {
        let i = COLUMNS.iter().position(|c| *c == column)?;
        match i {
            0 => self.numeric.first().copied(),
            1..=3 => None,
            _ => self.numeric.get(i - 3).copied(),
        }
    }
}

/// Why a file cannot be read as NSL-KDD.
#[derive(Debug, thiserror::Error)]
pub enum KddError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an NSL-KDD row.
    #[error("{path} line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads an NSL-KDD file (`KDDTrain+.txt`, `KDDTest+.txt`: 41 features, the label, and
/// an optional difficulty level).
pub fn read(path: &Path) -> Result<Vec<KddRow>, KddError> {
    let text = std::fs::read_to_string(path).map_err(|source| KddError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses NSL-KDD text; `name` is used in errors.
pub fn parse(text: &str, name: &str) -> Result<Vec<KddRow>, KddError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('@') || line.starts_with('%') {
            continue;
        }
        let bad = |reason: String| KddError::Line {
            path: name.to_string(),
            line: line_no,
            reason,
        };
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 42 && f.len() != 43 {
            return Err(bad(format!(
                "{} fields; an NSL-KDD row has 41 features, the label and an optional difficulty",
                f.len()
            )));
        }
        let mut numeric = Vec::with_capacity(38);
        for (j, v) in f[..41].iter().enumerate() {
            if (1..=3).contains(&j) {
                continue;
            }
            let x: f64 = v
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    bad(format!(
                        "`{}` is `{v}`, not a non-negative number",
                        COLUMNS[j]
                    ))
                })?;
            numeric.push(x);
        }
        for (j, v) in [(1, f[1]), (2, f[2]), (3, f[3])] {
            if v.is_empty() {
                return Err(bad(format!("`{}` is empty", COLUMNS[j])));
            }
        }
        rows.push(KddRow {
            protocol: f[1].to_string(),
            service: f[2].to_string(),
            flag: f[3].to_string(),
            numeric,
            label: f[41].trim_end_matches('.').to_string(),
        });
    }
    if rows.is_empty() {
        return Err(KddError::Line {
            path: name.to_string(),
            line: 0,
            reason: "no rows".into(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20
0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,19
";

    #[test]
    fn reads_rows() {
        let rows = parse(TWO, "t").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].service, "ftp_data");
        assert_eq!(rows[0].get("src_bytes"), Some(491.0));
        assert_eq!(rows[0].get("duration"), Some(0.0));
        assert_eq!(rows[1].get("count"), Some(123.0));
        assert_eq!(rows[1].get("dst_host_srv_rerror_rate"), Some(0.0));
        assert_eq!(rows[0].numeric.len(), 38);
        assert!(!rows[0].is_attack() && rows[1].is_attack());
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let e = parse("0,tcp,http,SF,1\n", "t").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("5 fields"), "{e}");
        let bad = TWO.lines().next().unwrap().replace(",491,", ",-4,");
        let e = parse(&bad, "t").unwrap_err().to_string();
        assert!(e.contains("src_bytes"), "{e}");
        assert!(parse("", "t").is_err());
    }
}
