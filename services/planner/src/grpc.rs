//! The gRPC edge of the planner service: proto types are converted to domain types here
//! and nowhere else. Methods not implemented yet answer UNIMPLEMENTED (generated stubs).

use cudly_proto::planner::v1::planner_service_server::{PlannerService, PlannerServiceServer};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;

use crate::config::Config;

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::planner::v1::planner_service_server::SERVICE_NAME;

/// The service implementation.
pub struct PlannerGrpc {
    #[allow(dead_code)]
    pool: PgPool,
}

impl PlannerService for PlannerGrpc {}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, pool: PgPool) -> tonic::service::Routes {
    let service = PlannerServiceServer::new(PlannerGrpc { pool });
    tonic::service::Routes::new(InterceptedService::new(service, config.auth.clone()))
}
