//! `vigil-load`: pushes mixed traffic at Vigil at set rates for a set time and reports
//! throughput, error rates, latency percentiles and the server's RSS over time; then checks
//! that every acknowledged event was stored, that RSS stayed flat, and (with `--overload`)
//! that the server shed an overload with 429/503 and recovered.
//!
//! ```sh
//! vigil-load --spawn target/release/vigil --duration 600 --json /tmp/soak.json
//! vigil-load --url http://127.0.0.1:8080 --token "$VIGIL_TOKEN" --protocol 127.0.0.1:9300 --pid 1234
//! ```
//!
//! Traffic kinds (each at its own rate, open loop): bulk NDJSON events, `POST
//! /api/v1/analyze` (the load's own script runs), network connection batches, static
//! analyses over the binary file-analysis protocol, and WebSocket subscribers of the
//! findings stream. Exit code: 0 when every verdict passes, 1 when one fails, 2 when the run
//! could not be made.

mod generate;
mod report;
mod server;
mod stats;
mod traffic;

use anyhow::{Context, Result, bail};
use clap::Parser;
use report::{
    CpuReport, EventCheck, OverloadReport, RssReport, SeriesPoint, ServerReport, Summary,
    TargetInfo, Verdicts, WsSummary,
};
use serde::Serialize;
use server::{Api, Monitor, Spawned, Target};
use stats::{Kind, LatencySummary, Phase, Phases, Recorder, Totals};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use traffic::{Ctx, FilePool};

/// Load and soak tool for Vigil.
#[derive(Parser, Debug, Serialize)]
#[command(name = "vigil-load", version, about, long_about = None)]
struct Args {
    /// Start this `vigil` binary (`vigil serve` on free ports, a new data directory, the
    /// file-analysis protocol on) and stop it at the end.
    #[arg(long, value_name = "VIGIL_BINARY", conflicts_with_all = ["url", "pid"])]
    spawn: Option<PathBuf>,
    /// With --spawn: the data directory (must be new; default: a temporary one, deleted).
    #[arg(long, requires = "spawn")]
    data_dir: Option<PathBuf>,
    /// With --spawn: an extra environment variable for the server (repeatable), e.g.
    /// `VIGIL_PIPELINE__INGEST_QUEUE=20000` or `RUST_LOG=info`.
    #[arg(
        long = "server-env",
        value_name = "KEY=VALUE",
        value_parser = parse_env,
        requires = "spawn"
    )]
    #[serde(serialize_with = "redacted_env")]
    server_env: Vec<(String, String)>,
    /// With --spawn: copy the server's stderr to this file.
    #[arg(long, requires = "spawn")]
    server_log: Option<PathBuf>,

    /// A running server's URL (instead of --spawn).
    #[arg(long, required_unless_present = "spawn")]
    url: Option<String>,
    /// With --url: an admin API key (or JWT).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    token: Option<String>,
    /// With --url: the file-analysis protocol's address (no file scans without it).
    #[arg(long, value_name = "HOST:PORT")]
    protocol: Option<String>,
    /// With --url: the server's pid, to sample its RSS (no RSS verdict without it).
    #[arg(long)]
    pid: Option<u32>,

    /// Seconds of steady load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds of steady load before RSS is measured (default: 10% of --duration, at most
    /// 60).
    #[arg(long)]
    warmup: Option<u64>,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    report_every: u64,

    /// Bulk requests per second.
    #[arg(long, default_value_t = 5.0)]
    bulk_rate: f64,
    /// Events per bulk request.
    #[arg(long, default_value_t = 200)]
    batch: u64,
    /// `POST /api/v1/analyze` calls per second.
    #[arg(long, default_value_t = 20.0)]
    analyze_rate: f64,
    /// Network batches per second (`POST /api/v1/network/analyze/batch`).
    #[arg(long, default_value_t = 20.0)]
    net_rate: f64,
    /// Connection records per network batch.
    #[arg(long, default_value_t = 10)]
    net_batch: u64,
    /// File scans per second over the file-analysis protocol.
    #[arg(long, default_value_t = 5.0)]
    file_rate: f64,
    /// Protocol connections (also the file scans' in-flight cap).
    #[arg(long, default_value_t = 4)]
    file_conns: usize,
    /// WebSocket subscribers of the findings stream.
    #[arg(long, default_value_t = 4)]
    ws: usize,
    /// Most requests in flight per HTTP kind; ticks beyond it count as dropped_by_client.
    #[arg(long, default_value_t = 32)]
    max_in_flight: usize,
    /// Seconds before a request without an answer counts as a transport error.
    #[arg(long, default_value_t = 30)]
    timeout: u64,

    /// Seconds of overload after the steady phase: bulk requests back to back from
    /// --overload-concurrency tasks, on top of the steady traffic (0: no overload phase).
    #[arg(long, default_value_t = 0)]
    overload: u64,
    /// Seconds at the steady rates after the overload.
    #[arg(long, default_value_t = 30)]
    recovery: u64,
    /// Blast requests in flight during the overload.
    #[arg(long, default_value_t = 64)]
    overload_concurrency: usize,
    /// Events per blast request.
    #[arg(long, default_value_t = 2000)]
    overload_batch: u64,
    /// A memory budget: `memory_bounded` also fails when RSS exceeds it during the overload
    /// or the recovery, MB (default: no budget, only the plateau rule).
    #[arg(long)]
    rss_limit_mb: Option<f64>,
    /// Seconds to wait for the server's queues to drain after the traffic.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,

    /// Write the full summary (config, stats, RSS series, verdicts) here as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The run's id (8 hex digits; default: random). Names the events' host, `load-<run>`.
    #[arg(long)]
    run: Option<String>,
    /// Leave the load's script on the server at the end.
    #[arg(long)]
    keep_script: bool,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// `--server-env` in the JSON summary: values of keys that look secret are redacted.
fn redacted_env<S: serde::Serializer>(env: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let secret = |k: &str| {
        let k = k.to_ascii_uppercase();
        ["KEY", "SECRET", "TOKEN", "PASSWORD"]
            .iter()
            .any(|w| k.contains(w))
    };
    s.collect_seq(env.iter().map(|(k, v)| {
        let v = if secret(k) { "<redacted>" } else { v.as_str() };
        format!("{k}={v}")
    }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil-load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vigil-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The server: started here, or named on the command line.
async fn target(args: &Args) -> Result<(Target, Option<Spawned>)> {
    if let Some(bin) = &args.spawn {
        let (bin, data_dir, env, log) = (
            bin.clone(),
            args.data_dir.clone(),
            args.server_env.clone(),
            args.server_log.clone(),
        );
        let (target, spawned) = tokio::task::spawn_blocking(move || {
            server::spawn(&bin, data_dir.as_deref(), &env, log.as_deref())
        })
        .await??;
        return Ok((target, Some(spawned)));
    }
    let url = args.url.clone().context("--url or --spawn is required")?;
    let Some(token) = args.token.clone() else {
        bail!("--url needs --token (or VIGIL_TOKEN): an admin API key");
    };
    if !url.starts_with("http://") {
        bail!("--url must be http://HOST:PORT (vigil-load speaks plain HTTP)");
    }
    Ok((
        Target {
            url,
            token,
            protocol: args.protocol.clone(),
            pid: args.pid,
        },
        None,
    ))
}

async fn run(args: Args) -> Result<bool> {
    if args.duration == 0 {
        bail!("--duration must be at least 1 second");
    }
    let (target, mut spawned) = target(&args).await?;
    let result = load(&args, &target, &mut spawned).await;
    if let Some(mut s) = spawned {
        // Stopped here only when `load` failed early; otherwise it stopped it already.
        let _ = tokio::task::spawn_blocking(move || s.stop(Duration::from_secs(30))).await;
    }
    result
}

/// Runs the phases against `target`, prints the report, writes the JSON; whether every
/// verdict passed.
async fn load(args: &Args, target: &Target, spawned: &mut Option<Spawned>) -> Result<bool> {
    let api = Api::new(target, Duration::from_secs(args.timeout))?;
    api.wait_healthy(Duration::from_secs(60))
        .await
        .context("the server does not answer /api/v1/health")?;
    let me = api
        .get_json("/api/v1/me")
        .await
        .context("the token is refused")?;
    let admin = me["role"] == "admin";

    let run = match &args.run {
        Some(r) if r.len() == 8 && r.chars().all(|c| c.is_ascii_hexdigit()) => {
            r.to_ascii_lowercase()
        }
        Some(r) => bail!("--run `{r}`: 8 hex digits"),
        None => uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
    };
    let generator = generate::Generator::new(&run);
    let script = format!("vigil_load_{run}");
    if admin {
        api.upload_script(&script).await?;
    } else {
        eprintln!(
            "vigil-load: the token is not an admin's: no script uploaded (analyze calls run the server's scripts only)"
        );
    }
    let phases = Phases {
        steady: args.duration,
        overload: args.overload,
        recovery: if args.overload > 0 { args.recovery } else { 0 },
    };
    let warmup = args.warmup.unwrap_or((args.duration / 10).min(60));
    if warmup + stats::RSS_MIN_SAMPLES as u64 > args.duration {
        eprintln!("vigil-load: the warm-up leaves too little of --duration for an RSS trend");
    }
    println!(
        "vigil-load: run {run}, events on host {}, server {}{}{}",
        generator.host,
        target.url,
        target
            .protocol
            .as_ref()
            .map_or(String::new(), |p| format!(", protocol {p}")),
        target.pid.map_or(String::new(), |p| format!(", pid {p}")),
    );
    if target.protocol.is_none() && args.file_rate > 0.0 {
        eprintln!("vigil-load: no protocol address: no file scans");
    }

    let ctx = Arc::new(Ctx {
        files: target
            .protocol
            .as_deref()
            .map(|a| FilePool::new(a, &target.token)),
        api: api.clone(),
        generator,
        rec: Recorder::new(phases),
        script: script.clone(),
        errors: Mutex::new(Vec::new()),
    });
    let started_at = generate::now_rfc3339();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (monitor_stop, monitor_rx) = tokio::sync::watch::channel(false);
    let (monitor, monitor_task) = Monitor::start(
        api.clone(),
        target.pid,
        phases,
        ctx.rec.started(),
        monitor_rx,
    );

    let traffic = start_traffic(&ctx, args, phases);
    let subscribers: Vec<_> = (0..args.ws)
        .map(|_| tokio::spawn(traffic::subscriber(ctx.clone(), stop_rx.clone())))
        .collect();
    let reporter = tokio::spawn(report_lines(
        ctx.clone(),
        monitor.clone(),
        Duration::from_secs(args.report_every.max(1)),
        stop_rx.clone(),
    ));
    for t in traffic {
        t.await?;
    }
    let _ = stop_tx.send(true);
    let _ = monitor_stop.send(true);
    for s in subscribers {
        let _ = s.await;
    }
    let _ = reporter.await;
    let _ = monitor_task.await;
    let traffic_secs = ctx.rec.elapsed().as_secs_f64();
    println!("vigil-load: traffic done after {traffic_secs:.1} s; waiting for the server to drain");

    // Afterwards: drain, the server's counters, what it stored.
    let drained_secs = api.drain(Duration::from_secs(args.drain_timeout)).await;
    let metrics = api
        .metrics()
        .await
        .map(|m| server::reported_metrics(&m))
        .unwrap_or_default();
    println!(
        "vigil-load: counting the events stored for {}",
        ctx.generator.host
    );
    let events = check_events(&ctx, &api).await;
    if admin
        && !args.keep_script
        && let Err(e) = api.delete_script(&script).await
    {
        eprintln!("vigil-load: could not delete the script {script}: {e:#}");
    }
    let data_dir = spawned.as_ref().map(|s| s.data_dir.display().to_string());
    let (log, stopped) = match spawned.take() {
        Some(mut s) => {
            let log = s.log.clone();
            let stopped = tokio::task::spawn_blocking(move || s.stop(Duration::from_secs(30)))
                .await?
                .ok();
            (Some(log.summary()), stopped)
        }
        None => (None, None),
    };

    let summary = summarize(
        args,
        target,
        &ctx,
        SummaryParts {
            run,
            data_dir,
            started_at,
            phases,
            warmup,
            samples: monitor.samples(),
            events,
            server: ServerReport {
                metrics,
                drained_secs,
                log,
                stopped,
            },
        },
    );
    print!("{}", summary.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("summary written to {}", path.display());
    }
    Ok(summary.passed)
}

/// Starts a scheduler per traffic kind and, with an overload phase, the blast; their tasks
/// end when their phases are over and their requests are answered.
fn start_traffic(ctx: &Arc<Ctx>, args: &Args, phases: Phases) -> Vec<tokio::task::JoinHandle<()>> {
    let until = Duration::from_secs(phases.total());
    let cap = args.max_in_flight;
    let mut tasks = Vec::new();
    let batch = args.batch;
    tasks.push(tokio::spawn(traffic::schedule(
        ctx.clone(),
        Kind::Bulk,
        args.bulk_rate,
        until,
        cap,
        move |c| traffic::steady_bulk(c, batch),
    )));
    tasks.push(tokio::spawn(traffic::schedule(
        ctx.clone(),
        Kind::Analyze,
        args.analyze_rate,
        until,
        cap,
        traffic::analyze,
    )));
    let net_batch = args.net_batch;
    tasks.push(tokio::spawn(traffic::schedule(
        ctx.clone(),
        Kind::Network,
        args.net_rate,
        until,
        cap,
        move |c| traffic::network(c, net_batch),
    )));
    if ctx.files.is_some() {
        let timeout = Duration::from_secs(args.timeout);
        tasks.push(tokio::spawn(traffic::schedule(
            ctx.clone(),
            Kind::File,
            args.file_rate,
            until,
            args.file_conns,
            move |c| traffic::file_scan(c, timeout),
        )));
    }
    if phases.overload > 0 {
        let (c, conc, b) = (ctx.clone(), args.overload_concurrency, args.overload_batch);
        let start = tokio::time::Instant::from_std(ctx.rec.started());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_secs(phases.steady)).await;
            println!("vigil-load: overload: {conc} bulk requests of {b} events in flight");
            traffic::blast(
                c,
                conc,
                b,
                Duration::from_secs(phases.steady + phases.overload),
            )
            .await;
            println!("vigil-load: overload over; recovery at the steady rates");
        }));
    }
    tasks
}

/// Acknowledged events against those stored for the run's host.
async fn check_events(ctx: &Ctx, api: &Api) -> EventCheck {
    let mut totals = Totals::default();
    for kind in [Kind::Bulk, Kind::Blast] {
        totals.add(&ctx.rec.totals(kind));
    }
    let acked = ctx.rec.acked_set();
    let mut check = EventCheck {
        acknowledged: acked.count(),
        duplicates: totals.duplicates,
        rejected_lines: totals.rejected_lines,
        ..Default::default()
    };
    match api.stored_events(&ctx.generator).await {
        Ok(stored) => {
            check.stored = Some(stored.set.count());
            check.lost = Some(acked.count_missing_from(&stored.set));
            check.stored_unacknowledged = Some(stored.set.count_missing_from(&acked));
            check.listed_twice = Some(stored.repeated);
            check.foreign = Some(stored.foreign);
            check.first_lost_ids = acked
                .first_missing_from(&stored.set, 10)
                .into_iter()
                .map(|s| ctx.generator.event_id(s))
                .collect();
            check.pages = stored.pages;
            check.count_secs = stored.secs;
        }
        Err(e) => check.error = Some(format!("{e:#}")),
    }
    check.agent_events = api.agent_events(&ctx.generator.host).await.ok().flatten();
    check
}

struct SummaryParts {
    run: String,
    data_dir: Option<String>,
    started_at: String,
    phases: Phases,
    warmup: u64,
    samples: Vec<server::Sample>,
    events: EventCheck,
    server: ServerReport,
}

fn summarize(args: &Args, target: &Target, ctx: &Ctx, p: SummaryParts) -> Summary {
    let phases = p.phases;
    let rec = &ctx.rec;
    let mut rows = Vec::new();
    for phase in Phase::ALL {
        if phases.length(phase) == 0 {
            continue;
        }
        for kind in Kind::ALL {
            let row = rec.summary(kind, phase, phases.length(phase) as f64);
            if row.totals.sent + row.totals.dropped_by_client > 0 {
                rows.push(row);
            }
        }
    }
    let phase_totals = |phase: Phase| {
        let mut t = Totals::default();
        for r in rows.iter().filter(|r| r.phase == phase) {
            t.add(&r.totals);
        }
        t
    };
    let mut all = Totals::default();
    for r in &rows {
        all.add(&r.totals);
    }

    // RSS.
    let rss_in = |phase: Phase| {
        p.samples
            .iter()
            .filter(|s| s.phase == phase)
            .filter_map(|s| s.rss_mb)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let points: Vec<(f64, f64)> = p
        .samples
        .iter()
        .filter_map(|s| s.rss_mb.map(|r| (s.t, r)))
        .collect();
    let trend = stats::rss_trend(&points, p.warmup as f64, phases.steady as f64);
    let rss = RssReport {
        trend: trend.clone(),
        steady_max_mb: rss_in(Phase::Steady),
        overload_max_mb: rss_in(Phase::Overload),
        recovery_max_mb: rss_in(Phase::Recovery),
        last_mb: points.last().map(|p| p.1),
        limit_mb: args.rss_limit_mb,
        overload_plateau: (phases.overload >= stats::PLATEAU_MIN_SECS)
            .then(|| {
                stats::plateau(
                    &points,
                    phases.start(Phase::Overload) as f64,
                    phases.start(Phase::Recovery) as f64,
                )
            })
            .flatten(),
    };

    // Overload and recovery.
    let timeline = rec.timeline();
    let overload = (phases.overload > 0).then(|| {
        let during = phase_totals(Phase::Overload);
        let blast = rec.totals(Kind::Blast);
        let start = phases.start(Phase::Recovery) as usize;
        let end = (phases.total() as usize).min(timeline.len());
        let seconds = timeline.get(start..end).unwrap_or_default().to_vec();
        let hold = ((phases.recovery / 2) as usize).clamp(1, 5);
        OverloadReport {
            requests: blast.sent,
            ok: blast.ok,
            events_acked: blast.events_acked,
            status_429: during.status_429,
            status_503: during.status_503,
            status_5xx: during.status_5xx,
            transport_errors: during.transport_errors,
            retry_after_missing: all.retry_after_missing,
            recovered_after_s: stats::recovery_after(&seconds, hold),
            recovery_hold_s: hold,
            recovery_seconds: seconds,
        }
    });

    let ws = &rec.ws;
    let events = p.events;
    let shed = all.status_429 + all.status_503;
    let under_pressure_max = [rss.overload_max_mb, rss.recovery_max_mb]
        .into_iter()
        .flatten()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let verdicts = Verdicts {
        zero_5xx: all.status_5xx == 0,
        zero_lost: events.lost == Some(0),
        rss_flat: trend.map(|t| t.flat),
        recovered: overload.as_ref().map(|o| o.recovered_after_s.is_some()),
        retry_after: (shed > 0).then_some(all.retry_after_missing == 0),
        memory_bounded: rss.overload_plateau.as_ref().map(|p| {
            p.levelled
                && args
                    .rss_limit_mb
                    .is_none_or(|limit| under_pressure_max.is_some_and(|m| m <= limit))
        }),
    };
    let passed = verdicts.passed();
    let mut error_samples = ctx.errors.lock().unwrap().clone();
    error_samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    Summary {
        tool: "vigil-load",
        version: env!("CARGO_PKG_VERSION"),
        run: p.run,
        host: ctx.generator.host.clone(),
        started_at: p.started_at,
        config: serde_json::to_value(args).unwrap_or_default(),
        target: TargetInfo {
            url: target.url.clone(),
            protocol: target.protocol.clone(),
            pid: target.pid,
            spawned: args.spawn.is_some(),
            data_dir: p.data_dir,
        },
        phases,
        warmup_s: p.warmup,
        rows,
        websocket: WsSummary {
            subscribers: args.ws,
            connects: ws.connects.load(Relaxed),
            connect_errors: ws.connect_errors.load(Relaxed),
            disconnects: ws.disconnects.load(Relaxed),
            slow_consumer_closes: ws.slow_consumer.load(Relaxed),
            messages: ws.messages.load(Relaxed),
        },
        protocol_connections: ctx.files.as_ref().map_or(0, |f| f.connects.load(Relaxed)),
        events,
        rss,
        cpu: CpuReport::of(
            &p.samples,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ),
        overload,
        server: p.server,
        error_samples,
        series: SeriesPoint::join(&p.samples, &timeline),
        verdicts,
        passed,
    }
}

/// A progress line every `every`: per kind the success rate, p99 and errors of the last
/// interval, the subscribers, the server's RSS and queues.
async fn report_lines(
    ctx: Arc<Ctx>,
    monitor: Arc<Monitor>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let rec = &ctx.rec;
    let mut prev: Vec<Totals> = Kind::ALL.iter().map(|_| Totals::default()).collect();
    let mut prev_msgs = 0;
    let mut last = rec.elapsed();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        let now = rec.elapsed();
        let secs = (now - last).as_secs_f64().max(1e-3);
        last = now;
        let mut parts = Vec::new();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let t = rec.totals(kind);
            let p = std::mem::replace(&mut prev[i], t);
            let lat = LatencySummary::of(rec.take_window(kind));
            let (sent, ok) = (t.sent - p.sent, t.ok - p.ok);
            let dropped = t.dropped_by_client - p.dropped_by_client;
            if sent + dropped == 0 && kind == Kind::Blast {
                continue;
            }
            let mut s = format!(
                "{} {:.1}/s p99 {:.0}ms",
                kind.name(),
                ok as f64 / secs,
                lat.p99
            );
            if matches!(kind, Kind::Bulk | Kind::Blast) {
                let ev = t.events_acked - p.events_acked;
                s.push_str(&format!(" {:.0}ev/s", ev as f64 / secs));
            }
            let errors: Vec<String> = [
                ("429", t.status_429 - p.status_429),
                ("503", t.status_503 - p.status_503),
                ("4xx", t.other_4xx - p.other_4xx),
                ("5xx", t.status_5xx - p.status_5xx),
                ("transport", t.transport_errors - p.transport_errors),
                ("dropped", dropped),
            ]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{what} {n}"))
            .collect();
            if !errors.is_empty() {
                s.push_str(&format!(" [{}]", errors.join(", ")));
            }
            parts.push(s);
        }
        let msgs = rec.ws.messages.load(Relaxed);
        let sample = monitor.latest();
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        println!(
            "[{:>5.0}s {:<8}] {} | ws {:.1} msg/s | rss {} MB cpu {}% (load {}%) | queues ingest {} analysis {}",
            now.as_secs_f64(),
            rec.phase().name(),
            parts.join(" | "),
            (msgs - prev_msgs) as f64 / secs,
            sample
                .as_ref()
                .and_then(|s| s.rss_mb)
                .map_or("-".to_string(), |r| format!("{r:.1}")),
            fmt(sample.as_ref().and_then(|s| s.cpu_percent)),
            fmt(sample.as_ref().and_then(|s| s.load_cpu_percent)),
            fmt(sample.as_ref().and_then(|s| s.ingest_queue)),
            fmt(sample.as_ref().and_then(|s| s.analysis_queue)),
        );
        prev_msgs = msgs;
    }
}
