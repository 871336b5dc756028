//! Random forest classifier for binary labels.
//!
//! Breiman's random forest: each tree is a CART tree grown on a bootstrap sample of the rows,
//! choosing every split by Gini impurity among a random subset of the features, with the
//! exact best threshold (midway between two consecutive distinct values). A leaf stores the
//! fraction of positives it saw; the forest's score is the mean over its trees.
//!
//! Missing values are `NaN`: they sort below every number during training and always go to
//! the left child, in training and in prediction alike.
//!
//! Trees are grown in parallel on scoped threads. Tree `i` draws its randomness from
//! `seed + i` alone, so a seed gives the same forest whatever the number of threads.
//!
//! A forest serializes (with any serde format; JSON in practice) as flat arrays per tree:
//!
//! ```json
//! {"format": 1, "n_features": 2, "importances": [0.7, 0.3],
//!  "trees": [{"feature": [0, 0, 0], "threshold": [1.5, 0, 0],
//!             "left": [1, 0, 0], "right": [2, 0, 0], "value": [0.5, 0, 1]}]}
//! ```
//!
//! Node 0 is the root; `left == 0` marks a leaf. Loading checks every index, so a corrupted
//! file is an error rather than a panic or an endless walk at prediction time.

mod build;
mod params;
mod tree;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::{Matrix, MlError, labels};
use build::{GrowLimits, GrownTree, TrainData, TreeBuilder};
pub use params::{ForestParams, MAX_THREADS, MAX_TREES, MaxFeatures};
use tree::{Tree, TreeRepr};

/// Version of the serialized model layout this build writes and reads.
pub const MODEL_FORMAT: u32 = 1;

/// Most rows a forest can be trained on (row ids and node ids are 32-bit).
pub const MAX_TRAINING_ROWS: usize = (u32::MAX / 2) as usize;

/// A trained random forest. Build one with [`RandomForest::fit`] or by deserializing a model
/// file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ForestRepr")]
pub struct RandomForest {
    n_features: usize,
    trees: Vec<Tree>,
    importances: Vec<f32>,
}

impl RandomForest {
    /// Trains a forest on `x` (one sample a row) and `y` (one label a row: 0 or 1).
    ///
    /// Fails on empty data, a matrix without columns, a label count that differs from the row
    /// count, labels other than 0 and 1, a single class, or invalid `params`.
    pub fn fit(x: &Matrix, y: &[u8], params: &ForestParams) -> Result<Self, MlError> {
        params.validate()?;
        if x.n_rows() == 0 {
            return Err(MlError::Empty);
        }
        if x.n_cols() == 0 {
            return Err(MlError::NoFeatures);
        }
        if x.n_rows() > MAX_TRAINING_ROWS {
            return Err(MlError::TooManyRows {
                n_rows: x.n_rows(),
                max: MAX_TRAINING_ROWS,
            });
        }
        if y.len() != x.n_rows() {
            return Err(MlError::LabelCount {
                got: y.len(),
                expected: x.n_rows(),
            });
        }
        labels::require_both_classes(y)?;
        let max_features = params.max_features.resolve(x.n_cols())?;

        let columns = x.to_column_major();
        let data = TrainData {
            columns: &columns,
            n_rows: x.n_rows(),
            n_features: x.n_cols(),
            labels: y,
        };
        let grown = grow_trees(&data, GrowLimits::new(params, max_features), params);
        let importances = combine_importances(&grown, x.n_cols());
        Ok(Self {
            n_features: x.n_cols(),
            trees: grown.into_iter().map(|g| g.tree).collect(),
            importances,
        })
    }

    /// Number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Total number of nodes over all trees (a measure of model size).
    pub fn node_count(&self) -> usize {
        self.trees.iter().map(Tree::node_count).sum()
    }

    /// Probability that `row` is positive: the mean of the leaf values it reaches, in
    /// `[0, 1]`. `NaN` features are read as missing; infinities compare as usual.
    ///
    /// Fails when `row` does not have [`n_features`](Self::n_features) values.
    pub fn predict_proba(&self, row: &[f32]) -> Result<f32, MlError> {
        if row.len() != self.n_features {
            return Err(MlError::RowLength {
                got: row.len(),
                expected: self.n_features,
            });
        }
        let sum: f64 = self.trees.iter().map(|t| f64::from(t.predict(row))).sum();
        Ok((sum / self.trees.len() as f64) as f32)
    }

    /// [`predict_proba`](Self::predict_proba) for every row of `x`, in order.
    pub fn predict_proba_batch(&self, x: &Matrix) -> Result<Vec<f32>, MlError> {
        if x.n_cols() != self.n_features {
            return Err(MlError::RowLength {
                got: x.n_cols(),
                expected: self.n_features,
            });
        }
        x.rows().map(|row| self.predict_proba(row)).collect()
    }

    /// Mean decrease in Gini impurity brought by each feature, averaged over the trees and
    /// normalized to sum to 1 (all zeros when no tree has a split).
    pub fn feature_importances(&self) -> &[f32] {
        &self.importances
    }
}

/// Grows `params.n_trees` trees on `params.effective_threads()` scoped threads, which take
/// the next tree index from a shared counter. Returned in tree order.
fn grow_trees(data: &TrainData<'_>, limits: GrowLimits, params: &ForestParams) -> Vec<GrownTree> {
    let next = AtomicUsize::new(0);
    let grow_some = || {
        let mut builder = TreeBuilder::new(data, limits);
        let mut grown = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= params.n_trees {
                return grown;
            }
            grown.push((index, builder.grow(params.seed.wrapping_add(index as u64))));
        }
    };
    let mut grown: Vec<(usize, GrownTree)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..params.effective_threads())
            .map(|_| scope.spawn(grow_some))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    grown.sort_unstable_by_key(|(index, _)| *index);
    grown.into_iter().map(|(_, tree)| tree).collect()
}

/// scikit-learn's reduction: normalize each tree's importances, average over the trees that
/// split at least once, normalize again.
fn combine_importances(grown: &[GrownTree], n_features: usize) -> Vec<f32> {
    let mut total = vec![0.0_f64; n_features];
    for tree in grown {
        let sum: f64 = tree.importances.iter().sum();
        if sum > 0.0 {
            for (t, imp) in total.iter_mut().zip(&tree.importances) {
                *t += imp / sum;
            }
        }
    }
    let sum: f64 = total.iter().sum();
    total
        .iter()
        .map(|&t| if sum > 0.0 { (t / sum) as f32 } else { 0.0 })
        .collect()
}

/// The serialized form of a [`RandomForest`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForestRepr {
    format: u32,
    n_features: usize,
    importances: Vec<f32>,
    trees: Vec<TreeRepr>,
}

impl Serialize for RandomForest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ForestRepr {
            format: MODEL_FORMAT,
            n_features: self.n_features,
            importances: self.importances.clone(),
            trees: self.trees.iter().map(TreeRepr::from).collect(),
        }
        .serialize(serializer)
    }
}

impl TryFrom<ForestRepr> for RandomForest {
    type Error = MlError;

    fn try_from(repr: ForestRepr) -> Result<Self, MlError> {
        let corrupt = |reason: String| Err(MlError::CorruptModel(reason));
        if repr.format != MODEL_FORMAT {
            return corrupt(format!(
                "format {} is not supported; this build reads format {MODEL_FORMAT}",
                repr.format
            ));
        }
        if repr.n_features == 0 || u32::try_from(repr.n_features).is_err() {
            return corrupt(format!("n_features {} is out of range", repr.n_features));
        }
        if !(1..=MAX_TREES).contains(&repr.trees.len()) {
            return corrupt(format!(
                "{} trees; a model has between 1 and {MAX_TREES}",
                repr.trees.len()
            ));
        }
        if repr.importances.len() != repr.n_features {
            return corrupt(format!(
                "{} importances for {} features",
                repr.importances.len(),
                repr.n_features
            ));
        }
        if let Some(bad) = repr
            .importances
            .iter()
            .find(|v| !(v.is_finite() && **v >= 0.0))
        {
            return corrupt(format!("importance {bad} is not a non-negative number"));
        }
        let trees = repr
            .trees
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                t.into_tree(repr.n_features)
                    .map_err(|reason| MlError::CorruptModel(format!("tree {i}, {reason}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            n_features: repr.n_features,
            trees,
            importances: repr.importances,
        })
    }
}

#[cfg(test)]
mod tests;
