//! Sigma rules in the pipeline: the `sigma` analyzer, rule reloads, and EVTX uploads.
//!
//! The rules come from the folders in `[sigma] rules`; they are compiled once into a
//! [`RuleSet`] that the analyzer shares read-only, and swapped whole on reload (an event
//! sees the old set or the new one, never half of each). An event becomes a Sigma
//! [`Record`] one of two ways: an event with `winlog` fields (from `POST /api/v1/evtx`, or
//! shipped by Winlogbeat) is read as the Windows record it was; any other event goes
//! through the ECS → Sigma field mapping.

use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use vigil_core::{Event, Finding, Severity};
use vigil_pipeline::{Analyzer, Interest};
use vigil_sigma::{Level, Record, Rejected, RuleSet};

/// `[sigma]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigmaConfig {
    /// Rule folders (SigmaHQ's `rules/`, your own), searched recursively. None: no Sigma
    /// analyzer.
    pub rules: Vec<PathBuf>,
    /// Rules below this level make no finding: informational, low, medium, high, critical.
    pub min_level: String,
    /// Largest EVTX file `POST /api/v1/evtx` takes, in bytes.
    pub max_evtx_bytes: usize,
}

impl Default for SigmaConfig {
    fn default() -> Self {
        SigmaConfig {
            rules: Vec::new(),
            min_level: "low".into(),
            max_evtx_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What a load or reload did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// Rule files read.
    pub files: usize,
    /// Rules compiled and running.
    pub loaded: usize,
    /// Rules refused, each with the reason.
    pub rejected: Vec<RejectedRule>,
    /// When (RFC 3339).
    pub loaded_at: String,
}

/// A refused rule.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRule {
    /// The file.
    pub path: String,
    /// Its id, when it has one.
    pub id: Option<String>,
    /// Its title, when it has one.
    pub title: Option<String>,
    /// Why.
    pub reason: String,
}

impl From<&Rejected> for RejectedRule {
    fn from(r: &Rejected) -> Self {
        RejectedRule {
            path: r.path.display().to_string(),
            id: r.id.clone(),
            title: r.title.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// The loaded rules and how they got there.
pub struct SigmaService {
    config: SigmaConfig,
    min_level: Level,
    rules: RwLock<Arc<RuleSet>>,
    summary: RwLock<LoadSummary>,
}

impl SigmaService {
    /// Loads the configured folders. Fails when a folder is missing or the minimum level
    /// is unknown; refused rules are reported, not fatal.
    pub fn load(config: SigmaConfig) -> Result<Arc<SigmaService>, String> {
        let min_level = Level::parse(&config.min_level).ok_or_else(|| {
            format!(
                "sigma.min_level `{}` is not one of informational, low, medium, high, critical",
                config.min_level
            )
        })?;
        let (rules, summary) = Self::read(&config)?;
        Ok(Arc::new(SigmaService {
            config,
            min_level,
            rules: RwLock::new(Arc::new(rules)),
            summary: RwLock::new(summary),
        }))
    }

    fn read(config: &SigmaConfig) -> Result<(RuleSet, LoadSummary), String> {
        for d in &config.rules {
            if !d.is_dir() {
                return Err(format!(
                    "sigma.rules: {} is not a folder (SigmaHQ's rules: https://github.com/SigmaHQ/sigma, folder rules/)",
                    d.display()
                ));
            }
        }
        let report = RuleSet::load_dirs(&config.rules).map_err(|e| e.to_string())?;
        for r in &report.rejected {
            tracing::debug!(path = %r.path.display(), id = ?r.id, reason = %r.reason, "sigma rule refused");
        }
        let summary = LoadSummary {
            files: report.files,
            loaded: report.rules.len(),
            rejected: report.rejected.iter().map(RejectedRule::from).collect(),
            loaded_at: vigil_core::now_rfc3339(),
        };
        Ok((report.rules, summary))
    }

    /// Reads the folders again and swaps the rule set in one step.
    pub fn reload(&self) -> Result<LoadSummary, String> {
        let (rules, summary) = Self::read(&self.config)?;
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        *self.summary.write().unwrap_or_else(|e| e.into_inner()) = summary.clone();
        tracing::info!(
            loaded = summary.loaded,
            rejected = summary.rejected.len(),
            "sigma rules reloaded"
        );
        Ok(summary)
    }

    /// The current rules.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last load's summary.
    pub fn summary(&self) -> LoadSummary {
        self.summary
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pipeline analyzer.
    pub fn analyzer(self: &Arc<Self>) -> Arc<dyn Analyzer> {
        Arc::new(SigmaAnalyzer(self.clone()))
    }

    /// The largest EVTX upload.
    pub fn max_evtx_bytes(&self) -> usize {
        self.config.max_evtx_bytes
    }

    /// The findings the rules make about `event`.
    pub fn findings(&self, event: &Event) -> Vec<Finding> {
        let record = record_of(event);
        let rules = self.rules();
        rules
            .matches(&record)
            .into_iter()
            .filter(|m| m.rule.level >= self.min_level)
            .map(|m| {
                let (score, severity) = match m.rule.level {
                    Level::Informational => (10.0, Severity::Info),
                    Level::Low => (30.0, Severity::Low),
                    Level::Medium => (55.0, Severity::Medium),
                    Level::High => (80.0, Severity::High),
                    Level::Critical => (95.0, Severity::Critical),
                };
                let techniques: Vec<String> = m
                    .rule
                    .tags
                    .iter()
                    .filter_map(|t| {
                        let t = t.strip_prefix("attack.")?;
                        let rest = t.strip_prefix('t').or_else(|| t.strip_prefix('T'))?;
                        rest.chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_digit())
                            .then(|| format!("T{}", rest.to_ascii_uppercase()))
                    })
                    .collect();
                let fields: serde_json::Map<String, Value> = m
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                Finding::new("sigma", score, format!("Sigma: {}", m.rule.title))
                    .with_severity(severity)
                    .with_techniques(techniques)
                    .with_evidence(json!({
                        "rule_id": m.rule.id,
                        "rule_title": m.rule.title,
                        "level": m.rule.level.as_str(),
                        "status": m.rule.status,
                        "description": m.rule.description,
                        "tags": m.rule.tags,
                        "references": m.rule.references,
                        "falsepositives": m.rule.falsepositives,
                        "matched": fields,
                    }))
                    .about(event)
            })
            .collect()
    }
}

/// The Sigma view of a stored event: its `winlog` part as the Windows record it came from,
/// or the ECS fields through the mapping.
pub fn record_of(event: &Event) -> Record {
    let doc = Value::Object(event.as_map().clone());
    match doc.get("winlog") {
        Some(Value::Object(_)) => vigil_evtx::record_from_winlog(&doc)
            .map(|v| Record::from_evtx_json(&v))
            .unwrap_or_else(|| vigil_sigma::FieldMapping::builtin().record_from_ecs(&doc)),
        _ => vigil_sigma::FieldMapping::builtin().record_from_ecs(&doc),
    }
}

struct SigmaAnalyzer(Arc<SigmaService>);

impl Analyzer for SigmaAnalyzer {
    fn name(&self) -> &str {
        "sigma"
    }

    fn interest(&self) -> Interest {
        Interest::All
    }

    fn analyze(&self, event: &Event) -> Vec<Finding> {
        self.0.findings(event)
    }
}

fn service(state: &AppState) -> Result<&Arc<SigmaService>, AppError> {
    state.sigma.as_ref().ok_or_else(|| {
        AppError::Unavailable(
            "no Sigma rules are configured: set `[sigma] rules = [\"/path/to/sigma/rules\"]`"
                .into(),
        )
    })
}

/// `GET /api/v1/sigma/rules`: what is loaded, and what was refused with why.
pub async fn rules(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let svc = service(&state)?;
    let rules = svc.rules();
    let list: Vec<Value> = rules
        .rules()
        .map(|r| {
            json!({
                "id": r.id, "title": r.title, "level": r.level.as_str(), "status": r.status,
                "tags": r.tags, "logsource": {"product": r.logsource.product, "category": r.logsource.category, "service": r.logsource.service},
                "path": r.path.display().to_string(),
            })
        })
        .collect();
    let s = svc.summary();
    Ok(Json(json!({
        "files": s.files, "loaded": s.loaded, "loaded_at": s.loaded_at,
        "rejected": s.rejected, "rules": list,
    })))
}

/// `POST /api/v1/sigma/reload` (admin): reads the rule folders again.
pub async fn reload(State(state): State<AppState>) -> Result<Json<LoadSummary>, AppError> {
    let svc = service(&state)?.clone();
    tokio::task::spawn_blocking(move || svc.reload())
        .await
        .map_err(|e| AppError::Internal(format!("reload task: {e}")))?
        .map(Json)
        .map_err(AppError::Unavailable)
}

/// `POST /api/v1/evtx`: a Windows event log file (the raw bytes), each record ingested as
/// an ECS event with its `winlog` fields and run through the pipeline (Sigma included).
pub async fn ingest_evtx(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let limit = state
        .sigma
        .as_ref()
        .map_or(SigmaConfig::default().max_evtx_bytes, |s| {
            s.max_evtx_bytes()
        });
    let body = body.map_err(|e| crate::error::bytes_rejection(e, limit))?;
    if body.is_empty() {
        return Err(AppError::bad(
            "empty_body",
            "send the .evtx file's bytes as the body",
        ));
    }
    // Records are read and converted on a blocking thread and ingested batch by batch as
    // they come, so a large log is never held whole as events; a batch never exceeds what
    // one ingest may carry.
    let now = chrono::Utc::now();
    let batch = state
        .config
        .max_bulk_events
        .min(state.pipeline.capacity())
        .max(1);
    let (tx, rx) = flume::bounded::<Result<Vec<Event>, vigil_evtx::EvtxError>>(2);
    let reader_task = tokio::task::spawn_blocking(move || {
        let mut reader = match vigil_evtx::EvtxReader::from_bytes(Vec::<u8>::from(body)) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return (0u64, vigil_evtx::ReadStats::default());
            }
        };
        let mut bad = 0u64;
        let mut buf = Vec::with_capacity(batch);
        for rec in reader.records() {
            match rec.map(|r| Event::from_input(vigil_evtx::to_ecs(&r), now)) {
                Ok(Ok(e)) => buf.push(e),
                _ => bad += 1,
            }
            if buf.len() == batch && tx.send(Ok(std::mem::take(&mut buf))).is_err() {
                break; // the request is gone (an error, or the client left)
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(Ok(buf));
        }
        (bad, reader.stats())
    });
    let (mut records, mut accepted, mut duplicates) = (0usize, 0usize, 0usize);
    while let Ok(msg) = rx.recv_async().await {
        let events = msg.map_err(|e| AppError::bad("invalid_evtx", e.to_string()))?;
        records += events.len();
        let flags = match state.pipeline.ingest(events).await {
            Ok(f) => f,
            Err(e) => {
                return Err(match AppError::from(e) {
                    AppError::Overloaded {
                        message,
                        retry_after_secs,
                    } => AppError::Overloaded {
                        message: format!(
                            "{message}; {accepted} records of this log were stored before it \
                             (sending the file again is safe: stored records count as duplicates)"
                        ),
                        retry_after_secs,
                    },
                    other => other,
                });
            }
        };
        let new = flags.iter().filter(|f| **f).count();
        accepted += new;
        duplicates += flags.len() - new;
    }
    let (bad_records, stats) = reader_task
        .await
        .map_err(|e| AppError::Internal(format!("evtx task: {e}")))?;
    Ok(Json(json!({
        "records": records,
        "accepted": accepted,
        "duplicates": duplicates,
        "bad_records": bad_records,
        "bad_chunks": stats.bad_chunks,
    })))
}
