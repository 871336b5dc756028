//! An acknowledged event survives SIGKILL of the server.

mod common;

use common::{Server, client};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let key = server
        .admin_key
        .clone()
        .expect("first start prints an admin key");
    let url = server.url.clone();
    let http = client();

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (http, url, key, acked) = (http.clone(), url.clone(), key.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for batch in 0.. {
                let body: String = (0..200)
                    .map(|i| json!({"event.id": format!("w{worker}-b{batch}-{i}"), "message": "durability"}).to_string() + "\n")
                    .collect();
                let resp = http
                    .post(format!("{url}/api/v1/events/bulk"))
                    .bearer_auth(&key)
                    .body(body)
                    .send()
                    .await;
                let Ok(resp) = resp else { return };
                if resp.status() != 202 {
                    return;
                }
                let Ok(v) = resp.json::<Value>().await else { return };
                let ids: Vec<String> = v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
                acked.lock().unwrap().extend(ids);
            }
        }));
    }
    // Kill while requests are in flight, once a good number were acknowledged (up to 30 s
    // on a slow machine).
    for _ in 0..1500 {
        if acked.lock().unwrap().len() >= 8000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("{} events acknowledged before SIGKILL", acked.len());
    assert!(
        acked.len() >= 8000,
        "only {} events acknowledged before the kill",
        acked.len()
    );

    let server = Server::start(dir.path());
    assert!(
        server.admin_key.is_none(),
        "a restart must not create another admin key"
    );
    let mut stored = HashSet::new();
    let mut next: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{}/api/v1/events", server.url))
            .bearer_auth(&key)
            .query(&[("limit", "1000")]);
        if let Some(n) = &next {
            req = req.query(&[("next", n)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for e in page["events"].as_array().unwrap() {
            stored.insert(e["event"]["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(stored.len() >= acked.len());
    eprintln!(
        "{} events stored after restart, none of the acknowledged lost",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let key = server.admin_key.clone().unwrap();
    let http = client();
    let body: String = (0..1000)
        .map(|i| json!({"message": format!("m{i}")}).to_string() + "\n")
        .collect();
    let resp = http
        .post(format!("{}/api/v1/events/bulk", server.url))
        .bearer_auth(&key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "vigil did not stop within 20 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");

    let server = Server::start(dir.path());
    let page: Value = http
        .get(format!("{}/api/v1/events", server.url))
        .bearer_auth(&key)
        .query(&[("limit", "1000")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1000);
}
