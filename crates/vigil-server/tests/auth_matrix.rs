//! Issue 12, the authorization matrix: every route × every kind of credential, each cell
//! asserted exactly.
//!
//! - a route that needs a credential answers `401 unauthorized` (with
//!   `WWW-Authenticate: Bearer realm="vigil"`) to no credential, an unknown `vgl_` key, a
//!   garbage bearer, an expired JWT, a JWT with a bad signature and an `alg: none` JWT;
//! - a valid credential whose role the route does not allow gets `403 forbidden`;
//! - the right role gets past authorization: anything but 401, 403 and 405 (the handler may
//!   still refuse the dummy request with 400, 404 or 503);
//! - the public routes (`/`, `/console/{file}`, `/docs`, `/api/v1/health`, `/metrics`)
//!   answer 200 to everyone and hold no data.
//!
//! [`TABLE`] must list exactly [`vigil_server::ROUTES`] (plus the console and `/docs`), so a
//! new route without an entry fails the test. `cargo test -p vigil-server --test auth_matrix
//! -- --nocapture` prints the matrix as a Markdown table.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use tower::ServiceExt;
use vigil_core::Role;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: answers without a credential.
    Public,
    /// Any valid credential, whatever its role (`require_credential`).
    Any,
    /// `viewer` or `admin` (`require_viewer`).
    Viewer,
    /// `agent` or `admin` (`require_agent`).
    Agent,
    /// `admin` only (`require_admin`).
    Admin,
}

use Need::*;

/// Every route the server answers: (method, path template, what it needs, listed in
/// `vigil_server::ROUTES`). Built from the routers of `vigil_server::app` (`ingest`:
/// agent, `read`: viewer, `admin` and `content`: admin, `any_role`, `open`).
const TABLE: &[(&str, &str, Need, bool)] = &[
    // open
    ("get", "/", Public, false),
    ("get", "/console/{file}", Public, false),
    ("get", "/docs", Public, false),
    ("get", "/api/v1/health", Public, true),
    ("get", "/metrics", Public, true),
    // any_role
    ("get", "/api/v1/me", Any, true),
    // ingest (require_agent)
    ("post", "/api/v1/events", Agent, true),
    ("post", "/api/v1/events/bulk", Agent, true),
    ("post", "/api/v1/agents", Agent, true),
    ("post", "/api/v1/agents/{id}/heartbeat", Agent, true),
    ("get", "/api/v1/jobs/{id}", Agent, true),
    ("post", "/api/v1/files", Agent, true),
    ("post", "/api/v1/files/{sha256}/sandbox", Agent, true),
    ("post", "/api/v1/network/analyze", Agent, true),
    ("post", "/api/v1/network/analyze/batch", Agent, true),
    ("get", "/api/v1/network/stream", Agent, true),
    ("post", "/api/v1/logs/detect", Agent, true),
    ("post", "/api/v1/analyze", Agent, true),
    ("post", "/api/v1/evtx", Agent, true),
    // read (require_viewer); triage reads stored events and incidents through its tools
    ("post", "/api/v1/triage", Viewer, true),
    ("get", "/api/v1/events", Viewer, true),
    ("get", "/api/v1/events/{id}", Viewer, true),
    ("get", "/api/v1/findings", Viewer, true),
    ("get", "/api/v1/findings/{id}", Viewer, true),
    ("get", "/api/v1/incidents", Viewer, true),
    ("get", "/api/v1/incidents/{id}", Viewer, true),
    ("get", "/api/v1/incidents/stream", Viewer, true),
    ("get", "/api/v1/agents", Viewer, true),
    ("get", "/api/v1/analyzers", Viewer, true),
    ("get", "/api/v1/stream", Viewer, true),
    ("get", "/api/v1/openapi.json", Viewer, true),
    ("get", "/api/v1/scripts", Viewer, true),
    ("get", "/api/v1/scripts/{name}", Viewer, true),
    ("get", "/api/v1/lists", Viewer, true),
    ("get", "/api/v1/files/{sha256}", Viewer, true),
    ("get", "/api/v1/files/labels", Viewer, true),
    ("get", "/api/v1/network/connections", Viewer, true),
    ("get", "/api/v1/network/series", Viewer, true),
    ("get", "/api/v1/network/status", Viewer, true),
    ("get", "/api/v1/network/models", Viewer, true),
    ("get", "/api/v1/logs/status", Viewer, true),
    ("get", "/api/v1/logs/templates", Viewer, true),
    ("get", "/api/v1/logs/models", Viewer, true),
    ("get", "/api/v1/reports", Viewer, true),
    ("get", "/api/v1/reports/{id}", Viewer, true),
    ("get", "/api/v1/assets", Viewer, true),
    ("get", "/api/v1/assets/{id}", Viewer, true),
    ("get", "/api/v1/kb/search", Viewer, true),
    ("get", "/api/v1/activity", Viewer, true),
    ("get", "/api/v1/sigma/rules", Viewer, true),
    // admin (require_admin)
    ("get", "/api/v1/keys", Admin, true),
    ("post", "/api/v1/keys", Admin, true),
    ("delete", "/api/v1/keys/{id}", Admin, true),
    ("post", "/api/v1/yara/reload", Admin, true),
    ("post", "/api/v1/sigma/reload", Admin, true),
    ("post", "/api/v1/files/{sha256}/label", Admin, true),
    ("get", "/api/v1/files/dataset.csv", Admin, true),
    (
        "post",
        "/api/v1/network/models/{version}/activate",
        Admin,
        true,
    ),
    ("post", "/api/v1/network/train", Admin, true),
    ("patch", "/api/v1/incidents/{id}", Admin, true),
    ("get", "/api/v1/deliveries", Admin, true),
    (
        "post",
        "/api/v1/logs/models/{version}/activate",
        Admin,
        true,
    ),
    ("put", "/api/v1/assets/{id}", Admin, true),
    ("delete", "/api/v1/assets/{id}", Admin, true),
    // content (require_admin)
    ("post", "/api/v1/scripts", Admin, true),
    ("put", "/api/v1/scripts/{name}", Admin, true),
    ("delete", "/api/v1/scripts/{name}", Admin, true),
    ("post", "/api/v1/scripts/{name}/enable", Admin, true),
    ("post", "/api/v1/scripts/{name}/disable", Admin, true),
    ("post", "/api/v1/scripts/{name}/rollback", Admin, true),
    ("post", "/api/v1/scripts/trial", Admin, true),
    ("post", "/api/v1/lists/{name}", Admin, true),
    ("post", "/api/v1/logs/train", Admin, true),
];

/// The WebSocket routes, which also take `?access_token=` on an upgrade.
const WEBSOCKETS: &[&str] = &[
    "/api/v1/stream",
    "/api/v1/incidents/stream",
    "/api/v1/network/stream",
];

/// A concrete URI for a template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "x")
        .replace("{sha256}", &"0".repeat(64))
        .replace("{name}", "x")
        .replace("{version}", "1")
        .replace("{file}", "app.js")
}

/// One column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cred {
    /// No `Authorization` header.
    None,
    /// A well-formed but unknown API key.
    RandomKey,
    /// A bearer that is neither an API key nor a JWT.
    Garbage,
    /// An admin JWT that expired an hour ago.
    Expired,
    /// An admin JWT signed with another secret.
    BadSignature,
    /// An admin JWT with `alg: none` and no signature.
    AlgNone,
    /// The harness's API key of that role.
    Key(Role),
    /// A valid HS256 JWT of that role.
    Jwt(Role),
}

const CREDS: &[Cred] = &[
    Cred::None,
    Cred::RandomKey,
    Cred::Garbage,
    Cred::Expired,
    Cred::BadSignature,
    Cred::AlgNone,
    Cred::Key(Role::Viewer),
    Cred::Key(Role::Agent),
    Cred::Key(Role::Admin),
    Cred::Jwt(Role::Viewer),
    Cred::Jwt(Role::Agent),
    Cred::Jwt(Role::Admin),
];

impl Cred {
    fn label(self) -> &'static str {
        match self {
            Cred::None => "none",
            Cred::RandomKey => "vgl_?",
            Cred::Garbage => "garbage",
            Cred::Expired => "jwt exp",
            Cred::BadSignature => "jwt sig",
            Cred::AlgNone => "jwt none",
            Cred::Key(Role::Viewer) => "viewer",
            Cred::Key(Role::Agent) => "agent",
            Cred::Key(Role::Admin) => "admin",
            Cred::Jwt(Role::Viewer) => "jwt viewer",
            Cred::Jwt(Role::Agent) => "jwt agent",
            Cred::Jwt(Role::Admin) => "jwt admin",
        }
    }

    /// The role of a valid credential; `None` for an invalid or missing one.
    fn role(self) -> Option<Role> {
        match self {
            Cred::Key(r) | Cred::Jwt(r) => Some(r),
            _ => None,
        }
    }
}

/// What a cell must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exactly this status.
    Exactly(StatusCode),
    /// Past authorization: anything but 401, 403 and 405.
    Allowed,
}

fn expect(need: Need, cred: Cred) -> Expect {
    let Some(role) = cred.role() else {
        return match need {
            Public => Expect::Exactly(StatusCode::OK),
            _ => Expect::Exactly(StatusCode::UNAUTHORIZED),
        };
    };
    let allowed = match need {
        Public | Any => true,
        Viewer => role.allows(Role::Viewer),
        Agent => role.allows(Role::Agent),
        Admin => role.allows(Role::Admin),
    };
    match (need, allowed) {
        (Public, _) => Expect::Exactly(StatusCode::OK),
        (_, true) => Expect::Allowed,
        (_, false) => Expect::Exactly(StatusCode::FORBIDDEN),
    }
}

/// The tokens of every column.
struct Tokens {
    random_key: String,
    garbage: String,
    expired: String,
    bad_signature: String,
    alg_none: String,
    keys: [(Role, String); 3],
    jwts: [(Role, String); 3],
}

impl Tokens {
    fn new(h: &Harness) -> Tokens {
        let admin = jwt("admin", 600, JWT_SECRET);
        // `{"alg":"none","typ":"JWT"}`, the admin claims, an empty signature.
        let claims = admin.split('.').nth(1).unwrap();
        let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
        let (random_key, _) = vigil_server::generate_api_key("never stored", Role::Admin);
        Tokens {
            random_key,
            garbage: "not-a-token!".into(),
            expired: jwt("admin", -3600, JWT_SECRET),
            bad_signature: jwt("admin", 600, "another-secret-another-secret-another-secret"),
            alg_none,
            keys: [
                (Role::Viewer, h.viewer.clone()),
                (Role::Agent, h.agent.clone()),
                (Role::Admin, h.admin.clone()),
            ],
            jwts: [
                (Role::Viewer, jwt("viewer", 600, JWT_SECRET)),
                (Role::Agent, jwt("agent", 600, JWT_SECRET)),
                (Role::Admin, admin),
            ],
        }
    }

    fn get(&self, cred: Cred) -> Option<&str> {
        match cred {
            Cred::None => None,
            Cred::RandomKey => Some(&self.random_key),
            Cred::Garbage => Some(&self.garbage),
            Cred::Expired => Some(&self.expired),
            Cred::BadSignature => Some(&self.bad_signature),
            Cred::AlgNone => Some(&self.alg_none),
            Cred::Key(r) => of(&self.keys, r),
            Cred::Jwt(r) => of(&self.jwts, r),
        }
    }

    /// Every secret a public answer must never show.
    fn secrets(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.keys.iter().map(|(_, k)| k.as_str()).collect();
        all.extend(self.jwts.iter().map(|(_, k)| k.as_str()));
        all.push(JWT_SECRET);
        all
    }
}

/// The token of `role` in `list`.
fn of(list: &[(Role, String); 3], role: Role) -> Option<&str> {
    list.iter()
        .find(|(r, _)| *r == role)
        .map(|(_, t)| t.as_str())
}

fn jwt(role: &str, exp_offset: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    encode(
        &Header::default(),
        &json!({"sub": "alice", "role": role, "exp": now + exp_offset}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

/// Sends one request: `Authorization: Bearer <token>` when given, `extra` headers, and
/// `{}` as a JSON body on methods that carry one.
async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let method = method.to_uppercase();
    let mut req = Request::builder().method(method.as_str()).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let body = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    } else {
        Body::empty()
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

/// Checks one cell; returns what is wrong with it, if anything.
fn check(answer: &Answer, want: Expect, token: Option<&str>) -> Option<String> {
    let code = answer.body["error"]["code"].as_str().unwrap_or("");
    let www = answer
        .headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("<not ascii>").to_string());
    match want {
        Expect::Exactly(s) if answer.status != s => {
            return Some(format!("want {s}, got {}: {}", answer.status, answer.text));
        }
        Expect::Exactly(StatusCode::UNAUTHORIZED) => {
            if code != "unauthorized" {
                return Some(format!("401 with code `{code}`: {}", answer.text));
            }
            if www.as_deref() != Some("Bearer realm=\"vigil\"") {
                return Some(format!("401 with WWW-Authenticate {www:?}"));
            }
        }
        Expect::Exactly(StatusCode::FORBIDDEN) => {
            if code != "forbidden" {
                return Some(format!("403 with code `{code}`: {}", answer.text));
            }
            if www.is_some() {
                return Some(format!("403 with WWW-Authenticate {www:?}"));
            }
        }
        Expect::Exactly(_) => {}
        Expect::Allowed => {
            let s = answer.status;
            if s == StatusCode::UNAUTHORIZED
                || s == StatusCode::FORBIDDEN
                || s == StatusCode::METHOD_NOT_ALLOWED
                || (s == StatusCode::NOT_FOUND && answer.text.contains("no route"))
            {
                return Some(format!("want past authorization, got {s}: {}", answer.text));
            }
        }
    }
    if matches!(
        answer.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) && let Some(t) = token
        && answer.text.contains(t)
    {
        return Some("the refusal echoes the credential".into());
    }
    None
}

fn markdown_table(rows: &[(String, Vec<u16>)]) -> String {
    let mut out = String::new();
    let width = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(5);
    let _ = write!(out, "| {:width$} |", "route");
    for c in CREDS {
        let _ = write!(out, " {} |", c.label());
    }
    let _ = write!(out, "\n|{}|", "-".repeat(width + 2));
    for c in CREDS {
        let _ = write!(out, "{}:|", "-".repeat(c.label().len() + 1));
    }
    out.push('\n');
    for (route, statuses) in rows {
        let _ = write!(out, "| {route:width$} |");
        for (c, s) in CREDS.iter().zip(statuses) {
            let _ = write!(out, " {s:>w$} |", w = c.label().len());
        }
        out.push('\n');
    }
    out
}

const UPGRADE: &[(&str, &str)] = &[
    ("connection", "upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

#[test]
fn the_table_lists_exactly_the_served_routes() {
    let mut seen = BTreeSet::new();
    for (m, p, _, _) in TABLE {
        assert!(seen.insert((*m, *p)), "{m} {p} is in the table twice");
    }
    let table: BTreeSet<(&str, &str)> = TABLE
        .iter()
        .filter(|(.., listed)| *listed)
        .map(|(m, p, ..)| (*m, *p))
        .collect();
    let served: BTreeSet<(&str, &str)> = vigil_server::ROUTES.iter().copied().collect();
    let missing: Vec<_> = served.difference(&table).collect();
    let stale: Vec<_> = table.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in the auth matrix (add them to TABLE with the role they \
         need): {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "TABLE entries marked as in ROUTES that ROUTES does not list: {stale:?}"
    );
    for (m, p, need, listed) in TABLE {
        assert!(
            *listed || *need == Public,
            "{m} {p}: only public pages may be outside ROUTES"
        );
    }
    for ws in WEBSOCKETS {
        assert!(
            TABLE.iter().any(|(m, p, ..)| *m == "get" && p == ws),
            "{ws}"
        );
    }
}

/// The OpenAPI document states the same role as the matrix for every route, so the
/// reference cannot drift from the routers.
#[test]
fn openapi_states_the_role_each_route_needs() {
    let doc: Value = serde_json::from_str(vigil_server::OPENAPI_JSON).unwrap();
    let mut wrong = Vec::new();
    for (method, path, need, listed) in TABLE {
        if !listed {
            continue;
        }
        let text = doc["paths"][*path][*method]["description"]
            .as_str()
            .unwrap_or_default();
        let ok = match need {
            Public => text.contains("No credential needed"),
            Any => text.contains("Any valid credential"),
            Viewer => text.contains("Requires the `viewer` role"),
            Agent => text.contains("Requires the `agent` role"),
            Admin => text.contains("Requires the `admin` role"),
        };
        if !ok {
            wrong.push(format!("{method} {path} needs {need:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the OpenAPI description does not state the role: {wrong:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_with_every_credential() {
    // A real recorder, so that `/metrics` renders what the requests left in it.
    let metrics = vigil_server::telemetry::install_recorder().ok();
    let mut h = harness().await;
    h.state.metrics = metrics;
    let app = vigil_server::app(h.state.clone());
    let tokens = Tokens::new(&h);

    // Data that public answers must not show: an event (and its finding), and an id in
    // request paths (which `/metrics` must count by template, not by path).
    let marker = format!("auth-matrix-marker-{}", &tokens.random_key[4..16]);
    let r = h
        .call(
            "POST",
            "/api/v1/events",
            Some(&h.agent),
            json!({"message": format!("alert {marker}"), "host.name": marker}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["ids"][0].as_str().unwrap().to_string();
    for uri in [
        format!("/api/v1/events/{id}"),
        format!("/api/v1/events/{marker}"),
        format!("/nowhere/{marker}"),
    ] {
        let _ = send(&app, "GET", &uri, Some(&h.viewer), &[]).await;
    }

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (method, path, need, _) in TABLE {
        let uri = concrete(path);
        let mut statuses = Vec::new();
        for cred in CREDS {
            let token = tokens.get(*cred);
            let answer = send(&app, method, &uri, token, &[]).await;
            statuses.push(answer.status.as_u16());
            if let Some(why) = check(&answer, expect(*need, *cred), token) {
                failures.push(format!(
                    "{} {path} with {}: {why}",
                    method.to_uppercase(),
                    cred.label()
                ));
            }
            if *path == "/api/v1/me" && answer.status == StatusCode::OK {
                assert_eq!(
                    answer.body["role"],
                    cred.role().unwrap().as_str(),
                    "{}",
                    answer.text
                );
            }
            if *need == Public {
                for secret in tokens.secrets().into_iter().chain([marker.as_str()]) {
                    if answer.text.contains(secret) {
                        failures.push(format!("{path} with {} shows data: {secret}", cred.label()));
                    }
                }
            }
        }
        rows.push((format!("{} {path}", method.to_uppercase()), statuses));
    }
    println!(
        "\nAuthorization matrix (status per route and credential; `vgl_?` an unknown API \
         key, `garbage` a bearer that is no token, `jwt exp` an expired admin JWT, `jwt \
         sig` an admin JWT signed with another secret, `jwt none` an admin JWT with `alg: \
         none`):\n\n{}",
        markdown_table(&rows)
    );
    assert!(
        failures.is_empty(),
        "{} cells are wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // What the public answers are.
    let r = send(&app, "GET", "/api/v1/health", None, &[]).await;
    let keys: BTreeSet<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["status", "version", "ingest_queue"]),
        "{}",
        r.text
    );
    for (uri, content_type) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/docs", "text/html"),
        ("/metrics", "text/plain"),
    ] {
        let r = send(&app, "GET", uri, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        let ct = r.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with(content_type), "{uri}: {ct}");
        assert!(!r.text.contains(&marker), "{uri} shows stored data");
        assert!(!r.text.contains(&id), "{uri} shows an event id");
        assert!(!r.text.contains("alice"), "{uri} shows a JWT subject");
    }
    if h.state.metrics.is_some() {
        // The recorder is this process's: requests were counted by route template.
        let r = send(&app, "GET", "/metrics", None, &[]).await;
        assert!(
            r.text.contains("route=\"/api/v1/events/{id}\""),
            "{}",
            r.text
        );
    }
}

/// Over a real socket: the WebSocket routes take the credential in the header or as
/// `?access_token=`; an upgrade that passes authorization answers 101, and refusals are
/// the same 401/403 as elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_take_the_token_in_the_query_or_the_header() {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
    let mut h = harness().await;
    let incidents = vigil_respond::IncidentService::start(
        vigil_respond::CorrelationConfig::default(),
        h.state.store.clone(),
        None,
    )
    .await
    .unwrap();
    h.state.incidents = Some(incidents);
    let net = vigil_server::network::NetService::start(
        vigil_net::NetConfig {
            auto_train_after: 0,
            retrain_hours: 0,
            ..Default::default()
        },
        h.state.store.clone(),
        &h.state.pipeline,
    )
    .unwrap();
    h.state.network = Some(net);
    let tokens = Tokens::new(&h);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = vigil_server::app(h.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for path in WEBSOCKETS {
        let need = TABLE
            .iter()
            .find(|(m, p, ..)| *m == "get" && p == path)
            .unwrap()
            .2;
        for in_query in [true, false] {
            let mut statuses = Vec::new();
            for cred in CREDS {
                let token = tokens.get(*cred);
                let mut url = format!("ws://{addr}{path}");
                if in_query && let Some(t) = token {
                    url = format!("{url}?access_token={t}");
                }
                let mut req = url.into_client_request().unwrap();
                if !in_query && let Some(t) = token {
                    req.headers_mut()
                        .insert("authorization", format!("Bearer {t}").parse().unwrap());
                }
                let status = match tokio_tungstenite::connect_async(req).await {
                    Ok((mut ws, resp)) => {
                        let _ = ws.close(None).await;
                        resp.status()
                    }
                    Err(tungstenite::Error::Http(resp)) => resp.status(),
                    Err(e) => panic!("{path}: {e}"),
                };
                statuses.push(status.as_u16());
                let ok = match expect(need, *cred) {
                    Expect::Exactly(s) => status == s,
                    Expect::Allowed => status == StatusCode::SWITCHING_PROTOCOLS,
                };
                if !ok {
                    failures.push(format!(
                        "{path} ({}) with {}: got {status}",
                        if in_query { "query" } else { "header" },
                        cred.label()
                    ));
                }
            }
            let form = if in_query { "?access_token=" } else { "header" };
            rows.push((format!("WS {path} {form}"), statuses));
        }
    }
    println!(
        "\nWebSocket upgrades over a socket (101: upgraded):\n\n{}",
        markdown_table(&rows)
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `?access_token=` is read only on a request that says `Upgrade: websocket`: on a plain
/// request to any route (a WebSocket route included) it is no credential at all. And a
/// header credential wins over the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_token_is_ignored_without_a_websocket_upgrade() {
    let h = harness().await;
    let app = vigil_server::app(h.state.clone());
    let mut failures = Vec::new();
    for (method, path, need, _) in TABLE {
        if *need == Public {
            continue;
        }
        let uri = format!("{}?access_token={}", concrete(path), h.admin);
        let r = send(&app, method, &uri, None, &[]).await;
        let want = Expect::Exactly(StatusCode::UNAUTHORIZED);
        if let Some(why) = check(&r, want, Some(&h.admin)) {
            failures.push(format!("{} {path}: {why}", method.to_uppercase()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let uri = format!("/api/v1/stream?access_token={}", h.viewer);
    let r = send(&app, "GET", &uri, Some("vgl_wrong"), UPGRADE).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

/// The documented rule (docs/api.md: "the stream alone also accepts `?access_token=`";
/// openapi.json: "Only the WebSocket upgrade of `GET /api/v1/stream` may carry the token as
/// the `access_token` query parameter"): a query token is refused on a route that is no
/// WebSocket, even when the request carries `Upgrade: websocket`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_token_is_refused_on_routes_that_are_no_websocket() {
    let h = harness().await;
    let app = vigil_server::app(h.state.clone());
    let mut accepted = Vec::new();
    for (method, path, need, _) in TABLE {
        if *need == Public || WEBSOCKETS.contains(path) {
            continue;
        }
        let uri = format!("{}?access_token={}", concrete(path), h.admin);
        let r = send(&app, method, &uri, None, UPGRADE).await;
        if r.status != StatusCode::UNAUTHORIZED {
            accepted.push(format!("{} {path}: {}", method.to_uppercase(), r.status));
        }
    }
    assert!(
        accepted.is_empty(),
        "a query token was accepted off the streams ({} routes):\n{}",
        accepted.len(),
        accepted.join("\n")
    );
}

/// Paths that look like a protected route but are not it never reach a handler without a
/// credential: no normalisation (case, slashes, dot segments, percent-encoding) opens a
/// way around the role checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalike_paths_do_not_bypass_authentication() {
    let h = harness().await;
    let app = vigil_server::app(h.state.clone());
    let mut seen = Vec::new();
    for (method, uri) in [
        ("GET", "/api/v1/keys"),
        ("HEAD", "/api/v1/keys"),
        ("GET", "/api/v1/keys/"),
        ("GET", "//api/v1/keys"),
        ("GET", "/api/v1//keys"),
        ("GET", "/API/v1/keys"),
        ("GET", "/api/v1/Keys"),
        ("GET", "/api/v1/%6beys"),
        ("GET", "/api/v1/keys%2F"),
        ("GET", "/api/v1/./keys"),
        ("GET", "/api/v1/x/../keys"),
        ("GET", "/api/v1/keys?access_token="),
        ("GET", "/api/v1/keys;x"),
        ("OPTIONS", "/api/v1/keys"),
        ("POST", "/api/v1/keys/x"),
        ("GET", "/api/v1/files/dataset.csv"),
        ("GET", "/api/v1/files/DATASET.CSV"),
        ("GET", "/console/../api/v1/keys"),
        ("GET", "/console/%2e%2e/api/v1/keys"),
    ] {
        let r = send(&app, method, uri, None, &[]).await;
        seen.push(format!("{method} {uri} -> {}", r.status.as_u16()));
        assert!(
            matches!(
                r.status,
                StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{method} {uri}: {} {}",
            r.status,
            r.text
        );
        assert!(!r.text.contains("\"keys\""), "{method} {uri}: {}", r.text);
    }
    println!(
        "\nLook-alike paths without a credential:\n{}",
        seen.join("\n")
    );
}
