//! The operations of the accounts service, between the gRPC edge and the SQL: every
//! rule of docs/design/DOMAIN.md "Cloud accounts" that needs the database, each write in one
//! transaction, and the calls to AWS.

use std::collections::HashSet;

use cudly_aws::organizations::Organizations;
use cudly_aws::sdk::SessionCredentials;
use cudly_common::db::violated_constraint;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::crypto::CredentialCipher;
use crate::domain::credentials::validate_credentials;
use crate::domain::validation::{
    ensure_aws_external_id, is_aws_account_id, is_role_name, role_arn_partition, validate_account,
};
use crate::domain::{
    Account, AccountDraft, AccountFilter, AccountInput, AwsAuthMode, CredentialDraft, Provider,
    ValidCredentials,
};
use cudly_common::audit::{self, Actor};

use crate::error::{AccountsError, AccountsResult};
use crate::handover::Handover;
use crate::repo;
use crate::resolver::{CacheUse, ResolveError, Resolver};

/// The name this service records its audit events under.
const SERVICE: &str = "accounts";

/// Role assumed in discovered member accounts unless the request names another: a
/// dedicated role holding only what CUDly needs (README "IAM"), not
/// OrganizationAccountAccessRole, which is administrator in every member.
pub const DEFAULT_MEMBER_ROLE: &str = "CudlyPurchaser";
/// The message of every bastion chaining refusal.
pub const BASTION_CHAINING: &str = "bastion chaining is not supported";

/// The result of a credential test: the caller ARN, or the failing step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    Ok { caller_identity: String },
    Failed { error: String },
}

/// One member account of a discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredAccount {
    pub id: Uuid,
    pub name: String,
    pub external_id: String,
    pub created: bool,
}

/// The reply of a discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub discovered: usize,
    pub created: usize,
    pub skipped: usize,
    pub accounts: Vec<DiscoveredAccount>,
}

/// Session credentials handed to the executor, with the account they are for.
pub struct Resolved {
    pub credentials: SessionCredentials,
    pub account: Account,
}

/// The accounts service's operations.
pub struct Accounts {
    pool: PgPool,
    cipher: CredentialCipher,
    resolver: Resolver,
}

/// Parses an id of a request; a malformed one is a 400 naming `field`.
pub fn parse_id(field: &str, text: &str) -> AccountsResult<Uuid> {
    cudly_proto::convert::parse_id(text, field)
        .map_err(|error| AccountsError::field(error.field, error.problem))
}

impl Accounts {
    /// The service's pool (its audit events are read straight from it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn new(pool: PgPool, cipher: CredentialCipher, resolver: Resolver) -> Self {
        Self {
            pool,
            cipher,
            resolver,
        }
    }

    /// The credential resolver (shared with the Cost Explorer collection).
    pub(crate) fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    async fn begin(&self) -> AccountsResult<Transaction<'static, Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(AccountsError::database("begin"))
    }

    async fn connection(&self) -> AccountsResult<sqlx::pool::PoolConnection<Postgres>> {
        self.pool
            .acquire()
            .await
            .map_err(AccountsError::database("acquire connection"))
    }

    /// Creates an account, with its inline credentials in the same transaction.
    pub async fn create(
        &self,
        actor: &Actor,
        draft: AccountDraft,
        credentials: Option<CredentialDraft>,
    ) -> AccountsResult<Account> {
        let mut input = validate_account(draft)?;
        ensure_aws_external_id(&mut input, None);
        let credentials = credentials
            .map(|credentials| validate_credentials(credentials, input.provider))
            .transpose()?;
        let id = Uuid::new_v4();
        let sealed = credentials
            .as_ref()
            .map(|credentials| self.seal(id, credentials))
            .transpose()?;
        let mut tx = self.begin().await?;
        check_bastion(&mut tx, id, &input, false).await?;
        repo::insert_account(&mut tx, id, &input)
            .await
            .map_err(|error| write_error("insert account", error, &input))?;
        if let Some((credential_type, blob)) = &sealed {
            repo::upsert_credentials(&mut tx, id, *credential_type, blob)
                .await
                .map_err(AccountsError::database("store credentials"))?;
        }
        let account = reload(&mut tx, id).await?;
        audit(&mut tx, actor, "account.create", id, None, Some(&account)).await?;
        if let Some((credential_type, _)) = &sealed {
            audit_credentials(&mut tx, actor, id, *credential_type).await?;
        }
        tx.commit()
            .await
            .map_err(AccountsError::database("commit"))?;
        tracing::info!(
            account_id = %id,
            provider = input.provider.as_str(),
            external_id = %input.external_id,
            with_credentials = sealed.is_some(),
            "account created"
        );
        Ok(account)
    }

    pub async fn get(&self, id: Uuid) -> AccountsResult<Account> {
        let mut conn = self.connection().await?;
        repo::get_account(&mut conn, id)
            .await
            .map_err(AccountsError::database("get account"))?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list(&self, filter: &AccountFilter) -> AccountsResult<Vec<Account>> {
        let mut conn = self.connection().await?;
        repo::list_accounts(&mut conn, filter)
            .await
            .map_err(AccountsError::database("list accounts"))
    }

    /// Replaces an account's writable fields; provider and external_id must not change.
    pub async fn update(
        &self,
        actor: &Actor,
        id: Uuid,
        draft: AccountDraft,
    ) -> AccountsResult<Account> {
        let mut tx = self.begin().await?;
        let existing = repo::lock_account(&mut tx, id)
            .await
            .map_err(AccountsError::database("lock account"))?
            .ok_or_else(|| not_found(id))?;
        check_immutable(&existing, &draft)?;
        let mut input = validate_account(draft)?;
        ensure_aws_external_id(&mut input, existing.input.aws_external_id.as_deref());
        check_bastion(&mut tx, id, &input, true).await?;
        repo::update_account(&mut tx, id, &input)
            .await
            .map_err(|error| write_error("update account", error, &input))?;
        let account = reload(&mut tx, id).await?;
        audit(
            &mut tx,
            actor,
            "account.update",
            id,
            Some(&existing),
            Some(&account),
        )
        .await?;
        tx.commit()
            .await
            .map_err(AccountsError::database("commit"))?;
        self.resolver.forget(id);
        tracing::info!(account_id = %id, enabled = input.enabled, "account updated");
        Ok(account)
    }

    /// Deletes an account and its credentials, unless other accounts use it as bastion.
    pub async fn delete(&self, actor: &Actor, id: Uuid) -> AccountsResult<()> {
        let mut tx = self.begin().await?;
        let existing = repo::lock_account(&mut tx, id)
            .await
            .map_err(AccountsError::database("lock account"))?
            .ok_or_else(|| not_found(id))?;
        let dependents = repo::dependents(&mut tx, id)
            .await
            .map_err(AccountsError::database("find dependents"))?;
        if !dependents.is_empty() {
            return Err(AccountsError::BastionInUse { dependents });
        }
        match repo::delete_account(&mut tx, id).await {
            Ok(_) => {}
            Err(error) if violated_constraint(&error) == Some(repo::FK_BASTION) => {
                drop(tx);
                let mut conn = self.connection().await?;
                let dependents = repo::dependents(&mut conn, id)
                    .await
                    .map_err(AccountsError::database("find dependents"))?;
                return Err(AccountsError::BastionInUse { dependents });
            }
            Err(error) => return Err(AccountsError::database("delete account")(error)),
        }
        audit(&mut tx, actor, "account.delete", id, Some(&existing), None).await?;
        tx.commit()
            .await
            .map_err(AccountsError::database("commit"))?;
        self.resolver.forget(id);
        tracing::info!(account_id = %id, "account deleted");
        Ok(())
    }

    /// Stores (replaces) an account's credentials, encrypted.
    pub async fn set_credentials(
        &self,
        actor: &Actor,
        id: Uuid,
        draft: CredentialDraft,
    ) -> AccountsResult<()> {
        let mut tx = self.begin().await?;
        let account = repo::lock_account(&mut tx, id)
            .await
            .map_err(AccountsError::database("lock account"))?
            .ok_or_else(|| not_found(id))?;
        let credentials = validate_credentials(draft, account.provider())?;
        let (credential_type, blob) = self.seal(id, &credentials)?;
        repo::upsert_credentials(&mut tx, id, credential_type, &blob)
            .await
            .map_err(|error| match violated_constraint(&error) {
                Some(repo::FK_CREDENTIALS_ACCOUNT) => not_found(id),
                _ => AccountsError::database("store credentials")(error),
            })?;
        repo::touch_account(&mut tx, id)
            .await
            .map_err(AccountsError::database("touch account"))?;
        audit_credentials(&mut tx, actor, id, credential_type).await?;
        tx.commit()
            .await
            .map_err(AccountsError::database("commit"))?;
        self.resolver.forget(id);
        tracing::info!(account_id = %id, credential_type = credential_type.as_str(), "credentials stored");
        Ok(())
    }

    fn seal(
        &self,
        id: Uuid,
        credentials: &ValidCredentials,
    ) -> AccountsResult<(crate::domain::CredentialType, String)> {
        let blob = self
            .cipher
            .encrypt(id, credentials.credential_type, &credentials.to_plaintext())
            .map_err(|source| AccountsError::Crypto {
                account_id: id,
                credential_type: credentials.credential_type.as_str(),
                source,
            })?;
        Ok((credentials.credential_type, blob))
    }

    /// Tests an account's credentials: resolve them (never from the cache), then STS
    /// GetCallerIdentity, which must name the account's own external id.
    pub async fn test_credentials(&self, id: Uuid) -> AccountsResult<TestOutcome> {
        let account = self.get(id).await?;
        if account.provider() != Provider::Aws {
            let outcome = if account.credentials_configured {
                format!(
                    "credentials configured; testing {} accounts is not supported yet",
                    account.provider().as_str()
                )
            } else {
                "no credentials configured".to_owned()
            };
            return Ok(TestOutcome::Failed { error: outcome });
        }
        let credentials = match self
            .resolver
            .resolve(&account, CacheUse::Bypass, None)
            .await
        {
            Ok(credentials) => credentials,
            Err(ResolveError::Storage(AccountsError::Crypto {
                account_id,
                credential_type,
                source,
            })) => {
                // A test answers for every existing account; this is the operator's
                // key configuration (or a tampered row), not a server fault.
                tracing::error!(%account_id, credential_type, error = %source, "stored credentials cannot be opened");
                return Ok(TestOutcome::Failed {
                    error:
                        "stored credentials cannot be decrypted with the configured credential key"
                            .to_owned(),
                });
            }
            Err(ResolveError::Storage(error)) => return Err(error),
            Err(error) => {
                tracing::info!(account_id = %id, error = %error, "credential test failed");
                return Ok(TestOutcome::Failed {
                    error: error.to_string(),
                });
            }
        };
        let identity = match self
            .resolver
            .sts_with(&credentials)
            .get_caller_identity()
            .await
        {
            Ok(identity) => identity,
            Err(failure) => {
                tracing::info!(account_id = %id, error = %failure, "credential test failed");
                return Ok(TestOutcome::Failed {
                    error: failure.to_string(),
                });
            }
        };
        if identity.account != account.input.external_id {
            let error = format!(
                "the credentials belong to account {}, not to this account's external id {}",
                identity.account, account.input.external_id
            );
            tracing::warn!(account_id = %id, caller_account = %identity.account, "credential test: wrong account");
            return Ok(TestOutcome::Failed { error });
        }
        tracing::info!(account_id = %id, caller_identity = %identity.arn, "credential test passed");
        Ok(TestOutcome::Ok {
            caller_identity: identity.arn,
        })
    }

    /// Returns temporary session credentials for an enabled AWS account (the executor),
    /// narrowed for `handover`, valid for at least `valid_for` where the session
    /// lifetime allows.
    pub async fn resolve_credentials(
        &self,
        id: Uuid,
        valid_for: chrono::TimeDelta,
        handover: &Handover,
    ) -> AccountsResult<Resolved> {
        let account = self.get(id).await?;
        if !account.input.enabled {
            return Err(AccountsError::FailedPrecondition(format!(
                "account {id} is disabled"
            )));
        }
        let credentials = self
            .resolver
            .resolve(&account, CacheUse::Use { valid_for }, Some(handover))
            .await
            .map_err(ResolveError::into_accounts_error)?;
        tracing::info!(
            account_id = %id,
            scope = handover.scope.name(),
            execution_id = ?handover.execution_id,
            expiration = ?credentials.expiration,
            "session credentials handed out"
        );
        Ok(Resolved {
            credentials,
            account,
        })
    }

    /// Returns the accounts with the given ids (in the order asked, duplicates once)
    /// and the ids that match none.
    pub async fn get_by_ids(&self, ids: &[Uuid]) -> AccountsResult<(Vec<Account>, Vec<Uuid>)> {
        let mut seen = HashSet::new();
        let unique: Vec<Uuid> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let mut conn = self.connection().await?;
        let mut found = repo::accounts_by_ids(&mut conn, &unique)
            .await
            .map_err(AccountsError::database("get accounts by ids"))?;
        let mut accounts = Vec::with_capacity(found.len());
        let mut missing = Vec::new();
        for id in unique {
            match found.iter().position(|account| account.id == id) {
                Some(index) => accounts.push(found.swap_remove(index)),
                None => missing.push(id),
            }
        }
        Ok((accounts, missing))
    }

    pub async fn list_enabled(&self, providers: &[Provider]) -> AccountsResult<Vec<Account>> {
        if providers.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection().await?;
        repo::enabled_accounts(&mut conn, providers)
            .await
            .map_err(AccountsError::database("list enabled accounts"))
    }

    /// Lists an organization's members through its root and creates the unknown ones,
    /// disabled, in bastion mode through the root.
    pub async fn discover(
        &self,
        actor: &Actor,
        root_id: Uuid,
        member_role_name: Option<&str>,
    ) -> AccountsResult<Discovery> {
        let role_name = member_role_name
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .unwrap_or(DEFAULT_MEMBER_ROLE);
        if !is_role_name(role_name) {
            return Err(AccountsError::field(
                "member_role_name",
                "must be an iam role name (1 to 64 letters, digits or +=,.@_-)",
            ));
        }
        let root = self.get(root_id).await?;
        check_org_root(&root)?;
        let root_credentials = self
            .resolver
            .resolve(
                &root,
                CacheUse::Use {
                    valid_for: chrono::TimeDelta::zero(),
                },
                None,
            )
            .await
            .map_err(ResolveError::into_accounts_error)?;
        let listed = Organizations::with_credentials(self.resolver.settings(), &root_credentials)
            .list_accounts()
            .await
            .map_err(|failure| AccountsError::Unavailable(failure.to_string()))?;
        let partition = root
            .input
            .aws_role_arn
            .as_deref()
            .and_then(role_arn_partition)
            .unwrap_or("aws")
            .to_owned();

        let mut tx = self.begin().await?;
        // The root must stay an org root outside bastion mode while members are
        // created through it.
        let root = repo::share_lock_account(&mut tx, root_id)
            .await
            .map_err(AccountsError::database("lock root"))?
            .ok_or_else(|| not_found(root_id))?;
        check_org_root(&root)?;
        let mut accounts = Vec::new();
        let mut seen = HashSet::new();
        for member in listed {
            if member.id == root.input.external_id || !seen.insert(member.id.clone()) {
                continue;
            }
            if !is_aws_account_id(&member.id) {
                tracing::warn!(root_id = %root_id, "organization listed an account id that is not 12 digits; skipped");
                continue;
            }
            let mut input = member_input(&root, &member.id, &member.name, &partition, role_name);
            ensure_aws_external_id(&mut input, None);
            let new_id = Uuid::new_v4();
            let created = repo::insert_account_if_absent(&mut tx, new_id, &input)
                .await
                .map_err(AccountsError::database("create member"))?;
            if created {
                let account = reload(&mut tx, new_id).await?;
                audit(
                    &mut tx,
                    actor,
                    "account.create",
                    new_id,
                    None,
                    Some(&account),
                )
                .await?;
                accounts.push(DiscoveredAccount {
                    id: new_id,
                    name: input.name,
                    external_id: input.external_id,
                    created: true,
                });
                continue;
            }
            let (existing_id, existing_name) =
                repo::find_by_external_id(&mut tx, Provider::Aws, &member.id)
                    .await
                    .map_err(AccountsError::database("find member"))?
                    .ok_or_else(|| {
                        AccountsError::Internal(
                            "a conflicting member vanished inside its transaction".to_owned(),
                        )
                    })?;
            accounts.push(DiscoveredAccount {
                id: existing_id,
                name: existing_name,
                external_id: member.id,
                created: false,
            });
        }
        tx.commit()
            .await
            .map_err(AccountsError::database("commit"))?;
        let created = accounts.iter().filter(|account| account.created).count();
        let discovery = Discovery {
            discovered: accounts.len(),
            created,
            skipped: accounts.len() - created,
            accounts,
        };
        tracing::info!(
            root_id = %root_id,
            discovered = discovery.discovered,
            created = discovery.created,
            skipped = discovery.skipped,
            "organization discovered"
        );
        Ok(discovery)
    }
}

/// Records a change to an account in its transaction.
async fn audit(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    id: Uuid,
    before: Option<&Account>,
    after: Option<&Account>,
) -> AccountsResult<()> {
    let change = audit::Change {
        action,
        target_type: "account",
        target_id: id.to_string(),
        before: before.map(audit::digest),
        after: after.map(audit::digest),
    };
    audit::record(conn, SERVICE, actor, change)
        .await
        .map_err(AccountsError::database("record audit event"))
}

/// Records that an account's credentials were replaced: the fact and their type,
/// never their values (nor a digest of them).
async fn audit_credentials(
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    credential_type: crate::domain::CredentialType,
) -> AccountsResult<()> {
    let change = audit::Change {
        action: "credentials.set",
        target_type: "credentials",
        target_id: format!("{id}/{}", credential_type.as_str()),
        before: None,
        after: None,
    };
    audit::record(conn, SERVICE, actor, change)
        .await
        .map_err(AccountsError::database("record audit event"))
}

fn not_found(id: Uuid) -> AccountsError {
    AccountsError::NotFound(format!("account {id} not found"))
}

async fn reload(conn: &mut PgConnection, id: Uuid) -> AccountsResult<Account> {
    repo::get_account(conn, id)
        .await
        .map_err(AccountsError::database("reload account"))?
        .ok_or_else(|| {
            AccountsError::Internal(format!("account {id} vanished inside its transaction"))
        })
}

/// Maps a failed insert or update: the unique (provider, external_id) is a conflict,
/// a vanished bastion a bad aws_bastion_id.
fn write_error(context: &'static str, error: sqlx::Error, input: &AccountInput) -> AccountsError {
    match violated_constraint(&error) {
        Some(repo::UNIQUE_PROVIDER_EXTERNAL_ID) => AccountsError::AlreadyExists(format!(
            "an {} account with external_id {} already exists",
            input.provider.as_str(),
            input.external_id
        )),
        Some(repo::FK_BASTION) => AccountsError::field("aws_bastion_id", "no such account"),
        _ => AccountsError::database(context)(error),
    }
}

/// Refuses a change of provider or external_id (compared in canonical form); nothing
/// is written.
fn check_immutable(existing: &Account, draft: &AccountDraft) -> AccountsResult<()> {
    let provider = draft.provider.trim();
    if !provider.is_empty() && provider != existing.provider().as_str() {
        return Err(AccountsError::field("provider", "cannot be changed"));
    }
    let external_id = draft.external_id.trim();
    let same = match existing.provider() {
        Provider::Azure => external_id.eq_ignore_ascii_case(&existing.input.external_id),
        Provider::Aws | Provider::Gcp => external_id == existing.input.external_id,
    };
    if !external_id.is_empty() && !same {
        return Err(AccountsError::field("external_id", "cannot be changed"));
    }
    Ok(())
}

/// The bastion rules: the bastion exists, is an AWS account and is not itself in
/// bastion mode; an account that others use as bastion cannot move to bastion mode.
/// The bastion is share-locked so it cannot change mode or vanish before commit.
async fn check_bastion(
    conn: &mut PgConnection,
    id: Uuid,
    input: &AccountInput,
    existing: bool,
) -> AccountsResult<()> {
    if input.aws_auth_mode != Some(AwsAuthMode::Bastion) {
        return Ok(());
    }
    let chaining = || AccountsError::invalid_with_field(BASTION_CHAINING, "aws_bastion_id");
    let bastion_id = input
        .aws_bastion_id
        .ok_or_else(|| AccountsError::field("aws_bastion_id", "is required in bastion mode"))?;
    if bastion_id == id {
        return Err(chaining());
    }
    let bastion = repo::share_lock_account(conn, bastion_id)
        .await
        .map_err(AccountsError::database("lock bastion"))?
        .ok_or_else(|| AccountsError::field("aws_bastion_id", "no such account"))?;
    if bastion.provider() != Provider::Aws {
        return Err(AccountsError::field(
            "aws_bastion_id",
            "must name an aws account",
        ));
    }
    if bastion.input.aws_auth_mode == Some(AwsAuthMode::Bastion) {
        return Err(chaining());
    }
    if existing {
        let dependents = repo::dependents(conn, id)
            .await
            .map_err(AccountsError::database("find dependents"))?;
        if !dependents.is_empty() {
            return Err(chaining());
        }
    }
    Ok(())
}

/// Discovery's rules on the root: an AWS account marked as org root, not in bastion
/// mode.
fn check_org_root(root: &Account) -> AccountsResult<()> {
    if root.provider() != Provider::Aws {
        return Err(AccountsError::field(
            "org_root_account_id",
            "must name an aws account",
        ));
    }
    if !root.input.aws_is_org_root {
        return Err(AccountsError::field(
            "org_root_account_id",
            "the account is not marked as organization root (aws_is_org_root)",
        ));
    }
    if root.input.aws_auth_mode == Some(AwsAuthMode::Bastion) {
        return Err(AccountsError::invalid_with_field(
            format!("org_root_account_id: the root is in bastion mode; {BASTION_CHAINING}"),
            "org_root_account_id",
        ));
    }
    Ok(())
}

/// The account created for a discovered member: disabled, bastion mode through the
/// root, assuming `role_name` in the member.
fn member_input(
    root: &Account,
    member_id: &str,
    member_name: &str,
    partition: &str,
    role_name: &str,
) -> AccountInput {
    let name: String = member_name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    AccountInput {
        name: if name.is_empty() {
            member_id.to_owned()
        } else {
            name
        },
        description: None,
        contact_email: None,
        enabled: false,
        provider: Provider::Aws,
        external_id: member_id.to_owned(),
        aws_auth_mode: Some(AwsAuthMode::Bastion),
        aws_role_arn: Some(format!("arn:{partition}:iam::{member_id}:role/{role_name}")),
        aws_external_id: None,
        aws_bastion_id: Some(root.id),
        aws_is_org_root: false,
        aws_web_identity_token_file: None,
        azure_subscription_id: None,
        azure_tenant_id: None,
        azure_client_id: None,
        gcp_project_id: None,
        gcp_client_email: None,
    }
}
