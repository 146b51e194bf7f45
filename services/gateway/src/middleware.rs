//! Request middleware: the per-request span (W3C `traceparent` honoured), the request
//! timeout, JSON bodies for errors produced outside the handlers, and panics.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cudly_common::{ApiError, ErrorCode};
use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::{HttpError, error_response, generic_message};

/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Opens one `http` span per request, the child of the context in the request's
/// `traceparent` header when there is one, and logs the outcome. Only the method, the
/// route template, the path (never the query, which may hold an approval token) and
/// the request id are recorded.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        request_id = %request_id,
        principal = Empty,
    );
    // The one place where the HTTP trace context is read.
    let parent = cudly_telemetry::extract_http_context(request.headers());
    if parent.span().span_context().is_valid() {
        // Fails only without an OpenTelemetry layer, where there is no trace to join.
        let _ = span.set_parent(parent);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    let latency_ms = started.elapsed().as_millis() as u64;
    // Probes come every few seconds; only their failures would matter.
    let is_probe = route.starts_with("/health/");
    span.in_scope(|| {
        if is_probe {
            tracing::debug!(status = status.as_u16(), latency_ms, "request answered");
        } else if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request answered");
        }
    });
    response
}

/// Routes that may run longer than the request timeout, with their own bound: a
/// recommendations refresh pages through whole organizations in Cost Explorer.
const LONG_ROUTES: &[(&str, Duration)] = &[(
    crate::routes::recommendations::REFRESH_PATH,
    cudly_common::config::defaults::RECOMMENDATION_REFRESH_TIMEOUT,
)];

/// Answers 504 when the handler takes longer than the configured request timeout (or
/// a long route's own bound).
pub async fn enforce_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let timeout = LONG_ROUTES
        .iter()
        .find(|(path, _)| request.uri().path() == *path)
        .map_or(timeout, |(_, bound)| timeout.max(*bound));
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            error_response(ApiError::new(
                ErrorCode::DeadlineExceeded,
                "request timed out",
            ))
        }
    }
}

/// Marks every response `Cache-Control: no-store` unless a handler chose otherwise
/// (replies carry API keys, approval tokens and account data that no proxy, browser
/// cache or history should keep) and `X-Content-Type-Options: nosniff` (a browser takes
/// a reply for the type it declares, never for script).
pub async fn hygiene_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Gives every error response a JSON body. The handlers' errors already have one; this
/// covers the responses axum and tower produce themselves (405 from the router, a
/// rejected body), keeping their status and headers (e.g. `Allow`).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || has_own_body(&response) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let body = serde_json::json!({ "error": generic_message(status) }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// Whether the handler rendered its error itself: JSON, or the approval page's HTML.
fn has_own_body(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with("application/json") || value.starts_with("text/html")
        })
}

/// The router's fallback: an unknown route is a JSON 404.
pub async fn not_found() -> HttpError {
    HttpError(ApiError::not_found("no such route"))
}

/// Turns a handler panic into a JSON 500; the panic message goes to the log only.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(detail, "handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({ "error": "internal server error" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::middleware::{from_fn, from_fn_with_state};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn send(router: Router, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn a_slow_request_times_out_with_a_json_504() {
        let router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .layer(from_fn_with_state(
                Duration::from_millis(50),
                enforce_timeout,
            ));
        let (status, body) = send(router, "GET", "/slow").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body["error"], "request timed out");
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500_without_its_message() {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("secret detail");
                    }
                    "unreachable"
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ));
        let (status, body) = send(router, "GET", "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, serde_json::json!({"error": "internal server error"}));
    }

    #[tokio::test]
    async fn errors_from_the_router_get_a_json_body() {
        let router = Router::new()
            .route("/only-get", get(|| async { "ok" }))
            .layer(from_fn(json_errors));
        let (status, body) = send(router, "DELETE", "/only-get").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method not allowed");
    }
}
