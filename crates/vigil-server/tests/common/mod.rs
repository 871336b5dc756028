//! Shared set-up: a real SQLite store in a temp dir, the pipeline, keys for each role.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;
use vigil_core::{Event, FieldLookup, Finding, Role};
use vigil_pipeline::{Analyzer, AnalyzerRegistry, Interest, Pipeline, PipelineConfig};
use vigil_server::{AppState, AuthConfig, Authenticator, ServerConfig};
use vigil_store::{SqliteOptions, SqliteStore, Store};

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Emits a finding for every event whose `message` starts with `alert`, scored by `score`.
pub struct AlertAnalyzer;

impl Analyzer for AlertAnalyzer {
    fn name(&self) -> &str {
        "test:alert"
    }
    fn interest(&self) -> Interest {
        Interest::All
    }
    fn analyze(&self, event: &Event) -> Vec<Finding> {
        match event.get_str("message") {
            Some(m) if m.starts_with("alert") => {
                let score = event.get_f64("score").unwrap_or(50.0);
                vec![Finding::new(self.name(), score, m.to_string()).about(event)]
            }
            _ => vec![],
        }
    }
}

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub state: AppState,
    pub admin: String,
    pub agent: String,
    pub viewer: String,
    /// The pipeline's analyzers (tests add their own).
    pub registry: Arc<AnalyzerRegistry>,
}

pub async fn harness_with(
    server: ServerConfig,
    pipeline: PipelineConfig,
    auth: AuthConfig,
) -> Harness {
    harness_full(
        server,
        pipeline,
        auth,
        vigil_script::ScriptLimits::default(),
    )
    .await
}

/// A harness whose scripts run under `limits` (say, with Python scripts enabled).
#[allow(dead_code)]
pub async fn harness_scripts(limits: vigil_script::ScriptLimits) -> Harness {
    harness_full(
        ServerConfig::default(),
        PipelineConfig::default(),
        AuthConfig::default(),
        limits,
    )
    .await
}

pub async fn harness_full(
    server: ServerConfig,
    pipeline: PipelineConfig,
    auth: AuthConfig,
    limits: vigil_script::ScriptLimits,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let scripts = Arc::new(vigil_script::ScriptSet::new(Arc::new(
        vigil_script::ScriptEngine::new(limits, vigil_script::Lists::default()),
    )));
    let registry = Arc::new(AnalyzerRegistry::new());
    registry.register(Arc::new(AlertAnalyzer));
    registry.register(Arc::new(vigil_script::ScriptAnalyzer(scripts.clone())));
    let (pipe, _tasks) = Pipeline::start(store.clone(), registry.clone(), &pipeline);
    vigil_server::spawn_disable_persistence(store.clone(), &scripts);
    let mut keys = Vec::new();
    for role in [Role::Admin, Role::Agent, Role::Viewer] {
        let (key, record) = vigil_server::generate_api_key(role.as_str(), role);
        store.create_api_key(&record).await.unwrap();
        keys.push(key);
    }
    let triage_cfg = vigil_triage::TriageConfig::default();
    let agent = vigil_triage::build(
        &triage_cfg,
        dir.path(),
        store.clone(),
        vec![Arc::new(vigil_server::triage::RunScript(scripts.clone()))],
    )
    .unwrap();
    let triage = vigil_server::triage::TriageService::new(
        agent,
        store.clone(),
        dir.path().join("reports"),
        triage_cfg,
    );
    let state = AppState {
        auth: Arc::new(Authenticator::new(&auth, store.clone()).unwrap()),
        store,
        pipeline: pipe,
        metrics: None,
        streams: server.stream_slots(),
        config: Arc::new(server),
        scripts,
        jobs: Default::default(),
        files: None,
        network: None,
        logs: None,
        incidents: None,
        triage: Some(triage),
        sigma: None,
    };
    Harness {
        _dir: dir,
        state,
        admin: keys[0].clone(),
        agent: keys[1].clone(),
        viewer: keys[2].clone(),
        registry,
    }
}

pub async fn harness() -> Harness {
    harness_with(
        ServerConfig::default(),
        PipelineConfig::default(),
        AuthConfig {
            jwt_hs256_secret: Some(JWT_SECRET.into()),
            ..Default::default()
        },
    )
    .await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Harness {
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        let resp = vigil_server::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }
}

/// Asserts the standard error body and returns its code.
pub fn error_code(r: &Reply) -> String {
    let err = &r.body["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {}",
        r.text
    );
    err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {}", r.text))
        .to_string()
}

impl Harness {
    /// Polls `GET {path}` (as a viewer) for up to 5 s until the array at `key` is not
    /// empty; returns it (empty if it never filled).
    pub async fn poll_list(&self, path: &str, key: &str) -> Vec<Value> {
        let mut found = Vec::new();
        for _ in 0..100 {
            let r = self.call("GET", path, Some(&self.viewer), Vec::new()).await;
            found = r.body[key].as_array().cloned().unwrap_or_default();
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        found
    }
}
