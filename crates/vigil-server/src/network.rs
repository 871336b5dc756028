//! The network detector as a service: scoring records from REST, the WebSocket and the
//! pipeline; the time series and findings written behind a bounded queue; the model
//! registry (versions in the store, the active one, promotion and rollback); training from
//! stored history, automatic retraining on schedule or drift.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use vigil_core::metric_names as m;
use vigil_core::{Event, Finding};
use vigil_net::detector::{self, NetConfig, NetDetector, NetResult};
use vigil_net::model::NetModel;
use vigil_net::record::{ConnectionRecord, Direction};
use vigil_pipeline::{Analyzer, FindingsSink, Interest, Pipeline};
use vigil_store::{ConnectionQuery, ConnectionRow, ModelRecord, Store};

/// The model's name in the store's registry.
pub const MODEL_NAME: &str = "network";
const ACTIVE_NS: &str = "model_active";
/// Rows waiting for the writer: single requests are refused with 429 beyond it; batches
/// wait for room (up to `BATCH_WAIT`).
const QUEUE: usize = 20_000;
/// How long a batch may wait, in all, for room in the writer's queue.
const BATCH_WAIT: Duration = Duration::from_secs(5);
/// One finding per (host, process, remote, port) in this window: a storm of the same odd
/// connection is one finding (every connection stays flagged in the time series).
const FINDING_DEDUP: Duration = Duration::from_secs(600);
/// Most (host, process, remote, port) keys remembered for that.
const FINDING_DEDUP_MAX: usize = 100_000;
/// Share of the newest records held out to compare a candidate with the active model.
const HOLDOUT_SHARE: f64 = 0.1;
/// Least time between two automatic trainings.
const MIN_RETRAIN_GAP: Duration = Duration::from_secs(3600);
/// How far a candidate's flagged share may stray past the active one's and still win.
const PROMOTION_TOLERANCE: f64 = 0.005;

/// Why a network request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Bad input or a request that cannot be met.
    #[error("{0}")]
    BadRequest(String),
    /// No such model version.
    #[error("{0}")]
    NotFound(String),
    /// Too much at once; retry.
    #[error("{0}")]
    Overloaded(String),
    /// Something failed inside.
    #[error("{0}")]
    Internal(String),
}

struct Item {
    row: ConnectionRow,
    finding: Option<Finding>,
}

/// The service shared by the routes, the pipeline analyzer and the retrainer.
pub struct NetService {
    detector: Arc<NetDetector>,
    store: Arc<dyn Store>,
    tx: flume::Sender<Item>,
    training: AtomicBool,
    seen: AtomicU64,
    dropped: AtomicU64,
    /// When each (host, process, remote, port) last made a finding.
    recent: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    suppressed: AtomicU64,
}

/// What a training run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOutcome {
    /// The registry version stored.
    pub version: i64,
    /// The model's own version string.
    pub model_version: String,
    /// Whether it became the active model.
    pub promoted: bool,
    /// Why (or why not).
    pub reason: String,
    /// Records used (fit, calibration and hold-out).
    pub records: usize,
    /// Share of the hold-out the candidate flags.
    pub candidate_flagged: f64,
    /// Share of the hold-out the active model flags, when there was one.
    pub active_flagged: Option<f64>,
}

/// The (host, process, remote, port) key of finding deduplication.
fn dedup_key(r: &ConnectionRecord) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        r.host,
        r.process_name,
        r.remote_ip,
        r.remote_port.unwrap_or(0)
    )
}

fn to_row(r: &ConnectionRecord, res: &NetResult) -> ConnectionRow {
    ConnectionRow {
        timestamp: vigil_core::format_ts(r.timestamp),
        host: r.host.clone(),
        process: r.process_name.clone(),
        pid: r.process_id,
        remote: r.remote_ip.to_string(),
        remote_port: r.remote_port,
        local_port: r.local_port,
        protocol: r.protocol.as_str().to_string(),
        direction: match r.direction {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Unknown => "unknown",
        }
        .into(),
        state: r.state.clone(),
        bytes_sent: r.bytes_sent,
        bytes_received: r.bytes_received,
        duration_secs: r.duration_secs,
        score: res.anomaly_score,
        anomaly: res.is_anomaly,
        model: res.model_version.clone().unwrap_or_default(),
        // Reasons are kept for anomalies only: they are what an analyst reads back, and
        // every row is written.
        reasons: if res.is_anomaly {
            res.explanation.clone()
        } else {
            Vec::new()
        },
    }
}

/// A stored row back as a record (for training); `None` when it cannot be read.
fn from_row(row: &ConnectionRow) -> Option<ConnectionRecord> {
    let v = json!({
        "timestamp": row.timestamp, "host": row.host, "process_name": row.process,
        "process_id": row.pid, "remote_ip": row.remote, "remote_port": row.remote_port,
        "local_port": row.local_port, "protocol": row.protocol, "direction": row.direction,
        "state": row.state, "bytes_sent": row.bytes_sent, "bytes_received": row.bytes_received,
        "duration": row.duration_secs,
    });
    // Rows from processes without a name (the collector could not see them).
    let mut v = v;
    if row.process.is_empty() {
        v["process_name"] = json!("(unknown)");
    }
    ConnectionRecord::from_seed_json(&v, Utc::now(), None).ok()
}

/// The finding for an anomalous connection.
fn finding(r: &ConnectionRecord, res: &NetResult) -> Finding {
    let over = if res.threshold > 0.0 {
        (res.raw_score / res.threshold - 1.0).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let top = res
        .reasons
        .first()
        .map(|r| r.feature.as_str())
        .unwrap_or("");
    let technique = match top {
        "periodicity" => Some("T1071"),
        "log_distinct_remotes_in_window" | "failed_share_in_window" => Some("T1046"),
        "log_bytes_sent" | "log_bytes_ratio" => Some("T1048"),
        _ => None,
    };
    let process = if r.process_name.is_empty() {
        "an unknown process"
    } else {
        r.process_name.as_str()
    };
    let remote = match r.remote_port {
        Some(p) => format!("{}:{p}", r.remote_ip),
        None => r.remote_ip.to_string(),
    };
    let mut f = Finding::new(
        "network",
        60.0 + 40.0 * over,
        format!(
            "unusual connection: {process} on {} to {remote} ({})",
            r.host,
            res.explanation
                .first()
                .map(String::as_str)
                .unwrap_or("no single reason")
        ),
    )
    .with_evidence(json!({
        "connection": r, "anomaly_score": res.anomaly_score, "raw_score": res.raw_score,
        "threshold": res.threshold, "model_version": res.model_version, "reasons": res.reasons,
    }))
    .with_techniques(technique);
    f.host_name = Some(r.host.clone());
    f
}

impl NetService {
    /// Starts the service and its writer task (stopped when the service is dropped).
    pub fn start(
        config: NetConfig,
        store: Arc<dyn Store>,
        pipeline: &Pipeline,
    ) -> Result<Arc<NetService>, String> {
        let detector = Arc::new(NetDetector::new(config)?);
        let (tx, rx) = flume::bounded::<Item>(QUEUE);
        tokio::spawn(run_writer(store.clone(), pipeline.findings_sink(), rx));
        Ok(Arc::new(NetService {
            detector,
            store,
            tx,
            training: AtomicBool::new(false),
            seen: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            recent: Default::default(),
            suppressed: AtomicU64::new(0),
        }))
    }

    /// The detector.
    pub fn detector(&self) -> &Arc<NetDetector> {
        &self.detector
    }

    /// Most records in one batch.
    pub fn max_batch(&self) -> usize {
        self.detector.config().max_batch
    }

    /// Loads the active model (or the newest) from the store; returns its version.
    pub async fn load_active(&self) -> Result<Option<i64>, NetError> {
        let internal = |e: vigil_store::StoreError| NetError::Internal(e.to_string());
        let active = self
            .store
            .cache_get(ACTIVE_NS, MODEL_NAME)
            .await
            .map_err(internal)?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<i64>().ok());
        let record = match active {
            Some(v) => self
                .store
                .get_model(MODEL_NAME, v)
                .await
                .map_err(internal)?,
            None => self
                .store
                .latest_model(MODEL_NAME)
                .await
                .map_err(internal)?,
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let model = NetModel::from_json(&record.data)
            .map_err(|e| NetError::Internal(format!("network model {}: {e}", record.version)))?;
        self.detector
            .install(model, true)
            .map_err(|e| NetError::Internal(e.to_string()))?;
        Ok(Some(record.version))
    }

    /// Scores one record (addresses made private first), queues its row and finding;
    /// refuses at once when the writer is behind.
    pub fn analyze(&self, record: &ConnectionRecord) -> Result<NetResult, NetError> {
        self.analyze_waiting(record, None)
    }

    /// As [`analyze`](Self::analyze), waiting up to `wait` for room in the writer's queue.
    fn analyze_waiting(
        &self,
        record: &ConnectionRecord,
        wait: Option<Duration>,
    ) -> Result<NetResult, NetError> {
        let r = self.detector.private(record);
        let res = self.detector.analyze(&r);
        self.enqueue(&r, &res, true, wait)?;
        Ok(res)
    }

    /// Whether an anomaly on this connection should make a finding now (not one for the
    /// same host, process, remote and port within [`FINDING_DEDUP`]).
    fn first_in_window(&self, r: &ConnectionRecord) -> bool {
        let key = dedup_key(r);
        self.first_in_window_key(key)
    }

    fn first_in_window_key(&self, key: String) -> bool {
        let now = std::time::Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < FINDING_DEDUP)
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::NETWORK_FINDINGS_SUPPRESSED).increment(1);
            return false;
        }
        if recent.len() >= FINDING_DEDUP_MAX {
            recent.retain(|_, t| now.duration_since(*t) < FINDING_DEDUP);
            if recent.len() >= FINDING_DEDUP_MAX {
                recent.clear();
            }
        }
        recent.insert(key, now);
        true
    }

    fn enqueue(
        &self,
        r: &ConnectionRecord,
        res: &NetResult,
        with_finding: bool,
        wait: Option<Duration>,
    ) -> Result<(), NetError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::NETWORK_SCORED, "status" => res.status).increment(1);
        if res.is_anomaly {
            metrics::counter!(m::NETWORK_ANOMALIES).increment(1);
        }
        let key = (with_finding && res.is_anomaly).then(|| dedup_key(r));
        let make_finding = key.clone().is_some_and(|k| self.first_in_window_key(k));
        let item = Item {
            row: to_row(r, res),
            finding: make_finding.then(|| finding(r, res)),
        };
        let sent = match wait {
            None => self.tx.try_send(item).is_ok(),
            Some(w) => self.tx.send_timeout(item, w).is_ok(),
        };
        if sent {
            return Ok(());
        }
        // Not stored: a retry of this connection must still make its finding.
        if make_finding && let Some(k) = key {
            self.recent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&k);
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::NETWORK_ROWS_DROPPED).increment(1);
        Err(NetError::Overloaded(
            "the network time series writer is behind; retry in a second".into(),
        ))
    }

    /// Scores a batch off the async threads; per record, a result or the reason it was
    /// refused.
    /// Batches wait for room in the writer's queue (backpressure) rather than lose rows.
    pub async fn analyze_batch(
        self: &Arc<Self>,
        records: Vec<Result<ConnectionRecord, String>>,
    ) -> Result<Vec<Result<NetResult, String>>, NetError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            // One deadline for the whole batch: once it passes, the rest is refused at
            // once instead of waiting again record by record.
            let deadline = std::time::Instant::now() + BATCH_WAIT;
            records
                .into_iter()
                .map(|r| match r {
                    Ok(r) => {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        me.analyze_waiting(&r, Some(left))
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e),
                })
                .collect()
        })
        .await
        .map_err(|e| NetError::Internal(e.to_string()))
    }

    /// Status for `GET /api/v1/network/status`.
    pub async fn status(&self) -> Value {
        let model = self.detector.model();
        let (psi, drifted) = self.detector.drift_state();
        json!({
            "enabled": self.detector.config().enabled,
            "model": model.as_ref().map(|m| json!({
                "version": m.version, "trained_at": m.trained_at, "method": m.params.method,
                "training": m.training, "threshold": m.threshold, "target_fpr": m.params.target_fpr,
            })),
            "connections_scored_since_start": self.seen.load(Ordering::Relaxed),
            "rows_dropped_since_start": self.dropped.load(Ordering::Relaxed),
            "findings_suppressed_since_start": self.suppressed.load(Ordering::Relaxed),
            "drift": {"last_psi": psi, "drifted": drifted, "limit": self.detector.config().drift_psi},
            "ip_pseudonyms": self.detector.pseudonyms().enabled(),
            "training_now": self.training.load(Ordering::Relaxed),
        })
    }

    /// Every stored model version, newest first, with the active one marked.
    pub async fn models(&self) -> Result<Value, NetError> {
        let internal = |e: vigil_store::StoreError| NetError::Internal(e.to_string());
        let active = self.detector.model().map(|m| m.version.clone());
        let list: Vec<Value> = self
            .store
            .list_models()
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|m| m.name == MODEL_NAME)
            .map(|m| {
                let is_active =
                    active.is_some() && m.metrics["model_version"].as_str() == active.as_deref();
                json!({"version": m.version, "created_at": m.created_at, "active": is_active,
                       "metrics": m.metrics})
            })
            .collect();
        Ok(json!({ "models": list }))
    }

    /// Makes a stored version the active one (promotion by hand, or rollback).
    pub async fn activate(&self, version: i64) -> Result<Value, NetError> {
        let internal = |e: vigil_store::StoreError| NetError::Internal(e.to_string());
        let record = self
            .store
            .get_model(MODEL_NAME, version)
            .await
            .map_err(internal)?
            .ok_or_else(|| NetError::NotFound(format!("no network model version {version}")))?;
        let model = NetModel::from_json(&record.data)
            .map_err(|e| NetError::Internal(format!("network model {version}: {e}")))?;
        let model_version = model.version.clone();
        self.detector
            .install(model, false)
            .map_err(|e| NetError::BadRequest(e.to_string()))?;
        self.store
            .cache_put(ACTIVE_NS, MODEL_NAME, version.to_string().as_bytes(), None)
            .await
            .map_err(internal)?;
        tracing::info!(version, %model_version, "network model activated");
        Ok(json!({"version": version, "model_version": model_version, "active": true}))
    }

    /// Reads stored connections (oldest first) since `since`, at most the configured
    /// number.
    async fn history(&self, since: DateTime<Utc>) -> Result<Vec<ConnectionRecord>, NetError> {
        let max = self.detector.config().max_training_records;
        let mut q = ConnectionQuery {
            since: Some(since),
            limit: vigil_store::MAX_PAGE,
            ..Default::default()
        };
        let mut out = Vec::new();
        while out.len() < max {
            let page = self
                .store
                .query_connections(&q)
                .await
                .map_err(|e| NetError::Internal(e.to_string()))?;
            out.extend(page.items.iter().filter_map(from_row));
            match page.next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        out.truncate(max);
        out.reverse();
        Ok(out)
    }

    /// Trains a candidate on the stored connections since `since` (default: the
    /// configured window), stores it, and makes it active when it is not worse than the
    /// active model on the newest records (or when `force`).
    pub async fn train(
        self: &Arc<Self>,
        since: Option<DateTime<Utc>>,
        force: bool,
    ) -> Result<TrainOutcome, NetError> {
        if self.training.swap(true, Ordering::AcqRel) {
            return Err(NetError::Overloaded(
                "a network training is already running".into(),
            ));
        }
        // Cleared on drop: a client that hangs up drops this future mid-training.
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let running = Running(&self.training);
        let result = self.train_inner(since, force).await;
        drop(running);
        let outcome = match &result {
            Ok(o) if o.promoted => "promoted",
            Ok(_) => "kept",
            Err(_) => "failed",
        };
        metrics::counter!(m::NETWORK_TRAININGS, "outcome" => outcome).increment(1);
        result
    }

    async fn train_inner(
        self: &Arc<Self>,
        since: Option<DateTime<Utc>>,
        force: bool,
    ) -> Result<TrainOutcome, NetError> {
        let config = self.detector.config().clone();
        let since = since.unwrap_or_else(|| {
            Utc::now() - chrono::Duration::days(config.training_days.max(1) as i64)
        });
        let records = self.history(since).await?;
        if records.len() < 100 {
            return Err(NetError::BadRequest(format!(
                "{} stored connections since {}: at least 100 are needed to train (send more, or widen the window)",
                records.len(),
                vigil_core::format_ts(since)
            )));
        }
        let n_hold = ((records.len() as f64) * HOLDOUT_SHARE).max(10.0) as usize;
        let (fit, hold) = records.split_at(records.len() - n_hold);
        let active = self.detector.model();
        let (fit, hold) = (fit.to_vec(), hold.to_vec());
        let params = config.model.clone();
        let limits = config.baselines.clone();
        let (candidate, candidate_flagged, active_flagged) =
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let mut candidate = detector::train(&fit, &params, &limits, "store")?;
                candidate.training.fit_seconds = started.elapsed().as_secs_f64();
                let base = candidate.baselines.clone().unwrap_or_default();
                let c = detector::flagged_share(&candidate, &base, &hold);
                let a = active
                    .as_ref()
                    .map(|m| detector::flagged_share(m, &base, &hold));
                Ok::<_, vigil_net::model::ModelError>((candidate, c, a))
            })
            .await
            .map_err(|e| NetError::Internal(e.to_string()))?
            .map_err(|e| NetError::BadRequest(e.to_string()))?;
        let target = candidate.params.target_fpr;
        let better = detector::promote(
            active_flagged,
            candidate_flagged,
            target,
            PROMOTION_TOLERANCE,
        );
        let promoted = force || better;
        let reason = match (active_flagged, force, better) {
            (None, _, _) => "no model was active".to_string(),
            (Some(_), true, _) => "forced".to_string(),
            (Some(a), false, true) => format!(
                "on the newest {n_hold} connections it flags {:.2}% against the active model's {:.2}% (target {:.2}%)",
                candidate_flagged * 100.0,
                a * 100.0,
                target * 100.0
            ),
            (Some(a), false, false) => format!(
                "kept the active model: on the newest {n_hold} connections the candidate flags {:.2}%, the active one {:.2}% (target {:.2}%)",
                candidate_flagged * 100.0,
                a * 100.0,
                target * 100.0
            ),
        };
        let internal = |e: vigil_store::StoreError| NetError::Internal(e.to_string());
        let version = self
            .store
            .latest_model(MODEL_NAME)
            .await
            .map_err(internal)?
            .map_or(1, |m| m.version + 1);
        let mut model = candidate;
        // Unique in the registry even for two trainings in one second.
        model.version = format!("{}-v{version}", model.version);
        model.metrics = json!({"holdout_flagged": candidate_flagged, "holdout_rows": n_hold,
                               "active_holdout_flagged": active_flagged});
        let data = serde_json::to_vec(&model).map_err(|e| NetError::Internal(e.to_string()))?;
        self.store
            .put_model(&ModelRecord {
                name: MODEL_NAME.into(),
                version,
                metrics: json!({
                    "model_version": model.version, "method": model.params.method,
                    "training": model.training, "threshold": model.threshold,
                    "holdout_flagged": candidate_flagged, "active_holdout_flagged": active_flagged,
                    "promoted": promoted, "reason": reason,
                }),
                data,
                created_at: vigil_core::now_rfc3339(),
            })
            .await
            .map_err(internal)?;
        let model_version = model.version.clone();
        if promoted {
            self.detector
                .install(model, false)
                .map_err(|e| NetError::Internal(e.to_string()))?;
            self.store
                .cache_put(ACTIVE_NS, MODEL_NAME, version.to_string().as_bytes(), None)
                .await
                .map_err(internal)?;
        }
        tracing::info!(version, %model_version, promoted, %reason, "network model trained");
        Ok(TrainOutcome {
            version,
            model_version,
            promoted,
            reason,
            records: records.len(),
            candidate_flagged,
            active_flagged,
        })
    }

    /// Connections stored so far.
    pub async fn stored_rows(&self) -> u64 {
        self.store
            .connection_series(&ConnectionQuery::default(), 10 * 365 * 86_400)
            .await
            .map(|s| s.iter().map(|p| p.connections).sum())
            .unwrap_or(0)
    }
}

async fn run_writer(store: Arc<dyn Store>, sink: FindingsSink, rx: flume::Receiver<Item>) {
    while let Ok(first) = rx.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < 2000 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (rows, findings): (Vec<ConnectionRow>, Vec<Option<Finding>>) =
            batch.into_iter().map(|i| (i.row, i.finding)).unzip();
        let findings: Vec<Finding> = findings.into_iter().flatten().collect();
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        while let Err(e) = store.insert_connections(&rows).await {
            tries += 1;
            tracing::error!(error = %e, rows = rows.len(), "storing connections failed; retrying");
            if tries >= 5 {
                metrics::counter!(m::NETWORK_ROWS_DROPPED).increment(rows.len() as u64);
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        if let Err(e) = sink.submit(findings).await {
            tracing::warn!(error = %e, "network findings not stored: the pipeline is stopping");
        }
    }
}

/// Retrains on schedule, on drift, and trains the first model once enough connections are
/// stored; applies the time series' retention hourly. Checks every `tick`.
pub fn spawn_retrainer(service: Arc<NetService>, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention: Option<std::time::Instant> = None;
        let mut last_attempt: Option<std::time::Instant> = None;
        loop {
            interval.tick().await;
            if let (Some(psi), _) = service.detector.drift_state() {
                metrics::gauge!(m::NETWORK_DRIFT_PSI).set(psi);
            }
            let config = service.detector.config().clone();
            if config.retention_days > 0
                && last_retention.is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
            {
                last_retention = Some(std::time::Instant::now());
                let cutoff = Utc::now() - chrono::Duration::days(config.retention_days as i64);
                match service.store.delete_connections_before(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "network retention"),
                    Err(e) => tracing::warn!(error = %e, "network retention failed"),
                }
            }
            // At most one automatic attempt an hour: a candidate that was not promoted
            // (or a training that failed) leaves the old model in place, and retrying every
            // tick would retrain forever.
            if last_attempt.is_some_and(|t: std::time::Instant| t.elapsed() < MIN_RETRAIN_GAP) {
                continue;
            }
            let model = service.detector.model();
            let why = match &model {
                None if config.auto_train_after > 0
                    && service.stored_rows().await >= config.auto_train_after as u64 =>
                {
                    Some("first model")
                }
                None => None,
                Some(m) => {
                    let age = DateTime::parse_from_rfc3339(&m.trained_at)
                        .map(|t| Utc::now() - t.with_timezone(&Utc))
                        .unwrap_or_default();
                    if config.retrain_hours > 0
                        && age > chrono::Duration::hours(config.retrain_hours as i64)
                    {
                        Some("schedule")
                    } else if service.detector.take_drift().1 {
                        Some("drift")
                    } else {
                        None
                    }
                }
            };
            if let Some(why) = why {
                last_attempt = Some(std::time::Instant::now());
                match service.train(None, false).await {
                    Ok(o) => {
                        tracing::info!(why, version = o.version, promoted = o.promoted, reason = %o.reason, "network retraining")
                    }
                    Err(e) => tracing::warn!(why, error = %e, "network retraining failed"),
                }
            }
        }
    })
}

/// The pipeline's network analyzer: ECS `network` events scored like REST records; their
/// rows go to the time series, anomalies become findings through the pipeline.
///
/// It holds the service weakly: the registry outlives the service at shutdown, and the
/// service's writer must end for the pipeline's findings writer to drain.
pub struct NetAnalyzer {
    service: std::sync::Weak<NetService>,
    /// The pipeline already replaced the events' addresses by pseudonyms.
    events_private: bool,
}

impl NetAnalyzer {
    /// The analyzer for `service`; it replaces addresses by pseudonyms itself when the
    /// service is configured to.
    pub fn new(service: &Arc<NetService>) -> NetAnalyzer {
        NetAnalyzer {
            service: Arc::downgrade(service),
            events_private: false,
        }
    }

    /// The analyzer for `service` behind a pipeline that already replaced every event's
    /// addresses by the same pseudonyms (`[network] hash_ips`): it must not hash them again.
    pub fn for_private_events(service: &Arc<NetService>) -> NetAnalyzer {
        NetAnalyzer {
            service: Arc::downgrade(service),
            events_private: true,
        }
    }
}

impl Analyzer for NetAnalyzer {
    fn name(&self) -> &str {
        "network"
    }

    fn interest(&self) -> Interest {
        Interest::Categories(vec!["network".into()])
    }

    fn analyze(&self, event: &Event) -> Vec<Finding> {
        let record = match ConnectionRecord::from_event(event) {
            Ok(Some(r)) => r,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::debug!(event = event.id(), error = %e, "network event not scored");
                return Vec::new();
            }
        };
        let Some(service) = self.service.upgrade() else {
            return Vec::new();
        };
        let r = if self.events_private {
            record
        } else {
            service.detector.private(&record)
        };
        let res = service.detector.analyze(&r);
        // The event itself is stored: a full writer queue only loses its time-series row.
        let _ = service.enqueue(&r, &res, false, None);
        if res.is_anomaly && service.first_in_window(&r) {
            vec![finding(&r, &res).about(event)]
        } else {
            Vec::new()
        }
    }
}

/// Parses `7d`, `12h`, `30m` or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<chrono::DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let Some((at, unit)) = s.char_indices().last() else {
        return Err("`since` is empty".into());
    };
    let n: i64 = s[..at]
        .parse()
        .map_err(|_| format!("`{s}` is neither an RFC 3339 time nor a span like 7d, 12h, 30m"))?;
    if n <= 0 || n > 3650 * 24 * 60 {
        return Err(format!("`{s}` is not a positive span of at most ten years"));
    }
    let span = match unit {
        'd' => chrono::Duration::try_days(n),
        'h' => chrono::Duration::try_hours(n),
        'm' => chrono::Duration::try_minutes(n),
        _ => return Err(format!("`{s}`: the unit is d, h or m")),
    }
    .ok_or_else(|| format!("`{s}` is too long a span"))?;
    Ok(Utc::now() - span)
}
