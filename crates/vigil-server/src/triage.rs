//! The triage agent in the server: `POST /api/v1/triage`, reports in the store and under
//! `reports/`, automatic triage of incidents at or above a severity, and the tools that need
//! the server's running services (user scripts on the event, live VirusTotal).

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use vigil_core::{Event, Severity};
use vigil_respond::IncidentEvent;
use vigil_store::Store;
use vigil_triage::tools::{Signal, Tool, ToolError, ToolOutput};
use vigil_triage::{Report, Subject, Triage, TriageConfig};

/// Why a triage request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum TriageFailure {
    /// The input is wrong (names what was expected).
    #[error("{0}")]
    BadInput(String),
    /// No such incident.
    #[error("{0}")]
    NotFound(String),
    /// Saving failed.
    #[error("{0}")]
    Internal(String),
}

/// The agent, where reports go, and the automatic-triage queue.
pub struct TriageService {
    agent: Arc<Triage>,
    store: Arc<dyn Store>,
    reports_dir: PathBuf,
    cfg: TriageConfig,
    queue: flume::Sender<String>,
    queue_rx: flume::Receiver<String>,
}

impl TriageService {
    /// Wraps a built agent.
    pub fn new(
        agent: Triage,
        store: Arc<dyn Store>,
        reports_dir: PathBuf,
        cfg: TriageConfig,
    ) -> Arc<TriageService> {
        let (queue, queue_rx) = flume::bounded(cfg.queue.max(1));
        Arc::new(TriageService {
            agent: Arc::new(agent),
            store,
            reports_dir,
            cfg,
            queue,
            queue_rx,
        })
    }

    /// The agent.
    pub fn agent(&self) -> &Arc<Triage> {
        &self.agent
    }

    /// Where reports are written.
    pub fn reports_dir(&self) -> &std::path::Path {
        &self.reports_dir
    }

    /// Triage a subject; saves and returns the report and its Markdown path.
    pub async fn triage(&self, subject: Subject) -> Result<(Report, PathBuf), TriageFailure> {
        let report = self.agent.run(subject).await;
        let path = vigil_triage::persist(&report, self.store.as_ref(), &self.reports_dir)
            .await
            .map_err(TriageFailure::Internal)?;
        metrics::counter!(
            "vigil_triage_reports_total",
            "verdict" => report.verdict.as_str(),
            "mode" => match report.mode {
                vigil_triage::report::Mode::Offline => "offline",
                vigil_triage::report::Mode::Llm => "llm",
                vigil_triage::report::Mode::LlmFallback => "llm_fallback",
            }
        )
        .increment(1);
        tracing::info!(
            id = %report.id, category = %report.category, verdict = report.verdict.as_str(),
            millis = report.millis, "triage report written"
        );
        Ok((report, path))
    }

    /// The subject for an incident: its title, findings and their evidence.
    pub async fn incident_subject(&self, id: &str) -> Result<Subject, TriageFailure> {
        let incident = self
            .store
            .get_incident(id)
            .await
            .map_err(|e| TriageFailure::Internal(e.to_string()))?
            .ok_or_else(|| TriageFailure::NotFound(format!("no incident with id `{id}`")))?;
        let mut findings = Vec::new();
        for fid in incident.finding_ids.iter().take(50) {
            if let Some(f) = self
                .store
                .get_finding(fid)
                .await
                .map_err(|e| TriageFailure::Internal(e.to_string()))?
            {
                findings.push(f);
            }
        }
        Ok(Subject::from_incident(&incident, &findings))
    }

    /// Queues incidents that open or change at or above the configured severity, and
    /// triages them one at a time (an incident already reported on is not triaged again
    /// unless its severity rose since).
    pub fn spawn_auto(
        self: &Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<Arc<IncidentEvent>>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let min = self.cfg.auto_min_severity?;
        let queue = self.queue.clone();
        tokio::spawn(async move {
            let mut reported: std::collections::HashMap<String, Severity> = Default::default();
            loop {
                let ev = match events.recv().await {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "automatic triage missed incident events");
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                let i = &ev.incident;
                if i.severity < min
                    || i.status != vigil_core::IncidentStatus::Open
                    || reported.get(&i.id).is_some_and(|s| *s >= i.severity)
                {
                    continue;
                }
                reported.insert(i.id.clone(), i.severity);
                if reported.len() > 100_000 {
                    reported.clear();
                }
                if queue.try_send(i.id.clone()).is_err() {
                    metrics::counter!("vigil_triage_dropped_total").increment(1);
                    tracing::warn!(incident = %i.id, "automatic triage queue full; incident not triaged");
                }
            }
        });
        let me = self.clone();
        Some(tokio::spawn(async move {
            while let Ok(id) = me.queue_rx.recv_async().await {
                let result = match me.incident_subject(&id).await {
                    Ok(subject) => me.triage(subject).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::warn!(incident = %id, error = %e, "automatic triage failed");
                }
            }
        }))
    }
}

/// An ECS event for a subject (the stored event when the subject is one).
pub fn subject_event(subject: &Subject) -> Value {
    if subject.raw.starts_with('{')
        && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&subject.raw)
        && subject.incident_id.is_none()
    {
        return v;
    }
    let mut doc = json!({
        "event": {"kind": "alert", "category": ["intrusion_detection"]},
        "rule": {"name": subject.name},
        "message": subject.content,
    });
    if let Some(t) = &subject.time {
        doc["@timestamp"] = json!(t);
    }
    if let Some(ip) = subject.src_ip {
        doc["source"] = json!({"ip": ip.to_string(), "port": subject.src_port});
    }
    if let Some(ip) = subject.dst_ip {
        doc["destination"] = json!({"ip": ip.to_string(), "port": subject.dst_port});
    }
    if let Some(h) = &subject.host {
        doc["host"] = json!({"name": h});
    }
    if let Some(s) = &subject.sha256 {
        doc["file"] = json!({"hash": {"sha256": s}});
    }
    if let Some(u) = &subject.user {
        doc["user"] = json!({"name": u});
    }
    doc
}

/// `run_script`: the user's analysis scripts on the event under triage.
pub struct RunScript(pub Arc<vigil_script::ScriptSet>);

#[async_trait]
impl Tool for RunScript {
    fn name(&self) -> &'static str {
        "run_script"
    }
    fn description(&self) -> &'static str {
        "Runs the user's analysis scripts that match the event (or only the named one) and \
         returns their results."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "script": {"type": "string", "description": "Only this script (by name)."}},
            "additionalProperties": false})
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let failed = |reason: String| ToolError::Failed {
            tool: "run_script".into(),
            reason,
        };
        let event = Event::from_input(subject_event(subject), chrono::Utc::now())
            .map_err(|e| failed(format!("the event is not valid for scripts: {e}")))?;
        let set = self.0.clone();
        let event = Arc::new(event);
        let report = tokio::task::spawn_blocking(move || set.analyze(&event))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let only = args.get("script").and_then(Value::as_str);
        let keep = |name: &str| only.is_none_or(|o| o == name);
        let findings: Vec<&vigil_core::Finding> = report
            .findings
            .iter()
            .filter(|f| keep(f.analyzer.trim_start_matches("script:")))
            .collect();
        let worst = findings.iter().map(|f| f.severity).max();
        let results: Map<String, Value> = report
            .results
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let errors: Map<String, Value> = report
            .errors
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(n, e)| (n.clone(), json!(e.to_string())))
            .collect();
        if let Some(o) = only
            && results.is_empty()
            && errors.is_empty()
        {
            return Ok(ToolOutput {
                signal: Signal::None,
                summary: format!(
                    "script `{o}` does not exist, is disabled or does not match the event"
                ),
                data: json!({"results": {}}),
            });
        }
        Ok(ToolOutput {
            signal: match worst {
                Some(Severity::Critical | Severity::High) => Signal::Malicious,
                Some(Severity::Medium) => Signal::Suspicious,
                _ => Signal::None,
            },
            summary: format!(
                "{} scripts answered, {} findings{}, {} errors",
                results.len(),
                findings.len(),
                worst
                    .map(|s| format!(" (worst {})", s.as_str()))
                    .unwrap_or_default(),
                errors.len()
            ),
            data: json!({"results": results, "errors": errors,
                         "findings": findings.iter().map(|f| json!({
                             "analyzer": f.analyzer, "severity": f.severity, "score": f.score,
                             "summary": f.summary, "timestamp": f.timestamp})).collect::<Vec<_>>()}),
        })
    }
}

/// `virustotal_lookup` through the server's VirusTotal client (cache first, then the API
/// with the server's key), replacing the cache-only tool.
pub struct LiveVirusTotal(pub Arc<crate::files::FileService>);

#[async_trait]
impl Tool for LiveVirusTotal {
    fn name(&self) -> &'static str {
        "virustotal_lookup"
    }
    fn description(&self) -> &'static str {
        "VirusTotal's report for a file by SHA-256 (engines calling it malicious, threat label); \
         cached."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "sha256": {"type": "string", "description": "SHA-256 of the file, 64 hex digits."}},
            "required": ["sha256"], "additionalProperties": false})
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        _subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let sha = args
            .get("sha256")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ToolError::BadArguments {
                tool: "virustotal_lookup".into(),
                reason: "`sha256` must be 64 hex digits".into(),
            });
        }
        match self.0.virustotal(&sha).await {
            Ok(Some(report)) => Ok(vigil_triage::tools::virustotal_output(&sha, &report)),
            Ok(None) => Ok(ToolOutput {
                signal: Signal::None,
                summary: "no VirusTotal report (no API key configured and nothing cached)".into(),
                data: json!({"sha256": sha}),
            }),
            Err(e) => Err(ToolError::Failed {
                tool: "virustotal_lookup".into(),
                reason: e,
            }),
        }
    }
}
