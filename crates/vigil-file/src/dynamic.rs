//! Dynamic analysis from what Vigil has observed: the events in which a file ran
//! (`process.hash.sha256`), started children (`process.parent.hash.sha256`) or was
//! written or read (`file.hash.sha256`), and the findings made on those events.

use crate::verdict::Evidence;
use serde::Serialize;
use std::collections::BTreeSet;
use vigil_core::{Event, FieldLookup, Finding};

/// Children that turn a program into a foothold: shells, script hosts, LOLBins.
const RISKY_CHILDREN: [&str; 16] = [
    "cmd.exe",
    "powershell.exe",
    "pwsh.exe",
    "wscript.exe",
    "cscript.exe",
    "mshta.exe",
    "rundll32.exe",
    "regsvr32.exe",
    "certutil.exe",
    "bitsadmin.exe",
    "schtasks.exe",
    "bash",
    "sh",
    "nc",
    "curl",
    "wget",
];

/// Listed items are capped so that a busy file cannot make the report huge.
const MAX_LISTED: usize = 20;

/// What was observed of one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Behaviour {
    /// Events that mention the hash.
    pub events: usize,
    /// Times it ran (`process.hash.sha256`).
    pub executions: usize,
    /// Hosts it was seen on.
    pub hosts: BTreeSet<String>,
    /// Names of the processes it started.
    pub children: BTreeSet<String>,
    /// Network events of its processes.
    pub connections: usize,
    /// Their destinations (`ip:port`).
    pub destinations: BTreeSet<String>,
    /// Findings on those events: (score, analyzer, summary), strongest first.
    pub findings: Vec<(f64, String, String)>,
}

fn insert_capped(set: &mut BTreeSet<String>, value: Option<String>) {
    if let Some(v) = value
        && set.len() < MAX_LISTED
    {
        set.insert(v);
    }
}

/// Gathers the behaviour of `sha256` from `events` (as `Store::events_by_hash` returns
/// them) and the `findings` made on them.
pub fn observe(sha256: &str, events: &[Event], findings: &[Finding]) -> Behaviour {
    let mut b = Behaviour {
        events: events.len(),
        ..Behaviour::default()
    };
    for e in events {
        insert_capped(&mut b.hosts, e.host_name().map(str::to_string));
        let own = e
            .get_str("process.hash.sha256")
            .is_some_and(|h| h.eq_ignore_ascii_case(sha256));
        let parent = e
            .get_str("process.parent.hash.sha256")
            .is_some_and(|h| h.eq_ignore_ascii_case(sha256));
        let network = e.categories().any(|c| c == "network");
        if own && network {
            b.connections += 1;
            let dest = e
                .get_str("destination.ip")
                .map(|ip| match e.get_f64("destination.port") {
                    Some(port) => format!("{ip}:{port}"),
                    None => ip.to_string(),
                });
            insert_capped(&mut b.destinations, dest);
        } else if own {
            b.executions += 1;
        }
        if parent {
            insert_capped(
                &mut b.children,
                e.get_str("process.name").map(str::to_ascii_lowercase),
            );
        }
    }
    let mut f: Vec<(f64, String, String)> = findings
        .iter()
        .map(|f| (f.score, f.analyzer.clone(), f.summary.clone()))
        .collect();
    f.sort_by(|a, b| b.0.total_cmp(&a.0));
    f.truncate(MAX_LISTED);
    b.findings = f;
    b
}

/// The evidence behaviour gives, and a note when there is none.
pub fn evidence(b: &Behaviour) -> (Vec<Evidence>, Option<String>) {
    if b.events == 0 {
        return (
            Vec::new(),
            Some("dynamic: Vigil has observed no event of this file".into()),
        );
    }
    let mut out = Vec::new();
    // The reason names the strongest finding's analyzer and score, not its summary: the
    // reason reaches agents, and a summary may quote another host's command line.
    if let Some((score, analyzer, _summary)) = b.findings.first() {
        out.push(Evidence::new(
            "dynamic",
            score / 100.0,
            0.9,
            format!(
                "{} finding(s) on its events; strongest scored {score:.0} ({analyzer})",
                b.findings.len()
            ),
        ));
    }
    let risky: Vec<&str> = b
        .children
        .iter()
        .map(String::as_str)
        .filter(|c| RISKY_CHILDREN.contains(c))
        .collect();
    if !risky.is_empty() {
        out.push(Evidence::new(
            "dynamic",
            0.6,
            0.6,
            format!("started {}", risky.join(", ")),
        ));
    }
    if b.connections > 0 {
        out.push(Evidence::new(
            "dynamic",
            0.2,
            0.5,
            format!(
                "{} network connection(s) to {} destination(s)",
                b.connections,
                b.destinations.len()
            ),
        ));
    }
    let note = out.is_empty().then(|| {
        format!(
            "dynamic: seen in {} event(s) on {} host(s), nothing suspicious",
            b.events,
            b.hosts.len()
        )
    });
    (out, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: serde_json::Value) -> Event {
        Event::from_input(v, chrono_now()).unwrap()
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }

    #[test]
    fn behaviour_and_its_evidence() {
        let sha = "ab".repeat(32);
        let events = vec![
            ev(json!({"event.category": "process", "host.name": "h1",
                      "process.name": "evil.exe", "process.hash.sha256": sha})),
            ev(
                json!({"event.category": "process", "host.name": "h1", "process.name": "PowerShell.exe",
                      "process.parent.hash.sha256": sha}),
            ),
            ev(
                json!({"event.category": "network", "host.name": "h2", "process.hash.sha256": sha,
                      "destination.ip": "203.0.113.9", "destination.port": 4444}),
            ),
        ];
        let finding = Finding::new("script:x", 80.0, "encoded PowerShell");
        let b = observe(&sha, &events, &[finding]);
        assert_eq!((b.events, b.executions, b.connections), (3, 1, 1));
        assert_eq!(b.hosts.len(), 2);
        assert!(b.children.contains("powershell.exe"));
        assert!(b.destinations.contains("203.0.113.9:4444"));
        let (evidence, note) = evidence(&b);
        assert!(note.is_none());
        assert_eq!(evidence.len(), 3);
        assert!(
            evidence[0]
                .reason
                .contains("strongest scored 80 (script:x)")
        );
        assert!(!evidence[0].reason.contains("encoded PowerShell"));
        let (none, note) = super::evidence(&Behaviour::default());
        assert!(none.is_empty() && note.unwrap().contains("no event"));
    }
}
