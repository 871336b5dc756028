//! The access log of the HTTP application: a request id on every response (the caller's
//! when short and safe), and one record per call with who, role, route template, path
//! without the query, status and size, whatever the outcome (refused credentials, refused
//! role, no such route).

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use vigil_server::access::AccessLog;

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    request_id: Option<&str>,
) -> (u16, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let req = req
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    (resp.status().as_u16(), id)
}

fn records(path: &std::path::Path, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= want {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn every_call_is_recorded_with_who_and_a_request_id() {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let app =
        vigil_server::app_with_access_log(h.state.clone(), AccessLog::to_file(&path).unwrap());

    let (status, generated) = send(&app, "GET", "/api/v1/health", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(generated.len(), 32);
    let (_, echoed) = send(&app, "GET", "/api/v1/health", None, Some("trace-42:a.b_c")).await;
    assert_eq!(echoed, "trace-42:a.b_c");
    let (_, replaced) = send(
        &app,
        "GET",
        "/api/v1/health",
        None,
        Some("no spaces, please"),
    )
    .await;
    assert_eq!(replaced.len(), 32);
    let (_, replaced) = send(&app, "GET", "/api/v1/health", None, Some(&"x".repeat(65))).await;
    assert_eq!(replaced.len(), 32);

    let token = "some-token-in-the-query";
    let uri = format!("/api/v1/events/abc?access_token={token}");
    let (viewer_status, viewer_id) = send(&app, "GET", &uri, Some(&h.viewer), None).await;
    assert!(matches!(viewer_status, 400 | 404), "{viewer_status}");
    let (status, forbidden_id) = send(&app, "GET", "/api/v1/keys", Some(&h.viewer), None).await;
    assert_eq!(status, 403);
    let (status, refused_id) = send(&app, "GET", "/api/v1/keys", Some("vgl_wrong"), None).await;
    assert_eq!(status, 401);
    let (status, missing_id) = send(&app, "GET", "/nowhere?x=1", None, None).await;
    assert_eq!(status, 404);
    let (status, admin_id) = send(&app, "GET", "/api/v1/me", Some(&h.admin), None).await;
    assert_eq!(status, 200);

    drop(app);
    let all = records(&path, 9);
    let by_id = |id: &str| {
        all.iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no record {id} in {all:#?}"))
            .clone()
    };
    let r = by_id(&generated);
    assert_eq!(r["kind"], "http");
    assert_eq!(
        (r["who"].as_str(), r["role"].as_str()),
        (Some("-"), Some("-"))
    );
    assert!(r["bytes"].as_u64().unwrap() > 0);
    assert!(r.get("client").is_none(), "no ConnectInfo under oneshot");
    by_id("trace-42:a.b_c");

    let r = by_id(&viewer_id);
    assert!(r["who"].as_str().unwrap().starts_with("key:"), "{r}");
    assert_eq!(r["role"], "viewer");
    assert_eq!(r["route"], "/api/v1/events/{id}");
    assert_eq!(r["path"], "/api/v1/events/abc");
    assert_eq!(r["status"], viewer_status);
    let r = by_id(&forbidden_id);
    assert_eq!(
        (r["role"].as_str(), r["status"].as_u64()),
        (Some("viewer"), Some(403))
    );
    assert!(r["who"].as_str().unwrap().starts_with("key:"), "{r}");
    let r = by_id(&refused_id);
    assert_eq!(
        (r["who"].as_str(), r["status"].as_u64()),
        (Some("-"), Some(401))
    );
    let r = by_id(&missing_id);
    assert_eq!(
        (r["route"].as_str(), r["path"].as_str()),
        (Some("-"), Some("/nowhere"))
    );
    let r = by_id(&admin_id);
    assert_eq!(r["role"], "admin");

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(token) && !text.contains("vgl_wrong"),
        "{text}"
    );
    assert!(
        !text.contains(&h.viewer) && !text.contains(&h.admin),
        "{text}"
    );
}

#[tokio::test]
async fn with_auth_off_the_subject_is_anonymous() {
    let h = harness_with(
        vigil_server::ServerConfig::default(),
        vigil_pipeline::PipelineConfig::default(),
        vigil_server::AuthConfig {
            enabled: false,
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let app =
        vigil_server::app_with_access_log(h.state.clone(), AccessLog::to_file(&path).unwrap());
    let (status, id) = send(&app, "GET", "/api/v1/me", None, None).await;
    assert_eq!(status, 200);
    let all = records(&path, 1);
    assert_eq!(all[0]["request_id"], id.as_str());
    assert_eq!(all[0]["who"], "anonymous");
    assert_eq!(all[0]["role"], "admin");
}
