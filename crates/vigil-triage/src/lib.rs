//! Vigil's triage agent (seed 003, autoMSS): a security event arrives as the seed's line
//! (`time src_ip:port dst_ip:port name content`), a JSON event or an incident; a local
//! classifier names its [`Category`]; the category's [`playbook`] and passages retrieved from
//! the [`kb`] guide an investigation whose [`tools`] are Vigil's own analyzers; the result is a
//! [`report`] in Markdown and JSON.
//!
//! The investigation runs offline by default (the playbook's steps in order and a rule-based
//! verdict) or with any OpenAI-compatible chat-completions endpoint ([`llm`]), which chooses
//! the tools and writes the verdict; see [`agent`].
#![warn(missing_docs)]

pub mod agent;
pub mod category;
pub mod classify;
pub mod input;
pub mod kb;
pub mod llm;
pub mod playbook;
pub mod report;
pub mod tools;

pub use agent::{Triage, TriageConfig, TriageError, build, persist};
pub use category::Category;
pub use classify::Classifier;
pub use input::{Subject, parse_line};
pub use kb::KnowledgeBase;
pub use playbook::{Playbook, Playbooks};
pub use report::{Report, Verdict};
pub use tools::{Signal, Tool, ToolOutput, Toolbox};
