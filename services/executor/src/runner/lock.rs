//! "Purchases of the same shape and count in the same account and region are made one at
//! a time" (docs/design/DOMAIN.md "Idempotency"): a Postgres session advisory lock per
//! (account, the purchase's candidate shape), held on its own pooled connection from
//! before the reconciliation look-up until the commitment is recorded, across processes.
//! The shape is exactly what a reconciliation compares among untagged commitments
//! (`PurchaseSpec::candidate_shape`), so two purchases it could take for one another
//! never run at once. Each held lock holds a connection, so the locks held at once in a
//! process are bounded by a semaphore of lock slots ([`LockSlots`]) that the pool is
//! sized for: items running in parallel never drain the pool of the connections their
//! statements need.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::{ExecutorError, ExecutorResult};
use crate::metrics::{self, Permit};

/// The purchase locks this process may hold at once, one connection each.
pub type LockSlots = Arc<Semaphore>;

/// Pause between two tries of a held lock.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How waiting for a purchase lock ended.
pub enum LockWait {
    Held(OfferingLock),
    /// Shutdown began first.
    Stopped,
    /// Another run held it past the longest wait.
    TimedOut,
}

/// A held offering lock. Dropping it without [`OfferingLock::release`] closes its
/// connection, which releases the lock too (never back into the pool while held).
pub struct OfferingLock {
    key: String,
    conn: Option<PoolConnection<Postgres>>,
    /// Given back with the connection.
    _slot: OwnedSemaphorePermit,
}

impl OfferingLock {
    /// Returns the lock key of a purchase of `candidate_shape` (service, region and the
    /// attributes its reconciliation compares) in an account.
    pub fn key(account_id: &str, candidate_shape: &str) -> String {
        format!("cudly-purchase|{account_id}|{candidate_shape}")
    }

    /// Waits for a lock slot and the lock, at most `max_wait` in all: a holder that
    /// keeps it longer is stuck, and the waiting run must not keep its lease alive
    /// behind it forever.
    pub async fn acquire(
        pool: &PgPool,
        slots: &LockSlots,
        key: String,
        stop: &CancellationToken,
        max_wait: Duration,
    ) -> ExecutorResult<LockWait> {
        let started = tokio::time::Instant::now();
        let deadline = started + max_wait;
        let slot = tokio::select! {
            _ = stop.cancelled() => return Ok(LockWait::Stopped),
            slot = tokio::time::timeout_at(deadline, slots.clone().acquire_owned()) => match slot {
                Ok(Ok(slot)) => slot,
                Ok(Err(_)) => return Ok(LockWait::Stopped),
                Err(_) => return Ok(LockWait::TimedOut),
            },
        };
        metrics::permit_waited(Permit::LockSlot, started.elapsed());
        let mut conn = pool.acquire().await.map_err(ExecutorError::db(
            "acquiring a connection for a purchase lock",
        ))?;
        loop {
            let taken: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(ExecutorError::db("taking a purchase lock"))?;
            if taken {
                return Ok(LockWait::Held(Self {
                    key,
                    conn: Some(conn),
                    _slot: slot,
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(LockWait::TimedOut);
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(LockWait::Stopped),
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let released =
            sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&self.key)
                .fetch_one(&mut *conn)
                .await;
        if !matches!(released, Ok(true)) {
            // Never hand a connection that may still hold the lock back to the pool.
            drop(conn.detach());
        }
    }
}

impl Drop for OfferingLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}
