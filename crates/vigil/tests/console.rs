//! End-to-end tests of the web console in headless Chromium: starts `vigil serve` on a
//! fresh data directory and runs the Playwright specs in `e2e/` (node's test runner,
//! `playwright-core`, Debian's `chromium`) against it.
//!
//! Needs `node` (20 or later) on PATH, `npm ci` run in `e2e/`, and Chromium at
//! `$VIGIL_CHROMIUM` or `/usr/bin/chromium`. When any is missing the test prints what to
//! install and passes, unless `VIGIL_REQUIRE_BROWSER` is set (CI), where it fails.
//! `VIGIL_SCREENSHOT_DIR=/some/dir` keeps the specs' screenshots there.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// The whole node run, browser start included, must end within this.
const TIMEOUT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("VIGIL_CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing for the browser tests, as install hints; empty when they can run.
fn missing_prerequisites(e2e: &Path, chromium: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let major: u32 = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if major < 20 {
                missing.push(format!(
                    "Node.js 20 or later (found {version}): apt-get install nodejs npm"
                ));
            }
        }
        _ => missing.push("node on PATH: apt-get install nodejs npm".to_string()),
    }
    if !e2e.join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "playwright-core in {}: cd e2e && npm ci",
            e2e.join("node_modules").display()
        ));
    }
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {} (or set VIGIL_CHROMIUM): apt-get install chromium",
            chromium.display()
        ));
    }
    missing
}

/// Relays a child's output line by line through the test's own output, so that libtest
/// captures it (shown on failure, or always with --nocapture).
fn relay(stream: impl Read + Send + 'static, to_stderr: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    })
}

/// Kills the process group led by `pid` (node, its per-file test process and Chromium).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

#[test]
fn console_in_headless_chromium() {
    let root = repo_root();
    let e2e = root.join("e2e");
    let chromium = chromium_path();
    let missing = missing_prerequisites(&e2e, &chromium);
    if !missing.is_empty() {
        let msg = format!(
            "skipped: the web console's browser tests need {}",
            missing.join("; ")
        );
        if std::env::var_os("VIGIL_REQUIRE_BROWSER").is_some_and(|v| !v.is_empty()) {
            panic!("VIGIL_REQUIRE_BROWSER is set but {msg}");
        }
        eprintln!("\n*** {msg} (VIGIL_REQUIRE_BROWSER=1 makes this a failure) ***\n");
        return;
    }

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let admin_key = server
        .admin_key
        .clone()
        .expect("a fresh vigil serve prints its first admin key");

    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", "console.spec.mjs"])
        .current_dir(&e2e)
        .env("VIGIL_URL", &server.url)
        .env("VIGIL_ADMIN_KEY", &admin_key)
        .env("VIGIL_CHROMIUM", &chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match std::env::var_os("VIGIL_SCREENSHOT_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => cmd.env("VIGIL_SCREENSHOT_DIR", dir),
        None => cmd.env_remove("VIGIL_SCREENSHOT_DIR"),
    };
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

    let started = Instant::now();
    let mut child = cmd.spawn().expect("starting node");
    let out = relay(child.stdout.take().unwrap(), false);
    let err = relay(child.stderr.take().unwrap(), true);
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the browser tests did not finish within {} s: killed",
                TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever node left behind (a Chromium whose close hung) would hold the pipes open.
    kill_group(child.id());
    let _ = out.join();
    let _ = err.join();
    println!(
        "browser tests ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(server);
    assert!(status.success(), "the browser tests failed: {status}");
}
