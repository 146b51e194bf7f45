//! A trace started before the gateway reaches the services behind it.

use std::net::SocketAddr;
use std::time::Duration;

use cudly_telemetry::{
    GrpcTraceLayer, InMemorySpanExporter, SpanData, TraceContextInterceptor, current_trace_id,
    extract_grpc_context, extract_http_context, inject_grpc_context, inject_http_context,
};
use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt, TraceId};
use tonic::metadata::MetadataMap;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const KNOWN_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// Starts a health service behind `GrpcTraceLayer` on a free loopback port.
async fn spawn_traced_health_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_reporter, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .layer(GrpcTraceLayer::new("health-test"))
            .add_service(health_service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    address
}

async fn traced_health_client(
    address: SocketAddr,
) -> HealthClient<InterceptedService<Channel, TraceContextInterceptor>> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::with_interceptor(channel, TraceContextInterceptor)
}

/// Returns the finished spans of `trace_id` once one matches `wanted`; spans close on the
/// server task, so they may land a moment after the response.
async fn wait_for_span(
    exporter: &InMemorySpanExporter,
    trace_id: TraceId,
    wanted: impl Fn(&SpanData) -> bool,
) -> (SpanData, Vec<SpanData>) {
    for _ in 0..200 {
        let spans: Vec<SpanData> = exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .collect();
        if let Some(found) = spans.iter().find(|span| wanted(span)) {
            return (found.clone(), spans);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no matching span for trace {trace_id}");
}

fn traceparent_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{KNOWN_TRACE_ID}-{CALLER_SPAN_ID}-01")
            .parse()
            .unwrap(),
    );
    headers
}

#[tokio::test]
async fn a_trace_id_survives_gateway_to_service() {
    let exporter = cudly_telemetry::init_for_tests("gateway-test");
    let address = spawn_traced_health_server().await;
    let mut client = traced_health_client(address).await;

    // The gateway: a request arrives with a traceparent, its handler span joins that
    // trace, and the service call happens inside the handler span.
    let parent = extract_http_context(&traceparent_headers());
    let gateway_span = tracing::info_span!("gateway request", otel.kind = "server");
    gateway_span.set_parent(parent).unwrap();
    let gateway_span_id = gateway_span.context().span().span_context().span_id();
    let (status, trace_id_in_handler) = async {
        let response = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        (response.into_inner().status, current_trace_id())
    }
    .instrument(gateway_span.clone())
    .await;
    drop(gateway_span);

    assert_eq!(status, ServingStatus::Serving as i32);
    assert_eq!(trace_id_in_handler.as_deref(), Some(KNOWN_TRACE_ID));

    let known_trace_id = TraceId::from_hex(KNOWN_TRACE_ID).unwrap();
    let (server_span, _) = wait_for_span(&exporter, known_trace_id, |span| {
        span.span_kind == SpanKind::Server && span.name == "grpc.health.v1.Health/Check"
    })
    .await;
    assert_eq!(server_span.parent_span_id, gateway_span_id);
    assert!(server_span.parent_span_is_remote);
    let attribute = |key: &str| {
        server_span
            .attributes
            .iter()
            .find(|attribute| attribute.key.as_str() == key)
            .map(|attribute| attribute.value.to_string())
    };
    assert_eq!(attribute("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute("rpc.service").as_deref(),
        Some("grpc.health.v1.Health")
    );
    assert_eq!(attribute("rpc.method").as_deref(), Some("Check"));
    assert_eq!(attribute("cudly.service").as_deref(), Some("health-test"));

    let (gateway_span_data, _) = wait_for_span(&exporter, known_trace_id, |span| {
        span.span_context.span_id() == gateway_span_id
    })
    .await;
    assert_eq!(
        gateway_span_data.parent_span_id,
        SpanId::from_hex(CALLER_SPAN_ID).unwrap()
    );
}

#[tokio::test]
async fn a_call_without_an_incoming_trace_still_links_server_to_client() {
    let exporter = cudly_telemetry::init_for_tests("gateway-test");
    let address = spawn_traced_health_server().await;
    let mut client = traced_health_client(address).await;

    let client_span = tracing::info_span!("client call");
    let client_context = client_span.context();
    let client_span_context = client_context.span().span_context().clone();
    assert!(client_span_context.is_valid());
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .instrument(client_span.clone())
        .await
        .unwrap();
    drop(client_span);

    let (server_span, _) = wait_for_span(&exporter, client_span_context.trace_id(), |span| {
        span.span_kind == SpanKind::Server
    })
    .await;
    assert_eq!(server_span.parent_span_id, client_span_context.span_id());
}

#[tokio::test]
async fn an_unknown_method_marks_the_server_span_as_an_error() {
    let exporter = cudly_telemetry::init_for_tests("gateway-test");
    let address = spawn_traced_health_server().await;
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc =
        tonic::client::Grpc::new(InterceptedService::new(channel, TraceContextInterceptor));

    let client_span = tracing::info_span!("client call");
    let client_trace_id = client_span.context().span().span_context().trace_id();
    let result = async {
        grpc.ready().await.unwrap();
        grpc.unary::<HealthCheckRequest, HealthCheckRequest, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Missing"),
            tonic_prost::ProstCodec::default(),
        )
        .await
    }
    .instrument(client_span.clone())
    .await;
    drop(client_span);
    assert_eq!(result.unwrap_err().code(), tonic::Code::Unimplemented);

    let (server_span, _) = wait_for_span(&exporter, client_trace_id, |span| {
        span.span_kind == SpanKind::Server
    })
    .await;
    let status_code = server_span
        .attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == "rpc.grpc.status_code")
        .map(|attribute| attribute.value.to_string());
    assert_eq!(
        status_code.as_deref(),
        Some((tonic::Code::Unimplemented as i32).to_string().as_str())
    );
    assert!(matches!(
        server_span.status,
        opentelemetry::trace::Status::Error { .. }
    ));
}

#[test]
fn trace_context_round_trips_through_http_headers() {
    let _exporter = cudly_telemetry::init_for_tests("round-trip-test");
    let span = tracing::info_span!("outgoing http call");
    let span_context = span.context().span().span_context().clone();

    let mut headers = http::HeaderMap::new();
    span.in_scope(|| inject_http_context(&mut headers));
    let extracted = extract_http_context(&headers);

    let extracted_span = extracted.span();
    let extracted_context = extracted_span.span_context();
    assert!(headers.contains_key("traceparent"));
    assert_eq!(extracted_context.trace_id(), span_context.trace_id());
    assert_eq!(extracted_context.span_id(), span_context.span_id());
    assert!(extracted_context.is_remote());
    assert!(extracted_context.is_sampled());
}

#[test]
fn trace_context_round_trips_through_grpc_metadata() {
    let _exporter = cudly_telemetry::init_for_tests("round-trip-test");
    let span = tracing::info_span!("outgoing grpc call");
    let span_context = span.context().span().span_context().clone();

    let mut metadata = MetadataMap::new();
    span.in_scope(|| inject_grpc_context(&mut metadata));
    let extracted = extract_grpc_context(&metadata);

    let extracted_span = extracted.span();
    let extracted_context = extracted_span.span_context();
    assert!(metadata.get("traceparent").is_some());
    assert_eq!(extracted_context.trace_id(), span_context.trace_id());
    assert_eq!(extracted_context.span_id(), span_context.span_id());
    assert!(extracted_context.is_remote());
}

#[test]
fn an_http_request_without_a_traceparent_yields_no_parent() {
    let _exporter = cudly_telemetry::init_for_tests("round-trip-test");
    let extracted = extract_http_context(&http::HeaderMap::new());
    assert!(!extracted.span().span_context().is_valid());
}

#[test]
fn there_is_no_trace_id_outside_any_span() {
    let _exporter = cudly_telemetry::init_for_tests("round-trip-test");
    assert_eq!(current_trace_id(), None);
}
