//! `vigil serve` on Kafka: events consumed from a topic in a consumer group, stored and
//! analyzed (a user script), findings published keyed by host; a restart in the same group
//! reads nothing twice. Needs the broker `.ci/run` starts (`VIGIL_TEST_KAFKA`).

mod common;

use common::{Server, client};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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

async fn total(url: &str, key: &str, path: &str, field: &str) -> usize {
    let http = client();
    let mut n = 0;
    let mut next: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{url}{path}"))
            .bearer_auth(key)
            .query(&[("limit", "1000")]);
        if let Some(c) = &next {
            req = req.query(&[("next", c)]);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        n += v[field].as_array().map_or(0, Vec::len);
        match v["next"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_consumes_a_topic_and_publishes_findings() {
    let Some(brokers) = broker() else { return };
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let (events_topic, findings_topic, group) = (
        format!("events-{suffix}"),
        format!("findings-{suffix}"),
        format!("group-{suffix}"),
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[
                NewTopic::new(&events_topic, 2, TopicReplication::Fixed(1)),
                NewTopic::new(&findings_topic, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let dir = tempfile::tempdir().unwrap();
    let topics = format!("[\"{events_topic}\"]");
    let env = [
        ("VIGIL_KAFKA__BROKERS", brokers.as_str()),
        ("VIGIL_KAFKA__FINDINGS_TOPIC", findings_topic.as_str()),
        ("VIGIL_KAFKA__SOURCE__ENABLED", "true"),
        ("VIGIL_KAFKA__SOURCE__TOPICS", topics.as_str()),
        ("VIGIL_KAFKA__SOURCE__GROUP_ID", group.as_str()),
        ("VIGIL_KAFKA__SOURCE__SESSION_TIMEOUT_MS", "6000"),
    ];
    let server = Server::start_with_env(dir.path(), &env);
    let key = server.admin_key.clone().unwrap();
    let script = r#"
fn analyze(event, config) {
    let m = event["message"];
    if m == () || !m.starts_with("alert") { return (); }
    #{ score: 80, summary: m }
}
"#;
    let r = client()
        .post(format!("{}/api/v1/scripts", server.url))
        .bearer_auth(&key)
        .json(&json!({"name": "alerts", "source": script, "categories": ["*"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for i in 0..200 {
        let host = format!("h{}", i % 4);
        let msg = if i % 20 == 0 {
            format!("alert {i}")
        } else {
            format!("ok {i}")
        };
        let payload = json!({"message": msg, "host": {"name": host}}).to_string();
        producer
            .send(
                FutureRecord::to(&events_topic).key(&host).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let t = Instant::now();
    while total(&server.url, &key, "/api/v1/events", "events").await < 200 {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "events did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let t = Instant::now();
    while total(&server.url, &key, "/api/v1/findings", "findings").await < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "findings did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The findings topic holds them, keyed by host.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("reader-{suffix}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&findings_topic]).unwrap();
    let mut published = Vec::new();
    while published.len() < 10 {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("findings were published")
            .unwrap();
        let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            m.key().map(|k| String::from_utf8_lossy(k).to_string()),
            v["host.name"].as_str().map(String::from)
        );
        published.push(v);
    }
    assert!(
        published
            .iter()
            .all(|f| f["summary"].as_str().unwrap().starts_with("alert"))
    );

    // A graceful restart in the same group reads nothing again.
    let mut server = server;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = server.child.wait();
    drop(server);
    let server = Server::start_with_env(dir.path(), &env);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        total(&server.url, &key, "/api/v1/events", "events").await,
        200,
        "nothing twice"
    );
}
