//! TLS on the HTTP API and the binary-protocol listener (issue 12), with optional mutual TLS
//! for agents.
//!
//! - The `[tls]` section names a PEM certificate chain and key. When both are set, both
//!   listeners speak TLS only (rustls, TLS 1.2 and 1.3, ring). The files are re-read when
//!   they change (checked at most every [`RELOAD_CHECK`]), so a renewed certificate is
//!   served without a restart; a broken renewal keeps the old one and logs why.
//! - `client_ca` turns on client certificates: with `client_auth = "required"` (the default
//!   once `client_ca` is set) a connection without a certificate signed by that CA fails in
//!   the handshake; with `"optional"` a certificate is checked when one is shown. A client
//!   certificate does not replace the API key or JWT: it is a second factor, and its
//!   subject is written to the access log as `tls_client`.
//! - Handshakes run in their own tasks with a time limit, so a slow or silent client never
//!   holds up the accept loop; at most [`MAX_HANDSHAKES`] run at once.
//!
//! [`generate_pki`] writes what `vigil tls init` gives a newcomer: a private CA, a server
//! certificate and agent client certificates.

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often, at most, the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// TLS handshakes in progress at once on one listener; more connections wait in the
/// kernel's backlog.
pub const MAX_HANDSHAKES: usize = 256;

/// Seconds a client has to finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether clients must show a certificate signed by `client_ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A certificate is verified when the client shows one; clients without one connect.
    Optional,
    /// Every client must show a certificate signed by `client_ca`.
    Required,
}

/// The `[tls]` configuration section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (the server's certificate first). With `key`, both listeners
    /// speak TLS only.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert`.
    pub key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign client (agent) certificates; turns on mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// `required` (the default when `client_ca` is set) or `optional`.
    pub client_auth: Option<ClientAuth>,
}

impl TlsConfig {
    /// Whether TLS is configured at all.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }
}

/// The rustls provider Vigil uses everywhere (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain, with an error that names the file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1) from {}: {e}",
            path.display()
        )
    })
}

fn load_certified(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .map(Arc::new)
        .map_err(|e| {
            format!(
                "the key {} does not fit the certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The served certificate, re-read when its files change.
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<ReloadState>,
}

struct ReloadState {
    current: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Reloading {
    fn new(cert: &Path, key: &Path) -> Result<Reloading, String> {
        let stamps = (modified(cert), modified(key));
        let current = load_certified(cert, key)?;
        Ok(Reloading {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(ReloadState {
                current,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.checked.elapsed() >= RELOAD_CHECK {
            s.checked = Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != s.stamps {
                s.stamps = stamps;
                match load_certified(&self.cert, &self.key) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        metrics::counter!("vigil_tls_reloads_total", "outcome" => "ok")
                            .increment(1);
                        s.current = k;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the changed TLS certificate cannot be used; still serving the previous one");
                        metrics::counter!("vigil_tls_reloads_total", "outcome" => "error")
                            .increment(1);
                    }
                }
            }
        }
        s.current.clone()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Builds the acceptors of both listeners from `[tls]`; `None` when TLS is off. Every
/// error names the file or key to fix.
pub fn acceptors(cfg: &TlsConfig) -> Result<Option<Acceptors>, String> {
    let (cert, key) = match (&cfg.cert, &cfg.key) {
        (None, None) => {
            if cfg.client_ca.is_some() || cfg.client_auth.is_some() {
                return Err(
                    "[tls] client_ca and client_auth need the server's own cert and key".into(),
                );
            }
            return Ok(None);
        }
        (Some(c), Some(k)) => (c, k),
        _ => return Err("[tls] cert and key go together: set both, or neither".into()),
    };
    let resolver = Arc::new(Reloading::new(cert, key)?);
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("[tls]: {e}"))?;
    let builder = match &cfg.client_ca {
        None => {
            if cfg.client_auth.is_some() {
                return Err(
                    "[tls] client_auth needs client_ca, the CA that signs agent certificates"
                        .into(),
                );
            }
            builder.with_no_client_auth()
        }
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("[tls] client_ca {}: {e}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = match cfg.client_auth.unwrap_or(ClientAuth::Required) {
                ClientAuth::Required => v,
                ClientAuth::Optional => v.allow_unauthenticated(),
            };
            let v = v
                .build()
                .map_err(|e| format!("[tls] client_ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let base = builder.with_cert_resolver(resolver);
    let mut http = base.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Acceptors {
        http: TlsAcceptor::from(Arc::new(http)),
        protocol: TlsAcceptor::from(Arc::new(base)),
    }))
}

/// One acceptor per listener (they differ in ALPN).
#[derive(Clone)]
pub struct Acceptors {
    /// The HTTP API's (ALPN `http/1.1`).
    pub http: TlsAcceptor,
    /// The binary protocol's.
    pub protocol: TlsAcceptor,
}

/// Who is at the other end of a connection: the address, and the client certificate's
/// subject when mutual TLS verified one. The HTTP server's connect info
/// (`ConnectInfo<Peer>`), read by the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The verified client certificate: its subject's common name, or `sha256:` and the
    /// first 16 hex digits of its fingerprint when it has none.
    pub client_cert: Option<String>,
}

/// Names a verified client certificate for the access log.
pub fn client_cert_name(der: &[u8]) -> String {
    use sha2::Digest;
    let cn = x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, c)| {
            c.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(|s| s.chars().take(128).collect::<String>())
        });
    cn.unwrap_or_else(|| {
        let digest = sha2::Sha256::digest(der);
        format!("sha256:{}", &hex::encode(digest)[..16])
    })
}

/// The verified client certificate of a finished handshake, named.
pub fn peer_cert(stream: &TlsStream<TcpStream>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| client_cert_name(c.as_ref()))
}

/// Runs the handshake of one accepted connection with [`HANDSHAKE_TIMEOUT`]; failures are
/// counted and logged at debug (scanners and wrong clients are common).
pub async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            metrics::counter!("vigil_tls_handshake_failures_total", "reason" => "error")
                .increment(1);
            tracing::debug!(%addr, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics::counter!("vigil_tls_handshake_failures_total", "reason" => "timeout")
                .increment(1);
            tracing::debug!(%addr, "TLS handshake timed out");
            None
        }
    }
}

/// A TLS listener for `axum::serve`: a background task accepts TCP connections and runs
/// their handshakes (each in its own task, at most [`MAX_HANDSHAKES`] at once); finished
/// ones are handed to the server. Dropping it stops the task.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS on `tcp` with `acceptor`.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Some(tls) = handshake(&acceptor, stream, addr).await {
                        let peer = Peer {
                            addr,
                            client_cert: peer_cert(&tls),
                        };
                        let _ = tx.send((tls, peer)).await;
                    }
                    drop(slot);
                });
            }
        });
        Ok(TlsListener { rx, local, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task is gone (only when the listener is dropped): never return.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            client_cert: None,
        })
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            client_cert: None,
        }
    }
}

/// PEM files for a private deployment, from [`generate_pki`].
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate: clients trust it (`--ca-cert`), and `[tls] client_ca` names it.
    pub ca_cert: String,
    /// The CA key: keep it offline; it signs new agent certificates.
    pub ca_key: String,
    /// The server certificate (`[tls] cert`).
    pub server_cert: String,
    /// The server key (`[tls] key`).
    pub server_key: String,
    /// Client certificates and keys, by agent name.
    pub agents: Vec<(String, String, String)>,
}

/// A private CA (10 years), a server certificate for `hosts` (names or addresses) and a
/// client certificate per agent name (both `days` long), all ECDSA P-256.
pub fn generate_pki(hosts: &[String], agents: &[String], days: u32) -> Result<Pki, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| e.to_string();
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let until = |days: u32| ymd(today + chrono::Days::new(u64::from(days)));
    let yesterday = ymd(today - chrono::Days::new(1));

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Vigil private CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Vigil");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = yesterday;
    ca.not_after = until(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, &ca_key);

    let leaf = |sans: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(sans).map_err(err)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        p.not_before = yesterday;
        p.not_after = until(days);
        let cert = p.signed_by(&key, &issuer).map_err(err)?;
        Ok::<_, String>((cert.pem(), key.serialize_pem()))
    };
    if hosts.is_empty() {
        return Err(
            "name at least one host (a DNS name or an address) for the server certificate".into(),
        );
    }
    let (server_cert, server_key) = leaf(
        hosts.to_vec(),
        &hosts[0],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let mut out = Vec::with_capacity(agents.len());
    for a in agents {
        if a.is_empty()
            || a.len() > 64
            || !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "agent name {a:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let (c, k) = leaf(Vec::new(), a, ExtendedKeyUsagePurpose::ClientAuth)?;
        out.push((a.clone(), c, k));
    }
    Ok(Pki {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        server_cert,
        server_key,
        agents: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn generated_pki_loads_and_names_its_agents() {
        let pki = generate_pki(
            &["localhost".into(), "127.0.0.1".into()],
            &["edr-7".into()],
            30,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = TlsConfig {
            cert: Some(write(dir.path(), "s.pem", &pki.server_cert)),
            key: Some(write(dir.path(), "s.key", &pki.server_key)),
            client_ca: Some(write(dir.path(), "ca.pem", &pki.ca_cert)),
            client_auth: None,
        };
        assert!(acceptors(&cfg).unwrap().is_some());
        let agent = read_certs(&write(dir.path(), "a.pem", &pki.agents[0].1)).unwrap();
        assert_eq!(client_cert_name(agent[0].as_ref()), "edr-7");
        // Not a certificate at all: named by fingerprint.
        assert!(client_cert_name(b"junk").starts_with("sha256:"));
    }

    #[test]
    fn configuration_errors_name_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate_pki(&["localhost".into()], &[], 1).unwrap();
        let other = generate_pki(&["localhost".into()], &[], 1).unwrap();
        let cert = write(dir.path(), "s.pem", &pki.server_cert);
        let key = write(dir.path(), "s.key", &pki.server_key);
        let wrong_key = write(dir.path(), "o.key", &other.server_key);
        let junk = write(dir.path(), "junk.pem", "hello");
        let err = |c: TlsConfig| acceptors(&c).err().expect("an error");

        assert!(acceptors(&TlsConfig::default()).unwrap().is_none());
        let only_cert = TlsConfig {
            cert: Some(cert.clone()),
            ..TlsConfig::default()
        };
        assert!(err(only_cert).contains("go together"));
        let mismatched = TlsConfig {
            cert: Some(cert.clone()),
            key: Some(wrong_key),
            ..TlsConfig::default()
        };
        assert!(err(mismatched).contains("does not fit"));
        let junk_cert = TlsConfig {
            cert: Some(junk.clone()),
            key: Some(key.clone()),
            ..TlsConfig::default()
        };
        assert!(err(junk_cert).contains("holds no certificate"));
        let missing = TlsConfig {
            cert: Some(dir.path().join("absent.pem")),
            key: Some(key.clone()),
            ..TlsConfig::default()
        };
        assert!(err(missing).contains("absent.pem"));
        let auth_without_ca = TlsConfig {
            cert: Some(cert),
            key: Some(key),
            client_auth: Some(ClientAuth::Optional),
            ..TlsConfig::default()
        };
        assert!(err(auth_without_ca).contains("client_ca"));
        assert!(generate_pki(&[], &[], 1).is_err());
        assert!(generate_pki(&["h".into()], &["../x".into()], 1).is_err());
    }

    #[test]
    fn a_renewed_certificate_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate_pki(&["localhost".into()], &[], 1).unwrap();
        let cert = write(dir.path(), "s.pem", &first.server_cert);
        let key = write(dir.path(), "s.key", &first.server_key);
        let r = Reloading::new(&cert, &key).unwrap();
        let served = |r: &Reloading| r.current().cert[0].as_ref().to_vec();
        let before = served(&r);

        // A broken renewal (certificate replaced, key not yet): the old pair stays.
        let second = generate_pki(&["localhost".into()], &[], 1).unwrap();
        std::fs::write(&cert, &second.server_cert).unwrap();
        filetime_bump(&cert);
        r.state.lock().unwrap().checked -= RELOAD_CHECK;
        assert_eq!(served(&r), before);

        std::fs::write(&key, &second.server_key).unwrap();
        filetime_bump(&key);
        r.state.lock().unwrap().checked -= RELOAD_CHECK;
        let after = served(&r);
        assert_ne!(after, before);
        assert_eq!(
            after,
            read_certs(&cert).unwrap()[0].as_ref().to_vec(),
            "the renewed certificate is served"
        );
    }

    /// Moves a file's modification time forward a second (file systems with coarse times).
    fn filetime_bump(p: &Path) {
        let t = modified(p).unwrap() + Duration::from_secs(1);
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(t).unwrap();
    }
}
