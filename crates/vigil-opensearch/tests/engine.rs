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

#[tokio::test]
async fn the_store_counts_activity_per_aligned_bucket() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use vigil_core::{Finding, Severity};
    use vigil_store::{
        ActivityQuery, MAX_ACTIVITY_BUCKETS, SqliteOptions, SqliteStore, Store, StoreError,
    };
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
    // 1_800_000_000 is 2027-01-15T08:00:00Z, a whole hour.
    let t = |secs: i64| Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
    let h = 3600;
    // [00:30, 04:10) in hourly buckets: 00:00 (from 00:30 on), 01:00, 02:00 (empty), 03:00,
    // 04:00 (until 04:10).
    let q = ActivityQuery {
        since: t(h / 2),
        until: t(4 * h + 600),
        bucket_secs: h,
    };

    // No index yet: every bucket is there, empty.
    let empty = store.activity(&q).await.unwrap();
    assert_eq!(empty, q.empty_activity().unwrap());
    assert_eq!(empty.buckets.len(), 5);

    let events: Vec<Event> = [
        100,         // before `since`, in the first bucket: not counted
        h / 2,       // == since
        h - 1,       // last second of bucket 0
        h,           // bucket 1
        h + 100,     // bucket 1
        h + 200,     // bucket 1
        3 * h + 5,   // bucket 3
        4 * h + 599, // bucket 4, the last second before `until`
        4 * h + 600, // == until: not counted
        10 * h,      // far later: not counted
    ]
    .into_iter()
    .map(|s| event(s, "h1", "process", "10.2.2.2"))
    .collect();
    assert!(
        store
            .insert_events(&events)
            .await
            .unwrap()
            .iter()
            .all(|n| *n)
    );
    let finding = |secs: i64, analyzer: &str, severity: Severity| {
        let mut f = Finding::new(analyzer, 50.0, "activity").with_severity(severity);
        f.timestamp = vigil_core::format_ts(t(secs));
        f
    };
    store
        .insert_findings(&[
            finding(100, "sigma", Severity::Critical), // before `since`
            finding(h / 2 + 1, "sigma", Severity::High),
            finding(2000, "script:a", Severity::Low),
            finding(h, "sigma", Severity::High),
            finding(h + 400, "sigma", Severity::Critical),
            finding(h + 500, "script:a", Severity::Info),
            finding(h + 501, "script:a", Severity::Info),
            finding(4 * h + 10, "logs", Severity::Medium),
            finding(4 * h + 600, "logs", Severity::Medium), // == until
        ])
        .await
        .unwrap();
    let _ = reqwest::Client::new()
        .post(format!("{url}/_refresh"))
        .send()
        .await;

    let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let got = store.activity(&q).await.unwrap();
    assert_eq!(got.bucket_secs, h);
    let starts: Vec<_> = got.buckets.iter().map(|b| b.start).collect();
    assert_eq!(starts, vec![t(0), t(h), t(2 * h), t(3 * h), t(4 * h)]);
    let shape: Vec<_> = got.buckets.iter().map(|b| (b.events, b.findings)).collect();
    assert_eq!(shape, vec![(2, 2), (3, 4), (0, 0), (1, 0), (1, 1)]);
    let b = &got.buckets;
    assert_eq!(b[0].by_severity, counts(&[("high", 1), ("low", 1)]));
    assert_eq!(b[0].by_analyzer, counts(&[("script:a", 1), ("sigma", 1)]));
    assert_eq!(
        b[1].by_severity,
        counts(&[("critical", 1), ("high", 1), ("info", 2)])
    );
    assert_eq!(b[1].by_analyzer, counts(&[("script:a", 2), ("sigma", 2)]));
    for empty in [&b[2], &b[3]] {
        assert!(empty.by_severity.is_empty() && empty.by_analyzer.is_empty());
    }
    assert_eq!(b[4].by_severity, counts(&[("medium", 1)]));
    assert_eq!(b[4].by_analyzer, counts(&[("logs", 1)]));

    // Minute buckets over a day: the most allowed, and every document stored counted.
    let most = store
        .activity(&ActivityQuery {
            since: t(0),
            until: t(MAX_ACTIVITY_BUCKETS * 60),
            bucket_secs: 60,
        })
        .await
        .unwrap();
    assert_eq!(most.buckets.len(), MAX_ACTIVITY_BUCKETS as usize);
    assert_eq!(most.buckets.iter().map(|b| b.events).sum::<u64>(), 10);
    assert_eq!(most.buckets.iter().map(|b| b.findings).sum::<u64>(), 9);
    assert_eq!(most.buckets[(10 * h / 60) as usize].events, 1);

    // Refusals, before any request: no width, an empty or inverted range, too many buckets.
    for bad in [
        ActivityQuery {
            bucket_secs: 0,
            ..q
        },
        ActivityQuery {
            until: q.since,
            ..q
        },
        ActivityQuery {
            since: q.until,
            until: q.since,
            ..q
        },
        ActivityQuery {
            since: t(30),
            until: t(30 + 1440 * 60),
            bucket_secs: 60,
        },
    ] {
        assert!(
            matches!(
                store.activity(&bad).await,
                Err(StoreError::InvalidArgument(_))
            ),
            "{bad:?} must be refused"
        );
    }
}
