//! The gRPC edge of the accounts service: proto types are converted to domain types here
//! and nowhere else. Methods not implemented yet answer UNIMPLEMENTED (generated stubs).

use cudly_proto::accounts::v1::accounts_service_server::{AccountsService, AccountsServiceServer};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;

use crate::config::Config;

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::accounts::v1::accounts_service_server::SERVICE_NAME;

/// The service implementation.
pub struct AccountsGrpc {
    #[allow(dead_code)]
    pool: PgPool,
}

impl AccountsService for AccountsGrpc {}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, pool: PgPool) -> tonic::service::Routes {
    let service = AccountsServiceServer::new(AccountsGrpc { pool });
    tonic::service::Routes::new(InterceptedService::new(service, config.auth.clone()))
}
