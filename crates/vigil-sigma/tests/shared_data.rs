//! Tests on the shared evaluation data: every SigmaHQ rule folder loads, and each regression
//! case's rule fires on its expected record (`regression_data/**/*.json`).
//!
//! The data lives outside the repository (Detection Rule License). Set
//! `VIGIL_SHARED_DATA=/work/shared/data`; without it these tests skip with a message, unless
//! `VIGIL_REQUIRE_DATA` is set, when they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use vigil_sigma::{LoadReport, Record, RuleSet};

/// Regression cases whose rule fires on its `.json` record (of 141 with a `.json`).
const EXPECTED_PASSES: usize = 141;
/// Rules that load from the three folders (of 3,754 files).
const EXPECTED_LOADED: usize = 3700;

fn sigma_dir() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_SHARED_DATA") {
        Some(d) => {
            let dir = PathBuf::from(d).join("sigma");
            assert!(
                dir.is_dir(),
                "VIGIL_SHARED_DATA has no sigma/ folder: {}",
                dir.display()
            );
            Some(dir)
        }
        None if std::env::var_os("VIGIL_REQUIRE_DATA").is_some() => {
            panic!("VIGIL_REQUIRE_DATA is set but VIGIL_SHARED_DATA is not")
        }
        None => {
            eprintln!(
                "skipping: set VIGIL_SHARED_DATA=/work/shared/data to run the shared-data tests"
            );
            None
        }
    }
}

fn report(dir: &Path) -> &'static LoadReport {
    static REPORT: OnceLock<LoadReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let dirs = ["rules", "rules-emerging-threats", "rules-threat-hunting"].map(|d| dir.join(d));
        RuleSet::load_dirs(&dirs).expect("rule folders readable")
    })
}

#[test]
fn all_rule_folders_load() {
    let Some(dir) = sigma_dir() else { return };
    let r = report(&dir);
    println!(
        "files: {}, loaded: {}, rejected: {}",
        r.files,
        r.rules.len(),
        r.rejected.len()
    );
    let mut by_reason: BTreeMap<String, Vec<&vigil_sigma::Rejected>> = BTreeMap::new();
    for rej in &r.rejected {
        by_reason
            .entry(format!("[{}] {}", rej.kind.code(), rej.reason))
            .or_default()
            .push(rej);
    }
    let mut groups: Vec<_> = by_reason.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    for (reason, rejs) in &groups {
        println!("{:4}  {reason}", rejs.len());
        for rej in rejs.iter().take(3) {
            println!("        {}", rej.path.display());
        }
    }
    println!("{:?}", r.rules.stats());
    assert!(
        r.rules.len() >= EXPECTED_LOADED,
        "only {} rules loaded",
        r.rules.len()
    );
    // Every rule file is accounted for: loaded or rejected.
    assert!(r.rules.len() + r.rejected.len() >= r.files);
}

struct Case {
    rule_id: String,
    title: String,
    json: Option<PathBuf>,
    match_count: Option<usize>,
    info: PathBuf,
}

fn find_info_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            find_info_files(&p, out);
        } else if p.file_name().is_some_and(|n| n == "info.yml") {
            out.push(p);
        }
    }
}

fn load_case(info: &Path) -> Case {
    let text = std::fs::read_to_string(info).expect("info.yml readable");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("info.yml is YAML");
    let doc = &docs[0];
    let meta = &doc["rule_metadata"][0];
    let rule_id = meta["id"].as_str().unwrap_or_default().to_string();
    let title = meta["title"].as_str().unwrap_or_default().to_string();
    let test = &doc["regression_tests_info"][0];
    let match_count = test["match_count"].as_i64().map(|n| n as usize);
    let dir = info.parent().expect("info.yml has a folder");
    let json = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
    });
    Case {
        rule_id,
        title,
        json,
        match_count,
        info: info.to_path_buf(),
    }
}

fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("case .json readable");
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .expect("case .json is a JSON stream")
}

#[test]
fn regression_cases_fire() {
    let Some(dir) = sigma_dir() else { return };
    let r = report(&dir);
    let mut infos = Vec::new();
    find_info_files(&dir.join("regression_data"), &mut infos);
    assert!(!infos.is_empty(), "no regression cases found");
    let mut passed = 0;
    let mut with_json = 0;
    let mut failures = Vec::new();
    for info in &infos {
        let case = load_case(info);
        let Some(json) = &case.json else {
            println!(
                "no .json record (not an EVTX case): {} ({})",
                case.title,
                case.info.display()
            );
            continue;
        };
        with_json += 1;
        let records = read_records(json);
        let mut fired = 0;
        let mut other_rules = Vec::new();
        for v in &records {
            let rec = Record::from_evtx_json(v);
            let hits = r.rules.matches(&rec);
            if hits.iter().any(|m| m.rule.id == case.rule_id) {
                fired += 1;
            }
            other_rules.extend(hits.iter().map(|m| m.rule.title.clone()));
        }
        if fired > 0 {
            passed += 1;
            if let Some(n) = case.match_count
                && n != fired
            {
                println!(
                    "note: {} fired on {fired} of {} records, info.yml expects {n}",
                    case.title,
                    records.len()
                );
            }
            continue;
        }
        let why = match r.rules.rules().find(|m| m.id == case.rule_id) {
            None => match r
                .rejected
                .iter()
                .find(|x| x.id.as_deref() == Some(&case.rule_id))
            {
                Some(rej) => format!("rule rejected: {}", rej.reason),
                None => "rule not found in the rule folders".to_string(),
            },
            Some(meta) => {
                let rec = Record::from_evtx_json(&records[0]);
                format!(
                    "rule loaded (logsource {:?}) but did not fire on Channel={:?} EventID={:?}",
                    meta.logsource,
                    rec.get("Channel").map(|v| v.to_string()),
                    rec.get("EventID").map(|v| v.to_string())
                )
            }
        };
        failures.push(format!(
            "{} [{}] ({}): {why}",
            case.title,
            case.rule_id,
            json.display()
        ));
    }
    println!("regression .json cases: {passed} of {with_json} pass");
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        passed >= EXPECTED_PASSES,
        "{passed} of {with_json} regression cases pass, expected at least {EXPECTED_PASSES}"
    );
}
