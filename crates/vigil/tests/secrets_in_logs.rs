//! Secrets never reach the logs. The real `vigil serve` runs with every secret the
//! configuration knows set to a distinctive random value (through `VIGIL_*` variables),
//! debug logging (trace for Vigil's own crates) and the access log file; a mix of traffic
//! uses the admin key as a bearer token, as a WebSocket `?access_token=`, and over the
//! binary protocol, plus refused keys, JWTs, a file upload with a caller's VirusTotal key
//! and a triage that calls the (unreachable) LLM. Then the whole stdout and stderr, the
//! access log file and `vigil config print` are searched for every secret. The one
//! expected appearance is the first admin key on its own stdout line at first start.

mod common;

use common::{Options, Server};
use serde_json::{Value, json};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use vigil_file::protocol::{Reply, decode_reply, encode_request};

/// `tag` and 32 random hex digits (letters first, so that TOML reads it as a string).
fn secret(tag: &str) -> String {
    let mut out = tag.to_string();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn jwt(secret: &str, sub: &str, role: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "role": role, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A WebSocket handshake on `path` (query included); answers the status line and headers.
fn websocket(url: &str, path_and_query: &str, request_id: &str) -> String {
    let addr = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nX-Request-Id: {request_id}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// One request over the binary protocol; `None` when the server closed first.
fn ask(s: &mut std::net::TcpStream, command: u32, fields: &[&[u8]]) -> Option<Reply> {
    s.write_all(&encode_request(command, fields)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((r, _)) = decode_reply(&buf).unwrap() {
            return Some(r);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn protocol(addr: &str) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Access log records once `done` holds for them, waiting up to 30 s.
fn access_records(path: &std::path::Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if done(&records) {
            return records;
        }
        assert!(Instant::now() < deadline, "access log incomplete:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `line` without terminal colour codes (`ESC [ … letter`), should any be there.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn find<'a>(records: &'a [Value], what: &str, f: impl Fn(&Value) -> bool) -> &'a Value {
    records
        .iter()
        .find(|r| f(r))
        .unwrap_or_else(|| panic!("no access record for {what} in {records:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let access_log = logs.path().join("access.log");

    let jwt_secret = secret("JwtSecret");
    let vt_key = secret("VtServerKey");
    let caller_vt_key = secret("VtCallerKey");
    let protocol_vt_key = secret("VtProtocolKey");
    let llm_key = secret("LlmApiKey");
    let slack_token = secret("SlackUrlToken");
    let hook_url_token = secret("HookUrlToken");
    let hook_secret = secret("HookHmacSecret");
    let hook_header = secret("HookHeaderSecret");
    let smtp_password = secret("SmtpPassword");
    let hash_key = secret("NetHashKey");
    let opensearch_password = secret("OsPassword");
    let kafka_password = secret("KafkaPassword");
    let bad_key = format!("vgl_{}", secret("BadKey"));

    // Every outbound target is under .invalid: nothing leaves the machine, and each
    // attempt fails (and is logged) quickly.
    let routes = format!(
        r#"[{{name = "slack", kind = "slack", url = "https://hooks.slack.invalid/services/T0/B0/{slack_token}"}},
           {{name = "hook", kind = "webhook", url = "https://hooks.invalid/in?token={hook_url_token}",
             secret = "{hook_secret}", headers = {{"X-Api-Token" = "{hook_header}"}}}},
           {{name = "mail", kind = "email", email = {{host = "smtp.invalid", username = "vigil",
             password = "{smtp_password}", from = "Vigil <vigil@example.org>", to = ["soc@example.org"]}}}}]"#
    );
    let kafka_options = format!(r#"{{"sasl.password" = "{kafka_password}"}}"#);
    let access_log_str = access_log.to_str().unwrap().to_string();
    let env: Vec<(&str, &str)> = vec![
        ("VIGIL_AUTH__JWT_HS256_SECRET", &jwt_secret),
        ("VIGIL_VIRUSTOTAL__API_KEY", &vt_key),
        ("VIGIL_VIRUSTOTAL__BASE_URL", "https://vt.invalid"),
        ("VIGIL_VIRUSTOTAL__TIMEOUT_MS", "3000"),
        ("VIGIL_VIRUSTOTAL__MAX_RETRIES", "0"),
        ("VIGIL_TRIAGE__LLM__URL", "https://llm.invalid/v1"),
        ("VIGIL_TRIAGE__LLM__MODEL", "test-model"),
        ("VIGIL_TRIAGE__LLM__API_KEY", &llm_key),
        ("VIGIL_TRIAGE__LLM__TIMEOUT_SECS", "3"),
        ("VIGIL_TRIAGE__DEADLINE_SECS", "10"),
        ("VIGIL_RESPONDERS__ROUTES", &routes),
        ("VIGIL_NETWORK__HASH_IPS", "true"),
        ("VIGIL_NETWORK__HASH_KEY", &hash_key),
        ("VIGIL_OPENSEARCH__PASSWORD", &opensearch_password),
        ("VIGIL_KAFKA__OPTIONS", &kafka_options),
        ("VIGIL_PROTOCOL__ENABLED", "true"),
        ("VIGIL_PROTOCOL__LISTEN", "127.0.0.1:0"),
        ("VIGIL_SERVER__ACCESS_LOG", &access_log_str),
    ];
    // Everything at trace but the YARA compiler's internals (wasmtime, cranelift, walrus:
    // 200 000 lines about code generation, which never sees a secret).
    let rust_log = [
        "cranelift_codegen",
        "cranelift_frontend",
        "walrus",
        "wasmtime",
    ]
    .iter()
    .chain(&["wasmtime_environ", "wasmtime_internal_cranelift"])
    .fold("trace".to_string(), |acc, c| format!("{acc},{c}=info"));
    let mut server = Server::start_with(
        data.path(),
        Options {
            env: &env,
            rust_log: &rust_log,
            capture: true,
        },
    );
    let admin = server.admin_key.clone().expect("the first admin key");
    let output = server.output.clone().unwrap();
    let proto_addr = output
        .stdout_after("vigil: file-analysis protocol on ", Duration::from_secs(10))
        .expect("the protocol listens");
    let url = server.url.clone();
    let http = common::client();
    let admin_jwt = jwt(&jwt_secret, "alice", "admin");
    let viewer_jwt = jwt(&jwt_secret, "bob", "viewer");

    // Open route, no credential.
    let r = http
        .get(format!("{url}/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    // The admin key as a bearer token.
    let r = http
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(&admin)
        .json(&json!({"message": "hello from the secrets test", "host": {"name": "pc-1"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = http
        .get(format!("{url}/api/v1/events?limit=5"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A wrong key, a wrong scheme.
    let r = http
        .get(format!("{url}/api/v1/events"))
        .bearer_auth(&bad_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{url}/api/v1/events"))
        .header("authorization", format!("Basic {bad_key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // JWTs: one allowed, one refused for its role.
    let r = http
        .get(format!("{url}/api/v1/me"))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(&viewer_jwt)
        .json(&json!({"message": "refused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A file upload with the caller's VirusTotal key in the query (VirusTotal itself is
    // unreachable), and an incoming request id.
    let r = http
        .post(format!("{url}/api/v1/files?vt_key={caller_vt_key}"))
        .bearer_auth(&admin)
        .header("x-request-id", "upload-1")
        .body(b"MZ this is not really a program".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "upload-1");

    // A triage that asks the (unreachable) LLM with its key.
    let _ = http
        .post(format!("{url}/api/v1/triage"))
        .bearer_auth(&admin)
        .json(&json!({"event": {"message": "Failed password for root from 203.0.113.9 port 4242 ssh2",
                                "host": {"name": "pc-1"}, "event": {"category": "authentication"}}}))
        .send()
        .await
        .unwrap();

    // WebSockets with the key in the query string, then a wrong one.
    let head = websocket(
        &url,
        &format!("/api/v1/stream?access_token={admin}"),
        "ws-probe-1",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let head = websocket(
        &url,
        &format!("/api/v1/stream?access_token={bad_key}"),
        "ws-probe-2",
    );
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // The binary protocol: AUTH with the admin key, a VirusTotal request with the caller's
    // key as a field; then AUTH with a wrong key.
    let (proto_admin, proto_bad, proto_vt) =
        (admin.clone(), bad_key.clone(), protocol_vt_key.clone());
    let proto = proto_addr.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = protocol(&proto);
        assert!(matches!(
            ask(&mut s, 0, &[proto_admin.as_bytes()]),
            Some(Reply::Verdict { .. })
        ));
        let reply = ask(&mut s, 3, &[b"MZ not a program", b"", proto_vt.as_bytes()]);
        assert!(reply.is_some());
        let mut s = protocol(&proto);
        assert!(matches!(
            ask(&mut s, 0, &[proto_bad.as_bytes()]),
            Some(Reply::Error { .. })
        ));
    })
    .await
    .unwrap();

    // Every call is in the access log file.
    let records = access_records(&access_log, |r| {
        r.iter()
            .filter(|r| r["kind"] == "protocol" && r["command"] == "Auth")
            .count()
            == 2
            && r.iter().filter(|r| r["kind"] == "http").count() >= 11
    });
    // `vigil config print`, a separate process with the same environment.
    let printed = assert_cmd::Command::cargo_bin("vigil")
        .unwrap()
        .args(["config", "print"])
        .envs(env.iter().copied())
        .env("RUST_LOG", &rust_log)
        .assert()
        .success()
        .get_output()
        .clone();
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&printed.stdout),
        String::from_utf8_lossy(&printed.stderr)
    );
    assert!(printed.contains("<redacted>"), "{printed}");

    server.terminate(Duration::from_secs(30));
    let stdout: Vec<String> = output.stdout().iter().map(|l| strip_ansi(l)).collect();
    let stderr: Vec<String> = output.stderr().iter().map(|l| strip_ansi(l)).collect();
    let access_text = std::fs::read_to_string(&access_log).unwrap();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("vigil::access") && l.contains("route=/api/v1/stream")),
        "the access log is not in the server's log output: {:#?}",
        stderr
            .iter()
            .filter(|l| l.contains("vigil::access"))
            .collect::<Vec<_>>()
    );
    assert!(
        stderr.len() > 50,
        "too little was logged to mean anything: {stderr:#?}"
    );

    // The bootstrap line is the one place the admin key may appear.
    let bootstrap: Vec<usize> = stdout
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == admin)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bootstrap.len(), 1, "{stdout:#?}");
    let secrets: Vec<(&str, String)> = vec![
        ("the admin API key", admin.clone()),
        (
            "the admin API key's random part",
            admin["vgl_".len()..].to_string(),
        ),
        ("a refused API key", bad_key.clone()),
        ("the JWT secret", jwt_secret.clone()),
        ("an admin JWT", admin_jwt.clone()),
        ("a viewer JWT", viewer_jwt.clone()),
        (
            "a JWT's signature",
            admin_jwt.rsplit('.').next().unwrap().to_string(),
        ),
        ("the server's VirusTotal key", vt_key.clone()),
        ("a caller's VirusTotal key (REST)", caller_vt_key.clone()),
        (
            "a caller's VirusTotal key (protocol)",
            protocol_vt_key.clone(),
        ),
        ("the LLM api_key", llm_key.clone()),
        ("the Slack URL token", slack_token.clone()),
        ("the webhook URL token", hook_url_token.clone()),
        ("the webhook HMAC secret", hook_secret.clone()),
        ("the webhook header", hook_header.clone()),
        ("the SMTP password", smtp_password.clone()),
        ("the network hash key", hash_key.clone()),
        ("the OpenSearch password", opensearch_password.clone()),
        ("a Kafka password", kafka_password.clone()),
    ];
    let mut sources: Vec<(String, &str)> = Vec::new();
    for (i, l) in stdout.iter().enumerate() {
        if !bootstrap.contains(&i) {
            sources.push((format!("server stdout line {}", i + 1), l));
        }
    }
    for (i, l) in stderr.iter().enumerate() {
        sources.push((format!("server stderr line {}", i + 1), l));
    }
    for (i, l) in access_text.lines().enumerate() {
        sources.push((format!("access log line {}", i + 1), l));
    }
    for (i, l) in printed.lines().enumerate() {
        sources.push((format!("`vigil config print` line {}", i + 1), l));
    }
    // A reported line shows each secret as <what it is>.
    let masked = |line: &str| {
        secrets.iter().fold(line.to_string(), |l, (what, value)| {
            l.replace(value.as_str(), &format!("<{what}>"))
        })
    };
    let mut leaks = Vec::new();
    for (where_, line) in &sources {
        for (what, value) in &secrets {
            if line.contains(value.as_str()) {
                leaks.push(format!("{what} in {where_}: {}", masked(line)));
            }
        }
        // Query strings are never logged: they carry credentials.
        for q in ["access_token=", "vt_key="] {
            if line.contains(q) {
                leaks.push(format!(
                    "a query string ({q}) in {where_}: {}",
                    masked(line)
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} secret(s) in the output ({} lines searched):\n{}",
        leaks.len(),
        sources.len(),
        leaks.join("\n")
    );

    // And the access log records who did what.
    let health = find(&records, "health", |r| r["path"] == "/api/v1/health");
    assert_eq!(health["who"], "-");
    assert_eq!(health["role"], "-");
    assert_eq!(health["status"], 200);
    assert_eq!(health["request_id"].as_str(), Some(id.as_str()));
    assert!(health["bytes"].as_u64().unwrap() > 0);
    // `hash_ips` is on: the client address is written as its pseudonym (127.0.0.1 is
    // internal: fd76:6967::/32), with the port.
    assert!(
        health["client"]
            .as_str()
            .unwrap()
            .starts_with("[fd76:6967:"),
        "{health}"
    );
    let post = find(&records, "the admin's event", |r| {
        r["method"] == "POST" && r["route"] == "/api/v1/events" && r["role"] == "admin"
    });
    let admin_subject = post["who"].as_str().unwrap().to_string();
    assert!(admin_subject.starts_with("key:"), "{post}");
    let ws = find(&records, "the WebSocket", |r| {
        r["request_id"] == "ws-probe-1"
    });
    assert_eq!(ws["route"], "/api/v1/stream");
    assert_eq!(ws["path"], "/api/v1/stream");
    assert_eq!(ws["status"], 101);
    assert_eq!(ws["who"], admin_subject.as_str());
    let ws_bad = find(&records, "the refused WebSocket", |r| {
        r["request_id"] == "ws-probe-2"
    });
    assert_eq!(
        (ws_bad["status"].as_u64(), ws_bad["who"].as_str()),
        (Some(401), Some("-"))
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["status"] == 401 && r["route"] == "/api/v1/events")
            .count(),
        2
    );
    let me = find(&records, "the admin JWT", |r| r["route"] == "/api/v1/me");
    assert_eq!(
        (me["who"].as_str(), me["role"].as_str()),
        (Some("jwt:alice"), Some("admin"))
    );
    let refused = find(&records, "the viewer JWT", |r| r["status"] == 403);
    assert_eq!(
        (refused["who"].as_str(), refused["role"].as_str()),
        (Some("jwt:bob"), Some("viewer"))
    );
    let upload = find(&records, "the upload", |r| r["request_id"] == "upload-1");
    assert_eq!(
        (upload["route"].as_str(), upload["path"].as_str()),
        (Some("/api/v1/files"), Some("/api/v1/files"))
    );
    let auth_ok = find(&records, "protocol AUTH", |r| {
        r["kind"] == "protocol" && r["command"] == "Auth" && r["status"] == "ok"
    });
    assert_eq!(auth_ok["who"], admin_subject.as_str());
    assert!(auth_ok["bytes_in"].as_u64().unwrap() > 0);
    let vt = find(&records, "protocol VirusTotal", |r| {
        r["kind"] == "protocol" && r["command"] == "VirusTotal"
    });
    assert_eq!(vt["who"], admin_subject.as_str());
    let auth_bad = find(&records, "protocol AUTH refused", |r| {
        r["kind"] == "protocol" && r["status"] == "unauthorized"
    });
    assert_eq!(
        (auth_bad["who"].as_str(), auth_bad["code"].as_u64()),
        (Some("-"), Some(4))
    );
}
