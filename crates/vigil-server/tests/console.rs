//! The web console's server side: its files and their security headers, `GET /api/v1/me`,
//! `GET /api/v1/activity`, `POST /api/v1/scripts/trial` and triage reports as safe HTML.
//! The console itself is driven in a real browser by `crates/vigil/tests/console.rs`.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn console_files_answer_without_a_credential_with_a_strict_policy() {
    let h = harness().await;
    for (path, ct) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/pages.js", "text/javascript"),
        ("/console/ui.js", "text/javascript"),
        ("/console/style.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let r = h.call("GET", path, None, "").await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let h_ = |n: &str| r.headers[n].to_str().unwrap().to_string();
        assert!(
            h_("content-type").starts_with(ct),
            "{path}: {}",
            h_("content-type")
        );
        let csp = h_("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h_("x-content-type-options"), "nosniff");
        assert_eq!(h_("x-frame-options"), "DENY");
    }
    // The page carries no data and no inline script.
    let r = h.call("GET", "/", None, "").await;
    assert!(
        r.text
            .contains(r#"<script type="module" src="/console/app.js">"#)
    );
    assert!(!r.text.contains("<script>"));
    // Unknown files and path tricks are plain 404s.
    for path in [
        "/console/nope.js",
        "/console/..%2Fsrc%2Flib.rs",
        "/console/../Cargo.toml",
    ] {
        let r = h.call("GET", path, None, "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn me_names_the_credential_and_its_role() {
    let h = harness().await;
    for (key, role) in [
        (&h.admin, "admin"),
        (&h.agent, "agent"),
        (&h.viewer, "viewer"),
    ] {
        let r = h.call("GET", "/api/v1/me", Some(key), "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["role"], role);
        assert!(r.body["subject"].as_str().unwrap().starts_with("key:"));
        assert_eq!(r.body["auth_enabled"], true);
    }
    let r = h.call("GET", "/api/v1/me", None, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .call("GET", "/api/v1/me", Some("vgl_not_a_real_key"), "")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn activity_counts_ingested_events_and_findings() {
    let h = harness_scripts(Default::default()).await;
    let script = json!({"name": "enc", "categories": ["process"], "source":
        "fn analyze(event, config) { let c = event[\"process.command_line\"]; \
         if c != () && c.contains(\"-enc\") { return #{score: 95, summary: \"enc\"}; } () }"});
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            script.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let since = "2026-03-14T10:00:00Z";
    let mut lines = String::new();
    for (i, minute) in [0, 0, 1, 3].iter().enumerate() {
        lines += &json!({
            "@timestamp": format!("2026-03-14T10:0{minute}:30Z"),
            "event": {"id": format!("a-{i}"), "category": ["process"]},
            "host": {"name": "ws-1"},
            "process": {"command_line": if i == 0 { "powershell -enc AAAA" } else { "notepad" }},
        })
        .to_string();
        lines.push('\n');
    }
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), lines)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let findings = h
        .poll_list("/api/v1/findings?analyzer=script:enc", "findings")
        .await;
    assert_eq!(findings.len(), 1);

    let r = h
        .call(
            "GET",
            &format!("/api/v1/activity?since={since}&until=2026-03-14T10:04:00Z&bucket=60"),
            Some(&h.viewer),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["bucket_secs"], 60);
    let events: Vec<u64> = r.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["events"].as_u64().unwrap())
        .collect();
    assert_eq!(events, [2, 1, 0, 1]);
    assert_eq!(r.body["buckets"][0]["start"], "2026-03-14T10:00:00Z");

    // The finding is stamped when it was made (now): count it over the last hour.
    let r = h
        .call("GET", "/api/v1/activity?bucket=3600", Some(&h.viewer), "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let total: u64 = r.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["findings"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1, "{}", r.text);
    let by: Value = r.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["findings"] == 1)
        .unwrap()
        .clone();
    assert_eq!(by["by_severity"]["critical"], 1);
    assert_eq!(by["by_analyzer"]["script:enc"], 1);

    for (q, field) in [
        ("bucket=0", "bucket"),
        (
            "since=2026-03-14T10:00:00Z&until=2026-03-15T10:00:00Z&bucket=1",
            "bucket",
        ),
        (
            "since=2026-03-14T10:00:00Z&until=2026-03-14T09:00:00Z",
            "since",
        ),
        ("since=yesterday", "since"),
    ] {
        let r = h
            .call("GET", &format!("/api/v1/activity?{q}"), Some(&h.viewer), "")
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{q}: {}", r.text);
    }
    let r = h.call("GET", "/api/v1/activity", Some(&h.agent), "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn trial_runs_a_draft_once_and_reports_compile_errors_at_their_line() {
    let h = harness_scripts(Default::default()).await;
    let event = json!({"event": {"category": ["process"]}, "host": {"name": "ws-1"},
        "process": {"command_line": "powershell -enc AAAA"}});
    let good = "fn analyze(event, config) {\n  let c = event[\"process.command_line\"];\n  \
                if c.contains(\"-enc\") { return #{score: 80, summary: \"enc\"}; }\n  ()\n}\n";
    let r = h
        .call(
            "POST",
            "/api/v1/scripts/trial",
            Some(&h.admin),
            json!({"script": {"name": "draft", "categories": ["network"], "source": good}, "event": event})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["results"]["draft"]["score"], 80);
    assert_eq!(r.body["findings"][0]["analyzer"], "script:draft");
    // Its categories do not cover a process event: run anyway, and said so.
    assert_eq!(r.body["matches"], false);
    // Nothing was stored or loaded.
    let r = h.call("GET", "/api/v1/scripts", Some(&h.viewer), "").await;
    assert_eq!(r.body["scripts"].as_array().unwrap().len(), 0);
    let r = h.call("GET", "/api/v1/findings", Some(&h.viewer), "").await;
    assert_eq!(r.body["findings"].as_array().unwrap().len(), 0);

    let bad = "fn analyze(event, config) {\n  let c = 1;\n  let x = ;\n  ()\n}\n";
    let r = h
        .call(
            "POST",
            "/api/v1/scripts/trial",
            Some(&h.admin),
            json!({"script": {"source": bad}, "event": event}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "invalid_script");
    assert_eq!(r.body["error"]["line"], 3, "{}", r.text);

    // A run-time error is a result, not a failure of the request.
    let throws = "fn analyze(event, config) { throw \"boom\"; }";
    let r = h
        .call(
            "POST",
            "/api/v1/scripts/trial",
            Some(&h.admin),
            json!({"script": {"source": throws}, "event": event}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["errors"]["trial"]["message"]
            .as_str()
            .unwrap()
            .contains("boom")
    );

    for (body, code) in [
        (
            json!({"script": {"source": good}}).to_string(),
            "invalid_field",
        ),
        (
            json!({"script": {"source": good}, "event": "x"}).to_string(),
            "invalid_event",
        ),
        ("{".to_string(), "invalid_json"),
        (
            json!({"script": {"source": good, "name": "Bad Name"}, "event": event}).to_string(),
            "invalid_field",
        ),
    ] {
        let r = h
            .call(
                "POST",
                "/api/v1/scripts/trial",
                Some(&h.admin),
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["code"], code, "{body}: {}", r.text);
    }
    let r = h
        .call(
            "POST",
            "/api/v1/scripts/trial",
            Some(&h.viewer),
            json!({"script": {"source": good}, "event": event}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
