//! Per-client abuse limits (docs/design/API.md "Auth"): failed authentications,
//! requests to the approval-token routes, and requests that call AWS on each use
//! (credential tests, discovery: each spends the accounts' STS and Organizations
//! quotas), counted per client address with governor's keyed GCRA limiters, refused
//! with 429 and `Retry-After`.
//!
//! A client that spends its failed-authentication budget is locked out until the
//! limiter would let it try again, with any key: guessing keys or approval tokens costs
//! time, whoever guesses right. Behind a proxy every client is the proxy's address, so
//! the limits then bound the proxy as a whole.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use cudly_common::{ApiError, ErrorCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::error_response;
use crate::state::AppState;

/// Lock-outs kept before expired ones are dropped.
const MAX_LOCKED_CLIENTS: usize = 10_000;

/// The limits of one gateway.
pub struct ClientLimits {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Clients out of failed-authentication budget, until when.
    locked: Mutex<HashMap<IpAddr, Instant>>,
    token_requests: DefaultKeyedRateLimiter<IpAddr>,
    aws_checks: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

/// Requests a minute per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerMinute {
    pub failed_authentications: NonZeroU32,
    pub token_requests: NonZeroU32,
    pub aws_checks: NonZeroU32,
}

impl ClientLimits {
    /// Limits of `per_minute` per client address.
    pub fn new(per_minute: PerMinute) -> Self {
        Self {
            failures: RateLimiter::keyed(Quota::per_minute(per_minute.failed_authentications)),
            locked: Mutex::new(HashMap::new()),
            token_requests: RateLimiter::keyed(Quota::per_minute(per_minute.token_requests)),
            aws_checks: RateLimiter::keyed(Quota::per_minute(per_minute.aws_checks)),
            clock: DefaultClock::default(),
        }
    }

    /// Returns how long `client` stays locked out, if it is.
    pub fn locked_out(&self, client: IpAddr) -> Option<Duration> {
        let locked = self
            .locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = *locked.get(&client)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failed authentication of `client`; when that spent its budget, locks it
    /// out and returns for how long.
    pub fn failed_authentication(&self, client: IpAddr) -> Option<Duration> {
        let wait = self.spend(&self.failures, client)?;
        let mut locked = self
            .locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if locked.len() >= MAX_LOCKED_CLIENTS {
            locked.retain(|_, until| *until > now);
        }
        locked.insert(client, now + wait);
        Some(wait)
    }

    /// Counts a token-route request of `client`; returns how long to wait when it is
    /// over the limit.
    pub fn token_request(&self, client: IpAddr) -> Option<Duration> {
        self.spend(&self.token_requests, client)
    }

    /// Counts a request of `client` that calls AWS; returns how long to wait when it is
    /// over the limit.
    pub fn aws_check(&self, client: IpAddr) -> Option<Duration> {
        self.spend(&self.aws_checks, client)
    }

    fn spend(&self, limiter: &DefaultKeyedRateLimiter<IpAddr>, client: IpAddr) -> Option<Duration> {
        limiter
            .check_key(&client)
            .err()
            .map(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Returns the address of the client that sent `request` (unspecified when the server
/// gave none, as in router tests: those share one budget).
pub fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Returns the 429 reply telling the client to come back after `wait` (whole seconds,
/// at least 1).
pub fn too_many_requests(wait: Duration, message: &str) -> Response {
    let mut response = error_response(ApiError::new(ErrorCode::TooManyRequests, message));
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// Middleware of the approval-token routes: at most the configured requests a minute
/// per client.
pub async fn limit_token_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_address(&request);
    if let Some(wait) = state.limits.token_request(client) {
        tracing::warn!(%client, "token-route limit reached");
        return too_many_requests(wait, "too many requests to the approval routes");
    }
    next.run(request).await
}

/// Middleware of the routes that call AWS on every request: at most the configured
/// requests a minute per client.
pub async fn limit_aws_checks(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_address(&request);
    if let Some(wait) = state.limits.aws_check(client) {
        tracing::warn!(%client, "aws-check limit reached");
        return too_many_requests(
            wait,
            "too many credential tests and discoveries from this address",
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientLimits {
        ClientLimits::new(PerMinute {
            failed_authentications: NonZeroU32::new(3).unwrap(),
            token_requests: NonZeroU32::new(2).unwrap(),
            aws_checks: NonZeroU32::new(2).unwrap(),
        })
    }

    #[test]
    fn the_failure_that_spends_the_budget_locks_the_client_out() {
        let limits = limits();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limits.failed_authentication(client), None);
        }
        assert_eq!(limits.locked_out(client), None);
        let wait = limits.failed_authentication(client).unwrap();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limits.locked_out(client).is_some());
        assert_eq!(limits.locked_out(other), None, "per client");
    }

    #[test]
    fn token_requests_are_counted_per_client() {
        let limits = limits();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(limits.token_request(client), None);
        assert_eq!(limits.token_request(client), None);
        assert!(limits.token_request(client).is_some());
        assert_eq!(limits.token_request("192.0.2.9".parse().unwrap()), None);
    }
}
