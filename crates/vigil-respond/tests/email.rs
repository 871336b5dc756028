//! The email responder against a real SMTP server (aiosmtpd, from PyPI): STARTTLS with a
//! private CA, authentication, plain text and HTML, a transient failure retried, a wrong
//! password ending as a dead letter.
//!
//! Needs `python3` with `aiosmtpd` (or `VIGIL_TEST_PYTHON` pointing at one) and `openssl`;
//! skipped without them unless `VIGIL_REQUIRE_SMTP=1` (set by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use vigil_core::{Incident, IncidentStatus, Severity};
use vigil_respond::responders::{EmailConfig, SmtpTls};
use vigil_respond::{RespondConfig, Responders, RouteConfig, RouteKind};
use vigil_store::{DeliveryState, SqliteOptions, SqliteStore, Store};

fn python() -> Option<String> {
    let py = std::env::var("VIGIL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        Some(py)
    } else if std::env::var("VIGIL_REQUIRE_SMTP").as_deref() == Ok("1") {
        panic!("python3 with aiosmtpd and openssl are required (VIGIL_REQUIRE_SMTP=1)");
    } else {
        eprintln!("skipped: no python3 with aiosmtpd, or no openssl");
        None
    }
}

/// A private CA and a certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vigil-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

struct Smtp {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp(py: &str, dir: &Path, cert: &Path, key: &Path, fail_first: u32) -> Smtp {
    use std::io::BufRead;
    let out = dir.join(format!("mail-{fail_first}"));
    std::fs::create_dir_all(&out).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
    let mut child = Command::new(py)
        .arg(script)
        .arg(&out)
        .arg(cert)
        .arg(key)
        .args(["alerts", "hunter2", &fail_first.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server prints its port");
    Smtp { child, port, out }
}

fn route(name: &str, port: u16, ca: &Path, password: &str) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        kind: RouteKind::Email,
        url: String::new(),
        topic: None,
        email: Some(EmailConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::Starttls,
            ca_file: Some(ca.to_path_buf()),
            username: Some("alerts".into()),
            password: Some(password.into()),
            from: "Vigil <vigil@example.org>".into(),
            to: vec!["soc@example.org".into(), "oncall@example.org".into()],
        }),
        secret: None,
        headers: Default::default(),
        min_severity: Severity::Medium,
        analyzers: vec![],
        hosts: vec![],
        tags: vec![],
        timeout_secs: 5,
        max_attempts: 3,
        backoff_ms: 10,
        max_backoff_secs: 1,
        per_minute: 0,
    }
}

fn incident() -> Incident {
    let now = vigil_core::now_rfc3339();
    Incident {
        id: vigil_core::new_id(),
        title: "Brute force <then> success on db-1".into(),
        status: IncidentStatus::Open,
        severity: Severity::High,
        score: 88.0,
        entity: "host:db-1".into(),
        host_name: Some("db-1".into()),
        first_seen: now.clone(),
        last_seen: now.clone(),
        finding_ids: vec!["f1".into()],
        techniques: vec!["T1110".into()],
        assignee: None,
        notes: vec![],
        created_at: now.clone(),
        updated_at: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_over_starttls_with_auth_once() {
    let Some(py) = python() else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    // This server answers 451 to the first message, then accepts.
    let server = smtp(&py, dir.path(), &cert, &key, 1);
    let wrong = smtp(&py, dir.path(), &cert, &key, 0);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("db"), SqliteOptions::default()).unwrap());
    let r = Responders::new(
        RespondConfig {
            public_url: "https://vigil.example.org".into(),
            routes: vec![
                route("mail", server.port, &ca, "hunter2"),
                route("bad-password", wrong.port, &ca, "wrong"),
            ],
            // The SMTP servers are on 127.0.0.1.
            allow_internal: true,
            ..Default::default()
        },
        store.clone(),
    )
    .unwrap();
    let inc = incident();
    assert_eq!(r.incident_changed(&inc, &[]).await.unwrap(), 2);
    for _ in 0..100 {
        r.run_once().await.unwrap();
        if store
            .list_deliveries(Some(DeliveryState::Pending), 10)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = store.list_deliveries(None, 10).await.unwrap();
    let by = |n: &str| all.iter().find(|d| d.route == n).unwrap();
    assert_eq!(
        by("mail").state,
        DeliveryState::Delivered,
        "{:?}",
        by("mail")
    );
    assert_eq!(by("mail").attempts, 2, "one 451, then accepted");
    assert_eq!(by("bad-password").state, DeliveryState::Dead);
    assert_eq!(
        by("bad-password").attempts,
        1,
        "a refused login is permanent"
    );

    let mails: Vec<_> = std::fs::read_dir(&server.out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(mails.len(), 1);
    let mail: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mails[0]).unwrap()).unwrap();
    assert_eq!(mail["tls"], true);
    assert_eq!(mail["authenticated"], true);
    assert_eq!(
        mail["to"],
        serde_json::json!(["soc@example.org", "oncall@example.org"])
    );
    // Quoted-printable soft line breaks and `=3D` undone.
    let data = &mail["data"]
        .as_str()
        .unwrap()
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    assert!(
        data.contains("Subject: [Vigil][HIGH] Brute force <then> success on db-1"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(
        data.contains("text/plain") && data.contains("text/html"),
        "{data}"
    );
    assert!(
        data.contains("&lt;then&gt;"),
        "HTML escapes event text: {data}"
    );
    assert!(
        data.contains(&format!(
            "https://vigil.example.org/api/v1/incidents/{}",
            inc.id
        )),
        "{data}"
    );
    assert!(std::fs::read_dir(&wrong.out).unwrap().next().is_none());
}

#[test]
fn email_routes_are_checked() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let good = route("m", 25, Path::new("/nonexistent/ca.pem"), "x");
    let mut no_to = good.clone();
    no_to.email.as_mut().unwrap().to.clear();
    let mut bad_from = good.clone();
    bad_from.email.as_mut().unwrap().from = "not an address".into();
    let mut no_email = good.clone();
    no_email.email = None;
    for (case, want) in [
        (good, "ca_file"),
        (no_to, "recipient"),
        (bad_from, "not an address"),
        (no_email, "needs"),
    ] {
        let err = Responders::new(
            RespondConfig {
                routes: vec![case],
                allow_internal: true,
                ..Default::default()
            },
            store.clone(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains(want), "{err}");
    }
}
