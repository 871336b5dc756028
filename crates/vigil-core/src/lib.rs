//! Vigil's data model, shared by every other crate. No I/O lives here.
//!
//! * [`Event`]: one piece of telemetry, kept as nested JSON with Elastic Common Schema (ECS)
//!   field names so that custom fields survive untouched.
//! * [`FieldLookup`]: how analyzers read fields (`event.get("process.name")`), independent of
//!   the input format.
//! * [`Finding`]: what an analyzer says about one or more events.
//! * [`Incident`]: findings correlated by entity and time.
//! * [`net_guard`]: which outbound targets (webhooks, the LLM, VirusTotal) are internal
//!   addresses, refused unless the operator allows them.
#![warn(missing_docs)]

mod event;
mod finding;
mod incident;
pub mod metric_names;
pub mod ndjson;
pub mod net_guard;
pub mod strict_json;

pub use event::{Event, EventError, FieldLookup, MAX_EVENT_ID_LEN};
pub use finding::{Finding, FindingError, Severity, is_technique_id};
pub use incident::{Incident, IncidentNote, IncidentStatus};

/// Current time as an RFC 3339 UTC string with microsecond precision, the format Vigil
/// writes for every timestamp it produces.
pub fn now_rfc3339() -> String {
    format_ts(chrono::Utc::now())
}

/// Formats a timestamp the way Vigil stores it (RFC 3339, UTC, microseconds, `Z`).
pub fn format_ts(ts: chrono::DateTime<chrono::Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A new time-ordered unique id (UUIDv7) as a string.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a credential may do. Higher roles include the lower ones' rights:
/// `admin` ⊇ `agent`, `admin` ⊇ `viewer`; `agent` and `viewer` are disjoint
/// (agents submit telemetry, viewers read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Configuration, scripts, keys, and everything the other roles may do.
    Admin,
    /// Submit telemetry.
    Agent,
    /// Read events, findings, incidents.
    Viewer,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }

    /// Whether a holder of `self` may do what needs `required`.
    pub fn allows(self, required: Role) -> bool {
        self == Role::Admin || self == required
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "unknown role `{other}`: expected admin, agent or viewer"
            )),
        }
    }
}
