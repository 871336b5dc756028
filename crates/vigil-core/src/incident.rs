//! [`Incident`]: findings about one entity within a time window, with a lifecycle.

use crate::Severity;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// New, nobody has looked yet.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Handled.
    Resolved,
    /// Not a real threat.
    FalsePositive,
}

impl IncidentStatus {
    /// All statuses.
    pub const ALL: [IncidentStatus; 4] = [
        IncidentStatus::Open,
        IncidentStatus::Acknowledged,
        IncidentStatus::Resolved,
        IncidentStatus::FalsePositive,
    ];

    /// Name as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::FalsePositive => "false_positive",
        }
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IncidentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IncidentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status `{s}`: expected open, acknowledged, resolved or false_positive"
                )
            })
    }
}

/// A note an analyst left on an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentNote {
    /// Who wrote it.
    pub author: String,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// What they wrote.
    pub text: String,
}

/// Correlated findings about one entity, with a lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique id (UUIDv7).
    pub id: String,
    /// One line for humans.
    pub title: String,
    /// Lifecycle state.
    pub status: IncidentStatus,
    /// Highest severity among its findings.
    pub severity: Severity,
    /// Combined score, 0–100.
    pub score: f64,
    /// The entity the findings share, e.g. `host:web-1`.
    pub entity: String,
    /// `host.name`, when the entity is on one host.
    #[serde(rename = "host.name", default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// Earliest finding time (RFC 3339 UTC).
    pub first_seen: String,
    /// Latest finding time (RFC 3339 UTC).
    pub last_seen: String,
    /// The findings, oldest first.
    #[serde(default)]
    pub finding_ids: Vec<String>,
    /// ATT&CK technique ids across the findings.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Analyst notes, oldest first.
    #[serde(default)]
    pub notes: Vec<IncidentNote>,
    /// Creation time (RFC 3339 UTC).
    pub created_at: String,
    /// Last change (RFC 3339 UTC).
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for st in IncidentStatus::ALL {
            assert_eq!(st.as_str().parse::<IncidentStatus>().unwrap(), st);
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("closed".parse::<IncidentStatus>().is_err());
    }
}
