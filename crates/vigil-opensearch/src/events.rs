//! Events in daily indices: the template, idempotent writes and the queries.

use crate::client::{BulkItem, Client, OsError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use vigil_core::Event;
use vigil_store::{Activity, ActivityQuery, EventQuery, Page};

/// Events in `{prefix}-events-YYYY.MM.DD`.
#[derive(Debug, Clone)]
pub struct EventIndex {
    client: Client,
    prefix: String,
}

/// The index template: ECS fields Vigil filters on, strings as keywords by default.
pub fn template(prefix: &str) -> Value {
    let ip = json!({"type": "ip", "ignore_malformed": true});
    let kw = json!({"type": "keyword", "ignore_above": 1024});
    json!({
        "index_patterns": [format!("{prefix}-events-*")],
        "priority": 100,
        "template": {
            "settings": {"number_of_shards": 1, "refresh_interval": "1s"},
            "mappings": {
                "dynamic_templates": [{"strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 1024}}}],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "message": {"type": "text"},
                    "event": {"properties": {
                        "id": kw, "category": kw, "kind": kw, "action": kw,
                        "ingested": {"type": "date"}, "original": {"type": "text", "index": false}}},
                    "host": {"properties": {"name": kw, "ip": ip}},
                    "agent": {"properties": {"id": kw}},
                    "source": {"properties": {"ip": ip, "port": {"type": "long"}}},
                    "destination": {"properties": {"ip": ip, "port": {"type": "long"}}},
                    "process": {"properties": {
                        "name": kw, "pid": {"type": "long"},
                        "command_line": {"type": "keyword", "ignore_above": 8192,
                                          "fields": {"text": {"type": "text"}}},
                        "hash": {"properties": {"sha256": kw}},
                        "parent": {"properties": {"hash": {"properties": {"sha256": kw}}}}}},
                    "file": {"properties": {"path": kw, "hash": {"properties": {"sha256": kw}}}},
                    "user": {"properties": {"name": kw}}
                }
            }
        }
    })
}

fn cursor_encode(sort: &Value) -> String {
    URL_SAFE_NO_PAD.encode(sort.to_string())
}

fn cursor_decode(c: &str) -> Result<Value, OsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| OsError::Format("bad cursor".into()))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|_| OsError::Format("bad cursor".into()))?;
    if !v.is_array() {
        return Err(OsError::Format("bad cursor".into()));
    }
    Ok(v)
}

impl EventIndex {
    /// Events under `prefix`.
    pub fn new(client: Client, prefix: &str) -> EventIndex {
        EventIndex {
            client,
            prefix: prefix.to_string(),
        }
    }

    fn pattern(&self) -> String {
        format!("/{}-events-*", self.prefix)
    }

    /// The daily index of a time.
    pub fn index_for(&self, t: DateTime<Utc>) -> String {
        format!("{}-events-{}", self.prefix, t.format("%Y.%m.%d"))
    }

    /// Creates or updates the index template.
    pub async fn ensure_template(&self) -> Result<(), OsError> {
        self.client
            .json(
                Method::PUT,
                &format!("/_index_template/{}-events", self.prefix),
                Some(&template(&self.prefix)),
                &[],
            )
            .await
            .map(|_| ())
    }

    /// Writes events (`create` by `event.id`); per event, whether it was new.
    pub async fn insert_events(&self, events: &[Event]) -> Result<Vec<bool>, OsError> {
        let ops: Vec<(Value, Value)> = events
            .iter()
            .map(|e| {
                (
                    json!({"create": {"_index": self.index_for(e.timestamp()), "_id": e.id()}}),
                    Value::Object(e.as_map().clone()),
                )
            })
            .collect();
        let items = self.client.bulk(&ops, false).await?;
        items
            .into_iter()
            .zip(events)
            .map(|(item, e)| match item {
                BulkItem::Created => Ok(true),
                BulkItem::Exists => Ok(false),
                BulkItem::Failed(reason) => Err(OsError::Format(format!(
                    "event {} was refused: {reason}",
                    e.id()
                ))),
            })
            .collect()
    }

    async fn search(&self, body: &Value) -> Result<Vec<Value>, OsError> {
        let (_, v) = self
            .client
            .json(
                Method::POST,
                &format!(
                    "{}/_search?ignore_unavailable=true&allow_no_indices=true",
                    self.pattern()
                ),
                Some(body),
                &[],
            )
            .await?;
        Ok(v["hits"]["hits"].as_array().cloned().unwrap_or_default())
    }

    fn event_of(hit: &Value) -> Option<Event> {
        hit["_source"].as_object().cloned().map(Event::from_stored)
    }

    /// An event by id.
    pub async fn get_event(&self, id: &str) -> Result<Option<Event>, OsError> {
        let hits = self
            .search(&json!({"query": {"ids": {"values": [id]}}, "size": 1}))
            .await?;
        Ok(hits.first().and_then(Self::event_of))
    }

    /// Events naming a file hash (the file, the process or its parent), newest first.
    pub async fn events_by_hash(&self, sha256: &str, limit: usize) -> Result<Vec<Event>, OsError> {
        let hits = self
            .search(&json!({
                "query": {"bool": {"should": [
                    {"term": {"file.hash.sha256": sha256}},
                    {"term": {"process.hash.sha256": sha256}},
                    {"term": {"process.parent.hash.sha256": sha256}}],
                    "minimum_should_match": 1}},
                "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "date"}}],
                "size": limit.clamp(1, 10_000)
            }))
            .await?;
        Ok(hits.iter().filter_map(Self::event_of).collect())
    }

    /// Filtered events, newest first, paged by `search_after` (the cursor is opaque).
    /// `text` matches a phrase in any field (OpenSearch tokenises; SQLite matches a
    /// substring of the JSON: the two differ for partial words).
    pub async fn query_events(&self, q: &EventQuery) -> Result<Page<Event>, OsError> {
        let limit = if q.limit == 0 {
            vigil_store::DEFAULT_PAGE
        } else {
            q.limit.min(vigil_store::MAX_PAGE)
        };
        let mut filter = Vec::new();
        if let Some(h) = &q.host {
            filter.push(json!({"term": {"host.name": h}}));
        }
        if let Some(c) = &q.category {
            filter.push(json!({"term": {"event.category": c}}));
        }
        if let Some(ip) = &q.ip {
            filter.push(json!({"bool": {"should": [
                {"term": {"source.ip": ip}}, {"term": {"destination.ip": ip}},
                {"term": {"host.ip": ip}}], "minimum_should_match": 1}}));
        }
        if let Some(t) = &q.text {
            filter.push(
                json!({"multi_match": {"query": t, "type": "phrase", "fields": ["*"],
                                               "lenient": true}}),
            );
        }
        let mut range = serde_json::Map::new();
        if let Some(s) = q.since {
            range.insert("gte".into(), json!(vigil_core::format_ts(s)));
        }
        if let Some(u) = q.until {
            range.insert("lt".into(), json!(vigil_core::format_ts(u)));
        }
        if !range.is_empty() {
            filter.push(json!({"range": {"@timestamp": range}}));
        }
        let mut body = json!({
            "query": {"bool": {"filter": filter}},
            "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "date"}},
                     {"event.id": {"order": "desc", "unmapped_type": "keyword"}}],
            "size": limit + 1,
            "track_total_hits": false
        });
        if let Some(c) = &q.cursor {
            body["search_after"] = cursor_decode(c)?;
        }
        let mut hits = self.search(&body).await?;
        let more = hits.len() > limit;
        hits.truncate(limit);
        let next = if more {
            hits.last().map(|h| cursor_encode(&h["sort"]))
        } else {
            None
        };
        Ok(Page {
            items: hits.iter().filter_map(Self::event_of).collect(),
            next,
        })
    }

    /// Makes everything written so far searchable now (tests; a real cluster refreshes
    /// every second by itself).
    pub async fn refresh(&self) -> Result<(), OsError> {
        self.client
            .json(
                Method::POST,
                &format!(
                    "{}/_refresh?ignore_unavailable=true&allow_no_indices=true",
                    self.pattern()
                ),
                None,
                &[],
            )
            .await
            .map(|_| ())
    }

    /// Events stored.
    pub async fn count_events(&self) -> Result<u64, OsError> {
        let (_, v) = self
            .client
            .json(
                Method::GET,
                &format!(
                    "{}/_count?ignore_unavailable=true&allow_no_indices=true",
                    self.pattern()
                ),
                None,
                &[],
            )
            .await?;
        v["count"]
            .as_u64()
            .ok_or_else(|| OsError::Format("a count answer without `count`".into()))
    }

    /// Adds the events of `[q.since, q.until)` to the buckets of `into`, which must be
    /// `q.empty_activity()` (or a copy of it).
    pub async fn count_activity(
        &self,
        q: &ActivityQuery,
        into: &mut Activity,
    ) -> Result<(), OsError> {
        let body = crate::activity::search_body(q, None);
        for (bucket, b) in
            crate::activity::histogram(&self.client, &self.pattern(), &body, into).await?
        {
            bucket.events += crate::activity::doc_count(&b);
        }
        Ok(())
    }

    /// Deletes events before `cutoff`: whole daily indices older than its day, and the
    /// older events of its day's index. Returns how many.
    pub async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, OsError> {
        let (_, v) = self
            .client
            .json(
                Method::GET,
                &format!("/_cat/indices/{}-events-*?format=json", self.prefix),
                None,
                &[404],
            )
            .await?;
        let day = cutoff.date_naive();
        let head = format!("{}-events-", self.prefix);
        let mut deleted = 0u64;
        for idx in v.as_array().into_iter().flatten() {
            let Some(name) = idx["index"].as_str() else {
                continue;
            };
            let Some(date) = name
                .strip_prefix(&head)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y.%m.%d").ok())
            else {
                continue;
            };
            if date < day {
                let docs: u64 = idx["docs.count"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .or_else(|| idx["docs.count"].as_u64())
                    .unwrap_or(0);
                self.client
                    .json(Method::DELETE, &format!("/{name}"), None, &[404])
                    .await?;
                deleted += docs;
            } else if date == day {
                let (_, r) = self
                    .client
                    .json(
                        Method::POST,
                        &format!("/{name}/_delete_by_query?refresh=true"),
                        Some(&json!({"query": {"range": {"@timestamp": {
                            "lt": vigil_core::format_ts(cutoff)}}}})),
                        &[],
                    )
                    .await?;
                deleted += r["deleted"].as_u64().unwrap_or(0);
            }
        }
        Ok(deleted)
    }
}
