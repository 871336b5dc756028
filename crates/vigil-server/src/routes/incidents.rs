//! Incident detail, analysts' changes and the incident event stream.

use crate::auth::Principal;
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
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use vigil_respond::{IncidentEvent, IncidentPatch, IncidentService, PatchError};

fn service(state: &AppState) -> Result<&Arc<IncidentService>, AppError> {
    state.incidents.as_ref().ok_or_else(|| {
        AppError::Unavailable(
            "incident correlation is not enabled on this server ([incidents] enabled = false)"
                .into(),
        )
    })
}

/// `GET /api/v1/incidents/{id}`: the incident with its findings and timeline.
pub async fn get_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let not_found = || AppError::NotFound(format!("no incident with id `{id}`"));
    match &state.incidents {
        Some(s) => Ok(Json(s.detail(&id).await?.ok_or_else(not_found)?)),
        None => {
            let incident = state.store.get_incident(&id).await?.ok_or_else(not_found)?;
            Ok(Json(serde_json::to_value(incident).unwrap_or_default()))
        }
    }
}

/// `PATCH /api/v1/incidents/{id}`.
pub async fn patch_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let incidents = service(&state)?;
    let body = body.map_err(|e| crate::error::bytes_rejection(e, crate::JSON_BODY_LIMIT))?;
    let patch: IncidentPatch = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad(
            "invalid_json",
            format!("the body is not an incident change (status, assignee, note): {e}"),
        )
    })?;
    match incidents.patch(&id, patch, &who.subject).await {
        Ok(incident) => Ok(Json(serde_json::to_value(incident).unwrap_or_default())),
        Err(PatchError::NotFound(_)) => {
            Err(AppError::NotFound(format!("no incident with id `{id}`")))
        }
        Err(PatchError::Invalid(field, message)) => Err(AppError::field(field, message)),
        Err(PatchError::Store(e)) => Err(e.into()),
    }
}

/// Query parameters of the incident stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Browsers cannot set headers on a WebSocket; the auth layer reads this one.
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

/// `GET /api/v1/incidents/stream`: incident events over a WebSocket.
pub async fn stream(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    params: Result<Query<StreamParams>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let Query(_) = params?;
    let incidents = service(&state)?;
    let ws = ws.map_err(|_| {
        AppError::bad(
            "websocket_required",
            "this endpoint streams incident events over a WebSocket: connect with \
             `Upgrade: websocket`",
        )
    })?;
    let slot = state.streams.acquire(&who.subject)?;
    let rx = incidents.subscribe();
    Ok(ws.on_upgrade(move |socket| async move {
        run(socket, rx).await;
        drop(slot);
    }))
}

async fn run(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<IncidentEvent>>) {
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(event) => {
                    let Ok(text) = serde_json::to_string(&*event) else { continue };
                    let sent = tokio::time::timeout(
                        Duration::from_secs(5),
                        socket.send(Message::Text(text.into())),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let reason = format!(
                        "slow consumer: fell {missed} incident events behind; reconnect and \
                         read /api/v1/incidents"
                    );
                    crate::stream::close(&mut socket, crate::stream::CLOSE_SLOW_CONSUMER, reason)
                        .await;
                    break;
                }
                Err(RecvError::Closed) => {
                    crate::stream::close(&mut socket, 1001, "server shutting down".into()).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Query parameters of `GET /api/v1/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesParams {
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/deliveries`: the responder outbox, newest change first (`state=dead` for
/// the dead letters).
pub async fn list_deliveries(
    State(state): State<AppState>,
    params: Result<Query<DeliveriesParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    let wanted = p
        .state
        .as_deref()
        .map(|s| {
            vigil_store::DeliveryState::parse(s)
                .ok_or_else(|| AppError::field("state", "`state` is pending, delivered or dead"))
        })
        .transpose()?;
    let limit = crate::routes::parse_limit(p.limit)?;
    let items = state.store.list_deliveries(wanted, limit).await?;
    Ok(Json(serde_json::json!({ "deliveries": items })))
}
