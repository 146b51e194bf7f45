//! The cloud as the runner sees it: one cudly-aws [`Purchaser`] per account and region,
//! built from that account's session credentials only (never the default chain).

use std::sync::Arc;

use cudly_aws::purchase::Purchaser;
use cudly_aws::sdk::{AwsSettings, SessionCredentials};

/// Builds the purchasers of account runs with the service's AWS settings.
#[derive(Debug, Clone)]
pub struct AwsConnector {
    settings: AwsSettings,
}

impl AwsConnector {
    pub fn new(settings: AwsSettings) -> Self {
        Self { settings }
    }

    /// Returns the longest one purchase call can stay in flight (see
    /// [`Purchaser::longest_purchase`]), the same for every account.
    pub fn longest_purchase(&self) -> std::time::Duration {
        Purchaser::longest_purchase_with(&self.settings)
    }

    /// Returns the purchaser of the account the credentials belong to, in `region`.
    pub fn account(&self, credentials: &SessionCredentials, region: &str) -> Arc<Purchaser> {
        Arc::new(Purchaser::new(&self.settings, credentials, region))
    }
}
