//! User scripts (admin writes, viewer reads), lookup lists, and `POST /api/v1/analyze`.

use crate::routes::Path;
use crate::{AppError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use vigil_core::Event;
use vigil_script::{Language, Manifest, ScriptSet};
use vigil_store::{ScriptRecord, Store, StoreError};

/// Body of `POST /api/v1/scripts` and `PUT /api/v1/scripts/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    name: Option<String>,
    source: String,
    description: Option<String>,
    categories: Option<Vec<String>>,
    config: Option<Map<String, Value>>,
    timeout_ms: Option<u64>,
    enabled: Option<bool>,
    agent_tags: Option<Vec<String>>,
    language: Option<Language>,
}

/// Loads the newest version of every stored script into `set`. A script that no longer
/// compiles (say, after an upgrade tightened a limit) is loaded as nothing and reported.
pub async fn load_scripts(store: &dyn Store, set: &ScriptSet) -> Result<usize, StoreError> {
    let mut latest: std::collections::BTreeMap<String, ScriptRecord> = Default::default();
    for s in store.list_scripts().await? {
        latest.insert(s.name.clone(), s);
    }
    let mut loaded = 0;
    for (name, rec) in latest {
        let manifest: Result<Manifest, _> = serde_json::from_value(rec.manifest.clone());
        let result = manifest.map_err(|e| e.to_string()).and_then(|m| {
            set.load(
                m,
                rec.version,
                &rec.source,
                rec.enabled,
                rec.disabled_reason.clone(),
            )
            .map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => loaded += 1,
            Err(e) => tracing::error!(script = %name, error = %e, "stored script does not load"),
        }
    }
    for (name, values) in store.list_lists().await? {
        set.engine().lists().set(&name, values);
    }
    for agent in store.list_agents().await? {
        if !agent.tags.is_empty() {
            set.set_agent_tags(&agent.id, agent.tags);
        }
    }
    Ok(loaded)
}

/// Persists the scripts the set disables automatically, until the set is dropped, and
/// records each as a high-severity finding (`vigil:scripts`, ATT&CK T1562).
pub fn spawn_disable_persistence(
    store: Arc<dyn Store>,
    set: &ScriptSet,
) -> tokio::task::JoinHandle<()> {
    let rx = set.auto_disabled();
    tokio::spawn(async move {
        while let Ok(f) = rx.recv_async().await {
            if let Err(e) = store
                .set_script_enabled(&f.name, false, Some(&f.reason))
                .await
            {
                tracing::error!(script = %f.name, error = %e, "could not persist the disabling");
            }
            // Whoever controls event content may be trying to blind a detection by making
            // its script fail: make the disabling itself visible.
            let finding = vigil_core::Finding::new(
                "vigil:scripts",
                75.0,
                format!("detection script `{}` was disabled automatically", f.name),
            )
            .with_evidence(json!({"script": f.name, "reason": f.reason}))
            .with_techniques(["T1562"]);
            if let Err(e) = store.insert_findings(&[finding]).await {
                tracing::error!(script = %f.name, error = %e, "could not record the disabling");
            }
        }
    })
}

async fn versions_of(store: &dyn Store, name: &str) -> Result<Vec<ScriptRecord>, AppError> {
    Ok(store
        .list_scripts()
        .await?
        .into_iter()
        .filter(|s| s.name == name)
        .collect())
}

/// Validates, compiles, stores as `version`, then loads. Nothing is stored if it fails.
async fn save(
    state: &AppState,
    manifest: Manifest,
    source: String,
    version: i64,
    enabled: bool,
) -> Result<Value, AppError> {
    let limits = state.scripts.engine().limits();
    manifest
        .validate(limits.max_timeout_ms)
        .map_err(|e| AppError::field(e.field.clone(), e.to_string()))?;
    // One reason for both the store and the loaded script.
    let reason = (!enabled).then(|| "disabled by an admin".to_string());
    // Compiling a Rhai script takes microseconds; preparing a Python one starts a worker
    // process, so it runs off the async threads.
    let prepared = {
        let (set, manifest, source, reason) = (
            state.scripts.clone(),
            manifest.clone(),
            source.clone(),
            reason.clone(),
        );
        tokio::task::spawn_blocking(move || {
            set.prepare(manifest, version, &source, enabled, reason)
        })
        .await
        .map_err(|e| AppError::Internal(format!("preparing the script: {e}")))?
        .map_err(AppError::Script)?
    };
    let record = ScriptRecord {
        name: manifest.name.clone(),
        version,
        source: source.clone(),
        manifest: serde_json::to_value(&manifest).map_err(|e| AppError::Internal(e.to_string()))?,
        enabled,
        disabled_reason: reason.clone(),
        created_at: vigil_core::now_rfc3339(),
    };
    state.store.put_script(&record).await?;
    state.scripts.install(prepared);
    tracing::info!(script = %record.name, version, "script saved");
    Ok(
        json!({"name": record.name, "version": version, "enabled": enabled, "created_at": record.created_at}),
    )
}

/// The manifest of an upload: the body's fields and the source's own front matter (`//!`
/// lines of Rhai, `#:` lines of Python), so that a shipped script uploads as it is (issue
/// 23). A field given in both must agree; a field in neither takes its default. `name`
/// is the URL's on `PUT`, else the body's, else the front matter's.
fn manifest_from(name: Option<String>, body: &ScriptBody) -> Result<Manifest, AppError> {
    let parse = |language| vigil_script::front_matter_fields(&body.source, language);
    // Without a `language`, `#:` lines make it Python (read once), anything else Rhai.
    let (language, fields) = match body.language {
        Some(language) => (language, parse(language)),
        None => match parse(Language::Python) {
            Ok(Some(fields)) => (Language::Python, Ok(Some(fields))),
            _ => (Language::Rhai, parse(Language::Rhai)),
        },
    };
    let mut fields = fields
        .map_err(|e| AppError::field("source", format!("the script's manifest: {e}")))?
        .unwrap_or_default();
    let given: [(&str, Option<Value>); 6] = [
        (
            "name",
            body.name.clone().or(name.clone()).map(Value::String),
        ),
        // An empty description (what a form sends when left blank) is not given.
        (
            "description",
            body.description
                .clone()
                .filter(|d| !d.is_empty())
                .map(Value::String),
        ),
        ("categories", body.categories.clone().map(|c| json!(c))),
        ("config", body.config.clone().map(Value::Object)),
        ("timeout_ms", body.timeout_ms.map(|t| json!(t))),
        ("agent_tags", body.agent_tags.clone().map(|t| json!(t))),
    ];
    for (field, value) in given {
        let Some(value) = value else { continue };
        match fields.get(field) {
            Some(own) if *own != value => {
                return Err(AppError::field(
                    field,
                    format!(
                        "`{field}` is {value} in the request but {own} in the script's own manifest: send one of them, or make them agree"
                    ),
                ));
            }
            _ => {
                fields.insert(field.to_string(), value);
            }
        }
    }
    if let Some(url) = name
        && fields.get("name").and_then(Value::as_str) != Some(url.as_str())
    {
        return Err(AppError::field(
            "name",
            "the script's `name` differs from the URL's",
        ));
    }
    if !fields.contains_key("name") {
        return Err(AppError::field(
            "name",
            "`name` is required: in the body, or as `name = \"...\"` in the script's manifest",
        ));
    }
    fields.insert("language".into(), json!(language));
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| AppError::field("source", format!("the script's manifest: {e}")))
}

/// `POST /api/v1/scripts`: a new script (version 1).
pub async fn create_script(
    State(state): State<AppState>,
    body: Result<Json<ScriptBody>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body.map_err(|e| AppError::from_json(e, state.config.max_bulk_bytes))?;
    let manifest = manifest_from(None, &body)?;
    let name = manifest.name.clone();
    if !versions_of(state.store.as_ref(), &name).await?.is_empty() {
        return Err(AppError::bad(
            "conflict",
            format!("script `{name}` exists already: PUT /api/v1/scripts/{name} adds a version"),
        ));
    }
    let saved = save(
        &state,
        manifest,
        body.source,
        1,
        body.enabled.unwrap_or(true),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// `PUT /api/v1/scripts/{name}`: a new version of an existing script.
pub async fn update_script(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<ScriptBody>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(body) = body.map_err(|e| AppError::from_json(e, state.config.max_bulk_bytes))?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(AppError::field(
            "name",
            "the body's `name` differs from the URL's",
        ));
    }
    let versions = versions_of(state.store.as_ref(), &name).await?;
    let last = versions.last().ok_or_else(|| {
        AppError::NotFound(format!(
            "no script `{name}`: POST /api/v1/scripts creates it"
        ))
    })?;
    let enabled = body.enabled.unwrap_or(last.enabled);
    let manifest = manifest_from(Some(name), &body)?;
    Ok(Json(
        save(&state, manifest, body.source, last.version + 1, enabled).await?,
    ))
}

/// `GET /api/v1/scripts`: loaded scripts with their run-time state.
pub async fn list_scripts(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "scripts": state.scripts.list() }))
}

/// `GET /api/v1/scripts/{name}`: the current version's source and manifest, the run-time
/// state, and every version.
pub async fn get_script(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let versions = versions_of(state.store.as_ref(), &name).await?;
    let current = versions
        .last()
        .ok_or_else(|| AppError::NotFound(format!("no script `{name}`")))?;
    let runtime = state.scripts.list().into_iter().find(|s| s.name == name);
    Ok(Json(json!({
        "name": name,
        "version": current.version,
        "source": current.source,
        "manifest": current.manifest,
        "enabled": runtime.as_ref().map_or(current.enabled, |r| r.enabled),
        "disabled_reason": runtime.as_ref().and_then(|r| r.disabled_reason.clone()).or(current.disabled_reason.clone()),
        "consecutive_failures": runtime.as_ref().map_or(0, |r| r.consecutive_failures),
        "versions": versions.iter().map(|v| json!({"version": v.version, "created_at": v.created_at})).collect::<Vec<_>>(),
    })))
}

/// `DELETE /api/v1/scripts/{name}`: removes the script and its versions.
pub async fn delete_script(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    if !state.store.delete_script(&name).await? {
        return Err(AppError::NotFound(format!("no script `{name}`")));
    }
    state.scripts.remove(&name);
    tracing::info!(script = %name, "script deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(state: &AppState, name: &str, enabled: bool) -> Result<Json<Value>, AppError> {
    let reason = (!enabled).then_some("disabled by an admin");
    if !state
        .store
        .set_script_enabled(name, enabled, reason)
        .await?
    {
        return Err(AppError::NotFound(format!("no script `{name}`")));
    }
    state
        .scripts
        .set_enabled(name, enabled, reason.map(str::to_string));
    Ok(Json(json!({"name": name, "enabled": enabled})))
}

/// `POST /api/v1/scripts/{name}/enable`.
pub async fn enable_script(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    set_enabled(&state, &name, true).await
}

/// `POST /api/v1/scripts/{name}/disable`.
pub async fn disable_script(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    set_enabled(&state, &name, false).await
}

/// Body of `POST /api/v1/scripts/{name}/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    version: i64,
}

/// `POST /api/v1/scripts/{name}/rollback`: makes an old version current again, as a new
/// version (history is never rewritten).
pub async fn rollback_script(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Rollback>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(Rollback { version }) =
        body.map_err(|e| AppError::from_json(e, state.config.max_bulk_bytes))?;
    let versions = versions_of(state.store.as_ref(), &name).await?;
    let last = versions
        .last()
        .ok_or_else(|| AppError::NotFound(format!("no script `{name}`")))?;
    let old = versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| {
            AppError::field(
                "version",
                format!("script `{name}` has no version {version}"),
            )
        })?;
    let manifest: Manifest = serde_json::from_value(old.manifest.clone())
        .map_err(|e| AppError::Internal(format!("stored manifest: {e}")))?;
    let mut saved = save(
        &state,
        manifest,
        old.source.clone(),
        last.version + 1,
        last.enabled,
    )
    .await?;
    saved["rolled_back_to"] = json!(version);
    Ok(Json(saved))
}

/// `POST /api/v1/lists/{name}`: replaces a lookup list. Body: a JSON array of strings.
pub async fn put_list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Vec<String>>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(values) = body.map_err(|e| AppError::from_json(e, state.config.max_bulk_bytes))?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(AppError::field(
            "name",
            "list names are 1 to 64 of a-z, A-Z, 0-9, `_`, `-`",
        ));
    }
    state.store.put_list(&name, &values).await?;
    state.scripts.engine().lists().set(&name, values);
    let size = state
        .scripts
        .engine()
        .lists()
        .summary()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, n)| n);
    Ok(Json(json!({"name": name, "size": size})))
}

/// `GET /api/v1/lists`: list names and sizes.
pub async fn get_lists(State(state): State<AppState>) -> Json<Value> {
    let lists: Vec<Value> = state
        .scripts
        .engine()
        .lists()
        .summary()
        .into_iter()
        .map(|(name, size)| json!({"name": name, "size": size}))
        .collect();
    Json(json!({ "lists": lists }))
}

/// Query parameters of `POST /api/v1/analyze`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeParams {
    #[serde(rename = "async", default)]
    run_async: bool,
}

/// `POST /api/v1/analyze`: runs every enabled matching script on one event (not stored)
/// and answers all their results at once; with `?async=true`, answers 202 with a job id at
/// once, and `GET /api/v1/jobs/{id}` gives the same body when done.
pub async fn analyze(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    params: Result<axum::extract::Query<AnalyzeParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let axum::extract::Query(params) = params?;
    let body = body.map_err(|e| crate::error::bytes_rejection(e, state.config.max_event_bytes))?;
    let event = vigil_core::ndjson::parse_event(&body, chrono::Utc::now())?;
    let event: Arc<Event> = Arc::new(event);
    // The analysis runs on the script set's own threads, one thread per analysis: no
    // runtime thread blocks, and those threads keep their regex caches warm. Spreading
    // one event's scripts over threads (rayon) or running them on the request's thread
    // (`block_in_place`, threads that come and go) both gave a ~10-30 ms p99 on 2 cores;
    // see docs/benchmarks.md.
    let overloaded = |_| AppError::Overloaded {
        message: format!(
            "{} analyses are waiting already; retry later",
            vigil_script::MAX_PENDING_ANALYSES
        ),
        retry_after_secs: 1,
    };
    if params.run_async {
        let id = state
            .jobs
            .start(&who.subject)
            .ok_or_else(|| AppError::Overloaded {
                message: format!(
                    "{} analysis jobs are held already; retry later",
                    crate::jobs::MAX_JOBS
                ),
                retry_after_secs: 5,
            })?;
        let rx = match state.scripts.submit(event) {
            Ok(rx) => rx,
            Err(e) => {
                state.jobs.forget(&id);
                return Err(overloaded(e));
            }
        };
        let (jobs, job) = (state.jobs.clone(), id.clone());
        tokio::spawn(async move {
            let report = match rx.recv_async().await {
                Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                Err(_) => {
                    json!({"error": {"code": "internal", "message": "the analysis was abandoned"}})
                }
            };
            jobs.finish(&job, report);
        });
        let body = json!({"job": id, "status": "pending", "url": format!("/api/v1/jobs/{id}")});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let report = state
        .scripts
        .submit(event)
        .map_err(overloaded)?
        .recv_async()
        .await
        .map_err(|_| AppError::Internal("the analysis was abandoned".into()))?;
    Ok(Json(report).into_response())
}

/// `GET /api/v1/jobs/{id}`: `{"status": "pending"}`, or `"done"` with the analysis.
pub async fn get_job(
    State(state): State<AppState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let owner = (who.role != vigil_core::Role::Admin).then_some(who.subject.as_str());
    match state.jobs.get(&id, owner) {
        None => Err(AppError::NotFound(format!(
            "no job `{id}` (unknown, or finished over 10 minutes ago)"
        ))),
        Some(None) => Ok(Json(json!({"job": id, "status": "pending"}))),
        Some(Some(mut report)) => {
            report["job"] = json!(id);
            report["status"] = json!("done");
            Ok(Json(report))
        }
    }
}

/// Body of `POST /api/v1/scripts/trial`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialBody {
    script: ScriptBody,
    event: Value,
}

/// `POST /api/v1/scripts/trial`: compiles a script (a draft, or a stored one's source) and
/// runs it once on an event, without storing or loading anything. The console's editor
/// uses it to show compile errors at their line and to try a script on a pasted event.
pub async fn trial_script(
    State(state): State<AppState>,
    body: Result<Json<TrialBody>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(body) = body.map_err(|e| AppError::from_json(e, state.config.max_bulk_bytes))?;
    let raw = serde_json::to_vec(&body.event).map_err(|e| AppError::Internal(e.to_string()))?;
    let event: Arc<Event> = Arc::new(
        vigil_core::ndjson::parse_event(&raw, chrono::Utc::now()).map_err(AppError::from)?,
    );
    // A trial needs no name: `trial` when neither the body nor the source gives one.
    let manifest = match manifest_from(None, &body.script) {
        Err(AppError::BadRequest { field: Some(f), .. })
            if f == "name" && body.script.name.is_none() =>
        {
            manifest_from(Some("trial".into()), &body.script)?
        }
        other => other?,
    };
    let limits = state.scripts.engine().limits();
    manifest
        .validate(limits.max_timeout_ms)
        .map_err(|e| AppError::field(e.field.clone(), e.to_string()))?;
    let set = state.scripts.clone();
    let source = body.script.source;
    let (report, matches) = tokio::task::spawn_blocking(move || {
        let prepared = set.prepare(manifest, 0, &source, true, None)?;
        Ok::<_, vigil_script::ScriptError>(set.trial(&prepared, &event))
    })
    .await
    .map_err(|e| AppError::Internal(format!("running the trial: {e}")))?
    .map_err(AppError::Script)?;
    let mut v = serde_json::to_value(report).map_err(|e| AppError::Internal(e.to_string()))?;
    v["matches"] = Value::Bool(matches);
    Ok(Json(v))
}
