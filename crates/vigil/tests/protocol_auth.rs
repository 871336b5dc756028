//! The file-analysis protocol (seed 001, `docs/protocol.md`) of the real `vigil serve`
//! refuses every connection that does not authenticate first with a key or JWT of role
//! `agent` or `admin`: `ERROR 4` (unauthorized), then the server closes the connection,
//! and nothing sent after the refused frame is answered.
//!
//! `crates/vigil-server/tests/files.rs` (`authentication_comes_first`) checks the basics
//! on an in-process listener; this drives the binary with `[protocol] enabled` and its
//! default `require_auth`, and covers every kind of bad credential and bad `AUTH` frame.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_file::protocol::{Reply, encode_request};

const SECRET: &str = "protocol-auth-test-secret-0123456789abcdef";

/// `vigil serve` with the protocol listener on a free port.
struct Served {
    child: Child,
    http: String,
    protocol: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &std::path::Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("VIGIL_PROTOCOL__ENABLED", "true")
        .env("VIGIL_PROTOCOL__LISTEN", "127.0.0.1:0")
        .env("VIGIL_AUTH__JWT_HS256_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting vigil serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut key, mut http) = (None, None);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let t = line.trim();
            if t.starts_with("vgl_") {
                key = Some(t.to_string());
            }
            if let Some(url) = t.strip_prefix("vigil: listening on ") {
                http = Some(url.to_string());
            }
            if let Some(addr) = t.strip_prefix("vigil: file-analysis protocol on ") {
                let _ = tx.send((http.clone(), addr.to_string(), key.clone()));
            }
        }
    });
    let (http, protocol, admin) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("vigil serve did not open the protocol listener within 60 s");
    Served {
        child,
        http: http.expect("the HTTP address is printed first"),
        protocol,
        admin: admin.expect("a first admin key on a new data dir"),
    }
}

/// Whether the server closed the connection (and sent nothing more).
async fn closed(s: &mut TcpStream) -> Result<(), String> {
    let mut b = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
        Ok(Ok(n)) => Err(format!("{n} more bytes: {:?}", &b[..n])),
        Err(_) => Err("still open after 5 s".into()),
    }
}

/// Sends `frame` on a new connection; the reply and whether the server then closed.
async fn refused(addr: &str, frame: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(frame).await.unwrap();
    match common::protocol_reply(&mut s).await {
        Some(Reply::Error { code: 4, message }) => {
            if message.contains("vgl_") || message.contains("eyJ") {
                return Err(format!("the refusal echoes the credential: {message}"));
            }
            closed(&mut s).await
        }
        other => Err(format!("want ERROR 4, got {other:?}")),
    }
}

/// `AUTH` with `credential`: the role the server accepted it with.
async fn authenticated(s: &mut TcpStream, credential: &str) -> String {
    s.write_all(&encode_request(0, &[credential.as_bytes()]))
        .await
        .unwrap();
    match common::protocol_reply(s).await {
        Some(Reply::Verdict {
            malicious: true,
            score: 0.0,
            report,
        }) => {
            let v: serde_json::Value = serde_json::from_slice(&report).unwrap();
            assert_eq!(v["authenticated"], true, "{v}");
            v["role"].as_str().unwrap().to_string()
        }
        other => panic!("AUTH refused: {other:?}"),
    }
}

// A JWT needs HMAC-SHA256 and base64url; this crate has SHA-256 (vigil-file) only.

fn sha256(data: &[u8]) -> Vec<u8> {
    let hex = vigil_file::analysis::sha256_hex(data);
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key); // keys here are shorter than a block
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(sha256(&inner))
        .collect();
    sha256(&outer)
}

fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | ((*b as u32) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn jwt(role: &str, exp_offset: i64, secret: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_offset;
    let claims = serde_json::json!({"sub": "bob", "role": role, "exp": exp});
    let signed = format!(
        "{}.{}",
        base64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        base64url(claims.to_string().as_bytes())
    );
    let signature = base64url(&hmac_sha256(secret.as_bytes(), signed.as_bytes()));
    format!("{signed}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_refuses_and_closes_without_a_good_credential() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let addr = server.protocol.as_str();
    let http = common::client();
    let mut keys = std::collections::HashMap::new();
    for role in ["agent", "viewer"] {
        let r = http
            .post(format!("{}/api/v1/keys", server.http))
            .bearer_auth(&server.admin)
            .json(&serde_json::json!({"name": role, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: serde_json::Value = r.json().await.unwrap();
        keys.insert(
            role,
            (
                body["key"].as_str().unwrap().to_string(),
                body["id"].clone(),
            ),
        );
    }
    let (agent, agent_id) = keys["agent"].clone();
    let viewer = keys["viewer"].0.clone();

    // The good credentials work (and show the JWT helper signs correctly).
    for (credential, role) in [
        (agent.clone(), "agent"),
        (server.admin.clone(), "admin"),
        (jwt("agent", 600, SECRET), "agent"),
        (jwt("admin", 600, SECRET), "admin"),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(authenticated(&mut s, &credential).await, role);
        s.write_all(&encode_request(1, &[b"hello", b"", b""]))
            .await
            .unwrap();
        assert!(
            matches!(
                common::protocol_reply(&mut s).await,
                Some(Reply::Verdict { .. })
            ),
            "an analysis after AUTH as {role}"
        );
    }

    let (unknown_key, _) = vigil_server::generate_api_key("never stored", vigil_core::Role::Admin);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        // A request before AUTH: docs/protocol.md "Any other first frame gets ERROR 4 and
        // the connection closes".
        (
            "static analysis first",
            encode_request(1, &[b"MZ", b"", b""]),
        ),
        (
            "VirusTotal lookup first",
            encode_request(3, &[b"", &[b'0'; 64], b""]),
        ),
        ("unknown command first", encode_request(42, &[])),
        // Wrong, expired, forged credentials and roles other than agent/admin.
        (
            "unknown vgl_ key",
            encode_request(0, &[unknown_key.as_bytes()]),
        ),
        ("garbage credential", encode_request(0, &[b"not-a-token!"])),
        ("empty credential", encode_request(0, &[b""])),
        ("viewer key", encode_request(0, &[viewer.as_bytes()])),
        (
            "viewer JWT",
            encode_request(0, &[jwt("viewer", 600, SECRET).as_bytes()]),
        ),
        (
            "expired agent JWT",
            encode_request(0, &[jwt("agent", -3600, SECRET).as_bytes()]),
        ),
        (
            "agent JWT signed with another secret",
            encode_request(
                0,
                &[jwt("agent", 600, "another-secret-another-secret-0123").as_bytes()],
            ),
        ),
        (
            "JWT with an unknown role",
            encode_request(0, &[jwt("root", 600, SECRET).as_bytes()]),
        ),
        // AUTH frames that cannot be checked: docs "a field count other than one, a
        // credential that is not UTF-8".
        ("AUTH without a field", encode_request(0, &[])),
        (
            "AUTH with two fields",
            encode_request(0, &[agent.as_bytes(), b"x"]),
        ),
        ("AUTH not UTF-8", encode_request(0, &[b"vgl_\xff\xfe"])),
    ];
    // A refused AUTH followed at once by a request: only the refusal is answered.
    let mut pipelined = encode_request(0, &[b"vgl_wrong"]);
    pipelined.extend(encode_request(1, &[b"hello", b"", b""]));
    cases.push(("bad AUTH then a request, in one write", pipelined));
    // A request after AUTH was refused: the server has closed.
    let mut failures = Vec::new();
    for (what, frame) in &cases {
        if let Err(e) = refused(addr, frame).await {
            failures.push(format!("{what}: {e}"));
        }
    }

    // A revoked key, refused at once although it was just used (the REST revocation
    // clears the credential cache the protocol shares).
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(authenticated(&mut s, &agent).await, "agent");
    let r = http
        .delete(format!(
            "{}/api/v1/keys/{}",
            server.http,
            agent_id.as_str().unwrap()
        ))
        .bearer_auth(&server.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    if let Err(e) = refused(addr, &encode_request(0, &[agent.as_bytes()])).await {
        failures.push(format!("revoked agent key: {e}"));
    }
    assert!(
        failures.is_empty(),
        "the protocol listener let these through or answered otherwise than ERROR 4 and \
         close:\n{}",
        failures.join("\n")
    );
}
