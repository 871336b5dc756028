//! Vigil's pipeline: the path from an accepted event to stored, published findings.
//!
//! ```text
//! ingest(events) ─▶ bounded ingest queue ─▶ committer (group commit) ─▶ ack to the client
//!                                               │
//!                                               ▼ committed, new events
//!                                   bounded analysis queue ─▶ worker threads ─▶ analyzers
//!                                                                       │
//!                                                   findings writer ◀──┘ (bounded)
//!                                                   │ store, then broadcast to subscribers
//! ```
//!
//! Every queue is bounded. When the ingest queue is full, [`Pipeline::ingest`] fails at once
//! with [`IngestError::Overloaded`] instead of growing memory; a full analysis queue slows
//! the committer, which fills the ingest queue, which sheds load at the edge. An event is
//! acknowledged only after the store committed it.
#![warn(missing_docs)]

mod analyzer;
mod maintenance;

pub use analyzer::{Analyzer, AnalyzerRegistry, Interest};
pub use maintenance::{RetentionConfig, spawn_retention};

use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use vigil_core::metric_names as m;
use vigil_core::{Event, Finding};
use vigil_store::Store;

/// Pipeline sizing. Every field has a default; see `docs/configuration.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Events that may wait for their commit before new ones are refused with 429.
    pub ingest_queue: usize,
    /// Most events in one group commit.
    pub max_batch: usize,
    /// Committed events that may wait for analysis before commits slow down.
    pub analysis_queue: usize,
    /// Analyzer worker threads; 0 means one per CPU.
    pub workers: usize,
    /// Findings a WebSocket subscriber may fall behind by before it is dropped.
    pub stream_buffer: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ingest_queue: 40_000,
            max_batch: 10_000,
            analysis_queue: 10_000,
            workers: 0,
            stream_buffer: 1024,
        }
    }
}

/// Why events were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The ingest queue is full; try again later.
    #[error("ingest queue is full ({queued} events waiting); retry after {retry_after_secs} s")]
    Overloaded {
        /// Events waiting when the request came.
        queued: usize,
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// One request holds more events than the whole queue.
    #[error("{got} events in one request; at most {max} are accepted at once")]
    TooMany {
        /// Events in the request.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The store failed to commit; nothing of this request was stored.
    #[error("the store failed to commit: {0}")]
    Store(String),
    /// The pipeline is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

struct IngestJob {
    events: Vec<Event>,
    ack: oneshot::Sender<Result<Vec<bool>, IngestError>>,
    /// Set by [`Pipeline::ingest_settled`]: told when every event of the job is analyzed and
    /// its findings stored.
    settle: Option<Settle>,
}

/// Counts what is still to be done for one [`Pipeline::ingest_settled`] call.
struct Tracker {
    remaining: AtomicUsize,
    done: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl Tracker {
    fn add(&self, n: usize) {
        self.remaining.fetch_add(n, Ordering::AcqRel);
    }

    fn finish(&self, n: usize) {
        if n > 0
            && self.remaining.fetch_sub(n, Ordering::AcqRel) == n
            && let Some(tx) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = tx.send(());
        }
    }
}

/// A job's tracker and whether events stored before are analyzed again.
#[derive(Clone)]
struct Settle {
    tracker: Arc<Tracker>,
    reanalyze_duplicates: bool,
}

/// An event on its way to the analyzers, with the tracker of its ingest call, if any.
type Queued = (Event, Option<Arc<Tracker>>);
/// Findings on their way to the store, with the trackers to tell once they are stored.
type FindingsJob = (Vec<Finding>, Vec<Arc<Tracker>>);

/// Resolves when every event of an [`Pipeline::ingest_settled`] call has been analyzed
/// and its findings stored (or the pipeline shut down first: then it resolves to an error).
pub struct Settled(oneshot::Receiver<()>);

impl std::future::Future for Settled {
    type Output = Result<(), IngestError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| IngestError::ShuttingDown))
    }
}

/// Handle to the running pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    ingest_tx: flume::Sender<IngestJob>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    findings: broadcast::Sender<Arc<Finding>>,
    finding_tx: flume::Sender<FindingsJob>,
    registry: Arc<AnalyzerRegistry>,
    stored: StoredTap,
    transform: Option<EventTransform>,
}

/// A change made to every event before it is stored or analyzed (say, replacing IP
/// addresses by pseudonyms), whatever way it came in.
pub type EventTransform = Arc<dyn Fn(&mut Event) + Send + Sync>;

/// Where the findings writer hands stored findings on (the correlator), when set.
type StoredTap = Arc<std::sync::Mutex<Option<flume::Sender<Vec<Finding>>>>>;

/// Sends findings to the pipeline's findings writer (see [`Pipeline::findings_sink`]).
#[derive(Clone)]
pub struct FindingsSink(flume::Sender<FindingsJob>);

impl FindingsSink {
    /// Queues findings for storage and the stream. Waits while the findings queue is full
    /// (backpressure); fails only when the pipeline is shutting down.
    pub async fn submit(&self, findings: Vec<Finding>) -> Result<(), IngestError> {
        if findings.is_empty() {
            return Ok(());
        }
        self.0
            .send_async((findings, Vec::new()))
            .await
            .map_err(|_| IngestError::ShuttingDown)
    }
}

/// Owns the pipeline's tasks; [`PipelineTasks::shutdown`] drains them.
pub struct PipelineTasks {
    committer: JoinHandle<()>,
    findings_writer: JoinHandle<()>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the committer, the analysis workers and the findings writer.
    pub fn start(
        store: Arc<dyn Store>,
        registry: Arc<AnalyzerRegistry>,
        config: &PipelineConfig,
    ) -> (Pipeline, PipelineTasks) {
        let capacity = config.ingest_queue.max(1);
        let (ingest_tx, ingest_rx) = flume::bounded::<IngestJob>(capacity);
        let (analysis_tx, analysis_rx) = flume::bounded::<Queued>(config.analysis_queue.max(1));
        let (finding_tx, finding_rx) = flume::bounded::<FindingsJob>(config.analysis_queue.max(1));
        let (findings, _) = broadcast::channel(config.stream_buffer.max(1));
        let queued = Arc::new(AtomicUsize::new(0));

        let committer = tokio::spawn(run_committer(
            store.clone(),
            ingest_rx,
            analysis_tx,
            Ordered {
                registry: registry.clone(),
                findings: finding_tx.clone(),
            },
            queued.clone(),
            config.max_batch.max(1),
        ));
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let workers = (0..workers)
            .map(|i| {
                let (rx, tx, reg) = (analysis_rx.clone(), finding_tx.clone(), registry.clone());
                std::thread::Builder::new()
                    .name(format!("vigil-analyzer-{i}"))
                    .spawn(move || run_worker(rx, tx, reg))
                    .expect("spawning an analyzer thread")
            })
            .collect();
        let stored = StoredTap::default();
        let findings_writer = tokio::spawn(run_findings_writer(
            store,
            finding_rx,
            findings.clone(),
            stored.clone(),
        ));

        (
            Pipeline {
                ingest_tx,
                queued,
                capacity,
                findings,
                finding_tx,
                registry,
                stored,
                transform: None,
            },
            PipelineTasks {
                committer,
                findings_writer,
                workers,
            },
        )
    }

    /// Queues events for commit and waits until they are committed. Returns, per event,
    /// whether it was new (false: its `event.id` was stored before, an idempotent retry).
    pub async fn ingest(&self, events: Vec<Event>) -> Result<Vec<bool>, IngestError> {
        self.enqueue(events, None).await
    }

    /// Like [`Pipeline::ingest`], and also returns a [`Settled`] future that resolves once
    /// every event has been analyzed and its findings stored: what a consumer that commits
    /// its position in a log (Kafka) must wait for. With `reanalyze_duplicates`, events
    /// stored before (a redelivery after a crash between storing and analysing) are
    /// analyzed again rather than skipped: at-least-once analysis.
    pub async fn ingest_settled(
        &self,
        events: Vec<Event>,
        reanalyze_duplicates: bool,
    ) -> Result<(Vec<bool>, Settled), IngestError> {
        let (tx, rx) = oneshot::channel();
        let tracker = Arc::new(Tracker {
            // One for the commit itself, released by the committer after it queued the
            // job's events for analysis.
            remaining: AtomicUsize::new(1),
            done: std::sync::Mutex::new(Some(tx)),
        });
        let settle = Settle {
            tracker,
            reanalyze_duplicates,
        };
        let flags = self.enqueue(events, Some(settle)).await?;
        Ok((flags, Settled(rx)))
    }

    /// This pipeline, applying `transform` to every event ingested through it (and its
    /// clones made afterwards) before anything else sees it.
    pub fn with_event_transform(mut self, transform: EventTransform) -> Pipeline {
        self.transform = Some(transform);
        self
    }

    async fn enqueue(
        &self,
        mut events: Vec<Event>,
        settle: Option<Settle>,
    ) -> Result<Vec<bool>, IngestError> {
        if let Some(t) = &self.transform {
            events.iter_mut().for_each(|e| t(e));
        }
        let n = events.len();
        if n == 0 {
            if let Some(s) = settle {
                s.tracker.finish(1);
            }
            return Ok(Vec::new());
        }
        if n > self.capacity {
            return Err(IngestError::TooMany {
                got: n,
                max: self.capacity,
            });
        }
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            metrics::counter!(m::EVENTS_REJECTED, "reason" => "queue_full").increment(n as u64);
            return Err(IngestError::Overloaded {
                queued: before,
                retry_after_secs: 1,
            });
        }
        metrics::gauge!(m::INGEST_QUEUE_DEPTH).set((before + n) as f64);
        let (ack, done) = oneshot::channel();
        if self
            .ingest_tx
            .send_async(IngestJob {
                events,
                ack,
                settle,
            })
            .await
            .is_err()
        {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(IngestError::ShuttingDown);
        }
        done.await.unwrap_or(Err(IngestError::ShuttingDown))
    }

    /// The most events one [`Pipeline::ingest`] call may carry (the ingest queue's size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events waiting for their commit.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// A live feed of findings as they are stored. A receiver that falls more than
    /// `stream_buffer` findings behind gets `RecvError::Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Finding>> {
        self.findings.subscribe()
    }

    /// A handle that hands findings made outside the analyzers (say, by a synchronous
    /// scoring API) to the findings writer, which stores and streams them like any other.
    /// It does not keep the ingest side open, so holders do not delay shutdown.
    pub fn findings_sink(&self) -> FindingsSink {
        FindingsSink(self.finding_tx.clone())
    }

    /// Hands every batch of findings, once stored, to `tap` (the incident correlator),
    /// waiting while it is full: nothing stored is skipped. The tap closes when the
    /// pipeline shuts down.
    pub fn tap_stored_findings(&self, tap: flume::Sender<Vec<Finding>>) {
        *self.stored.lock().unwrap_or_else(|e| e.into_inner()) = Some(tap);
    }

    /// The analyzers.
    pub fn registry(&self) -> &Arc<AnalyzerRegistry> {
        &self.registry
    }
}

impl PipelineTasks {
    /// Waits until every queued event is committed and analyzed and every finding stored.
    /// Call after dropping every [`Pipeline`] handle (the queues close when the last one
    /// goes). Gives up after `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        let drain = async move {
            let _ = self.committer.await;
            let workers = self.workers;
            let _ = tokio::task::spawn_blocking(move || {
                for w in workers {
                    let _ = w.join();
                }
            })
            .await;
            let _ = self.findings_writer.await;
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tracing::warn!(?timeout, "pipeline did not drain in time");
        }
    }
}

/// What the committer needs to run the ordered analyzers.
struct Ordered {
    registry: Arc<AnalyzerRegistry>,
    findings: flume::Sender<FindingsJob>,
}

async fn run_committer(
    store: Arc<dyn Store>,
    rx: flume::Receiver<IngestJob>,
    analysis: flume::Sender<Queued>,
    ordered: Ordered,
    queued: Arc<AtomicUsize>,
    max_batch: usize,
) {
    while let Ok(first) = rx.recv_async().await {
        let mut pending_settles: Vec<Arc<Tracker>> = Vec::new();
        let mut n = first.events.len();
        let mut jobs = vec![first];
        while n < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    n += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut events = Vec::with_capacity(n);
        let mut acks = Vec::with_capacity(jobs.len());
        let mut settles: Vec<Option<Settle>> = Vec::with_capacity(n);
        for job in jobs {
            acks.push((job.events.len(), job.ack));
            settles.extend(std::iter::repeat_n(job.settle.clone(), job.events.len()));
            if let Some(s) = &job.settle {
                pending_settles.push(s.tracker.clone());
            }
            events.extend(job.events);
        }

        let started = Instant::now();
        let result = store.insert_events(&events).await;
        metrics::histogram!(m::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(m::COMMIT_BATCH_EVENTS).record(n as f64);
        let left = queued.fetch_sub(n, Ordering::AcqRel) - n;
        metrics::gauge!(m::INGEST_QUEUE_DEPTH).set(left as f64);

        match result {
            Ok(flags) => {
                metrics::counter!(m::EVENTS_INGESTED)
                    .increment(flags.iter().filter(|f| **f).count() as u64);
                let mut offset = 0;
                for (len, ack) in acks {
                    let _ = ack.send(Ok(flags[offset..offset + len].to_vec()));
                    offset += len;
                }
                let in_order = ordered.registry.snapshot().iter().any(|a| a.ordered());
                for ((event, new), settle) in events.into_iter().zip(flags).zip(settles) {
                    let analyze = new || settle.as_ref().is_some_and(|s| s.reanalyze_duplicates);
                    if !analyze {
                        continue;
                    }
                    let tracker = settle.map(|s| s.tracker);
                    if in_order {
                        let findings = run_analyzers(&ordered.registry, &event, true);
                        if !findings.is_empty() {
                            let trackers: Vec<Arc<Tracker>> = tracker.iter().cloned().collect();
                            for t in &trackers {
                                t.add(1);
                            }
                            if ordered
                                .findings
                                .send_async((findings, trackers))
                                .await
                                .is_err()
                            {
                                tracing::error!("findings queue closed; ordered findings lost");
                            }
                        }
                    }
                    if let Some(t) = &tracker {
                        t.add(1);
                    }
                    if analysis.send_async((event, tracker)).await.is_err() {
                        tracing::error!("analysis queue closed; committed events not analyzed");
                        break;
                    }
                }
                metrics::gauge!(m::ANALYSIS_QUEUE_DEPTH).set(analysis.len() as f64);
            }
            Err(e) => {
                tracing::error!(error = %e, events = n, "group commit failed");
                let msg = e.to_string();
                for (_, ack) in acks {
                    let _ = ack.send(Err(IngestError::Store(msg.clone())));
                }
            }
        }
        // The commit's own share: every event of these jobs is queued (or failed).
        for t in pending_settles {
            t.finish(1);
        }
    }
}

fn run_worker(
    rx: flume::Receiver<Queued>,
    tx: flume::Sender<FindingsJob>,
    registry: Arc<AnalyzerRegistry>,
) {
    while let Ok((event, tracker)) = rx.recv() {
        // Kept current as the queue drains, not only when a commit fills it.
        if rx.is_empty() {
            metrics::gauge!(m::ANALYSIS_QUEUE_DEPTH).set(0.0);
        }
        let findings = run_analyzers(&registry, &event, false);
        if findings.is_empty() {
            if let Some(t) = tracker {
                t.finish(1);
            }
        } else if tx.send((findings, tracker.into_iter().collect())).is_err() {
            return;
        }
    }
}

/// Runs the interested ordered (or unordered) analyzers on one event, catching panics so
/// that one broken analyzer cannot take the others down.
fn run_analyzers(registry: &AnalyzerRegistry, event: &Event, ordered: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for analyzer in registry.snapshot().iter() {
        if analyzer.ordered() != ordered || !analyzer.interest().matches(event) {
            continue;
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| analyzer.analyze(event)));
        metrics::histogram!(m::ANALYZER_SECONDS, "analyzer" => analyzer.name().to_string())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(findings) => {
                for f in findings {
                    match f.validate() {
                        Ok(()) => out.push(f),
                        Err(e) => tracing::warn!(
                            analyzer = analyzer.name(), error = %e, "dropping malformed finding"
                        ),
                    }
                }
            }
            Err(_) => {
                metrics::counter!(m::ANALYZER_PANICS, "analyzer" => analyzer.name().to_string())
                    .increment(1);
                tracing::error!(
                    analyzer = analyzer.name(),
                    event_id = event.id(),
                    "analyzer panicked"
                );
            }
        }
    }
    out
}

async fn run_findings_writer(
    store: Arc<dyn Store>,
    rx: flume::Receiver<FindingsJob>,
    out: broadcast::Sender<Arc<Finding>>,
    stored: StoredTap,
) {
    while let Ok((first, mut trackers)) = rx.recv_async().await {
        let mut batch = first;
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok((more, t)) => {
                    batch.extend(more);
                    trackers.extend(t);
                }
                Err(_) => break,
            }
        }
        // Keep trying: findings are derived data, but dropping them silently would hide
        // detections. The bounded queue behind us applies backpressure meanwhile.
        let mut delay = Duration::from_millis(100);
        while let Err(e) = store.insert_findings(&batch).await {
            tracing::error!(error = %e, findings = batch.len(), "storing findings failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        for t in trackers {
            t.finish(1);
        }
        let tap = stored.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(tap) = tap
            && tap.send_async(batch.clone()).await.is_err()
        {
            tracing::error!("the incident correlator has stopped; stored findings not correlated");
        }
        for f in batch {
            // A finding's analyzer names a user script (`script:NAME`): bounded. The analyzers
            // themselves are the registry's fixed few, labelled as they are.
            metrics::counter!(m::FINDINGS, "analyzer" => m::bounded_label("analyzer", &f.analyzer),
                "severity" => f.severity.as_str())
            .increment(1);
            let _ = out.send(Arc::new(f));
        }
    }
}
