//! The gRPC edge of the executor service: proto types are converted to domain types here
//! and nowhere else. Methods not implemented yet answer UNIMPLEMENTED (generated stubs).

use cudly_proto::executor::v1::executor_service_server::{ExecutorService, ExecutorServiceServer};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;

use crate::config::Config;

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::executor::v1::executor_service_server::SERVICE_NAME;

/// The service implementation.
pub struct ExecutorGrpc {
    #[allow(dead_code)]
    pool: PgPool,
}

impl ExecutorService for ExecutorGrpc {}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, pool: PgPool) -> tonic::service::Routes {
    let service = ExecutorServiceServer::new(ExecutorGrpc { pool });
    tonic::service::Routes::new(InterceptedService::new(service, config.auth.clone()))
}
