//! Quotes at creation (docs/design/DOMAIN.md "Quotes, dry run and spend limits"): every
//! item is priced from the AWS offering API, never from what the requester typed.
//!
//! An offering's list price is the same in every account, so each distinct offering is
//! priced once per execution, through the first target account (those that buy it
//! first) whose credentials resolve and whose look-up answers: one unreachable account
//! never blocks the quote of the others. No such offering is a 422 naming the item;
//! nothing answering is a 503. Either way nothing is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cudly_aws::purchase::{PurchaseError, PurchaseSpec, Quote};
use cudly_aws::sdk::SessionCredentials;
use cudly_common::ApiError;
use cudly_common::grpc::AuthChannel;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_vocabulary::{Recommendation, TargetItems};
use futures::future::join_all;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::runner::accounts::{self, ResolveFailure};
use crate::runner::cloud::AwsConnector;

/// How long the session credentials used for pricing must stay valid.
const PRICING_SESSION: Duration = Duration::from_secs(15 * 60);

/// The token of the specs priced at creation: a quote buys nothing and looks nothing up
/// by token, but a spec must carry a well-formed one.
const PRICING_TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Prices the items of a creation; cheap to clone.
#[derive(Clone)]
pub struct Pricer {
    accounts: AccountsServiceClient<AuthChannel>,
    cloud: AwsConnector,
}

/// The quote of every line of a recommendation list, by index.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotes(Vec<Quote>);

impl Quotes {
    /// Returns the quote of the line at `index`.
    pub fn of(&self, index: u32) -> &Quote {
        &self.0[index as usize]
    }
}

/// Why an account's credentials could not be used.
#[derive(Debug, Clone)]
enum Unusable {
    Refused(String),
    Unavailable,
}

/// The session credentials of the targets, each resolved at most once per creation.
pub struct Sessions<'p> {
    pricer: &'p Pricer,
    purpose: accounts::Purpose,
    cells: HashMap<Uuid, OnceCell<Result<SessionCredentials, Unusable>>>,
}

impl Sessions<'_> {
    async fn credentials(&self, account_id: Uuid) -> Result<SessionCredentials, Unusable> {
        let Some(cell) = self.cells.get(&account_id) else {
            return Err(Unusable::Refused("not a target".to_owned()));
        };
        cell.get_or_init(|| async {
            match accounts::resolve_once(
                &self.pricer.accounts,
                account_id,
                &self.purpose,
                PRICING_SESSION,
            )
            .await
            {
                Ok(resolved) => Ok(resolved.credentials),
                Err(ResolveFailure::Refused(problem)) => Err(Unusable::Refused(problem)),
                Err(ResolveFailure::Unavailable | ResolveFailure::Stopped) => {
                    Err(Unusable::Unavailable)
                }
            }
        })
        .await
        .clone()
    }

    /// Returns the purchaser of `account_id` in `region`, or why there is none.
    pub async fn purchaser(
        &self,
        account_id: Uuid,
        region: &str,
    ) -> Result<Arc<cudly_aws::purchase::Purchaser>, ApiError> {
        match self.credentials(account_id).await {
            Ok(credentials) => Ok(self.pricer.cloud.account(&credentials, region)),
            Err(Unusable::Refused(problem)) => Err(ApiError::new(
                cudly_common::ErrorCode::Unprocessable,
                format!("account {account_id} cannot be used: {problem}"),
            )),
            Err(Unusable::Unavailable) => Err(ApiError::unavailable(
                "the accounts service is unavailable; nothing was created",
            )),
        }
    }
}

/// What pricing one offering through the candidate accounts gave.
struct Attempts {
    refusals: Vec<String>,
    outages: Vec<String>,
}

impl Pricer {
    pub fn new(accounts: AccountsServiceClient<AuthChannel>, cloud: AwsConnector) -> Self {
        Self { accounts, cloud }
    }

    /// Returns the credentials cache of one creation (or dry run: `purpose`) over
    /// `targets`.
    pub fn sessions(&self, targets: &[Uuid], purpose: accounts::Purpose) -> Sessions<'_> {
        Sessions {
            pricer: self,
            purpose,
            cells: targets.iter().map(|id| (*id, OnceCell::new())).collect(),
        }
    }

    /// Prices every line of `recommendations`, each distinct offering once, through the
    /// accounts that buy it first and then any other target.
    pub async fn price(
        &self,
        sessions: &Sessions<'_>,
        assignment: &[TargetItems],
        recommendations: &[Recommendation],
    ) -> Result<Quotes, ApiError> {
        let mut offerings: Vec<(Recommendation, Vec<u32>)> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for (index, recommendation) in recommendations.iter().enumerate() {
            let unit = offering_of(recommendation);
            let key = serde_json::to_string(&unit).unwrap_or_default();
            let slot = *by_key.entry(key).or_insert_with(|| {
                offerings.push((unit, Vec::new()));
                offerings.len() - 1
            });
            offerings[slot].1.push(index as u32);
        }
        let priced = join_all(offerings.iter().map(|(unit, indices)| {
            let candidates = candidates(assignment, indices);
            async move {
                self.price_offering(sessions, unit, indices[0], &candidates)
                    .await
            }
        }))
        .await;
        let mut quotes: Vec<Option<Quote>> = vec![None; recommendations.len()];
        for ((_, indices), quote) in offerings.iter().zip(priced) {
            let quote = quote?;
            for index in indices {
                quotes[*index as usize] = Some(Quote {
                    count: recommendations[*index as usize].count,
                    ..quote.clone()
                });
            }
        }
        Ok(Quotes(quotes.into_iter().flatten().collect()))
    }

    async fn price_offering(
        &self,
        sessions: &Sessions<'_>,
        unit: &Recommendation,
        first_index: u32,
        candidates: &[Uuid],
    ) -> Result<Quote, ApiError> {
        let spec = PurchaseSpec::new(unit, PRICING_TOKEN);
        let mut attempts = Attempts {
            refusals: Vec::new(),
            outages: Vec::new(),
        };
        for account_id in candidates {
            let purchaser = match sessions.credentials(*account_id).await {
                Ok(credentials) => self.cloud.account(&credentials, &unit.region),
                Err(Unusable::Refused(problem)) => {
                    attempts
                        .refusals
                        .push(format!("account {account_id}: {problem}"));
                    continue;
                }
                Err(Unusable::Unavailable) => {
                    attempts.outages.push(format!(
                        "account {account_id}: accounts service unavailable"
                    ));
                    continue;
                }
            };
            match purchaser.quote(&spec).await {
                Ok(quote) => return Ok(quote),
                Err(PurchaseError::Invalid(problem)) => {
                    return Err(ApiError::unprocessable_item(
                        first_index,
                        format!("recommendations[{first_index}] cannot be priced: {problem}"),
                    ));
                }
                Err(error) => {
                    tracing::warn!(%account_id, %error, "pricing through this account failed");
                    let failure = format!("account {account_id}: {error}");
                    if is_refusal(&error) {
                        attempts.refusals.push(failure);
                    } else {
                        attempts.outages.push(failure);
                    }
                }
            }
        }
        Err(no_price(first_index, &attempts))
    }
}

/// Returns the line as the offering API sees it: one unit, without the requester's
/// estimates or targeting, so lines of one offering share one look-up.
fn offering_of(recommendation: &Recommendation) -> Recommendation {
    Recommendation {
        count: 1,
        cloud_account_id: None,
        all_accounts: false,
        upfront_cost: None,
        monthly_savings: None,
        ..recommendation.clone()
    }
}

/// Returns the accounts to price through: those buying one of `indices` first (in
/// target order), then every other target.
fn candidates(assignment: &[TargetItems], indices: &[u32]) -> Vec<Uuid> {
    let (buyers, others): (Vec<&TargetItems>, Vec<&TargetItems>) =
        assignment.iter().partition(|target| {
            target
                .item_indices
                .iter()
                .any(|index| indices.contains(index))
        });
    buyers
        .into_iter()
        .chain(others)
        .map(|target| target.account_id)
        .collect()
}

/// True when AWS refused the look-up for this account (a permission, not an outage).
fn is_refusal(error: &PurchaseError) -> bool {
    match error {
        PurchaseError::LookupFailed(failure) | PurchaseError::Rejected(failure) => {
            failure.is_refusal()
        }
        _ => false,
    }
}

/// The error when no account priced an offering: unavailable (503) when any account
/// could not answer for an outage, which a later try may not meet; otherwise a 422
/// naming the item and why each account refused.
fn no_price(first_index: u32, attempts: &Attempts) -> ApiError {
    let problems = attempts
        .outages
        .iter()
        .chain(&attempts.refusals)
        .map(|problem| cudly_aws::error::scrub(problem))
        .collect::<Vec<_>>()
        .join("; ");
    if attempts.outages.is_empty() {
        ApiError::unprocessable_item(
            first_index,
            format!(
                "recommendations[{first_index}] cannot be priced: no target account may look \
                 its offering up ({problems})"
            ),
        )
    } else {
        ApiError::unavailable(format!(
            "pricing recommendations[{first_index}] failed, nothing was created: {problems}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(account: u128, indices: &[u32]) -> TargetItems {
        TargetItems {
            account_id: Uuid::from_u128(account),
            item_indices: indices.to_vec(),
        }
    }

    #[test]
    fn the_accounts_that_buy_an_offering_price_it_first() {
        let assignment = [target(1, &[0]), target(2, &[1]), target(3, &[0, 1])];
        assert_eq!(
            candidates(&assignment, &[1]),
            vec![Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(1)]
        );
    }

    #[test]
    fn lines_of_one_offering_share_a_key_whatever_their_count_and_estimates() {
        let line = cudly_vocabulary::validate_recommendations(vec![
            cudly_vocabulary::RecommendationInput {
                provider: "aws".into(),
                service: "rds".into(),
                region: "us-east-1".into(),
                resource_type: "db.r6g.large".into(),
                engine: Some("mysql".into()),
                count: 2,
                term: 1,
                payment: "all-upfront".into(),
                ..Default::default()
            },
        ])
        .expect("a valid line")
        .remove(0);
        let other = Recommendation {
            count: 7,
            upfront_cost: Some(12.0),
            all_accounts: true,
            ..line.clone()
        };
        assert_eq!(offering_of(&line), offering_of(&other));
        let other_region = Recommendation {
            region: "eu-west-1".to_owned(),
            ..line.clone()
        };
        assert_ne!(offering_of(&line), offering_of(&other_region));
    }
}
