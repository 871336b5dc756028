//! `vigil eval parse`, `vigil eval logs`, `vigil logs …` and `vigil gen-logs`: the log
//! engine from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use vigil_logs::loghub;

/// `vigil eval parse`.
#[derive(Args)]
pub struct EvalParseArgs {
    /// A Loghub 2k folder: `<System>/<System>_2k.log` with `<System>_2k.log_structured.csv`.
    #[arg(long)]
    loghub: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn eval_parse(args: EvalParseArgs) -> Result<ExitCode> {
    let names = loghub::systems_in(&args.loghub)?;
    if names.is_empty() {
        bail!(
            "{} holds no Loghub system: expected folders like HDFS/ with HDFS_2k.log and \
             HDFS_2k.log_structured.csv",
            args.loghub.display()
        );
    }
    let mut results = Vec::new();
    for name in &names {
        results.push(
            loghub::evaluate(&args.loghub, name).with_context(|| format!("evaluating {name}"))?,
        );
    }
    let n = results.len() as f64;
    let mean = results.iter().map(|r| r.accuracy).sum::<f64>() / n;
    let mean_tuned = results.iter().map(|r| r.accuracy_tuned).sum::<f64>() / n;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "systems": results,
                "mean_accuracy": mean,
                "mean_accuracy_tuned": mean_tuned,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:>8} {:>8} {:>9} {:>10} {:>12}",
        "system", "accuracy", "tuned", "published", "templates", "lines/s"
    );
    for r in &results {
        println!(
            "{:<12} {:>8.4} {:>8.4} {:>9} {:>10} {:>12.0}",
            r.system,
            r.accuracy,
            r.accuracy_tuned,
            r.published.map_or("-".to_string(), |p| format!("{p:.4}")),
            format!("{}/{}", r.templates, r.true_templates),
            r.lines_per_second
        );
        if r.content_mismatches > 0 {
            println!(
                "  note: {} lines were cut differently from Loghub's Content column",
                r.content_mismatches
            );
        }
    }
    println!("{:<12} {mean:>8.4} {mean_tuned:>8.4}", "mean");
    println!(
        "accuracy: Vigil's defaults (similarity 0.5, depth 4, masking); tuned: logparser's \
         per-system similarity and depth"
    );
    Ok(ExitCode::SUCCESS)
}

/// `vigil logs …`.
#[derive(clap::Subcommand)]
pub enum LogsCommand {
    /// Mine templates from a log file with Drain and print them with their counts.
    Parse(ParseArgs),
    /// Train a log anomaly model from a log file (or key sequences) and save it.
    Train(TrainArgs),
    /// Find anomalous sessions in a log file (or key sequences) with a saved model.
    Detect(DetectArgs),
}

/// `vigil logs parse`.
#[derive(Args)]
pub struct ParseArgs {
    /// The log file (one line a record).
    file: PathBuf,
    /// Header format, e.g. "<Date> <Time> <Level> <Component>: <Content>"; without it the
    /// whole line is the message.
    #[arg(long)]
    format: Option<String>,
    /// Start from this saved Drain state (keeps template ids) and write the new state back.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Drain similarity threshold.
    #[arg(long, default_value_t = 0.5)]
    similarity: f64,
    /// Drain tree depth.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Templates to print (most frequent first); 0 prints all.
    #[arg(long, default_value_t = 50)]
    top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(command: LogsCommand) -> Result<ExitCode> {
    match command {
        LogsCommand::Parse(args) => parse(args),
        LogsCommand::Train(args) => train(args),
        LogsCommand::Detect(args) => detect(args),
    }
}

fn parse(args: ParseArgs) -> Result<ExitCode> {
    use vigil_logs::{Drain, DrainConfig, LogFormat};
    let format = args.format.as_deref().map(LogFormat::new).transpose()?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut drain = match args.state.as_ref().filter(|p| p.exists()) {
        Some(p) => Drain::restore(&std::fs::read(p)?)
            .with_context(|| format!("restoring {}", p.display()))?,
        None => {
            let config = DrainConfig {
                similarity: args.similarity,
                depth: args.depth,
                ..DrainConfig::default()
            };
            config.validate().map_err(anyhow::Error::msg)?;
            Drain::new(config)
        }
    };
    let mut unmatched = 0u64;
    let mut lines = 0u64;
    let start = std::time::Instant::now();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let message = match &format {
            Some(f) => match f.split(line) {
                Some(h) => h.content,
                None => {
                    unmatched += 1;
                    line
                }
            },
            None => line,
        };
        drain.parse(message);
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(p) = &args.state {
        vigil_store::fsutil::write_atomic(p, &drain.save())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let mut clusters: Vec<_> = drain.clusters().iter().collect();
    clusters.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    let shown = if args.top == 0 {
        clusters.len()
    } else {
        args.top.min(clusters.len())
    };
    if args.json {
        let templates: Vec<_> = clusters[..shown]
            .iter()
            .map(|c| json!({"id": c.id, "count": c.count, "template": c.template()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "lines": lines,
                "templates": drain.clusters().len(),
                "overflowed": drain.overflowed(),
                "header_mismatches": unmatched,
                "seconds": seconds,
                "lines_per_second": lines as f64 / seconds.max(1e-9),
                "top": templates,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{lines} lines, {} templates, {:.0} lines/s",
        drain.clusters().len(),
        lines as f64 / seconds.max(1e-9)
    );
    if unmatched > 0 {
        println!("{unmatched} lines did not match the header format; they were mined whole");
    }
    for c in &clusters[..shown] {
        println!("{:>6} {:>10}  {}", c.id, c.count, c.template());
    }
    Ok(ExitCode::SUCCESS)
}

/// Which detector `vigil eval logs` and `vigil logs train` use.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    /// DeepLog's next-key LSTM.
    Deeplog,
    /// LogBERT-style masked-key transformer.
    Logbert,
    /// Isolation Forest over key counts.
    Iforest,
    /// DeepLog, LogBERT and the Isolation Forest together.
    Ensemble,
}

/// `vigil eval logs`.
#[derive(Args)]
pub struct EvalLogsArgs {
    /// Normal sessions to train on: one session a line, space-separated keys.
    #[arg(long)]
    train: PathBuf,
    /// Labelled sessions to score: CSV `Sequence,label` (1 anomalous).
    #[arg(long)]
    labelled: PathBuf,
    /// All-abnormal sessions to score (one a line), for recall.
    #[arg(long)]
    abnormal: Option<PathBuf>,
    /// The detector.
    #[arg(long, value_enum, default_value = "deeplog")]
    model: ModelArg,
    /// Ensemble policy.
    #[arg(long, value_enum, default_value = "any")]
    policy: PolicyArg,
    /// DeepLog: keys of history (h).
    #[arg(long)]
    window: Option<usize>,
    /// DeepLog and LogBERT: predictions a key must be among (g).
    #[arg(long)]
    top_g: Option<usize>,
    /// DeepLog and LogBERT: probability a key must also reach among the predictions (0:
    /// pure top-g).
    #[arg(long)]
    min_probability: Option<f64>,
    /// DeepLog and LogBERT: training epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// LogBERT: missed keys a session may have and still be normal (r).
    #[arg(long)]
    max_misses: Option<usize>,
    /// LogBERT: share of keys masked per training sequence.
    #[arg(long)]
    mask_ratio: Option<f64>,
    /// LogBERT: weight of the hypersphere loss (0: off).
    #[arg(long)]
    hypersphere: Option<f64>,
    /// LogBERT: share of training sessions inside the sphere's radius; sessions further out
    /// are anomalous (0: the sphere does not judge).
    #[arg(long)]
    sphere_quantile: Option<f64>,
    /// DeepLog: do not predict the end of a session.
    #[arg(long)]
    no_end: bool,
    /// DeepLog: windows whose predictions are cached when scoring; LogBERT: sessions whose
    /// verdicts are (0: no cache).
    #[arg(long)]
    cache: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Scoring threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `--policy`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PolicyArg {
    /// Any member.
    Any,
    /// More than half of the members.
    Majority,
    /// Weighted mean of scores.
    Weighted,
}

fn deeplog_params(args: &EvalLogsArgs) -> vigil_logs::detect::deeplog::DeepLogParams {
    let d = vigil_logs::detect::deeplog::DeepLogParams::default();
    vigil_logs::detect::deeplog::DeepLogParams {
        window: args.window.unwrap_or(d.window),
        top_g: args.top_g.unwrap_or(d.top_g),
        min_probability: args.min_probability.unwrap_or(d.min_probability),
        epochs: args.epochs.unwrap_or(d.epochs),
        end_of_session: !args.no_end && d.end_of_session,
        cache: args.cache.unwrap_or(d.cache),
        seed: args.seed,
        ..d
    }
}

fn logbert_params(args: &EvalLogsArgs) -> vigil_logs::detect::logbert::LogBertParams {
    let d = vigil_logs::detect::logbert::LogBertParams::default();
    vigil_logs::detect::logbert::LogBertParams {
        top_g: args.top_g.unwrap_or(d.top_g),
        min_probability: args.min_probability.unwrap_or(d.min_probability),
        max_misses: args.max_misses.unwrap_or(d.max_misses),
        mask_ratio: args.mask_ratio.unwrap_or(d.mask_ratio),
        hypersphere: args.hypersphere.unwrap_or(d.hypersphere),
        sphere_quantile: args.sphere_quantile.unwrap_or(d.sphere_quantile),
        epochs: args.epochs.unwrap_or(d.epochs),
        cache: args.cache.unwrap_or(d.cache),
        seed: args.seed,
        ..d
    }
}

fn train_logbert(
    sessions: &[Vec<u32>],
    params: &vigil_logs::detect::logbert::LogBertParams,
    quiet: bool,
) -> Result<vigil_logs::detect::logbert::LogBert> {
    let bar = epoch_bar("LogBERT", params.epochs, quiet)?;
    let model = vigil_logs::detect::logbert::LogBert::train(sessions, params, |epoch, loss| {
        advance(&bar, epoch, loss)
    })?;
    bar.finish_and_clear();
    Ok(model)
}

fn epoch_bar(what: &str, epochs: usize, quiet: bool) -> Result<indicatif::ProgressBar> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(epochs as u64)
    };
    bar.set_style(ProgressStyle::with_template(&format!(
        "training {what} {{bar:30}} epoch {{pos}}/{{len}} {{msg}} ({{elapsed}})"
    ))?);
    Ok(bar)
}

/// Moves an epoch bar on (training may run more epochs than asked, to reach its fewest
/// optimiser steps).
fn advance(bar: &indicatif::ProgressBar, epoch: usize, loss: f64) {
    if epoch as u64 > bar.length().unwrap_or(0) {
        bar.set_length(epoch as u64);
    }
    bar.set_position(epoch as u64);
    bar.set_message(format!("loss {loss:.4}"));
}

fn train_deeplog(
    sessions: &[Vec<u32>],
    params: &vigil_logs::detect::deeplog::DeepLogParams,
    quiet: bool,
) -> Result<vigil_logs::detect::deeplog::DeepLog> {
    let bar = epoch_bar("DeepLog", params.epochs, quiet)?;
    let model = vigil_logs::detect::deeplog::DeepLog::train(sessions, params, |epoch, loss| {
        advance(&bar, epoch, loss)
    })?;
    bar.finish_and_clear();
    Ok(model)
}

pub fn eval_logs(args: EvalLogsArgs) -> Result<ExitCode> {
    use vigil_logs::detect::iforest::{IForestDetector, IForestParams};
    use vigil_logs::detect::{Ensemble, Policy, SessionDetector, eval};
    use vigil_logs::keys;
    let train: Vec<Vec<u32>> = keys::read_sequences(&args.train, Some(false))?
        .into_iter()
        .map(|s| s.keys)
        .collect();
    let labelled = keys::read_labelled(&args.labelled)?;
    let abnormal = match &args.abnormal {
        Some(p) => keys::read_sequences(p, Some(true))?,
        None => Vec::new(),
    };
    let quiet = args.json;
    let start = std::time::Instant::now();
    let mut params = json!({});
    let detector: Box<dyn SessionDetector> = match args.model {
        ModelArg::Deeplog => {
            let p = deeplog_params(&args);
            let model = train_deeplog(&train, &p, quiet)?;
            params = json!({"deeplog": p, "deeplog_training": model.training()});
            Box::new(model)
        }
        ModelArg::Logbert => {
            let p = logbert_params(&args);
            let model = train_logbert(&train, &p, quiet)?;
            params = json!({"logbert": p, "logbert_training": model.training()});
            Box::new(model)
        }
        ModelArg::Iforest => {
            let p = IForestParams {
                seed: args.seed,
                ..IForestParams::default()
            };
            params = json!({"iforest": p});
            Box::new(IForestDetector::train(&train, &p)?)
        }
        ModelArg::Ensemble => {
            let dp = deeplog_params(&args);
            let ip = IForestParams {
                seed: args.seed,
                ..IForestParams::default()
            };
            let lp = logbert_params(&args);
            let deeplog = train_deeplog(&train, &dp, quiet)?;
            let logbert = train_logbert(&train, &lp, quiet)?;
            params = json!({
                "deeplog": dp,
                "deeplog_training": deeplog.training(),
                "logbert": lp,
                "logbert_training": logbert.training(),
                "iforest": ip,
            });
            let policy = match args.policy {
                PolicyArg::Any => Policy::Any,
                PolicyArg::Majority => Policy::Majority,
                PolicyArg::Weighted => Policy::Weighted,
            };
            params["policy"] = json!(policy);
            Box::new(Ensemble {
                members: vec![
                    (Box::new(deeplog), 1.0),
                    (Box::new(logbert), 1.0),
                    (Box::new(IForestDetector::train(&train, &ip)?), 1.0),
                ],
                policy,
            })
        }
    };
    let train_seconds = start.elapsed().as_secs_f64();
    let e = eval::evaluate(
        detector.as_ref(),
        train_seconds,
        &labelled,
        &abnormal,
        args.threads,
    );
    if args.json {
        let mut v = serde_json::to_value(&e)?;
        v["train_sessions"] = json!(train.len());
        v["params"] = params;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("model                   {}", e.model);
    for (k, v) in [
        ("precision", e.precision),
        ("recall", e.recall),
        ("f1", e.f1),
        ("fpr", e.fpr),
    ] {
        println!("{k:<24}{v:.4}");
    }
    if let Some(r) = e.abnormal_recall {
        println!(
            "{:<24}{r:.4} ({} sessions)",
            "abnormal_recall", e.abnormal_sessions
        );
    }
    println!("{:<24}{:.2}", "train_seconds", e.train_seconds);
    println!(
        "{:<24}{:.0} ({} threads)",
        "sessions_per_second", e.sessions_per_second, e.threads
    );
    println!(
        "{:<24}{} normal train; labelled {} normal, {} abnormal",
        "sessions",
        train.len(),
        e.labelled.0,
        e.labelled.1
    );
    Ok(ExitCode::SUCCESS)
}

/// Where sessions come from, for `vigil logs train` and `vigil logs detect`.
#[derive(Args)]
pub struct SessionSource {
    /// A raw log file: lines are cut by --format, mined by Drain and grouped into sessions
    /// by --session.
    #[arg(long, conflicts_with = "sequences")]
    logs: Option<PathBuf>,
    /// Key sequences instead: one session a line, space-separated keys.
    #[arg(long)]
    sequences: Option<PathBuf>,
    /// Header format of --logs (default: the whole line is the message).
    #[arg(long)]
    format: Option<String>,
    /// Pattern of the session identifier in a line (the first capture group, or the whole
    /// match).
    #[arg(long, default_value = r"(blk_-?\d+)")]
    session: String,
}

/// `vigil logs train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    source: SessionSource,
    /// The detector.
    #[arg(long, value_enum, default_value = "deeplog")]
    model: ModelArg,
    /// Ensemble policy.
    #[arg(long, value_enum, default_value = "any")]
    policy: PolicyArg,
    /// DeepLog and LogBERT training epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// DeepLog and LogBERT: predictions a key must be among (g).
    #[arg(long)]
    top_g: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Model file to write; an existing one is kept as `<file>.v<N>` and the new one gets
    /// version N + 1.
    #[arg(long, default_value = "vigil-logs-model.json")]
    out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `vigil logs detect`.
#[derive(Args)]
pub struct DetectArgs {
    #[command(flatten)]
    source: SessionSource,
    /// Model file written by `vigil logs train`.
    #[arg(long, default_value = "vigil-logs-model.json")]
    model: PathBuf,
    /// Print every session, not only anomalous ones.
    #[arg(long)]
    all: bool,
    /// Print NDJSON (one session a line) instead of text.
    #[arg(long)]
    json: bool,
}

/// Reads sessions; with a Drain state to extend (training) or to look up (detection).
fn read_sessions(
    source: &SessionSource,
    drain: &mut Option<vigil_logs::Drain>,
    learn: bool,
) -> Result<Vec<(String, Vec<u32>)>> {
    use vigil_logs::{LogFormat, session::Sessionizer};
    if let Some(p) = &source.sequences {
        return Ok(vigil_logs::keys::read_sequences(p, None)?
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("line {}", i + 1), s.keys))
            .collect());
    }
    let Some(path) = &source.logs else {
        bail!("give --logs FILE (raw log lines) or --sequences FILE (key sequences)");
    };
    let format = source.format.as_deref().map(LogFormat::new).transpose()?;
    let text = String::from_utf8_lossy(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .into_owned();
    let mut sessions = Sessionizer::new(&source.session, 1_000_000, 100_000)
        .with_context(|| format!("--session {:?} is not a valid pattern", source.session))?;
    let drain = drain.get_or_insert_with(|| vigil_logs::Drain::new(Default::default()));
    let mut out = Vec::new();
    for line in text.lines() {
        let message = match &format {
            Some(f) => f.split(line).map_or(line, |h| h.content),
            None => line,
        };
        // Detection: a line that matches no template is an unseen key (u32::MAX).
        let key = if learn {
            drain.parse(message).id
        } else {
            drain.lookup(message).unwrap_or(u32::MAX)
        };
        out.extend(sessions.push(line, key));
    }
    out.extend(sessions.finish());
    Ok(out)
}

fn train(args: TrainArgs) -> Result<ExitCode> {
    use vigil_logs::detect::Policy;
    use vigil_logs::model::{Kind, LogModel, Reading, TrainSpec};
    let mut drain = None;
    let sessions = read_sessions(&args.source, &mut drain, true)?;
    let keys: Vec<Vec<u32>> = sessions.into_iter().map(|(_, k)| k).collect();
    if keys.is_empty() {
        bail!("no sessions found: check --session (a pattern of the identifier that groups lines)");
    }
    let mut spec = TrainSpec {
        kinds: match args.model {
            ModelArg::Deeplog => vec![Kind::Deeplog],
            ModelArg::Logbert => vec![Kind::Logbert],
            ModelArg::Iforest => vec![Kind::Iforest],
            ModelArg::Ensemble => Kind::ALL.to_vec(),
        },
        policy: Some(match args.policy {
            PolicyArg::Any => Policy::Any,
            PolicyArg::Majority => Policy::Majority,
            PolicyArg::Weighted => Policy::Weighted,
        }),
        ..TrainSpec::default()
    };
    if let Some(e) = args.epochs {
        spec.deeplog.epochs = e;
        spec.logbert.epochs = e;
    }
    if let Some(g) = args.top_g {
        spec.deeplog.top_g = g;
        spec.logbert.top_g = g;
    }
    spec.deeplog.seed = args.seed;
    spec.logbert.seed = args.seed;
    spec.iforest.seed = args.seed;
    let previous = std::fs::read(&args.out)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_u64());
    let version = previous.unwrap_or(0) + 1;
    let reading = Reading {
        header_format: args.source.format.clone(),
        session_pattern: args.source.session.clone(),
    };
    let bars: Vec<(Kind, indicatif::ProgressBar)> = spec
        .kinds
        .iter()
        .filter(|k| **k != Kind::Iforest)
        .map(|&k| {
            let (name, epochs) = match k {
                Kind::Deeplog => ("DeepLog", spec.deeplog.epochs),
                _ => ("LogBERT", spec.logbert.epochs),
            };
            epoch_bar(name, epochs, args.json).map(|b| (k, b))
        })
        .collect::<Result<_>>()?;
    let model = LogModel::train(
        &keys,
        drain,
        reading,
        &spec,
        version,
        |kind, epoch, loss| {
            if let Some((_, bar)) = bars.iter().find(|(k, _)| *k == kind) {
                advance(bar, epoch, loss);
            }
        },
    )?;
    for (_, bar) in &bars {
        bar.finish_and_clear();
    }
    if let Some(v) = previous {
        let kept = PathBuf::from(format!("{}.v{v}", args.out.display()));
        std::fs::rename(&args.out, &kept)
            .with_context(|| format!("keeping the previous model as {}", kept.display()))?;
    }
    vigil_store::fsutil::write_atomic(&args.out, &model.to_json())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let kinds: Vec<&str> = model.kinds().iter().map(|k| k.name()).collect();
    if args.json {
        let summary = json!({"out": args.out, "version": version, "sessions": keys.len(),
            "detectors": kinds, "training": model.training});
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "trained {} on {} sessions; model version {version} written to {}",
            kinds.join(", "),
            keys.len(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn detect(args: DetectArgs) -> Result<ExitCode> {
    use vigil_logs::model::LogModel;
    let bytes = std::fs::read(&args.model).with_context(|| {
        format!(
            "reading {} (train one with `vigil logs train`)",
            args.model.display()
        )
    })?;
    let model = LogModel::from_json(&bytes)
        .with_context(|| format!("{} is not a usable Vigil log model", args.model.display()))?;
    if args.source.logs.is_some() && model.drain().is_none() {
        bail!("this model was trained on key sequences; detect with --sequences");
    }
    let mut drain = model.drain().cloned();
    let sessions = read_sessions(&args.source, &mut drain, false)?;
    let refs: Vec<&[u32]> = sessions.iter().map(|(_, k)| k.as_slice()).collect();
    let verdicts = model.judge_many(&refs);
    let mut anomalies = 0usize;
    for ((id, keys), v) in sessions.iter().zip(&verdicts) {
        anomalies += usize::from(v.anomalous);
        if !v.anomalous && !args.all {
            continue;
        }
        let explanation = model.explain(v.reason.as_ref());
        if args.json {
            println!(
                "{}",
                json!({"session": id, "keys": keys.len(), "anomalous": v.anomalous,
                "score": v.score, "reason": v.reason, "explanation": explanation})
            );
        } else {
            println!(
                "{id}: {} (score {:.2}) {explanation}",
                if v.anomalous { "ANOMALOUS" } else { "normal" },
                v.score
            );
        }
    }
    if !args.json {
        println!("{anomalies} of {} sessions anomalous", sessions.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil gen-logs`.
#[derive(Args)]
pub struct GenLogsArgs {
    /// Folder to write auth.log, access.log, kern.log, hdfs.log and labels.csv into.
    #[arg(long)]
    out: PathBuf,
    /// Lines per file, roughly.
    #[arg(long, default_value_t = 10_000)]
    lines: usize,
    /// Share of episodes that are attacks or failures (0 for normal logs only).
    #[arg(long, default_value_t = 0.02)]
    anomaly_rate: f64,
    /// Random seed (the same seed writes the same files).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn gen_logs(args: GenLogsArgs) -> Result<ExitCode> {
    use vigil_logs::sample::{GenParams, generate, labels_csv};
    if !(0.0..=1.0).contains(&args.anomaly_rate) {
        bail!("--anomaly-rate must be between 0 and 1");
    }
    if args.lines > 100_000_000 {
        bail!("--lines is at most 100,000,000 per file");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let files = generate(&GenParams {
        lines: args.lines,
        anomaly_rate: args.anomaly_rate,
        seed: args.seed,
    });
    let mut summary = Vec::new();
    for f in &files {
        let mut text = f.lines.join("\n");
        text.push('\n');
        let path = args.out.join(f.name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let anomalous = f.labels.iter().filter(|l| l.is_some()).count();
        summary.push(json!({"file": path, "lines": f.lines.len(), "anomalous_lines": anomalous}));
    }
    let labels = args.out.join("labels.csv");
    std::fs::write(&labels, labels_csv(&files))
        .with_context(|| format!("writing {}", labels.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"files": summary, "labels": labels}))?
        );
    } else {
        for s in &summary {
            println!(
                "{}: {} lines, {} injected",
                s["file"].as_str().unwrap_or_default(),
                s["lines"],
                s["anomalous_lines"]
            );
        }
        println!("ground truth: {}", labels.display());
    }
    Ok(ExitCode::SUCCESS)
}
