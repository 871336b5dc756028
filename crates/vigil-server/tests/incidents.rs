//! Incidents end to end: findings of the pipeline correlated into incidents, the detail
//! with findings and timeline, analysts' changes, the WebSocket stream, restart.

mod common;

use axum::http::StatusCode;
use common::{Harness, error_code, harness};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use vigil_respond::{CorrelationConfig, IncidentService};

async fn with_incidents() -> (Harness, Arc<IncidentService>) {
    let mut h = harness().await;
    let service = IncidentService::start(CorrelationConfig::default(), h.state.store.clone(), None)
        .await
        .unwrap();
    let (tap, stored) = flume::bounded(8);
    h.state.pipeline.tap_stored_findings(tap);
    service.spawn(stored);
    h.state.incidents = Some(service.clone());
    (h, service)
}

async fn send(h: &Harness, events: &[Value]) {
    let body: String = events.iter().map(|e| e.to_string() + "\n").collect();
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

/// Polls the incident list until `ready` holds for it.
async fn incidents_when(h: &Harness, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..200 {
        let r = h
            .call("GET", "/api/v1/incidents", Some(&h.viewer), "")
            .await;
        found = r.body["incidents"].as_array().cloned().unwrap_or_default();
        if ready(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the incidents never got there: {found:?}");
}

/// Polls until the incidents hold `n` findings in all.
async fn incidents(h: &Harness, n: usize) -> Vec<Value> {
    incidents_when(h, |list| {
        list.iter()
            .map(|i| i["finding_ids"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
            >= n
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_become_incidents_that_analysts_work() {
    let (h, _service) = with_incidents().await;
    // A live subscriber.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = vigil_server::app(h.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut req = format!("ws://{addr}/api/v1/incidents/stream")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", h.viewer).parse().unwrap(),
    );
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Two findings on web-1, one on db-1, one below every rule's severity, one with no
    // entity.
    send(
        &h,
        &[
            json!({"message": "alert: web shell", "score": 80, "host.name": "web-1"}),
            json!({"message": "alert: odd child process", "score": 60, "host.name": "web-1"}),
            json!({"message": "alert: brute force", "score": 70, "host.name": "db-1"}),
            json!({"message": "alert: trivia", "score": 5, "host.name": "db-1"}),
            json!({"message": "alert: nowhere", "score": 90}),
        ],
    )
    .await;
    let list = incidents(&h, 3).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let web = list.iter().find(|i| i["entity"] == "host:web-1").unwrap();
    assert_eq!(web["finding_ids"].as_array().unwrap().len(), 2);
    assert_eq!(web["status"], "open");
    // Noisy-or of 80 and 60.
    assert!(
        (web["score"].as_f64().unwrap() - 92.0).abs() < 1e-6,
        "{web}"
    );
    let db = list.iter().find(|i| i["entity"] == "host:db-1").unwrap();
    assert_eq!(db["finding_ids"].as_array().unwrap().len(), 1, "{db}");

    // The stream announced both.
    let mut opened = Vec::new();
    while opened.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an incident event in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "opened" {
                opened.push(v["incident"]["entity"].as_str().unwrap().to_string());
            }
        }
    }
    opened.sort();
    assert_eq!(opened, ["host:db-1", "host:web-1"]);

    // Detail: findings and timeline.
    let id = web["id"].as_str().unwrap();
    let r = h
        .call(
            "GET",
            &format!("/api/v1/incidents/{id}"),
            Some(&h.viewer),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["findings"].as_array().unwrap().len(), 2);
    let kinds: Vec<&str> = r.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "finding").count(), 2);
    assert!(kinds.contains(&"opened"));

    // An analyst works it.
    let path = format!("/api/v1/incidents/{id}");
    let r = h
        .call(
            "PATCH",
            &path,
            Some(&h.admin),
            json!({"status": "acknowledged", "assignee": "alice", "note": "isolating <b>web-1</b>"})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "acknowledged");
    assert_eq!(r.body["assignee"], "alice");
    assert_eq!(r.body["notes"][0]["text"], "isolating <b>web-1</b>");
    assert!(
        r.body["notes"][0]["author"]
            .as_str()
            .unwrap()
            .starts_with("key:"),
        "signed by the caller's key: {}",
        r.text
    );
    // A viewer may not.
    let r = h
        .call("PATCH", &path, Some(&h.viewer), r#"{"status": "resolved"}"#)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // More findings about web-1 join the acknowledged incident; once resolved, the next
    // one opens a new incident.
    send(
        &h,
        &[json!({"message": "alert: beacon", "score": 50, "host.name": "web-1"})],
    )
    .await;
    let list = incidents(&h, 4).await;
    let web = list.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(web["finding_ids"].as_array().unwrap().len(), 3, "{web}");
    assert_eq!(
        web["assignee"], "alice",
        "new findings keep the analyst's changes"
    );
    let r = h
        .call("PATCH", &path, Some(&h.admin), r#"{"status": "resolved"}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    send(
        &h,
        &[json!({"message": "alert: again", "score": 50, "host.name": "web-1"})],
    )
    .await;
    let found = incidents_when(&h, |list| {
        list.iter().filter(|i| i["entity"] == "host:web-1").count() == 2
    })
    .await;
    let webs: Vec<&Value> = found
        .iter()
        .filter(|i| i["entity"] == "host:web-1")
        .collect();
    assert_eq!(webs.len(), 2, "{found:?}");
    assert!(webs.iter().any(|i| i["status"] == "resolved"));
    assert!(webs.iter().any(|i| i["status"] == "open"));

    // After a restart the correlator takes the open incidents back.
    let again = IncidentService::start(CorrelationConfig::default(), h.state.store.clone(), None)
        .await
        .unwrap();
    let open = webs.iter().find(|i| i["status"] == "open").unwrap();
    let mut f = vigil_core::Finding::new("test:alert", 50.0, "alert: later");
    f.host_name = Some("web-1".into());
    let mut rx = again.subscribe();
    again.correlate(&[f]).await;
    let event = rx.recv().await.unwrap();
    assert_eq!(event.incident.id, open["id"].as_str().unwrap());
}

#[tokio::test]
async fn bad_changes_get_clear_errors() {
    let (h, _service) = with_incidents().await;
    send(
        &h,
        &[json!({"message": "alert: x", "score": 80, "host.name": "web-1"})],
    )
    .await;
    let id = incidents(&h, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/incidents/{id}");
    let long = "x".repeat(300);
    let cases: Vec<(String, String, StatusCode, &str)> = vec![
        (
            path.clone(),
            "not json".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            path.clone(),
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            path.clone(),
            r#"{"status": "closed"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            path.clone(),
            r#"{"status": "open", "colour": "red"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            path.clone(),
            json!({ "assignee": long }).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            path.clone(),
            r#"{"note": "   "}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/api/v1/incidents/nope".into(),
            r#"{"status": "open"}"#.into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (path, body, status, code) in cases {
        let r = h.call("PATCH", &path, Some(&h.admin), body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(error_code(&r), code, "{body}");
    }
    // The stream wants a WebSocket; without correlation, changes answer 503.
    let r = h
        .call("GET", "/api/v1/incidents/stream", Some(&h.viewer), "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let plain = harness().await;
    let r = plain
        .call("PATCH", &path, Some(&plain.admin), r#"{"status": "open"}"#)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_reach_a_webhook_once_and_failures_end_as_dead_letters() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A receiver that refuses /gone and accepts /hook, counting what it accepted.
    let got = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post({
                let got = got.clone();
                move |body: axum::Json<Value>| async move {
                    got.lock().unwrap().push(body.0);
                    StatusCode::OK
                }
            }),
        )
        .route("/gone", axum::routing::post(|| async { StatusCode::GONE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut h = harness().await;
    let route = |name: &str, path: &str| vigil_respond::RouteConfig {
        name: name.into(),
        kind: vigil_respond::RouteKind::Webhook,
        url: format!("http://{addr}{path}"),
        email: None,
        topic: None,
        secret: Some("k".into()),
        headers: Default::default(),
        min_severity: vigil_core::Severity::High,
        analyzers: vec![],
        hosts: vec![],
        tags: vec![],
        timeout_secs: 2,
        max_attempts: 3,
        backoff_ms: 10,
        max_backoff_secs: 1,
        per_minute: 0,
    };
    let responders = Arc::new(
        vigil_respond::Responders::new(
            vigil_respond::RespondConfig {
                poll_ms: 20,
                // The receiver is on 127.0.0.1.
                allow_internal: true,
                routes: vec![route("soc", "/hook"), route("old", "/gone")],
                ..Default::default()
            },
            h.state.store.clone(),
        )
        .unwrap(),
    );
    let service = IncidentService::start(
        CorrelationConfig::default(),
        h.state.store.clone(),
        Some(responders.clone()),
    )
    .await
    .unwrap();
    let (tap, stored) = flume::bounded(8);
    h.state.pipeline.tap_stored_findings(tap);
    service.spawn(stored);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    responders.spawn(stop_rx);
    h.state.incidents = Some(service);

    // A medium finding opens an incident below the routes' severity; a high one on the
    // same host raises it, and only then is it delivered, once, however many findings join.
    send(
        &h,
        &[json!({"message": "alert: odd", "score": 50, "host.name": "web-1"})],
    )
    .await;
    incidents(&h, 1).await;
    send(
        &h,
        &[
            json!({"message": "alert: web shell", "score": 85, "host.name": "web-1"}),
            json!({"message": "alert: more", "score": 85, "host.name": "web-1"}),
        ],
    )
    .await;
    incidents(&h, 3).await;
    send(
        &h,
        &[json!({"message": "alert: again", "score": 90, "host.name": "web-1"})],
    )
    .await;
    incidents(&h, 4).await;
    let mut dead = Vec::new();
    for _ in 0..200 {
        let r = h
            .call("GET", "/api/v1/deliveries?state=dead", Some(&h.admin), "")
            .await;
        dead = r.body["deliveries"].as_array().cloned().unwrap_or_default();
        if !dead.is_empty() && !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered = got.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["incident"]["entity"], "host:web-1");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["route"], "old");
    assert_eq!(dead[0]["attempts"], 1, "a 410 is not retried");
    assert!(dead[0]["last_error"].as_str().unwrap().contains("410"));
    // Dead letters are for admins.
    let r = h
        .call("GET", "/api/v1/deliveries", Some(&h.viewer), "")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .call("GET", "/api/v1/deliveries?state=lost", Some(&h.admin), "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn findings_without_a_host_group_by_user_or_process_from_their_events() {
    let (h, _service) = with_incidents().await;
    send(
        &h,
        &[
            json!({"message": "alert: sudo abuse", "score": 60, "user": {"name": "alice"}}),
            json!({"message": "alert: odd login", "score": 60, "user": {"name": "alice"}}),
            json!({"message": "alert: packed binary", "score": 60,
                   "process": {"hash": {"sha256": "ab".repeat(32)}}}),
        ],
    )
    .await;
    let list = incidents(&h, 3).await;
    let mut entities: Vec<(String, usize)> = list
        .iter()
        .map(|i| {
            (
                i["entity"].as_str().unwrap().to_string(),
                i["finding_ids"].as_array().unwrap().len(),
            )
        })
        .collect();
    entities.sort();
    assert_eq!(
        entities,
        vec![
            (format!("process:{}", "ab".repeat(32)), 1),
            ("user:alice".to_string(), 2)
        ]
    );
}

#[tokio::test]
async fn findings_stored_but_not_correlated_before_a_crash_are_caught_up_once() {
    let (h, _service) = with_incidents().await;
    send(
        &h,
        &[
            json!({"message": "alert: one", "score": 60, "host.name": "web-1"}),
            json!({"message": "alert: two", "score": 60, "host.name": "db-1"}),
        ],
    )
    .await;
    incidents(&h, 2).await;
    // A finding stored just before a crash, never handed to the correlator.
    let mut late = vigil_core::Finding::new("test:alert", 70.0, "alert: late");
    late.host_name = Some("web-1".into());
    h.state
        .store
        .insert_findings(&[late.clone()])
        .await
        .unwrap();
    // The restart catches it up, into web-1's open incident, and nothing else twice.
    let _again = IncidentService::start(CorrelationConfig::default(), h.state.store.clone(), None)
        .await
        .unwrap();
    let list = incidents(&h, 3).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let web = list.iter().find(|i| i["entity"] == "host:web-1").unwrap();
    let ids: Vec<&str> = web["finding_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{web}");
    assert!(ids.contains(&late.id.as_str()));
    let db = list.iter().find(|i| i["entity"] == "host:db-1").unwrap();
    assert_eq!(db["finding_ids"].as_array().unwrap().len(), 1, "{db}");
    // A second restart finds nothing more to do.
    let _third = IncidentService::start(CorrelationConfig::default(), h.state.store.clone(), None)
        .await
        .unwrap();
    let list = incidents(&h, 3).await;
    let total: usize = list
        .iter()
        .map(|i| i["finding_ids"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 3);
}

#[tokio::test]
async fn incidents_at_or_above_the_severity_are_triaged_automatically() {
    let (h, service) = with_incidents().await;
    let triage = h.state.triage.clone().unwrap();
    triage.spawn_auto(service.subscribe()).unwrap();
    send(
        &h,
        &[
            json!({"message": "alert webshell upload to /upload/shell.jsp", "score": 90,
                   "host": {"name": "web-1"}, "source": {"ip": "203.0.113.7"}}),
            json!({"message": "alert minor policy note", "score": 30, "host": {"name": "lab-2"}}),
        ],
    )
    .await;
    let list = incidents(&h, 2).await;
    let high = list
        .iter()
        .find(|i| i["host.name"] == "web-1" || i["host_name"] == "web-1")
        .unwrap();
    let low = list
        .iter()
        .find(|i| i["host.name"] == "lab-2" || i["host_name"] == "lab-2")
        .unwrap();
    let high_id = high["id"].as_str().unwrap();
    let reports = h
        .poll_list(&format!("/api/v1/reports?incident_id={high_id}"), "reports")
        .await;
    assert_eq!(reports.len(), 1, "one report for the high incident");
    let id = reports[0]["id"].as_str().unwrap();
    let r = h
        .call("GET", &format!("/api/v1/reports/{id}"), Some(&h.viewer), "")
        .await;
    let report = &r.body["report"];
    assert_eq!(report["subject"]["incident_id"], high_id);
    assert_eq!(report["subject"]["host"], "web-1");
    assert!(
        report["subject"]["content"]
            .as_str()
            .unwrap()
            .contains("webshell upload")
    );
    // The medium-or-lower incident is not triaged.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let low_id = low["id"].as_str().unwrap();
    let r = h
        .call(
            "GET",
            &format!("/api/v1/reports?incident_id={low_id}"),
            Some(&h.viewer),
            "",
        )
        .await;
    assert_eq!(r.body["reports"].as_array().unwrap().len(), 0, "{}", r.text);
    // An incident can be triaged on demand, by a viewer; an agent key reads no incident
    // through triage (issue 22: it answered the incident JSON `GET` refuses).
    let body = serde_json::to_vec(&json!({"incident_id": low_id})).unwrap();
    let r = h
        .call("POST", "/api/v1/triage", Some(&h.agent), body.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(!r.text.contains("lab-2"), "{}", r.text);
    let r = h
        .call("POST", "/api/v1/triage", Some(&h.viewer), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
