//! The log analyzer over REST: its state, the live templates, model versions, training and
//! detection.

use crate::logs::{DetectRequest, LogError, LogService};
use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use vigil_logs::model::TrainSpec;

/// Largest detection body.
pub const DETECT_BODY_LIMIT: usize = 4 << 20;
/// Sessions or lines in one detection request at most.
const MAX_DETECT_ITEMS: usize = 100_000;

fn service(state: &AppState) -> Result<&Arc<LogService>, AppError> {
    state.logs.as_ref().ok_or_else(|| {
        AppError::Unavailable(
            "the log analyzer is not enabled on this server ([logs] enabled = false)".into(),
        )
    })
}

impl From<LogError> for AppError {
    fn from(e: LogError) -> AppError {
        match e {
            LogError::BadRequest(m) => AppError::bad("bad_request", m),
            LogError::NotFound(m) => AppError::NotFound(m),
            LogError::Conflict(m) => AppError::Overloaded {
                message: m,
                retry_after_secs: 5,
            },
            LogError::NoModel(m) => AppError::Unavailable(m),
            LogError::Internal(m) => AppError::Internal(m),
        }
    }
}

/// `GET /api/v1/logs/status`.
pub async fn status(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(service(&state)?.status()))
}

/// `?limit=` of `GET /api/v1/logs/templates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/logs/templates`.
pub async fn templates(
    State(state): State<AppState>,
    query: Result<Query<TemplatesQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = query.map_err(|e| AppError::bad("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(AppError::field("limit", "`limit` is 1 to 10000"));
    }
    Ok(Json(service(&state)?.templates(limit)))
}

/// `GET /api/v1/logs/models`.
pub async fn models(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(service(&state)?.models()?))
}

/// `POST /api/v1/logs/models/{version}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, AppError> {
    let logs = service(&state)?.clone();
    let version: u64 = version
        .parse()
        .map_err(|_| AppError::field("version", "the version is a positive number"))?;
    let v = tokio::task::spawn_blocking(move || logs.activate(version))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(Json(v))
}

/// The body of `POST /api/v1/logs/train`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TrainBody {
    /// What to train (detectors, policy, parameters).
    #[serde(flatten)]
    spec: TrainSpec,
    /// Sessions to train on instead of the recorded ones.
    sequences: Option<Vec<Vec<u32>>>,
    /// Answer `202` at once and train in the background.
    background: bool,
}

/// `POST /api/v1/logs/train`.
pub async fn train(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let logs = service(&state)?.clone();
    let body = body.map_err(|e| crate::error::bytes_rejection(e, state.config.max_bulk_bytes))?;
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
    let TrainBody {
        spec,
        sequences,
        background,
    } = b;
    let job = tokio::task::spawn_blocking(move || logs.train(&spec, sequences));
    if background {
        tokio::spawn(async move {
            match job.await {
                Ok(Ok(v)) => tracing::info!(outcome = %v, "log model trained"),
                Ok(Err(e)) => tracing::warn!(error = %e, "log model training failed"),
                Err(e) => tracing::error!(error = %e, "log model training panicked"),
            }
        });
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "training", "see": "/api/v1/logs/status"})),
        ));
    }
    let v = job.await.map_err(|e| AppError::Internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(v)))
}

/// `POST /api/v1/logs/detect`.
pub async fn detect(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let logs = service(&state)?.clone();
    let body = body.map_err(|e| crate::error::bytes_rejection(e, DETECT_BODY_LIMIT))?;
    let request: DetectRequest = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad(
            "invalid_json",
            format!("the body is not a detection request (`sequences` or `lines`): {e}"),
        )
    })?;
    let items =
        request.sequences.as_ref().map_or(0, Vec::len) + request.lines.as_ref().map_or(0, Vec::len);
    if items > MAX_DETECT_ITEMS {
        return Err(AppError::bad(
            "too_many",
            format!("at most {MAX_DETECT_ITEMS} sessions or lines per request"),
        ));
    }
    let v = tokio::task::spawn_blocking(move || logs.detect(request))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(Json(v))
}
