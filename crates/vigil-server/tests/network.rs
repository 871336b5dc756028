//! The network detector through the API, over a real SQLite store: seed 002's request and
//! answer shape, bad records, the model not yet trained, training from stored history,
//! promotion and rollback, retraining while scoring, the time series, findings, the
//! WebSocket, and ECS network events through the pipeline.

mod common;

use axum::http::StatusCode;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use vigil_net::NetConfig;
use vigil_server::network::{NetAnalyzer, NetService};

async fn with_network(config: NetConfig) -> (Harness, Arc<NetService>) {
    let mut h = harness().await;
    let net = NetService::start(config, h.state.store.clone(), &h.state.pipeline).unwrap();
    h.registry.register(Arc::new(NetAnalyzer::new(&net)));
    h.state.network = Some(net.clone());
    (h, net)
}

fn config() -> NetConfig {
    NetConfig {
        auto_train_after: 0,
        retrain_hours: 0,
        ..NetConfig::default()
    }
}

/// The seed's example request, with a time and a host.
fn seed_record(i: usize) -> Value {
    let (process, remote, port) = match i % 4 {
        0 | 1 => ("chrome.exe", format!("142.250.0.{}", i % 6), 443),
        2 => ("outlook.exe", "52.96.0.1".to_string(), 443),
        _ => ("svchost.exe", format!("10.0.0.{}", i % 3 + 1), 53),
    };
    let t = chrono::Utc::now() - chrono::Duration::seconds(3000 - (i as i64) * 2);
    json!({
        "timestamp": t.to_rfc3339(), "host": "ws-1",
        "process_id": 1234, "process_name": process, "local_ip": "192.168.1.100",
        "remote_ip": remote, "remote_port": port, "protocol": "TCP",
        "bytes_sent": 800 + (i * 37) % 700, "bytes_received": 20_000 + (i * 101) % 9000,
        "duration": 1.0 + (i % 5) as f64,
    })
}

async fn wait_rows(h: &Harness, at_least: usize) {
    for _ in 0..200 {
        let r = h
            .call(
                "GET",
                "/api/v1/network/series?bucket=86400",
                Some(&h.viewer),
                Vec::new(),
            )
            .await;
        let n: u64 = r.body["points"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["connections"].as_u64()).sum())
            .unwrap_or(0);
        if n as usize >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {at_least} connections stored in time");
}

async fn feed(h: &Harness, from: usize, n: usize) {
    let records: Vec<Value> = (from..from + n).map(seed_record).collect();
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze/batch",
            Some(&h.agent),
            json!({ "records": records }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scored"], n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrained_answers_clearly_and_bad_records_name_their_field() {
    let (h, _) = with_network(config()).await;
    // The seed's Python/C# clients post exactly this and read result.is_anomaly and
    // result.anomaly_score.
    let seed = json!({"process_id": 1234, "process_name": "chrome.exe", "local_ip": "192.168.1.100",
                      "remote_ip": "203.0.113.1", "protocol": "TCP", "bytes_sent": 1024, "bytes_received": 4096});
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze",
            Some(&h.agent),
            seed.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["result"]["is_anomaly"], false);
    assert!(r.body["result"]["anomaly_score"].is_f64());
    assert_eq!(r.body["result"]["status"], "no_model");
    assert!(
        r.body["result"]["explanation"][0]
            .as_str()
            .unwrap()
            .contains("train")
    );

    let cases = [
        (json!({"process_name": "a", "protocol": "tcp"}), "remote_ip"),
        (
            json!({"process_name": "a", "protocol": "tcp", "remote_ip": "300.1.1.1"}),
            "remote_ip",
        ),
        (
            json!({"process_name": "a", "protocol": "tcp", "remote_ip": "1.1.1.1", "bytes_sent": -5}),
            "bytes_sent",
        ),
        (
            json!({"process_name": "a", "protocol": "tcp", "remote_ip": "1.1.1.1", "remote_port": 99999}),
            "remote_port",
        ),
        (
            json!({"process_name": "a", "protocol": "tcp", "remote_ip": "1.1.1.1", "colour": 1}),
            "colour",
        ),
        (
            json!({"remote_ip": "1.1.1.1", "protocol": "tcp"}),
            "process_name",
        ),
    ];
    for (body, field) in cases {
        let r = h
            .call(
                "POST",
                "/api/v1/network/analyze",
                Some(&h.agent),
                body.to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
    }
    for raw in ["not json", "[1, 2]", "", "null"] {
        let r = h
            .call(
                "POST",
                "/api/v1/network/analyze",
                Some(&h.agent),
                raw.to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw}: {}", r.text);
    }
    // A batch: per-record errors, in order; the good ones are scored.
    let batch = json!({"records": [seed, {"process_name": "x"}, seed]});
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze/batch",
            Some(&h.agent),
            batch.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["scored"].as_u64(), r.body["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        r.body["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("field `protocol`")
    );
    // Too many records, too large a body.
    let many: Vec<Value> = (0..10_001).map(|_| seed.clone()).collect();
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze/batch",
            Some(&h.agent),
            json!({"records": many}).to_string(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "{}",
        &r.text[..r.text.len().min(300)]
    );
    let huge = format!("{{\"process_name\": \"{}\"}}", "a".repeat(100_000));
    let r = h
        .call("POST", "/api/v1/network/analyze", Some(&h.agent), huge)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Training with too little history says so.
    let r = h
        .call("POST", "/api/v1/network/train", Some(&h.admin), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("at least 100"), "{}", r.text);
    // Hostile `since` values are errors, not panics (regression: a multibyte last
    // character and a span past chrono's range panicked).
    for since in ["5é", "200000000000d", "-3d", "", "7w", "é"] {
        let body = json!({ "since": since }).to_string();
        let r = h
            .call("POST", "/api/v1/network/train", Some(&h.admin), body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{since}: {}", r.text);
        assert_eq!(r.body["error"]["field"], "since", "{}", r.text);
    }
    // Roles: a viewer cannot score, an agent cannot train, nobody without a credential.
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze",
            Some(&h.viewer),
            seed.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call("POST", "/api/v1/network/train", Some(&h.agent), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call("POST", "/api/v1/network/analyze", None, seed.to_string())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trains_from_history_flags_the_odd_connection_and_rolls_back() {
    let (h, net) = with_network(config()).await;
    feed(&h, 0, 1500).await;
    wait_rows(&h, 1500).await;
    let r = h
        .call(
            "POST",
            "/api/v1/network/train",
            Some(&h.admin),
            r#"{"since": "2h"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["promoted"], true, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    let v1 = r.body["model_version"].as_str().unwrap().to_string();

    // Ordinary traffic stays quiet; a new process shipping 50 MB to an odd port does not.
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze",
            Some(&h.agent),
            seed_record(1501).to_string(),
        )
        .await;
    assert_eq!(r.body["result"]["status"], "scored", "{}", r.text);
    assert_eq!(r.body["result"]["is_anomaly"], false, "{}", r.text);
    let odd = json!({"host": "ws-1", "process_name": "rundll32.exe", "remote_ip": "198.51.100.66",
                     "remote_port": 4444, "protocol": "tcp", "bytes_sent": 50_000_000, "bytes_received": 300});
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze",
            Some(&h.agent),
            odd.to_string(),
        )
        .await;
    assert_eq!(r.body["result"]["is_anomaly"], true, "{}", r.text);
    assert!(r.body["result"]["anomaly_score"].as_f64().unwrap() > 0.98);
    assert!(!r.body["result"]["reasons"].as_array().unwrap().is_empty());
    assert_eq!(r.body["result"]["model_version"], v1.as_str());

    // The same odd connection again: flagged, but one finding per 10 minutes.
    let r = h
        .call(
            "POST",
            "/api/v1/network/analyze",
            Some(&h.agent),
            odd.to_string(),
        )
        .await;
    assert_eq!(r.body["result"]["is_anomaly"], true, "{}", r.text);
    // The anomaly became a finding; the time series has it.
    let found = h
        .poll_list("/api/v1/findings?analyzer=network", "findings")
        .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]["summary"]
            .as_str()
            .unwrap()
            .contains("rundll32.exe")
    );
    assert_eq!(found[0]["host.name"], "ws-1");
    // Both flagged rows reach the time series (its writer batches: wait up to 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (r, rows) = loop {
        let r = h
            .call(
                "GET",
                "/api/v1/network/connections?anomalies=true&host.name=ws-1",
                Some(&h.viewer),
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let rows = r.body["connections"].as_array().unwrap().clone();
        let n = rows
            .iter()
            .filter(|c| c["process"] == "rundll32.exe")
            .count();
        if n >= 2 || std::time::Instant::now() > deadline {
            break (r, rows);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        rows.iter()
            .filter(|c| c["process"] == "rundll32.exe")
            .count(),
        2
    );
    assert!(
        rows.iter().any(|c| c["process"] == "rundll32.exe"),
        "{}",
        r.text
    );

    // Retraining while scoring: every concurrent request is answered.
    feed(&h, 2000, 300).await;
    wait_rows(&h, 1800).await;
    let scorer = {
        let h2_state = h.state.clone();
        let agent = h.agent.clone();
        tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..200 {
                let req = axum::http::Request::builder()
                    .method("POST")
                    .uri("/api/v1/network/analyze")
                    .header("authorization", format!("Bearer {agent}"))
                    .body(axum::body::Body::from(seed_record(3000 + i).to_string()))
                    .unwrap();
                let resp = tower::ServiceExt::oneshot(vigil_server::app(h2_state.clone()), req)
                    .await
                    .unwrap();
                if resp.status() == StatusCode::OK {
                    ok += 1;
                }
            }
            ok
        })
    };
    let r = h
        .call(
            "POST",
            "/api/v1/network/train",
            Some(&h.admin),
            r#"{"since": "2h", "force": true}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    assert_eq!(scorer.await.unwrap(), 200);
    let v2 = net.detector().model().unwrap().version.clone();

    // Both versions are listed; roll back to 1.
    let r = h
        .call("GET", "/api/v1/network/models", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.body["models"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = h
        .call(
            "POST",
            "/api/v1/network/models/1/activate",
            Some(&h.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(net.detector().model().unwrap().version, v1);
    assert_ne!(v1, v2);
    let r = h
        .call(
            "POST",
            "/api/v1/network/models/9/activate",
            Some(&h.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .call(
            "POST",
            "/api/v1/network/models/x/activate",
            Some(&h.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A restarted service loads the active version.
    let again = NetService::start(config(), h.state.store.clone(), &h.state.pipeline).unwrap();
    assert_eq!(again.load_active().await.unwrap(), Some(1));
    let r = h
        .call("GET", "/api/v1/network/status", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.body["model"]["version"], v1.as_str(), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_scores_records_and_ecs_events_go_through_the_pipeline() {
    let (h, _) = with_network(config()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = vigil_server::app(h.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut req = format!("ws://{addr}/api/v1/network/stream")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", h.agent).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Text(seed_record(0).to_string().into()))
        .await
        .unwrap();
    let reply = read_text(&mut ws).await;
    assert_eq!(reply["result"]["status"], "no_model", "{reply}");
    ws.send(Message::Text("{oops".into())).await.unwrap();
    let reply = read_text(&mut ws).await;
    assert_eq!(reply["error"]["code"], "invalid_json", "{reply}");
    ws.send(Message::Text(
        json!([seed_record(1), {"x": 1}]).to_string().into(),
    ))
    .await
    .unwrap();
    let reply = read_text(&mut ws).await;
    assert!(reply["results"][0]["result"].is_object(), "{reply}");
    assert!(reply["results"][1]["error"].is_string(), "{reply}");
    // The socket survived the bad messages.
    ws.send(Message::Text(seed_record(2).to_string().into()))
        .await
        .unwrap();
    assert!(read_text(&mut ws).await["result"].is_object());

    // An ECS network event sent as telemetry lands in the time series too.
    let event = json!({"event.category": "network", "host.name": "srv-9", "process.name": "curl",
                       "destination.ip": "198.51.100.8", "destination.port": 8443,
                       "network.transport": "tcp", "network.direction": "outbound",
                       "source.bytes": 100, "destination.bytes": 2000});
    let r = h
        .call("POST", "/api/v1/events", Some(&h.agent), event.to_string())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let rows = h
        .poll_list("/api/v1/network/connections?host.name=srv-9", "connections")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["process"], "curl");
    assert_eq!(rows[0]["remote_port"], 8443);
}

async fn read_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_pseudonyms_keep_addresses_out_of_storage() {
    let (h, _) = with_network(NetConfig {
        hash_ips: true,
        hash_key: Some("test key, at least sixteen bytes".into()),
        ..config()
    })
    .await;
    feed(&h, 0, 3).await;
    wait_rows(&h, 3).await;
    let r = h
        .call(
            "GET",
            "/api/v1/network/connections",
            Some(&h.viewer),
            Vec::new(),
        )
        .await;
    for c in r.body["connections"].as_array().unwrap() {
        let remote = c["remote"].as_str().unwrap();
        assert!(
            remote.starts_with("2001:db8:") || remote.starts_with("fd76:6967:"),
            "{remote}"
        );
        assert!(!remote.contains("142.250") && !remote.contains("10.0.0"));
    }
}

/// The retrainer trains the first model by itself once enough connections are stored, and
/// does not retrain again at every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_model_trains_itself() {
    let (h, net) = with_network(NetConfig {
        auto_train_after: 300,
        ..config()
    })
    .await;
    feed(&h, 0, 400).await;
    wait_rows(&h, 400).await;
    let retrainer = vigil_server::network::spawn_retrainer(net.clone(), Duration::from_millis(50));
    let mut trained = false;
    for _ in 0..200 {
        if net.detector().model().is_some() {
            trained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(trained, "no model after 10 s");
    // Many ticks later, still one version (no retraining loop).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = h
        .call("GET", "/api/v1/network/models", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.body["models"].as_array().unwrap().len(), 1, "{}", r.text);
    retrainer.abort();
}
