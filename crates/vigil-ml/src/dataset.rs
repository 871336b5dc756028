//! Labelled numeric training data read from CSV.

use crate::{Matrix, MlError, labels};

/// Feature rows with one binary label each, and the features' names.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Name of each column of `x`, from the CSV header.
    pub feature_names: Vec<String>,
    /// One row per sample.
    pub x: Matrix,
    /// One label (0 or 1) per row of `x`.
    pub y: Vec<u8>,
}

impl Dataset {
    /// Reads a numeric CSV: a header row, then one sample a line, every cell a number
    /// (anything `f32::from_str` accepts) or empty.
    ///
    /// The column named `label_column` holds the labels, which must be 0 or 1. Every other
    /// column is a feature: an empty cell is a missing value (`NaN`), and a column empty in
    /// every row is dropped. Blank lines are skipped. Quoting is not supported, as numeric
    /// data does not need it.
    pub fn from_csv(text: &str, label_column: &str) -> Result<Self, MlError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
            .filter(|(_, line)| !line.trim().is_empty());
        let Some((header_line, header)) = lines.next() else {
            return Err(MlError::Empty);
        };
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let label_at = names
            .iter()
            .position(|&n| n == label_column)
            .ok_or_else(|| MlError::Csv {
                line: header_line,
                reason: format!("no column named `{label_column}`"),
            })?;

        // Column-wise, so that empty columns can be dropped at the end.
        let mut columns: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
        let mut has_value = vec![false; names.len()];
        let mut y = Vec::new();
        for (line, text) in lines {
            let csv_error = |reason: String| MlError::Csv { line, reason };
            let cells: Vec<&str> = text.split(',').map(str::trim).collect();
            if cells.len() != names.len() {
                return Err(csv_error(format!(
                    "{} cells, but the header has {} columns",
                    cells.len(),
                    names.len()
                )));
            }
            for (c, &cell) in cells.iter().enumerate() {
                if c == label_at {
                    let label = match cell {
                        "0" => 0,
                        "1" => 1,
                        other => {
                            return Err(csv_error(format!(
                                "label `{other}` in column `{label_column}` is not 0 or 1"
                            )));
                        }
                    };
                    y.push(label);
                } else if cell.is_empty() {
                    columns[c].push(f32::NAN);
                } else {
                    let value = cell.parse::<f32>().map_err(|_| {
                        csv_error(format!("`{cell}` in column `{}` is not a number", names[c]))
                    })?;
                    columns[c].push(value);
                    has_value[c] = true;
                }
            }
        }
        labels::count_classes(&y)?;

        let kept: Vec<usize> = (0..names.len())
            .filter(|&c| c != label_at && has_value[c])
            .collect();
        let kept_columns: Vec<&[f32]> = kept.iter().map(|&c| columns[c].as_slice()).collect();
        let data = (0..y.len())
            .flat_map(|row| kept_columns.iter().map(move |column| column[row]))
            .collect();
        Ok(Self {
            feature_names: kept.iter().map(|&c| names[c].to_owned()).collect(),
            x: Matrix::new(data, y.len(), kept.len())?,
            y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_features_and_drops_empty_columns() {
        let csv = "a,empty,b,class\r\n1,,2.5,0\n\n-3,,,1\n";
        let data = Dataset::from_csv(csv, "class").unwrap();
        assert_eq!(data.feature_names, ["a", "b"]);
        assert_eq!(data.y, [0, 1]);
        assert_eq!(data.x.row(0), Some(&[1.0, 2.5][..]));
        let second = data.x.row(1).unwrap();
        assert_eq!(second[0], -3.0);
        assert!(second[1].is_nan());
    }

    #[test]
    fn names_the_bad_line() {
        let cases = [
            (
                "a,class\n1,0\n2\n",
                "line 3: 1 cells, but the header has 2 columns",
            ),
            (
                "a,class\n1,0\nx,1\n",
                "line 3: `x` in column `a` is not a number",
            ),
            (
                "a,class\n1,2\n",
                "line 2: label `2` in column `class` is not 0 or 1",
            ),
            ("a,b\n1,2\n", "line 1: no column named `class`"),
        ];
        for (csv, expected) in cases {
            let err = Dataset::from_csv(csv, "class").unwrap_err();
            assert_eq!(err.to_string(), format!("CSV {expected}"));
        }
        assert_eq!(Dataset::from_csv("\n\n", "class"), Err(MlError::Empty));
    }
}
