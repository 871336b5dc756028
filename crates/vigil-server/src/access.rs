//! The access log: one record per REST/WebSocket call and per request of the binary
//! protocol, saying who did what, with which outcome, from where.
//!
//! Every record is a tracing event on target [`TARGET`] (`vigil::access`) at INFO, so the
//! `[log]` level or `RUST_LOG` (say `info,vigil::access=off`) controls it and the JSON log
//! format carries it as fields. With `server.access_log = "PATH"` each record is also
//! appended to that file as one JSON line, by a writer thread behind a bounded channel:
//! when the channel is full the record is dropped and counted
//! ([`ACCESS_LOG_DROPPED`]), never waited for.
//!
//! What is never recorded: query strings (a WebSocket carries its credential as
//! `?access_token=`, a file upload its VirusTotal key as `?vt_key=`), headers, bodies,
//! protocol fields. The path is the raw path without its query, and the matched route
//! template beside it.

use crate::auth::Principal;
use crate::tls::Peer;
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The tracing target of access records.
pub const TARGET: &str = "vigil::access";
/// Counter of access records not written to the file, by `reason` (`full`: the writer
/// was behind; `write_error`: the file could not be written).
pub const ACCESS_LOG_DROPPED: &str = "vigil_access_log_dropped_total";
/// The request id header, echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Records waiting for the file writer at most.
pub const FILE_QUEUE: usize = 8192;
/// Longest incoming request id accepted; longer (or unsafe) ones are replaced.
pub const MAX_REQUEST_ID: usize = 64;
/// Longest path recorded, in bytes; longer paths are cut and end with `...`.
const MAX_PATH: usize = 512;
/// How often the writer checks whether the file was rotated away (renamed or removed).
const REOPEN_CHECK: Duration = Duration::from_secs(5);

/// The request id of a call, in its request extensions (for handlers that log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Where access records go besides tracing. Cheap to clone; the default writes no file.
#[derive(Clone, Default)]
pub struct AccessLog {
    file: Option<Arc<FileSink>>,
    /// Client addresses are replaced by these pseudonyms (`[network] hash_ips`).
    ips: Option<vigil_net::privacy::IpPseudonyms>,
}

struct FileSink {
    tx: flume::Sender<String>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("file", &self.file.is_some())
            .finish()
    }
}

impl AccessLog {
    /// Records go to tracing and are appended to `path` (created `0640` when missing) by
    /// a writer thread. Fails when the file cannot be opened.
    pub fn to_file(path: &Path) -> std::io::Result<AccessLog> {
        AccessLog::to_file_checking(path, REOPEN_CHECK)
    }

    fn to_file_checking(path: &Path, reopen_check: Duration) -> std::io::Result<AccessLog> {
        let file = open(path)?;
        let (log, rx) = AccessLog::with_queue(FILE_QUEUE);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("vigil-access-log".into())
            .spawn(move || writer(path, file, rx, reopen_check))?;
        Ok(log)
    }

    /// A log whose file lines wait in a queue of `capacity` read by nobody yet.
    fn with_queue(capacity: usize) -> (AccessLog, flume::Receiver<String>) {
        let (tx, rx) = flume::bounded(capacity);
        let sink = FileSink {
            tx,
            dropped: AtomicU64::new(0),
        };
        (
            AccessLog {
                file: Some(Arc::new(sink)),
                ips: None,
            },
            rx,
        )
    }

    /// Records dropped because the file writer was behind, since start.
    pub fn dropped(&self) -> u64 {
        self.file
            .as_ref()
            .map_or(0, |f| f.dropped.load(Ordering::Relaxed))
    }

    fn append(&self, line: impl Serialize) {
        let Some(sink) = &self.file else { return };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        if sink.tx.try_send(text).is_err() {
            sink.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(ACCESS_LOG_DROPPED, "reason" => "full").increment(1);
        }
    }

    /// The same log, writing client addresses as keyed pseudonyms (`[network] hash_ips`):
    /// the port stays, the address is replaced as everywhere else Vigil stores one.
    pub fn with_ip_pseudonyms(mut self, ips: vigil_net::privacy::IpPseudonyms) -> AccessLog {
        self.ips = ips.enabled().then_some(ips);
        self
    }

    /// `client` as it may be written.
    fn client(&self, client: &Option<String>) -> Option<String> {
        let c = client.as_ref()?;
        let Some(ips) = &self.ips else {
            return client.clone();
        };
        Some(match c.parse::<SocketAddr>() {
            Ok(a) => SocketAddr::new(ips.apply(a.ip()), a.port()).to_string(),
            Err(_) => match c.parse::<std::net::IpAddr>() {
                Ok(ip) => ips.apply(ip).to_string(),
                Err(_) => "-".to_string(),
            },
        })
    }

    /// Records one HTTP call.
    pub fn http(&self, mut r: HttpAccess) {
        r.client = self.client(&r.client);
        tracing::info!(
            target: TARGET,
            request_id = %r.request_id,
            who = %r.who,
            role = %r.role,
            method = %r.method,
            route = %r.route,
            path = %r.path,
            status = r.status,
            duration_ms = r.duration_ms,
            bytes = r.bytes,
            client = r.client.as_ref().map(tracing::field::display),
            tls_client = r.tls_client.as_ref().map(tracing::field::display),
            "http request"
        );
        self.append(Line {
            ts: now(),
            kind: "http",
            record: &r,
        });
    }

    /// Records one request (or refused frame) of the binary protocol.
    pub fn protocol(&self, mut r: ProtocolAccess) {
        r.client = self.client(&r.client);
        tracing::info!(
            target: TARGET,
            request_id = %r.request_id,
            who = %r.who,
            role = %r.role,
            command = %r.command,
            status = %r.status,
            code = r.code,
            bytes_in = r.bytes_in,
            bytes_out = r.bytes_out,
            duration_ms = r.duration_ms,
            client = r.client.as_ref().map(tracing::field::display),
            tls_client = r.tls_client.as_ref().map(tracing::field::display),
            "protocol request"
        );
        self.append(Line {
            ts: now(),
            kind: "protocol",
            record: &r,
        });
    }
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    ts: String,
    kind: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One HTTP call, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct HttpAccess {
    /// Generated, or the caller's `x-request-id` when short and safe.
    pub request_id: String,
    /// The principal's subject (`key:<id>`, `jwt:<sub>`, `anonymous`), or `-` when the call
    /// was not authenticated (open routes, refused credentials).
    pub who: String,
    /// The principal's role, or `-`.
    pub role: String,
    /// HTTP method.
    pub method: String,
    /// The matched route template, or `-` when no route matched.
    pub route: String,
    /// The raw path, never its query string.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Time to the response head, in milliseconds.
    pub duration_ms: f64,
    /// Response body size when known before sending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The peer address, when the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The client certificate verified by mutual TLS (its common name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client: Option<String>,
}

/// One request of the binary protocol, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolAccess {
    /// Generated per request.
    pub request_id: String,
    /// The authenticated subject, `anonymous` when authentication is off, `-` before AUTH.
    pub who: String,
    /// Its role, or `-`.
    pub role: String,
    /// `Auth`, `Static`, … as in the metrics; `unknown:<n>` for an unknown command; `-`
    /// when no frame could be read (malformed, too large, timeout, no connection slot).
    pub command: String,
    /// `ok` or the error code's name (`unauthorized`, `bad_request`, …).
    pub status: String,
    /// The reply's error code; 0 for a verdict.
    pub code: u32,
    /// Bytes of the request's fields (the file and the rest).
    pub bytes_in: u64,
    /// Bytes of the reply.
    pub bytes_out: u64,
    /// Time from the complete frame to the reply written, in milliseconds.
    pub duration_ms: f64,
    /// The peer address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The client certificate verified by mutual TLS (its common name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client: Option<String>,
}

/// Milliseconds since `started`, to the microsecond.
pub fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_micros() as f64) / 1000.0
}

/// `(who, role)` of an optional principal, `-` for none. Control characters in a subject
/// (a JWT `sub` is the token issuer's choice) are escaped, and it is cut at 128 chars.
pub fn who(p: Option<&Principal>) -> (String, String) {
    match p {
        None => ("-".into(), "-".into()),
        Some(p) => {
            let mut s: String = p.subject.chars().flat_map(char::escape_debug).collect();
            if s.len() > 128 {
                let mut end = 128;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                s.push_str("...");
            }
            (s, p.role.as_str().to_string())
        }
    }
}

/// A new random request id: 32 hex digits.
pub fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// The caller's request id when it is 1 to [`MAX_REQUEST_ID`] characters of
/// `A-Z a-z 0-9 - _ . :`.
fn incoming_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.to_string())
}

fn cut_path(path: &str) -> String {
    if path.len() <= MAX_PATH {
        return path.to_string();
    }
    // A URI path is ASCII, but be safe.
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

/// Middleware (outermost): gives the call a request id (echoed as `x-request-id`), runs it
/// in a span carrying that id, and records it once the response head is ready. The
/// principal comes from the response extensions, where the auth middleware leaves it.
pub async fn record(State(log): State<AccessLog>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = incoming_id(req.headers()).unwrap_or_else(new_request_id);
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "-".to_string(), |p| p.as_str().to_string());
    let path = cut_path(req.uri().path());
    let (client, tls_client) = match req.extensions().get::<ConnectInfo<Peer>>() {
        Some(ConnectInfo(p)) => (Some(p.addr.to_string()), p.client_cert.clone()),
        None => (
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string()),
            None,
        ),
    };
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut resp = next.run(req).instrument(span).await;
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| resp.body().size_hint().exact());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let (who, role) = who(resp.extensions().get::<Principal>());
    log.http(HttpAccess {
        request_id,
        who,
        role,
        method,
        route,
        path,
        status: resp.status().as_u16(),
        duration_ms: elapsed_ms(started),
        bytes,
        client,
        tls_client,
    });
    resp
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o640);
    o.open(path)
}

/// Whether `path` no longer names the open file (rotated: renamed or removed).
#[cfg(unix)]
fn rotated(path: &Path, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.ino() != b.ino() || a.dev() != b.dev(),
        (Err(_), _) => true,
        (_, Err(_)) => false,
    }
}

#[cfg(not(unix))]
fn rotated(_: &Path, _: &std::fs::File) -> bool {
    false
}

/// Appends lines until every sender is gone, flushing whenever the queue is empty, and
/// reopening the file when it was rotated away.
fn writer(path: PathBuf, file: std::fs::File, rx: flume::Receiver<String>, reopen_check: Duration) {
    let mut out = std::io::BufWriter::new(file);
    let mut checked = Instant::now();
    let mut warned: Option<Instant> = None;
    let mut failed = |e: std::io::Error| {
        metrics::counter!(ACCESS_LOG_DROPPED, "reason" => "write_error").increment(1);
        if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(60)) {
            warned = Some(Instant::now());
            tracing::warn!(path = %path.display(), error = %e, "cannot write the access log");
        }
    };
    while let Ok(line) = rx.recv() {
        if checked.elapsed() >= reopen_check {
            checked = Instant::now();
            if rotated(&path, out.get_ref()) {
                let _ = out.flush();
                match open(&path) {
                    Ok(f) => out = std::io::BufWriter::new(f),
                    Err(e) => failed(e),
                }
            }
        }
        if let Err(e) = out
            .write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
        {
            failed(e);
        }
        if rx.is_empty()
            && let Err(e) = out.flush()
        {
            failed(e);
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::Role;

    fn sample() -> HttpAccess {
        HttpAccess {
            request_id: "r1".into(),
            who: "key:abc".into(),
            role: "admin".into(),
            method: "GET".into(),
            route: "/api/v1/events/{id}".into(),
            path: "/api/v1/events/e1".into(),
            status: 200,
            duration_ms: 1.5,
            bytes: Some(10),
            client: None,
            tls_client: None,
        }
    }

    #[test]
    fn incoming_request_ids_must_be_short_and_safe() {
        let mut h = HeaderMap::new();
        let mut with = |v: &str| {
            h.insert(REQUEST_ID, HeaderValue::from_str(v).unwrap());
            incoming_id(&h)
        };
        assert_eq!(with("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(with(&"a".repeat(64)).map(|s| s.len()), Some(64));
        assert_eq!(with(&"a".repeat(65)), None);
        assert_eq!(with("has space"), None);
        assert_eq!(with("quote\"s"), None);
        assert_eq!(with(""), None);
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn subjects_are_escaped_and_cut() {
        let p = Principal {
            subject: "jwt:a\nb".into(),
            role: Role::Viewer,
        };
        assert_eq!(who(Some(&p)), ("jwt:a\\nb".into(), "viewer".into()));
        let long = Principal {
            subject: "x".repeat(500),
            role: Role::Admin,
        };
        assert_eq!(who(Some(&long)).0.len(), 131);
        assert_eq!(who(None), ("-".into(), "-".into()));
        assert_eq!(cut_path(&"/a".repeat(400)).len(), MAX_PATH + 3);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (log, rx) = AccessLog::with_queue(2);
        for _ in 0..5 {
            log.http(sample());
        }
        assert_eq!(log.dropped(), 3);
        let line: serde_json::Value = serde_json::from_str(&rx.recv().unwrap()).unwrap();
        assert_eq!(line["kind"], "http");
        assert_eq!(line["who"], "key:abc");
        assert_eq!(line["route"], "/api/v1/events/{id}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["bytes"], 10);
        assert!(line.get("client").is_none());
        assert!(line["ts"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_file_gets_one_json_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::to_file(&path).unwrap();
        for i in 0..3 {
            log.http(HttpAccess {
                status: 200 + i,
                ..sample()
            });
        }
        drop(log);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 3 {
                let last: serde_json::Value =
                    serde_json::from_str(text.lines().last().unwrap()).unwrap();
                assert_eq!(last["status"], 202);
                break;
            }
            assert!(Instant::now() < deadline, "{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o007, 0, "{mode:o}");
        }
    }

    fn wait_for_lines(path: &Path, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= n {
                return text;
            }
            assert!(Instant::now() < deadline, "{}: {text}", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_rotated_file_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::to_file_checking(&path, Duration::ZERO).unwrap();
        log.http(sample());
        wait_for_lines(&path, 1);
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.http(HttpAccess {
            status: 500,
            ..sample()
        });
        let text = wait_for_lines(&path, 1);
        assert!(text.contains("\"status\":500"), "{text}");
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
        assert_eq!(old.lines().count(), 1, "{old}");
    }
}
