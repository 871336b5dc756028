//! [`Event`]: one piece of telemetry as nested ECS JSON, its normalization and validation, and
//! the [`FieldLookup`] trait analyzers read it through.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Longest client-supplied `event.id` accepted.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Deepest nesting of objects accepted in an event.
const MAX_DEPTH: usize = 32;

/// Why an event was refused. Every variant names the field at fault, so that clients get an
/// error that says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A known ECS field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// ECS path of the field.
        field: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A field has the right type but a value that cannot be right.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid {
        /// ECS path of the field.
        field: String,
        /// Why, in words.
        reason: String,
    },
    /// A dotted key (`"host.name"`) collides with a non-object value at one of its prefixes.
    #[error("field `{field}` is given both as a value and as an object")]
    Conflict {
        /// ECS path of the field.
        field: String,
    },
    /// The event nests objects deeper than the limit.
    #[error("event nests objects deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl EventError {
    /// The ECS path of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            EventError::WrongType { field, .. }
            | EventError::Invalid { field, .. }
            | EventError::Conflict { field } => Some(field),
            EventError::NotAnObject(_) | EventError::TooDeep => None,
        }
    }
}

/// Reads fields of a JSON document by ECS path (`"process.parent.name"`).
///
/// Analyzers use this instead of walking JSON themselves, so that rules and scripts do not
/// depend on how the input was shaped.
pub trait FieldLookup {
    /// The value at `path`, if any.
    fn get(&self, path: &str) -> Option<&Value>;

    /// The string at `path`, if the field exists and is a string.
    fn get_str(&self, path: &str) -> Option<&str> {
        self.get(path)?.as_str()
    }

    /// The integer at `path`, if the field exists and is an integer.
    fn get_i64(&self, path: &str) -> Option<i64> {
        self.get(path)?.as_i64()
    }

    /// The number at `path` as a float, if the field exists and is a number.
    fn get_f64(&self, path: &str) -> Option<f64> {
        self.get(path)?.as_f64()
    }
}

impl FieldLookup for Map<String, Value> {
    fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut cur = match Map::get(self, first) {
            Some(v) => v,
            // An un-normalized document may hold the dotted key literally.
            None => return Map::get(self, path),
        };
        for part in parts {
            cur = cur.as_object()?.get(part)?;
        }
        Some(cur)
    }
}

impl FieldLookup for Value {
    fn get(&self, path: &str) -> Option<&Value> {
        FieldLookup::get(self.as_object()?, path)
    }
}

/// One piece of telemetry: a JSON object with ECS field names.
///
/// An `Event` is always normalized: dotted keys are expanded into nested objects, `@timestamp`
/// is an RFC 3339 UTC string, `event.id` is set, `event.category` is an array of strings, and
/// known ECS fields have their documented types. Unknown fields are kept as they came.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Event {
    doc: Map<String, Value>,
}

impl Event {
    /// Normalizes and validates client input into an event, at ingest time `now`.
    ///
    /// Sets `event.id` (a new UUIDv7 unless the client gave one, which makes retries
    /// idempotent), `event.ingested`, and `@timestamp` when missing.
    pub fn from_input(input: Value, now: DateTime<Utc>) -> Result<Event, EventError> {
        let doc = match input {
            Value::Object(map) => map,
            other => return Err(EventError::NotAnObject(json_type_name(&other))),
        };
        let mut doc = expand_dotted(doc, "", 0)?;

        let ts = match doc.get("@timestamp") {
            None | Some(Value::Null) => now,
            Some(v) => parse_timestamp(v)?,
        };
        // `@timestamp` first, as in every ECS document.
        let ts = Value::String(crate::format_ts(ts));
        let mut doc = if doc.keys().next().is_some_and(|k| k == "@timestamp") {
            doc.insert("@timestamp".into(), ts);
            doc
        } else {
            doc.remove("@timestamp");
            std::iter::once(("@timestamp".to_string(), ts))
                .chain(doc)
                .collect::<Map<String, Value>>()
        };

        let event = doc
            .entry("event")
            .or_insert_with(|| Value::Object(Map::new()));
        let event = event.as_object_mut().ok_or_else(|| EventError::WrongType {
            field: "event".into(),
            expected: "an object",
        })?;
        match event.get("id") {
            None | Some(Value::Null) => {
                event.insert("id".into(), Value::String(crate::new_id()));
            }
            Some(Value::String(id)) => validate_event_id(id)?,
            Some(_) => {
                return Err(EventError::WrongType {
                    field: "event.id".into(),
                    expected: "a string",
                });
            }
        }
        event.insert("ingested".into(), Value::String(crate::format_ts(now)));
        if let Some(cat) = event.get_mut("category") {
            normalize_category(cat)?;
        }

        validate_known_fields(&doc)?;
        Ok(Event { doc })
    }

    /// Rebuilds an event that was normalized before (read back from a store). Performs no
    /// validation: only call it on documents that came out of [`Event::from_input`].
    pub fn from_stored(doc: Map<String, Value>) -> Event {
        Event { doc }
    }

    /// `event.id`.
    pub fn id(&self) -> &str {
        self.get_str("event.id").unwrap_or_default()
    }

    /// `@timestamp` as a string (RFC 3339 UTC).
    pub fn timestamp_str(&self) -> &str {
        self.get_str("@timestamp").unwrap_or_default()
    }

    /// `@timestamp` parsed.
    pub fn timestamp(&self) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(self.timestamp_str())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// `event.category` values (empty when absent).
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.get("event.category")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// `host.name`, if present.
    pub fn host_name(&self) -> Option<&str> {
        self.get_str("host.name")
    }

    /// `agent.id`, if present.
    pub fn agent_id(&self) -> Option<&str> {
        self.get_str("agent.id")
    }

    /// The whole document.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// The whole document, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.doc
    }

    /// Replaces every address in the ECS address fields ([`IP_FIELDS`]; a string or an
    /// array of strings) by `f(address)`; values that are not addresses stay as they are.
    /// Returns how many were replaced. Used to keep real addresses out of storage (IP
    /// pseudonyms, `[network] hash_ips`).
    pub fn map_ips(&mut self, f: &dyn Fn(IpAddr) -> IpAddr) -> usize {
        let mut replaced = 0;
        for path in IP_FIELDS {
            let mut node = Some(&mut self.doc);
            let mut parts = path.split('.').peekable();
            while let (Some(map), Some(part)) = (node, parts.next()) {
                if parts.peek().is_none() {
                    if let Some(v) = map.get_mut(part) {
                        replaced += map_ip_value(v, f);
                    }
                    break;
                }
                node = map.get_mut(part).and_then(Value::as_object_mut);
            }
        }
        replaced
    }
}

/// The ECS fields that hold IP addresses.
pub const IP_FIELDS: &[&str] = &[
    "source.ip",
    "source.nat.ip",
    "destination.ip",
    "destination.nat.ip",
    "client.ip",
    "client.nat.ip",
    "server.ip",
    "server.nat.ip",
    "host.ip",
    "observer.ip",
    "related.ip",
];

fn map_ip_value(v: &mut Value, f: &dyn Fn(IpAddr) -> IpAddr) -> usize {
    match v {
        Value::String(s) => match s.parse::<IpAddr>() {
            Ok(ip) => {
                *s = f(ip).to_string();
                1
            }
            Err(_) => 0,
        },
        Value::Array(items) => items.iter_mut().map(|i| map_ip_value(i, f)).sum(),
        _ => 0,
    }
}

impl FieldLookup for Event {
    fn get(&self, path: &str) -> Option<&Value> {
        FieldLookup::get(&self.doc, path)
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Expands `{"host.name": "a"}` into `{"host": {"name": "a"}}` at every level. Maps without
/// dotted keys (the common case) are kept as they are, only their children are visited.
fn expand_dotted(
    mut map: Map<String, Value>,
    prefix: &str,
    depth: usize,
) -> Result<Map<String, Value>, EventError> {
    if depth > MAX_DEPTH {
        return Err(EventError::TooDeep);
    }
    if !map.keys().any(|k| is_dotted(k)) {
        for (key, value) in map.iter_mut() {
            expand_children(value, prefix, key, depth)?;
        }
        return Ok(map);
    }
    let mut out = Map::with_capacity(map.len());
    for (key, mut value) in map {
        expand_children(&mut value, prefix, &key, depth)?;
        let full = || join(prefix, &key);
        if !is_dotted(&key) {
            insert_merge(&mut out, key.clone(), value, &full())?;
            continue;
        }
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() > MAX_DEPTH {
            return Err(EventError::TooDeep);
        }
        let (last, parents) = parts.split_last().expect("split yields one part at least");
        let mut cur = &mut out;
        for part in parents {
            let slot = cur
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            cur = slot
                .as_object_mut()
                .ok_or_else(|| EventError::Conflict { field: full() })?;
        }
        insert_merge(cur, last.to_string(), value, &full())?;
    }
    Ok(out)
}

/// Expands dotted keys inside `value` (an object, or objects in an array) found at `key`.
fn expand_children(
    value: &mut Value,
    prefix: &str,
    key: &str,
    depth: usize,
) -> Result<(), EventError> {
    match value {
        Value::Object(inner) => {
            let inner = std::mem::take(inner);
            *value = Value::Object(expand_dotted(inner, &join(prefix, key), depth + 1)?);
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let path = join(prefix, key);
            for item in items {
                if let Value::Object(inner) = item {
                    let inner = std::mem::take(inner);
                    *item = Value::Object(expand_dotted(inner, &path, depth + 1)?);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A key to expand: has a dot, and no empty segment (`.a`, `a.`, `a..b` stay literal).
fn is_dotted(key: &str) -> bool {
    key.contains('.') && !key.starts_with('.') && !key.ends_with('.') && !key.contains("..")
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Inserts `value` at `key`, merging objects that meet from a dotted and a nested spelling.
fn insert_merge(
    map: &mut Map<String, Value>,
    key: String,
    value: Value,
    full: &str,
) -> Result<(), EventError> {
    match (map.get_mut(&key), value) {
        (None, value) => {
            map.insert(key, value);
            Ok(())
        }
        (Some(Value::Object(existing)), Value::Object(incoming)) => {
            for (k, v) in incoming {
                let sub = format!("{full}.{k}");
                insert_merge(existing, k, v, &sub)?;
            }
            Ok(())
        }
        (Some(_), _) => Err(EventError::Conflict {
            field: full.to_string(),
        }),
    }
}

fn parse_timestamp(v: &Value) -> Result<DateTime<Utc>, EventError> {
    let invalid = |reason: String| EventError::Invalid {
        field: "@timestamp".into(),
        reason,
    };
    let ts = match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                invalid(format!(
                    "`{}` is not an RFC 3339 timestamp such as 2026-01-31T12:00:00Z ({e})",
                    truncate(s, 64)
                ))
            })?,
        Value::Number(n) => {
            let ms = n
                .as_i64()
                .ok_or_else(|| invalid("epoch milliseconds must be an integer".into()))?;
            Utc.timestamp_millis_opt(ms)
                .single()
                .ok_or_else(|| invalid(format!("{ms} is out of range")))?
        }
        _ => {
            return Err(EventError::WrongType {
                field: "@timestamp".into(),
                expected: "an RFC 3339 string or integer epoch milliseconds",
            });
        }
    };
    let year = chrono::Datelike::year(&ts);
    if !(1970..=9999).contains(&year) {
        return Err(invalid(format!("year {year} is outside 1970..=9999")));
    }
    Ok(ts)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn validate_event_id(id: &str) -> Result<(), EventError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_EVENT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(EventError::Invalid {
            field: "event.id".into(),
            reason: format!(
                "must be 1 to {MAX_EVENT_ID_LEN} characters of letters, digits, `-`, `_`, `.`, `:`"
            ),
        })
    }
}

fn normalize_category(cat: &mut Value) -> Result<(), EventError> {
    let wrong = || EventError::WrongType {
        field: "event.category".into(),
        expected: "a string or an array of strings",
    };
    let list = match cat.take() {
        Value::String(s) => vec![Value::String(s)],
        Value::Array(items) => items,
        _ => return Err(wrong()),
    };
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let Value::String(s) = item else {
            return Err(wrong());
        };
        let s = s.trim().to_ascii_lowercase();
        if s.is_empty() || s.len() > 64 {
            return Err(EventError::Invalid {
                field: "event.category".into(),
                reason: "each category must be 1 to 64 characters".into(),
            });
        }
        out.push(Value::String(s));
    }
    *cat = Value::Array(out);
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    UInt,
    Port,
    Ip,
    IpOrList,
    Hex(usize),
    Number,
}

/// ECS fields whose types Vigil checks, sorted by path (binary search). Anything else is kept
/// as given.
const KNOWN_FIELDS: &[(&str, Kind)] = &[
    ("agent.id", Kind::Str),
    ("agent.name", Kind::Str),
    ("agent.type", Kind::Str),
    ("agent.version", Kind::Str),
    ("destination.bytes", Kind::UInt),
    ("destination.domain", Kind::Str),
    ("destination.ip", Kind::Ip),
    ("destination.packets", Kind::UInt),
    ("destination.port", Kind::Port),
    ("dns.question.name", Kind::Str),
    ("event.action", Kind::Str),
    ("event.code", Kind::Str),
    ("event.dataset", Kind::Str),
    ("event.duration", Kind::UInt),
    ("event.kind", Kind::Str),
    ("event.module", Kind::Str),
    ("event.outcome", Kind::Str),
    ("event.provider", Kind::Str),
    ("event.risk_score", Kind::Number),
    ("event.severity", Kind::UInt),
    ("file.directory", Kind::Str),
    ("file.extension", Kind::Str),
    ("file.hash.md5", Kind::Hex(32)),
    ("file.hash.sha1", Kind::Hex(40)),
    ("file.hash.sha256", Kind::Hex(64)),
    ("file.name", Kind::Str),
    ("file.path", Kind::Str),
    ("file.size", Kind::UInt),
    ("host.hostname", Kind::Str),
    ("host.id", Kind::Str),
    ("host.ip", Kind::IpOrList),
    ("host.name", Kind::Str),
    ("log.file.path", Kind::Str),
    ("log.level", Kind::Str),
    ("message", Kind::Str),
    ("network.bytes", Kind::UInt),
    ("network.direction", Kind::Str),
    ("network.packets", Kind::UInt),
    ("network.protocol", Kind::Str),
    ("network.transport", Kind::Str),
    ("process.command_line", Kind::Str),
    ("process.executable", Kind::Str),
    ("process.hash.sha256", Kind::Hex(64)),
    ("process.name", Kind::Str),
    ("process.parent.command_line", Kind::Str),
    ("process.parent.executable", Kind::Str),
    ("process.parent.name", Kind::Str),
    ("process.parent.pid", Kind::UInt),
    ("process.pid", Kind::UInt),
    ("process.working_directory", Kind::Str),
    ("source.bytes", Kind::UInt),
    ("source.domain", Kind::Str),
    ("source.ip", Kind::Ip),
    ("source.packets", Kind::UInt),
    ("source.port", Kind::Port),
    ("url.domain", Kind::Str),
    ("url.full", Kind::Str),
    ("user.domain", Kind::Str),
    ("user.id", Kind::Str),
    ("user.name", Kind::Str),
];

/// Deepest known field (`process.parent.pid`, `dns.question.name`).
const KNOWN_DEPTH: usize = 3;

/// Checks the known fields present in `doc`, walking only the fields that exist (at most
/// [`KNOWN_DEPTH`] levels) and finding each in the sorted table by binary search.
fn validate_known_fields(doc: &Map<String, Value>) -> Result<(), EventError> {
    debug_assert!(
        KNOWN_FIELDS.windows(2).all(|w| w[0].0 < w[1].0),
        "KNOWN_FIELDS must be sorted"
    );
    let mut path = String::with_capacity(64);
    walk_known(doc, &mut path, 1)
}

fn walk_known(map: &Map<String, Value>, path: &mut String, depth: usize) -> Result<(), EventError> {
    for (key, value) in map {
        let len = path.len();
        if len > 0 {
            path.push('.');
        }
        path.push_str(key);
        if let Ok(i) = KNOWN_FIELDS.binary_search_by(|(f, _)| (*f).cmp(path.as_str())) {
            if !value.is_null() {
                check_kind(path, KNOWN_FIELDS[i].1, value)?;
            }
        } else if let Value::Object(inner) = value
            && depth < KNOWN_DEPTH
        {
            walk_known(inner, path, depth + 1)?;
        }
        path.truncate(len);
    }
    Ok(())
}

fn check_kind(field: &str, kind: Kind, value: &Value) -> Result<(), EventError> {
    let wrong = |expected| EventError::WrongType {
        field: field.to_string(),
        expected,
    };
    match kind {
        Kind::Str => value.as_str().map(drop).ok_or_else(|| wrong("a string")),
        Kind::Number => value.as_f64().map(drop).ok_or_else(|| wrong("a number")),
        Kind::UInt => value
            .as_u64()
            .map(drop)
            .ok_or_else(|| wrong("a non-negative integer")),
        Kind::Port => match value.as_u64() {
            Some(p) if p <= 65535 => Ok(()),
            _ => Err(wrong("an integer port between 0 and 65535")),
        },
        Kind::Ip => {
            let s = value
                .as_str()
                .ok_or_else(|| wrong("an IP address string"))?;
            s.parse::<IpAddr>()
                .map(drop)
                .map_err(|_| EventError::Invalid {
                    field: field.to_string(),
                    reason: format!("`{}` is not an IPv4 or IPv6 address", truncate(s, 64)),
                })
        }
        Kind::IpOrList => match value {
            Value::Array(items) => items
                .iter()
                .try_for_each(|v| check_kind(field, Kind::Ip, v)),
            other => check_kind(field, Kind::Ip, other),
        },
        Kind::Hex(len) => {
            let s = value.as_str().ok_or_else(|| wrong("a hex string"))?;
            if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(EventError::Invalid {
                    field: field.to_string(),
                    reason: format!("must be {len} hexadecimal characters"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_ips_replaces_every_address_field_and_nothing_else() {
        let mut e = Event::from_input(
            serde_json::json!({
                "source": {"ip": "10.0.0.1", "port": 4444, "nat": {"ip": "192.0.2.1"}},
                "destination.ip": "2001:db8::1",
                "host": {"ip": ["10.0.0.2", "fe80::1"], "name": "10.0.0.3"},
                "related": {"ip": ["10.0.0.4"]},
                "message": "from 10.0.0.1"
            }),
            Utc::now(),
        )
        .unwrap();
        let n = e.map_ips(&|_| "::1".parse().unwrap());
        assert_eq!(n, 6);
        let m = e.as_map();
        assert_eq!(m["source"]["ip"], "::1");
        assert_eq!(m["source"]["nat"]["ip"], "::1");
        assert_eq!(m["source"]["port"], 4444);
        assert_eq!(m["destination"]["ip"], "::1");
        assert_eq!(m["host"]["ip"], serde_json::json!(["::1", "::1"]));
        assert_eq!(
            m["host"]["name"], "10.0.0.3",
            "names are not addresses fields"
        );
        assert_eq!(m["related"]["ip"], serde_json::json!(["::1"]));
        assert_eq!(m["message"], "from 10.0.0.1", "free text is not rewritten");
    }
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    #[test]
    fn expands_dotted_keys_and_keeps_custom_fields() {
        let e = Event::from_input(
            json!({"host.name": "web-1", "host": {"os": {"family": "linux"}},
                   "custom": {"deep.key": 1}, "event.category": "Process"}),
            now(),
        )
        .unwrap();
        assert_eq!(e.host_name(), Some("web-1"));
        assert_eq!(e.get_str("host.os.family"), Some("linux"));
        assert_eq!(e.get_i64("custom.deep.key"), Some(1));
        assert_eq!(e.categories().collect::<Vec<_>>(), vec!["process"]);
        assert_eq!(e.timestamp_str(), "2026-11-24T12:00:00.000000Z");
        assert_eq!(
            e.get_str("event.ingested"),
            Some("2026-11-24T12:00:00.000000Z")
        );
        assert_eq!(e.id().len(), 36);
    }

    #[test]
    fn keeps_client_event_id_and_normalizes_timestamp() {
        let e = Event::from_input(
            json!({"@timestamp": "2026-01-02T03:04:05+02:00", "event": {"id": "agent-7:42"}}),
            now(),
        )
        .unwrap();
        assert_eq!(e.id(), "agent-7:42");
        assert_eq!(e.timestamp_str(), "2026-01-02T01:04:05.000000Z");
        let e = Event::from_input(json!({"@timestamp": 1_700_000_000_000i64}), now()).unwrap();
        assert_eq!(e.timestamp_str(), "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn rejects_bad_input_naming_the_field() {
        let cases = [
            (json!([1, 2]), None),
            (json!({"@timestamp": "yesterday"}), Some("@timestamp")),
            (json!({"@timestamp": true}), Some("@timestamp")),
            (
                json!({"@timestamp": "0001-01-01T00:00:00Z"}),
                Some("@timestamp"),
            ),
            (json!({"process": {"pid": "12"}}), Some("process.pid")),
            (json!({"process.pid": -1}), Some("process.pid")),
            (json!({"source": {"port": 70000}}), Some("source.port")),
            (
                json!({"destination.ip": "10.0.0.300"}),
                Some("destination.ip"),
            ),
            (json!({"host": {"name": 5}}), Some("host.name")),
            (json!({"file.hash.sha256": "abc"}), Some("file.hash.sha256")),
            (json!({"event.category": 3}), Some("event.category")),
            (json!({"event.category": [""]}), Some("event.category")),
            (json!({"event.id": "has space"}), Some("event.id")),
            (json!({"event.id": 7}), Some("event.id")),
            (json!({"event": "x"}), Some("event")),
            (json!({"host": "a", "host.name": "b"}), Some("host.name")),
            (json!({"host.ip": ["10.0.0.1", "nope"]}), Some("host.ip")),
        ];
        for (input, field) in cases {
            let err = Event::from_input(input.clone(), now()).expect_err(&input.to_string());
            assert_eq!(err.field(), field, "{input}: {err}");
        }
    }

    #[test]
    fn known_field_table_is_sorted_for_binary_search() {
        assert!(KNOWN_FIELDS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            KNOWN_FIELDS
                .iter()
                .all(|(f, _)| f.split('.').count() <= KNOWN_DEPTH)
        );
    }

    #[test]
    fn rejects_absurd_nesting() {
        let key = vec!["a"; 40].join(".");
        let err = Event::from_input(json!({ key: 1 }), now()).unwrap_err();
        assert_eq!(err, EventError::TooDeep);
    }

    #[test]
    fn lookup_on_plain_maps_accepts_literal_dotted_keys() {
        let v = json!({"a.b": 1, "c": {"d": "x"}});
        assert_eq!(FieldLookup::get(&v, "a.b"), Some(&json!(1)));
        assert_eq!(v.get_str("c.d"), Some("x"));
        assert_eq!(FieldLookup::get(&v, "c.e"), None);
    }
}
