//! Spend limits and separation of duties (docs/design/DOMAIN.md "Quotes, dry run and
//! spend limits", "Separation of duties"): pure checks on the guardrails an admin set.

use cudly_common::{ApiError, SpendRefusal};

/// The service's defaults for what an admin left unset: approvers must differ outside
/// dev mode; the price tolerance is `CUDLY_PRICE_TOLERANCE`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardrailDefaults {
    pub require_different_approver: bool,
    pub price_tolerance_percent: f64,
}

impl Default for GuardrailDefaults {
    fn default() -> Self {
        Self {
            require_different_approver: false,
            price_tolerance_percent: 1.0,
        }
    }
}

/// The guardrails in force: what an admin stored, with the service's defaults where
/// nothing was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrails {
    /// Most one root may commit in total (USD); `None`: no limit.
    pub max_execution_commitment: Option<f64>,
    /// Most the roots approved in the window may commit together; `None`: no limit.
    pub max_window_commitment: Option<f64>,
    pub window_days: u32,
    pub require_different_approver: bool,
    /// A price rise the run still accepts, in percent of the quote.
    pub price_tolerance_percent: f64,
}

impl Guardrails {
    /// Returns the price tolerance as a fraction (1 % is 0.01).
    pub fn price_tolerance(&self) -> f64 {
        self.price_tolerance_percent / 100.0
    }

    /// Refuses a root whose total commitment passes the per-execution limit.
    pub fn check_execution(&self, requested: f64) -> Result<(), ApiError> {
        check(
            "max_execution_commitment",
            self.max_execution_commitment,
            0.0,
            requested,
        )
    }

    /// Refuses an approval that would take the window's commitments past its limit.
    pub fn check_window(&self, committed: f64, requested: f64) -> Result<(), ApiError> {
        check(
            "max_window_commitment",
            self.max_window_commitment,
            committed,
            requested,
        )
    }

    /// Refuses an approval by the creator's own identity, or by a token holder who
    /// presents no key, when approvers must differ.
    pub fn check_approver(
        &self,
        creator_key_id: Option<&str>,
        approver_key_id: Option<&str>,
    ) -> Result<(), ApiError> {
        if !self.require_different_approver {
            return Ok(());
        }
        match approver_key_id {
            None => Err(ApiError::permission_denied(
                "approver must differ from creator: an approval token alone is not enough, \
                 present an API key of another identity with it",
            )),
            Some(approver) if Some(approver) == creator_key_id => Err(ApiError::permission_denied(
                "approver must differ from creator",
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Refuses a plan run whose total commitment passes the plan's own limit.
pub fn check_plan_run(max_per_run: Option<f64>, requested: f64) -> Result<(), ApiError> {
    check("max_commitment_per_run", max_per_run, 0.0, requested)
}

/// Float noise of sums of the same prices added in another order.
const SLACK: f64 = 1e-6;

fn check(name: &str, limit: Option<f64>, committed: f64, requested: f64) -> Result<(), ApiError> {
    match limit {
        Some(amount) if committed + requested > amount + SLACK => {
            Err(ApiError::spend_limit(SpendRefusal {
                limit: name.to_owned(),
                amount,
                committed,
                requested,
            }))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cudly_common::ErrorCode;

    fn guardrails() -> Guardrails {
        Guardrails {
            max_execution_commitment: Some(1_000.0),
            max_window_commitment: Some(5_000.0),
            window_days: 30,
            require_different_approver: true,
            price_tolerance_percent: 1.0,
        }
    }

    #[test]
    fn a_commitment_up_to_the_limit_passes_and_one_cent_more_is_refused() {
        let limits = guardrails();
        assert!(limits.check_execution(1_000.0).is_ok());
        let refused = limits.check_execution(1_000.01).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unprocessable);
        let spend = refused.spend.unwrap();
        assert_eq!(spend.limit, "max_execution_commitment");
        assert_eq!(spend.requested, 1_000.01);
        assert!(limits.check_window(4_000.0, 1_000.0).is_ok());
        let spend = limits
            .check_window(4_000.0, 1_000.5)
            .unwrap_err()
            .spend
            .unwrap();
        assert_eq!((spend.committed, spend.requested), (4_000.0, 1_000.5));
        assert!(check_plan_run(None, 1e12).is_ok());
        assert!(check_plan_run(Some(10.0), 10.5).is_err());
    }

    #[test]
    fn approvers_must_differ_only_when_the_flag_is_on() {
        let limits = guardrails();
        let creator = Some("key-a");
        assert_eq!(
            limits.check_approver(creator, creator).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
        assert!(limits.check_approver(creator, None).is_err());
        assert!(limits.check_approver(creator, Some("key-b")).is_ok());
        let relaxed = Guardrails {
            require_different_approver: false,
            ..limits
        };
        assert!(relaxed.check_approver(creator, creator).is_ok());
        assert!(relaxed.check_approver(creator, None).is_ok());
    }
}
