//! The evaluation protocol for log-key detectors (`../shared/data/README.md`): train on
//! normal sessions only, score a labelled set and an all-abnormal set, report precision,
//! recall, F1, the false-positive rate on the labelled normal sessions, recall on the
//! abnormal set, training time and scoring throughput.

use serde::Serialize;

use super::{SessionDetector, Verdict};
use crate::keys::Session;

/// The figures of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Detector name.
    pub model: String,
    /// Precision on the labelled set.
    pub precision: f64,
    /// Recall on the labelled set.
    pub recall: f64,
    /// F1 on the labelled set.
    pub f1: f64,
    /// False-positive rate on the labelled set's normal sessions.
    pub fpr: f64,
    /// Labelled sessions (normal, abnormal).
    pub labelled: (usize, usize),
    /// Recall on the all-abnormal set, when given.
    pub abnormal_recall: Option<f64>,
    /// Sessions in the all-abnormal set.
    pub abnormal_sessions: usize,
    /// Training time.
    pub train_seconds: f64,
    /// Sessions scored per second (all sets, on `threads` threads).
    pub sessions_per_second: f64,
    /// Scoring threads.
    pub threads: usize,
}

/// Judges sessions on `threads` threads (0: all cores), in order.
pub fn judge_all(
    detector: &dyn SessionDetector,
    sessions: &[Session],
    threads: usize,
) -> Vec<Verdict> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let chunk = sessions.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let keys: Vec<&[u32]> = part.iter().map(|s| s.keys.as_slice()).collect();
                    detector.judge_many(&keys)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a scoring thread panicked"))
            .collect()
    })
}

/// Scores `labelled` (each with a label) and `abnormal` with a trained detector.
pub fn evaluate(
    detector: &dyn SessionDetector,
    train_seconds: f64,
    labelled: &[Session],
    abnormal: &[Session],
    threads: usize,
) -> Evaluation {
    let start = std::time::Instant::now();
    let verdicts = judge_all(detector, labelled, threads);
    let abnormal_verdicts = judge_all(detector, abnormal, threads);
    let seconds = start.elapsed().as_secs_f64();
    let (mut tp, mut fp, mut tn, mut fn_) = (0usize, 0usize, 0usize, 0usize);
    for (s, v) in labelled.iter().zip(&verdicts) {
        match (s.label == Some(true), v.anomalous) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let caught = abnormal_verdicts.iter().filter(|v| v.anomalous).count();
    Evaluation {
        model: detector.name().to_string(),
        precision,
        recall,
        f1,
        fpr: ratio(fp, fp + tn),
        labelled: (fp + tn, tp + fn_),
        abnormal_recall: (!abnormal.is_empty()).then(|| ratio(caught, abnormal.len())),
        abnormal_sessions: abnormal.len(),
        train_seconds,
        sessions_per_second: (labelled.len() + abnormal.len()) as f64 / seconds.max(1e-9),
        threads: if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Verdict;

    /// Calls a session anomalous when it contains key 7.
    struct Sevens;
    impl SessionDetector for Sevens {
        fn name(&self) -> &'static str {
            "sevens"
        }
        fn judge(&self, s: &[u32]) -> Verdict {
            Verdict {
                anomalous: s.contains(&7),
                score: 0.0,
                reason: None,
            }
        }
    }

    #[test]
    fn counts_the_confusion_matrix() {
        let s = |keys: &[u32], label| Session {
            keys: keys.to_vec(),
            label: Some(label),
        };
        // 2 TP, 1 FN, 1 FP, 2 TN.
        let labelled = [
            s(&[7], true),
            s(&[1, 7], true),
            s(&[1], true),
            s(&[7], false),
            s(&[1], false),
            s(&[2], false),
        ];
        let abnormal = [s(&[7], true), s(&[3], true)];
        let e = evaluate(&Sevens, 0.0, &labelled, &abnormal, 2);
        assert!((e.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.fpr - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.abnormal_recall, Some(0.5));
        assert_eq!(e.labelled, (3, 3));
        let verdicts = judge_all(&Sevens, &labelled, 4);
        assert_eq!(
            verdicts.iter().map(|v| v.anomalous).collect::<Vec<_>>(),
            [true, true, false, true, false, false]
        );
    }
}
