//! Rule documents: metadata ([`RuleMeta`]), validation, and rejection reasons ([`Rejected`]).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::detection::{self, Detection};
use crate::yaml::Node;

/// A rule's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `informational`
    Informational,
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

impl Level {
    /// Parses a Sigma level (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    /// The Sigma spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's `logsource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogSource {
    /// e.g. `windows`, `linux`
    pub product: Option<String>,
    /// e.g. `process_creation`
    pub category: Option<String>,
    /// e.g. `security`, `sysmon`
    pub service: Option<String>,
}

/// A loaded rule's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct RuleMeta {
    /// The rule's `id` (a UUID in SigmaHQ).
    pub id: String,
    /// `title`
    pub title: String,
    /// `level`; `medium` when the rule has none.
    pub level: Level,
    /// `status` (`stable`, `test`, `experimental`, `deprecated`, `unsupported`): deprecated
    /// and unsupported rules are loaded too; the caller decides.
    pub status: Option<String>,
    /// `description`
    pub description: Option<String>,
    /// `tags` (ATT&CK techniques etc.)
    pub tags: Vec<String>,
    /// `author`
    pub author: Option<String>,
    /// `references`
    pub references: Vec<String>,
    /// `falsepositives`
    pub falsepositives: Vec<String>,
    /// `logsource`
    pub logsource: LogSource,
    /// The file the rule came from.
    pub path: PathBuf,
}

/// Why a rule (or a whole file) was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The file could not be read, is too large, or is not UTF-8.
    File,
    /// The YAML is malformed or exceeds the parser's bounds.
    Yaml,
    /// A required key is missing or has the wrong type.
    Schema,
    /// The detection or condition is invalid (unknown identifier, bad regex, ...).
    Detection,
    /// A valid Sigma feature this engine does not implement (modifier, correlation, ...).
    Unsupported,
    /// Another file already defined this rule id.
    DuplicateId,
}

impl RejectKind {
    /// A stable code for the kind.
    pub fn code(self) -> &'static str {
        match self {
            RejectKind::File => "file",
            RejectKind::Yaml => "yaml",
            RejectKind::Schema => "schema",
            RejectKind::Detection => "detection",
            RejectKind::Unsupported => "unsupported",
            RejectKind::DuplicateId => "duplicate_id",
        }
    }
}

/// A rule that was not loaded, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// The file.
    pub path: PathBuf,
    /// The rule id, when the document had one.
    pub id: Option<String>,
    /// The rule title, when the document had one.
    pub title: Option<String>,
    /// What is wrong, naming the key, modifier or identifier at fault.
    pub reason: String,
    /// The class of problem (stable code via [`RejectKind::code`]).
    pub kind: RejectKind,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(id) = &self.id {
            write!(f, " (rule {id})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A validated, compiled rule before it is linked into a rule set.
#[derive(Debug, Clone)]
pub(crate) struct ParsedRule {
    pub(crate) meta: RuleMeta,
    pub(crate) detection: Detection,
}

fn reject(path: &Path, doc: &Node, kind: RejectKind, reason: impl Into<String>) -> Rejected {
    Rejected {
        path: path.to_path_buf(),
        id: doc.get("id").and_then(Node::as_str).map(String::from),
        title: doc.get("title").and_then(Node::as_str).map(String::from),
        reason: reason.into(),
        kind,
    }
}

fn opt_string(doc: &Node, key: &str) -> Result<Option<String>, String> {
    match doc.get(key) {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => n
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| format!("`{key}` must be a string, not {}", n.type_name())),
    }
}

fn string_list(doc: &Node, key: &str) -> Result<Vec<String>, String> {
    match doc.get(key) {
        None => Ok(Vec::new()),
        Some(n) if n.is_null() => Ok(Vec::new()),
        Some(Node::Seq(items)) => items
            .iter()
            .filter(|i| !i.is_null())
            .map(|i| {
                i.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("`{key}` items must be strings, not {}", i.type_name()))
            })
            .collect(),
        Some(n) => n
            .as_str()
            .map(|s| vec![s.to_string()])
            .ok_or_else(|| format!("`{key}` must be a list of strings, not {}", n.type_name())),
    }
}

/// Validates and compiles one YAML document as a rule.
pub(crate) fn parse_rule(doc: &Node, path: &Path) -> Result<ParsedRule, Rejected> {
    let schema = |reason: String| reject(path, doc, RejectKind::Schema, reason);
    if !matches!(doc, Node::Map(_)) {
        return Err(schema(format!(
            "a rule must be a mapping, not {}",
            doc.type_name()
        )));
    }
    if doc.get("correlation").is_some() {
        return Err(reject(
            path,
            doc,
            RejectKind::Unsupported,
            "correlation rules are unsupported",
        ));
    }
    if doc.get("action").is_some() {
        return Err(reject(
            path,
            doc,
            RejectKind::Unsupported,
            "multi-document rule collections (`action: global/repeat/reset`) are unsupported",
        ));
    }
    if doc.get("filter").is_some() {
        return Err(reject(
            path,
            doc,
            RejectKind::Unsupported,
            "Sigma meta filters (top-level `filter`) are unsupported",
        ));
    }
    let id = opt_string(doc, "id")
        .map_err(schema)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| schema("missing rule `id`".into()))?;
    let title = opt_string(doc, "title")
        .map_err(schema)?
        .ok_or_else(|| schema("missing `title`".into()))?;
    let level = match opt_string(doc, "level").map_err(schema)? {
        None => Level::Medium,
        Some(l) => Level::parse(&l).ok_or_else(|| schema(format!("unknown `level` `{l}`")))?,
    };
    let logsource = match doc.get("logsource") {
        None => return Err(schema("missing `logsource`".into())),
        Some(ls @ Node::Map(_)) => LogSource {
            product: opt_string(ls, "product").map_err(schema)?,
            category: opt_string(ls, "category").map_err(schema)?,
            service: opt_string(ls, "service").map_err(schema)?,
        },
        Some(n) => {
            return Err(schema(format!(
                "`logsource` must be a mapping, not {}",
                n.type_name()
            )));
        }
    };
    let meta = RuleMeta {
        id,
        title,
        level,
        status: opt_string(doc, "status").map_err(schema)?,
        description: opt_string(doc, "description").map_err(schema)?,
        tags: string_list(doc, "tags").map_err(schema)?,
        author: opt_string(doc, "author").map_err(schema)?,
        references: string_list(doc, "references").map_err(schema)?,
        falsepositives: string_list(doc, "falsepositives").map_err(schema)?,
        logsource,
        path: path.to_path_buf(),
    };
    let det = doc
        .get("detection")
        .ok_or_else(|| schema("missing `detection`".into()))?;
    let detection = detection::compile(det).map_err(|reason| {
        let kind = if reason.contains("unsupported") || reason.contains("deprecated") {
            RejectKind::Unsupported
        } else {
            RejectKind::Detection
        };
        reject(path, doc, kind, reason)
    })?;
    Ok(ParsedRule { meta, detection })
}
