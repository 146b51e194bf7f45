//! Purchase adapters, one module per AWS service, each with the idempotency guard of
//! docs/design/DOMAIN.md (Idempotency). The executor drives them item by item:
//!
//! 1. [`Purchaser::find_by_token`] — the guard: is a commitment for this token already
//!    there? A failed look-up is an error, and the executor then refuses to buy.
//! 2. [`Purchaser::quote`] — the one offering matching the recommendation, priced from
//!    the same describe-offerings answer ([`Quote`]); [`Purchaser::resolve_offering`]
//!    is its offering id.
//! 3. [`Purchaser::purchase`] — one purchase call carrying the token (as client token,
//!    reservation id or name where the API has one). EC2 and Redshift purchases are
//!    never retried by the SDK or by us, except after a throttling rejection.
//! 4. [`Purchaser::tag`] — EC2 (retried) and Redshift (best effort) get the token tag.
//! 5. [`Purchaser::untagged_candidates`] — reconciliation for EC2 and Redshift when a
//!    purchase's outcome is unknown: the untagged commitments of the same offering and
//!    count created after the call was sent.

mod ec2;
mod elasticache;
mod memorydb;
mod opensearch;
mod quote;
mod rds;
mod redshift;
mod savingsplans;
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use chrono::{DateTime, Utc};
pub use cudly_vocabulary::AwsService;
use cudly_vocabulary::{Recommendation, RecommendationDetails};
pub use quote::{DEFAULT_CURRENCY, HOURS_PER_MONTH, Quote};
use tokio::sync::OnceCell;

use crate::error::AwsFailure;
use crate::sdk::{AwsSettings, SessionCredentials};
use support::{RetryPolicy, check_token, logged};

/// How far before `created_after` [`Purchaser::untagged_candidates`] still looks.
///
/// AWS stamps a commitment with its own clock; SigV4 accepts requests from clocks up to
/// five minutes apart, so a commitment created by our call may carry a start up to five
/// minutes "before" the sender's clock said it sent it (the executor passes the earlier
/// of its database's and its own clock). The margin is twice that: looking further back
/// can only add candidates (more doubt, never a second purchase), looking less far could
/// miss our own commitment and buy again.
pub const CANDIDATE_CLOCK_MARGIN: Duration = Duration::from_secs(10 * 60);

/// First pause of the retry loops of purchases and tags, doubled per retry.
const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause of those loops.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What to buy, with the idempotency token that identifies it everywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseSpec {
    pub service: AwsService,
    pub region: String,
    /// Instance or node type; for Savings Plans the plan type.
    pub resource_type: String,
    /// RDS/ElastiCache/Redshift engine, or EC2 product description source.
    pub engine: Option<String>,
    /// EC2 product description (`Linux/UNIX`).
    pub platform: Option<String>,
    pub count: u32,
    /// 1 or 3.
    pub term_years: u32,
    /// `no-upfront` | `partial-upfront` | `all-upfront`.
    pub payment: String,
    pub details: RecommendationDetails,
    /// 64 lowercase hex chars (docs/design/DOMAIN.md "Idempotency"): never logged whole.
    pub token: String,
    /// The most the whole order may cost upfront, sent where the API takes it (EC2
    /// LimitPrice): AWS refuses a purchase that would cost more.
    pub limit_price: Option<LimitPrice>,
}

/// The most a purchase may cost upfront, in a currency.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitPrice {
    pub amount: f64,
    pub currency: String,
}

impl PurchaseSpec {
    /// Returns what identifies this purchase among the untagged commitments a
    /// reconciliation may adopt (EC2, Redshift: the attributes their candidate filters
    /// compare, count included), `None` for services whose commitments carry the token
    /// from the start. Two purchases with the same shape in one account and region could
    /// be taken for one another, so the executor makes them one at a time.
    pub fn candidate_shape(&self) -> Option<String> {
        let shape = match self.service {
            AwsService::Ec2 => ec2::candidate_shape(self),
            AwsService::Redshift => redshift::candidate_shape(self),
            _ => return None,
        };
        Some(format!("{}|{}|{shape}", self.service.name(), self.region))
    }

    /// Returns the purchase of a validated line under `token`.
    pub fn new(recommendation: &Recommendation, token: &str) -> Self {
        Self {
            service: recommendation.service,
            region: recommendation.region.clone(),
            resource_type: recommendation.resource_type.clone(),
            engine: recommendation.engine.clone(),
            platform: recommendation.platform.clone(),
            count: recommendation.count,
            term_years: recommendation.term,
            payment: recommendation.payment.clone(),
            details: recommendation.details.clone(),
            token: token.to_owned(),
            limit_price: None,
        }
    }
}

/// A commitment as the cloud reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Commitment {
    pub commitment_id: String,
    pub offering_id: Option<String>,
    pub count: u32,
    pub created_at: Option<DateTime<Utc>>,
    pub state: Option<String>,
    /// The value of the `cudly-idempotency-token` tag, if the commitment has one.
    pub token_tag: Option<String>,
}

/// How a purchase call ended when it returned a commitment.
#[derive(Debug, Clone, PartialEq)]
pub enum PurchaseOutcome {
    /// The call created the commitment.
    Bought(Commitment),
    /// The cloud said the client id/token was already used; this is the commitment
    /// found for it (a previous call of ours bought it).
    AlreadyExisted(Commitment),
}

impl PurchaseOutcome {
    pub fn commitment(&self) -> &Commitment {
        match self {
            PurchaseOutcome::Bought(commitment) | PurchaseOutcome::AlreadyExisted(commitment) => {
                commitment
            }
        }
    }
}

/// Why a call of an adapter failed. Every variant's text is sanitised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurchaseError {
    /// The recommendation cannot be bought as given (no such offering, bad payment
    /// option, unsupported service detail). Nothing was sent to a purchase API.
    #[error("{0}")]
    Invalid(String),
    /// AWS refused the call: nothing was bought.
    #[error("purchase rejected: {0}")]
    Rejected(AwsFailure),
    /// The outcome of a purchase call is unknown (timeout, dropped connection, 5xx):
    /// the commitment may exist. Reconcile; never re-send blindly.
    #[error("purchase outcome unknown: {0}")]
    Ambiguous(AwsFailure),
    /// A look-up (guard, offering, candidates) failed: the executor refuses to buy.
    #[error("look-up failed: {0}")]
    LookupFailed(AwsFailure),
}

/// SDK clients for one account and region, built from that account's session
/// credentials only (never the default chain).
///
/// Look-ups (describe calls, STS) use the SDK's standard retries. Mutating calls
/// (purchases, tags) run with the SDK's retries off, through one retry loop of ours:
/// EC2 and Redshift purchases are re-sent only after a throttling rejection; purchases
/// carrying a client id or token, and tags, also after a 5xx, timeout or lost reply.
pub struct Purchaser {
    region: String,
    lookup_attempts: u32,
    call_timeout: Duration,
    retry: RetryPolicy,
    clients: Clients,
    identity: OnceCell<CallerIdentity>,
}

/// One client per service, all from the same configuration, each built on first use:
/// an account run calls one to three services, and building a client costs its
/// runtime plugins and endpoint resolver.
struct Clients {
    config: aws_types::SdkConfig,
    sts: OnceLock<aws_sdk_sts::Client>,
    ec2: OnceLock<aws_sdk_ec2::Client>,
    savingsplans: OnceLock<aws_sdk_savingsplans::Client>,
    rds: OnceLock<aws_sdk_rds::Client>,
    elasticache: OnceLock<aws_sdk_elasticache::Client>,
    memorydb: OnceLock<aws_sdk_memorydb::Client>,
    opensearch: OnceLock<aws_sdk_opensearch::Client>,
    redshift: OnceLock<aws_sdk_redshift::Client>,
}

/// Accessors that build each service's client once.
macro_rules! lazy_clients {
    ($($service:ident: $client:ty),+ $(,)?) => {
        impl Clients {
            $(
                fn $service(&self) -> &$client {
                    self.$service.get_or_init(|| <$client>::new(&self.config))
                }
            )+
        }
    };
}

lazy_clients! {
    sts: aws_sdk_sts::Client,
    ec2: aws_sdk_ec2::Client,
    savingsplans: aws_sdk_savingsplans::Client,
    rds: aws_sdk_rds::Client,
    elasticache: aws_sdk_elasticache::Client,
    memorydb: aws_sdk_memorydb::Client,
    opensearch: aws_sdk_opensearch::Client,
    redshift: aws_sdk_redshift::Client,
}

impl Clients {
    fn new(config: aws_types::SdkConfig) -> Self {
        Self {
            config,
            sts: OnceLock::new(),
            ec2: OnceLock::new(),
            savingsplans: OnceLock::new(),
            rds: OnceLock::new(),
            elasticache: OnceLock::new(),
            memorydb: OnceLock::new(),
            opensearch: OnceLock::new(),
            redshift: OnceLock::new(),
        }
    }
}

/// Who the credentials belong to (GetCallerIdentity), cached per purchaser.
#[derive(Debug, Clone)]
struct CallerIdentity {
    account_id: String,
    /// `aws`, `aws-cn`, `aws-us-gov`: the partition of ARNs this purchaser names.
    partition: String,
}

impl Purchaser {
    /// Returns a purchaser for `region` that signs with `credentials` only.
    pub fn new(settings: &AwsSettings, credentials: &SessionCredentials, region: &str) -> Self {
        let config = crate::sdk::config_with_credentials(settings, credentials, region);
        let retry = RetryPolicy::of(settings);
        Self {
            region: region.to_owned(),
            clients: Clients::new(config),
            lookup_attempts: settings.max_attempts.max(1),
            call_timeout: settings.call_timeout,
            retry,
            identity: OnceCell::new(),
        }
    }

    /// Returns the purchaser with `initial` as the first pause of every retry (ours and
    /// the SDK's standard retries of look-ups); tests shorten it.
    pub fn with_retry_backoff(mut self, initial: Duration) -> Self {
        self.retry.initial_backoff = initial;
        let config = self
            .clients
            .config
            .to_builder()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.lookup_attempts)
                    .with_initial_backoff(initial),
            )
            .build();
        self.clients = Clients::new(config);
        self
    }

    /// Returns the region every regional call goes to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Returns the longest one [`Purchaser::purchase`] call can keep a purchase request
    /// in flight: every attempt's timeout plus the pauses between them. Reconciliation
    /// waits at least this long (plus its settle margin) after `sent_at`.
    pub fn longest_purchase(&self) -> Duration {
        self.retry.longest_call(self.call_timeout)
    }

    /// Returns [`Purchaser::longest_purchase`] of every purchaser made from `settings`
    /// (without a test's shorter backoff), before any is made.
    pub fn longest_purchase_with(settings: &AwsSettings) -> Duration {
        RetryPolicy::of(settings).longest_call(settings.call_timeout)
    }

    /// Returns the account the credentials belong to (STS GetCallerIdentity). The
    /// executor checks that it is the account's external id before the first purchase.
    pub async fn caller_account_id(&self) -> Result<String, PurchaseError> {
        Ok(self.identity().await?.account_id.clone())
    }

    async fn identity(&self) -> Result<&CallerIdentity, PurchaseError> {
        const OPERATION: &str = "GetCallerIdentity";
        self.identity
            .get_or_try_init(|| async {
                let output = logged(
                    "sts",
                    OPERATION,
                    None,
                    self.clients.sts().get_caller_identity().send(),
                )
                .await
                .map_err(PurchaseError::LookupFailed)?;
                let account_id = output
                    .account()
                    .filter(|account| !account.is_empty())
                    .ok_or_else(|| {
                        PurchaseError::LookupFailed(AwsFailure::malformed_reply(
                            OPERATION, "account",
                        ))
                    })?
                    .to_owned();
                let partition = output
                    .arn()
                    .and_then(|arn| arn.split(':').nth(1))
                    .filter(|partition| !partition.is_empty())
                    .unwrap_or("aws")
                    .to_owned();
                Ok(CallerIdentity {
                    account_id,
                    partition,
                })
            })
            .await
    }

    /// The guard: returns the commitment already bought for `spec.token`, looked up by
    /// the service's handle on it (tag, reservation id, name, client token) and by the
    /// commitment ids recorded on earlier attempts. A failed look-up is
    /// [`PurchaseError::LookupFailed`], never `Ok(None)`.
    pub async fn find_by_token(
        &self,
        spec: &PurchaseSpec,
        recorded_ids: &[String],
    ) -> Result<Option<Commitment>, PurchaseError> {
        self.check_spec(spec)?;
        let recorded_ids = distinct(recorded_ids);
        match spec.service {
            AwsService::Ec2 => ec2::find_by_token(self, spec, &recorded_ids).await,
            AwsService::SavingsPlans => {
                savingsplans::find_by_token(self, spec, &recorded_ids).await
            }
            AwsService::Rds => rds::find_by_token(self, spec, &recorded_ids).await,
            AwsService::ElastiCache => elasticache::find_by_token(self, spec, &recorded_ids).await,
            AwsService::MemoryDb => memorydb::find_by_token(self, spec, &recorded_ids).await,
            AwsService::OpenSearch => opensearch::find_by_token(self, spec, &recorded_ids).await,
            AwsService::Redshift => redshift::find_by_token(self, spec, &recorded_ids).await,
        }
    }

    /// Returns the id of the one offering that matches the recommendation: the offering
    /// of [`Purchaser::quote`], found by the same look-up, so what is bought is what was
    /// priced.
    pub async fn resolve_offering(&self, spec: &PurchaseSpec) -> Result<String, PurchaseError> {
        self.quote(spec).await.map(|quote| quote.offering_id)
    }

    /// Returns the one offering that matches the recommendation with its list price, in
    /// one describe-offerings look-up (the price is read from the answer that names the
    /// offering, so the two cannot disagree). An offering's price is the same in every
    /// account. No match (or several) is [`PurchaseError::Invalid`], as is a price that
    /// cannot be read per hour; a failed look-up or a reply without a price is
    /// [`PurchaseError::LookupFailed`].
    pub async fn quote(&self, spec: &PurchaseSpec) -> Result<Quote, PurchaseError> {
        self.check_spec(spec)?;
        match spec.service {
            AwsService::Ec2 => ec2::quote(self, spec).await,
            AwsService::SavingsPlans => savingsplans::quote(self, spec).await,
            AwsService::Rds => rds::quote(self, spec).await,
            AwsService::ElastiCache => elasticache::quote(self, spec).await,
            AwsService::MemoryDb => memorydb::quote(self, spec).await,
            AwsService::OpenSearch => opensearch::quote(self, spec).await,
            AwsService::Redshift => redshift::quote(self, spec).await,
        }
    }

    /// Asks AWS whether the credentials may buy `offering_id` without buying it, where
    /// the API can say so (EC2 DryRun); `Ok` for services without a dry run. A refusal
    /// is [`PurchaseError::Rejected`] (for EC2 `UnauthorizedOperation`, or what the
    /// purchase would be refused for, such as `LimitPriceExceeded`).
    pub async fn check_purchase(
        &self,
        spec: &PurchaseSpec,
        offering_id: &str,
    ) -> Result<(), PurchaseError> {
        self.check_spec(spec)?;
        match spec.service {
            AwsService::Ec2 => ec2::check_purchase(self, spec, offering_id).await,
            _ => Ok(()),
        }
    }

    /// Returns the deadline of one purchase call attempt.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Buys `offering_id` once for `spec.token`, with no send deadline (see
    /// [`Purchaser::purchase_until`]).
    pub async fn purchase(
        &self,
        spec: &PurchaseSpec,
        offering_id: &str,
    ) -> Result<PurchaseOutcome, PurchaseError> {
        self.purchase_before(spec, offering_id, None).await
    }

    /// As [`Purchaser::purchase`], never dispatching an attempt after `deadline`: a
    /// reconciliation elsewhere waits for the purchase to settle on the assumption that
    /// nothing is sent later. A re-send that would start past it is not made.
    pub async fn purchase_until(
        &self,
        spec: &PurchaseSpec,
        offering_id: &str,
        deadline: std::time::Instant,
    ) -> Result<PurchaseOutcome, PurchaseError> {
        self.purchase_before(spec, offering_id, Some(deadline))
            .await
    }

    /// Buys `offering_id` once for `spec.token`.
    ///
    /// EC2 and Redshift: re-sent only after a throttling rejection; a 4xx answer is
    /// [`PurchaseError::Rejected`], anything else (5xx, timeout, lost reply) is
    /// [`PurchaseError::Ambiguous`]. The other services carry the token (reservation id,
    /// name, client token) and are re-sent after throttling, 5xx and lost replies; their
    /// "already exists" answer is looked up and returned as
    /// [`PurchaseOutcome::AlreadyExisted`].
    async fn purchase_before(
        &self,
        spec: &PurchaseSpec,
        offering_id: &str,
        deadline: Option<std::time::Instant>,
    ) -> Result<PurchaseOutcome, PurchaseError> {
        self.check_spec(spec)?;
        if offering_id.trim().is_empty() {
            return Err(PurchaseError::Invalid(format!(
                "{} offering id is empty",
                spec.service.name()
            )));
        }
        tracing::info!(
            service = spec.service.name(),
            token = %cudly_common::idempotency::mask_token(&spec.token),
            offering_id,
            count = spec.count,
            "purchasing"
        );
        let outcome = match spec.service {
            AwsService::Ec2 => ec2::purchase(self, spec, offering_id, deadline).await,
            AwsService::SavingsPlans => {
                savingsplans::purchase(self, spec, offering_id, deadline).await
            }
            AwsService::Rds => rds::purchase(self, spec, offering_id, deadline).await,
            AwsService::ElastiCache => {
                elasticache::purchase(self, spec, offering_id, deadline).await
            }
            AwsService::MemoryDb => memorydb::purchase(self, spec, offering_id, deadline).await,
            AwsService::OpenSearch => opensearch::purchase(self, spec, offering_id, deadline).await,
            AwsService::Redshift => redshift::purchase(self, spec, offering_id, deadline).await,
        };
        match &outcome {
            Ok(outcome) => tracing::info!(
                service = spec.service.name(),
                token = %cudly_common::idempotency::mask_token(&spec.token),
                commitment_id = %outcome.commitment().commitment_id,
                already_existed = matches!(outcome, PurchaseOutcome::AlreadyExisted(_)),
                "purchase done"
            ),
            Err(error) => tracing::warn!(
                service = spec.service.name(),
                token = %cudly_common::idempotency::mask_token(&spec.token),
                %error,
                "purchase failed"
            ),
        }
        outcome
    }

    /// Puts the token tag on `commitment_id`: EC2 CreateTags (re-sent while its outcome
    /// is unknown; on failure `Rejected` means AWS refused it, `Ambiguous` that it may
    /// not have been written, the commitment itself is unaffected either way), Redshift
    /// CreateTags (best effort: always `Ok`, a failure is logged), no-op elsewhere (the
    /// purchase call carried the token already).
    pub async fn tag(&self, spec: &PurchaseSpec, commitment_id: &str) -> Result<(), PurchaseError> {
        self.check_spec(spec)?;
        if commitment_id.trim().is_empty() {
            return Err(PurchaseError::Invalid(format!(
                "{} commitment id is empty",
                spec.service.name()
            )));
        }
        match spec.service {
            AwsService::Ec2 => ec2::tag(self, spec, commitment_id).await,
            AwsService::Redshift => {
                redshift::tag(self, spec, commitment_id).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Reconciliation for EC2 and Redshift (others: always empty): the commitments of
    /// `offering_id` and `spec.count` created at or after `created_after` (less
    /// [`CANDIDATE_CLOCK_MARGIN`]), without the token tag, and not in `exclude_ids`
    /// (ids recorded on any attempt). A commitment whose start AWS does not report is
    /// kept, as is one whose tags cannot be read for lack of them: a doubtful candidate
    /// makes the attempt in doubt, a missed one could make it buy twice.
    pub async fn untagged_candidates(
        &self,
        spec: &PurchaseSpec,
        offering_id: &str,
        created_after: DateTime<Utc>,
        exclude_ids: &[String],
    ) -> Result<Vec<Commitment>, PurchaseError> {
        self.check_spec(spec)?;
        let margin = chrono::Duration::from_std(CANDIDATE_CLOCK_MARGIN)
            .unwrap_or_else(|_| chrono::Duration::zero());
        let not_before = created_after - margin;
        match spec.service {
            AwsService::Ec2 => {
                ec2::untagged_candidates(self, spec, offering_id, not_before, exclude_ids).await
            }
            AwsService::Redshift => {
                redshift::untagged_candidates(self, spec, offering_id, not_before, exclude_ids)
                    .await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Checks what every entry point relies on: a well-formed token, and a region
    /// that is this purchaser's (Savings Plans are global).
    fn check_spec(&self, spec: &PurchaseSpec) -> Result<(), PurchaseError> {
        check_token(&spec.token)?;
        if spec.service != AwsService::SavingsPlans && spec.region != self.region {
            return Err(PurchaseError::Invalid(format!(
                "{} recommendation is for region {}, this purchaser is for {}",
                spec.service.name(),
                crate::error::scrub(&spec.region),
                self.region
            )));
        }
        Ok(())
    }

    /// Returns the SDK retry settings of mutating calls: off (our loop retries).
    fn no_sdk_retry(&self) -> RetryConfig {
        RetryConfig::disabled()
    }
}

/// Returns the non-empty ids, each once, in their first order.
fn distinct(ids: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for id in ids.iter().map(|id| id.trim()).filter(|id| !id.is_empty()) {
        if !seen.iter().any(|existing| existing == id) {
            seen.push(id.to_owned());
        }
    }
    seen
}
