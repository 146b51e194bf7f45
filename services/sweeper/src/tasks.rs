//! The bodies of the tasks: each asks the owning service to act, passing the task name
//! and the fencing token so a sweeper whose lock was taken over is refused there.

use cudly_common::grpc::AuthChannel;
use cudly_lock::LockGuard;
use cudly_proto::common::v1::Fencing;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_proto::executor::v1::{
    ExpirePendingRequest, ListStaleExecutionsRequest, RedriveRequest, SafeFailRequest,
    StaleExecution,
};
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use cudly_proto::planner::v1::{FireDuePlansRequest, RefreshRecommendationsRequest};
use futures::StreamExt;

use crate::config::Config;
use crate::error::{SweeperError, is_stale_fencing};
use crate::task::{Counts, Task};

/// The message safe-failed executions carry for the operator.
pub const SAFE_FAIL_REASON: &str =
    "stranded after the re-drive budget: verify in the cloud console, then retry";

/// Why a task body stopped before finishing.
#[derive(Debug)]
pub enum TaskStop {
    /// The lock was lost or a service refused our fencing token as stale.
    LockLost(Counts),
    /// A call failed; the counts say what was done before.
    Failed(Counts, SweeperError),
}

/// gRPC clients of the services the sweeper drives.
#[derive(Clone)]
pub struct Clients {
    pub executor: ExecutorServiceClient<AuthChannel>,
    pub planner: PlannerServiceClient<AuthChannel>,
    /// The planner for recommendation refreshes, with their longer deadline.
    pub planner_refresh: PlannerServiceClient<AuthChannel>,
}

fn stop_for(status: tonic::Status, counts: Counts, call: &'static str) -> TaskStop {
    if is_stale_fencing(&status) {
        tracing::warn!(call, "fencing token refused as stale, stopping");
        return TaskStop::LockLost(counts);
    }
    let error = cudly_common::ApiError::from_status(&status);
    TaskStop::Failed(counts, SweeperError::Call { call, error })
}

/// Runs the body of `task` while `guard` holds the lock.
pub async fn run_body(
    task: Task,
    config: &Config,
    clients: &Clients,
    guard: &LockGuard,
    fencing: Fencing,
) -> Result<Counts, TaskStop> {
    match task {
        Task::ExpirePending => expire_pending(clients, fencing).await,
        Task::RecoverStranded => recover_stranded(config, clients, guard, fencing).await,
        Task::FireDuePlans => fire_due_plans(clients, fencing).await,
        Task::RefreshRecommendations => refresh_recommendations(clients, fencing).await,
    }
}

async fn expire_pending(clients: &Clients, fencing: Fencing) -> Result<Counts, TaskStop> {
    let reply = clients
        .executor
        .clone()
        .expire_pending(ExpirePendingRequest {
            fencing: Some(fencing),
            now: None,
        })
        .await
        .map_err(|status| stop_for(status, Counts::default(), "expire pending"))?
        .into_inner();
    Ok(Counts {
        found: reply.found,
        acted: reply.acted,
        race_lost: reply.race_lost,
        errors: 0,
    })
}

async fn fire_due_plans(clients: &Clients, fencing: Fencing) -> Result<Counts, TaskStop> {
    let reply = clients
        .planner
        .clone()
        .fire_due_plans(FireDuePlansRequest {
            fencing: Some(fencing),
            now: None,
        })
        .await
        .map_err(|status| stop_for(status, Counts::default(), "fire due plans"))?
        .into_inner();
    Ok(Counts {
        found: reply.found,
        acted: reply.fired,
        race_lost: reply.race_lost,
        errors: reply.errors,
    })
}

/// Collects Cost Explorer recommendations again: found = accounts, acted = accounts
/// whose set was replaced, errors = accounts that kept their previous set.
async fn refresh_recommendations(clients: &Clients, fencing: Fencing) -> Result<Counts, TaskStop> {
    let reply = clients
        .planner_refresh
        .clone()
        .refresh_recommendations(RefreshRecommendationsRequest {
            fencing: Some(fencing),
        })
        .await
        .map_err(|status| stop_for(status, Counts::default(), "refresh recommendations"))?
        .into_inner();
    let count = |failed: bool| {
        let matching = reply
            .accounts
            .iter()
            .filter(|entry| entry.error.is_some() == failed)
            .count();
        u32::try_from(matching).unwrap_or(u32::MAX)
    };
    Ok(Counts {
        found: u32::try_from(reply.accounts.len()).unwrap_or(u32::MAX),
        acted: count(false),
        race_lost: 0,
        errors: count(true),
    })
}

/// Re-drives each stranded root with the same tokens, or safe-fails it once its
/// re-drive budget is spent. Checks the lock before every action.
async fn recover_stranded(
    config: &Config,
    clients: &Clients,
    guard: &LockGuard,
    fencing: Fencing,
) -> Result<Counts, TaskStop> {
    let stale = clients
        .executor
        .clone()
        .list_stale_executions(ListStaleExecutionsRequest {
            fencing: Some(fencing.clone()),
            approved_after_seconds: config.tuning.stranded_approved_after.as_secs(),
            running_after_seconds: config.tuning.stranded_running_after.as_secs(),
            limit: config.tuning.batch_limit,
            now: None,
        })
        .await
        .map_err(|status| stop_for(status, Counts::default(), "list stale executions"))?
        .into_inner()
        .executions;
    let mut counts = Counts {
        found: stale.len() as u32,
        ..Counts::default()
    };
    if !config.tuning.pause_before_acting.is_zero() {
        tokio::time::sleep(config.tuning.pause_before_acting).await;
    }
    // Several roots at once: each action is a round trip to the executor, and one at a
    // time left both sides idle (docs/BENCHMARKS.md, sweeper recovery). Each action
    // still checks the lock first, and the executor checks the fencing token.
    let mut actions = futures::stream::iter(stale)
        .map(|execution| {
            act_on_stranded(config, clients.executor.clone(), guard, &fencing, execution)
        })
        .buffer_unordered(RECOVERY_CONCURRENCY);
    while let Some(action) = actions.next().await {
        match action {
            Action::Acted => counts.acted += 1,
            Action::RaceLost => counts.race_lost += 1,
            Action::Failed => counts.errors += 1,
            Action::LockLost => return Err(TaskStop::LockLost(counts)),
        }
    }
    Ok(counts)
}

/// Stranded roots the sweeper acts on at once.
const RECOVERY_CONCURRENCY: usize = 8;

/// How acting on one stranded root ended.
enum Action {
    Acted,
    RaceLost,
    Failed,
    /// The lock is gone or the executor refused the fencing token: stop the task.
    LockLost,
}

/// Re-drives one stranded root, or safe-fails it once its re-drive budget is spent.
async fn act_on_stranded(
    config: &Config,
    mut executor: ExecutorServiceClient<AuthChannel>,
    guard: &LockGuard,
    fencing: &Fencing,
    execution: StaleExecution,
) -> Action {
    if !guard.is_held() {
        return Action::LockLost;
    }
    if execution.attempt >= config.tuning.redrive_max_attempts {
        let reply = executor
            .safe_fail(SafeFailRequest {
                execution_id: execution.id.clone(),
                fencing: Some(fencing.clone()),
                reason: SAFE_FAIL_REASON.to_owned(),
                expected_attempt: Some(execution.attempt),
            })
            .await;
        match reply {
            Ok(reply) if reply.get_ref().race_lost => Action::RaceLost,
            Ok(reply) => {
                tracing::warn!(execution_id = %execution.id, status = %reply.get_ref().status,
                    attempt = execution.attempt, "stranded execution safe-failed");
                Action::Acted
            }
            Err(status) if is_stale_fencing(&status) => Action::LockLost,
            Err(status) => {
                tracing::warn!(execution_id = %execution.id, error = %status.message(), "safe-fail failed");
                Action::Failed
            }
        }
    } else {
        let reply = executor
            .redrive(RedriveRequest {
                execution_id: execution.id.clone(),
                fencing: Some(fencing.clone()),
                expected_attempt: Some(execution.attempt),
            })
            .await;
        match reply {
            Ok(reply) if reply.get_ref().accepted => {
                tracing::info!(execution_id = %execution.id, attempt = reply.get_ref().attempt,
                    "stranded execution re-driven");
                Action::Acted
            }
            Ok(reply) => {
                tracing::info!(execution_id = %execution.id, outcome = %reply.get_ref().outcome,
                    "re-drive not needed");
                Action::RaceLost
            }
            Err(status) if is_stale_fencing(&status) => Action::LockLost,
            Err(status) => {
                tracing::warn!(execution_id = %execution.id, error = %status.message(), "re-drive failed");
                Action::Failed
            }
        }
    }
}
