//! Triage over REST: run the agent, read reports, manage the asset inventory, inspect
//! knowledge retrieval.

use crate::routes::Path;
use crate::triage::{TriageFailure, TriageService};
use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use vigil_store::{Asset, ReportQuery};
use vigil_triage::Subject;

/// Largest triage request body.
pub const TRIAGE_BODY_LIMIT: usize = 256 * 1024;

fn service(state: &AppState) -> Result<&Arc<TriageService>, AppError> {
    state.triage.as_ref().ok_or_else(|| {
        AppError::Unavailable(
            "triage is not enabled on this server ([triage] enabled = false)".into(),
        )
    })
}

impl From<TriageFailure> for AppError {
    fn from(e: TriageFailure) -> AppError {
        match e {
            TriageFailure::BadInput(m) => AppError::bad("bad_request", m),
            TriageFailure::NotFound(m) => AppError::NotFound(m),
            TriageFailure::Internal(m) => AppError::Internal(m),
        }
    }
}

/// The body of `POST /api/v1/triage`: exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageBody {
    /// The seed's event line.
    line: Option<String>,
    /// A JSON event (ECS).
    event: Option<Value>,
    /// An incident id.
    incident_id: Option<String>,
}

/// `POST /api/v1/triage`: triage a line, an event or an incident; answers with the report.
pub async fn triage(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let svc = service(&state)?.clone();
    let body = body.map_err(|e| crate::error::bytes_rejection(e, TRIAGE_BODY_LIMIT))?;
    let b: TriageBody = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad(
            "invalid_json",
            format!(
                "the body must be a JSON object with one of `line` (\"TIME SRC_IP:PORT \
                 DST_IP:PORT EVENT_NAME EVENT_CONTENT\"), `event` (a JSON event) or \
                 `incident_id`: {e}"
            ),
        )
    })?;
    let subject: Subject = match (b.line, b.event, b.incident_id) {
        (Some(line), None, None) => {
            vigil_triage::parse_line(&line).map_err(|e| AppError::field("line", e.to_string()))?
        }
        (None, Some(event), None) => {
            Subject::from_event(&event).map_err(|e| AppError::field("event", e.to_string()))?
        }
        (None, None, Some(id)) => svc.incident_subject(&id).await?,
        _ => {
            return Err(AppError::bad(
                "bad_request",
                "give exactly one of `line`, `event` or `incident_id`",
            ));
        }
    };
    let (report, path) = svc.triage(subject).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": report.id,
            "category": report.category,
            "verdict": report.verdict,
            "confidence": report.confidence,
            "report_path": path,
            "report": report,
        })),
    ))
}

/// Filters of `GET /api/v1/reports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsParams {
    category: Option<String>,
    verdict: Option<String>,
    incident_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
}

/// `GET /api/v1/reports`: newest first.
pub async fn list_reports(
    State(state): State<AppState>,
    params: Result<Query<ReportsParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    if let Some(c) = &p.category {
        c.parse::<vigil_triage::Category>()
            .map_err(|e| AppError::field("category", e))?;
    }
    if let Some(v) = &p.verdict {
        v.parse::<vigil_triage::Verdict>()
            .map_err(|e| AppError::field("verdict", e))?;
    }
    let q = ReportQuery {
        category: p.category,
        verdict: p.verdict.map(|v| v.to_ascii_lowercase()),
        incident_id: p.incident_id,
        since: super::parse_time("since", p.since.as_deref())?,
        until: super::parse_time("until", p.until.as_deref())?,
        limit: super::parse_limit(p.limit)?,
        cursor: p.next,
    };
    let page = state.store.query_reports(&q).await?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|r| {
            json!({"id": r.id, "created_at": r.created_at, "category": r.category,
                   "verdict": r.verdict, "confidence": r.confidence,
                   "incident_id": r.incident_id, "title": r.title})
        })
        .collect();
    Ok(Json(json!({"reports": items, "next": page.next})))
}

/// `?format=` of `GET /api/v1/reports/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    format: Option<String>,
}

/// `GET /api/v1/reports/{id}`: the report as JSON, or as Markdown with `?format=markdown`
/// or `Accept: text/markdown`.
pub async fn get_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<ReportParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Query(p) = params?;
    let (markdown, html) = match p.format.as_deref() {
        Some("markdown" | "md") => (true, false),
        Some("html") => (false, true),
        Some("json") => (false, false),
        Some(other) => {
            return Err(AppError::field(
                "format",
                format!("`format` must be json, markdown or html, not `{other}`"),
            ));
        }
        None => (
            headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/markdown")),
            false,
        ),
    };
    let r = state
        .store
        .get_report(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no report with id `{id}`")))?;
    if html {
        // A fragment for the console, with raw HTML in the report escaped: see
        // `crate::markdown`. The CSP forbids everything should it be opened on its own.
        return Ok((
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox",
                ),
            ],
            crate::markdown::to_safe_html(&r.markdown),
        )
            .into_response());
    }
    if markdown {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            r.markdown,
        )
            .into_response());
    }
    Ok(Json(json!({"report": r.doc, "markdown": r.markdown})).into_response())
}

/// `?limit=` of `GET /api/v1/assets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsParams {
    limit: Option<usize>,
    ip: Option<String>,
    host: Option<String>,
}

/// `GET /api/v1/assets`: the inventory (or the assets of an `ip`/`host`).
pub async fn list_assets(
    State(state): State<AppState>,
    params: Result<Query<AssetsParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    let assets = if p.ip.is_some() || p.host.is_some() {
        state
            .store
            .find_assets(p.ip.as_deref(), p.host.as_deref())
            .await?
    } else {
        state
            .store
            .list_assets(super::parse_limit(p.limit)?)
            .await?
    };
    Ok(Json(json!({"assets": assets})))
}

/// `GET /api/v1/assets/{id}`.
pub async fn get_asset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let a = state
        .store
        .get_asset(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no asset with id `{id}`")))?;
    Ok(Json(json!(a)))
}

fn check_asset_id(id: &str) -> Result<(), AppError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(AppError::field(
            "id",
            "an asset id is 1-128 characters of letters, digits and - _ . :",
        ));
    }
    Ok(())
}

/// `PUT /api/v1/assets/{id}`: creates or replaces an asset.
pub async fn put_asset(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    check_asset_id(&id)?;
    let body = body.map_err(|e| crate::error::bytes_rejection(e, crate::JSON_BODY_LIMIT))?;
    let mut v: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad("invalid_json", format!("the body is not JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| AppError::bad("invalid_json", "an asset is a JSON object"))?;
    if obj
        .get("id")
        .is_some_and(|x| x.as_str() != Some(id.as_str()))
    {
        return Err(AppError::field(
            "id",
            "the body's `id` differs from the path's",
        ));
    }
    obj.insert("id".into(), json!(id));
    obj.insert("updated_at".into(), json!(chrono::Utc::now().to_rfc3339()));
    let asset: Asset = serde_json::from_value(v)
        .map_err(|e| AppError::bad("invalid_field", format!("not an asset: {e}")))?;
    if !["low", "medium", "high", "critical"].contains(&asset.criticality.as_str()) {
        return Err(AppError::field(
            "criticality",
            "`criticality` must be low, medium, high or critical",
        ));
    }
    if let Some(ip) = &asset.ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(AppError::field(
            "ip",
            format!("`{ip}` is not an IP address"),
        ));
    }
    if asset.tags.len() > 64 || asset.tags.iter().any(|t| t.len() > 64) {
        return Err(AppError::field(
            "tags",
            "at most 64 tags of at most 64 characters",
        ));
    }
    state.store.put_asset(&asset).await?;
    Ok(Json(json!(asset)))
}

/// `DELETE /api/v1/assets/{id}`.
pub async fn delete_asset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    if state.store.delete_asset(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!("no asset with id `{id}`")))
    }
}

/// `?q=&k=` of `GET /api/v1/kb/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbParams {
    q: String,
    k: Option<usize>,
}

/// `GET /api/v1/kb/search`: what retrieval returns for a query (BM25).
pub async fn kb_search(
    State(state): State<AppState>,
    params: Result<Query<KbParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    if p.q.len() > 2000 {
        return Err(AppError::field("q", "`q` is at most 2000 bytes"));
    }
    let kb = service(&state)?.agent().knowledge();
    let hits = kb.search(&p.q, p.k.unwrap_or(5).clamp(1, 50), None, None);
    Ok(Json(json!({"chunks": kb.len(), "hits": hits})))
}
