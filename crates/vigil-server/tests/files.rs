//! File analysis through REST and through seed 001's binary protocol over real TCP:
//! every command, authentication, malformed and hostile frames, timeouts, many
//! connections at once. VirusTotal is a local fake speaking its v3 JSON.

mod common;

use axum::http::StatusCode;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_file::protocol::{Reply, decode_reply, encode_request};
use vigil_server::files::{FileService, StoreVtCache};
use vigil_server::protocol::{ProtocolConfig, ProtocolState};

/// The EICAR test string, assembled here (never stored in the repository).
fn eicar() -> Vec<u8> {
    let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".to_vec();
    s.extend_from_slice(b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s
}

/// A fake VirusTotal: every hash is known and flagged by 40 of 70 engines; key `good` only.
async fn fake_virustotal() -> String {
    use axum::extract::Path;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    async fn file(Path(id): Path<String>, headers: HeaderMap) -> axum::response::Response {
        if headers.get("x-apikey").and_then(|v| v.to_str().ok()) != Some("good") {
            let body = r#"{"error":{"code":"WrongCredentialsError","message":"Wrong API key"}}"#;
            return (StatusCode::UNAUTHORIZED, body).into_response();
        }
        let body = serde_json::json!({"data": {"id": id, "type": "file", "attributes": {
            "last_analysis_stats": {"malicious": 40, "suspicious": 2, "undetected": 28, "harmless": 0},
            "popular_threat_classification": {"suggested_threat_label": "trojan.eicar/test"},
            "last_analysis_date": 1_763_900_000, "reputation": -50,
        }}});
        axum::Json(body).into_response()
    }
    let app = axum::Router::new().route("/api/v3/files/{id}", axum::routing::get(file));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn service(h: &Harness) -> Arc<FileService> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let engine = tokio::task::spawn_blocking(|| {
        vigil_file::FileEngine::new(vigil_file::FileConfig::default()).unwrap()
    })
    .await
    .unwrap();
    let vt = vigil_file::vt::VirusTotal::new(
        vigil_file::vt::VtConfig {
            base_url: fake_virustotal().await,
            backoff_ms: 10,
            // The fake VirusTotal is on 127.0.0.1.
            allow_internal: true,
            ..Default::default()
        },
        Arc::new(StoreVtCache(h.state.store.clone())),
    )
    .unwrap();
    Arc::new(FileService::new(
        Arc::new(engine),
        Arc::new(vt),
        h.state.store.clone(),
    ))
}

async fn protocol(h: &Harness, config: ProtocolConfig) -> String {
    let state = ProtocolState {
        files: service(h).await,
        auth: h.state.auth.clone(),
        config: Arc::new(config),
        tls: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(vigil_server::protocol::serve(
        listener,
        state,
        std::future::pending(),
    ));
    addr
}

/// Reads one reply, or `None` when the server closed the connection first.
async fn reply(s: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((r, _)) = decode_reply(&buf).unwrap() {
            return Some(r);
        }
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("a reply in time")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn ask(s: &mut TcpStream, command: u32, fields: &[&[u8]]) -> Option<Reply> {
    s.write_all(&encode_request(command, fields)).await.unwrap();
    reply(s).await
}

async fn connect(addr: &str, key: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    if let Some(key) = key {
        match ask(&mut s, 0, &[key.as_bytes()]).await {
            Some(Reply::Verdict { report, .. }) => {
                let v: serde_json::Value = serde_json::from_slice(&report).unwrap();
                assert_eq!(v["authenticated"], true);
            }
            other => panic!("AUTH failed: {other:?}"),
        }
    }
    s
}

fn error_code(r: Option<Reply>) -> u32 {
    match r {
        Some(Reply::Error { code, .. }) => code,
        other => panic!("expected an ERROR reply, got {other:?}"),
    }
}

fn verdict(r: Option<Reply>) -> (bool, f32, serde_json::Value) {
    match r {
        Some(Reply::Verdict {
            malicious,
            score,
            report,
        }) => (malicious, score, serde_json::from_slice(&report).unwrap()),
        other => panic!("expected a verdict, got {other:?}"),
    }
}

async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_comes_first() {
    let h = harness().await;
    let addr = protocol(&h, ProtocolConfig::default()).await;
    // An analysis before AUTH: refused and closed.
    let mut s = connect(&addr, None).await;
    assert_eq!(error_code(ask(&mut s, 1, &[b"MZ", b"", b""]).await), 4);
    assert!(closed(&mut s).await);
    // A wrong key, and a viewer key: refused.
    let mut s = connect(&addr, None).await;
    assert_eq!(error_code(ask(&mut s, 0, &[b"vgl_wrong"]).await), 4);
    let mut s = connect(&addr, None).await;
    assert_eq!(error_code(ask(&mut s, 0, &[h.viewer.as_bytes()]).await), 4);
    // The agent key works, then analyses do.
    let mut s = connect(&addr, Some(&h.agent)).await;
    let (malicious, score, report) = verdict(ask(&mut s, 1, &[&eicar(), b"", b""]).await);
    assert!(malicious && score > 0.9, "{report}");
    assert_eq!(report["yara"], serde_json::json!(["EICAR_Test_File"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command() {
    let h = harness().await;
    let addr = protocol(&h, ProtocolConfig::default()).await;
    let mut s = connect(&addr, Some(&h.agent)).await;
    let text = b"just some text, nothing executable";
    let text_sha = vigil_file::analysis::sha256_hex(text);

    // 1 static: a text file is clean; the SHA-256 may be sent as hex or 32 raw bytes.
    let (malicious, score, report) =
        verdict(ask(&mut s, 1, &[text, text_sha.as_bytes(), b""]).await);
    assert!(!malicious && score < 0.1, "{report}");
    assert_eq!(report["static"]["is_pe"], false);
    let raw = hex::decode(&text_sha).unwrap();
    assert!(!verdict(ask(&mut s, 1, &[text, &raw, b""]).await).0);

    // 3 VirusTotal from the hash alone, with the caller's key; then from the cache.
    let (malicious, _, report) =
        verdict(ask(&mut s, 3, &[b"", text_sha.as_bytes(), b"good"]).await);
    assert!(malicious, "{report}");
    assert_eq!(report["virustotal"]["malicious"], 40);
    assert_eq!(report["virustotal"]["cached"], false);
    let (_, _, report) = verdict(ask(&mut s, 3, &[b"", text_sha.as_bytes(), b""]).await);
    assert_eq!(
        report["virustotal"]["cached"], true,
        "no key needed for a cached hash"
    );
    // No key at all, for a hash VirusTotal was never asked about: unavailable.
    let other = "ab".repeat(32);
    assert_eq!(
        error_code(ask(&mut s, 3, &[b"", other.as_bytes(), b""]).await),
        6
    );
    // A wrong caller key: VirusTotal's refusal is in the explanation of static+VT.
    let (_, _, report) = verdict(ask(&mut s, 4, &[b"MZ\x90\x00", b"", b"bad"]).await);
    let why = report["explanation"].to_string();
    assert!(why.contains("VirusTotal"), "{report}");
    assert!(!why.contains("bad\""), "the key is not echoed: {report}");

    // 4 static + VirusTotal.
    let (malicious, _, report) = verdict(ask(&mut s, 4, &[&eicar(), b"", b"good"]).await);
    assert!(malicious);
    assert!(report["yara"].as_array().unwrap().len() == 1 && report["virustotal"]["engines"] == 70);

    // 2 dynamic: nothing observed of this hash yet.
    let (malicious, _, report) = verdict(ask(&mut s, 2, &[b"", text_sha.as_bytes(), b""]).await);
    assert!(!malicious);
    assert!(
        report["explanation"]
            .to_string()
            .contains("observed no event"),
        "{report}"
    );

    // Now Vigil sees the file run, start PowerShell, and an analyzer flag it.
    let dropper = "fe".repeat(32);
    for event in [
        serde_json::json!({"event.category": "process", "host.name": "pc-1", "process.name": "invoice.exe",
            "process.hash.sha256": dropper, "message": "alert dropper ran", "score": 90}),
        serde_json::json!({"event.category": "process", "host.name": "pc-1", "process.name": "powershell.exe",
            "process.parent.hash.sha256": dropper}),
    ] {
        let r = h
            .call("POST", "/api/v1/events", Some(&h.agent), event.to_string())
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let mut found = false;
    for _ in 0..100 {
        let r = h
            .call(
                "GET",
                "/api/v1/findings?analyzer=test:alert",
                Some(&h.viewer),
                Vec::new(),
            )
            .await;
        if r.body["findings"].as_array().is_some_and(|f| !f.is_empty()) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the pipeline made the finding");
    let (malicious, score, report) = verdict(ask(&mut s, 2, &[b"", dropper.as_bytes(), b""]).await);
    assert!(malicious && score > 0.8, "{report}");
    assert_eq!(report["dynamic"]["executions"], 1);
    assert_eq!(
        report["dynamic"]["children"],
        serde_json::json!(["powershell.exe"])
    );
    let why = report["explanation"].to_string();
    assert!(
        why.contains("(test:alert)") && why.contains("started powershell.exe"),
        "{why}"
    );
    // Issue 22: an agent's report counts what other hosts saw but names none of it: no
    // host, no finding summary (it may quote a command line).
    let text = report.to_string();
    assert!(
        !text.contains("pc-1") && !text.contains("alert dropper ran"),
        "{text}"
    );
    assert_eq!(report["dynamic"]["hosts"], 1);
    assert_eq!(report["dynamic"]["findings"], 1);
    // An admin's report over the protocol is whole.
    let mut admin = connect(&addr, Some(&h.admin)).await;
    let (_, _, full) = verdict(ask(&mut admin, 2, &[b"", dropper.as_bytes(), b""]).await);
    assert_eq!(full["dynamic"]["hosts"], serde_json::json!(["pc-1"]));
    assert!(full.to_string().contains("alert dropper ran"), "{full}");
    // 5 dynamic + VirusTotal, and 6 all.
    let (_, _, report) = verdict(ask(&mut s, 5, &[b"", dropper.as_bytes(), b"good"]).await);
    assert!(report["virustotal"]["engines"] == 70 && report["dynamic"]["events"] == 2);
    let (malicious, _, report) = verdict(ask(&mut s, 6, &[&eicar(), b"", b"good"]).await);
    assert!(malicious && report["static"]["is_pe"] == false && !report["dynamic"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_keep_the_connection_and_bad_frames_close_it() {
    let h = harness().await;
    let addr = protocol(&h, ProtocolConfig::default()).await;
    let mut s = connect(&addr, Some(&h.agent)).await;
    // Unknown command, wrong field count, bad hash, hash mismatch, nothing to analyse.
    assert_eq!(error_code(ask(&mut s, 42, &[]).await), 3);
    assert_eq!(error_code(ask(&mut s, 1, &[b"MZ"]).await), 5);
    assert_eq!(
        error_code(ask(&mut s, 1, &[b"MZ", b"nothex", b""]).await),
        5
    );
    let wrong = "00".repeat(32);
    assert_eq!(
        error_code(ask(&mut s, 1, &[b"MZ", wrong.as_bytes(), b""]).await),
        5
    );
    assert_eq!(error_code(ask(&mut s, 1, &[b"", b"", b""]).await), 5);
    assert_eq!(
        error_code(ask(&mut s, 3, &[b"", b"", b"\xff\xfe"]).await),
        5
    );
    // Still usable.
    assert!(!verdict(ask(&mut s, 1, &[b"hello", b"", b""]).await).0);

    // A huge announced length: ERROR 2 without reading the body, then closed.
    let mut frame = 1u32.to_le_bytes().to_vec();
    frame.extend((u32::MAX - 1).to_le_bytes());
    s.write_all(&frame).await.unwrap();
    assert_eq!(error_code(reply(&mut s).await), 2);
    assert!(closed(&mut s).await);

    // Too many fields: malformed, closed.
    let mut s = connect(&addr, Some(&h.agent)).await;
    let many: Vec<&[u8]> = vec![b"x"; 9];
    assert_eq!(error_code(ask(&mut s, 1, &many).await), 1);
    assert!(closed(&mut s).await);

    // Garbage, then the client hangs up mid-frame: the server closes cleanly.
    let mut s = connect(&addr, Some(&h.agent)).await;
    s.write_all(b"\x01\x00\x00\x00\x10\x00\x00\x00abc")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(error_code(reply(&mut s).await), 1);

    // The listener is still serving.
    let mut s = connect(&addr, Some(&h.agent)).await;
    assert!(!verdict(ask(&mut s, 1, &[b"hello", b"", b""]).await).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_frames_time_out_and_connections_are_bounded() {
    let h = harness().await;
    let addr = protocol(
        &h,
        ProtocolConfig {
            read_timeout_secs: 1,
            max_connections: 3,
            ..Default::default()
        },
    )
    .await;
    let mut slow = connect(&addr, Some(&h.agent)).await;
    slow.write_all(b"\x01\x00\x00\x00\x05\x00").await.unwrap();
    assert_eq!(error_code(reply(&mut slow).await), 8);
    assert!(closed(&mut slow).await);

    let _a = connect(&addr, Some(&h.agent)).await;
    let _b = connect(&addr, Some(&h.agent)).await;
    let _c = connect(&addr, Some(&h.agent)).await;
    let mut d = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(error_code(reply(&mut d).await), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_at_once() {
    let h = harness().await;
    let addr = protocol(&h, ProtocolConfig::default()).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (addr, key) = (addr.clone(), h.agent.clone());
            tokio::spawn(async move {
                let mut s = connect(&addr, Some(&key)).await;
                for j in 0..4 {
                    let body = format!("client {i} request {j}");
                    let (_, _, report) =
                        verdict(ask(&mut s, 1, &[body.as_bytes(), b"", b""]).await);
                    assert_eq!(
                        report["sha256"],
                        vigil_file::analysis::sha256_hex(body.as_bytes())
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_analyses_and_reads_back() {
    let mut h = harness().await;
    h.state.files = Some(service(&h).await);
    let r = h
        .call("POST", "/api/v1/files", Some(&h.agent), eicar())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["verdict"], "malicious");
    let sha = r.body["sha256"].as_str().unwrap().to_string();
    let back = h
        .call(
            "GET",
            &format!("/api/v1/files/{sha}"),
            Some(&h.viewer),
            Vec::new(),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.body["yara"], r.body["yara"]);
    // With the caller's VirusTotal key.
    let r = h
        .call(
            "POST",
            "/api/v1/files?vt_key=good",
            Some(&h.agent),
            b"MZ hello".to_vec(),
        )
        .await;
    assert_eq!(r.body["virustotal"]["engines"], 70, "{}", r.text);
    // Errors: empty body, unknown hash, bad hash, unknown parameter, a viewer posting.
    let r = h
        .call("POST", "/api/v1/files", Some(&h.agent), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let unknown = "cd".repeat(32);
    let r = h
        .call(
            "GET",
            &format!("/api/v1/files/{unknown}"),
            Some(&h.viewer),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .call("GET", "/api/v1/files/xyz", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h
        .call("POST", "/api/v1/files?vt=1", Some(&h.agent), b"x".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = h
        .call("POST", "/api/v1/files", Some(&h.viewer), b"x".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // YARA reload (admin).
    let r = h
        .call("POST", "/api/v1/yara/reload", Some(&h.admin), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["rules"].as_u64().unwrap() >= 20);
    // Without file analysis configured: 503.
    h.state.files = None;
    let r = h
        .call("POST", "/api/v1/files", Some(&h.agent), b"x".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_build_a_dataset_the_trainer_reads() {
    let mut h = harness().await;
    h.state.files = Some(service(&h).await);
    let fixtures = std::path::Path::new("/usr/share/clamav-testfiles");
    if !fixtures.is_dir() {
        assert!(
            std::env::var("VIGIL_REQUIRE_FIXTURES").as_deref() != Ok("1"),
            "apt install clamav-testfiles"
        );
        return;
    }
    let mut shas = Vec::new();
    for (file, label) in [("clam-upx.exe", "malicious"), ("clam.exe", "benign")] {
        let bytes = std::fs::read(fixtures.join(file)).unwrap();
        let r = h
            .call("POST", "/api/v1/files", Some(&h.agent), bytes.clone())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sha = r.body["sha256"].as_str().unwrap().to_string();
        let body = serde_json::json!({ "label": label }).to_string();
        let r = h
            .call(
                "POST",
                &format!("/api/v1/files/{sha}/label"),
                Some(&h.admin),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["label"], u8::from(label == "malicious"));
        shas.push((sha, bytes));
    }
    let r = h
        .call("GET", "/api/v1/files/labels", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.body["labels"].as_array().unwrap().len(), 2, "{}", r.text);
    // The export is ClaMP's CSV, with the features computed from the files.
    let r = h
        .call(
            "GET",
            "/api/v1/files/dataset.csv",
            Some(&h.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let table =
        vigil_file::dataset::read_clamp(r.text.as_bytes(), std::path::Path::new("export")).unwrap();
    assert_eq!(table.rows.len(), 2);
    assert_eq!(table.positives(), 1);
    for (sha, bytes) in &shas {
        let h = vigil_file::headers::Headers::parse(bytes).unwrap();
        let want = vigil_file::clamp::vector(&h);
        assert!(table.rows.contains(&want), "{sha}");
    }
    // Seed 001's CSV: path (the hash), sha256, label; it reads back with the seed reader.
    let r = h
        .call(
            "GET",
            "/api/v1/files/dataset.csv?format=seed",
            Some(&h.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let csv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(csv.path(), &r.text).unwrap();
    let rows = vigil_file::dataset::read_seed_csv(csv.path()).unwrap();
    assert_eq!(rows.len(), 2);
    for (sha, _) in &shas {
        assert!(
            rows.iter()
                .any(|row| &row.sha256 == sha && &row.path == sha)
        );
    }
    assert_eq!(rows.iter().map(|r| u32::from(r.label)).sum::<u32>(), 1);
    let r = h
        .call(
            "GET",
            "/api/v1/files/dataset.csv?format=xml",
            Some(&h.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Errors: a bad label, a hash never analysed, a non-PE file, an agent labelling.
    let (sha, _) = &shas[0];
    let r = h
        .call(
            "POST",
            &format!("/api/v1/files/{sha}/label"),
            Some(&h.admin),
            r#"{"label":"maybe"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let unknown = "12".repeat(32);
    let r = h
        .call(
            "POST",
            &format!("/api/v1/files/{unknown}/label"),
            Some(&h.admin),
            r#"{"label":"benign"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let text = h
        .call(
            "POST",
            "/api/v1/files",
            Some(&h.agent),
            b"plain text".to_vec(),
        )
        .await;
    let text_sha = text.body["sha256"].as_str().unwrap();
    let r = h
        .call(
            "POST",
            &format!("/api/v1/files/{text_sha}/label"),
            Some(&h.admin),
            r#"{"label":"benign"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = h
        .call(
            "POST",
            &format!("/api/v1/files/{sha}/label"),
            Some(&h.agent),
            r#"{"label":"benign"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// The pipeline's file analyzer: once a file is judged malicious, an event that names its
/// hash becomes a finding; the verdict survives a restart (kept in the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_flags_events_naming_a_malicious_hash() {
    let mut h = harness().await;
    let files = service(&h).await;
    h.state.files = Some(files.clone());
    h.registry
        .register(Arc::new(vigil_server::files::FileHashAnalyzer(
            files.known().clone(),
        )));
    let r = h
        .call("POST", "/api/v1/files", Some(&h.agent), eicar())
        .await;
    assert_eq!(r.body["verdict"], "malicious", "{}", r.text);
    let sha = r.body["sha256"].as_str().unwrap().to_string();
    // A clean file is not remembered.
    let clean = h
        .call(
            "POST",
            "/api/v1/files",
            Some(&h.agent),
            b"just text".to_vec(),
        )
        .await;
    assert_eq!(clean.body["verdict"], "clean");
    let clean_sha = clean.body["sha256"].as_str().unwrap().to_string();
    assert_eq!(files.known().len(), 1);

    let events = format!(
        "{}\n{}\n",
        serde_json::json!({"event.category": "process", "host.name": "ws-7",
            "process.name": "invoice.exe", "process.hash.sha256": sha.to_uppercase()}),
        serde_json::json!({"event.category": "process", "host.name": "ws-8",
            "process.name": "notepad.exe", "process.hash.sha256": clean_sha}),
    );
    let r = h
        .call("POST", "/api/v1/events/bulk", Some(&h.agent), events)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let found = h
        .poll_list("/api/v1/findings?analyzer=file", "findings")
        .await;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f["host.name"], "ws-7");
    assert!(
        f["summary"].as_str().unwrap().contains("invoice.exe"),
        "{f}"
    );
    assert_eq!(f["evidence"]["sha256"], sha.as_str());
    assert_eq!(f["evidence"]["field"], "process.hash.sha256");
    assert!(f["score"].as_f64().unwrap() >= 50.0);

    // A new service over the same store knows the verdict again.
    let again = service(&h).await;
    assert_eq!(again.load_known().await.unwrap(), 1);
    assert!(again.known().get(&sha).unwrap().malicious);
}

/// A Cuckoo report for a hash that Vigil never saw run turns dynamic analysis from
/// "nothing observed" into a verdict; bad reports are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_reports_feed_dynamic_analysis() {
    use vigil_server::files::FileRequest;
    let mut h = harness().await;
    let files = service(&h).await;
    h.state.files = Some(files.clone());
    let sha = "5e".repeat(32);
    let dynamic = |files: Arc<FileService>, sha: String| async move {
        files
            .analyze(FileRequest {
                command: vigil_file::protocol::Command::Dynamic,
                bytes: None,
                sha256: Some(sha),
                vt_key: None,
            })
            .await
            .unwrap()
    };
    let before = dynamic(files.clone(), sha.clone()).await;
    assert!(!before.malicious);
    assert!(before.report["sandbox"].is_null());

    let report = serde_json::json!({
        "info": {"score": 9.2, "package": "exe"},
        "target": {"category": "file", "file": {"sha256": sha, "name": "drop.exe"}},
        "signatures": [
            {"name": "injection_runpe", "description": "Process hollowing", "severity": 3,
             "ttp": {"T1055.012": {}}},
            {"name": "network_cnc_http", "description": "HTTP C2", "severity": 3,
             "families": ["Dridex"]}
        ],
        "network": {"hosts": ["203.0.113.50"], "domains": [{"domain": "c2.example"}]},
        "behavior": {"processes": [{"process_name": "drop.exe"}]}
    });
    let r = h
        .call(
            "POST",
            &format!("/api/v1/files/{sha}/sandbox"),
            Some(&h.agent),
            report.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["sandbox"]["sandbox"], "cuckoo");
    assert_eq!(r.body["sandbox"]["families"][0], "Dridex");

    let after = dynamic(files.clone(), sha.clone()).await;
    assert!(after.malicious, "{}", after.report);
    assert_eq!(after.report["sandbox"]["score"], 9.2);
    let explanation = after.report["explanation"].to_string();
    assert!(
        explanation.contains("Cuckoo scored it 9.2/10"),
        "{explanation}"
    );
    assert!(explanation.contains("Dridex"), "{explanation}");

    // Errors: another file's report, not JSON, not a sandbox report, empty, bad hash,
    // a viewer posting.
    let other = "6f".repeat(32);
    let cases: [(&str, String, &String, StatusCode); 6] = [
        (
            &other,
            report.to_string(),
            &h.agent,
            StatusCode::BAD_REQUEST,
        ),
        (&sha, "{not json".into(), &h.agent, StatusCode::BAD_REQUEST),
        (
            &sha,
            r#"{"hello": 1}"#.into(),
            &h.agent,
            StatusCode::BAD_REQUEST,
        ),
        (&sha, String::new(), &h.agent, StatusCode::BAD_REQUEST),
        ("zz", report.to_string(), &h.agent, StatusCode::BAD_REQUEST),
        (&sha, report.to_string(), &h.viewer, StatusCode::FORBIDDEN),
    ];
    for (target, body, key, want) in cases {
        let r = h
            .call(
                "POST",
                &format!("/api/v1/files/{target}/sandbox"),
                Some(key),
                body.clone(),
            )
            .await;
        assert_eq!(r.status, want, "{target} {body:.40}: {}", r.text);
        if want == StatusCode::BAD_REQUEST {
            assert!(r.body["error"]["message"].as_str().is_some(), "{}", r.text);
        }
    }
}
