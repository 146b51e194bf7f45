//! A sandbox with one account, a purchaser signed with its long-lived key, and one
//! well-formed recommendation per service.

use std::time::Duration;

use cudly_aws::purchase::{AwsService, PurchaseSpec, Purchaser};
use cudly_aws::sdk::{AwsSettings, SessionCredentials};
use cudly_aws_sandbox::operations::sandbox_service;
use cudly_aws_sandbox::{AccountSpec, Ledger, Sandbox, SandboxConfig, SandboxHandle};
pub use cudly_vocabulary::RecommendationDetails;
use secrecy::SecretString;

pub const ACCOUNT: &str = "123456789012";
pub const KEY: &str = "AKIAPURCHASER0000001";
pub const SECRET: &str = "sandbox-secret";
pub const REGION: &str = "us-east-1";

pub struct Fixture {
    pub handle: SandboxHandle,
    pub purchaser: Purchaser,
}

impl Fixture {
    pub async fn ledger(&self, service: AwsService) -> Ledger {
        self.handle
            .ledger_filtered(Some(ACCOUNT), Some(sandbox_service(service.name())))
            .await
    }
}

pub async fn start() -> Fixture {
    let handle = Sandbox::start(
        SandboxConfig::default()
            .with_account(AccountSpec::new(ACCOUNT).with_access_key(KEY, SECRET)),
    )
    .await
    .expect("sandbox starts");
    let purchaser = purchaser_for(&handle);
    Fixture { handle, purchaser }
}

pub fn purchaser_for(handle: &SandboxHandle) -> Purchaser {
    purchaser_with_timeout(handle, Duration::from_secs(5))
}

/// A purchaser whose every call attempt gives up after `call_timeout`.
pub fn purchaser_with_timeout(handle: &SandboxHandle, call_timeout: Duration) -> Purchaser {
    Purchaser::new(&settings(handle, call_timeout), &credentials(), REGION)
        .with_retry_backoff(Duration::from_millis(10))
}

/// The configuration of SDK clients signed like the purchaser, for tests that read
/// what AWS lists without going through the purchaser.
pub fn sdk_config(handle: &SandboxHandle) -> aws_types::SdkConfig {
    cudly_aws::sdk::config_with_credentials(
        &settings(handle, Duration::from_secs(5)),
        &credentials(),
        REGION,
    )
}

fn settings(handle: &SandboxHandle, call_timeout: Duration) -> AwsSettings {
    AwsSettings {
        call_timeout,
        ..AwsSettings::default().with_endpoint(handle.endpoint())
    }
}

fn credentials() -> SessionCredentials {
    SessionCredentials {
        access_key_id: KEY.to_owned(),
        secret_access_key: SecretString::from(SECRET),
        session_token: None,
        expiration: None,
    }
}

/// A well-formed recommendation of `service` whose token derives from `lineage`.
pub fn spec(service: AwsService, lineage: &str) -> PurchaseSpec {
    let token = cudly_common::idempotency::derive_token(lineage, 0);
    let base = PurchaseSpec {
        service,
        region: REGION.to_owned(),
        resource_type: String::new(),
        engine: None,
        platform: None,
        count: 2,
        term_years: 1,
        payment: "all-upfront".to_owned(),
        details: RecommendationDetails::default(),
        token,
        limit_price: None,
    };
    match service {
        AwsService::Ec2 => PurchaseSpec {
            resource_type: "m5.large".to_owned(),
            platform: Some("Linux/UNIX".to_owned()),
            details: RecommendationDetails {
                tenancy: Some("default".to_owned()),
                offering_class: Some("standard".to_owned()),
                ..RecommendationDetails::default()
            },
            ..base
        },
        AwsService::SavingsPlans => PurchaseSpec {
            resource_type: "Compute".to_owned(),
            payment: "no-upfront".to_owned(),
            details: RecommendationDetails {
                plan_type: Some("Compute".to_owned()),
                hourly_commitment: Some("1.25".to_owned()),
                ..RecommendationDetails::default()
            },
            ..base
        },
        AwsService::Rds => PurchaseSpec {
            resource_type: "db.r5.large".to_owned(),
            engine: Some("postgresql".to_owned()),
            details: RecommendationDetails {
                multi_az: Some(false),
                ..RecommendationDetails::default()
            },
            ..base
        },
        AwsService::ElastiCache => PurchaseSpec {
            resource_type: "cache.m5.large".to_owned(),
            engine: Some("redis".to_owned()),
            count: 1,
            term_years: 3,
            payment: "partial-upfront".to_owned(),
            ..base
        },
        AwsService::MemoryDb => PurchaseSpec {
            resource_type: "db.r6g.large".to_owned(),
            payment: "no-upfront".to_owned(),
            ..base
        },
        AwsService::OpenSearch => PurchaseSpec {
            resource_type: "r6g.large.search".to_owned(),
            count: 3,
            payment: "no-upfront".to_owned(),
            ..base
        },
        AwsService::Redshift => PurchaseSpec {
            resource_type: "dc2.large".to_owned(),
            ..base
        },
    }
}

/// The key the sandbox ledger counts a commitment of `spec` under: the token (tag or
/// client token), or for OpenSearch, whose purchase takes no tags, the reservation name
/// derived from the token.
pub fn ledger_key(spec: &PurchaseSpec) -> String {
    match spec.service {
        AwsService::OpenSearch => {
            cudly_common::idempotency::reservation_id("opensearch-id-", &spec.token)
        }
        _ => spec.token.clone(),
    }
}
