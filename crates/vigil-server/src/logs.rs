//! The log analyzer (seed 004) in the pipeline: every `event.category: log` event's message
//! is mined into a template by a live Drain, its key joins a session (by an identifier in
//! the message, or a per-host window), and closed sessions are judged by the active log
//! model; anomalous sessions become findings that explain themselves.
//!
//! State under `<data_dir>/logs/`: `drain.json` (the live templates, saved every minute and
//! at shutdown), `sessions.txt` and `sessions.1.txt` (closed sessions judged normal, one a
//! line, the training corpus, bounded), `models/v<N>.json` and `models/active`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_core::metric_names::LOG_SESSIONS;
use vigil_core::{Event, Finding};
use vigil_logs::Drain;
use vigil_logs::detect::Verdict;
use vigil_logs::model::{LogModel, Reading, TrainSpec};
use vigil_pipeline::{Analyzer, FindingsSink, Interest};

/// `[logs]`: the live log analyzer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Mine and judge log events.
    pub enabled: bool,
    /// Pattern of a session identifier in a message (the first capture group, or the whole
    /// match); lines without one are grouped per host into windows.
    pub session: String,
    /// Length of a host's window of lines without a session identifier, in seconds.
    pub window_secs: u64,
    /// A session closes when no line joined it for this long, in seconds.
    pub idle_secs: u64,
    /// A session closes when it reaches this many keys.
    pub max_session_keys: usize,
    /// Open sessions at most; when full, the tenth idle the longest is closed early.
    pub max_open_sessions: usize,
    /// Closed normal sessions kept for training (in two files of this many).
    pub keep_sessions: usize,
    /// Fewest recorded sessions `POST /api/v1/logs/train` trains on.
    pub min_train_sessions: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            session: r"(blk_-?\d+)".into(),
            window_secs: 60,
            idle_secs: 30,
            max_session_keys: 1000,
            max_open_sessions: 100_000,
            keep_sessions: 200_000,
            min_train_sessions: 50,
        }
    }
}

/// An error of the log service, mapped to an HTTP status by the routes.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The request cannot be served as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such model (404).
    #[error("{0}")]
    NotFound(String),
    /// A training is already running (429).
    #[error("{0}")]
    Conflict(String),
    /// No model is trained yet (503).
    #[error("{0}")]
    NoModel(String),
    /// Storage or model failure (500).
    #[error("{0}")]
    Internal(String),
}

struct OpenSession {
    host: Option<String>,
    keys: Vec<u32>,
    event_ids: Vec<String>,
    opened: Instant,
    last: Instant,
    /// A host window rather than an identified session.
    window: bool,
}

/// Event ids kept per session for its finding.
const EVENT_IDS_PER_SESSION: usize = 20;

struct Closed {
    id: String,
    session: OpenSession,
}

/// Appends closed sessions to `sessions.txt`, rotating to `sessions.1.txt` when full.
struct Recorder {
    path: PathBuf,
    /// Lines in `sessions.txt`.
    lines: usize,
    /// Lines in `sessions.1.txt`.
    older: usize,
    max: usize,
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

impl Recorder {
    fn open(dir: &Path, max: usize) -> Recorder {
        let path = dir.join("sessions.txt");
        Recorder {
            lines: count_lines(&path),
            older: count_lines(&path.with_file_name("sessions.1.txt")),
            path,
            max,
        }
    }

    fn append(&mut self, sessions: &[&[u32]]) -> std::io::Result<()> {
        use std::io::Write;
        if sessions.is_empty() || self.max == 0 {
            return Ok(());
        }
        if self.lines + sessions.len() > self.max {
            std::fs::rename(&self.path, self.path.with_file_name("sessions.1.txt")).or_else(
                |e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                },
            )?;
            self.older = self.lines;
            self.lines = 0;
        }
        let mut text = String::new();
        for s in sessions {
            let line: Vec<String> = s.iter().map(u32::to_string).collect();
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(text.as_bytes())?;
        self.lines += sessions.len();
        Ok(())
    }

    /// Every recorded session, older file first.
    fn read_all(&self) -> std::io::Result<Vec<Vec<u32>>> {
        let mut out = Vec::new();
        for path in [
            self.path.with_file_name("sessions.1.txt"),
            self.path.clone(),
        ] {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.split(' ').filter_map(|k| k.parse().ok()).collect()),
            );
        }
        Ok(out)
    }
}

/// The state of training.
#[derive(Debug, Clone, Default, Serialize)]
struct TrainingState {
    running: bool,
    started: Option<String>,
    last: Option<Value>,
}

/// The live log analyzer's state, shared by the analyzer, its ticker and the API.
pub struct LogService {
    config: LogConfig,
    dir: PathBuf,
    pattern: Regex,
    drain: Mutex<Drain>,
    drain_dirty: AtomicBool,
    /// Templates in the last saved `drain.json`.
    saved_templates: std::sync::atomic::AtomicUsize,
    open: Mutex<HashMap<String, OpenSession>>,
    /// Sessions closed while mining (full, or evicted), judged by the next sweep.
    pending: Mutex<Vec<Closed>>,
    model: RwLock<Option<Arc<LogModel>>>,
    recorder: Mutex<Recorder>,
    training: Mutex<TrainingState>,
    sink: FindingsSink,
}

fn internal(what: &str) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |e| LogError::Internal(format!("{what}: {e}"))
}

impl LogService {
    /// Opens `<data_dir>/logs`, restoring the live templates and the active model.
    pub fn start(
        config: LogConfig,
        data_dir: &Path,
        sink: FindingsSink,
    ) -> Result<Arc<LogService>, LogError> {
        let pattern = Regex::new(&config.session).map_err(|e| {
            LogError::BadRequest(format!("[logs] session is not a valid pattern: {e}"))
        })?;
        let dir = data_dir.join("logs");
        std::fs::create_dir_all(dir.join("models")).map_err(internal("creating logs/"))?;
        // What a crash in the middle of saving left behind.
        let stale = vigil_store::fsutil::remove_stale_temporaries(&dir)
            + vigil_store::fsutil::remove_stale_temporaries(&dir.join("models"));
        if stale > 0 {
            tracing::info!(
                files = stale,
                "removed temporary files of an interrupted save"
            );
        }
        let drain = match std::fs::read(dir.join("drain.json")) {
            Ok(b) => Drain::restore(&b).map_err(|e| {
                LogError::Internal(format!(
                    "logs/drain.json cannot be restored ({e}); move it away to start afresh"
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Drain::new(Default::default()),
            Err(e) => return Err(internal("reading logs/drain.json")(e)),
        };
        let recorder = Recorder::open(&dir, config.keep_sessions);
        let templates = drain.clusters().len();
        let service = Arc::new(LogService {
            pattern,
            drain: Mutex::new(drain),
            drain_dirty: AtomicBool::new(false),
            saved_templates: std::sync::atomic::AtomicUsize::new(templates),
            open: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            model: RwLock::new(None),
            recorder: Mutex::new(recorder),
            training: Mutex::new(TrainingState::default()),
            sink,
            dir,
            config,
        });
        if let Some(v) = service.active_version() {
            let model = service.load(v)?;
            *service.model.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        }
        Ok(service)
    }

    fn active_version(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join("models/active"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn model_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("models/v{version}.json"))
    }

    fn load(&self, version: u64) -> Result<LogModel, LogError> {
        let bytes = std::fs::read(self.model_path(version)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LogError::NotFound(format!("no log model {version}")),
            _ => LogError::Internal(format!("reading log model {version}: {e}")),
        })?;
        LogModel::from_json(&bytes)
            .map_err(|e| LogError::Internal(format!("log model {version} cannot be loaded: {e}")))
    }

    /// The active model.
    pub fn model(&self) -> Option<Arc<LogModel>> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Mines one log event into its session. Quick: it runs in commit order on the
    /// pipeline's committing task; sessions it closes are judged by the next sweep.
    pub fn observe(&self, event: &Event) {
        let Some(message) = event.as_map().get("message").and_then(Value::as_str) else {
            return;
        };
        let key = {
            let mut drain = self.drain.lock().unwrap_or_else(|e| e.into_inner());
            drain.parse(message).id
        };
        self.drain_dirty.store(true, Ordering::Relaxed);
        let host = event.host_name().map(str::to_string);
        let (id, window) = match self.pattern.captures(message) {
            Some(c) => (
                c.get(1)
                    .or_else(|| c.get(0))
                    .map_or("", |m| m.as_str())
                    .to_string(),
                false,
            ),
            None => (
                format!("host:{}", host.as_deref().unwrap_or("unknown")),
                true,
            ),
        };
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if !open.contains_key(&id) && open.len() >= self.config.max_open_sessions {
                // Full: close the tenth idle the longest at once, so that a flood of new
                // identifiers costs one scan per tenth, not one per line.
                let mut by_age: Vec<(Instant, String)> =
                    open.iter().map(|(k, s)| (s.last, k.clone())).collect();
                let n = (by_age.len() / 10).max(1);
                by_age.select_nth_unstable(n - 1);
                for (_, oldest) in by_age.into_iter().take(n) {
                    let session = open.remove(&oldest).expect("present");
                    closed.push(Closed {
                        id: oldest,
                        session,
                    });
                }
            }
            let s = open.entry(id.clone()).or_insert_with(|| OpenSession {
                host: host.clone(),
                keys: Vec::new(),
                event_ids: Vec::new(),
                opened: now,
                last: now,
                window,
            });
            s.keys.push(key);
            s.last = now;
            if s.event_ids.len() < EVENT_IDS_PER_SESSION {
                s.event_ids.push(event.id().to_string());
            }
            if s.keys.len() >= self.config.max_session_keys {
                let session = open.remove(&id).expect("present");
                closed.push(Closed { id, session });
            }
        }
        if !closed.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(closed);
        }
    }

    /// Closes sessions idle for `idle_secs` and windows older than `window_secs`; returns
    /// their findings.
    pub fn sweep(&self, now: Instant) -> Vec<Finding> {
        let idle = Duration::from_secs(self.config.idle_secs);
        let window = Duration::from_secs(self.config.window_secs);
        let mut closed: Vec<Closed> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let done: Vec<String> = open
                .iter()
                .filter(|(_, s)| {
                    now.saturating_duration_since(s.last) >= idle
                        || (s.window && now.saturating_duration_since(s.opened) >= window)
                })
                .map(|(k, _)| k.clone())
                .collect();
            closed.extend(done.into_iter().map(|id| Closed {
                session: open.remove(&id).expect("present"),
                id,
            }));
        }
        self.close(closed)
    }

    /// Closes every open session (at shutdown); returns their findings.
    pub fn close_all(&self) -> Vec<Finding> {
        let mut closed: Vec<Closed> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        closed.extend(
            self.open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .map(|(id, session)| Closed { id, session }),
        );
        self.close(closed)
    }

    fn close(&self, closed: Vec<Closed>) -> Vec<Finding> {
        if closed.is_empty() {
            return Vec::new();
        }
        let refs: Vec<&[u32]> = closed.iter().map(|c| c.session.keys.as_slice()).collect();
        let model = self.model();
        let verdicts: Vec<Option<Verdict>> = match &model {
            Some(m) => m.judge_many(&refs).into_iter().map(Some).collect(),
            None => vec![None; closed.len()],
        };
        let mut findings = Vec::new();
        let mut normal: Vec<&[u32]> = Vec::new();
        for ((c, keys), v) in closed.iter().zip(&refs).zip(&verdicts) {
            match (v, &model) {
                (Some(v), Some(m)) if v.anomalous => {
                    metrics::counter!(LOG_SESSIONS, "verdict" => "anomalous").increment(1);
                    findings.push(self.finding(c, v, m));
                }
                _ => {
                    let verdict = if v.is_some() { "normal" } else { "unjudged" };
                    metrics::counter!(LOG_SESSIONS, "verdict" => verdict).increment(1);
                    normal.push(keys);
                }
            }
        }
        // Keys of new templates are saved before sessions holding them are recorded, so
        // that a crash cannot give those ids to other templates after the restart.
        let templates = self
            .drain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clusters()
            .len();
        if templates != self.saved_templates.load(Ordering::Relaxed)
            && let Err(e) = self.persist()
        {
            tracing::error!(error = %e, "log templates not saved");
        }
        if let Err(e) = self
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&normal)
        {
            tracing::warn!(error = %e, "closed log sessions cannot be recorded for training");
        }
        findings
    }

    /// The template of a key in the live Drain.
    fn template(&self, key: u32) -> Option<String> {
        self.drain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cluster(key)
            .map(|c| c.template())
    }

    fn finding(&self, c: &Closed, v: &Verdict, m: &LogModel) -> Finding {
        let explanation = m.explain_with(v.reason.as_ref(), |k| self.template(k));
        let where_ = match (&c.session.host, c.session.window) {
            (Some(h), true) => format!("a window of {h}'s logs"),
            (None, true) => "a window of logs".to_string(),
            (Some(h), false) => format!("session {} on {h}", c.id),
            (None, false) => format!("session {}", c.id),
        };
        let templates: Vec<Value> = c
            .session
            .keys
            .iter()
            .take(50)
            .map(|&k| json!({"key": k, "template": self.template(k)}))
            .collect();
        let mut f = Finding::new(
            "logs",
            60.0 + 40.0 * (v.score - 1.0).clamp(0.0, 1.0),
            format!("anomalous log sequence in {where_}: {explanation}"),
        )
        .with_evidence(json!({
            "session": c.id,
            "keys": c.session.keys.len(),
            "sequence": templates,
            "reason": v.reason,
            "explanation": explanation,
            "score": v.score,
            "model_version": m.version,
            "detectors": m.kinds(),
            "policy": m.policy(),
        }));
        f.event_ids = c.session.event_ids.clone();
        f.host_name = c.session.host.clone();
        f
    }

    /// Saves the live templates when they changed.
    pub fn persist(&self) -> Result<(), LogError> {
        if !self.drain_dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let (bytes, templates) = {
            let drain = self.drain.lock().unwrap_or_else(|e| e.into_inner());
            (drain.save(), drain.clusters().len())
        };
        vigil_store::fsutil::write_atomic(&self.dir.join("drain.json"), &bytes)
            .map_err(internal("saving logs/drain.json"))?;
        self.saved_templates.store(templates, Ordering::Relaxed);
        Ok(())
    }

    /// The live templates, most frequent first.
    pub fn templates(&self, limit: usize) -> Value {
        let drain = self.drain.lock().unwrap_or_else(|e| e.into_inner());
        let mut clusters: Vec<_> = drain.clusters().iter().collect();
        clusters.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        let total = clusters.len();
        let items: Vec<Value> = clusters
            .into_iter()
            .take(limit)
            .map(|c| json!({"id": c.id, "count": c.count, "template": c.template()}))
            .collect();
        json!({"total": total, "templates": items})
    }

    /// What the analyzer holds.
    pub fn status(&self) -> Value {
        let model = self.model();
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).len();
        let templates = self
            .drain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clusters()
            .len();
        let recorded = {
            let r = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
            r.lines + r.older
        };
        let training = self
            .training
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        json!({
            "active_version": model.as_ref().map(|m| m.version),
            "detectors": model.as_ref().map(|m| m.kinds().to_vec()),
            "open_sessions": open,
            "templates": templates,
            "recorded_sessions": recorded,
            "min_train_sessions": self.config.min_train_sessions,
            "session_pattern": self.config.session,
            "training": training,
        })
    }

    /// The version numbers of the stored model files, ascending.
    fn versions(&self) -> Result<Vec<u64>, LogError> {
        let mut versions: Vec<u64> = std::fs::read_dir(self.dir.join("models"))
            .map_err(internal("listing logs/models"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The stored model versions.
    pub fn models(&self) -> Result<Value, LogError> {
        let active = self.active_version();
        let versions = self.versions()?;
        let items: Vec<Value> = versions
            .iter()
            .filter_map(|&v| {
                let bytes = std::fs::read(self.model_path(v)).ok()?;
                let m: Value = serde_json::from_slice(&bytes).ok()?;
                Some(json!({
                    "version": v,
                    "active": Some(v) == active,
                    "created": m["created"],
                    "detectors": m["detectors"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
                    "policy": m["policy"],
                    "training": m["training"],
                }))
            })
            .collect();
        Ok(json!({"active": active, "models": items}))
    }

    /// Makes a stored version the active model.
    pub fn activate(&self, version: u64) -> Result<Value, LogError> {
        let model = self.load(version)?;
        vigil_store::fsutil::write_atomic(
            &self.dir.join("models/active"),
            version.to_string().as_bytes(),
        )
        .map_err(internal("writing logs/models/active"))?;
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        tracing::info!(version, "log model activated");
        Ok(json!({"active": version}))
    }

    /// Trains a new version on the recorded sessions (or on `sequences`), saves it and makes
    /// it active. Blocking: minutes for the neural detectors.
    pub fn train(
        &self,
        spec: &TrainSpec,
        sequences: Option<Vec<Vec<u32>>>,
    ) -> Result<Value, LogError> {
        {
            let mut t = self.training.lock().unwrap_or_else(|e| e.into_inner());
            if t.running {
                return Err(LogError::Conflict(
                    "a log model is already being trained; see GET /api/v1/logs/status".into(),
                ));
            }
            t.running = true;
            t.started = Some(chrono::Utc::now().to_rfc3339());
        }
        let outcome = self.train_inner(spec, sequences);
        let mut t = self.training.lock().unwrap_or_else(|e| e.into_inner());
        t.running = false;
        t.last = Some(match &outcome {
            Ok(v) => v.clone(),
            Err(e) => json!({"error": e.to_string()}),
        });
        outcome
    }

    fn train_inner(
        &self,
        spec: &TrainSpec,
        sequences: Option<Vec<Vec<u32>>>,
    ) -> Result<Value, LogError> {
        let from_request = sequences.is_some();
        let sessions = match sequences {
            Some(s) => s,
            None => self
                .recorder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_all()
                .map_err(internal("reading the recorded sessions"))?,
        };
        let sessions: Vec<Vec<u32>> = sessions.into_iter().filter(|s| !s.is_empty()).collect();
        if sessions.len() < self.config.min_train_sessions {
            return Err(LogError::BadRequest(format!(
                "{} sessions to train on, at least {} are needed ([logs] min_train_sessions); \
                 let more logs arrive or send `sequences`",
                sessions.len(),
                self.config.min_train_sessions
            )));
        }
        // From the file names, so that a file that no longer parses is not overwritten.
        let version = self.versions()?.last().copied().unwrap_or(0) + 1;
        // Sequences sent with the request carry their own keys: the model gets no templates.
        let drain =
            (!from_request).then(|| self.drain.lock().unwrap_or_else(|e| e.into_inner()).clone());
        let reading = Reading {
            header_format: None,
            session_pattern: self.config.session.clone(),
        };
        let start = Instant::now();
        let model = LogModel::train(&sessions, drain, reading, spec, version, |_, _, _| ())
            .map_err(|e| LogError::BadRequest(e.to_string()))?;
        vigil_store::fsutil::write_atomic(&self.model_path(version), &model.to_json())
            .map_err(internal("saving the log model"))?;
        let summary = json!({
            "version": version,
            "sessions": sessions.len(),
            "detectors": model.kinds(),
            "seconds": start.elapsed().as_secs_f64(),
            "training": model.training,
        });
        self.activate(version)?;
        Ok(summary)
    }

    /// Judges key sequences or raw lines with the active model, without learning from them.
    pub fn detect(&self, request: DetectRequest) -> Result<Value, LogError> {
        let sessions: Vec<(String, Vec<u32>)> = match (request.sequences, request.lines) {
            (Some(seqs), None) => seqs
                .into_iter()
                .enumerate()
                .map(|(i, s)| (i.to_string(), s))
                .collect(),
            (None, Some(lines)) => {
                let pattern = match &request.session {
                    Some(p) => Regex::new(p).map_err(|e| {
                        LogError::BadRequest(format!("`session` is not a valid pattern: {e}"))
                    })?,
                    None => self.pattern.clone(),
                };
                let drain = self.drain.lock().unwrap_or_else(|e| e.into_inner());
                let mut order: Vec<String> = Vec::new();
                let mut by_id: HashMap<String, Vec<u32>> = HashMap::new();
                for line in &lines {
                    let id = pattern
                        .captures(line)
                        .and_then(|c| c.get(1).or_else(|| c.get(0)))
                        .map_or("all", |m| m.as_str())
                        .to_string();
                    let key = drain.lookup(line).unwrap_or(u32::MAX);
                    by_id
                        .entry(id.clone())
                        .or_insert_with(|| {
                            order.push(id);
                            Vec::new()
                        })
                        .push(key);
                }
                order
                    .into_iter()
                    .map(|id| {
                        let keys = by_id.remove(&id).unwrap_or_default();
                        (id, keys)
                    })
                    .collect()
            }
            _ => {
                return Err(LogError::BadRequest(
                    "send either `sequences` (arrays of keys) or `lines` (raw log messages)".into(),
                ));
            }
        };
        let model = self.model().ok_or_else(|| {
            LogError::NoModel(
                "no log model is trained yet: POST /api/v1/logs/train (or `vigil logs train`) \
                 first"
                    .into(),
            )
        })?;
        let refs: Vec<&[u32]> = sessions.iter().map(|(_, k)| k.as_slice()).collect();
        let verdicts = model.judge_many(&refs);
        let results: Vec<Value> = sessions
            .iter()
            .zip(verdicts)
            .map(|((id, keys), v)| {
                json!({
                    "session": id,
                    "keys": keys,
                    "anomalous": v.anomalous,
                    "score": v.score,
                    "reason": v.reason,
                    "explanation": model.explain_with(v.reason.as_ref(), |k| self.template(k)),
                })
            })
            .collect();
        Ok(json!({"model_version": model.version, "sessions": results}))
    }
}

/// The body of `POST /api/v1/logs/detect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectRequest {
    /// Sessions as arrays of keys.
    pub sequences: Option<Vec<Vec<u32>>>,
    /// Raw log messages, grouped into sessions by `session`.
    pub lines: Option<Vec<String>>,
    /// Pattern of the session identifier in `lines` (default: `[logs] session`).
    pub session: Option<String>,
}

/// Closes idle sessions every `tick`, submits their findings and saves the templates every
/// minute; at shutdown (when `stop` fires) closes every session and saves once more.
pub fn spawn_ticker(
    service: Arc<LogService>,
    tick: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_save = Instant::now();
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(tick) => false,
                _ = stop.changed() => true,
            };
            let s = service.clone();
            let findings = tokio::task::spawn_blocking(move || {
                if stopping {
                    s.close_all()
                } else {
                    s.sweep(Instant::now())
                }
            })
            .await
            .unwrap_or_default();
            if service.sink.submit(findings).await.is_err() {
                tracing::warn!("the pipeline is shutting down: log session findings dropped");
            }
            if stopping || last_save.elapsed() >= Duration::from_secs(60) {
                if let Err(e) = service.persist() {
                    tracing::error!(error = %e, "log templates not saved");
                }
                last_save = Instant::now();
            }
            if stopping {
                return;
            }
        }
    })
}

/// The pipeline's log analyzer. It holds the service weakly, like the network analyzer.
pub struct LogAnalyzer(std::sync::Weak<LogService>);

impl LogAnalyzer {
    /// The analyzer for `service`.
    pub fn new(service: &Arc<LogService>) -> LogAnalyzer {
        LogAnalyzer(Arc::downgrade(service))
    }
}

impl Analyzer for LogAnalyzer {
    fn name(&self) -> &str {
        "logs"
    }

    fn interest(&self) -> Interest {
        Interest::Categories(vec!["log".into()])
    }

    fn analyze(&self, event: &Event) -> Vec<Finding> {
        if let Some(service) = self.0.upgrade() {
            service.observe(event);
        }
        Vec::new()
    }

    fn ordered(&self) -> bool {
        true
    }
}
