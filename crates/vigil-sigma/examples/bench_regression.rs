//! Micro benchmark: all SigmaHQ rules against the regression records.
//!
//! ```text
//! VIGIL_SHARED_DATA=/work/shared/data cargo run --release -p vigil-sigma --example bench_regression [ROUNDS]
//! ```
//!
//! Loads `rules`, `rules-emerging-threats` and `rules-threat-hunting`, reads every
//! `regression_data/**/*.json` record, and matches all records ROUNDS times (default 200) on
//! one thread. Prints rules loaded/rejected, load time, and records/s for record construction
//! from JSON plus matching, and for matching alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use vigil_sigma::{Record, RuleSet};

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn main() {
    let Some(data) = std::env::var_os("VIGIL_SHARED_DATA") else {
        eprintln!("set VIGIL_SHARED_DATA=/work/shared/data");
        std::process::exit(2);
    };
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let sigma = PathBuf::from(data).join("sigma");
    let dirs = ["rules", "rules-emerging-threats", "rules-threat-hunting"].map(|d| sigma.join(d));

    let t = Instant::now();
    let report = match RuleSet::load_dirs(&dirs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let load = t.elapsed();
    println!(
        "rules: {} files, {} loaded, {} rejected, load+compile {:.2?}",
        report.files,
        report.rules.len(),
        report.rejected.len(),
        load
    );
    println!("index: {:?}", report.rules.stats());

    let mut files = Vec::new();
    json_files(&sigma.join("regression_data"), &mut files);
    let mut values: Vec<Value> = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        values.extend(
            serde_json::Deserializer::from_str(&text)
                .into_iter::<Value>()
                .flatten(),
        );
    }
    let records: Vec<Record> = values.iter().map(Record::from_evtx_json).collect();
    println!(
        "records: {} from {} files, {rounds} rounds",
        records.len(),
        files.len()
    );

    let rules = &report.rules;
    // Warm up (thread-local scratch, caches).
    let mut hits = 0usize;
    for r in &records {
        hits += rules.matches(r).len();
    }
    println!("matches per pass: {hits}");

    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..rounds {
        for r in &records {
            n += std::hint::black_box(rules.matches(r)).len();
        }
    }
    let e = t.elapsed();
    let total = (records.len() * rounds) as f64;
    println!(
        "match only:        {:>10.0} records/s ({:.2} us/record, {n} matches)",
        total / e.as_secs_f64(),
        e.as_secs_f64() * 1e6 / total
    );

    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..rounds {
        for v in &values {
            let r = Record::from_evtx_json(v);
            n += std::hint::black_box(rules.matches(&r)).len();
        }
    }
    let e = t.elapsed();
    println!(
        "record + match:    {:>10.0} records/s ({:.2} us/record, {n} matches)",
        total / e.as_secs_f64(),
        e.as_secs_f64() * 1e6 / total
    );
}
