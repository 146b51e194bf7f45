//! Prometheus metrics shared by every service: the one process-wide recorder (so the
//! all-in-one binary's gateway `/metrics` shows every service's figures), a `/metrics`
//! listener for standalone service binaries, and a tower layer counting gRPC requests
//! and their latency per service, method and status code.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Readiness;

/// Latency buckets in seconds, from 1 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub const GRPC_REQUESTS_TOTAL: &str = "grpc_server_requests_total";
pub const GRPC_REQUEST_DURATION: &str = "grpc_server_request_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Returns the handle of the process-wide Prometheus recorder, installing it on first
/// use. Every latency histogram (`*_seconds`) gets the same buckets.
pub fn prometheus_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
                .expect("the latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder is already installed, some metrics may be missing"
                );
            }
            handle
        })
        .clone()
}

/// Renders the current figures in the Prometheus text format.
pub fn render() -> String {
    let handle = prometheus_handle();
    handle.run_upkeep();
    handle.render()
}

/// Serves `GET /metrics` on `listener` until `cancel` fires: every binary's own
/// listener (`CUDLY_<SERVICE>_METRICS_ADDR`), never the API's, so an ingress in front of
/// the API cannot expose it. Given a gRPC service's `readiness`, it also answers
/// `/health/livez` and `/health/readyz` (503 until ready) in plain HTTP, for kubelet
/// probes when the gRPC port speaks only TLS (a native gRPC probe cannot).
pub async fn serve_metrics(
    listener: TcpListener,
    cancel: CancellationToken,
    readiness: Option<Readiness>,
) -> anyhow::Result<()> {
    use axum::routing::get;
    prometheus_handle();
    let probes = match readiness {
        Some(readiness) => axum::Router::new()
            .route("/health/livez", get(|| async { "ok" }))
            .route(
                "/health/readyz",
                get(move || async move {
                    if readiness.is_ready() {
                        (http::StatusCode::OK, "ready")
                    } else {
                        (http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }),
            ),
        None => axum::Router::new(),
    };
    let app = probes.route(
        "/metrics",
        get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                render(),
            )
        }),
    );
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let upkeep_cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = upkeep_cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => prometheus_handle().run_upkeep(),
            }
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await?;
    Ok(())
}

/// Tower layer recording `grpc_server_requests_total` and
/// `grpc_server_request_duration_seconds` by service, method and gRPC status code.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    service: &'static str,
}

impl RpcMetricsLayer {
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            service: self.service,
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    service: &'static str,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = crate::grpc::method_name(request.uri().path()).to_owned();
        let service = self.service;
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            // Unary errors travel in the headers (trailers-only responses); a success
            // carries its status in the trailers, which this layer does not wait for.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "transport".to_owned(),
            };
            let labels = [
                ("service", service.to_owned()),
                ("method", method),
                ("code", code),
            ];
            metrics::counter!(GRPC_REQUESTS_TOTAL, &labels).increment(1);
            metrics::histogram!(GRPC_REQUEST_DURATION, &labels)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// Returns the `/metrics` address of a standalone service binary:
/// `CUDLY_<SERVICE>_METRICS_ADDR`, by default the service's metrics port of the
/// defaults table on every interface.
pub fn standalone_addr(
    env: &crate::config::Env,
    service: &str,
) -> crate::config::ConfigResult<SocketAddr> {
    let variable = format!("CUDLY_{}_METRICS_ADDR", service.to_ascii_uppercase());
    let default = format!(
        "0.0.0.0:{}",
        crate::config::defaults::ports(service).metrics
    );
    env.addr(&variable, &default)
}

/// Starts the `/metrics` listener of a standalone service binary on `addr` (with the
/// probes of `readiness`, [`serve_metrics`]); cancel the returned token to stop it.
pub fn spawn_standalone(addr: SocketAddr, readiness: Option<Readiness>) -> CancellationToken {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let served = match TcpListener::bind(addr).await {
            Ok(listener) => serve_metrics(listener, stop, readiness).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = served {
            tracing::error!(%addr, error = %format!("{error:#}"), "metrics listener failed");
        }
    });
    cancel
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Returns the status line of `GET path` on `addr`.
    async fn status_line(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply.lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn the_metrics_listener_answers_the_probes_of_a_services_readiness() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let readiness = Readiness::default();
        let cancel = CancellationToken::new();
        let served = tokio::spawn(serve_metrics(
            listener,
            cancel.clone(),
            Some(readiness.clone()),
        ));

        assert_eq!(status_line(addr, "/health/livez").await, "HTTP/1.1 200 OK");
        assert_eq!(
            status_line(addr, "/health/readyz").await,
            "HTTP/1.1 503 Service Unavailable",
            "not ready until migrated and every dependency answers"
        );
        readiness.set_ready(true);
        assert_eq!(status_line(addr, "/health/readyz").await, "HTTP/1.1 200 OK");
        assert_eq!(status_line(addr, "/metrics").await, "HTTP/1.1 200 OK");
        cancel.cancel();
        served.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn without_a_readiness_the_listener_serves_metrics_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let served = tokio::spawn(serve_metrics(listener, cancel.clone(), None));
        assert_eq!(
            status_line(addr, "/health/readyz").await,
            "HTTP/1.1 404 Not Found"
        );
        cancel.cancel();
        served.await.unwrap().unwrap();
    }
}
