//! Credential resolution (docs/design/DOMAIN.md, Cloud accounts): every AWS mode ends in temporary
//! session credentials, cached until shortly before they expire.
//!
//! - access_keys: GetSessionToken with the stored keys;
//! - role_arn: AssumeRole (ExternalId when set, session name `cudly-<8 chars of the
//!   uuid>`) from the service's own ambient credentials;
//! - bastion: the bastion's own session credentials (one hop), then AssumeRole into the
//!   target from them;
//! - workload_identity_federation: AssumeRoleWithWebIdentity with the token file's token.
//!
//! A session handed to the executor ([`Handover`]) is narrowed at its last step: a
//! session policy, 15 minutes, tags naming the execution and approver (access keys:
//! GetFederationToken instead of GetSessionToken). The service's own uses (credential
//! tests, discovery, Cost Explorer) keep unscoped sessions that never leave it.
//!
//! A cache entry is valid only for the revisions of the account and of its bastion it
//! was made from. Every write bumps the revision, so a write through any replica of
//! this service invalidates the entries of every replica; writes through this replica
//! also drop the entries at once ([`Resolver::forget`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use cudly_aws::error::AwsFailure;
use cudly_aws::sdk::{AwsSettings, SessionCredentials};
use cudly_aws::sts::{AssumeRole, Sts};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::crypto::CredentialCipher;
use crate::domain::{
    Account, AwsAuthMode, CredentialType, Provider, ValidCredentials, session_name,
};
use crate::error::AccountsError;
use crate::handover::{HANDOVER_DURATION, Handover};
use crate::repo;

/// Lifetime asked of STS for every session.
const SESSION_DURATION: Duration = Duration::from_secs(3600);
/// A cached session is replaced when less than this is left of it.
const REFRESH_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// Longest web identity token read from a file.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Why an account's session credentials could not be made. The messages name the
/// failing step and never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The account's configuration forbids it: no credentials, provider not
    /// supported yet, a bad token file, a broken bastion.
    #[error("{0}")]
    Refused(String),
    /// An AWS call failed (sanitised text, the operation named).
    #[error("{0}")]
    Aws(String),
    /// The database or the stored blob failed.
    #[error(transparent)]
    Storage(#[from] AccountsError),
}

impl ResolveError {
    /// Returns the error of a failed STS call: STS refusing the call itself (a 4xx
    /// that is not throttling: access denied, a wrong external id, keys it does not
    /// know) is a refusal that asking again does not change; anything else (throttling,
    /// a 5xx, a timeout, a connection failure) is AWS being unavailable for now.
    fn from_sts(failure: AwsFailure) -> Self {
        if failure.is_refusal() {
            ResolveError::Refused(failure.to_string())
        } else {
            ResolveError::Aws(failure.to_string())
        }
    }

    fn in_bastion(self, bastion: &Account) -> Self {
        let prefix = format!("bastion account {} ({})", bastion.name(), bastion.id);
        match self {
            ResolveError::Refused(message) => ResolveError::Refused(format!("{prefix}: {message}")),
            ResolveError::Aws(message) => ResolveError::Aws(format!("{prefix}: {message}")),
            storage @ ResolveError::Storage(_) => storage,
        }
    }

    /// Returns the error of an RPC that needed the credentials: a refusal (of the
    /// configuration or of STS) is FAILED_PRECONDITION, AWS unavailable is UNAVAILABLE.
    pub fn into_accounts_error(self) -> AccountsError {
        match self {
            ResolveError::Refused(message) => AccountsError::FailedPrecondition(message),
            ResolveError::Aws(message) => AccountsError::Unavailable(message),
            ResolveError::Storage(error) => error,
        }
    }
}

/// Whether a resolution may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// A cached session still valid for the longer of this and the refresh margin.
    Use { valid_for: chrono::TimeDelta },
    /// Always ask STS (credential tests), then refresh the cache.
    Bypass,
}

/// The revisions a cache entry was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    revision: i64,
    bastion: Option<(Uuid, i64)>,
}

struct CacheEntry {
    credentials: SessionCredentials,
    stamp: Stamp,
}

/// A cached session: the account's own, or one handed over for an execution.
type CacheKey = (Uuid, Option<Handover>);

/// Resolves and caches session credentials.
pub struct Resolver {
    pool: PgPool,
    cipher: CredentialCipher,
    settings: AwsSettings,
    /// Explicit credentials of the service itself; `None`: the default provider chain.
    ambient_credentials: Option<SessionCredentials>,
    ambient: OnceCell<Sts>,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl Resolver {
    pub fn new(
        pool: PgPool,
        cipher: CredentialCipher,
        settings: AwsSettings,
        ambient_credentials: Option<SessionCredentials>,
    ) -> Self {
        Self {
            pool,
            cipher,
            settings,
            ambient_credentials,
            ambient: OnceCell::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the AWS settings (endpoint, region, timeouts) of this service.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// Returns an STS client signing with `credentials`.
    pub fn sts_with(&self, credentials: &SessionCredentials) -> Sts {
        Sts::with_credentials(&self.settings, credentials)
    }

    /// Drops the cache entries of `account_id` and of the accounts using it as bastion.
    pub fn forget(&self, account_id: Uuid) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.retain(|(id, _), entry| {
            *id != account_id
                && entry.stamp.bastion.map(|(bastion_id, _)| bastion_id) != Some(account_id)
        });
    }

    /// Returns session credentials for `account` (an AWS account; the caller checked
    /// that it exists and, where it matters, that it is enabled), narrowed for
    /// `handover` when they leave this service.
    pub async fn resolve(
        &self,
        account: &Account,
        cache_use: CacheUse,
        handover: Option<&Handover>,
    ) -> Result<SessionCredentials, ResolveError> {
        let mode = aws_mode(account)?;
        let key = (account.id, handover.cloned());
        if mode != AwsAuthMode::Bastion {
            let stamp = Stamp {
                revision: account.revision,
                bastion: None,
            };
            return self
                .cached_or_fresh(
                    key,
                    stamp,
                    cache_use,
                    self.resolve_direct(account, mode, handover),
                )
                .await;
        }
        let bastion = self.load_bastion(account).await?;
        let stamp = Stamp {
            revision: account.revision,
            bastion: Some((bastion.id, bastion.revision)),
        };
        let hop = async {
            let bastion_mode = aws_mode(&bastion).map_err(|error| error.in_bastion(&bastion))?;
            let bastion_stamp = Stamp {
                revision: bastion.revision,
                bastion: None,
            };
            // The bastion's own session only assumes the target's role: never handed over.
            let bastion_credentials = self
                .cached_or_fresh(
                    (bastion.id, None),
                    bastion_stamp,
                    cache_use,
                    self.resolve_direct(&bastion, bastion_mode, None),
                )
                .await
                .map_err(|error| error.in_bastion(&bastion))?;
            self.assume_role(account, &self.sts_with(&bastion_credentials), handover)
                .await
        };
        self.cached_or_fresh(key, stamp, cache_use, hop).await
    }

    /// Loads the bastion of a bastion-mode account, refusing what the write rules
    /// should have prevented (a missing bastion, a chain).
    async fn load_bastion(&self, account: &Account) -> Result<Account, ResolveError> {
        let bastion_id = account.input.aws_bastion_id.ok_or_else(|| {
            ResolveError::Refused("bastion mode without a bastion account".to_owned())
        })?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(AccountsError::database("acquire connection"))?;
        let bastion = repo::get_account(&mut conn, bastion_id)
            .await
            .map_err(AccountsError::database("load bastion"))?
            .ok_or_else(|| {
                ResolveError::Refused("the bastion account no longer exists".to_owned())
            })?;
        if bastion.input.aws_auth_mode == Some(AwsAuthMode::Bastion) {
            return Err(ResolveError::Refused(
                "bastion chaining is not supported".to_owned(),
            ));
        }
        Ok(bastion)
    }

    async fn cached_or_fresh(
        &self,
        key: CacheKey,
        stamp: Stamp,
        cache_use: CacheUse,
        fresh: impl Future<Output = Result<SessionCredentials, ResolveError>>,
    ) -> Result<SessionCredentials, ResolveError> {
        if let CacheUse::Use { valid_for } = cache_use
            && let Some(credentials) = self.cached(&key, stamp, valid_for)
        {
            return Ok(credentials);
        }
        let credentials = fresh.await?;
        if credentials.expiration.is_some() {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.insert(
                key,
                CacheEntry {
                    credentials: credentials.clone(),
                    stamp,
                },
            );
        }
        Ok(credentials)
    }

    fn cached(
        &self,
        key: &CacheKey,
        stamp: Stamp,
        valid_for: chrono::TimeDelta,
    ) -> Option<SessionCredentials> {
        let margin = valid_for.max(REFRESH_MARGIN);
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = cache.get(key)?;
        let fresh_enough = entry
            .credentials
            .expiration
            .is_some_and(|expiration| expiration - Utc::now() > margin);
        (entry.stamp == stamp && fresh_enough).then(|| entry.credentials.clone())
    }

    /// Resolves an account that is not in bastion mode.
    async fn resolve_direct(
        &self,
        account: &Account,
        mode: AwsAuthMode,
        handover: Option<&Handover>,
    ) -> Result<SessionCredentials, ResolveError> {
        match mode {
            AwsAuthMode::AccessKeys => {
                let sts = self.sts_with(&self.stored_access_keys(account).await?);
                match handover {
                    // GetSessionToken takes no policy; a federated user's session does.
                    Some(handover) => {
                        sts.get_federation_token(
                            &handover.federation_name(),
                            &handover.scoping(),
                            HANDOVER_DURATION,
                        )
                        .await
                    }
                    None => sts.get_session_token(SESSION_DURATION).await,
                }
                .map_err(ResolveError::from_sts)
            }
            AwsAuthMode::RoleArn => {
                let ambient = self.ambient().await;
                self.assume_role(account, ambient, handover).await
            }
            AwsAuthMode::WorkloadIdentityFederation => {
                let token = read_token_file(account).await?;
                let role_arn = role_arn(account)?;
                let policy = handover.map(|handover| handover.scoping().policy);
                self.ambient()
                    .await
                    .assume_role_with_web_identity(
                        role_arn,
                        &session_name(account.id),
                        &token,
                        session_duration(handover),
                        policy.as_deref(),
                    )
                    .await
                    .map_err(ResolveError::from_sts)
            }
            AwsAuthMode::Bastion => Err(ResolveError::Refused(
                "bastion chaining is not supported".to_owned(),
            )),
        }
    }

    async fn assume_role(
        &self,
        account: &Account,
        sts: &Sts,
        handover: Option<&Handover>,
    ) -> Result<SessionCredentials, ResolveError> {
        let role_arn = role_arn(account)?;
        let session = session_name(account.id);
        let scoping = handover.map(Handover::scoping);
        sts.assume_role(AssumeRole {
            role_arn,
            external_id: account.input.aws_external_id.as_deref(),
            session_name: &session,
            duration: session_duration(handover),
            scoping: scoping.as_ref(),
        })
        .await
        .map_err(ResolveError::from_sts)
    }

    async fn ambient(&self) -> &Sts {
        self.ambient
            .get_or_init(|| async {
                match &self.ambient_credentials {
                    Some(credentials) => Sts::with_credentials(&self.settings, credentials),
                    None => Sts::ambient(&self.settings).await,
                }
            })
            .await
    }

    /// Returns the stored long-lived keys of an access_keys account, as static
    /// credentials.
    async fn stored_access_keys(
        &self,
        account: &Account,
    ) -> Result<SessionCredentials, ResolveError> {
        let stored = self
            .stored_credentials(account.id, CredentialType::AwsAccessKeys)
            .await?
            .ok_or_else(|| ResolveError::Refused("no credentials configured".to_owned()))?;
        let (Some(access_key_id), Some(secret_access_key)) =
            (stored.get("access_key_id"), stored.get("secret_access_key"))
        else {
            return Err(AccountsError::Internal(format!(
                "stored access keys of account {} are incomplete",
                account.id
            ))
            .into());
        };
        Ok(SessionCredentials {
            access_key_id: access_key_id.expose_secret().to_owned(),
            secret_access_key: secret_access_key.clone(),
            session_token: None,
            expiration: None,
        })
    }

    /// Returns the decrypted credentials of one type of an account, if stored.
    pub async fn stored_credentials(
        &self,
        account_id: Uuid,
        credential_type: CredentialType,
    ) -> Result<Option<ValidCredentials>, AccountsError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(AccountsError::database("acquire connection"))?;
        let Some(blob) = repo::credentials_blob(&mut conn, account_id, credential_type)
            .await
            .map_err(AccountsError::database("load credentials"))?
        else {
            return Ok(None);
        };
        let (plaintext, _) = self
            .cipher
            .decrypt(account_id, credential_type, &blob)
            .map_err(|source| AccountsError::Crypto {
                account_id,
                credential_type: credential_type.as_str(),
                source,
            })?;
        ValidCredentials::from_plaintext(credential_type, &plaintext).map(Some)
    }
}

/// Returns the lifetime to ask of STS: short for a session handed over.
fn session_duration(handover: Option<&Handover>) -> Duration {
    if handover.is_some() {
        HANDOVER_DURATION
    } else {
        SESSION_DURATION
    }
}

/// Returns the AWS mode of an account, refusing other providers plainly.
fn aws_mode(account: &Account) -> Result<AwsAuthMode, ResolveError> {
    if account.provider() != Provider::Aws {
        return Err(ResolveError::Refused(format!(
            "{} accounts: not supported yet",
            account.provider().as_str()
        )));
    }
    account.input.aws_auth_mode.ok_or_else(|| {
        AccountsError::Internal(format!("aws account {} has no auth mode", account.id)).into()
    })
}

fn role_arn(account: &Account) -> Result<&str, ResolveError> {
    account
        .input
        .aws_role_arn
        .as_deref()
        .ok_or_else(|| ResolveError::Refused("no role arn configured".to_owned()))
}

/// Reads the web identity token (a secret) from the account's token file.
async fn read_token_file(account: &Account) -> Result<SecretString, ResolveError> {
    let path = account
        .input
        .aws_web_identity_token_file
        .as_deref()
        .ok_or_else(|| ResolveError::Refused("no web identity token file configured".to_owned()))?;
    let refused = |problem: String| {
        ResolveError::Refused(format!("web identity token file {path}: {problem}"))
    };
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|error| refused(format!("cannot be read ({})", error.kind())))?;
    if metadata.len() > MAX_TOKEN_FILE {
        return Err(refused("is too large".to_owned()));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|error| refused(format!("cannot be read ({})", error.kind())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(refused("is empty".to_owned()));
    }
    Ok(SecretString::from(token.to_owned()))
}
