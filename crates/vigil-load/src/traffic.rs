//! The traffic: one open-loop scheduler per kind (a tick every `1/rate` seconds starts a
//! request as its own task whatever the previous ones are doing, up to a cap of requests in
//! flight; a tick over the cap is counted as `dropped_by_client`), the overload blast, the
//! file-analysis protocol's connection pool and the WebSocket subscribers.

use crate::generate::Generator;
use crate::server::{Api, snippet};
use crate::stats::{Kind, Outcome, Phase, Recorder, Ticket};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use vigil_file::protocol::{Reply, decode_reply, encode_request};

/// Error samples kept per kind.
const KEPT_ERRORS: usize = 8;

/// One failed request, kept so a server problem can be reproduced.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorSample {
    /// Seconds from the start of the run.
    pub t: f64,
    /// The traffic kind.
    pub kind: Kind,
    /// The phase it was sent in.
    pub phase: Phase,
    /// What was sent.
    pub request: String,
    /// Status (or protocol reply), and the start of the body (or the transport error).
    pub response: String,
}

/// Everything the traffic tasks share.
pub struct Ctx {
    /// The REST API.
    pub api: Api,
    /// The run's content.
    pub generator: Generator,
    /// The counters.
    pub rec: Recorder,
    /// The load's script name (its result in an `analyze` answer is a hit).
    pub script: String,
    /// The file-analysis protocol's pool, when the protocol is on.
    pub files: Option<FilePool>,
    /// Error samples.
    pub errors: Mutex<Vec<ErrorSample>>,
}

impl Ctx {
    fn sample(&self, ticket: &Ticket, kind: Kind, request: &str, response: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.iter().filter(|e| e.kind == kind).count() < KEPT_ERRORS {
            errors.push(ErrorSample {
                t: self.rec.elapsed().as_secs_f64(),
                kind,
                phase: ticket.phase(),
                request: request.to_string(),
                response,
            });
        }
    }
}

/// Runs `request` at `rate` per second until `until` (from the start of the run), at most
/// `cap` at a time; then waits for those in flight.
pub async fn schedule<F, Fut>(
    ctx: Arc<Ctx>,
    kind: Kind,
    rate: f64,
    until: Duration,
    cap: usize,
    request: F,
) where
    F: Fn(Arc<Ctx>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if rate <= 0.0 || cap == 0 {
        return;
    }
    let permits = Arc::new(Semaphore::new(cap));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    // Open loop: ticks missed while this task was late are all sent, not skipped.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tick.tick().await;
        if ctx.rec.elapsed() >= until {
            break;
        }
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let fut = request(ctx.clone());
                tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                });
            }
            Err(_) => ctx.rec.dropped(kind),
        }
    }
    let _ = permits.acquire_many(cap as u32).await;
}

/// The answer to a bulk request.
#[derive(Deserialize)]
struct BulkAnswer {
    accepted: u64,
    ids: Vec<String>,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    rejected: Option<u64>,
}

/// How a bulk request ended, for the blast's resend decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkResult {
    /// Stored.
    Stored,
    /// Refused whole (429/503): nothing of it was stored.
    Shed,
    /// Anything else.
    Failed,
}

/// Sends `batch` as a bulk request of `kind`.
pub async fn bulk(ctx: &Ctx, kind: Kind, batch: &crate::generate::Batch) -> BulkResult {
    let t = ctx.rec.begin(kind);
    ctx.rec.events_sent(&t, batch.count);
    let what = || {
        format!(
            "POST /api/v1/events/bulk ({} events, ids {}..{})",
            batch.count,
            ctx.generator.event_id(batch.first),
            ctx.generator.event_id(batch.first + batch.count - 1)
        )
    };
    let sent = ctx
        .api
        .client
        .post(ctx.api.url("/api/v1/events/bulk"))
        .bearer_auth(&ctx.api.token)
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(batch.body.clone())
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            ctx.rec.finish(&t, Outcome::Transport);
            ctx.sample(&t, kind, &what(), format!("transport: {e}"));
            return BulkResult::Failed;
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key(RETRY_AFTER);
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            ctx.rec.finish(&t, Outcome::Transport);
            ctx.sample(&t, kind, &what(), format!("{status}, body: {e}"));
            return BulkResult::Failed;
        }
    };
    let outcome = Outcome::from_status(status);
    let result = match outcome {
        Outcome::Ok => match serde_json::from_slice::<BulkAnswer>(&body) {
            Ok(a) => {
                let seqs: Vec<u64> = a
                    .ids
                    .iter()
                    .filter_map(|id| ctx.generator.seq_of(id))
                    .collect();
                if a.accepted != batch.count || seqs.len() as u64 != a.accepted {
                    ctx.sample(
                        &t,
                        kind,
                        &what(),
                        format!(
                            "{status} accepted {} of {} ({} ids of this run)",
                            a.accepted,
                            batch.count,
                            seqs.len()
                        ),
                    );
                }
                ctx.rec
                    .acked(&t, &seqs, a.duplicates, a.rejected.unwrap_or(0));
                BulkResult::Stored
            }
            Err(e) => {
                ctx.sample(
                    &t,
                    kind,
                    &what(),
                    format!("{status}, unreadable answer: {e}"),
                );
                BulkResult::Failed
            }
        },
        Outcome::TooMany | Outcome::Unavailable => {
            if !retry_after {
                ctx.rec.retry_after_missing(&t);
                ctx.sample(
                    &t,
                    kind,
                    &what(),
                    format!("{status} without Retry-After: {}", body_snippet(&body)),
                );
            }
            BulkResult::Shed
        }
        _ => {
            ctx.sample(
                &t,
                kind,
                &what(),
                format!("{status}: {}", body_snippet(&body)),
            );
            BulkResult::Failed
        }
    };
    ctx.rec.finish(&t, outcome);
    result
}

fn body_snippet(body: &[u8]) -> String {
    snippet(&String::from_utf8_lossy(body))
}

/// A JSON POST of `kind` to `path`: the outcome and, for a 2xx, the answer.
async fn post_json(ctx: &Ctx, kind: Kind, path: &str, body: &Value) -> (Ticket, Option<Value>) {
    let payload = body.to_string();
    let t = ctx.rec.begin(kind);
    let sent = ctx
        .api
        .client
        .post(ctx.api.url(path))
        .bearer_auth(&ctx.api.token)
        .header(CONTENT_TYPE, "application/json")
        .body(payload)
        .send()
        .await;
    let what = || format!("POST {path}: {}", snippet(&body.to_string()));
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            ctx.rec.finish(&t, Outcome::Transport);
            ctx.sample(&t, kind, &what(), format!("transport: {e}"));
            return (t, None);
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key(RETRY_AFTER);
    let outcome = Outcome::from_status(status);
    let text = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            ctx.rec.finish(&t, Outcome::Transport);
            ctx.sample(&t, kind, &what(), format!("{status}, body: {e}"));
            return (t, None);
        }
    };
    let answer = match outcome {
        Outcome::Ok => serde_json::from_slice(&text).ok(),
        Outcome::TooMany | Outcome::Unavailable => {
            if !retry_after {
                ctx.rec.retry_after_missing(&t);
                ctx.sample(&t, kind, &what(), format!("{status} without Retry-After"));
            }
            None
        }
        _ => {
            ctx.sample(
                &t,
                kind,
                &what(),
                format!("{status}: {}", body_snippet(&text)),
            );
            None
        }
    };
    ctx.rec.finish(&t, outcome);
    (t, answer)
}

/// One steady bulk request of `n` events.
pub async fn steady_bulk(ctx: Arc<Ctx>, n: u64) {
    let batch = ctx.generator.bulk(n);
    bulk(&ctx, Kind::Bulk, &batch).await;
}

/// One `POST /api/v1/analyze`.
pub async fn analyze(ctx: Arc<Ctx>) {
    let event = ctx.generator.analyze_event();
    let (t, answer) = post_json(&ctx, Kind::Analyze, "/api/v1/analyze", &event).await;
    if let Some(a) = answer {
        let found = a["findings"].as_array().is_some_and(|f| !f.is_empty())
            || a["results"].get(&ctx.script).is_some_and(|r| !r.is_null());
        if found {
            ctx.rec.hit(&t);
        }
        let expected = event["process"]["command_line"]
            .as_str()
            .is_some_and(|c| c.starts_with("powershell -enc "));
        if expected && !found {
            let what = format!(
                "POST /api/v1/analyze (encoded PowerShell, {})",
                event["event"]["id"]
            );
            let answer = format!(
                "200 without the script's result: {}",
                snippet(&a.to_string())
            );
            ctx.sample(&t, Kind::Analyze, &what, answer);
        }
    }
}

/// One `POST /api/v1/network/analyze/batch` of `n` records.
pub async fn network(ctx: Arc<Ctx>, n: u64) {
    let body = ctx.generator.network_batch(n);
    let (t, answer) = post_json(&ctx, Kind::Network, "/api/v1/network/analyze/batch", &body).await;
    ctx.rec.events_sent(&t, n);
    if let Some(a) = answer {
        let scored = a["scored"].as_u64().unwrap_or(0);
        let rejected = a["rejected"].as_u64().unwrap_or(0);
        ctx.rec.processed(&t, scored, rejected);
        if a["anomalies"].as_u64().unwrap_or(0) > 0 {
            ctx.rec.hit(&t);
        }
        if rejected > 0 {
            let first = a["results"]
                .as_array()
                .and_then(|r| r.iter().find(|x| x.get("error").is_some()))
                .map(|x| x.to_string())
                .unwrap_or_default();
            ctx.sample(
                &t,
                Kind::Network,
                "POST /api/v1/network/analyze/batch",
                format!("{rejected} records rejected, first: {}", snippet(&first)),
            );
        }
    }
}

/// The blast of the overload phase: `concurrency` tasks each sending `batch`-event bulk
/// requests back to back, without honouring `Retry-After`, until `until`. A batch the
/// server shed is sent again as it is (nothing of it was stored); otherwise a new one.
pub async fn blast(ctx: Arc<Ctx>, concurrency: usize, batch: u64, until: Duration) {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut pending = None;
                loop {
                    let b = pending.take().unwrap_or_else(|| ctx.generator.bulk(batch));
                    // Checked after making the batch, so that none is sent after `until`.
                    if ctx.rec.elapsed() >= until {
                        break;
                    }
                    match bulk(&ctx, Kind::Blast, &b).await {
                        BulkResult::Shed => {
                            pending = Some(b);
                            // Do not spin the client's own CPU on instant refusals.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        BulkResult::Stored | BulkResult::Failed => {}
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Pooled connections to the file-analysis protocol, each authenticated once.
pub struct FilePool {
    addr: String,
    token: String,
    idle: Mutex<Vec<Conn>>,
    /// Connections opened (and authenticated).
    pub connects: AtomicU64,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    last_used: Instant,
}

/// A connection idle this long is closed rather than reused (the server closes after 30 s
/// without a frame).
const MAX_IDLE: Duration = Duration::from_secs(20);

enum ProtoError {
    Io(String),
    Refused(u32, String),
}

impl FilePool {
    /// A pool for the protocol at `addr`, authenticating with `token`.
    pub fn new(addr: &str, token: &str) -> FilePool {
        FilePool {
            addr: addr.to_string(),
            token: token.to_string(),
            idle: Mutex::new(Vec::new()),
            connects: AtomicU64::new(0),
        }
    }

    async fn take(&self) -> Result<Conn, ProtoError> {
        loop {
            let conn = self.idle.lock().unwrap().pop();
            match conn {
                Some(c) if c.last_used.elapsed() < MAX_IDLE => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| ProtoError::Io(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            last_used: Instant::now(),
        };
        match conn
            .call(&encode_request(0, &[self.token.as_bytes()]))
            .await?
        {
            Reply::Verdict { .. } => {
                self.connects.fetch_add(1, Relaxed);
                Ok(conn)
            }
            Reply::Error { code, message } => Err(ProtoError::Refused(code, message)),
        }
    }

    fn put(&self, mut conn: Conn) {
        conn.last_used = Instant::now();
        self.idle.lock().unwrap().push(conn);
    }
}

impl Conn {
    async fn call(&mut self, frame: &[u8]) -> Result<Reply, ProtoError> {
        self.stream
            .write_all(frame)
            .await
            .map_err(|e| ProtoError::Io(format!("write: {e}")))?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match decode_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(ProtoError::Io(format!("bad reply: {e}"))),
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| ProtoError::Io(format!("read: {e}")))?;
            if n == 0 {
                return Err(ProtoError::Io("closed by the server".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Whether a protocol error code leaves the connection open (docs/protocol.md).
fn stays_open(code: u32, message: &str) -> bool {
    matches!(code, 3 | 5 | 6) || (code == 7 && message != "too many connections")
}

/// The outcome of a protocol error reply, in HTTP terms.
fn protocol_outcome(code: u32, message: &str) -> Outcome {
    match code {
        7 if message == "too many connections" => Outcome::Unavailable,
        7 => Outcome::Server,
        _ => Outcome::Client,
    }
}

/// One static analysis (command 1) of a generated executable over the protocol.
pub async fn file_scan(ctx: Arc<Ctx>, timeout: Duration) {
    let Some(pool) = &ctx.files else { return };
    let n = ctx.generator.next_number();
    let bytes = ctx.generator.file(n);
    let frame = encode_request(1, &[&bytes, b"", b""]);
    let what = format!("protocol command 1 (static), {} bytes", bytes.len());
    let t = ctx.rec.begin(Kind::File);
    let exchange = async {
        let mut conn = pool.take().await?;
        let reply = conn.call(&frame).await?;
        Ok::<_, ProtoError>((conn, reply))
    };
    let (outcome, response) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => (Outcome::Transport, Some("no reply in time".to_string())),
        Ok(Err(ProtoError::Io(e))) => (Outcome::Transport, Some(e)),
        Ok(Err(ProtoError::Refused(code, message))) => (
            protocol_outcome(code, &message),
            Some(format!("AUTH refused: ERROR {code} {message}")),
        ),
        Ok(Ok((conn, Reply::Verdict { malicious, .. }))) => {
            pool.put(conn);
            if malicious {
                ctx.rec.hit(&t);
            }
            (Outcome::Ok, None)
        }
        Ok(Ok((conn, Reply::Error { code, message }))) => {
            let outcome = protocol_outcome(code, &message);
            if stays_open(code, &message) {
                pool.put(conn);
            }
            (outcome, Some(format!("ERROR {code} {message}")))
        }
    };
    if let Some(r) = response {
        ctx.sample(&t, Kind::File, &what, r);
    }
    ctx.rec.finish(&t, outcome);
}

/// One WebSocket subscriber of `/api/v1/stream` for the run's host: counts findings,
/// reconnects a second after any close until `stop`.
pub async fn subscriber(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let base = ctx.api.base.replacen("http://", "ws://", 1);
    let url = format!(
        "{base}/api/v1/stream?access_token={}&host.name={}",
        ctx.api.token, ctx.generator.host
    );
    let ws = &ctx.rec.ws;
    let mut stopping = false;
    while !*stop.borrow() {
        let connected = tokio::select! {
            c = tokio_tungstenite::connect_async(url.as_str()) => c,
            _ = stop.changed() => break,
        };
        match connected {
            Err(_) => {
                ws.connect_errors.fetch_add(1, Relaxed);
            }
            Ok((mut socket, _)) => {
                ws.connects.fetch_add(1, Relaxed);
                loop {
                    tokio::select! {
                        _ = stop.changed() => {
                            let _ = socket.close(None).await;
                            stopping = true;
                            break;
                        }
                        msg = socket.next() => match msg {
                            Some(Ok(Message::Text(_))) => {
                                ws.messages.fetch_add(1, Relaxed);
                            }
                            Some(Ok(Message::Close(frame))) => {
                                ws.disconnects.fetch_add(1, Relaxed);
                                if frame.is_some_and(|f| u16::from(f.code) == 1008) {
                                    ws.slow_consumer.fetch_add(1, Relaxed);
                                }
                                break;
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => {
                                ws.disconnects.fetch_add(1, Relaxed);
                                break;
                            }
                        }
                    }
                }
            }
        }
        if stopping {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_map_like_http() {
        assert_eq!(
            protocol_outcome(7, "too many connections"),
            Outcome::Unavailable
        );
        assert_eq!(protocol_outcome(7, "internal error"), Outcome::Server);
        assert_eq!(protocol_outcome(5, "bad request"), Outcome::Client);
        assert!(stays_open(5, ""));
        assert!(stays_open(7, "internal error"));
        assert!(!stays_open(7, "too many connections"));
        assert!(!stays_open(8, "timeout"));
        assert!(!stays_open(4, "unauthorized"));
    }
}
