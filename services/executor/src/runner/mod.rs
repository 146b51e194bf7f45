//! The runner: drives approved roots to their end, asynchronously after approval.
//!
//! - A root is claimed by compare-and-set (approved → running) under a lease owned by
//!   one run: `"<process id>:<run id>"`. The spawned run renews the lease while its
//!   children run; every write of the run checks the lease, so a run whose lease was
//!   taken over (or whose root was safe-failed) stops acting.
//! - Children run concurrently, bounded by one process-wide semaphore
//!   (`CUDLY_MAX_ACCOUNT_PARALLELISM`) across all executions; a child's items run
//!   concurrently too (`CUDLY_MAX_ITEM_PARALLELISM`), and purchases in flight are bounded
//!   across the process (`CUDLY_MAX_PURCHASE_CALLS`).
//! - A poll loop claims approved roots (`FOR UPDATE SKIP LOCKED`), so nothing approved is
//!   left behind, and re-sends unreported plan steps.
//! - On shutdown the current step of each run finishes, then its lease is given up.

pub(crate) mod accounts;
mod child;
pub mod cloud;
mod item;
pub mod lock;
mod permits;
mod report;
mod root;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use cudly_common::grpc::AuthChannel;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::RunnerSettings;
use crate::domain::status::{ACTOR_EXECUTOR, ExecutionStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::notices::Notices;
use crate::repo::Lease;
use crate::repo::executions::{self, StatusChange};
use crate::runner::cloud::AwsConnector;

/// Roots claimed per poll.
const POLL_BATCH: i64 = 20;

/// Returns error text fit for a stored row: AWS-style secrets, key ids and long tokens
/// removed (cudly-aws's one scrubber).
pub fn stored_error(text: &str) -> String {
    cudly_aws::error::scrub(text)
}

/// Shared state of the runs of this process.
pub(crate) struct Inner {
    pub pool: PgPool,
    pub settings: RunnerSettings,
    /// Random per process; part of every lease owner this process writes.
    pub process_id: String,
    /// Account runs (`CUDLY_MAX_ACCOUNT_PARALLELISM`).
    pub semaphore: Arc<Semaphore>,
    /// Purchases in flight (`CUDLY_MAX_PURCHASE_CALLS`).
    pub purchase_calls: permits::PurchaseCalls,
    /// Purchase locks held at once, one connection each.
    pub lock_slots: lock::LockSlots,
    pub cloud: AwsConnector,
    pub accounts: AccountsServiceClient<AuthChannel>,
    pub planner: PlannerServiceClient<AuthChannel>,
    /// Fires at shutdown.
    pub cancel: CancellationToken,
    /// Every run and report task, awaited at shutdown.
    pub tracker: TaskTracker,
    /// Executions whose plan step report is under way.
    pub reporting: Mutex<HashSet<Uuid>>,
    /// The notifications a run's end raises.
    pub notices: Notices,
}

/// Handle on this process's runner; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

impl Runner {
    /// Returns a runner; nothing runs until [`Runner::spawn_poll_loop`] or a start.
    pub fn new(
        pool: PgPool,
        settings: RunnerSettings,
        cloud: AwsConnector,
        accounts: AuthChannel,
        planner: AuthChannel,
        notices: Notices,
    ) -> Self {
        let process_id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            inner: Arc::new(Inner {
                pool,
                semaphore: Arc::new(Semaphore::new(settings.max_account_parallelism)),
                purchase_calls: permits::PurchaseCalls::new(settings.max_purchase_calls),
                lock_slots: Arc::new(Semaphore::new(settings.purchase_lock_slots())),
                settings,
                process_id,
                cloud,
                accounts: AccountsServiceClient::new(accounts),
                planner: PlannerServiceClient::new(planner),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
                reporting: Mutex::new(HashSet::new()),
                notices,
            }),
        }
    }

    /// Returns the pricer of creations, through the same accounts service and AWS
    /// settings as the runs.
    pub fn pricer(&self) -> crate::pricing::Pricer {
        crate::pricing::Pricer::new(self.inner.accounts.clone(), self.inner.cloud.clone())
    }

    /// Returns this process's id (the prefix of its lease owners).
    pub fn process_id(&self) -> &str {
        &self.inner.process_id
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.inner.settings
    }

    /// The notifications of this service.
    pub fn notices(&self) -> &Notices {
        &self.inner.notices
    }

    /// A client of the accounts service.
    pub(crate) fn accounts(&self) -> AccountsServiceClient<AuthChannel> {
        self.inner.accounts.clone()
    }

    /// Returns a new lease of `root_id` for one run of this process.
    pub fn new_lease(&self, root_id: Uuid) -> Lease {
        let run_id = Uuid::new_v4().simple().to_string();
        Lease {
            root_id,
            owner: format!("{}:{}", self.inner.process_id, &run_id[..12]),
        }
    }

    /// Claims an approved root (approved → running) and runs it, in the background.
    pub fn start(&self, root_id: Uuid) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let runner = self.clone();
        self.inner.tracker.spawn(async move {
            let lease = runner.new_lease(root_id);
            match runner.claim(&lease).await {
                Ok(true) => root::run_root(runner.inner.clone(), lease).await,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(execution_id = %root_id, error = %error, "claiming an execution failed; the poll retries")
                }
            }
        }
        // The run continues the trace of the request that started it (creation,
        // approval, retry or re-drive).
        .in_current_span());
    }

    /// Runs a root whose lease this process already holds (a re-drive), in the background.
    pub fn resume(&self, lease: Lease) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let inner = self.inner.clone();
        self.inner
            .tracker
            .spawn(root::run_root(inner, lease).in_current_span());
    }

    async fn claim(&self, lease: &Lease) -> ExecutorResult<bool> {
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(ExecutorError::db("acquiring a connection"))?;
        let change = StatusChange {
            reason: Some("claimed by the executor"),
            set_lease: Some(Some(&lease.owner)),
            ..StatusChange::new(
                lease.root_id,
                &[ExecutionStatus::Approved],
                ExecutionStatus::Running,
                ACTOR_EXECUTOR,
            )
        };
        Ok(executions::change_status(&mut conn, &change)
            .await?
            .applied())
    }

    /// Claims approved roots nobody runs yet and re-sends unreported plan steps; returns
    /// how many roots were claimed.
    pub async fn poll_once(&self) -> ExecutorResult<usize> {
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .map_err(ExecutorError::db("starting a transaction"))?;
        let ids = executions::lock_approved_roots(&mut tx, POLL_BATCH).await?;
        let mut leases = Vec::with_capacity(ids.len());
        for id in ids {
            let lease = self.new_lease(id);
            let change = StatusChange {
                reason: Some("claimed by the executor poll"),
                set_lease: Some(Some(&lease.owner)),
                ..StatusChange::new(
                    id,
                    &[ExecutionStatus::Approved],
                    ExecutionStatus::Running,
                    ACTOR_EXECUTOR,
                )
            };
            if executions::change_status(&mut tx, &change).await?.applied() {
                leases.push(lease);
            }
        }
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing claims"))?;
        let claimed = leases.len();
        for lease in leases {
            tracing::info!(execution_id = %lease.root_id, "approved execution claimed by the poll");
            self.resume(lease);
        }
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(ExecutorError::db("acquiring a connection"))?;
        for step in executions::unreported_steps(&mut conn, 50).await? {
            report::spawn_report(
                &self.inner,
                step.id,
                step.plan_id,
                step.step_number,
                step.completed_at,
            );
        }
        Ok(claimed)
    }

    /// Polls every poll interval until shutdown (the first poll at once).
    pub fn spawn_poll_loop(&self) {
        let runner = self.clone();
        self.inner.tracker.spawn(async move {
            loop {
                if let Err(error) = runner.poll_once().await {
                    if error.is_unavailable() || error.is_missing_schema() {
                        tracing::debug!(error = %error, "poll skipped: database not ready");
                    } else {
                        tracing::warn!(error = %error, "poll failed");
                    }
                }
                tokio::select! {
                    _ = runner.inner.cancel.cancelled() => return,
                    _ = tokio::time::sleep(runner.inner.settings.poll_interval) => {}
                }
            }
        });
    }

    /// Stops starting work, lets every run finish its current step, and waits for them.
    pub async fn stop(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}
