//! cudly-aws-sandbox: a stateful emulator of the AWS APIs CUDly calls (STS,
//! Organizations, EC2, Savings Plans, RDS, ElastiCache, MemoryDB, OpenSearch,
//! Redshift, Cost Explorer's purchase recommendations), speaking each service's real
//! wire protocol so unmodified aws-sdk clients can be pointed at it, with a ledger that
//! proves what was bought and how often, injectable faults, adjustable list prices and
//! seeded recommendations. The contract is `docs/design/SANDBOX.md`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cudly_aws_sandbox::{AccountSpec, Sandbox, SandboxConfig};
//! let handle = Sandbox::start(
//!     SandboxConfig::default()
//!         .with_account(AccountSpec::new("111122223333").with_access_key("AKIAEXAMPLE", "secret")),
//! )
//! .await?;
//! // Give `handle.endpoint()` to `aws_config::defaults(..).endpoint_url(..)`.
//! let ledger = handle.ledger().await;
//! assert!(ledger.commitments.is_empty());
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod app;
mod behaviour;
pub mod catalogue;
mod config;
mod control;
mod error;
mod faults;
mod identity;
mod ledger;
pub mod operations;
mod persistence;
mod policy;
mod prices;
mod protocol;
mod purchase_concurrency;
mod recommendations;
mod server;
mod service;
mod services;
mod state;

pub use app::SandboxSnapshot;
pub use behaviour::{
    Behaviour, BehaviourUpdate, MAX_CLOCK_OFFSET_SECONDS, RedshiftReservedNodeTags,
};
pub use catalogue::{Offering, OfferingQuery};
pub use config::{
    AccessKeySpec, AccountSpec, CUDLY_MEMBER_ROLE, ConfigFile, ORGANIZATION_ACCESS_ROLE,
    OrgMemberSpec, RoleSpec, SandboxConfig,
};
pub use error::{SandboxError, SandboxResult};
pub use faults::{ActiveFault, FaultError, FaultId, FaultSpec};
pub use ledger::{CallOutcome, Commitment, IDEMPOTENCY_TAG_KEY, Ledger, LedgerCall};
pub use prices::PriceUpdate;
pub use purchase_concurrency::PurchaseConcurrency;
pub use server::{Sandbox, SandboxHandle};
pub use service::Service;
