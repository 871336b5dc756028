//! File analysis over REST: `POST /api/v1/files` (the file's bytes as the body),
//! `GET /api/v1/files/{sha256}`, labels and the dataset, `POST /api/v1/yara/reload`.

use crate::files::{FileError, FileRequest, FileService};
use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use vigil_file::protocol::Command;

/// Query of `POST /api/v1/files`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileParams {
    /// The caller's VirusTotal key (asks VirusTotal too).
    vt_key: Option<String>,
    /// Ask VirusTotal with the server's key.
    #[serde(default)]
    virustotal: bool,
}

fn service(state: &AppState) -> Result<&Arc<FileService>, AppError> {
    state
        .files
        .as_ref()
        .ok_or_else(|| AppError::Unavailable("file analysis is not enabled on this server".into()))
}

impl From<FileError> for AppError {
    fn from(e: FileError) -> AppError {
        match e {
            FileError::BadRequest(m) => AppError::bad("bad_request", m),
            FileError::Unavailable(m) => AppError::Unavailable(m),
            FileError::NotFound(m) => AppError::NotFound(m),
            FileError::Internal(m) => AppError::Internal(m),
        }
    }
}

/// `POST /api/v1/files`: static analysis, YARA, the model (and VirusTotal when asked) on
/// the body's bytes; answers the full report.
pub async fn analyze_file(
    State(state): State<AppState>,
    params: Result<Query<FileParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let files = service(&state)?;
    let Query(params) = params?;
    let body = body.map_err(|e| crate::error::bytes_rejection(e, files.max_file_bytes()))?;
    if body.is_empty() {
        return Err(AppError::bad(
            "bad_request",
            "send the file's bytes as the request body",
        ));
    }
    let vt_key = params.vt_key.filter(|k| !k.is_empty());
    let command = if vt_key.is_some() || params.virustotal {
        Command::StaticVirusTotal
    } else {
        Command::Static
    };
    let answer = files
        .analyze(FileRequest {
            command,
            bytes: Some(body.to_vec()),
            sha256: None,
            vt_key,
        })
        .await?;
    Ok(Json(answer.report))
}

/// `GET /api/v1/files/{sha256}`: the last report for a hash.
pub async fn get_file(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Json<Value>, AppError> {
    let files = service(&state)?;
    let sha = crate::files::parse_sha256(sha256.as_bytes())
        .map_err(|e| AppError::field("sha256", e.to_string()))?;
    files
        .report(&sha)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no report for {sha}: POST the file first")))
}

/// `POST /api/v1/yara/reload`: compiles the rule folders again; on errors the rules in
/// force stay and every error is listed with file, line and column.
pub async fn reload_yara(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let files = service(&state)?.clone();
    let result = tokio::task::spawn_blocking(move || files.engine().yara().reload())
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    match result {
        Ok(set) => Ok(Json(
            json!({"reloaded": true, "rules": set.len(), "files": set.files()}),
        )),
        Err(errors) => Err(AppError::BadRequest {
            code: "invalid_rules",
            message: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            field: None,
        }),
    }
}

/// Body of `POST /api/v1/files/{sha256}/label`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    /// `malicious` or `benign`.
    label: String,
}

/// `POST /api/v1/files/{sha256}/label`: an analyst's verdict on an analysed PE file.
pub async fn label_file(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    Path(sha256): Path<String>,
    body: Result<Json<LabelBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let files = service(&state)?;
    let Json(body) = body.map_err(|e| AppError::from_json(e, 4096))?;
    let malicious = match body.label.as_str() {
        "malicious" => true,
        "benign" => false,
        other => {
            return Err(AppError::field(
                "label",
                format!("`label` is `malicious` or `benign`, not `{other}`"),
            ));
        }
    };
    let sha = crate::files::parse_sha256(sha256.as_bytes())
        .map_err(|e| AppError::field("sha256", e.to_string()))?;
    Ok(Json(files.label(&sha, malicious, &who.subject).await?))
}

/// `GET /api/v1/files/labels`: every label.
pub async fn list_labels(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let labels = service(&state)?.labels().await?;
    Ok(Json(json!({ "labels": labels })))
}

/// Query of `GET /api/v1/files/dataset.csv`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetParams {
    /// `clamp` (default: features and class) or `seed` (`path, sha256, label`).
    format: Option<String>,
}

/// `GET /api/v1/files/dataset.csv`: the labelled files in ClaMP's raw-feature CSV format,
/// or seed 001's `path, sha256, label` with `?format=seed`.
pub async fn dataset_csv(
    State(state): State<AppState>,
    params: Result<Query<DatasetParams>, QueryRejection>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    let Query(params) = params?;
    let files = service(&state)?;
    let csv = match params.format.as_deref() {
        None | Some("clamp") => files.dataset_csv().await?,
        Some("seed") => files.dataset_seed_csv().await?,
        Some(other) => {
            return Err(AppError::field(
                "format",
                format!("`format` is `clamp` or `seed`, not `{other}`"),
            ));
        }
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        csv,
    )
        .into_response())
}

/// `POST /api/v1/files/{sha256}/sandbox`: a CAPE or Cuckoo `report.json` for a file;
/// dynamic analyses use it from then on.
pub async fn add_sandbox_report(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let files = service(&state)?;
    let body =
        body.map_err(|e| crate::error::bytes_rejection(e, crate::files::MAX_SANDBOX_BYTES))?;
    let sha = crate::files::parse_sha256(sha256.as_bytes())
        .map_err(|e| AppError::field("sha256", e.to_string()))?;
    if body.is_empty() {
        return Err(AppError::bad(
            "empty_body",
            "send the sandbox's report.json as the request body",
        ));
    }
    match files.add_sandbox_report(&sha, &body).await {
        Ok(v) => Ok(Json(v)),
        // Not JSON, not a CAPE/Cuckoo report, or a report of another file.
        Err(FileError::BadRequest(m)) => Err(AppError::bad("invalid_report", m)),
        Err(e) => Err(e.into()),
    }
}
