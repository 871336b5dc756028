//! Labelled datasets: ClaMP's raw-feature CSV (features already extracted), and seed 001's
//! own CSV of `path, sha256, label` (files whose features are extracted here).

use crate::clamp::FEATURES;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a dataset cannot be read; names the line and column.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not CSV, or a row of the wrong length.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A required column is missing.
    #[error("{path}: no `{column}` column (the header has: {header})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The columns found.
        header: String,
    },
    /// A value that is not a number, or a label other than 0/1.
    #[error("{path}: line {line}, column `{column}`: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
}

/// Rows of ClaMP raw features with labels (1 malware, 0 benign).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureTable {
    /// One row per file, in [`FEATURES`] order.
    pub rows: Vec<Vec<f32>>,
    /// 1 for malware, 0 for benign.
    pub labels: Vec<u8>,
}

impl FeatureTable {
    /// Positive rows.
    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&l| l == 1).count()
    }
}

fn csv_error(path: &Path, e: csv::Error) -> DatasetError {
    let at = e
        .position()
        .map(|p| format!("line {}: ", p.line()))
        .unwrap_or_default();
    DatasetError::Csv {
        path: path.to_path_buf(),
        message: format!("{at}{e}"),
    }
}

/// A maker of [`DatasetError::BadValue`] for one record: `bad(column, message)`.
fn bad_value<'a>(
    path: &'a Path,
    record: &csv::StringRecord,
) -> impl Fn(&str, String) -> DatasetError + 'a {
    let line = record.position().map_or(0, |p| p.line());
    move |column, message| DatasetError::BadValue {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        message,
    }
}

fn parse_label(raw: &str) -> Option<u8> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "malware" | "malicious" | "true" | "yes" => Some(1),
        "0" | "0.0" | "benign" | "clean" | "false" | "no" => Some(0),
        _ => None,
    }
}

/// Reads a ClaMP raw-format CSV: a header naming at least the 53 [`FEATURES`] and `class`
/// (other columns, such as ClaMP's always-empty `e_res`, are ignored), integer values.
pub fn read_clamp_csv(path: &Path) -> Result<FeatureTable, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_clamp(file, path)
}

/// [`read_clamp_csv`] from any reader; `path` names it in errors.
pub fn read_clamp(input: impl Read, path: &Path) -> Result<FeatureTable, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let index_of = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DatasetError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
                header: header.iter().collect::<Vec<_>>().join(","),
            })
    };
    let columns: Vec<usize> = FEATURES
        .iter()
        .map(|f| index_of(f))
        .collect::<Result<_, _>>()?;
    let class = index_of("class")?;
    let mut table = FeatureTable::default();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let bad = bad_value(path, &record);
        let row = columns
            .iter()
            .zip(FEATURES)
            .map(|(&i, name)| {
                let raw = record.get(i).unwrap_or("");
                raw.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(|v| v as f32)
                    .ok_or_else(|| bad(name, format!("`{raw}` is not a number")))
            })
            .collect::<Result<Vec<f32>, _>>()?;
        let raw = record.get(class).unwrap_or("");
        let label = parse_label(raw)
            .ok_or_else(|| bad("class", format!("`{raw}` is not a label (0 or 1)")))?;
        table.rows.push(row);
        table.labels.push(label);
    }
    Ok(table)
}

/// One row of seed 001's dataset: a file, its SHA-256 and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledFile {
    /// Where the file is (relative paths are relative to the CSV's folder).
    pub path: String,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// 1 malware, 0 benign.
    pub label: u8,
}

/// Reads seed 001's CSV: columns `path`, `sha256`, `label` (a header row is optional).
pub fn read_seed_csv(path: &Path) -> Result<Vec<LabelledFile>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let has_header = text
        .lines()
        .next()
        .is_some_and(|l| l.to_ascii_lowercase().contains("sha256"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(has_header)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let bad = bad_value(path, &record);
        if record.len() != 3 {
            return Err(bad(
                "*",
                format!("{} columns; expected path,sha256,label", record.len()),
            ));
        }
        let sha256 = record[1].to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256", format!("`{}` is not a SHA-256", &record[1])));
        }
        let label = parse_label(&record[2])
            .ok_or_else(|| bad("label", format!("`{}` is not a label (0 or 1)", &record[2])))?;
        out.push(LabelledFile {
            path: record[0].to_string(),
            sha256,
            label,
        });
    }
    Ok(out)
}

/// Writes seed 001's CSV, with a header row.
pub fn write_seed_csv(rows: &[LabelledFile], out: impl std::io::Write) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["path", "sha256", "label"])?;
    for r in rows {
        w.write_record([r.path.as_str(), r.sha256.as_str(), &r.label.to_string()])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clamp_csv(rows: &[&str]) -> String {
        let mut s = FEATURES.join(",");
        s.push_str(",e_res,class\n");
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    fn row(value: &str, class: &str) -> String {
        format!("{}{value},,{class}", "1,".repeat(FEATURES.len() - 1))
    }

    #[test]
    fn clamp_rows_and_errors() {
        let p = Path::new("t.csv");
        let t = read_clamp(clamp_csv(&[&row("5", "1"), &row("6", "0")]).as_bytes(), p).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0][52], 5.0);
        assert_eq!(t.labels, vec![1, 0]);
        assert_eq!(t.positives(), 1);

        let e = read_clamp(clamp_csv(&[&row("x", "1")]).as_bytes(), p).unwrap_err();
        assert!(e.to_string().contains("NumberOfRvaAndSizes"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = read_clamp(clamp_csv(&[&row("1", "maybe")]).as_bytes(), p).unwrap_err();
        assert!(e.to_string().contains("class"), "{e}");
        let e = read_clamp("a,b\n1,2\n".as_bytes(), p).unwrap_err();
        assert!(matches!(e, DatasetError::MissingColumn { .. }), "{e}");
        let e = read_clamp(clamp_csv(&["1,2"]).as_bytes(), p).unwrap_err();
        assert!(matches!(e, DatasetError::Csv { .. }), "{e}");
    }

    #[test]
    fn seed_csv_round_trip() {
        let dir = std::env::temp_dir().join(format!("vigil-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rows = vec![
            LabelledFile {
                path: "C:\\samples\\a, b.exe".into(),
                sha256: "a".repeat(64),
                label: 1,
            },
            LabelledFile {
                path: "b.exe".into(),
                sha256: "b".repeat(64),
                label: 0,
            },
        ];
        let mut out = Vec::new();
        write_seed_csv(&rows, &mut out).unwrap();
        let path = dir.join("d.csv");
        std::fs::write(&path, &out).unwrap();
        assert_eq!(read_seed_csv(&path).unwrap(), rows);
        // Without a header, as the seed wrote it.
        std::fs::write(&path, format!("x.exe,{},1\n", "c".repeat(64))).unwrap();
        assert_eq!(read_seed_csv(&path).unwrap()[0].label, 1);
        std::fs::write(&path, "x.exe,nothex,1\n").unwrap();
        assert!(
            read_seed_csv(&path)
                .unwrap_err()
                .to_string()
                .contains("sha256")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
