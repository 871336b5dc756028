//! The file-analysis engine: static analysis, YARA and the model on one file's bytes, with
//! a verdict. Shared by the CLI, the REST API and the binary protocol; VirusTotal and
//! dynamic evidence are added by the callers that have them.

use crate::analysis::{Limits, StaticReport, analyze};
use crate::model::FileModel;
use crate::verdict::{Evidence, Verdict, combine};
use crate::yara::{RuleError, Yara, YaraMatch};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The `[file]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Score at or above which a file is called malicious.
    pub threshold: f64,
    /// Folders of `.yar`/`.yara` rules loaded at start and on reload.
    pub yara_rules: Vec<PathBuf>,
    /// Also load Vigil's default rules (`rules/yara/`, built in).
    pub builtin_rules: bool,
    /// Time limit of one YARA scan, in milliseconds.
    pub yara_timeout_ms: u64,
    /// A model trained by `vigil file train`; without one, files are judged on YARA (and
    /// VirusTotal, dynamic evidence) alone.
    pub model: Option<PathBuf>,
    /// Limits of the static analysis (file size, listed imports and exports).
    pub limits: Limits,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            threshold: 0.5,
            yara_rules: Vec::new(),
            builtin_rules: true,
            yara_timeout_ms: 5_000,
            model: None,
            limits: Limits::default(),
        }
    }
}

/// Why the engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Rules that do not compile, each with file, line and column.
    #[error("YARA rules do not compile:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<RuleError>),
    /// The model file cannot be read.
    #[error("model {path}: {message}")]
    Model {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// What the engine says about one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// SHA-256.
    pub sha256: String,
    /// Whether it is a PE file whose headers could be read.
    pub is_pe: bool,
    /// Combined score in [0, 1].
    pub score: f64,
    /// `malicious` or `clean`.
    pub verdict: &'static str,
    /// Names of the YARA rules that matched.
    pub yara: Vec<String>,
    /// What drove the score, strongest first.
    pub explanation: Vec<String>,
    /// The model's probability, when a model is loaded and the file is a PE.
    pub model_score: Option<f32>,
    /// The full verdict with its evidence.
    pub details: Verdict,
    /// YARA matches with their metadata.
    pub yara_matches: Vec<YaraMatch>,
    /// The YARA scan's error, if it failed (timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yara_error: Option<String>,
    /// The static analysis.
    #[serde(rename = "static")]
    pub static_report: StaticReport,
}

/// The engine: rules and model loaded once, shared by every caller.
pub struct FileEngine {
    config: FileConfig,
    yara: Yara,
    model: Option<Arc<FileModel>>,
}

impl FileEngine {
    /// Compiles the rules and loads the model named in `config`.
    pub fn new(config: FileConfig) -> Result<FileEngine, EngineError> {
        let yara = Yara::load(
            config.yara_rules.clone(),
            config.builtin_rules,
            Duration::from_millis(config.yara_timeout_ms),
        )
        .map_err(EngineError::Rules)?;
        let model = match &config.model {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| EngineError::Model {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                let model = FileModel::from_json(&bytes).map_err(|e| EngineError::Model {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                Some(Arc::new(model))
            }
        };
        Ok(FileEngine {
            config,
            yara,
            model,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FileConfig {
        &self.config
    }

    /// The YARA rules in force (to reload them).
    pub fn yara(&self) -> &Yara {
        &self.yara
    }

    /// The model, if one is loaded.
    pub fn model(&self) -> Option<&Arc<FileModel>> {
        self.model.as_ref()
    }

    /// Static evidence for `bytes`: the static report, YARA matches, the model's score.
    fn static_evidence(
        &self,
        bytes: &[u8],
    ) -> (
        StaticReport,
        Vec<YaraMatch>,
        Option<String>,
        Option<f32>,
        Vec<Evidence>,
    ) {
        let report = analyze(bytes, &self.config.limits);
        let mut evidence = Vec::new();
        let (matches, yara_error) = match self.yara.scan(bytes) {
            Ok(m) => (m, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        for m in &matches {
            let description = m
                .meta
                .get("description")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            // Packers, protectors and installers are common in clean software, and one
            // packer trips several structure rules: they count for half.
            let weight = if m
                .tags
                .iter()
                .any(|t| matches!(t.as_str(), "packer" | "protector" | "installer"))
            {
                0.5
            } else {
                1.0
            };
            evidence.push(Evidence::new(
                "yara",
                m.score().unwrap_or(50.0) / 100.0,
                weight,
                format!("rule {}: {description}", m.rule),
            ));
        }
        let model_score = match (&self.model, &report.pe) {
            (Some(model), Some(pe)) => {
                let p = model.score(&pe.headers);
                evidence.push(Evidence::new("model", f64::from(p), 0.9, model.describe()));
                Some(p)
            }
            _ => None,
        };
        (report, matches, yara_error, model_score, evidence)
    }

    /// The full static report with a verdict from `extra` evidence too (VirusTotal,
    /// dynamic).
    pub fn report(&self, bytes: &[u8], extra: Vec<Evidence>) -> FileReport {
        let (static_report, yara_matches, yara_error, model_score, mut evidence) =
            self.static_evidence(bytes);
        evidence.extend(extra);
        let mut details = combine(evidence, self.config.threshold);
        if self.model.is_none() && static_report.is_pe {
            details.explanation.push(
                "no file model is loaded: the score rests on the other analyses alone".into(),
            );
        }
        FileReport {
            sha256: static_report.sha256.clone(),
            is_pe: static_report.is_pe,
            score: details.score,
            verdict: if details.malicious {
                "malicious"
            } else {
                "clean"
            },
            yara: yara_matches.iter().map(|m| m.rule.clone()).collect(),
            explanation: details.explanation.clone(),
            model_score,
            details,
            yara_matches,
            yara_error,
            static_report,
        }
    }
}
