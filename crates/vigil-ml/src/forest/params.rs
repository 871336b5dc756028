//! Training parameters of a random forest.

use serde::{Deserialize, Serialize};

use crate::MlError;

/// Most trees a forest may have.
pub const MAX_TREES: usize = 10_000;
/// Most training threads a forest may use.
pub const MAX_THREADS: usize = 256;

/// How many features each split draws at random and searches.
///
/// In configuration: `"sqrt"`, `"all"`, `{ fraction = 0.3 }` or `{ count = 8 }`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MaxFeatures {
    /// ⌊√n_features⌋, at least 1: the usual choice for classification.
    #[default]
    Sqrt,
    /// Every feature (bagged trees rather than a random forest).
    All,
    /// ⌊fraction × n_features⌋, at least 1; the fraction must be in (0, 1].
    Fraction(f32),
    /// Exactly this many, between 1 and the number of features.
    Count(usize),
}

impl MaxFeatures {
    /// How many features to draw for `n_features` features.
    pub fn resolve(self, n_features: usize) -> Result<usize, MlError> {
        let invalid = |reason: String| MlError::InvalidParam {
            name: "max_features",
            reason,
        };
        match self {
            Self::Sqrt => Ok(((n_features as f64).sqrt() as usize).max(1)),
            Self::All => Ok(n_features),
            Self::Fraction(f) if is_valid_fraction(f) => {
                Ok(((f64::from(f) * n_features as f64) as usize).max(1))
            }
            Self::Fraction(f) => Err(invalid(format!("fraction {f} is not in (0, 1]"))),
            Self::Count(c) if (1..=n_features).contains(&c) => Ok(c),
            Self::Count(c) => Err(invalid(format!(
                "count {c} is not between 1 and the {n_features} features"
            ))),
        }
    }
}

fn is_valid_fraction(f: f32) -> bool {
    f.is_finite() && f > 0.0 && f <= 1.0
}

/// How to grow a [`RandomForest`](super::RandomForest). Every field has a default, so an
/// empty configuration table is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForestParams {
    /// Number of trees, 1 to [`MAX_TREES`]. Default 200.
    pub n_trees: usize,
    /// Deepest a tree may grow (the root is depth 0), at least 1; `None` grows each tree until
    /// its leaves are pure or too small to split. Default `None`.
    pub max_depth: Option<usize>,
    /// A node with fewer (bootstrap-weighted) samples than this becomes a leaf; at least 2.
    /// Default 2.
    pub min_samples_split: usize,
    /// Fewest (bootstrap-weighted) samples on each side of a split; at least 1. Default 1.
    pub min_samples_leaf: usize,
    /// Features drawn at random for each split. Default [`MaxFeatures::Sqrt`].
    pub max_features: MaxFeatures,
    /// Train each tree on a bootstrap sample (as many draws with replacement as there are
    /// rows) rather than on every row. Default `true`.
    pub bootstrap: bool,
    /// Seed of all randomness: the same seed, data and parameters give the same forest,
    /// whatever `threads` is. Default 0.
    pub seed: u64,
    /// Training threads, at most [`MAX_THREADS`]; 0 uses the available parallelism.
    /// Default 0.
    pub threads: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            n_trees: 200,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            seed: 0,
            threads: 0,
        }
    }
}

impl ForestParams {
    /// Checks every field that does not depend on the data (see also
    /// [`MaxFeatures::resolve`]).
    pub fn validate(&self) -> Result<(), MlError> {
        let invalid = |name, reason: &str| {
            Err(MlError::InvalidParam {
                name,
                reason: reason.to_owned(),
            })
        };
        if !(1..=MAX_TREES).contains(&self.n_trees) {
            return invalid("n_trees", &format!("must be between 1 and {MAX_TREES}"));
        }
        if self.max_depth == Some(0) {
            return invalid("max_depth", "must be at least 1 (or absent for no limit)");
        }
        if self.min_samples_split < 2 {
            return invalid("min_samples_split", "must be at least 2");
        }
        if self.min_samples_leaf < 1 {
            return invalid("min_samples_leaf", "must be at least 1");
        }
        if self.threads > MAX_THREADS {
            return invalid(
                "threads",
                &format!("must be at most {MAX_THREADS} (0 = available parallelism)"),
            );
        }
        if let MaxFeatures::Fraction(f) = self.max_features
            && !is_valid_fraction(f)
        {
            return invalid("max_features", &format!("fraction {f} is not in (0, 1]"));
        }
        Ok(())
    }

    /// Threads to train `n_trees` trees with: `threads`, or the available parallelism when 0,
    /// never more than the trees.
    pub(crate) fn effective_threads(&self) -> usize {
        let wanted = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        wanted.clamp(1, self.n_trees.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_empty_config_agree() {
        let from_json: ForestParams = serde_json::from_str("{}").unwrap();
        assert_eq!(from_json, ForestParams::default());
        assert_eq!(from_json.n_trees, 200);
        assert!(from_json.validate().is_ok());
    }

    #[test]
    fn max_features_config_forms() {
        let p: ForestParams =
            serde_json::from_str(r#"{"max_features": {"fraction": 0.5}, "n_trees": 3}"#).unwrap();
        assert_eq!(p.max_features, MaxFeatures::Fraction(0.5));
        let p: ForestParams = serde_json::from_str(r#"{"max_features": "all"}"#).unwrap();
        assert_eq!(p.max_features, MaxFeatures::All);
        let p: ForestParams = serde_json::from_str(r#"{"max_features": {"count": 4}}"#).unwrap();
        assert_eq!(p.max_features, MaxFeatures::Count(4));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<ForestParams>(r#"{"n_tree": 10}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `n_tree`"), "{err}");
    }

    #[test]
    fn resolves_feature_counts() {
        assert_eq!(MaxFeatures::Sqrt.resolve(53), Ok(7));
        assert_eq!(MaxFeatures::Sqrt.resolve(1), Ok(1));
        assert_eq!(MaxFeatures::All.resolve(53), Ok(53));
        assert_eq!(MaxFeatures::Fraction(0.5).resolve(53), Ok(26));
        assert_eq!(MaxFeatures::Fraction(0.001).resolve(53), Ok(1));
        assert_eq!(MaxFeatures::Count(53).resolve(53), Ok(53));
        assert!(MaxFeatures::Count(54).resolve(53).is_err());
        assert!(MaxFeatures::Count(0).resolve(53).is_err());
        assert!(MaxFeatures::Fraction(f32::NAN).resolve(53).is_err());
        assert!(MaxFeatures::Fraction(1.5).resolve(53).is_err());
    }

    #[test]
    fn rejects_bad_params() {
        let bad = [
            ForestParams {
                n_trees: 0,
                ..Default::default()
            },
            ForestParams {
                n_trees: MAX_TREES + 1,
                ..Default::default()
            },
            ForestParams {
                max_depth: Some(0),
                ..Default::default()
            },
            ForestParams {
                min_samples_split: 1,
                ..Default::default()
            },
            ForestParams {
                min_samples_leaf: 0,
                ..Default::default()
            },
            ForestParams {
                threads: MAX_THREADS + 1,
                ..Default::default()
            },
            ForestParams {
                max_features: MaxFeatures::Fraction(0.0),
                ..Default::default()
            },
        ];
        for params in bad {
            assert!(
                matches!(params.validate(), Err(MlError::InvalidParam { .. })),
                "{params:?}"
            );
        }
        let err = ForestParams {
            n_trees: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameter `n_trees`: must be between 1 and 10000"
        );
    }

    #[test]
    fn thread_count_is_bounded_by_trees() {
        let p = ForestParams {
            n_trees: 3,
            threads: 8,
            ..Default::default()
        };
        assert_eq!(p.effective_threads(), 3);
        let p = ForestParams {
            threads: 0,
            ..Default::default()
        };
        assert!(p.effective_threads() >= 1);
    }
}
