//! The notifications the planner raises: staged in its `notification_relay` with the
//! change that causes them, then handed by its relay to the (fake) executor, which owns
//! the channels. A pause raises `plan_paused` once; each upcoming step is reminded of
//! once (`step_upcoming`). Delivery through the real executor to channels is the whole
//! system's tests'.

use std::time::Duration as StdDuration;

use chrono::Duration;
use cudly_proto::planner::v1 as pb;
use cudly_testkit::eventually;
use serde_json::Value;
use uuid::Uuid;

use crate::grpc::{plan_input, rds, t0};
use crate::support::PlannerUnderTest;

/// One staged row of the planner's relay.
#[derive(Debug, sqlx::FromRow)]
struct Staged {
    id: Uuid,
    plan_id: Option<Uuid>,
    account_ids: Vec<Uuid>,
    payload: Value,
}

impl PlannerUnderTest {
    /// Returns the events staged in the planner's relay, oldest first.
    async fn staged(&self) -> Vec<Staged> {
        sqlx::query_as(
            "SELECT id, plan_id, account_ids, payload FROM notification_relay \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool().await)
        .await
        .unwrap()
    }

    /// Waits until the relay has handed every staged event to the executor.
    async fn relay_drained(&self) {
        let pool = self.pool().await;
        eventually("an empty relay", StdDuration::from_secs(30), || {
            let pool = pool.clone();
            async move {
                let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_relay")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
                (staged == 0).then_some(())
            }
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_plan_the_planner_pauses_stages_one_plan_paused_event_kept_until_relayed() {
    let planner = PlannerUnderTest::start().await;
    // The executor is down: what the planner staged stays staged.
    *planner.executor.refuse_notifications.lock().unwrap() = true;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(4, false)],
        )
        .await;
    // The step's execution never completes: fired three times, then the plan pauses.
    for (week, token) in (0..3).zip(1..) {
        let report = planner
            .fire(token, t0() + Duration::days(8 * week))
            .await
            .unwrap();
        assert_eq!(report.fired, 1, "fire {}", week + 1);
    }
    assert!(planner.staged().await.is_empty(), "no pause, no event");
    let report = planner.fire(4, t0() + Duration::days(24)).await.unwrap();
    let reason = report.skipped_plans[0].reason.clone();
    assert!(!planner.get(&plan.id).await.enabled);

    let staged = planner.staged().await;
    assert_eq!(staged.len(), 1, "{staged:?}");
    let paused = &staged[0];
    assert_eq!(paused.payload["event"], "plan_paused");
    assert_eq!(paused.payload["data"]["plan_name"], plan.name.as_str());
    assert_eq!(paused.payload["data"]["reason"], reason.as_str());
    assert_eq!(paused.plan_id, Some(Uuid::parse_str(&plan.id).unwrap()));
    assert_eq!(paused.account_ids, [account]);
    // A paused plan is not due: nothing more is raised.
    let report = planner.fire(5, t0() + Duration::days(32)).await.unwrap();
    assert_eq!(report.found, 0);
    assert_eq!(planner.staged().await.len(), 1);

    // The relay tried, kept the row and stored the code only.
    let pool = planner.pool().await;
    let failed = eventually("a failed forward", StdDuration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            let (attempts, last_error): (i32, Option<String>) =
                sqlx::query_as("SELECT attempts, last_error FROM notification_relay")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (attempts >= 1).then_some(last_error)
        }
    })
    .await
    .unwrap();
    assert_eq!(failed.as_deref(), Some("Unavailable"));
    assert!(planner.executor.raised("plan_paused").is_empty());

    // The executor is back: the event is handed over once, under its staged id.
    *planner.executor.refuse_notifications.lock().unwrap() = false;
    planner.relay_drained().await;
    let raised = planner.executor.raised("plan_paused");
    assert_eq!(raised.len(), 1);
    let (request, payload) = &raised[0];
    assert_eq!(request.event_id, paused.id.to_string());
    assert_eq!(request.plan_id.as_deref(), Some(plan.id.as_str()));
    assert_eq!(request.account_ids, [account.to_string()]);
    assert!(request.occurred_at.is_some());
    assert_eq!(payload["data"]["reason"], reason.as_str());
}

#[tokio::test]
async fn each_upcoming_step_is_reminded_of_once_within_its_days_before() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    // Weekly steps from t0 + 5 days; reminders 7 days ahead (the default).
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0() + Duration::days(5), false),
            &[account],
            vec![rds(4, false)],
        )
        .await;
    let quiet = planner
        .plan(
            without_reminders(plan_input("weekly-25pct", t0() + Duration::days(5), false)),
            &[account],
            vec![rds(4, false)],
        )
        .await;

    // Step 1 fires within 7 days: reminded at the first sweep, not at the next.
    let report = planner.fire(1, t0()).await.unwrap();
    assert_eq!(report.found, 0, "nothing is due yet");
    planner.fire(2, t0() + Duration::days(1)).await.unwrap();
    planner.relay_drained().await;
    let reminders = planner.executor.raised("step_upcoming");
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    let (request, payload) = &reminders[0];
    assert_eq!(request.plan_id.as_deref(), Some(plan.id.as_str()));
    assert_eq!(request.account_ids, [account.to_string()]);
    assert_eq!(payload["data"]["plan_name"], plan.name.as_str());
    assert_eq!(payload["data"]["step_number"], 1);
    assert_eq!(payload["data"]["fires_on"], "2026-01-10");
    assert_eq!(payload["data"]["needs_approval"], true);

    // Step 1 fires (no reminder of a re-fire) and completes; step 2 is a week later.
    let report = planner.fire(3, t0() + Duration::days(5)).await.unwrap();
    assert_eq!(report.fired, 2, "{report:?}");
    planner
        .complete(&plan.id, 1, t0() + Duration::days(5))
        .await
        .unwrap();
    planner.fire(4, t0() + Duration::days(6)).await.unwrap();
    planner.fire(5, t0() + Duration::days(7)).await.unwrap();
    planner.relay_drained().await;
    let reminders = planner.executor.raised("step_upcoming");
    let steps: Vec<(Value, Value)> = reminders
        .iter()
        .map(|(_, payload)| {
            (
                payload["data"]["step_number"].clone(),
                payload["data"]["fires_on"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (Value::from(1), Value::from("2026-01-10")),
            (Value::from(2), Value::from("2026-01-17")),
        ]
    );
    // The plan with notification_days_before 0 is never reminded of.
    let quiet_id = Some(quiet.id.clone());
    assert!(
        reminders
            .iter()
            .all(|(request, _)| request.plan_id != quiet_id)
    );
}

/// Returns `input` with reminders off (`notification_days_before` 0).
fn without_reminders(mut input: pb::PlanInput) -> pb::PlanInput {
    input.name = "quiet rds".to_owned();
    input.notification_days_before = Some(0);
    input
}
