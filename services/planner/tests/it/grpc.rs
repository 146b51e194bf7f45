//! The planner's gRPC contract against real Postgres, with in-process fakes of the
//! accounts and executor services that record what the planner asked them: due plans,
//! fencing, step completion, the CreateExecution requests it builds, and its guards.

use cudly_proto::convert::{optional_time, timestamp};
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use cudly_common::grpc::Caller;
use cudly_proto::common::v1 as common_pb;
use cudly_proto::planner::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::{NO_WINDOW_LIMIT, PlannerUnderTest};

/// A fixed past instant (whole seconds, so Postgres keeps it exactly).
pub(crate) fn t0() -> DateTime<Utc> {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

fn rds_service(coverage: f64) -> pb::ServiceConfigInput {
    pb::ServiceConfigInput {
        provider: "aws".into(),
        service: "rds".into(),
        enabled: None,
        term: 1,
        payment: "all-upfront".into(),
        coverage,
        ..pb::ServiceConfigInput::default()
    }
}

/// The key id the tests' plans are created with.
const OPS_KEY_ID: &str = "6f1c1c6e-0000-4000-8000-0000000000ee";

pub(crate) fn plan_input(
    ramp_type: &str,
    start: DateTime<Utc>,
    auto_purchase: bool,
) -> pb::PlanInput {
    pb::PlanInput {
        name: format!("{ramp_type} rds"),
        auto_purchase: Some(auto_purchase),
        services: HashMap::from([("aws/rds".to_owned(), rds_service(100.0))]),
        ramp_schedule: Some(pb::RampScheduleInput {
            r#type: Some(ramp_type.to_owned()),
            start_date: Some(timestamp(start)),
            ..pb::RampScheduleInput::default()
        }),
        ..pb::PlanInput::default()
    }
}

pub(crate) fn rds(count: u32, all_accounts: bool) -> common_pb::Recommendation {
    common_pb::Recommendation {
        provider: "aws".into(),
        service: "rds".into(),
        region: "us-east-1".into(),
        resource_type: "db.r6g.large".into(),
        engine: Some("postgresql".into()),
        count,
        term: 1,
        payment: "all-upfront".into(),
        all_accounts,
        ..common_pb::Recommendation::default()
    }
}

impl PlannerUnderTest {
    /// Creates a plan bound to `accounts` (empty: all enabled accounts) with `standing`
    /// as its standing list; returns it.
    pub(crate) async fn plan(
        &self,
        input: pb::PlanInput,
        accounts: &[Uuid],
        standing: Vec<common_pb::Recommendation>,
    ) -> pb::Plan {
        let mut gateway = self.client(Caller::Gateway);
        let plan = gateway
            .create_plan(pb::CreatePlanRequest {
                plan: Some(input),
                account_ids: Some(common_pb::IdList {
                    ids: accounts.iter().map(Uuid::to_string).collect(),
                }),
                actor: "key:ops".into(),
                actor_key_id: Some(OPS_KEY_ID.into()),
            })
            .await
            .expect("create plan")
            .into_inner();
        gateway
            .set_plan_recommendations(pb::SetPlanRecommendationsRequest {
                plan_id: plan.id.clone(),
                recommendations: standing,
            })
            .await
            .expect("set recommendations");
        plan
    }

    pub(crate) async fn fire(
        &self,
        token: i64,
        now: DateTime<Utc>,
    ) -> Result<pb::FireDuePlansResponse, tonic::Status> {
        self.client(Caller::Sweeper)
            .fire_due_plans(pb::FireDuePlansRequest {
                fencing: Some(common_pb::Fencing {
                    task: "fire_due_plans".into(),
                    token,
                }),
                now: Some(timestamp(now)),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub(crate) async fn complete(
        &self,
        plan_id: &str,
        step: u32,
        at: DateTime<Utc>,
    ) -> Result<pb::CompletePlanStepResponse, tonic::Status> {
        self.client(Caller::Executor)
            .complete_plan_step(pb::CompletePlanStepRequest {
                plan_id: plan_id.to_owned(),
                step_number: step,
                execution_id: Uuid::new_v4().to_string(),
                completed_at: Some(timestamp(at)),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub(crate) async fn get(&self, plan_id: &str) -> pb::Plan {
        self.client(Caller::Gateway)
            .get_plan(pb::GetPlanRequest {
                id: plan_id.to_owned(),
            })
            .await
            .expect("get plan")
            .into_inner()
    }

    async fn bound_accounts(&self, plan_id: &str) -> Vec<Uuid> {
        sqlx::query_scalar(
            "SELECT account_id FROM plan_accounts WHERE plan_id = $1 ORDER BY position",
        )
        .bind(Uuid::parse_str(plan_id).unwrap())
        .fetch_all(&self.pool().await)
        .await
        .unwrap()
    }
}

fn current_step(plan: &pb::Plan) -> u32 {
    plan.ramp_schedule.as_ref().unwrap().current_step
}

#[tokio::test]
async fn a_due_plan_fires_once_for_its_next_step_in_the_step_lineage() {
    let planner = PlannerUnderTest::start().await;
    let first = planner.accounts.add("Prod", "aws", true);
    let second = planner.accounts.add("Staging", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), true),
            &[first, second],
            vec![rds(8, true)],
        )
        .await;
    assert_eq!(
        optional_time(plan.next_execution_date.as_ref()),
        Some(t0()),
        "a new plan is due at its start date"
    );

    let now = t0() + Duration::hours(1);
    let report = planner.fire(1, now).await.unwrap();
    assert_eq!((report.found, report.fired, report.errors), (1, 1, 0));
    let requests = planner.executor.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.plan_id.as_deref(), Some(plan.id.as_str()));
    assert_eq!(request.step_number, Some(1));
    assert_eq!(
        request.creation_key.clone().unwrap(),
        format!("plan:{}:step:1", plan.id)
    );
    assert_eq!(
        request.target_account_ids,
        vec![first.to_string(), second.to_string()]
    );
    assert_eq!(request.recommendations.len(), 1);
    assert_eq!(request.recommendations[0].count, 2, "25% of 8");
    assert!(request.auto_approve, "the plan auto-purchases");
    assert_eq!(request.source, "schedule");
    assert_eq!(
        request.actor, "key:ops",
        "created in the plan's last editor's name"
    );
    assert_eq!(request.actor_key_id.as_deref(), Some(OPS_KEY_ID));
    assert_eq!(optional_time(request.scheduled_date.as_ref()), Some(t0()));
    assert_eq!(report.executions[0].status, "approved");
    assert!(report.executions[0].created);

    let fired = planner.get(&plan.id).await;
    assert_eq!(
        current_step(&fired),
        0,
        "the step advances only when the execution completes"
    );
    assert_eq!(
        optional_time(fired.next_execution_date.as_ref()),
        Some(now + Duration::days(7))
    );

    let again = planner.fire(1, now + Duration::minutes(1)).await.unwrap();
    assert_eq!((again.found, again.fired), (0, 0));
    assert_eq!(planner.executor.requests().len(), 1);
}

#[tokio::test]
async fn a_date_missed_by_several_intervals_fires_once() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(4, false)],
        )
        .await;
    // Five weekly intervals late.
    let now = t0() + Duration::days(36);
    let report = planner.fire(1, now).await.unwrap();
    assert_eq!(report.fired, 1);
    for minutes in [1, 60, 24 * 60] {
        let later = planner
            .fire(1, now + Duration::minutes(minutes))
            .await
            .unwrap();
        assert_eq!(later.found, 0, "{minutes} minutes later nothing is due");
    }
    assert_eq!(planner.executor.requests().len(), 1);
    let stored = planner.get(&plan.id).await;
    assert_eq!(
        optional_time(stored.next_execution_date.as_ref()),
        Some(now + Duration::days(7))
    );
    assert!(
        !planner.executor.requests()[0].auto_approve,
        "the plan needs approval"
    );
}

#[tokio::test]
async fn an_unfinished_step_fired_again_retries_the_same_lineage() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(4, false)],
        )
        .await;
    planner.fire(1, t0()).await.unwrap();
    let report = planner.fire(2, t0() + Duration::days(8)).await.unwrap();
    assert_eq!(report.fired, 1);
    assert!(
        !report.executions[0].created,
        "the executor returned the step's existing execution"
    );
    let keys: Vec<String> = planner
        .executor
        .requests()
        .iter()
        .map(|request| request.creation_key.clone().unwrap())
        .collect();
    let expected = format!("plan:{}:step:1", plan.id);
    assert_eq!(keys, vec![expected.clone(), expected]);
}

#[tokio::test]
async fn completing_steps_advances_the_ramp_one_step_at_a_time() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(8, false)],
        )
        .await;
    planner.fire(1, t0()).await.unwrap();

    let done = t0() + Duration::days(2);
    let first = planner.complete(&plan.id, 1, done).await.unwrap();
    assert_eq!((first.advanced, first.current_step), (true, 1));
    let stored = planner.get(&plan.id).await;
    assert_eq!(
        optional_time(stored.last_execution_date.as_ref()),
        Some(done)
    );
    assert_eq!(
        optional_time(stored.next_execution_date.as_ref()),
        Some(done + Duration::days(7))
    );

    let repeat = planner.complete(&plan.id, 1, done).await.unwrap();
    assert_eq!(
        (repeat.advanced, repeat.current_step),
        (false, 1),
        "a repeat acknowledges"
    );
    let ahead = planner.complete(&plan.id, 3, done).await.unwrap();
    assert_eq!(
        (ahead.advanced, ahead.current_step),
        (false, 1),
        "a step only advances from n - 1"
    );

    let report = planner.fire(1, done + Duration::days(7)).await.unwrap();
    assert_eq!(report.fired, 1);
    let second = planner.executor.requests().pop().unwrap();
    assert_eq!(
        second.creation_key.unwrap(),
        format!("plan:{}:step:2", plan.id)
    );
    assert_eq!(
        second.recommendations[0].count, 2,
        "50% of 8 minus the 25% already bought"
    );

    for step in 2..=4 {
        let outcome = planner
            .complete(&plan.id, step, done + Duration::days(i64::from(step) * 7))
            .await
            .unwrap();
        assert!(outcome.advanced, "step {step}");
    }
    let finished = planner.get(&plan.id).await;
    assert_eq!(current_step(&finished), 4);
    assert_eq!(
        finished.next_execution_date, None,
        "no date after the last step"
    );
    let after = planner.fire(1, done + Duration::days(400)).await.unwrap();
    assert_eq!(after.found, 0);
}

#[tokio::test]
async fn an_immediate_plan_runs_once_and_then_has_no_next_date() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let mut input = plan_input("immediate", t0(), true);
    input.services.insert("aws/rds".into(), rds_service(50.0));
    let plan = planner.plan(input, &[account], vec![rds(10, false)]).await;
    planner.fire(1, t0()).await.unwrap();
    let request = planner.executor.requests().pop().unwrap();
    assert_eq!(
        request.recommendations[0].count, 5,
        "immediate buys the service coverage at once"
    );
    assert_eq!(request.step_number, Some(1));
    let stored = planner.get(&plan.id).await;
    assert_eq!(
        optional_time(stored.next_execution_date.as_ref()),
        Some(t0() + Duration::days(1)),
        "until it completes, the step may be retried a day later"
    );
    planner
        .complete(&plan.id, 1, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(planner.get(&plan.id).await.next_execution_date, None);
}

#[tokio::test]
async fn step_reports_are_checked() {
    let planner = PlannerUnderTest::start().await;
    let plan = planner
        .plan(plan_input("weekly-25pct", t0(), false), &[], vec![])
        .await;
    let zero = planner.complete(&plan.id, 0, t0()).await.unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    let unknown = planner
        .complete(&Uuid::new_v4().to_string(), 1, t0())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let denied = planner
        .client(Caller::Gateway)
        .complete_plan_step(pb::CompletePlanStepRequest {
            plan_id: plan.id.clone(),
            step_number: 1,
            execution_id: Uuid::new_v4().to_string(),
            completed_at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "only the executor reports steps"
    );
    assert_eq!(current_step(&planner.get(&plan.id).await), 0);
}

#[tokio::test]
async fn fencing_tokens_refuse_lower_accept_equal_and_record_higher() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(4, false)],
        )
        .await;
    let before = t0() - Duration::days(1);
    planner.fire(5, before).await.expect("first token");
    let stale = planner.fire(4, t0()).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let detail = cudly_proto::status::error_detail(&stale).unwrap();
    assert_eq!(detail.code, "stale_fencing_token");
    assert!(
        planner.executor.requests().is_empty(),
        "a refused token acts on nothing"
    );
    assert_eq!(
        optional_time(planner.get(&plan.id).await.next_execution_date.as_ref()),
        Some(t0())
    );

    planner
        .fire(5, before)
        .await
        .expect("an equal token is accepted");
    planner
        .fire(6, before)
        .await
        .expect("a higher token is recorded");
    let older = planner.fire(5, t0()).await.unwrap_err();
    assert_eq!(older.code(), Code::Aborted, "5 is stale once 6 was seen");
    let highest: i64 =
        sqlx::query_scalar("SELECT token FROM fencing WHERE task = 'fire_due_plans'")
            .fetch_one(&planner.pool().await)
            .await
            .unwrap();
    assert_eq!(highest, 6);
    let report = planner.fire(6, t0()).await.unwrap();
    assert_eq!(report.fired, 1);

    let denied = planner
        .client(Caller::Gateway)
        .fire_due_plans(pb::FireDuePlansRequest {
            fencing: Some(common_pb::Fencing {
                task: "fire_due_plans".into(),
                token: 99,
            }),
            now: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "only the sweeper fires plans"
    );
}

#[tokio::test]
async fn an_explicit_list_of_disabled_accounts_runs_nothing() {
    let planner = PlannerUnderTest::start().await;
    let disabled = planner.accounts.add("Old", "aws", false);
    planner.accounts.add("Other", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[disabled],
            vec![rds(4, false)],
        )
        .await;
    let report = planner.fire(1, t0()).await.unwrap();
    assert_eq!((report.found, report.fired, report.skipped), (1, 0, 1));
    assert_eq!(report.skipped_plans[0].reason, "no enabled target account");
    assert!(!report.skipped_plans[0].step_advanced);
    assert!(
        planner.executor.requests().is_empty(),
        "never turns into all accounts"
    );
    let stored = planner.get(&plan.id).await;
    assert_eq!(current_step(&stored), 0);
    assert_eq!(
        optional_time(stored.next_execution_date.as_ref()),
        Some(t0() + Duration::days(7))
    );
}

#[tokio::test]
async fn an_all_accounts_plan_targets_the_enabled_accounts_of_its_providers() {
    let planner = PlannerUnderTest::start().await;
    let prod = planner.accounts.add("Prod", "aws", true);
    let old = planner.accounts.add("Old", "aws", false);
    planner.accounts.add("Azure-Sub", "azure", true);
    let staging = planner.accounts.add("Staging", "aws", true);
    planner
        .plan(
            plan_input("immediate", t0(), false),
            &[],
            vec![rds(2, true)],
        )
        .await;
    planner.accounts.set_enabled(staging, false);
    planner.accounts.set_enabled(old, true);
    planner.fire(1, t0()).await.unwrap();
    let request = planner.executor.requests().pop().unwrap();
    assert_eq!(
        request.target_account_ids,
        vec![prod.to_string(), old.to_string()]
    );
}

#[tokio::test]
async fn a_step_whose_increment_rounds_to_nothing_advances_without_an_execution() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    // One instance at 25% per step: steps 1 to 3 buy nothing, step 4 buys it.
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(1, false)],
        )
        .await;
    let report = planner.fire(1, t0()).await.unwrap();
    assert_eq!(report.skipped, 1);
    assert!(report.skipped_plans[0].step_advanced);
    assert!(planner.executor.requests().is_empty());
    let stored = planner.get(&plan.id).await;
    assert_eq!(current_step(&stored), 1);
    assert_eq!(stored.last_execution_date, None, "nothing was executed");
    assert_eq!(
        optional_time(stored.next_execution_date.as_ref()),
        Some(t0() + Duration::days(7))
    );
}

#[tokio::test]
async fn a_plan_with_no_matching_standing_item_keeps_its_step() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let mut memorydb = rds(4, false);
    memorydb.service = "memorydb".into();
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![memorydb],
        )
        .await;
    let report = planner.fire(1, t0()).await.unwrap();
    assert_eq!(report.skipped, 1);
    assert!(!report.skipped_plans[0].step_advanced);
    assert_eq!(current_step(&planner.get(&plan.id).await), 0);
}

#[tokio::test]
async fn a_hand_started_list_is_sent_verbatim_in_its_own_lineage() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(8, false)],
        )
        .await;
    let mut given = rds(7, false);
    given.service = "memorydb".into();
    let hash = "9094316e761d7af39d0790a8a4228582aa22cbaf6e01606eff3f578013f10633";
    let reply = planner
        .client(Caller::Gateway)
        .start_execution(pb::StartExecutionRequest {
            plan_id: plan.id.clone(),
            recommendations: Some(common_pb::RecommendationList {
                recommendations: vec![given],
            }),
            scheduled_date: None,
            idempotency_key: Some("order-17".into()),
            request_hash: Some(hash.into()),
            actor: "key:ops".into(),
            actor_key_id: Some("key-ops-id".into()),
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.created);
    assert_eq!(reply.approval_token.as_deref().map(str::len), Some(64));
    assert_eq!(reply.execution.unwrap().status, "pending");
    let request = planner.executor.requests().pop().unwrap();
    assert_eq!(request.step_number, None, "a given list buys no ramp step");
    assert_eq!(request.creation_key.as_deref(), Some("api:order-17"));
    assert_eq!(request.idempotency_key.as_deref(), Some("order-17"));
    assert_eq!(request.request_hash.as_deref(), Some(hash));
    assert_eq!(
        request.recommendations[0].service, "memorydb",
        "no filtering"
    );
    assert_eq!(request.recommendations[0].count, 7, "no scaling");
    assert_eq!(request.source, "api");
    assert_eq!(request.actor, "key:ops");
    assert_eq!(current_step(&planner.get(&plan.id).await), 0);
}

#[tokio::test]
async fn a_hand_start_without_a_list_buys_the_next_step_of_the_standing_list() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("monthly-10pct", t0(), false),
            &[account],
            vec![rds(20, false)],
        )
        .await;
    planner
        .client(Caller::Gateway)
        .start_execution(pb::StartExecutionRequest {
            plan_id: plan.id.clone(),
            actor: "key:ops".into(),
            ..pb::StartExecutionRequest::default()
        })
        .await
        .unwrap();
    let request = planner.executor.requests().pop().unwrap();
    assert_eq!(
        request.creation_key.unwrap(),
        format!("plan:{}:step:1", plan.id)
    );
    assert_eq!(request.step_number, Some(1));
    assert_eq!(request.recommendations[0].count, 2, "10% of 20");
    assert_eq!(request.source, "api");
}

#[tokio::test]
async fn a_hand_start_with_nothing_to_run_or_a_stranger_account_is_refused() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(1, false)],
        )
        .await;
    let mut gateway = planner.client(Caller::Gateway);
    let empty_step = gateway
        .start_execution(pb::StartExecutionRequest {
            plan_id: plan.id.clone(),
            actor: "key:ops".into(),
            ..pb::StartExecutionRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(empty_step.code(), Code::FailedPrecondition);
    assert!(
        empty_step.message().contains("nothing to run"),
        "{}",
        empty_step.message()
    );
    let mut stranger = rds(1, false);
    stranger.cloud_account_id = Some(Uuid::new_v4().to_string());
    let refused = gateway
        .start_execution(pb::StartExecutionRequest {
            plan_id: plan.id.clone(),
            recommendations: Some(common_pb::RecommendationList {
                recommendations: vec![stranger],
            }),
            actor: "key:ops".into(),
            ..pb::StartExecutionRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let detail = cudly_proto::status::error_detail(&refused).unwrap();
    assert_eq!(
        detail.field.as_deref(),
        Some("recommendations[0].cloud_account_id")
    );
    assert!(planner.executor.requests().is_empty());
}

#[tokio::test]
async fn deleting_a_plan_with_a_live_execution_is_a_conflict() {
    let planner = PlannerUnderTest::start().await;
    let plan = planner
        .plan(plan_input("immediate", t0(), false), &[], vec![])
        .await;
    planner
        .executor
        .live_plans
        .lock()
        .unwrap()
        .push(plan.id.clone());
    let mut gateway = planner.client(Caller::Gateway);
    let refused = gateway
        .delete_plan(pb::DeletePlanRequest {
            id: plan.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        cudly_proto::status::error_detail(&refused).unwrap().code,
        "conflict"
    );
    planner.get(&plan.id).await;

    planner.executor.live_plans.lock().unwrap().clear();
    gateway
        .delete_plan(pb::DeletePlanRequest {
            id: plan.id.clone(),
        })
        .await
        .expect("deleted once nothing is live");
    let gone = gateway
        .get_plan(pb::GetPlanRequest {
            id: plan.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn deleting_a_plan_when_the_executor_cannot_answer_deletes_nothing() {
    let planner = PlannerUnderTest::start().await;
    let plan = planner
        .plan(plan_input("immediate", t0(), false), &[], vec![])
        .await;
    planner.executor_down().await;
    let refused = planner
        .client(Caller::Gateway)
        .delete_plan(pb::DeletePlanRequest {
            id: plan.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(refused.message(), "executor service unavailable");
    planner.get(&plan.id).await;
}

#[tokio::test]
async fn accounts_are_looked_up_in_one_call_and_bound_in_order() {
    let planner = PlannerUnderTest::start().await;
    let plan = planner
        .plan(plan_input("immediate", t0(), false), &[], vec![])
        .await;
    let ids: Vec<Uuid> = (0..3)
        .map(|n| planner.accounts.add(&format!("Acct-{n}"), "aws", true))
        .collect();
    planner.accounts.by_ids_calls.lock().unwrap().clear();
    let binding = planner
        .client(Caller::Gateway)
        .set_plan_accounts(pb::SetPlanAccountsRequest {
            plan_id: plan.id.clone(),
            account_ids: vec![
                ids[2].to_string(),
                ids[0].to_string(),
                ids[1].to_string(),
                ids[2].to_string(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let calls = planner.accounts.by_ids_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one look-up for the whole list");
    assert_eq!(calls[0].len(), 3, "duplicates dropped");
    assert_eq!(
        binding.account_ids,
        vec![ids[2].to_string(), ids[0].to_string(), ids[1].to_string()]
    );
    assert!(!binding.all_enabled_accounts);
    assert_eq!(
        planner.bound_accounts(&plan.id).await,
        vec![ids[2], ids[0], ids[1]]
    );
}

#[tokio::test]
async fn binding_accounts_while_the_accounts_service_is_down_changes_nothing() {
    let planner = PlannerUnderTest::start().await;
    let kept = planner.accounts.add("Prod", "aws", true);
    let other = planner.accounts.add("Staging", "aws", true);
    let plan = planner
        .plan(plan_input("immediate", t0(), false), &[kept], vec![])
        .await;
    planner.accounts_down().await;
    let mut gateway = planner.client(Caller::Gateway);
    for account_ids in [vec![other.to_string()], vec![]] {
        let refused = gateway
            .set_plan_accounts(pb::SetPlanAccountsRequest {
                plan_id: plan.id.clone(),
                account_ids,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(refused.message(), "accounts service unavailable");
    }
    assert_eq!(planner.bound_accounts(&plan.id).await, vec![kept]);
    let mode: bool = sqlx::query_scalar("SELECT all_enabled_accounts FROM plans WHERE id = $1")
        .bind(Uuid::parse_str(&plan.id).unwrap())
        .fetch_one(&planner.pool().await)
        .await
        .unwrap();
    assert!(!mode, "still the explicit list");
}

#[tokio::test]
async fn an_update_that_orphans_bound_accounts_is_refused_naming_them() {
    let planner = PlannerUnderTest::start().await;
    let aws = planner.accounts.add("Prod", "aws", true);
    let azure = planner.accounts.add("Azure-Sub", "azure", true);
    let mut input = plan_input("immediate", t0(), false);
    input.services.insert(
        "azure/vm".into(),
        pb::ServiceConfigInput {
            provider: "azure".into(),
            service: "vm".into(),
            term: 1,
            payment: "monthly".into(),
            coverage: 50.0,
            ..pb::ServiceConfigInput::default()
        },
    );
    let plan = planner.plan(input, &[aws, azure], vec![]).await;
    let mut gateway = planner.client(Caller::Gateway);
    let refused = gateway
        .update_plan(pb::UpdatePlanRequest {
            id: plan.id.clone(),
            plan: Some(plan_input("immediate", t0(), false)),
            actor: "key:ops".into(),
            actor_key_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let detail = cudly_proto::status::error_detail(&refused).unwrap();
    assert_eq!(detail.mismatches.len(), 1);
    assert_eq!(detail.mismatches[0].name, "Azure-Sub");
    assert_eq!(detail.mismatches[0].provider, "azure");
    assert!(
        planner
            .get(&plan.id)
            .await
            .services
            .contains_key("azure/vm"),
        "nothing changed"
    );
}

#[tokio::test]
async fn an_update_keeps_the_ramp_progress() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(8, false)],
        )
        .await;
    planner.fire(1, t0()).await.unwrap();
    planner
        .complete(&plan.id, 1, t0() + Duration::days(1))
        .await
        .unwrap();
    let mut gateway = planner.client(Caller::Gateway);
    let mut renamed = plan_input("weekly-25pct", t0(), false);
    renamed.name = "renamed".into();
    let updated = gateway
        .update_plan(pb::UpdatePlanRequest {
            id: plan.id.clone(),
            plan: Some(renamed),
            actor: "key:ops".into(),
            actor_key_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "renamed");
    assert_eq!(current_step(&updated), 1);
    assert_eq!(
        optional_time(updated.next_execution_date.as_ref()),
        Some(t0() + Duration::days(8)),
        "an unchanged schedule keeps its date"
    );
    let mut custom = plan_input("custom", t0(), false);
    custom.ramp_schedule = Some(pb::RampScheduleInput {
        r#type: Some("custom".into()),
        percent_per_step: Some(50.0),
        step_interval_days: Some(3),
        total_steps: Some(2),
        start_date: None,
    });
    let changed = gateway
        .update_plan(pb::UpdatePlanRequest {
            id: plan.id.clone(),
            plan: Some(custom),
            actor: "key:ops".into(),
            actor_key_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current_step(&changed), 1);
    assert_eq!(
        optional_time(changed.ramp_schedule.as_ref().unwrap().start_date.as_ref()),
        Some(t0()),
        "kept when not given"
    );
    assert_eq!(
        optional_time(changed.next_execution_date.as_ref()),
        Some(t0() + Duration::days(4))
    );
}

#[tokio::test]
async fn auto_purchase_needs_a_window_limit_and_a_plan_run_carries_its_limit_and_editor() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    *planner.executor.window_limit.lock().unwrap() = Some(NO_WINDOW_LIMIT);
    let mut input = plan_input("immediate", t0(), true);
    input.services.insert("aws/rds".into(), rds_service(100.0));
    input.max_commitment_per_run = Some(2_500.0);
    let refused = planner
        .client(Caller::Gateway)
        .create_plan(pb::CreatePlanRequest {
            plan: Some(input.clone()),
            account_ids: None,
            actor: "key:ops".into(),
            actor_key_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("window limit"), "{refused:?}");
    let listed = planner
        .client(Caller::Gateway)
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.plans.is_empty(), "nothing stored");

    *planner.executor.window_limit.lock().unwrap() = None;
    let plan = planner.plan(input, &[account], vec![rds(4, false)]).await;
    assert_eq!(plan.max_commitment_per_run, Some(2_500.0));
    assert_eq!(plan.updated_by.as_deref(), Some("key:ops"));
    planner.fire(1, t0()).await.unwrap();
    let request = planner.executor.requests().pop().unwrap();
    assert_eq!(request.max_commitment_per_run, Some(2_500.0));
    assert_eq!(request.actor, "key:ops");
    assert_eq!(request.actor_key_id.as_deref(), Some(OPS_KEY_ID));
    assert!(!request.dry_run);
}

#[tokio::test]
async fn when_approvers_must_differ_auto_purchase_takes_a_second_admin() {
    let planner = PlannerUnderTest::start().await;
    *planner.executor.require_different_approver.lock().unwrap() = true;
    let mut input = plan_input("immediate", t0(), true);
    input.services.insert("aws/rds".into(), rds_service(100.0));
    let mut gateway = planner.client(Caller::Gateway);
    let requested = gateway
        .create_plan(pb::CreatePlanRequest {
            plan: Some(input.clone()),
            account_ids: None,
            actor: "key:first".into(),
            actor_key_id: Some("first".into()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!requested.auto_purchase, "one admin only asks");
    assert_eq!(
        requested.auto_purchase_requested_by.as_deref(),
        Some("key:first")
    );
    let update = |key: &str| pb::UpdatePlanRequest {
        id: requested.id.clone(),
        plan: Some(input.clone()),
        actor: format!("key:{key}"),
        actor_key_id: Some(key.to_owned()),
    };
    let again = gateway
        .update_plan(update("first"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.auto_purchase, "the same admin cannot confirm");
    let confirmed = gateway
        .update_plan(update("second"))
        .await
        .unwrap()
        .into_inner();
    assert!(confirmed.auto_purchase, "a second admin enables it");
    assert_eq!(confirmed.auto_purchase_requested_by, None);
    let mut off = input.clone();
    off.auto_purchase = Some(false);
    let turned_off = gateway
        .update_plan(pb::UpdatePlanRequest {
            plan: Some(off),
            ..update("first")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!turned_off.auto_purchase, "one admin turns it off");
}

#[tokio::test]
async fn each_rpc_accepts_only_its_callers() {
    let planner = PlannerUnderTest::start().await;
    let denied = planner
        .client(Caller::Sweeper)
        .create_plan(pb::CreatePlanRequest {
            plan: Some(plan_input("immediate", t0(), false)),
            account_ids: None,
            actor: "key:ops".into(),
            actor_key_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unknown = planner
        .client(Caller::Planner)
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        unknown.code(),
        Code::Unauthenticated,
        "the planner's own token is not a caller token"
    );
}

#[tokio::test]
async fn a_step_fired_its_most_times_without_completing_pauses_the_plan_until_it_is_enabled() {
    let planner = PlannerUnderTest::start().await;
    let account = planner.accounts.add("Prod", "aws", true);
    let plan = planner
        .plan(
            plan_input("weekly-25pct", t0(), false),
            &[account],
            vec![rds(4, false)],
        )
        .await;
    // The step's execution never completes: it is fired again each week.
    for (week, token) in (0..3).zip(1..) {
        let report = planner
            .fire(token, t0() + Duration::days(8 * week))
            .await
            .unwrap();
        assert_eq!(report.fired, 1, "fire {}", week + 1);
    }
    assert_eq!(planner.get(&plan.id).await.step_fires, 3);
    let report = planner.fire(4, t0() + Duration::days(24)).await.unwrap();
    assert_eq!(report.fired, 0, "{report:?}");
    assert_eq!(planner.executor.requests().len(), 3, "no fourth execution");
    let reason = &report.skipped_plans[0].reason;
    assert!(reason.contains("step 1 was fired 3 times"), "{reason}");
    let paused = planner.get(&plan.id).await;
    assert!(!paused.enabled);
    assert_eq!(paused.paused_reason.as_deref(), Some(reason.as_str()));
    let report = planner.fire(5, t0() + Duration::days(32)).await.unwrap();
    assert_eq!(report.found, 0, "a paused plan is not due");

    // The operator looks, then enables the plan: it fires again, counting afresh.
    let mut gateway = planner.client(Caller::Gateway);
    let enabled = gateway
        .update_plan(pb::UpdatePlanRequest {
            id: plan.id.clone(),
            plan: Some(plan_input("weekly-25pct", t0(), false)),
            actor: "key:ops".into(),
            actor_key_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(enabled.enabled);
    assert_eq!(enabled.paused_reason, None);
    assert_eq!(enabled.step_fires, 0);
    let report = planner.fire(6, t0() + Duration::days(40)).await.unwrap();
    assert_eq!(report.fired, 1, "{report:?}");
    assert_eq!(planner.get(&plan.id).await.step_fires, 1);
}
