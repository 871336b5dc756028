//! The agent's tools: Vigil's own analyzers, each with a JSON schema so that an LLM can call
//! it, and a [`Signal`] so that the offline verdict can weigh its result.
//!
//! Store-backed tools ([`store_tools`]) work wherever the store is (server and CLI); the
//! server adds tools that need its running services (user scripts, live VirusTotal) under
//! the same names, replacing the cached-only versions.

use crate::input::Subject;
use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::Severity;
use vigil_store::{ConnectionQuery, EventQuery, FindingQuery, Store};

/// Every tool a playbook may name.
pub const TOOL_NAMES: [&str; 9] = [
    "search_events",
    "related_findings",
    "file_verdict",
    "virustotal_lookup",
    "network_history",
    "log_anomalies",
    "run_script",
    "asset_lookup",
    "port_info",
];

/// Longest window a tool looks back over, in hours.
pub const MAX_HOURS: i64 = 24 * 30;
/// Most rows a tool returns.
pub const MAX_ROWS: usize = 50;
/// Largest tool result passed on (to the report and the LLM), in bytes of JSON.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// What a tool's result says about the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Nothing either way (no data, context only).
    None,
    /// Evidence that it is harmless.
    Benign,
    /// Evidence of something wrong, not proof.
    Suspicious,
    /// Evidence of compromise.
    Malicious,
}

/// A tool's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// What it says about the event.
    pub signal: Signal,
    /// One sentence for the report.
    pub summary: String,
    /// The data, bounded to [`MAX_RESULT_BYTES`].
    pub data: Value,
}

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name is available here.
    #[error("no tool named `{0}` is available")]
    Unknown(String),
    /// The playbook does not allow it for this category.
    #[error("tool `{0}` is not allowed for this category")]
    NotAllowed(String),
    /// The arguments do not match the schema.
    #[error("bad arguments for `{tool}`: {reason}")]
    BadArguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// It took too long.
    #[error("`{0}` timed out")]
    Timeout(String),
    /// It failed.
    #[error("`{tool}` failed: {reason}")]
    Failed {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
}

/// A tool the agent can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Its name (one of [`TOOL_NAMES`]).
    fn name(&self) -> &'static str;
    /// What it does, for the LLM.
    fn description(&self) -> &'static str;
    /// JSON schema of its arguments (an object schema with `properties` and `required`).
    fn parameters(&self) -> Value;
    /// Runs it; arguments were checked against [`Tool::parameters`].
    async fn call(
        &self,
        args: &Map<String, Value>,
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError>;
}

/// The tools available, by name.
#[derive(Clone)]
pub struct Toolbox {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
    timeout: Duration,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl Toolbox {
    /// An empty toolbox whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> Toolbox {
        Toolbox {
            tools: BTreeMap::new(),
            timeout,
        }
    }

    /// Adds a tool, replacing one of the same name.
    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name(), tool);
    }

    /// Names of the tools available.
    pub fn names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }

    /// The OpenAI `tools` array for the allowed tools that are available.
    pub fn specs(&self, allowed: &[String]) -> Vec<Value> {
        allowed
            .iter()
            .filter_map(|name| self.tools.get(name.as_str()))
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name(), "description": t.description(), "parameters": t.parameters()
                }})
            })
            .collect()
    }

    /// Checks and runs a call: the tool must exist and be allowed, the arguments must match
    /// its schema, and it must answer within the timeout.
    pub async fn call(
        &self,
        name: &str,
        args: &Value,
        allowed: &[String],
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        if !allowed.iter().any(|a| a == name) {
            return Err(if TOOL_NAMES.contains(&name) {
                ToolError::NotAllowed(name.to_string())
            } else {
                ToolError::Unknown(name.chars().take(64).collect())
            });
        }
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::Unknown(name.to_string()))?;
        let args = check_args(name, &tool.parameters(), args)?;
        let mut out = tokio::time::timeout(self.timeout, tool.call(&args, subject))
            .await
            .map_err(|_| ToolError::Timeout(name.to_string()))??;
        let text = out.data.to_string();
        if text.len() > MAX_RESULT_BYTES {
            out.data = json!({"truncated": true, "bytes": text.len(),
                "head": text.chars().take(MAX_RESULT_BYTES / 2).collect::<String>()});
        }
        Ok(out)
    }
}

/// Checks arguments against the small schema subset the tools use (object, `required`,
/// property types `string`/`integer`, no unknown properties); integers given as strings
/// (`"22"`, as templates produce) are converted.
fn check_args(tool: &str, schema: &Value, args: &Value) -> Result<Map<String, Value>, ToolError> {
    let bad = |reason: String| ToolError::BadArguments {
        tool: tool.to_string(),
        reason,
    };
    let args = match args {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => return Err(bad(format!("expected a JSON object, got {other}"))),
    };
    let empty = Map::new();
    let props = schema["properties"].as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for (k, v) in args {
        let Some(p) = props.get(&k) else {
            let known: Vec<&str> = props.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "unknown argument `{k}` (expected: {})",
                known.join(", ")
            )));
        };
        let v = match (p["type"].as_str(), v) {
            (Some("integer"), Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad(format!("`{k}` must be an integer, got \"{s}\"")))?,
            (Some("integer"), v @ Value::Number(_)) if v.as_i64().is_some() => v,
            (Some("integer"), v) => return Err(bad(format!("`{k}` must be an integer, got {v}"))),
            (Some("string"), Value::String(s)) if s.len() <= 1024 => Value::String(s),
            (Some("string"), Value::Number(n)) => Value::String(n.to_string()),
            (Some("string"), v) => {
                return Err(bad(format!(
                    "`{k}` must be a string of at most 1024 bytes, got {v}"
                )));
            }
            (_, v) => v,
        };
        if let (Some(min), Some(n)) = (p["minimum"].as_i64(), v.as_i64())
            && n < min
        {
            return Err(bad(format!("`{k}` must be at least {min}")));
        }
        if let (Some(max), Some(n)) = (p["maximum"].as_i64(), v.as_i64())
            && n > max
        {
            return Err(bad(format!("`{k}` must be at most {max}")));
        }
        out.insert(k, v);
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        if let Some(r) = r.as_str()
            && !out.contains_key(r)
        {
            return Err(bad(format!("`{r}` is required")));
        }
    }
    if let Some(any) = schema["x-any-of"].as_array()
        && !any
            .iter()
            .filter_map(Value::as_str)
            .any(|k| out.contains_key(k))
    {
        let names: Vec<&str> = any.iter().filter_map(Value::as_str).collect();
        return Err(bad(format!("give at least one of {}", names.join(", "))));
    }
    Ok(out)
}

fn str_arg<'a>(args: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    args.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn hours_arg(args: &Map<String, Value>) -> i64 {
    args.get("hours")
        .and_then(Value::as_i64)
        .unwrap_or(24)
        .clamp(1, MAX_HOURS)
}

/// The time window a tool looks at: `hours` before the event's time (or now) up to as
/// long after it (never past now), so that an old alert is investigated around when it
/// happened.
fn window(args: &Map<String, Value>, subject: &Subject) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    let anchor = subject
        .time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t < now)
        .unwrap_or(now);
    let h = ChronoDuration::hours(hours_arg(args));
    (
        anchor - h,
        (anchor + h).min(now) + ChronoDuration::seconds(1),
    )
}

fn limit_arg(args: &Map<String, Value>) -> usize {
    args.get("limit")
        .and_then(Value::as_i64)
        .map_or(20, |n| n.clamp(1, MAX_ROWS as i64) as usize)
}

fn failed(tool: &str, e: impl std::fmt::Display) -> ToolError {
    ToolError::Failed {
        tool: tool.to_string(),
        reason: e.to_string(),
    }
}

fn ip_or_host_schema(extra: Value) -> Value {
    let mut props = json!({
        "ip": {"type": "string", "description": "An IPv4 or IPv6 address."},
        "host": {"type": "string", "description": "A host name (host.name)."},
        "hours": {"type": "integer", "minimum": 1, "maximum": MAX_HOURS,
                  "description": "How far back to look (default 24)."}
    });
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "properties": props, "x-any-of": ["ip", "host"],
           "additionalProperties": false})
}

/// The tools that read the store: events, findings, file verdicts, cached VirusTotal
/// reports, network and log anomalies, assets; and the port knowledge.
pub fn store_tools(store: Arc<dyn Store>) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(SearchEvents(store.clone())),
        Arc::new(RelatedFindings(store.clone())),
        Arc::new(FileVerdict(store.clone())),
        Arc::new(CachedVirusTotal(store.clone())),
        Arc::new(NetworkHistory(store.clone())),
        Arc::new(LogAnomalies(store.clone())),
        Arc::new(AssetLookup(store)),
        Arc::new(PortInfo),
    ]
}

struct SearchEvents(Arc<dyn Store>);

#[async_trait]
impl Tool for SearchEvents {
    fn name(&self) -> &'static str {
        "search_events"
    }
    fn description(&self) -> &'static str {
        "Stored events about an IP address or host in the last hours, optionally containing a \
         text; newest first."
    }
    fn parameters(&self) -> Value {
        let mut s = ip_or_host_schema(json!({
            "text": {"type": "string", "description": "Only events containing this text."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS}
        }));
        s["x-any-of"] = json!(["ip", "host", "text"]);
        s
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let (since, until) = window(args, subject);
        let q = EventQuery {
            ip: str_arg(args, "ip").map(str::to_string),
            host: str_arg(args, "host").map(str::to_string),
            text: str_arg(args, "text").map(str::to_string),
            since: Some(since),
            until: Some(until),
            limit: limit_arg(args),
            ..EventQuery::default()
        };
        let page = self
            .0
            .query_events(&q)
            .await
            .map_err(|e| failed(self.name(), e))?;
        let n = page.items.len();
        let events: Vec<Value> = page
            .items
            .iter()
            .map(|e| Value::Object(e.as_map().clone()))
            .collect();
        Ok(ToolOutput {
            signal: Signal::None,
            summary: format!(
                "{n}{} stored events within {} h of the event",
                if page.next.is_some() { "+" } else { "" },
                hours_arg(args)
            ),
            data: json!({"count": n, "more": page.next.is_some(), "events": events}),
        })
    }
}

struct RelatedFindings(Arc<dyn Store>);

#[async_trait]
impl Tool for RelatedFindings {
    fn name(&self) -> &'static str {
        "related_findings"
    }
    fn description(&self) -> &'static str {
        "Findings of Vigil's analyzers (scripts, file analysis, network and log anomaly \
         detectors, rules) about an IP address or host in the last hours."
    }
    fn parameters(&self) -> Value {
        ip_or_host_schema(json!({}))
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let (since, until) = window(args, subject);
        let q = FindingQuery {
            host: str_arg(args, "host").map(str::to_string),
            // An address is matched as a JSON string anywhere in the finding.
            text: str_arg(args, "ip").map(|ip| format!("\"{ip}\"")),
            since: Some(since),
            until: Some(until),
            limit: MAX_ROWS,
            ..FindingQuery::default()
        };
        let page = self
            .0
            .query_findings(&q)
            .await
            .map_err(|e| failed(self.name(), e))?;
        let worst = page.items.iter().map(|f| f.severity).max();
        let signal = match worst {
            Some(Severity::Critical | Severity::High) => Signal::Malicious,
            Some(Severity::Medium) => Signal::Suspicious,
            _ => Signal::None,
        };
        let rows: Vec<Value> = page
            .items
            .iter()
            .map(|f| {
                json!({"id": f.id, "timestamp": f.timestamp, "analyzer": f.analyzer,
                       "severity": f.severity, "score": f.score, "summary": f.summary,
                       "techniques": f.techniques})
            })
            .collect();
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &page.items {
            *by.entry(f.analyzer.as_str()).or_default() += 1;
        }
        let summary = if rows.is_empty() {
            "no findings".to_string()
        } else {
            format!(
                "{} findings ({}), worst {}",
                rows.len(),
                by.iter()
                    .map(|(a, n)| format!("{a}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                worst.map_or("none", |s| s.as_str())
            )
        };
        Ok(ToolOutput {
            signal,
            summary,
            data: json!({"findings": rows}),
        })
    }
}

fn sha256_schema() -> Value {
    json!({"type": "object", "properties": {
        "sha256": {"type": "string", "description": "SHA-256 of the file, 64 hex digits."}},
        "required": ["sha256"], "additionalProperties": false})
}

fn sha256_arg(tool: &str, args: &Map<String, Value>) -> Result<String, ToolError> {
    let s = str_arg(args, "sha256")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ToolError::BadArguments {
            tool: tool.to_string(),
            reason: "`sha256` must be 64 hex digits".into(),
        });
    }
    Ok(s)
}

struct FileVerdict(Arc<dyn Store>);

#[async_trait]
impl Tool for FileVerdict {
    fn name(&self) -> &'static str {
        "file_verdict"
    }
    fn description(&self) -> &'static str {
        "Vigil's file-analysis verdict (PE static features, YARA, model) for a file it has \
         analysed, by SHA-256."
    }
    fn parameters(&self) -> Value {
        sha256_schema()
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        _subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let sha = sha256_arg(self.name(), args)?;
        let found = self
            .0
            .cache_get("file_report", &sha)
            .await
            .map_err(|e| failed(self.name(), e))?;
        let Some(bytes) = found else {
            return Ok(ToolOutput {
                signal: Signal::None,
                summary: "Vigil has not analysed this file".into(),
                data: json!({"sha256": sha, "known": false}),
            });
        };
        let report: Value = serde_json::from_slice(&bytes).map_err(|e| failed(self.name(), e))?;
        let r = report.get("report").unwrap_or(&report);
        let verdict = r["verdict"].as_str().unwrap_or("unknown").to_string();
        let signal = match verdict.as_str() {
            "malicious" => Signal::Malicious,
            "suspicious" => Signal::Suspicious,
            "clean" | "benign" => Signal::Benign,
            _ => Signal::None,
        };
        let yara = r["yara"].clone();
        Ok(ToolOutput {
            signal,
            summary: format!(
                "file analysis: {verdict} (score {:.2}; YARA {})",
                r["score"].as_f64().unwrap_or(0.0),
                yara.as_array().map_or(0, Vec::len)
            ),
            data: json!({"sha256": sha, "known": true, "verdict": verdict, "score": r["score"],
                         "yara": yara, "explanation": r["explanation"],
                         "model_score": r["model_score"]}),
        })
    }
}

/// Reads a VirusTotal report (the cache's JSON) into a tool result.
pub fn virustotal_output(sha: &str, report: &Value) -> ToolOutput {
    let found = report["found"].as_bool().unwrap_or(false);
    let malicious = report["malicious"].as_u64().unwrap_or(0);
    let engines = report["engines"].as_u64().unwrap_or(0);
    let signal = if !found {
        Signal::None
    } else if malicious >= 5 {
        Signal::Malicious
    } else if malicious >= 1 {
        Signal::Suspicious
    } else if engines >= 10 {
        Signal::Benign
    } else {
        Signal::None
    };
    let summary = if found {
        format!(
            "VirusTotal: {malicious}/{engines} engines call it malicious{}",
            report["threat_label"]
                .as_str()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        )
    } else {
        "VirusTotal does not know the file".to_string()
    };
    ToolOutput {
        signal,
        summary,
        data: json!({"sha256": sha, "found": found, "malicious": malicious,
                     "suspicious": report["suspicious"], "engines": engines,
                     "threat_label": report["threat_label"]}),
    }
}

struct CachedVirusTotal(Arc<dyn Store>);

#[async_trait]
impl Tool for CachedVirusTotal {
    fn name(&self) -> &'static str {
        "virustotal_lookup"
    }
    fn description(&self) -> &'static str {
        "VirusTotal's report for a file by SHA-256 (engines calling it malicious, threat label)."
    }
    fn parameters(&self) -> Value {
        sha256_schema()
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        _subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let sha = sha256_arg(self.name(), args)?;
        match self
            .0
            .cache_get("virustotal", &sha)
            .await
            .map_err(|e| failed(self.name(), e))?
        {
            Some(bytes) => {
                let v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| failed(self.name(), e))?;
                Ok(virustotal_output(&sha, &v))
            }
            None => Ok(ToolOutput {
                signal: Signal::None,
                summary: "no cached VirusTotal report (no API key configured here)".into(),
                data: json!({"sha256": sha, "cached": false}),
            }),
        }
    }
}

struct NetworkHistory(Arc<dyn Store>);

#[async_trait]
impl Tool for NetworkHistory {
    fn name(&self) -> &'static str {
        "network_history"
    }
    fn description(&self) -> &'static str {
        "Connections to a remote IP address scored by Vigil's network anomaly detector in the \
         last hours, with how many were anomalous."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "ip": {"type": "string", "description": "The remote address."},
            "hours": {"type": "integer", "minimum": 1, "maximum": MAX_HOURS}},
            "required": ["ip"], "additionalProperties": false})
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let ip = str_arg(args, "ip").unwrap_or_default().to_string();
        let (since, until) = window(args, subject);
        let q = ConnectionQuery {
            remote: Some(ip.clone()),
            since: Some(since),
            until: Some(until),
            limit: vigil_store::MAX_PAGE,
            ..ConnectionQuery::default()
        };
        let page = self
            .0
            .query_connections(&q)
            .await
            .map_err(|e| failed(self.name(), e))?;
        let total = page.items.len();
        let anomalies: Vec<&vigil_store::ConnectionRow> =
            page.items.iter().filter(|c| c.anomaly).collect();
        let hosts: std::collections::BTreeSet<&str> =
            page.items.iter().map(|c| c.host.as_str()).collect();
        let signal = match (total, anomalies.len()) {
            (0, _) => Signal::None,
            (_, 0) => Signal::None,
            (t, a) if a * 2 >= t => Signal::Malicious,
            _ => Signal::Suspicious,
        };
        let max = page.items.iter().map(|c| c.score).fold(0.0f64, f64::max);
        Ok(ToolOutput {
            signal,
            summary: if total == 0 {
                format!("no scored connections to {ip}")
            } else {
                format!(
                    "{total} connections to {ip} from {} hosts, {} anomalous (max score {max:.2})",
                    hosts.len(),
                    anomalies.len()
                )
            },
            data: json!({"connections": total, "anomalies": anomalies.len(),
                         "hosts": hosts, "max_score": max,
                         "examples": anomalies.iter().take(10).collect::<Vec<_>>()}),
        })
    }
}

struct LogAnomalies(Arc<dyn Store>);

#[async_trait]
impl Tool for LogAnomalies {
    fn name(&self) -> &'static str {
        "log_anomalies"
    }
    fn description(&self) -> &'static str {
        "Log anomaly findings (Drain templates judged by DeepLog/LogBERT/Isolation Forest) of a \
         host in the last hours."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "host": {"type": "string", "description": "The host name."},
            "hours": {"type": "integer", "minimum": 1, "maximum": MAX_HOURS}},
            "required": ["host"], "additionalProperties": false})
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let (since, until) = window(args, subject);
        let q = FindingQuery {
            host: str_arg(args, "host").map(str::to_string),
            analyzer: Some("logs".into()),
            since: Some(since),
            until: Some(until),
            limit: MAX_ROWS,
            ..FindingQuery::default()
        };
        let page = self
            .0
            .query_findings(&q)
            .await
            .map_err(|e| failed(self.name(), e))?;
        let n = page.items.len();
        Ok(ToolOutput {
            signal: if n > 0 {
                Signal::Suspicious
            } else {
                Signal::None
            },
            summary: format!(
                "{n} anomalous log sessions within {} h of the event",
                hours_arg(args)
            ),
            data: json!({"anomalies": page.items.iter().map(|f| json!({
                "timestamp": f.timestamp, "summary": f.summary, "score": f.score})).collect::<Vec<_>>()}),
        })
    }
}

struct AssetLookup(Arc<dyn Store>);

#[async_trait]
impl Tool for AssetLookup {
    fn name(&self) -> &'static str {
        "asset_lookup"
    }
    fn description(&self) -> &'static str {
        "The asset inventory entry of an IP address or host: owner, role, criticality, tags."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "ip": {"type": "string"}, "host": {"type": "string"}},
            "x-any-of": ["ip", "host"], "additionalProperties": false})
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        _subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let assets = self
            .0
            .find_assets(str_arg(args, "ip"), str_arg(args, "host"))
            .await
            .map_err(|e| failed(self.name(), e))?;
        // An asset tagged as an authorised scanner or test system argues for benign.
        let benign_tag = assets.iter().any(|a| {
            a.tags.iter().any(|t| {
                matches!(
                    t.as_str(),
                    "scanner" | "authorized-scanner" | "pentest" | "test"
                )
            })
        });
        let summary = match assets.first() {
            None => "not in the asset inventory".to_string(),
            Some(a) => format!(
                "asset {}: {} criticality{}{}{}",
                a.id,
                a.criticality,
                a.role
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default(),
                a.owner
                    .as_deref()
                    .map(|o| format!(", owner {o}"))
                    .unwrap_or_default(),
                if a.tags.is_empty() {
                    String::new()
                } else {
                    format!(", tags {}", a.tags.join(" "))
                }
            ),
        };
        Ok(ToolOutput {
            signal: if benign_tag {
                Signal::Benign
            } else {
                Signal::None
            },
            summary,
            data: json!({"assets": assets}),
        })
    }
}

/// Well-known ports: (port, protocol, service, what attackers do with it).
const PORTS: &[(u16, &str, &str, &str)] = &[
    (
        20,
        "tcp",
        "FTP data",
        "data channel of FTP; exfiltration in clear text",
    ),
    (
        21,
        "tcp",
        "FTP",
        "brute force, anonymous login, clear-text credentials, exfiltration",
    ),
    (
        22,
        "tcp",
        "SSH",
        "brute force, tunnelling, lateral movement with stolen keys",
    ),
    (
        23,
        "tcp",
        "Telnet",
        "default credentials (IoT botnets such as Mirai), clear text",
    ),
    (
        25,
        "tcp",
        "SMTP",
        "phishing delivery, spam relays, exfiltration by mail",
    ),
    (
        53,
        "udp",
        "DNS",
        "DNS tunnelling and C2 (long or high-entropy names, TXT records)",
    ),
    (67, "udp", "DHCP", "rogue DHCP servers"),
    (
        69,
        "udp",
        "TFTP",
        "unauthenticated file transfer, device config theft",
    ),
    (
        80,
        "tcp",
        "HTTP",
        "web exploits, webshells, C2 over plain HTTP",
    ),
    (
        88,
        "tcp",
        "Kerberos",
        "Kerberoasting, AS-REP roasting, golden tickets",
    ),
    (
        110,
        "tcp",
        "POP3",
        "credential brute force, clear-text mail",
    ),
    (111, "tcp", "RPCbind", "service enumeration on Unix"),
    (123, "udp", "NTP", "amplification DDoS"),
    (
        135,
        "tcp",
        "MS-RPC",
        "WMI and DCOM lateral movement, enumeration",
    ),
    (
        137,
        "udp",
        "NetBIOS-NS",
        "name poisoning (Responder), enumeration",
    ),
    (
        139,
        "tcp",
        "NetBIOS-SSN",
        "SMB over NetBIOS: lateral movement, enumeration",
    ),
    (143, "tcp", "IMAP", "credential brute force, mailbox theft"),
    (
        161,
        "udp",
        "SNMP",
        "default communities (public/private), device reconnaissance",
    ),
    (
        389,
        "tcp",
        "LDAP",
        "directory enumeration, LDAP injection, Log4Shell callbacks",
    ),
    (
        443,
        "tcp",
        "HTTPS",
        "web exploits, C2 hidden in TLS (Cobalt Strike, Sliver, emp3r0r)",
    ),
    (
        445,
        "tcp",
        "SMB",
        "EternalBlue, PsExec, pass-the-hash, ransomware spreading",
    ),
    (
        465,
        "tcp",
        "SMTPS",
        "phishing delivery, exfiltration by mail",
    ),
    (514, "udp", "Syslog", "log injection, log tampering"),
    (
        587,
        "tcp",
        "SMTP submission",
        "credential stuffing on mail accounts",
    ),
    (636, "tcp", "LDAPS", "directory enumeration"),
    (873, "tcp", "rsync", "unauthenticated modules, data theft"),
    (1080, "tcp", "SOCKS", "proxying C2 and lateral traffic"),
    (1099, "tcp", "Java RMI", "deserialization (ysoserial)"),
    (
        1433,
        "tcp",
        "MS SQL",
        "brute force (sa), xp_cmdshell execution",
    ),
    (1521, "tcp", "Oracle DB", "TNS poisoning, brute force"),
    (2049, "tcp", "NFS", "exported shares readable by anyone"),
    (
        2375,
        "tcp",
        "Docker API",
        "unauthenticated container creation, cryptominers",
    ),
    (3128, "tcp", "Squid proxy", "open proxy abuse"),
    (
        3306,
        "tcp",
        "MySQL",
        "brute force, UDF execution, data theft",
    ),
    (
        3389,
        "tcp",
        "RDP",
        "brute force, BlueKeep, lateral movement, ransomware entry",
    ),
    (
        4444,
        "tcp",
        "Metasploit default",
        "reverse shells (meterpreter default listener)",
    ),
    (
        5432,
        "tcp",
        "PostgreSQL",
        "brute force, COPY FROM PROGRAM execution",
    ),
    (5555, "tcp", "Android ADB", "unauthenticated device control"),
    (5900, "tcp", "VNC", "weak or no passwords, remote control"),
    (
        5985,
        "tcp",
        "WinRM HTTP",
        "lateral movement (Evil-WinRM, PowerShell remoting)",
    ),
    (5986, "tcp", "WinRM HTTPS", "lateral movement"),
    (
        6379,
        "tcp",
        "Redis",
        "unauthenticated access, writing SSH keys or cron jobs",
    ),
    (
        7001,
        "tcp",
        "WebLogic",
        "T3/IIOP deserialization (CVE-2020-2551 and kin)",
    ),
    (8009, "tcp", "AJP", "Ghostcat (CVE-2020-1938) file read"),
    (
        8080,
        "tcp",
        "HTTP alternate",
        "Tomcat manager, Jenkins, web exploits, webshells",
    ),
    (8443, "tcp", "HTTPS alternate", "management consoles, C2"),
    (
        8888,
        "tcp",
        "HTTP alternate",
        "Jupyter and admin panels, C2",
    ),
    (9000, "tcp", "PHP-FPM / various", "FastCGI abuse, C2"),
    (9001, "tcp", "Tor ORPort", "Tor relays: anonymised C2"),
    (9200, "tcp", "Elasticsearch", "unauthenticated data access"),
    (11211, "udp", "Memcached", "amplification DDoS, data leaks"),
    (
        27017,
        "tcp",
        "MongoDB",
        "unauthenticated databases, ransom wipes",
    ),
    (
        50050,
        "tcp",
        "Cobalt Strike team server",
        "Cobalt Strike operator port",
    ),
];

struct PortInfo;

#[async_trait]
impl Tool for PortInfo {
    fn name(&self) -> &'static str {
        "port_info"
    }
    fn description(&self) -> &'static str {
        "What service usually listens on a port and how attackers abuse it."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "port": {"type": "integer", "minimum": 0, "maximum": 65535},
            "protocol": {"type": "string", "description": "tcp or udp"}},
            "required": ["port"], "additionalProperties": false})
    }
    async fn call(
        &self,
        args: &Map<String, Value>,
        _subject: &Subject,
    ) -> Result<ToolOutput, ToolError> {
        let port = args.get("port").and_then(Value::as_i64).unwrap_or(-1);
        let known = PORTS.iter().find(|(p, ..)| i64::from(*p) == port);
        Ok(match known {
            Some((p, proto, service, abuse)) => ToolOutput {
                signal: if matches!(*p, 4444 | 50050 | 9001) {
                    Signal::Suspicious
                } else {
                    Signal::None
                },
                summary: format!("{p}/{proto} is {service}: {abuse}"),
                data: json!({"port": p, "protocol": proto, "service": service, "abuse": abuse}),
            },
            None => ToolOutput {
                signal: Signal::None,
                summary: if port >= 49152 {
                    format!(
                        "{port} is in the dynamic range: no fixed service; an unusual \
                             destination port for a server"
                    )
                } else {
                    format!("{port} is not a well-known service port")
                },
                data: json!({"port": port, "service": null}),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        TOOL_NAMES.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn calls_are_checked_before_they_run() {
        let mut tb = Toolbox::new(Duration::from_secs(1));
        tb.add(Arc::new(PortInfo));
        let ok = tb
            .call(
                "port_info",
                &json!({"port": "22"}),
                &allowed(),
                &Subject::default(),
            )
            .await
            .unwrap();
        assert!(ok.summary.contains("SSH"), "{}", ok.summary);
        for (name, args, needle) in [
            ("port_info", json!({"port": "ssh"}), "must be an integer"),
            ("port_info", json!({"port": 70000}), "at most 65535"),
            ("port_info", json!({}), "`port` is required"),
            (
                "port_info",
                json!({"port": 22, "cmd": "rm"}),
                "unknown argument `cmd`",
            ),
            ("port_info", json!([1]), "expected a JSON object"),
            ("shell", json!({}), "no tool named `shell`"),
            ("run_script", json!({}), "no tool named `run_script`"),
        ] {
            let e = tb
                .call(name, &args, &allowed(), &Subject::default())
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{name} {args}: {e}");
        }
        let e = tb
            .call(
                "port_info",
                &json!({"port": 22}),
                &["search_events".to_string()],
                &Subject::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e, ToolError::NotAllowed("port_info".into()));
    }

    #[tokio::test]
    async fn slow_tools_time_out() {
        struct Slow;
        #[async_trait]
        impl Tool for Slow {
            fn name(&self) -> &'static str {
                "search_events"
            }
            fn description(&self) -> &'static str {
                "slow"
            }
            fn parameters(&self) -> Value {
                json!({"type": "object", "properties": {}})
            }
            async fn call(
                &self,
                _: &Map<String, Value>,
                _: &Subject,
            ) -> Result<ToolOutput, ToolError> {
                tokio::time::sleep(Duration::from_secs(5)).await;
                unreachable!("the toolbox times it out")
            }
        }
        let mut tb = Toolbox::new(Duration::from_millis(50));
        tb.add(Arc::new(Slow));
        let e = tb
            .call("search_events", &json!({}), &allowed(), &Subject::default())
            .await
            .unwrap_err();
        assert_eq!(e, ToolError::Timeout("search_events".into()));
    }
}
