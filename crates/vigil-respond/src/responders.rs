//! Responders: incidents delivered to Slack, generic webhooks and Shuffle SOAR along
//! configured routes, through a durable outbox in the store.
//!
//! When an incident opens or changes, every route it matches gets one delivery queued in
//! the store (`(route, incident, "opened")` is unique, so an incident reaches a route once,
//! the first time it matches). A worker sends due deliveries with a timeout, a per-route
//! rate limit, and retries with exponential backoff and jitter; a delivery that fails
//! `max_attempts` times, or that the receiver refuses outright (a 4xx other than 408/429),
//! becomes a dead letter. Receivers see the delivery id in `X-Vigil-Delivery` and can use
//! it to drop a repeat (a crash between sending and recording can repeat one delivery).
//!
//! Targets are guarded (issue 12, [`vigil_core::net_guard`]): a route's URL or SMTP host
//! that is, or resolves to, an internal address (loopback, private, link-local, …) is
//! refused unless `[responders] allow_internal` or `internal_allow` allows it: at start
//! for literal addresses and reserved names, and at each connection for DNS answers (a
//! delivery refused then is a dead letter that says why). Redirects are never followed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Mutex;
use vigil_core::net_guard::{Guard, find_refusal};
use vigil_core::{Incident, IncidentStatus, Severity};
use vigil_store::{Delivery, DeliveryState, Store, StoreError};

/// The kinds of responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// Any HTTP endpoint: the incident as JSON, signed with HMAC-SHA256.
    Webhook,
    /// Shuffle SOAR: a workflow's webhook trigger, or its execute API (`…/execute`).
    Shuffle,
    /// Email over SMTP (STARTTLS or TLS, with authentication): plain text and HTML.
    Email,
    /// A Kafka topic (the `[kafka]` brokers): the incident as JSON, keyed by host.
    Kafka,
}

/// How an email route secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on localhost only).
    None,
}

/// An email route's SMTP settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server.
    pub host: String,
    /// Port (587 for STARTTLS, 465 for TLS).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file of extra trusted roots (a private CA).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// SMTP user (`env:NAME` reads it from the environment).
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password (`env:NAME` reads it from the environment).
    #[serde(default)]
    pub password: Option<String>,
    /// Sender address, e.g. `Vigil <vigil@example.org>`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

fn default_smtp_port() -> u16 {
    587
}

/// One route: which incidents go where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name (`vigil notify test NAME`, metrics, dead letters).
    pub name: String,
    /// Where to.
    pub kind: RouteKind,
    /// The endpoint of an HTTP route. `env:NAME` reads it from the environment (Slack
    /// webhook URLs are secrets).
    #[serde(default)]
    pub url: String,
    /// SMTP settings of an email route.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// The topic of a Kafka route.
    #[serde(default)]
    pub topic: Option<String>,
    /// Webhook: the HMAC-SHA256 key; Shuffle: the API key sent as a bearer token (needed by
    /// the execute API). `env:NAME` reads it from the environment.
    #[serde(default)]
    pub secret: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Weakest incident sent.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Only incidents holding a finding of one of these analyzers (names or prefixes ending
    /// in `*`); empty: any.
    #[serde(default)]
    pub analyzers: Vec<String>,
    /// Only incidents on these hosts (names, or prefixes ending in `*`); empty: any.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only incidents on hosts whose agent registered one of these tags; empty: any.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seconds an attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts before a delivery becomes a dead letter.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubled each attempt (±50% jitter), capped at
    /// `max_backoff_secs`.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// Longest retry delay.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// Deliveries per minute at most (0: no limit).
    #[serde(default = "default_rate")]
    pub per_minute: u32,
}

fn default_min_severity() -> Severity {
    Severity::Medium
}
fn default_timeout() -> u64 {
    10
}
fn default_attempts() -> u32 {
    8
}
fn default_backoff() -> u64 {
    1000
}
fn default_max_backoff() -> u64 {
    600
}
fn default_rate() -> u32 {
    30
}

/// `[responders]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RespondConfig {
    /// Where analysts open Vigil, for links back to incidents.
    pub public_url: String,
    /// Milliseconds between looks at the outbox.
    pub poll_ms: u64,
    /// Whether routes may send to internal addresses: loopback, private, link-local,
    /// carrier-grade NAT, unique-local, documentation… (`vigil_core::net_guard`), whether
    /// the URL or SMTP host names one literally, is a reserved name (`localhost`,
    /// `*.internal`, …) or resolves to one. Off by default, so that a route's URL cannot
    /// be turned into a request to an internal service (SSRF). Cloud metadata
    /// (169.254.0.0/16, …) stays refused even when on.
    pub allow_internal: bool,
    /// Internal targets allowed all the same: addresses, CIDR blocks (`10.1.2.0/24`), host
    /// names (`shuffle.corp`, whatever it resolves to) or `*.suffix`. Only a CIDR block
    /// opens a cloud metadata address.
    pub internal_allow: Vec<String>,
    /// The routes.
    pub routes: Vec<RouteConfig>,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            public_url: "http://127.0.0.1:8080".into(),
            poll_ms: 500,
            allow_internal: false,
            internal_allow: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// A configuration mistake, naming the route (empty for the section's own keys).
#[derive(Debug)]
pub struct RouteError {
    /// The route (empty: a `[responders]` key).
    pub route: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.route.is_empty() {
            write!(f, "responders: {}", self.message)
        } else {
            write!(f, "responders.routes `{}`: {}", self.route, self.message)
        }
    }
}

impl std::error::Error for RouteError {}

/// Resolves `env:NAME` from the environment.
fn resolve(value: &str, route: &str, what: &str) -> Result<String, RouteError> {
    match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| RouteError {
            route: route.into(),
            message: format!("{what} names the environment variable {var}, which is not set"),
        }),
        None => Ok(value.to_string()),
    }
}

/// A route ready to send: secrets resolved, client built.
struct Route {
    config: RouteConfig,
    target: Target,
    /// Start times of recent deliveries, for the rate limit.
    recent: std::sync::Mutex<std::collections::VecDeque<Instant>>,
}

/// Where a route sends.
enum Target {
    Http(Box<Http>),
    Email(Box<Email>),
    Kafka {
        topic: String,
        publisher: Arc<dyn Publisher>,
    },
}

/// Why a message could not be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// Whether trying again later may succeed.
    pub retryable: bool,
    /// What happened.
    pub message: String,
}

/// Publishes messages to a log (Kafka); implemented by `vigil-kafka`, so that this crate
/// needs no Kafka client.
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes `payload` to `topic` under `key` with `headers`, and waits for the
    /// broker's acknowledgement.
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), PublishError>;
}

struct Http {
    url: reqwest::Url,
    /// `scheme://host:port`, for messages (a Slack webhook's path is a secret).
    origin: String,
    secret: Option<String>,
    headers: reqwest::header::HeaderMap,
    http: reqwest::Client,
}

struct Email {
    host: String,
    port: u16,
    tls: lettre::transport::smtp::client::Tls,
    timeout: Duration,
    credentials: Option<lettre::transport::smtp::authentication::Credentials>,
    /// Resolves and checks `host` before each connection, which then goes to the checked
    /// address; `None` when `host` is an address (checked at start).
    resolver: Option<vigil_http::GuardedResolver>,
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
}

fn route_error(config: &RouteConfig) -> impl Fn(String) -> RouteError + '_ {
    |message| RouteError {
        route: config.name.clone(),
        message,
    }
}

impl Route {
    fn new(
        config: RouteConfig,
        publisher: Option<&Arc<dyn Publisher>>,
        guard: &Arc<Guard>,
        fixed: &vigil_http::Fixed,
    ) -> Result<Route, RouteError> {
        let err = route_error(&config);
        if config.name.trim().is_empty() {
            return Err(err("the name is empty".into()));
        }
        if config.max_attempts == 0 || config.timeout_secs == 0 {
            return Err(err(
                "max_attempts and timeout_secs must be at least 1".into()
            ));
        }
        let target = match config.kind {
            RouteKind::Email => {
                let Some(email) = &config.email else {
                    return Err(err("an email route needs [responders.routes.email]".into()));
                };
                Target::Email(Box::new(Email::new(email, &config, guard, fixed)?))
            }
            RouteKind::Kafka => {
                let Some(topic) = config.topic.clone().filter(|t| !t.trim().is_empty()) else {
                    return Err(err("a kafka route needs `topic`".into()));
                };
                let Some(publisher) = publisher else {
                    return Err(err(
                        "a kafka route needs Kafka brokers: set [kafka] brokers".into(),
                    ));
                };
                Target::Kafka {
                    topic,
                    publisher: publisher.clone(),
                }
            }
            _ => Target::Http(Box::new(Http::new(&config, guard, fixed)?)),
        };
        drop(err);
        Ok(Route {
            config,
            target,
            recent: Default::default(),
        })
    }
}

impl Email {
    fn new(
        e: &EmailConfig,
        config: &RouteConfig,
        guard: &Arc<Guard>,
        fixed: &vigil_http::Fixed,
    ) -> Result<Email, RouteError> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let err = route_error(config);
        guard
            .check_host(&e.host)
            .map_err(|r| err(format!("email.host smtp://{}:{}: {r}", e.host, e.port)))?;
        let mailbox = |s: &str, what: &str| {
            s.parse::<lettre::message::Mailbox>()
                .map_err(|x| err(format!("email.{what} `{s}` is not an address ({x})")))
        };
        let from = mailbox(&e.from, "from")?;
        if e.to.is_empty() {
            return Err(err("email.to names no recipient".into()));
        }
        let to =
            e.to.iter()
                .map(|t| mailbox(t, "to"))
                .collect::<Result<Vec<_>, _>>()?;
        let params = || {
            let mut b = TlsParameters::builder(e.host.clone());
            if let Some(path) = &e.ca_file {
                let pem = std::fs::read(path).map_err(|x| {
                    err(format!(
                        "email.ca_file {} cannot be read ({x})",
                        path.display()
                    ))
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|x| err(format!("email.ca_file is not a PEM certificate ({x})")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|x| err(format!("cannot set up TLS ({x})")))
        };
        let tls = match e.tls {
            SmtpTls::Starttls => Tls::Required(params()?),
            SmtpTls::Tls => Tls::Wrapper(params()?),
            SmtpTls::None => Tls::None,
        };
        let credentials = match (&e.username, &e.password) {
            (Some(u), Some(p)) => Some(Credentials::new(
                resolve(u, &config.name, "email.username")?,
                resolve(p, &config.name, "email.password")?,
            )),
            (None, None) => None,
            _ => {
                return Err(err("email.username and email.password go together".into()));
            }
        };
        if credentials.is_some() && matches!(e.tls, SmtpTls::None) {
            // Issue 22: AUTH over plain text sends the password in clear to anyone on
            // the path; allowed (a local relay), but never silently.
            tracing::warn!(
                route = %config.name,
                host = %e.host,
                "email.tls = \"none\" with a username and password: the SMTP password crosses the network in clear; use tls = \"starttls\" or \"tls\""
            );
        }
        let literal = e.host.parse::<std::net::IpAddr>().is_ok();
        Ok(Email {
            host: e.host.clone(),
            port: e.port,
            tls,
            timeout: Duration::from_secs(config.timeout_secs),
            credentials,
            resolver: (!literal).then(|| {
                vigil_http::GuardedResolver::new(guard.clone(), e.host.clone(), fixed.clone())
            }),
            from,
            to,
        })
    }

    /// A transport to `server` (the host, or the address it was checked at; TLS still
    /// verifies the certificate against the host name).
    fn transport(&self, server: String) -> lettre::AsyncSmtpTransport<lettre::Tokio1Executor> {
        let mut builder =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(server)
                .port(self.port)
                .tls(self.tls.clone())
                .timeout(Some(self.timeout));
        if let Some(c) = &self.credentials {
            builder = builder.credentials(c.clone());
        }
        builder.build()
    }
}

impl Http {
    fn new(
        config: &RouteConfig,
        guard: &Arc<Guard>,
        fixed: &vigil_http::Fixed,
    ) -> Result<Http, RouteError> {
        let err = route_error(config);
        let url = resolve(&config.url, &config.name, "url")?;
        let url = reqwest::Url::parse(&url).map_err(|e| err(format!("url is not a URL ({e})")))?;
        // Only the origin is named: a Slack webhook's path is a secret.
        let origin = url.origin().ascii_serialization();
        guard
            .check_target(
                url.scheme(),
                !url.username().is_empty() || url.password().is_some(),
                url.host_str(),
            )
            .map_err(|e| err(format!("url {origin}: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let secret = config
            .secret
            .as_deref()
            .map(|s| resolve(s, &config.name, "secret"))
            .transpose()?;
        if config.kind == RouteKind::Webhook && secret.as_deref().is_none_or(str::is_empty) {
            return Err(err(
                "a webhook route needs a secret to sign its requests with".into(),
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| err(format!("header `{k}` is not a header name")))?;
            let value = reqwest::header::HeaderValue::from_str(&resolve(v, &config.name, k)?)
                .map_err(|_| err(format!("header `{k}` has a value that cannot be sent")))?;
            headers.insert(name, value);
        }
        let timeout = Duration::from_secs(config.timeout_secs);
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could carry the signature or the bearer token elsewhere, or
            // lead to an internal address.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(vigil_http::GuardedResolver::new(
                guard.clone(),
                host,
                fixed.clone(),
            )))
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")));
        let http = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build()))
            .map_err(|_| err("no rustls crypto provider is installed".into()))?
            .map_err(|e| err(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            url,
            origin,
            secret,
            headers,
            http,
        })
    }
}

impl Route {
    fn matches(&self, incident: &Incident, analyzers: &[String], host_tags: &[String]) -> bool {
        let c = &self.config;
        let pattern = |p: &String, v: &str| match p.strip_suffix('*') {
            Some(prefix) => v.starts_with(prefix),
            None => v == p,
        };
        incident.severity >= c.min_severity
            && matches!(
                incident.status,
                IncidentStatus::Open | IncidentStatus::Acknowledged
            )
            && (c.analyzers.is_empty()
                || analyzers
                    .iter()
                    .any(|a| c.analyzers.iter().any(|p| pattern(p, a))))
            && (c.hosts.is_empty()
                || incident
                    .host_name
                    .as_deref()
                    .is_some_and(|h| c.hosts.iter().any(|p| pattern(p, h))))
            && (c.tags.is_empty() || c.tags.iter().any(|t| host_tags.contains(t)))
    }

    /// How long to wait before the next delivery may start (zero: now), and if zero,
    /// counts this one.
    fn admit(&self) -> Duration {
        if self.config.per_minute == 0 {
            return Duration::ZERO;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() < self.config.per_minute as usize {
            recent.push_back(now);
            Duration::ZERO
        } else {
            Duration::from_secs(60) - now.duration_since(recent[0])
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.config.backoff_ms as f64 * 2f64.powi(attempts.saturating_sub(1) as i32);
        let jitter = 0.5 + rand::random::<f64>();
        let ms = (base * jitter).min(self.config.max_backoff_secs as f64 * 1000.0);
        Duration::from_millis(ms as u64)
    }
}

/// The body a route sends for a delivery.
pub fn body(kind: RouteKind, delivery: &Delivery, public_url: &str, execute: bool) -> Value {
    let incident = &delivery.payload;
    let id = incident["id"].as_str().unwrap_or_default();
    let link = format!("{}/api/v1/incidents/{id}", public_url.trim_end_matches('/'));
    match kind {
        RouteKind::Slack => {
            let title = incident["title"].as_str().unwrap_or("incident");
            let severity = incident["severity"].as_str().unwrap_or("unknown");
            let fields: Vec<Value> = [
                ("Severity", severity.to_string()),
                (
                    "Score",
                    format!("{:.0}", incident["score"].as_f64().unwrap_or(0.0)),
                ),
                (
                    "Entity",
                    incident["entity"].as_str().unwrap_or("").to_string(),
                ),
                (
                    "Findings",
                    incident["finding_ids"]
                        .as_array()
                        .map_or(0, Vec::len)
                        .to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(&v))}))
            .collect();
            let techniques = techniques(incident);
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text",
                    "text": truncate(&format!("[{}] {title}", severity.to_uppercase()), 150)}}),
                json!({"type": "section", "fields": fields}),
            ];
            if !techniques.is_empty() {
                blocks.push(json!({"type": "context", "elements": [
                    {"type": "mrkdwn", "text": format!("ATT&CK: {}", slack_escape(&techniques))}]}));
            }
            blocks.push(json!({"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Open in Vigil"},
                "url": link}]}));
            json!({
                "text": truncate(&format!("[{severity}] {title}"), 3000),
                "blocks": blocks,
            })
        }
        RouteKind::Webhook | RouteKind::Email | RouteKind::Kafka => json!({
            "delivery_id": delivery.id,
            "kind": delivery.kind,
            "link": link,
            "incident": incident,
        }),
        RouteKind::Shuffle => {
            let event = json!({
                "source": "vigil",
                "delivery_id": delivery.id,
                "kind": delivery.kind,
                "link": link,
                "incident": incident,
            });
            if execute {
                // The execute API takes the workflow's input as a string.
                json!({"execution_argument": event.to_string()})
            } else {
                event
            }
        }
    }
}

/// An incident's ATT&CK techniques, comma-separated.
fn techniques(incident: &Value) -> String {
    incident["techniques"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `sha256=` and the hex HMAC-SHA256 of `timestamp.body` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Accepted (2xx).
    Delivered,
    /// Failed; worth retrying (after at least this long, when the receiver said).
    Retry(String, Option<Duration>),
    /// Refused for good.
    Refused(String),
}

/// Agents' tags by host name.
type HostTags = HashMap<String, Vec<String>>;

/// The responders: routes, the outbox worker, the test sender.
pub struct Responders {
    routes: HashMap<String, Arc<Route>>,
    order: Vec<String>,
    public_url: String,
    poll: Duration,
    store: Arc<dyn Store>,
    /// One worker pass at a time.
    pass: Mutex<()>,
    /// Agents' tags by host name, read from the store at most once a minute.
    tags: Mutex<Option<(Instant, HostTags)>>,
}

impl Responders {
    /// Builds the routes (resolving `env:` secrets). Fails on the first bad route.
    pub fn new(config: RespondConfig, store: Arc<dyn Store>) -> Result<Responders, RouteError> {
        Responders::with_publisher(config, store, None)
    }

    /// [`Responders::new`], with the publisher Kafka routes send through.
    pub fn with_publisher(
        config: RespondConfig,
        store: Arc<dyn Store>,
        publisher: Option<Arc<dyn Publisher>>,
    ) -> Result<Responders, RouteError> {
        Responders::build(config, store, publisher, Default::default())
    }

    /// [`Responders::with_publisher`], resolving the names in `fixed` to its addresses
    /// instead of asking DNS (tests).
    pub(crate) fn build(
        config: RespondConfig,
        store: Arc<dyn Store>,
        publisher: Option<Arc<dyn Publisher>>,
        fixed: vigil_http::Fixed,
    ) -> Result<Responders, RouteError> {
        let guard = Arc::new(
            Guard::new(
                "[responders]",
                config.allow_internal,
                &config.internal_allow,
            )
            .map_err(|message| RouteError {
                route: String::new(),
                message,
            })?,
        );
        let mut routes = HashMap::new();
        let mut order = Vec::new();
        for r in config.routes {
            let name = r.name.clone();
            if routes.contains_key(&name) {
                return Err(RouteError {
                    route: name,
                    message: "the name is used twice".into(),
                });
            }
            routes.insert(
                name.clone(),
                Arc::new(Route::new(r, publisher.as_ref(), &guard, &fixed)?),
            );
            order.push(name);
        }
        Ok(Responders {
            routes,
            order,
            public_url: config.public_url,
            poll: Duration::from_millis(config.poll_ms.max(10)),
            store,
            pass: Mutex::new(()),
            tags: Mutex::new(None),
        })
    }

    /// Route names, in configuration order.
    pub fn routes(&self) -> &[String] {
        &self.order
    }

    /// Queues a delivery on every route the incident matches (once per route and
    /// incident); `analyzers` are its findings' analyzers.
    pub async fn incident_changed(
        &self,
        incident: &Incident,
        analyzers: &[String],
    ) -> Result<usize, StoreError> {
        let host_tags = self.host_tags(incident.host_name.as_deref()).await?;
        let now = vigil_core::now_rfc3339();
        let payload = serde_json::to_value(incident).expect("an incident serialises");
        let deliveries: Vec<Delivery> = self
            .order
            .iter()
            .filter(|name| self.routes[*name].matches(incident, analyzers, &host_tags))
            .map(|name| Delivery {
                id: vigil_core::new_id(),
                route: name.clone(),
                incident_id: incident.id.clone(),
                kind: "opened".into(),
                state: DeliveryState::Pending,
                attempts: 0,
                next_at_ms: chrono::Utc::now().timestamp_millis(),
                created_at: now.clone(),
                updated_at: now.clone(),
                last_error: None,
                payload: payload.clone(),
            })
            .collect();
        if deliveries.is_empty() {
            return Ok(0);
        }
        self.store.enqueue_deliveries(&deliveries).await
    }

    /// The tags the agents on a host registered (only read when a route filters by tag).
    async fn host_tags(&self, host: Option<&str>) -> Result<Vec<String>, StoreError> {
        let Some(host) = host else {
            return Ok(Vec::new());
        };
        if self.routes.values().all(|r| r.config.tags.is_empty()) {
            return Ok(Vec::new());
        }
        let mut cache = self.tags.lock().await;
        let fresh = cache
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(60));
        if !fresh {
            let mut by_host: HashMap<String, Vec<String>> = HashMap::new();
            for a in self.store.list_agents().await? {
                if let Some(h) = a.host_name {
                    by_host.entry(h).or_default().extend(a.tags);
                }
            }
            *cache = Some((Instant::now(), by_host));
        }
        Ok(cache
            .as_ref()
            .and_then(|(_, m)| m.get(host).cloned())
            .unwrap_or_default())
    }

    /// Sends one delivery on its route now (no queue, no retries).
    pub async fn attempt(&self, delivery: &Delivery) -> Attempt {
        let Some(route) = self.routes.get(&delivery.route) else {
            return Attempt::Refused(format!(
                "route `{}` is no longer configured",
                delivery.route
            ));
        };
        send(route, delivery, &self.public_url).await
    }

    /// One pass over the due deliveries; returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let _pass = self.pass.lock().await;
        let now = chrono::Utc::now().timestamp_millis();
        let due = self.store.due_deliveries(now, 200).await?;
        let mut attempted = 0;
        let mut sends = Vec::new();
        for mut d in due {
            let Some(route) = self.routes.get(&d.route).cloned() else {
                d.state = DeliveryState::Dead;
                d.last_error = Some(format!("route `{}` is no longer configured", d.route));
                d.updated_at = vigil_core::now_rfc3339();
                self.store.update_delivery(&d).await?;
                continue;
            };
            let wait = route.admit();
            if !wait.is_zero() {
                metrics::counter!(vigil_core::metric_names::DELIVERIES_RATE_LIMITED,
                    "route" => d.route.clone())
                .increment(1);
                d.next_at_ms = now + wait.as_millis() as i64;
                d.updated_at = vigil_core::now_rfc3339();
                self.store.update_delivery(&d).await?;
                continue;
            }
            attempted += 1;
            let public_url = self.public_url.clone();
            sends.push(async move {
                let outcome = send(&route, &d, &public_url).await;
                (route, d, outcome)
            });
        }
        // Each outcome is recorded as soon as its send ends, not when the slowest of the
        // pass ends: a crash then repeats only the deliveries still in flight.
        let mut sends: futures_util::stream::FuturesUnordered<_> = sends.into_iter().collect();
        while let Some((route, mut d, outcome)) = futures_util::StreamExt::next(&mut sends).await {
            d.attempts += 1;
            d.updated_at = vigil_core::now_rfc3339();
            let label = match &outcome {
                Attempt::Delivered => {
                    d.state = DeliveryState::Delivered;
                    d.last_error = None;
                    "delivered"
                }
                Attempt::Retry(e, after) if d.attempts < route.config.max_attempts => {
                    let wait = route.backoff(d.attempts).max(after.unwrap_or_default());
                    d.next_at_ms = chrono::Utc::now().timestamp_millis() + wait.as_millis() as i64;
                    d.last_error = Some(e.clone());
                    "retry"
                }
                Attempt::Retry(e, _) | Attempt::Refused(e) => {
                    d.state = DeliveryState::Dead;
                    d.last_error = Some(e.clone());
                    tracing::error!(route = %d.route, incident = %d.incident_id,
                        attempts = d.attempts, error = %e, "delivery failed for good: dead letter");
                    "dead"
                }
            };
            metrics::counter!(vigil_core::metric_names::DELIVERIES, "route" => d.route.clone(),
                "outcome" => label)
            .increment(1);
            self.store.update_delivery(&d).await?;
        }
        Ok(attempted)
    }

    /// Runs passes every `poll_ms` until `stop` fires.
    pub fn spawn(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let r = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = r.run_once().await {
                    tracing::error!(error = %e, "the responder outbox cannot be read");
                }
                tokio::select! {
                    _ = tokio::time::sleep(r.poll) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }
}

async fn send(route: &Route, d: &Delivery, public_url: &str) -> Attempt {
    match &route.target {
        Target::Http(http) => send_http(route.config.kind, http, d, public_url).await,
        Target::Email(email) => send_email(email, d, public_url).await,
        Target::Kafka { topic, publisher } => {
            let payload = body(RouteKind::Kafka, d, public_url, false).to_string();
            let key = d.payload["host.name"]
                .as_str()
                .or_else(|| d.payload["host_name"].as_str())
                .or_else(|| d.payload["entity"].as_str())
                .unwrap_or("")
                .to_string();
            let headers = [
                ("vigil-delivery-id", d.id.as_str()),
                ("vigil-kind", d.kind.as_str()),
            ];
            let publish = publisher.publish(topic, &key, &headers, payload.as_bytes());
            match tokio::time::timeout(Duration::from_secs(route.config.timeout_secs), publish)
                .await
            {
                Err(_) => Attempt::Retry("the broker did not acknowledge in time".into(), None),
                Ok(Ok(())) => Attempt::Delivered,
                Ok(Err(e)) if e.retryable => Attempt::Retry(e.message, None),
                Ok(Err(e)) => Attempt::Refused(e.message),
            }
        }
    }
}

/// The subject, plain text and HTML of an incident's email.
pub fn email_parts(delivery: &Delivery, public_url: &str) -> (String, String, String) {
    let i = &delivery.payload;
    let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
    let id = s("id");
    let link = format!("{}/api/v1/incidents/{id}", public_url.trim_end_matches('/'));
    let severity = s("severity");
    let title = s("title");
    let techniques = techniques(i);
    let findings = i["finding_ids"].as_array().map_or(0, Vec::len);
    let score = i["score"].as_f64().unwrap_or(0.0);
    let subject: String = format!("[Vigil][{}] {title}", severity.to_uppercase())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let rows = [
        ("Severity", severity.clone()),
        ("Score", format!("{score:.0}")),
        ("Entity", s("entity")),
        ("Status", s("status")),
        ("First seen", s("first_seen")),
        ("Last seen", s("last_seen")),
        ("Findings", findings.to_string()),
        ("ATT&CK", techniques),
    ];
    let mut text = format!("{title}\n\n");
    for (k, v) in &rows {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!("\nOpen in Vigil: {link}\nIncident {id}\n"));
    let esc = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut html = format!("<h2>{}</h2><table>", esc(&title));
    for (k, v) in &rows {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            esc(k),
            esc(v)
        ));
    }
    html.push_str(&format!(
        "</table><p><a href=\"{}\">Open in Vigil</a></p>",
        esc(&link)
    ));
    (subject, text, html)
}

async fn send_email(email: &Email, d: &Delivery, public_url: &str) -> Attempt {
    use lettre::AsyncTransport;
    let (subject, text, html) = email_parts(d, public_url);
    let mut builder = lettre::Message::builder()
        .from(email.from.clone())
        .subject(subject)
        .message_id(Some(format!("<{}@vigil>", d.id)));
    for to in &email.to {
        builder = builder.to(to.clone());
    }
    let message = match builder.multipart(lettre::message::MultiPart::alternative_plain_html(
        text, html,
    )) {
        Ok(m) => m,
        Err(e) => return Attempt::Refused(format!("cannot build the message: {e}")),
    };
    let server = match &email.resolver {
        None => email.host.clone(),
        Some(resolver) => match resolver.lookup(&email.host).await {
            Ok(addrs) => match addrs.first() {
                Some(a) => a.ip().to_string(),
                None => {
                    return Attempt::Retry(format!("SMTP: `{}` has no address", email.host), None);
                }
            },
            Err(e) => {
                return match find_refusal(&*e) {
                    Some(r) => Attempt::Refused(format!(
                        "refused smtp://{}:{}: {r}",
                        email.host, email.port
                    )),
                    None => {
                        Attempt::Retry(format!("SMTP: cannot resolve `{}`: {e}", email.host), None)
                    }
                };
            }
        },
    };
    match email.transport(server).send(message).await {
        Ok(_) => Attempt::Delivered,
        Err(e) if e.is_permanent() => Attempt::Refused(format!("SMTP refused: {e}")),
        Err(e) => Attempt::Retry(format!("SMTP: {e}"), None),
    }
}

async fn send_http(kind: RouteKind, route: &Http, d: &Delivery, public_url: &str) -> Attempt {
    let execute = route.url.path().ends_with("/execute");
    let body = serde_json::to_vec(&body(kind, d, public_url, execute)).expect("JSON serialises");
    let mut req = route
        .http
        .post(route.url.clone())
        .headers(route.headers.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Vigil-Delivery", d.id.as_str());
    match kind {
        RouteKind::Webhook => {
            let ts = chrono::Utc::now().timestamp();
            let secret = route.secret.as_deref().unwrap_or_default();
            req = req
                .header("X-Vigil-Timestamp", ts.to_string())
                .header("X-Vigil-Signature", signature(secret, ts, &body));
        }
        RouteKind::Shuffle => {
            if let Some(key) = &route.secret {
                req = req.bearer_auth(key);
            }
        }
        RouteKind::Slack | RouteKind::Email | RouteKind::Kafka => {}
    }
    match req.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                return Attempt::Delivered;
            }
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600)));
            let text: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            let message = format!("HTTP {status}: {text}");
            if status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
            {
                Attempt::Retry(message, after)
            } else {
                Attempt::Refused(message)
            }
        }
        Err(e) => {
            // A target refused by the guard (a DNS answer is internal): for good.
            if let Some(r) = find_refusal(&e) {
                return Attempt::Refused(format!("refused {}: {r}", route.origin));
            }
            // The URL (a Slack webhook's is a secret) is left out of the error.
            Attempt::Retry(
                if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "cannot connect".to_string()
                } else {
                    format!("request failed: {}", e.without_url())
                },
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use vigil_store::{SqliteOptions, SqliteStore};

    /// A receiver on 127.0.0.1 that counts what it accepts.
    async fn receiver() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { "ok" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, got)
    }

    fn hook(url: String) -> RouteConfig {
        RouteConfig {
            name: "hook".into(),
            kind: RouteKind::Webhook,
            url,
            email: None,
            topic: None,
            secret: Some("k".into()),
            headers: Default::default(),
            min_severity: Severity::Low,
            analyzers: vec![],
            hosts: vec![],
            tags: vec![],
            timeout_secs: 2,
            max_attempts: 5,
            backoff_ms: 10,
            max_backoff_secs: 1,
            per_minute: 0,
        }
    }

    fn incident() -> Incident {
        let now = vigil_core::now_rfc3339();
        Incident {
            id: vigil_core::new_id(),
            title: "t".into(),
            status: IncidentStatus::Open,
            severity: Severity::High,
            score: 50.0,
            entity: "host:h".into(),
            host_name: Some("h".into()),
            first_seen: now.clone(),
            last_seen: now.clone(),
            finding_ids: vec![],
            techniques: vec![],
            assignee: None,
            notes: vec![],
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// One delivery to `host` (resolved through `fixed`) under the given settings.
    async fn deliver(
        host: &str,
        port: u16,
        fixed: &vigil_http::Fixed,
        allow_internal: bool,
        internal_allow: &[&str],
    ) -> Delivery {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let r = Responders::build(
            RespondConfig {
                allow_internal,
                internal_allow: internal_allow.iter().map(|s| s.to_string()).collect(),
                routes: vec![hook(format!("http://{host}:{port}/hook"))],
                ..Default::default()
            },
            store.clone(),
            None,
            fixed.clone(),
        )
        .unwrap();
        assert_eq!(r.incident_changed(&incident(), &[]).await.unwrap(), 1);
        r.run_once().await.unwrap();
        store.list_deliveries(None, 10).await.unwrap().remove(0)
    }

    #[tokio::test]
    async fn a_name_resolving_to_an_internal_address_is_dead_lettered_unless_allowed() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (port, got) = receiver().await;
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let fixed: vigil_http::Fixed = Arc::new(vec![
            ("hooks.example.org".into(), loopback),
            ("meta.example.org".into(), metadata),
        ]);
        // Refused at connection time: a dead letter at once, saying why and what to set.
        let d = deliver("hooks.example.org", port, &fixed, false, &[]).await;
        assert_eq!(d.state, DeliveryState::Dead, "{d:?}");
        assert_eq!(d.attempts, 1);
        let why = d.last_error.unwrap();
        for part in [
            &format!("refused http://hooks.example.org:{port}"),
            "`hooks.example.org` resolves to 127.0.0.1",
            "loopback",
            "[responders] allow_internal = true",
            "[responders] internal_allow",
        ] {
            assert!(why.contains(part), "{part} not in {why}");
        }
        assert!(
            !why.contains(&format!(":{port}/hook")),
            "the path (a secret for Slack) is left out: {why}"
        );
        assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 0);

        // Allowed by the switch, by the host's name, or by a CIDR block: delivered.
        for (allow_internal, list) in [
            (true, &[][..]),
            (false, &["hooks.example.org"][..]),
            (false, &["127.0.0.0/8"][..]),
        ] {
            let d = deliver("hooks.example.org", port, &fixed, allow_internal, list).await;
            assert_eq!(d.state, DeliveryState::Delivered, "{list:?}: {d:?}");
        }
        assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 3);

        // A metadata answer stays refused with allow_internal.
        let d = deliver("meta.example.org", port, &fixed, true, &[]).await;
        assert_eq!(d.state, DeliveryState::Dead, "{d:?}");
        let why = d.last_error.unwrap();
        assert!(
            why.contains("169.254.169.254") && why.contains("cloud metadata"),
            "{why}"
        );
    }

    #[test]
    fn literal_and_reserved_targets_are_refused_at_start() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let build = |url: &str, allow_internal: bool| {
            Responders::new(
                RespondConfig {
                    allow_internal,
                    routes: vec![hook(url.into())],
                    ..Default::default()
                },
                store.clone(),
            )
        };
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost:9/hook",
            "http://LOCALHOST./hook",
            "http://api.localhost/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://2130706433/hook",
            "http://0x7f.1/hook",
            "http://0/hook",
            "http://10.0.0.5/hook",
            "http://192.168.1.10/hook",
            "http://100.64.1.1/hook",
            "http://[fd00::1]/hook",
            "http://[64:ff9b::7f00:1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://vault.corp.internal/hook",
        ] {
            let e = build(url, false).err().expect(url);
            let text = e.to_string();
            assert!(
                text.contains("responders.routes `hook`: url http"),
                "{url}: {text}"
            );
            assert!(
                text.contains("[responders] internal_allow"),
                "{url}: {text}"
            );
        }
        // Userinfo and other schemes are refused whatever the setting.
        for url in ["https://user:pw@hooks.example.org/x", "ftp://example.org/x"] {
            let e = build(url, true).err().expect(url);
            assert_eq!(e.route, "hook", "{e}");
        }
        // With the switch: internal, but never metadata.
        build("http://127.0.0.1:9/hook", true).unwrap();
        build("http://localhost:9/hook", true).unwrap();
        let e = build("http://169.254.169.254/", true).err().unwrap();
        assert!(e.to_string().contains("cloud metadata"), "{e}");
        build("https://hooks.slack.com/services/T/B/X", false).unwrap();
        // A bad allow-list entry names the key.
        let e = Responders::new(
            RespondConfig {
                internal_allow: vec!["10.0.0.0/40".into()],
                ..Default::default()
            },
            store.clone(),
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .starts_with("responders: [responders] internal_allow"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_smtp_host_resolving_to_an_internal_address_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let fixed: vigil_http::Fixed = Arc::new(vec![(
            "mail.example.org".into(),
            "10.9.8.7".parse().unwrap(),
        )]);
        let r = Responders::build(
            RespondConfig {
                routes: vec![mail("mail.example.org")],
                ..Default::default()
            },
            store.clone(),
            None,
            fixed,
        )
        .unwrap();
        r.incident_changed(&incident(), &[]).await.unwrap();
        r.run_once().await.unwrap();
        let d = store.list_deliveries(None, 10).await.unwrap().remove(0);
        assert_eq!(d.state, DeliveryState::Dead, "{d:?}");
        let why = d.last_error.unwrap();
        assert!(
            why.contains("refused smtp://mail.example.org:25")
                && why.contains("resolves to 10.9.8.7")
                && why.contains("[responders] allow_internal"),
            "{why}"
        );
    }

    /// A minimal SMTP server on 127.0.0.1 that accepts one message per connection and
    /// counts the messages.
    async fn fake_smtp() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = got.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            b"250 queued\r\n"
                        } else {
                            match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                                "EHLO" | "HELO" => b"250 fake\r\n",
                                "DATA" => {
                                    in_data = true;
                                    b"354 go on\r\n"
                                }
                                "QUIT" => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    return;
                                }
                                _ => b"250 ok\r\n",
                            }
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, got)
    }

    #[tokio::test]
    async fn an_allowed_smtp_name_is_sent_to_the_address_it_was_checked_at() {
        let (port, got) = fake_smtp().await;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let fixed: vigil_http::Fixed = Arc::new(vec![(
            "relay.example.org".into(),
            "127.0.0.1".parse().unwrap(),
        )]);
        let mut route = mail("relay.example.org");
        route.email.as_mut().unwrap().port = port;
        let r = Responders::build(
            RespondConfig {
                internal_allow: vec!["relay.example.org".into()],
                routes: vec![route],
                ..Default::default()
            },
            store.clone(),
            None,
            fixed,
        )
        .unwrap();
        r.incident_changed(&incident(), &[]).await.unwrap();
        r.run_once().await.unwrap();
        let d = store.list_deliveries(None, 10).await.unwrap().remove(0);
        assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
        assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn mail(host: &str) -> RouteConfig {
        RouteConfig {
            kind: RouteKind::Email,
            url: String::new(),
            secret: None,
            email: Some(EmailConfig {
                host: host.into(),
                port: 25,
                tls: SmtpTls::None,
                ca_file: None,
                username: None,
                password: None,
                from: "v@example.org".into(),
                to: vec!["soc@example.org".into()],
            }),
            ..hook(String::new())
        }
    }

    #[test]
    fn email_hosts_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        for (host, allow, ok) in [
            ("127.0.0.1", false, false),
            ("localhost", false, false),
            ("10.2.3.4", false, false),
            ("127.0.0.1", true, true),
            ("smtp.example.org", false, true),
        ] {
            let r = Responders::new(
                RespondConfig {
                    allow_internal: allow,
                    routes: vec![mail(host)],
                    ..Default::default()
                },
                store.clone(),
            );
            match r {
                Ok(_) => assert!(ok, "{host} accepted"),
                Err(e) => {
                    assert!(!ok, "{host}: {e}");
                    assert!(e.to_string().contains("email.host smtp://"), "{e}");
                }
            }
        }
    }
}
