//! One account of a run (a child): claim it, resolve its credentials, check who they
//! belong to, then buy its items in order, one at a time, and end it by its items'
//! outcome. Runs in its own task under the process-wide fan-out semaphore, so a panic or
//! error here ends this child alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cudly_aws::purchase::Purchaser;
use cudly_aws::sdk::SessionCredentials;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::outcome::child_outcome;
use crate::domain::status::{ACTOR_EXECUTOR, ExecutionStatus, ItemStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::Lease;
use crate::repo::executions::{self, CasOutcome, ExecutionRow, StatusChange};
use crate::repo::items;
use crate::runner::Inner;
use crate::runner::accounts::{self, ResolveFailure};
use crate::runner::item::{ItemEnd, run_item};

/// How a child's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// The child reached a terminal status (or already had one).
    Finished,
    /// The run stopped (lease lost, shutdown, database trouble); a re-drive resumes it.
    Stopped,
}

/// What an item of the child needs.
pub struct ChildContext<'a> {
    pub inner: &'a Inner,
    pub lease: &'a Lease,
    pub child_id: Uuid,
    pub account_id: Uuid,
    pub plan_id: Option<Uuid>,
    pub external_id: &'a str,
    /// The account's session credentials, replaced before an item they could expire
    /// during.
    credentials: SessionCredentials,
    pub stop: &'a CancellationToken,
    clouds: HashMap<String, Arc<Purchaser>>,
    /// One connection for the whole account run: items go one at a time, and a pooled
    /// acquire per statement would cost a ping each.
    conn: tokio::sync::Mutex<PoolConnection<Postgres>>,
}

impl ChildContext<'_> {
    /// Returns the account run's connection (held until the guard drops).
    pub async fn acquire(
        &self,
    ) -> ExecutorResult<tokio::sync::MutexGuard<'_, PoolConnection<Postgres>>> {
        Ok(self.conn.lock().await)
    }

    /// Returns the account's cloud in `region`, built from its credentials only.
    pub fn cloud_for(&mut self, region: &str) -> Arc<Purchaser> {
        let inner = self.inner;
        let credentials = &self.credentials;
        self.clouds
            .entry(region.to_owned())
            .or_insert_with(|| inner.cloud.account(credentials, region))
            .clone()
    }

    /// Returns whether the credentials expire within `within` (by this process's
    /// clock, the one AWS checks a session's expiry against).
    fn credentials_expire_within(&self, within: Duration) -> bool {
        let within = chrono::TimeDelta::from_std(within).unwrap_or(chrono::TimeDelta::MAX);
        self.credentials
            .expiration
            .is_some_and(|expiration| expiration - self.inner.settings.process_now() < within)
    }

    /// Uses `credentials` from now on (the purchasers are rebuilt from them).
    fn replace_credentials(&mut self, credentials: SessionCredentials) {
        self.credentials = credentials;
        self.clouds.clear();
    }

    /// Checks that the credentials belong to the account's external id (STS), before the
    /// first purchase and again after a refresh; the problem is safe to store.
    async fn check_identity(&mut self, region: &str) -> Result<(), String> {
        let external_id = self.external_id;
        match self.cloud_for(region).caller_account_id().await {
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
        let permit = tokio::select! {
            _ = stop.cancelled() => return ChildEnd::Stopped,
            permit = inner.semaphore.clone().acquire_owned() => permit,
        };
        let Ok(_permit) = permit else {
            return ChildEnd::Stopped;
        };
        match drive(&inner, &lease, &child, &stop).await {
            Ok(end) => end,
            Err(error) if error.is_unavailable() => {
                // Nothing can be written now; the lease goes stale and a re-drive resumes.
                tracing::warn!(error = %error, "account run stopped: database unavailable");
                ChildEnd::Stopped
            }
            Err(error) => {
                tracing::error!(error = %error, "account run failed on an internal error");
                let problem = "the account run stopped on an internal error; verify in the cloud console, then retry";
                match fail_child(&inner, &lease, child.id, problem).await {
                    Ok(end) => end,
                    Err(_) => ChildEnd::Stopped,
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn drive(
    inner: &Inner,
    lease: &Lease,
    child: &ExecutionRow,
    stop: &CancellationToken,
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
    let unsettled: Vec<items::ItemRow> = items::items_of(&mut conn, &[child.id])
        .await?
        .into_iter()
        .filter(|item| {
            matches!(
                item.status(),
                Ok(ItemStatus::Pending | ItemStatus::InFlight)
            )
        })
        .collect();
    drop(conn);
    if unsettled.is_empty() {
        return finish_child(inner, lease, child.id, None).await;
    }
    let budget =
        item_credential_budget(inner.cloud.longest_purchase(), inner.settings.settle_margin);
    let account = match resolve_or_end(inner, lease, child.id, account_id, budget, stop).await? {
        Ok(account) => account,
        Err(end) => return Ok(end),
    };
    let mut ctx = ChildContext {
        inner,
        lease,
        child_id: child.id,
        account_id,
        plan_id: child.plan_id,
        external_id: &account.external_id,
        credentials: account.credentials.clone(),
        stop,
        clouds: HashMap::new(),
        conn: tokio::sync::Mutex::new(acquire(inner).await?),
    };
    let first_region = unsettled[0].recommendation.0.region.clone();
    if let Err(problem) = ctx.check_identity(&first_region).await {
        tracing::warn!(error = %problem, "identity check failed");
        return fail_child(inner, lease, child.id, &problem).await;
    }
    for (index, item) in unsettled.iter().enumerate() {
        if stop.is_cancelled() {
            return Ok(ChildEnd::Stopped);
        }
        if index > 0 && ctx.credentials_expire_within(budget) {
            tracing::info!("session credentials expire soon: resolving them again");
            let refreshed =
                match resolve_or_end(inner, lease, child.id, account_id, budget, stop).await? {
                    Ok(refreshed) => refreshed,
                    Err(end) => return Ok(end),
                };
            ctx.replace_credentials(refreshed.credentials);
            if let Err(problem) = ctx.check_identity(&item.recommendation.0.region).await {
                tracing::warn!(error = %problem, "identity check failed");
                return fail_child(inner, lease, child.id, &problem).await;
            }
        }
        if run_item(&mut ctx, item).await? == ItemEnd::Stopped {
            return Ok(ChildEnd::Stopped);
        }
    }
    finish_child(inner, lease, child.id, None).await
}

/// Resolves the account's credentials, valid for `valid_for`; when that fails, ends
/// the child as the failure asks (left for a re-drive, or failed) and returns the end.
async fn resolve_or_end(
    inner: &Inner,
    lease: &Lease,
    child_id: Uuid,
    account_id: Uuid,
    valid_for: Duration,
    stop: &CancellationToken,
) -> ExecutorResult<Result<accounts::ResolvedAccount, ChildEnd>> {
    match accounts::resolve(&inner.accounts, account_id, valid_for, stop).await {
        Ok(account) => Ok(Ok(account)),
        Err(ResolveFailure::Stopped) => Ok(Err(ChildEnd::Stopped)),
        Err(ResolveFailure::Unavailable) => {
            // Nothing is wrong with the account: the run ends here and a re-drive
            // resumes the child once the accounts service answers again.
            tracing::warn!("accounts service unavailable: the account run is left for a re-drive");
            Ok(Err(ChildEnd::Stopped))
        }
        Err(ResolveFailure::Refused(problem)) => {
            tracing::warn!(error = %problem, "account cannot buy");
            fail_child(inner, lease, child_id, &problem).await.map(Err)
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
    items::fail_unsettled(&mut conn, lease, child_id, &problem).await?;
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
