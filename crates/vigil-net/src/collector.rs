//! The Linux connection collector: the host's TCP and UDP sockets from
//! `/proc/net/{tcp,tcp6,udp,udp6}`, mapped to processes through `/proc/<pid>/fd`, turned
//! into [`ConnectionRecord`]s as connections appear and end.
//!
//! Unprivileged, a process sees every socket but only its own (same-user) processes' file
//! descriptors: sockets of other users' processes come without a process, and
//! [`Snapshot::unmapped`] counts them so the collector can say what it cannot see. Byte
//! counters are not in `/proc/net`: TCP's come from `sock_diag` ([`crate::sockdiag`]),
//! which works unprivileged; UDP records carry 0 bytes.

use crate::record::{ConnectionRecord, Direction, Protocol};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// A TCP socket state as the kernel numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketState {
    /// 01.
    Established,
    /// 02.
    SynSent,
    /// 03.
    SynRecv,
    /// 04.
    FinWait1,
    /// 05.
    FinWait2,
    /// 06.
    TimeWait,
    /// 07 (also every unconnected UDP socket).
    Close,
    /// 08.
    CloseWait,
    /// 09.
    LastAck,
    /// 0A.
    Listen,
    /// 0B.
    Closing,
    /// 0C.
    NewSynRecv,
}

impl SocketState {
    fn from_code(code: u8) -> Option<SocketState> {
        use SocketState::*;
        Some(match code {
            0x01 => Established,
            0x02 => SynSent,
            0x03 => SynRecv,
            0x04 => FinWait1,
            0x05 => FinWait2,
            0x06 => TimeWait,
            0x07 => Close,
            0x08 => CloseWait,
            0x09 => LastAck,
            0x0A => Listen,
            0x0B => Closing,
            0x0C => NewSynRecv,
            _ => return None,
        })
    }

    /// The name `ss` and `netstat` print.
    pub fn as_str(self) -> &'static str {
        use SocketState::*;
        match self {
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait1 => "FIN_WAIT1",
            FinWait2 => "FIN_WAIT2",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            Closing => "CLOSING",
            NewSynRecv => "NEW_SYN_RECV",
        }
    }
}

/// One line of `/proc/net/{tcp,udp}[6]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Socket {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified for listening and unconnected sockets).
    pub remote: SocketAddr,
    /// State.
    pub state: SocketState,
    /// Owner's uid.
    pub uid: u32,
    /// Socket inode (0 for sockets in TIME_WAIT, which no process holds).
    pub inode: u64,
}

/// Why a `/proc/net` line cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/proc/net line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// An address as the kernel prints it: `%08X` per 32-bit word in host byte order.
fn parse_addr(s: &str, line: usize) -> Result<SocketAddr, ParseError> {
    let bad = |reason: &str| ParseError {
        line,
        reason: format!("`{s}`: {reason}"),
    };
    let (ip, port) = s.split_once(':').ok_or_else(|| bad("no port"))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| bad("bad port"))?;
    let word = |h: &str| u32::from_str_radix(h, 16).map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            word(ip).map_err(|_| bad("bad IPv4 address"))?,
        )),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = word(
                    ip.get(i * 8..i * 8 + 8)
                        .ok_or_else(|| bad("bad IPv6 address"))?,
                )
                .map_err(|_| bad("bad IPv6 address"))?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return Err(bad("an address is 8 or 32 hex digits")),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Reads the text of one `/proc/net/{tcp,udp}[6]` file. The header line is skipped; a
/// malformed line is an error naming it (the kernel's format does not change under us, so
/// a bad line means the wrong file).
pub fn parse_proc_net(text: &str, protocol: Protocol) -> Result<Vec<Socket>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let fields: Vec<&str> = raw.split_whitespace().collect();
        if fields.is_empty() || fields[0] == "sl" {
            continue;
        }
        if fields.len() < 10 {
            return Err(ParseError {
                line,
                reason: format!("{} fields, expected at least 10", fields.len()),
            });
        }
        let local = parse_addr(fields[1], line)?;
        let remote = parse_addr(fields[2], line)?;
        let code = u8::from_str_radix(fields[3], 16).map_err(|_| ParseError {
            line,
            reason: format!("bad state `{}`", fields[3]),
        })?;
        let state = SocketState::from_code(code).ok_or_else(|| ParseError {
            line,
            reason: format!("unknown state {code:#x}"),
        })?;
        let uid = fields[7].parse().map_err(|_| ParseError {
            line,
            reason: format!("bad uid `{}`", fields[7]),
        })?;
        let inode = fields[9].parse().map_err(|_| ParseError {
            line,
            reason: format!("bad inode `{}`", fields[9]),
        })?;
        out.push(Socket {
            protocol,
            local,
            remote,
            state,
            uid,
            inode,
        });
    }
    Ok(out)
}

/// A process that holds sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// `comm` name.
    pub name: String,
}

/// Maps socket inodes to processes by reading `/proc/<pid>/fd/*` links (`socket:[123]`)
/// under `proc_root`. Processes whose descriptors cannot be read (other users', when
/// unprivileged) are skipped; the count of them is returned.
pub fn socket_owners(proc_root: &Path) -> (HashMap<u64, Owner>, usize) {
    let mut owners = HashMap::new();
    let mut unreadable = 0;
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return (owners, 0);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let base = entry.path();
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            unreadable += 1;
            continue;
        };
        let name = std::fs::read_to_string(base.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            owners.entry(inode).or_insert_with(|| Owner {
                pid,
                name: name.clone(),
            });
        }
    }
    (owners, unreadable)
}

/// The host's connections at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Connected sockets (a remote end), with their owner when known.
    pub connections: Vec<(Socket, Option<Owner>)>,
    /// Local ports that are listening (to tell inbound from outbound).
    pub listening: HashSet<(Protocol, u16)>,
    /// Connected sockets whose process could not be found.
    pub unmapped: usize,
    /// Processes whose descriptors could not be read.
    pub unreadable_processes: usize,
    /// TCP byte counters by socket inode (empty when `sock_diag` is unavailable).
    pub bytes: HashMap<u64, crate::sockdiag::TcpBytes>,
    /// Why there are no byte counters, when there are none.
    pub bytes_unavailable: Option<String>,
}

/// Reads the four `/proc/net` files and the socket owners under `proc_root` (`/proc`).
/// A missing file (no IPv6, say) is skipped.
pub fn snapshot(proc_root: &Path) -> Result<Snapshot, ParseError> {
    let mut sockets = Vec::new();
    for (file, proto) in [
        ("tcp", Protocol::Tcp),
        ("tcp6", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("udp6", Protocol::Udp),
    ] {
        if let Ok(text) = std::fs::read_to_string(proc_root.join("net").join(file)) {
            sockets.extend(parse_proc_net(&text, proto)?);
        }
    }
    let (owners, unreadable) = socket_owners(proc_root);
    let mut snap = assemble(sockets, &owners, unreadable);
    match crate::sockdiag::tcp_bytes() {
        Ok(bytes) => snap.bytes = bytes,
        Err(e) => snap.bytes_unavailable = Some(e),
    }
    Ok(snap)
}

/// Builds a [`Snapshot`] from parsed sockets and an owner map.
pub fn assemble(sockets: Vec<Socket>, owners: &HashMap<u64, Owner>, unreadable: usize) -> Snapshot {
    let mut snap = Snapshot {
        unreadable_processes: unreadable,
        ..Snapshot::default()
    };
    for s in &sockets {
        if s.state == SocketState::Listen || (s.protocol == Protocol::Udp && s.remote.port() == 0) {
            snap.listening.insert((s.protocol, s.local.port()));
        }
    }
    for s in sockets {
        // TIME_WAIT sockets are connections that already ended (no process holds them):
        // a collector that was running saw them open.
        if s.remote.ip().is_unspecified()
            || s.state == SocketState::Listen
            || s.state == SocketState::TimeWait
        {
            continue;
        }
        let owner = owners.get(&s.inode).cloned();
        if owner.is_none() && s.inode != 0 {
            snap.unmapped += 1;
        }
        snap.connections.push((s, owner));
    }
    snap
}

/// Key of a connection across snapshots.
type ConnKey = (Protocol, SocketAddr, SocketAddr);

/// Follows connections across snapshots: reports each new one once, and each ended one
/// with its duration.
#[derive(Debug, Default)]
pub struct Tracker {
    open: HashMap<ConnKey, (DateTime<Utc>, ConnectionRecord)>,
}

impl Tracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Compares `snap` with the last one: new connections (duration 0) and ended ones
    /// (with how long they were seen), as records on `host`.
    pub fn update(
        &mut self,
        snap: &Snapshot,
        host: &str,
        now: DateTime<Utc>,
    ) -> Vec<ConnectionRecord> {
        let mut out = Vec::new();
        let mut seen = HashSet::with_capacity(snap.connections.len());
        for (s, owner) in &snap.connections {
            let key = (s.protocol, s.local, s.remote);
            seen.insert(key);
            let bytes = snap.bytes.get(&s.inode).copied();
            if let Some((_, open)) = self.open.get_mut(&key) {
                // Keep the latest counters, reported when the connection ends.
                if let Some(b) = bytes {
                    open.bytes_sent = b.sent;
                    open.bytes_received = b.received;
                }
                continue;
            }
            let direction = if snap.listening.contains(&(s.protocol, s.local.port())) {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let record = ConnectionRecord {
                timestamp: now,
                host: host.to_string(),
                process_id: owner.as_ref().map(|o| o.pid),
                // The server needs a name: say plainly that it is not known.
                process_name: owner
                    .as_ref()
                    .map_or_else(|| "(unknown)".to_string(), |o| o.name.clone()),
                local_ip: Some(s.local.ip()),
                local_port: Some(s.local.port()),
                remote_ip: s.remote.ip(),
                remote_port: Some(s.remote.port()),
                protocol: s.protocol,
                direction,
                state: Some(s.state.as_str().to_string()),
                bytes_sent: bytes.map_or(0, |b| b.sent),
                bytes_received: bytes.map_or(0, |b| b.received),
                duration_secs: 0.0,
            };
            out.push(record.clone());
            self.open.insert(key, (now, record));
        }
        let ended: Vec<ConnKey> = self
            .open
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for key in ended {
            if let Some((start, mut record)) = self.open.remove(&key) {
                record.timestamp = now;
                record.duration_secs = (now - start).num_milliseconds().max(0) as f64 / 1000.0;
                // Not "CLOSED": a connection seen to end without counters (UDP, or no
                // sock_diag) is not a failed attempt.
                record.state = Some("ENDED".into());
                out.push(record);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on x86_64 Linux (little-endian), trimmed.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20522 1 0000000000000000 100 0 0 10 0
   1: 0F02000A:D8A6 2A8B1F8E:01BB 01 00000000:00000000 02:000A3F7B 00000000  1000        0 845123 2 0000000000000000 20 4 30 10 -1
   2: 0F02000A:9C40 2A8B1F8E:0050 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18020 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000F02000A:0016 0000000000000000FFFF00000202000A:C350 01 00000000:00000000 02:00097B4A 00000000     0        0 912345 4 0000000000000000 20 4 31 10 -1
   2: B80D0120000000000000000001000000:E5A2 B80D0120000000000000000002000000:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 77 1 0000000000000000 20 4 0 10 -1
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 19000 2 0000000000000000 0
  456: 0F02000A:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 5555 2 0000000000000000 0
";

    #[test]
    fn reads_ipv4_tcp() {
        let s = parse_proc_net(TCP, Protocol::Tcp).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].local, "127.0.0.1:631".parse().unwrap());
        assert_eq!(s[0].state, SocketState::Listen);
        assert_eq!(s[1].local, "10.0.2.15:55462".parse().unwrap());
        assert_eq!(s[1].remote, "142.31.139.42:443".parse().unwrap());
        assert_eq!((s[1].uid, s[1].inode), (1000, 845123));
        assert_eq!(s[2].state, SocketState::TimeWait);
    }

    #[test]
    fn reads_ipv6_including_mapped_v4() {
        let s = parse_proc_net(TCP6, Protocol::Tcp).unwrap();
        assert_eq!(s[0].local, "[::]:22".parse().unwrap());
        assert_eq!(s[1].local, "[::ffff:10.0.2.15]:22".parse().unwrap());
        assert_eq!(s[1].remote, "[::ffff:10.0.2.2]:50000".parse().unwrap());
        assert_eq!(s[2].local, "[2001:db8::1]:58786".parse().unwrap());
        assert_eq!(s[2].remote, "[2001:db8::2]:443".parse().unwrap());
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            "0: 0100007F 00000000:0000 0A 0 0 0 0 0 1",
            "0: 0100007F:0277 00000000:0000 ZZ 0 0 0 0 0 1",
            "0: 0100007F:0277 00000000:0000 0A 0 0 0 x 0 1",
            "0: 01007F:0277 00000000:0000 0A 0 0 0 0 0 1",
            "0: 0100007F:0277 00000000:0000 0A",
        ] {
            let e = parse_proc_net(bad, Protocol::Tcp).unwrap_err();
            assert_eq!(e.line, 1, "{bad}");
        }
    }

    #[test]
    fn snapshots_and_tracking() {
        let mut sockets = parse_proc_net(TCP, Protocol::Tcp).unwrap();
        sockets.extend(parse_proc_net(TCP6, Protocol::Tcp).unwrap());
        sockets.extend(parse_proc_net(UDP, Protocol::Udp).unwrap());
        let owners = HashMap::from([(
            845123,
            Owner {
                pid: 42,
                name: "firefox".into(),
            },
        )]);
        let snap = assemble(sockets.clone(), &owners, 3);
        // tcp: 1 connected (the TIME_WAIT one has ended); tcp6: 2; udp: 1 connected.
        assert_eq!(snap.connections.len(), 4);
        assert_eq!(snap.unmapped, 3);
        assert!(snap.listening.contains(&(Protocol::Tcp, 22)));
        let t0: DateTime<Utc> = "2026-11-30T10:00:00Z".parse().unwrap();
        let mut tracker = Tracker::new();
        let first = tracker.update(&snap, "h", t0);
        assert_eq!(first.len(), 4);
        assert!(first.iter().any(|r| r.process_name == "(unknown)"));
        let ff = first.iter().find(|r| r.process_name == "firefox").unwrap();
        assert_eq!(ff.direction, Direction::Outbound);
        assert_eq!(ff.remote_port, Some(443));
        let ssh = first.iter().find(|r| r.local_port == Some(22)).unwrap();
        assert_eq!(ssh.direction, Direction::Inbound);
        // Nothing changed: nothing reported.
        assert!(tracker.update(&snap, "h", t0).is_empty());
        // Counters arrive (sock_diag); then firefox's connection ends 3 s later and is
        // reported with the last counters seen.
        let mut counted = snap.clone();
        counted.bytes.insert(
            845123,
            crate::sockdiag::TcpBytes {
                sent: 5000,
                received: 90_000,
            },
        );
        assert!(tracker.update(&counted, "h", t0).is_empty());
        let rest: Vec<Socket> = sockets.into_iter().filter(|s| s.inode != 845123).collect();
        let later = assemble(rest, &owners, 0);
        let ended = tracker.update(&later, "h", t0 + chrono::Duration::seconds(3));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].process_name, "firefox");
        assert_eq!(ended[0].duration_secs, 3.0);
        assert_eq!(
            (ended[0].bytes_sent, ended[0].bytes_received),
            (5000, 90_000)
        );
        assert_eq!(tracker.open(), 3);
    }

    #[test]
    fn this_machine_reads() {
        // The real /proc of the test machine: parses, whatever it holds.
        if Path::new("/proc/net/tcp").exists() {
            let snap = snapshot(Path::new("/proc")).unwrap();
            assert!(snap.listening.len() + snap.connections.len() < 1_000_000);
        }
    }
}
