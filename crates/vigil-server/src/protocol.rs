//! The TCP listener for seed 001's binary protocol (`docs/protocol.md`): one task per
//! connection, requests answered in order, a bounded number of connections, a time limit
//! per frame, authentication first unless the operator turned it off. Every request (and
//! every frame refused) is recorded by the access log ([`crate::access`]): who, command,
//! outcome, bytes; never the fields (the API key, the VirusTotal key, the file).

use crate::access::{self, AccessLog, ProtocolAccess};
use crate::auth::{Authenticator, Principal};
use crate::files::{FileError, FileRequest, FileService, parse_sha256};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_core::Role;
use vigil_file::protocol::{self, Command, ErrorCode, Frame, FrameError};

/// The `[protocol]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Whether to listen at all.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
    /// Require an AUTH frame (an API key or JWT of role agent or admin) first. Turning
    /// this off is logged as a warning at start.
    pub require_auth: bool,
    /// Largest field (the file) a request may carry, in bytes.
    pub max_field_bytes: u64,
    /// Seconds allowed for each complete frame; then ERROR 8 and the connection closes.
    pub read_timeout_secs: u64,
    /// Connections served at once; at the cap the oldest connection that has not
    /// authenticated is closed to make room, and when every one has, the new one gets
    /// ERROR 7 and is closed.
    pub max_connections: usize,
    /// Connections held at once from one client address.
    pub max_connections_per_ip: usize,
    /// Seconds a new connection has to authenticate (its AUTH frame complete); then
    /// ERROR 8 and the connection closes.
    pub auth_timeout_secs: u64,
}

/// Largest field a frame may carry before AUTH: an API key or a JWT fits.
pub const MAX_FIELD_BEFORE_AUTH: u64 = 16 * 1024;

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            enabled: false,
            listen: "127.0.0.1:9300".into(),
            require_auth: true,
            max_field_bytes: 64 << 20,
            read_timeout_secs: 30,
            max_connections: 256,
            max_connections_per_ip: 64,
            auth_timeout_secs: 5,
        }
    }
}

/// What a connection needs.
#[derive(Clone)]
pub struct ProtocolState {
    /// The analyses.
    pub files: Arc<FileService>,
    /// Credential checks for AUTH frames.
    pub auth: Arc<Authenticator>,
    /// Limits and switches.
    pub config: Arc<ProtocolConfig>,
    /// TLS (from `[tls]`); `None` serves plain TCP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves connections from `listener` until `shutdown` resolves; the access log goes to
/// tracing only.
pub async fn serve(
    listener: TcpListener,
    state: ProtocolState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    serve_with_access_log(listener, state, AccessLog::default(), shutdown).await
}

/// Serves connections from `listener` until `shutdown` resolves, recording every request
/// to `access_log`.
pub async fn serve_with_access_log(
    listener: TcpListener,
    state: ProtocolState,
    access_log: AccessLog,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if !state.config.require_auth {
        tracing::warn!("the file-analysis protocol accepts requests without authentication");
    }
    let tracker = crate::conn::ConnTracker::new(
        "protocol",
        crate::conn::ConnLimits {
            max_total: state.config.max_connections,
            max_per_ip: state.config.max_connections_per_ip,
        },
    );
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "protocol accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = tracker.admit(peer.ip()) else {
            if state.tls.is_some() {
                // No handshake for a connection that would be refused anyway.
                let log = Recorder {
                    log: access_log.clone(),
                    peer,
                    tls_client: None,
                };
                log.record(None, "-", Some(ErrorCode::Internal), 0, 0, Instant::now());
                continue;
            }
            let reply = protocol::encode_error(ErrorCode::Internal, "too many connections");
            let log = Recorder {
                log: access_log.clone(),
                peer,
                tls_client: None,
            };
            tokio::spawn(async move {
                let started = Instant::now();
                let _ = stream.write_all(&reply).await;
                log.record(
                    None,
                    "-",
                    Some(ErrorCode::Internal),
                    0,
                    reply.len(),
                    started,
                );
            });
            continue;
        };
        let state = state.clone();
        let mut log = Recorder {
            log: access_log.clone(),
            peer,
            tls_client: None,
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let served = async {
                match &state.tls {
                    None => connection(stream, &state, &log, &slot).await,
                    Some(acceptor) => match crate::tls::handshake(acceptor, stream, peer).await {
                        None => Ok(()),
                        Some(tls) => {
                            log.tls_client = crate::tls::peer_cert(&tls);
                            connection(tls, &state, &log, &slot).await
                        }
                    },
                }
            };
            let ended = tokio::select! {
                r = served => r,
                // Closed to make room for another client (it had not authenticated).
                _ = slot.evicted() => Ok(()),
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "protocol connection ended");
            }
            drop(slot);
        });
    }
}

/// How reading a frame ended.
enum Read {
    Frame(Frame),
    Closed,
    Bad(ErrorCode, String),
}

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_field: u64,
) -> std::io::Result<Read> {
    loop {
        match protocol::decode(buf, max_field) {
            Ok(Some((frame, used))) => {
                buf.drain(..used);
                return Ok(Read::Frame(frame));
            }
            Ok(None) => {}
            Err(e @ (FrameError::TooLarge { .. } | FrameError::TooManyFields)) => {
                return Ok(Read::Bad(e.code(), e.to_string()));
            }
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(if buf.is_empty() {
                Read::Closed
            } else {
                Read::Bad(
                    ErrorCode::Malformed,
                    "the connection closed in the middle of a frame".into(),
                )
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn code_of(e: &FileError) -> ErrorCode {
    match e {
        FileError::BadRequest(_) | FileError::NotFound(_) => ErrorCode::BadRequest,
        FileError::Unavailable(_) => ErrorCode::Unavailable,
        FileError::Internal(_) => ErrorCode::Internal,
    }
}

/// Writes access records for one connection.
struct Recorder {
    log: AccessLog,
    peer: SocketAddr,
    tls_client: Option<String>,
}

impl Recorder {
    fn record(
        &self,
        who: Option<&Principal>,
        command: &str,
        error: Option<ErrorCode>,
        bytes_in: usize,
        bytes_out: usize,
        started: Instant,
    ) {
        let (who, role) = access::who(who);
        self.log.protocol(ProtocolAccess {
            request_id: access::new_request_id(),
            who,
            role,
            command: command.to_string(),
            status: error.map_or("ok", code_name).to_string(),
            code: error.map_or(0, |c| c as u32),
            bytes_in: bytes_in as u64,
            bytes_out: bytes_out as u64,
            duration_ms: access::elapsed_ms(started),
            client: Some(self.peer.to_string()),
            tls_client: self.tls_client.clone(),
        });
    }
}

/// The name of an error code in access records.
fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Malformed => "malformed",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::UnknownCommand => "unknown_command",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
        ErrorCode::Timeout => "timeout",
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: &ProtocolState,
    log: &Recorder,
    slot: &crate::conn::ConnGuard,
) -> std::io::Result<()> {
    let cfg = &state.config;
    let mut buf = Vec::new();
    let mut principal = (!cfg.require_auth).then(|| Principal {
        subject: "anonymous".into(),
        role: Role::Admin,
    });
    loop {
        // Before AUTH: a short time and a small frame (issue 22: idle unauthenticated
        // sockets must not hold the listener).
        let (secs, max_field) = if principal.is_some() {
            (cfg.read_timeout_secs, cfg.max_field_bytes)
        } else {
            (
                cfg.auth_timeout_secs,
                cfg.max_field_bytes.min(MAX_FIELD_BEFORE_AUTH),
            )
        };
        let read = tokio::time::timeout(
            Duration::from_secs(secs),
            read_frame(&mut stream, &mut buf, max_field),
        );
        let frame = match read.await {
            Err(_) => {
                let started = Instant::now();
                let msg = if principal.is_some() {
                    format!("no complete frame within {secs} s")
                } else {
                    format!("no AUTH frame within {secs} s ([protocol] auth_timeout_secs)")
                };
                let reply = protocol::encode_error(ErrorCode::Timeout, &msg);
                stream.write_all(&reply).await?;
                let who = principal.as_ref();
                log.record(who, "-", Some(ErrorCode::Timeout), 0, reply.len(), started);
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Read::Closed)) => return Ok(()),
            Ok(Ok(Read::Bad(code, msg))) => {
                let started = Instant::now();
                let reply = protocol::encode_error(code, &msg);
                stream.write_all(&reply).await?;
                log.record(principal.as_ref(), "-", Some(code), 0, reply.len(), started);
                return Ok(());
            }
            Ok(Ok(Read::Frame(f))) => f,
        };
        slot.touch();
        let started = Instant::now();
        let bytes_in: usize = frame.fields.iter().map(Vec::len).sum();
        let name = match Command::from_u32(frame.command) {
            Some(c) => format!("{c:?}"),
            None => format!("unknown:{}", frame.command),
        };
        if frame.command == 0 {
            match authenticate(state, &frame).await {
                Ok(p) => {
                    let report =
                        serde_json::json!({"authenticated": true, "role": p.role.as_str()});
                    let body = serde_json::to_vec(&report).unwrap_or_default();
                    let reply = protocol::encode_verdict(true, 0.0, &body);
                    stream.write_all(&reply).await?;
                    log.record(Some(&p), &name, None, bytes_in, reply.len(), started);
                    principal = Some(p);
                    // Authenticated: no longer closed to make room for others.
                    slot.pin();
                    continue;
                }
                Err(msg) => {
                    let reply = protocol::encode_error(ErrorCode::Unauthorized, &msg);
                    stream.write_all(&reply).await?;
                    let code = Some(ErrorCode::Unauthorized);
                    log.record(None, &name, code, bytes_in, reply.len(), started);
                    return Ok(());
                }
            }
        }
        let Some(who) = &principal else {
            let msg = "authenticate first: send AUTH (command 0) with an API key";
            let reply = protocol::encode_error(ErrorCode::Unauthorized, msg);
            stream.write_all(&reply).await?;
            let code = Some(ErrorCode::Unauthorized);
            log.record(None, &name, code, bytes_in, reply.len(), started);
            return Ok(());
        };
        let Some(command) = Command::from_u32(frame.command) else {
            let msg = format!("unknown command {}; commands are 0 to 6", frame.command);
            let reply = protocol::encode_error(ErrorCode::UnknownCommand, &msg);
            stream.write_all(&reply).await?;
            let code = Some(ErrorCode::UnknownCommand);
            log.record(Some(who), &name, code, bytes_in, reply.len(), started);
            continue;
        };
        let (reply, error) = match analysis_request(command, frame, state) {
            Err(e) => (
                protocol::encode_error(code_of(&e), &e.to_string()),
                Some(code_of(&e)),
            ),
            Ok(req) => match state.files.analyze(req).await {
                Ok(answer) => {
                    let report = if who.role == Role::Agent {
                        crate::files::report_for_agent(answer.report)
                    } else {
                        answer.report
                    };
                    let body = serde_json::to_vec(&report).unwrap_or_default();
                    let reply =
                        protocol::encode_verdict(answer.malicious, answer.score as f32, &body);
                    (reply, None)
                }
                Err(e) => (
                    protocol::encode_error(code_of(&e), &e.to_string()),
                    Some(code_of(&e)),
                ),
            },
        };
        // Unknown command numbers share one label: the number comes from the client.
        let label = if name.starts_with("unknown:") {
            "unknown".to_string()
        } else {
            name.clone()
        };
        metrics::counter!("vigil_protocol_requests_total", "command" => label).increment(1);
        stream.write_all(&reply).await?;
        log.record(Some(who), &name, error, bytes_in, reply.len(), started);
    }
}

async fn authenticate(state: &ProtocolState, frame: &Frame) -> Result<Principal, String> {
    let [key] = frame.fields.as_slice() else {
        return Err("AUTH carries exactly one field: the API key".into());
    };
    let key = std::str::from_utf8(key).map_err(|_| "the API key is not UTF-8".to_string())?;
    let principal = state
        .auth
        .authenticate_token(key)
        .await
        .map_err(|e| e.to_string())?;
    match principal.role {
        Role::Agent | Role::Admin => Ok(principal),
        Role::Viewer => Err("the key's role is viewer; analyses need agent or admin".into()),
    }
}

fn analysis_request(
    command: Command,
    frame: Frame,
    state: &ProtocolState,
) -> Result<FileRequest, FileError> {
    let [file, sha, vt_key]: [Vec<u8>; 3] = frame.fields.try_into().map_err(|f: Vec<_>| {
        FileError::BadRequest(format!(
            "analysis requests carry 3 fields (FILE, SHA256, VT_KEY), not {}",
            f.len()
        ))
    })?;
    let max = state.files.max_file_bytes();
    if file.len() > max {
        return Err(FileError::BadRequest(format!(
            "the file is {} bytes; at most {max} are analysed",
            file.len()
        )));
    }
    let vt_key = String::from_utf8(vt_key)
        .map_err(|_| FileError::BadRequest("the VirusTotal key is not UTF-8".into()))?;
    Ok(FileRequest {
        command,
        bytes: (!file.is_empty()).then_some(file),
        sha256: if sha.is_empty() {
            None
        } else {
            Some(parse_sha256(&sha)?)
        },
        vt_key: (!vt_key.is_empty()).then_some(vt_key),
    })
}
