//! File analysis for the REST API and the binary protocol: the engine (static analysis,
//! YARA, model) off the async threads, VirusTotal through a cache in the store, one
//! verdict. Reports are kept in the store's cache for `GET /api/v1/files/{sha256}`.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use vigil_core::{Event, FieldLookup, Finding};
use vigil_file::known::{KnownFile, KnownFiles, VerdictSource};
use vigil_file::protocol::Command;
use vigil_file::verdict::Evidence;
use vigil_file::vt::{VirusTotal, VtCache, VtReport};
use vigil_file::{FileEngine, analysis::sha256_hex};
use vigil_pipeline::{Analyzer, Interest};
use vigil_store::Store;

/// How long analysis reports stay readable by hash.
pub const REPORT_TTL: Duration = Duration::from_secs(30 * 86_400);
const REPORTS: &str = "file_report";
const VIRUSTOTAL: &str = "virustotal";
const LABELS: &str = "file_label";
const VERDICTS: &str = "file_verdict";
const SANDBOX: &str = "file_sandbox";
/// Verdicts the pipeline's file analyzer remembers.
pub const KNOWN_CAPACITY: usize = 1_000_000;
/// Largest sandbox report accepted, in bytes.
pub const MAX_SANDBOX_BYTES: usize = 64 << 20;

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

/// The report as an `agent` may read it (issue 22): the verdict, score, reasons, the
/// static analysis of the bytes it sent and VirusTotal's answer, but of what Vigil observed
/// on *other* hosts only counts: no host names, users, addresses, command lines or finding
/// summaries. A sandbox report keeps its score, families and signature names, not the
/// addresses and domains it contacted. Viewers read the full report with
/// `GET /api/v1/files/{sha256}`.
pub fn report_for_agent(mut report: Value) -> Value {
    let len = |v: &Value| v.as_array().map_or(0, Vec::len);
    if let Some(d) = report.get("dynamic").filter(|d| d.is_object()).cloned() {
        let strongest = d["findings"]
            .as_array()
            .and_then(|f| f.first())
            .and_then(|f| f.get(0))
            .cloned()
            .unwrap_or(Value::Null);
        report["dynamic"] = json!({
            "events": d["events"], "executions": d["executions"],
            "hosts": len(&d["hosts"]), "connections": d["connections"],
            "destinations": len(&d["destinations"]), "findings": len(&d["findings"]),
            "strongest_finding_score": strongest,
            "children": d["children"],
            "redacted": "observations on other hosts are counted, not shown, to agent keys",
        });
    }
    if let Some(s) = report.get("sandbox").filter(|s| s.is_object()).cloned() {
        let names: Vec<Value> = s["signatures"]
            .as_array()
            .map(|l| l.iter().map(|x| x["name"].clone()).collect())
            .unwrap_or_default();
        report["sandbox"] = json!({
            "sandbox": s["sandbox"], "score": s["score"], "families": s["families"],
            "techniques": s["techniques"], "signatures": names, "dropped": s["dropped"],
            "hosts": len(&s["hosts"]), "domains": len(&s["domains"]),
        });
    }
    report
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
    known: Arc<KnownFiles>,
}

impl FileService {
    /// A service over `engine`, asking VirusTotal through `vt`, keeping reports in `store`.
    pub fn new(engine: Arc<FileEngine>, vt: Arc<VirusTotal>, store: Arc<dyn Store>) -> Self {
        FileService {
            engine,
            vt,
            store,
            known: Arc::new(KnownFiles::new(KNOWN_CAPACITY)),
        }
    }

    /// VirusTotal's report for a hash (cache first, then the server's key); `None` when no
    /// key is configured and nothing is cached.
    pub async fn virustotal(&self, sha256: &str) -> Result<Option<Value>, String> {
        match self.vt.lookup(sha256, None).await {
            Ok(r) => serde_json::to_value(r).map(Some).map_err(|e| e.to_string()),
            Err(vigil_file::vt::VtError::NoKey) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The verdicts the pipeline's [`FileHashAnalyzer`] reads.
    pub fn known(&self) -> &Arc<KnownFiles> {
        &self.known
    }

    /// Loads the kept verdicts and labels into [`FileService::known`] (at start); returns
    /// how many are held.
    pub async fn load_known(&self) -> Result<usize, FileError> {
        let internal = |e: vigil_store::StoreError| FileError::Internal(e.to_string());
        for (sha, bytes) in self
            .store
            .cache_list(VERDICTS, KNOWN_CAPACITY)
            .await
            .map_err(internal)?
        {
            if let Ok(v) = serde_json::from_slice::<KnownFile>(&bytes) {
                self.known.record(&sha, v);
            }
        }
        for (sha, bytes) in self
            .store
            .cache_list(LABELS, KNOWN_CAPACITY)
            .await
            .map_err(internal)?
        {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                self.known
                    .record(&sha, label_verdict(v["label"].as_u64() == Some(1)));
            }
        }
        Ok(self.known.len())
    }

    /// Remembers a verdict for the pipeline, in memory and in the store.
    async fn remember(&self, sha256: &str, verdict: KnownFile) {
        self.known.record(sha256, verdict.clone());
        if let Ok(bytes) = serde_json::to_vec(&verdict)
            && let Err(e) = self
                .store
                .cache_put(VERDICTS, sha256, &bytes, Some(REPORT_TTL))
                .await
        {
            tracing::warn!(%sha256, error = %e, "could not keep the file verdict");
        }
    }

    /// Keeps a CAPE or Cuckoo report for `sha256`; the dynamic analyses (commands 2, 5, 6)
    /// use it from then on. Answers the summary Vigil kept and the evidence it gives.
    pub async fn add_sandbox_report(&self, sha256: &str, body: &[u8]) -> Result<Value, FileError> {
        let summary =
            vigil_file::sandbox::parse(body).map_err(|e| FileError::BadRequest(e.to_string()))?;
        if let Some(named) = &summary.sha256
            && named != sha256
        {
            return Err(FileError::BadRequest(format!(
                "the report is about {named}, not {sha256} (target.file.sha256)"
            )));
        }
        let bytes = serde_json::to_vec(&summary).map_err(|e| FileError::Internal(e.to_string()))?;
        self.store
            .cache_put(SANDBOX, sha256, &bytes, None)
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?;
        let evidence = vigil_file::sandbox::evidence(&summary);
        Ok(json!({ "sha256": sha256, "sandbox": summary, "evidence": evidence }))
    }

    async fn sandbox_summary(
        &self,
        sha256: &str,
    ) -> Result<Option<vigil_file::sandbox::SandboxSummary>, FileError> {
        let bytes = self
            .store
            .cache_get(SANDBOX, sha256)
            .await
            .map_err(|e| FileError::Internal(e.to_string()))?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
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
        let static_done = req.command.wants_static();
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
        let mut sandbox = Value::Null;
        if req.command.wants_dynamic() {
            let b = self.behaviour(&sha256).await?;
            let (evidence, note) = vigil_file::dynamic::evidence(&b);
            extra.extend(evidence);
            if let Some(s) = self.sandbox_summary(&sha256).await? {
                extra.extend(vigil_file::sandbox::evidence(&s));
                sandbox = serde_json::to_value(&s).unwrap_or_default();
            } else {
                notes.extend(note);
            }
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
        report["sandbox"] = sandbox;
        if let Some(list) = report["explanation"].as_array_mut() {
            list.extend(notes.into_iter().map(Value::String));
        }
        report["analyzed_at"] = json!(vigil_core::now_rfc3339());
        let reasons = report["explanation"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .take(3)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        // A partial analysis (VirusTotal or behaviour alone) that finds nothing does not
        // clear what an analysis of the file's bytes found.
        if malicious || static_done {
            self.remember(
                &sha256,
                KnownFile {
                    score,
                    malicious,
                    source: VerdictSource::Analysis,
                    reasons,
                },
            )
            .await;
        }
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
        self.known.record(sha256, label_verdict(malicious));
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

    /// The labels as seed 001's CSV (`path, sha256, label`). Vigil does not keep files,
    /// so each `path` is the hash itself: where samples are kept by hash (as malware
    /// collections usually are), the CSV reads back with `vigil file train` from that
    /// folder.
    pub async fn dataset_seed_csv(&self) -> Result<String, FileError> {
        let rows: Vec<vigil_file::dataset::LabelledFile> = self
            .labels()
            .await?
            .into_iter()
            .filter_map(|l| {
                let sha = l["sha256"].as_str()?.to_string();
                Some(vigil_file::dataset::LabelledFile {
                    path: sha.clone(),
                    sha256: sha,
                    label: u8::try_from(l["label"].as_u64()?).ok()?,
                })
            })
            .collect();
        let mut out = Vec::new();
        vigil_file::dataset::write_seed_csv(&rows, &mut out)
            .map_err(|e| FileError::Internal(e.to_string()))?;
        String::from_utf8(out).map_err(|e| FileError::Internal(e.to_string()))
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

fn label_verdict(malicious: bool) -> KnownFile {
    KnownFile {
        score: if malicious { 1.0 } else { 0.0 },
        malicious,
        source: VerdictSource::Label,
        reasons: vec![format!(
            "an analyst labelled it {}",
            if malicious { "malicious" } else { "benign" }
        )],
    }
}

/// Hash fields an event names a file by, and what the event says the file did.
const HASH_FIELDS: [(&str, &str); 4] = [
    ("process.hash.sha256", "ran"),
    ("process.parent.hash.sha256", "started a child process"),
    ("dll.hash.sha256", "was loaded"),
    ("file.hash.sha256", "was seen on disk"),
];

/// The pipeline's file analyzer: an event naming a file Vigil judged malicious (by
/// analysis or an analyst's label) becomes a finding, whatever the event's category.
pub struct FileHashAnalyzer(pub Arc<KnownFiles>);

impl Analyzer for FileHashAnalyzer {
    fn name(&self) -> &str {
        "file"
    }

    fn interest(&self) -> Interest {
        Interest::All
    }

    fn analyze(&self, event: &Event) -> Vec<Finding> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let mut best: Option<(&str, &str, &str, KnownFile)> = None;
        for (field, verb) in HASH_FIELDS {
            let Some(sha) = event.get_str(field) else {
                continue;
            };
            if let Some(k) = self.0.get(sha).filter(|k| k.malicious)
                && best.as_ref().is_none_or(|b| k.score > b.3.score)
            {
                best = Some((field, verb, sha, k));
            }
        }
        let Some((field, verb, sha, known)) = best else {
            return Vec::new();
        };
        let name = match field {
            "file.hash.sha256" => event.get_str("file.name").or(event.get_str("file.path")),
            "dll.hash.sha256" => event.get_str("dll.name").or(event.get_str("dll.path")),
            "process.parent.hash.sha256" => event.get_str("process.parent.name"),
            _ => event.get_str("process.name"),
        }
        .unwrap_or(&sha[..sha.len().min(16)]);
        let host = event.host_name().unwrap_or("an unknown host");
        let by = match known.source {
            VerdictSource::Label => "labelled malicious by an analyst",
            VerdictSource::Analysis => "judged malicious by file analysis",
        };
        let finding = Finding::new(
            "file",
            (known.score * 100.0).clamp(50.0, 100.0),
            format!("{name} ({by}) {verb} on {host}"),
        )
        .about(event)
        .with_evidence(json!({
            "sha256": sha.to_ascii_lowercase(), "field": field, "source": known.source,
            "file_score": known.score, "reasons": known.reasons,
        }));
        vec![finding]
    }
}
