//! Internal gRPC plumbing shared by the services: caller authentication with per-caller
//! tokens (a receiver keeps only their digests), client channels that carry the token
//! and the trace context, health reporting driven by dependency checks, and shutdown
//! signals.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::config::{ConfigError, ConfigResult, SecretSource};
use crate::error::ApiError;
use crate::tls::GrpcTls;

/// Metadata key carrying the calling service's internal token.
pub const TOKEN_METADATA_KEY: &str = "x-cudly-internal-token";

/// A service that calls other services over gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    Gateway,
    Planner,
    Executor,
    Sweeper,
}

impl Caller {
    pub const ALL: [Caller; 4] = [
        Caller::Gateway,
        Caller::Planner,
        Caller::Executor,
        Caller::Sweeper,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Caller::Gateway => "gateway",
            Caller::Planner => "planner",
            Caller::Executor => "executor",
            Caller::Sweeper => "sweeper",
        }
    }

    /// Returns the caller called `name` ([`Caller::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|caller| caller.name() == name)
    }

    /// Returns the variable holding this caller's own token (read by the caller only).
    pub fn token_var(self) -> String {
        format!("CUDLY_INTERNAL_TOKEN_{}", self.name().to_ascii_uppercase())
    }

    /// Returns the variable holding the digest of this caller's token (read by the
    /// services it calls).
    pub fn digest_var(self) -> String {
        format!(
            "CUDLY_INTERNAL_TOKEN_DIGEST_{}",
            self.name().to_ascii_uppercase()
        )
    }
}

/// The SHA-256 of an internal token: all a receiver keeps of its callers' tokens, so a
/// service that accepts calls from another cannot present that other's token. The
/// tokens are 256-bit random values, so an unsalted hash is enough.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    pub fn of_secret(token: &SecretString) -> Self {
        Self::of(token.expose_secret().as_bytes())
    }

    /// Parses 64 hex characters, as `sha256sum` prints them.
    pub fn parse_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(Self(bytes))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "TokenDigest({})", self.to_hex())
    }
}

/// The token digests of the callers a service accepts; [`crate::caller_policy`] checks
/// them, and each RPC's callers, at the service's edge.
#[derive(Clone)]
pub struct InternalAuth {
    accepted: Arc<Vec<(Caller, TokenDigest)>>,
}

impl InternalAuth {
    pub fn new(accepted: Vec<(Caller, TokenDigest)>) -> Self {
        Self {
            accepted: Arc::new(accepted),
        }
    }

    /// Accepts the holders of `tokens` (tests and the all-in-one `cudly`, which hold
    /// every token in one process).
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = (Caller, &'a SecretString)>) -> Self {
        Self::new(
            tokens
                .into_iter()
                .map(|(caller, token)| (caller, TokenDigest::of_secret(token)))
                .collect(),
        )
    }

    /// Takes the digests of the `callers` this service accepts from `secrets`, refusing
    /// a configuration that hands this service (`own`: the caller it is, if any) another
    /// service's token.
    pub fn from_source(
        own: Option<Caller>,
        callers: &[Caller],
        secrets: &impl SecretSource,
    ) -> ConfigResult<Self> {
        refuse_foreign_tokens(own, secrets)?;
        let accepted = callers
            .iter()
            .map(|caller| {
                secrets
                    .internal_token_digest(*caller)
                    .map(|digest| (*caller, digest))
            })
            .collect::<ConfigResult<Vec<_>>>()?;
        Ok(Self::new(accepted))
    }

    pub(crate) fn identify(&self, presented: &[u8]) -> Option<Caller> {
        let presented = TokenDigest::of(presented);
        // Compare against every digest so the time taken does not reveal which matched.
        let mut found = None;
        for (caller, digest) in self.accepted.iter() {
            if bool::from(digest.0.ct_eq(&presented.0)) {
                found = Some(*caller);
            }
        }
        found
    }
}

/// Returns the RPC name of a gRPC request path (`/cudly.accounts.v1.AccountsService/GetAccount`
/// → `GetAccount`).
pub fn method_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// Refuses a configuration that hands a service (`own`: the caller it is, if any)
/// another service's token, with which it could pass for that service.
pub fn refuse_foreign_tokens(own: Option<Caller>, secrets: &impl SecretSource) -> ConfigResult<()> {
    match secrets.foreign_token_vars(own).into_iter().next() {
        Some(foreign) => Err(ConfigError::new(
            foreign,
            "a service holds only its own internal token; the services a caller calls \
             hold CUDLY_INTERNAL_TOKEN_DIGEST_<CALLER> instead",
        )),
        None => Ok(()),
    }
}

/// Client-side interceptor: adds this service's internal token, the actor of the
/// request being handled (if any) and the current trace context to every outgoing call.
#[derive(Clone)]
pub struct ClientAuth {
    token: Arc<MetadataValue<tonic::metadata::Ascii>>,
}

impl ClientAuth {
    pub fn new(token: &SecretString) -> Result<Self, ConfigError> {
        let value = MetadataValue::try_from(token.expose_secret())
            .map_err(|_| ConfigError::new("CUDLY_INTERNAL_TOKEN_*", "must be printable ascii"))?;
        Ok(Self {
            token: Arc::new(value),
        })
    }
}

impl Interceptor for ClientAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(TOKEN_METADATA_KEY, (*self.token).clone());
        crate::audit::attach(request.metadata_mut());
        cudly_telemetry::TraceContextInterceptor.call(request)
    }
}

/// The channel type every internal client uses.
pub type AuthChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ClientAuth>;

/// Returns a lazily connecting plaintext channel to `url` (see [`secure_channel`]).
pub fn client_channel(
    url: &str,
    token: &SecretString,
    call_timeout: Duration,
) -> ConfigResult<AuthChannel> {
    secure_channel(url, token, call_timeout, None)
}

/// Returns a lazily connecting channel to `url` (so a caller starts even when the
/// callee is down and gets UNAVAILABLE per call) with this caller's token attached,
/// over TLS when `tls` is given.
pub fn secure_channel(
    url: &str,
    token: &SecretString,
    call_timeout: Duration,
    tls: Option<&GrpcTls>,
) -> ConfigResult<AuthChannel> {
    let endpoint = endpoint(url, tls)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(call_timeout)
        .tcp_nodelay(true);
    let channel = endpoint.connect_lazy();
    Ok(tower::ServiceBuilder::new()
        .layer(tonic::service::interceptor::InterceptorLayer::new(
            ClientAuth::new(token)?,
        ))
        .service(channel))
}

/// Returns the endpoint of `url`, with TLS when `tls` is given.
pub fn endpoint(url: &str, tls: Option<&GrpcTls>) -> ConfigResult<tonic::transport::Endpoint> {
    let url = crate::tls::peer_url(url, tls);
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|_| ConfigError::new("CUDLY_*_URL", format!("not a valid url: {url}")))?;
    match tls {
        None => Ok(endpoint),
        Some(tls) => {
            let config = tls
                .client_config()
                .map_err(|error| ConfigError::new("CUDLY_GRPC_TLS_*", format!("{error:#}")))?;
            endpoint
                .tls_config(config)
                .map_err(|error| ConfigError::new("CUDLY_GRPC_TLS_*", error.to_string()))
        }
    }
}

/// The outcome of one dependency check: the dependency's name (`postgres`, `redis`)
/// and the reason it failed, if it did.
pub type DependencyStatus = (&'static str, Result<(), String>);

/// Reports SERVING for the server as a whole (the empty name) and `service_names` while
/// every dependency answers, NOT_SERVING otherwise, and each dependency's own status
/// under its name, so a caller can say which dependency is down. Re-checks every
/// `interval` until `cancel` fires; the first check runs at once.
pub async fn drive_health<F, Fut>(
    reporter: tonic_health::server::HealthReporter,
    service_names: Vec<String>,
    interval: Duration,
    cancel: tokio_util::sync::CancellationToken,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<DependencyStatus>>,
{
    use tonic_health::ServingStatus;
    let to_status = |ok: bool| {
        if ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    let mut last: Option<Vec<(&'static str, bool)>> = None;
    loop {
        let results = check().await;
        let current: Vec<(&'static str, bool)> = results
            .iter()
            .map(|(name, result)| (*name, result.is_ok()))
            .collect();
        if last.as_ref() != Some(&current) {
            for (name, result) in &results {
                match result {
                    Ok(()) => tracing::info!(dependency = name, "dependency answers"),
                    Err(reason) => {
                        tracing::warn!(dependency = name, %reason, "dependency check failed")
                    }
                }
                reporter
                    .set_service_status(*name, to_status(result.is_ok()))
                    .await;
            }
            let all_ok = current.iter().all(|(_, ok)| *ok);
            reporter.set_service_status("", to_status(all_ok)).await;
            for name in &service_names {
                reporter.set_service_status(name, to_status(all_ok)).await;
            }
            last = Some(current);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Maps a database error to the API error a handler returns: UNAVAILABLE when the
/// database cannot be reached, else an internal error whose detail is logged here.
pub fn db_error(context: &'static str, error: sqlx::Error) -> ApiError {
    if crate::db::is_unavailable(&error) {
        tracing::warn!(context, error = %crate::db::error_kind(&error), "database unavailable");
        ApiError::unavailable("database unavailable")
    } else {
        tracing::error!(context, error = %crate::db::error_kind(&error), "database error");
        ApiError::internal()
    }
}
