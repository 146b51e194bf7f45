//! The REST gateway of CUDly-rs: `/api/...` JSON (docs/design/API.md) translated to gRPC calls on
//! the backend services, with API-key authentication and roles, one error mapping,
//! request ids and trace propagation, health, Prometheus metrics and an OpenAPI
//! document generated from the handlers.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let env = cudly_common::config::Env::process();
//! let config = cudly_gateway::Config::read(&env, &env, cudly_common::config::Layout::Standalone)?;
//! let app = cudly_gateway::App::build(config).await?;
//! app.run_until_stopped(cudly_common::grpc::shutdown_signal()).await
//! # }
//! ```

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod key_cache;
pub mod key_uses;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod repo;
pub mod routes;
pub mod serve;
pub mod state;

pub use app::App;
pub use auth::{Principal, Role};
pub use config::{BackendUrls, Config};
pub use error::{HttpError, HttpResult, error_response, grpc_error};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use state::{AppState, Backends};
