//! The notifications the planner raises (docs/design/DOMAIN.md "Plans"): `plan_paused`,
//! `recommendations_failed` and the `step_upcoming` reminder. Each is staged in the
//! planner's `notification_relay` in the transaction of the change that causes it, so
//! that neither commits without the other; the relay (`app.rs`) forwards it to the
//! executor, which owns the channels. No event holds a secret: reasons and errors are
//! the sanitised texts the planner already stores.

use chrono::{DateTime, Utc};
use cudly_notify::event::{AccountFailure, PlanPaused, RecommendationsFailed, StepUpcoming};
use cudly_notify::{Event, EventData, NotifyError};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{FIRE_BATCH, Planner};
use crate::domain::plan::Plan;
use crate::domain::recommendations::CollectableAccount;
use crate::error::{PlannerError, PlannerResult, db};
use crate::repo;

/// Stages `event` for the relay on `conn` (the caller's transaction).
pub(super) async fn stage(conn: &mut PgConnection, event: &Event) -> PlannerResult<()> {
    cudly_notify::relay::stage(conn, event)
        .await
        .map_err(|error| match error {
            NotifyError::Db { context, source } => PlannerError::Database { context, source },
            other => {
                PlannerError::Internal(format!("notification not staged: {}", other.log_text()))
            }
        })
}

/// Returns the event of a plan the planner paused itself, about its target accounts.
pub(super) fn plan_paused(plan: &Plan, reason: &str, targets: &[Uuid]) -> Event {
    Event::new(EventData::PlanPaused(PlanPaused {
        plan_name: plan.name.clone(),
        reason: reason.to_owned(),
    }))
    .for_plan(plan.id)
    .for_accounts(targets.iter().copied())
}

/// Returns the event of a refresh in which the `failed` accounts (id, error) kept
/// their previous set, each named `name (external id)` when the refresh knew it.
pub(super) fn recommendations_failed(
    accounts: &[CollectableAccount],
    failed: &[(Uuid, &str)],
) -> Event {
    let mut failures: Vec<AccountFailure> = failed
        .iter()
        .map(|(account_id, error)| AccountFailure {
            account: account_label(accounts, *account_id),
            error: (*error).to_owned(),
        })
        .collect();
    failures.sort_by(|left, right| left.account.cmp(&right.account));
    let data = RecommendationsFailed { failures };
    Event::new(EventData::RecommendationsFailed(data))
        .for_accounts(failed.iter().map(|(account_id, _)| *account_id))
}

/// Returns how people know an account: `name (external id)`, else its id.
fn account_label(accounts: &[CollectableAccount], account_id: Uuid) -> String {
    match accounts.iter().find(|account| account.id == account_id) {
        Some(account) => cudly_common::names::account_label(&account.name, &account.external_id),
        None => account_id.to_string(),
    }
}

impl Planner {
    /// Stages the `step_upcoming` reminder of each plan whose next step fires within
    /// its `notification_days_before` days after `now` and was not reminded of yet (at
    /// most [`FIRE_BATCH`] a call; the rest at the next), marking each step reminded in
    /// the same transaction, which first checks the sweeper's fencing token. Returns
    /// how many were staged.
    pub(super) async fn stage_reminders(
        &self,
        task: &str,
        token: i64,
        now: DateTime<Utc>,
    ) -> PlannerResult<u32> {
        let mut tx = self.begin().await?;
        repo::check_fencing(&mut tx, task, token).await?;
        let due = repo::take_due_reminders(&mut tx, now, FIRE_BATCH).await?;
        let mut staged = 0u32;
        for reminder in &due {
            let Some(fires_at) = reminder.fires_at else {
                continue;
            };
            // Empty for a plan on all enabled accounts: the event is then about no
            // account in particular (resolving them takes the accounts service).
            let account_ids = repo::plan_account_ids(&mut tx, reminder.plan_id).await?;
            let event = Event::new(EventData::StepUpcoming(StepUpcoming {
                plan_name: reminder.plan_name.clone(),
                step_number: u32::try_from(reminder.step_number).unwrap_or_default(),
                fires_on: fires_at.date_naive(),
                needs_approval: !reminder.auto_purchase,
            }))
            .for_plan(reminder.plan_id)
            .for_accounts(account_ids);
            stage(&mut tx, &event).await?;
            staged += 1;
            tracing::info!(
                plan_id = %reminder.plan_id,
                step = reminder.step_number,
                %fires_at,
                "plan step reminder staged"
            );
        }
        tx.commit().await.map_err(db("commit step reminders"))?;
        Ok(staged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: u128, name: &str, external_id: &str) -> CollectableAccount {
        CollectableAccount {
            id: Uuid::from_u128(id),
            name: name.to_owned(),
            external_id: external_id.to_owned(),
            is_org_root: false,
            bastion_id: None,
        }
    }

    #[test]
    fn a_failed_refresh_names_each_account_it_knows_and_is_about_them() {
        let accounts = [account(1, "prod", "123456789012")];
        let unknown = Uuid::from_u128(2);
        let event = recommendations_failed(
            &accounts,
            &[
                (Uuid::from_u128(1), "access denied"),
                (unknown, "throttled"),
            ],
        );
        let EventData::RecommendationsFailed(data) = &event.data else {
            panic!("{event:?}");
        };
        let labels: Vec<&str> = data
            .failures
            .iter()
            .map(|failure| failure.account.as_str())
            .collect();
        assert_eq!(
            labels,
            [unknown.to_string().as_str(), "prod (123456789012)"]
        );
        assert_eq!(data.failures[1].error, "access denied");
        assert_eq!(event.account_ids, [Uuid::from_u128(1), unknown]);
        assert_eq!(event.plan_id, None);
    }
}
