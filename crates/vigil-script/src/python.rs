//! The second runtime: Python scripts in seed 000's own contract,
//! `Start_Analysis(queue_instance, DATA)`, run out of process.
//!
//! Each Python script gets up to `workers_per_script` worker processes, started on demand
//! and kept between runs. A worker is `python3 -I -S -B` running `python_driver.py` inside
//! the OS sandbox of [`crate::sandbox`]: PID 1 of its own PID, mount, network, IPC and UTS
//! namespaces, a root holding only the interpreter and its libraries read-only, a separate
//! uid (`nobody` by default) when the server is root, resource limits (address space, CPU
//! seconds, no file writes, no core dumps, few descriptors), Landlock where the kernel has
//! it, and a seccomp filter (no sockets, no new processes, no exec, no signals but to
//! itself). Its environment is empty.
//!
//! Inside Python, an audit hook refuses files, sockets, subprocesses and native code with
//! a clear "vigil sandbox" error: a courtesy to script authors, not the boundary.
//!
//! A wall-clock timeout bounds each run, after which the worker is killed (and with it,
//! being PID 1 of its namespace, anything it started) and a fresh worker is started for the
//! next run. See `docs/scripts.md`.

use crate::ScriptError;
use crate::sandbox::{Limits, Sandbox};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The `[scripts.python]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PythonConfig {
    /// Whether Python scripts may be loaded at all.
    pub enabled: bool,
    /// The interpreter, an absolute path. The worker's sandbox exposes it (and its
    /// libraries) read-only, so it may live where `run_as_uid` could not reach on the host
    /// (a virtual environment under /root).
    pub interpreter: String,
    /// Worker processes per script, started on demand; runs beyond this wait.
    pub workers_per_script: usize,
    /// Address-space limit of a worker, in MiB.
    pub memory_mb: u64,
    /// CPU seconds a worker may use in its life; it is replaced when it dies of it.
    pub cpu_seconds: u64,
    /// Runs after which a worker is replaced by a fresh one.
    pub max_runs_per_worker: u64,
    /// Largest result line a worker may answer, in bytes.
    pub max_result_bytes: usize,
    /// The uid (and gid) workers run as when the server runs as root.
    pub run_as_uid: u32,
    /// Kept so that older files still load: every worker now has an empty network
    /// namespace and no socket calls as part of its sandbox, whatever this says.
    pub isolate_network: bool,
    /// How long a worker may take to start and load its script, in milliseconds.
    pub start_timeout_ms: u64,
    /// Run Python scripts even when the kernel does not give the whole worker sandbox (a
    /// PID, mount or network namespace, or seccomp is missing). Off: such a host refuses
    /// Python scripts with an error that names what is missing.
    pub allow_weak_sandbox: bool,
}

impl Default for PythonConfig {
    fn default() -> Self {
        PythonConfig {
            enabled: false,
            interpreter: "/usr/bin/python3".into(),
            workers_per_script: 2,
            memory_mb: 512,
            cpu_seconds: 300,
            max_runs_per_worker: 10_000,
            max_result_bytes: 1 << 20,
            run_as_uid: 65534,
            isolate_network: true,
            start_timeout_ms: 10_000,
            allow_weak_sandbox: false,
        }
    }
}

fn err(code: &'static str, message: impl Into<String>) -> ScriptError {
    ScriptError::plain(code, message)
}

/// Network isolation of a script's workers, as last seen.
const NET_UNKNOWN: u8 = 0;
const NET_ISOLATED: u8 = 1;
const NET_SHARED: u8 = 2;

/// One worker process and the channel its answers arrive on.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: flume::Receiver<Result<Vec<u8>, String>>,
    runs: u64,
}

impl Worker {
    /// Kills the worker's supervisor (and so the worker, which dies with it, and whatever
    /// the worker started, in its PID namespace) and reaps it.
    fn kill(mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the group the supervisor leads (it called setsid); no memory
        // is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Why the process ended, for an error message.
    fn death(mut self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let status = match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                std::thread::sleep(Duration::from_millis(20));
                self.child.try_wait().ok().flatten()
            }
        };
        let text = match status.and_then(|s| s.signal()) {
            Some(libc::SIGXCPU) => "the worker used up its CPU seconds (SIGXCPU)".to_string(),
            Some(libc::SIGXFSZ) => "the worker tried to write a file (SIGXFSZ)".to_string(),
            Some(libc::SIGKILL) => "the worker was killed (SIGKILL)".to_string(),
            Some(libc::SIGSEGV) => "the worker crashed (SIGSEGV)".to_string(),
            Some(sig) => format!("the worker died of signal {sig}"),
            None => match status.and_then(|s| s.code()) {
                Some(code) => format!("the worker exited with status {code}"),
                None => "the worker stopped answering".to_string(),
            },
        };
        self.kill();
        text
    }
}

/// Idle workers, and how many exist (idle or running).
#[derive(Default)]
struct Pool {
    idle: Vec<Worker>,
    live: usize,
}

/// A loaded Python script and its pool of workers.
pub(crate) struct PythonScript {
    name: Arc<str>,
    init_line: Vec<u8>,
    config: Arc<PythonConfig>,
    sandbox: Arc<Sandbox>,
    pool: Mutex<Pool>,
    freed: Condvar,
    network: AtomicU8,
    closed: AtomicBool,
}

impl PythonScript {
    /// Starts one worker, which compiles and loads the script, and keeps it: errors in the
    /// script (syntax with line and column, module-level exceptions, no `Start_Analysis`)
    /// come back here, at upload.
    pub(crate) fn load(
        name: &str,
        source: &str,
        script_config: &serde_json::Map<String, Value>,
        config: Arc<PythonConfig>,
    ) -> Result<PythonScript, ScriptError> {
        if !config.enabled {
            return Err(err(
                "python_disabled",
                "Python scripts are off on this server: an admin enables them with \
                 `[scripts.python] enabled = true` (read docs/scripts.md on their isolation)",
            ));
        }
        let sandbox = crate::sandbox::sandbox_for(&config)?;
        let mut init_line = serde_json::to_vec(&serde_json::json!({
            "name": name, "source": source, "config": script_config,
        }))
        .map_err(|e| err("compile", e.to_string()))?;
        init_line.push(b'\n');
        let script = PythonScript {
            name: Arc::from(name),
            init_line,
            config,
            sandbox,
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            network: AtomicU8::new(NET_UNKNOWN),
            closed: AtomicBool::new(false),
        };
        let worker = script.spawn()?;
        let mut pool = script.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.live = 1;
        pool.idle.push(worker);
        drop(pool);
        Ok(script)
    }

    /// Whether the last worker started had a network namespace of its own; `None` before
    /// any was started.
    pub(crate) fn network_isolated(&self) -> Option<bool> {
        match self.network.load(Ordering::Relaxed) {
            NET_ISOLATED => Some(true),
            NET_SHARED => Some(false),
            _ => None,
        }
    }

    fn spawn(&self) -> Result<Worker, ScriptError> {
        let cfg = &self.config;
        let limits = Limits {
            address_space: cfg.memory_mb.saturating_mul(1 << 20),
            cpu_seconds: cfg.cpu_seconds,
            nproc: self.sandbox.status.run_as_uid.is_some(),
        };
        let start_err = |e: String| {
            err(
                "worker_start",
                format!(
                    "cannot start the Python interpreter `{}`: {e}; set [scripts.python] \
                     interpreter to a Python 3",
                    cfg.interpreter
                ),
            )
        };
        let (mut cmd, report) = crate::sandbox::worker_command(&self.sandbox, limits)
            .map_err(|e| start_err(e.to_string()))?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = cmd.spawn();
        drop(cmd);
        let mut child =
            spawned.map_err(|e| start_err(report.describe().unwrap_or(e.to_string())))?;
        self.network
            .store(net_isolation(child.id()), Ordering::Relaxed);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = flume::bounded(1);
        let max = self.config.max_result_bytes;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("vigil-py-{}", self.name))
            .spawn(move || read_answers(stdout, max, tx))
            .map_err(|e| err("worker_start", e.to_string()))?;
        std::thread::Builder::new()
            .name(format!("vigil-py-log-{name}"))
            .spawn(move || log_output(stderr, name))
            .map_err(|e| err("worker_start", e.to_string()))?;
        let mut worker = Worker {
            child,
            stdin: {
                let _ = stdin.write_all(&self.init_line);
                let _ = stdin.flush();
                stdin
            },
            lines,
            runs: 0,
        };
        let start_timeout = Duration::from_millis(self.config.start_timeout_ms);
        match worker.lines.recv_timeout(start_timeout) {
            Ok(Ok(line)) => {
                let answer: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
                if answer.get("ready") == Some(&Value::Bool(true)) {
                    worker.runs = 0;
                    Ok(worker)
                } else {
                    worker.kill();
                    Err(error_from(&answer))
                }
            }
            Ok(Err(e)) => {
                worker.kill();
                Err(err("worker_start", e))
            }
            Err(flume::RecvTimeoutError::Timeout) => {
                worker.kill();
                Err(err(
                    "worker_start",
                    format!(
                        "the script did not load within {} ms",
                        self.config.start_timeout_ms
                    ),
                ))
            }
            Err(flume::RecvTimeoutError::Disconnected) => {
                let why = worker.death();
                Err(err(
                    "worker_start",
                    format!("the Python worker ended while loading the script: {why}"),
                ))
            }
        }
    }

    /// A worker to run on: an idle one, a new one while under the limit, or the first
    /// freed before `deadline`.
    fn acquire(&self, deadline: Instant) -> Result<Worker, ScriptError> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(w) = pool.idle.pop() {
                return Ok(w);
            }
            if pool.live < self.config.workers_per_script.max(1) {
                pool.live += 1;
                drop(pool);
                return self.spawn().inspect_err(|_| self.forget());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(err(
                    "busy",
                    format!(
                        "all {} workers of the script were busy",
                        self.config.workers_per_script
                    ),
                ));
            }
            pool = self
                .freed
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// One worker fewer (it was killed or never started).
    fn forget(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.live = pool.live.saturating_sub(1);
        self.freed.notify_one();
    }

    fn release(&self, worker: Worker) {
        if self.closed.load(Ordering::Acquire) || worker.runs >= self.config.max_runs_per_worker {
            worker.kill();
            self.forget();
            return;
        }
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .push(worker);
        self.freed.notify_one();
    }

    /// Runs the script on one event (`event_json`: compact JSON, no newline), within
    /// `timeout` once a worker is at hand.
    pub(crate) fn run(
        &self,
        event_json: &[u8],
        timeout: Duration,
    ) -> Result<Option<Value>, ScriptError> {
        let mut worker = self.acquire(Instant::now() + timeout.max(Duration::from_secs(1)))?;
        let deadline = Instant::now() + timeout;
        worker.runs += 1;
        let sent = worker
            .stdin
            .write_all(event_json)
            .and_then(|_| worker.stdin.write_all(b"\n"))
            .and_then(|_| worker.stdin.flush());
        if let Err(e) = sent {
            let why = worker.death();
            self.forget();
            return Err(err("worker_died", format!("{why} ({e})")));
        }
        let answer = match worker
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                worker.kill();
                self.forget();
                return Err(err("data_too_large", e));
            }
            Err(flume::RecvTimeoutError::Timeout) => {
                worker.kill();
                self.forget();
                return Err(err(
                    "timeout",
                    format!(
                        "ran longer than {} ms; the worker was killed",
                        timeout.as_millis()
                    ),
                ));
            }
            Err(flume::RecvTimeoutError::Disconnected) => {
                let why = worker.death();
                self.forget();
                return Err(err("worker_died", why));
            }
        };
        self.release(worker);
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| err("bad_return", format!("the worker answered bad JSON: {e}")))?;
        match answer {
            Value::Object(mut m) => {
                if let Some(v) = m.remove("ok") {
                    Ok(Some(v))
                } else if m.contains_key("none") {
                    Ok(None)
                } else {
                    Err(error_from(&Value::Object(m)))
                }
            }
            other => Err(error_from(&other)),
        }
    }
}

impl Drop for PythonScript {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        for w in self
            .pool
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .drain(..)
        {
            w.kill();
        }
    }
}

/// The error a worker reported, with its line and column.
fn error_from(answer: &Value) -> ScriptError {
    let e = answer.get("error").unwrap_or(&Value::Null);
    let code = match e.get("code").and_then(Value::as_str) {
        Some("compile") => "compile",
        Some("no_analyze") => "no_analyze",
        Some("bad_return") => "bad_return",
        Some("runtime") => "runtime",
        _ => "worker_protocol",
    };
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the worker answered {answer}"));
    let as_usize = |k: &str| {
        e.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    ScriptError {
        code,
        message,
        line: as_usize("line"),
        column: as_usize("column"),
    }
}

/// Reads answer lines of at most `max` bytes; a longer line ends the worker's usefulness.
fn read_answers(
    stdout: std::process::ChildStdout,
    max: usize,
    tx: flume::Sender<Result<Vec<u8>, String>>,
) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = Vec::new();
        let n = match (&mut reader)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let item = if line.last() == Some(&b'\n') {
            line.pop();
            Ok(line)
        } else if n > max {
            Err(format!("the result is larger than {max} bytes"))
        } else {
            return; // end of stream mid-line: the worker died
        };
        let stop = item.is_err();
        if tx.send(item).is_err() || stop {
            return;
        }
    }
}

/// Logs what the script prints, a line at a time, each cut at 1 KiB.
fn log_output(stderr: std::process::ChildStderr, script: Arc<str>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    tracing::info!(script = &*script, runtime = "python", "{text}");
                }
                if line.last() != Some(&b'\n') {
                    // Skip the rest of an overlong line.
                    let mut rest = Vec::new();
                    let _ = reader.read_until(b'\n', &mut rest);
                }
            }
        }
    }
}

/// Whether process `pid` is in a network namespace other than ours.
fn net_isolation(pid: u32) -> u8 {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
    let ours = std::fs::read_link("/proc/self/ns/net");
    match (theirs, ours) {
        (Ok(a), Ok(b)) if a != b => NET_ISOLATED,
        (Ok(_), Ok(_)) => NET_SHARED,
        _ => NET_UNKNOWN,
    }
}
