//! Issue 23, bug 1: a start that fails (here: the port is taken) must not use up the first
//! admin key, which is printed only once. The key is made after every listener is bound;
//! the failed start says how to get one, and the next good start prints it.

mod common;

use common::Server;
use std::process::Command;

#[test]
fn a_failed_start_does_not_lose_the_first_key() {
    let data = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started on a busy port");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("vgl_"),
        "a key was printed by a failed start: {stdout}"
    );
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(
        stderr.contains("no API key was created")
            && stderr.contains("vigil key create --role admin"),
        "{stderr}"
    );
    drop(busy);
    // The next start that succeeds prints the first key, and it works.
    let server = Server::start(data.path());
    let key = server
        .admin_key
        .clone()
        .expect("the first key, printed now");
    let status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {key}"))
        .arg(format!("{}/api/v1/me", server.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
}
