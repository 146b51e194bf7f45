//! The planner service of CUDly-rs (docs/design/ARCHITECTURE.md): plans and their services map,
//! ramp schedules, plan ↔ account binding with provider validation, the standing
//! recommendations, due-plan firing and turning a plan into an execution request.

pub mod app;
pub mod clients;
pub mod config;
pub mod domain;
pub mod error;
mod grpc;

pub use grpc::CALLERS;
pub mod metrics;
mod repo;
pub mod service;

pub use error::{PlannerError, PlannerResult};
