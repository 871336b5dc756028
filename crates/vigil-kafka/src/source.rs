//! The consumer-group source.

use crate::{KafkaConfig, KafkaError};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vigil_core::Event;
use vigil_pipeline::{IngestError, Pipeline};

/// Counters of a running source (also exported as metrics).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Messages read.
    pub messages: AtomicU64,
    /// Events handed to the pipeline (stored and analyzed before their offsets commit).
    pub events: AtomicU64,
    /// Of those, events stored before (redeliveries).
    pub duplicates: AtomicU64,
    /// Messages or lines that were not events (skipped, counted, logged).
    pub invalid: AtomicU64,
    /// Batches whose offsets were committed.
    pub commits: AtomicU64,
}

/// Reads one message's payload into events: a JSON object is one event; otherwise each
/// non-empty line must be one (NDJSON). Events without an `event.id` get a stable one
/// derived from where the message sits in the log. Returns the events and the errors of
/// the lines that were not events.
pub fn decode_message(
    topic: &str,
    partition: i32,
    offset: i64,
    payload: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let Ok(text) = std::str::from_utf8(payload) else {
        errors.push("the message is not UTF-8".into());
        return (events, errors);
    };
    let whole = text.trim_start().starts_with('{')
        && serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object());
    let lines: Vec<&str> = if whole {
        vec![text]
    } else {
        text.lines().collect()
    };
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("line {}: not JSON ({e})", i + 1));
                continue;
            }
        };
        let Some(obj) = v.as_object_mut() else {
            errors.push(format!("line {}: an event must be a JSON object", i + 1));
            continue;
        };
        let has_id = obj.get("event.id").is_some()
            || obj
                .get("event")
                .and_then(|e| e.get("id"))
                .is_some_and(|id| !id.is_null());
        if !has_id {
            let mut h = Sha256::new();
            h.update(topic.as_bytes());
            h.update([0]);
            h.update(partition.to_be_bytes());
            h.update(offset.to_be_bytes());
            h.update((i as u64).to_be_bytes());
            let id = format!("kafka-{}", &hex::encode(h.finalize())[..40]);
            obj.insert("event.id".into(), Value::String(id));
        }
        match Event::from_input(v, now) {
            Ok(e) => events.push(e),
            Err(e) => errors.push(format!("line {}: {e}", i + 1)),
        }
    }
    (events, errors)
}

/// Consumes `[kafka.source]` topics in the consumer group until `stop` turns true: each
/// batch is stored and analyzed through `pipeline`, then its offsets are committed.
pub async fn run_source(
    cfg: KafkaConfig,
    pipeline: Pipeline,
    mut stop: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
) -> Result<(), KafkaError> {
    cfg.validate()?;
    let src = &cfg.source;
    let consumer: StreamConsumer = cfg
        .client_config()?
        .set("group.id", &src.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &src.auto_offset_reset)
        .set("session.timeout.ms", src.session_timeout_ms.to_string())
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    let topics: Vec<&str> = src.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    tracing::info!(topics = ?src.topics, group = %src.group_id, "Kafka source subscribed");
    let wait = Duration::from_millis(src.batch_wait_ms.max(1));
    // The offsets of the last batch fully handled, committed again synchronously at the end.
    let mut last_done: Option<TopicPartitionList> = None;
    loop {
        let first = tokio::select! {
            _ = stop.changed() => break,
            m = consumer.recv() => m,
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => {
                metrics::counter!("vigil_kafka_errors_total").increment(1);
                tracing::warn!(error = %e, "Kafka consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + wait;
        let mut n_events = 0usize;
        while n_events < src.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(m)) => {
                    n_events += 1;
                    batch.push(m);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Kafka consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
        let (events, positions) = decode_batch(&batch, src.max_message_bytes, &stats);
        drop(batch);
        if !ingest(&pipeline, events, src.max_batch, &stats).await {
            // The pipeline is shutting down: nothing of this batch is committed, so it is
            // read again after the restart.
            break;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &positions {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
            {
                tracing::warn!(error = %e, "cannot record an offset");
            }
        }
        match consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                last_done = Some(tpl);
            }
            Err(e) => {
                // After a rebalance took a partition away, its new owner reads the batch
                // again; the store keeps one copy of each event.
                metrics::counter!("vigil_kafka_commit_errors_total").increment(1);
                tracing::warn!(error = %e, "Kafka offset commit failed");
            }
        }
    }
    // The last batch handled, synchronously, so that a clean stop re-reads nothing. (Not
    // the consumer's position: a batch abandoned because the pipeline was shutting down
    // must be read again.)
    if let Some(tpl) = last_done
        && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
    {
        tracing::warn!(error = %e, "final Kafka offset commit failed");
    }
    consumer.unsubscribe();
    tracing::info!("Kafka source stopped");
    Ok(())
}

type Positions = BTreeMap<(String, i32), i64>;

fn decode_batch(
    batch: &[BorrowedMessage<'_>],
    max_bytes: usize,
    stats: &SourceStats,
) -> (Vec<Event>, Positions) {
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    let mut positions: Positions = BTreeMap::new();
    for m in batch {
        stats.messages.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("vigil_kafka_messages_total").increment(1);
        let key = (m.topic().to_string(), m.partition());
        let at = positions.entry(key).or_insert(m.offset());
        *at = (*at).max(m.offset());
        let payload = m.payload().unwrap_or_default();
        if payload.len() > max_bytes {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("vigil_kafka_invalid_total").increment(1);
            tracing::warn!(
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                bytes = payload.len(),
                "Kafka message larger than max_message_bytes; skipped"
            );
            continue;
        }
        let (evs, errors) = decode_message(m.topic(), m.partition(), m.offset(), payload, now);
        for e in errors.iter().take(3) {
            tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(),
                error = %e, "Kafka message line is not an event; skipped");
        }
        stats
            .invalid
            .fetch_add(errors.len() as u64, Ordering::Relaxed);
        metrics::counter!("vigil_kafka_invalid_total").increment(errors.len() as u64);
        events.extend(evs);
    }
    (events, positions)
}

/// Stores and analyzes `events` in chunks, waiting out overload and store failures; false
/// when the pipeline is shutting down.
async fn ingest(
    pipeline: &Pipeline,
    events: Vec<Event>,
    chunk: usize,
    stats: &SourceStats,
) -> bool {
    let mut settles = Vec::new();
    let mut rest = events;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(chunk.max(1)));
        let part = std::mem::replace(&mut rest, tail);
        let mut delay = Duration::from_millis(100);
        loop {
            match pipeline.ingest_settled(part.clone(), true).await {
                Ok((flags, settled)) => {
                    let dup = flags.iter().filter(|f| !**f).count() as u64;
                    stats
                        .events
                        .fetch_add(flags.len() as u64, Ordering::Relaxed);
                    stats.duplicates.fetch_add(dup, Ordering::Relaxed);
                    metrics::counter!("vigil_kafka_events_total").increment(flags.len() as u64);
                    settles.push(settled);
                    break;
                }
                Err(IngestError::ShuttingDown) => return false,
                Err(IngestError::Overloaded {
                    retry_after_secs, ..
                }) => {
                    tokio::time::sleep(Duration::from_secs(retry_after_secs.max(1))).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka batch not stored; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
    for s in settles {
        if s.await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::FieldLookup;

    #[test]
    fn messages_become_events_with_stable_ids() {
        let now = chrono::Utc::now();
        let (e, err) = decode_message("t", 1, 42, br#"{"message": "a"}"#, now);
        assert!(err.is_empty());
        let (again, _) = decode_message("t", 1, 42, br#"{"message": "a"}"#, now);
        assert_eq!(e[0].id(), again[0].id(), "a redelivery maps to the same id");
        assert!(e[0].id().starts_with("kafka-"));
        let (other, _) = decode_message("t", 1, 43, br#"{"message": "a"}"#, now);
        assert_ne!(e[0].id(), other[0].id());
        let (given, _) = decode_message("t", 1, 42, br#"{"event": {"id": "mine"}}"#, now);
        assert_eq!(given[0].id(), "mine");

        let ndjson = b"{\"message\": \"1\"}\n\nnot json\n[1]\n{\"message\": \"2\"}\n";
        let (evs, errs) = decode_message("t", 0, 7, ndjson, now);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].get_str("message"), Some("2"));
        assert_ne!(evs[0].id(), evs[1].id());
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("line 3"), "{errs:?}");
        let (none, errs) = decode_message("t", 0, 0, &[0xff, 0xfe], now);
        assert!(none.is_empty() && errs[0].contains("UTF-8"));
    }
}
