//! Cost Explorer recommendations fetched with one account's credentials for the
//! planner, which never holds AWS credentials (docs/design/DOMAIN.md "Recommendations
//! and sizing"): from an organization root for every member (AccountScope LINKED, with
//! the organization's account ids so the planner knows whom the answer covers), from
//! any other account its own.

use cudly_aws::costexplorer::{
    AccountScope, CallBudget, CollectedRecommendation, CostExplorer, RecommendationQuery,
};
use cudly_aws::organizations::Organizations;
use cudly_vocabulary::{AWS_PAYMENT_OPTIONS, AwsService, TERMS_YEARS};
use uuid::Uuid;

use crate::domain::Provider;
use crate::error::{AccountsError, AccountsResult};
use crate::resolver::{CacheUse, ResolveError};
use crate::service::Accounts;

/// Most combinations one collection may ask about (7 services × 2 terms × 3 payments).
const MAX_QUERIES: usize = 42;

/// A query as the planner sent it.
#[derive(Debug, Clone)]
pub struct QueryInput {
    pub service: String,
    pub term: u32,
    pub payment: String,
}

/// What a collection brought back. An AWS failure ends it with `error` set.
#[derive(Debug, Default)]
pub struct Collection {
    pub recommendations: Vec<CollectedRecommendation>,
    /// Organization collections: every account id the organization lists.
    pub organization_account_ids: Vec<String>,
    pub calls: u32,
    pub error: Option<String>,
}

impl Collection {
    fn failed(error: String, budget: &CallBudget) -> Self {
        Self {
            calls: budget.used(),
            error: Some(error),
            ..Self::default()
        }
    }
}

/// Returns the validated queries, or a 400 naming the first one at fault.
pub fn validate_queries(inputs: Vec<QueryInput>) -> AccountsResult<Vec<RecommendationQuery>> {
    if inputs.len() > MAX_QUERIES {
        return Err(AccountsError::field(
            "queries",
            format!("at most {MAX_QUERIES} combinations"),
        ));
    }
    inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            let service = AwsService::from_name(&input.service).ok_or_else(|| {
                AccountsError::field(
                    format!("queries[{index}].service"),
                    "is not a known aws service",
                )
            })?;
            if !TERMS_YEARS.contains(&input.term) {
                return Err(AccountsError::field(
                    format!("queries[{index}].term"),
                    "must be 1 or 3",
                ));
            }
            if !AWS_PAYMENT_OPTIONS.contains(&input.payment.as_str()) {
                return Err(AccountsError::field(
                    format!("queries[{index}].payment"),
                    "is not an aws payment option",
                ));
            }
            Ok(RecommendationQuery {
                service,
                term: input.term,
                payment: input.payment,
            })
        })
        .collect()
}

impl Accounts {
    /// Collects the recommendations of `queries` with account `id`'s credentials,
    /// making at most `call_budget` Cost Explorer calls.
    pub async fn collect_recommendations(
        &self,
        id: Uuid,
        organization: bool,
        queries: Vec<QueryInput>,
        call_budget: u32,
    ) -> AccountsResult<Collection> {
        let queries = validate_queries(queries)?;
        let account = self.get(id).await?;
        if account.provider() != Provider::Aws {
            return Err(AccountsError::FailedPrecondition(format!(
                "account {id} is not an aws account"
            )));
        }
        if !account.input.enabled {
            return Err(AccountsError::FailedPrecondition(format!(
                "account {id} is disabled"
            )));
        }
        if organization && !account.input.aws_is_org_root {
            return Err(AccountsError::field(
                "organization",
                "the account is not marked as organization root (aws_is_org_root)",
            ));
        }
        let budget = CallBudget::new(call_budget);
        let credentials = match self
            .resolver()
            .resolve(
                &account,
                CacheUse::Use {
                    valid_for: chrono::TimeDelta::zero(),
                },
                None,
            )
            .await
        {
            Ok(credentials) => credentials,
            Err(ResolveError::Storage(error)) => return Err(error),
            Err(error) => return Ok(Collection::failed(error.to_string(), &budget)),
        };
        let settings = self.resolver().settings();
        let mut collection = Collection::default();
        let scope = if organization {
            match Organizations::with_credentials(settings, &credentials)
                .list_accounts()
                .await
            {
                Ok(listed) => {
                    collection.organization_account_ids =
                        listed.into_iter().map(|member| member.id).collect();
                }
                Err(failure) => return Ok(Collection::failed(failure.to_string(), &budget)),
            }
            AccountScope::Linked
        } else {
            AccountScope::Payer
        };
        let fetched = CostExplorer::with_credentials(settings, &credentials)
            .recommendations(scope, &account.input.external_id, &queries, &budget)
            .await;
        collection.calls = budget.used();
        match fetched {
            Ok(recommendations) => collection.recommendations = recommendations,
            Err(failure) => return Ok(Collection::failed(failure.to_string(), &budget)),
        }
        tracing::info!(
            account_id = %id,
            organization,
            recommendations = collection.recommendations.len(),
            calls = collection.calls,
            "recommendations collected"
        );
        Ok(collection)
    }
}
