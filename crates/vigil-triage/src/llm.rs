//! A client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's
//! server, Ollama, LiteLLM, …): `POST {url}/chat/completions` with `tools`, and
//! `POST {url}/embeddings` for the knowledge base's optional dense retrieval.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

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
}

impl ChatClient {
    /// Builds a client; `env:NAME` keys are read from the environment here.
    pub fn new(cfg: LlmConfig) -> Result<ChatClient, LlmError> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "`url` must start with http:// or https://, got `{}`",
                cfg.url
            )));
        }
        let key = match cfg.api_key.as_deref() {
            Some(k) if k.starts_with("env:") => Some(std::env::var(&k[4..]).map_err(|_| {
                LlmError::Config(format!(
                    "`api_key` names environment variable {} which is not set",
                    &k[4..]
                ))
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
            .map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(ChatClient { http, cfg, key })
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
            LlmError::Transport(if e.is_timeout() {
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
