//! The gRPC edge of the sweeper: RunTask and ListRuns.

use cudly_common::ApiError;
use cudly_common::caller_policy::{CallerPolicy, CallerTable};
use cudly_common::grpc::Caller;
use cudly_proto::convert::timestamp;
use cudly_proto::sweeper::v1::sweeper_service_server::{SweeperService, SweeperServiceServer};
use cudly_proto::sweeper::v1::{ListRunsRequest, ListRunsResponse, RunTaskRequest, SweepRun};
use tonic::{Request, Response, Status};

use crate::repo::{self, SweepRunRow};
use crate::runner::Sweeper;
use crate::task::Task;

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::sweeper::v1::sweeper_service_server::SERVICE_NAME;

const DEFAULT_LIST_LIMIT: u32 = 100;
const MAX_LIST_LIMIT: u32 = 1000;

/// Every RPC of this service with the callers allowed to call it, enforced by
/// [`CallerPolicy`] before any handler runs (docs/design/ARCHITECTURE.md "Who calls whom").
pub const CALLERS: CallerTable = &[
    ("RunTask", &[Caller::Gateway]),
    ("ListRuns", &[Caller::Gateway]),
];

pub struct SweeperGrpc {
    sweeper: Sweeper,
}

fn parse_task(name: &str) -> Result<Task, Status> {
    name.parse::<Task>()
        .map_err(|problem| ApiError::invalid_field("task", problem).into())
}

fn to_proto(row: SweepRunRow) -> SweepRun {
    SweepRun {
        id: row.id.to_string(),
        task: row.task,
        holder: row.holder,
        outcome: row.outcome,
        started_at: Some(timestamp(row.started_at)),
        finished_at: row.finished_at.map(timestamp),
        found: row.counts.found,
        acted: row.counts.acted,
        race_lost: row.counts.race_lost,
        errors: row.counts.errors,
        fencing_token: row.fencing_token,
        error: row.error,
    }
}

#[tonic::async_trait]
impl SweeperService for SweeperGrpc {
    #[tracing::instrument(skip_all, fields(task = %request.get_ref().task))]
    async fn run_task(
        &self,
        request: Request<RunTaskRequest>,
    ) -> Result<Response<SweepRun>, Status> {
        let task = parse_task(&request.get_ref().task)?;
        let row = self
            .sweeper
            .run_task(task, true)
            .await
            .map_err(|error| Status::from(error.into_api_error()))?;
        Ok(Response::new(to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let task = request
            .get_ref()
            .task
            .as_deref()
            .map(parse_task)
            .transpose()?;
        let limit = request
            .get_ref()
            .limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT);
        let rows = repo::list_runs(self.sweeper.pool(), task, limit)
            .await
            .map_err(|error| {
                Status::from(cudly_common::grpc::db_error("list sweep runs", error))
            })?;
        Ok(Response::new(ListRunsResponse {
            runs: rows.into_iter().map(to_proto).collect(),
        }))
    }
}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(sweeper: Sweeper) -> tonic::service::Routes {
    let auth = sweeper.config().auth.clone();
    let service = SweeperServiceServer::new(SweeperGrpc { sweeper });
    tonic::service::Routes::new(CallerPolicy::new(service, auth, CALLERS))
}
