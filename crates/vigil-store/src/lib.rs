//! Vigil's storage layer.
//!
//! [`Store`] is the one interface the pipeline and the server talk to. [`SqliteStore`] is the
//! embedded default (one file under the data directory, WAL, group commits). A search-engine
//! backend (Elasticsearch/OpenSearch) implements the same trait, so callers do not change.
//!
//! Pagination is by opaque cursor: a page answers `next`, and the caller passes it back to get
//! the following page. Lists are newest first.
#![warn(missing_docs)]

pub mod fsutil;
mod records;
mod sqlite;

pub use records::*;
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use vigil_core::{Event, Finding, Incident};

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A remote storage backend failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// Creating or reading the data directory failed.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The pagination cursor was not produced by this store.
    #[error("invalid pagination cursor: pass back the `next` value of the previous page")]
    BadCursor,
    /// A stored record could not be decoded.
    #[error("corrupt record {0}")]
    Corrupt(String),
    /// A record with that key exists already.
    #[error("{0} exists already")]
    Conflict(String),
    /// The request's arguments are unusable (the caller's mistake, not the store's).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database was written by a newer Vigil.
    #[error(
        "the database schema is version {found}, newer than this Vigil supports ({supported}): upgrade Vigil"
    )]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A blocking task was cancelled or panicked.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// The storage interface. Every method is one atomic operation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits events in one transaction, durably. Events whose `event.id` is stored already
    /// are skipped (idempotent retries). Returns, per event, whether it was new. Also records
    /// the `agent.id`/`host.name` pairs seen, for the agents list.
    async fn insert_events(&self, events: &[Event]) -> Result<Vec<bool>, StoreError>;
    /// One event by `event.id`.
    async fn get_event(&self, id: &str) -> Result<Option<Event>, StoreError>;
    /// Events whose `process.hash.sha256`, `process.parent.hash.sha256` or
    /// `file.hash.sha256` is `sha256` (lower-case hex), newest first, at most `limit`.
    async fn events_by_hash(&self, sha256: &str, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Events matching the query, newest `@timestamp` first.
    async fn query_events(&self, query: &EventQuery) -> Result<Page<Event>, StoreError>;
    /// Deletes events with `@timestamp` before `cutoff`; returns how many.
    async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Number of stored events.
    async fn count_events(&self) -> Result<u64, StoreError>;
    /// Events and findings counted per time bucket over `[since, until)`: every bucket in
    /// the range, empty ones included, oldest first (see [`ActivityQuery::empty_activity`]).
    /// Refused with [`StoreError::InvalidArgument`] when `bucket_secs < 1`, when the range
    /// needs more than [`MAX_ACTIVITY_BUCKETS`] buckets, or when `until <= since`.
    async fn activity(&self, query: &ActivityQuery) -> Result<Activity, StoreError>;

    /// Stores findings (idempotent by id).
    async fn insert_findings(&self, findings: &[Finding]) -> Result<(), StoreError>;
    /// One finding by id.
    async fn get_finding(&self, id: &str) -> Result<Option<Finding>, StoreError>;
    /// Findings matching the query, newest first.
    async fn query_findings(&self, query: &FindingQuery) -> Result<Page<Finding>, StoreError>;

    /// Creates or replaces an incident by id.
    async fn upsert_incident(&self, incident: &Incident) -> Result<(), StoreError>;
    /// One incident by id.
    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;
    /// Incidents matching the query, most recently updated first.
    async fn query_incidents(&self, query: &IncidentQuery) -> Result<Page<Incident>, StoreError>;

    /// Agents seen or registered, most recently seen first.
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError>;
    /// Registers an agent, or updates its registration; counts as being seen now.
    async fn register_agent(&self, agent: &AgentRegistration) -> Result<(), StoreError>;
    /// Marks an agent as seen now; false when it never registered nor sent events.
    async fn heartbeat_agent(&self, id: &str) -> Result<bool, StoreError>;

    /// Stores a new API key record (the hash, never the key).
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// The active (not revoked) key with this hash.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// All keys, including revoked ones.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes a key by id; false when there is no such active key.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError>;

    /// Stores a script version; `(name, version)` must be new.
    async fn put_script(&self, script: &ScriptRecord) -> Result<(), StoreError>;
    /// Every version of every script, by name then version (oldest first).
    async fn list_scripts(&self) -> Result<Vec<ScriptRecord>, StoreError>;
    /// Enables or disables every version of a script; false when no such script.
    async fn set_script_enabled(
        &self,
        name: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Deletes every version of a script; false when there was none.
    async fn delete_script(&self, name: &str) -> Result<bool, StoreError>;

    /// Creates or replaces a lookup list (IOC hashes, bad IPs, allow-lists).
    async fn put_list(&self, name: &str, values: &[String]) -> Result<(), StoreError>;
    /// Every lookup list with its values, by name.
    async fn list_lists(&self) -> Result<Vec<(String, Vec<String>)>, StoreError>;

    /// Stores a model version.
    async fn put_model(&self, model: &ModelRecord) -> Result<(), StoreError>;
    /// One model version, with its data.
    async fn get_model(&self, name: &str, version: i64) -> Result<Option<ModelRecord>, StoreError>;

    /// Appends scored connections to the network time series.
    async fn insert_connections(&self, rows: &[ConnectionRow]) -> Result<(), StoreError>;
    /// Connections matching the query, newest first.
    async fn query_connections(
        &self,
        query: &ConnectionQuery,
    ) -> Result<Page<ConnectionRow>, StoreError>;
    /// The time series in buckets of `bucket_secs`, oldest first, over the query's host,
    /// process and time range (its page fields are ignored); at most 10,000 buckets.
    async fn connection_series(
        &self,
        query: &ConnectionQuery,
        bucket_secs: u64,
    ) -> Result<Vec<SeriesPoint>, StoreError>;
    /// Deletes connections before `cutoff`; returns how many.
    async fn delete_connections_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The newest version of a model.
    async fn latest_model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError>;
    /// Every model version without its data, newest first.
    async fn list_models(&self) -> Result<Vec<ModelRecord>, StoreError>;

    /// A cached value, if present and not expired.
    async fn cache_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Caches a value; `ttl: None` keeps it until overwritten.
    async fn cache_put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    /// The live entries of a namespace, by key, at most `limit`.
    async fn cache_list(
        &self,
        namespace: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Deletes expired cache entries; returns how many.
    async fn cache_purge_expired(&self) -> Result<u64, StoreError>;

    // Triage reports.
    /// Stores a report (replacing one with the same id).
    async fn put_report(&self, report: &ReportRecord) -> Result<(), StoreError>;
    /// A report by id.
    async fn get_report(&self, id: &str) -> Result<Option<ReportRecord>, StoreError>;
    /// Reports, newest first; `markdown` and `doc` are left empty in the list.
    async fn query_reports(&self, query: &ReportQuery) -> Result<Page<ReportRecord>, StoreError>;

    // The asset inventory.
    /// Creates or replaces an asset.
    async fn put_asset(&self, asset: &Asset) -> Result<(), StoreError>;
    /// An asset by id.
    async fn get_asset(&self, id: &str) -> Result<Option<Asset>, StoreError>;
    /// Assets with this address or host name (either may be `None`), at most 100.
    async fn find_assets(
        &self,
        ip: Option<&str>,
        host: Option<&str>,
    ) -> Result<Vec<Asset>, StoreError>;
    /// Every asset, by id (at most `limit`).
    async fn list_assets(&self, limit: usize) -> Result<Vec<Asset>, StoreError>;
    /// Deletes an asset; whether it existed.
    async fn delete_asset(&self, id: &str) -> Result<bool, StoreError>;

    /// Queues deliveries; one whose `(route, incident_id, kind)` is queued already is
    /// skipped. Returns how many were new.
    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> Result<usize, StoreError>;
    /// Pending deliveries due at `now_ms`, oldest due first, at most `limit`.
    async fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    /// Records an attempt's outcome: the new state, attempts, next due time and error.
    async fn update_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
    /// Deliveries in a state (all when `None`), newest first, at most `limit`.
    async fn list_deliveries(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
}
