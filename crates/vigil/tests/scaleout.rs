//! Two `vigil serve` nodes in one consumer group on one Kafka broker, storing into one
//! OpenSearch-API engine: events produced, one node killed with SIGKILL mid-stream, every
//! event stored exactly once. Needs `VIGIL_TEST_KAFKA` and `VIGIL_TEST_OPENSEARCH`
//! (`.ci/run` starts tansu and osmem-server).

mod common;

use common::{Server, client};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn env(name: &str, require: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) => Some(v),
        Err(_) if std::env::var(require).is_ok() => panic!("{require} is set but {name} is not"),
        Err(_) => {
            eprintln!("skipped: set {name}");
            None
        }
    }
}

async fn os_count(url: &str, prefix: &str) -> u64 {
    let http = client();
    let _ = http
        .post(format!("{url}/{prefix}-events-*/_refresh"))
        .send()
        .await;
    let v: Value = http
        .get(format!(
            "{url}/{prefix}-events-*/_count?allow_no_indices=true"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["count"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_killed_every_event_stored_once() {
    let Some(brokers) = env("VIGIL_TEST_KAFKA", "VIGIL_REQUIRE_KAFKA") else {
        return;
    };
    let Some(os) = env("VIGIL_TEST_OPENSEARCH", "VIGIL_REQUIRE_OPENSEARCH") else {
        return;
    };
    let suffix = format!(
        "{}x{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let (topic, group, prefix) = (
        format!("scale-{suffix}"),
        format!("scale-{suffix}"),
        format!("scale{suffix}"),
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");

    let topics = format!("[\"{topic}\"]");
    let vars = [
        ("VIGIL_STORE__BACKEND", "opensearch"),
        ("VIGIL_OPENSEARCH__URL", os.as_str()),
        ("VIGIL_OPENSEARCH__INDEX_PREFIX", prefix.as_str()),
        ("VIGIL_KAFKA__BROKERS", brokers.as_str()),
        ("VIGIL_KAFKA__SOURCE__ENABLED", "true"),
        ("VIGIL_KAFKA__SOURCE__TOPICS", topics.as_str()),
        ("VIGIL_KAFKA__SOURCE__GROUP_ID", group.as_str()),
        ("VIGIL_KAFKA__SOURCE__SESSION_TIMEOUT_MS", "6000"),
        ("VIGIL_KAFKA__SOURCE__MAX_BATCH", "200"),
    ];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with_env(da.path(), &vars);
    let b = Server::start_with_env(db.path(), &vars);

    // Produced in waves, so that node B is killed while events are still flowing.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let n: u64 = 6000;
    let produce = |from: u64, to: u64| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            for i in from..to {
                let host = format!("h{}", i % 16);
                let payload =
                    json!({"message": format!("m{i}"), "host": {"name": host}}).to_string();
                producer
                    .send(
                        FutureRecord::to(&topic).key(&host).payload(&payload),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap();
            }
        }
    };
    produce(0, n / 2).await;
    let t = Instant::now();
    while os_count(&os, &prefix).await < n / 6 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the nodes did not start consuming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.kill();
    produce(n / 2, n).await;
    let t = Instant::now();
    let mut count = 0;
    while t.elapsed() < Duration::from_secs(180) {
        count = os_count(&os, &prefix).await;
        if count >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        count, n,
        "every event stored exactly once (none lost, none twice)"
    );
    // The survivor serves them through the same API.
    let key = a.admin_key.clone().unwrap();
    let v: Value = client()
        .get(format!("{}/api/v1/events?limit=1", a.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    // A few more seconds: nothing else arrives (no late duplicates).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(os_count(&os, &prefix).await, n);
}
