//! Admission control (issues 12 and 22): under overload the API sheds requests at once
//! with `503` and `Retry-After: 1` instead of queueing them without bound, and no client can
//! hold the body budget.
//!
//! - **requests in flight** (`[server] max_in_flight`), taken by [`admit`] before
//!   authentication: every API call holds one slot until its response head is ready. It
//!   also refuses, before anything is read, a `Content-Encoding` other than `identity`
//!   (`415`) and a `Content-Length` larger than any route takes (`413`).
//! - **body bytes in flight** (`max_in_flight_body_mib`), taken by [`guard_body`] on each
//!   route that reads a body, after authentication and with the route's own limit known:
//!   a claim above the route's limit is refused with `413` before anything is reserved; a
//!   request holds its `Content-Length` (a chunked body: the route's limit); one
//!   credential may hold at most `max_body_share_percent` of the budget unless it holds
//!   nothing else (so one large upload always fits, a second does not: `429`).
//! - **body time** (`body_timeout_secs`, `body_min_kib_per_sec`): a body that sends
//!   nothing for `body_timeout_secs`, or is slower on the whole than
//!   `body_timeout_secs + length / body_min_kib_per_sec`, is cut with `408` and its
//!   reservation released.
//!
//! Health, metrics, the console's files and the WebSocket streams are not counted: a load
//! balancer's health check must answer under overload, and a stream holds its connection
//! for hours. The ingest queue's own limit answers `429` (the request was read but the
//! queue is full); both carry `Retry-After`, and `vigil events send` honours both.

use crate::auth::Principal;
use crate::error::AppError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The budgets.
#[derive(Debug)]
pub struct Admission {
    requests: Arc<Semaphore>,
    max_requests: usize,
    body_kib: Arc<Semaphore>,
    max_body_kib: u32,
    share_kib: u64,
    max_route_body: u64,
    held: Mutex<HashMap<String, u64>>,
    body_timeout: Duration,
    min_bytes_per_sec: u64,
}

/// Body limits and timeouts of [`Admission`].
#[derive(Debug, Clone, Copy)]
pub struct BodyBudget {
    /// Bytes of bodies in flight at once.
    pub max_bytes: u64,
    /// Percent of `max_bytes` one credential may hold beyond a single request.
    pub share_percent: u8,
    /// The largest body any route takes; a larger `Content-Length` is refused at once.
    pub max_route_bytes: u64,
    /// A body that sends nothing for this long is cut.
    pub timeout: Duration,
    /// Slowest average rate a body may arrive at, beyond `timeout`.
    pub min_bytes_per_sec: u64,
}

/// Why a body reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Budget,
    Share,
}

impl Admission {
    /// Budgets of `max_requests` requests and `body` of bodies.
    pub fn new(max_requests: usize, body: BodyBudget) -> Admission {
        let max_body_kib = u32::try_from(body.max_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        let max_requests = max_requests.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            body_kib: Arc::new(Semaphore::new(max_body_kib as usize)),
            max_body_kib,
            share_kib: u64::from(max_body_kib) * u64::from(body.share_percent.min(100)) / 100,
            max_route_body: body.max_route_bytes,
            held: Mutex::new(HashMap::new()),
            body_timeout: body.timeout,
            min_bytes_per_sec: body.min_bytes_per_sec.max(1),
        }
    }

    /// Reserves `kib` for `who`: within the budget, and within the credential's share
    /// unless it holds nothing yet.
    fn reserve(self: &Arc<Self>, who: &str, kib: u32) -> Result<Reservation, Refusal> {
        let kib = kib.min(self.max_body_kib);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.get(who).copied().unwrap_or(0);
        if mine > 0 && mine + u64::from(kib) > self.share_kib {
            return Err(Refusal::Share);
        }
        let permit = self
            .body_kib
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| Refusal::Budget)?;
        *held.entry(who.to_string()).or_default() += u64::from(kib);
        Ok(Reservation {
            admission: self.clone(),
            who: who.to_string(),
            kib: u64::from(kib),
            _permit: permit,
        })
    }
}

/// Body bytes held by one request; dropping it returns them.
struct Reservation {
    admission: Arc<Admission>,
    who: String,
    kib: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self
            .admission
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.who) {
            *n = n.saturating_sub(self.kib);
            if *n == 0 {
                held.remove(&self.who);
            }
        }
    }
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
}

/// Paths that are never shed.
fn exempt(path: &str) -> bool {
    matches!(
        path,
        "/" | "/api/v1/health"
            | "/metrics"
            | "/docs"
            | "/api/v1/stream"
            | "/api/v1/network/stream"
            | "/api/v1/incidents/stream"
    ) || path.starts_with("/console/")
}

/// Bytes of a shed request's body read and dropped before answering, and for how long.
const DRAIN_LIMIT: usize = 32 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Answers `error` to a refused request. Its body is read first and dropped (a chunk at a
/// time, up to [`DRAIN_LIMIT`] and [`DRAIN_TIME`]): a client still sending its body when
/// the connection closes sees a broken pipe instead of the answer telling it to retry
/// (what nginx's lingering close is for).
async fn refuse(req: Request, error: AppError) -> Response {
    let mut body = req.into_body().into_data_stream();
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0;
        while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut body).await {
            read += chunk.len();
            if read > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
    error.into_response()
}

async fn shed(req: Request, what: &'static str, detail: String) -> Response {
    metrics::counter!("vigil_http_shed_total", "budget" => what).increment(1);
    refuse(req, AppError::Shed(detail)).await
}

/// A `413` without reading the body; the connection is closed after the answer.
fn too_large(limit: u64) -> Response {
    metrics::counter!("vigil_http_shed_total", "budget" => "too_large").increment(1);
    let mut resp = AppError::PayloadTooLarge {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    }
    .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Middleware: admits a request within the request budget, or sheds it; refuses encoded
/// bodies and bodies no route takes before anything is read.
pub async fn admit(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    if let Some(enc) = req.headers().get(header::CONTENT_ENCODING)
        && !enc.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        let enc = String::from_utf8_lossy(enc.as_bytes())
            .chars()
            .take(32)
            .collect::<String>();
        let mut resp = AppError::UnsupportedMediaType(format!(
            "`Content-Encoding: {enc}` is not accepted: send the body uncompressed"
        ))
        .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    if content_length(&req).is_some_and(|n| n > a.max_route_body) {
        return too_large(a.max_route_body);
    }
    let Ok(slot) = a.requests.clone().try_acquire_owned() else {
        return shed(
            req,
            "requests",
            format!(
                "the server is busy with {} requests ([server] max_in_flight); retry after 1 s",
                a.max_requests
            ),
        )
        .await;
    };
    let resp = next.run(req).await;
    drop(slot);
    resp
}

/// What [`guard_body`] needs: the budgets and the route's body limit.
#[derive(Debug, Clone)]
pub struct BodyGuard {
    /// The budgets.
    pub admission: Arc<Admission>,
    /// The route's body limit in bytes.
    pub limit: usize,
}

/// Middleware on each route that reads a body (inside authentication): refuses a claim
/// above the route's limit with `413`, reserves the body's bytes for the credential
/// (`503` when the budget is spent, `429` beyond the credential's share) and cuts a body
/// that stops arriving with `408`.
pub async fn guard_body(State(g): State<BodyGuard>, req: Request, next: Next) -> Response {
    let a = &g.admission;
    let limit = g.limit as u64;
    let length = content_length(&req);
    if length.is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let claim = match length {
        Some(n) => n,
        None if req.headers().contains_key(header::TRANSFER_ENCODING) => limit,
        None => 0,
    };
    if claim == 0 {
        return next.run(req).await;
    }
    let who = req
        .extensions()
        .get::<Principal>()
        .map_or_else(|| "anonymous".to_string(), |p| p.subject.clone());
    let kib = u32::try_from(claim.div_ceil(1024)).unwrap_or(u32::MAX);
    let reservation = match a.reserve(&who, kib) {
        Ok(r) => r,
        Err(Refusal::Budget) => {
            return shed(
                req,
                "body_bytes",
                format!(
                    "request bodies in flight would exceed {} MiB ([server] max_in_flight_body_mib); retry after 1 s",
                    a.max_body_kib / 1024
                ),
            )
            .await;
        }
        Err(Refusal::Share) => {
            metrics::counter!("vigil_http_shed_total", "budget" => "credential_share").increment(1);
            let error = AppError::Overloaded {
                message: format!(
                    "this credential already has request bodies in flight and may hold at most {} MiB ([server] max_body_share_percent); retry when they finish",
                    a.share_kib / 1024
                ),
                retry_after_secs: 1,
            };
            return refuse(req, error).await;
        }
    };
    let timed_out = Arc::new(AtomicBool::new(false));
    let total = a.body_timeout + Duration::from_secs(claim / a.min_bytes_per_sec);
    let (parts, body) = req.into_parts();
    let body = Body::new(TimedBody {
        inner: body,
        idle: a.body_timeout,
        idle_sleep: Box::pin(tokio::time::sleep(a.body_timeout)),
        total_sleep: Box::pin(tokio::time::sleep(total)),
        timed_out: timed_out.clone(),
    });
    let resp = next.run(Request::from_parts(parts, body)).await;
    drop(reservation);
    if timed_out.load(Ordering::Acquire) {
        metrics::counter!("vigil_http_body_timeouts_total").increment(1);
        let mut resp = AppError::RequestTimeout(format!(
            "the request body stopped arriving: send it within {} s of silence and at {} KiB/s or more ([server] body_timeout_secs, body_min_kib_per_sec)",
            a.body_timeout.as_secs(),
            a.min_bytes_per_sec / 1024
        ))
        .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    resp
}

/// A request body cut when it sends nothing for `idle` or runs past its total deadline.
struct TimedBody {
    inner: Body,
    idle: Duration,
    idle_sleep: Pin<Box<Sleep>>,
    total_sleep: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if !this.timed_out.load(Ordering::Relaxed)
            && let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx)
        {
            if frame.is_some() {
                let next = Instant::now() + this.idle;
                this.idle_sleep.as_mut().reset(next);
            }
            return Poll::Ready(frame);
        }
        if this.timed_out.load(Ordering::Relaxed)
            || this.idle_sleep.as_mut().poll(cx).is_ready()
            || this.total_sleep.as_mut().poll(cx).is_ready()
        {
            this.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new("the request body timed out"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn budget(max_bytes: u64) -> BodyBudget {
        BodyBudget {
            max_bytes,
            share_percent: 25,
            max_route_bytes: 1 << 30,
            timeout: Duration::from_millis(300),
            min_bytes_per_sec: 1 << 20,
        }
    }

    /// `/slow` waits for `gate` after reading its body; `/api/v1/health` is exempt. The
    /// body guard has a limit of `limit` and takes the principal from `x-who`.
    fn app(a: Admission, gate: Arc<tokio::sync::Notify>, limit: usize) -> Router {
        let a = Arc::new(a);
        let guard = BodyGuard {
            admission: a.clone(),
            limit,
        };
        Router::new()
            .route(
                "/slow",
                post(
                    move |body: Result<Bytes, axum::extract::rejection::BytesRejection>| {
                        let gate = gate.clone();
                        async move {
                            if body.is_err() {
                                return "body error";
                            }
                            gate.notified().await;
                            "done"
                        }
                    },
                )
                .layer(axum::middleware::from_fn_with_state(guard, guard_body))
                .layer(axum::middleware::from_fn(
                    |mut req: Request, next: Next| async move {
                        let who = req
                            .headers()
                            .get("x-who")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        req.extensions_mut().insert(Principal {
                            subject: who,
                            role: vigil_core::Role::Agent,
                        });
                        next.run(req).await
                    },
                )),
            )
            .route("/api/v1/health", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(a, admit))
    }

    fn post_body(len: usize, who: &str) -> Request {
        Request::post("/slow")
            .header(header::CONTENT_LENGTH, len)
            .header("x-who", who)
            .body(Body::from(vec![b'x'; len]))
            .unwrap()
    }

    async fn error_of(resp: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn beyond_the_request_budget_requests_are_shed_and_health_still_answers() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let router = app(Admission::new(2, budget(10 << 20)), gate.clone(), 1 << 20);
        let first = tokio::spawn(router.clone().oneshot(post_body(10, "a")));
        let second = tokio::spawn(router.clone().oneshot(post_body(10, "b")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = router.clone().oneshot(post_body(10, "c")).await.unwrap();
        assert_eq!(third.status(), 503);
        assert_eq!(third.headers()[header::RETRY_AFTER], "1");
        let v = error_of(third).await;
        assert_eq!(v["error"]["code"], "overloaded");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_in_flight")
        );
        let health = router
            .clone()
            .oneshot(Request::get("/api/v1/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        gate.notify_waiters();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        assert_eq!(second.await.unwrap().unwrap().status(), 200);
    }

    #[tokio::test]
    async fn a_claim_above_the_route_limit_is_refused_before_anything_is_reserved() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let a = Admission::new(100, budget(1 << 20));
        let router = app(a, gate.clone(), 64 * 1024);
        // 1 GiB claimed on a 64 KiB route: 413 at once, nothing read or reserved.
        let huge = Request::post("/slow")
            .header(header::CONTENT_LENGTH, 1u64 << 30)
            .body(Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(huge).await.unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(error_of(resp).await["error"]["code"], "payload_too_large");
        // The whole budget is still there: a body of the route's limit is admitted.
        let ok = tokio::spawn(router.clone().oneshot(post_body(64 * 1024, "a")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(ok.await.unwrap().unwrap().status(), 200);
        // Compressed bodies are refused with 415.
        let gz = Request::post("/slow")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from("x"))
            .unwrap();
        let resp = router.clone().oneshot(gz).await.unwrap();
        assert_eq!(resp.status(), 415);
        assert_eq!(
            error_of(resp).await["error"]["code"],
            "unsupported_media_type"
        );
    }

    #[tokio::test]
    async fn one_credential_cannot_hold_more_than_its_share_of_the_body_budget() {
        let gate = Arc::new(tokio::sync::Notify::new());
        // 1 MiB budget, share 25%: "a" may hold one body of any size, not a second.
        let router = app(Admission::new(100, budget(1 << 20)), gate.clone(), 1 << 20);
        let big = tokio::spawn(router.clone().oneshot(post_body(400 * 1024, "a")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = router
            .clone()
            .oneshot(post_body(200 * 1024, "a"))
            .await
            .unwrap();
        assert_eq!(second.status(), 429);
        assert!(
            error_of(second).await["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_body_share_percent")
        );
        // Another credential still gets in.
        let other = tokio::spawn(router.clone().oneshot(post_body(200 * 1024, "b")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The budget itself: 600 KiB held of 1024; 500 more is shed with 503.
        let shed = router
            .clone()
            .oneshot(post_body(500 * 1024, "c"))
            .await
            .unwrap();
        assert_eq!(shed.status(), 503);
        gate.notify_waiters();
        assert_eq!(big.await.unwrap().unwrap().status(), 200);
        assert_eq!(other.await.unwrap().unwrap().status(), 200);
        // All returned: "a" may send again.
        let again = tokio::spawn(router.clone().oneshot(post_body(400 * 1024, "a")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(again.await.unwrap().unwrap().status(), 200);
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_is_cut_with_408_and_its_bytes_released() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let router = app(Admission::new(100, budget(1 << 20)), gate.clone(), 1 << 20);
        // Claims 900 KiB, sends 10 bytes, then nothing.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tx.send(Ok(Bytes::from_static(b"0123456789")))
            .await
            .unwrap();
        let stalled = Request::post("/slow")
            .header(header::CONTENT_LENGTH, 900 * 1024)
            .header("x-who", "a")
            .body(Body::from_stream(tokio_stream_from(rx)))
            .unwrap();
        let started = std::time::Instant::now();
        let resp = router.clone().oneshot(stalled).await.unwrap();
        assert_eq!(resp.status(), 408);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(resp.headers()[header::CONNECTION], "close");
        assert_eq!(error_of(resp).await["error"]["code"], "request_timeout");
        drop(tx);
        // Released: the whole budget is free again.
        let ok = tokio::spawn(router.clone().oneshot(post_body(1 << 20, "b")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(ok.await.unwrap().unwrap().status(), 200);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
