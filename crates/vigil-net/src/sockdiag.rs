//! Byte counters of the host's TCP connections from the kernel's `sock_diag` netlink
//! interface (what `ss -ti` shows): `tcp_info.bytes_acked` (sent and acknowledged) and
//! `tcp_info.bytes_received`, by socket inode. Works unprivileged for every socket on
//! Linux ≥ 4.2 (older kernels omit the counters: the map is then empty). UDP has no such
//! counters.
//!
//! The kernel's answers are parsed as untrusted bytes: every length is checked, and a
//! malformed message ends the dump with an error rather than a panic.

use std::collections::HashMap;

/// Bytes sent (acknowledged by the peer) and received on one TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpBytes {
    /// `tcp_info.bytes_acked`.
    pub sent: u64,
    /// `tcp_info.bytes_received`.
    pub received: u64,
}

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_MSG: usize = 72;
const INET_DIAG_INFO: u16 = 2;
/// Offsets of `bytes_acked` and `bytes_received` in `struct tcp_info` (stable ABI).
const TCP_INFO_BYTES_ACKED: usize = 120;
const TCP_INFO_BYTES_RECEIVED: usize = 128;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// What one receive buffer says: entries found, and whether the dump is complete.
#[derive(Debug, PartialEq)]
pub enum Chunk {
    /// More messages follow.
    More,
    /// `NLMSG_DONE`.
    Done,
}

/// Parses one buffer of netlink messages from a `SOCK_DIAG_BY_FAMILY` dump, adding each
/// socket's counters (by inode) to `out`.
pub fn parse_dump(buf: &[u8], out: &mut HashMap<u64, TcpBytes>) -> Result<Chunk, String> {
    let mut at = 0;
    while at + NLMSG_HDR <= buf.len() {
        let len = u32_at(buf, at).ok_or("short header")? as usize;
        let kind = u16_at(buf, at + 4).ok_or("short header")?;
        if len < NLMSG_HDR || at + len > buf.len() {
            return Err(format!("netlink message length {len} out of bounds"));
        }
        let msg = &buf[at + NLMSG_HDR..at + len];
        match kind {
            NLMSG_DONE => return Ok(Chunk::Done),
            NLMSG_ERROR => {
                let errno = u32_at(msg, 0)
                    .map(|e| (e as i32).wrapping_neg())
                    .unwrap_or(0);
                return Err(format!("sock_diag answered error {errno}"));
            }
            SOCK_DIAG_BY_FAMILY => {
                if msg.len() < INET_DIAG_MSG {
                    return Err("short inet_diag_msg".into());
                }
                let inode = u64::from(u32_at(msg, 68).ok_or("short inet_diag_msg")?);
                let mut a = INET_DIAG_MSG;
                while a + 4 <= msg.len() {
                    let alen = usize::from(u16_at(msg, a).ok_or("short attribute")?);
                    let akind = u16_at(msg, a + 2).ok_or("short attribute")?;
                    if alen < 4 || a + alen > msg.len() {
                        return Err(format!("attribute length {alen} out of bounds"));
                    }
                    if akind == INET_DIAG_INFO {
                        let info = &msg[a + 4..a + alen];
                        if let (Some(sent), Some(received)) = (
                            u64_at(info, TCP_INFO_BYTES_ACKED),
                            u64_at(info, TCP_INFO_BYTES_RECEIVED),
                        ) && inode != 0
                        {
                            out.insert(inode, TcpBytes { sent, received });
                        }
                    }
                    a += align4(alen);
                }
            }
            _ => {}
        }
        at += align4(len);
    }
    Ok(Chunk::More)
}

/// The request: a dump of every TCP socket of `family` (`AF_INET`, `AF_INET6`) with
/// `tcp_info`.
fn request(family: u8, seq: u32) -> Vec<u8> {
    let total = NLMSG_HDR + 56;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&(total as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    // NLM_F_REQUEST | NLM_F_DUMP
    b.extend_from_slice(&(0x1u16 | 0x300).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // struct inet_diag_req_v2
    b.push(family);
    b.push(6); // IPPROTO_TCP
    b.push(1 << (INET_DIAG_INFO - 1)); // idiag_ext: INET_DIAG_INFO
    b.push(0);
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    b.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: any
    b
}

/// Reads the counters of every TCP socket of this host (IPv4 and IPv6), by inode.
#[cfg(target_os = "linux")]
pub fn tcp_bytes() -> Result<HashMap<u64, TcpBytes>, String> {
    let mut out = HashMap::new();
    for (seq, family) in [(1u32, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
        dump(family, seq, &mut out)?;
    }
    Ok(out)
}

#[cfg(target_os = "linux")]
fn dump(family: u8, seq: u32, out: &mut HashMap<u64, TcpBytes>) -> Result<(), String> {
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    // SAFETY: plain socket(2); the descriptor is closed by `Fd`'s drop.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(format!(
            "netlink socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    struct Fd(libc::c_int);
    impl Drop for Fd {
        fn drop(&mut self) {
            // SAFETY: the descriptor is ours and closed once.
            unsafe { libc::close(self.0) };
        }
    }
    let fd = Fd(fd);
    // A receive timeout, so that a kernel that never answers cannot hang the collector.
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: `tv` outlives the call; the size is its own.
    unsafe {
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let req = request(family, seq);
    // SAFETY: zeroed sockaddr_nl is the kernel as destination.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `req` and `addr` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd.0,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(format!("netlink send: {}", std::io::Error::last_os_error()));
    }
    let mut buf = vec![0u8; 64 * 1024];
    // At most this many buffers: a bound even if the kernel kept talking.
    for _ in 0..100_000 {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(format!(
                "netlink receive: {}",
                std::io::Error::last_os_error()
            ));
        }
        if n == 0 {
            return Ok(());
        }
        if parse_dump(&buf[..n as usize], out)? == Chunk::Done {
            return Ok(());
        }
    }
    Err("sock_diag dump did not end".into())
}

/// Not Linux: no counters.
#[cfg(not(target_os = "linux"))]
pub fn tcp_bytes() -> Result<HashMap<u64, TcpBytes>, String> {
    Err("sock_diag is Linux only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(inode: u32, sent: u64, received: u64) -> Vec<u8> {
        let mut info = vec![0u8; 232];
        info[TCP_INFO_BYTES_ACKED..TCP_INFO_BYTES_ACKED + 8].copy_from_slice(&sent.to_ne_bytes());
        info[TCP_INFO_BYTES_RECEIVED..TCP_INFO_BYTES_RECEIVED + 8]
            .copy_from_slice(&received.to_ne_bytes());
        let mut body = vec![0u8; INET_DIAG_MSG];
        body[68..72].copy_from_slice(&inode.to_ne_bytes());
        // An unrelated attribute first, then INET_DIAG_INFO.
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&9u16.to_ne_bytes());
        body.extend_from_slice(&[1, 2, 3, 4]);
        body.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        body.extend_from_slice(&info);
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn parses_messages_and_done() {
        let mut buf = message(77, 1000, 2000);
        buf.extend(message(78, 5, 6));
        let mut out = HashMap::new();
        assert_eq!(parse_dump(&buf, &mut out), Ok(Chunk::More));
        assert_eq!(
            out[&77],
            TcpBytes {
                sent: 1000,
                received: 2000
            }
        );
        assert_eq!(out[&78].received, 6);
        let mut done = vec![0u8; NLMSG_HDR];
        done[0..4].copy_from_slice(&(NLMSG_HDR as u32).to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert_eq!(parse_dump(&done, &mut out), Ok(Chunk::Done));
    }

    #[test]
    fn hostile_buffers_are_errors() {
        let good = message(1, 1, 1);
        let mut out = HashMap::new();
        // A length past the end, a short body, an attribute past the end.
        let mut long = good.clone();
        long[0..4].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(parse_dump(&long, &mut out).is_err());
        let mut short = good[..NLMSG_HDR + 10].to_vec();
        short[0..4].copy_from_slice(&((NLMSG_HDR + 10) as u32).to_ne_bytes());
        assert!(parse_dump(&short, &mut out).is_err());
        let mut attr = good.clone();
        attr[NLMSG_HDR + INET_DIAG_MSG..NLMSG_HDR + INET_DIAG_MSG + 2]
            .copy_from_slice(&999u16.to_ne_bytes());
        assert!(parse_dump(&attr, &mut out).is_err());
        // Any prefix of a good buffer: an error or a partial result, never a panic.
        for n in 0..good.len() {
            let _ = parse_dump(&good[..n], &mut out);
        }
    }

    /// The real kernel: a local TCP connection that moved 300 kB shows it.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_kernel_counts_a_real_connection() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = vec![0u8; 300_000];
            s.read_exact(&mut got).unwrap();
            s.write_all(&[7u8; 1000]).unwrap();
            s
        });
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(&vec![1u8; 300_000]).unwrap();
        let mut back = [0u8; 1000];
        c.read_exact(&mut back).unwrap();
        let _server_side = server.join().unwrap();
        // The client socket's inode, as /proc/self/fd shows it.
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", c.as_raw_fd())).unwrap();
        let inode: u64 = link
            .to_str()
            .unwrap()
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap();
        match tcp_bytes() {
            Ok(map) => {
                let b = map.get(&inode).copied().unwrap_or_default();
                assert!(b.sent >= 300_000, "{b:?}");
                assert!(b.received >= 1000, "{b:?}");
            }
            // A sandbox without netlink: say so rather than pass silently.
            Err(e) => assert!(
                std::env::var("VIGIL_REQUIRE_FIXTURES").as_deref() != Ok("1"),
                "sock_diag unavailable: {e}"
            ),
        }
    }
}
