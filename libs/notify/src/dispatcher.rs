//! The dispatcher: delivers the outbox at least once.
//!
//! It claims due deliveries with a lease (`FOR UPDATE SKIP LOCKED`, so several
//! dispatchers share the work), sends them concurrently, and records each outcome with
//! a compare-and-set on its claim. A dispatcher that dies mid-send loses nothing: its
//! lease runs out and the delivery is claimed again, under the same event and delivery
//! ids, so a receiver that got it twice can tell (receivers dedupe on
//! `X-Cudly-Event-Id`). A failure is retried with exponential back-off and jitter up to
//! `max_attempts`; a channel failing `failing_after` times in a row is marked failing,
//! logged and counted in a gauge, while every other channel's deliveries go on. Nothing
//! here runs inside a purchase: a broken receiver can slow notifications only.

use std::time::Duration;

use cudly_common::config::ConfigResult;
use futures::StreamExt;
use rand::Rng;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::channel::{Audience, Channel, ChannelKind};
use crate::config::DispatchSettings;
use crate::crypto::ChannelCipher;
use crate::error::{NotifyError, NotifyResult};
use crate::event::Event;
use crate::failure::DeliveryFailure;
use crate::metrics::{self, Outcome};
use crate::repo::channels;
use crate::repo::claims::{self, Claim};
use crate::sender::Sender;

/// Delivers the outbox of one schema.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pool: PgPool,
    cipher: ChannelCipher,
    sender: Sender,
    settings: DispatchSettings,
}

impl Dispatcher {
    /// Returns a dispatcher over the outbox of `pool`'s schema.
    pub fn new(
        pool: PgPool,
        cipher: ChannelCipher,
        sender: Sender,
        settings: DispatchSettings,
    ) -> ConfigResult<Self> {
        settings.validate()?;
        Ok(Self {
            pool,
            cipher,
            sender,
            settings,
        })
    }

    /// Delivers until `cancel` fires, then finishes the batch in hand and returns.
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!("notification dispatcher started");
        self.publish_failing_channels().await;
        while !cancel.is_cancelled() {
            let pause = match self.dispatch_once().await {
                Ok(claimed) if claimed >= self.settings.batch_size as usize => Duration::ZERO,
                Ok(_) => self.settings.poll_interval,
                Err(error) if error.is_missing_schema() => {
                    tracing::debug!("notification dispatch waits for the migrations");
                    self.settings.poll_interval
                }
                Err(error) => {
                    tracing::warn!(error = %error.log_text(), "notification dispatch failed");
                    self.settings.poll_interval
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        tracing::info!("notification dispatcher stopped");
    }

    /// Claims the due deliveries (one batch), sends them and records the outcomes.
    /// Returns how many were claimed.
    pub async fn dispatch_once(&self) -> NotifyResult<usize> {
        let claimed =
            claims::claim_due(&self.pool, self.settings.lease, self.settings.batch_size).await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.settings.concurrency, |claim| async move {
                if let Err(error) = self.process(&claim).await {
                    // Unrecorded: the lease runs out and the delivery is tried again.
                    tracing::warn!(
                        delivery_id = %claim.id,
                        error = %error.log_text(),
                        "notification outcome not recorded"
                    );
                }
            })
            .await;
        Ok(count)
    }

    async fn process(&self, claim: &Claim) -> NotifyResult<()> {
        let attempt = u32::try_from(claim.attempts).unwrap_or(u32::MAX);
        if attempt > self.settings.max_attempts {
            // Every dispatcher that took it died before recording an outcome.
            let failure = DeliveryFailure::GaveUp(self.settings.max_attempts);
            return self.record_failure(claim, None, failure).await;
        }
        let (channel, event) = match self.prepare(claim).await? {
            Ok(ready) => ready,
            Err(failure) => return self.record_failure(claim, None, failure).await,
        };
        match self.sender.send(&channel, &event, claim.id).await {
            Ok(()) => self.record_success(claim, &channel).await,
            Err(failure) => {
                self.record_failure(claim, Some(channel.kind), failure)
                    .await
            }
        }
    }

    /// Reads the channel (secrets decrypted) and the event (with its approval link for
    /// a private channel only). A row that cannot be used is a failed delivery.
    async fn prepare(
        &self,
        claim: &Claim,
    ) -> NotifyResult<Result<(Channel, Event), DeliveryFailure>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(NotifyError::db("acquire connection"))?;
        let channel = match channels::load_channel(&mut conn, &self.cipher, claim.channel_id).await
        {
            Ok(Some(channel)) => channel,
            Ok(None) => return Ok(Err(DeliveryFailure::ChannelDeleted)),
            Err(error) => return unusable(error),
        };
        let with_approval_url = channel.audience == Audience::Private;
        let event =
            match claims::load_event(&mut conn, &self.cipher, claim.event_id, with_approval_url)
                .await
            {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(Err(DeliveryFailure::EventMissing)),
                Err(error) => return unusable(error),
            };
        Ok(Ok((channel, event)))
    }

    async fn record_success(&self, claim: &Claim, channel: &Channel) -> NotifyResult<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(NotifyError::db("begin transaction"))?;
        if !claims::mark_delivered(&mut tx, claim).await? {
            tracing::debug!(delivery_id = %claim.id, "notification lease lost before delivery was recorded");
            return Ok(());
        }
        let recovered = claims::channel_succeeded(&mut tx, claim.channel_id).await?;
        claims::forget_approval_url_when_done(&mut tx, claim.event_id).await?;
        tx.commit()
            .await
            .map_err(NotifyError::db("commit delivery"))?;
        metrics::attempt(Some(channel.kind), Outcome::Delivered);
        tracing::debug!(
            delivery_id = %claim.id,
            event_id = %claim.event_id,
            channel_id = %claim.channel_id,
            attempt = claim.attempts,
            "notification delivered"
        );
        if recovered {
            tracing::info!(channel_id = %claim.channel_id, "notification channel recovered");
            metrics::channel_failing(claim.channel_id, false);
        }
        Ok(())
    }

    async fn record_failure(
        &self,
        claim: &Claim,
        kind: Option<ChannelKind>,
        failure: DeliveryFailure,
    ) -> NotifyResult<()> {
        let attempt = u32::try_from(claim.attempts).unwrap_or(u32::MAX);
        let give_up = failure.is_permanent() || attempt >= self.settings.max_attempts;
        let retry_in = (!give_up).then(|| self.retry_delay(attempt, &failure));
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(NotifyError::db("begin transaction"))?;
        if !claims::mark_failed(&mut tx, claim, &failure.to_string(), retry_in).await? {
            tracing::debug!(delivery_id = %claim.id, "notification lease lost before failure was recorded");
            return Ok(());
        }
        let (consecutive_failures, newly_failing) = if failure.counts_against_channel() {
            claims::channel_failed(&mut tx, claim.channel_id, self.settings.failing_after).await?
        } else {
            (0, false)
        };
        if give_up {
            claims::forget_approval_url_when_done(&mut tx, claim.event_id).await?;
        }
        tx.commit()
            .await
            .map_err(NotifyError::db("commit delivery failure"))?;
        let outcome = if give_up {
            Outcome::Failed
        } else {
            Outcome::Retried
        };
        metrics::attempt(kind, outcome);
        tracing::warn!(
            delivery_id = %claim.id,
            event_id = %claim.event_id,
            channel_id = %claim.channel_id,
            attempt,
            error = %failure,
            retry_in = ?retry_in,
            "notification delivery failed"
        );
        if newly_failing {
            tracing::warn!(
                channel_id = %claim.channel_id,
                consecutive_failures,
                "notification channel failing"
            );
            metrics::channel_failing(claim.channel_id, true);
        }
        Ok(())
    }

    /// The wait before the next attempt: the back-off, or longer when the receiver
    /// asked (`Retry-After`), never past the cap.
    fn retry_delay(&self, attempt: u32, failure: &DeliveryFailure) -> Duration {
        let asked = failure.retry_after().unwrap_or_default();
        backoff(
            self.settings.backoff_base,
            self.settings.backoff_cap,
            attempt,
        )
        .max(asked)
        .min(self.settings.backoff_cap)
    }

    /// Sets the gauge of every channel already failing (a restarted process would
    /// otherwise show none); best effort.
    async fn publish_failing_channels(&self) {
        let Ok(mut conn) = self.pool.acquire().await else {
            return;
        };
        if let Ok(channel_ids) = channels::failing_channels(&mut conn).await {
            for channel_id in channel_ids {
                metrics::channel_failing(channel_id, true);
            }
        }
    }
}

/// Turns an unreadable channel or event into a failed delivery; other errors (the
/// database) stay errors, and the lease brings the delivery back.
fn unusable<T>(error: NotifyError) -> NotifyResult<Result<T, DeliveryFailure>> {
    match error {
        NotifyError::Crypto(crypto) => Ok(Err(DeliveryFailure::Secrets(crypto))),
        NotifyError::Corrupt(detail) => {
            tracing::error!(%detail, "notification row cannot be read");
            Ok(Err(DeliveryFailure::Corrupt))
        }
        other => Err(other),
    }
}

/// Returns the wait after failed attempt `attempt` (1-based): `base` doubled per
/// earlier failure, capped, then jittered down to between half and all of it, so that
/// many deliveries failing together do not all retry together.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let full = base.saturating_mul(1u32 << doublings).min(cap);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_jitters_and_stays_under_the_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(600);
        for attempt in 1..=40 {
            let full = base.saturating_mul(1u32 << (attempt - 1).min(31)).min(cap);
            let wait = backoff(base, cap, attempt);
            assert!(wait <= full, "{attempt}: {wait:?}");
            assert!(wait >= full / 2, "{attempt}: {wait:?}");
        }
        assert!(backoff(base, cap, 1) <= Duration::from_secs(1));
        assert!(backoff(base, cap, 4) >= Duration::from_secs(4));
        assert!(backoff(base, cap, 0) <= Duration::from_secs(1));
    }
}
