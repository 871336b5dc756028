//! File analysis for the REST API and the binary protocol: the engine (static analysis,
//! YARA, model) off the async threads, VirusTotal through a cache in the store, one
//! verdict. Reports are kept in the store's cache for `GET /api/v1/files/{sha256}`.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use vigil_file::protocol::Command;
use vigil_file::verdict::Evidence;
use vigil_file::vt::{VirusTotal, VtCache, VtReport};
use vigil_file::{FileEngine, analysis::sha256_hex};
use vigil_store::Store;

/// How long analysis reports stay readable by hash.
pub const REPORT_TTL: Duration = Duration::from_secs(30 * 86_400);
const REPORTS: &str = "file_report";
const VIRUSTOTAL: &str = "virustotal";
const LABELS: &str = "file_label";

/// VirusTotal results cached in the store (they survive restarts).
pub struct StoreVtCache(pub Arc<dyn Store>);

#[async_trait]
impl VtCache for StoreVtCache {
    async fn get(&self, sha256: &str) -> Result<Option<VtReport>, String> {
        let Some(bytes) = self
            .0
            .cache_get(VIRUSTOTAL, sha256)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    async fn put(&self, report: &VtReport, ttl: Duration) -> Result<(), String> {
        let bytes = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        self.0
            .cache_put(VIRUSTOTAL, &report.sha256, &bytes, Some(ttl))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Why an analysis request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The request does not fit (missing file or hash, bad hash, hash mismatch, too big).
    #[error("{0}")]
    BadRequest(String),
    /// The analysis asked for cannot run here.
    #[error("{0}")]
    Unavailable(String),
    /// No such file (no report, no label).
    #[error("{0}")]
    NotFound(String),
    /// The server failed.
    #[error("{0}")]
    Internal(String),
}

/// One analysis request.
#[derive(Debug, Clone)]
pub struct FileRequest {
    /// What to run.
    pub command: Command,
    /// The file's bytes, if sent.
    pub bytes: Option<Vec<u8>>,
    /// Its SHA-256 (lower-case hex), if sent.
    pub sha256: Option<String>,
    /// The caller's VirusTotal key, if sent.
    pub vt_key: Option<String>,
}

/// The answer: the verdict's essentials and the report.
#[derive(Debug, Clone)]
pub struct FileAnswer {
    /// Malicious at the configured threshold.
    pub malicious: bool,
    /// Score in [0, 1].
    pub score: f64,
    /// The report (JSON object).
    pub report: Value,
}

/// Parses a SHA-256 given as 64 hex characters or 32 raw bytes.
pub fn parse_sha256(raw: &[u8]) -> Result<String, FileError> {
    match raw.len() {
        32 => Ok(hex::encode(raw)),
        64 if raw.iter().all(u8::is_ascii_hexdigit) => {
            Ok(String::from_utf8_lossy(raw).to_ascii_lowercase())
        }
        n => Err(FileError::BadRequest(format!(
            "a SHA-256 is 64 hex characters or 32 bytes, not {n} bytes"
        ))),
    }
}

/// VirusTotal's answer as evidence: a few engines are noise, a dozen are a verdict.
fn vt_evidence(r: &VtReport) -> Evidence {
    if !r.found {
        return Evidence::new("virustotal", 0.0, 0.5, "VirusTotal does not know this file");
    }
    let flagged = f64::from(r.malicious) + 0.5 * f64::from(r.suspicious);
    let enough = (0.15 * f64::from(r.engines)).max(3.0);
    let label = r
        .threat_label
        .as_deref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    Evidence::new(
        "virustotal",
        flagged / enough,
        1.0,
        format!(
            "{} of {} engines flag it malicious, {} suspicious{label}",
            r.malicious, r.engines, r.suspicious
        ),
    )
}

/// The file-analysis service shared by REST and the protocol listener.
pub struct FileService {
    engine: Arc<FileEngine>,
    vt: Arc<VirusTotal>,
    store: Arc<dyn Store>,
}

impl FileService {
    /// A service over `engine`, asking VirusTotal through `vt`, keeping reports in `store`.
    pub fn new(engine: Arc<FileEngine>, vt: Arc<VirusTotal>, store: Arc<dyn Store>) -> Self {
        FileService { engine, vt, store }
    }

    /// The engine (rules, model, limits).
    pub fn engine(&self) -> &Arc<FileEngine> {
        &self.engine
    }

    /// Largest file accepted, in bytes.
    pub fn max_file_bytes(&self) -> usize {
        self.engine.config().limits.max_file_bytes
    }

    /// Runs what `req.command` asks for and combines it into one verdict.
    pub async fn analyze(&self, req: FileRequest) -> Result<FileAnswer, FileError> {
        let computed = req.bytes.as_deref().map(sha256_hex);
        let sha256 = match (&req.sha256, &computed) {
            (Some(given), Some(actual)) if given != actual => {
                return Err(FileError::BadRequest(format!(
                    "the SHA-256 sent ({given}) is not the file's ({actual})"
                )));
            }
            (_, Some(actual)) => actual.clone(),
            (Some(given), None) => given.clone(),
            (None, None) => {
                return Err(FileError::BadRequest(
                    "send the file, its SHA-256, or both".into(),
                ));
            }
        };
        if req.command == Command::Auth {
            return Err(FileError::BadRequest("AUTH is not an analysis".into()));
        }
        if req.command.wants_static() && req.bytes.is_none() {
            // Before any VirusTotal lookup: do not spend the caller's quota for nothing.
            return Err(FileError::BadRequest(
                "static analysis needs the file's bytes".into(),
            ));
        }
        let mut extra = Vec::new();
        let mut notes = Vec::new();
        let mut vt_summary = Value::Null;
        if req.command.wants_virustotal() {
            match self.vt.lookup(&sha256, req.vt_key.as_deref()).await {
                Ok(r) => {
                    extra.push(vt_evidence(&r));
                    vt_summary = json!({
                        "found": r.found, "malicious": r.malicious, "suspicious": r.suspicious,
                        "engines": r.engines, "threat_label": r.threat_label,
                        "cached": r.cached, "score": r.score,
                    });
                }
                // VirusTotal alone was asked: without its answer there is no verdict,
                // and "clean" would be a lie.
                Err(e) if req.command == Command::VirusTotal => {
                    return Err(FileError::Unavailable(format!("VirusTotal: {e}")));
                }
                Err(e) => notes.push(format!("VirusTotal: {e}")),
            }
        }
        let mut behaviour = Value::Null;
        if req.command.wants_dynamic() {
            let b = self.behaviour(&sha256).await?;
            let (evidence, note) = vigil_file::dynamic::evidence(&b);
            extra.extend(evidence);
            notes.extend(note);
            behaviour = serde_json::to_value(&b).unwrap_or_default();
        }
        let engine = self.engine.clone();
        let threshold = engine.config().threshold;
        let (score, malicious, mut report) = if req.command.wants_static() {
            let Some(bytes) = req.bytes else {
                return Err(FileError::BadRequest(
                    "static analysis needs the file's bytes".into(),
                ));
            };
            let r = tokio::task::spawn_blocking(move || engine.report(&bytes, extra))
                .await
                .map_err(|e| FileError::Internal(format!("analysis task: {e}")))?;
            let value = json!({
                "sha256": r.sha256, "score": r.score, "verdict": r.verdict,
                "malicious": r.details.malicious, "threshold": threshold,
                "explanation": r.explanation, "yara": r.yara, "model_score": r.model_score,
                "yara_matches": r.yara_matches, "static": r.static_report,
            });
            (r.score, r.details.malicious, value)
        } else {
            let v = vigil_file::verdict::combine(extra, threshold);
            let value = json!({
                "sha256": sha256, "score": v.score,
                "verdict": if v.malicious { "malicious" } else { "clean" },
                "malicious": v.malicious, "threshold": threshold, "explanation": v.explanation,
            });
            (v.score, v.malicious, value)
        };
        report["virustotal"] = vt_summary;
        report["dynamic"] = behaviour;
        if let Some(list) = report["explanation"].as_array_mut() {
            list.extend(notes.into_iter().map(Value::String));
        }
        report["analyzed_at"] = json!(vigil_core::now_rfc3339());
        if let Ok(bytes) = serde_json::to_vec(&report)
            && let Err(e) = self
                .store
                .cache_put(REPORTS, &sha256, &bytes, Some(REPORT_TTL))
                .await
        {
            tracing::warn!(%sha256, error = %e, "could not keep the file report");
        }
        Ok(FileAnswer {
            malicious,
            score,
            report,
        })
    }

    /// What Vigil has observed of `sha256`: its newest 500 events and the findings on
    /// the newest 100 of them.
    async fn behaviour(&self, sha256: &str) -> Result<vigil_file::dynamic::Behaviour, FileError> {
        let internal = |e: vigil_store::StoreError| FileError::Internal(e.to_string());
        let events = self
            .store
            .events_by_hash(sha256, 500)
            .await
            .map_err(internal)?;
        let mut findings = Vec::new();
        for e in events.iter().take(100) {
            let q = vigil_store::FindingQuery {
                event_id: Some(e.id().to_string()),
                limit: 50,
                ..Default::default()
            };
            findings.extend(self.store.query_findings(&q).await.map_err(internal)?.items);
        }
        Ok(vigil_file::dynamic::observe(sha256, &events, &findings))
    }

    /// Records an analyst's label for a file Vigil has analysed, with the file's ClaMP
    /// features taken from its report, so that the label outlives the report and the
    /// dataset can be exported for training.
    pub async fn label(&self, sha256: &str, malicious: bool, by: &str) -> Result<Value, FileError> {
        let report = self.report(sha256).await?.ok_or_else(|| {
            FileError::NotFound(format!(
                "no report for {sha256}: analyse the file first (POST /api/v1/files), so that its features are known"
            ))
        })?;
        let headers: Option<vigil_file::headers::Headers> =
            serde_json::from_value(report["static"]["pe"]["headers"].clone()).ok();
        let Some(headers) = headers else {
            return Err(FileError::BadRequest(format!(
                "{sha256} is not a PE file: the file model is trained on PE headers only"
            )));
        };
        let record = json!({
            "sha256": sha256, "label": u8::from(malicious),
            "features": vigil_file::clamp::values(&headers),
            "labeled_at": vigil_core::now_rfc3339(), "by": by,
        });
        let bytes = serde_json::to_vec(&record).map_err(|e| FileError::Internal(e.to_string()))?;
        self.store
            .cache_put(LABELS, sha256, &bytes, None)
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?;
        Ok(record)
    }

    /// Every label, by hash.
    pub async fn labels(&self) -> Result<Vec<Value>, FileError> {
        let rows = self
            .store
            .cache_list(LABELS, 1_000_000)
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    /// The labelled files as a ClaMP raw-feature CSV (`vigil file train --dataset`).
    pub async fn dataset_csv(&self) -> Result<String, FileError> {
        let mut out = vigil_file::clamp::FEATURES.join(",");
        out.push_str(",class\n");
        for l in self.labels().await? {
            let (Some(features), Some(label)) = (l["features"].as_array(), l["label"].as_u64())
            else {
                continue;
            };
            let values: Vec<String> = features.iter().map(|v| v.to_string()).collect();
            if values.len() != vigil_file::clamp::FEATURES.len() {
                continue;
            }
            out.push_str(&values.join(","));
            out.push_str(&format!(",{label}\n"));
        }
        Ok(out)
    }

    /// The last report for a hash, while it is kept.
    pub async fn report(&self, sha256: &str) -> Result<Option<Value>, FileError> {
        let bytes = self
            .store
            .cache_get(REPORTS, sha256)
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }
}
