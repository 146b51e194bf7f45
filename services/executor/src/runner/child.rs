//! One account of a run (a child): claim it, resolve its credentials, check who they
//! belong to, then buy its items concurrently, at most `CUDLY_MAX_ITEM_PARALLELISM` at
//! once, and end it by its items' outcome. Items that share a purchase lock form one
//! queue and go one at a time. Runs in its own task under the process-wide fan-out
//! permit, given back as soon as the last item ended; a panic or error in one item ends
//! that item alone.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cudly_aws::purchase::{PurchaseSpec, Purchaser};
use cudly_aws::sdk::SessionCredentials;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::outcome::child_outcome;
use crate::domain::status::{ACTOR_EXECUTOR, ExecutionStatus, ItemStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::metrics::{self, Permit};
use crate::repo::Lease;
use crate::repo::executions::{self, CasOutcome, ExecutionRow, StatusChange};
use crate::repo::items::{self, ItemRow};
use crate::runner::Inner;
use crate::runner::accounts::{self, Purpose, ResolveFailure};
use crate::runner::item::{ItemEnd, run_item};
use crate::runner::permits;

/// How a child's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// The child reached a terminal status (or already had one).
    Finished,
    /// The run stopped (lease lost, shutdown, database trouble); a re-drive resumes it.
    Stopped,
}

/// Why an account run starts no more items.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Halt {
    /// Shutdown, or the accounts service unavailable: a re-drive resumes the child.
    Stop,
    /// The account cannot buy (credentials refused, identity wrong): its unsettled
    /// items fail with this problem, safe to store.
    Fail(String),
}

/// The account's session: its credentials and the purchasers built from them.
struct Session {
    credentials: SessionCredentials,
    /// How long the credentials were valid for when resolved.
    lifetime: chrono::TimeDelta,
    clouds: HashMap<String, Arc<Purchaser>>,
}

impl Session {
    /// Returns a session of `credentials` whose identity `cloud` (built from them, in
    /// `region`) confirmed.
    fn new(
        inner: &Inner,
        credentials: SessionCredentials,
        region: &str,
        cloud: Arc<Purchaser>,
    ) -> Self {
        let lifetime = credentials
            .expiration
            .map(|expiration| expiration - inner.settings.process_now())
            .unwrap_or(chrono::TimeDelta::MAX);
        Self {
            credentials,
            lifetime,
            clouds: HashMap::from([(region.to_owned(), cloud)]),
        }
    }
}

/// What the items of the child share: the run, the account, its session.
pub struct ChildContext<'a> {
    pub inner: &'a Inner,
    pub lease: &'a Lease,
    pub child_id: Uuid,
    pub account_id: Uuid,
    pub plan_id: Option<Uuid>,
    pub external_id: String,
    pub stop: &'a CancellationToken,
    /// The price rise (a fraction of the quote) the items still buy at.
    pub price_tolerance: f64,
    /// How long the credentials must stay valid for one item.
    budget: Duration,
    /// What the account's sessions are asked for: this execution's purchases.
    purpose: Purpose,
    /// Replaced (once for all items) before an item they could expire during.
    session: Mutex<Session>,
    /// Held while the session is renewed, so that items needing it renew it once.
    renewal: tokio::sync::Mutex<()>,
    /// Set when the run must start no more items.
    halt: Mutex<Option<Halt>>,
}

impl ChildContext<'_> {
    /// Returns a pooled connection (statements are short; no item holds one across a
    /// purchase call).
    pub async fn acquire(&self) -> ExecutorResult<PoolConnection<Postgres>> {
        acquire(self.inner).await
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the account's cloud in `region`, built from its credentials only.
    pub fn cloud_for(&self, region: &str) -> Arc<Purchaser> {
        let mut session = self.session();
        if let Some(cloud) = session.clouds.get(region) {
            return cloud.clone();
        }
        let cloud = self.inner.cloud.account(&session.credentials, region);
        session.clouds.insert(region.to_owned(), cloud.clone());
        cloud
    }

    /// Returns whether the session should be renewed before an item: it could expire
    /// during one (by this process's clock, the one AWS checks a session's expiry
    /// against), and a fresh one would last longer. A role's sessions can be shorter
    /// than the budget; such a session is renewed only once it lost a quarter of its
    /// life, not before every item.
    fn session_needs_renewal(&self) -> bool {
        let session = self.session();
        let Some(expiration) = session.credentials.expiration else {
            return false;
        };
        let remaining = expiration - self.inner.settings.process_now();
        let budget = chrono::TimeDelta::from_std(self.budget).unwrap_or(chrono::TimeDelta::MAX);
        remaining < budget && remaining < session.lifetime * 3 / 4
    }

    /// Renews the session when it nears expiry, once for all items: the others wait
    /// for the renewal and use it. The new credentials are used only after their
    /// identity was checked.
    async fn renew_session_if_expiring(&self, region: &str) -> Result<(), Halt> {
        if !self.session_needs_renewal() {
            return Ok(());
        }
        let _one_renewal = self.renewal.lock().await;
        if !self.session_needs_renewal() {
            return Ok(());
        }
        tracing::info!("session credentials expire soon: resolving them again");
        let (external_id, session) = open_session(
            self.inner,
            self.account_id,
            &self.purpose,
            self.budget,
            region,
            self.stop,
        )
        .await?;
        if external_id != self.external_id {
            return Err(Halt::Fail(format!(
                "the account's external id changed during the run (from {} to {})",
                cudly_aws::error::scrub(&self.external_id),
                cudly_aws::error::scrub(&external_id)
            )));
        }
        *self.session() = session;
        Ok(())
    }

    fn halted(&self) -> Option<Halt> {
        self.halt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts no more items; the first reason stays.
    fn halt(&self, halt: Halt) {
        self.halt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(halt);
    }
}

/// How long the credentials must stay valid for an item: the longest it can hold them
/// (the purchase-lock wait, a send, the settle wait of a reconciliation), rounded up.
fn item_credential_budget(longest_purchase: Duration, settle_margin: Duration) -> Duration {
    (longest_purchase + settle_margin) * 4
}

/// Runs one child once a fan-out permit is free.
pub async fn run_child(
    inner: Arc<Inner>,
    lease: Lease,
    child: ExecutionRow,
    stop: CancellationToken,
) -> ChildEnd {
    let account_id = child.cloud_account_id.unwrap_or_default();
    let span = tracing::info_span!("account_run", execution_id = %child.id, cloud_account_id = %account_id);
    async move {
        let acquire = inner.semaphore.clone().acquire_owned();
        let Some(permit) = permits::wait(Permit::Account, &stop, acquire).await else {
            return ChildEnd::Stopped;
        };
        match drive(&inner, &lease, &child, &stop, AccountPermit::new(permit)).await {
            Ok(end) => end,
            Err(error) if error.is_unavailable() => {
                // Nothing can be written now; the lease goes stale and a re-drive resumes.
                tracing::warn!(error = %error, "account run stopped: database unavailable");
                ChildEnd::Stopped
            }
            Err(error) => {
                tracing::error!(error = %error, "account run failed on an internal error");
                match fail_child(&inner, &lease, child.id, INTERNAL_ERROR).await {
                    Ok(end) => end,
                    Err(_) => ChildEnd::Stopped,
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// What an account run that stopped on an internal error stores.
pub const INTERNAL_ERROR: &str =
    "the account run stopped on an internal error; verify in the cloud console, then retry";

/// What an item that stopped on an internal error (or panicked) stores.
const ITEM_INTERNAL_ERROR: &str =
    "the purchase stopped on an internal error; verify in the cloud console, then retry";

/// The account run's fan-out permit; given back (and the run's time recorded) once its
/// last item ended, before the child's own bookkeeping.
struct AccountPermit {
    _permit: OwnedSemaphorePermit,
    started: Instant,
}

impl AccountPermit {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        Self {
            _permit: permit,
            started: Instant::now(),
        }
    }
}

impl Drop for AccountPermit {
    fn drop(&mut self) {
        metrics::account_run(self.started.elapsed());
    }
}

async fn drive(
    inner: &Inner,
    lease: &Lease,
    child: &ExecutionRow,
    stop: &CancellationToken,
    permit: AccountPermit,
) -> ExecutorResult<ChildEnd> {
    let Some(account_id) = child.cloud_account_id else {
        return Err(ExecutorError::Internal(
            "a child execution has no account".to_owned(),
        ));
    };
    let mut conn = acquire(inner).await?;
    let claim = StatusChange {
        reason: Some("account run started"),
        require_root_lease: Some(lease),
        set_lease: Some(Some(&lease.owner)),
        ..StatusChange::new(
            child.id,
            &[ExecutionStatus::Approved, ExecutionStatus::Running],
            ExecutionStatus::Running,
            ACTOR_EXECUTOR,
        )
    };
    if !executions::change_status(&mut conn, &claim)
        .await?
        .applied()
    {
        let current = executions::get(&mut conn, child.id).await?;
        let finished = current
            .map(|row| row.status().map(ExecutionStatus::is_terminal))
            .transpose()?
            .unwrap_or(true);
        return Ok(if finished {
            ChildEnd::Finished
        } else {
            ChildEnd::Stopped
        });
    }
    let unsettled: Vec<ItemRow> = items::items_of(&mut conn, &[child.id])
        .await?
        .into_iter()
        .filter(|item| {
            matches!(
                item.status(),
                Ok(ItemStatus::Pending | ItemStatus::InFlight)
            )
        })
        .collect();
    let price_tolerance = crate::repo::guardrails::get(&mut conn)
        .await?
        .effective(inner.settings.guardrail_defaults)
        .price_tolerance();
    drop(conn);
    if unsettled.is_empty() {
        drop(permit);
        return finish_child(inner, lease, child.id, None).await;
    }
    let budget =
        item_credential_budget(inner.cloud.longest_purchase(), inner.settings.settle_margin);
    let first_region = &unsettled[0].recommendation.0.region;
    // The session names the execution the operator sees (the root) and its approver.
    let purpose = Purpose::Purchase {
        execution_id: child.parent_id.unwrap_or(child.id),
        approved_by: child
            .approved_by
            .clone()
            .unwrap_or_else(|| child.created_by.clone()),
    };
    let (external_id, session) =
        match open_session(inner, account_id, &purpose, budget, first_region, stop).await {
            Ok(opened) => opened,
            Err(halt) => {
                drop(permit);
                return end_halted(inner, lease, child.id, halt).await;
            }
        };
    let ctx = ChildContext {
        inner,
        lease,
        child_id: child.id,
        account_id,
        plan_id: child.plan_id,
        external_id,
        stop,
        price_tolerance,
        budget,
        purpose,
        session: Mutex::new(session),
        renewal: tokio::sync::Mutex::new(()),
        halt: Mutex::new(None),
    };
    let items_stopped = run_items(&ctx, &unsettled).await;
    drop(permit);
    if items_stopped {
        return Ok(ChildEnd::Stopped);
    }
    match ctx.halted() {
        Some(halt) => end_halted(inner, lease, child.id, halt).await,
        None => finish_child(inner, lease, child.id, None).await,
    }
}

/// Resolves the account's credentials, valid for `valid_for`, and checks that they
/// belong to its external id (STS) in `region`; returns the external id and the
/// session.
async fn open_session(
    inner: &Inner,
    account_id: Uuid,
    purpose: &Purpose,
    valid_for: Duration,
    region: &str,
    stop: &CancellationToken,
) -> Result<(String, Session), Halt> {
    let account = match accounts::resolve(&inner.accounts, account_id, purpose, valid_for, stop)
        .await
    {
        Ok(account) => account,
        Err(ResolveFailure::Stopped) => return Err(Halt::Stop),
        Err(ResolveFailure::Unavailable) => {
            // Nothing is wrong with the account: the run ends here and a re-drive
            // resumes the child once the accounts service answers again.
            tracing::warn!("accounts service unavailable: the account run is left for a re-drive");
            return Err(Halt::Stop);
        }
        Err(ResolveFailure::Refused(problem)) => {
            tracing::warn!(error = %problem, "account cannot buy");
            return Err(Halt::Fail(problem));
        }
    };
    let cloud = inner.cloud.account(&account.credentials, region);
    if let Err(problem) = check_identity(&cloud, &account.external_id).await {
        tracing::warn!(error = %problem, "identity check failed");
        return Err(Halt::Fail(problem));
    }
    let session = Session::new(inner, account.credentials, region, cloud);
    Ok((account.external_id, session))
}

/// Checks that `cloud`'s credentials belong to `external_id` (STS), before they buy;
/// the problem is safe to store.
async fn check_identity(cloud: &Purchaser, external_id: &str) -> Result<(), String> {
    match cloud.caller_account_id().await {
        Ok(caller) if caller == external_id => Ok(()),
        Ok(caller) => Err(format!(
            "the account's credentials belong to aws account {}, not to its external id {}",
            cudly_aws::error::scrub(&caller),
            cudly_aws::error::scrub(external_id)
        )),
        Err(error) => Err(crate::runner::stored_error(&format!(
            "the account's identity could not be checked: {error}"
        ))),
    }
}

/// Ends a child whose run halted: left for a re-drive, or its unsettled items failed.
async fn end_halted(
    inner: &Inner,
    lease: &Lease,
    child_id: Uuid,
    halt: Halt,
) -> ExecutorResult<ChildEnd> {
    match halt {
        Halt::Stop => Ok(ChildEnd::Stopped),
        Halt::Fail(problem) => fail_child(inner, lease, child_id, &problem).await,
    }
}

/// Splits `items` into queues that may run at the same time: items that share a
/// purchase lock (`PurchaseSpec::candidate_shape`: the same shape and count of EC2 or
/// Redshift in one region) form one queue, in item order, so that none of them waits
/// on a sibling's lock; every other item is a queue of its own.
fn serial_queues(items: &[ItemRow]) -> Vec<Vec<&ItemRow>> {
    let mut queues: Vec<Vec<&ItemRow>> = Vec::new();
    let mut by_shape: HashMap<String, usize> = HashMap::new();
    for item in items {
        let shape =
            PurchaseSpec::new(&item.recommendation.0, &item.idempotency_token).candidate_shape();
        match shape {
            Some(shape) => {
                let queue = *by_shape.entry(shape).or_insert_with(|| {
                    queues.push(Vec::new());
                    queues.len() - 1
                });
                queues[queue].push(item);
            }
            None => queues.push(vec![item]),
        }
    }
    queues
}

/// Runs the items, their queues concurrently under the account's item bound; returns
/// whether an item stopped (a halt is read from [`ChildContext::halted`]).
async fn run_items(ctx: &ChildContext<'_>, items: &[ItemRow]) -> bool {
    let slots = Semaphore::new(ctx.inner.settings.max_item_parallelism);
    let mut queues: FuturesUnordered<_> = serial_queues(items)
        .into_iter()
        .map(|queue| run_queue(ctx, &slots, queue))
        .collect();
    let mut stopped = false;
    while let Some(queue_stopped) = queues.next().await {
        stopped |= queue_stopped;
    }
    stopped
}

/// Runs one queue's items one after the other, each under an item permit; returns
/// whether an item stopped.
async fn run_queue(ctx: &ChildContext<'_>, slots: &Semaphore, queue: Vec<&ItemRow>) -> bool {
    let mut stopped = false;
    for item in queue {
        let Some(_slot) = permits::wait(Permit::Item, ctx.stop, slots.acquire()).await else {
            return true;
        };
        if ctx.stop.is_cancelled() {
            return true;
        }
        if ctx.halted().is_some() {
            break;
        }
        if let Err(halt) = ctx
            .renew_session_if_expiring(&item.recommendation.0.region)
            .await
        {
            ctx.halt(halt);
            break;
        }
        let result = AssertUnwindSafe(run_item(ctx, item)).catch_unwind().await;
        stopped |= item_stopped(ctx, item, result).await;
    }
    stopped
}

/// Settles what one item's turn gave; returns whether the run must stop. An error or
/// panic fails this item alone (its stored error says what its attempt shows).
async fn item_stopped(
    ctx: &ChildContext<'_>,
    item: &ItemRow,
    result: std::thread::Result<ExecutorResult<ItemEnd>>,
) -> bool {
    match result {
        Ok(Ok(ItemEnd::Settled)) => return false,
        Ok(Ok(ItemEnd::Stopped)) => return true,
        Ok(Err(error)) if error.is_unavailable() => {
            tracing::warn!(item = item.item_index, error = %error, "item stopped: database unavailable");
            return true;
        }
        Ok(Err(error)) => {
            tracing::error!(item = item.item_index, error = %error, "item failed on an internal error");
        }
        Err(_) => tracing::error!(item = item.item_index, "item panicked"),
    }
    let failed = async {
        let mut conn = ctx.acquire().await?;
        items::fail_unsettled(
            &mut conn,
            ctx.lease,
            ctx.child_id,
            Some(item.item_index),
            ITEM_INTERNAL_ERROR,
        )
        .await
    };
    match failed.await {
        Ok(_) => false,
        Err(error) => {
            tracing::warn!(item = item.item_index, error = %error, "failing the item failed; a re-drive settles it");
            true
        }
    }
}

async fn acquire(inner: &Inner) -> ExecutorResult<PoolConnection<Postgres>> {
    inner
        .pool
        .acquire()
        .await
        .map_err(ExecutorError::db("acquiring a connection"))
}

/// Fails every unsettled item with `problem` and ends the child.
pub async fn fail_child(
    inner: &Inner,
    lease: &Lease,
    child_id: Uuid,
    problem: &str,
) -> ExecutorResult<ChildEnd> {
    let problem = crate::runner::stored_error(problem);
    let mut conn = acquire(inner).await?;
    items::fail_unsettled(&mut conn, lease, child_id, None, &problem).await?;
    drop(conn);
    finish_child(inner, lease, child_id, Some(&problem)).await
}

/// Ends a child whose items are all settled: completed, partially_completed (something
/// bought) or failed.
pub async fn finish_child(
    inner: &Inner,
    lease: &Lease,
    child_id: Uuid,
    problem: Option<&str>,
) -> ExecutorResult<ChildEnd> {
    let mut conn = acquire(inner).await?;
    let statuses = items::statuses(&mut conn, child_id).await?;
    if statuses.iter().any(|status| !status.is_settled()) {
        return Ok(ChildEnd::Stopped);
    }
    let mut outcome = child_outcome(&statuses);
    if outcome == ExecutionStatus::Failed
        && items::anything_bought_for_child(&mut conn, child_id).await?
    {
        outcome = ExecutionStatus::PartiallyCompleted;
    }
    let failed = statuses
        .iter()
        .filter(|status| **status == ItemStatus::Failed)
        .count();
    let summary = match (problem, outcome) {
        (Some(problem), _) => Some(problem.to_owned()),
        (None, ExecutionStatus::Completed) => None,
        (None, _) => Some(format!("{failed} of {} items failed", statuses.len())),
    };
    let change = StatusChange {
        reason: Some("account run finished"),
        require_owner: Some(&lease.owner),
        require_root_lease: Some(lease),
        error: summary.as_deref(),
        ..StatusChange::new(
            child_id,
            &[ExecutionStatus::Running],
            outcome,
            ACTOR_EXECUTOR,
        )
    };
    match executions::change_status(&mut conn, &change).await? {
        CasOutcome::Applied { .. } => {
            tracing::info!(status = %outcome, "account run finished");
            Ok(ChildEnd::Finished)
        }
        CasOutcome::Lost => Ok(ChildEnd::Stopped),
    }
}
