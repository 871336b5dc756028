//! Log anomaly detectors over log-key sessions, behind one interface.
//!
//! * [`iforest`]: an Isolation Forest over per-session key-count vectors.
//! * [`deeplog`]: DeepLog, an LSTM that predicts the next key (Du et al., CCS 2017).
//! * [`logbert`]: LogBERT, a transformer that predicts masked keys (Guo et al., IJCNN 2021).
//! * [`eval`]: the HDFS evaluation protocol (precision, recall, F1, FPR, speed).
//!
//! Every detector learns from normal sessions only, calls a key it never saw in training
//! anomalous on sight, and explains a verdict with a [`Reason`]. Scores are scaled so that
//! 1.0 is the detector's own threshold: a session is anomalous when its score reaches 1, and
//! an [`Ensemble`] can weigh detectors against each other.

#[cfg(feature = "neural")]
pub mod deeplog;
pub mod eval;
pub mod iforest;
#[cfg(feature = "neural")]
pub mod logbert;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Why a session was judged anomalous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A key never seen in training.
    UnseenKey {
        /// Position in the session (0-based).
        position: usize,
        /// The key.
        key: u32,
    },
    /// A key outside the model's top predictions for its position.
    Unexpected {
        /// Position in the session (0-based).
        position: usize,
        /// The key.
        key: u32,
        /// Its rank among the predictions (0 is the most likely).
        rank: usize,
        /// The most likely keys at that position, best first (`None` is the end of the
        /// session).
        expected: Vec<Option<u32>>,
    },
    /// The session ended where normal sessions do not.
    UnexpectedEnd {
        /// Keys in the session.
        length: usize,
        /// The most likely next keys, best first.
        expected: Vec<Option<u32>>,
    },
    /// The session's summary lies outside the sphere that holds normal sessions' (LogBERT's
    /// hypersphere).
    FarFromNormal {
        /// Squared distance of the session's summary to the centre.
        distance: f64,
        /// The largest squared distance normal sessions reach.
        radius: f64,
    },
    /// The session's mix of keys is an outlier.
    Outlier {
        /// The keys whose counts are furthest from normal sessions', with their counts.
        keys: Vec<(u32, u32)>,
    },
}

/// A detector's judgement of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The score reached the threshold.
    pub anomalous: bool,
    /// Score scaled so that 1.0 is the threshold.
    pub score: f64,
    /// Why, when anomalous.
    pub reason: Option<Reason>,
}

impl Verdict {
    fn normal(score: f64) -> Verdict {
        Verdict {
            anomalous: false,
            score,
            reason: None,
        }
    }
}

/// The keys seen in training, numbered densely from 1 (0 is reserved for padding).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    keys: Vec<u32>,
    #[serde(skip)]
    index: HashMap<u32, u32>,
}

impl Vocab {
    /// The vocabulary of some sessions, keys in ascending order.
    pub fn of<'a>(sessions: impl IntoIterator<Item = &'a [u32]>) -> Vocab {
        let mut keys: Vec<u32> = sessions.into_iter().flatten().copied().collect();
        keys.sort_unstable();
        keys.dedup();
        Vocab::from_keys(keys)
    }

    fn from_keys(keys: Vec<u32>) -> Vocab {
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32 + 1))
            .collect();
        Vocab { keys, index }
    }

    /// Rebuilds the lookup after deserialising.
    pub fn rebuilt(self) -> Vocab {
        Vocab::from_keys(self.keys)
    }

    /// The dense index of a key (from 1), `None` for an unseen key.
    pub fn index(&self, key: u32) -> Option<u32> {
        self.index.get(&key).copied()
    }

    /// The key of a dense index.
    pub fn key(&self, index: u32) -> Option<u32> {
        index
            .checked_sub(1)
            .and_then(|i| self.keys.get(i as usize))
            .copied()
    }

    /// Known keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The verdict on a session holding a key never seen in training (anomalous, at the
    /// highest score), or `None` when every key is known.
    pub fn unseen_verdict(&self, session: &[u32]) -> Option<Verdict> {
        self.first_unseen(session).map(|reason| Verdict {
            anomalous: true,
            score: 2.0,
            reason: Some(reason),
        })
    }

    /// The first unseen key of a session.
    pub fn first_unseen(&self, session: &[u32]) -> Option<Reason> {
        session
            .iter()
            .position(|k| !self.index.contains_key(k))
            .map(|position| Reason::UnseenKey {
                position,
                key: session[position],
            })
    }
}

/// A detector that cannot be trained or used.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// Too little or unusable training data.
    #[error("cannot train: {0}")]
    Training(String),
    /// A parameter out of range.
    #[error("bad parameter {name}: {reason}")]
    Param {
        /// Which.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A saved model that cannot be loaded.
    #[error("bad model: {0}")]
    Model(String),
}

/// `Err(DetectError::Param)` unless `ok`.
#[cfg_attr(not(feature = "neural"), allow(dead_code))]
fn check(ok: bool, name: &'static str, reason: &str) -> Result<(), DetectError> {
    if ok {
        Ok(())
    } else {
        Err(DetectError::Param {
            name,
            reason: reason.to_string(),
        })
    }
}

/// The optimiser parameters the neural detectors share.
#[cfg_attr(not(feature = "neural"), allow(dead_code))]
fn check_optimiser(
    epochs: usize,
    min_steps: usize,
    batch: usize,
    max_batch: usize,
    learning_rate: f64,
) -> Result<(), DetectError> {
    check(epochs <= 10_000, "epochs", "must be at most 10000")?;
    check(
        min_steps <= 1_000_000,
        "min_steps",
        "must be at most 1000000",
    )?;
    check(
        (1..=max_batch).contains(&batch),
        "batch",
        &format!("must be 1..={max_batch}"),
    )?;
    check(
        learning_rate > 0.0 && learning_rate < 1.0,
        "learning_rate",
        "must be in (0, 1)",
    )
}

/// A trained detector of any kind.
pub trait SessionDetector: Send + Sync {
    /// Short name (`iforest`, `deeplog`, …).
    fn name(&self) -> &'static str;
    /// Judges one session.
    fn judge(&self, session: &[u32]) -> Verdict;
    /// Judges several sessions, in order (detectors that batch their work override it).
    fn judge_many(&self, sessions: &[&[u32]]) -> Vec<Verdict> {
        sessions.iter().map(|s| self.judge(s)).collect()
    }
}

/// How an [`Ensemble`] combines its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Anomalous when any member says so.
    Any,
    /// Anomalous when more than half say so.
    Majority,
    /// Anomalous when the weighted mean of the members' scores (each capped at 2) reaches 1.
    Weighted,
}

/// Several detectors judged together.
pub struct Ensemble {
    /// Members with their weights.
    pub members: Vec<(Box<dyn SessionDetector>, f64)>,
    /// How their verdicts combine.
    pub policy: Policy,
}

impl SessionDetector for Ensemble {
    fn name(&self) -> &'static str {
        "ensemble"
    }

    fn judge(&self, session: &[u32]) -> Verdict {
        self.judge_many(&[session]).pop().expect("one verdict")
    }

    fn judge_many(&self, sessions: &[&[u32]]) -> Vec<Verdict> {
        let mut per_member: Vec<std::vec::IntoIter<Verdict>> = self
            .members
            .iter()
            .map(|(d, _)| d.judge_many(sessions).into_iter())
            .collect();
        (0..sessions.len())
            .map(|_| {
                let verdicts = per_member
                    .iter_mut()
                    .zip(&self.members)
                    .map(|(it, (_, w))| (it.next().expect("one verdict a session"), *w))
                    .collect();
                self.combine(verdicts)
            })
            .collect()
    }
}

impl Ensemble {
    fn combine(&self, verdicts: Vec<(Verdict, f64)>) -> Verdict {
        let votes = verdicts.iter().filter(|(v, _)| v.anomalous).count();
        let total_weight: f64 = verdicts.iter().map(|(_, w)| w).sum::<f64>().max(1e-12);
        let score = verdicts
            .iter()
            .map(|(v, w)| v.score.min(2.0) * w)
            .sum::<f64>()
            / total_weight;
        let anomalous = match self.policy {
            Policy::Any => votes > 0,
            Policy::Majority => votes * 2 > verdicts.len(),
            Policy::Weighted => score >= 1.0,
        };
        // The explanation of the most confident member that called it.
        let reason = if anomalous {
            verdicts
                .iter()
                .filter(|(v, _)| v.anomalous)
                .max_by(|a, b| a.0.score.total_cmp(&b.0.score))
                .and_then(|(v, _)| v.reason.clone())
        } else {
            None
        };
        Verdict {
            anomalous,
            score,
            reason,
        }
    }
}

/// Normal sessions for the detectors' tests: `1 2 3 4 5`, `1 2 3 3 4 5` and `1 2 7 8 5`,
/// twenty of each.
#[cfg(test)]
pub(crate) fn test_sessions() -> Vec<Vec<u32>> {
    (0..60)
        .map(|i| match i % 3 {
            0 => vec![1, 2, 3, 4, 5],
            1 => vec![1, 2, 3, 3, 4, 5],
            _ => vec![1, 2, 7, 8, 5],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool, f64);
    impl SessionDetector for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn judge(&self, _: &[u32]) -> Verdict {
            Verdict {
                anomalous: self.0,
                score: self.1,
                reason: self.0.then_some(Reason::Outlier { keys: vec![] }),
            }
        }
    }

    fn ensemble(policy: Policy) -> Ensemble {
        Ensemble {
            members: vec![
                (Box::new(Fixed(true, 1.5)), 1.0),
                (Box::new(Fixed(false, 0.2)), 1.0),
                (Box::new(Fixed(false, 0.9)), 1.0),
            ],
            policy,
        }
    }

    #[test]
    fn policies_combine_members() {
        assert!(ensemble(Policy::Any).judge(&[1]).anomalous);
        assert!(!ensemble(Policy::Majority).judge(&[1]).anomalous);
        let w = ensemble(Policy::Weighted).judge(&[1]);
        assert!((w.score - (1.5 + 0.2 + 0.9) / 3.0).abs() < 1e-12);
        assert!(!w.anomalous);
        assert!(ensemble(Policy::Any).judge(&[1]).reason.is_some());
    }

    #[test]
    fn vocab_numbers_keys_densely() {
        let s1: &[u32] = &[22, 5, 5];
        let s2: &[u32] = &[9];
        let v = Vocab::of([s1, s2]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.index(5), Some(1));
        assert_eq!(v.key(3), Some(22));
        assert_eq!(v.index(7), None);
        assert_eq!(v.key(0), None);
        assert_eq!(
            v.first_unseen(&[5, 7, 8]),
            Some(Reason::UnseenKey {
                position: 1,
                key: 7
            })
        );
        let json = serde_json::to_string(&v).unwrap();
        let back: Vocab = serde_json::from_str::<Vocab>(&json).unwrap().rebuilt();
        assert_eq!(back.index(22), Some(3));
    }
}
