//! The executor service of CUDly-rs (ARCHITECTURE.md).

pub mod app;
pub mod config;
mod grpc;
