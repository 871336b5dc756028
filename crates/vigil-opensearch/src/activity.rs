//! Counts per time bucket (the console's overview): a `date_histogram` over `@timestamp`.

use crate::client::{Client, OsError};
use reqwest::Method;
use serde_json::{Value, json};
use vigil_store::{Activity, ActivityBucket, ActivityQuery};

/// Most distinct analyzers counted in one bucket; more is reported as an error rather
/// than a silently short breakdown.
pub(crate) const MAX_ANALYZERS: usize = 1000;

/// A `size: 0` search over `[since, until)` with buckets of `bucket_secs`, each with the
/// sub-aggregations `sub`. With `fixed_interval`, no offset and the default UTC zone, a
/// bucket's key is `floor(t / interval) * interval`: multiples of the width since the epoch,
/// as [`ActivityQuery::empty_activity`] lays them out. Empty buckets are not asked for
/// (`min_doc_count: 1`): the caller's [`Activity`] has every bucket already.
pub(crate) fn search_body(q: &ActivityQuery, sub: Option<Value>) -> Value {
    let mut histogram = json!({"date_histogram": {
        "field": "@timestamp",
        "fixed_interval": format!("{}s", q.bucket_secs),
        "min_doc_count": 1
    }});
    if let Some(sub) = sub {
        histogram["aggs"] = sub;
    }
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"bool": {"filter": [{"range": {"@timestamp": {
            "gte": vigil_core::format_ts(q.since),
            "lt": vigil_core::format_ts(q.until)}}}]}},
        "aggs": {"activity": histogram}
    })
}

/// Runs the search over `pattern` (`/{prefix}-events-*`, …) and returns, per non-empty
/// histogram bucket, the [`Activity`] bucket it is and the engine's bucket.
pub(crate) async fn histogram<'a>(
    client: &Client,
    pattern: &str,
    body: &Value,
    into: &'a mut Activity,
) -> Result<Vec<(&'a mut ActivityBucket, Value)>, OsError> {
    let (_, v) = client
        .json(
            Method::POST,
            &format!("{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
            Some(body),
            &[],
        )
        .await?;
    let buckets = match v["aggregations"]["activity"]["buckets"].as_array() {
        Some(b) => b.clone(),
        // A search over no index at all may answer without aggregations.
        None if v["_shards"]["total"].as_u64().unwrap_or(0) == 0 => Vec::new(),
        None => {
            return Err(OsError::Format(
                "a date_histogram answer without `aggregations.activity.buckets`".into(),
            ));
        }
    };
    let secs = into.bucket_secs;
    let width = secs.saturating_mul(1000);
    let first = into
        .buckets
        .first()
        .map(|b| b.start.timestamp_millis())
        .unwrap_or(0);
    let mut slots: Vec<Option<&'a mut ActivityBucket>> =
        into.buckets.iter_mut().map(Some).collect();
    let mut out = Vec::with_capacity(buckets.len());
    for b in buckets {
        let key = b["key"]
            .as_i64()
            .or_else(|| b["key"].as_f64().map(|k| k as i64))
            .ok_or_else(|| OsError::Format("a date_histogram bucket without `key`".into()))?;
        let offset = key - first;
        if offset.rem_euclid(width) != 0 {
            return Err(OsError::Format(format!(
                "date_histogram bucket {key} is not a multiple of {secs}s since the epoch"
            )));
        }
        let slot = usize::try_from(offset.div_euclid(width))
            .ok()
            .and_then(|i| slots.get_mut(i))
            .and_then(Option::take)
            .ok_or_else(|| {
                OsError::Format(format!(
                    "date_histogram bucket {key} is outside the range asked for, or repeated"
                ))
            })?;
        out.push((slot, b));
    }
    Ok(out)
}

/// `doc_count` of an aggregation bucket.
pub(crate) fn doc_count(bucket: &Value) -> u64 {
    bucket["doc_count"].as_u64().unwrap_or(0)
}
