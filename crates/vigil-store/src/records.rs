//! Query, page and record types shared by every [`crate::Store`] implementation.

use crate::StoreError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_core::{IncidentStatus, Role, Severity};

/// Largest page a query may ask for.
pub const MAX_PAGE: usize = 1000;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: usize = 100;

/// One page of results and the cursor to the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The results.
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Filters for events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Only this `host.name`.
    pub host: Option<String>,
    /// Only events with this `event.category`.
    pub category: Option<String>,
    /// Only events whose `source.ip`, `destination.ip` or `host.ip` is this address.
    pub ip: Option<String>,
    /// Only events whose JSON contains this text (case-sensitive substring).
    pub text: Option<String>,
    /// `@timestamp` at or after.
    pub since: Option<DateTime<Utc>>,
    /// `@timestamp` before.
    pub until: Option<DateTime<Utc>>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: usize,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Filters for findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingQuery {
    /// Only this `host.name`.
    pub host: Option<String>,
    /// Only this analyzer.
    pub analyzer: Option<String>,
    /// Only at least this severity.
    pub min_severity: Option<Severity>,
    /// Only findings about this event.
    pub event_id: Option<String>,
    /// Only findings whose JSON (summary, evidence) contains this text.
    pub text: Option<String>,
    /// Made at or after.
    pub since: Option<DateTime<Utc>>,
    /// Made before.
    pub until: Option<DateTime<Utc>>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: usize,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Filters for incidents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    /// Only this status.
    pub status: Option<IncidentStatus>,
    /// Only this `host.name`.
    pub host: Option<String>,
    /// Only at least this severity.
    pub min_severity: Option<Severity>,
    /// Updated at or after.
    pub since: Option<DateTime<Utc>>,
    /// Updated before.
    pub until: Option<DateTime<Utc>>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: usize,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// An agent (EDR sensor, log shipper) that sent telemetry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// `agent.id`.
    pub id: String,
    /// Last `host.name` it reported.
    #[serde(rename = "host.name", skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// First event time seen (RFC 3339 UTC, ingest clock).
    pub first_seen: String,
    /// Last event time seen (RFC 3339 UTC, ingest clock).
    pub last_seen: String,
    /// Events received from it.
    pub events: u64,
    /// Operating system, as registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Agent software version, as registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Tags, as registered (scripts may be scoped to them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it registered, if it did (agents that only send events are listed too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
}

/// What an agent says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRegistration {
    /// `agent.id`.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// Agent software version.
    #[serde(default)]
    pub version: Option<String>,
    /// Tags such as `prod`, `windows-server`, `dmz`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A stored API key: its hash, never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id of the key (shown in lists, used to revoke).
    pub id: String,
    /// Human label.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the full key, hex.
    #[serde(skip_serializing)]
    pub key_hash: String,
    /// Creation time (RFC 3339 UTC).
    pub created_at: String,
    /// Revocation time, when revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// One version of a user analysis script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptRecord {
    /// Script name (unique across scripts).
    pub name: String,
    /// Version number, increasing from 1.
    pub version: i64,
    /// Source text.
    pub source: String,
    /// Manifest (JSON).
    pub manifest: serde_json::Value,
    /// Whether it runs.
    pub enabled: bool,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// Creation time (RFC 3339 UTC).
    pub created_at: String,
}

/// One version of a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Model name, e.g. `net-iforest`.
    pub name: String,
    /// Version number, increasing from 1.
    pub version: i64,
    /// Evaluation metrics and training parameters (JSON).
    pub metrics: serde_json::Value,
    /// Serialized model; empty in listings.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Creation time (RFC 3339 UTC).
    pub created_at: String,
}

/// One scored network connection, as kept in the network time series. With IP hashing
/// on, `remote` is a keyed pseudonym (see `docs/network.md`), never the address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRow {
    /// When it was seen (RFC 3339 UTC).
    pub timestamp: String,
    /// `host.name`.
    pub host: String,
    /// Process name.
    pub process: String,
    /// Process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Remote address or its pseudonym.
    pub remote: String,
    /// Remote port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// Local port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// `tcp`, `udp`, …
    pub protocol: String,
    /// `outbound`, `inbound` or `unknown`.
    pub direction: String,
    /// Socket state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Duration in seconds.
    pub duration_secs: f64,
    /// Calibrated anomaly score in [0, 1].
    pub score: f64,
    /// Flagged as an anomaly.
    pub anomaly: bool,
    /// The model version that scored it (empty: none yet).
    pub model: String,
    /// The strongest reasons, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Filters for connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionQuery {
    /// Only this `host.name`.
    pub host: Option<String>,
    /// Only this process name.
    pub process: Option<String>,
    /// Only anomalies.
    pub anomalies_only: bool,
    /// Only connections to this remote address (or its pseudonym when IPs are hashed).
    pub remote: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: usize,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// One bucket of the network time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Start of the bucket (RFC 3339 UTC).
    pub start: String,
    /// Connections scored.
    pub connections: u64,
    /// Anomalies among them.
    pub anomalies: u64,
    /// Mean anomaly score.
    pub mean_score: f64,
    /// Highest anomaly score.
    pub max_score: f64,
}

/// Where a delivery to a responder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Every attempt failed: a dead letter.
    Dead,
}

impl DeliveryState {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A message owed to a responder route about an incident; `(route, incident_id, kind)` is
/// unique, so the same message is never queued twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Unique id (UUIDv7); receivers see it as the idempotency key.
    pub id: String,
    /// The route's name.
    pub route: String,
    /// The incident.
    pub incident_id: String,
    /// Why it is sent (`opened`, `test`).
    pub kind: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (Unix milliseconds).
    pub next_at_ms: i64,
    /// Queued at (RFC 3339 UTC).
    pub created_at: String,
    /// Last change (RFC 3339 UTC).
    pub updated_at: String,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// What is sent: the incident as it was when queued.
    pub payload: serde_json::Value,
}

/// A triage report as stored: the summary columns and the full report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// Unique id (UUIDv7).
    pub id: String,
    /// Written at (RFC 3339 UTC).
    pub created_at: String,
    /// The event category.
    pub category: String,
    /// `malicious`, `suspicious` or `benign`.
    pub verdict: String,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// The incident triaged, when it was one.
    pub incident_id: Option<String>,
    /// One line naming what was triaged.
    pub title: String,
    /// The report in Markdown.
    pub markdown: String,
    /// The report as JSON.
    pub doc: serde_json::Value,
}

/// Filters for reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportQuery {
    /// Only this category.
    pub category: Option<String>,
    /// Only this verdict.
    pub verdict: Option<String>,
    /// Only reports about this incident.
    pub incident_id: Option<String>,
    /// Written at or after.
    pub since: Option<DateTime<Utc>>,
    /// Written before.
    pub until: Option<DateTime<Utc>>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: usize,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// An entry of the asset inventory, which triage consults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// Unique id (chosen by the operator, or a UUID).
    pub id: String,
    /// Its address, when it has a fixed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Its `host.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Who answers for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What it does (`domain controller`, `web server`, `laptop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    #[serde(default = "default_criticality")]
    pub criticality: String,
    /// Free tags (`pci`, `internet-facing`, `scanner`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Last change (RFC 3339 UTC).
    #[serde(default)]
    pub updated_at: String,
}

fn default_criticality() -> String {
    "medium".into()
}

/// Most buckets an [`ActivityQuery`] may ask for.
pub const MAX_ACTIVITY_BUCKETS: i64 = 1440;

/// Counts per time bucket, for the console's overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityQuery {
    /// At or after (the first bucket may start earlier: buckets are aligned).
    pub since: DateTime<Utc>,
    /// Before.
    pub until: DateTime<Utc>,
    /// Width of a bucket in seconds; buckets start at multiples of it since the Unix epoch.
    pub bucket_secs: i64,
}

impl ActivityQuery {
    /// Every bucket of the range, oldest first, all counts zero: what a store fills in.
    /// Refused ([`StoreError::InvalidArgument`]) when `bucket_secs < 1`, when
    /// `until <= since`, or when the range needs more than [`MAX_ACTIVITY_BUCKETS`].
    pub fn empty_activity(&self) -> Result<Activity, StoreError> {
        let bad = |m: String| Err(StoreError::InvalidArgument(m));
        if self.bucket_secs < 1 {
            return bad(format!(
                "bucket_secs must be at least 1, got {}",
                self.bucket_secs
            ));
        }
        if self.until <= self.since {
            return bad("`until` must be after `since`".into());
        }
        let Some(width) = self.bucket_secs.checked_mul(1_000_000) else {
            return bad(format!("bucket_secs {} is too large", self.bucket_secs));
        };
        let since = self.since.timestamp_micros();
        // The last instant in the range is `until` less one microsecond.
        let until = self.until.timestamp_micros() - 1;
        let first = since.div_euclid(width);
        let last = until.div_euclid(width);
        let n = last - first + 1;
        if n > MAX_ACTIVITY_BUCKETS {
            return bad(format!(
                "the range needs {n} buckets of {}s, more than {MAX_ACTIVITY_BUCKETS}: \
                 use wider buckets or a shorter range",
                self.bucket_secs
            ));
        }
        let buckets = (first..=last)
            .map(|b| {
                let start = b
                    .checked_mul(width)
                    .and_then(DateTime::<Utc>::from_timestamp_micros)
                    .ok_or_else(|| {
                        StoreError::InvalidArgument("the range is out of bounds".into())
                    })?;
                Ok(ActivityBucket {
                    start,
                    events: 0,
                    findings: 0,
                    by_severity: BTreeMap::new(),
                    by_analyzer: BTreeMap::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Activity {
            bucket_secs: self.bucket_secs,
            buckets,
        })
    }
}

/// Events and findings per time bucket: the answer to an [`ActivityQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Width of a bucket in seconds.
    pub bucket_secs: i64,
    /// Every bucket of the range, empty ones included, oldest first.
    pub buckets: Vec<ActivityBucket>,
}

/// One bucket of an [`Activity`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityBucket {
    /// Start of the bucket, a multiple of the bucket width since the Unix epoch. The first
    /// and last buckets count only what falls inside the query's range.
    pub start: DateTime<Utc>,
    /// Events whose `@timestamp` falls in the bucket.
    pub events: u64,
    /// Findings made in the bucket.
    pub findings: u64,
    /// Findings by severity name (`info` … `critical`); no zero entries.
    pub by_severity: BTreeMap<String, u64>,
    /// Findings by analyzer; no zero entries.
    pub by_analyzer: BTreeMap<String, u64>,
}
