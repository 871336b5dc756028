//! EDR agents (seed 000): registration, heartbeats, and the list with online status.

use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};
use vigil_store::AgentRegistration;

/// An agent not seen for this long is listed as `offline`.
pub const OFFLINE_AFTER_SECS: i64 = 300;

fn validate(a: &AgentRegistration) -> Result<(), AppError> {
    let id_ok = !a.id.is_empty()
        && a.id.len() <= 128
        && a.id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !id_ok {
        return Err(AppError::field(
            "id",
            "`id` must be 1 to 128 of letters, digits, `-_.:`",
        ));
    }
    if a.hostname.trim().is_empty() || a.hostname.len() > 255 {
        return Err(AppError::field(
            "hostname",
            "`hostname` must be 1 to 255 characters",
        ));
    }
    if a.tags.len() > 32 || a.tags.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(AppError::field(
            "tags",
            "at most 32 tags of 1 to 64 characters",
        ));
    }
    for (field, v) in [("os", &a.os), ("version", &a.version)] {
        if v.as_ref().is_some_and(|v| v.len() > 255) {
            return Err(AppError::field(
                field,
                format!("`{field}` must be at most 255 characters"),
            ));
        }
    }
    Ok(())
}

/// `POST /api/v1/agents`: registers an agent or updates its registration.
pub async fn register(
    State(state): State<AppState>,
    body: Result<Json<AgentRegistration>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let Json(agent) = body?;
    validate(&agent)?;
    state.store.register_agent(&agent).await?;
    state.scripts.set_agent_tags(&agent.id, agent.tags.clone());
    tracing::info!(agent = %agent.id, host = %agent.hostname, "agent registered");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": agent.id, "registered": true})),
    ))
}

/// `POST /api/v1/agents/{id}/heartbeat`.
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    if state.store.heartbeat_agent(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "no agent `{id}`: register it with POST /api/v1/agents"
        )))
    }
}

/// `GET /api/v1/agents`: every agent that registered or sent events, most recently seen
/// first, with `status` `online` (seen in the last 5 minutes) or `offline`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let now = chrono::Utc::now();
    let agents: Vec<Value> = state
        .store
        .list_agents()
        .await?
        .into_iter()
        .map(|a| {
            let online = chrono::DateTime::parse_from_rfc3339(&a.last_seen).is_ok_and(|t| {
                (now - t.with_timezone(&chrono::Utc)).num_seconds() <= OFFLINE_AFTER_SECS
            });
            let mut v = serde_json::to_value(&a).unwrap_or_default();
            v["status"] = json!(if online { "online" } else { "offline" });
            v
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}
