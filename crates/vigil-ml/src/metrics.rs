//! Evaluation of binary scores against labels (1 = positive, 0 = negative).
//!
//! A sample is predicted positive when its score is `>= threshold`. `NaN` scores rank below
//! every number and are never predicted positive.
//!
//! The functions return `None` when the measure is undefined for the input: a class missing
//! where the measure needs both, no samples, a label other than 0 and 1, or `scores` and
//! `labels` of different lengths. [`BinaryReport::compute`] says which with an error.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::MlError;
use crate::labels::{self, ClassCounts};
use crate::order::order_key;

/// The best detection rate within a false-positive budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectionAtFpr {
    /// True-positive rate (detection rate) reached.
    pub tpr: f64,
    /// False-positive rate at that threshold, within the budget.
    pub fpr: f64,
    /// Lowest score predicted positive; `f32::INFINITY` when no threshold fits the budget
    /// and nothing is predicted positive.
    pub threshold: f32,
}

/// Precision, recall and their harmonic mean at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecallF1 {
    /// True positives over predicted positives; 0 when nothing is predicted positive.
    pub precision: f64,
    /// True positives over actual positives (the detection rate); 0 when there are none.
    pub recall: f64,
    /// 2 · precision · recall / (precision + recall); 0 when both are 0.
    pub f1: f64,
}

/// The usual summary of a binary classifier on one evaluation set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryReport {
    /// Samples evaluated.
    pub n: usize,
    /// Positive samples among them.
    pub positives: usize,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Accuracy at threshold 0.5.
    pub accuracy: f64,
    /// Best detection rate with at most 1 % false positives.
    pub detection_at_1pct_fpr: f64,
    /// Precision at threshold 0.5.
    pub precision: f64,
    /// Recall at threshold 0.5.
    pub recall: f64,
    /// F1 at threshold 0.5.
    pub f1: f64,
}

impl BinaryReport {
    /// Scores `scores` (one per sample, higher = more likely positive) against `labels`.
    ///
    /// Fails when the lengths differ, a label is not 0 or 1, or a class is missing.
    pub fn compute(scores: &[f32], labels: &[u8]) -> Result<Self, MlError> {
        if scores.len() != labels.len() {
            return Err(MlError::LabelCount {
                got: labels.len(),
                expected: scores.len(),
            });
        }
        let counts = labels::require_both_classes(labels)?;
        let prf = prf_unchecked(scores, labels, counts, 0.5);
        Ok(Self {
            n: labels.len(),
            positives: counts.positives,
            auc: auc_unchecked(scores, labels, counts),
            accuracy: accuracy_unchecked(scores, labels, 0.5),
            detection_at_1pct_fpr: detection_unchecked(scores, labels, counts, 0.01).tpr,
            precision: prf.precision,
            recall: prf.recall,
            f1: prf.f1,
        })
    }
}

/// Class counts if `scores` and `labels` pair up and every label is 0 or 1.
fn checked(scores: &[f32], labels: &[u8]) -> Option<ClassCounts> {
    if scores.len() != labels.len() {
        return None;
    }
    labels::count_classes(labels).ok()
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann–Whitney statistic, with averaged ranks).
///
/// `None` when either class is missing or the input is invalid.
pub fn roc_auc(scores: &[f32], labels: &[u8]) -> Option<f64> {
    let counts = checked(scores, labels)?;
    (counts.positives > 0 && counts.negatives > 0).then(|| auc_unchecked(scores, labels, counts))
}

fn auc_unchecked(scores: &[f32], labels: &[u8], counts: ClassCounts) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by_key(|&i| order_key(scores[i]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let key = order_key(scores[order[start]]);
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| order_key(scores[i]) == key)
                .count();
        // Ranks start + 1 ..= end share their mean.
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end]
            .iter()
            .filter(|&&i| labels[i] == 1)
            .count();
        positive_rank_sum += mean_rank * positives as f64;
        start = end;
    }
    let p = counts.positives as f64;
    let n = counts.negatives as f64;
    (positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Fraction of samples classified correctly at `threshold`. `None` when there are no
/// samples or the input is invalid.
pub fn accuracy(scores: &[f32], labels: &[u8], threshold: f32) -> Option<f64> {
    checked(scores, labels)?;
    (!labels.is_empty()).then(|| accuracy_unchecked(scores, labels, threshold))
}

fn accuracy_unchecked(scores: &[f32], labels: &[u8], threshold: f32) -> f64 {
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|&(&s, &l)| (s >= threshold) == (l == 1))
        .count();
    correct as f64 / labels.len() as f64
}

/// The threshold with the highest true-positive rate whose false-positive rate is at most
/// `max_fpr`; among equal rates, the highest threshold (lowest false-positive rate).
///
/// `None` when either class is missing, `max_fpr` is negative or `NaN`, or the input is
/// invalid.
pub fn detection_at_fpr(scores: &[f32], labels: &[u8], max_fpr: f64) -> Option<DetectionAtFpr> {
    let counts = checked(scores, labels)?;
    (counts.positives > 0 && counts.negatives > 0 && max_fpr >= 0.0)
        .then(|| detection_unchecked(scores, labels, counts, max_fpr))
}

fn detection_unchecked(
    scores: &[f32],
    labels: &[u8],
    counts: ClassCounts,
    max_fpr: f64,
) -> DetectionAtFpr {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by_key(|&i| Reverse(order_key(scores[i])));
    let mut best = DetectionAtFpr {
        tpr: 0.0,
        fpr: 0.0,
        threshold: f32::INFINITY,
    };
    let (mut true_pos, mut false_pos) = (0usize, 0usize);
    let mut start = 0;
    // Lower the threshold one distinct score at a time; both rates only grow.
    while start < order.len() {
        let score = scores[order[start]];
        if score.is_nan() {
            break;
        }
        let key = order_key(score);
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| order_key(scores[i]) == key)
                .count();
        let positives = order[start..end]
            .iter()
            .filter(|&&i| labels[i] == 1)
            .count();
        true_pos += positives;
        false_pos += end - start - positives;
        let fpr = false_pos as f64 / counts.negatives as f64;
        if fpr > max_fpr {
            break;
        }
        let tpr = true_pos as f64 / counts.positives as f64;
        if tpr > best.tpr {
            best = DetectionAtFpr {
                tpr,
                fpr,
                threshold: score,
            };
        }
        start = end;
    }
    best
}

/// Precision, recall and F1 at `threshold`. `None` when there are no samples or the input
/// is invalid.
pub fn precision_recall_f1(
    scores: &[f32],
    labels: &[u8],
    threshold: f32,
) -> Option<PrecisionRecallF1> {
    let counts = checked(scores, labels)?;
    (!labels.is_empty()).then(|| prf_unchecked(scores, labels, counts, threshold))
}

fn prf_unchecked(
    scores: &[f32],
    labels: &[u8],
    counts: ClassCounts,
    threshold: f32,
) -> PrecisionRecallF1 {
    let (mut true_pos, mut predicted_pos) = (0usize, 0usize);
    for (&s, &l) in scores.iter().zip(labels) {
        if s >= threshold {
            predicted_pos += 1;
            true_pos += usize::from(l == 1);
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(true_pos, predicted_pos);
    let recall = ratio(true_pos, counts.positives);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    PrecisionRecallF1 {
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_by_hand() {
        // scikit-learn's documentation example.
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), Some(0.75));
        // Positives {0.5, 0.9}, negatives {0.5, 0.2}: pairs 0.5 (tie) + 1 + 1 + 1 = 3.5 of 4.
        assert_eq!(roc_auc(&[0.5, 0.5, 0.2, 0.9], &[1, 0, 0, 1]), Some(0.875));
        // All tied: 0.5. Perfectly separated: 1. Reversed: 0.
        assert_eq!(roc_auc(&[0.3; 4], &[0, 1, 0, 1]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &[0, 0, 1, 1]), Some(0.0));
        // -0.0 and 0.0 tie; NaN ranks lowest.
        assert_eq!(roc_auc(&[-0.0, 0.0], &[0, 1]), Some(0.5));
        assert_eq!(roc_auc(&[f32::NAN, -1.0], &[0, 1]), Some(1.0));
    }

    #[test]
    fn auc_undefined_cases() {
        assert_eq!(roc_auc(&[0.1, 0.9], &[1, 1]), None);
        assert_eq!(roc_auc(&[0.1, 0.9], &[0, 0]), None);
        assert_eq!(roc_auc(&[], &[]), None);
        assert_eq!(roc_auc(&[0.1, 0.9], &[0]), None);
        assert_eq!(roc_auc(&[0.1, 0.9], &[0, 2]), None);
    }

    #[test]
    fn detection_at_fpr_by_hand() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [1, 1, 0, 1, 0, 0];
        // No false positive allowed: stop above 0.7, catching 2 of 3.
        let d = detection_at_fpr(&scores, &labels, 0.0).unwrap();
        assert!(close(d.tpr, 2.0 / 3.0));
        assert_eq!((d.fpr, d.threshold), (0.0, 0.8));
        // One false positive in three allowed: threshold 0.6 catches all.
        let d = detection_at_fpr(&scores, &labels, 0.34).unwrap();
        assert_eq!((d.tpr, d.threshold), (1.0, 0.6));
        assert!(close(d.fpr, 1.0 / 3.0));
        // A negative tied with the top positive cannot be separated from it.
        let d = detection_at_fpr(&[0.9, 0.9, 0.1], &[1, 0, 1], 0.0).unwrap();
        assert_eq!(
            d,
            DetectionAtFpr {
                tpr: 0.0,
                fpr: 0.0,
                threshold: f32::INFINITY
            }
        );
        assert_eq!(detection_at_fpr(&scores, &[1; 6], 0.01), None);
        assert_eq!(detection_at_fpr(&scores, &labels, -0.1), None);
        assert_eq!(detection_at_fpr(&scores, &labels, f64::NAN), None);
    }

    #[test]
    fn accuracy_and_prf_by_hand() {
        let scores = [0.9, 0.6, 0.5, 0.4, 0.1, f32::NAN];
        let labels = [1, 0, 1, 1, 0, 1];
        // Predicted positive: 0.9, 0.6, 0.5. Correct: 0.9, 0.5, 0.1 → 3 of 6.
        assert_eq!(accuracy(&scores, &labels, 0.5), Some(0.5));
        let prf = precision_recall_f1(&scores, &labels, 0.5).unwrap();
        assert!(close(prf.precision, 2.0 / 3.0));
        assert!(close(prf.recall, 0.5));
        assert!(close(prf.f1, 4.0 / 7.0));
        let none = precision_recall_f1(&scores, &labels, 2.0).unwrap();
        assert_eq!((none.precision, none.recall, none.f1), (0.0, 0.0, 0.0));
        assert_eq!(accuracy(&[], &[], 0.5), None);
        assert_eq!(accuracy(&[0.5], &[0, 1], 0.5), None);
        // One class is fine for accuracy.
        assert_eq!(accuracy(&[0.2, 0.7], &[0, 0], 0.5), Some(0.5));
    }

    #[test]
    fn report_gathers_everything_and_names_bad_input() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [1, 1, 0, 1, 0, 0];
        let report = BinaryReport::compute(&scores, &labels).unwrap();
        assert_eq!((report.n, report.positives), (6, 3));
        assert!(close(report.auc, 8.0 / 9.0));
        assert!(close(report.detection_at_1pct_fpr, 2.0 / 3.0));
        // At 0.5, the negatives scored 0.7 and 0.5 are false positives.
        assert!(close(report.accuracy, 4.0 / 6.0));
        assert!(close(report.precision, 0.6));
        assert_eq!(report.recall, 1.0);
        assert_eq!(
            BinaryReport::compute(&scores, &[1; 6]),
            Err(MlError::OneClass { class: 1 })
        );
        assert_eq!(
            BinaryReport::compute(&scores, &[1, 0]),
            Err(MlError::LabelCount {
                got: 2,
                expected: 6
            })
        );
        assert_eq!(BinaryReport::compute(&[], &[]), Err(MlError::Empty));
        let json = serde_json::to_value(report).unwrap();
        assert_eq!(json["positives"], 3);
    }
}
