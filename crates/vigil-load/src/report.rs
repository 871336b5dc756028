//! The run's summary: what is written to `--json`, the verdicts and the table printed at
//! the end.

use crate::server::{LogSummary, Sample, Stopped};
use crate::stats::{KindSummary, Phase, Phases, Plateau, RssTrend, Second};
use crate::traffic::ErrorSample;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything about a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `vigil-load`.
    pub tool: &'static str,
    /// This tool's version.
    pub version: &'static str,
    /// The run's id.
    pub run: String,
    /// The `host.name` of every event of the run.
    pub host: String,
    /// When the traffic started (RFC 3339).
    pub started_at: String,
    /// The command line's options (without the token).
    pub config: Value,
    /// The server.
    pub target: TargetInfo,
    /// The phases' lengths.
    pub phases: Phases,
    /// Seconds of steady load before RSS is measured.
    pub warmup_s: u64,
    /// Per kind and phase.
    pub rows: Vec<KindSummary>,
    /// The WebSocket subscribers.
    pub websocket: WsSummary,
    /// Connections opened to the file-analysis protocol.
    pub protocol_connections: u64,
    /// Acknowledged against stored events.
    pub events: EventCheck,
    /// Memory.
    pub rss: RssReport,
    /// CPU.
    pub cpu: CpuReport,
    /// The overload phase, when there was one.
    pub overload: Option<OverloadReport>,
    /// The server's own view.
    pub server: ServerReport,
    /// Some failed requests, to reproduce them.
    pub error_samples: Vec<ErrorSample>,
    /// One point a second.
    pub series: Vec<SeriesPoint>,
    /// Pass/fail (`null`: not evaluated).
    pub verdicts: Verdicts,
    /// No verdict failed.
    pub passed: bool,
}

/// The server under load.
#[derive(Debug, Serialize)]
pub struct TargetInfo {
    /// Its HTTP address.
    pub url: String,
    /// Its file-analysis protocol address.
    pub protocol: Option<String>,
    /// Its pid.
    pub pid: Option<u32>,
    /// Whether this tool started it.
    pub spawned: bool,
    /// Its data directory, when this tool started it.
    pub data_dir: Option<String>,
}

/// The WebSocket subscribers' totals.
#[derive(Debug, Serialize)]
pub struct WsSummary {
    /// Subscribers kept open.
    pub subscribers: usize,
    /// Connections made (first ones and reconnections).
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Closed by the server or broken during the run.
    pub disconnects: u64,
    /// Of which closed as slow consumers (1008).
    pub slow_consumer_closes: u64,
    /// Findings received, all subscribers together.
    pub messages: u64,
}

/// Events the server acknowledged against the events it lists for the run's host.
#[derive(Debug, Default, Serialize)]
pub struct EventCheck {
    /// Events acknowledged by bulk answers (steady and overload).
    pub acknowledged: u64,
    /// The run's events listed by `GET /api/v1/events?host.name=…`.
    pub stored: Option<u64>,
    /// Acknowledged but not stored: lost.
    pub lost: Option<u64>,
    /// Stored although no answer acknowledged them (requests whose answer did not arrive).
    pub stored_unacknowledged: Option<u64>,
    /// Events listed twice (should be 0).
    pub listed_twice: Option<u64>,
    /// Events of the host whose id is not the run's (should be 0).
    pub foreign: Option<u64>,
    /// A few lost ids.
    pub first_lost_ids: Vec<String>,
    /// The agent's event count (`GET /api/v1/agents`), a second opinion.
    pub agent_events: Option<u64>,
    /// Acknowledged as duplicates (should be 0: every id is new).
    pub duplicates: u64,
    /// Bulk lines refused (should be 0).
    pub rejected_lines: u64,
    /// Pages read.
    pub pages: u64,
    /// Seconds the count took.
    pub count_secs: f64,
    /// Why the count could not be made.
    pub error: Option<String>,
}

/// RSS over the run.
#[derive(Debug, Default, Serialize)]
pub struct RssReport {
    /// The steady phase after the warm-up, and its verdict.
    pub trend: Option<RssTrend>,
    /// Largest in the steady phase (warm-up included).
    pub steady_max_mb: Option<f64>,
    /// Largest during the overload.
    pub overload_max_mb: Option<f64>,
    /// Largest during the recovery.
    pub recovery_max_mb: Option<f64>,
    /// The last sample.
    pub last_mb: Option<f64>,
    /// The budget for `memory_bounded` (`--rss-limit-mb`), if any.
    pub limit_mb: Option<f64>,
    /// Whether RSS levelled off during the overload (see `stats::plateau`).
    pub overload_plateau: Option<Plateau>,
}

/// CPU use per phase, in % of one core (a 2-core machine has 200%).
#[derive(Debug, Default, Serialize)]
pub struct CpuReport {
    /// Cores of this machine.
    pub cores: usize,
    /// The server's mean per phase.
    pub server_mean: BTreeMap<String, f64>,
    /// The server's highest second per phase.
    pub server_max: BTreeMap<String, f64>,
    /// vigil-load's own mean per phase.
    pub load_mean: BTreeMap<String, f64>,
}

impl CpuReport {
    /// Means and maxima of `samples` per phase.
    pub fn of(samples: &[Sample], cores: usize) -> CpuReport {
        let mut r = CpuReport {
            cores,
            ..Default::default()
        };
        for phase in Phase::ALL {
            let of = |f: fn(&Sample) -> Option<f64>| -> Vec<f64> {
                samples
                    .iter()
                    .filter(|s| s.phase == phase)
                    .filter_map(f)
                    .collect()
            };
            let (server, load) = (of(|s| s.cpu_percent), of(|s| s.load_cpu_percent));
            let mean = |v: &[f64]| (v.iter().sum::<f64>() / v.len() as f64 * 10.0).round() / 10.0;
            if !server.is_empty() {
                r.server_mean.insert(phase.name().into(), mean(&server));
                let max = server.iter().copied().fold(0.0, f64::max);
                r.server_max.insert(phase.name().into(), max);
            }
            if !load.is_empty() {
                r.load_mean.insert(phase.name().into(), mean(&load));
            }
        }
        r
    }

    fn line(&self) -> String {
        let show = |m: &BTreeMap<String, f64>| {
            Phase::ALL
                .iter()
                .filter_map(|p| m.get(p.name()).map(|v| format!("{} {v:.0}%", p.name())))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "CPU (% of one core, {} cores = {}%): server mean {} (max {}); vigil-load mean {}",
            self.cores,
            self.cores * 100,
            show(&self.server_mean),
            show(&self.server_max),
            show(&self.load_mean)
        )
    }
}

/// The overload phase.
#[derive(Debug, Serialize)]
pub struct OverloadReport {
    /// Blast requests sent.
    pub requests: u64,
    /// Blast requests stored (2xx).
    pub ok: u64,
    /// Events they stored.
    pub events_acked: u64,
    /// Shed with 429, all kinds, during the overload.
    pub status_429: u64,
    /// Shed with 503, all kinds, during the overload.
    pub status_503: u64,
    /// 5xx other than 503, all kinds, during the overload.
    pub status_5xx: u64,
    /// Transport errors, all kinds, during the overload.
    pub transport_errors: u64,
    /// 429/503 without `Retry-After`, all kinds, all phases.
    pub retry_after_missing: u64,
    /// Seconds into the recovery phase after which every second's requests succeeded at
    /// 99% or more to the end (held at least `recovery_hold_s`).
    pub recovered_after_s: Option<usize>,
    /// How long the success had to hold.
    pub recovery_hold_s: usize,
    /// Per second of the recovery: requests and successes of the steady kinds.
    pub recovery_seconds: Vec<Second>,
}

/// The server's own view of the run.
#[derive(Debug, Default, Serialize)]
pub struct ServerReport {
    /// Counters from `/metrics` at the end.
    pub metrics: BTreeMap<String, f64>,
    /// Seconds until the queues drained after the traffic (`None`: not within the limit).
    pub drained_secs: Option<f64>,
    /// Its stderr (spawned servers).
    pub log: Option<LogSummary>,
    /// How it stopped (spawned servers).
    pub stopped: Option<Stopped>,
}

/// One second of the run: the server's vital signs and the requests of that second.
#[derive(Debug, Serialize)]
pub struct SeriesPoint {
    /// RSS, queues and CPU.
    #[serde(flatten)]
    pub sample: Sample,
    /// Steady-kind requests sent in this second.
    pub requests: u64,
    /// Of which succeeded.
    pub ok: u64,
}

impl SeriesPoint {
    /// Monitor samples joined with the per-second request counts.
    pub fn join(samples: &[Sample], seconds: &[Second]) -> Vec<SeriesPoint> {
        samples
            .iter()
            .map(|s| {
                let sec = seconds
                    .get(s.t.floor() as usize)
                    .copied()
                    .unwrap_or_default();
                SeriesPoint {
                    sample: s.clone(),
                    requests: sec.total,
                    ok: sec.ok,
                }
            })
            .collect()
    }
}

/// Pass (`true`), fail (`false`) or not evaluated (`None`).
#[derive(Debug, Default, Serialize)]
pub struct Verdicts {
    /// No 5xx other than 503 (nor protocol `ERROR 7`) in any phase.
    pub zero_5xx: bool,
    /// Every acknowledged event is stored.
    pub zero_lost: bool,
    /// RSS flat over the measured steady window (see `stats::rss_trend`).
    pub rss_flat: Option<bool>,
    /// Back at ≥ 99% success after the overload, held to the end.
    pub recovered: Option<bool>,
    /// Every 429/503 carried `Retry-After`.
    pub retry_after: Option<bool>,
    /// RSS levelled off during the overload (and stayed under `--rss-limit-mb`, if set).
    pub memory_bounded: Option<bool>,
}

impl Verdicts {
    /// Whether none failed.
    pub fn passed(&self) -> bool {
        self.zero_5xx
            && self.zero_lost
            && [
                self.rss_flat,
                self.recovered,
                self.retry_after,
                self.memory_bounded,
            ]
            .iter()
            .all(|v| v.unwrap_or(true))
    }

    fn line(&self) -> String {
        let show = |v: Option<bool>| match v {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        format!(
            "zero_5xx {}  zero_lost {}  rss_flat {}  recovered {}  retry_after {}  memory_bounded {}",
            show(Some(self.zero_5xx)),
            show(Some(self.zero_lost)),
            show(self.rss_flat),
            show(self.recovered),
            show(self.retry_after),
            show(self.memory_bounded),
        )
    }
}

fn opt_mb(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1}"))
}

fn opt_n(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |v| v.to_string())
}

impl Summary {
    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let t = &self.target;
        let _ = writeln!(
            out,
            "\nvigil-load run {} ({}) against {}{}{}: steady {} s (warm-up {} s), overload {} s, recovery {} s",
            self.run,
            self.host,
            t.url,
            t.pid.map_or(String::new(), |p| format!(" pid {p}")),
            if t.spawned { ", spawned" } else { "" },
            self.phases.steady,
            self.warmup_s,
            self.phases.overload,
            self.phases.recovery,
        );
        let _ = writeln!(
            out,
            "\n{:<8} {:<8} {:>7} {:>7} {:>6} {:>5} {:>5} {:>5} {:>6} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8}",
            "kind",
            "phase",
            "sent",
            "2xx",
            "429",
            "503",
            "4xx",
            "5xx",
            "transp",
            "dropped",
            "req/s",
            "ev/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms"
        );
        for r in &self.rows {
            let x = &r.totals;
            let l = &r.latency_ms;
            let _ = writeln!(
                out,
                "{:<8} {:<8} {:>7} {:>7} {:>6} {:>5} {:>5} {:>5} {:>6} {:>7} {:>8.1} {:>8.0} {:>7.1} {:>7.1} {:>7.1} {:>8.1}",
                r.kind.name(),
                r.phase.name(),
                x.sent,
                x.ok,
                x.status_429,
                x.status_503,
                x.other_4xx,
                x.status_5xx,
                x.transport_errors,
                x.dropped_by_client,
                r.requests_per_sec,
                r.events_per_sec,
                l.p50,
                l.p95,
                l.p99,
                l.max
            );
        }
        let hits: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.totals.hits > 0)
            .map(|r| {
                format!(
                    "{} {} {}/{}",
                    r.kind.name(),
                    r.phase.name(),
                    r.totals.hits,
                    r.totals.ok
                )
            })
            .collect();
        if !hits.is_empty() {
            let _ = writeln!(
                out,
                "analysis reacted (script result, anomaly, malicious verdict): {}",
                hits.join(", ")
            );
        }
        let w = &self.websocket;
        let _ = writeln!(
            out,
            "\nWebSocket: {} subscribers, {} connects ({} failed), {} disconnects ({} as slow consumers), {} findings received",
            w.subscribers,
            w.connects,
            w.connect_errors,
            w.disconnects,
            w.slow_consumer_closes,
            w.messages
        );
        let _ = writeln!(
            out,
            "Protocol: {} connections opened",
            self.protocol_connections
        );
        let e = &self.events;
        let _ = writeln!(
            out,
            "Events: {} acknowledged, {} stored for {} ({} pages, {:.1} s), lost {}, stored unacknowledged {}, duplicates {}, rejected lines {}; agent count {}",
            e.acknowledged,
            opt_n(e.stored),
            self.host,
            e.pages,
            e.count_secs,
            opt_n(e.lost),
            opt_n(e.stored_unacknowledged),
            e.duplicates,
            e.rejected_lines,
            opt_n(e.agent_events),
        );
        if let Some(err) = &e.error {
            let _ = writeln!(out, "  count failed: {err}");
        }
        if !e.first_lost_ids.is_empty() {
            let _ = writeln!(out, "  lost, e.g.: {}", e.first_lost_ids.join(", "));
        }
        let r = &self.rss;
        match &r.trend {
            Some(tr) => {
                let _ = writeln!(
                    out,
                    "RSS (MB): start of measure {:.1} (t={:.0} s), mean {:.1}, max {:.1}, end {:.1} (t={:.0} s); slope {:+.2} MB/min, projected {:+.1} MB over the window (allowed {:.1}): {}",
                    tr.start_mb,
                    tr.from_s,
                    tr.mean_mb,
                    tr.max_mb,
                    tr.end_mb,
                    tr.to_s,
                    tr.slope_mb_per_min,
                    tr.projected_growth_mb,
                    tr.allowed_growth_mb,
                    if tr.flat { "flat" } else { "GROWING" }
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "RSS: no trend (no pid, or too few samples after the warm-up)"
                );
            }
        }
        let _ = writeln!(
            out,
            "RSS max (MB): steady {}, overload {}, recovery {}; last {}{}",
            opt_mb(r.steady_max_mb),
            opt_mb(r.overload_max_mb),
            opt_mb(r.recovery_max_mb),
            opt_mb(r.last_mb),
            r.limit_mb
                .map_or(String::new(), |l| format!(" (budget {l:.0})"))
        );
        match &r.overload_plateau {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "RSS in the overload: peak {:.1} MB in its middle third, {:.1} MB in its last third: {}",
                    p.middle_max_mb,
                    p.last_max_mb,
                    if p.levelled {
                        "levelled off"
                    } else {
                        "STILL GROWING"
                    }
                );
            }
            None if self.phases.overload > 0 => {
                let _ = writeln!(
                    out,
                    "RSS in the overload: not judged (needs an overload of {} s or more, and RSS samples)",
                    crate::stats::PLATEAU_MIN_SECS
                );
            }
            None => {}
        }
        let _ = writeln!(out, "{}", self.cpu.line());
        if let Some(o) = &self.overload {
            let _ = writeln!(
                out,
                "Overload: {} blast requests, {} stored ({} events); all kinds during it: {} × 429, {} × 503, {} × 5xx, {} transport errors; Retry-After missing {}; recovered after {}",
                o.requests,
                o.ok,
                o.events_acked,
                o.status_429,
                o.status_503,
                o.status_5xx,
                o.transport_errors,
                o.retry_after_missing,
                o.recovered_after_s.map_or(
                    "— (not within the recovery phase)".to_string(),
                    |s| format!("{s} s")
                )
            );
            if o.status_429 + o.status_503 == 0 {
                let _ = writeln!(
                    out,
                    "  note: the server shed nothing: the blast did not overload it (raise --overload-concurrency or --overload-batch)"
                );
            }
        }
        let s = &self.server;
        let metrics: Vec<String> = s
            .metrics
            .iter()
            .map(|(k, v)| format!("{} {v}", k.trim_start_matches("vigil_")))
            .collect();
        let _ = writeln!(out, "Server metrics: {}", metrics.join(", "));
        let _ = writeln!(
            out,
            "Server: drained {}{}{}",
            s.drained_secs
                .map_or("NOT within the limit".to_string(), |d| format!(
                    "in {d:.1} s"
                )),
            s.log.as_ref().map_or(String::new(), |l| format!(
                "; log: {} lines, {} warnings, {} errors",
                l.lines, l.warnings, l.errors
            )),
            s.stopped.as_ref().map_or(String::new(), |st| format!(
                "; stopped in {:.1} s (exit {}{})",
                st.shutdown_secs,
                st.exit_code.map_or("by signal".into(), |c| c.to_string()),
                if st.killed { ", killed" } else { "" }
            )),
        );
        if let Some(l) = &s.log {
            for line in l.last_warnings_and_errors.iter().rev().take(5).rev() {
                let _ = writeln!(out, "  | {line}");
            }
        }
        if !self.error_samples.is_empty() {
            let _ = writeln!(out, "Failed requests (samples):");
            for e in self.error_samples.iter().take(12) {
                let _ = writeln!(
                    out,
                    "  t={:.1}s {} {}: {} -> {}",
                    e.t,
                    e.kind.name(),
                    e.phase.name(),
                    e.request,
                    e.response
                );
            }
        }
        let _ = writeln!(out, "\nVerdicts: {}", self.verdicts.line());
        let _ = writeln!(out, "Result: {}", if self.passed { "PASS" } else { "FAIL" });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_pass_unless_one_fails() {
        let mut v = Verdicts {
            zero_5xx: true,
            zero_lost: true,
            ..Default::default()
        };
        assert!(v.passed());
        v.rss_flat = Some(true);
        v.recovered = Some(false);
        assert!(!v.passed());
        v.recovered = None;
        v.zero_lost = false;
        assert!(!v.passed());
        assert!(v.line().contains("zero_lost FAIL"));
        assert!(v.line().contains("recovered n/a"));
    }

    #[test]
    fn series_joins_seconds() {
        let samples = vec![Sample {
            t: 1.04,
            phase: Phase::Steady,
            rss_mb: Some(100.04),
            ingest_queue: Some(0.0),
            analysis_queue: None,
            cpu_percent: Some(50.0),
            load_cpu_percent: None,
        }];
        let seconds = vec![Second { total: 1, ok: 1 }, Second { total: 9, ok: 8 }];
        let s = SeriesPoint::join(&samples, &seconds);
        assert_eq!((s[0].requests, s[0].ok), (9, 8));
        assert_eq!(s[0].sample.rss_mb, Some(100.04));
    }
}
