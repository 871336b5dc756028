//! Vigil's network interfaces: the REST API under `/api/v1`, the WebSocket finding stream,
//! Prometheus metrics, the OpenAPI document and its interactive page.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive it with
//! `app(state).oneshot(request)` and no socket. Every call is recorded by the access log
//! ([`access`]).
#![warn(missing_docs)]

pub mod access;
pub mod admission;
pub mod auth;
pub mod conn;
mod console;
mod error;
pub mod files;
pub mod http;
pub mod jobs;
pub mod logs;
pub mod logsrc;
mod markdown;
pub mod network;
pub mod protocol;
mod routes;
pub mod sigma;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod triage;

pub use auth::{AuthConfig, Authenticator, Principal, generate_api_key, hash_api_key};
pub use error::{AppError, ErrorBody, ErrorDetail};
pub use routes::scripts::{load_scripts, spawn_disable_persistence};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use vigil_pipeline::Pipeline;
use vigil_store::Store;

/// Limit on small JSON bodies (key creation and the like).
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// HTTP settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest body of `POST /api/v1/events`, in bytes.
    pub max_event_bytes: usize,
    /// Largest body of `POST /api/v1/events/bulk`, in bytes.
    pub max_bulk_bytes: usize,
    /// Most lines in one bulk request.
    pub max_bulk_events: usize,
    /// Seconds to finish in-flight work on shutdown.
    pub shutdown_grace_secs: u64,
    /// Also append the access log (one JSON line per API call and protocol request) to
    /// this file; none by default (the `vigil::access` log target has it either way).
    pub access_log: Option<PathBuf>,
    /// API requests handled at once; more are answered `503` + `Retry-After: 1` at once
    /// (health, metrics, the console and WebSocket streams are not counted).
    pub max_in_flight: usize,
    /// MiB of request bodies in flight at once (by `Content-Length`); more are answered
    /// `503` at once. Bounds the memory buffered bodies take.
    pub max_in_flight_body_mib: u64,
    /// Percent of `max_in_flight_body_mib` one credential may hold while it has another
    /// body in flight (its first body always fits the budget); more are answered `429`.
    pub max_body_share_percent: u8,
    /// A request body that sends nothing for this many seconds is cut with `408`.
    pub body_timeout_secs: u64,
    /// Slowest average rate of a body, in KiB/s: a body of `n` KiB must arrive within
    /// `body_timeout_secs + n / body_min_kib_per_sec` seconds, or it is cut with `408`.
    pub body_min_kib_per_sec: u64,
    /// Seconds for a whole request head; also how long a keep-alive connection may wait
    /// idle for its next request.
    pub header_timeout_secs: u64,
    /// HTTP connections held at once; at the cap the longest-idle one is closed to make
    /// room (when all are busy, the new one is). Lowered at start to fit the process's
    /// file descriptor limit.
    pub max_connections: usize,
    /// HTTP connections held at once from one client address.
    pub max_connections_per_ip: usize,
    /// WebSocket streams open at once (findings, incidents, network scoring).
    pub max_streams: usize,
    /// WebSocket streams open at once with one credential.
    pub max_streams_per_credential: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_event_bytes: 1024 * 1024,
            max_bulk_bytes: 16 * 1024 * 1024,
            max_bulk_events: 20_000,
            shutdown_grace_secs: 30,
            access_log: None,
            max_in_flight: 1024,
            max_in_flight_body_mib: 512,
            max_body_share_percent: 25,
            body_timeout_secs: 30,
            body_min_kib_per_sec: 64,
            header_timeout_secs: 10,
            max_connections: 1024,
            max_connections_per_ip: 256,
            max_streams: 256,
            max_streams_per_credential: 16,
        }
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The pipeline (ingest, analyzers, finding stream).
    pub pipeline: Pipeline,
    /// Credential checks.
    pub auth: Arc<Authenticator>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Body limits and the like.
    pub config: Arc<ServerConfig>,
    /// User analysis scripts.
    pub scripts: Arc<vigil_script::ScriptSet>,
    /// Asynchronous analysis jobs.
    pub jobs: Arc<jobs::Jobs>,
    /// File analysis; `None` answers its routes with `503`.
    pub files: Option<Arc<files::FileService>>,
    /// The network detector; `None` answers its routes with `503`.
    pub network: Option<Arc<network::NetService>>,
    /// The log analyzer; `None` answers its routes with `503`.
    pub logs: Option<Arc<logs::LogService>>,
    /// Incident correlation; `None` answers its changes and stream with `503`.
    pub incidents: Option<Arc<vigil_respond::IncidentService>>,
    /// The triage agent; `None` answers `POST /api/v1/triage` with `503`.
    pub triage: Option<Arc<triage::TriageService>>,
    /// Sigma rules; `None` answers their routes with `503` (EVTX uploads still work). A
    /// server without rule folders has a service with no rules (`loaded: 0`).
    pub sigma: Option<Arc<sigma::SigmaService>>,
    /// Open WebSocket streams, capped per credential and in all.
    pub streams: Arc<stream::StreamSlots>,
}

impl ServerConfig {
    /// The stream caps of this configuration, for [`AppState::streams`].
    pub fn stream_slots(&self) -> Arc<stream::StreamSlots> {
        stream::StreamSlots::new(self.max_streams, self.max_streams_per_credential)
    }

    /// The HTTP connection settings of this configuration.
    pub fn http_limits(&self) -> http::HttpLimits {
        http::HttpLimits {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs.max(1)),
            conns: conn::ConnLimits {
                max_total: self.max_connections,
                max_per_ip: self.max_connections_per_ip,
            },
        }
    }
}

/// A route's body limit, enforced with the body budget ([`admission::guard_body`]): the
/// claim is checked against `limit` before anything is reserved or read.
fn limited(
    route: axum::routing::MethodRouter<AppState>,
    admission: &Arc<admission::Admission>,
    limit: usize,
) -> axum::routing::MethodRouter<AppState> {
    route
        .layer::<_, std::convert::Infallible>(middleware::from_fn_with_state(
            admission::BodyGuard {
                admission: admission.clone(),
                limit,
            },
            admission::guard_body,
        ))
        .layer(DefaultBodyLimit::max(limit))
}

/// The whole HTTP application; its access log goes to tracing only.
pub fn app(state: AppState) -> Router {
    app_with_access_log(state, access::AccessLog::default())
}

/// The whole HTTP application, recording every call to `access_log`.
pub fn app_with_access_log(state: AppState, access_log: access::AccessLog) -> Router {
    let cfg = state.config.clone();
    let max_file_bytes = state
        .files
        .as_ref()
        .map_or(64 << 20, |f| f.max_file_bytes());
    let max_evtx_bytes = state
        .sigma
        .as_ref()
        .map_or(sigma::SigmaConfig::default().max_evtx_bytes, |s| {
            s.max_evtx_bytes()
        });
    let route_limits = [
        cfg.max_event_bytes,
        cfg.max_bulk_bytes,
        max_file_bytes,
        max_evtx_bytes,
        files::MAX_SANDBOX_BYTES,
        routes::network::BATCH_BODY_LIMIT,
        routes::logs::DETECT_BODY_LIMIT,
        routes::triage::TRIAGE_BODY_LIMIT,
        JSON_BODY_LIMIT,
    ];
    let adm = Arc::new(admission::Admission::new(
        cfg.max_in_flight,
        admission::BodyBudget {
            max_bytes: cfg.max_in_flight_body_mib.saturating_mul(1 << 20),
            share_percent: cfg.max_body_share_percent,
            max_route_bytes: route_limits.into_iter().max().unwrap_or(JSON_BODY_LIMIT) as u64,
            timeout: std::time::Duration::from_secs(cfg.body_timeout_secs.max(1)),
            min_bytes_per_sec: cfg.body_min_kib_per_sec.saturating_mul(1024),
        },
    ));
    let group_guard = |limit: usize| {
        middleware::from_fn_with_state(
            admission::BodyGuard {
                admission: adm.clone(),
                limit,
            },
            admission::guard_body,
        )
    };
    let ingest = Router::new()
        .route(
            "/api/v1/events",
            limited(post(routes::events::post_event), &adm, cfg.max_event_bytes),
        )
        .route(
            "/api/v1/events/bulk",
            limited(post(routes::events::post_bulk), &adm, cfg.max_bulk_bytes),
        )
        .route(
            "/api/v1/agents",
            limited(post(routes::agents::register), &adm, JSON_BODY_LIMIT),
        )
        .route(
            "/api/v1/agents/{id}/heartbeat",
            limited(post(routes::agents::heartbeat), &adm, JSON_BODY_LIMIT),
        )
        .route("/api/v1/jobs/{id}", get(routes::scripts::get_job))
        .route(
            "/api/v1/files",
            limited(post(routes::files::analyze_file), &adm, max_file_bytes),
        )
        .route(
            "/api/v1/files/{sha256}/sandbox",
            limited(
                post(routes::files::add_sandbox_report),
                &adm,
                files::MAX_SANDBOX_BYTES,
            ),
        )
        .route(
            "/api/v1/network/analyze",
            limited(
                post(routes::network::analyze),
                &adm,
                routes::network::RECORD_BODY_LIMIT,
            ),
        )
        .route(
            "/api/v1/network/analyze/batch",
            limited(
                post(routes::network::analyze_batch),
                &adm,
                routes::network::BATCH_BODY_LIMIT,
            ),
        )
        .route("/api/v1/network/stream", get(routes::network::stream))
        .route(
            "/api/v1/logs/detect",
            limited(
                post(routes::logs::detect),
                &adm,
                routes::logs::DETECT_BODY_LIMIT,
            ),
        )
        .route(
            "/api/v1/analyze",
            limited(post(routes::scripts::analyze), &adm, cfg.max_event_bytes),
        )
        .route(
            "/api/v1/evtx",
            limited(post(sigma::ingest_evtx), &adm, max_evtx_bytes),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_agent,
        ));

    let read = Router::new()
        .route("/api/v1/events", get(routes::events::list_events))
        .route("/api/v1/events/{id}", get(routes::events::get_event))
        .route("/api/v1/findings", get(routes::read::list_findings))
        .route("/api/v1/findings/{id}", get(routes::read::get_finding))
        .route("/api/v1/incidents", get(routes::read::list_incidents))
        .route(
            "/api/v1/incidents/{id}",
            get(routes::incidents::get_incident),
        )
        .route("/api/v1/incidents/stream", get(routes::incidents::stream))
        .route("/api/v1/agents", get(routes::agents::list))
        .route("/api/v1/analyzers", get(routes::read::list_analyzers))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/openapi.json", get(routes::system::openapi))
        .route("/api/v1/scripts", get(routes::scripts::list_scripts))
        .route("/api/v1/scripts/{name}", get(routes::scripts::get_script))
        .route("/api/v1/lists", get(routes::scripts::get_lists))
        .route("/api/v1/files/{sha256}", get(routes::files::get_file))
        .route("/api/v1/files/labels", get(routes::files::list_labels))
        .route(
            "/api/v1/network/connections",
            get(routes::network::connections),
        )
        .route("/api/v1/network/series", get(routes::network::series))
        .route("/api/v1/network/status", get(routes::network::status))
        .route("/api/v1/network/models", get(routes::network::models))
        .route("/api/v1/logs/status", get(routes::logs::status))
        .route("/api/v1/logs/templates", get(routes::logs::templates))
        .route("/api/v1/logs/models", get(routes::logs::models))
        .route("/api/v1/reports", get(routes::triage::list_reports))
        .route("/api/v1/reports/{id}", get(routes::triage::get_report))
        .route("/api/v1/assets", get(routes::triage::list_assets))
        .route("/api/v1/assets/{id}", get(routes::triage::get_asset))
        .route("/api/v1/kb/search", get(routes::triage::kb_search))
        .route("/api/v1/activity", get(routes::read::activity))
        .route("/api/v1/sigma/rules", get(sigma::rules))
        // Triage reads stored events and incidents through its tools: viewers and admins
        // only, never agents (issue 22).
        .route(
            "/api/v1/triage",
            limited(
                post(routes::triage::triage),
                &adm,
                routes::triage::TRIAGE_BODY_LIMIT,
            ),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_viewer,
        ));

    let admin = Router::new()
        .route(
            "/api/v1/keys",
            get(routes::keys::list_keys).post(routes::keys::create_key),
        )
        .route("/api/v1/keys/{id}", delete(routes::keys::revoke_key))
        .route("/api/v1/yara/reload", post(routes::files::reload_yara))
        .route("/api/v1/sigma/reload", post(sigma::reload))
        .route(
            "/api/v1/files/{sha256}/label",
            post(routes::files::label_file),
        )
        .route("/api/v1/files/dataset.csv", get(routes::files::dataset_csv))
        .route(
            "/api/v1/network/models/{version}/activate",
            post(routes::network::activate),
        )
        .route("/api/v1/network/train", post(routes::network::train))
        .route(
            "/api/v1/incidents/{id}",
            axum::routing::patch(routes::incidents::patch_incident),
        )
        .route(
            "/api/v1/deliveries",
            get(routes::incidents::list_deliveries),
        )
        .route(
            "/api/v1/logs/models/{version}/activate",
            post(routes::logs::activate),
        )
        .route(
            "/api/v1/assets/{id}",
            put(routes::triage::put_asset).delete(routes::triage::delete_asset),
        )
        .route_layer(group_guard(JSON_BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT));

    let content = Router::new()
        .route("/api/v1/scripts", post(routes::scripts::create_script))
        .route(
            "/api/v1/scripts/{name}",
            put(routes::scripts::update_script).delete(routes::scripts::delete_script),
        )
        .route(
            "/api/v1/scripts/{name}/enable",
            post(routes::scripts::enable_script),
        )
        .route(
            "/api/v1/scripts/{name}/disable",
            post(routes::scripts::disable_script),
        )
        .route(
            "/api/v1/scripts/{name}/rollback",
            post(routes::scripts::rollback_script),
        )
        .route("/api/v1/scripts/trial", post(routes::scripts::trial_script))
        .route("/api/v1/lists/{name}", post(routes::scripts::put_list))
        .route("/api/v1/logs/train", post(routes::logs::train))
        .route_layer(group_guard(cfg.max_bulk_bytes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .layer(DefaultBodyLimit::max(cfg.max_bulk_bytes));

    let any_role = Router::new()
        .route("/api/v1/me", get(routes::system::me))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_credential,
        ));

    let open = Router::new()
        .route("/", get(console::index))
        .route("/console/{file}", get(console::file))
        .route("/api/v1/health", get(routes::system::health))
        .route("/metrics", get(routes::system::metrics))
        .route("/docs", get(routes::system::docs));

    Router::new()
        .merge(ingest)
        .merge(read)
        .merge(admin)
        .merge(content)
        .merge(any_role)
        .merge(open)
        .fallback(routes::system::not_found)
        .method_not_allowed_fallback(routes::system::method_not_allowed)
        .layer(middleware::from_fn_with_state(adm, admission::admit))
        .layer(middleware::from_fn(telemetry::record_http))
        .layer(middleware::from_fn_with_state(access_log, access::record))
        .with_state(state)
}

/// The routes the server answers, as `(method, path template)`; the OpenAPI document must
/// describe exactly these (a test checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/events"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/events/bulk"),
    ("get", "/api/v1/events/{id}"),
    ("get", "/api/v1/findings"),
    ("get", "/api/v1/findings/{id}"),
    ("get", "/api/v1/incidents"),
    ("get", "/api/v1/incidents/{id}"),
    ("get", "/api/v1/agents"),
    ("get", "/api/v1/analyzers"),
    ("get", "/api/v1/stream"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/keys"),
    ("post", "/api/v1/keys"),
    ("delete", "/api/v1/keys/{id}"),
    ("post", "/api/v1/analyze"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/agents"),
    ("post", "/api/v1/agents/{id}/heartbeat"),
    ("get", "/api/v1/scripts"),
    ("post", "/api/v1/scripts"),
    ("get", "/api/v1/scripts/{name}"),
    ("put", "/api/v1/scripts/{name}"),
    ("delete", "/api/v1/scripts/{name}"),
    ("post", "/api/v1/scripts/{name}/enable"),
    ("post", "/api/v1/scripts/{name}/disable"),
    ("post", "/api/v1/scripts/{name}/rollback"),
    ("get", "/api/v1/lists"),
    ("post", "/api/v1/lists/{name}"),
    ("post", "/api/v1/files"),
    ("get", "/api/v1/files/{sha256}"),
    ("post", "/api/v1/yara/reload"),
    ("post", "/api/v1/files/{sha256}/label"),
    ("post", "/api/v1/files/{sha256}/sandbox"),
    ("get", "/api/v1/files/labels"),
    ("get", "/api/v1/files/dataset.csv"),
    ("post", "/api/v1/network/analyze"),
    ("post", "/api/v1/network/analyze/batch"),
    ("get", "/api/v1/network/stream"),
    ("get", "/api/v1/network/connections"),
    ("get", "/api/v1/network/series"),
    ("get", "/api/v1/network/status"),
    ("get", "/api/v1/network/models"),
    ("post", "/api/v1/network/models/{version}/activate"),
    ("post", "/api/v1/network/train"),
    ("post", "/api/v1/logs/detect"),
    ("get", "/api/v1/logs/status"),
    ("get", "/api/v1/logs/templates"),
    ("get", "/api/v1/logs/models"),
    ("post", "/api/v1/logs/models/{version}/activate"),
    ("post", "/api/v1/logs/train"),
    ("patch", "/api/v1/incidents/{id}"),
    ("get", "/api/v1/incidents/stream"),
    ("get", "/api/v1/deliveries"),
    ("post", "/api/v1/triage"),
    ("get", "/api/v1/reports"),
    ("get", "/api/v1/reports/{id}"),
    ("get", "/api/v1/assets"),
    ("get", "/api/v1/assets/{id}"),
    ("put", "/api/v1/assets/{id}"),
    ("delete", "/api/v1/assets/{id}"),
    ("get", "/api/v1/kb/search"),
    ("post", "/api/v1/evtx"),
    ("get", "/api/v1/sigma/rules"),
    ("post", "/api/v1/sigma/reload"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/activity"),
    ("post", "/api/v1/scripts/trial"),
    ("get", "/api/v1/health"),
    ("get", "/metrics"),
];

/// The OpenAPI 3.1 document of the REST API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");
