//! `vigil sigma check`, `vigil evtx`, `vigil eval sigma`, and `vigil serve` with `[sigma]`:
//! the command-line contract of the Sigma features. EVTX files are built in code
//! (`vigil_evtx::synth`); SigmaHQ's regression data is used when `VIGIL_SHARED_DATA` points
//! at the shared data (set `VIGIL_REQUIRE_DATA` to make its absence a failure).

mod common;

use assert_cmd::Command;
use common::{Server, client};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_evtx::synth::{SynthEvent, evtx_file};

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.env_remove("VIGIL_CONFIG").env_remove("VIGIL_TOKEN");
    c
}

const WHOAMI_ID: &str = "5f0c2a52-7a0b-4c9e-9a37-1d0c7f3b2a01";
const LOGON_ID: &str = "8e3d6b1f-2c4a-4f5e-b6a7-3c9d0e1f2a02";

const WHOAMI_RULE: &str = r#"
title: Whoami All Recon
id: 5f0c2a52-7a0b-4c9e-9a37-1d0c7f3b2a01
tags: [attack.discovery, attack.t1033]
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\cmd.exe'
        CommandLine|contains|all:
            - 'whoami'
            - '/all'
    condition: selection
level: high
"#;

const LOGON_RULE: &str = r#"
title: Failed Administrator Logon
id: 8e3d6b1f-2c4a-4f5e-b6a7-3c9d0e1f2a02
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
        TargetUserName: 'Administrator'
    condition: selection
level: medium
"#;

const MALFORMED_RULE: &str = "title: Broken YAML\nid: 1d2e3f40-0000-4000-8000-000000000001\ndetection:\n    selection: [unclosed\n      condition: selection\n";

const EXPAND_RULE: &str = r#"
title: Uses Expand
id: 1d2e3f40-0000-4000-8000-000000000002
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|expand: '%windir%\cmd.exe'
    condition: selection
level: low
"#;

const CORRELATION_RULE: &str = r#"
title: Many Failed Logons
id: 1d2e3f40-0000-4000-8000-000000000003
correlation:
    type: event_count
    rules:
        - 8e3d6b1f-2c4a-4f5e-b6a7-3c9d0e1f2a02
    group-by:
        - TargetUserName
    timespan: 5m
    condition:
        gte: 10
level: high
"#;

fn good_rules(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("proc_whoami.yml"), WHOAMI_RULE).unwrap();
    std::fs::write(dir.join("sec_failed_logon.yaml"), LOGON_RULE).unwrap();
}

fn sysmon_process(record_id: u64, computer: &str, image: &str, command_line: &str) -> SynthEvent {
    let mut e = SynthEvent::new(record_id, 1)
        .with_data("Image", image)
        .with_data("CommandLine", command_line)
        .with_data("ParentImage", r"C:\Windows\explorer.exe");
    e.provider = "Microsoft-Windows-Sysmon".into();
    e.channel = "Microsoft-Windows-Sysmon/Operational".into();
    e.computer = computer.into();
    e
}

fn failed_logon(record_id: u64, computer: &str, user: &str) -> SynthEvent {
    let mut e = SynthEvent::new(record_id, 4625)
        .with_data("TargetUserName", user)
        .with_data("LogonType", 3u32);
    e.provider = "Microsoft-Windows-Security-Auditing".into();
    e.channel = "Security".into();
    e.computer = computer.into();
    e
}

/// Two detections (a high at record 10, a medium at record 30) and one quiet record.
fn sample_log() -> Vec<u8> {
    evtx_file(&[
        sysmon_process(
            10,
            "WS-01",
            r"C:\Windows\System32\cmd.exe",
            "cmd.exe /c whoami /all",
        ),
        sysmon_process(
            20,
            "WS-01",
            r"C:\Windows\System32\notepad.exe",
            "notepad.exe",
        ),
        failed_logon(30, "DC-01", "Administrator"),
    ])
}

/// A temp folder with `rules/` (the two good rules) and `logs/sample.evtx`.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    good_rules(&rules);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("sample.evtx"), sample_log()).unwrap();
    (dir, rules, logs)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn sigma_check_lists_each_refused_rule_with_its_reason_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    good_rules(dir.path());
    std::fs::write(dir.path().join("malformed.yml"), MALFORMED_RULE).unwrap();
    std::fs::write(dir.path().join("expand.yml"), EXPAND_RULE).unwrap();
    std::fs::write(dir.path().join("correlation.yml"), CORRELATION_RULE).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a rule").unwrap();

    let out = vigil()
        .args(["sigma", "check"])
        .arg(dir.path())
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = text(&out.stdout);
    for (file, why) in [
        ("expand.yml", "unsupported modifier `expand`"),
        ("correlation.yml", "correlation rules are unsupported"),
        ("malformed.yml", "invalid YAML"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("refused ") && l.contains(file))
            .unwrap_or_else(|| panic!("{file} is not listed:\n{stdout}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(
        stdout.contains("5 files: 2 rules loaded, 3 refused"),
        "{stdout}"
    );

    let out = vigil()
        .args(["sigma", "check", "--json"])
        .arg(dir.path())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["files"], 5, "{report:#}");
    assert_eq!(report["loaded"], 2);
    assert!(report["seconds"].as_f64().is_some());
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{report:#}");
    let reason_of = |file: &str| -> &Value {
        rejected
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not in {report:#}"))
    };
    let expand = reason_of("expand.yml");
    assert_eq!(
        expand["reason"],
        "search identifier `selection`: `Image|expand`: unsupported modifier `expand`"
    );
    assert_eq!(expand["id"], "1d2e3f40-0000-4000-8000-000000000002");
    assert_eq!(expand["title"], "Uses Expand");
    let corr = reason_of("correlation.yml");
    assert_eq!(corr["reason"], "correlation rules are unsupported");
    assert_eq!(corr["id"], "1d2e3f40-0000-4000-8000-000000000003");
    let malformed = reason_of("malformed.yml");
    assert!(
        malformed["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("invalid YAML") && r.contains("line 5")),
        "{malformed}"
    );
    assert_eq!(malformed["id"], Value::Null, "{malformed}");

    // Only good rules: exit 0.
    let good = tempfile::tempdir().unwrap();
    good_rules(good.path());
    let out = vigil()
        .args(["sigma", "check", "--json"])
        .arg(good.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["loaded"], 2);
    assert_eq!(report["rejected"], serde_json::json!([]));

    // A folder that is not there: exit 2 with a clear message.
    let out = vigil()
        .args(["sigma", "check"])
        .arg(good.path().join("missing"))
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
}

#[test]
fn evtx_hunts_json_lines_csv_and_a_table_with_a_summary_by_level() {
    let (dir, rules, logs) = workspace();

    let out = vigil()
        .arg("evtx")
        .arg(&logs)
        .arg("--rules")
        .arg(&rules)
        .args(["--format", "json", "--quiet"])
        .assert()
        .success()
        .get_output()
        .clone();
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", text(&out.stdout));
    // Oldest first.
    let d = &lines[0];
    assert_eq!(d["rule_id"], WHOAMI_ID);
    assert_eq!(d["rule_title"], "Whoami All Recon");
    assert_eq!(d["level"], "high");
    assert_eq!(d["computer"], "WS-01");
    assert_eq!(d["channel"], "Microsoft-Windows-Sysmon/Operational");
    assert_eq!(d["event_id"], "1");
    assert_eq!(d["record_id"], 10);
    assert!(
        d["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2024-01-01T00:00:10")
    );
    assert!(d["file"].as_str().unwrap().ends_with("sample.evtx"));
    let details = d["details"].as_str().unwrap();
    assert!(
        details.contains("CommandLine: cmd.exe /c whoami /all"),
        "{details}"
    );
    let d = &lines[1];
    assert_eq!(d["rule_id"], LOGON_ID);
    assert_eq!(d["level"], "medium");
    assert_eq!(d["computer"], "DC-01");
    assert_eq!(d["event_id"], "4625");
    assert_eq!(d["record_id"], 30);

    let stderr = text(&out.stderr);
    assert!(stderr.contains("2 rules loaded (0 refused"), "{stderr}");
    assert!(
        stderr.contains("1 files, 3 records (0 unreadable)"),
        "{stderr}"
    );
    assert!(stderr.contains("2 detections"), "{stderr}");
    let high = stderr.lines().find(|l| l.trim_start().starts_with("high"));
    assert!(
        high.is_some_and(|l| l.contains("1 detections from 1 rules")),
        "{stderr}"
    );
    let medium = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("medium"));
    assert!(
        medium.is_some_and(|l| l.contains("1 detections from 1 rules")),
        "{stderr}"
    );

    // CSV to a file, a header first; --min-level keeps the high one only.
    let csv_path = dir.path().join("timeline.csv");
    let out = vigil()
        .arg("evtx")
        .arg(logs.join("sample.evtx"))
        .arg("--rules")
        .arg(&rules)
        .args(["--format", "csv", "--min-level", "high", "--quiet", "-o"])
        .arg(&csv_path)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("timestamp,computer,channel,event_id,record_id,level,rule_id,rule_title,file,details")
    );
    let row = rows.next().unwrap();
    assert!(row.contains(WHOAMI_ID) && row.contains(",high,"), "{row}");
    assert_eq!(rows.next(), None, "{csv}");

    // The default table.
    let out = vigil()
        .arg("evtx")
        .arg(&logs)
        .arg("--rules")
        .arg(&rules)
        .arg("--quiet")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = text(&out);
    let header = table.lines().next().unwrap();
    for col in ["timestamp", "computer", "level", "event", "rule"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(table.contains("Whoami All Recon"), "{table}");
    assert!(table.contains("Failed Administrator Logon"), "{table}");
}

/// What `vigil evtx` does with files it cannot read: a damaged or foreign file is skipped
/// with a message naming it, the run goes on with the others and exits 0 (the status says
/// whether the run worked, not whether every file was a log); no input at all, no `.evtx`
/// in the folders given, or a missing path is an error, exit 2.
#[test]
fn evtx_on_damaged_or_foreign_files_says_so_and_does_not_panic() {
    let (dir, rules, logs) = workspace();
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".repeat(500);
    std::fs::write(junk.join("picture.evtx"), &png).unwrap();
    let random: Vec<u8> = (0u32..70_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(junk.join("random.evtx"), &random).unwrap();
    std::fs::write(junk.join("empty.evtx"), b"").unwrap();
    let good = sample_log();
    std::fs::write(junk.join("truncated.evtx"), &good[..4096 + 2500]).unwrap();

    let out = vigil()
        .arg("evtx")
        .arg(&junk)
        .arg(logs.join("sample.evtx"))
        .arg("--rules")
        .arg(&rules)
        .args(["--format", "json", "--quiet"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for name in ["picture.evtx", "random.evtx", "empty.evtx"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("vigil: skipped") && l.contains(name)),
            "{name} not reported:\n{stderr}"
        );
    }
    assert!(
        stderr.lines().any(|l| l.contains("truncated.evtx")),
        "the cut file is reported:\n{stderr}"
    );
    // The good file's detections are all there; the cut file adds at most its own.
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let from_good = lines
        .iter()
        .filter(|d| d["file"].as_str().unwrap().ends_with("sample.evtx"))
        .count();
    assert_eq!(from_good, 2, "{}", text(&out.stdout));

    // Only a foreign file, named explicitly: skipped, no detections, exit 0.
    let out = vigil()
        .arg("evtx")
        .arg(junk.join("picture.evtx"))
        .arg("--rules")
        .arg(&rules)
        .args(["--format", "json", "--quiet"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("skipped"), "{stderr}");
    assert!(stderr.contains("0 detections"), "{stderr}");

    // A folder without .evtx files, and a path that does not exist: exit 2.
    let empty = dir.path().join("nothing");
    std::fs::create_dir(&empty).unwrap();
    let out = vigil()
        .arg("evtx")
        .arg(&empty)
        .arg("--rules")
        .arg(&rules)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(text(&out).contains("no .evtx files"), "{}", text(&out));
    let out = vigil()
        .arg("evtx")
        .arg(dir.path().join("missing.evtx"))
        .arg("--rules")
        .arg(&rules)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(text(&out).contains("missing.evtx"), "{}", text(&out));
    // Rules that are not there.
    let out = vigil()
        .arg("evtx")
        .arg(&logs)
        .arg("--rules")
        .arg(dir.path().join("no-rules"))
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
}

/// The shared data folder, or `None` (with a message) when it is not configured; a failure
/// when `VIGIL_REQUIRE_DATA` is set and it is missing.
fn shared_data() -> Option<PathBuf> {
    let require = std::env::var_os("VIGIL_REQUIRE_DATA").is_some();
    let Some(shared) = std::env::var_os("VIGIL_SHARED_DATA") else {
        assert!(
            !require,
            "VIGIL_REQUIRE_DATA is set but VIGIL_SHARED_DATA is not"
        );
        eprintln!("skipped: set VIGIL_SHARED_DATA to the shared data folder to run this test");
        return None;
    };
    let shared = PathBuf::from(shared);
    for sub in [
        "sigma/regression_data",
        "sigma/rules",
        "sigma/rules-emerging-threats",
        "sigma/rules-threat-hunting",
    ] {
        let dir = shared.join(sub);
        if !dir.is_dir() {
            assert!(
                !require,
                "{} is missing (VIGIL_REQUIRE_DATA is set)",
                dir.display()
            );
            eprintln!("skipped: {} is missing", dir.display());
            return None;
        }
    }
    Some(shared)
}

#[test]
fn eval_sigma_passes_every_sigmahq_regression_case() {
    let Some(data) = shared_data() else { return };
    let sigma = data.join("sigma");
    let out = vigil()
        .args(["eval", "sigma", "--rules"])
        .arg(sigma.join("rules"))
        .arg(sigma.join("rules-emerging-threats"))
        .arg(sigma.join("rules-threat-hunting"))
        .arg("--regression")
        .arg(sigma.join("regression_data"))
        .arg("--json")
        .timeout(Duration::from_secs(600))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let r: Value = serde_json::from_slice(&out).unwrap();
    for key in [
        "cases",
        "passed",
        "pass_rate",
        "failures",
        "noise",
        "rules_loaded",
        "rules_rejected",
        "records",
        "records_per_second",
        "seconds_match",
        "seconds_parse",
        "seconds_load_rules",
        "records_per_second_with_parsing",
    ] {
        assert!(r.get(key).is_some(), "no `{key}` in {r:#}");
    }
    assert_eq!(r["failures"], serde_json::json!([]), "{:#}", r["failures"]);
    assert_eq!(r["cases"], 142);
    assert_eq!(r["passed"], 142);
    assert_eq!(r["pass_rate"], 1.0);
    assert!(r["rules_rejected"].as_u64().unwrap() <= 2, "{r:#}");
    assert!(r["rules_loaded"].as_u64().unwrap() > 3000, "{r:#}");
    assert!(r["noise"].as_f64().unwrap() < 2.0, "{r:#}");
    assert!(r["records"].as_u64().unwrap() > 0);
    assert!(r["records_per_second"].as_f64().unwrap() > 0.0);

    // The human form agrees.
    let out = vigil()
        .args(["eval", "sigma", "--rules"])
        .arg(sigma.join("rules"))
        .arg(sigma.join("rules-emerging-threats"))
        .arg(sigma.join("rules-threat-hunting"))
        .arg("--regression")
        .arg(sigma.join("regression_data"))
        .timeout(Duration::from_secs(600))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let human = text(&out);
    assert!(human.contains("142/142 cases passed"), "{human}");
    assert!(!human.contains("FAIL "), "{human}");
}

#[test]
fn eval_sigma_reports_a_case_whose_rule_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    good_rules(&rules);
    // A case naming the whoami rule (fires) and one naming a rule in no folder.
    let hit = dir.path().join("regression/whoami");
    std::fs::create_dir_all(&hit).unwrap();
    std::fs::write(
        hit.join("info.yml"),
        format!("id: case-1\nrule_metadata:\n    - id: {WHOAMI_ID}\n      title: x\n"),
    )
    .unwrap();
    std::fs::write(hit.join("whoami.evtx"), sample_log()).unwrap();
    let miss = dir.path().join("regression/other");
    std::fs::create_dir_all(&miss).unwrap();
    std::fs::write(
        miss.join("info.yml"),
        "id: case-2\nrule_metadata:\n    - id: 99999999-0000-4000-8000-000000000000\n",
    )
    .unwrap();
    std::fs::write(miss.join("other.evtx"), sample_log()).unwrap();

    let out = vigil()
        .args(["eval", "sigma", "--rules"])
        .arg(&rules)
        .arg("--regression")
        .arg(dir.path().join("regression"))
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["cases"], 2, "{r:#}");
    assert_eq!(r["passed"], 1, "{r:#}");
    assert_eq!(r["pass_rate"], 0.5);
    assert_eq!(r["rules_loaded"], 2);
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{r:#}");
    assert_eq!(failures[0]["case"], "other");
    assert_eq!(
        failures[0]["reason"],
        "the rule is in none of the rule folders"
    );
    // The whoami case also fires the logon rule: noise 1 across 2 cases.
    assert_eq!(r["noise"], 0.5, "{r:#}");
}

/// `vigil serve` with `VIGIL_SIGMA__RULES` (a TOML list in the variable) registers the
/// `sigma` analyzer and answers the Sigma routes.
#[tokio::test]
async fn serve_with_sigma_rules_analyzes_evtx_uploads() {
    let (dir, rules, _logs) = workspace();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let rules_env = format!("[{:?}]", rules.display().to_string());
    let server = Server::start_with_env(&data, &[("VIGIL_SIGMA__RULES", &rules_env)]);
    let key = server.admin_key.clone().unwrap();
    let http = client();

    let r = http
        .get(format!("{}/api/v1/sigma/rules", server.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["loaded"], 2, "{body:#}");

    let r = http
        .get(format!("{}/api/v1/analyzers", server.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let analyzers = r.text().await.unwrap();
    assert!(analyzers.contains("\"sigma\""), "{analyzers}");

    let r = http
        .post(format!("{}/api/v1/evtx", server.url))
        .bearer_auth(&key)
        .header("content-type", "application/octet-stream")
        .body(sample_log())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], 3, "{body:#}");

    let mut findings = Vec::new();
    for _ in 0..100 {
        let r: Value = http
            .get(format!("{}/api/v1/findings?analyzer=sigma", server.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        findings = r["findings"].as_array().cloned().unwrap_or_default();
        if findings.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids: Vec<&str> = findings
        .iter()
        .map(|f| f["evidence"]["rule_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![WHOAMI_ID, LOGON_ID];
    want.sort();
    assert_eq!(ids, want, "{findings:#?}");
}
