//! What a script declares about itself.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vigil_core::Event;

/// A script's declaration, like a Cortex analyzer's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique name: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
    pub name: String,
    /// What the script looks for, for people.
    #[serde(default)]
    pub description: String,
    /// `event.category` values it accepts; `["*"]` (the default) for every event.
    #[serde(default = "every_category")]
    pub categories: Vec<String>,
    /// Configuration items and their defaults, passed as `config` to `analyze`.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Wall-clock limit per run, in milliseconds (capped by the server's `max_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Run only on events from agents registered with at least one of these tags; empty
    /// (the default) for every agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_tags: Vec<String>,
    /// The runtime: `rhai` (the default) or `python` (seed 000's contract, opt-in).
    #[serde(default)]
    pub language: Language,
}

/// A script's runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Rhai, in the server's sandboxed engine.
    #[default]
    Rhai,
    /// Python 3 in worker processes, `Start_Analysis(queue_instance, DATA)`.
    Python,
}

fn every_category() -> Vec<String> {
    vec!["*".into()]
}

/// Why a manifest is unusable; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("manifest field `{field}`: {message}")]
pub struct ManifestError {
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        message: message.into(),
    }
}

impl Manifest {
    /// Checks names, categories and the timeout against `max_timeout_ms`.
    pub fn validate(&self, max_timeout_ms: u64) -> Result<(), ManifestError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(bad("name", "must be 1 to 64 of a-z, 0-9, `_`, `-`"));
        }
        if self.categories.is_empty() {
            return Err(bad("categories", "list at least one category, or \"*\""));
        }
        if let Some(c) = self
            .categories
            .iter()
            .find(|c| c.is_empty() || c.len() > 64 || c.chars().any(|ch| ch.is_ascii_uppercase()))
        {
            return Err(bad(
                "categories",
                format!("`{c}` must be 1 to 64 lowercase characters"),
            ));
        }
        if let Some(t) = self.timeout_ms
            && (t == 0 || t > max_timeout_ms)
        {
            return Err(bad(
                "timeout_ms",
                format!("must be between 1 and {max_timeout_ms}"),
            ));
        }
        if self.description.len() > 4096 {
            return Err(bad("description", "at most 4096 bytes"));
        }
        Ok(())
    }

    /// Whether the script wants `event`.
    pub fn matches(&self, event: &Event) -> bool {
        self.categories.iter().any(|c| c == "*")
            || event
                .categories()
                .any(|c| self.categories.iter().any(|w| w == c))
    }

    /// The manifest of a script file: `//!` TOML front matter for `.rhai`, and for `.py`
    /// (seed 000's contract) optional `#:` TOML lines at the top, the name defaulting to
    /// the file's stem.
    pub fn for_file(path: &std::path::Path, source: &str) -> Result<Manifest, ManifestError> {
        if path.extension().and_then(|e| e.to_str()) != Some("py") {
            return Manifest::from_front_matter(source);
        }
        let toml_text = leading_lines(source, "#", "#:");
        let mut table: toml::Table =
            toml::from_str(&toml_text).map_err(|e| bad("front matter", e.to_string()))?;
        if !table.contains_key("name") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("script")
                .to_lowercase()
                .replace(
                    |c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                    "_",
                );
            table.insert("name".into(), toml::Value::String(stem));
        }
        table.insert("language".into(), toml::Value::String("python".into()));
        let json = serde_json::to_value(table).map_err(|e| bad("front matter", e.to_string()))?;
        serde_json::from_value(json).map_err(|e| bad("front matter", e.to_string()))
    }

    /// Reads the manifest from the `//!` lines at the top of a `.rhai` file, which hold
    /// TOML:
    ///
    /// ```text
    /// //! name = "encoded_powershell"
    /// //! description = "PowerShell with an encoded command"
    /// //! categories = ["process"]
    /// //! [config]
    /// //! min_length = 40
    /// ```
    pub fn from_front_matter(source: &str) -> Result<Manifest, ManifestError> {
        let toml_text = leading_lines(source, "//!", "//!");
        if toml_text.trim().is_empty() {
            return Err(bad(
                "name",
                "no manifest: start the file with `//! name = \"...\"` lines (TOML)",
            ));
        }
        let table: toml::Table =
            toml::from_str(&toml_text).map_err(|e| bad("front matter", e.to_string()))?;
        let json = serde_json::to_value(table).map_err(|e| bad("front matter", e.to_string()))?;
        serde_json::from_value(json).map_err(|e| bad("front matter", e.to_string()))
    }
}

/// The fields a source's own front matter sets (`//!` lines of Rhai, `#:` lines of
/// Python), as JSON; `None` when it has none. Only the keys written are present, so a
/// caller can tell a field left out from one set to its default.
pub fn front_matter_fields(
    source: &str,
    language: Language,
) -> Result<Option<Map<String, Value>>, ManifestError> {
    let text = match language {
        Language::Rhai => leading_lines(source, "//!", "//!"),
        Language::Python => leading_lines(source, "#", "#:"),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| bad("front matter", e.to_string()))?;
    match serde_json::to_value(table).map_err(|e| bad("front matter", e.to_string()))? {
        Value::Object(m) => Ok(Some(m)),
        _ => Ok(None),
    }
}

/// The text after `marker` on the lines at the top of `source` that start with `comment`
/// (or are blank): the front matter.
fn leading_lines(source: &str, comment: &str, marker: &str) -> String {
    source
        .lines()
        .map(str::trim_start)
        .take_while(|l| l.starts_with(comment) || l.is_empty())
        .filter_map(|l| l.strip_prefix(marker))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_validation() {
        let src = "//! name = \"enc_ps\"\n//! categories = [\"process\"]\n//! timeout_ms = 20\n//! [config]\n//! min = 3\n\nfn analyze(event, config) { () }\n";
        let m = Manifest::from_front_matter(src).unwrap();
        assert_eq!(m.name, "enc_ps");
        assert_eq!(m.config["min"], 3);
        assert!(m.validate(100).is_ok());
        assert_eq!(m.validate(10).unwrap_err().field, "timeout_ms");
        assert!(Manifest::from_front_matter("fn analyze(e, c) {}").is_err());
        assert!(Manifest::from_front_matter("//! name = \n").is_err());
        assert!(
            Manifest::from_front_matter("//! nme = \"x\"\n")
                .unwrap_err()
                .message
                .contains("nme")
        );
        let py = Manifest::for_file(
            std::path::Path::new("dir/Seed Custom.py"),
            "#!/usr/bin/env python3\n#: categories = [\"process\"]\nimport queue\n",
        )
        .unwrap();
        assert_eq!(py.name, "seed_custom");
        assert_eq!(py.categories, ["process"]);
        assert_eq!(py.language, Language::Python);
        let rhai = Manifest::for_file(std::path::Path::new("x.rhai"), src).unwrap();
        assert_eq!(rhai.language, Language::Rhai);
        let mut m2 = m.clone();
        m2.name = "Bad Name".into();
        assert_eq!(m2.validate(100).unwrap_err().field, "name");
        m2.name = "ok".into();
        m2.categories = vec![];
        assert_eq!(m2.validate(100).unwrap_err().field, "categories");
    }
}
