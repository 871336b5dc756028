//! Host features of a connection: what it is (protocol, port class, internal or public
//! remote, bytes each way on a log scale, their ratio, duration) and how it compares with
//! what this host and process usually do (process rarity, a remote address or port new
//! for the process, a process never seen talking, its connection rate, distinct remotes
//! and failed attempts in a window, and periodicity that marks beaconing).
//!
//! [`Baselines`] holds the per-host, per-process history the comparisons need. It is
//! bounded (hosts, processes per host, remotes per process, window entries): past a
//! bound, new entries are not learned and count as never seen, which errs toward
//! attention.

use crate::record::{ConnectionRecord, Protocol, is_internal};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// The features, in vector order.
pub const FEATURES: [&str; 16] = [
    "protocol_tcp",
    "protocol_udp",
    "remote_port_class",
    "remote_internal",
    "log_bytes_sent",
    "log_bytes_received",
    "log_bytes_ratio",
    "log_duration",
    "process_rarity",
    "remote_new_for_process",
    "port_new_for_process",
    "process_new",
    "log_rate_in_window",
    "log_distinct_remotes_in_window",
    "failed_share_in_window",
    "periodicity",
];

/// Index of each feature, for readers of a vector.
pub mod idx {
    #![allow(missing_docs)]
    pub const PROTOCOL_TCP: usize = 0;
    pub const PROTOCOL_UDP: usize = 1;
    pub const PORT_CLASS: usize = 2;
    pub const REMOTE_INTERNAL: usize = 3;
    pub const BYTES_SENT: usize = 4;
    pub const BYTES_RECEIVED: usize = 5;
    pub const BYTES_RATIO: usize = 6;
    pub const DURATION: usize = 7;
    pub const PROCESS_RARITY: usize = 8;
    pub const REMOTE_NEW: usize = 9;
    pub const PORT_NEW: usize = 10;
    pub const PROCESS_NEW: usize = 11;
    pub const RATE: usize = 12;
    pub const DISTINCT_REMOTES: usize = 13;
    pub const FAILED_SHARE: usize = 14;
    pub const PERIODICITY: usize = 15;
}

/// Bounds and windows of the baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineLimits {
    /// The sliding window for rates, in seconds.
    pub window_secs: u64,
    /// Hosts tracked.
    pub max_hosts: usize,
    /// Processes tracked per host.
    pub max_processes: usize,
    /// Remote addresses and ports remembered per process.
    pub max_remotes: usize,
    /// Connections kept per process window.
    pub max_window: usize,
    /// (process, remote) pairs timed for periodicity, per host.
    pub max_pairs: usize,
    /// Everything remembered, in all: hosts, processes, remotes, ports, pairs and window
    /// entries together. The per-item bounds above multiply; this one caps the product,
    /// so that a sender making up hosts and processes cannot exhaust memory (about 100
    /// bytes an entry).
    pub max_entries: usize,
}

impl Default for BaselineLimits {
    fn default() -> Self {
        BaselineLimits {
            window_secs: 60,
            max_hosts: 10_000,
            max_processes: 2_000,
            max_remotes: 4_096,
            max_window: 4_096,
            max_pairs: 20_000,
            max_entries: 2_000_000,
        }
    }
}

/// Intervals kept per pair for periodicity.
const INTERVALS: usize = 8;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProcessStats {
    connections: u64,
    remotes: HashMap<IpAddr, u32>,
    ports: HashMap<u16, u32>,
    /// (time in ms, remote, failed)
    #[serde(skip)]
    window: VecDeque<(i64, IpAddr, bool)>,
    /// Connections per remote in the window, and failed ones: kept with the window so that
    /// a busy process costs O(1) per connection.
    #[serde(skip)]
    window_remotes: HashMap<IpAddr, u32>,
    #[serde(skip)]
    window_failed: usize,
}

impl ProcessStats {
    /// Drops the oldest window entry; whether there was one.
    fn pop_window(&mut self) -> bool {
        let Some((_, ip, failed)) = self.window.pop_front() else {
            return false;
        };
        if let Some(c) = self.window_remotes.get_mut(&ip) {
            *c -= 1;
            if *c == 0 {
                self.window_remotes.remove(&ip);
            }
        }
        self.window_failed -= usize::from(failed);
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PairTiming {
    last_ms: i64,
    intervals: VecDeque<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HostStats {
    connections: u64,
    processes: HashMap<String, ProcessStats>,
    #[serde(skip)]
    pairs: HashMap<(String, IpAddr), PairTiming>,
}

/// Per-host, per-process history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baselines {
    limits: BaselineLimits,
    hosts: HashMap<String, HostStats>,
    /// Hosts, processes, remotes, ports and pairs learned (they are never forgotten).
    #[serde(default)]
    learned: usize,
    /// Entries in all process windows (not saved: windows start empty).
    #[serde(skip)]
    windowed: usize,
}

/// Port classes: IANA's system, user and dynamic ranges.
pub fn port_class(port: Option<u16>) -> f32 {
    match port {
        Some(p) if p < 1024 => 0.0,
        Some(p) if p < 49_152 => 1.0,
        Some(_) => 2.0,
        None => 1.0,
    }
}

fn ln1p(v: f64) -> f32 {
    v.max(0.0).ln_1p() as f32
}

/// Whether a connection never carried data: a refused or unanswered attempt.
fn failed(r: &ConnectionRecord) -> bool {
    matches!(
        r.state.as_deref(),
        Some("SYN_SENT" | "SYN_RECV" | "REJECTED" | "RESET")
    ) || (r.protocol == Protocol::Tcp
        && r.bytes_sent == 0
        && r.bytes_received == 0
        && r.state.as_deref() == Some("CLOSED"))
}

impl Baselines {
    /// Empty baselines with `limits`.
    pub fn new(limits: BaselineLimits) -> Baselines {
        Baselines {
            limits,
            hosts: HashMap::new(),
            learned: 0,
            windowed: 0,
        }
    }

    /// Hosts tracked.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The features of `r` against the history so far, then learns `r`.
    pub fn observe(&mut self, r: &ConnectionRecord) -> [f32; FEATURES.len()] {
        let mut f = [0.0f32; FEATURES.len()];
        f[idx::PROTOCOL_TCP] = f32::from(u8::from(r.protocol == Protocol::Tcp));
        f[idx::PROTOCOL_UDP] = f32::from(u8::from(r.protocol == Protocol::Udp));
        f[idx::PORT_CLASS] = port_class(r.remote_port);
        f[idx::REMOTE_INTERNAL] = f32::from(u8::from(is_internal(r.remote_ip)));
        f[idx::BYTES_SENT] = ln1p(r.bytes_sent as f64);
        f[idx::BYTES_RECEIVED] = ln1p(r.bytes_received as f64);
        f[idx::BYTES_RATIO] =
            (((r.bytes_sent as f64) + 1.0) / ((r.bytes_received as f64) + 1.0)).ln() as f32;
        f[idx::DURATION] = ln1p(r.duration_secs);

        let limits = self.limits.clone();
        let now_ms = r.timestamp.timestamp_millis();
        let process = if r.process_name.is_empty() {
            "(unknown)"
        } else {
            r.process_name.as_str()
        };
        // Room left in the global budget (checked once: one connection adds a handful).
        let room = self.learned + self.windowed < limits.max_entries;
        let mut learned = 0usize;
        let mut windowed = 0isize;
        let host_full =
            !self.hosts.contains_key(&r.host) && (self.hosts.len() >= limits.max_hosts || !room);
        if host_full {
            // Nothing known of this host: everything is new.
            f[idx::PROCESS_RARITY] = 10.0;
            f[idx::REMOTE_NEW] = 1.0;
            f[idx::PORT_NEW] = 1.0;
            f[idx::PROCESS_NEW] = 1.0;
            return f;
        }
        if !self.hosts.contains_key(&r.host) {
            learned += 1;
        }
        let host = self.hosts.entry(r.host.clone()).or_default();
        let known = host.processes.get(process).map_or(0, |p| p.connections);
        f[idx::PROCESS_RARITY] =
            -(((known + 1) as f64) / ((host.connections + 1) as f64)).ln() as f32;
        f[idx::PROCESS_NEW] = f32::from(u8::from(known == 0));
        host.connections += 1;

        // Periodicity of this (process, remote) pair.
        let pair_key = (process.to_string(), r.remote_ip);
        let known_pair = host.pairs.contains_key(&pair_key);
        let can_time = known_pair || (room && host.pairs.len() < limits.max_pairs);
        if can_time {
            learned += usize::from(!known_pair);
            let t = host.pairs.entry(pair_key).or_default();
            if t.last_ms > 0 && now_ms > t.last_ms {
                if t.intervals.len() == INTERVALS {
                    t.intervals.pop_front();
                }
                t.intervals.push_back((now_ms - t.last_ms) as f64 / 1000.0);
            }
            t.last_ms = now_ms;
            f[idx::PERIODICITY] = periodicity(&t.intervals);
        }

        let known_process = host.processes.contains_key(process);
        let can_add = known_process || (room && host.processes.len() < limits.max_processes);
        if !can_add {
            f[idx::REMOTE_NEW] = 1.0;
            f[idx::PORT_NEW] = 1.0;
            self.learned += learned;
            return f;
        }
        learned += usize::from(!known_process);
        let p = host.processes.entry(process.to_string()).or_default();
        p.connections += 1;
        let seen_remote = p.remotes.get(&r.remote_ip).copied().unwrap_or(0);
        // Saturating: after ten sightings an address is simply known, so the feature does
        // not drift as history grows.
        f[idx::REMOTE_NEW] = 1.0 / (1.0 + seen_remote.min(10) as f32);
        if seen_remote > 0 || (room && p.remotes.len() < limits.max_remotes) {
            learned += usize::from(seen_remote == 0);
            *p.remotes.entry(r.remote_ip).or_default() += 1;
        }
        let port = r.remote_port.unwrap_or(0);
        let seen_port = p.ports.get(&port).copied().unwrap_or(0);
        f[idx::PORT_NEW] = 1.0 / (1.0 + seen_port.min(10) as f32);
        if seen_port > 0 || (room && p.ports.len() < limits.max_remotes) {
            learned += usize::from(seen_port == 0);
            *p.ports.entry(port).or_default() += 1;
        }
        // The window: drop what is older than the window (and what exceeds its bound).
        let horizon = now_ms - (limits.window_secs as i64) * 1000;
        while p.window.front().is_some_and(|(t, _, _)| *t < horizon) {
            windowed -= isize::from(p.pop_window());
        }
        // Full (this process's bound, or the global budget): the oldest makes room.
        if p.window.len() >= limits.max_window || (!room && !p.window.is_empty()) {
            windowed -= isize::from(p.pop_window());
        }
        windowed += 1;
        let failed = failed(r);
        p.window.push_back((now_ms, r.remote_ip, failed));
        *p.window_remotes.entry(r.remote_ip).or_default() += 1;
        p.window_failed += usize::from(failed);
        let n = p.window.len();
        f[idx::RATE] = ln1p(n as f64);
        f[idx::DISTINCT_REMOTES] = ln1p(p.window_remotes.len() as f64);
        f[idx::FAILED_SHARE] = p.window_failed as f32 / n as f32;
        self.learned += learned;
        self.windowed = self.windowed.saturating_add_signed(windowed);
        f
    }

    /// Entries held against [`BaselineLimits::max_entries`].
    pub fn entries(&self) -> usize {
        self.learned + self.windowed
    }

    /// Features of `r` without learning it (what-if scoring).
    pub fn peek(&self, r: &ConnectionRecord) -> [f32; FEATURES.len()] {
        let mut copy = Baselines::new(self.limits.clone());
        if let Some(h) = self.hosts.get(&r.host) {
            let mut host = HostStats {
                connections: h.connections,
                ..HostStats::default()
            };
            let process = if r.process_name.is_empty() {
                "(unknown)"
            } else {
                r.process_name.as_str()
            };
            if let Some(p) = h.processes.get(process) {
                host.processes.insert(process.to_string(), p.clone());
            }
            if let Some(t) = h.pairs.get(&(process.to_string(), r.remote_ip)) {
                host.pairs
                    .insert((process.to_string(), r.remote_ip), t.clone());
            }
            copy.hosts.insert(r.host.clone(), host);
        }
        copy.observe(r)
    }
}

/// How regular the intervals are, in [0, 1]: `1 - CV` with at least 4 intervals, where CV
/// is the coefficient of variation; 0 with too few intervals or irregular ones.
pub fn periodicity(intervals: &VecDeque<f64>) -> f32 {
    if intervals.len() < 4 {
        return 0.0;
    }
    let n = intervals.len() as f64;
    let mean = intervals.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let var = intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (1.0 - (var.sqrt() / mean)).clamp(0.0, 1.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Direction;
    use chrono::DateTime;

    fn rec(t: i64, process: &str, remote: &str, port: u16) -> ConnectionRecord {
        ConnectionRecord {
            timestamp: DateTime::from_timestamp(1_800_000_000 + t, 0).unwrap(),
            host: "h".into(),
            process_id: Some(1),
            process_name: process.into(),
            local_ip: None,
            local_port: None,
            remote_ip: remote.parse().unwrap(),
            remote_port: Some(port),
            protocol: Protocol::Tcp,
            direction: Direction::Outbound,
            state: Some("ESTABLISHED".into()),
            bytes_sent: 1000,
            bytes_received: 100_000,
            duration_secs: 2.0,
        }
    }

    #[test]
    fn novelty_and_rarity() {
        let mut b = Baselines::default();
        let first = b.observe(&rec(0, "chrome", "203.0.113.1", 443));
        assert_eq!(first[idx::PROCESS_NEW], 1.0);
        assert_eq!(first[idx::REMOTE_NEW], 1.0);
        for i in 1..50 {
            b.observe(&rec(i * 7, "chrome", "203.0.113.1", 443));
        }
        let usual = b.observe(&rec(400, "chrome", "203.0.113.1", 443));
        assert_eq!(usual[idx::PROCESS_NEW], 0.0);
        assert!(usual[idx::REMOTE_NEW] < 0.1);
        assert!(usual[idx::PROCESS_RARITY] < 0.1);
        let odd = b.observe(&rec(401, "rundll32", "198.51.100.9", 4444));
        assert_eq!(odd[idx::PROCESS_NEW], 1.0);
        assert!(odd[idx::PROCESS_RARITY] > 3.0);
        assert_eq!(odd[idx::PORT_CLASS], 1.0);
        assert_eq!(odd[idx::REMOTE_INTERNAL], 0.0);
        // Peeking does not learn.
        let again = b.peek(&rec(402, "rundll32", "198.51.100.9", 4444));
        assert_eq!(again[idx::PROCESS_NEW], 0.0);
        let again = b.peek(&rec(402, "rundll32", "198.51.100.9", 4444));
        assert_eq!(
            again[idx::PROCESS_NEW],
            0.0,
            "the peek before did not learn either"
        );
    }

    #[test]
    fn beacons_are_periodic_and_scans_are_wide() {
        let mut b = Baselines::default();
        let mut last = [0.0; FEATURES.len()];
        for i in 0..10 {
            last = b.observe(&rec(i * 30, "svchost", "198.51.100.20", 443));
        }
        assert!(last[idx::PERIODICITY] > 0.95, "{}", last[idx::PERIODICITY]);
        let mut scan = [0.0; FEATURES.len()];
        for i in 0..200u16 {
            let mut r = rec(
                1_000,
                "nmap",
                &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                22,
            );
            r.state = Some("SYN_SENT".into());
            r.bytes_sent = 0;
            r.bytes_received = 0;
            scan = b.observe(&r);
        }
        assert!(scan[idx::DISTINCT_REMOTES] > 5.0);
        assert_eq!(scan[idx::FAILED_SHARE], 1.0);
        assert_eq!(scan[idx::REMOTE_INTERNAL], 1.0);
    }

    #[test]
    fn a_global_budget_caps_made_up_hosts_and_processes() {
        let mut b = Baselines::new(BaselineLimits {
            max_entries: 500,
            ..BaselineLimits::default()
        });
        for i in 0..5_000u32 {
            let mut r = rec(
                i64::from(i),
                &format!("proc{i}"),
                &format!("9.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                1000 + (i % 5000) as u16,
            );
            r.host = format!("host{}", i % 700);
            let f = b.observe(&r);
            assert!(f.iter().all(|x| x.is_finite()));
        }
        // A connection adds at most a handful past the check.
        assert!(b.entries() <= 510, "{}", b.entries());
        // Past the budget, new things count as never seen.
        let mut r = rec(9_999, "brand-new", "7.7.7.7", 7);
        r.host = "new-host".into();
        let f = b.observe(&r);
        assert_eq!((f[idx::PROCESS_NEW], f[idx::REMOTE_NEW]), (1.0, 1.0));
    }

    #[test]
    fn bounded() {
        let mut b = Baselines::new(BaselineLimits {
            max_hosts: 2,
            max_processes: 2,
            max_remotes: 3,
            max_window: 5,
            max_pairs: 4,
            ..BaselineLimits::default()
        });
        for h in ["h", "x1", "x2", "x3"] {
            let mut r = rec(0, "p", "1.1.1.1", 1);
            r.host = h.to_string();
            b.observe(&r);
        }
        assert_eq!(b.hosts(), 2);
        for i in 0..100u16 {
            b.observe(&rec(
                i64::from(i),
                &format!("p{}", i % 5),
                &format!("9.9.{}.{}", i / 200, i % 200),
                i,
            ));
        }
        let h = &b.hosts["h"];
        assert!(h.processes.len() <= 2);
        assert!(h.pairs.len() <= 4);
        for p in h.processes.values() {
            assert!(p.remotes.len() <= 3 && p.ports.len() <= 3 && p.window.len() <= 5);
            assert_eq!(
                p.window_remotes.values().sum::<u32>() as usize,
                p.window.len()
            );
        }
    }
}
