//! Test helpers: a fresh Postgres database per test on the shared server, private
//! throwaway Postgres and Redis instances for tests that stop or restart a dependency,
//! free ports, waiting helpers, the whole stack in-process ([`TestStack`]), optionally
//! wired to an in-process AWS sandbox ([`TestStack::start_with_sandbox`]), REST calls with
//! the admin key ([`rest`]), a capture of every log line ([`LogCapture`]), and what the
//! benchmarks share ([`bench`]).

pub mod bench;
pub mod cluster;
mod database;
mod instances;
mod logs;
pub mod receiver;
pub mod rest;
mod stack;
pub mod tls;
mod wait;

pub use database::TestDb;
pub use instances::{PrivatePostgres, PrivateRedis};
pub use logs::{LogCapture, SERVICES_AT_DEBUG};
pub use stack::{SANDBOX_HOST_ACCOUNT_ID, TestStack};
pub use wait::{eventually, free_port};
