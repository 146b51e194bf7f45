//! SQL of the `accounts` schema. Every function takes a connection (or a transaction
//! through it) and returns sqlx errors untouched, so the caller can map unique and
//! foreign-key violations by constraint name.

use chrono::{DateTime, Utc};
use cudly_common::error::NamedRef;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Account, AccountFilter, AccountInput, AwsAuthMode, CredentialType, Provider};

/// Unique (provider, external_id).
pub const UNIQUE_PROVIDER_EXTERNAL_ID: &str = "cloud_accounts_provider_external_id_key";
/// cloud_accounts.aws_bastion_id → cloud_accounts.id (ON DELETE RESTRICT).
pub const FK_BASTION: &str = "cloud_accounts_aws_bastion_id_fkey";
/// account_credentials.account_id → cloud_accounts.id.
pub const FK_CREDENTIALS_ACCOUNT: &str = "account_credentials_account_id_fkey";

/// The select list of an account, with the derived `credentials_configured`: a blob
/// of the type the account's provider and mode need is stored.
macro_rules! select_account {
    () => {
        "SELECT a.id, a.name, a.description, a.contact_email, a.enabled, a.provider, a.external_id, \
         a.aws_auth_mode, a.aws_role_arn, a.aws_external_id, a.aws_bastion_id, a.aws_is_org_root, \
         a.aws_web_identity_token_file, a.azure_subscription_id, a.azure_tenant_id, a.azure_client_id, \
         a.gcp_project_id, a.gcp_client_email, a.revision, a.created_at, a.updated_at, \
         EXISTS (SELECT 1 FROM account_credentials c WHERE c.account_id = a.id AND c.credential_type = \
           CASE WHEN a.provider = 'aws' AND a.aws_auth_mode = 'access_keys' THEN 'aws_access_keys' \
                WHEN a.provider = 'azure' THEN 'azure_client_secret' \
                WHEN a.provider = 'gcp' THEN 'gcp_service_account' END) AS credentials_configured \
         FROM cloud_accounts a "
    };
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    contact_email: Option<String>,
    enabled: bool,
    provider: String,
    external_id: String,
    aws_auth_mode: Option<String>,
    aws_role_arn: Option<String>,
    aws_external_id: Option<String>,
    aws_bastion_id: Option<Uuid>,
    aws_is_org_root: bool,
    aws_web_identity_token_file: Option<String>,
    azure_subscription_id: Option<String>,
    azure_tenant_id: Option<String>,
    azure_client_id: Option<String>,
    gcp_project_id: Option<String>,
    gcp_client_email: Option<String>,
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    credentials_configured: bool,
}

fn decode_error(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("cloud_accounts holds an unknown {what}").into())
}

impl TryFrom<AccountRow> for Account {
    type Error = sqlx::Error;

    fn try_from(row: AccountRow) -> Result<Self, Self::Error> {
        let provider = Provider::parse(&row.provider).ok_or_else(|| decode_error("provider"))?;
        let aws_auth_mode = row
            .aws_auth_mode
            .as_deref()
            .map(|mode| AwsAuthMode::parse(mode).ok_or_else(|| decode_error("aws_auth_mode")))
            .transpose()?;
        Ok(Account {
            id: row.id,
            input: AccountInput {
                name: row.name,
                description: row.description,
                contact_email: row.contact_email,
                enabled: row.enabled,
                provider,
                external_id: row.external_id,
                aws_auth_mode,
                aws_role_arn: row.aws_role_arn,
                aws_external_id: row.aws_external_id,
                aws_bastion_id: row.aws_bastion_id,
                aws_is_org_root: row.aws_is_org_root,
                aws_web_identity_token_file: row.aws_web_identity_token_file,
                azure_subscription_id: row.azure_subscription_id,
                azure_tenant_id: row.azure_tenant_id,
                azure_client_id: row.azure_client_id,
                gcp_project_id: row.gcp_project_id,
                gcp_client_email: row.gcp_client_email,
            },
            credentials_configured: row.credentials_configured,
            created_at: row.created_at,
            updated_at: row.updated_at,
            revision: row.revision,
        })
    }
}

fn to_accounts(rows: Vec<AccountRow>) -> Result<Vec<Account>, sqlx::Error> {
    rows.into_iter().map(Account::try_from).collect()
}

/// Returns one account.
pub async fn get_account(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as::<_, AccountRow>(concat!(select_account!(), "WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(Account::try_from)
        .transpose()
}

/// Returns one account, locked for update until the transaction ends.
pub async fn lock_account(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as::<_, AccountRow>(concat!(
        select_account!(),
        "WHERE a.id = $1 FOR UPDATE OF a"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(Account::try_from)
    .transpose()
}

/// Returns one account, share-locked until the transaction ends: a bastion being
/// referenced cannot switch to bastion mode (chaining) or vanish meanwhile.
pub async fn share_lock_account(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as::<_, AccountRow>(concat!(select_account!(), "WHERE a.id = $1 FOR SHARE OF a"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(Account::try_from)
        .transpose()
}

/// Escapes `%`, `_` and `\` for an ILIKE pattern with `ESCAPE '\'`.
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Returns the accounts matching `filter`, ordered by name.
pub async fn list_accounts(
    conn: &mut PgConnection,
    filter: &AccountFilter,
) -> Result<Vec<Account>, sqlx::Error> {
    let rows = sqlx::query_as::<_, AccountRow>(concat!(
        select_account!(),
        "WHERE ($1::text IS NULL OR a.provider = $1) \
           AND ($2::boolean IS NULL OR a.enabled = $2) \
           AND ($3::text IS NULL OR a.name ILIKE '%' || $3 || '%' ESCAPE '\\' \
                OR a.external_id ILIKE '%' || $3 || '%' ESCAPE '\\') \
         ORDER BY a.name, a.id"
    ))
    .bind(filter.provider.map(Provider::as_str))
    .bind(filter.enabled)
    .bind(filter.search.as_deref().map(like_escape))
    .fetch_all(conn)
    .await?;
    to_accounts(rows)
}

/// Returns the accounts among `ids` that exist.
pub async fn accounts_by_ids(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Account>, sqlx::Error> {
    let rows = sqlx::query_as::<_, AccountRow>(concat!(
        select_account!(),
        "WHERE a.id = ANY($1) ORDER BY a.name, a.id"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await?;
    to_accounts(rows)
}

/// Returns the enabled accounts of `providers`, ordered by name.
pub async fn enabled_accounts(
    conn: &mut PgConnection,
    providers: &[Provider],
) -> Result<Vec<Account>, sqlx::Error> {
    let names: Vec<&str> = providers.iter().map(|provider| provider.as_str()).collect();
    let rows = sqlx::query_as::<_, AccountRow>(concat!(
        select_account!(),
        "WHERE a.enabled AND a.provider = ANY($1) ORDER BY a.name, a.id"
    ))
    .bind(&names)
    .fetch_all(conn)
    .await?;
    to_accounts(rows)
}

/// Returns the accounts that use `bastion_id` as their bastion, ordered by name.
pub async fn dependents(
    conn: &mut PgConnection,
    bastion_id: Uuid,
) -> Result<Vec<NamedRef>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, name FROM cloud_accounts WHERE aws_bastion_id = $1 ORDER BY name, id",
    )
    .bind(bastion_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| NamedRef {
            id: id.to_string(),
            name,
        })
        .collect())
}

/// Inserts an account.
pub async fn insert_account(
    conn: &mut PgConnection,
    id: Uuid,
    input: &AccountInput,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cloud_accounts (id, name, description, contact_email, enabled, provider, external_id, \
           aws_auth_mode, aws_role_arn, aws_external_id, aws_bastion_id, aws_is_org_root, \
           aws_web_identity_token_file, azure_subscription_id, azure_tenant_id, azure_client_id, \
           gcp_project_id, gcp_client_email) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(id)
    .bind(&input.name)
    .bind(&input.description)
    .bind(&input.contact_email)
    .bind(input.enabled)
    .bind(input.provider.as_str())
    .bind(&input.external_id)
    .bind(input.aws_auth_mode.map(AwsAuthMode::as_str))
    .bind(&input.aws_role_arn)
    .bind(&input.aws_external_id)
    .bind(input.aws_bastion_id)
    .bind(input.aws_is_org_root)
    .bind(&input.aws_web_identity_token_file)
    .bind(&input.azure_subscription_id)
    .bind(&input.azure_tenant_id)
    .bind(&input.azure_client_id)
    .bind(&input.gcp_project_id)
    .bind(&input.gcp_client_email)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a discovered account unless one with the same (provider, external_id)
/// exists; returns whether it was inserted.
pub async fn insert_account_if_absent(
    conn: &mut PgConnection,
    id: Uuid,
    input: &AccountInput,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO cloud_accounts (id, name, enabled, provider, external_id, aws_auth_mode, aws_role_arn, \
           aws_bastion_id, aws_is_org_root) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT ON CONSTRAINT cloud_accounts_provider_external_id_key DO NOTHING",
    )
    .bind(id)
    .bind(&input.name)
    .bind(input.enabled)
    .bind(input.provider.as_str())
    .bind(&input.external_id)
    .bind(input.aws_auth_mode.map(AwsAuthMode::as_str))
    .bind(&input.aws_role_arn)
    .bind(input.aws_bastion_id)
    .bind(input.aws_is_org_root)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Returns the id and name of the account with (`provider`, `external_id`).
pub async fn find_by_external_id(
    conn: &mut PgConnection,
    provider: Provider,
    external_id: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, name FROM cloud_accounts WHERE provider = $1 AND external_id = $2")
        .bind(provider.as_str())
        .bind(external_id)
        .fetch_optional(conn)
        .await
}

/// Replaces the writable fields of an account and bumps its revision.
pub async fn update_account(
    conn: &mut PgConnection,
    id: Uuid,
    input: &AccountInput,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE cloud_accounts SET name = $2, description = $3, contact_email = $4, enabled = $5, \
           aws_auth_mode = $6, aws_role_arn = $7, aws_external_id = $8, aws_bastion_id = $9, \
           aws_is_org_root = $10, aws_web_identity_token_file = $11, azure_subscription_id = $12, \
           azure_tenant_id = $13, azure_client_id = $14, gcp_project_id = $15, gcp_client_email = $16, \
           revision = revision + 1, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&input.name)
    .bind(&input.description)
    .bind(&input.contact_email)
    .bind(input.enabled)
    .bind(input.aws_auth_mode.map(AwsAuthMode::as_str))
    .bind(&input.aws_role_arn)
    .bind(&input.aws_external_id)
    .bind(input.aws_bastion_id)
    .bind(input.aws_is_org_root)
    .bind(&input.aws_web_identity_token_file)
    .bind(&input.azure_subscription_id)
    .bind(&input.azure_tenant_id)
    .bind(&input.azure_client_id)
    .bind(&input.gcp_project_id)
    .bind(&input.gcp_client_email)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Bumps an account's revision (its credentials changed).
pub async fn touch_account(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cloud_accounts SET revision = revision + 1, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes an account (its credentials go with it); returns whether it existed.
pub async fn delete_account(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM cloud_accounts WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Stores (replaces) the encrypted blob of an account's credentials of one type.
pub async fn upsert_credentials(
    conn: &mut PgConnection,
    account_id: Uuid,
    credential_type: CredentialType,
    blob: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_credentials (account_id, credential_type, encrypted_blob) VALUES ($1, $2, $3) \
         ON CONFLICT ON CONSTRAINT account_credentials_pkey \
         DO UPDATE SET encrypted_blob = EXCLUDED.encrypted_blob, updated_at = now()",
    )
    .bind(account_id)
    .bind(credential_type.as_str())
    .bind(blob)
    .execute(conn)
    .await?;
    Ok(())
}

/// Returns the encrypted blob of an account's credentials of one type.
pub async fn credentials_blob(
    conn: &mut PgConnection,
    account_id: Uuid,
    credential_type: CredentialType,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT encrypted_blob FROM account_credentials WHERE account_id = $1 AND credential_type = $2")
        .bind(account_id)
        .bind(credential_type.as_str())
        .fetch_optional(conn)
        .await
}

/// A stored blob, for key rotation.
pub struct StoredBlob {
    pub account_id: Uuid,
    pub credential_type: String,
    pub encrypted_blob: String,
}

/// Returns every stored blob, locked for update until the transaction ends.
pub async fn lock_all_credentials(conn: &mut PgConnection) -> Result<Vec<StoredBlob>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT account_id, credential_type, encrypted_blob FROM account_credentials \
         ORDER BY account_id, credential_type FOR UPDATE",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account_id, credential_type, encrypted_blob)| StoredBlob {
            account_id,
            credential_type,
            encrypted_blob,
        })
        .collect())
}

/// Replaces one blob in place (key rotation: same plaintext, new key).
pub async fn replace_blob(
    conn: &mut PgConnection,
    account_id: Uuid,
    credential_type: CredentialType,
    blob: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE account_credentials SET encrypted_blob = $3, updated_at = now() \
         WHERE account_id = $1 AND credential_type = $2",
    )
    .bind(account_id)
    .bind(credential_type.as_str())
    .bind(blob)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape("100%_a\\b"), "100\\%\\_a\\\\b");
    }
}
