//! A small client for the REST calls Vigil makes, with the bulk API's retries.

use crate::OpenSearchConfig;
use serde_json::Value;
use std::time::Duration;

/// Largest response read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OsError {
    /// The configuration is unusable.
    #[error("OpenSearch configuration: {0}")]
    Config(String),
    /// No answer (connection refused, timeout).
    #[error("OpenSearch request failed: {0}")]
    Transport(String),
    /// An error status.
    #[error("OpenSearch answered {status}: {reason}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The error's type and reason, or the start of the body.
        reason: String,
    },
    /// The answer is not what the API returns.
    #[error("unexpected OpenSearch answer: {0}")]
    Format(String),
}

/// The outcome of one bulk item.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkItem {
    /// Written.
    Created,
    /// `create` of an `_id` that exists (409): stored before.
    Exists,
    /// Refused for good (a mapping error, …), with the reason.
    Failed(String),
}

/// The client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// Builds a client; `env:` passwords are read here.
    pub fn new(cfg: &OpenSearchConfig) -> Result<Client, OsError> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(OsError::Config(format!(
                "`url` must start with http:// or https://, got `{}`",
                cfg.url
            )));
        }
        let password = match cfg.password.as_deref() {
            Some(p) if p.starts_with("env:") => Some(std::env::var(&p[4..]).map_err(|_| {
                OsError::Config(format!("`password` names {} which is not set", &p[4..]))
            })?),
            other => other.map(str::to_string),
        };
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OsError::Config(e.to_string()))?;
        Ok(Client {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            auth: cfg
                .username
                .clone()
                .map(|u| (u, password.unwrap_or_default())),
            attempts: cfg.bulk_attempts.max(1),
            backoff: Duration::from_millis(cfg.backoff_ms.max(1)),
        })
    }

    /// One request; a JSON body for anything but `_bulk` (NDJSON). Error statuses become
    /// [`OsError::Status`] except `allow` (e.g. 404 for "not found").
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        ndjson: bool,
        allow: &[u16],
    ) -> Result<(u16, Value), OsError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    if ndjson {
                        "application/x-ndjson"
                    } else {
                        "application/json"
                    },
                )
                .body(b);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| OsError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| OsError::Transport(e.without_url().to_string()))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(OsError::Format("answer larger than 64 MiB".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).chars().take(300).collect())
            })
        };
        if status >= 400 && !allow.contains(&status) {
            let reason = match &v["error"] {
                Value::Object(e) => format!(
                    "{}: {}",
                    e.get("type").and_then(Value::as_str).unwrap_or("error"),
                    e.get("reason").and_then(Value::as_str).unwrap_or("")
                ),
                other => other.to_string().chars().take(300).collect(),
            };
            return Err(OsError::Status { status, reason });
        }
        Ok((status, v))
    }

    /// A JSON request.
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        allow: &[u16],
    ) -> Result<(u16, Value), OsError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON serialises"));
        self.call(method, path, body, false, allow).await
    }

    fn delay(&self, attempt: u32) -> Duration {
        let base = self.backoff.as_millis() as f64 * 2f64.powi(attempt as i32);
        let jitter = 0.5 + rand::random::<f64>();
        Duration::from_millis((base * jitter).min(30_000.0) as u64)
    }

    /// Sends `(action, source)` pairs with `_bulk`; with `wait_for_refresh`, it returns once
    /// they are searchable (`refresh=wait_for`: up to a refresh interval, so only for
    /// low-volume writes; a write is durable in the translog either way). The request is
    /// retried on 429, 5xx and transport errors,
    /// and items refused with 429 (or 503) are sent again, with exponential backoff and
    /// jitter, up to the configured attempts. Returns one outcome per pair, in order.
    pub async fn bulk(
        &self,
        ops: &[(Value, Value)],
        wait_for_refresh: bool,
    ) -> Result<Vec<BulkItem>, OsError> {
        let path = if wait_for_refresh {
            "/_bulk?refresh=wait_for"
        } else {
            "/_bulk"
        };
        let mut out: Vec<Option<BulkItem>> = vec![None; ops.len()];
        let mut todo: Vec<usize> = (0..ops.len()).collect();
        let mut attempt = 0;
        loop {
            if todo.is_empty() {
                break;
            }
            let mut body = Vec::new();
            for &i in &todo {
                serde_json::to_writer(&mut body, &ops[i].0).expect("JSON serialises");
                body.push(b'\n');
                serde_json::to_writer(&mut body, &ops[i].1).expect("JSON serialises");
                body.push(b'\n');
            }
            let result = self
                .call(reqwest::Method::POST, path, Some(body), true, &[])
                .await;
            let v = match result {
                Ok((_, v)) => v,
                Err(e) => {
                    let retryable = match &e {
                        OsError::Transport(_) => true,
                        OsError::Status { status, .. } => *status == 429 || *status >= 500,
                        _ => false,
                    };
                    attempt += 1;
                    if !retryable || attempt >= self.attempts {
                        return Err(e);
                    }
                    metrics::counter!("vigil_opensearch_bulk_retries_total").increment(1);
                    tracing::warn!(error = %e, attempt, "bulk request failed; retrying");
                    tokio::time::sleep(self.delay(attempt)).await;
                    continue;
                }
            };
            let items = v["items"]
                .as_array()
                .ok_or_else(|| OsError::Format("a bulk answer without `items`".into()))?;
            if items.len() != todo.len() {
                return Err(OsError::Format(format!(
                    "{} bulk items answered for {} sent",
                    items.len(),
                    todo.len()
                )));
            }
            let mut again = Vec::new();
            for (&i, item) in todo.iter().zip(items) {
                let r = item
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or(Value::Null);
                let status = r["status"].as_u64().unwrap_or(0);
                out[i] = Some(match status {
                    200..=299 => BulkItem::Created,
                    409 => BulkItem::Exists,
                    429 | 503 => {
                        again.push(i);
                        continue;
                    }
                    _ => BulkItem::Failed(format!(
                        "{}: {}",
                        r["error"]["type"].as_str().unwrap_or("error"),
                        r["error"]["reason"].as_str().unwrap_or("")
                    )),
                });
            }
            if again.is_empty() {
                break;
            }
            attempt += 1;
            metrics::counter!("vigil_opensearch_bulk_retries_total").increment(1);
            if attempt >= self.attempts {
                for i in again {
                    out[i] = Some(BulkItem::Failed("refused with 429 at every attempt".into()));
                }
                break;
            }
            tokio::time::sleep(self.delay(attempt)).await;
            todo = again;
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or(BulkItem::Failed("no answer".into())))
            .collect())
    }
}
