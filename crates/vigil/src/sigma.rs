//! `vigil sigma check`, `vigil evtx` and `vigil eval sigma`: Sigma rules from the command
//! line — validate a folder, hunt through Windows event logs offline (like Hayabusa or
//! Chainsaw), and measure the engine on SigmaHQ's regression cases.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use vigil_evtx::EvtxReader;
use vigil_sigma::{LoadReport, Record, RuleSet};

/// `vigil sigma …`.
#[derive(Subcommand)]
pub enum SigmaCommand {
    /// Load and compile every rule under the folders; list the ones refused, with why.
    Check(CheckArgs),
}

/// `vigil sigma check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Rule folders (searched recursively for .yml/.yaml).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Print JSON: files, loaded, rejected (each with path, id, title and reason).
    #[arg(long)]
    json: bool,
}

fn load(dirs: &[PathBuf]) -> Result<(LoadReport, f64)> {
    for d in dirs {
        if !d.exists() {
            bail!(
                "rule folder {} does not exist. SigmaHQ's rules: git clone https://github.com/SigmaHQ/sigma and pass sigma/rules",
                d.display()
            );
        }
    }
    let started = Instant::now();
    let report = RuleSet::load_dirs(dirs).context("loading the Sigma rules")?;
    Ok((report, started.elapsed().as_secs_f64()))
}

/// Rejections grouped by their reason, with the quoted (`…`) parts folded so that "unsupported
/// modifier `expand`" and "unsupported modifier `foo`" count as one reason.
fn reasons(report: &LoadReport) -> Vec<(String, usize)> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for r in &report.rejected {
        let key: String = r
            .reason
            .split('`')
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { "`…`" } else { part })
            .collect();
        *by.entry(key).or_default() += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Runs `vigil sigma check`. Exit code 1 when any rule was refused.
pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let (report, secs) = load(&args.dirs)?;
    if args.json {
        let rejected: Vec<_> = report
            .rejected
            .iter()
            .map(|r| json!({"path": r.path, "id": r.id, "title": r.title, "reason": r.reason}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "files": report.files,
                "loaded": report.rules.len(),
                "rejected": rejected,
                "seconds": secs,
            }))?
        );
    } else {
        for r in &report.rejected {
            println!(
                "refused {} ({}): {}",
                r.path.display(),
                r.id.as_deref().unwrap_or("no id"),
                r.reason
            );
        }
        println!(
            "{} files: {} rules loaded, {} refused, in {:.2} s",
            report.files,
            report.rules.len(),
            report.rejected.len(),
            secs
        );
        for (reason, n) in reasons(&report).into_iter().take(10) {
            println!("  {n:>5} × {reason}");
        }
    }
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Output formats of `vigil evtx`.
#[derive(Clone, Copy, ValueEnum)]
pub enum EvtxFormat {
    /// An aligned table for people.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON object a line.
    Json,
}

/// `vigil evtx`.
#[derive(Args)]
pub struct EvtxArgs {
    /// .evtx files, or folders searched recursively.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Sigma rule folders (repeat the flag or list several).
    #[arg(long, required = true, num_args = 1..)]
    rules: Vec<PathBuf>,
    /// Only detections at least this severe.
    #[arg(long, value_enum, default_value = "informational")]
    min_level: MinLevel,
    /// How to print the timeline.
    #[arg(long, value_enum, default_value = "table")]
    format: EvtxFormat,
    /// Write the timeline to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Minimum level of `vigil evtx`.
#[derive(Clone, Copy, ValueEnum, PartialEq, PartialOrd)]
pub enum MinLevel {
    /// Everything.
    Informational,
    /// low and above.
    Low,
    /// medium and above.
    Medium,
    /// high and above.
    High,
    /// critical only.
    Critical,
}

#[derive(Serialize)]
struct Detection {
    timestamp: String,
    computer: String,
    channel: String,
    event_id: String,
    record_id: u64,
    level: &'static str,
    rule_id: String,
    rule_title: String,
    file: String,
    details: String,
}

fn text(r: &Record, field: &str) -> String {
    match r.get(field) {
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// Runs `vigil evtx`: every record of every file through the rules, the detections as a
/// timeline (oldest first), then a summary by level on standard error.
pub fn evtx(args: EvtxArgs) -> Result<ExitCode> {
    let files = vigil_evtx::find_evtx_files(&args.inputs)?;
    if files.is_empty() {
        bail!("no .evtx files under the given paths");
    }
    let (report, secs) = load(&args.rules)?;
    eprintln!(
        "vigil: {} rules loaded ({} refused; `vigil sigma check` lists them) in {:.2} s",
        report.rules.len(),
        report.rejected.len(),
        secs
    );
    let rules = report.rules;
    let total_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(total_bytes);
        b.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({eta})")
                .expect("a valid template"),
        );
        b.set_message("scanning");
        b
    };
    let min = args.min_level as u8;
    let mut detections = Vec::new();
    let (mut records, mut bad) = (0u64, 0u64);
    let started = Instant::now();
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let mut reader = match EvtxReader::open(file) {
            Ok(r) => r,
            Err(e) => {
                bar.suspend(|| eprintln!("vigil: skipped {}: {e}", file.display()));
                bar.inc(size);
                continue;
            }
        };
        for rec in reader.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    bad += 1;
                    bar.suspend(|| eprintln!("vigil: {}: a bad record: {e}", file.display()));
                    continue;
                }
            };
            records += 1;
            let record = Record::from_evtx_json(&rec.data);
            for m in rules.matches(&record) {
                if (m.rule.level as u8) < min {
                    continue;
                }
                let details = m
                    .fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(" ¦ ");
                detections.push(Detection {
                    timestamp: rec.timestamp.clone(),
                    computer: text(&record, "Computer"),
                    channel: text(&record, "Channel"),
                    event_id: text(&record, "EventID"),
                    record_id: rec.record_id,
                    level: m.rule.level.as_str(),
                    rule_id: m.rule.id.clone(),
                    rule_title: m.rule.title.clone(),
                    file: file.display().to_string(),
                    details,
                });
            }
        }
        bar.inc(size);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    detections.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));

    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match args.format {
        EvtxFormat::Json => {
            for d in &detections {
                serde_json::to_writer(&mut out, d)?;
                out.write_all(b"\n")?;
            }
        }
        EvtxFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for d in &detections {
                w.serialize(d)?;
            }
            w.flush()?;
        }
        EvtxFormat::Table => {
            writeln!(
                out,
                "{:<27} {:<16} {:<8} {:>6}  rule",
                "timestamp", "computer", "level", "event"
            )?;
            for d in &detections {
                writeln!(
                    out,
                    "{:<27} {:<16} {:<8} {:>6}  {}",
                    d.timestamp,
                    clip(&d.computer, 16),
                    d.level,
                    d.event_id,
                    d.rule_title
                )?;
                if !d.details.is_empty() {
                    writeln!(out, "{:>62}{}", "", clip(&d.details, 160))?;
                }
            }
        }
    }
    out.flush()?;
    let mut by_level: BTreeMap<u8, (usize, BTreeSet<&str>)> = BTreeMap::new();
    for d in &detections {
        let rank = ["informational", "low", "medium", "high", "critical"]
            .iter()
            .position(|l| *l == d.level)
            .unwrap_or(0) as u8;
        let e = by_level.entry(rank).or_default();
        e.0 += 1;
        e.1.insert(&d.rule_id);
    }
    eprintln!(
        "vigil: {} files, {} records ({} unreadable) in {:.2} s ({:.0} records/s); {} detections",
        files.len(),
        records,
        bad,
        elapsed,
        records as f64 / elapsed.max(1e-9),
        detections.len()
    );
    for (rank, (n, rules)) in by_level.iter().rev() {
        eprintln!(
            "  {:<13} {:>7} detections from {} rules",
            ["informational", "low", "medium", "high", "critical"][*rank as usize],
            n,
            rules.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `vigil eval sigma`.
#[derive(Args)]
pub struct EvalSigmaArgs {
    /// Rule folders, all loaded together.
    #[arg(long, required = true, num_args = 1..)]
    rules: Vec<PathBuf>,
    /// SigmaHQ's regression data: case folders, each with info.yml, an .evtx and a .json.
    #[arg(long)]
    regression: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Match each case's records this many times, for a steadier records/s (the verdicts
    /// are those of the first pass).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repeat: u32,
}

#[derive(Serialize)]
struct Failure {
    case: String,
    rule_id: Option<String>,
    reason: String,
}

/// The rule id a case's `info.yml` names (`rule_metadata[0].id`): the first `id:` in the
/// top-level `rule_metadata:` block. (SigmaHQ writes these files by a template; a full
/// YAML parse is not needed for one key.)
pub fn case_rule_id(info: &str) -> Option<String> {
    let mut in_meta = false;
    for line in info.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '-']) {
            in_meta = line.trim_end() == "rule_metadata:";
            continue;
        }
        if in_meta {
            let t = line.trim().trim_start_matches('-').trim();
            if let Some(v) = t.strip_prefix("id:") {
                let v = v.trim().trim_matches(['"', '\'']);
                return (!v.is_empty()).then(|| v.to_string());
            }
        }
    }
    None
}

/// Case folders: every folder holding an `info.yml`, sorted.
fn case_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in entries {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && e.file_name() == "info.yml" {
                out.push(dir.clone());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Matches `records` `repeat` times (the verdicts of the first pass go to `fired`); the
/// time it took.
fn match_all(
    rules: &RuleSet,
    records: &[Record],
    repeat: u32,
    fired: &mut BTreeSet<String>,
) -> Duration {
    let started = Instant::now();
    for r in records {
        for m in rules.matches(r) {
            fired.insert(m.rule.id.clone());
        }
    }
    for _ in 1..repeat {
        for r in records {
            std::hint::black_box(rules.matches(r));
        }
    }
    started.elapsed()
}

/// Runs `vigil eval sigma`.
pub fn eval(args: EvalSigmaArgs) -> Result<ExitCode> {
    let (report, load_secs) = load(&args.rules)?;
    let rejected_by_id: BTreeMap<&str, &str> = report
        .rejected
        .iter()
        .filter_map(|r| Some((r.id.as_deref()?, r.reason.as_str())))
        .collect();
    let loaded_ids: BTreeSet<&str> = report.rules.rules().map(|r| r.id.as_str()).collect();
    let cases = case_dirs(&args.regression)?;
    if cases.is_empty() {
        bail!(
            "no case folders (with an info.yml) under {}",
            args.regression.display()
        );
    }
    let (mut passed, mut noise_total, mut records_total) = (0usize, 0usize, 0u64);
    let mut match_time = Duration::ZERO;
    let mut parse_time = Duration::ZERO;
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .strip_prefix(&args.regression)
            .unwrap_or(case)
            .display()
            .to_string();
        let info = std::fs::read_to_string(case.join("info.yml"))?;
        let Some(want) = case_rule_id(&info) else {
            failures.push(Failure {
                case: name,
                rule_id: None,
                reason: "info.yml names no rule (rule_metadata[0].id)".into(),
            });
            continue;
        };
        let fail = |reason: String| Failure {
            case: name.clone(),
            rule_id: Some(want.clone()),
            reason,
        };
        if !loaded_ids.contains(want.as_str()) {
            failures.push(fail(match rejected_by_id.get(want.as_str()) {
                Some(why) => format!("the rule was refused at load: {why}"),
                None => "the rule is in none of the rule folders".into(),
            }));
            continue;
        }
        let evtx: Vec<PathBuf> = std::fs::read_dir(case)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("evtx"))
            })
            .collect();
        // A `.raw` case (a log line, e.g. Cisco syslog) has no Windows channel to tell its
        // source: each line is read as a shipper would tag it, with the product, service and
        // category of the rule's own logsource, the line in `message`.
        let raw: Vec<PathBuf> = std::fs::read_dir(case)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("raw")))
            .collect();
        if evtx.is_empty() && raw.is_empty() {
            failures.push(fail("the case has no .evtx (or .raw) file".into()));
            continue;
        }
        let mut fired: BTreeSet<String> = BTreeSet::new();
        let mut channels: BTreeSet<String> = BTreeSet::new();
        let mut n = 0u64;
        let mut unreadable = None;
        for file in &evtx {
            let t0 = Instant::now();
            let records: Vec<Record> = match EvtxReader::open(file) {
                Ok(mut r) => r
                    .records()
                    .filter_map(|x| x.ok())
                    .map(|x| Record::from_evtx_json(&x.data))
                    .collect(),
                Err(e) => {
                    unreadable = Some(e.to_string());
                    continue;
                }
            };
            parse_time += t0.elapsed();
            match_time += match_all(&report.rules, &records, args.repeat, &mut fired);
            for r in &records {
                channels.insert(format!("{}/{}", text(r, "Channel"), text(r, "EventID")));
            }
            n += records.len() as u64;
        }
        if !raw.is_empty() {
            let source = report
                .rules
                .rules()
                .find(|r| r.id == want)
                .map(|r| r.logsource.clone())
                .unwrap_or_default();
            let mut records = Vec::new();
            for file in &raw {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let mut pairs = vec![("message".to_string(), json!(line))];
                    for (k, v) in [
                        ("product", &source.product),
                        ("service", &source.service),
                        ("category", &source.category),
                    ] {
                        if let Some(v) = v {
                            pairs.push((k.to_string(), json!(v)));
                        }
                    }
                    records.push(Record::from_pairs(pairs));
                }
            }
            match_time += match_all(&report.rules, &records, args.repeat, &mut fired);
            channels.insert("raw lines".into());
            n += records.len() as u64;
        }
        records_total += n;
        if fired.contains(&want) {
            passed += 1;
        } else {
            failures.push(fail(match unreadable {
                Some(e) if n == 0 => format!("the .evtx is unreadable: {e}"),
                _ => format!(
                    "did not fire on any of {n} records (channel/event id: {})",
                    channels.into_iter().collect::<Vec<_>>().join(", ")
                ),
            }));
        }
        noise_total += fired.iter().filter(|id| **id != want).count();
    }
    let match_secs = match_time.as_secs_f64();
    let result = json!({
        "cases": cases.len(),
        "passed": passed,
        "pass_rate": passed as f64 / cases.len() as f64,
        "failures": failures,
        "noise": noise_total as f64 / cases.len() as f64,
        "rules_loaded": report.rules.len(),
        "rules_rejected": report.rejected.len(),
        "records": records_total,
        "records_per_second": (records_total * u64::from(args.repeat)) as f64 / match_secs.max(1e-9),
        "repeat": args.repeat,
        "seconds_match": match_secs,
        "seconds_parse": parse_time.as_secs_f64(),
        "seconds_load_rules": load_secs,
        "records_per_second_with_parsing": records_total as f64
            / (match_secs / f64::from(args.repeat) + parse_time.as_secs_f64()).max(1e-9),
        "note": "records_per_second counts matching only (all rules loaded, one thread); parsing EVTX is timed apart",
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        for f in &failures {
            println!(
                "FAIL {} ({}): {}",
                f.case,
                f.rule_id.as_deref().unwrap_or("?"),
                f.reason
            );
        }
        println!(
            "{passed}/{} cases passed ({:.1}%); {:.2} other rules fired per case on average",
            cases.len(),
            100.0 * passed as f64 / cases.len() as f64,
            noise_total as f64 / cases.len() as f64
        );
        println!(
            "{} rules loaded, {} refused (in {:.2} s); {} records matched at {:.0} records/s ({:.0}/s with EVTX parsing)",
            report.rules.len(),
            report.rejected.len(),
            load_secs,
            records_total,
            result["records_per_second"].as_f64().unwrap_or(0.0),
            result["records_per_second_with_parsing"]
                .as_f64()
                .unwrap_or(0.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::case_rule_id;

    #[test]
    fn the_case_rule_id_is_rule_metadata_first_id() {
        let info = "id: 63b16abe-2d5c-4a2f-b0ae-f1bc4580e40c\ndescription: N/A\nrule_metadata:\n    - id: 8a2f4b1c-3d5e-4f7a-9b2c-1e4f6d8a9c2b\n      title: x\n    - id: other\nregression_tests_info:\n    - name: y\n";
        assert_eq!(
            case_rule_id(info).as_deref(),
            Some("8a2f4b1c-3d5e-4f7a-9b2c-1e4f6d8a9c2b")
        );
        assert_eq!(case_rule_id("id: a\nrule_metadata: []\n"), None);
        assert_eq!(case_rule_id(""), None);
        assert_eq!(
            case_rule_id("rule_metadata:\n  - title: t\n    id: 'q'\n").as_deref(),
            Some("q")
        );
    }
}
