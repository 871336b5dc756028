//! Vigil's triage agent (seed 003, autoMSS): a security event arrives as the seed's line
//! (`time src_ip:port dst_ip:port name content`), a JSON event or an incident; a local
//! classifier names its [`Category`]; the category's [`playbook`] and passages retrieved from
//! the [`kb`] guide an investigation whose [`tools`] are Vigil's own analyzers; the result is a
//! [`report`] in Markdown and JSON.
//!
//! The investigation runs offline by default (the playbook's steps in order and a rule-based
//! verdict) or with any OpenAI-compatible chat-completions endpoint ([`llm`]), which chooses
//! the tools and writes the verdict; see `agent`. Without the default feature `agent` the
//! crate is only the input readers, the classifier and the knowledge base.
#![warn(missing_docs)]

#[cfg(feature = "agent")]
pub mod agent;
pub mod category;
pub mod classify;
pub mod input;
pub mod kb;
#[cfg(feature = "agent")]
pub mod llm;
#[cfg(feature = "agent")]
pub mod playbook;
#[cfg(feature = "agent")]
pub mod report;
#[cfg(feature = "agent")]
pub mod tools;

#[cfg(feature = "agent")]
pub use agent::{Triage, TriageConfig, TriageError, build, persist};
pub use category::Category;
pub use classify::Classifier;
pub use input::{Subject, parse_line};
pub use kb::KnowledgeBase;
#[cfg(feature = "agent")]
pub use playbook::{Playbook, Playbooks};
#[cfg(feature = "agent")]
pub use report::{Report, Verdict};
#[cfg(feature = "agent")]
pub use tools::{Signal, Tool, ToolOutput, Toolbox};
