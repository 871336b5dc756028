//! File analysis from the command line: `vigil scan`, `vigil file train`, `vigil eval file`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use vigil_file::dataset::{FeatureTable, read_clamp_csv, read_seed_csv};
use vigil_file::model::FileModel;
use vigil_file::{FileConfig, FileEngine, clamp, headers::Headers};
use vigil_ml::ForestParams;
use vigil_ml::metrics::BinaryReport;

/// Forest options shared by `train` and `eval`.
#[derive(Args, Clone)]
pub struct ForestArgs {
    /// Trees in the forest.
    #[arg(long, default_value_t = 200)]
    trees: usize,
    /// Random seed (the same seed and data give the same model).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl ForestArgs {
    fn params(&self) -> ForestParams {
        ForestParams {
            n_trees: self.trees,
            seed: self.seed,
            ..ForestParams::default()
        }
    }
}

/// `vigil file …`.
#[derive(Subcommand)]
pub enum FileCommand {
    /// Train the file model from a labelled dataset and save it.
    Train {
        /// ClaMP raw-feature CSV, or seed 001's CSV of `path, sha256, label` (files are read
        /// and their features extracted; relative paths are relative to the CSV).
        #[arg(long)]
        dataset: PathBuf,
        /// Where to write the model (JSON).
        #[arg(long, default_value = "vigil-file-model.json")]
        out: PathBuf,
        /// Folds of cross-validation to run first and record with the model (0: none).
        #[arg(long, default_value_t = 5)]
        cv: usize,
        #[command(flatten)]
        forest: ForestArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `vigil eval file`.
#[derive(Args)]
pub struct EvalFileArgs {
    /// Training CSV (ClaMP raw format).
    #[arg(long)]
    train: PathBuf,
    /// Test CSV (ClaMP raw format); without it, cross-validation on the training file.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Folds when there is no test file.
    #[arg(long, default_value_t = 5)]
    cv: usize,
    #[command(flatten)]
    forest: ForestArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `vigil scan`.
#[derive(Args)]
pub struct ScanArgs {
    /// Files to scan.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A model from `vigil file train` (without one: YARA and structure only).
    #[arg(long, env = "VIGIL_FILE_MODEL")]
    model: Option<PathBuf>,
    /// Folders of extra YARA rules.
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// Leave Vigil's default YARA rules out.
    #[arg(long)]
    no_default_rules: bool,
    /// Score at or above which a file is malicious.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Print a JSON array (one object per file).
    #[arg(long, conflicts_with = "ndjson")]
    json: bool,
    /// Print one JSON object per line, as each file is done.
    #[arg(long)]
    ndjson: bool,
    /// Include the full static report in JSON output.
    #[arg(long)]
    full: bool,
}

fn seed_table(path: &Path) -> Result<FeatureTable> {
    let rows = read_seed_csv(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut table = FeatureTable::default();
    let bar = progress(rows.len() as u64, "extracting features");
    for row in rows {
        bar.inc(1);
        let file = base.join(&row.path);
        let bytes =
            std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
        let sha = vigil_file::analysis::sha256_hex(&bytes);
        if sha != row.sha256 {
            bail!(
                "{}: its SHA-256 is {sha}, the dataset says {}",
                file.display(),
                row.sha256
            );
        }
        let headers =
            Headers::parse(&bytes).with_context(|| format!("{}: not a PE file", file.display()))?;
        table.rows.push(clamp::vector(&headers));
        table.labels.push(row.label);
    }
    bar.finish_and_clear();
    Ok(table)
}

/// Reads either dataset kind: ClaMP's CSV has a `class` column, seed 001's does not.
fn read_dataset(path: &Path) -> Result<(FeatureTable, String)> {
    let first = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    if first.split(',').any(|c| c.trim() == "class") {
        Ok((
            read_clamp_csv(path)?,
            format!("{name} (ClaMP raw features)"),
        ))
    } else {
        Ok((
            seed_table(path)?,
            format!("{name} (files, path/sha256/label)"),
        ))
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    if len < 20 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

fn print_metrics(v: &Value, json_out: bool) -> Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    for key in [
        "auc",
        "accuracy",
        "detection_at_1pct_fpr",
        "precision",
        "recall",
        "f1",
        "fit_seconds",
    ] {
        if let Some(x) = v.get(key).and_then(Value::as_f64) {
            println!("{key:<24}{x:.4}");
        }
    }
    for key in ["n_train", "n_test", "folds", "trees"] {
        if let Some(x) = v.get(key) {
            println!("{key:<24}{x}");
        }
    }
    Ok(())
}

/// `vigil eval file`.
pub fn eval(args: EvalFileArgs) -> Result<ExitCode> {
    let train = read_clamp_csv(&args.train)?;
    let params = args.forest.params();
    let out = match &args.test {
        Some(test_path) => {
            let test = read_clamp_csv(test_path)?;
            let started = Instant::now();
            let model = FileModel::train(&train, &params, "eval", None)?;
            let fit_seconds = started.elapsed().as_secs_f64();
            let scores = model.score_rows(&test.rows)?;
            let r = BinaryReport::compute(&scores, &test.labels)?;
            json!({
                "auc": r.auc, "accuracy": r.accuracy,
                "detection_at_1pct_fpr": r.detection_at_1pct_fpr,
                "precision": r.precision, "recall": r.recall, "f1": r.f1,
                "fit_seconds": fit_seconds, "n_train": train.rows.len(), "n_test": test.rows.len(),
                "trees": params.n_trees, "seed": params.seed,
            })
        }
        None => {
            let x = vigil_ml::Matrix::from_rows(&train.rows)?;
            let started = Instant::now();
            let cv =
                vigil_ml::cv::cross_validate(&x, &train.labels, &params, args.cv, params.seed)?;
            let seconds = started.elapsed().as_secs_f64();
            json!({
                "auc": cv.mean.auc, "accuracy": cv.mean.accuracy,
                "detection_at_1pct_fpr": cv.mean.detection_at_1pct_fpr,
                "fit_seconds": seconds / args.cv as f64, "folds": args.cv,
                "n_train": train.rows.len(), "trees": params.n_trees, "seed": params.seed,
                "per_fold": cv.folds,
            })
        }
    };
    print_metrics(&out, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `vigil file …`.
pub fn run(command: FileCommand) -> Result<ExitCode> {
    match command {
        FileCommand::Train {
            dataset,
            out,
            cv,
            forest,
            json,
        } => {
            let (table, source) = read_dataset(&dataset)?;
            if table.rows.is_empty() {
                bail!("{}: no rows", dataset.display());
            }
            let started = Instant::now();
            let model =
                FileModel::train(&table, &forest.params(), &source, (cv > 0).then_some(cv))?;
            let seconds = started.elapsed().as_secs_f64();
            std::fs::write(&out, model.to_json())
                .with_context(|| format!("cannot write {}", out.display()))?;
            let mut summary = json!({
                "model": out, "model_id": model.model_id, "trained_on": model.trained_on,
                "trees": forest.trees, "seconds": seconds,
            });
            if let Some(cv) = &model.cross_validation {
                summary["auc"] = json!(cv.mean.auc);
                summary["accuracy"] = json!(cv.mean.accuracy);
                summary["detection_at_1pct_fpr"] = json!(cv.mean.detection_at_1pct_fpr);
                summary["folds"] = json!(cv.folds.len());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "model {} written to {} ({} rows, {} malware, {seconds:.1} s)",
                    model.model_id,
                    out.display(),
                    model.trained_on.rows,
                    model.trained_on.positives
                );
                if let Some(cv) = &model.cross_validation {
                    println!(
                        "{}-fold cross-validation: AUC {:.4}, accuracy {:.4}, detection at 1% FPR {:.4}",
                        cv.folds.len(),
                        cv.mean.auc,
                        cv.mean.accuracy,
                        cv.mean.detection_at_1pct_fpr
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `vigil scan`.
pub fn scan(args: ScanArgs) -> Result<ExitCode> {
    let engine = FileEngine::new(FileConfig {
        threshold: args.threshold,
        yara_rules: args.rules.clone(),
        builtin_rules: !args.no_default_rules,
        model: args.model.clone(),
        ..FileConfig::default()
    })?;
    if engine.model().is_none() && !args.json && !args.ndjson {
        eprintln!(
            "note: no model (--model or VIGIL_FILE_MODEL); judging on YARA rules alone. \
             Train one with `vigil file train --dataset DATASET.csv`."
        );
    }
    let bar = progress(args.files.len() as u64, "scanning");
    let max = engine.config().limits.max_file_bytes as u64;
    let mut all = Vec::new();
    let mut failures = 0;
    let stdout = std::io::stdout();
    for path in &args.files {
        bar.inc(1);
        let entry = match std::fs::metadata(path).and_then(|m| {
            if m.len() > max {
                Err(std::io::Error::other(format!(
                    "{} bytes; files of at most {max} are analysed",
                    m.len()
                )))
            } else {
                std::fs::read(path)
            }
        }) {
            Ok(bytes) => {
                let report = engine.report(&bytes, Vec::new());
                let mut v = json!({
                    "path": path, "sha256": report.sha256, "is_pe": report.is_pe,
                    "score": report.score, "verdict": report.verdict, "yara": report.yara,
                    "explanation": report.explanation, "model_score": report.model_score,
                });
                if args.full {
                    v["report"] = serde_json::to_value(&report)?;
                }
                v
            }
            Err(e) => {
                failures += 1;
                json!({"path": path, "error": e.to_string()})
            }
        };
        if args.ndjson {
            let mut out = stdout.lock();
            writeln!(out, "{entry}")?;
        } else if args.json {
            all.push(entry);
        } else {
            bar.suspend(|| print_human(&entry));
        }
    }
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_human(entry: &Value) {
    let path = entry["path"].as_str().unwrap_or_default();
    if let Some(e) = entry["error"].as_str() {
        println!("error      {path}: {e}");
        return;
    }
    println!(
        "{:<10} {:.2}  {path}",
        entry["verdict"].as_str().unwrap_or_default(),
        entry["score"].as_f64().unwrap_or_default()
    );
    for line in entry["explanation"].as_array().into_iter().flatten() {
        if let Some(line) = line.as_str() {
            println!("             {line}");
        }
    }
}
