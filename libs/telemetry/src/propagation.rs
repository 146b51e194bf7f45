//! W3C trace context over HTTP headers and gRPC metadata.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, KeyRef, MetadataMap};
use tonic::service::Interceptor;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Returns the OpenTelemetry context of the current `tracing` span.
///
/// When the current span carries no OpenTelemetry data (no span, a span filtered out of
/// the OpenTelemetry layer, telemetry not initialised) it falls back to the attached
/// OpenTelemetry context, which is the nearest enclosing recorded span.
pub fn current_context() -> Context {
    let span_context = tracing::Span::current().context();
    if span_context.span().span_context().is_valid() {
        return span_context;
    }
    Context::current()
}

/// Returns the trace id of the current span as 32 lowercase hex digits, or `None` outside
/// any traced span.
pub fn current_trace_id() -> Option<String> {
    let context = current_context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Returns the context propagated in `headers` (`traceparent`, `tracestate`) by the
/// global propagator; an empty context when there is none or it does not parse.
pub fn extract_http_context(headers: &HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Writes the current span's trace context into `headers` with the global propagator.
pub fn inject_http_context(headers: &mut HeaderMap) {
    let context = current_context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Returns the context propagated in gRPC request metadata by the global propagator.
///
/// [`crate::GrpcTraceLayer`] already does this for every call; this is for code that only
/// holds a `tonic::Request`.
pub fn extract_grpc_context(metadata: &MetadataMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&MetadataExtractor(metadata)))
}

/// Writes the current span's trace context into gRPC request metadata with the global
/// propagator.
pub fn inject_grpc_context(metadata: &mut MetadataMap) {
    let context = current_context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// A tonic client interceptor that propagates the current span's trace context.
///
/// `XClient::with_interceptor(channel, TraceContextInterceptor)`. The interceptor runs
/// when the call is made, so the RPC must be awaited inside the caller's span (an
/// `#[instrument]`ed function or `.instrument(span)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextInterceptor;

impl Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_grpc_context(request.metadata_mut());
        Ok(request)
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator only emits valid header names and values; anything else is
        // dropped rather than failing the request.
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            return;
        };
        self.0.insert(name, value);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(key), Ok(value)) = (
            AsciiMetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(value.as_str()),
        ) else {
            return;
        };
        self.0.insert(key, value);
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(|key| match key {
                KeyRef::Ascii(key) => key.as_str(),
                KeyRef::Binary(key) => key.as_str(),
            })
            .collect()
    }
}
