//! The pipeline over a real SQLite store.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::{Event, Finding};
use vigil_pipeline::*;
use vigil_store::{FindingQuery, SqliteOptions, SqliteStore, Store};

struct KeywordAnalyzer;

impl Analyzer for KeywordAnalyzer {
    fn name(&self) -> &str {
        "test:keyword"
    }
    fn interest(&self) -> Interest {
        Interest::Categories(vec!["process".into()])
    }
    fn analyze(&self, event: &Event) -> Vec<Finding> {
        use vigil_core::FieldLookup;
        match event.get_str("process.command_line") {
            Some(cmd) if cmd.contains("mimikatz") => {
                vec![
                    Finding::new(self.name(), 90.0, "mimikatz on the command line")
                        .with_techniques(["T1003"])
                        .about(event),
                ]
            }
            _ => vec![],
        }
    }
}

struct Panicker;

impl Analyzer for Panicker {
    fn name(&self) -> &str {
        "test:panics"
    }
    fn interest(&self) -> Interest {
        Interest::All
    }
    fn analyze(&self, _: &Event) -> Vec<Finding> {
        panic!("analyzer bug")
    }
}

fn ev(v: serde_json::Value) -> Event {
    Event::from_input(v, chrono::Utc::now()).unwrap()
}

fn setup(config: PipelineConfig) -> (tempfile::TempDir, Arc<SqliteStore>, Pipeline, PipelineTasks) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let registry = Arc::new(AnalyzerRegistry::new());
    registry.register(Arc::new(Panicker));
    registry.register(Arc::new(KeywordAnalyzer));
    let (pipeline, tasks) = Pipeline::start(store.clone(), registry, &config);
    (dir, store, pipeline, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_are_committed_and_analyzed_despite_a_panicking_analyzer() {
    let (_dir, store, pipeline, tasks) = setup(PipelineConfig::default());
    let mut stream = pipeline.subscribe();
    let bad = ev(
        json!({"event.category": "process", "process.command_line": "mimikatz.exe sekurlsa", "host.name": "h"}),
    );
    let good = ev(json!({"event.category": "process", "process.command_line": "ls"}));
    let net = ev(json!({"event.category": "network", "process.command_line": "mimikatz"}));
    let ids = [
        bad.id().to_string(),
        good.id().to_string(),
        net.id().to_string(),
    ];
    let flags = pipeline.ingest(vec![bad.clone(), good, net]).await.unwrap();
    assert_eq!(flags, vec![true, true, true]);
    for id in &ids {
        assert!(
            store.get_event(id).await.unwrap().is_some(),
            "acknowledged {id} must be stored"
        );
    }
    // A retry of the same event is acknowledged but not stored or analyzed twice.
    assert_eq!(
        pipeline.ingest(vec![bad.clone()]).await.unwrap(),
        vec![false]
    );

    let f = tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.analyzer, "test:keyword");
    assert_eq!(f.event_ids, vec![ids[0].clone()]);
    assert_eq!(f.host_name.as_deref(), Some("h"));

    drop(pipeline);
    tasks.shutdown(Duration::from_secs(10)).await;
    let stored = store
        .query_findings(&FindingQuery::default())
        .await
        .unwrap();
    assert_eq!(
        stored.items.len(),
        1,
        "only the process event with mimikatz, once"
    );
}

#[tokio::test]
async fn a_full_queue_refuses_instead_of_growing() {
    let (_dir, _store, pipeline, _tasks) = setup(PipelineConfig {
        ingest_queue: 5,
        ..Default::default()
    });
    let five: Vec<Event> = (0..5).map(|_| ev(json!({}))).collect();
    let first = pipeline.ingest(five);
    tokio::pin!(first);
    // Poll once: the five events are queued, and we do not yield to the committer.
    assert!(futures_poll_once(&mut first).await.is_none());
    match pipeline.ingest(vec![ev(json!({}))]).await {
        Err(IngestError::Overloaded { queued: 5, .. }) => {}
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert_eq!(first.await.unwrap().len(), 5);
    assert_eq!(pipeline.queued(), 0);
    // Once drained it accepts again.
    assert_eq!(
        pipeline.ingest(vec![ev(json!({}))]).await.unwrap(),
        vec![true]
    );
    // A request bigger than the queue can never fit.
    let six: Vec<Event> = (0..6).map(|_| ev(json!({}))).collect();
    assert!(matches!(
        pipeline.ingest(six).await,
        Err(IngestError::TooMany { got: 6, max: 5 })
    ));
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    use std::task::Poll;
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[test]
fn registry_replaces_and_removes_by_name() {
    let reg = AnalyzerRegistry::new();
    reg.register(Arc::new(KeywordAnalyzer));
    reg.register(Arc::new(KeywordAnalyzer));
    assert_eq!(reg.names(), vec!["test:keyword"]);
    assert!(reg.unregister("test:keyword"));
    assert!(!reg.unregister("test:keyword"));
    assert!(reg.names().is_empty());
}

/// Slow enough that the findings cannot be stored before the commit's acknowledgement.
struct SlowKeyword;

impl Analyzer for SlowKeyword {
    fn name(&self) -> &str {
        "test:slow"
    }
    fn interest(&self) -> Interest {
        Interest::All
    }
    fn analyze(&self, event: &Event) -> Vec<Finding> {
        std::thread::sleep(Duration::from_millis(30));
        vec![Finding::new(self.name(), 60.0, "seen").about(event)]
    }
}

#[tokio::test]
async fn ingest_settled_resolves_after_the_findings_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let registry = Arc::new(AnalyzerRegistry::new());
    registry.register(Arc::new(SlowKeyword));
    let (pipeline, _tasks) = Pipeline::start(store.clone(), registry, &PipelineConfig::default());
    let count = || async {
        store
            .query_findings(&FindingQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .items
            .len()
    };
    let events: Vec<Event> = (0..10)
        .map(|i| ev(json!({"event": {"id": format!("k-{i}")}, "message": "x"})))
        .collect();
    let (flags, settled) = pipeline
        .ingest_settled(events.clone(), false)
        .await
        .unwrap();
    assert!(flags.iter().all(|f| *f));
    assert!(
        count().await < 10,
        "not all analyzed yet when the commit is acknowledged"
    );
    tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count().await, 10, "settled means every finding is stored");

    // A redelivery: skipped by default, analyzed again on request.
    let (flags, settled) = pipeline
        .ingest_settled(events.clone(), false)
        .await
        .unwrap();
    assert!(flags.iter().all(|f| !*f));
    settled.await.unwrap();
    assert_eq!(count().await, 10);
    let (_, settled) = pipeline.ingest_settled(events, true).await.unwrap();
    settled.await.unwrap();
    assert_eq!(
        count().await,
        20,
        "reanalyze_duplicates runs the analyzers again"
    );

    // Nothing to do settles at once.
    let (_, settled) = pipeline.ingest_settled(Vec::new(), true).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), settled)
        .await
        .unwrap()
        .unwrap();
}
