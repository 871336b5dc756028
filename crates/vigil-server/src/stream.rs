//! `GET /api/v1/stream`: findings pushed over a WebSocket as they are stored.
//!
//! Filters (query parameters): `analyzer`, `severity` (minimum), `host.name`. A client that
//! falls more than the stream buffer behind is closed with code 1008 and a reason saying
//! so; a client whose socket does not take a message within 5 s is dropped. Neither ever
//! slows the pipeline: the broadcast channel never waits for subscribers.

use crate::{AppError, AppState};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use vigil_core::metric_names as m;
use vigil_core::{Finding, Severity};

const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Caps on WebSocket subscribers (`/api/v1/stream`, `/api/v1/incidents/stream`,
/// `/api/v1/network/stream`), per credential and in all (issue 22: 2,000 viewer streams
/// took 244 MB). A stream holds its [`StreamSlot`] for its whole life.
#[derive(Debug)]
pub struct StreamSlots {
    max_total: usize,
    max_per_credential: usize,
    held: std::sync::Mutex<(usize, std::collections::HashMap<String, usize>)>,
}

/// One open stream's place; dropping it frees the place.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    who: String,
}

impl StreamSlots {
    /// At most `max_total` streams at once, `max_per_credential` of one credential.
    pub fn new(max_total: usize, max_per_credential: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            max_total,
            max_per_credential,
            held: Default::default(),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// A place for a stream of `who` (a principal's subject), or the refusal to answer.
    pub fn acquire(self: &Arc<Self>, who: &str) -> Result<StreamSlot, AppError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 >= self.max_total {
            return Err(AppError::TooMany {
                code: "too_many_streams",
                message: format!(
                    "{} streams are open on this server, its limit ([server] max_streams); retry later",
                    self.max_total
                ),
            });
        }
        let mine = held.1.get(who).copied().unwrap_or(0);
        if mine >= self.max_per_credential {
            return Err(AppError::TooMany {
                code: "too_many_streams",
                message: format!(
                    "this credential has {mine} streams open, its limit ([server] max_streams_per_credential); close one first"
                ),
            });
        }
        held.0 += 1;
        *held.1.entry(who.to_string()).or_default() += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            who: who.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.0 = held.0.saturating_sub(1);
        if let Some(n) = held.1.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                held.1.remove(&self.who);
            }
        }
    }
}

/// Close code for a subscriber dropped for falling behind (policy violation).
pub const CLOSE_SLOW_CONSUMER: u16 = 1008;

/// Query parameters of the stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    analyzer: Option<String>,
    severity: Option<String>,
    #[serde(rename = "host.name")]
    host: Option<String>,
    /// Browsers cannot set headers on a WebSocket; the auth layer reads this one.
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

struct Filter {
    analyzer: Option<String>,
    min_severity: Option<Severity>,
    host: Option<String>,
}

impl Filter {
    fn matches(&self, f: &Finding) -> bool {
        self.analyzer.as_ref().is_none_or(|a| *a == f.analyzer)
            && self.min_severity.is_none_or(|s| f.severity >= s)
            && self
                .host
                .as_ref()
                .is_none_or(|h| f.host_name.as_deref() == Some(h.as_str()))
    }
}

/// Upgrades to a WebSocket and streams findings.
pub async fn stream(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    params: Result<Query<StreamParams>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let Query(p) = params?;
    let ws = ws.map_err(|_| {
        AppError::bad(
            "websocket_required",
            "this endpoint streams findings over a WebSocket: connect with `Upgrade: websocket`",
        )
    })?;
    let min_severity = crate::routes::parse_severity(p.severity.as_deref())?;
    let filter = Filter {
        analyzer: p.analyzer,
        min_severity,
        host: p.host,
    };
    let slot = state.streams.acquire(&who.subject)?;
    let rx = state.pipeline.subscribe();
    Ok(ws.on_upgrade(move |socket| async move {
        run(socket, rx, filter).await;
        drop(slot);
    }))
}

async fn run(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<Finding>>, filter: Filter) {
    metrics::gauge!(m::STREAM_SUBSCRIBERS).increment(1.0);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(finding) => {
                    if !filter.matches(&finding) {
                        continue;
                    }
                    let Ok(text) = serde_json::to_string(&*finding) else { continue };
                    let sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        metrics::counter!(m::STREAM_DROPPED).increment(1);
                        break;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!(m::STREAM_DROPPED).increment(1);
                    let reason = format!(
                        "slow consumer: fell {missed} findings behind; reconnect and read missed ones from /api/v1/findings"
                    );
                    close(&mut socket, CLOSE_SLOW_CONSUMER, reason).await;
                    break;
                }
                Err(RecvError::Closed) => {
                    close(&mut socket, 1001, "server shutting down".into()).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    metrics::gauge!(m::STREAM_SUBSCRIBERS).decrement(1.0);
}

pub(crate) async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}
