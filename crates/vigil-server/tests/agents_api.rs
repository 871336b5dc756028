//! EDR agents (seed 000): registration, heartbeats, status, scripts scoped to agent tags,
//! and asynchronous analysis jobs.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn register_heartbeat_and_list_with_status() {
    let h = harness().await;
    let reg = json!({"id": "edr-0042", "hostname": "fin-ws-12", "os": "Windows 11 23H2", "version": "3.1.0", "tags": ["finance", "laptop"]});
    let r = h
        .call("POST", "/api/v1/agents", Some(&h.agent), reg.to_string())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .call(
            "POST",
            "/api/v1/agents/edr-0042/heartbeat",
            Some(&h.agent),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .call("POST", "/api/v1/agents/ghost/heartbeat", Some(&h.agent), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = h.call("GET", "/api/v1/agents", Some(&h.viewer), "").await;
    let a = &r.body["agents"][0];
    assert_eq!(a["id"], "edr-0042");
    assert_eq!(a["status"], "online");
    assert_eq!(a["tags"], json!(["finance", "laptop"]));
    assert_eq!(a["os"], "Windows 11 23H2");

    for (body, field) in [
        (json!({"id": "bad id", "hostname": "h"}), "id"),
        (json!({"id": "a", "hostname": ""}), "hostname"),
        (json!({"id": "a", "hostname": "h", "tags": [""]}), "tags"),
    ] {
        let r = h
            .call("POST", "/api/v1/agents", Some(&h.agent), body.to_string())
            .await;
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
    }
    let r = h
        .call(
            "POST",
            "/api/v1/agents",
            Some(&h.agent),
            json!({"id": "a"}).to_string(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "missing hostname: {}",
        r.text
    );
    let r = h
        .call("POST", "/api/v1/agents", Some(&h.viewer), reg.to_string())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn scripts_scoped_to_agent_tags_run_only_for_those_agents() {
    let h = harness().await;
    let src = r#"fn analyze(e, c) { #{ scoped: true } }"#;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "finance_only", "source": src, "agent_tags": ["finance"]}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for (id, tags) in [("fin-1", json!(["finance"])), ("dev-1", json!(["dev"]))] {
        let r = h
            .call(
                "POST",
                "/api/v1/agents",
                Some(&h.agent),
                json!({"id": id, "hostname": id, "tags": tags}).to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let run = |agent: &'static str| {
        let h = &h;
        async move {
            let body = if agent.is_empty() {
                json!({"message": "m"})
            } else {
                json!({"agent.id": agent, "message": "m"})
            };
            h.call("POST", "/api/v1/analyze", Some(&h.agent), body.to_string())
                .await
                .body
        }
    };
    assert_eq!(
        run("fin-1").await["results"]["finance_only"]["scoped"],
        true
    );
    assert_eq!(run("dev-1").await["results"], json!({}));
    assert_eq!(run("unregistered").await["results"], json!({}));
    assert_eq!(run("").await["results"], json!({}));
}

#[tokio::test]
async fn async_analysis_jobs() {
    let h = harness().await;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            json!({"name": "s", "source": "fn analyze(e, c) { #{ score: 50, summary: \"x\" } }"})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h
        .call(
            "POST",
            "/api/v1/analyze?async=true",
            Some(&h.agent),
            r#"{"message": "m"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let url = r.body["url"].as_str().unwrap().to_string();
    let mut done = json!(null);
    for _ in 0..100 {
        let r = h.call("GET", &url, Some(&h.agent), "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["status"] == "done" {
            done = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done["results"]["s"]["summary"], "x", "{done}");
    assert_eq!(done["findings"].as_array().unwrap().len(), 1);
    let r = h.call("GET", "/api/v1/jobs/nope", Some(&h.agent), "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .call(
            "POST",
            "/api/v1/analyze?async=maybe",
            Some(&h.agent),
            r#"{"message": "m"}"#,
        )
        .await;
    assert_eq!(error_code(&r), "invalid_query");
}
