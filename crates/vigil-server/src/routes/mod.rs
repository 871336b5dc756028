//! HTTP handlers, grouped by resource.

pub mod agents;
pub mod events;
pub mod files;
pub mod incidents;
pub mod keys;
pub mod logs;
pub mod network;
pub mod read;
pub mod scripts;
pub mod system;
pub mod triage;

use crate::AppError;
use chrono::{DateTime, Utc};

/// `axum::extract::Path` whose rejection (a segment that is not UTF-8 once decoded, or
/// not of the parameter's type) is the API's JSON error (`400 invalid_path`), not plain
/// text.
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for Path<T>
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(AppError::BadRequest {
                code: "invalid_path",
                message: e.body_text(),
                field: None,
            }),
        }
    }
}

/// Parses an RFC 3339 query parameter, naming it on error.
pub(crate) fn parse_time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    AppError::field(
                        field,
                        format!(
                            "`{field}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z ({e})"
                        ),
                    )
                })
        })
        .transpose()
}

/// Parses a minimum-severity parameter, naming it on error.
pub(crate) fn parse_severity(
    value: Option<&str>,
) -> Result<Option<vigil_core::Severity>, AppError> {
    value
        .map(|s| {
            s.parse::<vigil_core::Severity>()
                .map_err(|e| AppError::field("severity", e.to_string()))
        })
        .transpose()
}

/// Checks a page size: absent means the default, otherwise 1 to 1000.
pub(crate) fn parse_limit(limit: Option<usize>) -> Result<usize, AppError> {
    match limit {
        None => Ok(vigil_store::DEFAULT_PAGE),
        Some(n) if (1..=vigil_store::MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(AppError::field(
            "limit",
            format!("`limit` must be between 1 and {}", vigil_store::MAX_PAGE),
        )),
    }
}
