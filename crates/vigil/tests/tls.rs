//! TLS on both listeners of the real `vigil serve`, with mutual TLS for agents (issue 12).
//!
//! Certificates come from `vigil tls init` itself. With `client_auth = "required"`: an
//! agent with its certificate and an API key gets in; without the certificate, with one
//! from another CA, without trusting the server's CA, or in plain text, the connection
//! fails; the certificate alone is not a credential; the access log names the agent's
//! certificate; the file-analysis protocol works over TLS and not in plain text; and
//! `vigil events send` reaches the server with the client options. With
//! `client_auth = "optional"`, a client without a certificate gets in.

mod common;

use common::{Options, Server};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_file::protocol::{Reply, decode_reply, encode_request};

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

/// `vigil tls init DIR --agent edr-1`, checked for what it prints and writes.
fn init(dir: &Path) -> Pki {
    let out = assert_cmd::Command::cargo_bin("vigil")
        .unwrap()
        .args(["tls", "init", "--agent", "edr-1", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(files["agents"][0]["name"], "edr-1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key", "agent-edr-1.key"] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
    // A second run refuses to overwrite anything.
    let again = assert_cmd::Command::cargo_bin("vigil")
        .unwrap()
        .args(["tls", "init"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    Pki {
        dir: dir.to_path_buf(),
    }
}

fn client(pki: &Pki, ca: bool, identity: Option<(&Pki, &str)>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(20));
    if ca {
        b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pki.read("ca.pem")).unwrap());
    }
    if let Some((owner, name)) = identity {
        let mut pem = owner.read(&format!("agent-{name}.pem"));
        pem.extend(owner.read(&format!("agent-{name}.key")));
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

fn start(data: &Path, pki: &Pki, auth: &str, access_log: &Path) -> Server {
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let access = access_log.to_str().unwrap();
    Server::start_with(
        data,
        Options {
            env: &[
                ("VIGIL_TLS__CERT", cert.to_str().unwrap()),
                ("VIGIL_TLS__KEY", key.to_str().unwrap()),
                ("VIGIL_TLS__CLIENT_CA", ca.to_str().unwrap()),
                ("VIGIL_TLS__CLIENT_AUTH", auth),
                ("VIGIL_PROTOCOL__ENABLED", "true"),
                ("VIGIL_PROTOCOL__LISTEN", "127.0.0.1:0"),
                ("VIGIL_SERVER__ACCESS_LOG", access),
            ],
            capture: true,
            ..Options::default()
        },
    )
}

fn event() -> serde_json::Value {
    serde_json::json!({
        "@timestamp": "2026-12-01T06:00:00Z",
        "event": {"category": ["process"], "id": "tls-e1"},
        "host": {"name": "edr-host"},
        "message": "over TLS"
    })
}

fn connector(pki: &Pki, identity: Option<&str>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in vigil_server::tls::read_certs(&pki.path("ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some(name) => {
            let certs =
                vigil_server::tls::read_certs(&pki.path(&format!("agent-{name}.pem"))).unwrap();
            use rustls::pki_types::pem::PemObject;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(
                pki.path(&format!("agent-{name}.key")),
            )
            .unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_agents_with_a_certificate_and_a_key_in_and_no_one_else() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(&tmp.path().join("pki"));
    let stranger = init(&tmp.path().join("other-pki"));
    let access_log = tmp.path().join("access.log");
    let server = start(&tmp.path().join("data"), &pki, "required", &access_log);
    let url = server.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    let admin = server.admin_key.clone().unwrap();
    let out = server.output.clone().unwrap();
    let proto = out
        .stdout_after("vigil: file-analysis protocol on ", Duration::from_secs(30))
        .expect("the protocol listener");
    let proto = proto.trim_end_matches(" (TLS)").to_string();

    // The agent: trusted CA, its certificate and a key.
    let agent = client(&pki, true, Some((&pki, "edr-1")));
    let health = agent
        .get(format!("{url}/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let no_key = agent
        .post(format!("{url}/api/v1/events"))
        .json(&event())
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_key.status(),
        401,
        "a client certificate is not a credential"
    );
    let stored = agent
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(&admin)
        .json(&event())
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success(), "{}", stored.status());

    // Everyone else fails in the handshake.
    let refused = [
        ("no client certificate", client(&pki, true, None)),
        (
            "a certificate from another CA",
            client(&pki, true, Some((&stranger, "edr-1"))),
        ),
        (
            "not trusting the server's CA",
            client(&pki, false, Some((&pki, "edr-1"))),
        ),
    ];
    for (what, c) in refused {
        let r = c.get(format!("{url}/api/v1/health")).send().await;
        assert!(r.is_err(), "{what}: {:?}", r.map(|r| r.status()));
    }
    let plain = client(&pki, false, None)
        .get(url.replace("https://", "http://") + "/api/v1/health")
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP: {:?}",
        plain.map(|r| r.status())
    );

    // The protocol over TLS, with the agent's certificate.
    let tcp = tokio::net::TcpStream::connect(&proto).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector(&pki, Some("edr-1"))
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    tls.write_all(&encode_request(0, &[admin.as_bytes()]))
        .await
        .unwrap();
    match common::protocol_reply(&mut tls).await {
        Some(Reply::Verdict { report, .. }) => {
            let v: serde_json::Value = serde_json::from_slice(&report).unwrap();
            assert_eq!(v["authenticated"], true);
        }
        other => panic!("AUTH over TLS: {other:?}"),
    }
    // Without a client certificate the protocol refuses too.
    let tcp = tokio::net::TcpStream::connect(&proto).await.unwrap();
    let refused = match connector(&pki, None).connect(name, tcp).await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(&encode_request(0, &[admin.as_bytes()])).await;
            matches!(
                tokio::time::timeout(Duration::from_secs(20), s.read(&mut [0u8; 64])).await,
                Ok(Err(_)) | Ok(Ok(0))
            )
        }
    };
    assert!(
        refused,
        "the protocol answered a client without a certificate"
    );
    // In plain text the AUTH frame is not a TLS hello: at most a TLS alert comes back
    // (not a protocol reply), then the connection closes.
    let mut plain = tokio::net::TcpStream::connect(&proto).await.unwrap();
    plain
        .write_all(&encode_request(0, &[admin.as_bytes()]))
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .ok();
    assert!(answer.len() < 16, "{answer:?}");
    assert!(
        !matches!(decode_reply(&answer), Ok(Some(_))),
        "a protocol reply in plain text: {answer:?}"
    );

    // `vigil events send` with the client options.
    let ndjson = tmp.path().join("events.ndjson");
    let mut e = event();
    e["event"]["id"] = "tls-e2".into();
    std::fs::write(&ndjson, format!("{e}\n")).unwrap();
    let sent = tokio::task::spawn_blocking({
        let (url, admin, ndjson) = (url.clone(), admin.clone(), ndjson.clone());
        let (ca, cert, key) = (
            pki.path("ca.pem"),
            pki.path("agent-edr-1.pem"),
            pki.path("agent-edr-1.key"),
        );
        move || {
            assert_cmd::Command::cargo_bin("vigil")
                .unwrap()
                .args(["events", "send", "--json", "--url", &url, "--token", &admin])
                .arg(&ndjson)
                .arg("--ca-cert")
                .arg(ca)
                .arg("--client-cert")
                .arg(cert)
                .arg("--client-key")
                .arg(key)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(summary["accepted"], 1, "{summary}");

    // The access log names the agent's certificate on its calls.
    let mut server = server;
    server.terminate(Duration::from_secs(30));
    let log = std::fs::read_to_string(&access_log).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ingest = lines
        .iter()
        .find(|l| l["route"] == "/api/v1/events" && l["status"] == 202)
        .or_else(|| {
            lines
                .iter()
                .find(|l| l["route"] == "/api/v1/events" && l["who"] != "-")
        })
        .expect("the stored event's access record");
    assert_eq!(ingest["tls_client"], "edr-1", "{ingest}");
    let proto_auth = lines
        .iter()
        .find(|l| l["kind"] == "protocol" && l["command"] == "Auth" && l["status"] == "ok")
        .expect("the protocol AUTH record");
    assert_eq!(proto_auth["tls_client"], "edr-1", "{proto_auth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_let_clients_without_one_in() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(&tmp.path().join("pki"));
    let stranger = init(&tmp.path().join("other-pki"));
    let access_log = tmp.path().join("access.log");
    let server = start(&tmp.path().join("data"), &pki, "optional", &access_log);
    let url = server.url.clone();
    let ok = client(&pki, true, None)
        .get(format!("{url}/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // A certificate that is shown must still verify.
    let bad = client(&pki, true, Some((&stranger, "edr-1")))
        .get(format!("{url}/api/v1/health"))
        .send()
        .await;
    assert!(bad.is_err(), "{:?}", bad.map(|r| r.status()));
}

#[test]
fn a_broken_tls_configuration_stops_the_start_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(&tmp.path().join("pki"));
    let out = assert_cmd::Command::cargo_bin("vigil")
        .unwrap()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("VIGIL_TLS__CERT", pki.path("server.pem"))
        .env("VIGIL_TLS__KEY", pki.path("ca.key"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not fit"), "{err}");
}
