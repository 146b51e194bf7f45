//! Injected faults: latency, errors and dropped responses, matched per call by service,
//! operation and account, each applying `count` times or until removed.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{SandboxError, SandboxResult};
use crate::service::Service;

/// An error a fault answers with, in each service's own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultError {
    /// The service's throttling code (`Throttling`, `RequestLimitExceeded`,
    /// `ThrottlingException`, ...), which the SDK classifies as throttling.
    Throttle,
    /// A 500 with the service's internal error code.
    Internal,
    /// The service's access denied code.
    AccessDenied,
}

/// Which calls a fault applies to and what it does to them. Absent matchers match
/// every call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    #[serde(default)]
    pub service: Option<Service>,
    /// The AWS action name, e.g. `PurchaseReservedDBInstancesOffering`.
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    /// Delay before the call is processed.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Random extra delay, uniform in `0..=jitter_ms`.
    #[serde(default)]
    pub jitter_ms: Option<u64>,
    /// Reject the call with this error, without processing it.
    #[serde(default)]
    pub error: Option<FaultError>,
    /// Process the call, then close the connection without a response.
    #[serde(default)]
    pub drop_after_commit: bool,
    /// How many matching calls the fault applies to; absent means until removed.
    #[serde(default)]
    pub count: Option<u64>,
}

impl FaultSpec {
    /// Returns a fault matching every call of `operation` of `service`, doing nothing
    /// until given an effect.
    pub fn on(service: Service, operation: impl Into<String>) -> Self {
        Self {
            service: Some(service),
            operation: Some(operation.into()),
            ..Self::default()
        }
    }

    /// Returns a fault matching every call of `service`.
    pub fn on_service(service: Service) -> Self {
        Self {
            service: Some(service),
            ..Self::default()
        }
    }

    /// Returns the fault restricted to calls of `account_id`.
    pub fn for_account(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self
    }

    /// Returns the fault delaying calls by `latency_ms` plus up to `jitter_ms`.
    pub fn latency(mut self, latency_ms: u64, jitter_ms: u64) -> Self {
        self.latency_ms = Some(latency_ms);
        self.jitter_ms = (jitter_ms > 0).then_some(jitter_ms);
        self
    }

    /// Returns the fault rejecting calls with `error`.
    pub fn error(mut self, error: FaultError) -> Self {
        self.error = Some(error);
        self
    }

    /// Returns the fault dropping the connection after the call is processed.
    pub fn drop_after_commit(mut self) -> Self {
        self.drop_after_commit = true;
        self
    }

    /// Returns the fault applying to the next `count` matching calls only.
    pub fn times(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    pub(crate) fn validate(&self) -> SandboxResult<()> {
        if self.count == Some(0) {
            return Err(SandboxError::InvalidFault(
                "count must be at least 1".into(),
            ));
        }
        let has_effect = self.latency_ms.is_some()
            || self.jitter_ms.is_some()
            || self.error.is_some()
            || self.drop_after_commit;
        if !has_effect {
            return Err(SandboxError::InvalidFault(
                "a fault needs latency_ms, jitter_ms, error or drop_after_commit".into(),
            ));
        }
        Ok(())
    }

    fn matches(&self, service: Service, operation: &str, account_id: &str) -> bool {
        self.service.is_none_or(|wanted| wanted == service)
            && self
                .operation
                .as_deref()
                .is_none_or(|wanted| wanted == operation)
            && self
                .account_id
                .as_deref()
                .is_none_or(|wanted| wanted == account_id)
    }
}

/// Identifier of an installed fault, returned by the control API as `{"id": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

/// An installed fault and how many more calls it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    pub id: FaultId,
    pub spec: FaultSpec,
    /// `None`: until removed.
    pub remaining: Option<u64>,
}

/// What the matching faults do to one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FaultEffect {
    pub delay: Duration,
    pub error: Option<FaultError>,
    pub drop_after_commit: bool,
}

/// The installed faults.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    next_id: u64,
    faults: Vec<ActiveFault>,
}

impl FaultSet {
    pub fn add(&mut self, spec: FaultSpec) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.faults.push(ActiveFault {
            id,
            remaining: spec.count,
            spec,
        });
        id
    }

    pub fn remove(&mut self, id: FaultId) -> bool {
        let before = self.faults.len();
        self.faults.retain(|fault| fault.id != id);
        self.faults.len() != before
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.faults.clone()
    }

    /// Consumes one application of every fault matching the call and returns their
    /// combined effect: delays add up, the first error wins.
    pub fn take(&mut self, service: Service, operation: &str, account_id: &str) -> FaultEffect {
        let mut effect = FaultEffect::default();
        let mut rng = rand::rng();
        for fault in self
            .faults
            .iter_mut()
            .filter(|fault| fault.spec.matches(service, operation, account_id))
        {
            if let Some(remaining) = fault.remaining.as_mut() {
                *remaining = remaining.saturating_sub(1);
            }
            let jitter_ms = match fault.spec.jitter_ms {
                Some(jitter_ms) if jitter_ms > 0 => rng.random_range(0..=jitter_ms),
                _ => 0,
            };
            effect.delay +=
                Duration::from_millis(fault.spec.latency_ms.unwrap_or(0).saturating_add(jitter_ms));
            if effect.error.is_none() {
                effect.error = fault.spec.error;
            }
            effect.drop_after_commit |= fault.spec.drop_after_commit;
        }
        self.faults.retain(|fault| fault.remaining != Some(0));
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_fault_applies_that_many_times() {
        let mut faults = FaultSet::default();
        faults.add(
            FaultSpec::on(Service::Rds, "PurchaseReservedDBInstancesOffering")
                .error(FaultError::Throttle)
                .times(2),
        );
        for _ in 0..2 {
            let effect = faults.take(Service::Rds, "PurchaseReservedDBInstancesOffering", "1");
            assert_eq!(effect.error, Some(FaultError::Throttle));
        }
        let effect = faults.take(Service::Rds, "PurchaseReservedDBInstancesOffering", "1");
        assert_eq!(effect, FaultEffect::default());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn a_fault_ignores_other_services_operations_and_accounts() {
        let mut faults = FaultSet::default();
        faults.add(
            FaultSpec::on(Service::Ec2, "CreateTags")
                .for_account("111")
                .drop_after_commit(),
        );
        assert!(
            !faults
                .take(Service::Redshift, "CreateTags", "111")
                .drop_after_commit
        );
        assert!(
            !faults
                .take(Service::Ec2, "CreateTags", "222")
                .drop_after_commit
        );
        assert!(
            faults
                .take(Service::Ec2, "CreateTags", "111")
                .drop_after_commit
        );
    }

    #[test]
    fn a_fault_without_effect_is_invalid() {
        assert!(FaultSpec::on_service(Service::Sts).validate().is_err());
        assert!(
            FaultSpec::on_service(Service::Sts)
                .times(0)
                .latency(1, 0)
                .validate()
                .is_err()
        );
    }
}
