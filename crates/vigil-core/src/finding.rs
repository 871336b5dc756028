//! [`Finding`]: what an analyzer concluded about one or more events.

use crate::{Event, FieldLookup};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// How bad a finding or incident is, ordered from `Info` to `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording, not worth a look.
    Info,
    /// Worth a look when time allows.
    Low,
    /// Worth a look today.
    Medium,
    /// Worth a look now.
    High,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The severity band a 0–100 score falls in: <20 info, <40 low, <70 medium, <90 high,
    /// else critical.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 90.0 => Severity::Critical,
            s if s >= 70.0 => Severity::High,
            s if s >= 40.0 => Severity::Medium,
            s if s >= 20.0 => Severity::Low,
            _ => Severity::Info,
        }
    }

    /// Lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = FindingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| FindingError::UnknownSeverity(s.to_string()))
    }
}

/// Why a finding is malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FindingError {
    /// Not one of info, low, medium, high, critical.
    #[error("unknown severity `{0}`: expected info, low, medium, high or critical")]
    UnknownSeverity(String),
    /// Score outside 0–100 or not a number.
    #[error("score {0} is outside 0..=100")]
    BadScore(f64),
    /// The analyzer name is empty.
    #[error("analyzer name is empty")]
    NoAnalyzer,
    /// Not an ATT&CK technique id such as T1059 or T1059.001.
    #[error("`{0}` is not an ATT&CK technique id such as T1059 or T1059.001")]
    BadTechnique(String),
}

/// An analyzer's conclusion about one or more events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Unique id (UUIDv7).
    pub id: String,
    /// When the finding was made (RFC 3339 UTC).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// Name of the analyzer, e.g. `script:powershell_encoded` or `sigma`.
    pub analyzer: String,
    /// 0 (benign) to 100 (certainly malicious).
    pub score: f64,
    /// Severity, by default derived from the score.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// Structured facts behind the conclusion.
    #[serde(default)]
    pub evidence: Value,
    /// MITRE ATT&CK technique ids.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// Ids of the events this finding is about.
    #[serde(default)]
    pub event_ids: Vec<String>,
    /// `host.name` of the events, for correlation.
    #[serde(rename = "host.name", default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// `agent.id` of the events, for correlation.
    #[serde(rename = "agent.id", default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl Finding {
    /// A new finding stamped now; the score is clamped to 0–100 and sets the severity.
    pub fn new(analyzer: impl Into<String>, score: f64, summary: impl Into<String>) -> Finding {
        let score = if score.is_finite() {
            score.clamp(0.0, 100.0)
        } else {
            0.0
        };
        Finding {
            id: crate::new_id(),
            timestamp: crate::now_rfc3339(),
            analyzer: analyzer.into(),
            score,
            severity: Severity::from_score(score),
            summary: summary.into(),
            evidence: Value::Null,
            techniques: Vec::new(),
            event_ids: Vec::new(),
            host_name: None,
            agent_id: None,
        }
    }

    /// Attaches the event it is about: its id, host and agent.
    pub fn about(mut self, event: &Event) -> Finding {
        self.event_ids.push(event.id().to_string());
        if self.host_name.is_none() {
            self.host_name = event.host_name().map(str::to_string);
        }
        if self.agent_id.is_none() {
            self.agent_id = event.get_str("agent.id").map(str::to_string);
        }
        self
    }

    /// Sets the evidence.
    pub fn with_evidence(mut self, evidence: Value) -> Finding {
        self.evidence = evidence;
        self
    }

    /// Overrides the severity derived from the score.
    pub fn with_severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// Adds ATT&CK technique ids.
    pub fn with_techniques<I, S>(mut self, ids: I) -> Finding
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.techniques.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Checks the invariants a stored finding must keep.
    pub fn validate(&self) -> Result<(), FindingError> {
        if self.analyzer.trim().is_empty() {
            return Err(FindingError::NoAnalyzer);
        }
        if !(0.0..=100.0).contains(&self.score) {
            return Err(FindingError::BadScore(self.score));
        }
        if let Some(bad) = self.techniques.iter().find(|t| !is_technique_id(t)) {
            return Err(FindingError::BadTechnique(bad.clone()));
        }
        Ok(())
    }
}

/// `T` + 4 digits, optionally `.` + 3 digits (T1059, T1059.001).
pub fn is_technique_id(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_bands_and_parsing() {
        assert_eq!(Severity::from_score(0.0), Severity::Info);
        assert_eq!(Severity::from_score(39.9), Severity::Low);
        assert_eq!(Severity::from_score(40.0), Severity::Medium);
        assert_eq!(Severity::from_score(89.0), Severity::High);
        assert_eq!(Severity::from_score(100.0), Severity::Critical);
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Low < Severity::Critical);
    }

    #[test]
    fn finding_clamps_and_validates() {
        let f = Finding::new("test", 250.0, "x");
        assert_eq!(f.score, 100.0);
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.validate().is_ok());
        let f = Finding::new("test", f64::NAN, "x");
        assert_eq!(f.score, 0.0);
        let bad = Finding::new("test", 10.0, "x").with_techniques(["T1059", "T59"]);
        assert_eq!(
            bad.validate(),
            Err(FindingError::BadTechnique("T59".into()))
        );
        assert!(is_technique_id("T1059.001"));
        assert!(!is_technique_id("T1059.1"));
        assert_eq!(
            Finding::new(" ", 1.0, "x").validate(),
            Err(FindingError::NoAnalyzer)
        );
    }

    #[test]
    fn finding_about_event_and_round_trip() {
        let ev = Event::from_input(
            json!({"host.name": "h1", "agent.id": "a1"}),
            chrono::Utc::now(),
        )
        .unwrap();
        let f = Finding::new("test", 55.0, "odd").about(&ev);
        assert_eq!(f.host_name.as_deref(), Some("h1"));
        assert_eq!(f.event_ids, vec![ev.id().to_string()]);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["host.name"], "h1");
        assert_eq!(json["severity"], "medium");
        let back: Finding = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }
}
