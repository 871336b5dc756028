//! `vigil script check FILE…` and `vigil script test FILE --event EVENT.json`: work on
//! `.rhai` (and seed-000 `.py`) files locally, with the server's default limits, before uploading them.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vigil_script::{Lists, Manifest, PythonConfig, ScriptEngine, ScriptLimits, ScriptSet};

/// `vigil script …`.
#[derive(Subcommand)]
pub enum ScriptCommand {
    /// Compile scripts and report errors with line and column.
    Check {
        /// `.rhai` files with `//!` TOML front matter (name, categories, config), or
        /// `.py` files in seed 000's contract (optional `#:` TOML lines).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The Python interpreter for `.py` scripts.
        #[arg(long, default_value = "/usr/bin/python3")]
        python: String,
    },
    /// Run one script on one event and print what it answers.
    Test {
        /// The `.rhai` or `.py` file.
        file: PathBuf,
        /// A JSON file holding one event.
        #[arg(long)]
        event: PathBuf,
        /// Lookup lists for `in_list`, as NAME=FILE (one value a line); repeatable.
        #[arg(long = "list", value_name = "NAME=FILE")]
        lists: Vec<String>,
        /// The Python interpreter for `.py` scripts.
        #[arg(long, default_value = "/usr/bin/python3")]
        python: String,
    },
}

/// The server's default limits, with Python scripts allowed on `python`.
fn local_limits(python: &str) -> ScriptLimits {
    ScriptLimits {
        python: PythonConfig {
            enabled: true,
            interpreter: python.to_string(),
            ..PythonConfig::default()
        },
        ..ScriptLimits::default()
    }
}

fn check_one(set: &ScriptSet, file: &PathBuf) -> Result<Value> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let max_timeout_ms = set.engine().limits().max_timeout_ms;
    let manifest = match Manifest::for_file(file, &source)
        .and_then(|m| m.validate(max_timeout_ms).map(|_| m))
    {
        Ok(m) => m,
        Err(e) => {
            return Ok(
                json!({"file": file, "ok": false, "error": {"code": "manifest", "field": e.field, "message": e.message}}),
            );
        }
    };
    let (name, categories) = (manifest.name.clone(), manifest.categories.clone());
    Ok(match set.prepare(manifest, 1, &source, true, None) {
        Ok(_) => {
            json!({"file": file, "ok": true, "name": name, "categories": categories})
        }
        Err(e) => json!({"file": file, "ok": false, "error": e}),
    })
}

/// Runs the command.
pub fn run(command: ScriptCommand) -> Result<ExitCode> {
    match command {
        ScriptCommand::Check {
            files,
            json,
            python,
        } => {
            let set = ScriptSet::new(Arc::new(ScriptEngine::new(
                local_limits(&python),
                Lists::default(),
            )));
            let reports = files
                .iter()
                .map(|f| check_one(&set, f))
                .collect::<Result<Vec<_>>>()?;
            let failed = reports.iter().filter(|r| r["ok"] == false).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in &reports {
                    let file = r["file"].as_str().unwrap_or_default();
                    if r["ok"] == true {
                        println!("ok     {file} ({})", r["name"].as_str().unwrap_or_default());
                    } else {
                        let e = &r["error"];
                        let at = match (e["line"].as_u64(), e["column"].as_u64()) {
                            (Some(l), Some(c)) => format!(":{l}:{c}"),
                            (Some(l), None) => format!(":{l}"),
                            _ => String::new(),
                        };
                        println!(
                            "error  {file}{at}: {} ({})",
                            e["message"].as_str().unwrap_or_default(),
                            e["code"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ScriptCommand::Test {
            file,
            event,
            lists,
            python,
        } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let manifest =
                Manifest::for_file(&file, &source).with_context(|| file.display().to_string())?;
            let shared = Lists::default();
            for spec in &lists {
                let (name, path) = spec.split_once('=').context("--list takes NAME=FILE")?;
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
                shared.set(name, text.lines().map(str::to_string));
            }
            let set = ScriptSet::new(Arc::new(ScriptEngine::new(local_limits(&python), shared)));
            let name = manifest.name.clone();
            set.load(manifest, 1, &source, true, None)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let text = std::fs::read(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            let ev = vigil_core::ndjson::parse_event(&text, chrono::Utc::now())
                .map_err(|e| anyhow::anyhow!("{}: {}", event.display(), e.message))?;
            let mut report = set.analyze(&Arc::new(ev));
            // Unlike the server, a test run always reports the script, even when it said nothing.
            if report.results.is_empty() && report.errors.is_empty() {
                report.results.insert(name, Value::Null);
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
