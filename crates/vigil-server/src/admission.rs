//! Admission control (issue 12): under overload the API sheds requests at once with `503`
//! and `Retry-After: 1` instead of queueing them without bound.
//!
//! Two budgets, both taken before a request body is read:
//!
//! - **requests in flight** (`[server] max_in_flight`): every API call holds one slot until
//!   its response head is ready;
//! - **body bytes in flight** (`[server] max_in_flight_body_mib`): a request with a body
//!   holds its `Content-Length` (a chunked body: `max_bulk_bytes`, at most the whole
//!   budget), so the memory that buffered bodies can take is bounded whatever the clients
//!   do.
//!
//! Health, metrics, the console's files and the WebSocket streams are not counted: a load
//! balancer's health check must answer under overload, and a stream holds its connection
//! for hours. The ingest queue's own limit answers `429` (the request was read but the
//! queue is full); both carry `Retry-After`, and `vigil events send` honours both.

use crate::error::AppError;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The budgets.
#[derive(Debug)]
pub struct Admission {
    requests: Arc<Semaphore>,
    max_requests: usize,
    body_kib: Arc<Semaphore>,
    max_body_kib: u32,
    unknown_body_kib: u32,
}

impl Admission {
    /// Budgets of `max_requests` requests and `max_body_bytes` of bodies; a body of unknown
    /// length counts as `unknown_body_bytes`.
    pub fn new(max_requests: usize, max_body_bytes: u64, unknown_body_bytes: u64) -> Admission {
        let max_body_kib = u32::try_from(max_body_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        let unknown = u32::try_from(unknown_body_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let max_requests = max_requests.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            body_kib: Arc::new(Semaphore::new(max_body_kib as usize)),
            max_body_kib,
            unknown_body_kib: unknown.min(max_body_kib),
        }
    }

    /// KiB of body a request claims.
    fn body_claim(&self, req: &Request) -> u32 {
        let headers = req.headers();
        if let Some(n) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            return u32::try_from(n.div_ceil(1024))
                .unwrap_or(u32::MAX)
                .min(self.max_body_kib);
        }
        if headers.contains_key(header::TRANSFER_ENCODING) {
            self.unknown_body_kib
        } else {
            0
        }
    }
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
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers `503` to a shed request. Its body is read first and dropped (a chunk at a time,
/// up to [`DRAIN_LIMIT`] and [`DRAIN_TIME`]): a client still sending its body when the
/// connection closes sees a broken pipe instead of the answer telling it to retry (what
/// nginx's lingering close is for).
async fn shed(req: Request, what: &'static str, detail: String) -> Response {
    metrics::counter!("vigil_http_shed_total", "budget" => what).increment(1);
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
    AppError::Shed(detail).into_response()
}

/// Middleware: admits a request within both budgets or sheds it.
pub async fn admit(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
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
    let claim = a.body_claim(&req);
    let body = if claim == 0 {
        None
    } else {
        match a.body_kib.clone().try_acquire_many_owned(claim) {
            Ok(p) => Some(p),
            Err(_) => {
                drop(slot);
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
        }
    };
    let resp = next.run(req).await;
    drop(body);
    drop(slot);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app(a: Admission, gate: Arc<tokio::sync::Notify>) -> Router {
        let a = Arc::new(a);
        Router::new()
            .route(
                "/slow",
                post(move || {
                    let gate = gate.clone();
                    async move {
                        gate.notified().await;
                        "done"
                    }
                }),
            )
            .route("/api/v1/health", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(a, admit))
    }

    fn post_body(len: usize) -> Request {
        Request::post("/slow")
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from(vec![b'x'; len]))
            .unwrap()
    }

    #[tokio::test]
    async fn beyond_either_budget_requests_are_shed_and_health_still_answers() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let router = app(Admission::new(2, 10 * 1024, 4096), gate.clone());
        // Two slow requests take both slots.
        let first = tokio::spawn(router.clone().oneshot(post_body(10)));
        let second = tokio::spawn(router.clone().oneshot(post_body(10)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let third = router.clone().oneshot(post_body(10)).await.unwrap();
        assert_eq!(third.status(), 503);
        assert_eq!(third.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(third.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
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
        // Slots come back: admitted again.
        let again = tokio::spawn(router.clone().oneshot(post_body(10)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(again.await.unwrap().unwrap().status(), 200);

        // Bodies: 10 KiB budget; an 8 KiB body in flight leaves no room for another.
        let router = app(Admission::new(100, 10 * 1024, 4096), gate.clone());
        let big = tokio::spawn(router.clone().oneshot(post_body(8 * 1024)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = router.clone().oneshot(post_body(4 * 1024)).await.unwrap();
        assert_eq!(refused.status(), 503);
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("max_in_flight_body_mib"));
        gate.notify_waiters();
        assert_eq!(big.await.unwrap().unwrap().status(), 200);
    }

    #[test]
    fn a_body_larger_than_the_budget_is_clamped_so_it_can_run_alone() {
        let a = Admission::new(4, 1024 * 1024, 64 * 1024 * 1024);
        let huge = Request::post("/x")
            .header(header::CONTENT_LENGTH, 1u64 << 40)
            .body(Body::empty())
            .unwrap();
        assert_eq!(a.body_claim(&huge), 1024);
        let chunked = Request::post("/x")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(Body::empty())
            .unwrap();
        assert_eq!(a.body_claim(&chunked), 1024);
        let get = Request::get("/x").body(Body::empty()).unwrap();
        assert_eq!(a.body_claim(&get), 0);
    }
}
