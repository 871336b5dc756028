//! Health, metrics, OpenAPI, docs page, and the JSON 404/405 fallbacks.

use crate::{AppError, AppState, OPENAPI_JSON};
use axum::Json;
use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

/// `GET /api/v1/health`: no credential needed.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "ingest_queue": state.pipeline.queued(),
    }))
}

/// `GET /metrics`: Prometheus text format, no credential needed.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /api/v1/me`: who the credential is and what it may do (any role). The console
/// asks it at log-in to check the credential and to show only what the role allows.
pub async fn me(
    State(state): State<AppState>,
    axum::Extension(p): axum::Extension<crate::Principal>,
) -> Json<Value> {
    Json(json!({
        "subject": p.subject,
        "role": p.role,
        "auth_enabled": state.auth.enabled(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// `GET /docs`: a static page that asks for a token, then loads the OpenAPI document with
/// it and lets you try each operation. It holds no data of its own.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("../docs.html"))
}

/// Any unknown route.
pub async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// A known route with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
