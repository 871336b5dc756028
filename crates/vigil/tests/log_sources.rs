//! Log sources of the real server: followed files through rotation and restarts (SIGKILL
//! included) without loss or duplication, and syslog over UDP and TCP.

mod common;

use common::{Server, client};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

async fn messages(server: &Server, key: &str) -> Vec<String> {
    let http = client();
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{}/api/v1/events", server.url))
            .bearer_auth(key)
            .query(&[("limit", "1000")]);
        if let Some(n) = &next {
            req = req.query(&[("next", n)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for e in page["events"].as_array().unwrap() {
            out.push(e["message"].as_str().unwrap_or_default().to_string());
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    out.sort();
    out
}

/// Waits until the server holds `n` events (or 20 s pass) and returns their messages.
async fn wait_for(server: &Server, key: &str, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let got = messages(server, key).await;
        if got.len() >= n || start.elapsed() > Duration::from_secs(20) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn batch(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} line {i:04}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_survive_rotation_and_restarts_without_loss_or_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    let files = format!("[\"{}\"]", logs.path().join("app.log*").display());
    let env = [
        ("VIGIL_LOG_SOURCES__FILES", files.as_str()),
        ("VIGIL_LOG_SOURCES__POLL_MS", "50"),
    ];
    append(&app, &batch("a", 300));
    let server = Server::start_with_env(data.path(), &env);
    let key = server.admin_key.clone().unwrap();
    assert_eq!(wait_for(&server, &key, 300).await.len(), 300);

    // Rotation while running: the old file gets a last line after the rename.
    std::fs::rename(&app, logs.path().join("app.log.1")).unwrap();
    append(&logs.path().join("app.log.1"), &batch("b", 1));
    append(&app, &batch("c", 200));
    assert_eq!(wait_for(&server, &key, 501).await.len(), 501);

    // SIGKILL in the middle of writing, more lines while down, restart.
    append(&app, &batch("d", 500));
    server.kill();
    append(&app, &batch("e", 100));
    let server = Server::start_with_env(data.path(), &env);
    let got = wait_for(&server, &key, 1101).await;
    let mut want: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .zip([300, 1, 200, 500, 100])
        .flat_map(|(t, n)| batch(t, n))
        .collect();
    want.sort();
    // Give a duplicate a chance to show up before comparing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_again = messages(&server, &key).await;
    assert_eq!(got.len(), 1101);
    assert_eq!(got_again, want, "every line once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_udp_and_tcp_becomes_events() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        data.path(),
        &[
            ("VIGIL_LOG_SOURCES__SYSLOG_UDP", "127.0.0.1:0"),
            ("VIGIL_LOG_SOURCES__SYSLOG_TCP", "127.0.0.1:0"),
        ],
    );
    let key = server.admin_key.clone().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = server
        .syslog_udp
        .clone()
        .expect("syslog udp address printed");
    udp.send_to(b"<34>Oct 11 22:14:15 web1 sshd[123]: Failed password for root from 203.0.113.9 port 4242 ssh2", &udp_addr).unwrap();
    udp.send_to(b"\xff\xfe garbage without a header", &udp_addr)
        .unwrap();
    let tcp_addr = server
        .syslog_tcp
        .clone()
        .expect("syslog tcp address printed");
    let mut tcp = std::net::TcpStream::connect(&tcp_addr).unwrap();
    // A newline frame, an octet-counted frame, and a very long line.
    tcp.write_all(b"<165>1 2026-11-30T10:00:00Z db1 postgres 77 - - connection authorized\n")
        .unwrap();
    let framed = "<13>Nov 30 10:00:01 db1 cron[9]: job done";
    tcp.write_all(format!("{} {framed}", framed.len()).as_bytes())
        .unwrap();
    tcp.write_all(&[b'x'; 200_000]).unwrap();
    tcp.write_all(b"\n<13>Nov 30 10:00:02 db1 app: after the long one\n")
        .unwrap();
    drop(tcp);
    let got = wait_for(&server, &key, 6).await;
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(got.contains(&"Failed password for root from 203.0.113.9 port 4242 ssh2".to_string()));
    assert!(got.contains(&"connection authorized".to_string()));
    assert!(got.contains(&"job done".to_string()));
    assert!(got.contains(&"after the long one".to_string()));
    assert!(
        got.iter()
            .any(|m| m.starts_with("xxxx") && m.len() <= 64 * 1024)
    );
    // Structured fields from the header.
    let http = client();
    let page: Value = http
        .get(format!("{}/api/v1/events", server.url))
        .bearer_auth(&key)
        .query(&[("host.name", "web1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let e = &page["events"][0];
    assert_eq!(e["process"]["name"], "sshd");
    assert_eq!(e["log"]["syslog"]["severity"]["name"], "critical");
    assert_eq!(e["event"]["category"][0], "log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_of_syslog_datagrams_is_stored_promptly() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        data.path(),
        &[("VIGIL_LOG_SOURCES__SYSLOG_UDP", "127.0.0.1:0")],
    );
    let key = server.admin_key.clone().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.syslog_udp.clone().unwrap();
    // One datagram every 50 ms never fills a batch and never leaves the socket idle for
    // long: the first ones must be stored while the trickle goes on.
    let mut stored_during = 0;
    for i in 0..40 {
        let line = format!("<13>Nov 30 10:00:00 h app: tick {i:02}");
        udp.send_to(line.as_bytes(), &addr).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if i == 30 {
            stored_during = messages(&server, &key).await.len();
        }
    }
    assert!(
        stored_during >= 20,
        "only {stored_during} of 31 stored while the trickle went on"
    );
    assert_eq!(wait_for(&server, &key, 40).await.len(), 40);
}
