//! Logsource mapping: which records a rule's `logsource` describes.
//!
//! The Windows mapping (services to channels, categories to channel + EventID with field
//! renames) is data, `data/windows.toml`, compiled in and parsed at first use. This module
//! turns a rule's [`LogSource`] into the EVTX sources it runs on; [`crate::RuleSet`] indexes
//! rules by those sources so a record only meets rules that can describe it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::rule::LogSource;

const WINDOWS_TOML: &str = include_str!("../data/windows.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowsFile {
    services: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    renames: BTreeMap<String, BTreeMap<String, String>>,
    categories: BTreeMap<String, Vec<SourceEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceEntry {
    channels: Vec<String>,
    event_ids: Vec<u32>,
    #[serde(default)]
    renames: Option<String>,
    #[serde(default)]
    require: BTreeMap<String, Vec<String>>,
}

/// Field renames for one source: rule field name -> record field name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Renames {
    /// Stable id (the data file's table name), used to share compiled variants.
    pub(crate) id: String,
    pub(crate) map: HashMap<String, String>,
}

impl Renames {
    pub(crate) fn apply<'a>(&'a self, field: &'a str) -> &'a str {
        self.map.get(field).map(String::as_str).unwrap_or(field)
    }
}

/// One EVTX source a rule runs on.
#[derive(Debug, Clone)]
pub(crate) struct WinSource {
    /// Lowercase channel names.
    pub(crate) channels: Vec<String>,
    /// `None`: any EventID.
    pub(crate) event_ids: Option<Vec<u32>>,
    pub(crate) renames: Option<Arc<Renames>>,
    /// Extra conditions: record field must equal (case-insensitively) one of the values.
    pub(crate) require: Vec<(String, Vec<String>)>,
}

/// Where a rule runs among EVTX records.
#[derive(Debug, Clone)]
pub(crate) enum WinTarget {
    /// Every Windows record (`product: windows` alone).
    AnyWindows,
    Sources(Vec<WinSource>),
}

/// The parsed Windows mapping.
#[derive(Debug)]
pub(crate) struct WindowsMap {
    services: HashMap<String, Vec<String>>,
    categories: HashMap<String, Vec<WinSource>>,
}

/// The built-in mapping, parsed once.
pub(crate) fn windows() -> &'static WindowsMap {
    static MAP: OnceLock<WindowsMap> = OnceLock::new();
    MAP.get_or_init(|| {
        // The file is part of this crate and tested; failing here is a build defect.
        WindowsMap::parse(WINDOWS_TOML).expect("data/windows.toml is valid")
    })
}

impl WindowsMap {
    pub(crate) fn parse(text: &str) -> Result<WindowsMap, String> {
        let file: WindowsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let renames: HashMap<String, Arc<Renames>> = file
            .renames
            .into_iter()
            .map(|(id, map)| {
                let r = Renames {
                    id: id.clone(),
                    map: map.into_iter().collect(),
                };
                (id, Arc::new(r))
            })
            .collect();
        let services = file
            .services
            .into_iter()
            .map(|(k, v)| (k, v.iter().map(|c| c.to_lowercase()).collect()))
            .collect();
        let mut categories = HashMap::new();
        for (name, entries) in file.categories {
            let mut sources = Vec::new();
            for e in entries {
                let renames = match &e.renames {
                    None => None,
                    Some(id) => Some(
                        renames
                            .get(id)
                            .cloned()
                            .ok_or_else(|| format!("category {name}: unknown renames `{id}`"))?,
                    ),
                };
                sources.push(WinSource {
                    channels: e.channels.iter().map(|c| c.to_lowercase()).collect(),
                    event_ids: Some(e.event_ids),
                    renames,
                    require: e.require.into_iter().collect(),
                });
            }
            categories.insert(name, sources);
        }
        Ok(WindowsMap {
            services,
            categories,
        })
    }

    /// The EVTX sources of a rule's logsource, or `None` when it does not describe Windows
    /// event-log records this mapping knows.
    pub(crate) fn target(&self, ls: &LogSource) -> Option<WinTarget> {
        let product = ls.product.as_deref().map(str::to_ascii_lowercase);
        if product.as_deref() != Some("windows") {
            return None;
        }
        let service = ls.service.as_deref().map(str::to_ascii_lowercase);
        let category = ls.category.as_deref().map(str::to_ascii_lowercase);
        match (category, service) {
            (None, None) => Some(WinTarget::AnyWindows),
            (None, Some(s)) => {
                let channels = self.services.get(&s)?;
                Some(WinTarget::Sources(vec![WinSource {
                    channels: channels.clone(),
                    event_ids: None,
                    renames: None,
                    require: Vec::new(),
                }]))
            }
            (Some(c), service) => {
                let sources = self.categories.get(&c)?;
                let sources: Vec<WinSource> = match service {
                    None => sources.clone(),
                    Some(s) => {
                        let allowed = self.services.get(&s)?;
                        sources
                            .iter()
                            .filter_map(|src| {
                                let channels: Vec<String> = src
                                    .channels
                                    .iter()
                                    .filter(|c| allowed.contains(c))
                                    .cloned()
                                    .collect();
                                (!channels.is_empty()).then(|| WinSource {
                                    channels,
                                    ..src.clone()
                                })
                            })
                            .collect()
                    }
                };
                (!sources.is_empty()).then_some(WinTarget::Sources(sources))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(p: Option<&str>, c: Option<&str>, s: Option<&str>) -> LogSource {
        LogSource {
            product: p.map(String::from),
            category: c.map(String::from),
            service: s.map(String::from),
        }
    }

    #[test]
    fn builtin_mapping_parses() {
        let m = windows();
        assert!(m.services.contains_key("security"));
        assert_eq!(m.categories["process_creation"].len(), 2);
    }

    #[test]
    fn process_creation_has_sysmon_and_security() {
        let Some(WinTarget::Sources(s)) =
            windows().target(&ls(Some("windows"), Some("process_creation"), None))
        else {
            panic!("not mapped")
        };
        assert_eq!(s[0].channels, ["microsoft-windows-sysmon/operational"]);
        assert_eq!(s[0].event_ids.as_deref(), Some(&[1][..]));
        assert_eq!(s[1].channels, ["security"]);
        assert_eq!(
            s[1].renames.as_ref().unwrap().apply("Image"),
            "NewProcessName"
        );
    }

    #[test]
    fn service_and_unmapped() {
        let Some(WinTarget::Sources(s)) =
            windows().target(&ls(Some("Windows"), None, Some("security")))
        else {
            panic!("not mapped")
        };
        assert!(s[0].event_ids.is_none());
        assert!(
            windows()
                .target(&ls(Some("linux"), Some("process_creation"), None))
                .is_none()
        );
        assert!(
            windows()
                .target(&ls(Some("windows"), Some("file_access"), None))
                .is_none()
        );
        assert!(
            windows()
                .target(&ls(None, Some("webserver"), None))
                .is_none()
        );
        assert!(matches!(
            windows().target(&ls(Some("windows"), None, None)),
            Some(WinTarget::AnyWindows)
        ));
    }

    #[test]
    fn category_restricted_by_service() {
        let Some(WinTarget::Sources(s)) = windows().target(&ls(
            Some("windows"),
            Some("process_creation"),
            Some("security"),
        )) else {
            panic!("not mapped")
        };
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].channels, ["security"]);
        assert!(
            windows()
                .target(&ls(Some("windows"), Some("image_load"), Some("security")))
                .is_none()
        );
    }
}
