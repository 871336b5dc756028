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

/// Runs a command that must succeed and parses its standard output as JSON.
fn json_stdout(cmd: &mut Command) -> Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

/// A ClaMP-format CSV of synthetic rows: malware-like rows have a late `e_lfanew` and an
/// old `CreationYear`.
fn synthetic_clamp_csv(path: &std::path::Path, rows: usize, seed: u64) {
    let mut text = vigil_file::clamp::FEATURES.join(",");
    text.push_str(",e_res,e_res2,class\n");
    let mut state = seed;
    for i in 0..rows {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = (state >> 33) % 40;
        let bad = i % 2 == 0;
        let values: Vec<String> = vigil_file::clamp::FEATURES
            .iter()
            .map(|f| match *f {
                "e_lfanew" => (if bad { 232 } else { 128 } + noise).to_string(),
                "CreationYear" => (if bad { 1992 } else { 2012 } + noise % 10).to_string(),
                "e_magic" => "23117".to_string(),
                _ => (noise % 3).to_string(),
            })
            .collect();
        text.push_str(&format!("{},,,{}\n", values.join(","), u8::from(bad)));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn eval_file_prints_the_metrics_other_tooling_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    synthetic_clamp_csv(&train, 300, 1);
    synthetic_clamp_csv(&test, 100, 2);
    let v = json_stdout(
        vigil()
            .args(["eval", "file", "--train"])
            .arg(&train)
            .arg("--test")
            .arg(&test)
            .args(["--json", "--trees", "30"]),
    );
    for key in ["auc", "accuracy", "detection_at_1pct_fpr", "fit_seconds"] {
        assert!(v[key].as_f64().is_some(), "{key} missing: {v}");
    }
    assert!(v["auc"].as_f64().unwrap() > 0.95, "{v}");
    assert_eq!(v["n_test"], 100);
    // Without --test: cross-validation on the training file.
    let out = vigil()
        .args([
            "eval", "file", "--json", "--trees", "20", "--cv", "3", "--train",
        ])
        .arg(&train)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["folds"], 3);
    assert_eq!(v["per_fold"].as_array().unwrap().len(), 3);
    // A bad file says which line and column.
    std::fs::write(&test, "e_magic,class\n1,1\n").unwrap();
    let err = vigil()
        .args(["eval", "file", "--train"])
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("no `e_cblp` column"));
}

#[test]
fn scan_reports_every_file_and_an_error_for_the_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    // The EICAR test string, assembled here: never stored in the repository.
    let eicar = dir.path().join("eicar.com");
    let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".to_vec();
    s.extend_from_slice(b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    std::fs::write(&eicar, s).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "nothing to see").unwrap();
    let out = vigil()
        .args(["scan", "--json"])
        .arg(&eicar)
        .arg(&text)
        .arg(dir.path().join("missing.exe"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["verdict"], "malicious", "{v}");
    assert_eq!(items[0]["yara"], serde_json::json!(["EICAR_Test_File"]));
    assert_eq!(items[0]["is_pe"], false);
    assert_eq!(items[0]["sha256"].as_str().unwrap().len(), 64);
    assert!(
        items[0]["explanation"][0]
            .as_str()
            .unwrap()
            .contains("EICAR")
    );
    assert_eq!(items[1]["verdict"], "clean");
    assert_eq!(items[1]["score"], 0.0);
    assert!(items[2]["error"].as_str().unwrap().contains("No such file"));
    // A model file that is not one: a clear error before any scan.
    let bad_model = dir.path().join("model.json");
    std::fs::write(&bad_model, "{\"format\": \"something else\"}").unwrap();
    let err = vigil()
        .args(["scan", "--model"])
        .arg(&bad_model)
        .arg(&text)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("model.json") && err.contains("not a Vigil file model"),
        "{err}"
    );
    // --ndjson: one object per line.
    let out = vigil()
        .args(["scan", "--ndjson"])
        .arg(&eicar)
        .arg(&text)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 2);
}

#[test]
fn a_model_trained_from_files_scores_files() {
    let fixtures = std::path::Path::new("/usr/share/clamav-testfiles");
    if !fixtures.is_dir() {
        assert!(
            std::env::var("VIGIL_REQUIRE_FIXTURES").as_deref() != Ok("1"),
            "apt install clamav-testfiles"
        );
        eprintln!("SKIPPED: /usr/share/clamav-testfiles is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Seed 001's dataset format: path, sha256, label. Packed copies labelled 1, the
    // installers 0: a toy labelling, enough to check the plumbing.
    let mut csv = String::from("path,sha256,label\n");
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".exe") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let sha = vigil_file::analysis::sha256_hex(&bytes);
        let label = u8::from(name.starts_with("clam-") || name.starts_with("clam.ea"));
        csv.push_str(&format!("{},{sha},{label}\n", path.display()));
    }
    let dataset = dir.path().join("dataset.csv");
    std::fs::write(&dataset, csv).unwrap();
    let model = dir.path().join("model.json");
    let out = vigil()
        .args([
            "file",
            "train",
            "--json",
            "--cv",
            "0",
            "--trees",
            "20",
            "--dataset",
        ])
        .arg(&dataset)
        .arg("--out")
        .arg(&model)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v["trained_on"]["rows"].as_u64().unwrap() >= 15, "{v}");
    let v = json_stdout(
        vigil()
            .args(["scan", "--json", "--model"])
            .arg(&model)
            .arg(fixtures.join("clam-upx.exe")),
    );
    assert!(v[0]["model_score"].as_f64().unwrap() > 0.5, "{v}");
    // A dataset row whose hash does not match its file is refused.
    std::fs::write(
        &dataset,
        format!(
            "{},{},1\n",
            fixtures.join("clam.exe").display(),
            "0".repeat(64)
        ),
    )
    .unwrap();
    vigil()
        .args(["file", "train", "--dataset"])
        .arg(&dataset)
        .arg("--out")
        .arg(&model)
        .assert()
        .failure();
}

/// NSL-KDD-format rows: normal ones are small HTTP exchanges; attacks are SYN floods to
/// private ports (`neptune`-like) with high error rates.
fn synthetic_kdd(path: &std::path::Path, rows: usize, attack_every: usize, seed: u64) {
    let mut state = seed;
    let mut text = String::new();
    for i in 0..rows {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (state >> 33) % 100;
        let attack = attack_every > 0 && i.is_multiple_of(attack_every);
        let (service, flag, src, dst, count, serror, label) = if attack {
            (
                "private",
                "S0",
                0,
                0,
                200 + n,
                "1.00".to_string(),
                "neptune",
            )
        } else {
            let service = if n.is_multiple_of(4) { "smtp" } else { "http" };
            let serror = format!("0.0{}", n % 10);
            (
                service,
                "SF",
                200 + n * 3,
                2000 + n * 50,
                1 + n % 9,
                serror,
                "normal",
            )
        };
        let mut f: Vec<String> = vec![
            "0".into(),
            "tcp".into(),
            service.into(),
            flag.into(),
            src.to_string(),
            dst.to_string(),
        ];
        f.extend((6..22).map(|_| "0".to_string()));
        f.push(count.to_string());
        f.push(count.to_string());
        f.push(serror.clone());
        f.push(serror);
        f.extend((26..41).map(|j| {
            if j == 28 {
                "1.00".into()
            } else {
                format!("0.{:02}", n % 10)
            }
        }));
        f.push(label.into());
        f.push("20".into());
        text.push_str(&f.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn eval_net_prints_the_metrics_other_tooling_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train.txt"), dir.path().join("test.txt"));
    synthetic_kdd(&train, 600, 5, 1);
    synthetic_kdd(&test, 300, 3, 2);
    for method in ["knn", "iforest"] {
        let v = json_stdout(
            vigil()
                .args(["eval", "net", "--json", "--method", method, "--train"])
                .arg(&train)
                .arg("--test")
                .arg(&test),
        );
        for key in [
            "auc",
            "detection_rate",
            "fpr",
            "precision",
            "f1",
            "fit_seconds",
            "rows_per_second",
        ] {
            assert!(v[key].as_f64().is_some(), "{key} missing: {v}");
        }
        assert_eq!(v["method"], method);
        // Only the 480 normal training rows are used; the attacks are obvious here.
        assert_eq!(v["train_normal_rows"], 480);
        assert_eq!(v["test_attacks"], 100);
        if method == "knn" {
            assert!(v["auc"].as_f64().unwrap() > 0.95, "{v}");
            assert!(v["detection_rate"].as_f64().unwrap() > 0.9, "{v}");
        } else {
            // An Isolation Forest cannot split on what never varies in normal traffic (an
            // unseen flag, a service never used): these attacks differ mostly there, and
            // only k-NN sees it. docs/network.md says so.
            assert!(v["auc"].as_f64().unwrap() > 0.6, "{v}");
        }
    }
    // A malformed file names its line.
    std::fs::write(&test, "0,tcp,http\n").unwrap();
    let err = vigil()
        .args(["eval", "net", "--train"])
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains("line 1"),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn net_train_writes_a_model_from_records_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("conns.ndjson");
    let mut text = String::new();
    for i in 0..400 {
        let r = serde_json::json!({
            "timestamp": format!("2026-11-30T10:{:02}:{:02}Z", i / 60, i % 60),
            "host": "ws-1", "process_name": if i % 2 == 0 { "chrome.exe" } else { "outlook.exe" },
            "remote_ip": format!("142.250.0.{}", i % 9), "remote_port": 443, "protocol": "TCP",
            "bytes_sent": 500 + i * 7 % 300, "bytes_received": 9000 + i * 13 % 4000,
        });
        text.push_str(&r.to_string());
        text.push('\n');
    }
    std::fs::write(&records, &text).unwrap();
    let out = dir.path().join("net-model.json");
    let v = json_stdout(
        vigil()
            .args(["net", "train", "--json", "--records"])
            .arg(&records)
            .arg("--out")
            .arg(&out),
    );
    assert!(
        v["model_version"].as_str().unwrap().starts_with("net-"),
        "{v}"
    );
    let model = vigil_net::model::NetModel::from_json(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(model.training.rows + model.training.calibration_rows, 400);
    // A bad record is refused with its line and field.
    std::fs::write(
        &records,
        format!(
            "{text}{{\"process_name\": \"x\", \"protocol\": \"tcp\", \"remote_ip\": \"1.2.3\"}}\n"
        ),
    )
    .unwrap();
    let err = vigil()
        .args(["net", "train", "--records"])
        .arg(&records)
        .arg("--out")
        .arg(&out)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("line 401") && err.contains("remote_ip"),
        "{err}"
    );
}

/// The collector end to end: this process's own TCP connection to a real server is seen in
/// /proc, attributed to this process, counted by sock_diag, accepted by the batch API and
/// stored in the time series (regression: the collector once sent a shape the API refused).
#[test]
fn net_collect_sends_this_hosts_connections_to_the_server() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let key = server.admin_key.clone().unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();
    // A connection held open while the collector looks.
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    held.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let _ = held.read(&mut buf).unwrap();
    let out = vigil()
        .args([
            "net",
            "collect",
            "--once",
            "--json",
            "--host",
            "collector-test",
            "--url",
        ])
        .arg(&server.url)
        .env("VIGIL_TOKEN", &key)
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(!err.contains("refused"), "{err}");
    let port = held.local_addr().unwrap().port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Value = rt.block_on(async {
        for _ in 0..50 {
            let v: Value = common::client()
                .get(format!(
                    "{}/api/v1/network/connections?host.name=collector-test",
                    server.url
                ))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["connections"].as_array().is_some_and(|c| !c.is_empty()) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no connection stored; collector said: {err}");
    });
    let ours = rows["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["local_port"] == port)
        .unwrap_or_else(|| panic!("our connection (local port {port}) not among {rows}"));
    assert_eq!(ours["direction"], "outbound");
    assert!(ours["bytes_sent"].as_u64().unwrap() > 0, "{ours}");
    assert!(
        ours["process"].as_str().unwrap().starts_with("cli"),
        "{ours}"
    );
    drop(held);
    server.kill();
}

/// Normal sessions of an HDFS-like workflow, and anomalous ones (a step skipped, an error
/// key, a session cut short).
fn synthetic_sessions(normal: usize) -> (String, String, String) {
    let mut train = String::new();
    for _ in 0..normal {
        // Every normal session follows the same path, so one prediction (g = 1) suffices.
        let replicas = 3;
        let mut s = vec!["22".to_string()];
        s.extend((0..replicas).map(|_| "5".to_string()));
        for _ in 0..replicas {
            s.extend(["11".to_string(), "9".to_string()]);
        }
        s.extend((0..replicas).map(|_| "26".to_string()));
        s.extend((0..replicas).map(|_| "23".to_string()));
        s.extend((0..replicas).map(|_| "21".to_string()));
        train.push_str(&s.join(" "));
        train.push('\n');
    }
    let lines: Vec<&str> = train.lines().collect();
    let mut labelled = String::from("Sequence,label\n");
    let mut abnormal = String::new();
    for (i, l) in lines.iter().take(20).enumerate() {
        labelled.push_str(&format!("{l},0\n"));
        let bad = match i % 3 {
            0 => l.replace("11 9", "11 9 11"),
            1 => format!("{l} 30"),
            _ => l.split(' ').take(4).collect::<Vec<_>>().join(" "),
        };
        labelled.push_str(&format!("{bad},1\n"));
        abnormal.push_str(&bad);
        abnormal.push('\n');
    }
    (train, labelled, abnormal)
}

#[test]
fn eval_logs_prints_the_metrics_other_tooling_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (train, labelled, abnormal) = synthetic_sessions(200);
    let (t, l, a) = (
        dir.path().join("train"),
        dir.path().join("l.csv"),
        dir.path().join("abn"),
    );
    std::fs::write(&t, train).unwrap();
    std::fs::write(&l, labelled).unwrap();
    std::fs::write(&a, abnormal).unwrap();
    for model in ["iforest", "deeplog", "logbert", "ensemble"] {
        let v = json_stdout(
            vigil()
                .args([
                    "eval", "logs", "--model", model, "--epochs", "15", "--top-g", "1", "--json",
                ])
                .args([
                    "--train".as_ref(),
                    t.as_os_str(),
                    "--labelled".as_ref(),
                    l.as_os_str(),
                    "--abnormal".as_ref(),
                    a.as_os_str(),
                ]),
        );
        for key in [
            "precision",
            "recall",
            "f1",
            "fpr",
            "train_seconds",
            "sessions_per_second",
        ] {
            assert!(v[key].is_number(), "{model}: {key} in {v}");
        }
        assert_eq!(
            v["model"],
            if model == "ensemble" {
                "ensemble"
            } else {
                model
            }
        );
        assert_eq!(v["labelled"], serde_json::json!([20, 20]));
        if model != "iforest" {
            // The sequence model catches all three kinds of anomaly here, without false alarms.
            assert_eq!(v["recall"], 1.0, "{model}: {v}");
            assert_eq!(v["fpr"], 0.0, "{model}: {v}");
            assert_eq!(v["abnormal_recall"], 1.0, "{model}: {v}");
        }
    }
    // Clear errors: a parameter out of range, a bad sequence file, a missing file.
    let err = vigil()
        .args([
            "eval",
            "logs",
            "--model",
            "logbert",
            "--sphere-quantile",
            "2",
        ])
        .args([
            "--train".as_ref(),
            t.as_os_str(),
            "--labelled".as_ref(),
            l.as_os_str(),
        ])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains("sphere_quantile"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    std::fs::write(&a, "5 5 x\n").unwrap();
    let err = vigil()
        .args(["eval", "logs", "--model", "iforest"])
        .args([
            "--train".as_ref(),
            a.as_os_str(),
            "--labelled".as_ref(),
            l.as_os_str(),
        ])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains(":1:") && err.contains("\"x\""), "{err}");
    vigil()
        .args([
            "eval",
            "logs",
            "--train",
            "/nonexistent",
            "--labelled",
            "/nonexistent",
        ])
        .assert()
        .failure();
}

#[test]
fn eval_parse_reports_grouping_accuracy_per_system() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny Loghub-shaped system with a format Vigil does not know: mined from Content.
    let sys = dir.path().join("Tiny");
    std::fs::create_dir(&sys).unwrap();
    let mut log = String::new();
    let mut csv = String::from("LineId,Content,EventId,EventTemplate\n");
    for i in 0..30 {
        let (content, event) = if i % 3 == 0 {
            (
                format!(
                    "Accepted password for user{i} from 10.0.0.{i} port {} ssh2",
                    1000 + i
                ),
                "E1",
            )
        } else {
            (
                format!("Connection closed by 10.1.{i}.1 port {}", 2000 + i),
                "E2",
            )
        };
        log.push_str(&format!("host sshd: {content}\n"));
        csv.push_str(&format!("{},{content},{event},x\n", i + 1));
    }
    std::fs::write(sys.join("Tiny_2k.log"), log).unwrap();
    std::fs::write(sys.join("Tiny_2k.log_structured.csv"), csv).unwrap();
    let v = json_stdout(
        vigil()
            .args(["eval", "parse", "--json", "--loghub"])
            .arg(dir.path()),
    );
    assert_eq!(v["systems"][0]["system"], "Tiny");
    assert_eq!(v["systems"][0]["accuracy"], 1.0, "{v}");
    assert_eq!(v["systems"][0]["templates"], 2);
    assert!(v["mean_accuracy"].is_number());
    // An empty folder is an error that says what was expected.
    let empty = tempfile::tempdir().unwrap();
    let err = vigil()
        .args(["eval", "parse", "--loghub"])
        .arg(empty.path())
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("_structured.csv"));
}

#[test]
fn logs_train_and_detect_from_a_raw_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    for b in 0..150 {
        log.push_str(&format!(
            "INFO Receiving block blk_{b} src: /10.0.0.{}:50010\n",
            b % 250
        ));
        log.push_str(&format!(
            "INFO Received block blk_{b} of size {} from /10.0.0.1\n",
            1000 + b
        ));
        log.push_str(&format!(
            "INFO PacketResponder 1 for block blk_{b} terminating\n"
        ));
    }
    let train = dir.path().join("train.log");
    std::fs::write(&train, &log).unwrap();
    let model = dir.path().join("model.json");
    for round in 1..=2 {
        let v = json_stdout(
            vigil()
                .args([
                    "logs",
                    "train",
                    "--model",
                    "deeplog",
                    "--epochs",
                    "20",
                    "--top-g",
                    "1",
                    "--json",
                    "--format",
                    "<Level> <Content>",
                    "--logs",
                ])
                .arg(&train)
                .arg("--out")
                .arg(&model),
        );
        assert_eq!(v["version"], round);
        assert_eq!(v["sessions"], 150);
    }
    assert!(
        dir.path().join("model.json.v1").is_file(),
        "the previous version is kept"
    );
    // A session pattern that matches nothing is an error that says what to check.
    let err = vigil()
        .args([
            "logs",
            "train",
            "--model",
            "iforest",
            "--session",
            r"req=(\d+)",
            "--logs",
        ])
        .arg(&train)
        .arg("--out")
        .arg(dir.path().join("none.json"))
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("--session"), "{err}");
    let test = dir.path().join("test.log");
    std::fs::write(
        &test,
        "INFO Receiving block blk_900 src: /10.0.0.1:50010\n\
         INFO Received block blk_900 of size 5 from /10.0.0.1\n\
         INFO PacketResponder 1 for block blk_900 terminating\n\
         INFO Receiving block blk_901 src: /10.0.0.1:50010\n\
         INFO PacketResponder 1 for block blk_901 terminating\n\
         INFO Receiving block blk_902 src: /10.0.0.1:50010\n\
         ERROR Exception writing block blk_902 to mirror\n",
    )
    .unwrap();
    let out = vigil()
        .args([
            "logs",
            "detect",
            "--json",
            "--all",
            "--format",
            "<Level> <Content>",
            "--logs",
        ])
        .arg(&test)
        .arg("--model")
        .arg(&model)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdict = |id: &str| rows.iter().find(|r| r["session"] == id).unwrap().clone();
    assert_eq!(verdict("blk_900")["anomalous"], false);
    let skipped = verdict("blk_901");
    assert_eq!(skipped["anomalous"], true);
    assert_eq!(skipped["reason"]["kind"], "unexpected");
    let unseen = verdict("blk_902");
    assert_eq!(unseen["reason"]["kind"], "unseen_key");
    assert!(
        unseen["explanation"]
            .as_str()
            .unwrap()
            .contains("no known template")
    );
    // A missing model says how to make one.
    let err = vigil()
        .args(["logs", "detect", "--logs"])
        .arg(&test)
        .arg("--model")
        .arg(dir.path().join("none.json"))
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("vigil logs train"));
}

#[test]
fn gen_logs_feeds_train_and_detect() {
    let dir = tempfile::tempdir().unwrap();
    let normal = dir.path().join("normal");
    let mixed = dir.path().join("mixed");
    let v = json_stdout(
        vigil()
            .args([
                "gen-logs",
                "--json",
                "--lines",
                "3000",
                "--anomaly-rate",
                "0",
                "--out",
            ])
            .arg(&normal),
    );
    assert_eq!(v["files"].as_array().unwrap().len(), 4);
    vigil()
        .args([
            "gen-logs",
            "--lines",
            "3000",
            "--anomaly-rate",
            "0.05",
            "--seed",
            "9",
            "--out",
        ])
        .arg(&mixed)
        .assert()
        .success();
    let labels = std::fs::read_to_string(mixed.join("labels.csv")).unwrap();
    let failed: std::collections::HashSet<String> = labels
        .lines()
        .filter(|l| l.starts_with("hdfs.log,") && l.contains(",1,"))
        .filter_map(|l| l.rsplit(':').next().map(str::to_string))
        .collect();
    assert!(!failed.is_empty());
    let model = dir.path().join("m.json");
    let fmt = "<Date> <Time> <Pid> <Level> <Component>: <Content>";
    vigil()
        .args([
            "logs", "train", "--model", "deeplog", "--epochs", "5", "--format", fmt, "--logs",
        ])
        .arg(normal.join("hdfs.log"))
        .arg("--out")
        .arg(&model)
        .assert()
        .success();
    let out = vigil()
        .args(["logs", "detect", "--json", "--format", fmt, "--logs"])
        .arg(mixed.join("hdfs.log"))
        .arg("--model")
        .arg(&model)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let flagged: std::collections::HashSet<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["session"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Every failed block is found, and nothing else.
    assert_eq!(flagged, failed);
    vigil()
        .args(["gen-logs", "--anomaly-rate", "2", "--out"])
        .arg(dir.path())
        .assert()
        .failure();
}

#[test]
fn notify_test_sends_along_a_route_and_reports_the_answer() {
    use std::io::{Read, Write};
    // A receiver that answers 200 to one request and keeps what it got.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read the head, then the body by its length.
        loop {
            let n = s.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len: usize = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= head_end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        String::from_utf8_lossy(&buf).to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[responders]\n\
             allow_internal = true\n\
             [[responders.routes]]\nname = \"soc\"\nkind = \"slack\"\nurl = \"http://{addr}/hook\"\n\
             [[responders.routes]]\nname = \"nowhere\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:9/\"\ntimeout_secs = 2\n"
        ),
    )
    .unwrap();
    let v = json_stdout(
        vigil()
            .args(["notify", "test", "soc", "--json", "--config"])
            .arg(&config),
    );
    assert_eq!(v["delivered"], true, "{v}");
    let request = got.join().unwrap();
    assert!(request.starts_with("POST /hook"), "{request}");
    assert!(request.contains("Vigil test notification"), "{request}");
    // A receiver that is not there: exit 1 and why.
    let out = vigil()
        .args(["notify", "test", "nowhere", "--config"])
        .arg(&config)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8_lossy(&out).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A route that is not configured: the names that are.
    let err = vigil()
        .args(["notify", "test", "slack", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("soc, nowhere"));
}

#[test]
fn triage_prints_the_report_path_and_json_fields() {
    let dir = tempfile::tempdir().unwrap();
    let line = "2023/10/9 11:23 172.24.158.39:45676 180.215.5.133:2599 emp3r0r木马攻击 \
                https中疑似存在emp3r0r恶意流量";
    let v = json_stdout(
        vigil()
            .args(["triage", line, "--json", "--data-dir"])
            .arg(dir.path()),
    );
    assert_eq!(v["category"], "trojan_c2");
    assert_eq!(v["verdict"], "suspicious");
    let confidence = v["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence), "{v}");
    let path = std::path::PathBuf::from(v["report_path"].as_str().unwrap());
    assert!(
        path.starts_with(dir.path().join("reports")),
        "{}",
        path.display()
    );
    let md = std::fs::read_to_string(&path).unwrap();
    assert!(md.starts_with("# Triage report: emp3r0r木马攻击"), "{md}");

    // Without --json: a summary and the path.
    let out = vigil()
        .args(["triage", line, "--data-dir"])
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.lines().last().unwrap().starts_with("report: "),
        "{text}"
    );

    // Bad input: exit 2 and a message naming the expected format.
    let err = vigil()
        .args(["triage", "not an event", "--data-dir"])
        .arg(dir.path())
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("TIME SRC_IP:PORT DST_IP:PORT EVENT_NAME EVENT_CONTENT"),
        "{err}"
    );

    // The classifier's held-out evaluation prints its figures.
    let e = json_stdout(vigil().args(["eval", "triage", "--json"]));
    assert!(e["accuracy"].as_f64().unwrap() > 0.5, "{e}");
    assert!(e["test"].as_u64().unwrap() > 500, "{e}");
}

#[test]
fn kb_index_and_search_use_the_users_documents() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("vpn.md"),
        "---\ntitle: Our VPN runbook\n---\n## Concentrator\n\nThe Zorblax concentrator at \
         10.9.9.9 terminates every remote worker's tunnel.\n",
    )
    .unwrap();
    let v = json_stdout(
        vigil()
            .args(["kb", "index", "--json", "--data-dir"])
            .arg(dir.path())
            .arg(&docs),
    );
    assert!(v["chunks"].as_u64().unwrap() > 50, "{v}");
    assert!(dir.path().join("kb/index.json").exists());
    let v = json_stdout(
        vigil()
            .args([
                "kb",
                "search",
                "zorblax concentrator",
                "--json",
                "--data-dir",
            ])
            .arg(dir.path()),
    );
    assert_eq!(v["hits"][0]["title"], "Our VPN runbook", "{v}");
    // Triage now cites from the saved index.
    let v = json_stdout(
        vigil()
            .args(["triage", "2024-01-01 00:00:00 10.9.9.9:443 8.8.8.8:53 Zorblax告警 zorblax concentrator anomaly", "--json", "--data-dir"])
            .arg(dir.path()),
    );
    assert!(
        v["citations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "vpn.md"),
        "{v}"
    );
}
