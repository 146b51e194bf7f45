//! The executor service of CUDly-rs (docs/design/ARCHITECTURE.md): the execution state machine,
//! approval tokens, per-account parallel fan-out, idempotent purchasing and history.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;

pub use grpc::CALLERS;
pub mod metrics;
pub mod notices;
pub mod pricing;
pub mod repo;
pub mod runner;
pub mod service;
