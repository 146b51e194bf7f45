//! Bounds on the work a gRPC service takes on (docs/design/ARCHITECTURE.md "Limits"):
//! a deadline on every request, longer for the few RPCs documented as long (a
//! recommendations refresh), and a cap on the requests handled at once, so a caller
//! that floods or stalls a service cannot exhaust its pool or memory. Requests over the
//! cap wait for a slot within their deadline; health checks never wait, so a busy
//! service still answers its probes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic::Status;

use crate::config::{ConfigError, ConfigResult, Env, defaults};

/// The RPCs that run for minutes by design: each is a whole recommendations refresh
/// (many paged, throttled Cost Explorer calls). They get the refresh's deadline.
pub const LONG_RPCS: &[&str] = &["RefreshRecommendations", "CollectRecommendations"];

/// The gRPC service whose requests never wait for a slot.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Limits of one service's gRPC server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// Deadline of a request (`CUDLY_GRPC_REQUEST_TIMEOUT`): longer than the callers'
    /// own deadline (`CUDLY_INTERNAL_CALL_TIMEOUT`), so it only ends work nobody waits
    /// for any more.
    pub request_timeout: Duration,
    /// Deadline of the [`LONG_RPCS`].
    pub long_request_timeout: Duration,
    /// Requests handled at once (`CUDLY_GRPC_MAX_CONCURRENT_REQUESTS`).
    pub max_concurrent_requests: usize,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            request_timeout: defaults::GRPC_REQUEST_TIMEOUT,
            long_request_timeout: defaults::RECOMMENDATION_REFRESH_TIMEOUT
                + Duration::from_secs(60),
            max_concurrent_requests: defaults::GRPC_MAX_CONCURRENT_REQUESTS,
        }
    }
}

impl GrpcLimits {
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let defaults = Self::default();
        let limits = Self {
            request_timeout: env
                .duration("CUDLY_GRPC_REQUEST_TIMEOUT", defaults.request_timeout)?,
            max_concurrent_requests: env.parse(
                "CUDLY_GRPC_MAX_CONCURRENT_REQUESTS",
                defaults.max_concurrent_requests,
            )?,
            ..defaults
        };
        if limits.request_timeout.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_GRPC_REQUEST_TIMEOUT",
                "must be longer than zero",
            ));
        }
        if limits.max_concurrent_requests == 0 {
            return Err(ConfigError::new(
                "CUDLY_GRPC_MAX_CONCURRENT_REQUESTS",
                "must be at least 1",
            ));
        }
        Ok(limits)
    }

    /// Returns the deadline of `method` (its name, e.g. `ResolveCredentials`).
    pub fn deadline_of(&self, method: &str) -> Duration {
        if LONG_RPCS.contains(&method) {
            self.long_request_timeout.max(self.request_timeout)
        } else {
            self.request_timeout
        }
    }
}

/// The tower layer applying [`GrpcLimits`] to a whole server.
#[derive(Clone)]
pub struct GrpcLimitsLayer {
    limits: GrpcLimits,
    slots: Arc<Semaphore>,
}

impl GrpcLimitsLayer {
    pub fn new(limits: GrpcLimits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        }
    }
}

impl<S> tower::Layer<S> for GrpcLimitsLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limited {
            inner,
            limits: self.limits,
            slots: self.slots.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    limits: GrpcLimits,
    slots: Arc<Semaphore>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Limited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: Default + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = crate::grpc::method_name(path).to_owned();
        let is_health = path.trim_start_matches('/').starts_with(HEALTH_SERVICE);
        let deadline = self.limits.deadline_of(&method);
        let slots = (!is_health).then(|| self.slots.clone());
        // The handler's future does nothing until polled, below, once a slot is held.
        let future = self.inner.call(request);
        Box::pin(async move {
            let limited = async move {
                let _slot = match slots {
                    Some(slots) => Some(slots.acquire_owned().await.expect("never closed")),
                    None => None,
                };
                future.await
            };
            match tokio::time::timeout(deadline, limited).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        method,
                        deadline_ms = deadline.as_millis() as u64,
                        "request deadline exceeded"
                    );
                    Ok(Status::deadline_exceeded(format!(
                        "{method} did not finish within {}s",
                        deadline.as_secs()
                    ))
                    .into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    /// Sleeps for the duration named by the request path's last segment (in ms),
    /// counting the requests that run at once.
    #[derive(Clone, Default)]
    struct Sleeper {
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Service<http::Request<()>> for Sleeper {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            let millis: u64 = crate::grpc::method_name(request.uri().path())
                .parse()
                .unwrap_or(0);
            let (running, most) = (self.running.clone(), self.most.clone());
            Box::pin(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(http::Response::new("done".to_owned()))
            })
        }
    }

    fn limits(timeout_ms: u64, slots: usize) -> GrpcLimits {
        GrpcLimits {
            request_timeout: Duration::from_millis(timeout_ms),
            long_request_timeout: Duration::from_secs(60),
            max_concurrent_requests: slots,
        }
    }

    fn grpc_status(response: &http::Response<String>) -> Option<tonic::Code> {
        Status::from_header_map(response.headers()).map(|status| status.code())
    }

    async fn send(service: &mut Limited<Sleeper>, path: &str) -> http::Response<String> {
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_ends_deadline_exceeded_but_a_long_rpc_may_run_on() {
        let mut service = GrpcLimitsLayer::new(limits(100, 8)).layer(Sleeper::default());
        let fast = send(&mut service, "/cudly.test.v1.Svc/50").await;
        assert_eq!(fast.body(), "done");
        let slow = send(&mut service, "/cudly.test.v1.Svc/5000").await;
        assert_eq!(grpc_status(&slow), Some(tonic::Code::DeadlineExceeded));
        // A refresh takes minutes by design; its own deadline applies.
        let path = "/cudly.planner.v1.PlannerService/RefreshRecommendations";
        let limits = limits(100, 8);
        assert_eq!(
            limits.deadline_of("RefreshRecommendations"),
            Duration::from_secs(60)
        );
        let mut service = GrpcLimitsLayer::new(limits).layer(Sleeper::default());
        assert_eq!(send(&mut service, path).await.body(), "done");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_over_the_cap_wait_for_a_slot_and_health_checks_never_wait() {
        let sleeper = Sleeper::default();
        let layer = GrpcLimitsLayer::new(limits(10_000, 2));
        let mut calls = Vec::new();
        for _ in 0..6 {
            let mut service = layer.layer(sleeper.clone());
            calls.push(tokio::spawn(async move {
                send(&mut service, "/cudly.test.v1.Svc/100").await
            }));
        }
        for call in calls {
            assert_eq!(call.await.unwrap().body(), "done");
        }
        assert_eq!(sleeper.most.load(Ordering::SeqCst), 2);

        // Both slots busy for a long while: a health check still answers at once.
        let mut busy = Vec::new();
        for _ in 0..2 {
            let mut service = layer.layer(sleeper.clone());
            busy.push(tokio::spawn(async move {
                send(&mut service, "/cudly.test.v1.Svc/5000").await
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut service = layer.layer(sleeper.clone());
        let started = tokio::time::Instant::now();
        let health = send(&mut service, "/grpc.health.v1.Health/0").await;
        assert_eq!(health.body(), "done");
        assert!(started.elapsed() < Duration::from_millis(100));
        for call in busy {
            call.await.unwrap();
        }
    }

    #[test]
    fn the_limits_are_read_and_checked() {
        let env = Env::from_pairs([
            ("CUDLY_GRPC_REQUEST_TIMEOUT", "90s"),
            ("CUDLY_GRPC_MAX_CONCURRENT_REQUESTS", "32"),
        ]);
        let limits = GrpcLimits::read(&env).unwrap();
        assert_eq!(limits.request_timeout, Duration::from_secs(90));
        assert_eq!(limits.max_concurrent_requests, 32);
        let zero = Env::from_pairs([("CUDLY_GRPC_MAX_CONCURRENT_REQUESTS", "0")]);
        assert_eq!(
            GrpcLimits::read(&zero).unwrap_err().variable,
            "CUDLY_GRPC_MAX_CONCURRENT_REQUESTS"
        );
    }
}
