//! The SQLite store against a real database file.

use chrono::{TimeZone, Utc};
use serde_json::json;
use std::time::Duration;
use vigil_core::{Event, Finding, Incident, IncidentStatus, Role, Severity};
use vigil_store::*;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap()
}

fn event(ts_secs: i64, host: &str, category: &str) -> Event {
    let ts = Utc.timestamp_opt(1_800_000_000 + ts_secs, 0).unwrap();
    Event::from_input(
        json!({"@timestamp": vigil_core::format_ts(ts), "host.name": host,
               "event.category": category, "agent.id": format!("agent-{host}")}),
        Utc::now(),
    )
    .unwrap()
}

#[tokio::test]
async fn insert_is_idempotent_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let events: Vec<Event> = (0..10).map(|i| event(i, "h1", "process")).collect();
    let first = store.insert_events(&events).await.unwrap();
    assert!(first.iter().all(|n| *n));
    let again = store.insert_events(&events[..3]).await.unwrap();
    assert_eq!(again, vec![false, false, false]);
    assert_eq!(store.count_events().await.unwrap(), 10);
    drop(store);

    let store = open(&dir);
    assert_eq!(store.count_events().await.unwrap(), 10);
    let got = store.get_event(events[4].id()).await.unwrap().unwrap();
    assert_eq!(got, events[4]);
    assert!(store.get_event("missing").await.unwrap().is_none());
    let agents = store.list_agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].events, 10, "duplicates must not count twice");
    assert_eq!(agents[0].host_name.as_deref(), Some("h1"));
    assert!(agents[0].registered_at.is_none());

    // Registration adds what the agent says about itself and keeps the event count.
    store
        .register_agent(&AgentRegistration {
            id: "agent-h1".into(),
            hostname: "h1.corp".into(),
            os: Some("windows 11".into()),
            version: Some("2.3.0".into()),
            tags: vec!["prod".into(), "laptop".into()],
        })
        .await
        .unwrap();
    let a = &store.list_agents().await.unwrap()[0];
    assert_eq!(
        (a.events, a.tags.clone(), a.os.as_deref()),
        (
            10,
            vec!["prod".to_string(), "laptop".to_string()],
            Some("windows 11")
        )
    );
    assert!(a.registered_at.is_some());
    assert!(store.heartbeat_agent("agent-h1").await.unwrap());
    assert!(!store.heartbeat_agent("nobody").await.unwrap());
}

#[tokio::test]
async fn cursor_pagination_walks_every_event_once_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Several events share a timestamp, so the tiebreak must work.
    let events: Vec<Event> = (0..57)
        .map(|i| {
            event(
                i / 3,
                if i % 2 == 0 { "a" } else { "b" },
                if i % 3 == 0 { "network" } else { "process" },
            )
        })
        .collect();
    store.insert_events(&events).await.unwrap();

    let mut seen = Vec::new();
    let mut q = EventQuery {
        limit: 10,
        ..Default::default()
    };
    loop {
        let page = store.query_events(&q).await.unwrap();
        seen.extend(page.items.iter().map(|e| e.id().to_string()));
        match page.next {
            Some(n) => q.cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 57);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 57);

    let page = store
        .query_events(&EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let ts: Vec<_> = page.items.iter().map(|e| e.timestamp()).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let host_a = store
        .query_events(&EventQuery {
            host: Some("a".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(host_a.items.len(), 29);
    assert!(host_a.items.iter().all(|e| e.host_name() == Some("a")));

    let net_a = store
        .query_events(&EventQuery {
            host: Some("a".into()),
            category: Some("network".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(net_a.items.len(), 10);

    let since = Utc.timestamp_opt(1_800_000_000 + 10, 0).unwrap();
    let until = Utc.timestamp_opt(1_800_000_000 + 12, 0).unwrap();
    let window = store
        .query_events(&EventQuery {
            since: Some(since),
            until: Some(until),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(window.items.len(), 6);

    let bad = store
        .query_events(&EventQuery {
            cursor: Some("not a cursor!".into()),
            ..Default::default()
        })
        .await;
    assert!(matches!(bad, Err(StoreError::BadCursor)));
}

#[tokio::test]
async fn retention_deletes_only_old_events_and_their_category_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let events: Vec<Event> = (0..12_000).map(|i| event(i, "h", "process")).collect();
    store.insert_events(&events).await.unwrap();
    let cutoff = Utc.timestamp_opt(1_800_000_000 + 11_000, 0).unwrap();
    assert_eq!(store.delete_events_before(cutoff).await.unwrap(), 11_000);
    assert_eq!(store.count_events().await.unwrap(), 1_000);
    let by_cat = store
        .query_events(&EventQuery {
            category: Some("process".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_cat.items.len(), 1000);
    assert!(by_cat.next.is_none());
}

#[tokio::test]
async fn findings_filters_and_event_link() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ev = event(0, "h1", "process");
    let findings = vec![
        Finding::new("a", 10.0, "low one").about(&ev),
        Finding::new("b", 95.0, "critical one").about(&ev),
        Finding::new("a", 75.0, "high one"),
    ];
    store.insert_findings(&findings).await.unwrap();
    store.insert_findings(&findings).await.unwrap();
    let all = store
        .query_findings(&FindingQuery::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    let high = store
        .query_findings(&FindingQuery {
            min_severity: Some(Severity::High),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(high.items.len(), 2);
    let of_event = store
        .query_findings(&FindingQuery {
            event_id: Some(ev.id().into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_event.items.len(), 2);
    let by_a = store
        .query_findings(&FindingQuery {
            analyzer: Some("a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_a.items.len(), 2);
    assert_eq!(
        store.get_finding(&findings[1].id).await.unwrap().unwrap(),
        findings[1]
    );
}

#[tokio::test]
async fn incidents_upsert_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = vigil_core::now_rfc3339();
    let mut inc = Incident {
        id: vigil_core::new_id(),
        title: "t".into(),
        status: IncidentStatus::Open,
        severity: Severity::High,
        score: 80.0,
        entity: "host:h1".into(),
        host_name: Some("h1".into()),
        first_seen: now.clone(),
        last_seen: now.clone(),
        finding_ids: vec![],
        techniques: vec![],
        assignee: None,
        notes: vec![],
        created_at: now.clone(),
        updated_at: now,
    };
    store.upsert_incident(&inc).await.unwrap();
    inc.status = IncidentStatus::Resolved;
    store.upsert_incident(&inc).await.unwrap();
    let open = store
        .query_incidents(&IncidentQuery {
            status: Some(IncidentStatus::Open),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(open.items.is_empty());
    let all = store
        .query_incidents(&IncidentQuery::default())
        .await
        .unwrap();
    assert_eq!(all.items, vec![inc.clone()]);
    assert_eq!(store.get_incident(&inc.id).await.unwrap(), Some(inc));
}

#[tokio::test]
async fn api_keys_scripts_models_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let key = ApiKey {
        id: "k1".into(),
        name: "test".into(),
        role: Role::Agent,
        key_hash: "ab".repeat(32),
        created_at: vigil_core::now_rfc3339(),
        revoked_at: None,
    };
    store.create_api_key(&key).await.unwrap();
    assert!(matches!(
        store.create_api_key(&key).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_api_key(&key.key_hash).await.unwrap(),
        Some(key.clone())
    );
    assert!(store.revoke_api_key("k1").await.unwrap());
    assert!(!store.revoke_api_key("k1").await.unwrap());
    assert_eq!(store.find_api_key(&key.key_hash).await.unwrap(), None);
    assert_eq!(store.list_api_keys().await.unwrap().len(), 1);

    let script = ScriptRecord {
        name: "s".into(),
        version: 1,
        source: "fn analyze(e, c) { () }".into(),
        manifest: json!({"categories": ["process"]}),
        enabled: true,
        disabled_reason: None,
        created_at: vigil_core::now_rfc3339(),
    };
    store.put_script(&script).await.unwrap();
    assert!(matches!(
        store.put_script(&script).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .set_script_enabled("s", false, Some("failed 5 times"))
            .await
            .unwrap()
    );
    let listed = store.list_scripts().await.unwrap();
    assert_eq!(listed[0].disabled_reason.as_deref(), Some("failed 5 times"));
    assert!(!store.set_script_enabled("nope", true, None).await.unwrap());
    assert!(store.delete_script("s").await.unwrap());
    assert!(!store.delete_script("s").await.unwrap());
    assert!(store.list_scripts().await.unwrap().is_empty());

    store
        .put_list("bad_ips", &["1.2.3.4".into()])
        .await
        .unwrap();
    store
        .put_list("bad_ips", &["5.6.7.8".into(), "9.9.9.9".into()])
        .await
        .unwrap();
    assert_eq!(
        store.list_lists().await.unwrap(),
        vec![(
            "bad_ips".to_string(),
            vec!["5.6.7.8".to_string(), "9.9.9.9".to_string()]
        )]
    );

    for v in 1..=2 {
        store
            .put_model(&ModelRecord {
                name: "m".into(),
                version: v,
                metrics: json!({"auc": 0.9}),
                data: vec![v as u8; 4],
                created_at: vigil_core::now_rfc3339(),
            })
            .await
            .unwrap();
    }
    let latest = store.latest_model("m").await.unwrap().unwrap();
    assert_eq!((latest.version, latest.data), (2, vec![2; 4]));
    assert!(
        store
            .list_models()
            .await
            .unwrap()
            .iter()
            .all(|m| m.data.is_empty())
    );

    store.cache_put("vt", "h", b"v", None).await.unwrap();
    store
        .cache_put("vt", "gone", b"x", Some(Duration::from_micros(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store.cache_get("vt", "h").await.unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(store.cache_get("vt", "gone").await.unwrap(), None);
    assert_eq!(store.cache_purge_expired().await.unwrap(), 1);
}

#[tokio::test]
async fn refuses_a_database_from_a_newer_vigil() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let conn = rusqlite::Connection::open(dir.path().join("vigil.db")).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
}

fn connection(ts: &str, host: &str, process: &str, score: f64) -> ConnectionRow {
    ConnectionRow {
        timestamp: ts.into(),
        host: host.into(),
        process: process.into(),
        pid: Some(7),
        remote: "203.0.113.5".into(),
        remote_port: Some(443),
        local_port: None,
        protocol: "tcp".into(),
        direction: "outbound".into(),
        state: None,
        bytes_sent: 10,
        bytes_received: 20,
        duration_secs: 0.5,
        score,
        anomaly: score >= 0.98,
        model: "net-1".into(),
        reasons: vec![],
    }
}

#[tokio::test]
async fn connections_time_series_pages_buckets_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rows = Vec::new();
    for i in 0..30 {
        let ts = format!("2026-11-30T10:{:02}:{:02}Z", i / 10, (i % 10) * 5);
        let score = if i % 10 == 9 { 0.99 } else { 0.1 };
        rows.push(connection(
            &ts,
            if i < 20 { "a" } else { "b" },
            "chrome",
            score,
        ));
    }
    store.insert_connections(&rows).await.unwrap();
    // Pages walk everything once, newest first.
    let mut seen = Vec::new();
    let mut q = ConnectionQuery {
        limit: 7,
        ..Default::default()
    };
    loop {
        let page = store.query_connections(&q).await.unwrap();
        seen.extend(page.items);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));
    assert_eq!(seen.last().unwrap(), &rows[0]);
    // Filters.
    let only = store
        .query_connections(&ConnectionQuery {
            host: Some("a".into()),
            anomalies_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only.items.len(), 2);
    // Per-minute buckets: 3 minutes, 10 connections and 1 anomaly each.
    let series = store
        .connection_series(&ConnectionQuery::default(), 60)
        .await
        .unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(series[0].start, "2026-11-30T10:00:00.000000Z");
    assert!(
        series
            .iter()
            .all(|p| p.connections == 10 && p.anomalies == 1)
    );
    assert!((series[0].max_score - 0.99).abs() < 1e-9);
    assert!((series[0].mean_score - (9.0 * 0.1 + 0.99) / 10.0).abs() < 1e-9);
    // Retention.
    let cutoff = "2026-11-30T10:01:00Z".parse().unwrap();
    assert_eq!(store.delete_connections_before(cutoff).await.unwrap(), 10);
    let left = store
        .connection_series(&ConnectionQuery::default(), 3600)
        .await
        .unwrap();
    assert_eq!(left[0].connections, 20);
}

#[tokio::test]
async fn deliveries_queue_once_come_due_in_order_and_keep_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = |route: &str, incident: &str, next_at_ms: i64| Delivery {
        id: vigil_core::new_id(),
        route: route.into(),
        incident_id: incident.into(),
        kind: "opened".into(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_at_ms,
        created_at: vigil_core::now_rfc3339(),
        updated_at: vigil_core::now_rfc3339(),
        last_error: None,
        payload: json!({"title": "x"}),
    };
    let a = d("slack", "i1", 200);
    let b = d("mail", "i1", 100);
    assert_eq!(
        store
            .enqueue_deliveries(&[a.clone(), b.clone()])
            .await
            .unwrap(),
        2
    );
    // The same (route, incident, kind) again is skipped.
    assert_eq!(
        store
            .enqueue_deliveries(&[d("slack", "i1", 50)])
            .await
            .unwrap(),
        0
    );
    let due = store.due_deliveries(150, 10).await.unwrap();
    assert_eq!(due, vec![b.clone()]);
    let due = store.due_deliveries(1_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.route.as_str()).collect::<Vec<_>>(),
        ["mail", "slack"]
    );
    let mut dead = a.clone();
    dead.state = DeliveryState::Dead;
    dead.attempts = 5;
    dead.last_error = Some("HTTP 500".into());
    store.update_delivery(&dead).await.unwrap();
    let mut done = b.clone();
    done.state = DeliveryState::Delivered;
    done.attempts = 1;
    store.update_delivery(&done).await.unwrap();
    assert!(store.due_deliveries(i64::MAX, 10).await.unwrap().is_empty());
    drop(store);
    let store = open(&dir);
    let dead_letters = store
        .list_deliveries(Some(DeliveryState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead_letters, vec![dead]);
    assert_eq!(store.list_deliveries(None, 10).await.unwrap().len(), 2);
}

/// A finding made at `1_800_000_000 + secs` (2027-01-15T08:00:00Z, a whole hour).
fn finding_at(secs: i64, analyzer: &str, severity: Severity) -> Finding {
    let mut f = Finding::new(analyzer, 50.0, "activity").with_severity(severity);
    f.timestamp = vigil_core::format_ts(Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap());
    f
}

fn counts(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[tokio::test]
async fn activity_counts_events_and_findings_per_aligned_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t = |secs: i64| Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
    let h = 3600;
    // [00:30, 04:10) in hourly buckets: 00:00 (from 00:30 on), 01:00, 02:00 (empty), 03:00,
    // 04:00 (until 04:10).
    let q = ActivityQuery {
        since: t(h / 2),
        until: t(4 * h + 600),
        bucket_secs: h,
    };

    // Nothing stored yet: every bucket is there, empty.
    let empty = store.activity(&q).await.unwrap();
    assert_eq!(empty, q.empty_activity().unwrap());
    assert_eq!(empty.buckets.len(), 5);
    assert!(
        empty
            .buckets
            .iter()
            .all(|b| b.events == 0 && b.findings == 0)
    );

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
    .map(|s| event(s, "h1", "process"))
    .collect();
    store.insert_events(&events).await.unwrap();
    store
        .insert_findings(&[
            finding_at(100, "sigma", Severity::Critical), // before `since`
            finding_at(h / 2 + 1, "sigma", Severity::High),
            finding_at(2000, "script:a", Severity::Low),
            finding_at(h, "sigma", Severity::High),
            finding_at(h + 400, "sigma", Severity::Critical),
            finding_at(h + 500, "script:a", Severity::Info),
            finding_at(h + 501, "script:a", Severity::Info),
            finding_at(4 * h + 10, "logs", Severity::Medium),
            finding_at(4 * h + 600, "logs", Severity::Medium), // == until
        ])
        .await
        .unwrap();

    let got = store.activity(&q).await.unwrap();
    assert_eq!(got.bucket_secs, h);
    let starts: Vec<_> = got.buckets.iter().map(|b| b.start).collect();
    assert_eq!(starts, vec![t(0), t(h), t(2 * h), t(3 * h), t(4 * h)]);
    assert!(
        got.buckets.iter().all(|b| b.start.timestamp() % h == 0),
        "aligned to multiples of the width since the epoch"
    );
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
    let json = serde_json::to_value(&b[1]).unwrap();
    assert_eq!(json["start"], "2027-01-15T09:00:00Z");
    assert_eq!(json["by_severity"]["info"], 2);

    // Refusals: no width, an empty or inverted range, too many buckets.
    for bad in [
        ActivityQuery {
            bucket_secs: 0,
            ..q
        },
        ActivityQuery {
            bucket_secs: -60,
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
        // 1440 minutes from an unaligned start touch 1441 minute buckets.
        ActivityQuery {
            since: t(30),
            until: t(30 + 1440 * 60),
            bucket_secs: 60,
        },
        ActivityQuery {
            since: t(0),
            until: t(1441 * 60),
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
    // Exactly the most buckets allowed.
    let most = store
        .activity(&ActivityQuery {
            since: t(0),
            until: t(MAX_ACTIVITY_BUCKETS * 60),
            bucket_secs: 60,
        })
        .await
        .unwrap();
    assert_eq!(most.buckets.len(), MAX_ACTIVITY_BUCKETS as usize);
    // The whole day: every event and finding stored.
    assert_eq!(most.buckets.iter().map(|b| b.events).sum::<u64>(), 10);
    assert_eq!(most.buckets.iter().map(|b| b.findings).sum::<u64>(), 9);
}

/// A new data directory is readable by its owner only: it holds events, key hashes and
/// models.
#[cfg(unix)]
#[test]
fn a_new_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("a/b/vigil-data");
    let _store = SqliteStore::open(&dir, SqliteOptions::default()).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
}
