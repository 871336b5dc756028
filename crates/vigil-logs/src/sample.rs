//! Realistic sample logs with injected attacks and failures, and their ground truth, for
//! demos and tests (`vigil gen-logs`).
//!
//! Four files, each in the format of the real thing:
//! * `auth.log`: sshd in syslog form (logins, disconnects, sessions); attacks: password
//!   brute force from one address, a spray of invalid users.
//! * `access.log`: web access in Apache's combined format; attacks: path traversal, SQL
//!   injection, a scanner's burst of 404s.
//! * `kern.log`: kernel messages; failures: the OOM killer, segfaults, disk I/O errors.
//! * `hdfs.log`: HDFS-like block lifecycles (allocate, three replicas received, responders
//!   terminate, blocks stored); failures: a replica never arrives, a write fails.
//!
//! `labels.csv` has one row per line: `file,line,label,kind` (label 1 for an injected line;
//! for `hdfs.log` every line of a failed block is labelled, with the block id as kind's
//! suffix, so sessions can be scored). The same seed gives the same files.

use std::fmt::Write as _;

use vigil_ml::rng::SplitMix64;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// Lines per file, roughly.
    pub lines: usize,
    /// Share of attack or failure episodes among the episodes (0 for normal logs only).
    pub anomaly_rate: f64,
    /// Random seed.
    pub seed: u64,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            lines: 10_000,
            anomaly_rate: 0.02,
            seed: 1,
        }
    }
}

/// One generated file.
#[derive(Debug, Clone)]
pub struct GenFile {
    /// File name.
    pub name: &'static str,
    /// Its lines.
    pub lines: Vec<String>,
    /// Per line: `None` for normal, or the kind of anomaly.
    pub labels: Vec<Option<String>>,
}

const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "deploy",
];
const PATHS: [&str; 8] = [
    "/",
    "/index.html",
    "/login",
    "/api/v1/items",
    "/static/app.js",
    "/static/style.css",
    "/images/logo.png",
    "/account",
];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "Mozilla/5.0 (X11; Linux x86_64)",
    "curl/8.5.0",
];

struct Clock(u64);

impl Clock {
    fn tick(&mut self, rng: &mut SplitMix64) -> u64 {
        self.0 += 1 + rng.below(3) as u64;
        self.0
    }
}

/// Seconds since 2026-11-01 00:00:00 as syslog's `Mmm dd hh:mm:ss`.
fn syslog_time(t: u64) -> String {
    let day = 1 + t / 86_400;
    format!(
        "Nov {day:>2} {:02}:{:02}:{:02}",
        t / 3600 % 24,
        t / 60 % 60,
        t % 60
    )
}

fn apache_time(t: u64) -> String {
    let day = 1 + t / 86_400;
    format!(
        "{day:02}/Nov/2026:{:02}:{:02}:{:02} +0000",
        t / 3600 % 24,
        t / 60 % 60,
        t % 60
    )
}

fn ip(rng: &mut SplitMix64, internal: bool) -> String {
    if internal {
        format!("10.0.{}.{}", rng.below(4), 2 + rng.below(200))
    } else {
        format!(
            "{}.{}.{}.{}",
            23 + rng.below(180),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        )
    }
}

fn push(file: &mut GenFile, line: String, label: Option<&str>) {
    file.lines.push(line);
    file.labels.push(label.map(str::to_string));
}

fn auth(p: &GenParams, rng: &mut SplitMix64) -> GenFile {
    let mut f = GenFile {
        name: "auth.log",
        lines: vec![],
        labels: vec![],
    };
    let mut clock = Clock(0);
    let mut pid = 2000u64;
    while f.lines.len() < p.lines {
        pid += 1 + rng.below(40) as u64;
        let t = clock.tick(rng);
        let host = "bastion";
        if rng.next_f64() < p.anomaly_rate {
            let attacker = ip(rng, false);
            if rng.below(2) == 0 {
                for i in 0..(20 + rng.below(30)) {
                    let line = format!(
                        "{} {host} sshd[{}]: Failed password for root from {attacker} port {} ssh2",
                        syslog_time(t + i as u64),
                        pid + i as u64,
                        30_000 + rng.below(30_000)
                    );
                    push(&mut f, line, Some("brute_force"));
                }
            } else {
                for (i, user) in ["admin", "oracle", "test", "ubuntu", "guest", "postgres"]
                    .iter()
                    .enumerate()
                {
                    let line = format!(
                        "{} {host} sshd[{}]: Invalid user {user} from {attacker} port {}",
                        syslog_time(t + i as u64),
                        pid + i as u64,
                        30_000 + rng.below(30_000)
                    );
                    push(&mut f, line, Some("password_spray"));
                }
            }
            continue;
        }
        let user = USERS[rng.below(USERS.len())];
        let from = ip(rng, true);
        let port = 40_000 + rng.below(20_000);
        for line in [
            format!(
                "{} {host} sshd[{pid}]: Accepted publickey for {user} from {from} port {port} ssh2: ED25519 SHA256:k3y{}",
                syslog_time(t),
                rng.below(1000)
            ),
            format!(
                "{} {host} sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid={}) by (uid=0)",
                syslog_time(t),
                1000 + rng.below(50)
            ),
            format!(
                "{} {host} sshd[{pid}]: Received disconnect from {from} port {port}:11: disconnected by user",
                syslog_time(t + 30)
            ),
            format!(
                "{} {host} sshd[{pid}]: pam_unix(sshd:session): session closed for user {user}",
                syslog_time(t + 30)
            ),
        ] {
            push(&mut f, line, None);
        }
    }
    f
}

fn access(p: &GenParams, rng: &mut SplitMix64) -> GenFile {
    let mut f = GenFile {
        name: "access.log",
        lines: vec![],
        labels: vec![],
    };
    let mut clock = Clock(0);
    while f.lines.len() < p.lines {
        let t = clock.tick(rng);
        let agent = AGENTS[rng.below(AGENTS.len())];
        if rng.next_f64() < p.anomaly_rate {
            let attacker = ip(rng, false);
            let (kind, requests): (&str, Vec<(String, u16)>) = match rng.below(3) {
                0 => (
                    "path_traversal",
                    vec![("/download?file=../../../../etc/passwd".into(), 400)],
                ),
                1 => (
                    "sql_injection",
                    vec![("/items?id=1%27%20OR%20%271%27=%271".into(), 500)],
                ),
                _ => (
                    "scanner",
                    [
                        "/.env",
                        "/wp-login.php",
                        "/phpmyadmin/",
                        "/.git/config",
                        "/admin.php",
                        "/backup.zip",
                        "/config.php",
                        "/server-status",
                    ]
                    .iter()
                    .map(|p| (p.to_string(), 404))
                    .collect(),
                ),
            };
            for (i, (path, status)) in requests.into_iter().enumerate() {
                let line = format!(
                    "{attacker} - - [{}] \"GET {path} HTTP/1.1\" {status} {} \"-\" \"sqlmap/1.7\"",
                    apache_time(t + i as u64),
                    100 + rng.below(400)
                );
                push(&mut f, line, Some(kind));
            }
            continue;
        }
        let path = PATHS[rng.below(PATHS.len())];
        let line = format!(
            "{} - {} [{}] \"GET {path} HTTP/1.1\" 200 {} \"https://shop.example/\" \"{agent}\"",
            ip(rng, false),
            if rng.below(4) == 0 {
                USERS[rng.below(USERS.len())]
            } else {
                "-"
            },
            apache_time(t),
            200 + rng.below(50_000)
        );
        push(&mut f, line, None);
    }
    f
}

fn kern(p: &GenParams, rng: &mut SplitMix64) -> GenFile {
    let mut f = GenFile {
        name: "kern.log",
        lines: vec![],
        labels: vec![],
    };
    let mut clock = Clock(0);
    while f.lines.len() < p.lines {
        let t = clock.tick(rng);
        let ts = syslog_time(t);
        let up = t as f64 + rng.next_f64();
        if rng.next_f64() < p.anomaly_rate {
            let (kind, line) = match rng.below(3) {
                0 => (
                    "oom",
                    format!(
                        "{ts} node1 kernel: [{up:.6}] Out of memory: Killed process {} (java) total-vm:{}kB, anon-rss:{}kB",
                        3000 + rng.below(5000),
                        8_000_000 + rng.below(1_000_000),
                        6_000_000 + rng.below(1_000_000)
                    ),
                ),
                1 => (
                    "segfault",
                    format!(
                        "{ts} node1 kernel: [{up:.6}] nginx[{}]: segfault at {:x} ip {:x} sp {:x} error 4 in libc.so.6",
                        1000 + rng.below(9000),
                        rng.below(1 << 30),
                        rng.below(1 << 30),
                        rng.below(1 << 30)
                    ),
                ),
                _ => (
                    "disk_error",
                    format!(
                        "{ts} node1 kernel: [{up:.6}] blk_update_request: I/O error, dev sda, sector {} op 0x0:(READ)",
                        rng.below(1 << 30)
                    ),
                ),
            };
            push(&mut f, line, Some(kind));
            continue;
        }
        let line = match rng.below(4) {
            0 => format!(
                "{ts} node1 kernel: [{up:.6}] e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None"
            ),
            1 => format!(
                "{ts} node1 kernel: [{up:.6}] [UFW BLOCK] IN=eth0 OUT= SRC={} DST=10.0.0.5 PROTO=TCP SPT={} DPT=23",
                ip(rng, false),
                1024 + rng.below(60_000)
            ),
            2 => format!(
                "{ts} node1 kernel: [{up:.6}] audit: type=1400 audit({up:.3}:{}): apparmor=\"STATUS\" operation=\"profile_replace\" name=\"/usr/sbin/cupsd\"",
                rng.below(1000)
            ),
            _ => format!(
                "{ts} node1 kernel: [{up:.6}] EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro"
            ),
        };
        push(&mut f, line, None);
    }
    f
}

fn hdfs(p: &GenParams, rng: &mut SplitMix64) -> GenFile {
    let mut f = GenFile {
        name: "hdfs.log",
        lines: vec![],
        labels: vec![],
    };
    let mut clock = Clock(0);
    while f.lines.len() < p.lines {
        let t = clock.tick(rng);
        let ts = format!("261101 {:02}{:02}{:02}", t / 3600 % 24, t / 60 % 60, t % 60);
        let blk = format!(
            "blk_{}{}",
            if rng.below(2) == 0 { "-" } else { "" },
            rng.next_u64() >> 2
        );
        let size = 1 << (16 + rng.below(11));
        let nodes: Vec<String> = (0..3)
            .map(|_| format!("10.250.{}.{}", rng.below(20), 2 + rng.below(250)))
            .collect();
        let failure = (rng.next_f64() < p.anomaly_rate).then(|| rng.below(2));
        let mut lines = vec![format!(
            "{ts} 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/part-{:05}. {blk}",
            rng.below(10_000)
        )];
        for n in &nodes {
            lines.push(format!("{ts} {} INFO dfs.DataNode$DataXceiver: Receiving block {blk} src: /{n}:{} dest: /{n}:50010", 100 + rng.below(900), 40_000 + rng.below(20_000)));
        }
        let replicas = if failure == Some(0) { 2 } else { 3 };
        for (i, n) in nodes.iter().take(replicas).enumerate() {
            lines.push(format!("{ts} {} INFO dfs.DataNode$PacketResponder: Received block {blk} of size {size} from /{n}", 100 + rng.below(900)));
            lines.push(format!("{ts} {} INFO dfs.DataNode$PacketResponder: PacketResponder {i} for block {blk} terminating", 100 + rng.below(900)));
        }
        if failure == Some(1) {
            lines.push(format!("{ts} {} WARN dfs.DataNode$DataXceiver: writeBlock {blk} received exception java.io.IOException: Connection reset by peer", 100 + rng.below(900)));
        }
        for n in nodes.iter().take(replicas) {
            lines.push(format!("{ts} 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: {n}:50010 is added to {blk} size {size}"));
        }
        let kind = failure.map(|k| {
            format!(
                "{}:{blk}",
                if k == 0 {
                    "missing_replica"
                } else {
                    "write_exception"
                }
            )
        });
        for line in lines {
            push(&mut f, line, kind.as_deref());
        }
    }
    f
}

/// Generates the four files.
pub fn generate(p: &GenParams) -> Vec<GenFile> {
    let mut rng = SplitMix64::new(p.seed);
    vec![
        auth(p, &mut rng),
        access(p, &mut rng),
        kern(p, &mut rng),
        hdfs(p, &mut rng),
    ]
}

/// The ground truth as CSV: `file,line,label,kind` (lines from 1).
pub fn labels_csv(files: &[GenFile]) -> String {
    let mut out = String::from("file,line,label,kind\n");
    for f in files {
        for (i, l) in f.labels.iter().enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{}",
                f.name,
                i + 1,
                u8::from(l.is_some()),
                l.as_deref().unwrap_or("")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::LogFormat;
    use crate::syslog;

    #[test]
    fn deterministic_labelled_and_parseable() {
        let p = GenParams {
            lines: 2000,
            anomaly_rate: 0.05,
            seed: 7,
        };
        let a = generate(&p);
        let b = generate(&p);
        assert_eq!(a[0].lines, b[0].lines);
        for f in &a {
            assert!(f.lines.len() >= 2000, "{}", f.name);
            assert_eq!(f.lines.len(), f.labels.len());
            let bad = f.labels.iter().filter(|l| l.is_some()).count();
            assert!(bad > 0 && bad < f.lines.len() / 2, "{}: {bad}", f.name);
        }
        // auth.log is BSD syslog; access.log cuts with a combined-log format.
        let m = syslog::parse(format!("<38>{}", a[0].lines[0]).as_bytes());
        assert_eq!(
            (m.hostname.as_deref(), m.app_name.as_deref()),
            (Some("bastion"), Some("sshd"))
        );
        let combined = LogFormat::new(
            r#"<Ip> <Ident> <User> \[<Time>\] "<Content>" <Status> <Bytes> "<Referer>" "<Agent>""#,
        )
        .unwrap();
        assert!(a[1].lines.iter().all(|l| combined.split(l).is_some()));
        let csv = labels_csv(&a);
        assert!(csv.lines().count() > 8000);
        let normal = generate(&GenParams {
            anomaly_rate: 0.0,
            ..p
        });
        assert!(normal.iter().all(|f| f.labels.iter().all(Option::is_none)));
    }
}
