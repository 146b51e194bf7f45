//! The planner and the executor agree on what a purchase list is: whatever standing
//! list the planner stores, any run it builds from it (any ramp, step, coverage and
//! targets) is accepted by the executor, and so is any list the planner takes verbatim.
//! Property-based over generated lists and plans, through each side's own code: the
//! planner's validation and storage form, its run builder and the CreateExecution
//! request it sends; the executor's parsing of that request and its creation checks.

use std::collections::BTreeMap;

use chrono::Utc;
use cudly_common::grpc::Caller;
use cudly_executor::grpc::create_request;
use cudly_planner::clients::create_execution_request;
use cudly_planner::domain::plan::{Plan, RampSchedule, RampType, ServiceConfig};
use cudly_planner::domain::run::{RunList, RunOptions, RunSource, build_execution_request};
use cudly_proto::common::v1 as common_pb;
use cudly_proto::convert::recommendation_inputs;
use cudly_vocabulary::testing::recommendation_list;
use cudly_vocabulary::{
    AWS_PAYMENT_OPTIONS, AWS_SERVICE_NAMES, Provider, Recommendation, RecommendationInput,
    validate_recommendations,
};
use proptest::prelude::*;
use uuid::Uuid;

const ACCOUNTS: [Uuid; 3] = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];

/// What the planner stores for a standing list sent through the gateway: the list on
/// the wire, read back and validated, kept as JSON.
fn planner_stores(list: Vec<RecommendationInput>) -> Option<Vec<Recommendation>> {
    let wire: Vec<common_pb::Recommendation> = list.into_iter().map(Into::into).collect();
    let validated = validate_recommendations(recommendation_inputs(wire).ok()?).ok()?;
    let stored = serde_json::to_value(&validated).unwrap();
    Some(serde_json::from_value(stored).unwrap())
}

fn service(name: &str, coverage: f64, term: u32, payment: &str) -> ServiceConfig {
    ServiceConfig {
        provider: Provider::Aws,
        service: name.to_owned(),
        enabled: true,
        term,
        payment: payment.to_owned(),
        coverage,
        include_regions: vec![],
        exclude_regions: vec![],
        include_types: vec![],
        exclude_types: vec![],
    }
}

prop_compose! {
    fn plans()(
        coverage in prop_oneof![4 => Just(100.0), 1 => Just(0.0), 5 => 0.0f64..=100.0],
        term in prop::sample::select(vec![1u32, 3]),
        payment in prop::sample::select(AWS_PAYMENT_OPTIONS.to_vec()),
        ramp in prop::sample::select(vec![
            (RampType::Immediate, 100.0, 1u32),
            (RampType::Weekly25Pct, 25.0, 4),
            (RampType::Monthly10Pct, 10.0, 10),
            (RampType::Custom, 33.3, 3),
        ]),
        step_share in 0.0f64..1.0,
        auto_purchase in any::<bool>(),
    ) -> Plan {
        let (ramp_type, percent_per_step, total_steps) = ramp;
        let now = Utc::now();
        Plan {
            id: Uuid::from_u128(99),
            name: "property".to_owned(),
            enabled: true,
            auto_purchase,
            max_commitment_per_run: None,
            editor: None,
            auto_purchase_requested_by: None,
            source: cudly_planner::domain::plan::PlanSource::List,
            notification_days_before: 7,
            services: AWS_SERVICE_NAMES
                .iter()
                .map(|name| (format!("aws/{name}"), service(name, coverage, term, payment)))
                .collect::<BTreeMap<_, _>>(),
            ramp: RampSchedule {
                ramp_type,
                percent_per_step,
                step_interval_days: 7,
                // Mostly a step still to run; now and then a finished plan.
                current_step: ((step_share * f64::from(total_steps + 1)) as u32).min(total_steps),
                total_steps,
                start_date: now,
            },
            all_enabled_accounts: true,
            next_execution_date: Some(now),
            last_execution_date: None,
            step_fires: 0,
            paused_reason: None,
            created_at: now,
            updated_at: now,
        }
    }
}

fn targets() -> impl Strategy<Value = Vec<Uuid>> {
    prop_oneof![
        prop::sample::select(ACCOUNTS.to_vec()).prop_map(|account| vec![account]),
        prop::sample::subsequence(ACCOUNTS.to_vec(), 2..=ACCOUNTS.len()),
    ]
}

/// Makes each service of `plan` buy the term and payment of its first stored line, so
/// that most lines are the plan's to buy (a plan buys only what it says it buys).
fn align(mut plan: Plan, stored: &[Recommendation]) -> Plan {
    for line in stored.iter().rev() {
        if let Some(config) = plan.services.get_mut(&format!("aws/{}", line.service)) {
            config.term = line.term;
            config.payment.clone_from(&line.payment);
        }
    }
    plan
}

fn options(source: RunSource) -> RunOptions {
    RunOptions {
        source,
        actor: "planner".to_owned(),
        actor_key_id: None,
        dry_run: false,
        scheduled_date: None,
        idempotency_key: None,
        request_hash: None,
    }
}

/// Sends the run the planner built to the executor's creation checks; returns what
/// the executor refused, if anything.
fn executor_refusal(
    plan: &Plan,
    stored: &[Recommendation],
    targets: &[Uuid],
    list: RunList,
    source: RunSource,
) -> Option<String> {
    let Ok(run) = build_execution_request(plan, stored, targets, list, options(source)) else {
        // The planner refused to build this run: nothing reaches the executor.
        return None;
    };
    let wire = create_execution_request(&run);
    let refused = create_request(wire, Caller::Planner)
        .and_then(|request| request.checked_recommendations().map(|_| ()))
        .err()?;
    Some(refused.message)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_run_of_a_stored_standing_list_is_accepted_by_the_executor(
        list in recommendation_list(ACCOUNTS.to_vec(), 8),
        plan in plans(),
        aligned in prop::bool::weighted(0.8),
        targets in targets(),
    ) {
        if let Some(stored) = planner_stores(list) {
            let plan = if aligned { align(plan, &stored) } else { plan };
            let refused = executor_refusal(&plan, &stored, &targets, RunList::Standing, RunSource::Schedule);
            prop_assert_eq!(refused, None);
        }
    }

    #[test]
    fn a_list_the_planner_takes_verbatim_is_accepted_by_the_executor(
        list in recommendation_list(ACCOUNTS.to_vec(), 8),
        plan in plans(),
        targets in targets(),
    ) {
        if let Some(given) = planner_stores(list) {
            let refused = executor_refusal(&plan, &[], &targets, RunList::Given(given), RunSource::Api);
            prop_assert_eq!(refused, None);
        }
    }
}

/// The property above must not hold vacuously: the generators produce lists the
/// planner stores and runs it builds, not only refusals.
#[test]
fn the_generated_cases_reach_the_executor() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (
        recommendation_list(ACCOUNTS.to_vec(), 8),
        plans(),
        targets(),
    );
    let (mut stored_lists, mut runs) = (0, 0);
    let mut refusals = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..500 {
        let (list, plan, targets) = strategy.new_tree(&mut runner).unwrap().current();
        let Some(stored) = planner_stores(list) else {
            continue;
        };
        stored_lists += 1;
        let plan = align(plan, &stored);
        match build_execution_request(
            &plan,
            &stored,
            &targets,
            RunList::Standing,
            options(RunSource::Schedule),
        ) {
            Ok(_) => runs += 1,
            Err(refusal) => {
                let message = cudly_common::ApiError::from(refusal).message;
                let reason: String = message.chars().take(60).collect();
                *refusals.entry(reason).or_insert(0) += 1;
            }
        }
    }
    assert!(
        stored_lists > 300,
        "only {stored_lists} of 500 lists were stored"
    );
    assert!(
        runs > 100,
        "only {runs} of 500 cases built a run; refusals: {refusals:#?}"
    );
}
