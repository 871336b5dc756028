//! Isolation Forest (Liu, Ting and Zhou, ICDM 2008): anomalies are few and different, so
//! random axis-parallel splits isolate them in fewer steps than normal points.
//!
//! Each tree is grown on a subsample of `max_samples` rows drawn without replacement, to a
//! depth limit of `ceil(log2(max_samples))`; a split picks a random feature among those not
//! constant in the node and a threshold uniform between its minimum and maximum. A point's
//! path length `h(x)` is its depth at the leaf plus `c(n)`, the average path length of an
//! unsuccessful binary-search-tree lookup among the `n` training points left there, and the
//! anomaly score is the paper's `s(x) = 2^(-E[h(x)] / c(max_samples))`: near 1 for
//! anomalies, at most about 0.5 for normal points. Scikit-learn's `score_samples` is
//! `-s(x)`.
//!
//! Trees are flat arrays whose leaves hold `depth + c(n)` already, so scoring a row is one
//! walk per tree with no arithmetic beyond comparisons. Tree `i` draws its randomness from
//! `seed + i` alone: the same seed and data give the same forest whatever the threads.
//! A missing value (`NaN`) goes right at every split.

use crate::rng::SplitMix64;
use crate::{Matrix, MlError};
use serde::{Deserialize, Serialize};

/// Most trees a forest may have.
pub const MAX_TREES: usize = 10_000;

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationParams {
    /// Trees (scikit-learn: 100).
    pub n_trees: usize,
    /// Rows per tree, drawn without replacement (scikit-learn: 256); capped at the rows
    /// available.
    pub max_samples: usize,
    /// Depth limit; 0 means `ceil(log2(max_samples))`, the paper's choice.
    pub max_depth: usize,
    /// Random seed.
    pub seed: u64,
    /// Training threads; 0 uses the available parallelism.
    pub threads: usize,
}

impl Default for IsolationParams {
    fn default() -> Self {
        IsolationParams {
            n_trees: 100,
            max_samples: 256,
            max_depth: 0,
            seed: 0,
            threads: 0,
        }
    }
}

impl IsolationParams {
    fn validate(&self) -> Result<(), MlError> {
        if self.n_trees == 0 || self.n_trees > MAX_TREES {
            return Err(MlError::InvalidParam {
                name: "n_trees",
                reason: format!("{} is not in 1..={MAX_TREES}", self.n_trees),
            });
        }
        if self.max_samples < 2 {
            return Err(MlError::InvalidParam {
                name: "max_samples",
                reason: format!("{} is fewer than 2 rows per tree", self.max_samples),
            });
        }
        if self.max_depth > 64 {
            return Err(MlError::InvalidParam {
                name: "max_depth",
                reason: format!("{} is deeper than 64", self.max_depth),
            });
        }
        Ok(())
    }
}

/// `c(n)`: the average path length of an unsuccessful search in a binary search tree of
/// `n` points, `2 H(n-1) - 2 (n-1) / n`, with `c(1) = 0` and `c(2) = 1`.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            // H(i) ≈ ln(i) + Euler–Mascheroni.
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

/// A node: a split (`feature < u32::MAX`) whose children sit at `left` and `left + 1`, or
/// a leaf whose `value` is its depth plus `c(size)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    feature: u32,
    /// The split threshold, or the leaf's path length.
    value: f32,
    left: u32,
}

const LEAF: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ITree {
    nodes: Vec<Node>,
}

impl ITree {
    #[inline]
    fn path_length(&self, row: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let n = self.nodes[i];
            if n.feature == LEAF {
                return n.value;
            }
            // NaN is not `< t`: it goes right.
            i = n.left as usize
                + usize::from(
                    row[n.feature as usize] >= n.value || row[n.feature as usize].is_nan(),
                );
        }
    }

    /// Features split on along `row`'s path, and the path length.
    fn path(&self, row: &[f32], out: &mut Vec<u32>) -> f32 {
        let mut i = 0usize;
        loop {
            let n = self.nodes[i];
            if n.feature == LEAF {
                return n.value;
            }
            out.push(n.feature);
            let x = row[n.feature as usize];
            i = n.left as usize + usize::from(x >= n.value || x.is_nan());
        }
    }
}

/// Grows one tree on the rows `idx` of the column-major `cols`.
struct Grower<'a> {
    cols: &'a [f32],
    n_rows: usize,
    n_cols: usize,
    max_depth: usize,
    rng: SplitMix64,
    nodes: Vec<Node>,
    candidates: Vec<u32>,
}

impl Grower<'_> {
    fn value(&self, row: usize, col: usize) -> f32 {
        self.cols[col * self.n_rows + row]
    }

    fn range(&self, idx: &[usize], col: usize) -> Option<(f32, f32)> {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for &r in idx {
            let v = self.value(r, col);
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo < hi).then_some((lo, hi))
    }

    /// Fills node `at` from the rows `idx` at `depth`.
    fn grow(&mut self, at: usize, idx: &mut [usize], depth: usize) {
        let leaf = |n: usize, depth: usize| Node {
            feature: LEAF,
            value: (depth as f64 + average_path_length(n)) as f32,
            left: 0,
        };
        if idx.len() <= 1 || depth >= self.max_depth {
            self.nodes[at] = leaf(idx.len(), depth);
            return;
        }
        // A random feature among those not constant here: draw without replacement.
        self.candidates.clear();
        self.candidates.extend(0..self.n_cols as u32);
        let mut split = None;
        while !self.candidates.is_empty() {
            let k = self.rng.below(self.candidates.len());
            let col = self.candidates.swap_remove(k) as usize;
            if let Some((lo, hi)) = self.range(idx, col) {
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let t = (f64::from(lo) + u * (f64::from(hi) - f64::from(lo))) as f32;
                // Keep both sides non-empty: `lo < t <= hi`.
                let t = if t <= lo { lo.next_up() } else { t.min(hi) };
                split = Some((col, t));
                break;
            }
        }
        let Some((col, t)) = split else {
            self.nodes[at] = leaf(idx.len(), depth);
            return;
        };
        // Partition: `< t` first.
        let mut i = 0;
        for j in 0..idx.len() {
            if self.value(idx[j], col) < t {
                idx.swap(i, j);
                i += 1;
            }
        }
        if i == 0 || i == idx.len() {
            self.nodes[at] = leaf(idx.len(), depth);
            return;
        }
        let left = self.nodes.len();
        self.nodes.push(leaf(0, 0));
        self.nodes.push(leaf(0, 0));
        self.nodes[at] = Node {
            feature: col as u32,
            value: t,
            left: left as u32,
        };
        let (l, r) = idx.split_at_mut(i);
        self.grow(left, l, depth + 1);
        self.grow(left + 1, r, depth + 1);
    }
}

/// A trained Isolation Forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    n_features: usize,
    /// Rows each tree was grown on (the `ψ` of `c(ψ)`).
    sample_size: usize,
    params: IsolationParams,
    trees: Vec<ITree>,
}

impl IsolationForest {
    /// Grows a forest on the rows of `x` (all assumed normal, or mostly).
    pub fn fit(x: &Matrix, params: &IsolationParams) -> Result<IsolationForest, MlError> {
        params.validate()?;
        if x.n_rows() == 0 {
            return Err(MlError::Empty);
        }
        if x.n_cols() == 0 {
            return Err(MlError::NoFeatures);
        }
        if x.n_cols() >= u32::MAX as usize {
            return Err(MlError::InvalidParam {
                name: "features",
                reason: "too many columns".into(),
            });
        }
        let sample_size = params.max_samples.min(x.n_rows());
        let max_depth = if params.max_depth == 0 {
            (sample_size.max(2) as f64).log2().ceil() as usize
        } else {
            params.max_depth
        };
        let cols = x.to_column_major();
        let threads = if params.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            params.threads
        }
        .clamp(1, params.n_trees.min(64));
        let grow = |i: usize| -> ITree {
            let mut rng = SplitMix64::new(params.seed.wrapping_add(i as u64));
            // Subsample without replacement: a partial Fisher–Yates over row indices.
            let mut all: Vec<usize> = (0..x.n_rows()).collect();
            for k in 0..sample_size {
                let j = k + rng.below(all.len() - k);
                all.swap(k, j);
            }
            all.truncate(sample_size);
            let mut g = Grower {
                cols: &cols,
                n_rows: x.n_rows(),
                n_cols: x.n_cols(),
                max_depth,
                rng,
                nodes: vec![Node {
                    feature: LEAF,
                    value: 0.0,
                    left: 0,
                }],
                candidates: Vec::with_capacity(x.n_cols()),
            };
            g.grow(0, &mut all, 0);
            ITree { nodes: g.nodes }
        };
        let mut trees: Vec<Option<ITree>> = vec![None; params.n_trees];
        std::thread::scope(|scope| {
            let chunks: Vec<_> = trees
                .chunks_mut(params.n_trees.div_ceil(threads))
                .enumerate()
                .map(|(c, chunk)| {
                    let grow = &grow;
                    let per = params.n_trees.div_ceil(threads);
                    scope.spawn(move || {
                        for (k, slot) in chunk.iter_mut().enumerate() {
                            *slot = Some(grow(c * per + k));
                        }
                    })
                })
                .collect();
            for c in chunks {
                // A panic in a worker is a bug; surface it.
                if let Err(p) = c.join() {
                    std::panic::resume_unwind(p);
                }
            }
        });
        Ok(IsolationForest {
            n_features: x.n_cols(),
            sample_size,
            params: params.clone(),
            trees: trees.into_iter().map(|t| t.expect("grown")).collect(),
        })
    }

    /// Features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The parameters it was trained with.
    pub fn params(&self) -> &IsolationParams {
        &self.params
    }

    /// Trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    fn normalizer(&self) -> f64 {
        average_path_length(self.sample_size).max(f64::MIN_POSITIVE)
    }

    /// The anomaly score `s(x)` in (0, 1]: above 0.5 is more isolated than usual.
    pub fn score(&self, row: &[f32]) -> Result<f64, MlError> {
        if row.len() != self.n_features {
            return Err(MlError::RowLength {
                got: row.len(),
                expected: self.n_features,
            });
        }
        Ok(self.score_unchecked(row))
    }

    #[inline]
    fn score_unchecked(&self, row: &[f32]) -> f64 {
        let total: f64 = self
            .trees
            .iter()
            .map(|t| f64::from(t.path_length(row)))
            .sum();
        let mean = total / self.trees.len() as f64;
        (-mean / self.normalizer()).exp2()
    }

    /// Scores every row of `x`, on up to `threads` threads (0: available parallelism).
    pub fn score_all(&self, x: &Matrix, threads: usize) -> Result<Vec<f64>, MlError> {
        if x.n_rows() > 0 && x.n_cols() != self.n_features {
            return Err(MlError::RowLength {
                got: x.n_cols(),
                expected: self.n_features,
            });
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let mut out = vec![0.0; x.n_rows()];
        let chunk = x.n_rows().div_ceil(threads.max(1)).max(1024);
        let d = self.n_features;
        std::thread::scope(|scope| {
            for (c, slice) in out.chunks_mut(chunk).enumerate() {
                let rows = &x.as_slice()[c * chunk * d..(c * chunk + slice.len()) * d];
                scope.spawn(move || self.score_dense_unchecked(rows, slice));
            }
        });
        Ok(out)
    }

    /// Scores the rows of `rows` (row-major, [`n_features`](Self::n_features) each) into
    /// `out`, on this thread. Tree by tree over blocks of rows, so that each tree stays in
    /// cache while a block walks it: several times faster than row by row on large forests.
    pub fn score_dense(&self, rows: &[f32], out: &mut [f64]) -> Result<(), MlError> {
        if rows.len() != out.len() * self.n_features {
            return Err(MlError::RowLength {
                got: rows.len() / out.len().max(1),
                expected: self.n_features,
            });
        }
        self.score_dense_unchecked(rows, out);
        Ok(())
    }

    fn score_dense_unchecked(&self, rows: &[f32], out: &mut [f64]) {
        const BLOCK: usize = 256;
        let d = self.n_features;
        let norm = self.normalizer() * self.trees.len() as f64;
        for (b, block) in out.chunks_mut(BLOCK).enumerate() {
            let mut sums = [0.0f32; BLOCK];
            let base = b * BLOCK;
            for t in &self.trees {
                for (k, sum) in sums.iter_mut().take(block.len()).enumerate() {
                    let r = base + k;
                    *sum += t.path_length(&rows[r * d..(r + 1) * d]);
                }
            }
            for (o, sum) in block.iter_mut().zip(sums) {
                *o = (-f64::from(sum) / norm).exp2();
            }
        }
    }

    /// How much each feature did to isolate `row`: over all trees, each split on its path
    /// counts `1 / h(x)` of that tree, so features that cut it off early weigh most.
    /// Weights sum to 1; an ordinary row spreads them thinly.
    pub fn contributions(&self, row: &[f32]) -> Result<Vec<f64>, MlError> {
        if row.len() != self.n_features {
            return Err(MlError::RowLength {
                got: row.len(),
                expected: self.n_features,
            });
        }
        let mut weights = vec![0.0; self.n_features];
        let mut path = Vec::with_capacity(16);
        for t in &self.trees {
            path.clear();
            let h = f64::from(t.path(row, &mut path)).max(1.0);
            for &f in &path {
                weights[f as usize] += 1.0 / h;
            }
        }
        let total: f64 = weights.iter().sum();
        if total > 0.0 {
            for w in &mut weights {
                *w /= total;
            }
        }
        Ok(weights)
    }

    /// Checks a forest read from a file: every index in range, every value finite.
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |m: String| Err(MlError::CorruptModel(m));
        if self.trees.is_empty() || self.n_features == 0 || self.sample_size < 1 {
            return bad("no trees, features or samples".into());
        }
        for (ti, t) in self.trees.iter().enumerate() {
            if t.nodes.is_empty() {
                return bad(format!("tree {ti} is empty"));
            }
            for (ni, n) in t.nodes.iter().enumerate() {
                if !n.value.is_finite() {
                    return bad(format!("tree {ti} node {ni}: value is not finite"));
                }
                if n.feature != LEAF {
                    if n.feature as usize >= self.n_features {
                        return bad(format!("tree {ti} node {ni}: feature out of range"));
                    }
                    // Children come after their parent: no cycles.
                    let l = n.left as usize;
                    if l <= ni || l + 1 >= t.nodes.len() {
                        return bad(format!("tree {ti} node {ni}: child out of range"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize, seed: u64) -> Vec<[f32; 3]> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let mut r = [0.0f32; 3];
                for v in &mut r {
                    // Sum of uniforms: roughly normal around 0.
                    let s: f64 = (0..4)
                        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
                        .sum();
                    *v = (s - 2.0) as f32;
                }
                r
            })
            .collect()
    }

    #[test]
    fn c_of_n_matches_the_paper() {
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // c(256) as scikit-learn computes it.
        assert!((average_path_length(256) - 10.244_770_920_116_851).abs() < 1e-9);
    }

    #[test]
    fn outliers_score_high_and_inliers_low() {
        let rows = blob(2_000, 1);
        let x = Matrix::from_rows(&rows).unwrap();
        let f = IsolationForest::fit(&x, &IsolationParams::default()).unwrap();
        let inlier = f.score(&[0.0, 0.0, 0.0]).unwrap();
        let outlier = f.score(&[5.0, -5.0, 5.0]).unwrap();
        assert!(inlier < 0.45, "{inlier}");
        assert!(outlier > 0.7, "{outlier}");
        // Contributions name the one odd feature.
        let w = f.contributions(&[0.0, 6.0, 0.0]).unwrap();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(w[1] > w[0] && w[1] > w[2], "{w:?}");
        // NaN goes right, never panics.
        assert!(f.score(&[f32::NAN, 0.0, 0.0]).unwrap().is_finite());
        assert!(matches!(f.score(&[0.0]), Err(MlError::RowLength { .. })));
    }

    #[test]
    fn deterministic_whatever_the_threads() {
        let x = Matrix::from_rows(&blob(500, 2)).unwrap();
        let one = IsolationParams {
            threads: 1,
            seed: 9,
            ..Default::default()
        };
        let two = IsolationParams {
            threads: 2,
            ..one.clone()
        };
        let a = IsolationForest::fit(&x, &one).unwrap();
        let b = IsolationForest::fit(&x, &two).unwrap();
        assert_eq!(a.trees, b.trees);
        let other = IsolationForest::fit(&x, &IsolationParams { seed: 10, ..one }).unwrap();
        assert_ne!(a.trees, other.trees);
        // Batch and single scores agree (sums in f32 per block: to rounding).
        let all = a.score_all(&x, 2).unwrap();
        for (i, s) in all.iter().enumerate().step_by(37) {
            assert!((*s - a.score(x.row(i).unwrap()).unwrap()).abs() < 1e-6);
        }
    }

    #[test]
    fn serializes_and_validates() {
        let x = Matrix::from_rows(&blob(300, 3)).unwrap();
        let f = IsolationForest::fit(
            &x,
            &IsolationParams {
                n_trees: 5,
                ..Default::default()
            },
        )
        .unwrap();
        let json = serde_json::to_string(&f).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        back.validate().unwrap();
        assert_eq!(back, f);
        let mut broken = f.clone();
        broken.trees[0].nodes[0].left = 0;
        if broken.trees[0].nodes[0].feature != LEAF {
            assert!(broken.validate().is_err());
        }
        let mut broken = f;
        broken.trees[0].nodes[0] = Node {
            feature: 99,
            value: 0.0,
            left: 1,
        };
        assert!(broken.validate().is_err());
    }

    #[test]
    fn degenerate_inputs() {
        // Constant data: every tree is one leaf; scores are equal and finite.
        let x = Matrix::from_rows(&vec![[1.0f32, 1.0]; 50]).unwrap();
        let f = IsolationForest::fit(&x, &IsolationParams::default()).unwrap();
        let s = f.score(&[1.0, 1.0]).unwrap();
        assert!(s.is_finite());
        assert_eq!(s, f.score(&[9.0, 9.0]).unwrap());
        // One row.
        let x = Matrix::from_rows(&[[1.0f32]]).unwrap();
        assert!(IsolationForest::fit(&x, &IsolationParams::default()).is_ok());
        // Bad parameters.
        let bad = IsolationParams {
            n_trees: 0,
            ..Default::default()
        };
        assert!(matches!(
            IsolationForest::fit(&x, &bad),
            Err(MlError::InvalidParam { .. })
        ));
        // Tiny-range values split without an empty side.
        let rows: Vec<[f32; 1]> = (0..64)
            .map(|i| [1.0 + (i % 2) as f32 * f32::EPSILON])
            .collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let f = IsolationForest::fit(&x, &IsolationParams::default()).unwrap();
        f.validate().unwrap();
    }
}
