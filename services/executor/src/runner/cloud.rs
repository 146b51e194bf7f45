//! The cloud as the runner sees it: one [`AccountCloud`] per account and region, built
//! from that account's session credentials only. [`AwsConnector`] is the real one
//! (cudly-aws purchase adapters); the trait keeps the runner's decision logic testable
//! with scripted clouds.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_aws::purchase::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser};
use cudly_aws::sdk::{AwsSettings, SessionCredentials};
use futures::future::BoxFuture;

/// Builds account clouds from session credentials.
pub trait CloudConnector: Send + Sync + 'static {
    /// Returns the cloud of the account the credentials belong to, in `region`.
    fn account(&self, credentials: &SessionCredentials, region: &str) -> Arc<dyn AccountCloud>;
}

/// The purchase operations of one account in one region (cudly-aws `Purchaser`).
pub trait AccountCloud: Send + Sync {
    /// The longest one purchase call can keep a request in flight.
    fn longest_purchase(&self) -> Duration;
    fn caller_account_id(&self) -> BoxFuture<'_, Result<String, PurchaseError>>;
    fn find_by_token<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        recorded_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Option<Commitment>, PurchaseError>>;
    fn resolve_offering<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
    ) -> BoxFuture<'a, Result<String, PurchaseError>>;
    fn purchase<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        offering_id: &'a str,
    ) -> BoxFuture<'a, Result<PurchaseOutcome, PurchaseError>>;
    fn tag<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        commitment_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PurchaseError>>;
    fn untagged_candidates<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        offering_id: &'a str,
        created_after: DateTime<Utc>,
        exclude_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Commitment>, PurchaseError>>;
}

/// The real cloud: cudly-aws purchasers with the service's AWS settings.
#[derive(Debug, Clone)]
pub struct AwsConnector {
    settings: AwsSettings,
    retry_backoff: Option<Duration>,
}

impl AwsConnector {
    pub fn new(settings: AwsSettings) -> Self {
        Self {
            settings,
            retry_backoff: None,
        }
    }

    /// Returns the connector with a shorter first retry pause (tests, benchmarks).
    pub fn with_retry_backoff(mut self, initial: Duration) -> Self {
        self.retry_backoff = Some(initial);
        self
    }
}

impl CloudConnector for AwsConnector {
    fn account(&self, credentials: &SessionCredentials, region: &str) -> Arc<dyn AccountCloud> {
        let purchaser = Purchaser::new(&self.settings, credentials, region);
        let purchaser = match self.retry_backoff {
            Some(initial) => purchaser.with_retry_backoff(initial),
            None => purchaser,
        };
        Arc::new(purchaser)
    }
}

impl AccountCloud for Purchaser {
    fn longest_purchase(&self) -> Duration {
        Purchaser::longest_purchase(self)
    }

    fn caller_account_id(&self) -> BoxFuture<'_, Result<String, PurchaseError>> {
        Box::pin(Purchaser::caller_account_id(self))
    }

    fn find_by_token<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        recorded_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Option<Commitment>, PurchaseError>> {
        Box::pin(Purchaser::find_by_token(self, spec, recorded_ids))
    }

    fn resolve_offering<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
    ) -> BoxFuture<'a, Result<String, PurchaseError>> {
        Box::pin(Purchaser::resolve_offering(self, spec))
    }

    fn purchase<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        offering_id: &'a str,
    ) -> BoxFuture<'a, Result<PurchaseOutcome, PurchaseError>> {
        Box::pin(Purchaser::purchase(self, spec, offering_id))
    }

    fn tag<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        commitment_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PurchaseError>> {
        Box::pin(Purchaser::tag(self, spec, commitment_id))
    }

    fn untagged_candidates<'a>(
        &'a self,
        spec: &'a PurchaseSpec,
        offering_id: &'a str,
        created_after: DateTime<Utc>,
        exclude_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Commitment>, PurchaseError>> {
        Box::pin(Purchaser::untagged_candidates(
            self,
            spec,
            offering_id,
            created_after,
            exclude_ids,
        ))
    }
}
