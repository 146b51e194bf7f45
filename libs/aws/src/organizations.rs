//! Organizations: the accounts of an organization, listed through its management (root)
//! account.

use aws_sdk_organizations::Client;

use crate::error::AwsFailure;
use crate::sdk::{AwsSettings, SessionCredentials, config_with_credentials};

/// Pages read at most, so a misbehaving endpoint that keeps answering a next token
/// cannot keep a caller busy forever (20 accounts a page: 100,000 accounts).
const MAX_PAGES: usize = 5_000;

/// An account as ListAccounts reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationAccount {
    /// The 12-digit account id.
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, ... as AWS reports it, if it does.
    pub status: Option<String>,
}

/// An Organizations client bound to one identity (the organization root's credentials).
#[derive(Clone, Debug)]
pub struct Organizations {
    client: Client,
}

impl Organizations {
    /// Returns a client signing with exactly `credentials`.
    pub fn with_credentials(settings: &AwsSettings, credentials: &SessionCredentials) -> Self {
        let config = config_with_credentials(settings, credentials, &settings.default_region);
        Self {
            client: Client::new(&config),
        }
    }

    /// ListAccounts, every page: all accounts of the organization, the caller's own
    /// (management) account included, in the order AWS lists them.
    pub async fn list_accounts(&self) -> Result<Vec<OrganizationAccount>, AwsFailure> {
        const OPERATION: &str = "ListAccounts";
        let mut accounts = Vec::new();
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let output = self
                .client
                .list_accounts()
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|error| AwsFailure::from_sdk(OPERATION, &error))?;
            for account in output.accounts() {
                let Some(id) = account.id() else {
                    continue;
                };
                accounts.push(OrganizationAccount {
                    id: id.to_owned(),
                    name: account.name().unwrap_or_default().to_owned(),
                    status: account.status().map(|status| status.as_str().to_owned()),
                });
            }
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(accounts),
            }
        }
        Err(AwsFailure::malformed_reply(OPERATION, "last page"))
    }
}
