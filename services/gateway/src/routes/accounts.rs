//! `/api/accounts`: cloud accounts (docs/design/API.md, Accounts). Every rule lives in the accounts
//! service; this module translates JSON to gRPC and back.
//!
//! Credentials are write-only: they travel from the request body into the gRPC
//! `Credentials` message untouched (values never logged, never echoed in an error) and
//! no reply carries them. A credential body is open (`{type, ...fields}`): the accounts
//! service rejects unknown keys itself, naming them.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::accounts::v1 as pb;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::convert::optional_time;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpError, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Returns the `/api/accounts` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account, delete_account))
        .routes(routes!(set_credentials))
}

/// The routes each of whose requests calls AWS (a credential test, a discovery): the
/// caller puts them behind the per-client AWS-check limit.
pub fn aws_check_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_credentials))
        .routes(routes!(discover_organization))
}

fn client(state: &AppState) -> AccountsServiceClient<cudly_common::grpc::AuthChannel> {
    AccountsServiceClient::new(state.clients.accounts.clone())
}

fn backend_error(status: tonic::Status) -> HttpError {
    grpc_error("accounts", status)
}

/// A cloud account as stored. Credentials never appear here; `credentials_configured`
/// says whether the ones the account needs are stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub contact_email: Option<String>,
    pub enabled: bool,
    /// aws | azure | gcp
    pub provider: String,
    /// 12-digit AWS account id, Azure subscription id or GCP project id.
    pub external_id: String,
    /// access_keys | role_arn | bastion | workload_identity_federation (AWS only)
    pub aws_auth_mode: Option<String>,
    pub aws_role_arn: Option<String>,
    pub aws_external_id: Option<String>,
    pub aws_bastion_id: Option<Uuid>,
    pub aws_is_org_root: bool,
    pub aws_web_identity_token_file: Option<String>,
    pub azure_subscription_id: Option<String>,
    pub azure_tenant_id: Option<String>,
    pub azure_client_id: Option<String>,
    pub gcp_project_id: Option<String>,
    pub gcp_client_email: Option<String>,
    pub credentials_configured: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::Account> for Account {
    fn from(account: pb::Account) -> Self {
        Self {
            id: account.id.parse().unwrap_or_default(),
            name: account.name,
            description: account.description,
            contact_email: account.contact_email,
            enabled: account.enabled,
            provider: account.provider,
            external_id: account.external_id,
            aws_auth_mode: account.aws_auth_mode,
            aws_role_arn: account.aws_role_arn,
            aws_external_id: account.aws_external_id,
            aws_bastion_id: account.aws_bastion_id.and_then(|id| id.parse().ok()),
            aws_is_org_root: account.aws_is_org_root,
            aws_web_identity_token_file: account.aws_web_identity_token_file,
            azure_subscription_id: account.azure_subscription_id,
            azure_tenant_id: account.azure_tenant_id,
            azure_client_id: account.azure_client_id,
            gcp_project_id: account.gcp_project_id,
            gcp_client_email: account.gcp_client_email,
            credentials_configured: account.credentials_configured,
            created_at: optional_time(account.created_at.as_ref()),
            updated_at: optional_time(account.updated_at.as_ref()),
        }
    }
}

/// Every account matching the filters, ordered by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<Account>,
}

/// The fields of an account, for POST (create) and PUT (full replacement). The
/// read-only fields of [`Account`] (id, timestamps, credentials_configured) are
/// accepted and ignored, so a client can send back what it read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    /// Required, at most 255 characters.
    pub name: String,
    pub description: Option<String>,
    pub contact_email: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// aws | azure | gcp; on PUT only accepted unchanged.
    pub provider: String,
    /// On PUT only accepted unchanged.
    pub external_id: String,
    /// AWS: default access_keys.
    pub aws_auth_mode: Option<String>,
    /// Required in role_arn, bastion and workload_identity_federation modes; its
    /// account must be external_id.
    pub aws_role_arn: Option<String>,
    pub aws_external_id: Option<String>,
    /// Bastion mode: an AWS account not itself in bastion mode.
    pub aws_bastion_id: Option<String>,
    /// Default false.
    pub aws_is_org_root: Option<bool>,
    pub aws_web_identity_token_file: Option<String>,
    pub azure_subscription_id: Option<String>,
    pub azure_tenant_id: Option<String>,
    pub azure_client_id: Option<String>,
    pub gcp_project_id: Option<String>,
    pub gcp_client_email: Option<String>,
    /// Create only: credentials written with the account (`{type?, ...fields}`); the
    /// type defaults to the one of the account's provider.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<CredentialFields>,
    /// Ignored (read-only).
    #[schema(value_type = Option<String>)]
    pub id: Option<serde_json::Value>,
    /// Ignored (read-only).
    #[schema(value_type = Option<bool>)]
    pub credentials_configured: Option<serde_json::Value>,
    /// Ignored (read-only).
    #[schema(value_type = Option<String>)]
    pub created_at: Option<serde_json::Value>,
    /// Ignored (read-only).
    #[schema(value_type = Option<String>)]
    pub updated_at: Option<serde_json::Value>,
}

/// A credential body as received (`{type?, ...fields}`): its `Debug` names the fields,
/// never their values, so no log or panic message of a request can show a secret.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct CredentialFields(pub serde_json::Map<String, serde_json::Value>);

impl std::fmt::Debug for CredentialFields {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_set()
            .entries(self.0.keys().map(|key| format!("{key}: [redacted]")))
            .finish()
    }
}

impl AccountBody {
    fn into_input(self) -> (pb::AccountInput, Option<CredentialFields>) {
        let input = pb::AccountInput {
            name: self.name,
            description: self.description,
            contact_email: self.contact_email,
            enabled: self.enabled,
            provider: self.provider,
            external_id: self.external_id,
            aws_auth_mode: self.aws_auth_mode,
            aws_role_arn: self.aws_role_arn,
            aws_external_id: self.aws_external_id,
            aws_bastion_id: self.aws_bastion_id,
            aws_is_org_root: self.aws_is_org_root,
            aws_web_identity_token_file: self.aws_web_identity_token_file,
            azure_subscription_id: self.azure_subscription_id,
            azure_tenant_id: self.azure_tenant_id,
            azure_client_id: self.azure_client_id,
            gcp_project_id: self.gcp_project_id,
            gcp_client_email: self.gcp_client_email,
        };
        (input, self.credentials)
    }
}

/// Turns an open credential body into the gRPC message: `type` apart, every other key
/// as text (a JSON value that is not a string, such as a GCP service account key
/// object, as its JSON text). Values are never inspected or echoed here.
/// The fields of the credential types (docs/design/DOMAIN.md); the accounts service checks which
/// belong to which type.
const KNOWN_CREDENTIAL_FIELDS: [&str; 4] = [
    "access_key_id",
    "secret_access_key",
    "client_secret",
    "service_account_json",
];

fn credentials_message(
    prefix: &str,
    CredentialFields(mut body): CredentialFields,
) -> Result<pb::Credentials, ApiError> {
    let credential_type = match body.remove("type") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text,
        Some(_) => {
            return Err(ApiError::invalid_field(
                &format!("{prefix}type"),
                "wrong type, expected a string",
            ));
        }
    };
    let mut fields = std::collections::HashMap::new();
    for (key, value) in body {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(text) => {
                fields.insert(key, text);
            }
            // A service account key may come as the JSON object itself.
            object @ serde_json::Value::Object(_) if key == "service_account_json" => {
                fields.insert(key, object.to_string());
            }
            _ => {
                // Name a known field; an unknown key may itself be a pasted secret.
                let field = if KNOWN_CREDENTIAL_FIELDS.contains(&key.as_str()) {
                    format!("{prefix}{key}")
                } else {
                    "credentials".to_owned()
                };
                return Err(ApiError::invalid_field(
                    &field,
                    "wrong type, expected a string",
                ));
            }
        }
    }
    Ok(pb::Credentials {
        r#type: credential_type,
        fields,
    })
}

/// Filters of the account list. Empty values mean "no filter".
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountsQuery {
    /// aws | azure | gcp
    pub provider: Option<String>,
    /// true | false
    pub enabled: Option<String>,
    /// Case-insensitive substring of the name or the external id.
    pub search: Option<String>,
}

/// The reply of a credential test: `ok` with the caller ARN STS reports, or the
/// failing step.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An organization discovery request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// The organization root account's id (alias `account_id`).
    #[serde(alias = "account_id")]
    pub org_root_account_id: String,
    /// Role assumed in the members; default CudlyPurchaser (a dedicated role).
    pub member_role_name: Option<String>,
}

/// One member account of the organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredAccount {
    pub id: Uuid,
    pub name: String,
    pub external_id: String,
    /// false: the account was already known and was skipped.
    pub created: bool,
}

/// What a discovery found and did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoverResult {
    /// Member accounts listed by AWS, the root's own account excluded.
    pub discovered: u32,
    pub created: u32,
    pub skipped: u32,
    pub accounts: Vec<DiscoveredAccount>,
}

/// Lists accounts, ordered by name.
#[utoipa::path(
    get,
    path = "/api/accounts",
    tag = "accounts",
    params(AccountsQuery),
    responses(
        (status = 200, description = "the matching accounts", body = AccountList),
        (status = 400, description = "invalid filter", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn list_accounts(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AccountsQuery>,
) -> HttpResult<ApiJson<AccountList>> {
    let present = |value: Option<String>| {
        value
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let enabled = match present(query.enabled).as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "enabled",
                "invalid value, expected true or false",
            )
            .into());
        }
    };
    let request = pb::ListAccountsRequest {
        provider: present(query.provider),
        enabled,
        search: present(query.search),
    };
    let reply = client(&state)
        .list_accounts(request)
        .await
        .map_err(backend_error)?
        .into_inner();
    Ok(ApiJson(AccountList {
        accounts: reply.accounts.into_iter().map(Account::from).collect(),
    }))
}

/// Creates an account, with optional inline credentials (invalid credentials create
/// nothing).
#[utoipa::path(
    post,
    path = "/api/accounts",
    tag = "accounts",
    request_body = AccountBody,
    responses(
        (status = 201, description = "the account", body = Account),
        (status = 400, description = "invalid field, role ARN, bastion or credentials", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 409, description = "an account with this provider and external_id exists", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn create_account(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<AccountBody>,
) -> HttpResult<(StatusCode, ApiJson<Account>)> {
    principal.require_admin()?;
    let (input, credentials) = body.into_input();
    let credentials = credentials
        .map(|body| credentials_message("credentials.", body))
        .transpose()?;
    let reply = client(&state)
        .create_account(pb::CreateAccountRequest {
            account: Some(input),
            credentials,
        })
        .await
        .map_err(backend_error)?
        .into_inner();
    tracing::info!(account_id = %reply.id, by = %principal.name, "account created through the api");
    Ok((StatusCode::CREATED, ApiJson(Account::from(reply))))
}

/// Returns one account.
#[utoipa::path(
    get,
    path = "/api/accounts/{id}",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "the account's id")),
    responses(
        (status = 200, description = "the account", body = Account),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn get_account(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<Account>> {
    let reply = client(&state)
        .get_account(pb::GetAccountRequest { id: id.to_string() })
        .await
        .map_err(backend_error)?
        .into_inner();
    Ok(ApiJson(Account::from(reply)))
}

/// Replaces an account's fields (the full account; read-only fields are ignored;
/// provider and external_id only accepted unchanged).
#[utoipa::path(
    put,
    path = "/api/accounts/{id}",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "the account's id")),
    request_body = AccountBody,
    responses(
        (status = 200, description = "the account", body = Account),
        (status = 400, description = "invalid field, or provider or external_id changed (nothing is written)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn update_account(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AccountBody>,
) -> HttpResult<ApiJson<Account>> {
    principal.require_admin()?;
    let (input, credentials) = body.into_input();
    if credentials.is_some() {
        return Err(ApiError::invalid_field(
            "credentials",
            "not accepted here, use POST /api/accounts/{id}/credentials",
        )
        .into());
    }
    let reply = client(&state)
        .update_account(pb::UpdateAccountRequest {
            id: id.to_string(),
            account: Some(input),
        })
        .await
        .map_err(backend_error)?
        .into_inner();
    tracing::info!(account_id = %id, by = %principal.name, "account updated through the api");
    Ok(ApiJson(Account::from(reply)))
}

/// Deletes an account and its credentials; refused while other accounts use it as
/// their bastion.
#[utoipa::path(
    delete,
    path = "/api/accounts/{id}",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "the account's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 409, description = "the account is a bastion; `dependents` names the accounts using it", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn delete_account(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    client(&state)
        .delete_account(pb::DeleteAccountRequest { id: id.to_string() })
        .await
        .map_err(backend_error)?;
    tracing::info!(account_id = %id, by = %principal.name, "account deleted through the api");
    Ok(StatusCode::NO_CONTENT)
}

/// Stores (replaces) an account's credentials, encrypted: `{type, ...fields}`
/// (aws_access_keys: access_key_id, secret_access_key; azure_client_secret:
/// client_secret; gcp_service_account: service_account_json).
#[utoipa::path(
    post,
    path = "/api/accounts/{id}/credentials",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "the account's id")),
    request_body(content = Object, description = "`{type, ...fields}`"),
    responses(
        (status = 204, description = "stored"),
        (status = 400, description = "unknown type, unknown or missing key (named, never its value)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn set_credentials(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CredentialFields>,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    let credentials = credentials_message("", body)?;
    client(&state)
        .set_credentials(pb::SetCredentialsRequest {
            account_id: id.to_string(),
            credentials: Some(credentials),
        })
        .await
        .map_err(backend_error)?;
    tracing::info!(account_id = %id, by = %principal.name, "account credentials set through the api");
    Ok(StatusCode::NO_CONTENT)
}

/// Tests an account's credentials through STS GetCallerIdentity. Always 200 for an
/// existing account: a failure is `{ok: false, error}` naming the failing step.
#[utoipa::path(
    post,
    path = "/api/accounts/{id}/test",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "the account's id")),
    responses(
        (status = 200, description = "the outcome", body = TestResult),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 503, description = "accounts service unavailable", body = ErrorBody),
    ),
)]
async fn test_credentials(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<TestResult>> {
    let reply = client(&state)
        .test_credentials(pb::TestCredentialsRequest {
            account_id: id.to_string(),
        })
        .await
        .map_err(backend_error)?
        .into_inner();
    Ok(ApiJson(TestResult {
        ok: reply.ok,
        caller_identity: reply.caller_identity,
        error: reply.error,
    }))
}

/// Lists an AWS organization's members through its root and creates the unknown ones,
/// disabled, in bastion mode through the root (admin).
#[utoipa::path(
    post,
    path = "/api/accounts/discover-org",
    tag = "accounts",
    request_body = DiscoverRequest,
    responses(
        (status = 200, description = "what was discovered and created", body = DiscoverResult),
        (status = 400, description = "the root is not an aws org root, or is in bastion mode", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such root account", body = ErrorBody),
        (status = 503, description = "accounts service or AWS unavailable", body = ErrorBody),
    ),
)]
async fn discover_organization(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<DiscoverRequest>,
) -> HttpResult<ApiJson<DiscoverResult>> {
    principal.require_admin()?;
    let reply = client(&state)
        .discover_organization(pb::DiscoverOrganizationRequest {
            org_root_account_id: request.org_root_account_id,
            member_role_name: request.member_role_name,
        })
        .await
        .map_err(backend_error)?
        .into_inner();
    tracing::info!(created = reply.created, by = %principal.name, "organization discovered through the api");
    Ok(ApiJson(DiscoverResult {
        discovered: reply.discovered,
        created: reply.created,
        skipped: reply.skipped,
        accounts: reply
            .accounts
            .into_iter()
            .map(|account| DiscoveredAccount {
                id: account.id.parse().unwrap_or_default(),
                name: account.name,
                external_id: account.external_id,
                created: account.created,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_bodies_keep_keys_and_turn_objects_into_json_text() {
        let body: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"type":"gcp_service_account","service_account_json":{"private_key":"k"},"empty":null}"#,
        )
        .unwrap();
        let message = credentials_message("", CredentialFields(body)).unwrap();
        assert_eq!(message.r#type, "gcp_service_account");
        assert_eq!(
            message.fields["service_account_json"],
            r#"{"private_key":"k"}"#
        );
        assert!(!message.fields.contains_key("empty"));
    }

    #[test]
    fn a_credential_type_that_is_not_text_is_refused_without_echo() {
        let body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"type":{"s3cr3t":1}}"#).unwrap();
        let error = credentials_message("credentials.", CredentialFields(body)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("credentials.type"));
        assert!(!error.message.contains("s3cr3t"));
    }

    #[test]
    fn a_credential_field_that_is_not_text_is_refused_naming_only_known_fields() {
        let body: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"type":"aws_access_keys","access_key_id":"AKIAEXAMPLE000000001","secret_access_key":7}"#,
        )
        .unwrap();
        let error = credentials_message("credentials.", CredentialFields(body)).unwrap_err();
        assert_eq!(
            error.field.as_deref(),
            Some("credentials.secret_access_key")
        );
        let body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"type":"aws_access_keys","pasted-s3cr3t":["x"]}"#).unwrap();
        let error = credentials_message("", CredentialFields(body)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("credentials"));
        assert!(!format!("{error:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_discovery_body_accepts_the_account_id_alias() {
        let request: DiscoverRequest = serde_json::from_str(r#"{"account_id":"x"}"#).unwrap();
        assert_eq!(request.org_root_account_id, "x");
    }

    #[test]
    fn an_account_body_prints_no_credential_value() {
        let body: AccountBody = serde_json::from_value(serde_json::json!({
            "name": "a", "provider": "aws", "external_id": "123456789012",
            "credentials": {"access_key_id": "AKIA-CANARY", "secret_access_key": "s3cr3t-canary"}
        }))
        .unwrap();
        let printed = format!("{body:?}");
        assert!(
            printed.contains("secret_access_key: [redacted]"),
            "{printed}"
        );
        assert!(
            !printed.contains("s3cr3t-canary") && !printed.contains("AKIA-CANARY"),
            "{printed}"
        );
    }
}
