//! Files whose verdict Vigil knows, by SHA-256, for the pipeline: an event that names a
//! known-malicious hash (it ran, was written, loaded or started a child) becomes a finding
//! without the file being sent again.
//!
//! Verdicts come from analyses (REST, protocol) and from analysts' labels; a label
//! outranks any analysis, so a file an analyst called benign stays quiet. The map is
//! bounded: past its capacity new analysis verdicts are not remembered (labels still are,
//! replacing analysis entries), and the count of refusals is kept.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictSource {
    /// Vigil's analysis (static, YARA, model, VirusTotal, dynamic).
    Analysis,
    /// An analyst's label.
    Label,
}

/// A remembered verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownFile {
    /// Score in [0, 1] (a label: 1 malicious, 0 benign).
    pub score: f64,
    /// Malicious at the threshold in force when it was judged.
    pub malicious: bool,
    /// Where it came from.
    pub source: VerdictSource,
    /// What drove it (the strongest few reasons).
    pub reasons: Vec<String>,
}

/// Known verdicts by SHA-256 (lower-case hex).
pub struct KnownFiles {
    map: RwLock<HashMap<String, KnownFile>>,
    capacity: usize,
    refused: AtomicU64,
}

impl KnownFiles {
    /// An empty map holding at most `capacity` verdicts.
    pub fn new(capacity: usize) -> KnownFiles {
        KnownFiles {
            map: RwLock::new(HashMap::new()),
            capacity,
            refused: AtomicU64::new(0),
        }
    }

    /// Remembers `verdict` for `sha256`, unless an analyst's label already decides it.
    /// Clean analyses are remembered only to replace an earlier malicious one.
    /// Returns whether the map changed.
    pub fn record(&self, sha256: &str, verdict: KnownFile) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let key = sha256.to_ascii_lowercase();
        if let Some(old) = map.get(&key)
            && old.source == VerdictSource::Label
            && verdict.source == VerdictSource::Analysis
        {
            return false;
        }
        if verdict.source == VerdictSource::Analysis && !verdict.malicious {
            return map.remove(&key).is_some();
        }
        if !map.contains_key(&key) && map.len() >= self.capacity {
            // Make room for a label by forgetting an analysis verdict; never for an
            // analysis.
            let victim = (verdict.source == VerdictSource::Label)
                .then(|| {
                    map.iter()
                        .find(|(_, v)| v.source == VerdictSource::Analysis)
                        .map(|(k, _)| k.clone())
                })
                .flatten();
            match victim {
                Some(k) => {
                    map.remove(&k);
                }
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
        map.insert(key, verdict);
        true
    }

    /// The verdict on `sha256`, if known.
    pub fn get(&self, sha256: &str) -> Option<KnownFile> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return None;
        }
        if sha256.bytes().any(|b| b.is_ascii_uppercase()) {
            map.get(&sha256.to_ascii_lowercase()).cloned()
        } else {
            map.get(sha256).cloned()
        }
    }

    /// Verdicts held.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Verdicts not remembered because the map was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(malicious: bool) -> KnownFile {
        KnownFile {
            score: if malicious { 0.9 } else { 0.1 },
            malicious,
            source: VerdictSource::Analysis,
            reasons: vec!["yara".into()],
        }
    }

    fn label(malicious: bool) -> KnownFile {
        KnownFile {
            score: if malicious { 1.0 } else { 0.0 },
            malicious,
            source: VerdictSource::Label,
            reasons: vec!["analyst".into()],
        }
    }

    #[test]
    fn labels_outrank_analyses_and_clean_analyses_forget() {
        let k = KnownFiles::new(10);
        assert!(k.record("AA", analysis(true)));
        assert!(k.get("aa").unwrap().malicious);
        assert!(k.get("AA").is_some());
        // A clean re-analysis forgets it.
        assert!(k.record("aa", analysis(false)));
        assert!(k.get("aa").is_none());
        // A benign label is kept and silences later malicious analyses.
        assert!(k.record("bb", label(false)));
        assert!(!k.record("bb", analysis(true)));
        assert!(!k.get("bb").unwrap().malicious);
        // A label replaces a label.
        assert!(k.record("bb", label(true)));
        assert!(k.get("bb").unwrap().malicious);
    }

    #[test]
    fn bounded() {
        let k = KnownFiles::new(2);
        assert!(k.record("a", analysis(true)));
        assert!(k.record("b", analysis(true)));
        assert!(!k.record("c", analysis(true)));
        assert_eq!((k.len(), k.refused()), (2, 1));
        // A label evicts an analysis verdict.
        assert!(k.record("d", label(true)));
        assert_eq!(k.len(), 2);
        assert!(k.get("d").is_some());
        // Updating a held key needs no room.
        assert!(k.record("d", label(false)));
        assert!(k.record("e", label(true)));
        assert!(
            !k.record("f", label(true)),
            "only labels left: nothing to evict"
        );
        assert_eq!(k.refused(), 2);
    }
}
