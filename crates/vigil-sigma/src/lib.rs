//! vigil-sigma: a Sigma rule engine.
//!
//! Loads SigmaHQ rules (YAML) from folders, validates them, compiles them into matchers and
//! evaluates them on flat event records: Windows EVTX records as the `evtx` crate renders
//! them to JSON ([`Record::from_evtx_json`]), or Vigil's ECS events through a
//! [`FieldMapping`].
//!
//! ```
//! use std::path::Path;
//! use vigil_sigma::{Record, RuleSet};
//!
//! let rules = RuleSet::from_yaml(r#"
//! title: Whoami
//! id: 00000000-0000-0000-0000-000000000001
//! logsource: {product: windows, category: process_creation}
//! detection:
//!     selection:
//!         Image|endswith: '\whoami.exe'
//!     condition: selection
//! level: low
//! "#, Path::new("whoami.yml")).unwrap();
//! let event = serde_json::json!({"Event": {
//!     "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
//!     "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe"}}});
//! let hits = rules.matches(&Record::from_evtx_json(&event));
//! assert_eq!(hits[0].rule.title, "Whoami");
//! ```
//!
//! Modules: [`record`] (events as rules see them), `yaml` (bounded YAML loading), `rule`
//! (rule documents and rejection reasons), `detection`, `condition` and `value` (compiling
//! and evaluating detections), `logsource` (which records a rule describes, from
//! `data/windows.toml`), `ruleset` (loading, indexing, the matching hot path), `ecs`
//! (ECS to Sigma, from `data/ecs.toml`).
//!
//! Semantics follow the Sigma specification v2 as pySigma implements it; the crate README
//! (`crates/vigil-sigma/README.md`) lists every choice where implementations differ.

#![warn(missing_docs)]

mod condition;
mod detection;
mod ecs;
mod fxhash;
mod logsource;
pub mod record;
mod rule;
mod ruleset;
mod value;
mod yaml;

use std::path::{Path, PathBuf};

pub use ecs::FieldMapping;
pub use record::{FieldValue, Record};
pub use rule::{Level, LogSource, RejectKind, Rejected, RuleMeta};
pub use ruleset::{LoadReport, MAX_RULE_FILE_BYTES, Match, RuleSet, RuleSetStats};

/// Errors of this crate's fallible entry points. Problems with individual rules are not
/// errors: they are reported as [`Rejected`].
#[derive(Debug, thiserror::Error)]
pub enum SigmaError {
    /// A rule directory could not be read.
    #[error("cannot read rule directory {path}: {source}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A path given as a rule directory is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// A field mapping file is invalid.
    #[error("invalid field mapping: {0}")]
    Mapping(String),
}

impl SigmaError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            SigmaError::ReadDir { .. } => "sigma.read_dir",
            SigmaError::NotADirectory(_) => "sigma.not_a_directory",
            SigmaError::Mapping(_) => "sigma.mapping",
        }
    }
}

/// Fuzzing entry point: parses and compiles arbitrary bytes as a rule file, then evaluates
/// the result on a fixed Sysmon process-creation record and a fixed non-EVTX record. Must
/// never panic, whatever the input.
pub fn fuzz_rule(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if text.len() as u64 > MAX_RULE_FILE_BYTES {
        return;
    }
    let Ok(rules) = RuleSet::from_yaml(text, Path::new("fuzz.yml")) else {
        return;
    };
    for record in fuzz_records() {
        for m in rules.matches(record) {
            std::hint::black_box(&m.fields);
        }
    }
}

fn fuzz_records() -> &'static [Record] {
    static RECORDS: std::sync::OnceLock<Vec<Record>> = std::sync::OnceLock::new();
    RECORDS.get_or_init(|| {
        let evtx = serde_json::json!({"Event": {"System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "host", "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:00Z"}}},
            "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe",
                "CommandLine": "cmd.exe /c whoami -all", "ParentImage": "C:\\Windows\\explorer.exe",
                "User": "HOST\\user", "IntegrityLevel": "High", "SourceIp": "10.1.2.3",
                "DestinationPort": 443, "Empty": "", "Nothing": null,
                "Data": ["a", "b"]}}});
        let generic = Record::from_pairs([
            ("product".to_string(), serde_json::json!("linux")),
            ("category".to_string(), serde_json::json!("process_creation")),
            ("Image".to_string(), serde_json::json!("/bin/sh")),
            ("CommandLine".to_string(), serde_json::json!("sh -c id")),
        ]);
        vec![Record::from_evtx_json(&evtx), generic]
    })
}
