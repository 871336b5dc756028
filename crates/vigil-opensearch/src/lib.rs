//! Vigil's events in OpenSearch (or Elasticsearch, which speaks the same bulk and search
//! APIs).
//!
//! - **Index templates.** `{prefix}-events-*` gets ECS mappings: `@timestamp` date, the
//!   identity and category fields as keywords, `message` as text, addresses as `ip`, and
//!   other strings as keywords. Events go to daily indices `{prefix}-events-YYYY.MM.DD`, by
//!   their `@timestamp`, so retention deletes whole indices.
//! - **Idempotent bulk writes.** Each event is a `create` with `_id` = `event.id`. A 409
//!   means the event was stored before, which makes a retry or a Kafka redelivery harmless.
//!   The whole request is retried with backoff and jitter on 429/5xx and transport errors,
//!   and so are the items refused with 429, up to a limit.
//! - **The `Store` trait's event queries:** by id, by file hash, filtered, paged newest
//!   first with `search_after`, counted (in all, and per time bucket with a `date_histogram`
//!   for the console's overview), and deleted by age.
//!
//! [`OpenSearchStore`] is the `Store`: events, findings and incidents in OpenSearch, the
//! control tables in the node's SQLite (see its documentation for why).
#![warn(missing_docs)]

mod activity;
mod client;
mod docs;
mod events;
mod store;

pub use client::{BulkItem, Client, OsError};
pub use docs::{FindingIndex, IncidentIndex};
pub use events::EventIndex;
pub use store::OpenSearchStore;

use serde::{Deserialize, Serialize};

/// `[opensearch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenSearchConfig {
    /// Base URL, e.g. `https://opensearch:9200`; empty: not used.
    pub url: String,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password (`env:NAME` reads it from the environment).
    pub password: Option<String>,
    /// Prefix of every index and template (`vigil` → `vigil-events-2026.12.01`).
    pub index_prefix: String,
    /// Attempts per bulk request (the first included) before it fails.
    pub bulk_attempts: u32,
    /// First retry delay in milliseconds (doubled each attempt, ±50% jitter, capped at 30 s).
    pub backoff_ms: u64,
    /// Seconds one request may take.
    pub timeout_secs: u64,
}

impl Default for OpenSearchConfig {
    fn default() -> OpenSearchConfig {
        OpenSearchConfig {
            url: String::new(),
            username: None,
            password: None,
            index_prefix: "vigil".into(),
            bulk_attempts: 8,
            backoff_ms: 200,
            timeout_secs: 30,
        }
    }
}
