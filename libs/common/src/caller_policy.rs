//! Which internal caller may call which RPC, enforced once at a service's edge
//! (docs/design/ARCHITECTURE.md "Who calls whom").
//!
//! Each service writes one [`CallerTable`]: every RPC it serves with the callers
//! allowed to call it. [`CallerPolicy`] wraps the generated server: it identifies the
//! caller by its internal token ([`InternalAuth`]), refuses an RPC the table does not
//! name to everyone (a new RPC is closed until the table opens it), refuses a caller the
//! table does not list for the RPC, and hands the handler the caller in the request's
//! extensions ([`caller_of`]). Handlers hold no caller lists of their own. Over mutual
//! TLS the caller's certificate must name the same service as its token, so a stolen
//! token is no use without that service's key as well.

use std::convert::Infallible;
use std::future::{Ready, ready};

use futures::future::Either;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::Service;

use crate::error::ApiError;
use crate::grpc::{Caller, InternalAuth, TOKEN_METADATA_KEY};
use crate::tls::named_callers;

/// Every RPC of one service (its method name, e.g. `ResolveCredentials`) with the
/// callers allowed to call it.
pub type CallerTable = &'static [(&'static str, &'static [Caller])];

/// Returns the callers `table` allows to call `method`, `None` when it does not name it.
pub fn allowed_callers(table: CallerTable, method: &str) -> Option<&'static [Caller]> {
    table
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, callers)| *callers)
}

/// A generated gRPC server behind its caller table.
#[derive(Clone)]
pub struct CallerPolicy<S> {
    inner: S,
    auth: InternalAuth,
    table: CallerTable,
}

impl<S> CallerPolicy<S> {
    pub fn new(inner: S, auth: InternalAuth, table: CallerTable) -> Self {
        Self { inner, auth, table }
    }

    /// Returns the caller of `request` when the table lets it call the method asked.
    fn check(&self, request: &http::Request<Body>) -> Result<Caller, Status> {
        let presented = request
            .headers()
            .get(TOKEN_METADATA_KEY)
            .ok_or_else(|| Status::from(ApiError::unauthenticated("missing internal token")))?;
        let caller = self
            .auth
            .identify(presented.as_bytes())
            .ok_or_else(|| Status::from(ApiError::unauthenticated("unknown internal token")))?;
        check_certificate(request, caller)?;
        let method = crate::grpc::method_name(request.uri().path());
        match allowed_callers(self.table, method) {
            Some(callers) if callers.contains(&caller) => Ok(caller),
            _ => Err(ApiError::permission_denied(format!(
                "caller {} may not call this method",
                caller.name()
            ))
            .into()),
        }
    }
}

/// Over mutual TLS, refuses a call whose client certificate does not name `caller`,
/// the service its token identifies (one name exactly; [`named_callers`]).
fn check_certificate(request: &http::Request<Body>, caller: Caller) -> Result<(), Status> {
    let Some(certs) = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
    else {
        return Ok(());
    };
    let named = certs.first().map(named_callers).unwrap_or_default();
    match named.as_slice() {
        [named] if *named == caller => Ok(()),
        [named] => Err(ApiError::permission_denied(format!(
            "the client certificate names {} but the token is {}'s",
            named.name(),
            caller.name()
        ))
        .into()),
        [] => Err(ApiError::permission_denied(
            "the client certificate names no CUDly service (spiffe://cudly/<service>)",
        )
        .into()),
        _ => Err(ApiError::permission_denied(
            "the client certificate names more than one CUDly service",
        )
        .into()),
    }
}

impl<S: NamedService> NamedService for CallerPolicy<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for CallerPolicy<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<http::Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.check(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Either::Right(self.inner.call(request))
            }
            Err(status) => Either::Left(ready(Ok(status.into_http()))),
        }
    }
}

/// Returns the caller [`CallerPolicy`] let through, for a handler whose answer depends
/// on who asks (e.g. only the planner may create approved executions).
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .copied()
        .ok_or_else(|| ApiError::unauthenticated("missing internal token").into())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use tower::ServiceExt;

    use super::*;

    const TABLE: CallerTable = &[
        ("ResolveCredentials", &[Caller::Executor]),
        ("GetAccount", &[Caller::Gateway, Caller::Planner]),
    ];

    /// Answers 200 with the caller it was handed in the response's extensions.
    #[derive(Clone)]
    struct Echo;

    impl NamedService for Echo {
        const NAME: &'static str = "cudly.test.v1.Echo";
    }

    impl Service<http::Request<Body>> for Echo {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = Ready<Result<http::Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let mut response = http::Response::new(Body::default());
            if let Some(caller) = request.extensions().get::<Caller>() {
                response.extensions_mut().insert(*caller);
            }
            ready(Ok(response))
        }
    }

    fn policy() -> CallerPolicy<Echo> {
        let auth = InternalAuth::from_tokens([
            (Caller::Gateway, &SecretString::from("gateway-token")),
            (Caller::Executor, &SecretString::from("executor-token")),
        ]);
        CallerPolicy::new(Echo, auth, TABLE)
    }

    /// Calls `method` with `token`; returns the caller handed on, or the gRPC code.
    async fn call(method: &str, token: Option<&str>) -> Result<Caller, tonic::Code> {
        let mut request = http::Request::builder().uri(format!("/{}/{method}", Echo::NAME));
        if let Some(token) = token {
            request = request.header(TOKEN_METADATA_KEY, token);
        }
        let response = policy()
            .oneshot(request.body(Body::default()).unwrap())
            .await
            .unwrap();
        match response.extensions().get::<Caller>() {
            Some(caller) => Ok(*caller),
            None => Err(Status::from_header_map(response.headers()).unwrap().code()),
        }
    }

    #[tokio::test]
    async fn a_caller_the_table_lists_is_handed_on_to_the_handler() {
        assert_eq!(
            call("ResolveCredentials", Some("executor-token")).await,
            Ok(Caller::Executor)
        );
        assert_eq!(
            call("GetAccount", Some("gateway-token")).await,
            Ok(Caller::Gateway)
        );
    }

    #[tokio::test]
    async fn a_missing_or_unknown_token_is_unauthenticated() {
        assert_eq!(
            call("GetAccount", None).await,
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            call("GetAccount", Some("planner-token")).await,
            Err(tonic::Code::Unauthenticated)
        );
    }

    #[tokio::test]
    async fn a_caller_outside_the_rpcs_list_or_an_rpc_outside_the_table_is_denied() {
        assert_eq!(
            call("ResolveCredentials", Some("gateway-token")).await,
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            call("DeleteEverything", Some("executor-token")).await,
            Err(tonic::Code::PermissionDenied)
        );
    }
}
