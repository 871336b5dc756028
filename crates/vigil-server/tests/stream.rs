//! The WebSocket stream over a real socket.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use vigil_pipeline::PipelineConfig;
use vigil_server::{AuthConfig, ServerConfig};

async fn serve(h: &Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = vigil_server::app(h.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

async fn connect(
    addr: &str,
    query: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{addr}/api/v1/stream{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_receive_findings_with_filters() {
    let h = harness().await;
    let addr = serve(&h).await;
    let mut all = connect(&addr, "", &h.viewer).await;
    let mut critical = connect(&addr, "?severity=critical", &h.viewer).await;
    let mut other_host = connect(&addr, "?host.name=elsewhere", &h.viewer).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let events = [
        json!({"message": "alert: medium", "score": 50, "host.name": "web-1"}),
        json!({"message": "nothing to see"}),
        json!({"message": "alert: critical", "score": 95, "host.name": "web-1"}),
    ];
    for e in events {
        let r = h
            .call("POST", "/api/v1/events", Some(&h.agent), e.to_string())
            .await;
        assert_eq!(r.status, axum::http::StatusCode::ACCEPTED);
    }
    // Analyzer workers run in parallel: findings of different events may come in either
    // order (a regression test: this once assumed the order of ingest).
    let f1 = next_text(&mut all).await;
    let f2 = next_text(&mut all).await;
    let mut got = [
        f1["summary"].as_str().unwrap().to_string(),
        f2["summary"].as_str().unwrap().to_string(),
    ];
    got.sort();
    assert_eq!(got, ["alert: critical", "alert: medium"]);
    assert_eq!(f2["analyzer"], "test:alert");
    let c = next_text(&mut critical).await;
    assert_eq!(
        c["summary"], "alert: critical",
        "the medium finding is filtered out"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other_host.next())
            .await
            .is_err(),
        "no finding for another host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_may_pass_the_token_in_the_query_and_bad_tokens_are_refused() {
    let h = harness().await;
    let addr = serve(&h).await;
    let ok = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/api/v1/stream?access_token={}",
        h.viewer
    ))
    .await;
    assert!(ok.is_ok());
    let refused = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/api/v1/stream?access_token=vgl_wrong"
    ))
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_dropped_with_a_reason_and_the_pipeline_goes_on() {
    let h = harness_with(
        ServerConfig::default(),
        PipelineConfig {
            stream_buffer: 4,
            ..Default::default()
        },
        AuthConfig::default(),
    )
    .await;
    let addr = serve(&h).await;
    let mut slow = connect(&addr, "", &h.viewer).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines: String = (0..3000)
        .map(|i| json!({"message": format!("alert {i}")}).to_string() + "\n")
        .collect();
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), lines)
        .await;
    assert_eq!(r.body["accepted"], 3000);

    // Read what is buffered; the stream must end with a close frame that says why.
    let mut close = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                close = frame;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
    let frame = close.expect("a close frame");
    assert_eq!(
        u16::from(frame.code),
        vigil_server::stream::CLOSE_SLOW_CONSUMER
    );
    assert!(frame.reason.contains("slow consumer"), "{}", frame.reason);

    // Every finding was still stored.
    let mut stored = 0;
    let mut uri = "/api/v1/findings?limit=1000".to_string();
    for _ in 0..50 {
        let r = h.call("GET", &uri, Some(&h.viewer), "").await;
        stored += r.body["findings"].as_array().unwrap().len();
        match r.body["next"].as_str() {
            Some(n) => uri = format!("/api/v1/findings?limit=1000&next={n}"),
            None if stored >= 3000 => break,
            None => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                stored = 0;
                uri = "/api/v1/findings?limit=1000".to_string();
            }
        }
    }
    assert_eq!(stored, 3000);
}
