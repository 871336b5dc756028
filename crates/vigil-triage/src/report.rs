//! The triage report: JSON for machines, Markdown for people, saved under
//! `reports/YYYY-MM-DD/<id>.md` (and `.json`) and in the store.

use crate::category::Category;
use crate::classify::Prediction;
use crate::input::Subject;
use crate::kb::Hit;
use crate::tools::{Signal, ToolOutput};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Harmless, or a false positive.
    Benign,
    /// Needs a person to look.
    Suspicious,
    /// A true positive: act.
    Malicious,
}

impl Verdict {
    /// `malicious`, `suspicious` or `benign`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Benign => "benign",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Verdict, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "benign" | "false_positive" | "false positive" => Ok(Verdict::Benign),
            "suspicious" => Ok(Verdict::Suspicious),
            "malicious" | "true_positive" | "true positive" => Ok(Verdict::Malicious),
            other => Err(format!(
                "unknown verdict `{other}`: expected malicious, suspicious or benign"
            )),
        }
    }
}

/// One tool call of the investigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Why it was called (the playbook's reason, or the LLM's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// Its result, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<ToolOutput>,
    /// Why it did not run or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds it took.
    pub millis: u64,
}

/// A cited knowledge passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// `[1]`, `[2]`, … in the report.
    pub n: usize,
    /// The document (path inside the knowledge base).
    pub source: String,
    /// Its title and section.
    pub title: String,
    /// The passage, shortened.
    pub excerpt: String,
    /// Retrieval score.
    pub score: f64,
}

impl Citation {
    /// Turns retrieval hits into numbered citations.
    pub fn from_hits(hits: &[Hit]) -> Vec<Citation> {
        hits.iter()
            .enumerate()
            .map(|(i, h)| Citation {
                n: i + 1,
                source: h.source.clone(),
                title: if h.heading.is_empty() {
                    h.title.clone()
                } else {
                    format!("{} — {}", h.title, h.heading)
                },
                excerpt: shorten(&h.text, 400),
                score: h.score,
            })
            .collect()
    }
}

/// How the verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The playbook's steps and the rule-based verdict.
    Offline,
    /// The LLM chose the tools and wrote the verdict.
    Llm,
    /// The LLM was configured but failed; the offline verdict stands.
    LlmFallback,
}

/// A finished triage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Unique id (UUIDv7).
    pub id: String,
    /// Written at (RFC 3339 UTC).
    pub created_at: String,
    /// One line naming what was triaged.
    pub title: String,
    /// The category.
    pub category: Category,
    /// The local classifier's view (the LLM may have refined the category).
    pub classification: Prediction,
    /// The conclusion.
    pub verdict: Verdict,
    /// Confidence in the verdict, in [0, 1].
    pub confidence: f64,
    /// A paragraph for people.
    pub summary: String,
    /// Why the verdict (one reason per line).
    pub reasons: Vec<String>,
    /// The event.
    pub subject: Subject,
    /// Timeline: what happened when (event time, tool observations).
    pub timeline: Vec<TimelineEntry>,
    /// The investigation.
    pub tool_calls: Vec<ToolCall>,
    /// Knowledge cited.
    pub citations: Vec<Citation>,
    /// ATT&CK techniques.
    pub attack: Vec<String>,
    /// What to do.
    pub actions: Vec<String>,
    /// How it was reached.
    pub mode: Mode,
    /// The model, when an LLM was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Problems met on the way (LLM errors, skipped steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Milliseconds from input to report.
    pub millis: u64,
}

/// A timeline line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (RFC 3339 UTC), when known.
    pub at: Option<String>,
    /// What.
    pub what: String,
}

/// Shortens to at most `max` characters, on a character boundary.
pub fn shorten(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Makes text safe inside Markdown: event content is attacker-controlled, so it is shown in
/// code spans or fenced blocks, never as Markdown or HTML.
fn code_span(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let ticks = longest_backtick_run(&s) + 1;
    let fence = "`".repeat(ticks);
    format!("{fence} {s} {fence}")
}

fn longest_backtick_run(s: &str) -> usize {
    let mut best = 0;
    let mut cur = 0;
    for c in s.chars() {
        if c == '`' {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

fn fenced(s: &str, lang: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(s) + 1).max(3));
    format!("{fence}{lang}\n{s}\n{fence}\n")
}

/// Escapes text written by the LLM or taken from documents for plain Markdown: HTML is
/// neutralised so that a renderer shows it as text.
fn escape_md(s: &str) -> String {
    s.replace('<', "&lt;").replace('>', "&gt;")
}

fn signal_word(s: Signal) -> &'static str {
    match s {
        Signal::None => "—",
        Signal::Benign => "benign",
        Signal::Suspicious => "suspicious",
        Signal::Malicious => "malicious",
    }
}

impl Report {
    /// The Markdown report.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Triage report: {}\n", escape_md(&self.title));
        let _ = writeln!(
            md,
            "| | |\n|---|---|\n| Verdict | **{}** (confidence {:.0}%) |\n| Category | {} \
             (classifier {:.0}%) |\n| Report | `{}` |\n| Written | {} |\n| Mode | {}{} |\n",
            self.verdict.as_str().to_uppercase(),
            self.confidence * 100.0,
            self.category,
            self.classification.confidence * 100.0,
            self.id,
            self.created_at,
            match self.mode {
                Mode::Offline => "offline playbook",
                Mode::Llm => "LLM agent",
                Mode::LlmFallback => "offline playbook (LLM failed)",
            },
            self.model
                .as_deref()
                .map(|m| format!(" — {}", escape_md(m)))
                .unwrap_or_default()
        );
        let _ = writeln!(md, "## Summary\n\n{}\n", escape_md(&self.summary));
        if !self.reasons.is_empty() {
            let _ = writeln!(md, "## Why\n");
            for r in &self.reasons {
                let _ = writeln!(md, "- {}", escape_md(r));
            }
            md.push('\n');
        }
        let _ = writeln!(md, "## Event\n");
        let s = &self.subject;
        let rows: [(&str, Option<String>); 9] = [
            ("Time", s.time.clone()),
            (
                "Source",
                s.src_ip.map(|ip| match s.src_port {
                    Some(p) => format!("{ip}:{p}"),
                    None => ip.to_string(),
                }),
            ),
            (
                "Destination",
                s.dst_ip.map(|ip| match s.dst_port {
                    Some(p) => format!("{ip}:{p}"),
                    None => ip.to_string(),
                }),
            ),
            ("Name", Some(s.name.clone())),
            (
                "Content",
                Some(shorten(&s.content, 600)).filter(|c| !c.is_empty()),
            ),
            ("Host", s.host.clone()),
            ("File SHA-256", s.sha256.clone()),
            ("User", s.user.clone()),
            ("Incident", s.incident_id.clone()),
        ];
        let _ = writeln!(md, "| Field | Value |\n|---|---|");
        for (k, v) in rows {
            if let Some(v) = v {
                let _ = writeln!(md, "| {k} | {} |", code_span(&v).replace('|', "\\|"));
            }
        }
        let _ = writeln!(
            md,
            "\nAs received:\n\n{}",
            fenced(&shorten(&s.raw, 4000), "text")
        );
        if !self.timeline.is_empty() {
            let _ = writeln!(md, "## Timeline\n");
            for t in &self.timeline {
                let _ = writeln!(
                    md,
                    "- {} — {}",
                    t.at.as_deref().unwrap_or("(time unknown)"),
                    escape_md(&t.what)
                );
            }
            md.push('\n');
        }
        let _ = writeln!(md, "## Investigation\n");
        if self.tool_calls.is_empty() {
            let _ = writeln!(md, "No tools were run.\n");
        }
        for (i, c) in self.tool_calls.iter().enumerate() {
            let _ = writeln!(
                md,
                "### {}. `{}` {}\n",
                i + 1,
                c.tool,
                code_span(&c.args.to_string())
            );
            if !c.why.is_empty() {
                let _ = writeln!(md, "_{}_\n", escape_md(&c.why));
            }
            match (&c.output, &c.error) {
                (Some(o), _) => {
                    let _ = writeln!(
                        md,
                        "Result ({}, {} ms): {}\n",
                        signal_word(o.signal),
                        c.millis,
                        escape_md(&o.summary)
                    );
                    let data = serde_json::to_string_pretty(&o.data).unwrap_or_default();
                    let _ = writeln!(
                        md,
                        "<details><summary>data</summary>\n\n{}\n</details>\n",
                        fenced(&shorten(&data, 3000), "json")
                    );
                }
                (None, Some(e)) => {
                    let _ = writeln!(md, "Not run: {}\n", escape_md(e));
                }
                (None, None) => {}
            }
        }
        if !self.attack.is_empty() {
            let _ = writeln!(md, "## ATT&CK mapping\n");
            for t in &self.attack {
                let path = t.replace('.', "/");
                let _ = writeln!(md, "- [{t}](https://attack.mitre.org/techniques/{path}/)");
            }
            md.push('\n');
        }
        if !self.actions.is_empty() {
            let _ = writeln!(md, "## Recommended actions\n");
            for a in &self.actions {
                let _ = writeln!(md, "1. {}", escape_md(a));
            }
            md.push('\n');
        }
        if !self.citations.is_empty() {
            let _ = writeln!(md, "## Knowledge cited\n");
            for c in &self.citations {
                let _ = writeln!(
                    md,
                    "[{}] **{}** (`{}`, score {:.2}): {}\n",
                    c.n,
                    escape_md(&c.title),
                    c.source,
                    c.score,
                    escape_md(&c.excerpt.replace('\n', " "))
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {}", escape_md(n));
            }
            md.push('\n');
        }
        let _ = writeln!(
            md,
            "---\nWritten by Vigil's triage agent in {} ms. Event content is untrusted and \
             shown verbatim in code.",
            self.millis
        );
        md
    }

    /// Saves `<dir>/YYYY-MM-DD/<id>.md` and `.json` (written to a temporary file and renamed,
    /// so a crash never leaves half a report); returns the Markdown path.
    pub fn save(&self, dir: &Path, markdown: &str) -> std::io::Result<PathBuf> {
        let day = self.created_at.get(..10).unwrap_or("undated");
        let folder = dir.join(day);
        std::fs::create_dir_all(&folder)?;
        let md_path = folder.join(format!("{}.md", self.id));
        let json_path = folder.join(format!("{}.json", self.id));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        for (path, bytes) in [
            (&json_path, json.as_slice()),
            (&md_path, markdown.as_bytes()),
        ] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(md_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_code() {
        assert_eq!(code_span("a`b"), "`` a`b ``");
        assert_eq!(
            escape_md("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(escape_md("ATT&CK"), "ATT&CK");
        assert!(fenced("```\nx", "text").starts_with("````text"));
        assert_eq!(shorten("héllo wörld", 5), "héll…");
        assert_eq!("True Positive".parse::<Verdict>(), Ok(Verdict::Malicious));
        assert!("maybe".parse::<Verdict>().is_err());
    }
}
