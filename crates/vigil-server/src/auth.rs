//! Authentication (API keys, JWT) and role checks.
//!
//! A request carries `Authorization: Bearer <token>`. A token that starts with
//! [`API_KEY_PREFIX`] is an API key, looked up by its SHA-256 (keys are never stored in
//! clear). Anything else is tried as a JWT (HS256 with a shared secret, or RS256 with a
//! public key), whose `role` claim gives the role. Only a WebSocket upgrade may carry the
//! token as `?access_token=` instead, because browsers cannot set headers on WebSockets.

use crate::{AppError, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use vigil_core::Role;
use vigil_store::{ApiKey, Store};

/// Every API key starts with this, so that secret scanners can recognize leaked keys.
pub const API_KEY_PREFIX: &str = "vgl_";

/// Authentication settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require credentials on every endpoint but health and metrics. Turning this off
    /// lets anyone on the network read and write everything: only for local experiments.
    pub enabled: bool,
    /// Shared secret for HS256 JWTs (prefer the `VIGIL_AUTH__JWT_HS256_SECRET` variable).
    pub jwt_hs256_secret: Option<String>,
    /// PEM file with the RSA public key for RS256 JWTs.
    pub jwt_rs256_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, if set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, if set.
    pub jwt_audience: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            jwt_hs256_secret: None,
            jwt_rs256_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field(
                "jwt_hs256_secret",
                &self.jwt_hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_rs256_public_key_file", &self.jwt_rs256_public_key_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .finish()
    }
}

/// Why the authentication settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// The RS256 key file could not be read.
    #[error("cannot read auth.jwt_rs256_public_key_file {path}: {source}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The RS256 key is not a PEM RSA public key.
    #[error("auth.jwt_rs256_public_key_file {path} is not a PEM RSA public key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HS256 secret is too short to be safe.
    #[error("auth.jwt_hs256_secret must be at least 32 bytes")]
    WeakSecret,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// API key id, JWT `sub`, or `anonymous` when auth is off.
    pub subject: String,
    /// What they may do.
    pub role: Role,
}

/// How long a checked API key is trusted without asking the store again. Revocation
/// through this server clears the cache at once; a key revoked by another process (say,
/// another node) stops working within this time.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Most API keys remembered.
const KEY_CACHE_MAX: usize = 10_000;

/// Checks credentials.
pub struct Authenticator {
    enabled: bool,
    store: Arc<dyn Store>,
    jwt: Vec<(DecodingKey, Validation)>,
    /// Recently checked keys by hash: a hot path (every request) without a store read.
    keys: std::sync::Mutex<std::collections::HashMap<String, (Principal, std::time::Instant)>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// Issued at (seconds since the epoch); checked against the clock like `exp`.
    iat: Option<f64>,
}

/// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
const JWT_LEEWAY_SECS: u64 = 30;

/// The `alg` a JWT's header names, read without trusting anything else in it (for a clear
/// refusal of `none` and of algorithms this server does not take).
fn jwt_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

impl Authenticator {
    /// Builds the authenticator from its settings.
    pub fn new(config: &AuthConfig, store: Arc<dyn Store>) -> Result<Self, AuthConfigError> {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = JWT_LEEWAY_SECS;
            // A token is not valid before its `nbf` (issue 22: one valid from an hour
            // ahead was accepted); `iat` is checked after decoding.
            v.validate_nbf = true;
            v.set_required_spec_claims(&["exp", "sub"]);
            if let Some(iss) = &config.jwt_issuer {
                v.set_issuer(&[iss]);
            }
            match &config.jwt_audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            v
        };
        let mut jwt = Vec::new();
        if let Some(secret) = &config.jwt_hs256_secret {
            if secret.len() < 32 {
                return Err(AuthConfigError::WeakSecret);
            }
            jwt.push((
                DecodingKey::from_secret(secret.as_bytes()),
                validation(Algorithm::HS256),
            ));
        }
        if let Some(path) = &config.jwt_rs256_public_key_file {
            let pem = std::fs::read(path).map_err(|source| AuthConfigError::ReadKey {
                path: path.clone(),
                source,
            })?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthConfigError::BadKey {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            jwt.push((key, validation(Algorithm::RS256)));
        }
        Ok(Authenticator {
            enabled: config.enabled,
            store,
            jwt,
            keys: Default::default(),
        })
    }

    /// Forgets every cached API key check (after a revocation).
    pub fn forget_keys(&self) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Whether credentials are required.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Who presented `token`.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, AppError> {
        if token.starts_with(API_KEY_PREFIX) {
            let hash = hash_api_key(token);
            if let Some((p, at)) = self
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&hash)
                && at.elapsed() < KEY_CACHE_TTL
            {
                return Ok(p.clone());
            }
            let key = self
                .store
                .find_api_key(&hash)
                .await?
                .ok_or_else(|| AppError::Unauthorized("unknown or revoked API key".into()))?;
            let principal = Principal {
                subject: format!("key:{}", key.id),
                role: key.role,
            };
            let mut cache = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, (principal.clone(), std::time::Instant::now()));
            return Ok(principal);
        }
        if self.jwt.is_empty() {
            return Err(AppError::Unauthorized(format!(
                "not an API key (they start with `{API_KEY_PREFIX}`), and JWT is not configured on this server"
            )));
        }
        let accepted: Vec<&str> = self
            .jwt
            .iter()
            .map(|(_, v)| match v.algorithms.first() {
                Some(Algorithm::RS256) => "RS256",
                _ => "HS256",
            })
            .collect();
        match jwt_alg(token) {
            Some(alg) if alg.eq_ignore_ascii_case("none") => {
                return Err(AppError::Unauthorized(format!(
                    "invalid token: unsigned tokens (`alg: none`) are never accepted; sign it with {}",
                    accepted.join(" or ")
                )));
            }
            Some(alg) if !accepted.contains(&alg.as_str()) => {
                return Err(AppError::Unauthorized(format!(
                    "invalid token: algorithm `{}` is not accepted here; this server takes {}",
                    alg.chars().take(16).collect::<String>(),
                    accepted.join(" or ")
                )));
            }
            _ => {}
        }
        let mut last = None;
        for (key, validation) in &self.jwt {
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    if let Some(iat) = data.claims.iat
                        && iat > (now + JWT_LEEWAY_SECS) as f64
                    {
                        return Err(AppError::Unauthorized(
                            "invalid token: issued in the future (`iat`); check the issuer's clock"
                                .into(),
                        ));
                    }
                    let role = data.claims.role.parse::<Role>().map_err(|e| {
                        AppError::Unauthorized(format!("invalid token: claim `role`: {e}"))
                    })?;
                    return Ok(Principal {
                        subject: format!("jwt:{}", data.claims.sub),
                        role,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        let msg = match last.as_ref().map(|e| e.kind()) {
            Some(ErrorKind::ExpiredSignature) => "token expired".to_string(),
            Some(ErrorKind::ImmatureSignature) => {
                "invalid token: not valid yet (`nbf` is in the future)".into()
            }
            Some(ErrorKind::InvalidSignature) => "invalid token: bad signature".into(),
            Some(ErrorKind::InvalidIssuer) => "invalid token: wrong issuer".into(),
            Some(ErrorKind::InvalidAudience) => "invalid token: wrong audience".into(),
            Some(ErrorKind::MissingRequiredClaim(c)) => {
                format!("invalid token: missing claim `{c}`")
            }
            Some(ErrorKind::Json(_)) => {
                "invalid token: claims must include `sub` and `role` strings".into()
            }
            _ => "invalid token".into(),
        };
        Err(AppError::Unauthorized(msg))
    }
}

/// SHA-256 of an API key, hex: what the store keeps.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random API key (returned once, in clear) and the record to store.
pub fn generate_api_key(name: &str, role: Role) -> (String, ApiKey) {
    let mut rng = rand::rng();
    let mut random = |n: usize| -> String {
        (&mut rng)
            .sample_iter(&rand::distr::Alphanumeric)
            .take(n)
            .map(char::from)
            .collect()
    };
    let id = random(12).to_ascii_lowercase();
    let key = format!("{API_KEY_PREFIX}{}", random(40));
    let record = ApiKey {
        id,
        name: name.to_string(),
        role,
        key_hash: hash_api_key(&key),
        created_at: vigil_core::now_rfc3339(),
        revoked_at: None,
    };
    (key, record)
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("the Authorization header is not ASCII".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AppError::Unauthorized(
            "the Authorization header must be `Bearer <API key or JWT>`".into(),
        )),
    }
}

/// The WebSocket routes, the only ones where a credential may travel as `?access_token=`
/// (browsers cannot set headers on a WebSocket). Anywhere else a token in a URL would end up
/// in logs and histories for nothing.
const WEBSOCKET_ROUTES: [&str; 3] = [
    "/api/v1/stream",
    "/api/v1/incidents/stream",
    "/api/v1/network/stream",
];

fn query_token(req: &Request) -> Option<String> {
    if !WEBSOCKET_ROUTES.contains(&req.uri().path()) {
        return None;
    }
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return None;
    }
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "access_token").then(|| v.to_string())
    })
}

/// Middleware for routes any valid credential may use, whatever its role.
pub async fn require_credential(
    s: State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(s, req, next, None).await
}

/// Middleware for routes that need the `agent` role (or `admin`).
pub async fn require_agent(
    s: State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(s, req, next, Some(Role::Agent)).await
}

/// Middleware for routes that need the `viewer` role (or `admin`).
pub async fn require_viewer(
    s: State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(s, req, next, Some(Role::Viewer)).await
}

/// Middleware for routes that need the `admin` role.
pub async fn require_admin(
    s: State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(s, req, next, Some(Role::Admin)).await
}

/// Authenticates the request and checks it may do what needs `required` (any role when
/// `None`).
/// Puts the [`Principal`] into the request extensions, and into the response's for the
/// access log (which runs outside and so sees the final status), a refusal for lack of
/// role included.
async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
    required: Option<Role>,
) -> Result<Response, AppError> {
    let auth = &state.auth;
    let principal = if !auth.enabled() {
        Principal {
            subject: "anonymous".into(),
            role: Role::Admin,
        }
    } else {
        let token = match bearer(req.headers())? {
            Some(t) => t.to_string(),
            None => query_token(&req).ok_or_else(|| {
                AppError::Unauthorized(
                    "missing credential: send `Authorization: Bearer <API key or JWT>`".into(),
                )
            })?,
        };
        auth.authenticate_token(&token).await?
    };
    if let Some(required) = required
        && !principal.role.allows(required)
    {
        let mut resp = AppError::Forbidden(format!(
            "this needs the `{required}` role; your credential has `{}`",
            principal.role
        ))
        .into_response();
        resp.extensions_mut().insert(principal);
        return Ok(resp);
    }
    req.extensions_mut().insert(principal.clone());
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(principal);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_random_and_hashed() {
        let (k1, r1) = generate_api_key("a", Role::Agent);
        let (k2, _) = generate_api_key("b", Role::Agent);
        assert!(k1.starts_with(API_KEY_PREFIX));
        assert_eq!(k1.len(), API_KEY_PREFIX.len() + 40);
        assert_ne!(k1, k2);
        assert_eq!(r1.key_hash, hash_api_key(&k1));
        assert!(!r1.key_hash.contains(&k1[4..]));
    }

    #[test]
    fn debug_never_shows_the_jwt_secret() {
        let c = AuthConfig {
            jwt_hs256_secret: Some("super-secret-value-that-is-long-enough".into()),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}
