//! Responders against real local HTTP receivers: payload shapes, signatures, retries that
//! end in one delivery, timeouts, refusals, dead letters, rate limits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use vigil_core::{Incident, IncidentStatus, Severity};
use vigil_respond::responders::signature;
use vigil_respond::{RespondConfig, Responders, RouteConfig, RouteKind};
use vigil_store::{DeliveryState, SqliteOptions, SqliteStore, Store};

/// What a receiver got, and what it answers next (per path; 200 when the script is empty;
/// a status of 0 means "hang for 3 s").
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(String, HeaderMap, Value)>>,
    script: Mutex<std::collections::HashMap<String, VecDeque<u16>>>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let next = r
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(200);
    if next == 0 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return StatusCode::OK;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push((path, headers, body));
    StatusCode::from_u16(next).unwrap()
}

async fn receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), r)
}

fn route(name: &str, kind: RouteKind, url: String) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        kind,
        url,
        email: None,
        topic: None,
        secret: None,
        headers: Default::default(),
        min_severity: Severity::Medium,
        analyzers: vec![],
        hosts: vec![],
        tags: vec![],
        timeout_secs: 1,
        max_attempts: 4,
        backoff_ms: 10,
        max_backoff_secs: 1,
        per_minute: 0,
    }
}

fn incident(severity: Severity, host: &str) -> Incident {
    let now = vigil_core::now_rfc3339();
    Incident {
        id: vigil_core::new_id(),
        title: "web shell on host web-1 <script>".into(),
        status: IncidentStatus::Open,
        severity,
        score: 91.5,
        entity: format!("host:{host}"),
        host_name: Some(host.into()),
        first_seen: now.clone(),
        last_seen: now.clone(),
        finding_ids: vec!["f1".into(), "f2".into()],
        techniques: vec!["T1505.003".into()],
        assignee: None,
        notes: vec![],
        created_at: now.clone(),
        updated_at: now,
    }
}

fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    (dir, store)
}

/// Runs passes until nothing is pending or `secs` pass.
async fn drain(r: &Responders, store: &Arc<dyn Store>, secs: u64) {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        r.run_once().await.unwrap();
        let pending = store
            .list_deliveries(Some(DeliveryState::Pending), 1000)
            .await
            .unwrap();
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn slack_webhook_and_shuffle_get_what_they_expect_once() {
    let (_dir, store) = store();
    let (base, rx) = receiver().await;
    let mut hook = route("hook", RouteKind::Webhook, format!("{base}/hook"));
    hook.secret = Some("s3cret-key".into());
    hook.headers.insert("X-Team".into(), "soc".into());
    let mut shuffle = route(
        "shuffle",
        RouteKind::Shuffle,
        format!("{base}/api/v1/workflows/abc/execute"),
    );
    shuffle.secret = Some("shuffle-api-key".into());
    let mut quiet = route("critical-only", RouteKind::Slack, format!("{base}/quiet"));
    quiet.min_severity = Severity::Critical;
    let r = Responders::new(
        RespondConfig {
            public_url: "https://vigil.example.org/".into(),
            poll_ms: 10,
            // The receivers are on 127.0.0.1.
            allow_internal: true,
            internal_allow: vec![],
            routes: vec![
                route("slack", RouteKind::Slack, format!("{base}/slack")),
                hook,
                shuffle,
                quiet,
            ],
        },
        store.clone(),
    )
    .unwrap();
    let inc = incident(Severity::High, "web-1");
    assert_eq!(r.incident_changed(&inc, &["logs".into()]).await.unwrap(), 3);
    // The same incident changing again queues nothing new.
    assert_eq!(r.incident_changed(&inc, &["logs".into()]).await.unwrap(), 0);
    drain(&r, &store, 10).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    let find = |p: &str| got.iter().find(|(path, _, _)| path.contains(p)).unwrap();

    let (_, _, slack) = find("slack");
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "[HIGH] web shell on host web-1 <script>"
    );
    let fields = slack["blocks"][1]["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["text"] == "*Entity*\nhost:web-1"));
    let button = &slack["blocks"].as_array().unwrap().last().unwrap()["elements"][0];
    assert_eq!(
        button["url"],
        format!("https://vigil.example.org/api/v1/incidents/{}", inc.id)
    );
    assert!(slack["text"].as_str().unwrap().contains("web shell"));

    let (_, headers, hook_body) = find("hook");
    assert_eq!(hook_body["incident"]["id"], inc.id);
    assert_eq!(headers["x-team"], "soc");
    let ts: i64 = headers["x-vigil-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let raw = serde_json::to_vec(hook_body).unwrap();
    assert_eq!(
        headers["x-vigil-signature"].to_str().unwrap(),
        signature("s3cret-key", ts, &raw),
        "the signature covers the timestamp and the body as sent"
    );
    assert_eq!(
        headers["x-vigil-delivery"].to_str().unwrap(),
        hook_body["delivery_id"].as_str().unwrap()
    );

    let (_, headers, shuffle_body) = find("execute");
    assert_eq!(headers["authorization"], "Bearer shuffle-api-key");
    let arg: Value =
        serde_json::from_str(shuffle_body["execution_argument"].as_str().unwrap()).unwrap();
    assert_eq!(arg["incident"]["id"], inc.id);
    assert_eq!(arg["source"], "vigil");

    let all = store.list_deliveries(None, 100).await.unwrap();
    assert!(
        all.iter()
            .all(|d| d.state == DeliveryState::Delivered && d.attempts == 1)
    );
}

#[tokio::test]
async fn failures_retry_then_deliver_once_or_end_as_dead_letters() {
    let (_dir, store) = store();
    let (base, rx) = receiver().await;
    // flaky: 500, 503, a timeout, then 200. refused: 400. down: always 502.
    rx.script
        .lock()
        .unwrap()
        .insert("flaky".into(), VecDeque::from([500, 503, 0]));
    rx.script
        .lock()
        .unwrap()
        .insert("refused".into(), VecDeque::from([400]));
    rx.script
        .lock()
        .unwrap()
        .insert("down".into(), VecDeque::from([502; 10]));
    let r = Responders::new(
        RespondConfig {
            routes: vec![
                route("flaky", RouteKind::Slack, format!("{base}/flaky")),
                route("refused", RouteKind::Slack, format!("{base}/refused")),
                route("down", RouteKind::Slack, format!("{base}/down")),
            ],
            allow_internal: true,
            ..Default::default()
        },
        store.clone(),
    )
    .unwrap();
    r.incident_changed(&incident(Severity::High, "db-1"), &[])
        .await
        .unwrap();
    drain(&r, &store, 20).await;
    let all = store.list_deliveries(None, 100).await.unwrap();
    let by = |name: &str| all.iter().find(|d| d.route == name).unwrap();
    assert_eq!(by("flaky").state, DeliveryState::Delivered);
    assert_eq!(by("flaky").attempts, 4);
    let got = rx.got.lock().unwrap().clone();
    let accepted = got.iter().filter(|(p, _, _)| p == "flaky").count();
    // Two refused with 5xx, one timed out (not recorded), one accepted.
    assert_eq!(accepted, 3, "{got:?}");
    assert_eq!(by("refused").state, DeliveryState::Dead);
    assert_eq!(by("refused").attempts, 1, "a 400 is not retried");
    assert_eq!(by("down").state, DeliveryState::Dead);
    assert_eq!(by("down").attempts, 4);
    assert!(
        by("down").last_error.as_deref().unwrap().contains("502"),
        "{:?}",
        by("down")
    );
    let dead = store
        .list_deliveries(Some(DeliveryState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
}

#[tokio::test]
async fn routes_rate_limit_and_filter() {
    let (_dir, store) = store();
    let (base, rx) = receiver().await;
    let mut limited = route("limited", RouteKind::Slack, format!("{base}/limited"));
    limited.per_minute = 2;
    let mut dbs = route("dbs", RouteKind::Slack, format!("{base}/dbs"));
    dbs.hosts = vec!["db-*".into()];
    dbs.analyzers = vec!["logs".into()];
    let r = Responders::new(
        RespondConfig {
            routes: vec![limited, dbs],
            allow_internal: true,
            ..Default::default()
        },
        store.clone(),
    )
    .unwrap();
    for host in ["db-1", "db-2", "web-1", "web-2"] {
        r.incident_changed(&incident(Severity::High, host), &["logs".into()])
            .await
            .unwrap();
    }
    // Low severity and wrong analyzer go nowhere.
    assert_eq!(
        r.incident_changed(&incident(Severity::Low, "db-3"), &["logs".into()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        r.incident_changed(&incident(Severity::High, "db-4"), &["network".into()])
            .await
            .unwrap(),
        1,
        "only the unfiltered route"
    );
    for _ in 0..5 {
        r.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.iter().filter(|(p, _, _)| p == "dbs").count(), 2);
    assert_eq!(
        got.iter().filter(|(p, _, _)| p == "limited").count(),
        2,
        "two a minute"
    );
    let pending = store
        .list_deliveries(Some(DeliveryState::Pending), 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        pending
            .iter()
            .all(|d| d.next_at_ms > now + 30_000 && d.attempts == 0)
    );
}

#[test]
fn bad_routes_are_refused_with_their_name() {
    let (_dir, store) = store();
    let cases = [
        route("x", RouteKind::Webhook, "http://127.0.0.1:9/".into()),
        route("y", RouteKind::Slack, "ftp://example.org/".into()),
        route("z", RouteKind::Slack, "not a url".into()),
        route("w", RouteKind::Slack, "env:VIGIL_TEST_SURELY_UNSET".into()),
    ];
    for c in cases {
        let name = c.name.clone();
        let err = Responders::new(
            RespondConfig {
                routes: vec![c],
                ..Default::default()
            },
            store.clone(),
        )
        .err()
        .unwrap();
        assert_eq!(err.route, name, "{err}");
    }
    let twice = route("a", RouteKind::Slack, "http://127.0.0.1:9/".into());
    assert!(
        Responders::new(
            RespondConfig {
                routes: vec![twice.clone(), twice],
                ..Default::default()
            },
            store
        )
        .is_err()
    );
}

#[tokio::test]
async fn routes_by_agent_tags() {
    let (_dir, store) = store();
    store
        .register_agent(&vigil_store::AgentRegistration {
            id: "a1".into(),
            hostname: "pay-1".into(),
            os: None,
            version: None,
            tags: vec!["pci".into(), "linux".into()],
        })
        .await
        .unwrap();
    let (base, _rx) = receiver().await;
    let mut pci = route("pci", RouteKind::Slack, format!("{base}/pci"));
    pci.tags = vec!["pci".into()];
    let r = Responders::new(
        RespondConfig {
            routes: vec![pci],
            allow_internal: true,
            ..Default::default()
        },
        store.clone(),
    )
    .unwrap();
    assert_eq!(
        r.incident_changed(&incident(Severity::High, "pay-1"), &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        r.incident_changed(&incident(Severity::High, "web-1"), &[])
            .await
            .unwrap(),
        0,
        "a host without the tag"
    );
}

/// A published message: topic, key, headers, payload.
type Published = (String, String, Vec<(String, String)>, Value);

/// A log that fails as scripted (true: retryable), then accepts; records what it accepted.
#[derive(Default)]
struct FakeLog {
    script: Mutex<VecDeque<Option<bool>>>,
    got: Mutex<Vec<Published>>,
}

#[async_trait::async_trait]
impl vigil_respond::Publisher for FakeLog {
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), vigil_respond::PublishError> {
        if let Some(Some(retryable)) = self.script.lock().unwrap().pop_front() {
            return Err(vigil_respond::PublishError {
                retryable,
                message: format!("scripted failure (retryable: {retryable})"),
            });
        }
        self.got.lock().unwrap().push((
            topic.into(),
            key.into(),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            serde_json::from_slice(payload).unwrap(),
        ));
        Ok(())
    }
}

#[tokio::test]
async fn kafka_routes_publish_keyed_by_host_once_or_dead_letter() {
    let (_dir, store) = store();
    let log = Arc::new(FakeLog::default());
    log.script
        .lock()
        .unwrap()
        .extend([Some(true), Some(true), None, Some(false)]);
    let kafka = |name: &str, topic: &str| RouteConfig {
        topic: Some(topic.into()),
        ..route(name, RouteKind::Kafka, String::new())
    };
    let r = Responders::with_publisher(
        RespondConfig {
            routes: vec![kafka("alerts", "vigil-incidents")],
            ..Default::default()
        },
        store.clone(),
        Some(log.clone() as Arc<dyn vigil_respond::Publisher>),
    )
    .unwrap();
    let first = incident(Severity::High, "web-1");
    r.incident_changed(&first, &[]).await.unwrap();
    drain(&r, &store, 10).await;
    let got = log.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "two retryable failures, then one delivery");
    let (topic, key, headers, body) = &got[0];
    assert_eq!(topic, "vigil-incidents");
    assert_eq!(key, "web-1");
    assert_eq!(body["incident"]["id"], first.id.as_str());
    let delivery = &store.list_deliveries(None, 10).await.unwrap()[0];
    assert!(headers.contains(&("vigil-delivery-id".into(), delivery.id.clone())));
    assert_eq!(delivery.attempts, 3);
    // A refusal (not retryable) ends as a dead letter at once.
    r.incident_changed(&incident(Severity::High, "db-1"), &[])
        .await
        .unwrap();
    drain(&r, &store, 5).await;
    let dead = store
        .list_deliveries(Some(DeliveryState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1);

    // Without brokers, or without a topic, the route is refused at start.
    let e = Responders::new(
        RespondConfig {
            routes: vec![kafka("alerts", "t")],
            ..Default::default()
        },
        store.clone(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("[kafka] brokers"), "{e}");
    let e = Responders::with_publisher(
        RespondConfig {
            routes: vec![route("alerts", RouteKind::Kafka, String::new())],
            ..Default::default()
        },
        store,
        Some(log as Arc<dyn vigil_respond::Publisher>),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("topic"), "{e}");
}
