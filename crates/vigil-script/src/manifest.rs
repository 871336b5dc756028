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
        let toml_text: String = source
            .lines()
            .map(str::trim_start)
            .take_while(|l| l.starts_with("//!") || l.is_empty())
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
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
        let mut m2 = m.clone();
        m2.name = "Bad Name".into();
        assert_eq!(m2.validate(100).unwrap_err().field, "name");
        m2.name = "ok".into();
        m2.categories = vec![];
        assert_eq!(m2.validate(100).unwrap_err().field, "categories");
    }
}
