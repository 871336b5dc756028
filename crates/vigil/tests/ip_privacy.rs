//! `[network] hash_ips` is honoured everywhere Vigil stores an address (issue 12): the
//! events' ECS address fields (whichever way they come in), the network detector's rows,
//! findings, and the access log's client addresses. The real addresses appear nowhere in
//! the data directory or the access log, and `vigil config pseudonym` gives the stored
//! value, so a known address can still be searched for.

mod common;

use common::{Options, Server, client};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "ip-privacy-test-key-0123456789";
const PUBLIC: &str = "203.0.113.77";
const PRIVATE: &str = "10.66.77.88";

/// Every file under `dir`, read whole (SQLite's database and WAL included).
fn all_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_real_address_is_stored_or_logged() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let access_str = access.to_str().unwrap().to_string();
    let env = [
        ("VIGIL_NETWORK__HASH_IPS", "true"),
        ("VIGIL_NETWORK__HASH_KEY", KEY),
        ("VIGIL_SERVER__ACCESS_LOG", access_str.as_str()),
    ];
    let mut server = Server::start_with(
        data.path(),
        Options {
            env: &env,
            ..Options::default()
        },
    );
    let key = server.admin_key.clone().unwrap();
    let http = client();
    let url = server.url.clone();

    // One event through the single-event API, one through bulk, one network event.
    let single = json!({
        "event": {"id": "priv-1", "category": ["process"]},
        "host": {"name": "ws-1", "ip": [PRIVATE]},
        "source": {"ip": PUBLIC, "port": 51000},
        "message": "addresses in ECS fields are replaced"
    });
    let r = http
        .post(format!("{url}/api/v1/events"))
        .bearer_auth(&key)
        .json(&single)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let bulk = [
        json!({"event": {"id": "priv-2"}, "destination": {"ip": PUBLIC}, "related": {"ip": [PUBLIC, PRIVATE]}}),
        json!({"event": {"id": "priv-3", "category": ["network"], "type": ["connection"]},
               "host": {"name": "ws-1"},
               "source": {"ip": PRIVATE, "port": 50123},
               "destination": {"ip": PUBLIC, "port": 443},
               "network": {"transport": "tcp", "direction": "outbound"},
               "process": {"name": "curl", "pid": 42}}),
    ]
    .iter()
    .map(|e| e.to_string() + "\n")
    .collect::<String>();
    let r = http
        .post(format!("{url}/api/v1/events/bulk"))
        .bearer_auth(&key)
        .body(bulk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // The stored events hold pseudonyms, the same one for the same address.
    let pseudonym = |addr: &str| {
        let out = assert_cmd::Command::cargo_bin("vigil")
            .unwrap()
            .args(["config", "pseudonym", addr])
            .env("VIGIL_NETWORK__HASH_IPS", "true")
            .env("VIGIL_NETWORK__HASH_KEY", KEY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .rsplit('\t')
            .next()
            .unwrap()
            .to_string()
    };
    let (p_public, p_private) = (pseudonym(PUBLIC), pseudonym(PRIVATE));
    assert!(p_public.starts_with("2001:db8:"), "{p_public}");
    assert!(p_private.starts_with("fd76:6967:"), "{p_private}");
    let event = |id: &str| format!("{url}/api/v1/events/{id}");
    let e1 = common::get_json(&http, &event("priv-1"), &key).await;
    assert_eq!(e1["source"]["ip"], p_public.as_str(), "{e1}");
    assert_eq!(e1["host"]["ip"][0], p_private.as_str());
    let e2 = common::get_json(&http, &event("priv-2"), &key).await;
    assert_eq!(e2["destination"]["ip"], p_public.as_str());
    assert_eq!(e2["related"]["ip"], json!([p_public, p_private]));
    // A known address is found by its pseudonym.
    let found: Value = http
        .get(format!("{url}/api/v1/events"))
        .bearer_auth(&key)
        .query(&[("ip", p_public.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(found["events"].as_array().unwrap().len() >= 2, "{found}");

    // The network detector stored the connection under the same pseudonyms (hashed once,
    // not again on top of the pipeline's).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let conns: Value =
            common::get_json(&http, &format!("{url}/api/v1/network/connections"), &key).await;
        if let Some(c) = conns["connections"].as_array().and_then(|c| c.first()) {
            assert_eq!(c["remote"], p_public.as_str(), "{c}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection row: {conns}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    server.terminate(Duration::from_secs(30));
    // Nothing on disk or in the access log holds a real address.
    let mut files = all_bytes(data.path());
    files.push((
        access.display().to_string(),
        std::fs::read(&access).unwrap(),
    ));
    for (name, bytes) in &files {
        for real in [PUBLIC, PRIVATE, "127.0.0.1"] {
            assert!(!contains(bytes, real), "{real} in {name}");
        }
    }
    let log = std::fs::read_to_string(&access).unwrap();
    let first: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(
        first["client"].as_str().unwrap().starts_with("[fd76:6967:"),
        "{first}"
    );
}

#[test]
fn the_pseudonym_command_explains_what_is_missing() {
    let out = assert_cmd::Command::cargo_bin("vigil")
        .unwrap()
        .args(["config", "pseudonym", "10.0.0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hash_ips is off"));
    let out = assert_cmd::Command::cargo_bin("vigil")
        .unwrap()
        .args(["config", "pseudonym", "not-an-ip"])
        .env("VIGIL_NETWORK__HASH_IPS", "true")
        .env("VIGIL_NETWORK__HASH_KEY", KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IPv4 or IPv6 address"));
}
