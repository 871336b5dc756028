//! Vigil on Kafka (seed 004's stream): a consumer-group **source** whose offsets are
//! committed only after the events are stored and analyzed, and a **publisher** for findings
//! (every finding, keyed by host) and incidents (the responder route `kafka`).
//!
//! ## Why `rdkafka`
//!
//! Several `vigil serve` nodes must share a topic's partitions in one consumer group and
//! hand them over when a node dies. That needs Kafka's group protocol (join, sync,
//! heartbeats, rebalancing) and offset commits. `rdkafka` wraps librdkafka, the client
//! most Kafka deployments already run, and has all of it. The pure-Rust `rskafka` has no
//! consumer groups; writing the group protocol here would be a second, untested Kafka
//! client. The price is a C library: it is bundled and statically linked, built by cargo in
//! about a minute, with no system package needed.
//!
//! ## Delivery
//!
//! At least once, made exactly once in storage:
//! - A message's events get a stable `event.id` when they carry none:
//!   `kafka-<sha256(topic, partition, offset, line)>`. A redelivered message maps to the same
//!   ids, and the store keeps one copy.
//! - Offsets are committed after [`vigil_pipeline::Pipeline::ingest_settled`] says every
//!   event of the batch is analyzed and its findings stored.
//! - A redelivered event that was stored before is analyzed again (`reanalyze_duplicates`),
//!   so a crash between storing and analysing loses no findings. It may repeat some, and
//!   the correlator deduplicates those.
#![warn(missing_docs)]

mod publisher;
mod source;

pub use publisher::{KafkaPublisher, spawn_findings_publisher};
pub use source::{SourceStats, decode_message, run_source};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[kafka]`: the brokers, the source and what is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated (`kafka-1:9092,kafka-2:9092`); empty turns Kafka
    /// off.
    pub brokers: String,
    /// `client.id` sent to the brokers.
    pub client_id: String,
    /// Consuming events.
    pub source: SourceConfig,
    /// Publish every stored finding to this topic (keyed by `host.name`); none by default.
    pub findings_topic: Option<String>,
    /// Extra librdkafka settings for every client (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, …). A value `env:NAME` is read
    /// from the environment.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> KafkaConfig {
        KafkaConfig {
            brokers: String::new(),
            client_id: "vigil".into(),
            source: SourceConfig::default(),
            findings_topic: None,
            options: BTreeMap::new(),
        }
    }
}

/// `[kafka.source]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Whether to consume.
    pub enabled: bool,
    /// Topics of events: JSON objects, or NDJSON (one event per line) per message.
    pub topics: Vec<String>,
    /// The consumer group all nodes share.
    pub group_id: String,
    /// Events per batch at most (stored, analyzed, then committed together).
    pub max_batch: usize,
    /// Milliseconds to wait for a batch to fill once its first message arrived.
    pub batch_wait_ms: u64,
    /// Where a group with no committed offset starts: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Milliseconds without heartbeats before the group gives a node's partitions away.
    pub session_timeout_ms: u32,
    /// Largest message accepted, in bytes; larger ones are skipped and counted.
    pub max_message_bytes: usize,
}

impl Default for SourceConfig {
    fn default() -> SourceConfig {
        SourceConfig {
            enabled: false,
            topics: vec!["vigil-events".into()],
            group_id: "vigil".into(),
            max_batch: 1000,
            batch_wait_ms: 100,
            auto_offset_reset: "earliest".into(),
            session_timeout_ms: 10_000,
            max_message_bytes: 4 << 20,
        }
    }
}

/// Why Kafka cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The configuration is unusable.
    #[error("Kafka configuration: {0}")]
    Config(String),
    /// The client failed.
    #[error("Kafka: {0}")]
    Client(String),
}

impl KafkaConfig {
    /// Whether Kafka is configured at all.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// Checks what can be checked without a broker.
    pub fn validate(&self) -> Result<(), KafkaError> {
        let bad = |m: String| Err(KafkaError::Config(m));
        if !self.enabled() {
            if self.source.enabled || self.findings_topic.is_some() {
                return bad("set `brokers` to use the Kafka source or findings topic".into());
            }
            return Ok(());
        }
        if self.source.enabled {
            if self.source.topics.is_empty() || self.source.topics.iter().any(|t| t.is_empty()) {
                return bad("[kafka.source] topics must name at least one topic".into());
            }
            if self.source.group_id.trim().is_empty() {
                return bad("[kafka.source] group_id is empty".into());
            }
            if !matches!(
                self.source.auto_offset_reset.as_str(),
                "earliest" | "latest"
            ) {
                return bad("[kafka.source] auto_offset_reset must be earliest or latest".into());
            }
            if self.source.max_batch == 0 {
                return bad("[kafka.source] max_batch must be at least 1".into());
            }
        }
        Ok(())
    }

    /// The librdkafka settings shared by every client; `env:` values resolved.
    pub(crate) fn client_config(&self) -> Result<rdkafka::ClientConfig, KafkaError> {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        for (k, v) in &self.options {
            let v = match v.strip_prefix("env:") {
                Some(name) => std::env::var(name).map_err(|_| {
                    KafkaError::Config(format!(
                        "[kafka.options] {k} names environment variable {name}, which is not set"
                    ))
                })?,
                None => v.clone(),
            };
            c.set(k, v);
        }
        Ok(c)
    }
}
