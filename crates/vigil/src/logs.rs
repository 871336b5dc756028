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
