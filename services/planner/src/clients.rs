//! The planner's clients of the accounts and executor services. Proto types stay here:
//! callers get domain values and [`PlannerError`]s; a dependency that cannot answer is
//! reported by role ("accounts service unavailable"), its detail logged.

use std::collections::BTreeSet;

use cudly_common::ApiError;
use cudly_common::config::ConfigResult;
use cudly_common::grpc::{AuthChannel, client_channel};
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
use crate::domain::run::ExecutionRequest;
use crate::error::{PlannerError, PlannerResult};
use cudly_vocabulary::Provider;

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

/// Lazily connecting clients of the planner's dependencies, carrying its token.
#[derive(Clone)]
pub struct Clients {
    accounts: AccountsServiceClient<AuthChannel>,
    executor: ExecutorServiceClient<AuthChannel>,
}

impl Clients {
    /// Returns clients of the configured services; nothing connects until the first call.
    pub fn new(config: &Config) -> ConfigResult<Self> {
        let accounts = client_channel(
            &config.accounts_url,
            &config.internal_token,
            config.common.internal_call_timeout,
        )?;
        let executor = client_channel(
            &config.executor_url,
            &config.internal_token,
            config.common.internal_call_timeout,
        )?;
        Ok(Self {
            accounts: AccountsServiceClient::new(accounts),
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
        let request = accounts_pb::ListEnabledAccountsRequest {
            providers: providers
                .iter()
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
        reply.accounts.into_iter().map(account_ref).collect()
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
    }
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
