//! The network detector over REST and WebSocket (seed 002): score one connection or a
//! batch, stream records and scores, read the time series, manage model versions.

use crate::network::{NetError, NetService};
use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use vigil_net::record::{ConnectionRecord, RecordError};
use vigil_store::ConnectionQuery;

/// Largest single-record body (and WebSocket message of one record).
pub const RECORD_BODY_LIMIT: usize = 64 << 10;
/// Largest batch body.
pub const BATCH_BODY_LIMIT: usize = 16 << 20;

fn service(state: &AppState) -> Result<&Arc<NetService>, AppError> {
    state.network.as_ref().ok_or_else(|| {
        AppError::Unavailable(
            "the network detector is not enabled on this server ([network] enabled = false)".into(),
        )
    })
}

impl From<NetError> for AppError {
    fn from(e: NetError) -> AppError {
        match e {
            NetError::BadRequest(m) => AppError::bad("bad_request", m),
            NetError::NotFound(m) => AppError::NotFound(m),
            NetError::Overloaded(m) => AppError::Overloaded {
                message: m,
                retry_after_secs: 1,
            },
            NetError::Internal(m) => AppError::Internal(m),
        }
    }
}

fn record_error(e: RecordError) -> AppError {
    AppError::field(e.field.clone(), e.to_string())
}

fn parse_json(body: &[u8]) -> Result<Value, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad("invalid_json", format!("the body is not JSON: {e}")))
}

fn read(v: &Value, host: Option<&str>) -> Result<ConnectionRecord, RecordError> {
    ConnectionRecord::from_seed_json(v, Utc::now(), host)
}

/// `POST /api/v1/network/analyze`: one connection in seed 002's shape; answers
/// `{"result": {"is_anomaly", "anomaly_score", …}}` as the seed's clients expect.
pub async fn analyze(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let net = service(&state)?;
    let body = body.map_err(|e| crate::error::bytes_rejection(e, RECORD_BODY_LIMIT))?;
    let v = parse_json(&body)?;
    let record = read(&v, None).map_err(record_error)?;
    let result = net.analyze(&record)?;
    Ok(Json(json!({ "result": result })))
}

/// `POST /api/v1/network/analyze/batch`: `{"records": [...]}` or a JSON array; one
/// result or error per record, in order.
pub async fn analyze_batch(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let net = service(&state)?.clone();
    let body = body.map_err(|e| crate::error::bytes_rejection(e, BATCH_BODY_LIMIT))?;
    let v = parse_json(&body)?;
    let items = match v {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("records") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(AppError::field(
                    "records",
                    "send {\"records\": [ … ]} or a JSON array of connection records",
                ));
            }
        },
        _ => {
            return Err(AppError::bad(
                "bad_request",
                "send {\"records\": [ … ]} or a JSON array of connection records",
            ));
        }
    };
    if items.len() > net.max_batch() {
        return Err(AppError::field(
            "records",
            format!(
                "{} records in one batch; at most {} (network.max_batch)",
                items.len(),
                net.max_batch()
            ),
        ));
    }
    let records: Vec<Result<ConnectionRecord, String>> = items
        .iter()
        .map(|v| read(v, None).map_err(|e| e.to_string()))
        .collect();
    let results = net.analyze_batch(records).await?;
    let mut scored = 0;
    let mut anomalies = 0;
    let out: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(res) => {
                scored += 1;
                anomalies += usize::from(res.is_anomaly);
                json!({ "result": res })
            }
            Err(e) => json!({ "error": e }),
        })
        .collect();
    Ok(Json(json!({
        "scored": scored, "rejected": out.len() - scored, "anomalies": anomalies,
        "results": out,
    })))
}

/// `GET /api/v1/network/stream`: a WebSocket on which the client sends connection
/// records (one JSON object, or an array, per text message) and receives a
/// `{"result": …}` (or `{"results": [...]}`) or `{"error": …}` for each message.
pub async fn stream(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let net = service(&state)?.clone();
    let ws = ws.map_err(|_| {
        AppError::bad(
            "websocket_required",
            "this endpoint scores records over a WebSocket: connect with `Upgrade: websocket`",
        )
    })?;
    let slot = state.streams.acquire(&who.subject)?;
    Ok(ws
        .max_message_size(BATCH_BODY_LIMIT)
        .on_upgrade(move |socket| async move {
            run_stream(socket, net).await;
            drop(slot);
        }))
}

async fn answer(net: &Arc<NetService>, text: &str) -> Value {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return json!({"error": {"code": "invalid_json", "message": e.to_string()}}),
    };
    match v {
        Value::Array(items) => {
            if items.len() > net.max_batch() {
                return json!({"error": {"code": "invalid_field", "field": "records",
                    "message": format!("at most {} records per message", net.max_batch())}});
            }
            let records = items
                .iter()
                .map(|v| read(v, None).map_err(|e| e.to_string()))
                .collect();
            match net.analyze_batch(records).await {
                Ok(results) => json!({"results": results.into_iter().map(|r| match r {
                    Ok(res) => json!({"result": res}),
                    Err(e) => json!({"error": e}),
                }).collect::<Vec<_>>()}),
                Err(e) => json!({"error": {"code": "overloaded", "message": e.to_string()}}),
            }
        }
        v => match read(&v, None) {
            Ok(r) => match net.analyze(&r) {
                Ok(res) => json!({"result": res}),
                Err(e) => json!({"error": {"code": "overloaded", "message": e.to_string()}}),
            },
            Err(e) => {
                json!({"error": {"code": "invalid_field", "field": e.field, "message": e.to_string()}})
            }
        },
    }
}

async fn run_stream(mut socket: WebSocket, net: Arc<NetService>) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(t) => answer(&net, t.as_str()).await,
            Message::Binary(b) => match std::str::from_utf8(&b) {
                Ok(t) => answer(&net, t).await,
                Err(_) => {
                    json!({"error": {"code": "invalid_json", "message": "binary messages must be UTF-8 JSON"}})
                }
            },
            Message::Close(_) => break,
            _ => continue,
        };
        if socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Query of the time-series reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesParams {
    #[serde(rename = "host.name", alias = "host")]
    host: Option<String>,
    process: Option<String>,
    #[serde(default)]
    anomalies: bool,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// Bucket width in seconds (series only).
    bucket: Option<u64>,
}

impl SeriesParams {
    fn query(&self) -> Result<ConnectionQuery, AppError> {
        Ok(ConnectionQuery {
            host: self.host.clone(),
            process: self.process.clone(),
            anomalies_only: self.anomalies,
            remote: None,
            since: crate::routes::parse_time("since", self.since.as_deref())?,
            until: crate::routes::parse_time("until", self.until.as_deref())?,
            limit: self.limit.unwrap_or(0),
            cursor: self.cursor.clone(),
        })
    }
}

/// `GET /api/v1/network/connections`: scored connections, newest first.
pub async fn connections(
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    service(&state)?;
    let Query(p) = params?;
    let page = state.store.query_connections(&p.query()?).await?;
    Ok(Json(json!({"connections": page.items, "next": page.next})))
}

/// `GET /api/v1/network/series`: counts, anomalies and scores per time bucket.
pub async fn series(
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    service(&state)?;
    let Query(p) = params?;
    let bucket = p.bucket.unwrap_or(60);
    if !(1..=30 * 86_400).contains(&bucket) {
        return Err(AppError::field(
            "bucket",
            "`bucket` is seconds, from 1 to 2592000 (30 days)",
        ));
    }
    let points = state.store.connection_series(&p.query()?, bucket).await?;
    Ok(Json(json!({"bucket_seconds": bucket, "points": points})))
}

/// `GET /api/v1/network/status`: the active model, drift, counters.
pub async fn status(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(service(&state)?.status().await))
}

/// `GET /api/v1/network/models`: every version, the active one marked.
pub async fn models(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(service(&state)?.models().await?))
}

/// `POST /api/v1/network/models/{version}/activate`: promote by hand or roll back.
pub async fn activate(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, AppError> {
    let version: i64 = version.parse().map_err(|_| {
        AppError::field(
            "version",
            format!("`{version}` is not a model version number"),
        )
    })?;
    Ok(Json(service(&state)?.activate(version).await?))
}

/// Body of `POST /api/v1/network/train`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainBody {
    /// RFC 3339 time, or a span back from now (`7d`, `12h`, `30m`).
    since: Option<String>,
    /// Make the new model active even if it is worse on the newest records.
    #[serde(default)]
    force: bool,
}

/// `POST /api/v1/network/train`: trains on stored connections now; the new version
/// becomes active only when it is not worse on the newest records (or with `force`).
pub async fn train(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let net = service(&state)?.clone();
    let body = body.map_err(|e| crate::error::bytes_rejection(e, RECORD_BODY_LIMIT))?;
    let b: TrainBody = if body.is_empty() {
        TrainBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AppError::bad(
                "invalid_json",
                format!("the body is not a training request: {e}"),
            )
        })?
    };
    let since = b
        .since
        .as_deref()
        .map(crate::network::parse_since)
        .transpose()
        .map_err(|e| AppError::field("since", e))?;
    let outcome = net.train(since, b.force).await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}
