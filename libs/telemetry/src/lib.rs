//! Tracing and OpenTelemetry for every CUDly service.
//!
//! - [`init`] installs the global `tracing` subscriber (env filter from `RUST_LOG`, JSON or
//!   human output, an OpenTelemetry layer) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//!   an OTLP span exporter. [`init_for_tests`] installs the same layers with an in-memory
//!   exporter instead.
//! - [`TraceContextInterceptor`] injects the W3C trace context of the current span into
//!   the metadata of outgoing gRPC requests; [`GrpcTraceLayer`] extracts it on the server
//!   and opens one `grpc` span per call under it.
//! - [`extract_http_context`] and [`inject_http_context`] do the same over HTTP headers for
//!   the gateway and HTTP clients.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use cudly_telemetry::{GrpcTraceLayer, TraceContextInterceptor};
//!
//! let _telemetry = cudly_telemetry::init("accounts")?;
//! let (_reporter, health) = tonic_health::server::health_reporter();
//! let server = tonic::transport::Server::builder()
//!     .layer(GrpcTraceLayer::new("accounts"))
//!     .add_service(health);
//!
//! let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect_lazy();
//! let client = tonic_health::pb::health_client::HealthClient::with_interceptor(
//!     channel,
//!     TraceContextInterceptor,
//! );
//! # drop((server, client));
//! # Ok(())
//! # }
//! ```

mod init;
mod propagation;
mod server;

pub use init::{LOG_FORMAT_VAR, TelemetryGuard, VARIABLES, init, init_for_tests};
pub use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
pub use propagation::{
    TraceContextInterceptor, current_context, current_trace_id, extract_grpc_context,
    extract_http_context, inject_grpc_context, inject_http_context,
};
pub use server::{GrpcTraceFuture, GrpcTraceLayer, GrpcTraceService};
