//! Issue 22: the attacks of the outside review, replayed against the real `vigil serve`,
//! each asserting what must hold now (findings 5 and 6, the script sandboxes, have their
//! own files: `script_memory.rs` and `python_sandbox.rs`).
//!
//! 1. distinct HTTP methods and paths do not grow `/metrics` or the process;
//! 2. an agent key reads no stored data through triage, jobs or the protocol's reports;
//! 3. no client can hold the body budget: a claim above the route's limit is `413` at once,
//!    a credential gets one large body at a time, a stalled body is cut with `408`;
//! 4. idle and trickling sockets (HTTP, protocol, syslog) neither stay open nor lock out
//!    real clients, even under a 300-descriptor limit;
//! 7. a JWT that is not valid yet (`nbf`, `iat`) is refused;
//! 8. WebSocket streams are capped per credential and in all;
//! 9. gzip bodies, duplicate JSON keys, `alg: none`, the sandbox route's codes, SMTP AUTH in
//!    clear and a world-readable config with a secret get clear answers or warnings.

mod common;

use common::{Options, Server, client, create_key, protocol_reply};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident memory of the server, in KiB.
fn rss_kib(pid: u32) -> u64 {
    common::rss_kib(pid).expect("the server is running")
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Sends raw bytes on a new connection and returns the status code of the answer (0 when
/// the server closed without one).
async fn raw_status(addr: &str, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    status_of(&mut s, Duration::from_secs(10)).await
}

/// Reads an HTTP answer's status line from `s` (0: closed or nothing within `wait`).
async fn status_of(s: &mut TcpStream, wait: Duration) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + wait;
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return 0,
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Whether the server closes `s` within `wait` (reads until EOF or an error).
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn post_event(url: &str, key: &str, event: &Value) -> u16 {
    client()
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(key)
        .json(event)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_distinct_methods_and_paths_do_not_grow_metrics_or_memory() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (url, pid) = (server.url.clone(), server.child.id());
    let addr = host_port(&url);
    let http = client();
    let metrics = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Warm up: every label the attack could legitimately add once (`other`, `unmatched`
    // with the statuses they get) exists before the measurement.
    for i in 0..3 {
        let m = format!("WARM{i}");
        raw_status(
            &addr,
            format!("{m} /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await;
        raw_status(
            &addr,
            format!("GET /nowhere/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
    }
    let before_size = metrics(http.clone(), url.clone()).await.len();
    let before_rss = rss_kib(pid);
    // 3,000 distinct 8 KB methods on a matched route, 3,000 distinct unmatched paths.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in (worker..3000).step_by(8) {
                let method = format!("M{i:05}{}", "X".repeat(8 * 1024));
                let req = format!(
                    "{method} /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                );
                statuses.push(raw_status(&addr, req.as_bytes()).await);
                let req = format!(
                    "GET /attack/{i}/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                    "p".repeat(200)
                );
                statuses.push(raw_status(&addr, req.as_bytes()).await);
            }
            statuses
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += t.await.unwrap().iter().filter(|s| **s != 0).count();
    }
    assert_eq!(answered, 6000, "every attack request got an answer");
    let body = metrics(http.clone(), url.clone()).await;
    let after_rss = rss_kib(pid);
    eprintln!(
        "finding 1: /metrics {before_size} -> {} bytes, RSS {} -> {} MiB, 6000 requests in {:?}",
        body.len(),
        before_rss / 1024,
        after_rss / 1024,
        started.elapsed()
    );
    assert!(!body.contains("M00001X"), "a method became a label");
    assert!(!body.contains("/attack/"), "a path became a label");
    assert!(
        body.len() < before_size + 16 * 1024,
        "/metrics grew from {before_size} to {} bytes",
        body.len()
    );
    assert!(
        after_rss < before_rss + 64 * 1024,
        "RSS grew from {before_rss} KiB to {after_rss} KiB"
    );
}

/// Sends one protocol frame and reads the reply.
async fn ask(s: &mut TcpStream, command: u32, fields: &[&[u8]]) -> vigil_file::protocol::Reply {
    s.write_all(&vigil_file::protocol::encode_request(command, fields))
        .await
        .unwrap();
    protocol_reply(s).await.expect("a reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_2_an_agent_key_reads_no_stored_data_indirectly() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        Options {
            env: &[
                ("VIGIL_PROTOCOL__ENABLED", "true"),
                ("VIGIL_PROTOCOL__LISTEN", "127.0.0.1:0"),
            ],
            capture: true,
            ..Options::default()
        },
    );
    let url = server.url.clone();
    let admin = server.admin_key.clone().unwrap();
    let proto = server
        .output
        .as_ref()
        .unwrap()
        .stdout_after("vigil: file-analysis protocol on ", Duration::from_secs(10))
        .expect("the protocol address");
    let agent = create_key(&url, &admin, "edr-1", "agent").await;
    let viewer = create_key(&url, &admin, "analyst", "viewer").await;
    let http = client();

    // A script that flags a password on a command line, quoting it in its summary.
    let source = "fn analyze(event, config) {\n    let cmd = event[\"process.command_line\"];\n    if cmd == () || !cmd.contains(\"-p\") { return (); }\n    #{ score: 90, summary: \"password on a command line: \" + cmd }\n}\n";
    let r = http
        .post(format!("{url}/api/v1/scripts"))
        .bearer_auth(&admin)
        .json(&json!({"name": "cmdline_password", "source": source}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // Another host's telemetry about a file: a secret on a command line, an address.
    let sample: &[u8] = b"review attack sample, not a program";
    let sha = vigil_file::analysis::sha256_hex(sample);
    for e in [
        json!({"event.category": "process", "host.name": "db-secret-7", "user.name": "dba-alice",
               "process.name": "mysql", "process.hash.sha256": sha,
               "process.command_line": "mysql -uroot -pHunter2Secret"}),
        json!({"event.category": "network", "host.name": "db-secret-7", "process.hash.sha256": sha,
               "destination.ip": "198.51.100.77", "destination.port": 3306}),
    ] {
        assert_eq!(post_event(&url, &agent, &e).await, 202);
    }
    // Wait for the finding.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = common::get_json(
            &http,
            &format!("{url}/api/v1/findings?analyzer=script:cmdline_password"),
            &viewer,
        )
        .await;
        if f["findings"].as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no finding: {f}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secrets = ["db-secret-7", "Hunter2Secret", "198.51.100.77", "dba-alice"];

    // Triage (on a line, an event, an incident) is refused to agents: 403, and nothing of
    // the stored data in the answer.
    let incidents = common::get_json(&http, &format!("{url}/api/v1/incidents"), &viewer).await;
    let incident_id = incidents["incidents"][0]["id"]
        .as_str()
        .unwrap_or("x")
        .to_string();
    for body in [
        json!({"line": "2026-12-01 10:00:00 10.0.0.5:51234 10.0.0.9:3306 SQL_LOGIN mysql -uroot"}),
        json!({"event": {"host.name": "db-secret-7", "message": "look"}}),
        json!({"incident_id": incident_id}),
    ] {
        let r = http
            .post(format!("{url}/api/v1/triage"))
            .bearer_auth(&agent)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{body}");
        let text = r.text().await.unwrap();
        assert!(secrets.iter().all(|s| !text.contains(s)), "{text}");
    }
    // A viewer may.
    let r = http
        .post(format!("{url}/api/v1/triage"))
        .bearer_auth(&viewer)
        .json(&json!({"incident_id": incident_id}))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 403);

    // An analysis job is read only by the credential that started it.
    let r: Value = http
        .post(format!("{url}/api/v1/analyze?async=true"))
        .bearer_auth(&agent)
        .json(&json!({"event.category": "process", "process.command_line": "tool -pX"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = r["job"].as_str().expect("a job id").to_string();
    let other_agent = create_key(&url, &admin, "edr-2", "agent").await;
    let r = http
        .get(format!("{url}/api/v1/jobs/{job}"))
        .bearer_auth(&other_agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{url}/api/v1/jobs/{job}"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The protocol's dynamic report (commands 2, 5, 6) to an agent: verdict, score and
    // reasons, no other host's data.
    let mut s = TcpStream::connect(&proto).await.unwrap();
    let auth = ask(&mut s, 0, &[agent.as_bytes()]).await;
    assert!(matches!(auth, vigil_file::protocol::Reply::Verdict { .. }));
    for command in [2u32, 5, 6] {
        // 6 (all) runs the static analysis too: it needs the bytes.
        let fields: [&[u8]; 3] = if command == 6 {
            [sample, b"", b""]
        } else {
            [b"", sha.as_bytes(), b""]
        };
        let reply = ask(&mut s, command, &fields).await;
        let vigil_file::protocol::Reply::Verdict { report, .. } = reply else {
            panic!("command {command}: {reply:?}");
        };
        let text = String::from_utf8_lossy(&report).to_string();
        assert!(
            secrets.iter().all(|x| !text.contains(x)),
            "command {command}: {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["score"].is_number(), "{v}");
        if command == 2 {
            assert_eq!(v["dynamic"]["hosts"], 1, "{v}");
            assert_eq!(v["dynamic"]["events"], 2, "{v}");
            assert!(v["explanation"].to_string().contains("finding"), "{v}");
        }
    }
    // An admin over the protocol sees the whole report.
    let mut s = TcpStream::connect(&proto).await.unwrap();
    ask(&mut s, 0, &[admin.as_bytes()]).await;
    let fields: [&[u8]; 3] = [b"", sha.as_bytes(), b""];
    let vigil_file::protocol::Reply::Verdict { report, .. } = ask(&mut s, 2, &fields).await else {
        panic!("no verdict");
    };
    assert!(String::from_utf8_lossy(&report).contains("db-secret-7"));
}

/// Opens a connection, sends a request head claiming `length` bytes and `first` bytes of
/// the body, and leaves it open.
async fn stalled_upload(addr: &str, path: &str, key: &str, length: u64, first: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'x'; first]).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_3_no_client_can_hold_the_body_budget() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(data.path(), &[("VIGIL_SERVER__BODY_TIMEOUT_SECS", "3")]);
    let (url, pid) = (server.url.clone(), server.child.id());
    let addr = host_port(&url);
    let admin = server.admin_key.clone().unwrap();
    let agents = [
        create_key(&url, &admin, "a1", "agent").await,
        create_key(&url, &admin, "a2", "agent").await,
        create_key(&url, &admin, "a3", "agent").await,
    ];
    let other = create_key(&url, &admin, "other", "agent").await;
    let event = json!({"event.category": "process", "host.name": "ok-1", "message": "fine"});
    let rss_before = rss_kib(pid);

    // One connection claiming 1 GiB on /api/v1/events (limit 1 MiB): 413 at once, before
    // a byte of the body.
    let t = Instant::now();
    let mut s = stalled_upload(&addr, "/api/v1/events", &agents[0], 1 << 30, 0).await;
    assert_eq!(status_of(&mut s, Duration::from_secs(5)).await, 413);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(s);
    // Larger than any route takes, even unauthenticated: 413 at once.
    let mut s = stalled_upload(&addr, "/api/v1/events", "vgl_nobody", 1 << 40, 0).await;
    assert_eq!(status_of(&mut s, Duration::from_secs(5)).await, 413);

    // Three stalled 200 MiB EVTX uploads with one key: the first is held, the others are
    // refused (429, the credential's share), and everyone else's ingest goes on.
    let held = stalled_upload(&addr, "/api/v1/evtx", &agents[0], 200 << 20, 1024).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = Vec::new();
    for _ in 0..2 {
        refused.push(stalled_upload(&addr, "/api/v1/evtx", &agents[0], 200 << 20, 1024).await);
    }
    assert_eq!(post_event(&url, &other, &event).await, 202);
    for s in &mut refused {
        // Answered after the refused body is drained for at most 5 s.
        assert_eq!(status_of(s, Duration::from_secs(10)).await, 429);
    }
    // The held upload is cut with 408 once it stays silent for body_timeout_secs.
    let mut held = held;
    let t = Instant::now();
    assert_eq!(status_of(&mut held, Duration::from_secs(15)).await, 408);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // Three keys, 200 MiB each, of a 512 MiB budget: two are held, the third is shed with
    // 503, and a small event still gets in; all are cut with 408 and the budget returns.
    let mut uploads = Vec::new();
    for key in &agents {
        uploads.push(stalled_upload(&addr, "/api/v1/evtx", key, 200 << 20, 1024).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(post_event(&url, &other, &event).await, 202);
    let mut statuses = Vec::new();
    for s in &mut uploads {
        statuses.push(status_of(s, Duration::from_secs(20)).await);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![408, 408, 503], "{statuses:?}");
    assert_eq!(post_event(&url, &other, &event).await, 202);
    let rss_after = rss_kib(pid);
    eprintln!(
        "finding 3: RSS {} -> {} MiB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after < rss_before + 100 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_4_idle_and_trickling_sockets_neither_stay_nor_lock_out_clients() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        Options {
            env: &[
                // The review's descriptor limit.
                ("VIGIL_TEST_NOFILE", "300"),
                ("VIGIL_SERVER__HEADER_TIMEOUT_SECS", "3"),
                ("VIGIL_PROTOCOL__ENABLED", "true"),
                ("VIGIL_PROTOCOL__LISTEN", "127.0.0.1:0"),
                ("VIGIL_LOG_SOURCES__SYSLOG_TCP", "127.0.0.1:0"),
            ],
            capture: true,
            ..Options::default()
        },
    );
    let url = server.url.clone();
    let addr = host_port(&url);
    let admin = server.admin_key.clone().unwrap();
    let out = server.output.clone().unwrap();
    let proto = out
        .stdout_after("vigil: file-analysis protocol on ", Duration::from_secs(10))
        .unwrap();
    let syslog = server.syslog_tcp.clone().expect("the syslog address");
    let http = client();

    // A header line every second: cut by the 3 s header timeout.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    trickle
        .write_all(b"GET /api/v1/health HTTP/1.1\r\n")
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // An attacker keeps 320 idle HTTP sockets open (reopening those closed), some with
    // half a request head.
    let attacker = {
        let (addr, stop) = (addr.clone(), stop.clone());
        tokio::spawn(async move {
            let mut socks: Vec<TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                socks.retain(|s| s.peer_addr().is_ok());
                while socks.len() < 320 {
                    match TcpStream::connect(&addr).await {
                        Ok(mut s) => {
                            if socks.len().is_multiple_of(2) {
                                let _ = s.write_all(b"GET / HTTP/1.1\r\nX-Slow: 1\r\n").await;
                            }
                            socks.push(s);
                        }
                        Err(_) => break,
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut cut = false;
    for i in 0..8 {
        if trickle
            .write_all(format!("X-{i}: y\r\n").as_bytes())
            .await
            .is_err()
            || closed_within(&mut trickle, Duration::from_secs(1)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickled header was not cut");
    // Health and an authenticated call answer, again and again, under the flood.
    for _ in 0..5 {
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            http.get(format!("{url}/api/v1/health")).send(),
        )
        .await
        .expect("health answered in time")
        .expect("health reachable");
        assert_eq!(r.status(), 200);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let r = http
            .get(format!("{url}/api/v1/me"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    attacker.await.unwrap();

    // Protocol: 256 idle sockets that never authenticate; a real client still gets in and
    // gets answers, and an idle one is closed after auth_timeout_secs (5).
    let mut idle = Vec::new();
    for _ in 0..256 {
        if let Ok(s) = TcpStream::connect(&proto).await {
            idle.push(s);
        }
    }
    let mut real = TcpStream::connect(&proto).await.unwrap();
    let auth = ask(&mut real, 0, &[admin.as_bytes()]).await;
    assert!(
        matches!(auth, vigil_file::protocol::Reply::Verdict { .. }),
        "{auth:?}"
    );
    let fields: [&[u8]; 3] = [b"hello, not a program", b"", b""];
    let reply = ask(&mut real, 1, &fields).await;
    assert!(
        matches!(reply, vigil_file::protocol::Reply::Verdict { .. }),
        "{reply:?}"
    );
    let mut last = idle.pop().unwrap();
    assert!(
        closed_within(&mut last, Duration::from_secs(8)).await,
        "an unauthenticated protocol connection stayed open"
    );
    drop(idle);

    // Syslog TCP: 200 idle senders do not keep a real one out.
    let mut quiet = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(&syslog).await {
            quiet.push(s);
        }
    }
    let mut sender = TcpStream::connect(&syslog).await.unwrap();
    sender
        .write_all(b"<13>Dec  7 10:00:00 relay-9 app: marker-7f3a syslog got through\n")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = http
            .get(format!("{url}/api/v1/events?limit=50"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if r.contains("marker-7f3a") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the syslog line was not ingested"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(quiet);
    // The caps were fitted to the descriptor limit, and said so.
    let stderr = out.stderr().join("\n");
    assert!(stderr.contains("connection cap lowered"), "{stderr}");
}

fn jwt(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_7_and_9_tokens_not_valid_yet_and_unsigned_ones_are_refused_clearly() {
    const SECRET: &str = "review-attacks-secret-0123456789abcdef";
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(data.path(), &[("VIGIL_AUTH__JWT_HS256_SECRET", SECRET)]);
    let url = server.url.clone();
    let http = client();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let me = |token: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .get(format!("{url}/api/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let ok = jwt(
        SECRET,
        &json!({"sub": "a", "role": "viewer", "exp": now + 3600}),
    );
    assert_eq!(me(ok).await.0, 200);
    let later = jwt(
        SECRET,
        &json!({"sub": "a", "role": "viewer", "exp": now + 7200, "nbf": now + 3600}),
    );
    let (status, text) = me(later).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("nbf"), "{text}");
    let future = jwt(
        SECRET,
        &json!({"sub": "a", "role": "viewer", "exp": now + 7200, "iat": now + 3600}),
    );
    let (status, text) = me(future).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("iat"), "{text}");
    // Within the 30 s leeway both are fine (clocks differ a little).
    let skewed = jwt(
        SECRET,
        &json!({"sub": "a", "role": "viewer", "exp": now + 600, "iat": now + 10, "nbf": now + 10}),
    );
    assert_eq!(me(skewed).await.0, 200);
    // alg: none gets a message that says so.
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "a", "role": "admin", "exp": now + 3600}))
    );
    let (status, text) = me(none).await;
    assert_eq!(status, 401);
    assert!(text.contains("alg: none"), "{text}");
}

/// Opens a WebSocket on `path` with `key`; the status of the answer (101: open) and the
/// connection, kept open while it lives.
async fn websocket(addr: &str, path: &str, key: &str) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let status = status_of(&mut s, Duration::from_secs(10)).await;
    (status, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_8_websocket_streams_are_capped_per_credential_and_in_all() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        data.path(),
        &[
            ("VIGIL_SERVER__MAX_STREAMS", "5"),
            ("VIGIL_SERVER__MAX_STREAMS_PER_CREDENTIAL", "2"),
        ],
    );
    let url = server.url.clone();
    let addr = host_port(&url);
    let admin = server.admin_key.clone().unwrap();
    let viewer = create_key(&url, &admin, "v1", "viewer").await;
    let viewer2 = create_key(&url, &admin, "v2", "viewer").await;
    let agent = create_key(&url, &admin, "a1", "agent").await;
    let mut open = Vec::new();
    for path in ["/api/v1/stream", "/api/v1/incidents/stream"] {
        let (status, s) = websocket(&addr, path, &viewer).await;
        assert_eq!(status, 101, "{path}");
        open.push(s);
    }
    // The viewer's third, on any stream route: refused.
    let (status, _) = websocket(&addr, "/api/v1/stream", &viewer).await;
    assert_eq!(status, 429);
    // An agent key opens network streams the same way, and is capped the same way.
    for _ in 0..2 {
        let (status, s) = websocket(&addr, "/api/v1/network/stream", &agent).await;
        assert_eq!(status, 101);
        open.push(s);
    }
    let (status, _) = websocket(&addr, "/api/v1/network/stream", &agent).await;
    assert_eq!(status, 429);
    // In all: the fifth is the last.
    let (status, fifth) = websocket(&addr, "/api/v1/stream", &viewer2).await;
    assert_eq!(status, 101);
    let r = client()
        .get(format!("{url}/api/v1/stream"))
        .bearer_auth(&viewer2)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_streams")
    );
    // A closed stream frees its place.
    drop(fifth);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, s) = websocket(&addr, "/api/v1/stream", &viewer2).await;
        if status == 101 {
            open.push(s);
            break;
        }
        assert!(Instant::now() < deadline, "the place was not freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_9_encoded_bodies_duplicate_keys_and_risky_settings_get_clear_answers() {
    let data = tempfile::tempdir().unwrap();
    // A world-readable config with a secret in clear, and SMTP AUTH without TLS.
    let conf = data.path().join("vigil.toml");
    std::fs::write(
        &conf,
        r#"
[auth]
jwt_hs256_secret = "in-clear-secret-0123456789abcdef-xyz"

[responders]
allow_internal = true

[[responders.routes]]
name = "mail"
kind = "email"
[responders.routes.email]
host = "127.0.0.1"
port = 2525
tls = "none"
username = "vigil"
password = "env:REVIEW_SMTP_PASSWORD"
from = "vigil@example.org"
to = ["soc@example.org"]
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf_str = conf.display().to_string();
    let mut server = Server::start_with(
        &data.path().join("data"),
        Options {
            env: &[
                ("VIGIL_CONFIG", &conf_str),
                ("REVIEW_SMTP_PASSWORD", "smtp-pw-not-logged"),
            ],
            capture: true,
            ..Options::default()
        },
    );
    let url = server.url.clone();
    let admin = server.admin_key.clone().unwrap();
    let agent = create_key(&url, &admin, "a1", "agent").await;
    let http = client();
    // gzip: 415, not "bad JSON".
    let r = http
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(&agent)
        .header("Content-Encoding", "gzip")
        .body(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_media_type");
    // A key twice: refused, the key named.
    let r = http
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(&agent)
        .body(r#"{"process.name":"calc.exe","host.name":"h","process.name":"mimikatz.exe"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_event", "{v}");
    assert_eq!(v["error"]["field"], "process.name", "{v}");
    // The same in a bulk line: that line fails, the others are stored.
    let r = http
        .post(format!("{url}/api/v1/events/bulk"))
        .bearer_auth(&agent)
        .body("{\"message\":\"a\"}\n{\"user\":{\"name\":\"x\",\"name\":\"y\"}}\n")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["errors"][0]["field"], "user.name", "{v}");
    // The sandbox-report route answers documented codes.
    let sha = "cd".repeat(32);
    for (body, code) in [
        ("", "empty_body"),
        ("{\"not\": \"a report\"}", "invalid_report"),
    ] {
        let r = http
            .post(format!("{url}/api/v1/files/{sha}/sandbox"))
            .bearer_auth(&agent)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        let doc = vigil_server::OPENAPI_JSON;
        assert!(
            doc.contains(&format!("`{code}`")),
            "{code} is not documented"
        );
    }
    server.terminate(Duration::from_secs(20));
    let stderr = server.output.as_ref().unwrap().stderr().join("\n");
    assert!(stderr.contains("crosses the network in clear"), "{stderr}");
    assert!(stderr.contains("holds a secret in clear"), "{stderr}");
    assert!(stderr.contains("jwt_hs256_secret"), "{stderr}");
    assert!(
        !stderr.contains("in-clear-secret-0123"),
        "the secret was logged"
    );
    assert!(
        !stderr.contains("smtp-pw-not-logged"),
        "the password was logged"
    );
}
