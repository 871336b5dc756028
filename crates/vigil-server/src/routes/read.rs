//! Read endpoints: findings, incidents, agents, analyzers.

use super::{parse_limit, parse_severity, parse_time};
use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_core::{Finding, IncidentStatus};
use vigil_store::{FindingQuery, IncidentQuery};

/// Query parameters of `GET /api/v1/findings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsParams {
    #[serde(rename = "host.name")]
    host: Option<String>,
    analyzer: Option<String>,
    severity: Option<String>,
    #[serde(rename = "event.id")]
    event_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
}

/// `GET /api/v1/findings`: newest first; `severity` is a minimum.
pub async fn list_findings(
    State(state): State<AppState>,
    params: Result<Query<FindingsParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    let query = FindingQuery {
        host: p.host,
        analyzer: p.analyzer,
        min_severity: parse_severity(p.severity.as_deref())?,
        event_id: p.event_id,
        text: None,
        since: parse_time("since", p.since.as_deref())?,
        until: parse_time("until", p.until.as_deref())?,
        limit: parse_limit(p.limit)?,
        cursor: p.next,
    };
    let page = state.store.query_findings(&query).await?;
    Ok(Json(json!({"findings": page.items, "next": page.next})))
}

/// `GET /api/v1/findings/{id}`.
pub async fn get_finding(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Finding>, AppError> {
    state
        .store
        .get_finding(&id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no finding with id `{id}`")))
}

/// Query parameters of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsParams {
    status: Option<String>,
    #[serde(rename = "host.name")]
    host: Option<String>,
    severity: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
}

/// `GET /api/v1/incidents`: most recently updated first.
pub async fn list_incidents(
    State(state): State<AppState>,
    params: Result<Query<IncidentsParams>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(p) = params?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            s.parse::<IncidentStatus>()
                .map_err(|e| AppError::field("status", e))
        })
        .transpose()?;
    let query = IncidentQuery {
        status,
        host: p.host,
        min_severity: parse_severity(p.severity.as_deref())?,
        since: parse_time("since", p.since.as_deref())?,
        until: parse_time("until", p.until.as_deref())?,
        limit: parse_limit(p.limit)?,
        cursor: p.next,
    };
    let page = state.store.query_incidents(&query).await?;
    Ok(Json(json!({"incidents": page.items, "next": page.next})))
}

/// `GET /api/v1/analyzers`: the analyzers the pipeline runs.
pub async fn list_analyzers(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "analyzers": state.pipeline.registry().names() }))
}

/// Query parameters of `GET /api/v1/activity`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    since: Option<String>,
    until: Option<String>,
    bucket: Option<i64>,
}

/// `GET /api/v1/activity`: events and findings (by severity and analyzer) counted per
/// time bucket, for the console's overview charts. Default: the last hour by minute.
pub async fn activity(
    State(state): State<AppState>,
    params: Result<Query<ActivityParams>, QueryRejection>,
) -> Result<Json<vigil_store::Activity>, AppError> {
    let Query(p) = params?;
    let until = parse_time("until", p.until.as_deref())?.unwrap_or_else(chrono::Utc::now);
    let since = parse_time("since", p.since.as_deref())?
        .unwrap_or_else(|| until - chrono::Duration::hours(1));
    let bucket_secs = p.bucket.unwrap_or(60);
    if bucket_secs < 1 {
        return Err(AppError::field("bucket", "`bucket` is seconds, at least 1"));
    }
    if until <= since {
        return Err(AppError::field("since", "`since` must be before `until`"));
    }
    let span = (until - since).num_seconds();
    let needed = (span + bucket_secs - 1) / bucket_secs + 1;
    if needed > vigil_store::MAX_ACTIVITY_BUCKETS {
        return Err(AppError::field(
            "bucket",
            format!(
                "{span} s in buckets of {bucket_secs} s is more than {} buckets: widen `bucket`",
                vigil_store::MAX_ACTIVITY_BUCKETS
            ),
        ));
    }
    let query = vigil_store::ActivityQuery {
        since,
        until,
        bucket_secs,
    };
    Ok(Json(state.store.activity(&query).await?))
}
