//! `/api/admin/sweeps`: the sweeper's run log and running a task now (docs/design/API.md,
//! Operations). Listing is open to viewers; running a task needs an admin key.

use axum::extract::State;
use chrono::{DateTime, Utc};
use cudly_proto::convert::optional_time;
use cudly_proto::sweeper::v1::sweeper_service_client::SweeperServiceClient;
use cudly_proto::sweeper::v1::{ListRunsRequest, RunTaskRequest, SweepRun as ProtoRun};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Returns the `/api/admin/sweeps` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(run_task))
}

/// The task names a sweep run may have.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskName {
    ExpirePending,
    RecoverStranded,
    FireDuePlans,
    RefreshRecommendations,
}

impl TaskName {
    fn as_str(self) -> &'static str {
        match self {
            TaskName::ExpirePending => "expire_pending",
            TaskName::RecoverStranded => "recover_stranded",
            TaskName::FireDuePlans => "fire_due_plans",
            TaskName::RefreshRecommendations => "refresh_recommendations",
        }
    }
}

/// Filters of the run log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this task.
    pub task: Option<TaskName>,
    /// Most runs returned, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// One run of a sweeper task.
#[derive(Debug, Serialize, ToSchema)]
pub struct SweepRun {
    pub id: Uuid,
    pub task: String,
    /// The sweeper instance that ran it.
    pub holder: String,
    /// ran | lock_not_acquired | skipped_recent | lock_lost | error
    pub outcome: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub found: u32,
    pub acted: u32,
    pub race_lost: u32,
    pub errors: u32,
    pub fencing_token: Option<i64>,
    pub error: Option<String>,
}

/// The run log.
#[derive(Debug, Serialize, ToSchema)]
pub struct SweepRunList {
    pub runs: Vec<SweepRun>,
}

impl From<ProtoRun> for SweepRun {
    fn from(run: ProtoRun) -> Self {
        Self {
            id: run.id.parse().unwrap_or_default(),
            task: run.task,
            holder: run.holder,
            outcome: run.outcome,
            started_at: optional_time(run.started_at.as_ref()),
            finished_at: optional_time(run.finished_at.as_ref()),
            found: run.found,
            acted: run.acted,
            race_lost: run.race_lost,
            errors: run.errors,
            fencing_token: run.fencing_token,
            error: run.error,
        }
    }
}

/// Lists recent sweeper runs, newest first.
#[utoipa::path(
    get,
    path = "/api/admin/sweeps",
    tag = "operations",
    params(RunsQuery),
    responses(
        (status = 200, description = "recent runs", body = SweepRunList),
        (status = 400, description = "invalid filter", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "sweeper service unavailable", body = ErrorBody),
    ),
)]
async fn list_runs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> HttpResult<ApiJson<SweepRunList>> {
    let request = ListRunsRequest {
        task: query.task.map(|task| task.as_str().to_owned()),
        limit: query.limit,
    };
    let reply = SweeperServiceClient::new(state.clients.sweeper.clone())
        .list_runs(request)
        .await
        .map_err(|status| grpc_error("sweeper", status))?
        .into_inner();
    Ok(ApiJson(SweepRunList {
        runs: reply.runs.into_iter().map(SweepRun::from).collect(),
    }))
}

/// Runs one task now (admin), under its lock like a scheduled run; the reply is the
/// recorded run (`lock_not_acquired` when another sweeper holds the lock).
#[utoipa::path(
    post,
    path = "/api/admin/sweeps/{task}/run",
    tag = "operations",
    params(("task" = inline(TaskName), Path, description = "expire_pending, recover_stranded, fire_due_plans or refresh_recommendations")),
    responses(
        (status = 200, description = "the recorded run", body = SweepRun),
        (status = 400, description = "unknown task", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 503, description = "sweeper service unavailable", body = ErrorBody),
    ),
)]
async fn run_task(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(task): ApiPath<TaskName>,
) -> HttpResult<ApiJson<SweepRun>> {
    principal.require_admin()?;
    tracing::info!(task = task.as_str(), by = %principal.name, "sweep run requested");
    let reply = SweeperServiceClient::new(state.clients.sweeper.clone())
        .run_task(RunTaskRequest {
            task: task.as_str().to_owned(),
        })
        .await
        .map_err(|status| grpc_error("sweeper", status))?
        .into_inner();
    Ok(ApiJson(SweepRun::from(reply)))
}
