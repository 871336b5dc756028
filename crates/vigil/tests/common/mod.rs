//! Starts the real `vigil serve` process on a free port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub url: String,
    /// The first admin key, when this start created it.
    pub admin_key: Option<String>,
    /// Syslog listeners' addresses, when configured.
    pub syslog_udp: Option<String>,
    pub syslog_tcp: Option<String>,
}

impl Server {
    /// Starts `vigil serve` on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with_env(data_dir, &[])
    }

    /// Starts `vigil serve` with extra environment variables (configuration).
    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting vigil serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut key = None;
            let (mut udp, mut tcp) = (None, None);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
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
        let (url, admin_key, syslog_udp, syslog_tcp) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("vigil serve did not start listening within 30 s");
        Server {
            child,
            url,
            admin_key,
            syslog_udp,
            syslog_tcp,
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
