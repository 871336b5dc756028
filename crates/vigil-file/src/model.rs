//! The file model: a random forest over ClaMP's raw header features, saved with what it
//! was trained on, its parameters and its cross-validated metrics, loaded once and shared.

use crate::clamp::{self, FEATURES};
use crate::dataset::FeatureTable;
use crate::headers::Headers;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vigil_ml::cv::CvReport;
use vigil_ml::{ForestParams, Matrix, MlError, RandomForest};

/// What the model's features are: ClaMP's 53 raw header fields, as [`clamp::vector`].
pub const FEATURE_SET: &str = "clamp-raw-v1";
/// The model file's format name.
pub const FORMAT: &str = "vigil-file-model";
/// The model file's format version.
pub const FORMAT_VERSION: u32 = 1;

/// Why a model cannot be trained or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Training or cross-validation failed.
    #[error("{0}")]
    Ml(#[from] MlError),
    /// The file is not a model this version reads.
    #[error("not a Vigil file model: {0}")]
    Format(String),
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingData {
    /// A description of the source (the CSV's file name and kind).
    pub source: String,
    /// Rows trained on.
    pub rows: usize,
    /// Malware rows among them.
    pub positives: usize,
    /// SHA-256 of the feature rows and labels, to tell datasets apart.
    pub sha256: String,
}

/// A trained file model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileModel {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// An identifier of this model: the first 16 hex digits of the SHA-256 of its forest.
    pub model_id: String,
    /// When it was trained (RFC 3339 UTC).
    pub trained_at: String,
    /// [`FEATURE_SET`].
    pub feature_set: String,
    /// The feature names, in order.
    pub features: Vec<String>,
    /// What it was trained on.
    pub trained_on: TrainingData,
    /// Forest parameters.
    pub params: ForestParams,
    /// Cross-validation on the training data, when it was run.
    pub cross_validation: Option<CvReport>,
    /// The forest.
    pub forest: RandomForest,
}

fn table_digest(table: &FeatureTable) -> String {
    let mut h = Sha256::new();
    for (row, label) in table.rows.iter().zip(&table.labels) {
        for v in row {
            h.update(v.to_le_bytes());
        }
        h.update([*label]);
    }
    hex::encode(h.finalize())
}

impl FileModel {
    /// Trains on `table`, after `cv_folds`-fold stratified cross-validation when given.
    pub fn train(
        table: &FeatureTable,
        params: &ForestParams,
        source: &str,
        cv_folds: Option<usize>,
    ) -> Result<FileModel, ModelError> {
        let x = Matrix::from_rows(&table.rows)?;
        let cross_validation = cv_folds
            .map(|k| vigil_ml::cv::cross_validate(&x, &table.labels, params, k, params.seed))
            .transpose()?;
        let forest = RandomForest::fit(&x, &table.labels, params)?;
        let forest_json =
            serde_json::to_vec(&forest).map_err(|e| ModelError::Format(e.to_string()))?;
        Ok(FileModel {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            model_id: hex::encode(&Sha256::digest(&forest_json)[..8]),
            trained_at: vigil_core::now_rfc3339(),
            feature_set: FEATURE_SET.into(),
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            trained_on: TrainingData {
                source: source.to_string(),
                rows: table.rows.len(),
                positives: table.positives(),
                sha256: table_digest(table),
            },
            params: params.clone(),
            cross_validation,
            forest,
        })
    }

    /// Reads a model file, checking that it is one this version scores with.
    pub fn from_json(bytes: &[u8]) -> Result<FileModel, ModelError> {
        let model: FileModel =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Format(e.to_string()))?;
        if model.format != FORMAT || model.format_version != FORMAT_VERSION {
            return Err(ModelError::Format(format!(
                "format {} version {}; this Vigil reads {FORMAT} version {FORMAT_VERSION}",
                model.format, model.format_version
            )));
        }
        if model.feature_set != FEATURE_SET
            || model.features.iter().map(String::as_str).ne(FEATURES)
            || model.forest.n_features() != FEATURES.len()
        {
            return Err(ModelError::Format(format!(
                "feature set `{}` with {} features; this Vigil computes `{FEATURE_SET}`",
                model.feature_set,
                model.features.len()
            )));
        }
        Ok(model)
    }

    /// The model as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a model serializes")
    }

    /// The probability that the file with these headers is malware.
    pub fn score(&self, headers: &Headers) -> f32 {
        self.forest
            .predict_proba(&clamp::vector(headers))
            .expect("the feature count was checked at load")
    }

    /// Scores prepared feature rows (for evaluation).
    pub fn score_rows(&self, rows: &[Vec<f32>]) -> Result<Vec<f32>, ModelError> {
        Ok(self.forest.predict_proba_batch(&Matrix::from_rows(rows)?)?)
    }

    /// One line about the model, for explanations.
    pub fn describe(&self) -> String {
        format!(
            "random forest of {} trees on ClaMP header features, model {} trained on {} ({} rows)",
            self.forest.n_trees(),
            self.model_id,
            self.trained_on.source,
            self.trained_on.rows
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FeatureTable {
        // Malware-like rows have a high e_lfanew and an old year; benign the opposite.
        let mut t = FeatureTable::default();
        for i in 0..60u8 {
            let mut row = vec![0.0f32; FEATURES.len()];
            let bad = i % 2 == 0;
            row[16] = if bad { 248.0 } else { 128.0 } + f32::from(i % 5);
            row[19] = if bad { 1992.0 } else { 2015.0 };
            t.rows.push(row);
            t.labels.push(u8::from(bad));
        }
        t
    }

    #[test]
    fn train_save_load_score() {
        let params = ForestParams {
            n_trees: 20,
            ..ForestParams::default()
        };
        let model = FileModel::train(&table(), &params, "unit test", Some(3)).unwrap();
        assert_eq!(model.trained_on.rows, 60);
        assert_eq!(model.trained_on.positives, 30);
        assert!(model.cross_validation.as_ref().unwrap().mean.auc > 0.99);
        let loaded = FileModel::from_json(&model.to_json()).unwrap();
        assert_eq!(loaded.model_id, model.model_id);
        let mut h = Headers::default();
        h.dos.e_lfanew = 250;
        h.file.time_date_stamp = 700_000_000; // 1992
        assert!(loaded.score(&h) > 0.8);
        assert!(model.describe().contains("20 trees"));
    }

    #[test]
    fn foreign_files_are_refused() {
        assert!(FileModel::from_json(b"{}").is_err());
        let params = ForestParams {
            n_trees: 2,
            ..ForestParams::default()
        };
        let mut model = FileModel::train(&table(), &params, "t", None).unwrap();
        model.feature_set = "ember-v2".into();
        let e = FileModel::from_json(&model.to_json()).unwrap_err();
        assert!(e.to_string().contains("ember-v2"), "{e}");
    }
}
