//! Against an OpenSearch-API engine: `osmem-server` from PyPI, which `.ci/run` starts on
//! 127.0.0.1 and names in `VIGIL_TEST_OPENSEARCH` (docs/opensearch-emulators.md says what
//! it models faithfully). Point the variable at a real cluster to run the same tests there.

use chrono::{TimeZone, Utc};
use serde_json::json;
use vigil_core::Event;
use vigil_opensearch::{Client, EventIndex, OpenSearchConfig};
use vigil_store::EventQuery;

fn engine() -> Option<String> {
    match std::env::var("VIGIL_TEST_OPENSEARCH") {
        Ok(u) => Some(u),
        Err(_) if std::env::var("VIGIL_REQUIRE_OPENSEARCH").is_ok() => {
            panic!("VIGIL_REQUIRE_OPENSEARCH is set but VIGIL_TEST_OPENSEARCH is not")
        }
        Err(_) => {
            eprintln!("skipped: set VIGIL_TEST_OPENSEARCH to an OpenSearch URL");
            None
        }
    }
}

fn setup(url: &str) -> (Client, EventIndex, String) {
    let prefix = format!(
        "t{}x{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap() % 1_000_000_000
    );
    let cfg = OpenSearchConfig {
        url: url.into(),
        index_prefix: prefix.clone(),
        backoff_ms: 100,
        ..Default::default()
    };
    let client = Client::new(&cfg).unwrap();
    (client.clone(), EventIndex::new(client, &prefix), prefix)
}

fn event(secs: i64, host: &str, category: &str, ip: &str) -> Event {
    let ts = Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
    Event::from_input(
        json!({"@timestamp": vigil_core::format_ts(ts), "host": {"name": host},
               "event": {"category": [category]}, "source": {"ip": ip},
               "message": format!("connection from {ip}")}),
        Utc::now(),
    )
    .unwrap()
}

#[tokio::test]
async fn writes_are_idempotent_and_queries_page_newest_first() {
    let Some(url) = engine() else { return };
    let (_client, events, _) = setup(&url);
    events.ensure_template().await.unwrap();
    let batch: Vec<Event> = (0..57)
        .map(|i| {
            event(
                i / 3, // timestamps shared by three events: the tiebreak must hold
                if i % 2 == 0 { "a" } else { "b" },
                if i % 3 == 0 { "network" } else { "process" },
                &format!("10.0.0.{}", i % 5),
            )
        })
        .collect();
    let first = events.insert_events(&batch).await.unwrap();
    assert!(first.iter().all(|n| *n));
    let again = events.insert_events(&batch[..5]).await.unwrap();
    assert_eq!(again, vec![false; 5], "a retry stores nothing twice");
    events.refresh().await.unwrap();
    assert_eq!(events.count_events().await.unwrap(), 57);
    assert_eq!(
        events.get_event(batch[7].id()).await.unwrap().unwrap(),
        batch[7]
    );
    assert!(events.get_event("missing").await.unwrap().is_none());

    // Paging walks every event once, newest first.
    let mut seen = Vec::new();
    let mut q = EventQuery {
        limit: 10,
        ..Default::default()
    };
    loop {
        let page = events.query_events(&q).await.unwrap();
        seen.extend(page.items);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 57);
    let mut ids: Vec<&str> = seen.iter().map(|e| e.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 57, "no event twice");
    assert!(
        seen.windows(2)
            .all(|w| w[0].timestamp() >= w[1].timestamp())
    );

    let n = |q: EventQuery| {
        let events = events.clone();
        async move {
            events
                .query_events(&EventQuery { limit: 1000, ..q })
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(
        n(EventQuery {
            host: Some("a".into()),
            ..Default::default()
        })
        .await,
        29
    );
    assert_eq!(
        n(EventQuery {
            category: Some("network".into()),
            ..Default::default()
        })
        .await,
        19
    );
    assert_eq!(
        n(EventQuery {
            ip: Some("10.0.0.3".into()),
            ..Default::default()
        })
        .await,
        11
    );
    let since = Utc.timestamp_opt(1_800_000_000 + 10, 0).unwrap();
    assert_eq!(
        n(EventQuery {
            since: Some(since),
            ..Default::default()
        })
        .await,
        57 - 30
    );
    let bad = events
        .query_events(&EventQuery {
            cursor: Some("!!".into()),
            ..Default::default()
        })
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn bulk_waits_out_429_and_retention_drops_old_days() {
    let Some(url) = engine() else { return };
    let (client, events, _) = setup(&url);
    events.ensure_template().await.unwrap();
    let day = 86_400;
    let batch: Vec<Event> = (0..30)
        .map(|i| event((i / 10) * day + i, "h", "process", "10.1.1.1"))
        .collect();
    events.insert_events(&batch[..1]).await.unwrap();
    // A read-only block answers writes with 429, as a full disk does on a real cluster.
    let index = events.index_for(batch[0].timestamp());
    let block = move |on: bool| {
        let client = client.clone();
        let index = index.clone();
        async move {
            client
                .json(
                    reqwest::Method::PUT,
                    &format!("/{index}/_settings"),
                    Some(&json!({"index.blocks.read_only_allow_delete": on})),
                    &[],
                )
                .await
                .unwrap();
        }
    };
    block(true).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        block(false).await;
    });
    let started = std::time::Instant::now();
    let flags = events.insert_events(&batch[1..]).await.unwrap();
    assert!(
        flags.iter().all(|f| *f),
        "every item written after the retries"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1000),
        "it waited"
    );
    release.await.unwrap();
    events.refresh().await.unwrap();
    assert_eq!(events.count_events().await.unwrap(), 30);

    // Retention: day 0 goes whole, day 1 before noon by query, day 2 stays.
    let cutoff = Utc.timestamp_opt(1_800_000_000 + day + 15, 0).unwrap();
    let deleted = events.delete_events_before(cutoff).await.unwrap();
    assert_eq!(deleted, 10 + 5, "day 0 and the first 5 events of day 1");
    events.refresh().await.unwrap();
    assert_eq!(events.count_events().await.unwrap(), 15);
}

#[tokio::test]
async fn the_store_keeps_findings_and_incidents_and_counts_agents() {
    use std::sync::Arc;
    use vigil_core::{Finding, Incident, IncidentStatus, Severity};
    use vigil_store::{FindingQuery, IncidentQuery, SqliteOptions, SqliteStore, Store};
    let Some(url) = engine() else { return };
    let (_, _, prefix) = setup(&url);
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let cfg = OpenSearchConfig {
        url: url.clone(),
        index_prefix: prefix,
        ..Default::default()
    };
    let store = vigil_opensearch::OpenSearchStore::open(&cfg, control)
        .await
        .unwrap();
    let mut e = event(1, "web-1", "process", "10.9.9.9");
    let mut map = e.clone().into_map();
    map.insert("agent".into(), json!({"id": "agent-7"}));
    e = Event::from_stored(map);
    assert_eq!(store.insert_events(&[e.clone()]).await.unwrap(), vec![true]);
    assert_eq!(
        store.insert_events(&[e.clone()]).await.unwrap(),
        vec![false]
    );
    let agents = store.list_agents().await.unwrap();
    assert_eq!(
        (agents[0].id.as_str(), agents[0].events),
        ("agent-7", 1),
        "counted once"
    );

    let findings: Vec<Finding> = (0..6)
        .map(|i| {
            let mut f = Finding::new(
                if i % 2 == 0 { "script:a" } else { "logs" },
                [20.0, 50.0, 75.0, 95.0, 30.0, 60.0][i],
                format!("finding {i}"),
            )
            .with_evidence(json!({"connection": {"remote_ip": format!("10.0.0.{i}")}}));
            f.host_name = Some(if i < 3 { "web-1" } else { "db-1" }.into());
            f.event_ids = vec![e.id().to_string()];
            f
        })
        .collect();
    store.insert_findings(&findings).await.unwrap();
    let _ = reqwest::Client::new()
        .post(format!("{url}/_refresh"))
        .send()
        .await;
    let q = |q: FindingQuery| {
        let store = &store;
        async move {
            store
                .query_findings(&FindingQuery { limit: 100, ..q })
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(q(FindingQuery::default()).await.len(), 6);
    assert_eq!(
        q(FindingQuery {
            host: Some("web-1".into()),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        q(FindingQuery {
            analyzer: Some("logs".into()),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        q(FindingQuery {
            min_severity: Some(Severity::High),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        q(FindingQuery {
            event_id: Some(e.id().into()),
            ..Default::default()
        })
        .await
        .len(),
        6
    );
    let by_ip = q(FindingQuery {
        text: Some("\"10.0.0.4\"".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_ip.len(), 1);
    assert_eq!(by_ip[0].summary, "finding 4");
    assert_eq!(
        store.get_finding(&findings[2].id).await.unwrap().unwrap(),
        findings[2]
    );

    let now = vigil_core::now_rfc3339();
    let mut incident = Incident {
        id: "inc-1".into(),
        title: "web shell".into(),
        status: IncidentStatus::Open,
        severity: Severity::High,
        score: 80.0,
        entity: "host:web-1".into(),
        host_name: Some("web-1".into()),
        first_seen: now.clone(),
        last_seen: now.clone(),
        finding_ids: vec![findings[0].id.clone()],
        techniques: vec![],
        assignee: None,
        notes: vec![],
        created_at: now.clone(),
        updated_at: now,
    };
    store.upsert_incident(&incident).await.unwrap();
    incident.status = IncidentStatus::Acknowledged;
    store.upsert_incident(&incident).await.unwrap();
    assert_eq!(
        store.get_incident("inc-1").await.unwrap().unwrap(),
        incident
    );
    assert!(store.get_incident("nope").await.unwrap().is_none());
    let open = store
        .query_incidents(&IncidentQuery {
            status: Some(IncidentStatus::Open),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(open.items.is_empty());
    let acked = store
        .query_incidents(&IncidentQuery {
            status: Some(IncidentStatus::Acknowledged),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(acked.items.len(), 1);
}
