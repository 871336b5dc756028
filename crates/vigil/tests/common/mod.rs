//! Starts the real `vigil serve` process on a free port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub url: String,
    /// The first admin key, when this start created it.
    pub admin_key: Option<String>,
    /// Syslog listeners' addresses, when configured.
    pub syslog_udp: Option<String>,
    pub syslog_tcp: Option<String>,
    /// Every line of stdout and stderr, when started with `capture`.
    pub output: Option<Captured>,
}

/// The lines a server wrote so far (readers keep filling them until it exits).
#[derive(Clone, Default)]
pub struct Captured {
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    readers: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl Captured {
    /// Waits for the readers to reach the end of both streams (the process has exited).
    pub fn finish(&self) {
        let readers = std::mem::take(&mut *self.readers.lock().unwrap());
        for r in readers {
            let _ = r.join();
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The rest of the first stdout line starting with `prefix`, waiting up to `wait`.
    pub fn stdout_after(&self, prefix: &str, wait: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let found = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string));
            if found.is_some() || std::time::Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How to start a server.
pub struct Options<'a> {
    /// Extra environment variables (configuration).
    pub env: &'a [(&'a str, &'a str)],
    /// `RUST_LOG`.
    pub rust_log: &'a str,
    /// Keep every line of stdout and stderr in [`Server::output`] (stderr is otherwise
    /// inherited).
    pub capture: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            env: &[],
            rust_log: "warn",
            capture: false,
        }
    }
}

impl Server {
    /// Starts `vigil serve` on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with_env(data_dir, &[])
    }

    /// Starts `vigil serve` with extra environment variables (configuration).
    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(
            data_dir,
            Options {
                env,
                ..Default::default()
            },
        )
    }

    /// Starts `vigil serve` as `options` say.
    ///
    /// `VIGIL_TEST_NOFILE=N` among the variables starts it under an open-file limit of `N`
    /// (soft and hard, through util-linux's `prlimit`).
    pub fn start_with(data_dir: &Path, options: Options) -> Server {
        let nofile = options
            .env
            .iter()
            .find(|(k, _)| *k == "VIGIL_TEST_NOFILE")
            .map(|(_, v)| v.to_string());
        let mut command = match &nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_vigil"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_vigil")),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(options.env.iter().copied())
            .env("RUST_LOG", options.rust_log)
            .stdout(Stdio::piped())
            .stderr(if options.capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("starting vigil serve");
        let output = options.capture.then(Captured::default);
        if let Some(out) = &output {
            let stderr = child.stderr.take().unwrap();
            let lines = out.stderr.clone();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
            out.readers.lock().unwrap().push(reader);
        }
        let stdout = child.stdout.take().unwrap();
        let stdout_lines = output.as_ref().map(|o| o.stdout.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut key = None;
            let (mut udp, mut tcp) = (None, None);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(lines) = &stdout_lines {
                    lines.lock().unwrap().push(line.clone());
                }
                let t = line.trim();
                if t.starts_with("vgl_") {
                    key = Some(t.to_string());
                }
                if let Some(a) = t.strip_prefix("vigil: syslog udp on ") {
                    udp = Some(a.to_string());
                }
                if let Some(a) = t.strip_prefix("vigil: syslog tcp on ") {
                    tcp = Some(a.to_string());
                }
                if let Some(url) = t.strip_prefix("vigil: listening on ") {
                    let _ = tx.send((url.to_string(), key.clone(), udp.clone(), tcp.clone()));
                }
            }
        });
        if let Some(out) = &output {
            out.readers.lock().unwrap().push(reader);
        }
        let (url, admin_key, syslog_udp, syslog_tcp) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("vigil serve did not start listening within 30 s");
        Server {
            child,
            url,
            admin_key,
            syslog_udp,
            syslog_tcp,
            output,
        }
    }

    /// SIGTERM, then waits for the process to finish (up to `wait`, then SIGKILL) and, when
    /// captured, for the last lines of its output.
    pub fn terminate(&mut self, wait: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + wait;
        while self.child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(out) = &self.output {
            out.finish();
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Reads one reply of the file-analysis protocol, or `None` when the server closed the
/// connection first (20 s at most per read).
pub async fn protocol_reply<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Option<vigil_file::protocol::Reply> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((r, _)) = vigil_file::protocol::decode_reply(&buf).unwrap() {
            return Some(r);
        }
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("an answer or a close in time")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `GET url` with `token`, the answer as JSON (panics on a transport or JSON error).
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Resident memory of a process, in KiB (`None` once it has exited).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A new API key of `role` made with the admin key (panics on failure).
pub async fn create_key(url: &str, admin: &str, name: &str, role: &str) -> String {
    let r: serde_json::Value = client()
        .post(format!("{url}/api/v1/keys"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": name, "role": role}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["key"].as_str().expect("a key").to_string()
}
