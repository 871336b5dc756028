//! Publishing to Kafka: the responder route `kafka` (incidents, through the durable
//! outbox) and the findings topic.

use crate::{KafkaConfig, KafkaError};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use vigil_core::Finding;
use vigil_respond::{PublishError, Publisher};

/// An idempotent producer (`acks=all`) shared by every publishing part of the server.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KafkaPublisher")
    }
}

impl KafkaPublisher {
    /// Connects to the configured brokers (lazily: errors show on the first publish).
    pub fn new(cfg: &KafkaConfig) -> Result<KafkaPublisher, KafkaError> {
        let producer: FutureProducer = cfg
            .client_config()?
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5")
            .create()
            .map_err(|e| KafkaError::Client(e.to_string()))?;
        Ok(KafkaPublisher { producer })
    }
}

#[async_trait::async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(
        &self,
        topic: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), PublishError> {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(h);
        match self.producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                let retryable = !matches!(
                    e,
                    RdError::MessageProduction(
                        RDKafkaErrorCode::MessageSizeTooLarge
                            | RDKafkaErrorCode::InvalidMessage
                            | RDKafkaErrorCode::TopicAuthorizationFailed
                            | RDKafkaErrorCode::InvalidTopic
                    )
                );
                Err(PublishError {
                    retryable,
                    message: e.to_string(),
                })
            }
        }
    }
}

/// Publishes every stored finding to `topic`, keyed by `host.name`. Best effort by
/// design: findings are in the store already; one that cannot be published is counted
/// (`vigil_kafka_publish_errors_total`) and logged, and a publisher that falls behind the
/// findings stream skips what it missed (`vigil_kafka_findings_skipped_total`).
pub fn spawn_findings_publisher(
    publisher: Arc<KafkaPublisher>,
    topic: String,
    mut findings: broadcast::Receiver<Arc<Finding>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let f = match findings.recv().await {
                Ok(f) => f,
                Err(RecvError::Lagged(n)) => {
                    metrics::counter!("vigil_kafka_findings_skipped_total").increment(n);
                    tracing::warn!(skipped = n, "findings publisher fell behind");
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let payload = serde_json::to_vec(&*f).unwrap_or_default();
            let key = f.host_name.as_deref().unwrap_or("");
            let headers = [("vigil-finding-id", f.id.as_str())];
            match publisher.publish(&topic, key, &headers, &payload).await {
                Ok(()) => metrics::counter!("vigil_kafka_published_total", "kind" => "finding")
                    .increment(1),
                Err(e) => {
                    metrics::counter!("vigil_kafka_publish_errors_total").increment(1);
                    tracing::warn!(error = %e.message, finding = %f.id, "finding not published");
                }
            }
        }
    })
}
