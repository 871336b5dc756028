//! Dense row-major feature matrices.

use crate::MlError;

/// A dense matrix of `f32` features, one sample a row, stored row-major.
///
/// Any value is accepted, including `NaN` (read as "missing" by the forest) and infinities;
/// only the shape is checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    data: Vec<f32>,
    n_rows: usize,
    n_cols: usize,
}

impl Matrix {
    /// A matrix over `data`, row-major: row `r` is `data[r * n_cols..(r + 1) * n_cols]`.
    ///
    /// Fails when `data.len() != n_rows * n_cols` or the product overflows.
    pub fn new(data: Vec<f32>, n_rows: usize, n_cols: usize) -> Result<Self, MlError> {
        let len = n_rows
            .checked_mul(n_cols)
            .ok_or(MlError::TooLarge { n_rows, n_cols })?;
        if data.len() != len {
            return Err(MlError::Shape {
                len: data.len(),
                n_rows,
                n_cols,
            });
        }
        Ok(Self {
            data,
            n_rows,
            n_cols,
        })
    }

    /// A matrix from a slice of rows, which must all have the first row's length.
    ///
    /// No rows gives a 0 × 0 matrix.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self, MlError> {
        let n_cols = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len().saturating_mul(n_cols));
        for (i, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            if row.len() != n_cols {
                return Err(MlError::RaggedRows {
                    row: i,
                    len: row.len(),
                    expected: n_cols,
                });
            }
            data.extend_from_slice(row);
        }
        Self::new(data, rows.len(), n_cols)
    }

    /// Number of rows (samples).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (features).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Row `index`, or `None` past the end.
    pub fn row(&self, index: usize) -> Option<&[f32]> {
        if index < self.n_rows {
            Some(&self.data[index * self.n_cols..(index + 1) * self.n_cols])
        } else {
            None
        }
    }

    /// The rows in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        (0..self.n_rows).map(move |i| &self.data[i * self.n_cols..(i + 1) * self.n_cols])
    }

    /// A new matrix made of the rows at `indices`, in that order (repeats allowed).
    pub fn select_rows(&self, indices: &[usize]) -> Result<Self, MlError> {
        let mut data = Vec::with_capacity(indices.len().saturating_mul(self.n_cols));
        for &index in indices {
            let row = self.row(index).ok_or(MlError::RowOutOfRange {
                index,
                n_rows: self.n_rows,
            })?;
            data.extend_from_slice(row);
        }
        Self::new(data, indices.len(), self.n_cols)
    }

    /// The same values, column-major: column `c` is `out[c * n_rows..(c + 1) * n_rows]`.
    pub(crate) fn to_column_major(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.data.len()];
        for (r, row) in self.rows().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                out[c * self.n_rows + r] = v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_shape() {
        assert!(Matrix::new(vec![1.0; 6], 2, 3).is_ok());
        assert_eq!(
            Matrix::new(vec![1.0; 5], 2, 3),
            Err(MlError::Shape {
                len: 5,
                n_rows: 2,
                n_cols: 3
            })
        );
        assert!(matches!(
            Matrix::new(vec![], usize::MAX, 2),
            Err(MlError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_ragged_rows() {
        let err = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert_eq!(
            err,
            MlError::RaggedRows {
                row: 1,
                len: 1,
                expected: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "row 1 has 1 values, but the first row has 2"
        );
    }

    #[test]
    fn empty_and_zero_width_matrices_are_harmless() {
        let empty = Matrix::from_rows::<Vec<f32>>(&[]).unwrap();
        assert_eq!((empty.n_rows(), empty.n_cols()), (0, 0));
        let thin = Matrix::new(vec![], 3, 0).unwrap();
        assert_eq!(thin.rows().count(), 3);
        assert_eq!(thin.row(2), Some(&[][..]));
    }

    #[test]
    fn selects_rows_and_transposes() {
        let m = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
        let s = m.select_rows(&[2, 0, 2]).unwrap();
        assert_eq!(s.as_slice(), &[5.0, 6.0, 1.0, 2.0, 5.0, 6.0]);
        assert_eq!(
            m.select_rows(&[3]),
            Err(MlError::RowOutOfRange {
                index: 3,
                n_rows: 3
            })
        );
        assert_eq!(m.to_column_major(), vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        assert_eq!(m.row(1), Some(&[3.0, 4.0][..]));
        assert_eq!(m.row(3), None);
    }
}
