//! Vigil's machine learning without a framework: std and serde only, so that every detector
//! can train and score models without pulling in a numeric stack.
//!
//! * [`Matrix`]: dense, row-major `f32` features; `NaN` marks a missing value.
//! * [`forest`]: a random forest classifier for binary labels (CART trees, Gini impurity),
//!   trained in parallel and deterministic for a given seed, with a validated JSON model
//!   format.
//! * [`isolation`]: the Isolation Forest (Liu et al. 2008) for unsupervised anomaly
//!   scores, with per-feature contributions.
//! * [`metrics`]: ROC AUC, accuracy, detection rate at a false-positive budget, precision,
//!   recall, F1, gathered in a [`BinaryReport`](metrics::BinaryReport).
//! * [`cv`]: stratified k-fold splits and cross-validation of a forest.
//! * [`dataset`]: a numeric CSV reader for training data.
//!
//! ```
//! use vigil_ml::{ForestParams, Matrix, RandomForest};
//!
//! // Two features; positive when the first is large.
//! let rows: Vec<[f32; 2]> = (0..40).map(|i| [i as f32, (i % 3) as f32]).collect();
//! let labels: Vec<u8> = (0..40).map(|i| u8::from(i >= 20)).collect();
//! let x = Matrix::from_rows(&rows)?;
//! let params = ForestParams { n_trees: 20, ..ForestParams::default() };
//! let forest = RandomForest::fit(&x, &labels, &params)?;
//! assert!(forest.predict_proba(&[35.0, 1.0])? > 0.9);
//! assert!(forest.predict_proba(&[f32::NAN, 1.0])? < 0.5); // missing values go left
//!
//! let model = serde_json::to_string(&forest).expect("a forest serializes");
//! let loaded: RandomForest = serde_json::from_str(&model).expect("and loads back");
//! assert_eq!(loaded, forest);
//! # Ok::<(), vigil_ml::MlError>(())
//! ```
//!
//! Every fallible function returns [`MlError`]; malformed input (ragged rows, bad labels, a
//! corrupted model file) is an error, never a panic.
#![warn(missing_docs)]

pub mod cv;
pub mod dataset;
mod error;
pub mod forest;
pub mod isolation;
mod labels;
mod matrix;
pub mod metrics;
mod order;
pub mod rng;

pub use error::MlError;
pub use forest::{ForestParams, MaxFeatures, RandomForest};
pub use isolation::{IsolationForest, IsolationParams};
pub use matrix::Matrix;
