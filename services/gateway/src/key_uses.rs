//! Batched `last_used_at` writes (issue 22).
//!
//! A request records its key's use in memory (key id → latest use) instead of writing
//! the row; [`keep_flushing`] writes what was recorded every [`FLUSH_INTERVAL`] in one
//! `UPDATE ... FROM unnest(...)`, and once more when the gateway stops. A key records a
//! use at most once a minute on a replica ([`crate::key_cache::CachedKey::claim_use`])
//! and the statement skips rows written within that minute by any replica, so a busy
//! key still costs one write a minute.
//!
//! A use stays recorded until a flush has written it: a failed flush (logged, never a
//! request's failure) is retried by the next one, and `GET /api/keys` shows the uses not
//! yet written on this replica. Uses of a gateway that dies without stopping are lost:
//! `last_used_at` is advisory.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::LAST_USED_RESOLUTION_SECS;
use crate::error::GatewayError;
use crate::repo;
use crate::state::AppState;

/// How often recorded uses are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Longest the last flush at shutdown may hold up the stop.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Most keys with a use waiting to be written; past it uses of further keys are
/// dropped (only keys that verified are recorded, so this is never reached in practice).
pub const MAX_PENDING: usize = 10_000;

/// The uses of keys not written yet.
#[derive(Debug, Default)]
pub struct KeyUses {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl KeyUses {
    /// Records a use of the key `key_id` at `at`, keeping the latest per key.
    pub fn record(&self, key_id: Uuid, at: DateTime<Utc>) {
        let mut pending = self.lock();
        if let Some(latest) = pending.get_mut(&key_id) {
            *latest = (*latest).max(at);
            return;
        }
        if pending.len() >= MAX_PENDING {
            tracing::debug!(%key_id, "too many api key uses waiting to be written, dropping one");
            return;
        }
        pending.insert(key_id, at);
    }

    /// Returns the latest use of each key not written yet. A use is forgotten only
    /// once written, so a read of the table that starts after this call sees every use
    /// missing from what it returns.
    pub fn unwritten(&self) -> HashMap<Uuid, DateTime<Utc>> {
        self.lock().clone()
    }

    /// Returns whether some use waits to be written.
    pub fn has_pending(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Writes the recorded uses in one statement and forgets those written; returns how
    /// many rows changed. Uses recorded meanwhile, and all of them when the write fails,
    /// wait for the next flush.
    pub async fn flush(&self, conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
        let mut batch: Vec<(Uuid, DateTime<Utc>)> =
            self.lock().iter().map(|(id, at)| (*id, *at)).collect();
        if batch.is_empty() {
            return Ok(0);
        }
        // Replicas flushing the same keys then lock their rows in one order: no deadlock.
        batch.sort_unstable_by_key(|(id, _)| *id);
        let (ids, used_at): (Vec<Uuid>, Vec<DateTime<Utc>>) = batch.iter().copied().unzip();
        let changed = repo::record_key_uses(conn, ids, used_at, LAST_USED_RESOLUTION_SECS).await?;
        let mut pending = self.lock();
        for (id, written) in batch {
            if pending.get(&id) == Some(&written) {
                pending.remove(&id);
            }
        }
        Ok(changed)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, DateTime<Utc>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes the recorded key uses every [`FLUSH_INTERVAL`] until `cancel` fires, then
/// once more: the server has finished its requests by then, so their uses are written
/// too.
pub async fn keep_flushing(state: AppState, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
        }
        // Abandoning a flush is safe: uses are forgotten only once written.
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = flush_logged(&state) => {}
        }
    }
    if tokio::time::timeout(FINAL_FLUSH_TIMEOUT, flush_logged(&state))
        .await
        .is_err()
    {
        tracing::warn!("gave up writing api key uses at shutdown");
    }
}

/// Flushes the recorded uses; a failure is logged (without connection details) and
/// left to the next flush.
async fn flush_logged(state: &AppState) {
    match state.flush_key_uses().await {
        Ok(changed) => tracing::debug!(changed, "api key uses written"),
        Err(GatewayError::Database { context, source }) => {
            tracing::warn!(context, error = %cudly_common::db::error_kind(&source), "cannot write api key uses");
        }
        Err(error) => tracing::warn!(%error, "cannot write api key uses"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn a_key_keeps_its_latest_use() {
        let uses = KeyUses::default();
        let key_id = Uuid::new_v4();
        let now = Utc::now();
        assert!(!uses.has_pending());
        uses.record(key_id, now);
        uses.record(key_id, now - TimeDelta::seconds(5));
        assert_eq!(uses.unwritten().get(&key_id), Some(&now));
        uses.record(key_id, now + TimeDelta::seconds(5));
        let later = now + TimeDelta::seconds(5);
        assert_eq!(uses.unwritten().get(&key_id), Some(&later));
        assert_eq!(uses.unwritten().len(), 1);
        assert!(uses.has_pending());
    }

    #[test]
    fn uses_waiting_are_bounded() {
        let uses = KeyUses::default();
        let now = Utc::now();
        for _ in 0..MAX_PENDING {
            uses.record(Uuid::new_v4(), now);
        }
        let late = Uuid::new_v4();
        uses.record(late, now);
        let unwritten = uses.unwritten();
        assert!(!unwritten.contains_key(&late));
        assert_eq!(unwritten.len(), MAX_PENDING);
    }
}
