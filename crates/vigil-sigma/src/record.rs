//! [`Record`]: the flat fields of one event, as rules see them.
//!
//! A record is built once per event (from EVTX JSON, from ECS through [`crate::FieldMapping`],
//! or from plain pairs) and then queried by many rules. Every text value keeps a lowercase copy
//! made at construction, so case-insensitive comparisons on the hot path never allocate.

use std::fmt;

use serde_json::Value;

/// Most fields kept from one event; the rest are dropped (hostile input bound).
pub const MAX_FIELDS: usize = 4096;
/// Most list elements kept in one field value.
pub const MAX_LIST: usize = 1024;
/// Deepest JSON nesting flattened; deeper values are kept as JSON text.
const MAX_FLATTEN_DEPTH: usize = 16;

/// One text value with its lowercase form, in one allocation: `data` is the text followed
/// by its lowercase copy when that differs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text {
    data: Box<str>,
    /// End of the text in `data`; the lowercase copy is `data[split..]`, or the text itself
    /// when `split == data.len()`.
    split: u32,
}

impl Text {
    pub(crate) fn new(text: &str) -> Text {
        Text::from_string(text.to_string())
    }

    pub(crate) fn from_string(mut text: String) -> Text {
        let n = text.len();
        let needs_lower = if text.is_ascii() {
            text.bytes().any(|b| b.is_ascii_uppercase())
        } else {
            text.chars()
                .any(|c| c.to_lowercase().next() != Some(c) || c.to_lowercase().count() != 1)
        };
        if needs_lower {
            if text.is_ascii() {
                text.reserve_exact(n);
                for i in 0..n {
                    let b = text.as_bytes()[i].to_ascii_lowercase();
                    text.push(char::from(b));
                }
            } else {
                let lower = text.to_lowercase();
                text.push_str(&lower);
            }
        }
        Text {
            data: text.into_boxed_str(),
            split: u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    #[inline]
    pub(crate) fn text(&self) -> &str {
        self.data.get(..self.split as usize).unwrap_or(&self.data)
    }

    #[inline]
    pub(crate) fn lower(&self) -> &str {
        let split = self.split as usize;
        if split >= self.data.len() {
            &self.data
        } else {
            self.data.get(split..).unwrap_or(&self.data)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Repr {
    Null,
    One(Text),
    Many(Box<[Text]>),
}

/// The value of one record field: null, one scalar (kept as text: `4688`, `true`, `C:\x`), or a
/// list of scalars (unnamed EVTX `Data`, ECS arrays). A rule value matches a list when it
/// matches any element.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue(Repr);

impl FieldValue {
    /// A null value (JSON `null`).
    pub fn null() -> FieldValue {
        FieldValue(Repr::Null)
    }

    /// A text value.
    pub fn text(s: &str) -> FieldValue {
        FieldValue(Repr::One(Text::new(s)))
    }

    /// Converts JSON: scalars become text (numbers as written by serde_json, booleans as
    /// `true`/`false`), arrays become lists (nested arrays and objects inside them as JSON text),
    /// an object becomes its JSON text.
    pub fn from_json(v: &Value) -> FieldValue {
        match v {
            Value::Null => FieldValue::null(),
            Value::Array(items) => FieldValue(Repr::Many(
                items
                    .iter()
                    .take(MAX_LIST)
                    .map(|i| Text::from_string(json_scalar_text(i)))
                    .collect(),
            )),
            Value::String(s) => FieldValue(Repr::One(Text::new(s))),
            other => FieldValue(Repr::One(Text::from_string(json_scalar_text(other)))),
        }
    }

    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self.0, Repr::Null)
    }

    /// The text of a scalar value (`None` for null and for lists).
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::One(t) => Some(t.text()),
            _ => None,
        }
    }

    /// Every text in the value: one for a scalar, each element for a list, none for null.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.items().iter().map(Text::text)
    }

    /// The value as numbers compare it: the scalar (or first element) parsed as a float.
    pub fn as_f64(&self) -> Option<f64> {
        self.items().first().and_then(|t| parse_number(t.text()))
    }

    #[inline]
    pub(crate) fn items(&self) -> &[Text] {
        match &self.0 {
            Repr::Null => &[],
            Repr::One(t) => std::slice::from_ref(t),
            Repr::Many(items) => items,
        }
    }
}

impl fmt::Display for FieldValue {
    /// Scalars as their text, lists joined with `, `, null as `null`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Null => f.write_str("null"),
            Repr::One(t) => f.write_str(t.text()),
            Repr::Many(items) => {
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(t.text())?;
                }
                Ok(())
            }
        }
    }
}

/// Parses a record value as a number for `gt`/`gte`/`lt`/`lte`: decimal, or `0x` hex.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn json_scalar_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: Box<str>,
    pub(crate) value: FieldValue,
}

/// The flat fields of one event. Cheap to query: lookups are by name over a small vector, and
/// every value carries a precomputed lowercase copy.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub(crate) fields: Vec<Field>,
    timestamp: Option<usize>,
}

/// Field names whose value is the event time, in order of preference.
const TIMESTAMP_FIELDS: [&str; 4] = ["SystemTime", "@timestamp", "timestamp", "TimeCreated"];

impl Record {
    /// Flattens one EVTX record as the `evtx` crate (and python-evtx) render it to JSON.
    ///
    /// Accepts the document with or without its `Event` wrapper. `System` fields are named by
    /// their leaf: `EventID` (also from `{"#text": n}`), `Channel`, `Computer`, `Level`, `Task`,
    /// `Opcode`, `Keywords`, `EventRecordID`, `Version`, `SystemTime` (from `TimeCreated`),
    /// `ProcessID`/`ThreadID` (from `Execution`), `UserID` (from `Security`), `ActivityID`;
    /// the provider's attributes as `Provider_Name`, `Provider_Guid`,
    /// `Provider_EventSourceName`. `EventData` named values keep their names; an unnamed
    /// `Data` list becomes the field `Data`. `UserData`'s innermost values are named by leaf.
    /// `System` fields come first, so on an exact name clash the `System` value wins.
    pub fn from_evtx_json(v: &Value) -> Record {
        let mut rec = Record::default();
        let event = match v.get("Event") {
            Some(e) if e.is_object() => e,
            _ => v,
        };
        if let Some(system) = event.get("System") {
            flatten_system(system, &mut rec);
        }
        if let Some(data) = event.get("EventData") {
            flatten_event_data(data, &mut rec, 0);
        }
        if let Some(user) = event.get("UserData") {
            flatten_leaves(user, &mut rec, 0);
        }
        rec.finish();
        rec
    }

    /// A record from plain name/value pairs (ECS-mapped events, tests). Objects are flattened
    /// into dotted names (`a: {b: 1}` gives `a.b`); arrays become lists.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, Value)>) -> Record {
        let mut rec = Record::default();
        for (name, value) in pairs {
            flatten_dotted(&name, &value, &mut rec, 0);
        }
        rec.finish();
        rec
    }

    /// The value of a field: the exact name first, then the first ASCII-case-insensitive match.
    pub fn get(&self, field: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|f| &*f.name == field)
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(field))
            })
            .map(|f| &f.value)
    }

    /// The event time as written in the event (`SystemTime` for EVTX, `@timestamp` for ECS).
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp
            .and_then(|i| self.fields.get(i))
            .and_then(|f| f.value.as_str())
    }

    /// The fields in order, as (name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.fields.iter().map(|f| (&*f.name, &f.value))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the record has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Adds an EVTX data field; a name with spaces (Defender's `Threat Name`) also gets a
    /// space-less alias (`ThreatName`), the spelling SigmaHQ's rules use.
    fn push_data(&mut self, name: &str, value: FieldValue) {
        if name.contains(' ') {
            let alias: String = name.chars().filter(|c| *c != ' ').collect();
            self.push(&alias, value.clone());
        }
        self.push(name, value);
    }

    /// Adds a field (kept after any existing field of the same name).
    pub fn push(&mut self, name: &str, value: FieldValue) {
        if self.fields.len() >= MAX_FIELDS {
            return;
        }
        self.fields.push(Field {
            name: name.into(),
            value,
        });
    }

    pub(crate) fn finish(&mut self) {
        self.timestamp = TIMESTAMP_FIELDS.iter().find_map(|name| {
            self.fields
                .iter()
                .position(|f| &*f.name == *name && f.value.as_str().is_some())
        });
    }
}

fn attributes(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.get("#attributes").and_then(Value::as_object)
}

fn flatten_system(system: &Value, rec: &mut Record) {
    let Some(map) = system.as_object() else {
        return;
    };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("Provider", v) => {
                if let Some(attrs) = attributes(v) {
                    for (k, a) in attrs {
                        rec.push(&format!("Provider_{k}"), FieldValue::from_json(a));
                    }
                }
            }
            ("TimeCreated", v) => {
                if let Some(t) = attributes(v).and_then(|a| a.get("SystemTime")) {
                    rec.push("SystemTime", FieldValue::from_json(t));
                } else if !v.is_object() {
                    rec.push("TimeCreated", FieldValue::from_json(v));
                }
            }
            (_, Value::Object(obj)) => {
                // `{"#attributes": {...}, "#text": x}`: the text is the field's value (EventID
                // with Qualifiers), the attributes are fields by leaf name.
                if let Some(text) = obj.get("#text") {
                    rec.push(key, FieldValue::from_json(text));
                }
                if let Some(attrs) = attributes(value) {
                    for (k, a) in attrs {
                        rec.push(k, FieldValue::from_json(a));
                    }
                }
                for (k, v) in obj {
                    if k != "#text" && k != "#attributes" {
                        rec.push(k, FieldValue::from_json(v));
                    }
                }
            }
            (_, v) => rec.push(key, FieldValue::from_json(v)),
        }
    }
}

fn flatten_event_data(data: &Value, rec: &mut Record, depth: usize) {
    let Some(map) = data.as_object() else {
        // `"EventData": "text"` or a bare list: keep it as `Data`.
        if !data.is_null() {
            rec.push("Data", FieldValue::from_json(data));
        }
        return;
    };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("#attributes", _) => {}
            ("#text", v) => rec.push("Data", FieldValue::from_json(v)),
            (_, Value::Object(obj)) if depth < MAX_FLATTEN_DEPTH => {
                // `"Data": {"#text": [...]}` (unnamed data) or a named value with attributes.
                if let Some(text) = obj.get("#text") {
                    rec.push_data(key, FieldValue::from_json(text));
                } else {
                    flatten_event_data(value, rec, depth + 1);
                }
            }
            (_, v) => rec.push_data(key, FieldValue::from_json(v)),
        }
    }
}

fn flatten_leaves(v: &Value, rec: &mut Record, depth: usize) {
    let Some(map) = v.as_object() else {
        return;
    };
    for (key, value) in map {
        if key == "#attributes" {
            continue;
        }
        match value {
            Value::Object(obj) if depth < MAX_FLATTEN_DEPTH => {
                if let Some(text) = obj.get("#text") {
                    rec.push_data(key, FieldValue::from_json(text));
                } else {
                    flatten_leaves(value, rec, depth + 1);
                }
            }
            other => rec.push_data(key, FieldValue::from_json(other)),
        }
    }
}

fn flatten_dotted(name: &str, value: &Value, rec: &mut Record, depth: usize) {
    match value {
        Value::Object(obj) if depth < MAX_FLATTEN_DEPTH => {
            for (k, v) in obj {
                let child = if name.is_empty() {
                    k.clone()
                } else {
                    format!("{name}.{k}")
                };
                flatten_dotted(&child, v, rec, depth + 1);
            }
        }
        other => rec.push(name, FieldValue::from_json(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evtx_system_and_event_data() {
        let v = json!({"Event": {"#attributes": {"xmlns": "x"}, "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "G"}},
            "EventID": 7, "Version": 3, "Level": 4, "Keywords": "0x80",
            "TimeCreated": {"#attributes": {"SystemTime": "2025-11-27T07:40:10.165324Z"}},
            "EventRecordID": 5, "Correlation": null,
            "Execution": {"#attributes": {"ProcessID": 3544, "ThreadID": 4272}},
            "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "pc",
            "Security": {"#attributes": {"UserID": "S-1-5-18"}}},
            "EventData": {"Image": "C:\\Windows\\x.exe", "ProcessId": 4460, "Signed": "true"}}});
        let r = Record::from_evtx_json(&v);
        assert_eq!(r.get("EventID").unwrap().as_str(), Some("7"));
        assert_eq!(
            r.get("Provider_Name").unwrap().as_str(),
            Some("Microsoft-Windows-Sysmon")
        );
        assert_eq!(r.get("Provider_Guid").unwrap().as_str(), Some("G"));
        assert_eq!(r.get("ProcessID").unwrap().as_str(), Some("3544"));
        assert_eq!(r.get("ProcessId").unwrap().as_str(), Some("4460"));
        assert_eq!(r.get("processid").unwrap().as_str(), Some("3544"));
        assert_eq!(r.get("UserID").unwrap().as_str(), Some("S-1-5-18"));
        assert_eq!(
            r.get("Channel").unwrap().as_str(),
            Some("Microsoft-Windows-Sysmon/Operational")
        );
        assert_eq!(r.get("image").unwrap().as_str(), Some("C:\\Windows\\x.exe"));
        assert!(r.get("Correlation").unwrap().is_null());
        assert_eq!(r.timestamp(), Some("2025-11-27T07:40:10.165324Z"));
    }

    #[test]
    fn evtx_event_id_with_qualifiers() {
        let v = json!({"Event": {"System": {"EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 4688}}}});
        let r = Record::from_evtx_json(&v);
        assert_eq!(r.get("EventID").unwrap().as_str(), Some("4688"));
        assert_eq!(r.get("Qualifiers").unwrap().as_str(), Some("16384"));
    }

    #[test]
    fn evtx_unnamed_data_and_user_data() {
        let v = json!({"Event": {"System": {"EventID": 400},
            "EventData": {"Data": ["Available", "None", "HostName=ConsoleHost"]}}});
        let r = Record::from_evtx_json(&v);
        let d: Vec<&str> = r.get("Data").unwrap().texts().collect();
        assert_eq!(d, ["Available", "None", "HostName=ConsoleHost"]);
        let v = json!({"Event": {"System": {"EventID": 1102},
            "EventData": {"Data": {"#text": ["a", "b"]}},
            "UserData": {"LogFileCleared": {"#attributes": {"xmlns": "x"},
                "SubjectUserName": "bob", "Nested": {"Deep": 1}}}}});
        let r = Record::from_evtx_json(&v);
        assert_eq!(r.get("SubjectUserName").unwrap().as_str(), Some("bob"));
        assert_eq!(r.get("Deep").unwrap().as_str(), Some("1"));
        assert_eq!(r.get("Data").unwrap().texts().count(), 2);
        assert!(r.get("xmlns").is_none());
    }

    #[test]
    fn pairs_flatten_objects_and_keep_lists() {
        let r = Record::from_pairs([
            (
                "process".to_string(),
                json!({"executable": "/bin/sh", "args": ["-c", "id"]}),
            ),
            ("@timestamp".to_string(), json!("2024-01-01T00:00:00Z")),
        ]);
        assert_eq!(
            r.get("process.executable").unwrap().as_str(),
            Some("/bin/sh")
        );
        assert_eq!(r.get("process.args").unwrap().to_string(), "-c, id");
        assert_eq!(r.timestamp(), Some("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn lowercase_copy_only_when_needed() {
        let t = Text::new("abc");
        assert_eq!(t.data.len(), 3);
        assert_eq!((t.text(), t.lower()), ("abc", "abc"));
        let t = Text::new("AbC");
        assert_eq!((t.text(), t.lower()), ("AbC", "abc"));
        let t = Text::new("ÄbC");
        assert_eq!((t.text(), t.lower()), ("ÄbC", "äbc"));
        let t = Text::new("");
        assert_eq!((t.text(), t.lower()), ("", ""));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x10"), Some(16.0));
        assert_eq!(parse_number(" 12 "), Some(12.0));
        assert_eq!(parse_number("x"), None);
    }
}
