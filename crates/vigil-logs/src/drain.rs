//! Drain: online log template mining with a fixed-depth prefix tree (He et al., ICWS 2017).
//!
//! A line is masked ([`crate::mask`]), cut into tokens, and routed by its token count and
//! its first `depth - 3` tokens down a tree to a leaf holding a few clusters. The line joins
//! the most similar cluster when the share of equal tokens reaches the similarity threshold;
//! the cluster's template then turns every position where they differ into `<*>`. Otherwise
//! the line starts a new cluster.
//!
//! Template ids are assigned in order of first sight and never change: a template that
//! generalises keeps its id. The whole state (clusters with their tree paths) saves to JSON
//! and restores exactly, so a restarted parser gives every line the id it gave before.
//!
//! Work and memory are bounded: lines are cut to [`DrainConfig::max_tokens`] tokens, a tree
//! node has at most [`DrainConfig::max_children`] children, and past
//! [`DrainConfig::max_clusters`] clusters a line that matches none gets [`OVERFLOW`] rather
//! than a new cluster.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::mask::{PARAM, mask_line};

/// The template id given to lines that match no cluster once the cluster limit is reached.
pub const OVERFLOW: u32 = 0;

/// Drain's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// Depth of the prefix tree as Drain and drain3 count it (the root, the token-count
    /// level and the leaf level included): `depth - 3` leading tokens route a line, and
    /// never its last token. At least 3.
    pub depth: usize,
    /// Share of equal tokens (0..=1) a line needs to join a cluster.
    pub similarity: f64,
    /// Most children of one tree node; past it, new tokens share the `<*>` child.
    pub max_children: usize,
    /// Most clusters; past it, unmatched lines get the [`OVERFLOW`] id.
    pub max_clusters: usize,
    /// Tokens of a line beyond this many are joined into the last one.
    pub max_tokens: usize,
    /// Mask numbers, addresses, ids and paths before mining (see [`crate::mask`]).
    pub mask: bool,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            depth: 4,
            similarity: 0.5,
            max_children: 100,
            max_clusters: 50_000,
            max_tokens: 200,
            mask: true,
        }
    }
}

impl DrainConfig {
    /// Checks the parameters, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.depth < 3 {
            return Err(format!("depth must be at least 3, not {}", self.depth));
        }
        if !(0.0..=1.0).contains(&self.similarity) {
            return Err(format!(
                "similarity must be within 0..=1, not {}",
                self.similarity
            ));
        }
        if self.max_children < 2 {
            return Err("max_children must be at least 2".into());
        }
        if self.max_clusters == 0 || self.max_tokens == 0 {
            return Err("max_clusters and max_tokens must be positive".into());
        }
        Ok(())
    }
}

/// One template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Stable id, from 1.
    pub id: u32,
    /// The template's tokens; `<*>` marks a parameter.
    pub tokens: Vec<String>,
    /// Lines that joined it.
    pub count: u64,
    /// The tree keys that lead to its leaf (kept so that a restore rebuilds the same tree).
    path: Vec<String>,
}

impl Cluster {
    /// The template as text.
    pub fn template(&self) -> String {
        self.tokens.join(" ")
    }
}

/// What [`Drain::parse`] did with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The line's template id ([`OVERFLOW`] past the cluster limit).
    pub id: u32,
    /// The line started a new template.
    pub created: bool,
    /// The line joined a template and generalised it.
    pub changed: bool,
}

/// FxHash (rustc's hasher): the tree's keys are short tokens, hashed on every line, and
/// not chosen by whoever could exploit collisions beyond the bounded children per node.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_usize(&mut self, v: usize) {
        self.0 = (self.0.rotate_left(5) ^ v as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Debug, Default, Clone)]
struct Node {
    children: FxMap<Box<str>, Node>,
    /// Indices into `Drain::clusters` (only at leaves).
    clusters: Vec<u32>,
}

/// The online template miner.
#[derive(Debug, Clone)]
pub struct Drain {
    config: DrainConfig,
    /// By token count.
    roots: FxMap<usize, Node>,
    clusters: Vec<Cluster>,
    overflowed: u64,
    buf: String,
}

/// The saved state of a [`Drain`].
#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    config: DrainConfig,
    clusters: Vec<Cluster>,
}

const FORMAT: u32 = 1;

/// A saved state that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Not JSON of the expected shape.
    #[error("not a saved Drain state: {0}")]
    Json(#[from] serde_json::Error),
    /// Saved by another version of the format.
    #[error("saved Drain state has format {0}; this Vigil reads format {FORMAT}")]
    Format(u32),
    /// Internally inconsistent.
    #[error("saved Drain state is inconsistent: {0}")]
    Invalid(String),
}

fn has_digit(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_digit())
}

impl Drain {
    /// An empty miner. Panics on parameters that [`DrainConfig::validate`] refuses.
    pub fn new(config: DrainConfig) -> Drain {
        if let Err(e) = config.validate() {
            panic!("bad Drain config: {e}");
        }
        Drain {
            config,
            roots: FxMap::default(),
            clusters: Vec::new(),
            overflowed: 0,
            buf: String::new(),
        }
    }

    /// The parameters.
    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// All templates, in id order.
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The template with this id.
    pub fn cluster(&self, id: u32) -> Option<&Cluster> {
        id.checked_sub(1)
            .and_then(|i| self.clusters.get(i as usize))
    }

    /// Lines that got [`OVERFLOW`] because the cluster limit was reached.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Mines one line (the message part, without the header) and returns its template id.
    pub fn parse(&mut self, line: &str) -> Parsed {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if self.config.mask {
            mask_line(line, &mut buf);
        } else {
            for (i, t) in line.split_ascii_whitespace().enumerate() {
                if i > 0 {
                    buf.push(' ');
                }
                buf.push_str(t);
            }
        }
        let parsed = self.parse_masked(&buf);
        self.buf = buf;
        parsed
    }

    /// The template id a line would get, without learning from it; `None` for a line that
    /// matches no template.
    pub fn lookup(&self, line: &str) -> Option<u32> {
        let mut buf = String::new();
        if self.config.mask {
            mask_line(line, &mut buf);
        } else {
            buf = line.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
        }
        let tokens = self.tokens(&buf);
        let leaf = self.find_leaf(&tokens)?;
        let (best, _) = self.best_match(leaf, &tokens)?;
        Some(self.clusters[best as usize].id)
    }

    fn tokens<'a>(&self, masked: &'a str) -> Vec<&'a str> {
        let max = self.config.max_tokens;
        let mut tokens: Vec<&str> = Vec::with_capacity(16);
        let mut rest = masked;
        while !rest.is_empty() {
            if tokens.len() + 1 == max {
                tokens.push(rest);
                break;
            }
            match rest.split_once(' ') {
                Some((t, r)) => {
                    tokens.push(t);
                    rest = r;
                }
                None => {
                    tokens.push(rest);
                    break;
                }
            }
        }
        tokens
    }

    fn parse_masked(&mut self, masked: &str) -> Parsed {
        let tokens = self.tokens(masked);
        if let Some(leaf) = self.find_leaf(&tokens)
            && let Some((best, _)) = self.best_match(leaf, &tokens)
        {
            let cluster = &mut self.clusters[best as usize];
            cluster.count += 1;
            let mut changed = false;
            for (t, l) in cluster.tokens.iter_mut().zip(&tokens) {
                if t != l && t != PARAM {
                    *t = PARAM.to_string();
                    changed = true;
                }
            }
            return Parsed {
                id: cluster.id,
                created: false,
                changed,
            };
        }
        if self.clusters.len() >= self.config.max_clusters {
            self.overflowed += 1;
            return Parsed {
                id: OVERFLOW,
                created: false,
                changed: false,
            };
        }
        let id = self.clusters.len() as u32 + 1;
        let path = self.add_to_tree(&tokens, id - 1);
        self.clusters.push(Cluster {
            id,
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            count: 1,
            path,
        });
        Parsed {
            id,
            created: true,
            changed: false,
        }
    }

    fn routing_len(&self, n_tokens: usize) -> usize {
        (self.config.depth - 3).min(n_tokens.saturating_sub(1))
    }

    fn find_leaf(&self, tokens: &[&str]) -> Option<&Node> {
        let mut node = self.roots.get(&tokens.len())?;
        for t in &tokens[..self.routing_len(tokens.len())] {
            node = match node.children.get(*t) {
                Some(n) => n,
                None => node.children.get(PARAM)?,
            };
        }
        Some(node)
    }

    /// The most similar cluster of a leaf reaching the threshold: the highest share of
    /// equal tokens, ties broken by more parameters. Unlike the original Drain, a masked
    /// value in the line (`<*>`) counts as equal to a parameter in the template (as
    /// drain3's named masks like `<NUM>` do): a line that is mostly values is still similar
    /// to its template.
    fn best_match(&self, leaf: &Node, tokens: &[&str]) -> Option<(u32, f64)> {
        let mut best: Option<(u32, f64, usize)> = None;
        for &c in &leaf.clusters {
            let template = &self.clusters[c as usize].tokens;
            let mut same = 0usize;
            let mut params = 0usize;
            for (t, l) in template.iter().zip(tokens) {
                // A value masked in the line matches a parameter: both are variable.
                if t == l {
                    same += 1;
                } else if t == PARAM {
                    params += 1;
                }
            }
            let sim = if tokens.is_empty() {
                1.0
            } else {
                same as f64 / tokens.len() as f64
            };
            let better = match best {
                None => true,
                Some((_, s, p)) => sim > s || (sim == s && params > p),
            };
            if better {
                best = Some((c, sim, params));
            }
        }
        best.filter(|&(_, sim, _)| sim >= self.config.similarity)
            .map(|(c, sim, _)| (c, sim))
    }

    /// Adds cluster `index` to the tree, creating nodes as Drain does, and returns the
    /// keys of its path.
    fn add_to_tree(&mut self, tokens: &[&str], index: u32) -> Vec<String> {
        let routing = self.routing_len(tokens.len());
        let max_children = self.config.max_children;
        let mut node = self.roots.entry(tokens.len()).or_default();
        let mut path = Vec::with_capacity(routing);
        for &t in &tokens[..routing] {
            let key: &str = if node.children.contains_key(t) {
                t
            } else if has_digit(t) {
                PARAM
            } else if node.children.contains_key(PARAM) {
                if node.children.len() < max_children {
                    t
                } else {
                    PARAM
                }
            } else if node.children.len() + 1 < max_children {
                t
            } else {
                PARAM
            };
            path.push(key.to_string());
            node = node.children.entry(key.into()).or_default();
        }
        node.clusters.push(index);
        path
    }

    /// The state as JSON, for [`Drain::restore`].
    pub fn save(&self) -> Vec<u8> {
        serde_json::to_vec(&Saved {
            format: FORMAT,
            config: self.config.clone(),
            clusters: self.clusters.clone(),
        })
        .expect("Drain state serialises")
    }

    /// A miner in the state [`Drain::save`] wrote.
    pub fn restore(bytes: &[u8]) -> Result<Drain, RestoreError> {
        let saved: Saved = serde_json::from_slice(bytes)?;
        if saved.format != FORMAT {
            return Err(RestoreError::Format(saved.format));
        }
        saved.config.validate().map_err(RestoreError::Invalid)?;
        let mut drain = Drain::new(saved.config);
        for (i, c) in saved.clusters.into_iter().enumerate() {
            if c.id as usize != i + 1 {
                return Err(RestoreError::Invalid(format!(
                    "cluster {} is stored at position {}",
                    c.id,
                    i + 1
                )));
            }
            if c.path.len() != drain.routing_len(c.tokens.len()) {
                return Err(RestoreError::Invalid(format!(
                    "cluster {} has a path of {} keys for {} tokens",
                    c.id,
                    c.path.len(),
                    c.tokens.len()
                )));
            }
            let mut node = drain.roots.entry(c.tokens.len()).or_default();
            for key in &c.path {
                node = node.children.entry(key.as_str().into()).or_default();
            }
            node.clusters.push(i as u32);
            drain.clusters.push(c);
        }
        Ok(drain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_lines_and_generalises_templates() {
        let mut d = Drain::new(DrainConfig::default());
        let a = d.parse("Accepted password for alice from 10.0.0.1 port 2222 ssh2");
        let b = d.parse("Accepted password for bob from 10.0.0.2 port 3333 ssh2");
        let c = d.parse("Failed password for invalid user admin from 10.0.0.3 port 22 ssh2");
        assert!(a.created && !b.created && c.created);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert!(b.changed);
        assert_eq!(
            d.cluster(a.id).unwrap().template(),
            "Accepted password for <*> from <*> port <*> ssh2"
        );
        assert_eq!(d.cluster(a.id).unwrap().count, 2);
        assert_eq!(
            d.lookup("Accepted password for carol from 10.9.9.9 port 1 ssh2"),
            Some(a.id)
        );
        assert_eq!(d.lookup("something else entirely"), None);
    }

    #[test]
    fn ids_survive_save_and_restore() {
        let mut d = Drain::new(DrainConfig::default());
        let lines = [
            "Receiving block blk_1 src: /10.0.0.1:50010 dest: /10.0.0.2:50010",
            "PacketResponder 1 for block blk_2 terminating",
            "Verification succeeded for blk_3",
            "Receiving block blk_4 src: /10.0.0.5:50010 dest: /10.0.0.6:50010",
            "",
        ];
        let ids: Vec<u32> = lines.iter().map(|l| d.parse(l).id).collect();
        let restored = Drain::restore(&d.save()).unwrap();
        let mut restored2 = Drain::restore(&d.save()).unwrap();
        for (l, id) in lines.iter().zip(&ids) {
            assert_eq!(restored.lookup(l), Some(*id), "{l}");
            assert_eq!(restored2.parse(l).id, *id);
        }
        assert_eq!(restored.clusters(), d.clusters());
        assert!(matches!(Drain::restore(b"{}"), Err(RestoreError::Json(_))));
        assert!(matches!(
            Drain::restore(b"\xff"),
            Err(RestoreError::Json(_))
        ));
        let mut bad: serde_json::Value = serde_json::from_slice(&d.save()).unwrap();
        bad["clusters"][0]["id"] = 7.into();
        assert!(matches!(
            Drain::restore(&serde_json::to_vec(&bad).unwrap()),
            Err(RestoreError::Invalid(_))
        ));
        bad["format"] = 9.into();
        assert!(matches!(
            Drain::restore(&serde_json::to_vec(&bad).unwrap()),
            Err(RestoreError::Format(9))
        ));
    }

    #[test]
    fn bounded_in_clusters_tokens_and_children() {
        let mut d = Drain::new(DrainConfig {
            max_clusters: 3,
            max_tokens: 5,
            max_children: 4,
            ..DrainConfig::default()
        });
        for w in ["alpha", "beta", "gamma", "delta", "epsilon"] {
            d.parse(&format!("{w} one two three"));
        }
        assert_eq!(d.clusters().len(), 3);
        assert_eq!(d.overflowed(), 2);
        let long = "a ".repeat(10_000);
        let p = Drain::new(DrainConfig::default()).parse(&long);
        assert!(p.created);
        let mut d = Drain::new(DrainConfig {
            max_tokens: 5,
            ..DrainConfig::default()
        });
        let id = d.parse(&long).id;
        assert_eq!(d.cluster(id).unwrap().tokens.len(), 5);
        // Many first words: the node's children stay bounded.
        let mut d = Drain::new(DrainConfig {
            max_children: 4,
            ..DrainConfig::default()
        });
        for i in 0..50 {
            d.parse(&format!("word{} x y z", char::from(b'a' + (i % 26) as u8)));
        }
        assert!(d.roots[&4].children.len() <= 4);
    }

    #[test]
    fn refuses_bad_config() {
        for c in [
            DrainConfig {
                depth: 2,
                ..DrainConfig::default()
            },
            DrainConfig {
                similarity: 1.5,
                ..DrainConfig::default()
            },
            DrainConfig {
                max_children: 1,
                ..DrainConfig::default()
            },
            DrainConfig {
                max_tokens: 0,
                ..DrainConfig::default()
            },
        ] {
            assert!(c.validate().is_err());
        }
    }
}
