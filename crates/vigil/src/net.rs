//! The network detector from the command line: `vigil eval net`, `vigil net train`,
//! `vigil net collect`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use vigil_net::model::{Method, ModelParams};
use vigil_net::record::ConnectionRecord;

/// Scorer choice on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Distance to the k-th nearest normal connection.
    Knn,
    /// Isolation Forest.
    Iforest,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Knn => Method::Knn,
            MethodArg::Iforest => Method::Iforest,
        }
    }
}

/// `vigil eval net`.
#[derive(Args)]
pub struct EvalNetArgs {
    /// Training file in NSL-KDD's format (only its `normal` rows are used).
    #[arg(long)]
    train: PathBuf,
    /// Test file in NSL-KDD's format.
    #[arg(long)]
    test: PathBuf,
    /// The scorer.
    #[arg(long, value_enum, default_value = "knn")]
    method: MethodArg,
    /// False-positive rate the threshold is set for (on held-out normal training rows).
    #[arg(long, default_value_t = 0.02)]
    target_fpr: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Isolation Forest: trees (default: the model's, 200).
    #[arg(long)]
    trees: Option<usize>,
    /// Isolation Forest: rows per tree (default: the model's, 2048).
    #[arg(long)]
    max_samples: Option<usize>,
    /// k-NN: neighbours (default 3).
    #[arg(long)]
    k: Option<usize>,
    /// k-NN: normal references kept (default 4000).
    #[arg(long)]
    references: Option<usize>,
    /// Scoring threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `vigil eval net`: the NSL-KDD protocol of `../shared/data/README.md`.
pub fn eval(args: EvalNetArgs) -> Result<ExitCode> {
    let train = vigil_net::nslkdd::read(&args.train)?;
    let test = vigil_net::nslkdd::read(&args.test)?;
    let d = ModelParams::default();
    let params = ModelParams {
        method: args.method.into(),
        target_fpr: args.target_fpr,
        seed: args.seed,
        trees: args.trees.unwrap_or(d.trees),
        max_samples: args.max_samples.unwrap_or(d.max_samples),
        k: args.k.unwrap_or(d.k),
        max_references: args.references.unwrap_or(d.max_references),
        ..d
    };
    let (e, model) = vigil_net::nslkdd::evaluate(&train, &test, &params, args.threads, 5)?;
    if args.json {
        let mut v = serde_json::to_value(&e)?;
        v["threshold"] = json!(model.threshold);
        v["params"] = serde_json::to_value(&params)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("method                  {}", e.method);
    for (k, v) in [
        ("auc", e.auc),
        ("detection_rate", e.detection_rate),
        ("fpr", e.fpr),
        ("precision", e.precision),
        ("f1", e.f1),
        ("accuracy", e.accuracy),
        ("fit_seconds", e.fit_seconds),
    ] {
        println!("{k:<24}{v:.4}");
    }
    println!("{:<24}{:.0}", "rows_per_second", e.rows_per_second);
    println!(
        "{:<24}{} normal train, {} test ({} attacks)",
        "rows", e.train_normal_rows, e.test_rows, e.test_attacks
    );
    println!("detection by attack (the ten most frequent):");
    for (name, n, rate) in &e.per_attack {
        println!("  {name:<20}{n:>6}  {rate:.3}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil net …`.
#[derive(Subcommand)]
pub enum NetCommand {
    /// Train a network model from connection records and save it.
    Train(TrainArgs),
    /// Collect this host's connections from /proc and send them to a server (or print
    /// them).
    Collect(CollectArgs),
}

/// `vigil net train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Connection records: NDJSON (one seed-002 JSON object a line) or CSV with a header
    /// row of the same field names (`process_name,remote_ip,protocol,…`). Without it, the
    /// stored connections of the data directory are used.
    #[arg(long)]
    records: Option<PathBuf>,
    /// With stored connections: how far back (`7d`, `12h`, or an RFC 3339 time).
    #[arg(long, default_value = "7d")]
    since: String,
    /// Where to write the model (JSON). Without it, the model is stored in the data
    /// directory's registry and made active if it is not worse than the active one.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The scorer.
    #[arg(long, value_enum, default_value = "knn")]
    method: MethodArg,
    /// Make the stored model active even if it is worse than the active one.
    #[arg(long)]
    force: bool,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads records from NDJSON or CSV (by extension; `-` is NDJSON on stdin).
fn read_records(path: &Path) -> Result<Vec<ConnectionRecord>> {
    let now = chrono::Utc::now();
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut out = Vec::new();
    if csv {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader.headers()?.clone();
        for (i, row) in reader.records().enumerate() {
            let row = row.with_context(|| format!("{} line {}", path.display(), i + 2))?;
            let mut obj = serde_json::Map::new();
            for (h, v) in headers.iter().zip(row.iter()) {
                if v.is_empty() {
                    continue;
                }
                let value = match h {
                    "process_id" | "local_port" | "remote_port" | "bytes_sent"
                    | "bytes_received" | "duration" => v
                        .parse::<f64>()
                        .map(|n| {
                            if n.fract() == 0.0 && n >= 0.0 {
                                json!(n as u64)
                            } else {
                                json!(n)
                            }
                        })
                        .unwrap_or_else(|_| json!(v)),
                    _ => json!(v),
                };
                obj.insert(h.to_string(), value);
            }
            let r = ConnectionRecord::from_seed_json(&Value::Object(obj), now, None)
                .with_context(|| format!("{} line {}", path.display(), i + 2))?;
            out.push(r);
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
            let r = ConnectionRecord::from_seed_json(&v, now, None)
                .with_context(|| format!("{} line {}", path.display(), i + 1))?;
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.timestamp);
    Ok(out)
}

/// `vigil net train`.
pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let config = crate::load_config(args.config.as_ref(), args.data_dir.clone())?;
    let mut params = config.network.model.clone();
    params.method = args.method.into();
    let net_config = vigil_net::NetConfig {
        model: params.clone(),
        ..config.network.clone()
    };
    match (&args.records, &args.out) {
        (Some(path), Some(out)) => {
            let detector = vigil_net::NetDetector::new(net_config.clone())
                .map_err(|e| anyhow::anyhow!("{e} (fix [network])"))?;
            let records: Vec<ConnectionRecord> = read_records(path)?
                .iter()
                .map(|r| detector.private(r))
                .collect();
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
            spinner.set_message(format!("training on {} connections", records.len()));
            spinner.enable_steady_tick(Duration::from_millis(120));
            let model = vigil_net::detector::train(
                &records,
                &params,
                &net_config.baselines,
                &format!("file:{}", path.display()),
            )?;
            spinner.finish_and_clear();
            vigil_store::fsutil::write_atomic(out, &serde_json::to_vec(&model)?)
                .with_context(|| format!("writing {}", out.display()))?;
            let summary = json!({
                "out": out, "model_version": model.version, "method": model.params.method,
                "training": model.training, "threshold": model.threshold,
            });
            print_summary(&summary, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(_)) => bail!(
            "--out writes a model trained from --records; to train from stored connections, leave --out out (the model goes to the data directory's registry)"
        ),
        (records, None) => {
            let since = vigil_server::network::parse_since(&args.since)
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            crate::runtime()?.block_on(async {
                let store: std::sync::Arc<dyn vigil_store::Store> =
                    std::sync::Arc::new(crate::open_store(&config)?);
                let (pipeline, _tasks) = vigil_pipeline::Pipeline::start(
                    store.clone(),
                    std::sync::Arc::new(vigil_pipeline::AnalyzerRegistry::new()),
                    &config.pipeline,
                );
                let service =
                    vigil_server::network::NetService::start(net_config, store.clone(), &pipeline)
                        .map_err(|e| anyhow::anyhow!("{e} (fix [network])"))?;
                service.load_active().await?;
                if let Some(path) = records {
                    // Import the records into the time series first, then train on them.
                    let rs = read_records(path)?;
                    let n = rs.len();
                    let before = service.stored_rows().await;
                    let results = service
                        .analyze_batch(rs.into_iter().map(Ok).collect())
                        .await?;
                    let failed = results.iter().filter(|r| r.is_err()).count();
                    if failed > 0 {
                        bail!("{failed} of {n} records could not be imported");
                    }
                    // The writer stores them behind the answers: wait until it has.
                    let want = before + n as u64;
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    while service.stored_rows().await < want {
                        if std::time::Instant::now() > deadline {
                            bail!("the imported records were not all stored within 60 s");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                let spinner = ProgressBar::new_spinner();
                spinner.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
                spinner.set_message("training on stored connections");
                spinner.enable_steady_tick(Duration::from_millis(120));
                let outcome = service.train(Some(since), args.force).await;
                spinner.finish_and_clear();
                let outcome = outcome?;
                print_summary(&serde_json::to_value(&outcome)?, args.json)?;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_summary(v: &Value, json_out: bool) -> Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else if let Some(o) = v.as_object() {
        for (k, v) in o {
            println!(
                "{k:<22}{}",
                if v.is_string() {
                    v.as_str().unwrap_or("").to_string()
                } else {
                    v.to_string()
                }
            );
        }
    }
    Ok(())
}

/// `vigil net collect`.
#[derive(Args)]
pub struct CollectArgs {
    /// Vigil server to send records to (its batch API); without it, records are printed as
    /// NDJSON.
    #[arg(long)]
    url: Option<String>,
    /// API key or JWT (role agent).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds between looks at /proc.
    #[arg(long, default_value_t = 5.0)]
    interval: f64,
    /// Look once (report the connections open now) and exit.
    #[arg(long)]
    once: bool,
    /// The host name to report (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Where /proc is.
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// Print a JSON summary per round on stderr.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: crate::tls::ClientTls,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `vigil net collect`.
pub fn collect(args: CollectArgs) -> Result<ExitCode> {
    if !(0.2..=3600.0).contains(&args.interval) {
        bail!("--interval is seconds from 0.2 to 3600");
    }
    crate::runtime()?.block_on(collect_loop(args))
}

async fn collect_loop(args: CollectArgs) -> Result<ExitCode> {
    let host = args.host.clone().unwrap_or_else(hostname);
    let client = args
        .tls
        .apply(reqwest::Client::builder().timeout(Duration::from_secs(30)))?
        .build()
        .context("cannot build the HTTP client")?;
    let mut tracker = vigil_net::collector::Tracker::new();
    let mut warned = false;
    loop {
        let snap = vigil_net::collector::snapshot(&args.proc_root)
            .with_context(|| format!("cannot read {}/net", args.proc_root.display()))?;
        if !warned {
            warned = true;
            if snap.unmapped > 0 || snap.unreadable_processes > 0 {
                eprintln!(
                    "vigil net collect: {} connections have no process ({} processes' descriptors are unreadable): run as root to see every process.",
                    snap.unmapped, snap.unreadable_processes
                );
            }
            if let Some(why) = &snap.bytes_unavailable {
                eprintln!(
                    "vigil net collect: no TCP byte counters ({why}): records carry 0 bytes."
                );
            }
        }
        let records = tracker.update(&snap, &host, chrono::Utc::now());
        if !records.is_empty() {
            match &args.url {
                Some(url) => {
                    let mut req = client
                        .post(format!(
                            "{}/api/v1/network/analyze/batch",
                            url.trim_end_matches('/')
                        ))
                        .json(&json!({ "records": records.iter().map(ConnectionRecord::to_seed_json).collect::<Vec<_>>() }));
                    if let Some(t) = &args.token {
                        req = req.bearer_auth(t);
                    }
                    match req.send().await {
                        Ok(resp) if resp.status().is_success() => {
                            let v: Value = resp.json().await.unwrap_or_default();
                            if v["rejected"].as_u64().unwrap_or(0) > 0 {
                                let first = v["results"]
                                    .as_array()
                                    .and_then(|r| r.iter().find_map(|x| x["error"].as_str()))
                                    .unwrap_or("");
                                eprintln!(
                                    "vigil net collect: the server refused {} records: {first}",
                                    v["rejected"]
                                );
                            }
                            if args.json {
                                eprintln!(
                                    "{}",
                                    json!({"sent": records.len(), "anomalies": v["anomalies"], "open": tracker.open()})
                                );
                            }
                            let results = v["results"].as_array().cloned().unwrap_or_default();
                            for (r, res) in records.iter().zip(&results) {
                                if res["result"]["is_anomaly"] == true {
                                    eprintln!(
                                        "anomaly: {} -> {}:{} score {:.3} ({})",
                                        r.process_name,
                                        r.remote_ip,
                                        r.remote_port.unwrap_or(0),
                                        res["result"]["anomaly_score"].as_f64().unwrap_or(0.0),
                                        res["result"]["explanation"][0].as_str().unwrap_or("")
                                    );
                                }
                            }
                        }
                        Ok(resp) => {
                            let status = resp.status();
                            let text = resp.text().await.unwrap_or_default();
                            eprintln!("vigil net collect: the server answered {status}: {text}");
                            if status == 401 || status == 403 {
                                return Ok(ExitCode::from(1));
                            }
                        }
                        Err(e) => eprintln!("vigil net collect: cannot reach {url}: {e}"),
                    }
                }
                None => {
                    for r in &records {
                        println!("{}", r.to_seed_json());
                    }
                }
            }
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
    }
}
