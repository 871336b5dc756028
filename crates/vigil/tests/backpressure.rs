//! Backpressure of the real `vigil serve` (issue 12): flooded with bulk requests far beyond
//! its small configured budgets, it sheds load with `429` (ingest queue full) and `503`
//! (too many requests or body bytes in flight), each with `Retry-After`, never a `500`;
//! its memory stays bounded; every acknowledged event is stored; and it serves normally
//! again as soon as the flood stops.

mod common;

use common::{Options, Server, client, rss_kib};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    without_retry_after: u64,
    transport_errors: u64,
    acked: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_shed_with_retry_after_and_the_server_recovers() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        Options {
            env: &[
                ("VIGIL_PIPELINE__INGEST_QUEUE", "3000"),
                ("VIGIL_SERVER__MAX_IN_FLIGHT", "12"),
                ("VIGIL_SERVER__MAX_IN_FLIGHT_BODY_MIB", "2"),
            ],
            ..Options::default()
        },
    );
    let pid = server.child.id();
    let key = server.admin_key.clone().unwrap();
    let url = server.url.clone();
    let http = client();
    let before = rss_kib(pid).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = tokio::spawn({
        let (stop, peak) = (stop.clone(), peak.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    // 48 clients that never back off, each sending 1,000-event batches (~160 KB).
    let mut clients = Vec::new();
    for c in 0..48 {
        let (http, url, key, stop, tally) = (
            http.clone(),
            url.clone(),
            key.clone(),
            stop.clone(),
            tally.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut batch = 0;
            while !stop.load(Ordering::Relaxed) {
                batch += 1;
                let body: String = (0..1000)
                    .map(|i| {
                        json!({"event": {"id": format!("f{c}-{batch}-{i}")},
                               "host": {"name": "flood"},
                               "message": format!("flood line {i} of batch {batch} from client {c}, padded to a realistic size ................................")})
                        .to_string()
                            + "\n"
                    })
                    .collect();
                let r = http
                    .post(format!("{url}/api/v1/events/bulk"))
                    .bearer_auth(&key)
                    .body(body)
                    .send()
                    .await;
                let r = match r {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("transport error: {e:?}");
                        tally.lock().unwrap().transport_errors += 1;
                        continue;
                    }
                };
                let status = r.status().as_u16();
                let has_retry = r.headers().contains_key("retry-after");
                let body: Value = r.json().await.unwrap_or_default();
                let mut t = tally.lock().unwrap();
                *t.statuses.entry(status).or_default() += 1;
                if matches!(status, 429 | 503) && !has_retry {
                    t.without_retry_after += 1;
                }
                if status == 202 {
                    let ids = body["ids"].as_array().unwrap();
                    t.acked
                        .extend(ids.iter().map(|i| i.as_str().unwrap().to_string()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let t = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "statuses {:?}, transport errors {}, RSS {} MiB before, {} MiB peak",
        t.statuses,
        t.transport_errors,
        before / 1024,
        peak / 1024
    );
    let shed =
        t.statuses.get(&429).copied().unwrap_or(0) + t.statuses.get(&503).copied().unwrap_or(0);
    assert!(shed > 0, "nothing was shed: {:?}", t.statuses);
    assert!(
        t.statuses.get(&202).copied().unwrap_or(0) > 0,
        "nothing got in"
    );
    let unexpected: Vec<_> = t
        .statuses
        .keys()
        .filter(|s| !matches!(s, 202 | 429 | 503))
        .collect();
    assert!(unexpected.is_empty(), "{:?}", t.statuses);
    assert_eq!(t.without_retry_after, 0);
    assert_eq!(t.transport_errors, 0);
    // Bounded: 12 requests and 2 MiB of bodies in flight, a 3,000-event queue. The bound is
    // generous (a debug build, allocator slack), far below what an unbounded queue of this
    // flood would take.
    assert!(
        peak < before + 400 * 1024,
        "RSS grew from {} to {} MiB",
        before / 1024,
        peak / 1024
    );

    // It recovers at once.
    let started = Instant::now();
    loop {
        let r = http
            .post(format!("{url}/api/v1/events"))
            .bearer_auth(&key)
            .json(&json!({"event": {"id": "after-the-flood"}, "message": "calm"}))
            .send()
            .await
            .unwrap();
        if r.status() == 202 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {} 10 s after the flood",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("accepted again {:?} after the flood", started.elapsed());

    // Every acknowledged event is stored.
    let mut stored = HashSet::new();
    let mut next: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{url}/api/v1/events"))
            .bearer_auth(&key)
            .query(&[("limit", "1000"), ("host.name", "flood")]);
        if let Some(n) = &next {
            req = req.query(&[("next", n)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        let events = page["events"].as_array();
        for e in events.unwrap_or_else(|| panic!("{page}")) {
            stored.insert(e["event"]["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    let lost = t.acked.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged events lost",
        t.acked.len()
    );
    eprintln!("{} acknowledged events, all stored", t.acked.len());
}
