//! The sweeper service of CUDly-rs: expiry of stale approvals, recovery of stranded
//! executions by idempotent re-drive, and due plans, each under a Redis lock with a
//! fencing token drawn from Postgres (docs/design/DOMAIN.md "Sweeper").

pub mod app;
pub mod config;
pub mod error;
mod grpc;

pub use grpc::CALLERS;
mod metrics;
pub mod repo;
pub mod runner;
pub mod task;
pub mod tasks;
