//! The gRPC edge of the accounts service: proto types are converted to domain types here
//! and nowhere else, and each RPC checks its caller: only the executor may resolve
//! credentials, the planner may read accounts by id, list enabled ones and collect Cost
//! Explorer recommendations, the gateway may do everything else.

use std::sync::Arc;

use cudly_aws::session_policy::SessionScope;
use cudly_common::audit;
use cudly_common::caller_policy::{CallerPolicy, CallerTable};
use cudly_common::grpc::Caller;
use cudly_proto::accounts::v1 as pb;
use cudly_proto::accounts::v1::accounts_service_server::{AccountsService, AccountsServiceServer};
use cudly_proto::convert::{details_to_wire, timestamp};
use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use crate::collect::QueryInput;
use crate::config::Config;
use crate::domain::{Account, AccountDraft, AccountFilter, CredentialDraft, Provider};
use crate::error::AccountsError;
use crate::handover::Handover;
use crate::service::{Accounts, TestOutcome, parse_id};

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::accounts::v1::accounts_service_server::SERVICE_NAME;

const GATEWAY: &[Caller] = &[Caller::Gateway];
const PLANNER_READS: &[Caller] = &[Caller::Planner, Caller::Gateway];
const EXECUTOR: &[Caller] = &[Caller::Executor];
/// The executor names accounts in its notifications.
const READ_BY_IDS: &[Caller] = &[Caller::Planner, Caller::Gateway, Caller::Executor];
const PLANNER: &[Caller] = &[Caller::Planner];

/// Every RPC of this service with the callers allowed to call it, enforced by
/// [`CallerPolicy`] before any handler runs (docs/design/ARCHITECTURE.md "Who calls whom").
pub const CALLERS: CallerTable = &[
    ("CreateAccount", GATEWAY),
    ("GetAccount", GATEWAY),
    ("ListAccounts", GATEWAY),
    ("UpdateAccount", GATEWAY),
    ("DeleteAccount", GATEWAY),
    ("SetCredentials", GATEWAY),
    ("TestCredentials", GATEWAY),
    ("DiscoverOrganization", GATEWAY),
    ("GetAccountsByIds", READ_BY_IDS),
    ("ListEnabledAccounts", PLANNER_READS),
    ("ResolveCredentials", EXECUTOR),
    ("CollectRecommendations", PLANNER),
    ("ListAuditEvents", GATEWAY),
];

/// The service implementation.
pub struct AccountsGrpc {
    accounts: Arc<Accounts>,
}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, accounts: Arc<Accounts>) -> tonic::service::Routes {
    let service = AccountsServiceServer::new(AccountsGrpc { accounts });
    tonic::service::Routes::new(CallerPolicy::new(service, config.auth.clone(), CALLERS))
}

fn to_proto(account: Account) -> pb::Account {
    let input = account.input;
    pb::Account {
        id: account.id.to_string(),
        name: input.name,
        description: input.description,
        contact_email: input.contact_email,
        enabled: input.enabled,
        provider: input.provider.as_str().to_owned(),
        external_id: input.external_id,
        aws_auth_mode: input.aws_auth_mode.map(|mode| mode.as_str().to_owned()),
        aws_role_arn: input.aws_role_arn,
        aws_external_id: input.aws_external_id,
        aws_bastion_id: input.aws_bastion_id.map(|id| id.to_string()),
        aws_is_org_root: input.aws_is_org_root,
        aws_web_identity_token_file: input.aws_web_identity_token_file,
        azure_subscription_id: input.azure_subscription_id,
        azure_tenant_id: input.azure_tenant_id,
        azure_client_id: input.azure_client_id,
        gcp_project_id: input.gcp_project_id,
        gcp_client_email: input.gcp_client_email,
        credentials_configured: account.credentials_configured,
        created_at: Some(timestamp(account.created_at)),
        updated_at: Some(timestamp(account.updated_at)),
    }
}

fn draft_from_proto(input: Option<pb::AccountInput>) -> Result<AccountDraft, AccountsError> {
    let input = input.ok_or_else(|| AccountsError::field("account", "is required"))?;
    Ok(AccountDraft {
        name: input.name,
        description: input.description,
        contact_email: input.contact_email,
        enabled: input.enabled,
        provider: input.provider,
        external_id: input.external_id,
        aws_auth_mode: input.aws_auth_mode,
        aws_role_arn: input.aws_role_arn,
        aws_external_id: input.aws_external_id,
        aws_bastion_id: input.aws_bastion_id,
        aws_is_org_root: input.aws_is_org_root,
        aws_web_identity_token_file: input.aws_web_identity_token_file,
        azure_subscription_id: input.azure_subscription_id,
        azure_tenant_id: input.azure_tenant_id,
        azure_client_id: input.azure_client_id,
        gcp_project_id: input.gcp_project_id,
        gcp_client_email: input.gcp_client_email,
    })
}

/// Moves every credential value into a [`SecretString`] at once.
fn credentials_from_proto(credentials: pb::Credentials) -> CredentialDraft {
    CredentialDraft {
        credential_type: credentials.r#type,
        fields: credentials
            .fields
            .into_iter()
            .map(|(key, value)| (key, SecretString::from(value)))
            .collect(),
    }
}

fn parse_provider(field: &str, text: &str) -> Result<Provider, AccountsError> {
    Provider::parse(text.trim())
        .ok_or_else(|| AccountsError::field(field, "unknown provider, expected aws, azure or gcp"))
}

#[tonic::async_trait]
impl AccountsService for AccountsGrpc {
    #[tracing::instrument(name = "CreateAccount", skip_all)]
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let draft = draft_from_proto(request.account)?;
        let credentials = request.credentials.map(credentials_from_proto);
        let account = self.accounts.create(&actor, draft, credentials).await?;
        Ok(Response::new(to_proto(account)))
    }

    #[tracing::instrument(name = "GetAccount", skip_all, fields(account_id = %request.get_ref().id))]
    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let id = parse_id("id", &request.get_ref().id)?;
        let account = self.accounts.get(id).await?;
        Ok(Response::new(to_proto(account)))
    }

    #[tracing::instrument(name = "ListAccounts", skip_all)]
    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let request = request.into_inner();
        let filter = AccountFilter {
            provider: request
                .provider
                .as_deref()
                .map(|text| parse_provider("provider", text))
                .transpose()?,
            enabled: request.enabled,
            search: request
                .search
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty()),
        };
        let accounts = self.accounts.list(&filter).await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.into_iter().map(to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "UpdateAccount", skip_all, fields(account_id = %request.get_ref().id))]
    async fn update_account(
        &self,
        request: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let draft = draft_from_proto(request.account)?;
        let account = self.accounts.update(&actor, id, draft).await?;
        Ok(Response::new(to_proto(account)))
    }

    #[tracing::instrument(name = "DeleteAccount", skip_all, fields(account_id = %request.get_ref().id))]
    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let actor = audit::actor_of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.accounts.delete(&actor, id).await?;
        Ok(Response::new(pb::DeleteAccountResponse {}))
    }

    #[tracing::instrument(name = "SetCredentials", skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn set_credentials(
        &self,
        request: Request<pb::SetCredentialsRequest>,
    ) -> Result<Response<pb::SetCredentialsResponse>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id("account_id", &request.account_id)?;
        let credentials = request
            .credentials
            .map(credentials_from_proto)
            .ok_or_else(|| AccountsError::field("credentials", "is required"))?;
        self.accounts
            .set_credentials(&actor, id, credentials)
            .await?;
        Ok(Response::new(pb::SetCredentialsResponse {}))
    }

    #[tracing::instrument(name = "TestCredentials", skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn test_credentials(
        &self,
        request: Request<pb::TestCredentialsRequest>,
    ) -> Result<Response<pb::TestCredentialsResponse>, Status> {
        let id = parse_id("account_id", &request.get_ref().account_id)?;
        let reply = match self.accounts.test_credentials(id).await? {
            TestOutcome::Ok { caller_identity } => pb::TestCredentialsResponse {
                ok: true,
                caller_identity: Some(caller_identity),
                error: None,
            },
            TestOutcome::Failed { error } => pb::TestCredentialsResponse {
                ok: false,
                caller_identity: None,
                error: Some(error),
            },
        };
        Ok(Response::new(reply))
    }

    #[tracing::instrument(
        name = "DiscoverOrganization",
        skip_all,
        fields(root_id = %request.get_ref().org_root_account_id)
    )]
    async fn discover_organization(
        &self,
        request: Request<pb::DiscoverOrganizationRequest>,
    ) -> Result<Response<pb::DiscoverOrganizationResponse>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let root_id = parse_id("org_root_account_id", &request.org_root_account_id)?;
        let discovery = self
            .accounts
            .discover(&actor, root_id, request.member_role_name.as_deref())
            .await?;
        let count = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        Ok(Response::new(pb::DiscoverOrganizationResponse {
            discovered: count(discovery.discovered),
            created: count(discovery.created),
            skipped: count(discovery.skipped),
            accounts: discovery
                .accounts
                .into_iter()
                .map(|account| pb::DiscoveredAccount {
                    id: account.id.to_string(),
                    name: account.name,
                    external_id: account.external_id,
                    created: account.created,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(name = "GetAccountsByIds", skip_all, fields(count = request.get_ref().ids.len()))]
    async fn get_accounts_by_ids(
        &self,
        request: Request<pb::GetAccountsByIdsRequest>,
    ) -> Result<Response<pb::GetAccountsByIdsResponse>, Status> {
        let ids = request
            .get_ref()
            .ids
            .iter()
            .enumerate()
            .map(|(index, text)| parse_id(&format!("ids[{index}]"), text))
            .collect::<Result<Vec<_>, _>>()?;
        let (accounts, missing) = self.accounts.get_by_ids(&ids).await?;
        Ok(Response::new(pb::GetAccountsByIdsResponse {
            accounts: accounts.into_iter().map(to_proto).collect(),
            not_found_ids: missing.into_iter().map(|id| id.to_string()).collect(),
        }))
    }

    #[tracing::instrument(name = "ListEnabledAccounts", skip_all)]
    async fn list_enabled_accounts(
        &self,
        request: Request<pb::ListEnabledAccountsRequest>,
    ) -> Result<Response<pb::ListEnabledAccountsResponse>, Status> {
        let providers = request
            .get_ref()
            .providers
            .iter()
            .map(|text| parse_provider("providers", text))
            .collect::<Result<Vec<_>, _>>()?;
        let accounts = self.accounts.list_enabled(&providers).await?;
        Ok(Response::new(pb::ListEnabledAccountsResponse {
            accounts: accounts.into_iter().map(to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "ResolveCredentials", skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn resolve_credentials(
        &self,
        request: Request<pb::ResolveCredentialsRequest>,
    ) -> Result<Response<pb::ResolveCredentialsResponse>, Status> {
        let id = parse_id("account_id", &request.get_ref().account_id)?;
        let valid_for =
            chrono::TimeDelta::seconds(i64::from(request.get_ref().min_validity_seconds));
        let handover = handover_of(request.get_ref())?;
        let resolved = self
            .accounts
            .resolve_credentials(id, valid_for, &handover)
            .await?;
        let credentials = resolved.credentials;
        Ok(Response::new(pb::ResolveCredentialsResponse {
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key.expose_secret().to_owned(),
            session_token: credentials
                .session_token
                .as_ref()
                .map(|token| token.expose_secret().to_owned())
                .unwrap_or_default(),
            expiration: credentials.expiration.map(timestamp),
            external_id: resolved.account.input.external_id,
            provider: resolved.account.input.provider.as_str().to_owned(),
            enabled: resolved.account.input.enabled,
        }))
    }

    #[tracing::instrument(name = "ListAuditEvents", skip_all)]
    async fn list_audit_events(
        &self,
        request: Request<cudly_proto::audit::v1::ListAuditEventsRequest>,
    ) -> Result<Response<cudly_proto::audit::v1::ListAuditEventsResponse>, Status> {
        let events = audit::list_events(self.accounts.pool(), request.get_ref()).await?;
        Ok(Response::new(events))
    }

    #[tracing::instrument(name = "CollectRecommendations", skip_all, fields(account_id = %request.get_ref().account_id))]
    async fn collect_recommendations(
        &self,
        request: Request<pb::CollectRecommendationsRequest>,
    ) -> Result<Response<pb::CollectRecommendationsResponse>, Status> {
        let request = request.into_inner();
        let id = parse_id("account_id", &request.account_id)?;
        let queries = request
            .queries
            .into_iter()
            .map(|query| QueryInput {
                service: query.service,
                term: query.term,
                payment: query.payment,
            })
            .collect();
        let collection = self
            .accounts
            .collect_recommendations(id, request.organization, queries, request.call_budget)
            .await?;
        Ok(Response::new(pb::CollectRecommendationsResponse {
            recommendations: collection
                .recommendations
                .into_iter()
                .map(|detail| pb::CollectedRecommendation {
                    aws_account_id: detail.account_id,
                    service: detail.service.name().to_owned(),
                    region: detail.region,
                    resource_type: detail.resource_type,
                    engine: detail.engine,
                    platform: detail.platform,
                    term: detail.term,
                    payment: detail.payment,
                    recommended_count: detail.recommended_count,
                    upfront_cost: detail.upfront_cost,
                    monthly_savings: detail.monthly_savings,
                    details: Some(details_to_wire(detail.details)),
                })
                .collect(),
            organization_account_ids: collection.organization_account_ids,
            calls: collection.calls,
            error: collection.error,
        }))
    }
}

/// Reads what a session handed to the executor is for: it is never handed out without
/// a scope, and a purchase session always names its execution.
fn handover_of(request: &pb::ResolveCredentialsRequest) -> Result<Handover, AccountsError> {
    let scope = match request.scope.as_str() {
        "quote" => SessionScope::Quote,
        "dry_run" => SessionScope::DryRun,
        "purchase" => SessionScope::Purchase,
        _ => {
            return Err(AccountsError::field(
                "scope",
                "must be quote, dry_run or purchase",
            ));
        }
    };
    let execution_id = (!request.execution_id.is_empty())
        .then(|| parse_id("execution_id", &request.execution_id))
        .transpose()?;
    if scope == SessionScope::Purchase && execution_id.is_none() {
        return Err(AccountsError::field(
            "execution_id",
            "is required for a purchase session",
        ));
    }
    let approved_by = Some(request.approved_by.trim())
        .filter(|approver| !approver.is_empty())
        .map(str::to_owned);
    Ok(Handover {
        scope,
        execution_id,
        approved_by,
    })
}
