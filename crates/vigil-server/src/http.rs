//! The HTTP listener's connection handling (issue 22): instead of `axum::serve`, which has
//! no header timeout and no connection cap, each connection is served by hyper's HTTP/1
//! with
//!
//! - a **header timeout** (`[server] header_timeout_secs`, 10 s): a request head must
//!   arrive whole within it. hyper starts the clock whenever the connection waits for a
//!   head, so it is also the **keep-alive idle timeout**: a connection that sends nothing
//!   between requests is closed after it, and one trickling header lines is cut;
//! - **connection caps** (`max_connections`, `max_connections_per_ip`) through a
//!   [`ConnTracker`]: at a cap the longest-idle connection is closed to make room, so idle
//!   sockets cannot lock out real clients;
//! - graceful shutdown: on the signal no connection is accepted, idle ones close, requests
//!   in flight finish.
//!
//! Request bodies have their own timeout ([`crate::admission`]).

use crate::conn::{ConnLimits, ConnTracker};
use crate::tls::Peer;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Connection settings of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time for a whole request head, and the keep-alive idle time.
    pub header_timeout: Duration,
    /// Connection caps.
    pub conns: ConnLimits,
}

/// The address a listener reports for a connection, as the access log's [`Peer`].
pub trait IntoPeer {
    /// The peer.
    fn into_peer(self) -> Peer;
}

impl IntoPeer for SocketAddr {
    fn into_peer(self) -> Peer {
        Peer {
            addr: self,
            client_cert: None,
        }
    }
}

impl IntoPeer for Peer {
    fn into_peer(self) -> Peer {
        self
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the open
/// connections to finish their requests.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()>,
) where
    L: axum::serve::Listener,
    L::Addr: IntoPeer,
{
    let tracker = ConnTracker::new("http", limits.conns);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            _ = &mut shutdown => break,
            c = listener.accept() => c,
        };
        let peer = addr.into_peer();
        let Ok(guard) = tracker.admit(peer.addr.ip()) else {
            // Every connection is busy: this one is closed unanswered.
            continue;
        };
        let (router, mut stop, done) = (router.clone(), stop_rx.clone(), done_tx.clone());
        tokio::spawn(async move {
            let _done = done;
            let guard = Arc::new(guard);
            let g = guard.clone();
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let token = g.busy();
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer.clone()));
                let router = router.clone();
                async move {
                    let resp = tower::ServiceExt::oneshot(router, req)
                        .await
                        .unwrap_or_else(|e: Infallible| match e {});
                    // The connection stays busy (not evictable) until the body is sent.
                    Ok::<_, Infallible>(resp.map(|b| {
                        Body::new(b.map_frame(move |f| {
                            let _ = &token;
                            f
                        }))
                    }))
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_headers(100);
            let conn = builder
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = guard.evicted() => return,
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
}
