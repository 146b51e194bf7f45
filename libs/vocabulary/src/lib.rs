//! The purchase vocabulary of CUDly-rs, written once and used by the planner, the
//! executor, the gateway and `libs/aws` (docs/design/DOMAIN.md "Recommendations").
//!
//! - [`Provider`] and its payment options, [`AwsService`] and its names, the Savings
//!   Plan types and [`HourlyCommitment`];
//! - what a valid recommendation is: [`RecommendationInput`] as received,
//!   [`validate_recommendations`] with the limits of [`limits`], and the validated
//!   [`Recommendation`] as stored;
//! - which target account buys which line: [`assign_targets`].
//!
//! It depends on neither the AWS SDK nor any service, so every side of the system can
//! agree on one copy. Errors are [`FieldError`]s naming the field at fault, never
//! echoing its value.

mod error;
pub mod limits;
mod money;
mod provider;
mod recommendation;
mod savings_plan;
mod service;
mod targets;
mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::FieldError;
pub use money::{format_money, format_usd};
pub use provider::{AWS_PAYMENT_OPTIONS, Provider, TERMS_YEARS};
pub use recommendation::{
    CollectedRecommendation, Recommendation, RecommendationDetails, RecommendationInput,
};
pub use savings_plan::{HourlyCommitment, SAVINGS_PLAN_TYPES};
pub use service::{AWS_SERVICE_NAMES, AwsService};
pub use targets::{TargetItems, assign_targets};
pub use validate::{is_region, validate_recommendations};
