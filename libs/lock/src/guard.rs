use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::LockResult;
use crate::lock::{compare_and_delete, compare_and_extend, valid_until};

/// A held lock. While it lives, a background task extends the lock every third of its
/// TTL.
///
/// The guard turns lost, for good, when an extension finds the key no longer holds our
/// token, or when no extension succeeded before the TTL would have run out (Redis
/// unreachable or slow). A holder must stop acting once [`LockGuard::is_held`] is false
/// or [`LockGuard::lost`] resolves, and must pass [`LockGuard::fencing_token`] with
/// every write so stale holders are refused downstream.
///
/// Dropping the guard stops renewing but does not delete the key: it stays until its
/// TTL runs out. Call [`LockGuard::release`] to hand the lock over at once.
pub struct LockGuard {
    connection: ConnectionManager,
    key: String,
    holder_token: String,
    fencing_token: i64,
    ttl: Duration,
    state: Arc<HoldState>,
    renew_task: JoinHandle<()>,
}

/// What the guard and its renew task share.
struct HoldState {
    /// Cancelled once the lock is lost (or the guard is gone); never reset.
    lost: CancellationToken,
    /// Cancelled when renewal is paused; the renew task then only watches the TTL.
    renewal_paused: CancellationToken,
    /// Until when the lock is surely ours, from the last successful extension.
    valid_until: Mutex<Instant>,
}

impl HoldState {
    fn valid_until(&self) -> Instant {
        *self.valid_until.lock().unwrap()
    }

    fn extend_validity(&self, until: Instant) {
        let mut valid_until = self.valid_until.lock().unwrap();
        if until > *valid_until {
            *valid_until = until;
        }
    }

    /// Returns false (and marks the lock lost) once the validity has run out.
    fn check_validity(&self, key: &str) -> bool {
        if self.lost.is_cancelled() {
            return false;
        }
        if Instant::now() < self.valid_until() {
            return true;
        }
        self.mark_lost(key, "lock ttl ran out without a successful renewal");
        false
    }

    fn mark_lost(&self, key: &str, reason: &'static str) {
        if !self.lost.is_cancelled() {
            self.lost.cancel();
            warn!(%key, reason, "lock lost");
        }
    }
}

impl LockGuard {
    pub(crate) fn start(
        connection: ConnectionManager,
        key: String,
        holder_token: String,
        fencing_token: i64,
        ttl: Duration,
        valid_until: Instant,
    ) -> Self {
        let state = Arc::new(HoldState {
            lost: CancellationToken::new(),
            renewal_paused: CancellationToken::new(),
            valid_until: Mutex::new(valid_until),
        });
        let renew_task = tokio::spawn(renew_until_lost(
            connection.clone(),
            key.clone(),
            holder_token.clone(),
            ttl,
            state.clone(),
        ));
        Self {
            connection,
            key,
            holder_token,
            fencing_token,
            ttl,
            state,
            renew_task,
        }
    }

    /// Returns the fencing token drawn for this hold; later holders get greater ones.
    pub fn fencing_token(&self) -> i64 {
        self.fencing_token
    }

    /// Returns the random token stored in the lock key while this guard holds it.
    pub fn holder_token(&self) -> &str {
        &self.holder_token
    }

    /// Returns the Redis key of the lock.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Returns the TTL the lock is set and extended with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Returns whether the lock is still held, as far as is known without asking Redis:
    /// false once renewal found the lock taken, or once the TTL has run out since the
    /// last successful extension.
    pub fn is_held(&self) -> bool {
        self.state.check_validity(&self.key)
    }

    /// Resolves when the lock is lost (for `tokio::select!`), including when the TTL
    /// runs out after [`LockGuard::stop_renewing`].
    pub async fn lost(&self) {
        loop {
            let deadline = self.state.valid_until();
            tokio::select! {
                _ = self.state.lost.cancelled() => return,
                _ = sleep_until(deadline) => {
                    if !self.state.check_validity(&self.key) {
                        return;
                    }
                }
            }
        }
    }

    /// Returns a token cancelled when the loss of the lock is noticed (by renewal, or by
    /// `is_held`, `lost` or `check_held`) or when the guard is released or dropped, for
    /// handing to work that must stop with the lock.
    pub fn lost_token(&self) -> CancellationToken {
        self.state.lost.child_token()
    }

    /// Asks Redis now, extending the lock if it still holds our token (compare and
    /// extend). Returns false, and marks the guard lost, when the key is no longer ours
    /// or the answer came after the TTL would have run out. A lost guard stays lost:
    /// this returns false without asking Redis.
    pub async fn check_held(&self) -> LockResult<bool> {
        if !self.state.check_validity(&self.key) {
            return Ok(false);
        }
        let remaining = self.state.valid_until() - Instant::now();
        let sent_at = Instant::now();
        let mut connection = self.connection.clone();
        let extend = compare_and_extend(&mut connection, &self.key, &self.holder_token, self.ttl);
        match timeout(remaining, extend).await {
            Ok(Ok(true)) => {
                self.state.extend_validity(valid_until(sent_at, self.ttl));
                Ok(self.state.check_validity(&self.key))
            }
            Ok(Ok(false)) => {
                self.state
                    .mark_lost(&self.key, "lock taken by another holder");
                Ok(false)
            }
            Ok(Err(error)) => Err(error),
            Err(_elapsed) => {
                self.state.mark_lost(
                    &self.key,
                    "lock check did not finish before the ttl ran out",
                );
                Ok(false)
            }
        }
    }

    /// Stops extending the lock, as a paused or stuck holder would. The guard keeps
    /// watching the TTL and turns lost when it runs out (unless `check_held` extends it).
    /// Meant for tests that simulate a paused holder.
    pub fn stop_renewing(&self) {
        self.state.renewal_paused.cancel();
    }

    /// Stops renewing and deletes the lock if it still holds our token (compare and
    /// delete). Returns false when the lock was no longer ours, in which case nothing
    /// is deleted.
    pub async fn release(self) -> LockResult<bool> {
        self.renew_task.abort();
        let mut connection = self.connection.clone();
        let deleted = compare_and_delete(&mut connection, &self.key, &self.holder_token).await?;
        debug!(key = %self.key, fencing_token = self.fencing_token, deleted, "lock released");
        Ok(deleted)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renew_task.abort();
        // Nothing renews the lock any more, so work watching it must stop.
        self.state.lost.cancel();
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LockGuard")
            .field("key", &self.key)
            .field("fencing_token", &self.fencing_token)
            .field("ttl", &self.ttl)
            .field("lost", &self.state.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Extends the lock every third of the TTL until it is lost or the guard goes away.
///
/// A failed extension (Redis error) is retried every tenth of the TTL; an extension
/// refused because the key is no longer ours, or no success before the TTL would have run
/// out, marks the lock lost.
async fn renew_until_lost(
    mut connection: ConnectionManager,
    key: String,
    holder_token: String,
    ttl: Duration,
    state: Arc<HoldState>,
) {
    let renew_interval = ttl / 3;
    let retry_interval = (ttl / 10).max(Duration::from_millis(5));
    let mut next_attempt = Instant::now() + renew_interval;
    loop {
        let paused = state.renewal_paused.is_cancelled();
        let deadline = state.valid_until();
        let wake_at = if paused {
            deadline
        } else {
            next_attempt.min(deadline)
        };
        tokio::select! {
            _ = state.lost.cancelled() => return,
            _ = state.renewal_paused.cancelled(), if !paused => continue,
            _ = sleep_until(wake_at) => {}
        }
        if !state.check_validity(&key) {
            return;
        }
        let now = Instant::now();
        if paused || now < next_attempt {
            continue;
        }
        let remaining = state.valid_until() - now;
        let extend = compare_and_extend(&mut connection, &key, &holder_token, ttl);
        match timeout(remaining, extend).await {
            Ok(Ok(true)) => {
                state.extend_validity(valid_until(now, ttl));
                next_attempt = now + renew_interval;
            }
            Ok(Ok(false)) => {
                state.mark_lost(&key, "lock taken by another holder");
                return;
            }
            Ok(Err(error)) => {
                warn!(%key, %error, "lock renewal failed, retrying");
                next_attempt = Instant::now() + retry_interval;
            }
            Err(_elapsed) => {
                state.mark_lost(&key, "lock renewal did not finish before the ttl ran out");
                return;
            }
        }
    }
}
