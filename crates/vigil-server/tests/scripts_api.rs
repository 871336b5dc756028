//! User scripts through the REST API: upload errors with line/column, versions and
//! rollback, enable/disable, lists, analyze, and scripts running on ingested events.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::time::Duration;

const ENC_PS: &str = r#"
fn analyze(event, config) {
    let cmd = event["process.command_line"];
    if cmd == () || !cmd.contains("-enc") { return (); }
    #{ score: config.score, summary: "encoded PowerShell", technique: "T1059.001" }
}
"#;

fn body(name: &str, source: &str) -> String {
    json!({"name": name, "source": source, "categories": ["process"], "config": {"score": 75}})
        .to_string()
}

#[tokio::test]
async fn upload_errors_name_line_and_column() {
    let h = harness().await;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            body("broken", "fn analyze(event, config) {\n  let x = ;\n}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(error_code(&r), "invalid_script");
    assert_eq!(r.body["error"]["field"], "source");
    assert_eq!(r.body["error"]["script_error"], "compile");
    assert_eq!(r.body["error"]["line"], 2);
    assert!(r.body["error"]["column"].as_u64().is_some());

    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            body("noentry", "fn other() { 1 }"),
        )
        .await;
    assert_eq!(r.body["error"]["script_error"], "no_analyze", "{}", r.text);
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            body("Bad Name", ENC_PS),
        )
        .await;
    assert_eq!(
        (error_code(&r), r.body["error"]["field"].clone()),
        ("invalid_field".into(), json!("name"))
    );
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "t", "source": ENC_PS, "timeout_ms": 999999}).to_string(),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "timeout_ms", "{}", r.text);
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "t", "src": "x"}).to_string(),
        )
        .await;
    assert_eq!(error_code(&r), "invalid_field", "{}", r.text);
    // Nothing of the refused uploads was kept.
    let r = h.call("GET", "/api/v1/scripts", Some(&h.viewer), "").await;
    assert_eq!(r.body["scripts"], json!([]));
}

#[tokio::test]
async fn versions_rollback_enable_disable_delete() {
    let h = harness().await;
    let a = Some(h.admin.as_str());
    let r = h
        .call("POST", "/api/v1/scripts", a, body("enc_ps", ENC_PS))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    let r = h
        .call("POST", "/api/v1/scripts", a, body("enc_ps", ENC_PS))
        .await;
    assert_eq!(error_code(&r), "conflict");

    let v2 = ENC_PS.replace("encoded PowerShell", "encoded PowerShell v2");
    let r = h
        .call("PUT", "/api/v1/scripts/enc_ps", a, body("enc_ps", &v2))
        .await;
    assert_eq!(r.body["version"], 2, "{}", r.text);
    let r = h
        .call(
            "PUT",
            "/api/v1/scripts/enc_ps",
            a,
            body("enc_ps", "fn analyze(e, c) { let = }"),
        )
        .await;
    assert_eq!(
        error_code(&r),
        "invalid_script",
        "a bad version is refused and v2 stays"
    );
    let r = h
        .call("PUT", "/api/v1/scripts/nope", a, body("nope", ENC_PS))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let event =
        json!({"event.category": "process", "process.command_line": "powershell -enc AAAA"})
            .to_string();
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), event.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["results"]["enc_ps"]["summary"],
        "encoded PowerShell v2"
    );
    assert_eq!(r.body["findings"][0]["analyzer"], "script:enc_ps");
    assert_eq!(r.body["findings"][0]["score"], 75.0);
    assert!(r.body["took_ms"].as_f64().is_some());

    let r = h
        .call(
            "POST",
            "/api/v1/scripts/enc_ps/rollback",
            a,
            json!({"version": 1}).to_string(),
        )
        .await;
    assert_eq!(
        (r.body["version"].clone(), r.body["rolled_back_to"].clone()),
        (json!(3), json!(1)),
        "{}",
        r.text
    );
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), event.clone())
        .await;
    assert_eq!(r.body["results"]["enc_ps"]["summary"], "encoded PowerShell");
    let r = h
        .call(
            "POST",
            "/api/v1/scripts/enc_ps/rollback",
            a,
            json!({"version": 9}).to_string(),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "version");

    let r = h
        .call("GET", "/api/v1/scripts/enc_ps", Some(&h.viewer), "")
        .await;
    assert_eq!(r.body["versions"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["version"], 3);
    assert!(r.body["source"].as_str().unwrap().contains("fn analyze"));

    let r = h
        .call("POST", "/api/v1/scripts/enc_ps/disable", a, "")
        .await;
    assert_eq!(r.body["enabled"], false);
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), event.clone())
        .await;
    assert_eq!(
        r.body["results"],
        json!({}),
        "a disabled script does not run"
    );
    let r = h.call("GET", "/api/v1/scripts", Some(&h.viewer), "").await;
    assert_eq!(
        r.body["scripts"][0]["disabled_reason"],
        "disabled by an admin"
    );
    h.call("POST", "/api/v1/scripts/enc_ps/enable", a, "").await;
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), event.clone())
        .await;
    assert_eq!(r.body["findings"].as_array().unwrap().len(), 1);

    let r = h.call("DELETE", "/api/v1/scripts/enc_ps", a, "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .call("GET", "/api/v1/scripts/enc_ps", Some(&h.viewer), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), event)
        .await;
    assert_eq!(r.body["results"], json!({}));

    // Roles: viewers read, agents analyze, only admins write.
    assert_eq!(
        h.call(
            "POST",
            "/api/v1/scripts",
            Some(&h.viewer),
            body("x", ENC_PS)
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call("POST", "/api/v1/scripts", Some(&h.agent), body("x", ENC_PS))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call("POST", "/api/v1/analyze", Some(&h.viewer), "{}")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn hostile_scripts_do_not_stop_the_others_through_the_api() {
    let h = harness().await;
    let a = Some(h.admin.as_str());
    for (name, src) in [
        ("spin", "fn analyze(e, c) { loop { } }"),
        ("deep", "fn f(n) { f(n + 1) } fn analyze(e, c) { f(0) }"),
        ("fine", "fn analyze(e, c) { #{ ok: true } }"),
    ] {
        let r = h
            .call(
                "POST",
                "/api/v1/scripts",
                a,
                json!({"name": name, "source": src}).to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    }
    let calls = (0..20).map(|_| {
        h.call(
            "POST",
            "/api/v1/analyze",
            Some(&h.agent),
            "{\"message\": \"x\"}",
        )
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["results"]["fine"]["ok"], true);
    }
    // After five failures in a row each hostile script is disabled, with the reason kept.
    let r = h.call("GET", "/api/v1/scripts", Some(&h.viewer), "").await;
    for s in r.body["scripts"].as_array().unwrap() {
        let disabled = s["name"] != "fine";
        assert_eq!(s["enabled"], !disabled, "{s}");
        if disabled {
            assert!(
                s["disabled_reason"]
                    .as_str()
                    .unwrap()
                    .contains("failed runs in a row"),
                "{s}"
            );
        }
    }
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), "not json")
        .await;
    assert_eq!(error_code(&r), "invalid_json");
}

#[tokio::test]
async fn lists_feed_scripts_and_scripts_run_on_ingested_events() {
    let h = harness().await;
    let a = Some(h.admin.as_str());
    let src = r#"fn analyze(e, c) { if in_list("bad_hashes", e["file.hash.sha256"]) { #{ score: 95, summary: "known bad file" } } }"#;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            a,
            json!({"name": "bad_hash", "source": src, "categories": ["file"]}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let bad = "a".repeat(64);
    let r = h
        .call(
            "POST",
            "/api/v1/lists/bad_hashes",
            a,
            json!([bad.to_uppercase(), "b".repeat(64)]).to_string(),
        )
        .await;
    assert_eq!(r.body["size"], 2, "{}", r.text);
    let r = h.call("GET", "/api/v1/lists", Some(&h.viewer), "").await;
    assert_eq!(r.body["lists"][0]["name"], "bad_hashes");
    let r = h.call("POST", "/api/v1/lists/bad%20name", a, "[]").await;
    assert_eq!(r.body["error"]["field"], "name");

    let probe = json!({"event.category": "file", "file.hash.sha256": bad, "host.name": "pc-7"});
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), probe.to_string())
        .await;
    assert_eq!(
        r.body["findings"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );

    let mut stream = h.state.pipeline.subscribe();
    let r = h
        .call(
            "POST",
            "/api/v1/events",
            Some(&h.agent),
            json!({"event.category": "file", "file.hash.sha256": bad, "host.name": "pc-7"})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let f = tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.analyzer, "script:bad_hash");
    assert_eq!(f.host_name.as_deref(), Some("pc-7"));
}

#[tokio::test]
async fn oversized_uploads_name_the_real_limit() {
    let h = harness_with(
        vigil_server::ServerConfig {
            max_bulk_bytes: 1000,
            ..Default::default()
        },
        vigil_pipeline::PipelineConfig::default(),
        vigil_server::AuthConfig::default(),
    )
    .await;
    let big = format!("fn analyze(e, c) {{ () }} // {}", "x".repeat(2000));
    let r = h
        .call("POST", "/api/v1/scripts", Some(&h.admin), body("big", &big))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes"),
        "{}",
        r.text
    );
}

const SEED_EXAMPLE: &str = include_str!("../../../scripts/examples/python/seed_custom.py");

#[tokio::test]
async fn python_scripts_are_refused_unless_enabled() {
    let h = harness().await;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "seed", "language": "python", "source": SEED_EXAMPLE}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("python_disabled"), "{}", r.text);
    let r = h
        .call("GET", "/api/v1/scripts/seed", Some(&h.admin), String::new())
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "nothing stored: {}",
        r.text
    );
}

#[tokio::test]
async fn the_seed_python_example_runs_through_the_api_and_the_pipeline() {
    let h = harness_scripts(vigil_script::ScriptLimits {
        default_timeout_ms: 2_000,
        python: vigil_script::PythonConfig {
            enabled: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "seed", "language": "python", "source": "def Start_Analysis(q, DATA)\n  pass\n"})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["line"], 1, "{}", r.text);

    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "seed", "language": "python", "source": SEED_EXAMPLE, "categories": ["process"]})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .call("GET", "/api/v1/scripts", Some(&h.viewer), String::new())
        .await;
    assert_eq!(r.body["scripts"][0]["language"], "python", "{}", r.text);

    let event = json!({"event": {"category": ["process"]}, "process": {"name": "cmd.exe"}});
    let r = h
        .call("POST", "/api/v1/analyze", Some(&h.agent), event.to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let echoed = r.body["results"]["seed"]["custom_res"].as_str().unwrap();
    let echoed: serde_json::Value = serde_json::from_str(echoed).unwrap();
    assert_eq!(echoed["process"]["name"], "cmd.exe");

    // A new version through PUT, still Python.
    let r = h
        .call(
            "PUT",
            "/api/v1/scripts/seed",
            Some(&h.admin),
            json!({"language": "python", "categories": ["process"], "source":
                "import threading\ndef w(q, DATA):\n    q.put({'score': 60, 'summary': 'python says so'})\n\
                 def Start_Analysis(q, DATA):\n    threading.Thread(target=w, args=(q, DATA)).start()\n    return q\n"})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h
        .call("POST", "/api/v1/events", Some(&h.agent), event.to_string())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let mut found = None;
    for _ in 0..100 {
        let r = h
            .call(
                "GET",
                "/api/v1/findings?analyzer=script:seed",
                Some(&h.viewer),
                String::new(),
            )
            .await;
        if r.body["findings"].as_array().is_some_and(|f| !f.is_empty()) {
            found = Some(r.body["findings"][0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = found.expect("the pipeline ran the Python script on the ingested event");
    assert_eq!(f["summary"], "python says so");
}

/// Issue 23, bug 2: a shipped script uploaded as `{"name", "source"}` keeps the manifest
/// written in its source (categories, config); the request and the source may not
/// disagree; the name may come from either.
#[tokio::test]
async fn an_upload_reads_the_manifest_in_the_source() {
    let h = harness().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/examples/encoded_powershell.rhai"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "encoded_powershell", "source": source}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .call(
            "GET",
            "/api/v1/scripts/encoded_powershell",
            Some(&h.viewer),
            "",
        )
        .await;
    let manifest = &r.body["manifest"];
    assert_eq!(manifest["categories"], json!(["process"]), "{}", r.text);
    assert!(
        manifest["config"]["suspicious_words"].is_array(),
        "{}",
        r.text
    );
    // It runs on the README's event instead of failing for a missing config item.
    let r = h
        .call(
            "POST",
            "/api/v1/analyze",
            Some(&h.agent),
            json!({"event.category": "process", "process.name": "powershell.exe",
                   "process.command_line": "powershell -enc SQBFAFgA"})
            .to_string(),
        )
        .await;
    assert_eq!(
        r.body["results"]["encoded_powershell"]["summary"], "PowerShell with an encoded command",
        "{}",
        r.text
    );

    // A field given in both, differently: refused, naming it.
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "encoded_powershell", "source": source, "categories": ["file"]})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "categories", "{}", r.text);
    // The name from the source alone.
    let renamed = source.replace(
        "name = \"encoded_powershell\"",
        "name = \"encoded_powershell_2\"",
    );
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"source": renamed}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["name"], "encoded_powershell_2", "{}", r.text);
    // No name anywhere.
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"source": ENC_PS}).to_string(),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "name", "{}", r.text);
}
