//! Issue 22, finding 6, against the real `vigil serve`: with Python scripts on, the server
//! reports the worker sandbox's layers at start, and a script uploaded through the API that
//! switches the driver's audit hook off still cannot read /etc/passwd or the server's own
//! world-readable config file (with its JWT secret), reach the server's port, or start a
//! process.
//!
//! Skips (printed) on a host without the sandbox's kernel features; fails instead with
//! `VIGIL_REQUIRE_SANDBOX=1`.

mod common;

use common::{Options, Server, client};
use serde_json::{Value, json};
use std::time::Duration;

const SECRET: &str = "FAKE-JWT-SECRET-finding6-7c41e2-0123456789abcdef";

const HOSTILE: &str = r#"import sys
m = sys.modules["__main__"]; m._blocked_prefixes = (); m._blocked_imports = set(); m._stdlib = ("/",)
import json, os, socket

def attempt(f):
    try:
        return {"escaped": True, "value": repr(f())[:200]}
    except BaseException as e:
        return {"escaped": False, "error": f"{type(e).__name__}: {e}"}

def Start_Analysis(q, DATA):
    d = json.loads(DATA)
    q.put({
        "passwd": attempt(lambda: open("/etc/passwd").read()),
        "config": attempt(lambda: open(d["config_path"]).read()),
        "connect": attempt(lambda: socket.create_connection(("127.0.0.1", d["port"]), timeout=1)),
        "system": attempt(lambda: os.system("exit 7") == 7 << 8 or 1 / 0),
        "listdir": attempt(lambda: os.listdir("/")),
    })
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_python_script_uploaded_to_the_server_stays_in_its_sandbox() {
    use std::os::unix::fs::PermissionsExt;
    let python = vigil_script::PythonConfig {
        enabled: true,
        ..vigil_script::PythonConfig::default()
    };
    match vigil_script::sandbox::status(&python) {
        Ok(s) if s.missing.is_empty() => {}
        other => {
            let why = match other {
                Ok(s) => s.summary(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var("VIGIL_REQUIRE_SANDBOX").as_deref() != Ok("1"),
                "VIGIL_REQUIRE_SANDBOX=1 but the Python sandbox is unavailable: {why}"
            );
            eprintln!("SKIPPED: the Python worker sandbox is unavailable on this host: {why}");
            return;
        }
    }

    // The server's config file, world-readable in a world-readable directory, with a
    // secret in clear: the situation the review exploited.
    let data = tempfile::tempdir().unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(conf_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = conf_dir.path().join("vigil.toml");
    std::fs::write(
        &conf,
        format!("[auth]\njwt_hs256_secret = \"{SECRET}\"\n\n[scripts.python]\nenabled = true\n"),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf_str = conf.to_string_lossy().into_owned();

    let server = Server::start_with(
        data.path(),
        Options {
            env: &[("VIGIL_CONFIG", &conf_str)],
            rust_log: "warn,vigil_script=info",
            capture: true,
        },
    );
    let key = server.admin_key.clone().unwrap();
    let url = server.url.clone();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let http = client();

    let r = http
        .post(format!("{url}/api/v1/scripts"))
        .bearer_auth(&key)
        .json(
            &json!({"name": "hostile", "source": HOSTILE, "language": "python",
                      "timeout_ms": 2000}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let r = http
        .post(format!("{url}/api/v1/analyze"))
        .bearer_auth(&key)
        .json(&json!({"message": "go", "config_path": conf_str, "port": port}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    let text = report.to_string();
    assert!(!text.contains(SECRET), "the secret leaked: {text}");
    assert!(!text.contains("root:x:0:0"), "/etc/passwd leaked: {text}");
    let result = &report["results"]["hostile"];
    for attempt in ["passwd", "config", "connect", "system", "listdir"] {
        assert_eq!(
            result[attempt]["escaped"], false,
            "{attempt} escaped the sandbox: {report}"
        );
        eprintln!("{attempt}: blocked ({})", result[attempt]["error"]);
    }

    // The start-up line that says which layers are on.
    let out = server.output.clone().unwrap();
    let line = out
        .stderr()
        .into_iter()
        .chain(out.stdout())
        .find(|l| l.contains("Python worker sandbox"))
        .unwrap_or_else(|| panic!("no sandbox line at start: {:?}", out.stderr()));
    eprintln!("{line}");
    for layer in ["pid_ns=on", "mount_ns=on", "net_ns=on", "seccomp=on"] {
        assert!(line.contains(layer), "{layer} missing from: {line}");
    }
}
