//! The log analyzer end to end: log events mined into sessions, training through the API,
//! findings for anomalous sessions, detection on demand, model versions, hostile requests.

mod common;

use axum::http::StatusCode;
use common::{Harness, error_code, harness};
use serde_json::{Value, json};
use std::sync::Arc;
use vigil_server::logs::{LogAnalyzer, LogConfig, LogService};

fn block_lines(block: u64) -> Vec<String> {
    vec![
        format!(
            "Receiving block blk_{block} src: /10.0.0.{}:50010",
            block % 200
        ),
        format!(
            "Received block blk_{block} of size {} from /10.0.0.1",
            1000 + block
        ),
        format!("PacketResponder 1 for block blk_{block} terminating"),
    ]
}

async fn with_logs(config: LogConfig) -> (Harness, Arc<LogService>) {
    let mut h = harness().await;
    let logs = LogService::start(config, h._dir.path(), h.state.pipeline.findings_sink()).unwrap();
    h.registry.register(Arc::new(LogAnalyzer::new(&logs)));
    h.state.logs = Some(logs.clone());
    (h, logs)
}

async fn ingest(h: &Harness, lines: &[String]) {
    let body: String = lines
        .iter()
        .map(|m| {
            json!({"event": {"category": ["log"]}, "host": {"name": "dn1"}, "message": m})
                .to_string()
                + "\n"
        })
        .collect();
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

/// Waits until the analyzer has seen `n` sessions' worth of keys (the pipeline is
/// asynchronous).
async fn wait_templates(h: &Harness, at_least: u64) {
    for _ in 0..200 {
        let r = h
            .call("GET", "/api/v1/logs/templates", Some(&h.viewer), "")
            .await;
        let seen: u64 = r.body["templates"]
            .as_array()
            .map(|a| a.iter().map(|t| t["count"].as_u64().unwrap()).sum())
            .unwrap_or(0);
        if seen >= at_least {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the analyzer did not see {at_least} lines");
}

fn small_training() -> Value {
    json!({
        "kinds": ["deeplog", "iforest"],
        "deeplog": {"window": 3, "top_g": 2, "hidden": 16, "embedding": 8, "epochs": 5,
                    "min_steps": 150, "batch": 16, "learning_rate": 0.02}
    })
}

#[tokio::test]
async fn learns_from_live_logs_and_finds_anomalous_sessions() {
    let (h, logs) = with_logs(LogConfig::default()).await;
    // Before any model: detection says what to do.
    let r = h
        .call(
            "POST",
            "/api/v1/logs/detect",
            Some(&h.agent),
            json!({"sequences": [[1, 2, 3]]}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("no log model"), "{}", r.text);

    let lines: Vec<String> = (0..80).flat_map(block_lines).collect();
    ingest(&h, &lines).await;
    wait_templates(&h, lines.len() as u64).await;
    let r = h
        .call(
            "GET",
            "/api/v1/logs/templates?limit=10",
            Some(&h.viewer),
            "",
        )
        .await;
    assert_eq!(r.body["total"], 3, "{}", r.text);
    assert!(
        r.body["templates"][0]["template"]
            .as_str()
            .unwrap()
            .contains("blk_<*>"),
        "{}",
        r.text
    );
    // Sessions close (here at once) and are recorded for training.
    assert!(logs.close_all().is_empty(), "no model, no findings");
    let status = h
        .call("GET", "/api/v1/logs/status", Some(&h.viewer), "")
        .await;
    assert_eq!(status.body["recorded_sessions"], 80, "{}", status.text);
    assert_eq!(status.body["active_version"], Value::Null);

    // Training is for admins only.
    let r = h
        .call(
            "POST",
            "/api/v1/logs/train",
            Some(&h.agent),
            small_training().to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call(
            "POST",
            "/api/v1/logs/train",
            Some(&h.admin),
            small_training().to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["sessions"], 80);
    assert_eq!(r.body["detectors"], json!(["deeplog", "iforest"]));

    // A normal block and one that stops early and holds a line never seen before.
    let mut live = block_lines(500);
    live.push("Deleting block blk_501 file /data/blk_501".into());
    live.push(block_lines(501)[0].clone());
    ingest(&h, &live).await;
    wait_templates(&h, lines.len() as u64 + live.len() as u64).await;
    let findings = logs.close_all();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.analyzer, "logs");
    assert_eq!(f.host_name.as_deref(), Some("dn1"));
    assert_eq!(f.event_ids.len(), 2);
    assert!(f.summary.contains("blk_501"), "{}", f.summary);
    assert_eq!(f.evidence["reason"]["kind"], "unseen_key", "{}", f.evidence);
    assert!(
        f.evidence["explanation"]
            .as_str()
            .unwrap()
            .contains("Deleting block"),
        "{}",
        f.evidence
    );
    assert!(f.score >= 60.0);

    // On demand: raw lines (looked up, not learned) and key sequences.
    let mut lines = block_lines(900);
    lines.push("something no template knows 42".into());
    lines.extend(block_lines(901));
    let r = h
        .call(
            "POST",
            "/api/v1/logs/detect",
            Some(&h.agent),
            json!({ "lines": lines }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sessions = r.body["sessions"].as_array().unwrap();
    let by_id = |id: &str| sessions.iter().find(|s| s["session"] == id).unwrap();
    assert_eq!(by_id("blk_900")["anomalous"], false, "{}", r.text);
    assert_eq!(by_id("blk_901")["anomalous"], false, "{}", r.text);
    assert_eq!(by_id("all")["anomalous"], true, "{}", r.text);
    assert!(
        by_id("all")["explanation"]
            .as_str()
            .unwrap()
            .contains("no known template")
    );
    let r = h
        .call("GET", "/api/v1/logs/templates", Some(&h.viewer), "")
        .await;
    assert_eq!(r.body["total"], 4, "detection does not learn: {}", r.text);

    // A second version, then roll back to the first.
    let r = h
        .call(
            "POST",
            "/api/v1/logs/train",
            Some(&h.admin),
            small_training().to_string(),
        )
        .await;
    assert_eq!(r.body["version"], 2, "{}", r.text);
    let r = h
        .call("GET", "/api/v1/logs/models", Some(&h.viewer), "")
        .await;
    assert_eq!(r.body["active"], 2);
    assert_eq!(r.body["models"].as_array().unwrap().len(), 2);
    let r = h
        .call("POST", "/api/v1/logs/models/1/activate", Some(&h.admin), "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(logs.model().unwrap().version, 1);

    // The state survives a restart: templates, sessions, the active model.
    logs.persist().unwrap();
    let again = LogService::start(
        LogConfig::default(),
        h._dir.path(),
        h.state.pipeline.findings_sink(),
    )
    .unwrap();
    assert_eq!(again.model().unwrap().version, 1);
    assert_eq!(again.templates(10)["total"], 4);
}

#[tokio::test]
async fn hostile_requests_get_clear_errors() {
    let (h, _logs) = with_logs(LogConfig::default()).await;
    let cases: &[(&str, &str, &str, &str, StatusCode)] = &[
        (
            "POST",
            "/api/v1/logs/detect",
            "agent",
            "not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/detect",
            "agent",
            "{}",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/detect",
            "agent",
            r#"{"sequences": [[1]], "lines": ["x"]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/detect",
            "agent",
            r#"{"sequences": [[-1]]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/train",
            "admin",
            "[1, 2]",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/train",
            "admin",
            r#"{"kinds": ["gpt"]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/train",
            "admin",
            r#"{"sequences": [[1, 2], [1, 2]]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/logs/templates?limit=0",
            "viewer",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/logs/templates?limt=5",
            "viewer",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/models/x/activate",
            "admin",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/logs/models/7/activate",
            "admin",
            "",
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/v1/logs/status",
            "none",
            "",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "POST",
            "/api/v1/logs/detect",
            "viewer",
            "{}",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, path, who, body, want) in cases {
        let token = match *who {
            "admin" => Some(h.admin.as_str()),
            "agent" => Some(h.agent.as_str()),
            "viewer" => Some(h.viewer.as_str()),
            _ => None,
        };
        let r = h.call(method, path, token, body.to_string()).await;
        assert_eq!(r.status, *want, "{method} {path} {body}: {}", r.text);
        error_code(&r);
    }
    // Parameters out of range, on enough sessions to train.
    let bad_params = json!({"kinds": ["deeplog"], "deeplog": {"window": 0},
        "sequences": vec![[1, 2, 3]; 60]});
    let r = h
        .call(
            "POST",
            "/api/v1/logs/train",
            Some(&h.admin),
            bad_params.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("window"), "{}", r.text);
    // Too many sessions in one request.
    let many = json!({"sequences": vec![[1]; 100_001]}).to_string();
    let r = h
        .call("POST", "/api/v1/logs/detect", Some(&h.agent), many)
        .await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        r.status
    );
    // A disabled analyzer answers 503.
    let h = harness().await;
    let r = h
        .call("GET", "/api/v1/logs/status", Some(&h.viewer), "")
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn host_windows_and_bounded_sessions() {
    let (h, logs) = with_logs(LogConfig {
        max_session_keys: 4,
        max_open_sessions: 2,
        idle_secs: 3600,
        window_secs: 0,
        ..LogConfig::default()
    })
    .await;
    // Lines without a block id go into a per-host window, closed by the sweep once the
    // window (0 s here) has passed.
    ingest(&h, &["sshd accepted password for root".to_string()]).await;
    wait_templates(&h, 1).await;
    assert!(logs.sweep(std::time::Instant::now()).is_empty());
    assert_eq!(logs.status()["open_sessions"], 0);
    assert_eq!(logs.status()["recorded_sessions"], 1);
    // A session closes when it reaches max_session_keys; a third open session closes the
    // one idle the longest.
    let mut lines: Vec<String> = (0..4)
        .map(|i| format!("Receiving block blk_1 src: /10.0.0.{i}:50010"))
        .collect();
    lines.push("Receiving block blk_2 src: /10.0.0.1:50010".into());
    lines.push("Receiving block blk_3 src: /10.0.0.1:50010".into());
    lines.push("Receiving block blk_4 src: /10.0.0.1:50010".into());
    ingest(&h, &lines).await;
    wait_templates(&h, 8).await;
    // The evicted and the full session are judged (and recorded) by the next sweep.
    let mut status = logs.status();
    for _ in 0..100 {
        assert!(logs.sweep(std::time::Instant::now()).is_empty());
        status = logs.status();
        if status["recorded_sessions"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status["open_sessions"], 2, "{status}");
    assert_eq!(status["recorded_sessions"], 3, "{status}");
    // Templates of recorded sessions were saved before them: a crash now (no shutdown, no
    // periodic save) restarts with the same keys.
    let again = LogService::start(
        LogConfig::default(),
        h._dir.path(),
        h.state.pipeline.findings_sink(),
    )
    .unwrap();
    assert_eq!(again.templates(10)["total"], 2, "{}", again.templates(10));
}
