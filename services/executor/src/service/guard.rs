//! Spend limits and separation of duties at creation, approval and retry, and the
//! guardrails an admin reads and sets (docs/design/DOMAIN.md "Quotes, dry run and spend
//! limits", "Separation of duties").

use cudly_common::audit::Actor;
use cudly_common::{ApiError, ErrorCode};
use serde::Deserialize;
use sqlx::PgConnection;

use crate::domain::limits::{Guardrails, check_plan_run};
use crate::domain::quotes::QuoteTotal;
use crate::error::{ExecutorError, ExecutorResult};
use crate::metrics;
use crate::repo::guardrails::{self, StoredGuardrails};
use crate::service::Executor;
use crate::service::create::CreateRequest;

/// The guardrails as shown: what is in force and what the window holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailsView {
    pub guardrails: Guardrails,
    pub committed_in_window: f64,
}

/// A change of the guardrails (PUT: every field, nulls for "no limit" or "default").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsUpdate {
    pub max_execution_commitment: Option<f64>,
    pub max_window_commitment: Option<f64>,
    pub window_days: Option<u32>,
    pub require_different_approver: Option<bool>,
    pub price_tolerance_percent: Option<f64>,
}

impl GuardrailsUpdate {
    /// Returns the row to store, after checking every field (400 naming it).
    fn checked(&self) -> Result<StoredGuardrails, ApiError> {
        for (field, amount) in [
            ("max_execution_commitment", self.max_execution_commitment),
            ("max_window_commitment", self.max_window_commitment),
        ] {
            if let Some(amount) = amount
                && !(amount.is_finite() && amount >= 0.0)
            {
                return Err(ApiError::invalid_field(
                    field,
                    "must be a number of at least 0",
                ));
            }
        }
        let window_days = self.window_days.unwrap_or(30);
        if !(1..=366).contains(&window_days) {
            return Err(ApiError::invalid_field(
                "window_days",
                "must be from 1 to 366",
            ));
        }
        if let Some(percent) = self.price_tolerance_percent
            && !(percent.is_finite() && (0.0..=100.0).contains(&percent))
        {
            return Err(ApiError::invalid_field(
                "price_tolerance_percent",
                "must be from 0 to 100",
            ));
        }
        Ok(StoredGuardrails {
            max_execution_commitment: self.max_execution_commitment,
            max_window_commitment: self.max_window_commitment,
            window_days: i32::try_from(window_days).unwrap_or(30),
            require_different_approver: self.require_different_approver,
            price_tolerance_percent: self.price_tolerance_percent,
        })
    }
}

impl Executor {
    /// Returns the guardrails in force.
    pub(crate) async fn guardrails(&self, conn: &mut PgConnection) -> ExecutorResult<Guardrails> {
        Ok(guardrails::get(conn)
            .await?
            .effective(self.settings().guardrail_defaults))
    }

    /// Locks the guardrails (approvals queue here) and returns them.
    pub(crate) async fn lock_guardrails(
        &self,
        tx: &mut PgConnection,
    ) -> ExecutorResult<Guardrails> {
        Ok(guardrails::lock(tx)
            .await?
            .effective(self.settings().guardrail_defaults))
    }

    /// Checks a new root's total against the limits; an approved creation also against
    /// the window, under the guardrails lock held until `tx` ends.
    pub(crate) async fn check_creation_limits(
        &self,
        tx: &mut PgConnection,
        request: &CreateRequest,
        total: &QuoteTotal,
    ) -> ExecutorResult<()> {
        let limits = if request.auto_approve {
            self.lock_guardrails(tx).await?
        } else {
            self.guardrails(tx).await?
        };
        refusing(limits.check_execution(total.total_commitment))?;
        refusing(check_plan_run(
            request.max_commitment_per_run,
            total.total_commitment,
        ))?;
        if request.auto_approve {
            if self.settings().auto_purchase_needs_window_limit
                && limits.max_window_commitment.is_none()
            {
                return Err(ApiError::new(
                    ErrorCode::Unprocessable,
                    "auto-purchase needs a window limit: set max_window_commitment in the \
                     guardrails first",
                )
                .into());
            }
            self.check_window(tx, &limits, total.total_commitment)
                .await?;
        }
        Ok(())
    }

    /// Checks that approving `requested` keeps the window within its limit; the caller
    /// holds the guardrails lock.
    pub(crate) async fn check_window(
        &self,
        tx: &mut PgConnection,
        limits: &Guardrails,
        requested: f64,
    ) -> ExecutorResult<()> {
        if limits.max_window_commitment.is_none() {
            return Ok(());
        }
        let committed = guardrails::committed_in_window(tx, limits.window_days).await?;
        refusing(limits.check_window(committed, requested))?;
        Ok(())
    }

    /// Returns the guardrails with what the window holds now.
    pub async fn get_guardrails(&self) -> ExecutorResult<GuardrailsView> {
        let mut conn = self.conn().await?;
        let guardrails = self.guardrails(&mut conn).await?;
        let committed_in_window =
            guardrails::committed_in_window(&mut conn, guardrails.window_days).await?;
        Ok(GuardrailsView {
            guardrails,
            committed_in_window,
        })
    }

    /// Stores new guardrails (every field; 400 naming a bad one, nothing changed) and
    /// logs who changed them.
    pub async fn put_guardrails(
        &self,
        update: &GuardrailsUpdate,
        actor: &str,
        actor_key_id: Option<&str>,
        trail: &Actor,
    ) -> ExecutorResult<GuardrailsView> {
        let next = update.checked()?;
        if actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        let mut tx = self.begin().await?;
        let before = guardrails::get(&mut tx).await?;
        guardrails::update(&mut tx, &next, actor, actor_key_id).await?;
        let change = cudly_common::audit::Change {
            action: "guardrails.update",
            target_type: "guardrails",
            target_id: "guardrails".to_owned(),
            before: Some(cudly_common::audit::digest(&before)),
            after: Some(cudly_common::audit::digest(&next)),
        };
        super::audit(&mut tx, trail, actor, actor_key_id, change).await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing the guardrails"))?;
        tracing::info!(by = %actor, "guardrails changed");
        self.get_guardrails().await
    }
}

/// Counts a spend-limit refusal on its way out.
fn refusing(result: Result<(), ApiError>) -> Result<(), ApiError> {
    result.inspect_err(metrics::limit_refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let valid = GuardrailsUpdate {
            max_execution_commitment: Some(10.0),
            max_window_commitment: None,
            window_days: Some(7),
            require_different_approver: Some(true),
            price_tolerance_percent: Some(2.5),
        };
        assert!(valid.checked().is_ok());
        let cases = [
            (
                GuardrailsUpdate {
                    max_execution_commitment: Some(-1.0),
                    ..valid.clone()
                },
                "max_execution_commitment",
            ),
            (
                GuardrailsUpdate {
                    max_window_commitment: Some(f64::NAN),
                    ..valid.clone()
                },
                "max_window_commitment",
            ),
            (
                GuardrailsUpdate {
                    window_days: Some(0),
                    ..valid.clone()
                },
                "window_days",
            ),
            (
                GuardrailsUpdate {
                    price_tolerance_percent: Some(101.0),
                    ..valid.clone()
                },
                "price_tolerance_percent",
            ),
        ];
        for (update, field) in cases {
            let error = update.checked().unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{update:?}");
        }
    }
}
