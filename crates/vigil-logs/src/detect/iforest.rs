//! Isolation Forest over per-session key counts (as in Loglizer's HDFS baseline), reusing
//! `vigil-ml`'s forest.
//!
//! A session becomes a vector: how often each training key occurs, and the session's
//! length. The threshold is a high quantile of the training sessions' scores, so it is set
//! on normal data alone. Reasons name the keys whose counts are furthest (in standard
//! deviations) from normal sessions'.

use serde::{Deserialize, Serialize};
use vigil_ml::{IsolationForest, IsolationParams, Matrix};

use super::{DetectError, Reason, SessionDetector, Verdict, Vocab};

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IForestParams {
    /// Trees.
    pub trees: usize,
    /// Sessions per tree.
    pub max_samples: usize,
    /// Quantile of the training sessions' scores used as the threshold.
    pub quantile: f64,
    /// Random seed.
    pub seed: u64,
}

impl Default for IForestParams {
    fn default() -> Self {
        IForestParams {
            trees: 200,
            max_samples: 256,
            quantile: 0.995,
            seed: 0,
        }
    }
}

/// The trained detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IForestDetector {
    params: IForestParams,
    vocab: Vocab,
    forest: IsolationForest,
    threshold: f64,
    mean: Vec<f32>,
    std: Vec<f32>,
}

fn features(vocab: &Vocab, session: &[u32], out: &mut Vec<f32>) {
    out.clear();
    out.resize(vocab.len() + 1, 0.0);
    for &k in session {
        if let Some(i) = vocab.index(k) {
            out[i as usize - 1] += 1.0;
        }
    }
    out[vocab.len()] = session.len() as f32;
}

impl IForestDetector {
    /// Trains on normal sessions.
    pub fn train(sessions: &[Vec<u32>], params: &IForestParams) -> Result<Self, DetectError> {
        if !(0.5..1.0).contains(&params.quantile) {
            return Err(DetectError::Param {
                name: "quantile",
                reason: format!("{} is not in [0.5, 1)", params.quantile),
            });
        }
        let usable: Vec<&Vec<u32>> = sessions.iter().filter(|s| !s.is_empty()).collect();
        if usable.len() < 10 {
            return Err(DetectError::Training(format!(
                "{} non-empty sessions; at least 10 are needed",
                usable.len()
            )));
        }
        let vocab = Vocab::of(usable.iter().map(|s| s.as_slice()));
        let dims = vocab.len() + 1;
        let mut data = Vec::with_capacity(usable.len() * dims);
        let mut row = Vec::new();
        for s in &usable {
            features(&vocab, s, &mut row);
            data.extend_from_slice(&row);
        }
        let x = Matrix::new(data, usable.len(), dims)
            .map_err(|e| DetectError::Training(e.to_string()))?;
        let forest = IsolationForest::fit(
            &x,
            &IsolationParams {
                n_trees: params.trees,
                max_samples: params.max_samples,
                seed: params.seed,
                ..IsolationParams::default()
            },
        )
        .map_err(|e| DetectError::Training(e.to_string()))?;
        // Scored one by one, exactly as `judge` scores (batch scoring sums in another order).
        let mut scores = x
            .rows()
            .map(|r| forest.score(r))
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|e| DetectError::Training(e.to_string()))?;
        scores.sort_by(f64::total_cmp);
        let at = ((scores.len() as f64 * params.quantile).ceil() as usize).min(scores.len() - 1);
        let threshold = scores[at];
        let n = usable.len() as f32;
        let mut mean = vec![0f32; dims];
        let mut sq = vec![0f32; dims];
        for r in x.rows() {
            for (j, v) in r.iter().enumerate() {
                mean[j] += v;
                sq[j] += v * v;
            }
        }
        let std = mean
            .iter_mut()
            .zip(&sq)
            .map(|(m, s)| {
                *m /= n;
                (s / n - *m * *m).max(0.0).sqrt().max(0.5)
            })
            .collect();
        Ok(IForestDetector {
            params: params.clone(),
            vocab,
            forest,
            threshold,
            mean,
            std,
        })
    }

    /// Rebuilds lookups after deserialising and checks the model.
    pub fn loaded(mut self) -> Result<Self, DetectError> {
        self.vocab = self.vocab.rebuilt();
        self.forest
            .validate()
            .map_err(|e| DetectError::Model(e.to_string()))?;
        let dims = self.vocab.len() + 1;
        if self.forest.n_features() != dims || self.mean.len() != dims || self.std.len() != dims {
            return Err(DetectError::Model("feature sizes disagree".into()));
        }
        Ok(self)
    }

    /// The keys known from training.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The raw Isolation Forest threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    fn outlier_keys(&self, row: &[f32]) -> Vec<(u32, u32)> {
        let mut z: Vec<(f32, usize)> = row[..self.vocab.len()]
            .iter()
            .enumerate()
            .map(|(j, v)| (((v - self.mean[j]) / self.std[j]).abs(), j))
            .collect();
        z.sort_by(|a, b| b.0.total_cmp(&a.0));
        z.iter()
            .take(3)
            .filter(|(d, _)| *d >= 2.0)
            .filter_map(|&(_, j)| self.vocab.key(j as u32 + 1).map(|k| (k, row[j] as u32)))
            .collect()
    }
}

impl SessionDetector for IForestDetector {
    fn name(&self) -> &'static str {
        "iforest"
    }

    fn judge(&self, session: &[u32]) -> Verdict {
        if let Some(verdict) = self.vocab.unseen_verdict(session) {
            return verdict;
        }
        let mut row = Vec::new();
        features(&self.vocab, session, &mut row);
        let raw = self.forest.score(&row).unwrap_or(1.0);
        let score = raw / self.threshold.max(1e-12);
        if raw > self.threshold {
            Verdict {
                anomalous: true,
                score: score.max(1.0 + 1e-9),
                reason: Some(Reason::Outlier {
                    keys: self.outlier_keys(&row),
                }),
            }
        } else {
            Verdict::normal(score.min(1.0 - 1e-9))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HDFS-like sessions: a fixed frame with two or three replicas and some repeats.
    fn normal_sessions() -> Vec<Vec<u32>> {
        let mut rng = vigil_ml::rng::SplitMix64::new(3);
        (0..300)
            .map(|_| {
                let replicas = 2 + rng.below(2);
                let mut s = vec![22];
                s.extend(std::iter::repeat_n(5, replicas));
                for _ in 0..replicas {
                    s.extend([11, 9]);
                }
                s.extend(std::iter::repeat_n(26, replicas + rng.below(2)));
                s.extend(std::iter::repeat_n(23, replicas));
                s.extend(std::iter::repeat_n(21, replicas));
                s
            })
            .collect()
    }

    #[test]
    fn flags_odd_counts_and_unseen_keys() {
        let d = IForestDetector::train(&normal_sessions(), &IForestParams::default()).unwrap();
        assert!(
            !d.judge(&[22, 5, 5, 11, 9, 11, 9, 26, 26, 23, 23, 21, 21])
                .anomalous
        );
        let odd: Vec<u32> = std::iter::repeat_n(26, 40).collect();
        let v = d.judge(&odd);
        assert!(v.anomalous && v.score > 1.0, "{v:?}");
        match v.reason {
            Some(Reason::Outlier { keys }) => assert!(keys.contains(&(26, 40)), "{keys:?}"),
            other => panic!("{other:?}"),
        }
        let v = d.judge(&[22, 99]);
        assert_eq!(
            v.reason,
            Some(Reason::UnseenKey {
                position: 1,
                key: 99
            })
        );
        let json = serde_json::to_vec(&d).unwrap();
        let back: IForestDetector = serde_json::from_slice(&json).unwrap();
        let back = back.loaded().unwrap();
        assert_eq!(back.judge(&odd), d.judge(&odd));
    }

    #[test]
    fn identical_sessions_are_normal() {
        let s: Vec<u32> = vec![22, 5, 5, 5, 11, 9, 11, 9, 26, 26];
        let d = IForestDetector::train(&vec![s.clone(); 200], &IForestParams::default()).unwrap();
        assert!(!d.judge(&s).anomalous);
        // A forest cannot split on what never varied, so it cannot see a change there
        // either: the sequence detectors cover that.
        assert!(!d.judge(&[22, 5, 5, 5]).anomalous);
    }

    #[test]
    fn refuses_too_little_data() {
        assert!(IForestDetector::train(&[vec![1, 2]], &IForestParams::default()).is_err());
        let bad = IForestParams {
            quantile: 1.0,
            ..IForestParams::default()
        };
        assert!(IForestDetector::train(&normal_sessions(), &bad).is_err());
    }
}
