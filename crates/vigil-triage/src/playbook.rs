//! Playbooks as data: per category the prompt, the tools an LLM may call, the default
//! investigation steps and the recommended actions, in TOML that users can edit. The twelve
//! shipped playbooks (`crates/vigil-triage/playbooks/`) are compiled in; a folder given in
//! the configuration replaces them file by file.

use crate::category::Category;
use crate::report::Verdict;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The shipped playbooks: (file name, TOML).
pub const BUILTIN: [(&str, &str); 12] = [
    (
        "trojan_c2.toml",
        include_str!("../playbooks/trojan_c2.toml"),
    ),
    ("webshell.toml", include_str!("../playbooks/webshell.toml")),
    (
        "web_exploit.toml",
        include_str!("../playbooks/web_exploit.toml"),
    ),
    (
        "deserialization.toml",
        include_str!("../playbooks/deserialization.toml"),
    ),
    (
        "brute_force.toml",
        include_str!("../playbooks/brute_force.toml"),
    ),
    ("scanning.toml", include_str!("../playbooks/scanning.toml")),
    (
        "malware_file.toml",
        include_str!("../playbooks/malware_file.toml"),
    ),
    (
        "exfiltration.toml",
        include_str!("../playbooks/exfiltration.toml"),
    ),
    (
        "ransomware.toml",
        include_str!("../playbooks/ransomware.toml"),
    ),
    ("phishing.toml", include_str!("../playbooks/phishing.toml")),
    (
        "lateral_movement.toml",
        include_str!("../playbooks/lateral_movement.toml"),
    ),
    ("other.toml", include_str!("../playbooks/other.toml")),
];

/// Most steps a playbook may have.
pub const MAX_STEPS: usize = 20;

/// One default investigation step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The tool to call.
    pub tool: String,
    /// Its arguments; strings may hold `{src_ip}`-style placeholders filled from the event.
    #[serde(default)]
    pub args: toml::Table,
    /// Why the step is taken (shown in the report).
    #[serde(default)]
    pub why: String,
}

/// A category's playbook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// The category it is for.
    pub category: Category,
    /// A human title (`Trojan / command and control`).
    pub title: String,
    /// ATT&CK techniques typical of the category.
    #[serde(default)]
    pub attack: Vec<String>,
    /// Tools an LLM may call.
    pub tools: Vec<String>,
    /// The offline investigation, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// The verdict when no tool finds evidence either way.
    pub baseline: Verdict,
    /// Recommended actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// The system prompt for the LLM (`{category_title}` is filled in).
    pub prompt: String,
}

/// Why playbooks cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    /// A file could not be read.
    #[error("cannot read playbook {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a valid playbook.
    #[error("playbook {path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Playbook {
    /// Parses and checks a playbook; `known_tools` are the tools that exist.
    pub fn parse(path: &str, text: &str, known_tools: &[&str]) -> Result<Playbook, PlaybookError> {
        let invalid = |reason: String| PlaybookError::Invalid {
            path: path.to_string(),
            reason,
        };
        let pb: Playbook = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for t in &pb.tools {
            if !known_tools.contains(&t.as_str()) {
                return Err(invalid(format!(
                    "`tools` names `{t}`, which is not a tool (known: {})",
                    known_tools.join(", ")
                )));
            }
        }
        if pb.steps.len() > MAX_STEPS {
            return Err(invalid(format!("more than {MAX_STEPS} steps")));
        }
        for (i, s) in pb.steps.iter().enumerate() {
            if !pb.tools.contains(&s.tool) {
                return Err(invalid(format!(
                    "step {} uses `{}`, which is not in this playbook's `tools`",
                    i + 1,
                    s.tool
                )));
            }
        }
        if pb.prompt.trim().is_empty() {
            return Err(invalid("`prompt` is empty".into()));
        }
        Ok(pb)
    }
}

/// One playbook per category.
#[derive(Debug, Clone)]
pub struct Playbooks {
    by_category: BTreeMap<Category, Playbook>,
}

impl Playbooks {
    /// The shipped playbooks, then (when `dir` is given) the folder's `*.toml` files, each
    /// replacing the playbook of its category.
    pub fn load(dir: Option<&Path>, known_tools: &[&str]) -> Result<Playbooks, PlaybookError> {
        let mut by_category = BTreeMap::new();
        for (name, text) in BUILTIN {
            let pb = Playbook::parse(&format!("builtin:{name}"), text, known_tools)?;
            by_category.insert(pb.category, pb);
        }
        if let Some(dir) = dir {
            let io = |source| PlaybookError::Io {
                path: dir.display().to_string(),
                source,
            };
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for path in files {
                let shown = path.display().to_string();
                let meta = std::fs::metadata(&path).map_err(|source| PlaybookError::Io {
                    path: shown.clone(),
                    source,
                })?;
                if meta.len() > 256 * 1024 {
                    return Err(PlaybookError::Invalid {
                        path: shown,
                        reason: "larger than 256 KiB".into(),
                    });
                }
                let text = std::fs::read_to_string(&path).map_err(|source| PlaybookError::Io {
                    path: shown.clone(),
                    source,
                })?;
                let pb = Playbook::parse(&shown, &text, known_tools)?;
                by_category.insert(pb.category, pb);
            }
        }
        Ok(Playbooks { by_category })
    }

    /// The playbook of a category (every category has one).
    pub fn get(&self, category: Category) -> &Playbook {
        self.by_category
            .get(&category)
            .or_else(|| self.by_category.get(&Category::Other))
            .expect("the shipped playbooks cover every category (tested)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::TOOL_NAMES;

    #[test]
    fn shipped_playbooks_cover_every_category() {
        let pbs = Playbooks::load(None, &TOOL_NAMES).unwrap();
        for c in Category::ALL {
            let pb = pbs.get(c);
            assert_eq!(pb.category, c);
            assert!(!pb.steps.is_empty(), "{c} has no steps");
            assert!(!pb.actions.is_empty(), "{c} has no actions");
        }
    }

    #[test]
    fn bad_playbooks_are_refused_with_the_reason() {
        let good = BUILTIN[0].1;
        let e = Playbook::parse(
            "x",
            &good.replace("\"port_info\"", "\"rm_rf\""),
            &TOOL_NAMES,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("rm_rf") || e.contains("not in this playbook"),
            "{e}"
        );
        let e = Playbook::parse("x", "category = \"worm\"", &TOOL_NAMES)
            .unwrap_err()
            .to_string();
        assert!(e.contains("worm"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "not toml [").unwrap();
        let e = Playbooks::load(Some(dir.path()), &TOOL_NAMES).unwrap_err();
        assert!(e.to_string().contains("a.toml"), "{e}");
    }

    #[test]
    fn a_folder_replaces_one_category() {
        let dir = tempfile::tempdir().unwrap();
        let text = BUILTIN[11]
            .1
            .replace("title = ", "title = \"Custom\"\nold_title = ");
        // An unknown key is refused (deny_unknown_fields), so users see typos.
        std::fs::write(dir.path().join("other.toml"), &text).unwrap();
        assert!(Playbooks::load(Some(dir.path()), &TOOL_NAMES).is_err());
        let mut pb: toml::Table = toml::from_str(BUILTIN[11].1).unwrap();
        pb.insert("title".into(), toml::Value::String("Custom".into()));
        std::fs::write(dir.path().join("other.toml"), toml::to_string(&pb).unwrap()).unwrap();
        let pbs = Playbooks::load(Some(dir.path()), &TOOL_NAMES).unwrap();
        assert_eq!(pbs.get(Category::Other).title, "Custom");
        assert_ne!(pbs.get(Category::Scanning).title, "Custom");
    }
}
