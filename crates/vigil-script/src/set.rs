//! The loaded scripts, how they run on an event, and the pipeline analyzer over them.

use crate::convert::{to_dynamic, to_json};
use crate::host::{ScriptEvent, set_current_script};
use crate::python::{PythonConfig, PythonScript};
use crate::{Language, Manifest, ScriptEngine, ScriptError};
use rhai::{AST, Dynamic};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use vigil_core::{Event, Finding, Severity, is_technique_id};
use vigil_pipeline::{Analyzer, Interest};

/// How a script runs.
enum Runtime {
    /// In the server's Rhai engine.
    Rhai { ast: AST, config: Dynamic },
    /// In Python worker processes (seed 000's contract).
    Python(PythonScript),
}

/// One compiled script and its run-time state.
struct LoadedScript {
    manifest: Manifest,
    name: Arc<str>,
    version: i64,
    runtime: Runtime,
    timeout: Duration,
    enabled: AtomicBool,
    failures: AtomicU32,
    disabled_reason: Mutex<Option<String>>,
}

/// A script checked and compiled by [`ScriptSet::prepare`], ready to install.
pub struct PreparedScript(Arc<LoadedScript>);

/// Analyses [`ScriptSet::submit`] may queue before it refuses more.
pub const MAX_PENDING_ANALYSES: usize = 1024;

/// A whole analysis, run on one of the set's threads.
type Job = Box<dyn FnOnce() + Send>;

/// [`ScriptSet::submit`] refused: [`MAX_PENDING_ANALYSES`] are waiting already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_PENDING_ANALYSES} analyses are waiting already")]
pub struct Overloaded;

/// One script's name and what its run gave.
type Outcome = (Arc<str>, Result<Option<Value>, ScriptError>);

/// What the API lists about a script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptInfo {
    /// Name.
    pub name: String,
    /// Loaded version.
    pub version: i64,
    /// Description.
    pub description: String,
    /// Categories it accepts.
    pub categories: Vec<String>,
    /// `rhai` or `python`.
    pub language: Language,
    /// For Python scripts: whether the last worker started had a network namespace of
    /// its own (absent before one started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_isolated: Option<bool>,
    /// Whether it runs.
    pub enabled: bool,
    /// Why it does not run, when disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Failed runs in a row.
    pub consecutive_failures: u32,
}

/// A script that was disabled automatically, to be persisted by the owner of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptFailure {
    /// The script.
    pub name: String,
    /// Why it was disabled.
    pub reason: String,
}

/// What every matching script said about one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnalysisReport {
    /// Result dictionaries by script name (scripts that answered `()` are absent).
    pub results: BTreeMap<String, Value>,
    /// Errors by script name.
    pub errors: BTreeMap<String, ScriptError>,
    /// Findings from results that carried a `score`.
    pub findings: Vec<Finding>,
    /// Wall-clock milliseconds for the whole analysis.
    pub took_ms: f64,
}

/// The loaded scripts. Scripts can be loaded, replaced and removed while others run; each
/// analysis sees one snapshot.
pub struct ScriptSet {
    engine: Arc<ScriptEngine>,
    python: Arc<PythonConfig>,
    executor: flume::Sender<Job>,
    agent_tags: RwLock<std::collections::HashMap<String, Vec<String>>>,
    scripts: RwLock<Arc<Vec<Arc<LoadedScript>>>>,
    disabled_tx: flume::Sender<ScriptFailure>,
    disabled_rx: flume::Receiver<ScriptFailure>,
}

impl ScriptSet {
    /// An empty set running on `engine`.
    pub fn new(engine: Arc<ScriptEngine>) -> ScriptSet {
        let (disabled_tx, disabled_rx) = flume::unbounded();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (executor, jobs) = flume::bounded::<Job>(MAX_PENDING_ANALYSES);
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("vigil-script-{i}"))
                .spawn(move || {
                    // Ends when the set (the only sender) is dropped.
                    while let Ok(job) = jobs.recv() {
                        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                            tracing::error!("an analysis panicked outside any script");
                        }
                    }
                })
                .expect("starting a script thread");
        }
        ScriptSet {
            python: Arc::new(engine.limits().python.clone()),
            engine,
            executor,
            agent_tags: RwLock::default(),
            scripts: RwLock::default(),
            disabled_tx,
            disabled_rx,
        }
    }

    /// Records the tags an agent registered with, for scripts scoped by `agent_tags`.
    pub fn set_agent_tags(&self, agent_id: &str, tags: Vec<String>) {
        self.agent_tags
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(agent_id.to_string(), tags);
    }

    /// Whether a script scoped to `wanted` tags runs for `event`'s agent.
    fn agent_in_scope(&self, wanted: &[String], event: &Event) -> bool {
        if wanted.is_empty() {
            return true;
        }
        let Some(agent) = event.agent_id() else {
            return false;
        };
        let tags = self.agent_tags.read().unwrap_or_else(|e| e.into_inner());
        tags.get(agent)
            .is_some_and(|have| have.iter().any(|t| wanted.contains(t)))
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<ScriptEngine> {
        &self.engine
    }

    /// Compiles and loads (or replaces) a script: [`ScriptSet::prepare`] then
    /// [`ScriptSet::install`]. Blocks while a Python script's first worker starts.
    pub fn load(
        &self,
        manifest: Manifest,
        version: i64,
        source: &str,
        enabled: bool,
        disabled_reason: Option<String>,
    ) -> Result<(), ScriptError> {
        let prepared = self.prepare(manifest, version, source, enabled, disabled_reason)?;
        self.install(prepared);
        Ok(())
    }

    /// Checks and compiles a script without loading it: a Rhai script is compiled, a
    /// Python script's first worker is started (which compiles and imports it). Blocks
    /// for the latter.
    pub fn prepare(
        &self,
        manifest: Manifest,
        version: i64,
        source: &str,
        enabled: bool,
        disabled_reason: Option<String>,
    ) -> Result<PreparedScript, ScriptError> {
        let limits = self.engine.limits();
        manifest
            .validate(limits.max_timeout_ms)
            .map_err(|e| ScriptError::plain("manifest", e.to_string()))?;
        let runtime = match manifest.language {
            Language::Rhai => Runtime::Rhai {
                ast: self.engine.compile(source)?,
                config: to_dynamic(&Value::Object(manifest.config.clone())),
            },
            Language::Python => {
                self.engine.check_source_size(source)?;
                Runtime::Python(PythonScript::load(
                    &manifest.name,
                    source,
                    &manifest.config,
                    self.python.clone(),
                )?)
            }
        };
        let timeout =
            Duration::from_millis(manifest.timeout_ms.unwrap_or(limits.default_timeout_ms));
        Ok(PreparedScript(Arc::new(LoadedScript {
            name: Arc::from(manifest.name.as_str()),
            manifest,
            version,
            runtime,
            timeout,
            enabled: AtomicBool::new(enabled),
            failures: AtomicU32::new(0),
            disabled_reason: Mutex::new(disabled_reason),
        })))
    }

    /// Loads (or replaces) a prepared script.
    pub fn install(&self, prepared: PreparedScript) {
        let script = prepared.0;
        let mut guard = self.scripts.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<_> = guard
            .iter()
            .filter(|s| *s.name != *script.name)
            .cloned()
            .collect();
        next.push(script);
        next.sort_by(|a, b| a.name.cmp(&b.name));
        *guard = Arc::new(next);
    }

    /// Unloads a script; false when there was none.
    pub fn remove(&self, name: &str) -> bool {
        let mut guard = self.scripts.write().unwrap_or_else(|e| e.into_inner());
        let before = guard.len();
        let next: Vec<_> = guard.iter().filter(|s| &*s.name != name).cloned().collect();
        let removed = next.len() != before;
        *guard = Arc::new(next);
        removed
    }

    /// Enables or disables a loaded script; false when there is none.
    pub fn set_enabled(&self, name: &str, enabled: bool, reason: Option<String>) -> bool {
        let snapshot = self.snapshot();
        let Some(s) = snapshot.iter().find(|s| &*s.name == name) else {
            return false;
        };
        s.enabled.store(enabled, Ordering::Release);
        s.failures.store(0, Ordering::Release);
        *s.disabled_reason.lock().unwrap_or_else(|e| e.into_inner()) =
            if enabled { None } else { reason };
        true
    }

    /// The loaded scripts, by name.
    pub fn list(&self) -> Vec<ScriptInfo> {
        self.snapshot()
            .iter()
            .map(|s| ScriptInfo {
                name: s.name.to_string(),
                version: s.version,
                description: s.manifest.description.clone(),
                categories: s.manifest.categories.clone(),
                language: s.manifest.language,
                network_isolated: match &s.runtime {
                    Runtime::Python(p) => p.network_isolated(),
                    Runtime::Rhai { .. } => None,
                },
                enabled: s.enabled.load(Ordering::Acquire),
                disabled_reason: s
                    .disabled_reason
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                consecutive_failures: s.failures.load(Ordering::Acquire),
            })
            .collect()
    }

    /// Scripts disabled automatically since the last call: persist them.
    pub fn auto_disabled(&self) -> flume::Receiver<ScriptFailure> {
        self.disabled_rx.clone()
    }

    fn snapshot(&self) -> Arc<Vec<Arc<LoadedScript>>> {
        self.scripts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs every enabled script that matches `event`, one after the other on the calling
    /// thread, and gathers what they said. Callers get their parallelism from running
    /// several analyses at once (pipeline workers, [`ScriptSet::submit`]): spreading one
    /// event's scripts over threads was measured slower on 2 cores (docs/benchmarks.md).
    pub fn analyze(&self, event: &Arc<Event>) -> AnalysisReport {
        let started = Instant::now();
        let snapshot = self.snapshot();
        let todo: Vec<&Arc<LoadedScript>> = snapshot
            .iter()
            .filter(|s| {
                s.enabled.load(Ordering::Acquire)
                    && s.manifest.matches(event)
                    && self.agent_in_scope(&s.manifest.agent_tags, event)
            })
            .collect();
        let outcomes: Vec<Outcome> = todo
            .iter()
            .map(|s| (s.name.clone(), self.run(s, event)))
            .collect();

        let mut report = AnalysisReport::default();
        for (name, outcome) in outcomes {
            match outcome {
                Ok(Some(result)) => {
                    let script = todo.iter().find(|s| s.name == name).expect("ran it");
                    if let Some(f) = finding_from(script, &result, event) {
                        report.findings.push(f);
                    }
                    report.results.insert(name.to_string(), result);
                }
                Ok(None) => {}
                Err(e) => {
                    report.errors.insert(name.to_string(), e);
                }
            }
        }
        report.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        report
    }

    /// Runs one prepared script on `event` as a trial: whatever its categories and whether
    /// it is enabled, without installing it and without touching any loaded script's
    /// failure count. The report says what the script returned, its error, and the finding
    /// it would make; `matches` tells whether the pipeline would run it on this event.
    pub fn trial(&self, prepared: &PreparedScript, event: &Arc<Event>) -> (AnalysisReport, bool) {
        let script = &prepared.0;
        let started = Instant::now();
        let matches = script.manifest.matches(event)
            && self.agent_in_scope(&script.manifest.agent_tags, event);
        let mut report = AnalysisReport::default();
        match run_script(&self.engine, script, event) {
            Ok(Some(result)) => {
                if let Some(f) = finding_from(script, &result, event) {
                    report.findings.push(f);
                }
                report.results.insert(script.name.to_string(), result);
            }
            Ok(None) => {}
            Err(e) => {
                report.errors.insert(script.name.to_string(), e);
            }
        }
        report.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        (report, matches)
    }

    /// Runs [`ScriptSet::analyze`] on one of the set's own threads (one per CPU, kept for
    /// the set's life, so that their regex caches stay warm) and answers on the returned
    /// channel. Refused when [`MAX_PENDING_ANALYSES`] are waiting.
    pub fn submit(
        self: &Arc<Self>,
        event: Arc<Event>,
    ) -> Result<flume::Receiver<AnalysisReport>, Overloaded> {
        let (tx, rx) = flume::bounded(1);
        let set = self.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(set.analyze(&event));
        });
        self.executor.try_send(job).map_err(|_| Overloaded)?;
        Ok(rx)
    }

    /// One run of one script, with failure accounting.
    fn run(&self, script: &LoadedScript, event: &Arc<Event>) -> Result<Option<Value>, ScriptError> {
        let outcome = run_script(&self.engine, script, event);
        match &outcome {
            Ok(_) => script.failures.store(0, Ordering::Release),
            Err(e) => {
                let n = script.failures.fetch_add(1, Ordering::AcqRel) + 1;
                tracing::warn!(script = &*script.name, error = %e, consecutive = n, "script failed");
                let max = self.engine.limits().max_consecutive_failures;
                if max > 0 && n >= max && script.enabled.swap(false, Ordering::AcqRel) {
                    let reason = format!("disabled after {n} failed runs in a row; last: {e}");
                    tracing::error!(script = &*script.name, %reason, "script disabled");
                    *script
                        .disabled_reason
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
                    let _ = self.disabled_tx.send(ScriptFailure {
                        name: script.name.to_string(),
                        reason,
                    });
                }
            }
        }
        outcome
    }
}

fn run_script(
    engine: &ScriptEngine,
    script: &LoadedScript,
    event: &Arc<Event>,
) -> Result<Option<Value>, ScriptError> {
    let (ast, config) = match &script.runtime {
        Runtime::Rhai { ast, config } => (ast, config),
        Runtime::Python(p) => {
            let json = serde_json::to_vec(event.as_map())
                .map_err(|e| ScriptError::plain("runtime", e.to_string()))?;
            return p.run(&json, script.timeout);
        }
    };
    set_current_script(script.name.clone());
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        engine.call(
            ast,
            Dynamic::from(ScriptEvent(event.clone())),
            config.clone(),
            script.timeout,
        )
    }));
    let value = match result {
        Ok(r) => r?,
        Err(_) => {
            return Err(ScriptError::plain(
                "panic",
                "the script engine panicked; the run was abandoned",
            ));
        }
    };
    if value.is_unit() {
        Ok(None)
    } else if value.is_map() {
        Ok(Some(to_json(&value)))
    } else {
        Err(ScriptError::plain(
            "bad_return",
            format!("analyze must return a map or (), not {}", value.type_name()),
        ))
    }
}

/// A finding from a result with a numeric `score`.
fn finding_from(script: &LoadedScript, result: &Value, event: &Event) -> Option<Finding> {
    let score = result.get("score")?.as_f64()?;
    let summary = result
        .get("summary")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if script.manifest.description.is_empty() {
                format!("script {} matched", script.name)
            } else {
                script.manifest.description.clone()
            }
        });
    let mut f = Finding::new(format!("script:{}", script.name), score, summary)
        .about(event)
        .with_evidence(result.clone());
    if let Some(sev) = result
        .get("severity")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Severity>().ok())
    {
        f = f.with_severity(sev);
    }
    let techniques: Vec<String> = match result.get("technique") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    Some(f.with_techniques(techniques.into_iter().filter(|t| is_technique_id(t))))
}

/// Runs the script set on every ingested event, as one pipeline analyzer.
pub struct ScriptAnalyzer(pub Arc<ScriptSet>);

impl Analyzer for ScriptAnalyzer {
    fn name(&self) -> &str {
        "scripts"
    }
    fn interest(&self) -> Interest {
        Interest::All
    }
    fn analyze(&self, event: &Event) -> Vec<Finding> {
        self.0.analyze(&Arc::new(event.clone())).findings
    }
}
