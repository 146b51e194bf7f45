//! Server side of gRPC trace propagation: one `grpc` span per call, parented on the
//! caller's W3C trace context.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use opentelemetry::trace::TraceContextExt;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::extract_http_context;

/// A tower layer for tonic servers that opens a `grpc` span per call.
///
/// `Server::builder().layer(GrpcTraceLayer::new("accounts"))`. The span is named after the
/// RPC (`cudly.accounts.v1.Accounts/CreateAccount`), has kind server, carries `rpc.system`,
/// `rpc.service`, `rpc.method` and `cudly.service`, and is the child of the context in the
/// request's `traceparent` header when there is one. Handler spans (`#[instrument]`) nest
/// under it. It records `rpc.grpc.status_code` when the status travels in the response
/// headers (every error from a unary call). No header value other than the trace
/// context is read, so credentials never reach a span.
#[derive(Clone, Debug)]
pub struct GrpcTraceLayer {
    service_name: Arc<str>,
}

impl GrpcTraceLayer {
    /// Returns a layer whose spans name `service_name` in their `cudly.service` field.
    pub fn new(service_name: impl Into<Arc<str>>) -> Self {
        Self {
            service_name: service_name.into(),
        }
    }
}

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTraceService {
            inner,
            service_name: Arc::clone(&self.service_name),
        }
    }
}

/// The service built by [`GrpcTraceLayer`].
#[derive(Clone, Debug)]
pub struct GrpcTraceService<S> {
    inner: S,
    service_name: Arc<str>,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for GrpcTraceService<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GrpcTraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let span = grpc_server_span(&self.service_name, &request);
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        GrpcTraceFuture { inner, span }
    }
}

pin_project! {
    /// The response future of [`GrpcTraceService`]: polls the inner future inside the
    /// call's span and records the gRPC status found in the response headers.
    pub struct GrpcTraceFuture<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F, ResponseBody, E> Future for GrpcTraceFuture<F>
where
    F: Future<Output = Result<http::Response<ResponseBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let output = ready!(this.inner.poll(cx));
        match &output {
            Ok(response) => record_grpc_status(this.span, response.headers()),
            Err(_) => {
                this.span.record("otel.status_code", "error");
            }
        }
        Poll::Ready(output)
    }
}

fn grpc_server_span<B>(service_name: &str, request: &http::Request<B>) -> Span {
    let path = request.uri().path();
    let (rpc_service, rpc_method) = split_grpc_path(path);
    let span = tracing::info_span!(
        "grpc",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = rpc_service,
        rpc.method = rpc_method,
        rpc.grpc.status_code = Empty,
        cudly.service = service_name,
    );
    let parent = extract_http_context(request.headers());
    if parent.span().span_context().is_valid() {
        // Fails only when the OpenTelemetry layer is absent, where there is no trace to
        // join anyway.
        let _ = span.set_parent(parent);
    }
    span
}

/// Splits `/package.Service/Method` into its service and method; empty strings for a
/// path of another shape.
fn split_grpc_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""))
}

fn record_grpc_status(span: &Span, headers: &http::HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
    else {
        // The status of a successful unary call travels in the trailers.
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if is_server_error(tonic::Code::from_i32(code)) {
        span.record("otel.status_code", "error");
    }
}

/// Returns whether a status code marks a server span as failed, following the
/// OpenTelemetry gRPC conventions: client mistakes such as `NotFound` do not.
fn is_server_error(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_path_splits_into_service_and_method() {
        assert_eq!(
            split_grpc_path("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
    }

    #[test]
    fn a_path_that_is_not_grpc_gives_empty_service_and_method() {
        assert_eq!(split_grpc_path("/healthz"), ("", ""));
    }

    #[test]
    fn only_server_side_failures_mark_the_span_as_an_error() {
        assert!(is_server_error(tonic::Code::Internal));
        assert!(is_server_error(tonic::Code::Unavailable));
        assert!(!is_server_error(tonic::Code::NotFound));
        assert!(!is_server_error(tonic::Code::InvalidArgument));
        assert!(!is_server_error(tonic::Code::Ok));
    }
}
