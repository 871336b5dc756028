//! Query, page and record types shared by every [`crate::Store`] implementation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
