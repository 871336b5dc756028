//! Stratified k-fold cross-validation.

use serde::{Deserialize, Serialize};

use crate::forest::{ForestParams, RandomForest};
use crate::labels;
use crate::metrics::BinaryReport;
use crate::rng::SplitMix64;
use crate::{Matrix, MlError};

/// Most folds a cross-validation may use.
pub const MAX_FOLDS: usize = 100;

/// One train/test split: row indices, each list in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// Rows to train on: every row not in `test`.
    pub train: Vec<usize>,
    /// Rows to evaluate on.
    pub test: Vec<usize>,
}

/// Splits the rows into `k` test folds of (nearly) equal size, each with (nearly) the
/// overall share of positives; every row is in exactly one test fold.
///
/// Each class is shuffled with `seed`, then dealt round-robin to the folds, so the split is
/// reproducible. Fails when `k` is not between 2 and [`MAX_FOLDS`], a label is not 0 or 1,
/// or a class has fewer than `k` samples (a fold would lack it, leaving AUC undefined).
pub fn stratified_k_fold(labels: &[u8], k: usize, seed: u64) -> Result<Vec<Fold>, MlError> {
    if !(2..=MAX_FOLDS).contains(&k) {
        return Err(MlError::InvalidParam {
            name: "k",
            reason: format!("{k} folds; use between 2 and {MAX_FOLDS}"),
        });
    }
    let counts = labels::require_both_classes(labels)?;
    for (class, count) in [(0, counts.negatives), (1, counts.positives)] {
        if count < k {
            return Err(MlError::TooFewSamples { class, count, k });
        }
    }

    let mut rng = SplitMix64::new(seed);
    let mut fold_of = vec![0; labels.len()];
    let mut dealt = 0;
    for class in [0, 1] {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut members);
        for row in members {
            fold_of[row] = dealt % k;
            dealt += 1;
        }
    }
    Ok((0..k)
        .map(|fold| {
            let (test, train) = (0..labels.len()).partition(|&row| fold_of[row] == fold);
            Fold { train, test }
        })
        .collect())
}

/// Per-fold results of a cross-validation and their means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// One report per fold, in fold order.
    pub folds: Vec<BinaryReport>,
    /// Means over the folds.
    pub mean: CvMean,
}

/// Means over the folds of a cross-validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CvMean {
    /// Mean ROC AUC.
    pub auc: f64,
    /// Mean accuracy at threshold 0.5.
    pub accuracy: f64,
    /// Mean detection rate at 1 % false positives.
    pub detection_at_1pct_fpr: f64,
}

/// Trains a forest with `params` on each training split of [`stratified_k_fold`]`(y, k,
/// seed)` and evaluates it on the held-out rows.
///
/// Fails on the errors of [`stratified_k_fold`] and [`RandomForest::fit`], and when `y` does
/// not have one label per row of `x`.
pub fn cross_validate(
    x: &Matrix,
    y: &[u8],
    params: &ForestParams,
    k: usize,
    seed: u64,
) -> Result<CvReport, MlError> {
    if y.len() != x.n_rows() {
        return Err(MlError::LabelCount {
            got: y.len(),
            expected: x.n_rows(),
        });
    }
    params.validate()?;
    let select = |rows: &[usize]| -> Vec<u8> { rows.iter().map(|&r| y[r]).collect() };
    let folds = stratified_k_fold(y, k, seed)?
        .iter()
        .map(|fold| {
            let forest =
                RandomForest::fit(&x.select_rows(&fold.train)?, &select(&fold.train), params)?;
            let scores = forest.predict_proba_batch(&x.select_rows(&fold.test)?)?;
            BinaryReport::compute(&scores, &select(&fold.test))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mean_of =
        |f: fn(&BinaryReport) -> f64| folds.iter().map(f).sum::<f64>() / folds.len() as f64;
    let mean = CvMean {
        auc: mean_of(|r| r.auc),
        accuracy: mean_of(|r| r.accuracy),
        detection_at_1pct_fpr: mean_of(|r| r.detection_at_1pct_fpr),
    };
    Ok(CvReport { folds, mean })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows_and_keep_the_class_balance() {
        let labels: Vec<u8> = (0..103).map(|i| u8::from(i % 4 == 0)).collect();
        let positives = labels.iter().filter(|&&l| l == 1).count(); // 26
        let folds = stratified_k_fold(&labels, 5, 7).unwrap();
        assert_eq!(folds.len(), 5);
        let mut seen = vec![0; labels.len()];
        for fold in &folds {
            assert_eq!(fold.train.len() + fold.test.len(), labels.len());
            assert!(fold.test.windows(2).all(|w| w[0] < w[1]));
            assert!((20..=21).contains(&fold.test.len()), "{}", fold.test.len());
            let fold_pos = fold.test.iter().filter(|&&r| labels[r] == 1).count();
            assert!((positives / 5..=positives / 5 + 1).contains(&fold_pos));
            for &r in &fold.test {
                seen[r] += 1;
                assert!(!fold.train.contains(&r));
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        assert_eq!(folds, stratified_k_fold(&labels, 5, 7).unwrap());
        assert_ne!(folds, stratified_k_fold(&labels, 5, 8).unwrap());
    }

    #[test]
    fn rejects_impossible_splits() {
        let labels = [0, 0, 0, 1, 1];
        assert!(matches!(
            stratified_k_fold(&labels, 1, 0),
            Err(MlError::InvalidParam { name: "k", .. })
        ));
        assert_eq!(
            stratified_k_fold(&labels, 3, 0),
            Err(MlError::TooFewSamples {
                class: 1,
                count: 2,
                k: 3
            })
        );
        assert_eq!(
            stratified_k_fold(&[0, 0], 2, 0),
            Err(MlError::OneClass { class: 0 })
        );
        assert!(stratified_k_fold(&labels, 2, 0).is_ok());
    }

    #[test]
    fn cross_validates_a_separable_problem() {
        let rows: Vec<[f32; 2]> = (0..60).map(|i| [i as f32, (i % 7) as f32]).collect();
        let labels: Vec<u8> = (0..60).map(|i| u8::from(i >= 30)).collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let params = ForestParams {
            n_trees: 10,
            ..ForestParams::default()
        };
        let report = cross_validate(&x, &labels, &params, 3, 1).unwrap();
        assert_eq!(report.folds.len(), 3);
        assert_eq!(report.folds.iter().map(|f| f.n).sum::<usize>(), 60);
        assert!(report.mean.auc > 0.99, "{report:?}");
        assert!(report.mean.accuracy > 0.9, "{report:?}");
        assert_eq!(
            cross_validate(&x, &labels[1..], &params, 3, 1),
            Err(MlError::LabelCount {
                got: 59,
                expected: 60
            })
        );
    }
}
