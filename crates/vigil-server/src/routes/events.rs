//! `POST /api/v1/events`, `POST /api/v1/events/bulk`, `GET /api/v1/events[/{id}]`.

use super::{parse_limit, parse_time};
use crate::error::bytes_rejection;
use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_core::Event;
use vigil_core::ndjson::{self, BatchError};
use vigil_store::EventQuery;

/// Most per-line errors listed in a bulk answer; the count covers them all.
const MAX_LISTED_ERRORS: usize = 100;

/// The answer to an accepted ingest request.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Events acknowledged (committed now, or stored before under the same `event.id`).
    pub accepted: usize,
    /// Their `event.id`s, in request order.
    pub ids: Vec<String>,
    /// How many of them were stored before (idempotent retries).
    pub duplicates: usize,
    /// Bulk only: lines refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<usize>,
    /// Bulk only: why lines were refused (the first 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ndjson::LineError>>,
}

/// `POST /api/v1/events`: one JSON event.
pub async fn post_event(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(|e| bytes_rejection(e, state.config.max_event_bytes))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::bad(
            "empty_body",
            "the request body is empty: send one JSON event",
        ));
    }
    let event = ndjson::parse_event(&body, chrono::Utc::now())?;
    let id = event.id().to_string();
    let flags = state.pipeline.ingest(vec![event]).await?;
    let duplicates = flags.iter().filter(|n| !**n).count();
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: 1,
            ids: vec![id],
            duplicates,
            rejected: None,
            errors: None,
        }),
    )
        .into_response())
}

/// `POST /api/v1/events/bulk`: NDJSON, one event a line. Bad lines are reported by number;
/// good lines are still accepted.
pub async fn post_bulk(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(|e| bytes_rejection(e, state.config.max_bulk_bytes))?;
    let max_lines = state.config.max_bulk_events;
    // Under overload, refuse before parsing: a parse costs several times the body in
    // memory and the CPU the queue is waiting for. (A request that fits the queue only in
    // part is still parsed, and refused by the queue itself.)
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count();
    let (queued, capacity) = (state.pipeline.queued(), state.pipeline.capacity());
    if lines <= capacity && queued + lines > capacity {
        metrics::counter!(vigil_core::metric_names::EVENTS_REJECTED, "reason" => "queue_full")
            .increment(lines as u64);
        return Err(AppError::Overloaded {
            message: format!(
                "{queued} events are waiting for their commit (the queue holds {capacity}); retry after 1 s"
            ),
            retry_after_secs: 1,
        });
    }
    let parsed = tokio::task::spawn_blocking(move || {
        ndjson::parse_batch(&body, max_lines, chrono::Utc::now())
    })
    .await
    .map_err(|e| AppError::Internal(format!("bulk parse task: {e}")))?;
    let (events, errors) = parsed.map_err(|e| match e {
        BatchError::Empty => AppError::bad("empty_bulk", format!("the bulk request has {e}")),
        BatchError::TooManyLines { .. } => AppError::bad("too_many_events", e.to_string()),
    })?;
    let rejected = errors.len();
    let listed: Vec<ndjson::LineError> = errors.into_iter().take(MAX_LISTED_ERRORS).collect();
    if events.is_empty() {
        let body = json!({
            "error": {
                "code": "invalid_bulk",
                "message": format!("all {rejected} lines were rejected; see `errors`"),
            },
            "rejected": rejected,
            "errors": listed,
        });
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let ids: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
    let flags = state.pipeline.ingest(events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: ids.len(),
            duplicates: flags.iter().filter(|n| !**n).count(),
            ids,
            rejected: Some(rejected),
            errors: Some(listed),
        }),
    )
        .into_response())
}

/// Query parameters of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    #[serde(rename = "host.name")]
    host: Option<String>,
    #[serde(rename = "event.category")]
    category: Option<String>,
    /// `source.ip`, `destination.ip` or `host.ip`.
    ip: Option<String>,
    /// Free text: a substring of the event's JSON.
    q: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
}

/// `GET /api/v1/events`: newest first, paged by `next`.
pub async fn list_events(
    State(state): State<AppState>,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    let query = EventQuery {
        host: p.host,
        category: p.category.map(|c| c.to_ascii_lowercase()),
        ip: match p.ip {
            Some(ip) => Some(
                ip.parse::<std::net::IpAddr>()
                    .map_err(|_| AppError::field("ip", format!("`{ip}` is not an IP address")))?
                    .to_string(),
            ),
            None => None,
        },
        text: match p.q {
            Some(q) if q.len() > 256 => {
                return Err(AppError::field("q", "`q` is at most 256 bytes"));
            }
            Some(q) if q.is_empty() => None,
            q => q,
        },
        since: parse_time("since", p.since.as_deref())?,
        until: parse_time("until", p.until.as_deref())?,
        limit: parse_limit(p.limit)?,
        cursor: p.next,
    };
    let page = state.store.query_events(&query).await?;
    Ok(Json(json!({"events": page.items, "next": page.next})))
}

/// `GET /api/v1/events/{id}`.
pub async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Event>, AppError> {
    state
        .store
        .get_event(&id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no event with id `{id}`")))
}
