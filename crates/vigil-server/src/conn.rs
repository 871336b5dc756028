//! Connection limits for every listener (issue 22): how many connections are held at
//! once, in all and per client address, and what happens at the cap.
//!
//! A listener asks its [`ConnTracker`] to [`admit`](ConnTracker::admit) each accepted
//! connection. Below both caps it is admitted. At a cap, the connection that has been
//! *idle* the longest (no request in flight: an HTTP keep-alive connection or one still
//! sending its request head, a protocol connection that has not authenticated, a quiet
//! syslog sender) is closed to make room; only when every held connection is busy is the
//! new one refused. So a flood of idle sockets (a slowloris, 256 unauthenticated protocol
//! connections) cannot lock out real clients, and the caps keep the process below its file
//! descriptor limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections held at once.
    pub max_total: usize,
    /// Connections held at once from one client address.
    pub max_per_ip: usize,
}

/// The connections of one listener.
#[derive(Debug)]
pub struct ConnTracker {
    name: &'static str,
    limits: ConnLimits,
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    shared: Arc<Shared>,
}

/// What a connection and its tracker share.
#[derive(Debug, Default)]
struct Shared {
    /// Requests in flight (or 1 for "not evictable", as the protocol sets after AUTH).
    busy: AtomicUsize,
    /// Milliseconds since the tracker's epoch at the last activity.
    last_active_ms: AtomicU64,
    /// Notified when the tracker closes the connection to make room.
    evicted: Notify,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every connection of this address is busy.
    PerIp,
    /// Every connection is busy.
    Total,
}

impl ConnTracker {
    /// A tracker for the listener `name` (used in metrics and logs).
    pub fn new(name: &'static str, limits: ConnLimits) -> Arc<ConnTracker> {
        Arc::new(ConnTracker {
            name,
            limits: ConnLimits {
                max_total: limits.max_total.max(1),
                max_per_ip: limits.max_per_ip.max(1),
            },
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    /// The caps.
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// Connections held now.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Admits a connection from `ip`, closing the longest-idle one at a cap; refuses it
    /// when every connection that would make room is busy.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refused> {
        let mut st = self.lock();
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_per_ip
            && !self.evict(&mut st, Some(ip))
        {
            metrics::counter!("vigil_connections_refused_total", "listener" => self.name, "cap" => "per_ip")
                .increment(1);
            return Err(Refused::PerIp);
        }
        if st.conns.len() >= self.limits.max_total && !self.evict(&mut st, None) {
            metrics::counter!("vigil_connections_refused_total", "listener" => self.name, "cap" => "total")
                .increment(1);
            return Err(Refused::Total);
        }
        let id = st.next_id;
        st.next_id += 1;
        let shared = Arc::new(Shared::default());
        shared
            .last_active_ms
            .store(self.now_ms(), Ordering::Relaxed);
        st.conns.insert(
            id,
            Entry {
                ip,
                shared: shared.clone(),
            },
        );
        *st.per_ip.entry(ip).or_default() += 1;
        Ok(ConnGuard {
            id,
            tracker: self.clone(),
            shared,
        })
    }

    /// Closes the longest-idle connection (of `ip`, if given); false when none is idle.
    fn evict(&self, st: &mut State, ip: Option<IpAddr>) -> bool {
        let victim = st
            .conns
            .iter()
            .filter(|(_, e)| ip.is_none_or(|ip| e.ip == ip))
            .filter(|(_, e)| e.shared.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, e)| e.shared.last_active_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        let Some(id) = victim else {
            return false;
        };
        if let Some(e) = st.conns.remove(&id) {
            release_ip(st, e.ip);
            e.shared.evicted.notify_one();
            metrics::counter!("vigil_connections_evicted_total", "listener" => self.name)
                .increment(1);
        }
        true
    }
}

fn release_ip(st: &mut State, ip: IpAddr) {
    if let Some(n) = st.per_ip.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            st.per_ip.remove(&ip);
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnGuard {
    id: u64,
    tracker: Arc<ConnTracker>,
    shared: Arc<Shared>,
}

impl ConnGuard {
    /// Resolves when the tracker closed this connection to make room for another: the
    /// connection's task must then drop it.
    pub async fn evicted(&self) {
        self.shared.evicted.notified().await;
    }

    /// Records activity now (the idle time that eviction orders by starts again).
    pub fn touch(&self) {
        self.shared
            .last_active_ms
            .store(self.tracker.now_ms(), Ordering::Relaxed);
    }

    /// Marks a request in flight until the returned token is dropped: a busy connection is
    /// never evicted.
    pub fn busy(&self) -> BusyToken {
        self.shared.busy.fetch_add(1, Ordering::AcqRel);
        BusyToken {
            shared: self.shared.clone(),
            epoch: self.tracker.epoch,
        }
    }

    /// Marks the connection as never evictable (an authenticated protocol session).
    pub fn pin(&self) {
        self.shared.busy.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut st = self.tracker.lock();
        if let Some(e) = st.conns.remove(&self.id) {
            release_ip(&mut st, e.ip);
        }
    }
}

/// A request in flight on a connection ([`ConnGuard::busy`]).
#[derive(Debug)]
pub struct BusyToken {
    shared: Arc<Shared>,
    epoch: Instant,
}

impl Drop for BusyToken {
    fn drop(&mut self) {
        self.shared
            .last_active_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.shared.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises the process's open-file limit to its hard limit and returns the soft limit now
/// in force (what connection caps must stay below).
pub fn raise_fd_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
                return 1024;
            }
            if rl.rlim_cur < rl.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: rl.rlim_max,
                    rlim_max: rl.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    rl.rlim_cur = rl.rlim_max;
                }
            }
        }
        // rlim_t is u64 on Linux, not on every unix.
        #[allow(clippy::unnecessary_cast)]
        let soft = rl.rlim_cur as u64;
        soft
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// Descriptors kept out of the connection caps: the store, log files, outbound clients.
pub const FD_RESERVE: u64 = 128;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn at_a_cap_the_longest_idle_connection_makes_room_and_busy_ones_never_do() {
        let t = ConnTracker::new(
            "test",
            ConnLimits {
                max_total: 3,
                max_per_ip: 2,
            },
        );
        let a1 = t.admit(ip(1)).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let a2 = t.admit(ip(1)).unwrap();
        // Per address: the third from 10.0.0.1 closes the older idle one (a1).
        let a3 = t.admit(ip(1)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), a1.evicted())
            .await
            .expect("a1 evicted");
        assert_eq!(t.len(), 2);
        drop(a1);
        assert_eq!(t.len(), 2);
        // Busy connections are kept: both of 10.0.0.1's are busy, a third is refused.
        let (_b2, _b3) = (a2.busy(), a3.busy());
        assert_eq!(t.admit(ip(1)).unwrap_err(), Refused::PerIp);
        // In all: 10.0.0.2 takes the last place, then 10.0.0.3 evicts it (the only idle).
        let c = t.admit(ip(2)).unwrap();
        let d = t.admit(ip(3)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), c.evicted())
            .await
            .expect("c evicted");
        // Now all three are busy or pinned: refused.
        d.pin();
        assert_eq!(t.admit(ip(4)).unwrap_err(), Refused::Total);
        drop((a2, a3, c, d));
        assert!(t.is_empty());
    }
}
