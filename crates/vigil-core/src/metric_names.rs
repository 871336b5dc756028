//! Prometheus metric names, defined once. Every crate records metrics through these constants
//! so that the Grafana dashboard and the docs have a single source of truth.

/// Counter: events committed to the store.
pub const EVENTS_INGESTED: &str = "vigil_events_ingested_total";
/// Counter: events refused because the ingest queue was full (label `reason`).
pub const EVENTS_REJECTED: &str = "vigil_events_rejected_total";
/// Gauge: events waiting in the ingest queue for their commit.
pub const INGEST_QUEUE_DEPTH: &str = "vigil_ingest_queue_depth";
/// Histogram: seconds one group commit of events took in the store.
pub const COMMIT_SECONDS: &str = "vigil_store_commit_seconds";
/// Histogram: events per group commit.
pub const COMMIT_BATCH_EVENTS: &str = "vigil_store_commit_batch_events";
/// Gauge: committed events waiting for analysis.
pub const ANALYSIS_QUEUE_DEPTH: &str = "vigil_analysis_queue_depth";
/// Histogram: seconds one analyzer spent on one event (label `analyzer`).
pub const ANALYZER_SECONDS: &str = "vigil_analyzer_seconds";
/// Counter: analyzer panics caught by the worker pool (label `analyzer`).
pub const ANALYZER_PANICS: &str = "vigil_analyzer_panics_total";
/// Counter: findings produced (labels `analyzer`, `severity`).
pub const FINDINGS: &str = "vigil_findings_total";
/// Counter: HTTP responses (labels `method`, `route`, `status`).
pub const HTTP_RESPONSES: &str = "vigil_http_responses_total";
/// Histogram: HTTP request seconds (labels `method`, `route`).
pub const HTTP_SECONDS: &str = "vigil_http_request_seconds";
/// Gauge: connected WebSocket stream subscribers.
pub const STREAM_SUBSCRIBERS: &str = "vigil_stream_subscribers";
/// Counter: WebSocket subscribers dropped for falling behind.
pub const STREAM_DROPPED: &str = "vigil_stream_dropped_total";
/// Counter: events deleted by the retention task.
pub const RETENTION_DELETED: &str = "vigil_retention_deleted_total";
/// Counter: log lines ingested from log sources, by `source` (`file`, `syslog_udp`,
/// `syslog_tcp`).
pub const LOG_LINES: &str = "vigil_log_lines_total";
/// Counter: log lines longer than what is kept, stored cut and marked `log.truncated`, by
/// `source` (`file`, `syslog_udp`, `syslog_tcp`).
pub const LOG_TRUNCATED: &str = "vigil_log_lines_truncated_total";
/// Counter: syslog datagrams dropped because the pipeline was full, by `source`.
pub const LOG_DROPPED: &str = "vigil_log_lines_dropped_total";
/// Log sessions closed by the log analyzer, by `verdict` (`normal`, `anomalous`,
/// `unjudged` while no model is trained).
pub const LOG_SESSIONS: &str = "vigil_log_sessions_total";
/// Counter: connections scored by the network detector (label `status`: `scored`,
/// `no_model`).
pub const NETWORK_SCORED: &str = "vigil_network_scored_total";
/// Counter: connections the network detector flagged.
pub const NETWORK_ANOMALIES: &str = "vigil_network_anomalies_total";
/// Counter: network time-series rows not stored (the writer was behind or failed).
pub const NETWORK_ROWS_DROPPED: &str = "vigil_network_rows_dropped_total";
/// Counter: network findings not made because the same connection made one recently.
pub const NETWORK_FINDINGS_SUPPRESSED: &str = "vigil_network_findings_suppressed_total";
/// Counter: network model trainings (label `outcome`: `promoted`, `kept`, `failed`).
pub const NETWORK_TRAININGS: &str = "vigil_network_trainings_total";
/// Gauge: population stability index of the last drift window of network scores.
pub const NETWORK_DRIFT_PSI: &str = "vigil_network_drift_psi";
/// Counter: incidents opened by the correlator.
pub const INCIDENTS_OPENED: &str = "vigil_incidents_opened_total";
/// Counter: responder delivery attempts (labels `route`, `outcome`: `delivered`, `retry`,
/// `dead`).
pub const DELIVERIES: &str = "vigil_deliveries_total";
/// Counter: deliveries postponed by their route's rate limit (label `route`).
pub const DELIVERIES_RATE_LIMITED: &str = "vigil_deliveries_rate_limited_total";

/// Most distinct values one label kind takes from data ([`bounded_label`]); later values
/// are counted as `other`.
pub const MAX_LABEL_VALUES: usize = 200;

/// Longest label value taken from data, in bytes; longer values are counted as `other`.
pub const MAX_LABEL_BYTES: usize = 64;

/// A label value taken from data that users or clients control (analyzer and script names,
/// protocol commands): the first [`MAX_LABEL_VALUES`] distinct values of each `kind` are
/// kept, every later or over-long one is `other`, so that no input can grow `/metrics`
/// without bound (issue 22: 7,000 distinct HTTP methods grew it to 850 MB).
pub fn bounded_label(kind: &'static str, value: &str) -> String {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<&'static str, HashSet<String>>>> = OnceLock::new();
    if value.is_empty() || value.len() > MAX_LABEL_BYTES {
        return "other".into();
    }
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let set = seen.entry(kind).or_default();
    if set.contains(value) {
        return value.to_string();
    }
    if set.len() >= MAX_LABEL_VALUES {
        return "other".into();
    }
    set.insert(value.to_string());
    value.to_string()
}

/// The label of an HTTP method: one of the nine standard methods, else `other`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_taken_from_data_are_bounded() {
        for i in 0..MAX_LABEL_VALUES * 3 {
            let v = bounded_label("test_kind", &format!("v{i}"));
            if i < MAX_LABEL_VALUES {
                assert_eq!(v, format!("v{i}"));
            } else {
                assert_eq!(v, "other");
            }
        }
        // Values seen before keep their label.
        assert_eq!(bounded_label("test_kind", "v1"), "v1");
        assert_eq!(bounded_label("other_kind", &"x".repeat(65)), "other");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label(&"A".repeat(8000)), "other");
        assert_eq!(method_label("get"), "other");
    }
}
