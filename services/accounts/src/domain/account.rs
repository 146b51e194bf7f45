//! Cloud accounts: providers, AWS authentication modes, credential types, and the
//! account as stored and as written.

use chrono::{DateTime, Utc};
pub use cudly_vocabulary::Provider;
use uuid::Uuid;

/// How the accounts service obtains session credentials for an AWS account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsAuthMode {
    /// GetSessionToken with the stored long-lived keys.
    AccessKeys,
    /// AssumeRole from the service's own ambient credentials.
    RoleArn,
    /// AssumeRole from the session credentials of another account (one hop).
    Bastion,
    /// AssumeRoleWithWebIdentity with the token of a file.
    WorkloadIdentityFederation,
}

impl AwsAuthMode {
    pub const ALL: [AwsAuthMode; 4] = [
        AwsAuthMode::AccessKeys,
        AwsAuthMode::RoleArn,
        AwsAuthMode::Bastion,
        AwsAuthMode::WorkloadIdentityFederation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AwsAuthMode::AccessKeys => "access_keys",
            AwsAuthMode::RoleArn => "role_arn",
            AwsAuthMode::Bastion => "bastion",
            AwsAuthMode::WorkloadIdentityFederation => "workload_identity_federation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == text)
    }

    /// Returns true for the modes that assume a role (and so need aws_role_arn).
    pub fn needs_role_arn(self) -> bool {
        !matches!(self, AwsAuthMode::AccessKeys)
    }
}

/// The kinds of stored credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialType {
    AwsAccessKeys,
    AzureClientSecret,
    GcpServiceAccount,
}

impl CredentialType {
    pub const ALL: [CredentialType; 3] = [
        CredentialType::AwsAccessKeys,
        CredentialType::AzureClientSecret,
        CredentialType::GcpServiceAccount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::AwsAccessKeys => "aws_access_keys",
            CredentialType::AzureClientSecret => "azure_client_secret",
            CredentialType::GcpServiceAccount => "gcp_service_account",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Returns the type that accounts of `provider` store.
    pub fn of(provider: Provider) -> Self {
        match provider {
            Provider::Aws => CredentialType::AwsAccessKeys,
            Provider::Azure => CredentialType::AzureClientSecret,
            Provider::Gcp => CredentialType::GcpServiceAccount,
        }
    }

    /// Returns the provider whose accounts store this type.
    pub fn provider(self) -> Provider {
        match self {
            CredentialType::AwsAccessKeys => Provider::Aws,
            CredentialType::AzureClientSecret => Provider::Azure,
            CredentialType::GcpServiceAccount => Provider::Gcp,
        }
    }
}

/// An account's writable fields as received, before validation (strings as sent).
#[derive(Debug, Clone, Default)]
pub struct AccountDraft {
    pub name: String,
    pub description: Option<String>,
    pub contact_email: Option<String>,
    pub enabled: Option<bool>,
    pub provider: String,
    pub external_id: String,
    pub aws_auth_mode: Option<String>,
    pub aws_role_arn: Option<String>,
    pub aws_external_id: Option<String>,
    pub aws_bastion_id: Option<String>,
    pub aws_is_org_root: Option<bool>,
    pub aws_web_identity_token_file: Option<String>,
    pub azure_subscription_id: Option<String>,
    pub azure_tenant_id: Option<String>,
    pub azure_client_id: Option<String>,
    pub gcp_project_id: Option<String>,
    pub gcp_client_email: Option<String>,
}

/// An account's writable fields, validated (except the rules that need the database:
/// uniqueness and the bastion rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInput {
    pub name: String,
    pub description: Option<String>,
    pub contact_email: Option<String>,
    pub enabled: bool,
    pub provider: Provider,
    pub external_id: String,
    /// Set for AWS accounts only.
    pub aws_auth_mode: Option<AwsAuthMode>,
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
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub input: AccountInput,
    /// Derived: credentials of the type the account needs are stored.
    pub credentials_configured: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every write to the account or its credentials; cached session
    /// credentials are valid only for the revision they were made from.
    pub revision: i64,
}

impl Account {
    pub fn name(&self) -> &str {
        &self.input.name
    }

    pub fn provider(&self) -> Provider {
        self.input.provider
    }

    /// Returns the credential type this account needs stored, if any: AWS accounts in
    /// access_keys mode, and Azure and GCP accounts.
    pub fn required_credential_type(&self) -> Option<CredentialType> {
        required_credential_type(self.input.provider, self.input.aws_auth_mode)
    }
}

/// Returns the credential type an account of `provider` in `mode` needs stored.
pub fn required_credential_type(
    provider: Provider,
    mode: Option<AwsAuthMode>,
) -> Option<CredentialType> {
    match provider {
        Provider::Aws => {
            (mode == Some(AwsAuthMode::AccessKeys)).then_some(CredentialType::AwsAccessKeys)
        }
        Provider::Azure => Some(CredentialType::AzureClientSecret),
        Provider::Gcp => Some(CredentialType::GcpServiceAccount),
    }
}

/// Returns the STS session name for an account: `cudly-<first 8 chars of its uuid>`.
pub fn session_name(account_id: Uuid) -> String {
    let text = account_id.hyphenated().to_string();
    format!("cudly-{}", &text[..8])
}

/// Filters of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    pub provider: Option<Provider>,
    pub enabled: Option<bool>,
    /// Case-insensitive substring of name or external_id.
    pub search: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_use_the_first_eight_characters_of_the_uuid() {
        let id = Uuid::parse_str("6f1c2a3b-1111-4222-8333-944455556666").unwrap();
        assert_eq!(session_name(id), "cudly-6f1c2a3b");
    }

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
        for mode in AwsAuthMode::ALL {
            assert_eq!(AwsAuthMode::parse(mode.as_str()), Some(mode));
        }
        for kind in CredentialType::ALL {
            assert_eq!(CredentialType::parse(kind.as_str()), Some(kind));
            assert_eq!(CredentialType::of(kind.provider()), kind);
        }
    }

    #[test]
    fn only_modes_that_store_keys_need_credentials() {
        assert_eq!(
            required_credential_type(Provider::Aws, Some(AwsAuthMode::AccessKeys)),
            Some(CredentialType::AwsAccessKeys)
        );
        assert_eq!(
            required_credential_type(Provider::Aws, Some(AwsAuthMode::RoleArn)),
            None
        );
        assert_eq!(
            required_credential_type(Provider::Gcp, None),
            Some(CredentialType::GcpServiceAccount)
        );
    }
}
