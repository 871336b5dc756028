//! The REST API through `oneshot`: round trips, bad input, auth matrix, OpenAPI coverage.

mod common;

use axum::http::StatusCode;
use common::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use vigil_pipeline::PipelineConfig;
use vigil_server::{AuthConfig, ServerConfig};

fn jwt(role: &str, exp_offset: i64, secret: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_offset;
    encode(
        &Header::default(),
        &json!({"sub": "alice", "role": role, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn event_round_trip_filters_and_pagination() {
    let h = harness().await;
    let r = h
        .call("POST", "/api/v1/events", Some(&h.agent),
              json!({"host.name": "web-1", "event.category": "process", "process.pid": 7, "custom": {"x": 1}}).to_string())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["accepted"], 1);
    let id = r.body["ids"][0].as_str().unwrap().to_string();

    let r = h
        .call("GET", &format!("/api/v1/events/{id}"), Some(&h.viewer), "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["host"]["name"], "web-1");
    assert_eq!(r.body["custom"]["x"], 1, "custom fields survive");
    assert_eq!(r.body["event"]["id"], id.as_str());

    let lines: String = (0..25)
        .map(|i| json!({"host.name": if i % 2 == 0 {"a"} else {"b"}, "event.category": "network", "n": i}).to_string() + "\n")
        .collect();
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), lines)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["accepted"], 25);
    assert_eq!(r.body["rejected"], 0);

    let mut seen = 0;
    let mut uri = "/api/v1/events?host.name=a&event.category=network&limit=5".to_string();
    loop {
        let r = h.call("GET", &uri, Some(&h.viewer), "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let events = r.body["events"].as_array().unwrap();
        assert!(events.iter().all(|e| e["host"]["name"] == "a"));
        seen += events.len();
        match r.body["next"].as_str() {
            Some(next) => {
                uri =
                    format!("/api/v1/events?host.name=a&event.category=network&limit=5&next={next}")
            }
            None => break,
        }
    }
    assert_eq!(seen, 13);
}

#[tokio::test]
async fn idempotent_retry_with_client_event_id() {
    let h = harness().await;
    let body = json!({"event": {"id": "agent7-000042"}, "message": "x"}).to_string();
    let r1 = h
        .call("POST", "/api/v1/events", Some(&h.agent), body.clone())
        .await;
    let r2 = h.call("POST", "/api/v1/events", Some(&h.agent), body).await;
    assert_eq!(
        (r1.body["duplicates"].clone(), r2.body["duplicates"].clone()),
        (json!(0), json!(1))
    );
    let r = h.call("GET", "/api/v1/events", Some(&h.viewer), "").await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
}

/// (method, uri, token, body, status, error code, error field)
type BadCase<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    String,
    StatusCode,
    &'a str,
    Option<&'a str>,
);

#[tokio::test]
async fn bad_input_gets_clear_json_errors() {
    let h = harness_with(
        ServerConfig {
            max_event_bytes: 1024,
            max_bulk_bytes: 4096,
            max_bulk_events: 10,
            ..Default::default()
        },
        PipelineConfig::default(),
        AuthConfig::default(),
    )
    .await;
    let a = Some(h.agent.as_str());
    let v = Some(h.viewer.as_str());
    let cases: Vec<BadCase> = vec![
        (
            "POST",
            "/api/v1/events",
            a,
            "{\"host\": ".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            "POST",
            "/api/v1/events",
            a,
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            None,
        ),
        (
            "POST",
            "/api/v1/events",
            a,
            json!({"process": {"pid": "12"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("process.pid"),
        ),
        (
            "POST",
            "/api/v1/events",
            a,
            json!({"@timestamp": "yesterday"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("@timestamp"),
        ),
        (
            "POST",
            "/api/v1/events",
            a,
            json!({"destination.ip": "1.2.3"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("destination.ip"),
        ),
        (
            "POST",
            "/api/v1/events",
            a,
            "".into(),
            StatusCode::BAD_REQUEST,
            "empty_body",
            None,
        ),
        (
            "POST",
            "/api/v1/events",
            a,
            format!("{{\"message\": \"{}\"}}", "x".repeat(2000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (
            "POST",
            "/api/v1/events/bulk",
            a,
            "\n \n".into(),
            StatusCode::BAD_REQUEST,
            "empty_bulk",
            None,
        ),
        (
            "POST",
            "/api/v1/events/bulk",
            a,
            "{}\n".repeat(11),
            StatusCode::BAD_REQUEST,
            "too_many_events",
            None,
        ),
        (
            "POST",
            "/api/v1/events/bulk",
            a,
            "{}\n".repeat(2000),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (
            "POST",
            "/api/v1/events/bulk",
            a,
            "nope\n[]\n".into(),
            StatusCode::BAD_REQUEST,
            "invalid_bulk",
            None,
        ),
        (
            "GET",
            "/api/v1/events?since=monday",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("since"),
        ),
        (
            "GET",
            "/api/v1/events?limit=0",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("limit"),
        ),
        (
            "GET",
            "/api/v1/events?limit=many",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "GET",
            "/api/v1/events?hostname=a",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "GET",
            "/api/v1/events?next=garbage",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("next"),
        ),
        (
            "GET",
            "/api/v1/findings?severity=severe",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("severity"),
        ),
        (
            "GET",
            "/api/v1/incidents?status=closed",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("status"),
        ),
        (
            "GET",
            "/api/v1/events/nope",
            v,
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "GET",
            "/api/v1/findings/nope",
            v,
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "GET",
            "/api/v1/incidents/nope",
            v,
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "GET",
            "/api/v1/nothing-here",
            v,
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "PUT",
            "/api/v1/events",
            a,
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        ),
        (
            "GET",
            "/api/v1/stream",
            v,
            String::new(),
            StatusCode::BAD_REQUEST,
            "websocket_required",
            None,
        ),
    ];
    for (method, uri, token, body, status, code, field) in cases {
        let r = h.call(method, uri, token, body).await;
        assert_eq!(r.status, status, "{method} {uri}: {}", r.text);
        assert_eq!(error_code(&r), code, "{method} {uri}: {}", r.text);
        assert_eq!(
            r.body["error"]["field"].as_str(),
            field,
            "{method} {uri}: {}",
            r.text
        );
    }
    // Nothing of the refused requests was stored.
    let r = h.call("GET", "/api/v1/events", v, "").await;
    assert_eq!(r.body["events"], json!([]));
}

#[tokio::test]
async fn bulk_reports_bad_lines_by_number_and_keeps_good_ones() {
    let h = harness().await;
    let body = "{\"message\": \"one\"}\r\nnot json\n\n{\"source\": {\"port\": -1}}\n{\"message\": \"two\"}";
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["rejected"], 2);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["code"], "invalid_json");
    assert_eq!(errors[1]["line"], 4);
    assert_eq!(errors[1]["field"], "source.port");
    let r = h.call("GET", "/api/v1/events", Some(&h.viewer), "").await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn auth_matrix() {
    let h = harness().await;
    let event = json!({"message": "m"}).to_string();
    let viewer_jwt = jwt("viewer", 600, JWT_SECRET);
    let agent_jwt = jwt("agent", 600, JWT_SECRET);
    let expired = jwt("admin", -3600, JWT_SECRET);
    let forged = jwt("admin", 600, "another-secret-another-secret-another-secret");
    let bad_role = jwt("root", 600, JWT_SECRET);

    // (method, uri, token, expected status)
    let cases: Vec<(&str, &str, Option<&str>, StatusCode)> = vec![
        ("GET", "/api/v1/health", None, StatusCode::OK),
        ("GET", "/metrics", None, StatusCode::OK),
        ("GET", "/docs", None, StatusCode::OK),
        ("GET", "/api/v1/events", None, StatusCode::UNAUTHORIZED),
        ("POST", "/api/v1/events", None, StatusCode::UNAUTHORIZED),
        (
            "GET",
            "/api/v1/openapi.json",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        ("GET", "/api/v1/stream", None, StatusCode::UNAUTHORIZED),
        ("GET", "/api/v1/keys", None, StatusCode::UNAUTHORIZED),
        (
            "GET",
            "/api/v1/events",
            Some("vgl_doesnotexist"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "GET",
            "/api/v1/events",
            Some("not-a-jwt"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "GET",
            "/api/v1/events",
            Some(&expired),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "GET",
            "/api/v1/events",
            Some(&forged),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "GET",
            "/api/v1/events",
            Some(&bad_role),
            StatusCode::UNAUTHORIZED,
        ),
        ("GET", "/api/v1/events", Some(&h.viewer), StatusCode::OK),
        ("GET", "/api/v1/events", Some(&viewer_jwt), StatusCode::OK),
        (
            "GET",
            "/api/v1/events",
            Some(&h.agent),
            StatusCode::FORBIDDEN,
        ),
        ("GET", "/api/v1/events", Some(&h.admin), StatusCode::OK),
        (
            "POST",
            "/api/v1/events",
            Some(&h.viewer),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/events",
            Some(&viewer_jwt),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/events",
            Some(&h.agent),
            StatusCode::ACCEPTED,
        ),
        (
            "POST",
            "/api/v1/events",
            Some(&agent_jwt),
            StatusCode::ACCEPTED,
        ),
        (
            "POST",
            "/api/v1/events",
            Some(&h.admin),
            StatusCode::ACCEPTED,
        ),
        (
            "GET",
            "/api/v1/keys",
            Some(&h.viewer),
            StatusCode::FORBIDDEN,
        ),
        ("GET", "/api/v1/keys", Some(&h.agent), StatusCode::FORBIDDEN),
        ("GET", "/api/v1/keys", Some(&h.admin), StatusCode::OK),
        (
            "GET",
            "/api/v1/openapi.json",
            Some(&h.viewer),
            StatusCode::OK,
        ),
    ];
    for (method, uri, token, status) in cases {
        let r = h.call(method, uri, token, event.clone()).await;
        assert_eq!(
            r.status, status,
            "{method} {uri} with {token:?}: {}",
            r.text
        );
        match status {
            StatusCode::UNAUTHORIZED => {
                assert_eq!(error_code(&r), "unauthorized");
                assert!(r.headers.contains_key("www-authenticate"));
            }
            StatusCode::FORBIDDEN => assert_eq!(error_code(&r), "forbidden"),
            _ => {}
        }
    }
    let r = h.call("GET", "/api/v1/events", Some(&expired), "").await;
    assert_eq!(r.body["error"]["message"], "token expired");

    // Malformed Authorization headers.
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    "] {
        let req = axum::http::Request::builder()
            .uri("/api/v1/events")
            .header("authorization", header)
            .body(axum::body::Body::empty())
            .unwrap();
        use tower::ServiceExt;
        let resp = vigil_server::app(h.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
}

#[tokio::test]
async fn auth_can_be_turned_off_explicitly() {
    let h = harness_with(
        ServerConfig::default(),
        PipelineConfig::default(),
        AuthConfig {
            enabled: false,
            ..Default::default()
        },
    )
    .await;
    let r = h.call("GET", "/api/v1/keys", None, "").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn api_keys_are_created_listed_without_secrets_and_revoked() {
    let h = harness().await;
    let r = h
        .call(
            "POST",
            "/api/v1/keys",
            Some(&h.admin),
            json!({"name": "edr-fleet", "role": "agent"}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("vgl_"));
    assert!(r.body.get("key_hash").is_none());

    let r = h.call("POST", "/api/v1/events", Some(&key), "{}").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    let r = h.call("GET", "/api/v1/keys", Some(&h.admin), "").await;
    assert!(!r.text.contains(&key), "a listing must never show a key");
    assert!(!r.text.contains("key_hash"));
    assert_eq!(r.body["keys"].as_array().unwrap().len(), 4);

    let r = h
        .call("DELETE", &format!("/api/v1/keys/{id}"), Some(&h.admin), "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h.call("POST", "/api/v1/events", Some(&key), "{}").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .call("DELETE", &format!("/api/v1/keys/{id}"), Some(&h.admin), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for (body, field_hint) in [
        (json!({"name": "x", "role": "root"}).to_string(), "role"),
        (json!({"name": "", "role": "agent"}).to_string(), "name"),
        (json!({"role": "agent"}).to_string(), "name"),
        ("{".to_string(), ""),
    ] {
        let r = h
            .call("POST", "/api/v1/keys", Some(&h.admin), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field_hint),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn overload_maps_to_429_with_retry_after() {
    use axum::response::IntoResponse;
    let resp = vigil_server::AppError::from(vigil_pipeline::IngestError::Overloaded {
        queued: 10,
        retry_after_secs: 1,
    })
    .into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
}

#[tokio::test]
async fn openapi_describes_exactly_the_served_routes() {
    let doc: Value = serde_json::from_str(vigil_server::OPENAPI_JSON).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    let mut served: Vec<(String, String)> = vigil_server::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);

    // And every documented route answers something other than 404/405.
    let h = harness().await;
    for (method, path) in &served {
        let uri = path.replace("{id}", "x");
        let r = h
            .call(&method.to_uppercase(), &uri, Some(&h.admin), "{}")
            .await;
        assert!(
            r.status != StatusCode::METHOD_NOT_ALLOWED
                && !(r.status == StatusCode::NOT_FOUND && r.text.contains("no route")),
            "{method} {path} is documented but not served: {} {}",
            r.status,
            r.text
        );
    }
}

#[tokio::test]
async fn metrics_endpoint_renders_prometheus_text() {
    let mut h = harness().await;
    let recorder = vigil_server::telemetry::builder().unwrap().build_recorder();
    h.state.metrics = Some(recorder.handle());
    let r = h.call("GET", "/metrics", None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn rs256_tokens_from_a_public_key_file() {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public_file = dir.path().join("jwt.pub.pem");
    std::fs::write(&public_file, public_pem).unwrap();

    let h = harness_with(
        ServerConfig::default(),
        PipelineConfig::default(),
        AuthConfig {
            jwt_rs256_public_key_file: Some(public_file.clone()),
            jwt_issuer: Some("https://idp.example".into()),
            ..Default::default()
        },
    )
    .await;
    let sign = |claims: Value| {
        encode(
            &Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let exp = chrono::Utc::now().timestamp() + 600;
    let good =
        sign(json!({"sub": "svc", "role": "viewer", "exp": exp, "iss": "https://idp.example"}));
    let wrong_iss =
        sign(json!({"sub": "svc", "role": "viewer", "exp": exp, "iss": "https://evil.example"}));
    let no_exp = sign(json!({"sub": "svc", "role": "viewer", "iss": "https://idp.example"}));
    let hs_forgery = jwt("admin", 600, JWT_SECRET);

    let r = h.call("GET", "/api/v1/events", Some(&good), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (token, why) in [
        (&wrong_iss, "wrong issuer"),
        (&no_exp, "missing claim `exp`"),
        (&hs_forgery, "invalid token"),
    ] {
        let r = h.call("GET", "/api/v1/events", Some(token), "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}: {}", r.text);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(why),
            "{}",
            r.text
        );
    }

    // Unusable settings are refused at start, naming the setting.
    let store: std::sync::Arc<dyn vigil_store::Store> = h.state.store.clone();
    let bad = |c: AuthConfig| {
        vigil_server::Authenticator::new(&c, store.clone())
            .err()
            .unwrap()
            .to_string()
    };
    let missing = bad(AuthConfig {
        jwt_rs256_public_key_file: Some(dir.path().join("nope.pem")),
        ..Default::default()
    });
    assert!(
        missing.contains("cannot read auth.jwt_rs256_public_key_file"),
        "{missing}"
    );
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    let junk = bad(AuthConfig {
        jwt_rs256_public_key_file: Some(dir.path().join("junk.pem")),
        ..Default::default()
    });
    assert!(junk.contains("not a PEM RSA public key"), "{junk}");
    let weak = bad(AuthConfig {
        jwt_hs256_secret: Some("short".into()),
        ..Default::default()
    });
    assert!(weak.contains("at least 32 bytes"), "{weak}");
}
