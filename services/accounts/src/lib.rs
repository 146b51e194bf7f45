//! The accounts service of CUDly-rs (docs/design/ARCHITECTURE.md): cloud accounts, their
//! AES-256-GCM encrypted credentials, credential tests, AWS Organizations discovery and
//! short-lived session credentials for the executor.

pub mod app;
pub mod collect;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
mod grpc;
pub mod handover;

pub use grpc::CALLERS;
mod repo;
pub mod resolver;
pub mod rotation;
pub mod service;

pub use error::{AccountsError, AccountsResult};
