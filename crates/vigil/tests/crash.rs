//! Crash safety of the real `vigil serve` (issue 12): SIGKILL during log-model retraining
//! leaves no torn model file and no model that cannot be loaded, and SIGKILL during
//! incident delivery loses no incident and sends each one under one delivery id (a crash
//! between sending and recording may repeat that id; receivers drop repeats by it).
//!
//! SIGKILL during bulk ingest is `durability.rs`.

mod common;

use common::{Server, client};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every `v<N>.json` parses as a log model, `active` (when present) names one of them, and
/// no temporary file is left once a server has started.
fn check_models(data: &Path, after_start: bool) -> (Vec<u64>, Option<u64>) {
    let dir = data.join("logs/models");
    let mut versions = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(v) = name.strip_prefix('v').and_then(|n| n.strip_suffix(".json")) {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            vigil_logs::model::LogModel::from_json(&bytes)
                .unwrap_or_else(|e| panic!("{name} is torn or unloadable: {e}"));
            versions.push(v.parse::<u64>().unwrap());
        } else if name.ends_with(".tmp") {
            assert!(!after_start, "{name} left after a start");
        } else {
            assert_eq!(name, "active", "an unexpected file in logs/models");
        }
    }
    versions.sort_unstable();
    let active = std::fs::read_to_string(dir.join("active"))
        .ok()
        .map(|s| s.trim().parse::<u64>().expect("active holds a version"));
    if let Some(a) = active {
        assert!(versions.contains(&a), "active names v{a}, which is missing");
    }
    (versions, active)
}

/// 300 sessions of a few normal shapes.
fn sessions() -> Vec<Vec<u32>> {
    (0..300u32)
        .map(|i| {
            let mut s = vec![1, 2, 3];
            s.extend((0..(i % 7)).map(|j| 4 + (j % 3)));
            s.extend([7, 8]);
            if i % 5 == 0 {
                s.push(9);
            }
            s
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_retraining_leaves_only_whole_models() {
    let data = tempfile::tempdir().unwrap();
    let http = client();
    let body = json!({
        "kinds": ["iforest", "deeplog"],
        "deeplog": {"epochs": 1, "min_steps": 300, "hidden": 32},
        "sequences": sessions(),
    });

    // A first training to completion, timed, so the kills below land inside one.
    let server = Server::start(data.path());
    let key = server.admin_key.clone().unwrap();
    let started = Instant::now();
    let r = http
        .post(format!("{}/api/v1/logs/train", server.url))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let took = started.elapsed();
    eprintln!("one training takes {took:?}");
    server.kill();
    assert_eq!(check_models(data.path(), false), (vec![1], Some(1)));

    // Kill at 10% … 120% of a training's time; a request cut short is a kill inside it.
    let mut cut_short = 0;
    for tenths in [1u32, 3, 5, 7, 9, 10, 12] {
        let server = Server::start(data.path());
        let (before, _) = check_models(data.path(), true);
        let url = server.url.clone();
        let request = tokio::spawn({
            let (http, key, body) = (http.clone(), key.clone(), body.clone());
            async move {
                http.post(format!("{url}/api/v1/logs/train"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        });
        tokio::time::sleep(took * tenths / 10).await;
        server.kill();
        let outcome = request.await.unwrap();
        if outcome.is_err() {
            cut_short += 1;
        }
        let (after, active) = check_models(data.path(), false);
        eprintln!("killed at {tenths}/10: {outcome:?}, models {after:?}, active {active:?}");
        assert!(after.len() <= before.len() + 1);
        assert!(
            after.starts_with(&before),
            "a model was lost: {before:?} → {after:?}"
        );
    }
    assert!(
        cut_short >= 3,
        "only {cut_short} kills landed inside a training"
    );

    // It starts, serves the active model, and trains the next version.
    let server = Server::start(data.path());
    let (versions, active) = check_models(data.path(), true);
    let listed: Value =
        common::get_json(&http, &format!("{}/api/v1/logs/models", server.url), &key).await;
    assert_eq!(listed["active"].as_u64(), active, "{listed}");
    assert_eq!(listed["models"].as_array().unwrap().len(), versions.len());
    let r = http
        .post(format!("{}/api/v1/logs/train", server.url))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let trained: Value = r.json().await.unwrap();
    assert_eq!(trained["version"].as_u64(), versions.last().map(|v| v + 1));
    let detect = http
        .post(format!("{}/api/v1/logs/detect", server.url))
        .bearer_auth(&key)
        .json(&json!({"sequences": [[1, 2, 3, 7, 8], [9, 9, 9, 1]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(detect.status(), 200);
}

/// What the receiver saw: per delivery id, the incident and how many times it came.
#[derive(Default)]
struct Received {
    by_delivery: BTreeMap<String, (String, u32)>,
    /// When each answer was given.
    answered: Vec<Instant>,
}

impl Received {
    /// Answers given since `t` (the window in which a kill can repeat them).
    fn answered_since(&self, t: Instant) -> usize {
        self.answered.iter().filter(|&&a| a >= t).count()
    }
}

async fn receiver(seen: Arc<Mutex<Received>>) -> String {
    use axum::http::HeaderMap;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("x-vigil-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                // Slow, and unevenly so (50 to 800 ms), so that kills land while some
                // deliveries are in flight and others are answered.
                let spread = id
                    .bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                tokio::time::sleep(Duration::from_millis(50 + spread % 750)).await;
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                let incident = v["incident"]["id"].as_str().unwrap_or_default().to_string();
                let mut s = seen.lock().unwrap();
                let e = s.by_delivery.entry(id).or_insert((incident, 0));
                e.1 += 1;
                s.answered.push(Instant::now());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

const HOSTS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_incident_delivery_loses_none_and_repeats_no_incident() {
    let data = tempfile::tempdir().unwrap();
    let seen: Arc<Mutex<Received>> = Arc::default();
    let hook = receiver(seen.clone()).await;
    let routes = format!(
        r#"[{{name = "hook", kind = "webhook", url = "{hook}", secret = "crash-test-signing-secret-0123456789", min_severity = "low", per_minute = 0, backoff_ms = 200, max_backoff_secs = 2}}]"#
    );
    let env = [
        ("VIGIL_RESPONDERS__ROUTES", routes.as_str()),
        ("VIGIL_RESPONDERS__ALLOW_INTERNAL", "true"),
        ("VIGIL_RESPONDERS__POLL_MS", "50"),
    ];
    let http = client();
    let server = Server::start_with_env(data.path(), &env);
    let key = server.admin_key.clone().unwrap();
    let script = r#"//! name = "flag_everything"
//! categories = ["process"]
fn analyze(event, config) {
    #{ score: 80, severity: "high", summary: "crash test" }
}
"#;
    let r = http
        .post(format!("{}/api/v1/scripts", server.url))
        .bearer_auth(&key)
        .json(&json!({"name": "flag_everything", "source": script}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let bulk: String = (0..HOSTS)
        .map(|i| {
            json!({
                "event": {"id": format!("crash-{i}"), "category": ["process"]},
                "host": {"name": format!("crash-host-{i}")},
                "process": {"name": "cmd.exe"},
                "message": "one finding per host, one incident per host"
            })
            .to_string()
                + "\n"
        })
        .collect();
    let r = http
        .post(format!("{}/api/v1/events/bulk", server.url))
        .bearer_auth(&key)
        .body(bulk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let delivered = |seen: &Arc<Mutex<Received>>| seen.lock().unwrap().by_delivery.len();
    let wait_for = |n: usize| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while delivered(&seen) < n {
                assert!(
                    Instant::now() < deadline,
                    "only {} delivered",
                    delivered(&seen)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Kill twice while deliveries are being sent. A delivery answered in the last 100 ms
    // before a kill may not be recorded yet: those may repeat.
    let mut exposed = 0;
    wait_for(5).await;
    let t = Instant::now() - Duration::from_millis(100);
    server.kill();
    exposed += seen.lock().unwrap().answered_since(t);
    let server = Server::start_with_env(data.path(), &env);
    wait_for(HOSTS / 2).await;
    let t = Instant::now() - Duration::from_millis(100);
    server.kill();
    exposed += seen.lock().unwrap().answered_since(t);
    let server = Server::start_with_env(data.path(), &env);

    // Everything arrives after the last start.
    let deadline = Instant::now() + Duration::from_secs(90);
    let incidents = loop {
        let list: Value = common::get_json(
            &http,
            &format!("{}/api/v1/incidents?limit=500", server.url),
            &key,
        )
        .await;
        let ids: BTreeSet<String> = list["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        let got: BTreeSet<String> = seen
            .lock()
            .unwrap()
            .by_delivery
            .values()
            .map(|(i, _)| i.clone())
            .collect();
        if ids.len() == HOSTS && got == ids {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "{} incidents stored, {} delivered",
            ids.len(),
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let repeats = {
        let seen = seen.lock().unwrap();
        // One delivery id per incident …
        let mut per_incident: BTreeMap<&str, u32> = BTreeMap::new();
        for (incident, _) in seen.by_delivery.values() {
            *per_incident.entry(incident).or_default() += 1;
        }
        assert_eq!(per_incident.len(), incidents.len());
        assert!(
            per_incident.values().all(|&n| n == 1),
            "an incident under two delivery ids: {per_incident:?}"
        );
        // … and repeats only of deliveries answered just before a kill: each outcome is
        // recorded as soon as its send ends. (Recording a pass's outcomes together, as
        // Vigil once did, repeated deliveries answered long before the kill: 5 of 40 here.)
        let repeats: usize = seen.by_delivery.values().map(|(_, n)| n - 1).sum::<u32>() as usize;
        eprintln!(
            "{} incidents delivered, {repeats} repeated deliveries after 2 kills \
             ({exposed} answered within 100 ms before one)",
            incidents.len()
        );
        repeats
    };
    assert!(
        repeats <= exposed,
        "{repeats} repeated deliveries, {exposed} answered just before a kill"
    );
    let dead: Value = common::get_json(
        &http,
        &format!("{}/api/v1/deliveries?state=dead", server.url),
        &key,
    )
    .await;
    assert_eq!(dead["deliveries"].as_array().unwrap().len(), 0, "{dead}");
}
