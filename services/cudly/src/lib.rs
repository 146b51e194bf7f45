//! The all-in-one `cudly` binary as a library: runs the five services in one process,
//! each on its own loopback port and still talking gRPC with per-caller internal
//! tokens, so local use and end-to-end tests exercise the same paths as a deployment.

pub mod cli;
pub mod demo;
pub mod dev_aws;
mod private_files;
mod secrets;
mod stack;

pub use secrets::{DevSecretFiles, Secrets};
pub use stack::{Stack, StackConfig};
