//! The command-line contract other tooling relies on.

mod common;

use assert_cmd::Command;
use common::Server;
use serde_json::Value;

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.env_remove("VIGIL_CONFIG").env_remove("VIGIL_TOKEN");
    c
}

#[test]
fn version_and_config_print() {
    let out = vigil()
        .arg("--version")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        format!("vigil {}", env!("CARGO_PKG_VERSION"))
    );

    let out = vigil()
        .args(["config", "print"])
        .env("VIGIL_SERVER__LISTEN", "0.0.0.0:9999")
        .env(
            "VIGIL_AUTH__JWT_HS256_SECRET",
            "do-not-print-me-do-not-print-me-0123",
        )
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("listen = \"0.0.0.0:9999\""), "{text}");
    assert!(text.contains("<redacted>"));
    assert!(!text.contains("do-not-print-me"));
}

#[test]
fn config_errors_are_clear_and_exit_2() {
    let out = vigil()
        .args(["config", "print"])
        .env("VIGIL_PIPELINE__WORKRS", "2")
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(err.contains("workrs"), "{err}");
}

#[test]
fn key_create_prints_the_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = vigil()
        .args(["key", "create", "--role", "agent", "--data-dir"])
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("vgl_"));

    let out = vigil()
        .args(["key", "create", "--role", "root", "--data-dir"])
        .arg(dir.path())
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("admin, agent or viewer")
    );
}

#[test]
fn events_send_reports_rejected_lines_with_file_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let key = server.admin_key.clone().unwrap();
    let file = dir.path().join("events.ndjson");
    let mut body = String::new();
    for i in 1..=25 {
        if i == 17 {
            body.push_str("{\"process.pid\": \"seventeen\"}\n");
        } else {
            body.push_str(&format!("{{\"message\": \"line {i}\"}}\n"));
        }
    }
    std::fs::write(&file, body).unwrap();
    let out = vigil()
        .args(["events", "send"])
        .arg(&file)
        .args([
            "--url",
            &server.url,
            "--token",
            &key,
            "--batch",
            "10",
            "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let summary: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(summary["lines"], 25);
    assert_eq!(summary["accepted"], 24);
    assert_eq!(summary["rejected"], 1);
    assert_eq!(summary["requests"], 3);
    assert_eq!(summary["errors"][0]["line"], 17);
    assert_eq!(summary["errors"][0]["field"], "process.pid");

    // A wrong token is a clear failure, not a hang.
    let out = vigil()
        .args(["events", "send"])
        .arg(&file)
        .args(["--url", &server.url, "--token", "vgl_wrong"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(out).unwrap().contains("401"));
}

#[test]
fn script_check_reports_line_and_column_and_script_test_runs_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.rhai");
    std::fs::write(
        &good,
        "//! name = \"good\"\n//! categories = [\"process\"]\nfn analyze(event, config) {\n  if event[\"process.name\"] == \"nc\" { #{ score: 60, summary: \"netcat\" } }\n}\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.rhai");
    std::fs::write(
        &bad,
        "//! name = \"bad\"\nfn analyze(event, config) {\n  let x = ;\n}\n",
    )
    .unwrap();
    let no_manifest = dir.path().join("none.rhai");
    std::fs::write(&no_manifest, "fn analyze(event, config) { () }\n").unwrap();

    let out = vigil()
        .args(["script", "check"])
        .arg(&good)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(out).unwrap().starts_with("ok"));

    let out = vigil()
        .args(["script", "check", "--json"])
        .args([&good, &bad, &no_manifest])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report[0]["ok"], true);
    assert_eq!(report[1]["error"]["code"], "compile");
    assert_eq!(report[1]["error"]["line"], 3);
    assert!(report[1]["error"]["column"].as_u64().is_some());
    assert_eq!(report[2]["error"]["code"], "manifest");

    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"event.category": "process", "process.name": "nc"}"#,
    )
    .unwrap();
    let out = vigil()
        .args(["script", "test"])
        .arg(&good)
        .arg("--event")
        .arg(&event)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["findings"][0]["analyzer"], "script:good");
    assert_eq!(report["results"]["good"]["summary"], "netcat");
}

#[test]
fn python_scripts_in_the_seed_contract_check_and_test_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/examples/python/seed_custom.py"
    );
    let broken = dir.path().join("broken.py");
    std::fs::write(
        &broken,
        "import queue\ndef Start_Analysis(q, DATA)\n    pass\n",
    )
    .unwrap();
    let out = vigil()
        .args(["script", "check", "--json", seed])
        .arg(&broken)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report[0]["ok"], true, "{report}");
    assert_eq!(report[0]["name"], "seed_custom");
    assert_eq!(report[1]["error"]["code"], "compile");
    assert_eq!(report[1]["error"]["line"], 2);

    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"event.category": "file", "file.name": "a.exe"}"#,
    )
    .unwrap();
    let out = vigil()
        .args(["script", "test", seed, "--event"])
        .arg(&event)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    let echoed = report["results"]["seed_custom"]["custom_res"]
        .as_str()
        .unwrap();
    assert!(echoed.contains("\"a.exe\""), "{report}");
}
