//! "Purchases of the same offering and count in the same account and region are made
//! one at a time" (docs/design/DOMAIN.md): a Postgres session advisory lock per (account, region,
//! service, offering, count), held on its own pooled connection from before the
//! reconciliation look-up until the commitment is recorded, across processes.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio_util::sync::CancellationToken;

use crate::error::{ExecutorError, ExecutorResult};

/// Pause between two tries of a held lock.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A held offering lock. Dropping it without [`OfferingLock::release`] closes its
/// connection, which releases the lock too (never back into the pool while held).
pub struct OfferingLock {
    key: String,
    conn: Option<PoolConnection<Postgres>>,
}

impl OfferingLock {
    /// Returns the lock key of a purchase.
    pub fn key(
        account_id: &str,
        region: &str,
        service: &str,
        offering_id: &str,
        count: u32,
    ) -> String {
        format!("cudly-purchase|{account_id}|{region}|{service}|{offering_id}|{count}")
    }

    /// Waits for the lock; None when `stop` fires first.
    pub async fn acquire(
        pool: &PgPool,
        key: String,
        stop: &CancellationToken,
    ) -> ExecutorResult<Option<Self>> {
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
                return Ok(Some(Self {
                    key,
                    conn: Some(conn),
                }));
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(None),
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
