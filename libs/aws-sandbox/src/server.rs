//! The HTTP server: one port for every emulated service and the control API. It
//! serves connections with hyper directly (not `axum::serve`) because a
//! drop-after-commit fault must close a connection without any response, which only
//! a failing hyper service can do.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use chrono::Utc;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tracing::Instrument;

use crate::app::{App, SandboxSnapshot};
use crate::behaviour::{Behaviour, BehaviourUpdate};
use crate::config::{AccountSpec, SandboxConfig};
use crate::error::{SandboxError, SandboxResult};
use crate::faults::{ActiveFault, FaultId, FaultSpec};
use crate::identity::{self, Principal};
use crate::ledger::{CallOutcome, Ledger, LedgerCall};
use crate::prices::PriceUpdate;
use crate::protocol::{self, AwsError, HttpResponse, Params, RawRequest};
use crate::purchase_concurrency::PurchaseConcurrency;
use crate::service::Service;
use crate::services::{self, CallContext};

/// Region a call is attributed to when it is not signed (AssumeRoleWithWebIdentity).
const UNSIGNED_REGION: &str = "us-east-1";
/// Where Savings Plans state lives, whatever region a client signs for.
const SAVINGS_PLANS_REGION: &str = "us-east-1";
/// How long shutdown waits for in-flight calls.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Starts sandboxes.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Binds `config.listen` (127.0.0.1:0 by default), loads accounts and any saved
    /// state, and serves until [`SandboxHandle::shutdown`].
    pub async fn start(config: SandboxConfig) -> anyhow::Result<SandboxHandle> {
        let listen = config
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let app = Arc::new(App::new(config)?);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        let (shutdown_sender, shutdown_receiver) = watch::channel(false);
        let task = tokio::spawn(serve(listener, app.clone(), shutdown_receiver));
        tracing::info!(%addr, "aws sandbox listening");
        Ok(SandboxHandle {
            addr,
            app,
            shutdown_sender,
            task,
        })
    }
}

/// A running sandbox. Dropping the handle leaves the server running until its runtime
/// ends; [`SandboxHandle::shutdown`] stops it and flushes its state.
pub struct SandboxHandle {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown_sender: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SandboxHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// Returns the base URL to give SDK clients as endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds or replaces an account. An invalid account is logged and ignored (the
    /// control API answers 400 for it instead).
    pub async fn add_account(&self, account: AccountSpec) {
        if let Err(error) = self.app.add_account(account) {
            tracing::error!(%error, "account not added");
        }
    }

    /// Installs a fault and returns its id. A fault without any effect, or with a
    /// count of 0, is refused: it is logged and gets an id that matches nothing.
    pub async fn add_fault(&self, fault: FaultSpec) -> FaultId {
        match self.app.add_fault(fault) {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(%error, "fault not added");
                FaultId(0)
            }
        }
    }

    /// Removes one fault; returns whether it was installed.
    pub async fn remove_fault(&self, id: FaultId) -> bool {
        self.app.remove_fault(id)
    }

    /// Returns the installed faults, with what remains of each.
    pub async fn faults(&self) -> Vec<ActiveFault> {
        self.app.faults()
    }

    /// Removes every fault.
    pub async fn clear_faults(&self) {
        self.app.clear_faults();
    }

    /// Sets every behaviour switch (`Behaviour { clock_offset_seconds: -60,
    /// ..Behaviour::default() }`). An invalid behaviour (a clock offset beyond
    /// [`crate::MAX_CLOCK_OFFSET_SECONDS`] either way) is logged and ignored (the
    /// control API answers 400 for it instead).
    pub async fn set_behaviour(&self, behaviour: Behaviour) {
        if let Err(error) = self.app.set_behaviour(behaviour) {
            tracing::error!(%error, "behaviour not set");
        }
    }

    /// Changes the behaviour switches `update` names, the others staying, and returns
    /// them all. An invalid update is logged and changes nothing.
    pub async fn update_behaviour(&self, update: BehaviourUpdate) -> Behaviour {
        match self.app.update_behaviour(update) {
            Ok(behaviour) => behaviour,
            Err(error) => {
                tracing::error!(%error, "behaviour not updated");
                self.app.behaviour()
            }
        }
    }

    /// Returns the behaviour switches.
    pub async fn behaviour(&self) -> Behaviour {
        self.app.behaviour()
    }

    /// Changes one offering's list price from now on (`PriceUpdate::new(Service::Rds,
    /// id).with_fixed_price(120.0)`): every describe answer and every purchase after it
    /// use the new price, commitments bought before keep theirs. Unlike the other
    /// setters it returns its refusal, since a test setting up a price drift must not
    /// go on with the old price: [`SandboxError::InvalidPrice`] for an update naming no
    /// price or a negative or non-finite one, [`SandboxError::UnknownOffering`] for an
    /// offering the sandbox has not described (describe it first).
    pub async fn set_price(&self, update: PriceUpdate) -> SandboxResult<()> {
        self.app.set_price(update)
    }

    /// Returns the whole ledger.
    pub async fn ledger(&self) -> Ledger {
        self.app.ledger(None, None)
    }

    /// Returns the ledger of one account and/or one service.
    pub async fn ledger_filtered(
        &self,
        account_id: Option<&str>,
        service: Option<Service>,
    ) -> Ledger {
        self.app.ledger(account_id, service)
    }

    /// Returns the accounts, commitments, faults and counts the sandbox holds.
    pub async fn snapshot(&self) -> SandboxSnapshot {
        self.app.snapshot()
    }

    /// Empties the state (commitments, ledger, sessions, faults, price overrides, seeded
    /// Cost Explorer recommendations), restores the default behaviour switches and
    /// reloads the configured accounts.
    pub async fn reset(&self) {
        if let Err(error) = self.app.reset() {
            tracing::error!(%error, "sandbox reset failed");
        }
    }

    /// Returns how many purchase calls (the seven services' purchases,
    /// [`crate::operations::is_purchase`]) are open now and the most that were open at
    /// once, so a load test can prove its client never exceeds its purchase limit.
    pub fn purchase_concurrency(&self) -> PurchaseConcurrency {
        self.app.purchase_concurrency()
    }

    /// Lowers the purchase peak to the purchases open now, so the next measurement
    /// starts afresh.
    pub fn reset_purchase_peak(&self) {
        self.app.reset_purchase_peak();
    }

    /// Returns the state file, when the sandbox persists.
    pub fn state_path(&self) -> Option<std::path::PathBuf> {
        self.app.state_path()
    }

    /// Stops accepting, lets in-flight calls finish (up to two seconds), and writes
    /// the state file a last time.
    pub async fn shutdown(self) {
        let _ = self.shutdown_sender.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "sandbox server task failed");
        }
        if let Err(error) = self.app.flush() {
            tracing::error!(%error, "sandbox state not written at shutdown");
        }
    }
}

async fn wait_for_shutdown(mut receiver: watch::Receiver<bool>) {
    loop {
        if *receiver.borrow_and_update() {
            return;
        }
        if receiver.changed().await.is_err() {
            // The handle is gone without asking for a shutdown: serve until the
            // runtime ends.
            std::future::pending::<()>().await;
        }
    }
}

async fn serve(listener: TcpListener, app: Arc<App>, shutdown: watch::Receiver<bool>) {
    let router = crate::control::router(app.clone());
    let graceful = GracefulShutdown::new();
    let shutdown_signal = wait_for_shutdown(shutdown);
    tokio::pin!(shutdown_signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let router = router.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    route(app.clone(), router.clone(), request)
                });
                let connection = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = watched.await {
                        tracing::debug!(%error, "connection closed");
                    }
                });
            }
            () = &mut shutdown_signal => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("sandbox connections still open at shutdown");
    }
}

/// Returned instead of a response to make hyper close the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("response dropped by a drop_after_commit fault")]
struct DroppedResponse;

async fn route(
    app: Arc<App>,
    router: Router,
    request: Request<Incoming>,
) -> Result<Response<Body>, DroppedResponse> {
    if request.uri().path().starts_with("/_sandbox") {
        let response: Result<Response<Body>, Infallible> = router.oneshot(request).await;
        return match response {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        };
    }
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "request body unreadable");
            return Err(DroppedResponse);
        }
    };
    let query_pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .and_then(|query| serde_urlencoded::from_str(query).ok())
        .unwrap_or_default();
    let raw = RawRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: Params::from_pairs(query_pairs),
        headers: parts.headers,
        body,
    };
    let response = handle_aws(&app, raw).await?;
    Ok(response.map(Body::new))
}

/// What the ledger records of a call besides its notes.
struct CallRecord<'a> {
    account_id: &'a str,
    /// Who signed the call, once it was authenticated.
    caller: Option<&'a Principal>,
    region: &'a str,
    service: Service,
    operation: &'a str,
    outcome: CallOutcome,
    error_code: Option<String>,
}

fn record_call(
    state: &mut crate::state::SandboxState,
    record: CallRecord<'_>,
    note: services::CallNote,
) {
    let caller = record.caller;
    state.push_call(LedgerCall {
        at: Utc::now(),
        account_id: record.account_id.to_string(),
        region: record.region.to_string(),
        service: record.service,
        operation: record.operation.to_string(),
        outcome: record.outcome,
        error_code: record.error_code,
        idempotency_token: note.idempotency_token,
        reservation_id: note.reservation_id,
        client_token: note.client_token,
        commitment_id: note.commitment_id,
        principal_arn: caller.map(|caller| caller.arn.clone()),
        session_tags: caller
            .map(|caller| caller.session_tags.clone())
            .unwrap_or_default(),
        source_identity: caller.and_then(|caller| caller.source_identity.clone()),
        session_policy: note.session_policy,
        requested_tags: note.requested_tags,
        requested_source_identity: note.requested_source_identity,
        requested_duration_seconds: note.requested_duration_seconds,
    });
}

/// Records a call refused before its service handled it (unauthenticated, denied by
/// the signing session's policy, or failed by a fault) and writes the refusal.
fn refuse(app: &App, record: CallRecord<'_>, error: &AwsError, request_id: &str) -> HttpResponse {
    let service = record.service;
    app.mutate(|state| record_call(state, record, services::CallNote::default()));
    protocol::render_error(service, error, request_id)
}

async fn handle_aws(app: &App, raw: RawRequest) -> Result<HttpResponse, DroppedResponse> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let Some(classified) = protocol::classify(&raw) else {
        tracing::debug!(path = %raw.path, "unroutable request");
        return Ok(protocol::render_unroutable(&request_id));
    };
    let service = classified.service;
    let operation = classified.operation.as_str();
    // A purchase is open from here until its response is produced, whatever it is (an
    // error, a dropped connection, or none because the server dropped the call),
    // injected latency included: that latency is the time AWS takes to answer, during
    // which the purchase is in flight.
    let _open_purchase = app.open_purchase(service, operation);
    let span = tracing::info_span!("aws_call", %service, operation);
    async {
        // Savings Plans is a global API: a plan bought through any region's client is
        // the account's, so its state lives under the API's home region.
        let region = match (&classified.scope, service) {
            (_, Service::Savingsplans) => SAVINGS_PLANS_REGION.to_string(),
            (Some(scope), _) => scope.region.clone(),
            (None, _) => UNSIGNED_REGION.to_string(),
        };
        let now = Utc::now();

        let session_token = raw
            .headers
            .get("x-amz-security-token")
            .and_then(|value| value.to_str().ok());
        let authenticated = {
            let state = app.lock();
            match &classified.scope {
                Some(scope) => {
                    identity::authenticate(&state, &scope.access_key_id, session_token, now)
                        .map(Some)
                }
                None if service == Service::Sts && operation == "AssumeRoleWithWebIdentity" => {
                    Ok(None)
                }
                None => Err(AwsError::missing_authentication()),
            }
        };
        let principal = match authenticated {
            Ok(principal) => principal,
            Err(error) => {
                let record = CallRecord {
                    account_id: "",
                    caller: None,
                    region: &region,
                    service,
                    operation,
                    outcome: CallOutcome::Error,
                    error_code: Some(error.code.clone()),
                };
                return Ok(refuse(app, record, &error, &request_id));
            }
        };
        let account_id = principal
            .as_ref()
            .map(|principal| principal.account_id.clone())
            .unwrap_or_default();

        // Every signed call passes the signing session's policy here, before any fault
        // or handler: AWS authorizes a call before the service sees it.
        if let Some(caller) = &principal
            && let Err(error) = identity::authorize(caller, service, operation)
        {
            tracing::debug!(code = %error.code, "refused by the session policy");
            let record = CallRecord {
                account_id: &account_id,
                caller: Some(caller),
                region: &region,
                service,
                operation,
                outcome: CallOutcome::Error,
                error_code: Some(error.code.clone()),
            };
            return Ok(refuse(app, record, &error, &request_id));
        }

        let effect = app.lock().faults.take(service, operation, &account_id);
        if !effect.delay.is_zero() {
            tokio::time::sleep(effect.delay).await;
        }
        if let Some(fault) = effect.error {
            let error = AwsError::from_fault(service, fault);
            let record = CallRecord {
                account_id: &account_id,
                caller: principal.as_ref(),
                region: &region,
                service,
                operation,
                outcome: CallOutcome::Error,
                error_code: Some(error.code.clone()),
            };
            return Ok(refuse(app, record, &error, &request_id));
        }

        let result = app.mutate(|state| {
            let mut context = CallContext {
                service,
                operation,
                params: &classified.params,
                json: &classified.json,
                principal,
                account_id,
                region: region.clone(),
                now,
                aws_now: state.behaviour.aws_time(now),
                note: services::CallNote::default(),
            };
            let result = services::handle(&mut context, state);
            let outcome = if effect.drop_after_commit {
                CallOutcome::Dropped
            } else if result.is_ok() {
                CallOutcome::Ok
            } else {
                CallOutcome::Error
            };
            record_call(
                state,
                CallRecord {
                    account_id: &context.account_id,
                    caller: context.principal.as_ref(),
                    region: &region,
                    service,
                    operation,
                    outcome,
                    error_code: result.as_ref().err().map(|error| error.code.clone()),
                },
                context.note,
            );
            result
        });
        if effect.drop_after_commit {
            tracing::info!("dropping the response after commit");
            return Err(DroppedResponse);
        }
        Ok(match result {
            Ok(reply) => protocol::render_reply(service, operation, reply, &request_id),
            Err(error) => {
                tracing::debug!(code = %error.code, "aws error");
                protocol::render_error(service, &error, &request_id)
            }
        })
    }
    .instrument(span)
    .await
}
