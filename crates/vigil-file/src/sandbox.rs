//! Sandbox reports (CAPE and Cuckoo `report.json`) as dynamic evidence.
//!
//! Both sandboxes write one JSON document per run. Vigil keeps the part that matters for a
//! verdict: the sandbox's own score (Cuckoo's `info.score`, CAPE's `malscore`, both 0–10),
//! the signatures that fired with their severity and ATT&CK techniques, the processes, the
//! contacted hosts and domains, dropped files, and CAPE's family detections. Reports are
//! untrusted input: every field is optional, wrong types are ignored, lists are capped.

use crate::verdict::Evidence;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Items kept of each list, so that a huge report makes a small summary.
const MAX_LISTED: usize = 50;

/// Which sandbox wrote the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// CAPEv2 (`malscore`, `detections`).
    Cape,
    /// Cuckoo 2.x (`info.score`).
    Cuckoo,
}

/// One signature that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Its name (`injection_runpe`).
    pub name: String,
    /// What it means.
    pub description: String,
    /// Severity as the sandbox gives it (1 low, 2 medium, 3 high; CAPE goes higher).
    pub severity: u32,
    /// ATT&CK technique ids it names.
    pub techniques: Vec<String>,
}

/// What Vigil keeps of a sandbox report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSummary {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The analysed file's SHA-256, when the report names it.
    pub sha256: Option<String>,
    /// The sandbox's score, 0–10.
    pub score: Option<f64>,
    /// Signatures, most severe first.
    pub signatures: Vec<Signature>,
    /// Malware families the sandbox named.
    pub families: BTreeSet<String>,
    /// ATT&CK techniques of all signatures.
    pub techniques: BTreeSet<String>,
    /// Process names seen.
    pub processes: BTreeSet<String>,
    /// Contacted IP addresses.
    pub hosts: BTreeSet<String>,
    /// Resolved domains.
    pub domains: BTreeSet<String>,
    /// Number of dropped files.
    pub dropped: usize,
}

/// Why a document is not a sandbox report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// Not JSON.
    #[error("the sandbox report is not JSON: {0}")]
    Json(String),
    /// JSON without any of the sections a CAPE or Cuckoo report has.
    #[error(
        "not a CAPE or Cuckoo report: expected an object with `info`, `signatures`, `behavior`, `target` or `malscore`"
    )]
    NotAReport,
}

fn str_of(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn insert_capped(set: &mut BTreeSet<String>, value: Option<&str>) {
    if let Some(v) = value
        && set.len() < MAX_LISTED
    {
        set.insert(v.chars().take(256).collect());
    }
}

fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5
        && (b[0] == b'T' || b[0] == b't')
        && b[1..5].iter().all(u8::is_ascii_digit)
        && (b.len() == 5 || (b.len() == 9 && b[5] == b'.' && b[6..].iter().all(u8::is_ascii_digit)))
}

/// ATT&CK ids in a signature: `ttp` (a list of ids or an object keyed by id, as Cuckoo
/// and CAPE write them) and `mbcs`-free `ttps` lists of objects with `ttp`.
fn techniques_of(sig: &Value) -> Vec<String> {
    let mut out = BTreeSet::new();
    for key in ["ttp", "ttps"] {
        match &sig[key] {
            Value::Array(items) => {
                for item in items {
                    let id = str_of(item).or_else(|| str_of(&item["ttp"]));
                    if let Some(id) = id.filter(|s| is_technique(s)) {
                        out.insert(id.to_ascii_uppercase());
                    }
                }
            }
            Value::Object(map) => {
                for id in map.keys().filter(|k| is_technique(k)) {
                    out.insert(id.to_ascii_uppercase());
                }
            }
            Value::String(s) if is_technique(s) => {
                out.insert(s.to_ascii_uppercase());
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|x| x.is_finite())
}

/// Reads a CAPE or Cuckoo `report.json`.
pub fn parse(bytes: &[u8]) -> Result<SandboxSummary, SandboxError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| SandboxError::Json(e.to_string()))?;
    let Some(obj) = doc.as_object() else {
        return Err(SandboxError::NotAReport);
    };
    let known = ["info", "signatures", "behavior", "target", "malscore"];
    if !known.iter().any(|k| obj.contains_key(*k)) {
        return Err(SandboxError::NotAReport);
    }
    let cape =
        obj.contains_key("malscore") || obj.contains_key("CAPE") || obj.contains_key("detections");
    let score = if cape {
        number(&doc["malscore"])
    } else {
        number(&doc["info"]["score"])
    }
    .map(|s| s.clamp(0.0, 10.0));
    let sha256 = str_of(&doc["target"]["file"]["sha256"])
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);

    let mut families = BTreeSet::new();
    let mut techniques = BTreeSet::new();
    let mut signatures = Vec::new();
    if let Some(list) = doc["signatures"].as_array() {
        for sig in list {
            let Some(name) = str_of(&sig["name"]) else {
                continue;
            };
            let severity = number(&sig["severity"]).unwrap_or(1.0).clamp(0.0, 10.0) as u32;
            let ttps = techniques_of(sig);
            techniques.extend(ttps.iter().cloned());
            if let Some(fams) = sig["families"].as_array() {
                for f in fams {
                    insert_capped(&mut families, str_of(f));
                }
            }
            signatures.push(Signature {
                name: name.chars().take(128).collect(),
                description: str_of(&sig["description"])
                    .unwrap_or("")
                    .chars()
                    .take(512)
                    .collect(),
                severity,
                techniques: ttps,
            });
        }
    }
    signatures.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.name.cmp(&b.name)));
    signatures.truncate(MAX_LISTED);
    // CAPE: `detections` is a list of {family} objects (newer) or a string (older);
    // `malfamily` in older reports.
    match &doc["detections"] {
        Value::Array(items) => {
            for d in items {
                insert_capped(&mut families, str_of(&d["family"]).or_else(|| str_of(d)));
            }
        }
        v => insert_capped(&mut families, str_of(v)),
    }
    insert_capped(&mut families, str_of(&doc["malfamily"]));

    let mut processes = BTreeSet::new();
    if let Some(list) = doc["behavior"]["processes"].as_array() {
        for p in list {
            insert_capped(
                &mut processes,
                str_of(&p["process_name"]).or_else(|| str_of(&p["name"])),
            );
        }
    }
    let mut hosts = BTreeSet::new();
    if let Some(list) = doc["network"]["hosts"].as_array() {
        for h in list {
            // Cuckoo 2 lists bare addresses; CAPE and Cuckoo 2.0.7 objects with `ip`.
            insert_capped(&mut hosts, str_of(h).or_else(|| str_of(&h["ip"])));
        }
    }
    let mut domains = BTreeSet::new();
    if let Some(list) = doc["network"]["domains"].as_array() {
        for d in list {
            insert_capped(&mut domains, str_of(&d["domain"]).or_else(|| str_of(d)));
        }
    }
    let dropped = doc["dropped"].as_array().map_or(0, Vec::len);
    Ok(SandboxSummary {
        sandbox: if cape { Sandbox::Cape } else { Sandbox::Cuckoo },
        sha256,
        score,
        signatures,
        families,
        techniques,
        processes,
        hosts,
        domains,
        dropped,
    })
}

/// The evidence a sandbox report gives: its score (trusted a little less than what Vigil
/// observed itself: sandboxes score noisy signatures), named families, high-severity
/// signatures.
pub fn evidence(s: &SandboxSummary) -> Vec<Evidence> {
    let name = match s.sandbox {
        Sandbox::Cape => "CAPE",
        Sandbox::Cuckoo => "Cuckoo",
    };
    let mut out = Vec::new();
    let severe: Vec<&str> = s
        .signatures
        .iter()
        .filter(|sig| sig.severity >= 3)
        .map(|sig| sig.name.as_str())
        .take(5)
        .collect();
    if let Some(score) = s.score {
        let mut reason = format!("{name} scored it {score:.1}/10");
        if !severe.is_empty() {
            reason.push_str(&format!("; severe signatures: {}", severe.join(", ")));
        }
        out.push(Evidence::new("sandbox", score / 10.0, 0.8, reason));
    } else if !severe.is_empty() {
        out.push(Evidence::new(
            "sandbox",
            (0.25 * severe.len() as f64).min(0.9),
            0.7,
            format!("{name} severe signatures: {}", severe.join(", ")),
        ));
    }
    if !s.families.is_empty() {
        let families: Vec<&str> = s.families.iter().map(String::as_str).take(5).collect();
        out.push(Evidence::new(
            "sandbox",
            0.9,
            0.8,
            format!("{name} named the family {}", families.join(", ")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cuckoo_report() {
        let sha = "ab".repeat(32);
        let doc = json!({
            "info": {"score": 7.4, "id": 12, "package": "exe"},
            "target": {"category": "file", "file": {"sha256": sha, "name": "x.exe"}},
            "signatures": [
                {"name": "antivm_generic_disk", "description": "Queries disk size", "severity": 1,
                 "ttp": {"T1082": {"short": "System Information Discovery"}}},
                {"name": "injection_runpe", "description": "Process hollowing", "severity": 3,
                 "families": ["Emotet"], "ttp": ["T1055.012"]},
                {"severity": 3},
                "not an object"
            ],
            "behavior": {"processes": [{"process_name": "x.exe", "pid": 1}, {"process_name": "cmd.exe"}]},
            "network": {"hosts": ["203.0.113.7", {"ip": "198.51.100.2"}], "domains": [{"domain": "evil.example", "ip": "203.0.113.7"}]},
            "dropped": [{"sha256": "00"}, {"sha256": "11"}]
        });
        let s = parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(s.sandbox, Sandbox::Cuckoo);
        assert_eq!(s.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(s.score, Some(7.4));
        assert_eq!(s.signatures.len(), 2);
        assert_eq!(s.signatures[0].name, "injection_runpe");
        assert_eq!(
            s.techniques.iter().collect::<Vec<_>>(),
            ["T1055.012", "T1082"]
        );
        assert!(s.families.contains("Emotet"));
        assert_eq!(s.processes.len(), 2);
        assert_eq!(s.hosts.len(), 2);
        assert!(s.domains.contains("evil.example"));
        assert_eq!(s.dropped, 2);
        let ev = evidence(&s);
        assert_eq!(ev.len(), 2);
        assert!((ev[0].score - 0.74).abs() < 1e-9);
        assert!(ev[0].reason.contains("injection_runpe"));
    }

    #[test]
    fn cape_report() {
        let doc = json!({
            "malscore": "10.0",
            "detections": [{"family": "AgentTesla"}],
            "info": {"id": 1},
            "signatures": [{"name": "stealth_timeout", "severity": 2, "ttp": [{"ttp": "T1497"}]}],
            "network": {"hosts": [{"ip": "192.0.2.1", "country_name": "x"}]}
        });
        let s = parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(s.sandbox, Sandbox::Cape);
        assert_eq!(s.score, Some(10.0));
        assert!(s.families.contains("AgentTesla"));
        assert!(s.techniques.contains("T1497"));
        let ev = evidence(&s);
        assert_eq!(ev[0].score, 1.0);
        // A clean run: score 0, nothing named, no evidence that raises the verdict.
        let clean = parse(br#"{"info": {"score": 0.0}, "signatures": []}"#).unwrap();
        assert!(evidence(&clean).iter().all(|e| e.score == 0.0));
    }

    #[test]
    fn hostile_documents_are_errors_or_empty() {
        assert!(matches!(parse(b"{"), Err(SandboxError::Json(_))));
        assert_eq!(parse(b"[1,2]"), Err(SandboxError::NotAReport));
        assert_eq!(parse(b"{\"a\": 1}"), Err(SandboxError::NotAReport));
        let odd = json!({"info": {"score": "NaN"}, "malscore": 1e308, "signatures": {"x": 1},
                         "behavior": {"processes": "no"}, "network": 5, "target": {"file": {"sha256": "short"}}});
        let s = parse(odd.to_string().as_bytes()).unwrap();
        assert_eq!(s.score, Some(10.0));
        assert!(s.sha256.is_none() && s.signatures.is_empty() && s.hosts.is_empty());
        // Lists are capped.
        let many: Vec<Value> = (0..500)
            .map(|i| json!({"name": format!("s{i}"), "severity": 1}))
            .collect();
        let s = parse(json!({"signatures": many}).to_string().as_bytes()).unwrap();
        assert_eq!(s.signatures.len(), MAX_LISTED);
    }

    #[test]
    fn technique_ids() {
        for ok in ["T1055", "T1055.012", "t1082"] {
            assert!(is_technique(ok), "{ok}");
        }
        for bad in ["T105", "T1055.1", "X1055", "T10551", "T1055.0123", ""] {
            assert!(!is_technique(bad), "{bad}");
        }
    }
}
