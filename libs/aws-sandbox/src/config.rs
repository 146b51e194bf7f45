//! Configuration: the accounts, keys and roles the sandbox knows, and where it listens
//! and persists. The same types are the JSON bodies of the control API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{SandboxError, SandboxResult};

/// Role every organization member gets, trusted by the organization root, unless the
/// member's own configuration defines a role of that name.
pub const ORGANIZATION_ACCESS_ROLE: &str = "OrganizationAccountAccessRole";

/// The dedicated role CUDly's discovery assumes in members by default (README, "IAM"):
/// every member gets it too, trusted by the root, like an operator's StackSet would.
pub const CUDLY_MEMBER_ROLE: &str = "CudlyPurchaser";

/// How the sandbox starts. `Default` binds 127.0.0.1:0 with no accounts and no
/// persistence.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Address to bind; `None` means 127.0.0.1 on a free port.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Accounts known at start (and again after each reset).
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    /// A JSON file of accounts (`{"accounts": [...]}`), read at start and at each reset.
    #[serde(default)]
    pub config_path: Option<PathBuf>,
    /// Where state is persisted (written atomically after each change) and reloaded
    /// from at start.
    #[serde(default)]
    pub state_path: Option<PathBuf>,
}

impl SandboxConfig {
    /// Returns the config with one more account.
    pub fn with_account(mut self, account: AccountSpec) -> Self {
        self.accounts.push(account);
        self
    }

    /// Returns the config persisting its state to `path`.
    pub fn with_state_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_path = Some(path.into());
        self
    }

    /// Returns the config binding `addr`.
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Returns the accounts of the config plus those of `config_path`, the file winning
    /// on equal account ids.
    pub(crate) fn load_accounts(&self) -> SandboxResult<Vec<AccountSpec>> {
        let mut accounts = self.accounts.clone();
        if let Some(path) = &self.config_path {
            for account in read_config_file(path)?.accounts {
                accounts.retain(|existing| existing.account_id != account.account_id);
                accounts.push(account);
            }
        }
        for account in &accounts {
            account.validate()?;
        }
        Ok(accounts)
    }
}

/// The file format of `--config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
}

fn read_config_file(path: &Path) -> SandboxResult<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|source| SandboxError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SandboxError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// One AWS account: its long-lived keys, its roles and, for an organization root, its
/// members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSpec {
    pub account_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub access_keys: Vec<AccessKeySpec>,
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    /// Present on an organization root: the accounts ListAccounts returns besides the
    /// root itself.
    #[serde(default)]
    pub organization_members: Option<Vec<OrgMemberSpec>>,
}

impl AccountSpec {
    /// Returns an account with no keys and no roles.
    pub fn new(account_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            name: None,
            access_keys: Vec::new(),
            roles: Vec::new(),
            organization_members: None,
        }
    }

    /// Returns the account with a display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Returns the account with one more enabled long-lived key.
    pub fn with_access_key(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.access_keys
            .push(AccessKeySpec::new(access_key_id, secret_access_key));
        self
    }

    /// Returns the account with one more role.
    pub fn with_role(mut self, role: RoleSpec) -> Self {
        self.roles.push(role);
        self
    }

    /// Returns the account as an organization root with one more member.
    pub fn with_member(mut self, account_id: impl Into<String>, name: impl Into<String>) -> Self {
        self.organization_members
            .get_or_insert_with(Vec::new)
            .push(OrgMemberSpec {
                account_id: account_id.into(),
                name: name.into(),
            });
        self
    }

    pub(crate) fn validate(&self) -> SandboxResult<()> {
        if self.account_id.is_empty() {
            return Err(SandboxError::InvalidAccount("account_id is empty".into()));
        }
        if let Some(key) = self
            .access_keys
            .iter()
            .find(|key| key.access_key_id.is_empty())
        {
            return Err(SandboxError::InvalidAccount(format!(
                "account {} has an empty access key id (secret of length {})",
                self.account_id,
                key.secret_access_key.len()
            )));
        }
        if self.roles.iter().any(|role| role.role_name.is_empty()) {
            return Err(SandboxError::InvalidAccount(format!(
                "account {} has a role with an empty name",
                self.account_id
            )));
        }
        Ok(())
    }

    /// Returns the display name, the account id when none is configured.
    pub(crate) fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.account_id.clone())
    }
}

/// A long-lived access key (`AKIA...`) of an account.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessKeySpec {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A disabled key is refused with InvalidClientTokenId.
    #[serde(default)]
    pub disabled: bool,
}

impl AccessKeySpec {
    /// Returns an enabled key.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            disabled: false,
        }
    }
}

// The secret is never printed, so a test log or a panic message cannot leak it.
impl std::fmt::Debug for AccessKeySpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccessKeySpec")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// An IAM role that STS can assume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleSpec {
    pub role_name: String,
    /// When set, AssumeRole must pass exactly this ExternalId.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Accounts whose principals may assume the role.
    #[serde(default)]
    pub trusted_account_ids: Vec<String>,
    /// Whether AssumeRoleWithWebIdentity may assume the role.
    #[serde(default)]
    pub web_identity: bool,
    /// Lifetime of the session credentials; 3600 when absent.
    #[serde(default)]
    pub session_seconds: Option<u64>,
}

impl RoleSpec {
    /// Returns a role trusted by `trusted_account_id`, with no external id.
    pub fn new(role_name: impl Into<String>, trusted_account_id: impl Into<String>) -> Self {
        Self {
            role_name: role_name.into(),
            external_id: None,
            trusted_account_ids: vec![trusted_account_id.into()],
            web_identity: false,
            session_seconds: None,
        }
    }

    /// Returns the role requiring `external_id`.
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Returns the role also trusted by `account_id`.
    pub fn trusting(mut self, account_id: impl Into<String>) -> Self {
        self.trusted_account_ids.push(account_id.into());
        self
    }

    /// Returns the role assumable with a web identity token.
    pub fn with_web_identity(mut self) -> Self {
        self.web_identity = true;
        self
    }

    /// Returns the role whose sessions last `seconds`.
    pub fn with_session_seconds(mut self, seconds: u64) -> Self {
        self.session_seconds = Some(seconds);
        self
    }
}

/// A member account of an organization, as listed under its root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgMemberSpec {
    pub account_id: String,
    pub name: String,
}
