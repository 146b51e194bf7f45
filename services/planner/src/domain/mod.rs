//! The planner's business rules as pure functions (docs/design/DOMAIN.md "Plans"): the plan model
//! and its validation, ramp arithmetic, the standing recommendations filtered and scaled
//! per step, account binding, Cost Explorer recommendations and the steps sized from
//! them, and the execution request a run sends.

pub mod auto_purchase;
pub mod binding;
pub mod plan;
pub mod ramp;
pub mod recommendations;
pub mod run;
pub mod selection;
pub mod sizing;
pub mod validation;
