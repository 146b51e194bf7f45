//! The executor's rules as pure functions and types: the state machine, targets,
//! approval tokens, lineage keys and outcome rules. No I/O here.

pub mod approval;
pub mod clocks;
pub mod limits;
pub mod lineage;
pub mod outcome;
pub mod quotes;
pub mod status;
pub mod targets;
