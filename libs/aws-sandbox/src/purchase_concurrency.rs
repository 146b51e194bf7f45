//! How many purchase calls the sandbox has open at once, and the most it had open at
//! once, so a load test can prove a client never has more purchases in flight against
//! AWS than its limit (docs/design/SANDBOX.md "Control API").

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::operations;
use crate::service::Service;

/// The purchase calls open now and at most, as `GET /_sandbox/purchase-concurrency`
/// answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseConcurrency {
    /// Purchase calls received and not yet answered.
    pub in_flight: usize,
    /// The most purchase calls open at once since the start or the last peak reset.
    pub peak: usize,
}

/// The counters behind [`PurchaseConcurrency`]. Atomics rather than the state lock: a
/// call is counted before it waits for that lock and while it sleeps through an injected
/// latency, and reading the counters never waits for a call.
#[derive(Debug, Default)]
pub(crate) struct PurchaseGauge {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl PurchaseGauge {
    /// Counts the call as open until the returned guard drops, when it is a purchase
    /// ([`operations::is_purchase`]); any other call is not counted.
    pub fn enter(&self, service: Service, operation: &str) -> Option<OpenPurchase<'_>> {
        operations::is_purchase(service, operation).then(|| self.open())
    }

    fn open(&self) -> OpenPurchase<'_> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(in_flight, Ordering::SeqCst);
        OpenPurchase { gauge: self }
    }

    pub fn read(&self) -> PurchaseConcurrency {
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        // A call read between its increment and its peak update is in the peak too.
        let peak = self.peak.load(Ordering::SeqCst).max(in_flight);
        PurchaseConcurrency { in_flight, peak }
    }

    /// Lowers the peak to the calls open now. The peak is zeroed and then raised to
    /// them, rather than set to them, so a call opened in between raises it as well: the
    /// peak is never below a level reached since the reset.
    pub fn reset_peak(&self) {
        self.peak.store(0, Ordering::SeqCst);
        self.peak
            .fetch_max(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// One open purchase call. Dropping it closes the call, however the call ends: answered,
/// refused, dropped by a fault, or its handling dropped unfinished (at shutdown).
pub(crate) struct OpenPurchase<'a> {
    gauge: &'a PurchaseGauge,
}

impl Drop for OpenPurchase<'_> {
    fn drop(&mut self) {
        self.gauge.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concurrency(in_flight: usize, peak: usize) -> PurchaseConcurrency {
        PurchaseConcurrency { in_flight, peak }
    }

    #[test]
    fn open_purchases_count_until_dropped_and_the_peak_stays() {
        let gauge = PurchaseGauge::default();
        let first = gauge.enter(Service::Rds, "PurchaseReservedDBInstancesOffering");
        let second = gauge.enter(Service::Savingsplans, "CreateSavingsPlan");
        assert!(first.is_some() && second.is_some());
        assert_eq!(gauge.read(), concurrency(2, 2));
        drop(first);
        assert_eq!(gauge.read(), concurrency(1, 2));
        drop(second);
        assert_eq!(gauge.read(), concurrency(0, 2));
    }

    #[test]
    fn other_calls_are_not_counted() {
        let gauge = PurchaseGauge::default();
        assert!(
            gauge
                .enter(Service::Rds, "DescribeReservedDBInstances")
                .is_none()
        );
        assert!(gauge.enter(Service::Sts, "GetCallerIdentity").is_none());
        assert_eq!(gauge.read(), concurrency(0, 0));
    }

    #[test]
    fn a_reset_lowers_the_peak_to_the_calls_open_now() {
        let gauge = PurchaseGauge::default();
        let open = gauge.enter(Service::Redshift, "PurchaseReservedNodeOffering");
        let closed = gauge.enter(Service::Ec2, "PurchaseReservedInstancesOffering");
        drop(closed);
        gauge.reset_peak();
        assert_eq!(gauge.read(), concurrency(1, 1));
        drop(open);
        gauge.reset_peak();
        assert_eq!(gauge.read(), concurrency(0, 0));
    }
}
