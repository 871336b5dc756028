//! Findings (monthly indices) and incidents (one index, updated in place).

use crate::client::{BulkItem, Client, OsError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use vigil_core::{Finding, Incident, Severity};
use vigil_store::{Activity, ActivityQuery, FindingQuery, IncidentQuery, Page};

fn page_limit(limit: usize) -> usize {
    if limit == 0 {
        vigil_store::DEFAULT_PAGE
    } else {
        limit.min(vigil_store::MAX_PAGE)
    }
}

fn decode_cursor(c: &str) -> Result<Value, OsError> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_array)
        .ok_or_else(|| OsError::Format("bad cursor".into()))
}

fn at_least(s: Severity) -> Vec<&'static str> {
    Severity::ALL
        .iter()
        .filter(|x| **x >= s)
        .map(|x| x.as_str())
        .collect()
}

fn time_range(
    field: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<Value> {
    let mut r = serde_json::Map::new();
    if let Some(s) = since {
        r.insert("gte".into(), json!(vigil_core::format_ts(s)));
    }
    if let Some(u) = until {
        r.insert("lt".into(), json!(vigil_core::format_ts(u)));
    }
    (!r.is_empty()).then(|| json!({"range": {field: r}}))
}

/// Runs a paged search over `path`: `limit + 1` hits tell whether there is a next page.
async fn paged(
    client: &Client,
    path: &str,
    filter: Vec<Value>,
    sort: Value,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), OsError> {
    let mut body = json!({"query": {"bool": {"filter": filter}}, "sort": sort,
                          "size": limit + 1, "track_total_hits": false});
    if let Some(c) = cursor {
        body["search_after"] = decode_cursor(c)?;
    }
    let (_, v) = client
        .json(
            Method::POST,
            &format!("{path}/_search?ignore_unavailable=true&allow_no_indices=true"),
            Some(&body),
            &[],
        )
        .await?;
    let mut hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
    let more = hits.len() > limit;
    hits.truncate(limit);
    let next = more
        .then(|| {
            hits.last()
                .map(|h| URL_SAFE_NO_PAD.encode(h["sort"].to_string()))
        })
        .flatten();
    Ok((hits, next))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, hit: &Value) -> Result<T, OsError> {
    serde_json::from_value(hit["_source"].clone())
        .map_err(|e| OsError::Format(format!("a stored {what} does not parse: {e}")))
}

/// Findings in `{prefix}-findings-YYYY.MM`. The evidence (any JSON) is kept but not
/// mapped, with a text copy that free-text filters search.
#[derive(Debug, Clone)]
pub struct FindingIndex {
    client: Client,
    prefix: String,
}

impl FindingIndex {
    /// Findings under `prefix`.
    pub fn new(client: Client, prefix: &str) -> FindingIndex {
        FindingIndex {
            client,
            prefix: prefix.to_string(),
        }
    }

    fn pattern(&self) -> String {
        format!("/{}-findings-*", self.prefix)
    }

    /// Creates or updates the template.
    pub async fn ensure_template(&self) -> Result<(), OsError> {
        let kw = json!({"type": "keyword", "ignore_above": 1024});
        let t = json!({
            "index_patterns": [format!("{}-findings-*", self.prefix)],
            "priority": 100,
            "template": {"mappings": {
                "dynamic": false,
                "properties": {
                    "id": kw, "@timestamp": {"type": "date"}, "analyzer": kw,
                    "score": {"type": "float"}, "severity": kw, "summary": {"type": "text"},
                    "evidence": {"type": "object", "enabled": false},
                    "evidence_text": {"type": "text"},
                    "techniques": kw, "event_ids": kw,
                    "host": {"properties": {"name": kw}},
                    "agent": {"properties": {"id": kw}}
                }}}
        });
        self.client
            .json(
                Method::PUT,
                &format!("/_index_template/{}-findings", self.prefix),
                Some(&t),
                &[],
            )
            .await
            .map(|_| ())
    }

    /// Writes findings (by id: a retry writes nothing twice).
    pub async fn insert(&self, findings: &[Finding]) -> Result<(), OsError> {
        let ops: Vec<(Value, Value)> = findings
            .iter()
            .map(|f| {
                let month = f.timestamp.get(..7).unwrap_or("0000-00").replace('-', ".");
                let mut doc = serde_json::to_value(f).expect("a finding serialises");
                doc["evidence_text"] = json!(f.evidence.to_string());
                (
                    json!({"create": {"_index": format!("{}-findings-{month}", self.prefix),
                                      "_id": f.id}}),
                    doc,
                )
            })
            .collect();
        for (item, f) in self
            .client
            .bulk(&ops, false)
            .await?
            .into_iter()
            .zip(findings)
        {
            if let BulkItem::Failed(reason) = item {
                return Err(OsError::Format(format!(
                    "finding {} was refused: {reason}",
                    f.id
                )));
            }
        }
        Ok(())
    }

    /// Adds the findings of `[q.since, q.until)`, with their severities and analyzers, to
    /// the buckets of `into`, which must be `q.empty_activity()` (or a copy of it). Up to
    /// 1000 analyzers per bucket are counted; more fail the call rather than leave the
    /// breakdown short. The engine's `search.max_buckets` (65,535 by default) bounds the
    /// time buckets times the distinct severities and analyzers in them.
    pub async fn count_activity(
        &self,
        q: &ActivityQuery,
        into: &mut Activity,
    ) -> Result<(), OsError> {
        use crate::activity::{MAX_ANALYZERS, doc_count, histogram, search_body};
        let severities = Severity::ALL.len() + 5;
        let body = search_body(
            q,
            Some(json!({
                "severity": {"terms": {"field": "severity", "size": severities}},
                "analyzer": {"terms": {"field": "analyzer", "size": MAX_ANALYZERS}}
            })),
        );
        for (bucket, b) in histogram(&self.client, &self.pattern(), &body, into).await? {
            bucket.findings += doc_count(&b);
            for (field, size, counts) in [
                ("severity", severities, &mut bucket.by_severity),
                ("analyzer", MAX_ANALYZERS, &mut bucket.by_analyzer),
            ] {
                if b[field]["sum_other_doc_count"].as_u64().unwrap_or(0) > 0 {
                    return Err(OsError::Format(format!(
                        "more than {size} distinct finding `{field}` values in the bucket at {}",
                        vigil_core::format_ts(bucket.start)
                    )));
                }
                for term in b[field]["buckets"].as_array().into_iter().flatten() {
                    let (Some(key), n) = (term["key"].as_str(), doc_count(term)) else {
                        continue;
                    };
                    if n > 0 {
                        *counts.entry(key.to_string()).or_default() += n;
                    }
                }
            }
        }
        Ok(())
    }

    /// A finding by id.
    pub async fn get(&self, id: &str) -> Result<Option<Finding>, OsError> {
        let (hits, _) = paged(
            &self.client,
            &self.pattern(),
            vec![json!({"ids": {"values": [id]}})],
            json!([]),
            1,
            None,
        )
        .await?;
        hits.first().map(|h| decode("finding", h)).transpose()
    }

    /// Filtered findings, newest first.
    pub async fn query(&self, q: &FindingQuery) -> Result<Page<Finding>, OsError> {
        let mut filter = Vec::new();
        if let Some(h) = &q.host {
            filter.push(json!({"term": {"host.name": h}}));
        }
        if let Some(a) = &q.analyzer {
            filter.push(json!({"term": {"analyzer": a}}));
        }
        if let Some(s) = q.min_severity {
            filter.push(json!({"terms": {"severity": at_least(s)}}));
        }
        if let Some(e) = &q.event_id {
            filter.push(json!({"term": {"event_ids": e}}));
        }
        if let Some(t) = &q.text {
            let t = t.trim_matches('"');
            filter.push(json!({"multi_match": {"query": t, "type": "phrase",
                                               "fields": ["summary", "evidence_text"]}}));
        }
        filter.extend(time_range("@timestamp", q.since, q.until));
        let sort = json!([{"@timestamp": {"order": "desc", "unmapped_type": "date"}},
                          {"id": {"order": "desc", "unmapped_type": "keyword"}}]);
        let (hits, next) = paged(
            &self.client,
            &self.pattern(),
            filter,
            sort,
            page_limit(q.limit),
            q.cursor.as_deref(),
        )
        .await?;
        Ok(Page {
            items: hits
                .iter()
                .map(|h| decode("finding", h))
                .collect::<Result<_, _>>()?,
            next,
        })
    }
}

/// Incidents in `{prefix}-incidents`, written in place by id.
#[derive(Debug, Clone)]
pub struct IncidentIndex {
    client: Client,
    index: String,
}

impl IncidentIndex {
    /// Incidents under `prefix`.
    pub fn new(client: Client, prefix: &str) -> IncidentIndex {
        IncidentIndex {
            client,
            index: format!("{prefix}-incidents"),
        }
    }

    /// Creates or updates the template.
    pub async fn ensure_template(&self) -> Result<(), OsError> {
        let kw = json!({"type": "keyword", "ignore_above": 1024});
        let t = json!({
            "index_patterns": [self.index],
            "priority": 100,
            "template": {"mappings": {
                "dynamic": false,
                "properties": {
                    "id": kw, "title": {"type": "text"}, "status": kw, "severity": kw,
                    "score": {"type": "float"}, "entity": kw,
                    "host": {"properties": {"name": kw}},
                    "first_seen": {"type": "date"}, "last_seen": {"type": "date"},
                    "created_at": {"type": "date"}, "updated_at": {"type": "date"},
                    "finding_ids": kw, "techniques": kw, "assignee": kw,
                    "notes": {"type": "object", "enabled": false}
                }}}
        });
        self.client
            .json(
                Method::PUT,
                &format!("/_index_template/{}", self.index),
                Some(&t),
                &[],
            )
            .await
            .map(|_| ())
    }

    /// Creates or replaces an incident.
    pub async fn upsert(&self, incident: &Incident) -> Result<(), OsError> {
        let doc = serde_json::to_value(incident).expect("an incident serialises");
        let ops = vec![(
            json!({"index": {"_index": self.index, "_id": incident.id}}),
            doc,
        )];
        match self.client.bulk(&ops, true).await?.pop() {
            Some(BulkItem::Failed(reason)) => Err(OsError::Format(format!(
                "incident {} was refused: {reason}",
                incident.id
            ))),
            _ => Ok(()),
        }
    }

    /// An incident by id.
    pub async fn get(&self, id: &str) -> Result<Option<Incident>, OsError> {
        let (status, v) = self
            .client
            .json(
                Method::GET,
                &format!("/{}/_doc/{id}", self.index),
                None,
                &[404],
            )
            .await?;
        if status == 404 || v["found"] != json!(true) {
            return Ok(None);
        }
        decode("incident", &v).map(Some)
    }

    /// Filtered incidents, most recently updated first.
    pub async fn query(&self, q: &IncidentQuery) -> Result<Page<Incident>, OsError> {
        let mut filter = Vec::new();
        if let Some(s) = q.status {
            filter.push(json!({"term": {"status": s.as_str()}}));
        }
        if let Some(h) = &q.host {
            filter.push(json!({"term": {"host.name": h}}));
        }
        if let Some(s) = q.min_severity {
            filter.push(json!({"terms": {"severity": at_least(s)}}));
        }
        filter.extend(time_range("updated_at", q.since, q.until));
        let sort = json!([{"updated_at": {"order": "desc", "unmapped_type": "date"}},
                          {"id": {"order": "desc", "unmapped_type": "keyword"}}]);
        let (hits, next) = paged(
            &self.client,
            &format!("/{}", self.index),
            filter,
            sort,
            page_limit(q.limit),
            q.cursor.as_deref(),
        )
        .await?;
        Ok(Page {
            items: hits
                .iter()
                .map(|h| decode("incident", h))
                .collect::<Result<_, _>>()?,
            next,
        })
    }
}
