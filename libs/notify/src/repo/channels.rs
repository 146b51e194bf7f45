//! The `notification_channels` table: creation (checked, secrets encrypted), listing
//! without secrets, deletion, and loading with secrets for the dispatcher.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_common::db::violated_constraint;
use secrecy::ExposeSecret;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::channel::{
    Audience, Channel, ChannelDraft, ChannelInfo, ChannelKind, ChannelRules, NewChannel,
    SigningSecret, Subscription, Target,
};
use crate::crypto::{ChannelCipher, SecretField};
use crate::error::{NotifyError, NotifyResult};
use crate::event::EventKind;
use crate::failure::DeliveryFailure;
use crate::target::check_target;

/// The unique index that keeps live channel names apart.
pub const NAME_TAKEN: &str = "notification_channels_live_name";

/// The columns of a channel without its secrets (a macro: sqlx takes literal SQL).
macro_rules! info_columns {
    () => {
        "id, name, kind, audience, events, plan_ids, account_ids, consecutive_failures, \
         failing_since, created_at"
    };
}

/// A channel just stored.
#[derive(Debug, Clone)]
pub struct CreatedChannel {
    pub info: ChannelInfo,
    /// The webhook secret the library generated, shown once to the caller (the receiver
    /// needs it to verify signatures); none when the caller chose it.
    pub generated_secret: Option<SigningSecret>,
}

/// Checks `draft` (fields, then the target's addresses, which needs DNS) and stores it
/// on `conn`: a caller's transaction, so an audit record can commit with it.
pub async fn create_channel(
    conn: &mut PgConnection,
    cipher: &ChannelCipher,
    rules: ChannelRules,
    draft: ChannelDraft,
) -> NotifyResult<CreatedChannel> {
    let channel = draft.validate(rules)?;
    if let Target::Url(url) = &channel.target {
        check_target(rules.private_targets, url)
            .await
            .map_err(ApiError::from)?;
    }
    let info = insert_channel(conn, cipher, &channel).await?;
    let generated_secret = if channel.secret_generated {
        channel.signing_secret
    } else {
        None
    };
    Ok(CreatedChannel {
        info,
        generated_secret,
    })
}

/// Stores a checked channel; a taken name is AlreadyExists.
pub async fn insert_channel(
    conn: &mut PgConnection,
    cipher: &ChannelCipher,
    channel: &NewChannel,
) -> NotifyResult<ChannelInfo> {
    let target_ciphertext = cipher.encrypt(
        channel.id,
        SecretField::ChannelTarget,
        &channel.target.to_stored(),
    )?;
    let secret_ciphertext = channel
        .signing_secret
        .as_ref()
        .map(|secret| {
            cipher.encrypt(
                channel.id,
                SecretField::ChannelSigningSecret,
                secret.expose().expose_secret(),
            )
        })
        .transpose()?;
    let events: Vec<&str> = channel
        .subscription
        .events
        .iter()
        .map(|kind| kind.as_str())
        .collect();
    let row: InfoRow = sqlx::query_as(concat!(
        "INSERT INTO notification_channels \
         (id, name, kind, audience, events, plan_ids, account_ids, target_ciphertext, \
          signing_secret_ciphertext) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING ",
        info_columns!()
    ))
    .bind(channel.id)
    .bind(&channel.name)
    .bind(channel.kind.as_str())
    .bind(channel.audience.as_str())
    .bind(&events)
    .bind(&channel.subscription.plan_ids)
    .bind(&channel.subscription.account_ids)
    .bind(&target_ciphertext)
    .bind(secret_ciphertext.as_deref())
    .fetch_one(&mut *conn)
    .await
    .map_err(|error| match violated_constraint(&error) {
        Some(NAME_TAKEN) => NotifyError::Api(ApiError::already_exists(format!(
            "a notification channel named {} already exists",
            channel.name
        ))),
        _ => NotifyError::db("insert notification channel")(error),
    })?;
    row.into_info()
}

/// Returns the live channels, oldest first, without targets or secrets.
pub async fn list_channels(conn: &mut PgConnection) -> NotifyResult<Vec<ChannelInfo>> {
    let rows: Vec<InfoRow> = sqlx::query_as(concat!(
        "SELECT ",
        info_columns!(),
        " FROM notification_channels WHERE deleted_at IS NULL ORDER BY created_at, id"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(NotifyError::db("list notification channels"))?;
    rows.into_iter().map(InfoRow::into_info).collect()
}

/// Deletes a channel: its secrets are erased at once, its pending deliveries fail, and
/// its row stays for the deliveries' history. Returns the channel as it was, or none
/// when no live channel has that id.
pub async fn delete_channel(
    conn: &mut PgConnection,
    channel_id: Uuid,
) -> NotifyResult<Option<ChannelInfo>> {
    let row: Option<InfoRow> = sqlx::query_as(concat!(
        "WITH deleted AS ( \
             UPDATE notification_channels \
             SET deleted_at = now(), target_ciphertext = NULL, \
                 signing_secret_ciphertext = NULL \
             WHERE id = $1 AND deleted_at IS NULL \
             RETURNING ",
        info_columns!(),
        " ), dropped AS ( \
             UPDATE notification_deliveries \
             SET state = 'failed', last_error = $2 \
             WHERE channel_id IN (SELECT id FROM deleted) \
               AND state IN ('pending', 'delivering') \
         ) \
         SELECT * FROM deleted"
    ))
    .bind(channel_id)
    .bind(DeliveryFailure::ChannelDeleted.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(NotifyError::db("delete notification channel"))?;
    row.map(InfoRow::into_info).transpose()
}

/// Returns the subscriptions of the live channels: what the outbox needs to fan an
/// event out, without decrypting anything.
pub(crate) async fn live_subscriptions(
    conn: &mut PgConnection,
) -> NotifyResult<Vec<(Uuid, Audience, Subscription)>> {
    let rows: Vec<InfoRow> = sqlx::query_as(concat!(
        "SELECT ",
        info_columns!(),
        " FROM notification_channels WHERE deleted_at IS NULL"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(NotifyError::db("read notification subscriptions"))?;
    rows.into_iter()
        .map(|row| {
            let info = row.into_info()?;
            let subscription = Subscription {
                events: info.events,
                plan_ids: info.plan_ids,
                account_ids: info.account_ids,
            };
            Ok((info.id, info.audience, subscription))
        })
        .collect()
}

/// Returns a live channel with its secrets decrypted; none when it is gone or deleted.
pub(crate) async fn load_channel(
    conn: &mut PgConnection,
    cipher: &ChannelCipher,
    channel_id: Uuid,
) -> NotifyResult<Option<Channel>> {
    let row: Option<SecretRow> = sqlx::query_as(concat!(
        "SELECT ",
        info_columns!(),
        ", target_ciphertext, signing_secret_ciphertext \
         FROM notification_channels WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(channel_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(NotifyError::db("load notification channel"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let target_text = cipher.decrypt(
        row.info.id,
        SecretField::ChannelTarget,
        row.target_ciphertext.as_deref().unwrap_or_default(),
    )?;
    let signing_secret = row
        .signing_secret_ciphertext
        .as_deref()
        .map(|blob| cipher.decrypt(row.info.id, SecretField::ChannelSigningSecret, blob))
        .transpose()?
        .map(SigningSecret::new);
    let info = row.info.into_info()?;
    let target = Target::from_stored(info.kind, target_text.expose_secret())
        .ok_or_else(|| NotifyError::Corrupt(format!("target of channel {}", info.id)))?;
    Ok(Some(Channel {
        id: info.id,
        name: info.name,
        kind: info.kind,
        audience: info.audience,
        subscription: Subscription {
            events: info.events,
            plan_ids: info.plan_ids,
            account_ids: info.account_ids,
        },
        target,
        signing_secret,
        failing_since: info.failing_since,
    }))
}

/// Returns the ids of the live channels marked failing (the dispatcher's gauges at
/// start-up).
pub(crate) async fn failing_channels(conn: &mut PgConnection) -> NotifyResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM notification_channels \
         WHERE deleted_at IS NULL AND failing_since IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(NotifyError::db("read failing notification channels"))
}

#[derive(sqlx::FromRow)]
struct InfoRow {
    id: Uuid,
    name: String,
    kind: String,
    audience: String,
    events: Vec<String>,
    plan_ids: Vec<Uuid>,
    account_ids: Vec<Uuid>,
    consecutive_failures: i32,
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    #[sqlx(flatten)]
    info: InfoRow,
    target_ciphertext: Option<Vec<u8>>,
    signing_secret_ciphertext: Option<Vec<u8>>,
}

impl InfoRow {
    fn into_info(self) -> NotifyResult<ChannelInfo> {
        let id = self.id;
        let corrupt = |what: &str| NotifyError::Corrupt(format!("{what} of channel {id}"));
        let kind = ChannelKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?;
        let audience = Audience::parse(&self.audience).ok_or_else(|| corrupt("audience"))?;
        // An event name this build does not know (written by a newer one) is skipped.
        let events = self
            .events
            .iter()
            .filter_map(|name| EventKind::parse(name))
            .collect();
        Ok(ChannelInfo {
            id: self.id,
            name: self.name,
            kind,
            audience,
            events,
            plan_ids: self.plan_ids,
            account_ids: self.account_ids,
            consecutive_failures: self.consecutive_failures,
            failing_since: self.failing_since,
            created_at: self.created_at,
        })
    }
}
