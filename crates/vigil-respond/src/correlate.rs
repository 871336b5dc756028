//! Correlation: findings grouped into incidents by entity within a sliding time window.
//!
//! Each rule names the entity it groups by (`host.name`, `agent.id`, or a path in the
//! finding's evidence such as `evidence.connection.remote_ip`), which analyzers it applies
//! to and the weakest finding it takes. A finding joins the incident of the first rule that
//! applies to it and names its entity:
//! * the active incident (`open` or `acknowledged`) of that rule and entity value, when the
//!   finding comes within `window_secs` of that incident's latest finding (a sliding
//!   window), or when the incident already holds the same condition (the same analyzer and
//!   summary): a repeated condition never opens a second incident while one is active;
//! * otherwise a new incident.
//!
//! The [`Correlator`] is pure (no I/O): it keeps the active incidents in memory and returns
//! the incidents a batch of findings changed, for the caller to store and announce.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_core::{Event, FieldLookup, Finding, Incident, IncidentStatus, Severity};

/// One way of grouping findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name, part of the incident's entity (`host:web-1`).
    pub name: String,
    /// The entity field: `host.name`, `agent.id`, or `evidence.<path>`.
    pub entity: String,
    /// Analyzer names or prefixes ending in `*` (`script:*`); empty: every analyzer.
    #[serde(default)]
    pub analyzers: Vec<String>,
    /// Weakest finding the rule takes.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
}

fn default_min_severity() -> Severity {
    Severity::Low
}

/// `[incidents]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Correlate findings into incidents.
    pub enabled: bool,
    /// A finding joins an active incident whose latest finding is at most this old.
    pub window_secs: u64,
    /// Findings an incident holds at most; later ones still update its times and scores.
    pub max_findings: usize,
    /// The rules, tried in order.
    pub rules: Vec<Rule>,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        let rule = |name: &str, entity: &str| Rule {
            name: name.into(),
            entity: entity.into(),
            analyzers: Vec::new(),
            min_severity: Severity::Low,
        };
        CorrelationConfig {
            enabled: true,
            window_secs: 3600,
            max_findings: 1000,
            rules: vec![
                rule("host", "host.name"),
                rule("user", "event.user.name"),
                rule("process", "event.process.hash.sha256"),
                rule("file", "evidence.sha256"),
                rule("remote", "evidence.connection.remote_ip"),
                rule("destination", "event.destination.ip"),
            ],
        }
    }
}

impl CorrelationConfig {
    /// Checks the rules: names and entities present and unique names.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_secs == 0 {
            return Err("incidents.window_secs must be at least 1".into());
        }
        if self.max_findings == 0 {
            return Err("incidents.max_findings must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            if r.name.trim().is_empty() || r.name.contains(':') {
                return Err(format!(
                    "incidents.rules: the name `{}` must be non-empty and hold no `:`",
                    r.name
                ));
            }
            if !seen.insert(&r.name) {
                return Err(format!(
                    "incidents.rules: the name `{}` is used twice",
                    r.name
                ));
            }
            let ok = r.entity == "host.name"
                || r.entity == "agent.id"
                || ["evidence.", "event."]
                    .iter()
                    .any(|p| r.entity.strip_prefix(p).is_some_and(|p| !p.is_empty()));
            if !ok {
                return Err(format!(
                    "incidents.rules `{}`: entity `{}` must be host.name, agent.id, \
                     evidence.<path> or event.<path>",
                    r.name, r.entity
                ));
            }
        }
        Ok(())
    }
}

impl Rule {
    fn applies(&self, f: &Finding) -> bool {
        f.severity >= self.min_severity
            && (self.analyzers.is_empty()
                || self.analyzers.iter().any(|a| match a.strip_suffix('*') {
                    Some(prefix) => f.analyzer.starts_with(prefix),
                    None => f.analyzer == *a,
                }))
    }

    /// Whether the rule reads the finding's event.
    pub fn reads_events(&self) -> bool {
        self.entity.starts_with("event.")
    }

    /// The entity value of a finding (with its first event, when known), if it has one.
    fn value(&self, f: &Finding, event: Option<&Event>) -> Option<String> {
        let scalar = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let v = match self.entity.as_str() {
            "host.name" => f.host_name.clone(),
            "agent.id" => f.agent_id.clone(),
            path => match path.strip_prefix("event.") {
                Some(p) => scalar(event?.get(p)?),
                None => scalar(FieldLookup::get(
                    f.evidence.as_object()?,
                    path.strip_prefix("evidence.")?,
                )?),
            },
        }?;
        let v = v.trim();
        (!v.is_empty() && v.len() <= 512).then(|| v.to_string())
    }
}

/// What a batch of findings did to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new incident.
    Opened,
    /// An active incident took new findings.
    Updated,
}

/// An incident a batch changed.
#[derive(Debug, Clone)]
pub struct Change {
    /// Opened or updated.
    pub kind: ChangeKind,
    /// The incident as it is now.
    pub incident: Incident,
    /// The analyzers of its findings (those the correlator remembers).
    pub analyzers: Vec<String>,
}

struct Active {
    incident: Incident,
    last: DateTime<Utc>,
    /// (analyzer, summary) of its findings.
    conditions: std::collections::HashSet<(String, String)>,
    /// Product of (1 - score/100) over its findings, for the combined score.
    miss: f64,
}

/// The correlator: active incidents by (rule, entity value).
pub struct Correlator {
    config: CorrelationConfig,
    active: HashMap<String, Active>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Correlator {
    /// A correlator with no active incidents.
    pub fn new(config: CorrelationConfig) -> Correlator {
        Correlator {
            config,
            active: HashMap::new(),
        }
    }

    /// Takes back active incidents (after a restart); `findings` are theirs, for their
    /// conditions.
    pub fn restore(&mut self, incident: Incident, findings: &[Finding]) {
        if !matches!(
            incident.status,
            IncidentStatus::Open | IncidentStatus::Acknowledged
        ) {
            return;
        }
        let last = parse_time(&incident.last_seen).unwrap_or_else(Utc::now);
        let miss = 1.0 - incident.score / 100.0;
        let conditions = findings
            .iter()
            .map(|f| (f.analyzer.clone(), f.summary.clone()))
            .collect();
        self.active.insert(
            incident.entity.clone(),
            Active {
                incident,
                last,
                conditions,
                miss,
            },
        );
    }

    /// Active incidents held.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Applies an analyst's change (status, assignee): an incident resolved or marked a
    /// false positive stops taking findings.
    pub fn changed(&mut self, incident: &Incident) {
        if let Some(a) = self.active.get_mut(&incident.entity)
            && a.incident.id == incident.id
        {
            if matches!(
                incident.status,
                IncidentStatus::Open | IncidentStatus::Acknowledged
            ) {
                a.incident = incident.clone();
            } else {
                self.active.remove(&incident.entity);
            }
        }
    }

    /// The correlator's copy of an incident, when it is active (it holds the newest
    /// findings).
    pub fn current(&self, incident: &Incident) -> Option<Incident> {
        self.active
            .get(&incident.entity)
            .filter(|a| a.incident.id == incident.id)
            .map(|a| a.incident.clone())
    }

    /// Forgets active incidents idle for longer than the window (they stay open in the
    /// store; a new finding about their entity then opens a new incident unless it repeats
    /// one of their conditions, which is no longer remembered).
    pub fn expire(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::seconds(self.config.window_secs as i64);
        self.active.retain(|_, a| now - a.last <= window);
    }

    /// Correlates findings (oldest first); returns the incidents they opened or changed,
    /// each once, as they are after the batch.
    pub fn absorb(&mut self, findings: &[Finding]) -> Vec<Change> {
        self.absorb_with(findings, &HashMap::new())
    }

    /// Whether some rule reads the findings' events.
    pub fn reads_events(&self) -> bool {
        self.config.rules.iter().any(Rule::reads_events)
    }

    /// [`Correlator::absorb`] with the findings' first events, by finding id, for rules on
    /// `event.` fields.
    pub fn absorb_with(
        &mut self,
        findings: &[Finding],
        events: &HashMap<String, Event>,
    ) -> Vec<Change> {
        // Keys in the order they first changed, and how (a key opened twice in one batch
        // keeps its place and says `Opened`).
        let mut changed: Vec<String> = Vec::new();
        let mut how: HashMap<String, ChangeKind> = HashMap::new();
        let mut out: Vec<Change> = Vec::new();
        let window = chrono::Duration::seconds(self.config.window_secs as i64);
        for f in findings {
            let Some((rule, value)) = self
                .config
                .rules
                .iter()
                .filter(|r| r.applies(f))
                .find_map(|r| r.value(f, events.get(&f.id)).map(|v| (r, v)))
            else {
                continue;
            };
            let key = format!("{}:{value}", rule.name);
            let at = parse_time(&f.timestamp).unwrap_or_else(Utc::now);
            let condition = (f.analyzer.clone(), f.summary.clone());
            let joins = self.active.get(&key).is_some_and(|a| {
                (at - a.last).abs() <= window || a.conditions.contains(&condition)
            });
            if !joins {
                // The incident this one replaces changed earlier in the batch: report it
                // as it stands.
                if let Some(kind) = how.remove(&key) {
                    changed.retain(|k| *k != key);
                    if let Some(old) = self.active.get(&key) {
                        out.push(old.change(kind));
                    }
                }
                let now = vigil_core::now_rfc3339();
                let incident = Incident {
                    id: vigil_core::new_id(),
                    title: String::new(),
                    status: IncidentStatus::Open,
                    severity: f.severity,
                    score: 0.0,
                    entity: key.clone(),
                    host_name: f.host_name.clone(),
                    first_seen: f.timestamp.clone(),
                    last_seen: f.timestamp.clone(),
                    finding_ids: Vec::new(),
                    techniques: Vec::new(),
                    assignee: None,
                    notes: Vec::new(),
                    created_at: now.clone(),
                    updated_at: now,
                };
                self.active.insert(
                    key.clone(),
                    Active {
                        incident,
                        last: at,
                        conditions: Default::default(),
                        miss: 1.0,
                    },
                );
                how.insert(key.clone(), ChangeKind::Opened);
                changed.push(key.clone());
            } else if !how.contains_key(&key) {
                how.insert(key.clone(), ChangeKind::Updated);
                changed.push(key.clone());
            }
            let a = self.active.get_mut(&key).expect("inserted above");
            a.last = a.last.max(at);
            a.conditions.insert(condition);
            a.miss *= 1.0 - f.score.clamp(0.0, 100.0) / 100.0;
            let inc = &mut a.incident;
            if inc.finding_ids.len() < self.config.max_findings {
                inc.finding_ids.push(f.id.clone());
            }
            inc.severity = inc.severity.max(f.severity);
            inc.score = ((1.0 - a.miss) * 100.0).clamp(0.0, 100.0);
            for t in &f.techniques {
                if !inc.techniques.contains(t) {
                    inc.techniques.push(t.clone());
                }
            }
            if f.timestamp < inc.first_seen {
                inc.first_seen = f.timestamp.clone();
            }
            if f.timestamp > inc.last_seen {
                inc.last_seen = f.timestamp.clone();
            }
            if inc.host_name.is_none() {
                inc.host_name = f.host_name.clone();
            }
            let n = a.conditions.len();
            inc.title = match n {
                1 => format!("{} on {} {value}", f.summary_head(), rule.name),
                _ => format!(
                    "{n} kinds of findings on {} {value} ({} {})",
                    rule.name,
                    inc.finding_ids.len(),
                    if inc.finding_ids.len() == 1 {
                        "finding"
                    } else {
                        "findings"
                    }
                ),
            };
            inc.updated_at = vigil_core::now_rfc3339();
        }
        out.extend(
            changed
                .into_iter()
                .map(|key| self.active[&key].change(how[&key])),
        );
        out
    }
}

impl Active {
    fn change(&self, kind: ChangeKind) -> Change {
        let mut analyzers: Vec<String> = self.conditions.iter().map(|(an, _)| an.clone()).collect();
        analyzers.sort();
        analyzers.dedup();
        Change {
            kind,
            incident: self.incident.clone(),
            analyzers,
        }
    }
}

/// The first part of a summary, for titles.
trait SummaryHead {
    fn summary_head(&self) -> String;
}

impl SummaryHead for Finding {
    fn summary_head(&self) -> String {
        let head = self.summary.split([':', '\n']).next().unwrap_or("").trim();
        let head: String = head.chars().take(80).collect();
        if head.is_empty() {
            format!("{} finding", self.analyzer)
        } else {
            head
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(analyzer: &str, score: f64, host: Option<&str>, at: &str) -> Finding {
        let mut f = Finding::new(
            analyzer,
            score,
            format!("{analyzer} saw something: details"),
        );
        f.host_name = host.map(str::to_string);
        f.timestamp = at.to_string();
        f
    }

    #[test]
    fn groups_by_host_within_the_window_and_combines_scores() {
        let mut c = Correlator::new(CorrelationConfig::default());
        let mut a = finding("network", 60.0, Some("ws-1"), "2026-11-30T10:00:00Z");
        a.techniques = vec!["T1071".into()];
        let b = finding("logs", 70.0, Some("ws-1"), "2026-11-30T10:30:00Z");
        let other = finding("logs", 70.0, Some("ws-2"), "2026-11-30T10:31:00Z");
        let changes = c.absorb(&[a.clone(), b.clone(), other]);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].kind, ChangeKind::Opened);
        let inc = &changes[0].incident;
        assert_eq!(inc.entity, "host:ws-1");
        assert_eq!(inc.finding_ids, vec![a.id.clone(), b.id.clone()]);
        assert_eq!(inc.severity, Severity::from_score(70.0));
        // Noisy-or: 1 - 0.4 * 0.3 = 0.88.
        assert!((inc.score - 88.0).abs() < 1e-9, "{}", inc.score);
        assert_eq!(inc.techniques, vec!["T1071".to_string()]);
        assert_eq!(inc.first_seen, "2026-11-30T10:00:00Z");
        assert_eq!(inc.last_seen, "2026-11-30T10:30:00Z");
        assert!(inc.title.contains("2 kinds"), "{}", inc.title);
        // The window slides: 50 minutes after the last finding still joins...
        let c2 = finding("script:x", 50.0, Some("ws-1"), "2026-11-30T11:20:00Z");
        let changes = c.absorb(&[c2]);
        assert_eq!(changes[0].kind, ChangeKind::Updated);
        assert_eq!(changes[0].incident.id, inc.id);
        // ...two hours later only a repeated condition joins (and slides the window); a new
        // one past the window opens a new incident.
        let late = finding("files", 50.0, Some("ws-1"), "2026-11-30T15:00:00Z");
        let again = Finding {
            timestamp: "2026-11-30T13:31:00Z".into(),
            id: vigil_core::new_id(),
            ..b.clone()
        };
        let changes = c.absorb(std::slice::from_ref(&again));
        assert_eq!(
            changes[0].incident.id, inc.id,
            "a repeated condition is deduplicated"
        );
        let changes = c.absorb(&[late]);
        assert_eq!(changes[0].kind, ChangeKind::Opened);
        assert_ne!(changes[0].incident.id, inc.id);
    }

    #[test]
    fn a_batch_spanning_windows_reports_every_incident() {
        let mut c = Correlator::new(CorrelationConfig::default());
        let a = finding("logs", 60.0, Some("ws-1"), "2026-11-30T10:00:00Z");
        let b = finding("files", 60.0, Some("ws-1"), "2026-11-30T13:00:00Z");
        let changes = c.absorb(&[a.clone(), b.clone()]);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].incident.finding_ids, vec![a.id]);
        assert_eq!(changes[1].incident.finding_ids, vec![b.id]);
        assert!(changes.iter().all(|c| c.kind == ChangeKind::Opened));
    }

    #[test]
    fn rules_pick_entities_analyzers_and_severities() {
        let config = CorrelationConfig {
            rules: vec![
                Rule {
                    name: "net".into(),
                    entity: "evidence.connection.remote_ip".into(),
                    analyzers: vec!["network".into()],
                    min_severity: Severity::Medium,
                },
                Rule {
                    name: "script".into(),
                    entity: "host.name".into(),
                    analyzers: vec!["script:*".into()],
                    min_severity: Severity::Info,
                },
            ],
            ..Default::default()
        };
        config.validate().unwrap();
        let mut c = Correlator::new(config);
        let mut net = finding("network", 60.0, Some("ws-1"), "2026-11-30T10:00:00Z");
        net.evidence = serde_json::json!({"connection": {"remote_ip": "203.0.113.9"}});
        let weak = Finding {
            score: 10.0,
            severity: Severity::from_score(10.0),
            id: vigil_core::new_id(),
            ..net.clone()
        };
        let script = finding("script:ps", 5.0, Some("ws-1"), "2026-11-30T10:00:00Z");
        let logs = finding("logs", 90.0, Some("ws-1"), "2026-11-30T10:00:00Z");
        let changes = c.absorb(&[net, weak, script, logs]);
        let entities: Vec<&str> = changes.iter().map(|c| c.incident.entity.as_str()).collect();
        assert_eq!(entities, ["net:203.0.113.9", "script:ws-1"]);
        assert_eq!(
            changes[0].incident.finding_ids.len(),
            1,
            "the weak one is not taken"
        );
    }

    #[test]
    fn resolved_incidents_stop_taking_findings_and_config_is_checked() {
        let mut c = Correlator::new(CorrelationConfig::default());
        let a = finding("logs", 70.0, Some("db"), "2026-11-30T10:00:00Z");
        let mut inc = c.absorb(std::slice::from_ref(&a)).remove(0).incident;
        inc.status = IncidentStatus::Resolved;
        c.changed(&inc);
        assert_eq!(c.active(), 0);
        let b = Finding {
            id: vigil_core::new_id(),
            ..a
        };
        assert_eq!(c.absorb(&[b])[0].kind, ChangeKind::Opened);
        for bad in [
            CorrelationConfig {
                window_secs: 0,
                ..Default::default()
            },
            CorrelationConfig {
                rules: vec![Rule {
                    name: "x".into(),
                    entity: "process.name".into(),
                    analyzers: vec![],
                    min_severity: Severity::Low,
                }],
                ..Default::default()
            },
            CorrelationConfig {
                rules: vec![
                    CorrelationConfig::default().rules[0].clone(),
                    CorrelationConfig::default().rules[0].clone(),
                ],
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
