//! A client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's
//! server, Ollama, LiteLLM, …): `POST {url}/chat/completions` with `tools`, and
//! `POST {url}/embeddings` for the knowledge base's optional dense retrieval.
//!
//! The endpoint is guarded (issue 12, [`vigil_core::net_guard`]): an internal address is
//! allowed by default (`allow_internal = true`: the operator configures the URL, and a
//! model server on localhost or the LAN is the usual setup), but cloud metadata
//! (169.254.0.0/16, …) is refused, by literal address, name, or DNS answer at each
//! connection, unless an `internal_allow` CIDR block contains it; with
//! `allow_internal = false`, every internal address is refused but those listed. Redirects
//! are never followed, so the requests (and the API key) stay on the configured host.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use vigil_core::net_guard::{Guard, find_refusal};
use vigil_http::{Fixed, GuardedResolver};

/// Largest response read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 2 << 20;

/// Where the model is and how to call it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL ending before `/chat/completions`, e.g. `http://127.0.0.1:8080/v1`.
    pub url: String,
    /// Model name sent in requests.
    pub model: String,
    /// Bearer token, if the endpoint needs one (`env:NAME` reads the environment).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Seconds one request may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// `max_tokens` per reply.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: f32,
    /// Embedding model for dense retrieval at the same URL (`/embeddings`); none by default.
    #[serde(default)]
    pub embedding_model: Option<String>,
    /// Whether `url` may be an internal address (loopback, private, link-local, …), by
    /// literal, reserved name (`localhost`, `*.internal`) or DNS answer. On by default: the
    /// operator configures it, and a model server on localhost or the LAN is the usual
    /// setup. Cloud metadata (169.254.0.0/16, …) is refused either way.
    #[serde(default = "default_allow_internal")]
    pub allow_internal: bool,
    /// Internal targets allowed all the same (addresses, CIDR blocks, host names,
    /// `*.suffix`), for `allow_internal = false`; only a CIDR block opens a cloud metadata
    /// address.
    #[serde(default)]
    pub internal_allow: Vec<String>,
}

fn default_allow_internal() -> bool {
    true
}

fn default_timeout() -> u64 {
    60
}

fn default_max_tokens() -> u32 {
    1024
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout_secs", &self.timeout_secs)
            .field("embedding_model", &self.embedding_model)
            .field("allow_internal", &self.allow_internal)
            .field("internal_allow", &self.internal_allow)
            .finish()
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// Configuration is unusable.
    #[error("LLM configuration: {0}")]
    Config(String),
    /// The request did not complete (connection, timeout).
    #[error("LLM request failed: {0}")]
    Transport(String),
    /// The endpoint answered with an error status.
    #[error("LLM endpoint answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer is not the chat-completions format.
    #[error("LLM answer is not in the chat-completions format: {0}")]
    Format(String),
}

/// A tool call the model asked for, as received (arguments unparsed).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedCall {
    /// The call id, echoed in the tool message.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments as the model wrote them (JSON text, maybe malformed).
    pub arguments: String,
}

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Text content.
    pub content: Option<String>,
    /// Tool calls.
    pub tool_calls: Vec<RequestedCall>,
    /// The assistant message as received (for diagnostics; the history carries a
    /// canonical copy).
    pub message: Value,
}

impl Reply {
    /// The reply as it goes back into the history: a canonical assistant message, not the
    /// message as received. Servers validate the history strictly (llama-cpp-python's
    /// refuses `"content": null`, which OpenAI sends with tool calls; an empty string passes
    /// everywhere).
    pub fn assistant_echo(&self) -> Value {
        let mut m =
            json!({"role": "assistant", "content": self.content.clone().unwrap_or_default()});
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
        }
        m
    }
}

/// A tool result for the history.
pub fn tool_message(call_id: &str, content: &str) -> Value {
    json!({"role": "tool", "tool_call_id": call_id, "content": content})
}

/// The client.
#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    cfg: LlmConfig,
    key: Option<String>,
    /// `scheme://host:port` of `url`, for messages.
    origin: String,
}

impl ChatClient {
    /// Builds a client; `env:NAME` keys are read from the environment here. Fails on a URL
    /// that is not http(s), carries credentials, or is a refused address or name.
    pub fn new(cfg: LlmConfig) -> Result<ChatClient, LlmError> {
        ChatClient::build(cfg, Fixed::default())
    }

    fn build(cfg: LlmConfig, fixed: Fixed) -> Result<ChatClient, LlmError> {
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| LlmError::Config(format!("`url` `{}` is not a URL ({e})", cfg.url)))?;
        let origin = url.origin().ascii_serialization();
        let guard = Guard::new("[triage.llm]", cfg.allow_internal, &cfg.internal_allow)
            .map_err(LlmError::Config)?;
        guard
            .check_target(
                url.scheme(),
                !url.username().is_empty() || url.password().is_some(),
                url.host_str(),
            )
            .map_err(|e| LlmError::Config(format!("`url` {origin}: {e}")))?;
        let key = match cfg.api_key.as_deref() {
            Some(k) if k.starts_with("env:") => Some(std::env::var(&k[4..]).map_err(|_| {
                LlmError::Config(format!(
                    "`api_key` names environment variable {} which is not set",
                    &k[4..]
                ))
            })?),
            other => other.map(str::to_string),
        };
        vigil_http::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(
                Arc::new(guard),
                url.host_str().unwrap_or_default(),
                fixed,
            )))
            .build()
            .map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(ChatClient {
            http,
            cfg,
            key,
            origin,
        })
    }

    /// The model name.
    pub fn model(&self) -> &str {
        &self.cfg.model
    }

    /// The embedding model, if configured.
    pub fn embedding_model(&self) -> Option<&str> {
        self.cfg.embedding_model.as_deref()
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, LlmError> {
        let url = format!("{}/{path}", self.cfg.url.trim_end_matches('/'));
        let mut req = self.http.post(&url).json(body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let mut resp = req.send().await.map_err(|e| {
            LlmError::Transport(if let Some(r) = find_refusal(&e) {
                format!("refused {}: {r}", self.origin)
            } else if e.is_timeout() {
                format!("no answer within {} s", self.cfg.timeout_secs)
            } else {
                e.without_url().to_string()
            })
        })?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| LlmError::Transport(e.without_url().to_string()))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(LlmError::Format(format!(
                    "answer larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| LlmError::Format(e.to_string()))
    }

    /// One chat turn. `tools` is the OpenAI `tools` array (may be empty); with
    /// `allow_tools = false` the model is told not to call any (`tool_choice: none`).
    pub async fn chat(
        &self,
        messages: &[Value],
        tools: &[Value],
        allow_tools: bool,
    ) -> Result<Reply, LlmError> {
        let mut body = json!({
            "model": self.cfg.model,
            "messages": messages,
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        });
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools.to_vec());
            body["tool_choice"] = json!(if allow_tools { "auto" } else { "none" });
        }
        let v = self.post("chat/completions", &body).await?;
        let message = v
            .pointer("/choices/0/message")
            .cloned()
            .ok_or_else(|| LlmError::Format("no choices[0].message".into()))?;
        let content = message["content"].as_str().map(str::to_string);
        let mut tool_calls = Vec::new();
        for (i, c) in message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .take(32)
        {
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let arguments = match c.pointer("/function/arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            tool_calls.push(RequestedCall {
                id: c["id"]
                    .as_str()
                    .map_or_else(|| format!("call_{i}"), str::to_string),
                name: name.to_string(),
                arguments,
            });
        }
        Ok(Reply {
            content,
            tool_calls,
            message,
        })
    }

    /// Embeddings of texts (in order), with the configured embedding model.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let model = self
            .cfg
            .embedding_model
            .as_deref()
            .ok_or_else(|| LlmError::Config("no `embedding_model` configured".into()))?;
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(64) {
            let v = self
                .post("embeddings", &json!({"model": model, "input": batch}))
                .await?;
            let data = v["data"]
                .as_array()
                .ok_or_else(|| LlmError::Format("no `data` array".into()))?;
            if data.len() != batch.len() {
                return Err(LlmError::Format(format!(
                    "{} embeddings for {} inputs",
                    data.len(),
                    batch.len()
                )));
            }
            let mut rows: Vec<(usize, Vec<f32>)> = data
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let idx = d["index"].as_u64().map_or(i, |x| x as usize);
                    let vec = d["embedding"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_f64)
                                .map(|x| x as f32)
                                .collect()
                        })
                        .unwrap_or_default();
                    (idx, vec)
                })
                .collect();
            rows.sort_by_key(|r| r.0);
            out.extend(rows.into_iter().map(|r| r.1));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, allow_internal: bool, internal_allow: &[&str]) -> LlmConfig {
        LlmConfig {
            url: url.into(),
            model: "m".into(),
            api_key: None,
            timeout_secs: 5,
            max_tokens: 16,
            temperature: 0.0,
            embedding_model: None,
            allow_internal,
            internal_allow: internal_allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn config_error(c: LlmConfig) -> String {
        match ChatClient::new(c) {
            Err(LlmError::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn local_models_are_allowed_by_default_but_not_cloud_metadata() {
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:11434/v1",
            "http://10.0.0.7:8000/v1",
            "http://[::1]:8080/v1",
            "https://api.openai.com/v1",
        ] {
            ChatClient::new(cfg(url, true, &[])).unwrap();
        }
        for url in [
            "http://169.254.169.254/latest",
            "http://[::ffff:169.254.169.254]/v1",
            "http://metadata.google.internal/v1",
        ] {
            let m = config_error(cfg(url, true, &[]));
            assert!(m.contains("cloud metadata"), "{url}: {m}");
            assert!(m.contains("[triage.llm] internal_allow"), "{url}: {m}");
        }
        ChatClient::new(cfg(
            "http://169.254.169.254/v1",
            true,
            &["169.254.169.254/32"],
        ))
        .unwrap();
        let m = config_error(cfg("http://u:p@llm.example.org/v1", true, &[]));
        assert!(m.contains("credentials"), "{m}");
        let m = config_error(cfg("ftp://llm.example.org/v1", true, &[]));
        assert!(m.contains("http or https"), "{m}");
    }

    #[test]
    fn with_allow_internal_off_internal_endpoints_need_the_list() {
        let m = config_error(cfg("http://127.0.0.1:8080/v1", false, &[]));
        assert!(m.contains("`url` http://127.0.0.1:8080"), "{m}");
        assert!(m.contains("[triage.llm] allow_internal = true"), "{m}");
        ChatClient::new(cfg("http://127.0.0.1:8080/v1", false, &["127.0.0.1"])).unwrap();
        ChatClient::new(cfg("https://api.openai.com/v1", false, &[])).unwrap();
        let m = config_error(cfg("https://api.openai.com/v1", false, &["not a host"]));
        assert!(m.contains("[triage.llm] internal_allow"), "{m}");
    }

    #[tokio::test]
    async fn dns_answers_are_checked_at_each_request() {
        let fixed: Fixed = Arc::new(vec![
            ("llm.example.org".into(), "169.254.169.254".parse().unwrap()),
            ("lan.example.org".into(), "127.0.0.1".parse().unwrap()),
        ]);
        let chat = |url: &str, allow: bool| {
            let client = ChatClient::build(cfg(url, allow, &[]), fixed.clone()).unwrap();
            async move {
                client
                    .chat(&[json!({"role": "user", "content": "hi"})], &[], false)
                    .await
            }
        };
        let e = chat("http://llm.example.org:8080/v1", true)
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("refused http://llm.example.org:8080")
                && m.contains("resolves to 169.254.169.254")
                && m.contains("cloud metadata"),
            "{m}"
        );
        let m = chat("http://lan.example.org:9/v1", false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("resolves to 127.0.0.1") && m.contains("[triage.llm] allow_internal"),
            "{m}"
        );
        // Allowed: the request goes out (and finds nothing listening on port 9).
        let m = chat("http://lan.example.org:9/v1", true)
            .await
            .unwrap_err()
            .to_string();
        assert!(!m.contains("internal address"), "{m}");
    }
}
