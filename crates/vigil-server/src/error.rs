//! One error type for every HTTP endpoint, rendered as
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.
//!
//! Codes are stable: clients may match on them. Internal details (store errors, panics) are
//! logged and never returned.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vigil_pipeline::IngestError;
use vigil_store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (`bad_request`), naming the field when known.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
        /// The offending field, when there is one.
        field: Option<String>,
    },
    /// An uploaded script does not compile or its manifest is wrong; carries the position.
    #[error("{0}")]
    Script(vigil_script::ScriptError),
    /// No usable credential.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is larger than the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Ingest is overloaded; retry after the given seconds.
    #[error("{message}")]
    Overloaded {
        /// What happened.
        message: String,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The request body stopped arriving (`408`).
    #[error("{0}")]
    RequestTimeout(String),
    /// The body's encoding is not accepted (`415`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A per-credential or server-wide cap (WebSocket streams) is reached: `429` with
    /// `Retry-After: 5`.
    #[error("{message}")]
    TooMany {
        /// Stable code.
        code: &'static str,
        /// Which cap and how to get under it.
        message: String,
    },
    /// The server cannot serve this now (shutting down, store down).
    #[error("{0}")]
    Unavailable(String),
    /// Too many requests or request bytes in flight: shed at once (`503`, `Retry-After: 1`).
    #[error("{0}")]
    Shed(String),
    /// A bug or an unexpected failure; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// A `400 bad_request` naming a field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::BadRequest {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A `400` with a code and no field.
    pub fn bad(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::BadRequest {
            code,
            message: message.into(),
            field: None,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&str>) {
        match self {
            AppError::BadRequest { code, field, .. } => {
                (StatusCode::BAD_REQUEST, code, field.as_deref())
            }
            AppError::Script(_) => (StatusCode::BAD_REQUEST, "invalid_script", Some("source")),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            AppError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            AppError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None)
            }
            AppError::Overloaded { .. } => (StatusCode::TOO_MANY_REQUESTS, "overloaded", None),
            AppError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout", None),
            AppError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            AppError::TooMany { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code, None),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            AppError::Shed(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", None),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

/// The JSON body of every error.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// Stable machine-readable code.
    pub code: &'a str,
    /// Human explanation.
    pub message: String,
    /// Offending field, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    /// For script errors: the script error code (`compile`, `no_analyze`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_error: Option<&'a str>,
    /// For script errors: 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// For script errors: 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        if let AppError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let script = match &self {
            AppError::Script(e) => Some(e),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
                script_error: script.map(|e| e.code),
                line: script.and_then(|e| e.line),
                column: script.and_then(|e| e.column),
            },
        };
        let mut resp = (status, Json(body)).into_response();
        match &self {
            AppError::Overloaded {
                retry_after_secs, ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            AppError::Unavailable(_) | AppError::TooMany { .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
            }
            AppError::Shed(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            AppError::Unauthorized(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vigil\""),
                );
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::BadCursor => AppError::field("next", e.to_string()),
            StoreError::Conflict(what) => {
                AppError::bad("conflict", format!("{what} exists already"))
            }
            StoreError::InvalidArgument(why) => AppError::bad("invalid_query", why),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> AppError {
        match e {
            IngestError::Overloaded {
                retry_after_secs, ..
            } => AppError::Overloaded {
                message: e.to_string(),
                retry_after_secs,
            },
            IngestError::TooMany { .. } => AppError::bad("too_many_events", e.to_string()),
            IngestError::ShuttingDown => AppError::Unavailable(e.to_string()),
            IngestError::Store(detail) => {
                tracing::error!(%detail, "commit failed");
                AppError::Unavailable("the store could not commit the events; retry later".into())
            }
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> AppError {
        AppError::from_json(rejection, crate::JSON_BODY_LIMIT)
    }
}

impl AppError {
    /// Maps a JSON body rejection on a route whose body limit is `limit` bytes.
    pub fn from_json(rejection: JsonRejection, limit: usize) -> AppError {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the path, e.g. "role: unknown variant `root`".
                AppError::BadRequest {
                    code: "invalid_field",
                    message: e.body_text(),
                    field: None,
                }
            }
            JsonRejection::JsonSyntaxError(e) => AppError::bad("invalid_json", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => AppError::bad(
                "unsupported_media_type",
                "send the body with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) => bytes_rejection(e, limit),
            other => AppError::bad("bad_request", other.body_text()),
        }
    }
}

impl From<vigil_core::ndjson::LineError> for AppError {
    /// A refused event: `invalid_json` or `invalid_event`, naming the field when known.
    fn from(e: vigil_core::ndjson::LineError) -> AppError {
        AppError::BadRequest {
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> AppError {
        AppError::bad("invalid_query", rejection.body_text())
    }
}

/// Maps a body-reading failure (usually the size `limit`) to an [`AppError`].
pub fn bytes_rejection(rejection: BytesRejection, limit: usize) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge { limit }
    } else {
        AppError::bad("bad_request", rejection.body_text())
    }
}
