//! The server under load: starting `vigil serve` (or naming a running one), its REST calls
//! outside the traffic itself (the load's script, draining, counting what was stored), and
//! the monitor that samples its RSS and queue depths every second.

use crate::generate::Generator;
use crate::stats::{Phase, Phases, SeqSet};
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the server is and how to reach it.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://HOST:PORT`.
    pub url: String,
    /// An API key (or JWT); admin for the load's script.
    pub token: String,
    /// The file-analysis protocol's address, when it is on.
    pub protocol: Option<String>,
    /// The server's process id, for its RSS.
    pub pid: Option<u32>,
}

/// What the server wrote to stderr: counted, the last errors kept, all of it copied to a
/// file when asked.
#[derive(Default)]
pub struct ServerLog {
    lines: AtomicU64,
    warnings: AtomicU64,
    errors: AtomicU64,
    last: Mutex<VecDeque<String>>,
}

/// Lines of the server's log kept for the report.
const KEPT_LOG_LINES: usize = 20;

/// The server's log, summarized.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogSummary {
    /// Lines written.
    pub lines: u64,
    /// Of which at WARN.
    pub warnings: u64,
    /// Of which at ERROR.
    pub errors: u64,
    /// The last WARN and ERROR lines.
    pub last_warnings_and_errors: Vec<String>,
}

impl ServerLog {
    fn line(&self, line: &str) {
        self.lines.fetch_add(1, Relaxed);
        let level = line.split_whitespace().take(3).find_map(|w| match w {
            "WARN" => Some(&self.warnings),
            "ERROR" => Some(&self.errors),
            _ => None,
        });
        if let Some(counter) = level {
            counter.fetch_add(1, Relaxed);
            let mut last = self.last.lock().unwrap();
            if last.len() == KEPT_LOG_LINES {
                last.pop_front();
            }
            last.push_back(line.chars().take(500).collect());
        }
    }

    /// The counts and the last lines.
    pub fn summary(&self) -> LogSummary {
        LogSummary {
            lines: self.lines.load(Relaxed),
            warnings: self.warnings.load(Relaxed),
            errors: self.errors.load(Relaxed),
            last_warnings_and_errors: self.last.lock().unwrap().iter().cloned().collect(),
        }
    }
}

/// A `vigil serve` this tool started.
pub struct Spawned {
    child: Child,
    /// Its data directory.
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// Its stderr.
    pub log: Arc<ServerLog>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// How the spawned server stopped.
#[derive(Clone, Debug, Serialize)]
pub struct Stopped {
    /// Seconds from SIGTERM to exit.
    pub shutdown_secs: f64,
    /// Its exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// Whether it had to be killed after the grace period.
    pub killed: bool,
}

/// Starts `vigil serve` on free ports (HTTP and the file-analysis protocol) with a new
/// data directory (a temporary one unless `data_dir` is given) and waits until both listen.
pub fn spawn(
    bin: &Path,
    data_dir: Option<&Path>,
    env: &[(String, String)],
    log_file: Option<&Path>,
) -> Result<(Target, Spawned)> {
    let (temp, dir) = match data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating the data directory {}", d.display()))?;
            (None, d.to_path_buf())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("vigil-load-")
                .tempdir()
                .context("creating a temporary data directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .current_dir(&dir)
        .env("VIGIL_PROTOCOL__ENABLED", "true")
        .env("VIGIL_PROTOCOL__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} serve", bin.display()))?;
    let pid = child.id();
    let log = Arc::new(ServerLog::default());
    let mut file = match log_file {
        Some(p) => Some(
            std::fs::File::create(p)
                .with_context(|| format!("creating the server log {}", p.display()))?,
        ),
        None => None,
    };
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr_log = log.clone();
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            stderr_log.line(&line);
            if let Some(f) = &mut file {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    // stdout: the first admin key alone on a line, then the listeners' addresses.
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let (mut key, mut http) = (None, None);
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sent {
                continue; // keep draining so the server never blocks on a full pipe
            }
            let t = line.trim();
            if t.starts_with("vgl_") {
                key = Some(t.to_string());
            } else if let Some(url) = t.strip_prefix("vigil: listening on ") {
                http = Some(url.to_string());
            } else if let Some(addr) = t.strip_prefix("vigil: file-analysis protocol on ") {
                let addr = addr.trim_end_matches(" (TLS)").to_string();
                let _ = tx.send((http.clone(), Some(addr), key.clone()));
                sent = true;
            }
        }
        if !sent {
            let _ = tx.send((http, None, key));
        }
    });
    let mut spawned = Spawned {
        child,
        data_dir: dir,
        _temp: temp,
        log,
        readers: vec![err_reader, out_reader],
    };
    let (http, protocol, key) = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(found) => found,
        Err(_) => {
            let _ = spawned.stop(Duration::from_secs(5));
            bail!("vigil serve did not start listening within 120 s");
        }
    };
    let fail = |spawned: &mut Spawned, what: &str| {
        let _ = spawned.stop(Duration::from_secs(5));
        let log = spawned.log.summary();
        anyhow!(
            "vigil serve {what}; its last warnings and errors:\n{}",
            log.last_warnings_and_errors.join("\n")
        )
    };
    let Some(url) = http else {
        return Err(fail(&mut spawned, "exited before listening"));
    };
    if url.starts_with("https://") {
        return Err(fail(
            &mut spawned,
            "serves TLS; vigil-load speaks plain HTTP only",
        ));
    }
    let Some(token) = key else {
        return Err(fail(
            &mut spawned,
            "printed no admin key (the data directory is not new?)",
        ));
    };
    Ok((
        Target {
            url,
            token,
            protocol,
            pid: Some(pid),
        },
        spawned,
    ))
}

impl Spawned {
    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after that).
    pub fn stop(&mut self, grace: Duration) -> Result<Stopped> {
        let started = Instant::now();
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(Stopped {
                shutdown_secs: 0.0,
                exit_code: status.code(),
                killed: false,
            });
        }
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let mut killed = false;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if started.elapsed() > grace {
                self.child.kill()?;
                killed = true;
                break self.child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ok(Stopped {
            shutdown_secs: started.elapsed().as_secs_f64(),
            exit_code: status.code(),
            killed,
        })
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The process's resident set size in MB (`VmRSS` in `/proc/PID/status`).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss_kb(&status).map(|kb| kb as f64 / 1024.0)
}

/// CPU seconds (user + system) the process has used so far (`/proc/PID/stat`).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = parse_cpu_ticks(&stat)?;
    (ticks_per_sec > 0).then(|| ticks as f64 / ticks_per_sec as f64)
}

/// `utime + stime` from a `/proc/PID/stat` line (fields 14 and 15, counted after the
/// parenthesized command name, which may contain spaces).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vmrss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text; `None`
/// when absent.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None // another metric whose name starts with this one
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Server metrics worth a line in the report (summed over labels).
pub const REPORTED_METRICS: &[&str] = &[
    "vigil_events_ingested_total",
    "vigil_events_rejected_total",
    "vigil_findings_total",
    "vigil_analyzer_panics_total",
    "vigil_stream_dropped_total",
    "vigil_network_scored_total",
    "vigil_network_rows_dropped_total",
    "vigil_incidents_opened_total",
];

/// The REST API, with the admin token.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client shared by all traffic.
    pub client: reqwest::Client,
    /// `http://HOST:PORT`.
    pub base: String,
    /// Bearer token.
    pub token: String,
}

impl Api {
    /// A client for `target`, each request limited to `timeout`.
    pub fn new(target: &Target, timeout: Duration) -> Result<Api> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(512)
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client,
            base: target.url.trim_end_matches('/').to_string(),
            token: target.token.clone(),
        })
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET with the token; the JSON answer of a 2xx.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let body = resp.text().await.with_context(|| format!("GET {path}"))?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", snippet(&body));
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> Result<String> {
        let resp = self.client.get(self.url("/metrics")).send().await?;
        Ok(resp.error_for_status()?.text().await?)
    }

    /// Waits until `/api/v1/health` answers 200.
    pub async fn wait_healthy(&self, wait: Duration) -> Result<Value> {
        let deadline = Instant::now() + wait;
        loop {
            match self.get_json("/api/v1/health").await {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Uploads the load's script: it flags encoded PowerShell in process events, so that
    /// ingested events and `POST /api/v1/analyze` both run the script engine.
    pub async fn upload_script(&self, name: &str) -> Result<()> {
        let body = json!({
            "name": name,
            "description": "vigil-load: PowerShell with an encoded command",
            "categories": ["process"],
            "config": {"words": ["downloadstring", "iex", "webclient"]},
            "timeout_ms": 50,
            "enabled": true,
            "source": LOAD_SCRIPT,
        });
        let resp = self
            .client
            .post(self.url("/api/v1/scripts"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .context("POST /api/v1/scripts")?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("POST /api/v1/scripts: {status}: {}", snippet(&text));
        }
        Ok(())
    }

    /// Deletes the load's script (on a shared server).
    pub async fn delete_script(&self, name: &str) -> Result<()> {
        let resp = self
            .client
            .delete(self.url(&format!("/api/v1/scripts/{name}")))
            .bearer_auth(&self.token)
            .send()
            .await?;
        resp.error_for_status()?;
        Ok(())
    }

    /// Waits until the ingest queue is empty and the analyzers are done (the analysis
    /// queue gauge at 0, or the findings counter still for 3 s), up to `wait`; how long it
    /// took, or `None` when it did not drain in time.
    pub async fn drain(&self, wait: Duration) -> Option<f64> {
        let started = Instant::now();
        let (mut last_findings, mut still_since) = (None, Instant::now());
        while started.elapsed() < wait {
            let ingest = self
                .get_json("/api/v1/health")
                .await
                .ok()
                .and_then(|v| v["ingest_queue"].as_f64());
            let metrics = self.metrics().await.unwrap_or_default();
            let analysis = metric_sum(&metrics, "vigil_analysis_queue_depth").unwrap_or(0.0);
            let findings = metric_sum(&metrics, "vigil_findings_total");
            if findings != last_findings {
                (last_findings, still_since) = (findings, Instant::now());
            }
            let quiet = analysis == 0.0 || still_since.elapsed() >= Duration::from_secs(3);
            if ingest == Some(0.0) && quiet {
                return Some(started.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None
    }

    /// Pages through every event stored for the run's host; their sequence numbers.
    pub async fn stored_events(&self, generator: &Generator) -> Result<Stored> {
        #[derive(Deserialize)]
        struct Page {
            events: Vec<IdOnly>,
            next: Option<String>,
        }
        #[derive(Deserialize)]
        struct IdOnly {
            event: EventId,
        }
        #[derive(Deserialize)]
        struct EventId {
            id: String,
        }
        let started = Instant::now();
        let mut stored = Stored::default();
        let mut next: Option<String> = None;
        loop {
            let mut req = self
                .client
                .get(self.url("/api/v1/events"))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(120))
                .query(&[("host.name", generator.host.as_str()), ("limit", "1000")]);
            if let Some(n) = &next {
                req = req.query(&[("next", n.as_str())]);
            }
            let resp = req.send().await.context("GET /api/v1/events")?;
            let status = resp.status();
            let body = resp.bytes().await.context("GET /api/v1/events")?;
            if !status.is_success() {
                bail!(
                    "GET /api/v1/events: {status}: {}",
                    snippet(&String::from_utf8_lossy(&body))
                );
            }
            let page: Page =
                serde_json::from_slice(&body).context("GET /api/v1/events: unexpected answer")?;
            stored.pages += 1;
            for e in page.events {
                stored.rows += 1;
                match generator.seq_of(&e.event.id) {
                    Some(seq) if stored.set.contains(seq) => stored.repeated += 1,
                    Some(seq) => stored.set.insert(seq),
                    None => stored.foreign += 1,
                }
            }
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        stored.secs = started.elapsed().as_secs_f64();
        Ok(stored)
    }

    /// The `events` count of the agent `id` in `GET /api/v1/agents` (a second, cheaper
    /// count kept by the store beside the events).
    pub async fn agent_events(&self, id: &str) -> Result<Option<u64>> {
        let v = self.get_json("/api/v1/agents").await?;
        Ok(v["agents"].as_array().and_then(|agents| {
            agents
                .iter()
                .find(|a| a["id"] == id)
                .and_then(|a| a["events"].as_u64())
        }))
    }
}

/// What `GET /api/v1/events?host.name=…` returned.
#[derive(Debug, Default)]
pub struct Stored {
    /// Pages read.
    pub pages: u64,
    /// Events listed.
    pub rows: u64,
    /// The run's events, by sequence number.
    pub set: SeqSet,
    /// Listed more than once (should be 0).
    pub repeated: u64,
    /// With an id that is not the run's (should be 0).
    pub foreign: u64,
    /// Seconds the paging took.
    pub secs: f64,
}

/// The first 300 characters of `text`, on one line.
pub fn snippet(text: &str) -> String {
    text.chars()
        .take(300)
        .collect::<String>()
        .replace(['\n', '\r'], " ")
}

/// The load's Rhai script (see docs/scripts.md): encoded PowerShell, decoded; a higher
/// score when the decoded command downloads something.
pub const LOAD_SCRIPT: &str = r#"
fn analyze(event, config) {
    let cmd = event["process.command_line"];
    if type_of(cmd) != "string" { return (); }
    let m = regex_captures(cmd, "(?i)\\bpowershell(\\.exe)?\\s+-e(nc|ncodedcommand)?\\s+([A-Za-z0-9+/=]{8,})");
    if m.len() < 4 { return (); }
    let decoded = base64_decode_utf16(m[3]);
    let score = 50;
    if type_of(decoded) == "string" && contains_any(decoded, config.words) { score = 65; }
    #{
        score: score,
        summary: "vigil-load: PowerShell with an encoded command",
        technique: ["T1059.001", "T1027"],
        decoded: decoded,
    }
}
"#;

/// One second of the server's vital signs.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds from the start of the run.
    pub t: f64,
    /// The phase then.
    pub phase: Phase,
    /// RSS in MB (`None`: no pid).
    pub rss_mb: Option<f64>,
    /// `vigil_ingest_queue_depth`.
    pub ingest_queue: Option<f64>,
    /// `vigil_analysis_queue_depth` (a gauge the pipeline sets at each commit).
    pub analysis_queue: Option<f64>,
    /// The server's CPU use over the last second, in % of one core.
    pub cpu_percent: Option<f64>,
    /// This tool's own CPU use over the last second, in % of one core.
    pub load_cpu_percent: Option<f64>,
}

/// Samples the server every second until stopped.
pub struct Monitor {
    samples: Mutex<Vec<Sample>>,
}

impl Monitor {
    /// Samples `pid` and `/metrics` every second, timed from `start`, until `stop` turns
    /// true.
    pub fn start(
        api: Api,
        pid: Option<u32>,
        phases: Phases,
        start: Instant,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> (Arc<Monitor>, tokio::task::JoinHandle<()>) {
        let monitor = Arc::new(Monitor {
            samples: Mutex::new(Vec::new()),
        });
        let m = monitor.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let cpu_of = |pid: Option<u32>| pid.and_then(cpu_secs);
            let me = Some(std::process::id());
            let mut last = (start.elapsed().as_secs_f64(), cpu_of(pid), cpu_of(me));
            let percent = |now: Option<f64>, before: Option<f64>, secs: f64| match (now, before) {
                (Some(n), Some(b)) if secs > 0.0 => Some(((n - b) / secs * 1000.0).round() / 10.0),
                _ => None,
            };
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                let t = start.elapsed().as_secs_f64();
                let rss_mb = pid.and_then(rss_mb);
                let (server_cpu, load_cpu) = (cpu_of(pid), cpu_of(me));
                let cpu_percent = percent(server_cpu, last.1, t - last.0);
                let load_cpu_percent = percent(load_cpu, last.2, t - last.0);
                last = (t, server_cpu, load_cpu);
                // A slow /metrics (an overloaded server) must not stall the RSS series.
                let metrics = tokio::time::timeout(Duration::from_millis(900), api.metrics())
                    .await
                    .ok()
                    .and_then(Result::ok);
                let gauge = |name| metrics.as_deref().and_then(|m| metric_sum(m, name));
                m.samples.lock().unwrap().push(Sample {
                    t,
                    phase: phases.at(t),
                    rss_mb,
                    ingest_queue: gauge("vigil_ingest_queue_depth"),
                    analysis_queue: gauge("vigil_analysis_queue_depth"),
                    cpu_percent,
                    load_cpu_percent,
                });
            }
        });
        (monitor, task)
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.lock().unwrap().last().cloned()
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }
}

/// Selected server counters from `/metrics` text.
pub fn reported_metrics(text: &str) -> BTreeMap<String, f64> {
    REPORTED_METRICS
        .iter()
        .filter_map(|name| metric_sum(text, name).map(|v| (name.to_string(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vmrss() {
        let status = "Name:\tvigil\nVmPeak:\t  900000 kB\nVmRSS:\t   123456 kB\nThreads:\t9\n";
        assert_eq!(parse_vmrss_kb(status), Some(123456));
        assert_eq!(parse_vmrss_kb("Name: x\n"), None);
        // This process has an RSS.
        assert!(rss_mb(std::process::id()).is_some_and(|mb| mb > 0.0));
    }

    #[test]
    fn reads_cpu_ticks() {
        let stat = "4242 (vigil serve) S 1 4242 4242 0 -1 4194560 5000 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_secs(std::process::id()).is_some());
    }

    #[test]
    fn sums_metrics_over_labels() {
        let text = "# HELP vigil_findings_total findings\n\
                    # TYPE vigil_findings_total counter\n\
                    vigil_findings_total{analyzer=\"script:a\",severity=\"medium\"} 12\n\
                    vigil_findings_total{analyzer=\"network\",severity=\"low\"} 3\n\
                    vigil_findings_total_other 100\n\
                    vigil_ingest_queue_depth 0\n\
                    vigil_analysis_queue_depth 17\n";
        assert_eq!(metric_sum(text, "vigil_findings_total"), Some(15.0));
        assert_eq!(metric_sum(text, "vigil_ingest_queue_depth"), Some(0.0));
        assert_eq!(metric_sum(text, "vigil_analysis_queue_depth"), Some(17.0));
        assert_eq!(metric_sum(text, "vigil_missing"), None);
        let m = reported_metrics(text);
        assert_eq!(m.get("vigil_findings_total"), Some(&15.0));
        assert!(!m.contains_key("vigil_events_ingested_total"));
    }

    #[test]
    fn counts_log_levels() {
        let log = ServerLog::default();
        log.line("2026-12-01T06:00:00.000000Z  WARN vigil: something odd");
        log.line("2026-12-01T06:00:00.000000Z ERROR vigil_pipeline: group commit failed");
        log.line("2026-12-01T06:00:00.000000Z  INFO vigil: fine");
        log.line("a message that mentions ERROR later on, far from the level column");
        let s = log.summary();
        assert_eq!((s.lines, s.warnings, s.errors), (4, 1, 1));
        assert_eq!(s.last_warnings_and_errors.len(), 2);
    }
}
