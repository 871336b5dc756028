//! No path traversal (issue 12): every route with a path parameter (script names, report
//! ids, file hashes, event, finding, incident and key ids, list names, model versions, the
//! console's files) gets the classic traversal forms, raw and percent-encoded, as an
//! admin. Each answer must be a clean refusal (`400`, `404`, or `503` when the service is
//! off), JSON for the API, never a file's content and never a `500`. Names that would be
//! stored (scripts, lists) are refused at creation.

mod common;

use axum::http::StatusCode;
use common::harness;
use serde_json::json;

/// Traversal attempts, as they appear in a request path.
const HOSTILE: &[&str] = &[
    "..",
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "....%2F%2F....%2F%2Fetc%2Fpasswd",
    "..%5C..%5Cwindows%5Cwin.ini",
    "%2Fetc%2Fpasswd",
    "etc%00passwd",
    "%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
    "Cargo.toml",
    "..%2F..%2FCargo.toml",
];

/// `(method, template)` of every route with a parameter; `{}` is replaced.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/scripts/{}"),
    ("PUT", "/api/v1/scripts/{}"),
    ("DELETE", "/api/v1/scripts/{}"),
    ("POST", "/api/v1/scripts/{}/enable"),
    ("POST", "/api/v1/scripts/{}/disable"),
    ("POST", "/api/v1/scripts/{}/rollback"),
    ("POST", "/api/v1/lists/{}"),
    ("GET", "/api/v1/reports/{}"),
    ("GET", "/api/v1/files/{}"),
    ("POST", "/api/v1/files/{}/label"),
    ("POST", "/api/v1/files/{}/sandbox"),
    ("GET", "/api/v1/events/{}"),
    ("GET", "/api/v1/findings/{}"),
    ("GET", "/api/v1/incidents/{}"),
    ("PATCH", "/api/v1/incidents/{}"),
    ("GET", "/api/v1/jobs/{}"),
    ("DELETE", "/api/v1/keys/{}"),
    ("GET", "/api/v1/assets/{}"),
    ("POST", "/api/v1/agents/{}/heartbeat"),
    ("POST", "/api/v1/logs/models/{}/activate"),
    ("POST", "/api/v1/network/models/{}/activate"),
    ("GET", "/console/{}"),
];

#[tokio::test]
async fn traversal_in_any_path_parameter_is_refused_cleanly() {
    let h = harness().await;
    let mut failures = Vec::new();
    let mut answered = 0;
    for (method, template) in ROUTES {
        for bad in HOSTILE {
            let uri = template.replace("{}", bad);
            let body = if *method == "PUT" {
                json!({"source": "fn analyze(e, c) { () }"}).to_string()
            } else {
                "{}".to_string()
            };
            let r = h.call(method, &uri, Some(&h.admin), body).await;
            answered += 1;
            let status = r.status;
            let leaked = r.text.contains("root:") || r.text.contains("[workspace]");
            let json_error = r.body["error"]["code"].is_string();
            let ok_status = matches!(
                status,
                StatusCode::BAD_REQUEST
                    | StatusCode::NOT_FOUND
                    | StatusCode::METHOD_NOT_ALLOWED
                    | StatusCode::SERVICE_UNAVAILABLE
            );
            let api = uri.starts_with("/api/");
            if leaked || !ok_status || (api && !json_error) {
                failures.push(format!("{method} {uri}: {status} {}", r.text));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {answered} answers were not clean refusals:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn stored_names_must_be_plain() {
    let h = harness().await;
    for name in ["../evil", "a/b", "..", "a\\b", "a\u{0}b", " x", "x.rhai"] {
        let r = h
            .call(
                "POST",
                "/api/v1/scripts",
                Some(&h.admin),
                json!({"name": name, "source": "fn analyze(e, c) { () }"}).to_string(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "script {name:?}: {}",
            r.text
        );
    }
    // The same names in a list's path never reach the store.
    for name in ["..%2Fevil", "a%2Fb", "a%5Cb"] {
        let r = h
            .call(
                "POST",
                &format!("/api/v1/lists/{name}"),
                Some(&h.admin),
                json!({"values": ["x"]}).to_string(),
            )
            .await;
        assert!(
            matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
            "list {name}: {} {}",
            r.status,
            r.text
        );
    }
    let lists = h
        .call("GET", "/api/v1/lists", Some(&h.admin), String::new())
        .await;
    assert!(!lists.text.contains("evil"), "{}", lists.text);
}
