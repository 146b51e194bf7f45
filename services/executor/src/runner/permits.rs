//! The fan-out's three bounds (docs/design/DOMAIN.md "Fan-out"): account runs across the
//! process (`CUDLY_MAX_ACCOUNT_PARALLELISM`), items within one account run
//! (`CUDLY_MAX_ITEM_PARALLELISM`), and purchases in flight across the process
//! (`CUDLY_MAX_PURCHASE_CALLS`), so that raising either parallelism never multiplies into
//! unbounded purchase calls (lock connections have their own slots: `lock::LockSlots`).
//! Every wait is timed.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Permit};

/// Waits for a permit of `kind` from `acquire`; None when shutdown (or the run's stop)
/// came first or the semaphore closed.
pub async fn wait<T>(
    kind: Permit,
    stop: &CancellationToken,
    acquire: impl Future<Output = Result<T, AcquireError>>,
) -> Option<T> {
    let started = Instant::now();
    let permit = tokio::select! {
        _ = stop.cancelled() => return None,
        permit = acquire => permit.ok()?,
    };
    metrics::permit_waited(kind, started.elapsed());
    Some(permit)
}

/// The process-wide bound on purchases in flight.
pub struct PurchaseCalls(Arc<Semaphore>);

impl PurchaseCalls {
    pub fn new(bound: usize) -> Self {
        Self(Arc::new(Semaphore::new(bound)))
    }

    /// Waits for a purchase call permit; None when `stop` came first.
    pub async fn acquire(&self, stop: &CancellationToken) -> Option<CallPermit> {
        let permit = wait(Permit::PurchaseCall, stop, self.0.clone().acquire_owned()).await?;
        metrics::purchase_calls_in_flight(1.0);
        Some(CallPermit { _permit: permit })
    }
}

/// One purchase in flight: held from before its purchase lock until its outcome is
/// recorded (or the item's turn ends).
pub struct CallPermit {
    /// Given back to the process-wide bound when dropped.
    _permit: OwnedSemaphorePermit,
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        metrics::purchase_calls_in_flight(-1.0);
    }
}
