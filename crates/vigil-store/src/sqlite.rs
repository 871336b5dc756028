//! The embedded default store: one SQLite file (`vigil.db`) under the data directory.
//!
//! One writer connection (every write is one transaction; the ingest pipeline groups many
//! events into each), several read-only connections (WAL lets them read while the writer
//! commits). Blocking SQLite calls run on tokio's blocking pool.

use crate::{
    Activity, ActivityQuery, Agent, AgentRegistration, ApiKey, Asset, ConnectionQuery,
    ConnectionRow, DEFAULT_PAGE, Delivery, DeliveryState, EventQuery, FindingQuery, IncidentQuery,
    MAX_PAGE, ModelRecord, Page, ReportQuery, ReportRecord, ScriptRecord, SeriesPoint, Store,
    StoreError,
};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use vigil_core::{Event, Finding, Incident, Role};

/// How hard SQLite works to make a commit survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL on every commit: an acknowledged event survives power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: an acknowledged event survives a crash of Vigil, not of
    /// the machine. Faster on slow disks.
    Normal,
}

/// Options for [`SqliteStore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// Number of read-only connections.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "vigil.db";

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    ts   INTEGER NOT NULL,
    host TEXT,
    doc  TEXT NOT NULL
);
CREATE INDEX events_ts ON events(ts, seq);
CREATE INDEX events_host_ts ON events(host, ts, seq);
CREATE TABLE event_categories (
    category TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (category, ts, seq)
) WITHOUT ROWID;
CREATE INDEX event_categories_ts ON event_categories(ts);

CREATE TABLE findings (
    seq      INTEGER PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,
    ts       INTEGER NOT NULL,
    analyzer TEXT NOT NULL,
    severity INTEGER NOT NULL,
    host     TEXT,
    doc      TEXT NOT NULL
);
CREATE INDEX findings_ts ON findings(ts, seq);
CREATE INDEX findings_host_ts ON findings(host, ts, seq);
CREATE INDEX findings_analyzer_ts ON findings(analyzer, ts, seq);
CREATE TABLE finding_events (
    event_id    TEXT NOT NULL,
    finding_seq INTEGER NOT NULL,
    PRIMARY KEY (event_id, finding_seq)
) WITHOUT ROWID;

CREATE TABLE incidents (
    id       TEXT PRIMARY KEY,
    updated  INTEGER NOT NULL,
    status   TEXT NOT NULL,
    severity INTEGER NOT NULL,
    host     TEXT,
    doc      TEXT NOT NULL
);
CREATE INDEX incidents_updated ON incidents(updated, id);
CREATE INDEX incidents_status_updated ON incidents(status, updated, id);

CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    host       TEXT,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    events     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE scripts (
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    source          TEXT NOT NULL,
    manifest        TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE models (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    metrics    TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE cache (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    expires   INTEGER,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX cache_expires ON cache(expires) WHERE expires IS NOT NULL;
"#,
    r#"
CREATE TABLE lists (
    name       TEXT PRIMARY KEY,
    items      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE agents ADD COLUMN os TEXT;
ALTER TABLE agents ADD COLUMN version TEXT;
ALTER TABLE agents ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN registered_at TEXT;
"#,
    // File analysis looks events up by the hash of the executable involved.
    r#"
CREATE INDEX events_process_sha256 ON events(json_extract(doc, '$.process.hash.sha256'))
    WHERE json_extract(doc, '$.process.hash.sha256') IS NOT NULL;
CREATE INDEX events_parent_sha256 ON events(json_extract(doc, '$.process.parent.hash.sha256'))
    WHERE json_extract(doc, '$.process.parent.hash.sha256') IS NOT NULL;
CREATE INDEX events_file_sha256 ON events(json_extract(doc, '$.file.hash.sha256'))
    WHERE json_extract(doc, '$.file.hash.sha256') IS NOT NULL;
"#,
    // The network detector's time series: every scored connection.
    r#"
CREATE TABLE connections (
    seq     INTEGER PRIMARY KEY,
    ts      INTEGER NOT NULL,
    host    TEXT NOT NULL,
    process TEXT NOT NULL,
    score   REAL NOT NULL,
    anomaly INTEGER NOT NULL,
    doc     TEXT NOT NULL
);
CREATE INDEX connections_ts ON connections(ts);
CREATE INDEX connections_host_ts ON connections(host, ts);
CREATE INDEX connections_anomaly_ts ON connections(ts) WHERE anomaly = 1;
"#,
    // Responder deliveries: the outbox of incident notifications, with dead letters.
    r#"
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    route       TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    last_error  TEXT,
    payload     TEXT NOT NULL,
    UNIQUE (route, incident_id, kind)
);
CREATE INDEX deliveries_due ON deliveries(next_at) WHERE state = 'pending';
CREATE INDEX deliveries_state ON deliveries(state, updated_at);
"#,
    // Triage reports and the asset inventory triage consults.
    r#"
CREATE TABLE reports (
    id         TEXT PRIMARY KEY,
    ts         INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    category   TEXT NOT NULL,
    verdict    TEXT NOT NULL,
    confidence REAL NOT NULL,
    incident   TEXT,
    title      TEXT NOT NULL,
    markdown   TEXT NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX reports_ts ON reports(ts, id);
CREATE INDEX reports_incident ON reports(incident, ts) WHERE incident IS NOT NULL;

CREATE TABLE assets (
    id   TEXT PRIMARY KEY,
    ip   TEXT,
    host TEXT,
    doc  TEXT NOT NULL
);
CREATE INDEX assets_ip ON assets(ip) WHERE ip IS NOT NULL;
CREATE INDEX assets_host ON assets(host) WHERE host IS NOT NULL;
"#,
];

const DELIVERY_COLUMNS: &str = "id, route, incident_id, kind, state, attempts, next_at, \
     created_at, updated_at, last_error, payload";

/// A `deliveries` row (in [`DELIVERY_COLUMNS`] order), decoded.
fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Delivery, StoreError>> {
    let state: String = r.get(4)?;
    let payload: String = r.get(10)?;
    let decoded = (|| {
        Ok(Delivery {
            id: r.get(0)?,
            route: r.get(1)?,
            incident_id: r.get(2)?,
            kind: r.get(3)?,
            state: DeliveryState::parse(&state)
                .ok_or_else(|| StoreError::Backend(format!("unknown delivery state {state}")))?,
            attempts: r.get(5)?,
            next_at_ms: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
            last_error: r.get(9)?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Backend(format!("a delivery's payload: {e}")))?,
        })
    })();
    Ok(decoded)
}

/// Rows deleted per transaction by retention, so the writer is never held for long.
const DELETE_CHUNK: i64 = 5000;

/// The embedded SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteStore {
    /// Counts newly stored events against their agents (first/last seen, events, host),
    /// as [`Store::insert_events`] does: for a store that keeps events elsewhere
    /// (OpenSearch) and agents here.
    pub async fn record_agents(&self, events: &[&Event]) -> Result<(), StoreError> {
        let mut agents: HashMap<String, (Option<String>, i64)> = HashMap::new();
        for e in events {
            if let Some(agent) = e.agent_id() {
                let entry = agents.entry(agent.to_string()).or_insert((None, 0));
                entry.1 += 1;
                if let Some(h) = e.host_name() {
                    entry.0 = Some(h.to_string());
                }
            }
        }
        if agents.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            upsert_agents(
                &tx,
                agents
                    .iter()
                    .map(|(id, (host, n))| (id.as_str(), host.as_deref(), *n)),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Opens (creating if needed) the store in `dir`, and migrates its schema.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        create_private_dir(dir)?;
        let path = dir.join(DB_FILE);
        let mut writer = Connection::open(&path)?;
        writer.busy_timeout(Duration::from_secs(10))?;
        let mode: String = writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "could not switch {} to WAL mode (got {mode})",
                path.display()
            )));
        }
        let sync = match options.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        writer.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=ON;"
        ))?;
        migrate(&mut writer)?;

        let readers = (0..options.readers.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(10))?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                path,
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl SqliteStore {
    /// One JSON document by id (`sql` selects `doc` where `id = ?1`), decoded.
    async fn get_doc<T: Send + 'static>(
        &self,
        sql: &'static str,
        id: &str,
        decode: fn(&str) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let doc: Option<String> = conn
                .prepare_cached(sql)?
                .query_row([id], |r| r.get(0))
                .optional()?;
            doc.as_deref().map(decode).transpose()
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    Ok(())
}

fn micros(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros()
}

fn from_micros(us: i64) -> String {
    vigil_core::format_ts(Utc.timestamp_micros(us).single().unwrap_or_default())
}

fn parse_ts_micros(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

fn severity_rank(s: vigil_core::Severity) -> i64 {
    vigil_core::Severity::ALL
        .iter()
        .position(|x| *x == s)
        .unwrap_or(0) as i64
}

/// Cursor: `(sort time, tiebreak key)` of the last row of a page, base64url-encoded.
fn encode_cursor(ts: i64, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{ts}:{key}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let raw = String::from_utf8(raw).map_err(|_| StoreError::BadCursor)?;
    let (ts, key) = raw.split_once(':').ok_or(StoreError::BadCursor)?;
    Ok((
        ts.parse().map_err(|_| StoreError::BadCursor)?,
        key.to_string(),
    ))
}

/// Counts events against their agents: `(agent id, host.name, new events)`.
fn upsert_agents<'a>(
    tx: &rusqlite::Transaction<'_>,
    agents: impl IntoIterator<Item = (&'a str, Option<&'a str>, i64)>,
) -> rusqlite::Result<()> {
    let mut up = tx.prepare_cached(
        "INSERT INTO agents(id, host, first_seen, last_seen, events)
         VALUES (?1, ?2, ?3, ?3, ?4)
         ON CONFLICT(id) DO UPDATE SET
            host = coalesce(excluded.host, host),
            last_seen = max(last_seen, excluded.last_seen),
            events = events + excluded.events",
    )?;
    let now = now_micros();
    for (id, host, n) in agents {
        up.execute(params![id, host, now, n])?;
    }
    Ok(())
}

/// Creates the data directory readable by its owner only (0700 on Unix: it holds events,
/// key hashes and models). An existing directory keeps its mode; one that other users can
/// read is reported with the command that fixes it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o007 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory can be read by other users; run chmod 700 on it"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn page_limit(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// Appends the shared time-range, cursor, order and limit clauses of a paged query.
struct Paged<'a> {
    sql: String,
    args: Vec<SqlValue>,
    ts_col: &'a str,
    key_col: &'a str,
    key_is_int: bool,
}

impl Paged<'_> {
    fn filter(&mut self, clause: &str, value: SqlValue) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.args.push(value);
    }

    fn finish(
        mut self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(String, Vec<SqlValue>), StoreError> {
        if let Some(s) = since {
            let clause = format!("{} >= ?", self.ts_col);
            self.filter(&clause, SqlValue::Integer(micros(s)));
        }
        if let Some(u) = until {
            let clause = format!("{} < ?", self.ts_col);
            self.filter(&clause, SqlValue::Integer(micros(u)));
        }
        if let Some(c) = cursor {
            let (ts, key) = decode_cursor(c)?;
            let key = if self.key_is_int {
                SqlValue::Integer(key.parse().map_err(|_| StoreError::BadCursor)?)
            } else {
                SqlValue::Text(key)
            };
            self.sql.push_str(&format!(
                " AND ({}, {}) < (?, ?)",
                self.ts_col, self.key_col
            ));
            self.args.push(SqlValue::Integer(ts));
            self.args.push(key);
        }
        self.sql.push_str(&format!(
            " ORDER BY {} DESC, {} DESC LIMIT ?",
            self.ts_col, self.key_col
        ));
        self.args.push(SqlValue::Integer(limit as i64 + 1));
        Ok((self.sql, self.args))
    }
}

/// Runs a paged query whose rows are `(ts, key, doc)` and decodes each doc.
fn run_paged<T>(
    conn: &Connection,
    sql: &str,
    args: Vec<SqlValue>,
    limit: usize,
    decode: impl Fn(&str) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if items.len() == limit {
            more = true;
            break;
        }
        let ts: i64 = row.get(0)?;
        let key: SqlValue = row.get(1)?;
        let doc: String = row.get(2)?;
        items.push(decode(&doc)?);
        last_key = Some((
            ts,
            match key {
                SqlValue::Integer(i) => i.to_string(),
                SqlValue::Text(s) => s,
                _ => return Err(StoreError::Corrupt("page key".into())),
            },
        ));
    }
    let next = match (more, last_key) {
        (true, Some((ts, key))) => Some(encode_cursor(ts, &key)),
        _ => None,
    };
    Ok(Page { items, next })
}

fn decode_event(doc: &str) -> Result<Event, StoreError> {
    serde_json::from_str(doc)
        .map(Event::from_stored)
        .map_err(|e| StoreError::Corrupt(format!("event: {e}")))
}

fn decode_json<T: serde::de::DeserializeOwned>(what: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode_json<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

struct EventRow {
    id: String,
    ts: i64,
    host: Option<String>,
    agent: Option<String>,
    categories: Vec<String>,
    doc: String,
}

fn now_micros() -> i64 {
    micros(Utc::now())
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_events(&self, events: &[Event]) -> Result<Vec<bool>, StoreError> {
        let rows = events
            .iter()
            .map(|e| {
                Ok(EventRow {
                    id: e.id().to_string(),
                    ts: micros(e.timestamp()),
                    host: e.host_name().map(str::to_string),
                    agent: e.agent_id().map(str::to_string),
                    categories: e.categories().map(str::to_string).collect(),
                    doc: encode_json("event", e)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let mut inserted = Vec::with_capacity(rows.len());
            let mut agents: HashMap<&str, (Option<&str>, i64)> = HashMap::new();
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO events(id, ts, host, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(id) DO NOTHING",
                )?;
                let mut cat = tx.prepare_cached(
                    "INSERT OR IGNORE INTO event_categories(category, ts, seq) VALUES (?1, ?2, ?3)",
                )?;
                for row in &rows {
                    let new = ins.execute(params![row.id, row.ts, row.host, row.doc])? == 1;
                    inserted.push(new);
                    if !new {
                        continue;
                    }
                    let seq = tx.last_insert_rowid();
                    for c in &row.categories {
                        cat.execute(params![c, row.ts, seq])?;
                    }
                    if let Some(agent) = &row.agent {
                        let entry = agents.entry(agent).or_insert((None, 0));
                        entry.1 += 1;
                        if row.host.is_some() {
                            entry.0 = row.host.as_deref();
                        }
                    }
                }
                upsert_agents(&tx, agents.into_iter().map(|(id, (host, n))| (id, host, n)))?;
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn events_by_hash(&self, sha256: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let sha = sha256.to_ascii_lowercase();
        let limit = limit.min(10_000) as i64;
        self.read(move |conn| {
            // One indexed lookup per field (the partial indexes need the IS NOT NULL).
            let mut stmt = conn.prepare_cached(
                "SELECT doc FROM events WHERE seq IN (
                   SELECT seq FROM events WHERE json_extract(doc, '$.process.hash.sha256') = ?1
                     AND json_extract(doc, '$.process.hash.sha256') IS NOT NULL
                   UNION SELECT seq FROM events WHERE json_extract(doc, '$.process.parent.hash.sha256') = ?1
                     AND json_extract(doc, '$.process.parent.hash.sha256') IS NOT NULL
                   UNION SELECT seq FROM events WHERE json_extract(doc, '$.file.hash.sha256') = ?1
                     AND json_extract(doc, '$.file.hash.sha256') IS NOT NULL)
                 ORDER BY ts DESC, seq DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(rusqlite::params![sha, limit], |r| r.get::<_, String>(0))?;
            rows.map(|doc| decode_event(&doc?)).collect()
        })
        .await
    }

    async fn get_event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        self.get_doc("SELECT doc FROM events WHERE id = ?1", id, decode_event)
            .await
    }

    async fn query_events(&self, q: &EventQuery) -> Result<Page<Event>, StoreError> {
        let q = q.clone();
        let limit = page_limit(q.limit);
        self.read(move |conn| {
            let mut p = match &q.category {
                Some(cat) => Paged {
                    sql: "SELECT c.ts, c.seq, e.doc FROM event_categories c
                          JOIN events e ON e.seq = c.seq WHERE c.category = ?"
                        .into(),
                    args: vec![SqlValue::Text(cat.clone())],
                    ts_col: "c.ts",
                    key_col: "c.seq",
                    key_is_int: true,
                },
                None => Paged {
                    sql: "SELECT e.ts, e.seq, e.doc FROM events e WHERE 1 = 1".into(),
                    args: vec![],
                    ts_col: "e.ts",
                    key_col: "e.seq",
                    key_is_int: true,
                },
            };
            if let Some(host) = &q.host {
                p.filter("e.host = ?", SqlValue::Text(host.clone()));
            }
            if let Some(ip) = &q.ip {
                p.sql.push_str(
                    " AND (json_extract(e.doc, '$.source.ip') = ? \
                     OR json_extract(e.doc, '$.destination.ip') = ? \
                     OR json_extract(e.doc, '$.host.ip') = ?)",
                );
                p.args
                    .extend(std::iter::repeat_n(SqlValue::Text(ip.clone()), 3));
            }
            if let Some(text) = &q.text {
                p.filter("instr(e.doc, ?) > 0", SqlValue::Text(text.clone()));
            }
            let (sql, args) = p.finish(q.since, q.until, q.cursor.as_deref(), limit)?;
            run_paged(conn, &sql, args, limit, decode_event)
        })
        .await
    }

    async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = micros(cutoff);
        let mut total = 0u64;
        loop {
            let n = self
                .write(move |conn| {
                    let tx = conn.transaction()?;
                    let n = tx.execute(
                        "DELETE FROM events WHERE seq IN
                           (SELECT seq FROM events WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                        params![cutoff, DELETE_CHUNK],
                    )?;
                    tx.execute(
                        "DELETE FROM event_categories WHERE (category, ts, seq) IN
                           (SELECT category, ts, seq FROM event_categories WHERE ts < ?1 LIMIT ?2)",
                        params![cutoff, DELETE_CHUNK * 4],
                    )?;
                    tx.commit()?;
                    Ok(n as u64)
                })
                .await?;
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn activity(&self, q: &ActivityQuery) -> Result<Activity, StoreError> {
        let mut activity = q.empty_activity()?;
        let first = activity.buckets[0].start.timestamp_micros();
        let width = q.bucket_secs * 1_000_000;
        let (since, until) = (micros(q.since), micros(q.until));
        self.read(move |conn| {
            // Bucket numbers from the first bucket; `ts >= since >= first`, so the division
            // floors. Both scans are ranges of the `ts` indexes; no document is read.
            let mut stmt = conn.prepare_cached(
                "SELECT (ts - ?1) / ?2 AS b, count(*) FROM events
                 WHERE ts >= ?3 AND ts < ?4 GROUP BY b",
            )?;
            let mut rows = stmt.query(params![first, width, since, until])?;
            while let Some(r) = rows.next()? {
                let (b, n): (i64, i64) = (r.get(0)?, r.get(1)?);
                if let Some(bucket) = activity.buckets.get_mut(b as usize) {
                    bucket.events += n as u64;
                }
            }
            let mut stmt = conn.prepare_cached(
                "SELECT (ts - ?1) / ?2 AS b, severity, analyzer, count(*) FROM findings
                 WHERE ts >= ?3 AND ts < ?4 GROUP BY b, severity, analyzer",
            )?;
            let mut rows = stmt.query(params![first, width, since, until])?;
            while let Some(r) = rows.next()? {
                let (b, sev, analyzer, n): (i64, i64, String, i64) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let severity = usize::try_from(sev)
                    .ok()
                    .and_then(|i| vigil_core::Severity::ALL.get(i))
                    .ok_or_else(|| StoreError::Corrupt(format!("finding severity {sev}")))?;
                let Some(bucket) = activity.buckets.get_mut(b as usize) else {
                    continue;
                };
                let n = n as u64;
                bucket.findings += n;
                *bucket
                    .by_severity
                    .entry(severity.as_str().to_string())
                    .or_default() += n;
                *bucket.by_analyzer.entry(analyzer).or_default() += n;
            }
            Ok(activity)
        })
        .await
    }

    async fn insert_findings(&self, findings: &[Finding]) -> Result<(), StoreError> {
        let rows = findings
            .iter()
            .map(|f| {
                Ok((
                    f.id.clone(),
                    parse_ts_micros(&f.timestamp),
                    f.analyzer.clone(),
                    severity_rank(f.severity),
                    f.host_name.clone(),
                    encode_json("finding", f)?,
                    f.event_ids.clone(),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO findings(id, ts, analyzer, severity, host, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING",
                )?;
                let mut link = tx.prepare_cached(
                    "INSERT OR IGNORE INTO finding_events(event_id, finding_seq) VALUES (?1, ?2)",
                )?;
                for (id, ts, analyzer, sev, host, doc, event_ids) in &rows {
                    if ins.execute(params![id, ts, analyzer, sev, host, doc])? == 1 {
                        let seq = tx.last_insert_rowid();
                        for e in event_ids {
                            link.execute(params![e, seq])?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_finding(&self, id: &str) -> Result<Option<Finding>, StoreError> {
        self.get_doc("SELECT doc FROM findings WHERE id = ?1", id, |d| {
            decode_json("finding", d)
        })
        .await
    }

    async fn query_findings(&self, q: &FindingQuery) -> Result<Page<Finding>, StoreError> {
        let q = q.clone();
        let limit = page_limit(q.limit);
        self.read(move |conn| {
            let mut p = match &q.event_id {
                Some(event_id) => Paged {
                    sql: "SELECT f.ts, f.seq, f.doc FROM finding_events l
                          JOIN findings f ON f.seq = l.finding_seq WHERE l.event_id = ?"
                        .into(),
                    args: vec![SqlValue::Text(event_id.clone())],
                    ts_col: "f.ts",
                    key_col: "f.seq",
                    key_is_int: true,
                },
                None => Paged {
                    sql: "SELECT f.ts, f.seq, f.doc FROM findings f WHERE 1 = 1".into(),
                    args: vec![],
                    ts_col: "f.ts",
                    key_col: "f.seq",
                    key_is_int: true,
                },
            };
            if let Some(host) = &q.host {
                p.filter("f.host = ?", SqlValue::Text(host.clone()));
            }
            if let Some(a) = &q.analyzer {
                p.filter("f.analyzer = ?", SqlValue::Text(a.clone()));
            }
            if let Some(text) = &q.text {
                p.filter("instr(f.doc, ?) > 0", SqlValue::Text(text.clone()));
            }
            if let Some(s) = q.min_severity {
                p.filter("f.severity >= ?", SqlValue::Integer(severity_rank(s)));
            }
            let (sql, args) = p.finish(q.since, q.until, q.cursor.as_deref(), limit)?;
            run_paged(conn, &sql, args, limit, |d| decode_json("finding", d))
        })
        .await
    }

    async fn upsert_incident(&self, incident: &Incident) -> Result<(), StoreError> {
        let row = (
            incident.id.clone(),
            parse_ts_micros(&incident.updated_at),
            incident.status.as_str(),
            severity_rank(incident.severity),
            incident.host_name.clone(),
            encode_json("incident", incident)?,
        );
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO incidents(id, updated, status, severity, host, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET updated = excluded.updated,
                    status = excluded.status, severity = excluded.severity,
                    host = excluded.host, doc = excluded.doc",
            )?
            .execute(params![row.0, row.1, row.2, row.3, row.4, row.5])?;
            Ok(())
        })
        .await
    }

    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.get_doc("SELECT doc FROM incidents WHERE id = ?1", id, |d| {
            decode_json("incident", d)
        })
        .await
    }

    async fn query_incidents(&self, q: &IncidentQuery) -> Result<Page<Incident>, StoreError> {
        let q = q.clone();
        let limit = page_limit(q.limit);
        self.read(move |conn| {
            let mut p = Paged {
                sql: "SELECT i.updated, i.id, i.doc FROM incidents i WHERE 1 = 1".into(),
                args: vec![],
                ts_col: "i.updated",
                key_col: "i.id",
                key_is_int: false,
            };
            if let Some(st) = q.status {
                p.filter("i.status = ?", SqlValue::Text(st.as_str().into()));
            }
            if let Some(host) = &q.host {
                p.filter("i.host = ?", SqlValue::Text(host.clone()));
            }
            if let Some(s) = q.min_severity {
                p.filter("i.severity >= ?", SqlValue::Integer(severity_rank(s)));
            }
            let (sql, args) = p.finish(q.since, q.until, q.cursor.as_deref(), limit)?;
            run_paged(conn, &sql, args, limit, |d| decode_json("incident", d))
        })
        .await
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, host, first_seen, last_seen, events, os, version, tags, registered_at
                 FROM agents ORDER BY last_seen DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    Agent {
                        id: r.get(0)?,
                        host_name: r.get(1)?,
                        first_seen: from_micros(r.get(2)?),
                        last_seen: from_micros(r.get(3)?),
                        events: r.get::<_, i64>(4)? as u64,
                        os: r.get(5)?,
                        version: r.get(6)?,
                        tags: Vec::new(),
                        registered_at: r.get(8)?,
                    },
                    r.get::<_, String>(7)?,
                ))
            })?;
            rows.map(|row| {
                let (mut agent, tags) = row?;
                agent.tags = decode_json("agent tags", &tags)?;
                Ok(agent)
            })
            .collect()
        })
        .await
    }

    async fn register_agent(&self, a: &AgentRegistration) -> Result<(), StoreError> {
        let a = a.clone();
        let tags = encode_json("agent tags", &a.tags)?;
        self.write(move |conn| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO agents(id, host, first_seen, last_seen, events, os, version, tags, registered_at)
                 VALUES (?1, ?2, ?3, ?3, 0, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET host = excluded.host, last_seen = excluded.last_seen,
                    os = excluded.os, version = excluded.version, tags = excluded.tags,
                    registered_at = coalesce(registered_at, excluded.registered_at)",
                params![a.id, a.hostname, now, a.os, a.version, tags, vigil_core::now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    async fn heartbeat_agent(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE agents SET last_seen = max(last_seen, ?2) WHERE id = ?1",
                params![id, now_micros()],
            )? == 1)
        })
        .await
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |conn| {
            let res = conn.execute(
                "INSERT INTO api_keys(id, name, role, key_hash, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key.id,
                    key.name,
                    key.role.as_str(),
                    key.key_hash,
                    key.created_at,
                    key.revoked_at
                ],
            );
            match res {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Conflict(format!("api key {}", key.id)))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = key_hash.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys
                 WHERE key_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([hash], api_key_row)
            .optional()?
            .transpose()
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys
                 ORDER BY created_at",
            )?;
            let rows = stmt.query_map([], api_key_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, vigil_core::now_rfc3339()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn put_script(&self, s: &ScriptRecord) -> Result<(), StoreError> {
        let s = s.clone();
        let manifest = encode_json("script manifest", &s.manifest)?;
        self.write(move |conn| {
            let res = conn.execute(
                "INSERT INTO scripts(name, version, source, manifest, enabled, disabled_reason, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.name, s.version, s.source, manifest, s.enabled, s.disabled_reason, s.created_at],
            );
            match res {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Conflict(format!("script {} version {}", s.name, s.version)))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn list_scripts(&self) -> Result<Vec<ScriptRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, source, manifest, enabled, disabled_reason, created_at
                 FROM scripts ORDER BY name, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            rows.map(|r| {
                let (name, version, source, manifest, enabled, disabled_reason, created_at) = r?;
                Ok(ScriptRecord {
                    name,
                    version,
                    source,
                    manifest: decode_json("script manifest", &manifest)?,
                    enabled,
                    disabled_reason,
                    created_at,
                })
            })
            .collect()
        })
        .await
    }

    async fn set_script_enabled(
        &self,
        name: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (name, reason) = (name.to_string(), reason.map(str::to_string));
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE scripts SET enabled = ?2, disabled_reason = ?3 WHERE name = ?1",
                params![name, enabled, if enabled { None } else { reason }],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_script(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |conn| Ok(conn.execute("DELETE FROM scripts WHERE name = ?1", [name])? > 0))
            .await
    }

    async fn put_list(&self, name: &str, values: &[String]) -> Result<(), StoreError> {
        let (name, items) = (name.to_string(), encode_json("list", &values)?);
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO lists(name, items, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET items = excluded.items,
                    updated_at = excluded.updated_at",
                params![name, items, vigil_core::now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_lists(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name, items FROM lists ORDER BY name")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|r| {
                let (name, items) = r?;
                Ok((name, decode_json("list", &items)?))
            })
            .collect()
        })
        .await
    }

    async fn put_model(&self, m: &ModelRecord) -> Result<(), StoreError> {
        let m = m.clone();
        let metrics = encode_json("model metrics", &m.metrics)?;
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO models(name, version, metrics, data, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.name, m.version, metrics, m.data, m.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_model(&self, name: &str, version: i64) -> Result<Option<ModelRecord>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT name, version, metrics, data, created_at FROM models
                 WHERE name = ?1 AND version = ?2",
            )?
            .query_row(params![name, version], model_row)
            .optional()?
            .transpose()
        })
        .await
    }

    async fn insert_connections(&self, rows: &[ConnectionRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows
            .iter()
            .map(|r| {
                Ok((
                    parse_ts_micros(&r.timestamp),
                    r.host.clone(),
                    r.process.clone(),
                    r.score,
                    r.anomaly,
                    encode_json("connection", r)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO connections(ts, host, process, score, anomaly, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (ts, host, process, score, anomaly, doc) in &rows {
                    ins.execute(params![ts, host, process, score, anomaly, doc])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn query_connections(
        &self,
        q: &ConnectionQuery,
    ) -> Result<Page<ConnectionRow>, StoreError> {
        let q = q.clone();
        let limit = page_limit(q.limit);
        self.read(move |conn| {
            let mut p = Paged {
                sql: "SELECT ts, seq, doc FROM connections WHERE 1 = 1".into(),
                args: vec![],
                ts_col: "ts",
                key_col: "seq",
                key_is_int: true,
            };
            if let Some(h) = &q.host {
                p.filter("host = ?", SqlValue::Text(h.clone()));
            }
            if let Some(pr) = &q.process {
                p.filter("process = ?", SqlValue::Text(pr.clone()));
            }
            if q.anomalies_only {
                p.filter("anomaly = ?", SqlValue::Integer(1));
            }
            if let Some(remote) = &q.remote {
                p.filter(
                    "json_extract(doc, '$.remote') = ?",
                    SqlValue::Text(remote.clone()),
                );
            }
            let (sql, args) = p.finish(q.since, q.until, q.cursor.as_deref(), limit)?;
            run_paged(conn, &sql, args, limit, |d| decode_json("connection", d))
        })
        .await
    }

    async fn connection_series(
        &self,
        q: &ConnectionQuery,
        bucket_secs: u64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let q = q.clone();
        let bucket = (bucket_secs.max(1) as i64).saturating_mul(1_000_000);
        self.read(move |conn| {
            let mut sql = String::from(
                "SELECT (ts / ?1) * ?1 AS b, count(*), sum(anomaly), avg(score), max(score)
                 FROM connections WHERE 1 = 1",
            );
            let mut args = vec![SqlValue::Integer(bucket)];
            let mut filter = |clause: &str, v: SqlValue| {
                sql.push_str(" AND ");
                sql.push_str(clause);
                args.push(v);
            };
            if let Some(h) = &q.host {
                filter("host = ?", SqlValue::Text(h.clone()));
            }
            if let Some(pr) = &q.process {
                filter("process = ?", SqlValue::Text(pr.clone()));
            }
            if q.anomalies_only {
                filter("anomaly = ?", SqlValue::Integer(1));
            }
            if let Some(s) = q.since {
                filter("ts >= ?", SqlValue::Integer(micros(s)));
            }
            if let Some(u) = q.until {
                filter("ts < ?", SqlValue::Integer(micros(u)));
            }
            sql.push_str(" GROUP BY b ORDER BY b LIMIT 10000");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                Ok(SeriesPoint {
                    start: from_micros(r.get(0)?),
                    connections: r.get::<_, i64>(1)? as u64,
                    anomalies: r.get::<_, i64>(2)? as u64,
                    mean_score: r.get(3)?,
                    max_score: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_connections_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = micros(cutoff);
        let mut total = 0u64;
        loop {
            let n = self
                .write(move |conn| {
                    Ok(conn.execute(
                        "DELETE FROM connections WHERE seq IN
                           (SELECT seq FROM connections WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                        params![cutoff, DELETE_CHUNK],
                    )? as u64)
                })
                .await?;
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn latest_model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT name, version, metrics, data, created_at FROM models
                 WHERE name = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row([name], model_row)
            .optional()?
            .transpose()
        })
        .await
    }

    async fn list_models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, metrics, x'', created_at FROM models
                 ORDER BY created_at DESC, name, version DESC",
            )?;
            let rows = stmt.query_map([], model_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn cache_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (ns, key) = (namespace.to_string(), key.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT value FROM cache WHERE namespace = ?1 AND key = ?2
                     AND (expires IS NULL OR expires > ?3)",
                )?
                .query_row(params![ns, key, now_micros()], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn cache_put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let (ns, key, value) = (namespace.to_string(), key.to_string(), value.to_vec());
        let expires = ttl.map(|t| now_micros().saturating_add(t.as_micros() as i64));
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO cache(namespace, key, value, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value,
                    expires = excluded.expires",
            )?
            .execute(params![ns, key, value, expires])?;
            Ok(())
        })
        .await
    }

    async fn cache_list(
        &self,
        namespace: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let ns = namespace.to_string();
        let limit = limit.min(1_000_000) as i64;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key, value FROM cache WHERE namespace = ?1
                 AND (expires IS NULL OR expires > ?2) ORDER BY key LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![ns, now_micros(), limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn cache_purge_expired(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let n = conn.execute(
                "DELETE FROM cache WHERE expires IS NOT NULL AND expires <= ?1",
                [now_micros()],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn put_report(&self, report: &ReportRecord) -> Result<(), StoreError> {
        let r = report.clone();
        let doc = encode_json("report", &r.doc)?;
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO reports(id, ts, created_at, category, verdict, confidence, \
                 incident, title, markdown, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, created_at = excluded.created_at,
                    category = excluded.category, verdict = excluded.verdict,
                    confidence = excluded.confidence, incident = excluded.incident,
                    title = excluded.title, markdown = excluded.markdown, doc = excluded.doc",
            )?
            .execute(params![
                r.id,
                parse_ts_micros(&r.created_at),
                r.created_at,
                r.category,
                r.verdict,
                r.confidence,
                r.incident_id,
                r.title,
                r.markdown,
                doc,
            ])?;
            Ok(())
        })
        .await
    }

    async fn get_report(&self, id: &str) -> Result<Option<ReportRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, created_at, category, verdict, confidence, incident, title, \
                 markdown, doc FROM reports WHERE id = ?1",
            )?;
            let mut rows = stmt.query([id])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let doc: String = r.get(8)?;
            Ok(Some(ReportRecord {
                id: r.get(0)?,
                created_at: r.get(1)?,
                category: r.get(2)?,
                verdict: r.get(3)?,
                confidence: r.get(4)?,
                incident_id: r.get(5)?,
                title: r.get(6)?,
                markdown: r.get(7)?,
                doc: decode_json("report", &doc)?,
            }))
        })
        .await
    }

    async fn query_reports(&self, q: &ReportQuery) -> Result<Page<ReportRecord>, StoreError> {
        let q = q.clone();
        let limit = page_limit(q.limit);
        self.read(move |conn| {
            let mut p = Paged {
                sql: "SELECT r.ts, r.id, json_object('id', r.id, 'created_at', r.created_at, \
                      'category', r.category, 'verdict', r.verdict, 'confidence', r.confidence, \
                      'incident_id', r.incident, 'title', r.title, 'markdown', '', \
                      'doc', json('null')) FROM reports r WHERE 1 = 1"
                    .into(),
                args: vec![],
                ts_col: "r.ts",
                key_col: "r.id",
                key_is_int: false,
            };
            if let Some(c) = &q.category {
                p.filter("r.category = ?", SqlValue::Text(c.clone()));
            }
            if let Some(v) = &q.verdict {
                p.filter("r.verdict = ?", SqlValue::Text(v.clone()));
            }
            if let Some(i) = &q.incident_id {
                p.filter("r.incident = ?", SqlValue::Text(i.clone()));
            }
            let (sql, args) = p.finish(q.since, q.until, q.cursor.as_deref(), limit)?;
            run_paged(conn, &sql, args, limit, |d| decode_json("report", d))
        })
        .await
    }

    async fn put_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        let row = (
            asset.id.clone(),
            asset.ip.clone(),
            asset.host.clone(),
            encode_json("asset", asset)?,
        );
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO assets(id, ip, host, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET ip = excluded.ip, host = excluded.host,
                    doc = excluded.doc",
            )?
            .execute(params![row.0, row.1, row.2, row.3])?;
            Ok(())
        })
        .await
    }

    async fn get_asset(&self, id: &str) -> Result<Option<Asset>, StoreError> {
        self.get_doc("SELECT doc FROM assets WHERE id = ?1", id, |d| {
            decode_json("asset", d)
        })
        .await
    }

    async fn find_assets(
        &self,
        ip: Option<&str>,
        host: Option<&str>,
    ) -> Result<Vec<Asset>, StoreError> {
        let (ip, host) = (ip.map(str::to_string), host.map(str::to_string));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT doc FROM assets WHERE (?1 IS NOT NULL AND ip = ?1) \
                 OR (?2 IS NOT NULL AND host = ?2 COLLATE NOCASE) ORDER BY id LIMIT 100",
            )?;
            let rows = stmt.query_map(params![ip, host], |r| r.get::<_, String>(0))?;
            rows.map(|d| decode_json("asset", &d?)).collect()
        })
        .await
    }

    async fn list_assets(&self, limit: usize) -> Result<Vec<Asset>, StoreError> {
        let limit = limit.min(100_000) as i64;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT doc FROM assets ORDER BY id LIMIT ?1")?;
            let rows = stmt.query_map([limit], |r| r.get::<_, String>(0))?;
            rows.map(|d| decode_json("asset", &d?)).collect()
        })
        .await
    }

    async fn delete_asset(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |conn| Ok(conn.execute("DELETE FROM assets WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> Result<usize, StoreError> {
        let rows: Vec<Delivery> = deliveries.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let mut new = 0;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (id, route, incident_id, kind, state, \
                     attempts, next_at, created_at, updated_at, last_error, payload) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for d in &rows {
                    new += stmt.execute(params![
                        d.id,
                        d.route,
                        d.incident_id,
                        d.kind,
                        d.state.as_str(),
                        d.attempts,
                        d.next_at_ms,
                        d.created_at,
                        d.updated_at,
                        d.last_error,
                        d.payload.to_string(),
                    ])?;
                }
            }
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' \
                 AND next_at <= ?1 ORDER BY next_at LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now_ms, limit as i64], delivery_row)?;
            rows.collect::<Result<Vec<_>, _>>()?.into_iter().collect()
        })
        .await
    }

    async fn update_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        let d = d.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE deliveries SET state = ?2, attempts = ?3, next_at = ?4, \
                 updated_at = ?5, last_error = ?6 WHERE id = ?1",
            )?
            .execute(params![
                d.id,
                d.state.as_str(),
                d.attempts,
                d.next_at_ms,
                d.updated_at,
                d.last_error
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries \
                 WHERE ?1 IS NULL OR state = ?1 ORDER BY updated_at DESC, id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(
                params![state.map(DeliveryState::as_str), limit as i64],
                delivery_row,
            )?;
            rows.collect::<Result<Vec<_>, _>>()?.into_iter().collect()
        })
        .await
    }
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ApiKey, StoreError>> {
    let role: String = r.get(2)?;
    let Ok(role) = role.parse::<Role>() else {
        return Ok(Err(StoreError::Corrupt(format!("api key role `{role}`"))));
    };
    Ok(Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        role,
        key_hash: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    }))
}

fn model_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ModelRecord, StoreError>> {
    let (name, version, metrics, data, created_at): (String, i64, String, Vec<u8>, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok(
        decode_json("model metrics", &metrics).map(|metrics| ModelRecord {
            name,
            version,
            metrics,
            data,
            created_at,
        }),
    )
}
