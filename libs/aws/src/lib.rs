//! Everything of CUDly-rs that touches the AWS SDK, kept in one crate so that editing a
//! service never recompiles the SDK.
//!
//! - [`sdk`]: SDK configuration from explicit settings (region, endpoint override,
//!   static session credentials or the default chain); without an explicit endpoint the
//!   SDK's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` handling applies.
//! - [`sts`]: session credentials (GetSessionToken, GetFederationToken, AssumeRole,
//!   AssumeRoleWithWebIdentity) and GetCallerIdentity, as plain Rust types.
//! - [`session_policy`]: the inline session policies that scope the sessions handed to
//!   the executor to the describe, purchase and tagging calls of the seven services.
//! - [`organizations`]: the member accounts of an organization, all pages.
//! - [`costexplorer`]: the reservation and Savings Plans purchases Cost Explorer
//!   recommends, for one account or every member of an organization, within a budget
//!   of billed calls.
//! - [`purchase`]: the purchase adapters, one module per AWS service, and the quote
//!   (list price) of the offering each buys.
//! - [`error`]: [`AwsFailure`] and the one function that turns an SDK error into text
//!   fit for a log line or a stored row ([`sanitize_sdk_error`]).
//!
//! Public types never expose an SDK type, and secrets stay in [`secrecy::SecretString`].

pub mod costexplorer;
pub mod error;
pub mod organizations;
pub mod purchase;
pub mod sdk;
pub mod session_policy;
pub mod sts;

pub use error::{AwsErrorKind, AwsFailure, sanitize_sdk_error};
