//! Prometheus metrics: the process-wide recorder and the HTTP request middleware. The
//! figures are served on the gateway's own metrics listener, not the API's
//! (`cudly_common::metrics::serve_metrics`).
//!
//! The middleware counts requests (`http_requests_total`) and records their latency
//! (`http_request_duration_seconds`, a histogram) by `method`, matched `route` (the
//! route template such as `/api/keys/{id}`, or `unmatched`, so that probing random
//! paths cannot blow up the series count) and `status`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Returns the handle of the process-wide Prometheus recorder (shared with every
/// service of the process, see `cudly_common::metrics`), describing the gateway's series
/// once.
pub fn prometheus_handle() -> PrometheusHandle {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    let handle = cudly_common::metrics::prometheus_handle();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests answered by the gateway");
        metrics::describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "time the gateway took to answer an HTTP request"
        );
    });
    handle
}

/// Middleware counting requests and recording their latency per method, route and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Returns the method as a label value; non-standard methods share one value.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
