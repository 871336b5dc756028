//! The incident service: correlates stored findings, stores the incidents they open or
//! change, applies analysts' changes, and announces both on a broadcast channel (the
//! WebSocket stream and, to come, the responders).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast};
use vigil_core::{Finding, Incident, IncidentNote, IncidentStatus};
use vigil_store::{IncidentQuery, Store, StoreError};

use crate::correlate::{ChangeKind, CorrelationConfig, Correlator};
use crate::responders::Responders;

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new incident.
    Opened,
    /// New findings joined it.
    Updated,
    /// An analyst changed its status, assignee or notes.
    Changed,
}

/// An incident event, as streamed.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The incident as it is now.
    pub incident: Incident,
}

/// An analyst's change (`PATCH /api/v1/incidents/{id}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    /// New status.
    pub status: Option<IncidentStatus>,
    /// New assignee (an empty string clears it).
    pub assignee: Option<String>,
    /// A note to append.
    pub note: Option<String>,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// No such incident.
    #[error("no incident with id `{0}`")]
    NotFound(String),
    /// The change is malformed (field, message).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Where the correlator keeps the time of the newest finding it correlated (cache
/// namespace, key).
const CHECKPOINT: (&str, &str) = ("correlator", "checkpoint");
/// Findings correlated when catching up after a crash at most.
const CATCH_UP_MAX: usize = 100_000;

/// Longest assignee and note.
const MAX_ASSIGNEE: usize = 256;
const MAX_NOTE: usize = 16 * 1024;
/// Notes an incident keeps at most.
const MAX_NOTES: usize = 1000;
/// Findings of an incident shown in its detail.
const DETAIL_FINDINGS: usize = 200;

/// Correlation, incident storage and incident events.
pub struct IncidentService {
    store: Arc<dyn Store>,
    responders: Option<Arc<Responders>>,
    correlator: Mutex<Correlator>,
    events: broadcast::Sender<Arc<IncidentEvent>>,
}

impl IncidentService {
    /// Starts the service, taking back the incidents still open or acknowledged.
    pub async fn start(
        config: CorrelationConfig,
        store: Arc<dyn Store>,
        responders: Option<Arc<Responders>>,
    ) -> Result<Arc<IncidentService>, StoreError> {
        let mut correlator = Correlator::new(config);
        for status in [IncidentStatus::Open, IncidentStatus::Acknowledged] {
            let mut cursor = None;
            loop {
                let page = store
                    .query_incidents(&IncidentQuery {
                        status: Some(status),
                        limit: vigil_store::MAX_PAGE,
                        cursor,
                        ..Default::default()
                    })
                    .await?;
                for incident in page.items {
                    // The conditions of its most recent findings, for deduplication.
                    let mut findings = Vec::new();
                    for id in incident.finding_ids.iter().rev().take(50) {
                        if let Some(f) = store.get_finding(id).await? {
                            findings.push(f);
                        }
                    }
                    // Deliveries lost to a crash between storing the incident and queueing
                    // them are queued now (those queued before are skipped).
                    if let Some(r) = &responders {
                        let mut analyzers: Vec<String> =
                            findings.iter().map(|f| f.analyzer.clone()).collect();
                        analyzers.sort();
                        analyzers.dedup();
                        r.incident_changed(&incident, &analyzers).await?;
                    }
                    correlator.restore(incident, &findings);
                }
                cursor = page.next;
                if cursor.is_none() {
                    break;
                }
            }
        }
        let (events, _) = broadcast::channel(1024);
        let service = Arc::new(IncidentService {
            store,
            responders,
            correlator: Mutex::new(correlator),
            events,
        });
        service.catch_up().await?;
        Ok(service)
    }

    /// Correlates the findings stored after the last checkpoint that no incident holds:
    /// those a crash left between storing and correlating them.
    async fn catch_up(&self) -> Result<(), StoreError> {
        let Some(bytes) = self.store.cache_get(CHECKPOINT.0, CHECKPOINT.1).await? else {
            return Ok(());
        };
        let Some(checkpoint) = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        else {
            return Ok(());
        };
        // Findings are stamped by their analyzers, a little before they are stored: look a
        // few minutes further back, and skip what incidents changed since then hold.
        let since = checkpoint.with_timezone(&chrono::Utc) - chrono::Duration::minutes(5);
        let mut held = std::collections::HashSet::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query_incidents(&IncidentQuery {
                    since: Some(since),
                    limit: vigil_store::MAX_PAGE,
                    cursor,
                    ..Default::default()
                })
                .await?;
            held.extend(page.items.into_iter().flat_map(|i| i.finding_ids));
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        let mut missed = Vec::new();
        let mut cursor = None;
        while missed.len() < CATCH_UP_MAX {
            let page = self
                .store
                .query_findings(&vigil_store::FindingQuery {
                    since: Some(since),
                    limit: vigil_store::MAX_PAGE,
                    cursor,
                    ..Default::default()
                })
                .await?;
            missed.extend(page.items.into_iter().filter(|f| !held.contains(&f.id)));
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        if missed.is_empty() {
            return Ok(());
        }
        tracing::info!(
            findings = missed.len(),
            "correlating findings stored before the last stop but not correlated"
        );
        // Newest first from the store; the correlator wants the oldest first.
        missed.reverse();
        for batch in missed.chunks(1000) {
            self.correlate(batch).await;
        }
        Ok(())
    }

    /// Incident events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<IncidentEvent>> {
        self.events.subscribe()
    }

    /// Correlates a batch of stored findings; stores and announces what changed. Storage
    /// is retried until it succeeds: an incident is never lost to a passing store error.
    pub async fn correlate(&self, findings: &[Finding]) {
        let mut c = self.correlator.lock().await;
        // Rules on `event.` fields read each finding's first event.
        let mut events = std::collections::HashMap::new();
        if c.reads_events() {
            for f in findings {
                let Some(id) = f.event_ids.first() else {
                    continue;
                };
                match self.store.get_event(id).await {
                    Ok(Some(e)) => {
                        events.insert(f.id.clone(), e);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "an event of a finding cannot be read; its event fields are not correlated")
                    }
                }
            }
        }
        c.expire(chrono::Utc::now());
        let changes = c.absorb_with(findings, &events);
        drop(c);
        for change in changes {
            self.save(&change.incident).await;
            if let Some(r) = &self.responders {
                let mut delay = std::time::Duration::from_millis(100);
                while let Err(e) = r
                    .incident_changed(&change.incident, &change.analyzers)
                    .await
                {
                    tracing::error!(error = %e, "queueing deliveries failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
            let kind = match change.kind {
                ChangeKind::Opened => {
                    metrics::counter!(vigil_core::metric_names::INCIDENTS_OPENED).increment(1);
                    EventKind::Opened
                }
                ChangeKind::Updated => EventKind::Updated,
            };
            let _ = self.events.send(Arc::new(IncidentEvent {
                kind,
                incident: change.incident,
            }));
        }
        // The newest finding correlated, for catching up after a crash.
        if let Some(newest) = findings.iter().map(|f| f.timestamp.as_str()).max()
            && let Err(e) = self
                .store
                .cache_put(CHECKPOINT.0, CHECKPOINT.1, newest.as_bytes(), None)
                .await
        {
            tracing::warn!(error = %e, "the correlation checkpoint cannot be saved");
        }
    }

    async fn save(&self, incident: &Incident) {
        let mut delay = std::time::Duration::from_millis(100);
        while let Err(e) = self.store.upsert_incident(incident).await {
            tracing::error!(error = %e, incident = %incident.id, "storing an incident failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    }

    /// Runs the correlator on the findings the pipeline stores, until the pipeline closes
    /// the tap (see `Pipeline::tap_stored_findings`).
    pub fn spawn(
        self: &Arc<Self>,
        stored: flume::Receiver<Vec<Finding>>,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            while let Ok(batch) = stored.recv_async().await {
                service.correlate(&batch).await;
            }
        })
    }

    /// Applies an analyst's change; `author` signs the note.
    pub async fn patch(
        &self,
        id: &str,
        patch: IncidentPatch,
        author: &str,
    ) -> Result<Incident, PatchError> {
        if patch.status.is_none() && patch.assignee.is_none() && patch.note.is_none() {
            return Err(PatchError::Invalid(
                "body",
                "nothing to change: give status, assignee or note".into(),
            ));
        }
        if let Some(a) = &patch.assignee
            && (a.len() > MAX_ASSIGNEE || a.chars().any(char::is_control))
        {
            return Err(PatchError::Invalid(
                "assignee",
                format!("the assignee is at most {MAX_ASSIGNEE} bytes without control characters"),
            ));
        }
        if let Some(n) = &patch.note
            && (n.trim().is_empty() || n.len() > MAX_NOTE)
        {
            return Err(PatchError::Invalid(
                "note",
                format!("a note is 1 to {MAX_NOTE} bytes of text"),
            ));
        }
        // Under the correlator's lock, so that findings arriving meanwhile do not overwrite
        // the change (nor the change them).
        let mut c = self.correlator.lock().await;
        let mut incident = self
            .store
            .get_incident(id)
            .await?
            .ok_or_else(|| PatchError::NotFound(id.to_string()))?;
        if let Some(active) = c.current(&incident) {
            // The correlator's copy holds the newest findings.
            incident = active;
        }
        let now = vigil_core::now_rfc3339();
        if let Some(s) = patch.status {
            incident.status = s;
        }
        if let Some(a) = patch.assignee {
            incident.assignee = (!a.trim().is_empty()).then(|| a.trim().to_string());
        }
        if let Some(text) = patch.note {
            if incident.notes.len() >= MAX_NOTES {
                return Err(PatchError::Invalid(
                    "note",
                    format!("an incident holds at most {MAX_NOTES} notes"),
                ));
            }
            incident.notes.push(IncidentNote {
                author: author.to_string(),
                at: now.clone(),
                text,
            });
        }
        incident.updated_at = now;
        self.store.upsert_incident(&incident).await?;
        c.changed(&incident);
        drop(c);
        let _ = self.events.send(Arc::new(IncidentEvent {
            kind: EventKind::Changed,
            incident: incident.clone(),
        }));
        Ok(incident)
    }

    /// An incident with its findings (the newest 200) and its timeline.
    pub async fn detail(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let Some(incident) = self.store.get_incident(id).await? else {
            return Ok(None);
        };
        let mut findings = Vec::new();
        for fid in incident
            .finding_ids
            .iter()
            .rev()
            .take(DETAIL_FINDINGS)
            .rev()
        {
            if let Some(f) = self.store.get_finding(fid).await? {
                findings.push(f);
            }
        }
        let mut timeline: Vec<Value> = findings
            .iter()
            .map(|f| {
                json!({"at": f.timestamp, "kind": "finding", "analyzer": f.analyzer,
                       "severity": f.severity, "summary": f.summary, "finding_id": f.id})
            })
            .collect();
        timeline.push(json!({"at": incident.created_at, "kind": "opened"}));
        for n in &incident.notes {
            timeline.push(json!({"at": n.at, "kind": "note", "author": n.author, "text": n.text}));
        }
        timeline.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
        let mut v = serde_json::to_value(&incident).expect("an incident serialises");
        v["findings"] = serde_json::to_value(&findings).expect("findings serialise");
        v["timeline"] = Value::Array(timeline);
        Ok(Some(v))
    }
}
