//! Prometheus recorder and the HTTP metrics/logging middleware.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Instant;
use vigil_core::metric_names as m;

/// Installs the process-wide Prometheus recorder with Vigil's histogram buckets.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    builder()?.install_recorder()
}

/// A recorder builder with Vigil's histogram buckets, for tests that need their own.
pub fn builder() -> Result<PrometheusBuilder, BuildError> {
    let seconds = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(
            Matcher::Full(m::COMMIT_BATCH_EVENTS.into()),
            &[1.0, 10.0, 100.0, 1000.0, 5000.0, 10000.0, 50000.0],
        )
}

/// Middleware: counts responses by method, route template and status, and times requests.
/// Each call is logged by the access log ([`crate::access`]), not here.
///
/// Every label is bounded whatever clients send: a method outside the nine standard ones
/// is `other`, the route is a template of the route table or `unmatched` (never the path),
/// and the status is a number below 1000.
pub async fn record_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = m::method_label(req.method().as_str());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!(m::HTTP_RESPONSES, "method" => method, "route" => route.clone(),
        "status" => status.to_string())
    .increment(1);
    metrics::histogram!(m::HTTP_SECONDS, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    resp
}
