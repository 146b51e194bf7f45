//! The planner's clients of the accounts and executor services. Proto types stay here:
//! callers get domain values and [`PlannerError`]s; a dependency that cannot answer is
//! reported by role ("accounts service unavailable"), its detail logged.

use std::collections::BTreeSet;

use cudly_common::ApiError;
use cudly_common::config::ConfigResult;
use cudly_common::grpc::{AuthChannel, secure_channel};
use cudly_notify::{Event, RelayError};
use cudly_proto::accounts::v1 as accounts_pb;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::convert::timestamp;
use cudly_proto::executor::v1 as executor_pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::auto_purchase::AutoPurchaseRules;
use crate::domain::plan::AccountRef;
use crate::domain::recommendations::{CollectableAccount, Query};
use crate::domain::run::ExecutionRequest;
use crate::domain::sizing::{PastPurchase, Shape};
use crate::error::{PlannerError, PlannerResult};
use chrono::{DateTime, Utc};
use cudly_proto::convert::details_from_wire;
use cudly_vocabulary::CollectedRecommendation;
use cudly_vocabulary::{AwsService, Provider};

/// The accounts a look-up by ids found, and the ids it did not.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountsByIds {
    pub found: Vec<AccountRef>,
    pub not_found: Vec<Uuid>,
}

/// An execution the executor created (or returned, for a replay or a live lineage).
#[derive(Debug)]
pub struct CreatedExecution {
    pub execution_id: String,
    pub status: String,
    pub created: bool,
    /// The executor's reply, passed through to the caller as is.
    pub reply: executor_pb::CreateExecutionResponse,
}

/// What one collection of Cost Explorer recommendations brought back.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub recommendations: Vec<CollectedRecommendation>,
    /// Organization collections: the 12-digit ids of every account of the organization.
    pub organization_account_ids: Vec<String>,
    pub calls: u32,
    /// The sanitised AWS failure that ended it.
    pub error: Option<String>,
}

/// Lazily connecting clients of the planner's dependencies, carrying its token.
#[derive(Clone)]
pub struct Clients {
    accounts: AccountsServiceClient<AuthChannel>,
    /// The accounts service for Cost Explorer collections, which page through whole
    /// organizations: a longer deadline than other calls.
    collector: AccountsServiceClient<AuthChannel>,
    executor: ExecutorServiceClient<AuthChannel>,
}

impl Clients {
    /// Returns clients of the configured services; nothing connects until the first call.
    pub fn new(config: &Config) -> ConfigResult<Self> {
        let accounts = secure_channel(
            &config.accounts_url,
            &config.internal_token,
            config.common.internal_call_timeout,
            config.common.grpc_tls.as_ref(),
        )?;
        let executor = secure_channel(
            &config.executor_url,
            &config.internal_token,
            config.common.internal_call_timeout,
            config.common.grpc_tls.as_ref(),
        )?;
        let collector = secure_channel(
            &config.accounts_url,
            &config.internal_token,
            config.collection_timeout,
            config.common.grpc_tls.as_ref(),
        )?;
        Ok(Self {
            accounts: AccountsServiceClient::new(accounts),
            collector: AccountsServiceClient::new(collector),
            executor: ExecutorServiceClient::new(executor),
        })
    }

    /// Looks up every account of `ids` in one call.
    pub async fn accounts_by_ids(&self, ids: &[Uuid]) -> PlannerResult<AccountsByIds> {
        if ids.is_empty() {
            return Ok(AccountsByIds {
                found: Vec::new(),
                not_found: Vec::new(),
            });
        }
        let request = accounts_pb::GetAccountsByIdsRequest {
            ids: ids.iter().map(Uuid::to_string).collect(),
        };
        let reply = self
            .accounts
            .clone()
            .get_accounts_by_ids(request)
            .await
            .map_err(|status| accounts_unavailable("get accounts by ids", &status))?
            .into_inner();
        let found = reply
            .accounts
            .into_iter()
            .map(account_ref)
            .collect::<PlannerResult<Vec<_>>>()?;
        let not_found = reply
            .not_found_ids
            .iter()
            .map(|id| {
                Uuid::parse_str(id).map_err(|_| {
                    tracing::error!("accounts service answered a malformed not-found id");
                    PlannerError::AccountsUnavailable
                })
            })
            .collect::<PlannerResult<Vec<_>>>()?;
        Ok(AccountsByIds { found, not_found })
    }

    /// Returns every enabled account of `providers` (none for no providers).
    pub async fn enabled_accounts(
        &self,
        providers: &BTreeSet<Provider>,
    ) -> PlannerResult<Vec<AccountRef>> {
        if providers.is_empty() {
            return Ok(Vec::new());
        }
        let accounts = self.list_enabled(providers.iter().copied()).await?;
        accounts.into_iter().map(account_ref).collect()
    }

    /// ListEnabledAccounts of `providers`, as the accounts service answers it.
    async fn list_enabled(
        &self,
        providers: impl IntoIterator<Item = Provider>,
    ) -> PlannerResult<Vec<accounts_pb::Account>> {
        let request = accounts_pb::ListEnabledAccountsRequest {
            providers: providers
                .into_iter()
                .map(|provider| provider.as_str().to_owned())
                .collect(),
        };
        let reply = self
            .accounts
            .clone()
            .list_enabled_accounts(request)
            .await
            .map_err(|status| accounts_unavailable("list enabled accounts", &status))?
            .into_inner();
        Ok(reply.accounts)
    }

    /// Returns every enabled AWS account with what a refresh needs to know of it.
    pub async fn collectable_accounts(&self) -> PlannerResult<Vec<CollectableAccount>> {
        self.list_enabled([Provider::Aws])
            .await?
            .into_iter()
            .map(|account| {
                let bastion_id = account
                    .aws_bastion_id
                    .as_deref()
                    .and_then(|id| Uuid::parse_str(id).ok());
                Ok(CollectableAccount {
                    is_org_root: account.aws_is_org_root,
                    bastion_id,
                    name: account.name.clone(),
                    external_id: account.external_id.clone(),
                    id: account_ref(account)?.id,
                })
            })
            .collect()
    }

    /// Asks the accounts service to collect Cost Explorer recommendations with one
    /// account's credentials (`organization`: for every member, from its root). An AWS
    /// failure comes back in [`Collection::error`]; the accounts service refusing the
    /// account (deleted, disabled) is reported the same way, so one account's problem
    /// never fails a whole refresh.
    pub async fn collect_recommendations(
        &self,
        account_id: Uuid,
        organization: bool,
        queries: &[Query],
        call_budget: u32,
    ) -> PlannerResult<Collection> {
        let request = accounts_pb::CollectRecommendationsRequest {
            account_id: account_id.to_string(),
            organization,
            queries: queries
                .iter()
                .map(|query| accounts_pb::RecommendationQuery {
                    service: query.service.name().to_owned(),
                    term: query.term,
                    payment: query.payment.clone(),
                })
                .collect(),
            call_budget,
        };
        let reply = match self
            .collector
            .clone()
            .collect_recommendations(request)
            .await
        {
            Ok(reply) => reply.into_inner(),
            Err(status)
                if matches!(
                    status.code(),
                    Code::NotFound | Code::FailedPrecondition | Code::InvalidArgument
                ) =>
            {
                return Ok(Collection {
                    recommendations: Vec::new(),
                    organization_account_ids: Vec::new(),
                    calls: 0,
                    error: Some(status.message().to_owned()),
                });
            }
            Err(status) => return Err(accounts_unavailable("collect recommendations", &status)),
        };
        let recommendations = reply
            .recommendations
            .into_iter()
            .filter_map(|detail| {
                let Some(service) = AwsService::from_name(&detail.service) else {
                    tracing::warn!(service = %detail.service, "accounts service collected an unknown service; skipped");
                    return None;
                };
                Some(CollectedRecommendation {
                    account_id: detail.aws_account_id,
                    service,
                    region: detail.region,
                    resource_type: detail.resource_type,
                    engine: detail.engine,
                    platform: detail.platform,
                    term: detail.term,
                    payment: detail.payment,
                    recommended_count: detail.recommended_count,
                    upfront_cost: detail.upfront_cost,
                    monthly_savings: detail.monthly_savings,
                    details: detail.details.map(details_from_wire).unwrap_or_default(),
                })
            })
            .collect();
        Ok(Collection {
            recommendations,
            organization_account_ids: reply.organization_account_ids,
            calls: reply.calls,
            error: reply.error,
        })
    }

    /// Returns what the target accounts bought since `since`, in the units sizing
    /// counts. A failure is "executor service unavailable": a sizing that cannot see
    /// past purchases could buy twice, so it never runs without them.
    pub async fn past_purchases(
        &self,
        account_ids: &[Uuid],
        since: DateTime<Utc>,
    ) -> PlannerResult<Vec<PastPurchase>> {
        let request = executor_pb::ListPurchaseHistoryRequest {
            account_ids: account_ids.iter().map(Uuid::to_string).collect(),
            provider: Some(Provider::Aws.as_str().to_owned()),
            start: Some(timestamp(since)),
            ..executor_pb::ListPurchaseHistoryRequest::default()
        };
        let reply = self
            .executor
            .clone()
            .list_purchase_history(request)
            .await
            .map_err(|status| {
                tracing::warn!(code = ?status.code(), detail = %status.message(), "executor could not list past purchases");
                PlannerError::ExecutorUnavailable
            })?
            .into_inner();
        reply.purchases.into_iter().map(past_purchase).collect()
    }

    /// Asks the executor to create the execution of `request`.
    pub async fn create_execution(
        &self,
        request: &ExecutionRequest,
    ) -> PlannerResult<CreatedExecution> {
        let reply = self
            .executor
            .clone()
            .create_execution(create_execution_request(request))
            .await
            .map_err(|status| executor_error("create execution", status))?
            .into_inner();
        let Some(execution) = reply.execution.as_ref() else {
            tracing::error!(plan_id = %request.plan_id, "executor created an execution but returned none");
            return Err(PlannerError::ExecutorUnavailable);
        };
        Ok(CreatedExecution {
            execution_id: execution.id.clone(),
            status: execution.status.clone(),
            created: reply.created,
            reply,
        })
    }

    /// Returns what the guardrails say about auto_purchase. A failure is "executor
    /// service unavailable": a guard that could not be checked never passes.
    pub async fn auto_purchase_rules(&self) -> PlannerResult<AutoPurchaseRules> {
        let guardrails = self
            .executor
            .clone()
            .get_guardrails(executor_pb::GetGuardrailsRequest {})
            .await
            .map_err(|status| {
                tracing::warn!(code = ?status.code(), detail = %status.message(), "executor could not read the guardrails");
                PlannerError::ExecutorUnavailable
            })?
            .into_inner();
        Ok(AutoPurchaseRules {
            window_limit: guardrails.max_window_commitment,
            require_different_approver: guardrails.require_different_approver,
        })
    }

    /// Hands an event of the planner's relay to the executor, which owns the channels:
    /// it writes the event to its outbox under the same id, so a repeat adds nothing.
    /// A failure is reported by its gRPC code only (the relay stores it and tries
    /// again later); the executor's message is logged.
    pub async fn raise_notification(&self, event: &Event) -> Result<(), RelayError> {
        let payload_json = serde_json::to_string(&event.data).map_err(|error| {
            tracing::error!(event_id = %event.id, %error, "notification payload does not serialize");
            RelayError::new("payload")
        })?;
        let request = executor_pb::RaiseNotificationRequest {
            event_id: event.id.to_string(),
            occurred_at: Some(timestamp(event.occurred_at)),
            plan_id: event.plan_id.map(|id| id.to_string()),
            account_ids: event.account_ids.iter().map(Uuid::to_string).collect(),
            payload_json,
        };
        match self.executor.clone().raise_notification(request).await {
            Ok(reply) => {
                tracing::debug!(
                    event_id = %event.id,
                    deliveries = reply.into_inner().deliveries,
                    "notification raised with the executor"
                );
                Ok(())
            }
            Err(status) => {
                // An outage is the relay's to report; a refusal is worth its message.
                if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) {
                    tracing::debug!(event_id = %event.id, code = ?status.code(), "executor did not take the notification");
                } else {
                    tracing::warn!(event_id = %event.id, code = ?status.code(), detail = %status.message(), "executor refused the notification");
                }
                Err(RelayError::new(format!("{:?}", status.code())))
            }
        }
    }

    /// Asks the executor whether the plan has a non-terminal execution. Any failure is
    /// "executor service unavailable": a guard that could not be checked never passes.
    pub async fn has_live_execution(&self, plan_id: Uuid) -> PlannerResult<Vec<String>> {
        let request = executor_pb::HasLiveExecutionRequest {
            plan_id: plan_id.to_string(),
        };
        let reply = self
            .executor
            .clone()
            .has_live_execution(request)
            .await
            .map_err(|status| {
                tracing::warn!(%plan_id, code = ?status.code(), detail = %status.message(), "executor could not check live executions");
                PlannerError::ExecutorUnavailable
            })?
            .into_inner();
        if reply.live && reply.execution_ids.is_empty() {
            return Ok(vec!["(unnamed)".to_owned()]);
        }
        Ok(if reply.live {
            reply.execution_ids
        } else {
            Vec::new()
        })
    }
}

/// Returns the CreateExecution request of a run: the proto form of [`ExecutionRequest`].
pub fn create_execution_request(request: &ExecutionRequest) -> executor_pb::CreateExecutionRequest {
    executor_pb::CreateExecutionRequest {
        plan_id: Some(request.plan_id.to_string()),
        step_number: request.step_number,
        scheduled_date: request.scheduled_date.map(timestamp),
        target_account_ids: request
            .target_account_ids
            .iter()
            .map(Uuid::to_string)
            .collect(),
        recommendations: request
            .recommendations
            .iter()
            .cloned()
            .map(Into::into)
            .collect(),
        creation_key: request.creation_key.clone(),
        idempotency_key: request.idempotency_key.clone(),
        request_hash: request.request_hash.clone(),
        auto_approve: request.auto_approve,
        source: request.source.as_str().to_owned(),
        actor: request.actor.clone(),
        actor_key_id: request.actor_key_id.clone(),
        dry_run: request.dry_run,
        max_commitment_per_run: request.max_commitment_per_run,
        sized_from: request.sized_from.map(timestamp),
    }
}

/// Returns a purchase in sizing's units: instances or nodes, and for Savings Plans the
/// hourly commitment times the count.
fn past_purchase(purchase: executor_pb::Purchase) -> PlannerResult<PastPurchase> {
    let malformed = |what: &str| {
        tracing::error!(what, "executor answered a malformed purchase");
        PlannerError::ExecutorUnavailable
    };
    let service = AwsService::from_name(&purchase.service).ok_or_else(|| malformed("service"))?;
    let account_id =
        Uuid::parse_str(&purchase.cloud_account_id).map_err(|_| malformed("cloud_account_id"))?;
    let plan_id = purchase
        .plan_id
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| malformed("plan_id"))?;
    let purchased_at = purchase
        .purchased_at
        .as_ref()
        .and_then(cudly_proto::convert::time)
        .ok_or_else(|| malformed("purchased_at"))?;
    let count = f64::from(purchase.count);
    let amount = match (service, purchase.hourly_commitment.as_deref()) {
        (AwsService::SavingsPlans, Some(hourly)) => {
            hourly
                .parse::<f64>()
                .map_err(|_| malformed("hourly_commitment"))?
                * count
        }
        _ => count,
    };
    Ok(PastPurchase {
        shape: Shape {
            account_id,
            service,
            region: purchase.region,
            resource_type: purchase.resource_type,
            engine: purchase.engine,
            platform: purchase.platform,
            term: purchase.term,
            payment: purchase.payment,
        },
        plan_id,
        amount,
        purchased_at,
    })
}

fn account_ref(account: accounts_pb::Account) -> PlannerResult<AccountRef> {
    let id = Uuid::parse_str(&account.id).map_err(|_| {
        tracing::error!("accounts service answered an account with a malformed id");
        PlannerError::AccountsUnavailable
    })?;
    Ok(AccountRef {
        id,
        name: account.name,
        provider: account.provider,
        external_id: account.external_id,
        enabled: account.enabled,
    })
}

fn accounts_unavailable(call: &'static str, status: &tonic::Status) -> PlannerError {
    tracing::warn!(call, code = ?status.code(), detail = %status.message(), "accounts service call failed");
    PlannerError::AccountsUnavailable
}

/// Maps a failed executor call: the executor's own verdicts on the request (bad input,
/// idempotency conflict, not found) pass through; anything saying it cannot serve
/// (down, timed out, not implemented, refusing our token) is "executor service
/// unavailable".
fn executor_error(call: &'static str, status: tonic::Status) -> PlannerError {
    match status.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange => PlannerError::Api(ApiError::from_status(&status)),
        Code::Internal | Code::Unknown | Code::DataLoss => PlannerError::Internal(format!(
            "executor failed on {call}: {:?} {}",
            status.code(),
            status.message()
        )),
        _ => {
            tracing::warn!(call, code = ?status.code(), detail = %status.message(), "executor service call failed");
            PlannerError::ExecutorUnavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::run::RunSource;
    use cudly_vocabulary::{RecommendationInput, validate_recommendations};

    fn request() -> ExecutionRequest {
        let recommendation = validate_recommendations(vec![RecommendationInput {
            provider: "aws".into(),
            service: "rds".into(),
            region: "us-east-1".into(),
            resource_type: "db.r6g.large".into(),
            count: 2,
            term: 1,
            payment: "all-upfront".into(),
            all_accounts: Some(true),
            ..RecommendationInput::default()
        }])
        .unwrap();
        ExecutionRequest {
            plan_id: Uuid::parse_str("6f1c1c6e-0000-4000-8000-000000000001").unwrap(),
            step_number: Some(3),
            scheduled_date: Some("2026-11-24T00:00:00Z".parse::<DateTime<Utc>>().unwrap()),
            target_account_ids: vec![
                Uuid::parse_str("6f1c1c6e-0000-4000-8000-00000000000a").unwrap(),
                Uuid::parse_str("6f1c1c6e-0000-4000-8000-00000000000b").unwrap(),
            ],
            recommendations: recommendation,
            creation_key: Some("plan:6f1c1c6e-0000-4000-8000-000000000001:step:3".into()),
            idempotency_key: None,
            request_hash: None,
            auto_approve: true,
            source: RunSource::Schedule,
            actor: "key:ops".into(),
            actor_key_id: Some("6f1c1c6e-0000-4000-8000-0000000000ee".into()),
            dry_run: false,
            max_commitment_per_run: Some(5000.0),
            sized_from: None,
        }
    }

    #[test]
    fn the_create_execution_request_carries_every_field_of_the_run() {
        let proto = create_execution_request(&request());
        assert_eq!(
            proto.plan_id.as_deref(),
            Some("6f1c1c6e-0000-4000-8000-000000000001")
        );
        assert_eq!(proto.step_number, Some(3));
        assert_eq!(
            proto.creation_key.as_deref(),
            Some("plan:6f1c1c6e-0000-4000-8000-000000000001:step:3")
        );
        assert_eq!(
            proto.target_account_ids,
            vec![
                "6f1c1c6e-0000-4000-8000-00000000000a",
                "6f1c1c6e-0000-4000-8000-00000000000b"
            ]
        );
        assert!(proto.auto_approve);
        assert_eq!(proto.source, "schedule");
        assert_eq!(proto.actor, "key:ops");
        assert_eq!(
            proto.actor_key_id.as_deref(),
            Some("6f1c1c6e-0000-4000-8000-0000000000ee")
        );
        assert_eq!(proto.max_commitment_per_run, Some(5000.0));
        assert!(!proto.dry_run);
        assert_eq!(proto.scheduled_date.unwrap().seconds, 1_795_478_400);
        assert_eq!(proto.recommendations.len(), 1);
        assert_eq!(proto.recommendations[0].count, 2);
        assert!(proto.recommendations[0].all_accounts);
        assert_eq!(
            proto.recommendations[0].details.as_ref().unwrap().multi_az,
            Some(false)
        );
        assert_eq!(proto.idempotency_key, None);
    }

    #[test]
    fn executor_verdicts_pass_through_and_outages_are_unavailable() {
        let conflict = ApiError::already_exists("idempotency key reused with another request");
        match executor_error("create", conflict.clone().into()) {
            PlannerError::Api(error) => assert_eq!(error, conflict),
            other => panic!("{other:?}"),
        }
        for status in [
            tonic::Status::unimplemented("Not yet implemented"),
            tonic::Status::unavailable("tcp connect error"),
            tonic::Status::deadline_exceeded("timeout"),
            tonic::Status::permission_denied("caller planner may not call this method"),
        ] {
            assert!(matches!(
                executor_error("create", status),
                PlannerError::ExecutorUnavailable
            ));
        }
    }
}
