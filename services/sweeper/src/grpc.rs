//! The gRPC edge of the sweeper service: proto types are converted to domain types here
//! and nowhere else. Methods not implemented yet answer UNIMPLEMENTED (generated stubs).

use cudly_proto::sweeper::v1::sweeper_service_server::{SweeperService, SweeperServiceServer};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;

use crate::config::Config;

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::sweeper::v1::sweeper_service_server::SERVICE_NAME;

/// The service implementation.
pub struct SweeperGrpc {
    #[allow(dead_code)]
    pool: PgPool,
}

impl SweeperService for SweeperGrpc {}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, pool: PgPool) -> tonic::service::Routes {
    let service = SweeperServiceServer::new(SweeperGrpc { pool });
    tonic::service::Routes::new(InterceptedService::new(service, config.auth.clone()))
}
