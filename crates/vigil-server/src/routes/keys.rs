//! API key management (admin only). A key is shown once, at creation.

use crate::error::AppError;
use crate::routes::Path;
use crate::{AppState, generate_api_key};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_core::Role;

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    role: Role,
}

/// `POST /api/v1/keys`: creates a key and returns it once.
pub async fn create_key(
    State(state): State<AppState>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(req) = body?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(AppError::field(
            "name",
            "`name` must be 1 to 128 characters",
        ));
    }
    let (key, record) = generate_api_key(name, req.role);
    state.store.create_api_key(&record).await?;
    tracing::info!(key_id = %record.id, role = %record.role, "API key created");
    let mut body = serde_json::to_value(&record).map_err(|e| AppError::Internal(e.to_string()))?;
    body["key"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/keys`: every key without its secret.
pub async fn list_keys(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(json!({ "keys": state.store.list_api_keys().await? })))
}

/// `DELETE /api/v1/keys/{id}`: revokes a key at once.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    if state.store.revoke_api_key(&id).await? {
        state.auth.forget_keys();
        tracing::info!(key_id = %id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "no active API key with id `{id}`"
        )))
    }
}
