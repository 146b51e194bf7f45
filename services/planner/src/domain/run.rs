//! Turning a plan into an execution request for the executor (docs/design/DOMAIN.md "Plans" and
//! "Executions"): what a run buys, for which accounts, in which lineage.

use std::fmt;

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use uuid::Uuid;

use cudly_common::idempotency::{check_key, check_request_hash};
use cudly_vocabulary::{Recommendation, assign_targets};

use super::plan::Plan;
use super::selection::select_for_step;
use super::sizing::SizedStep;

/// Who asked for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSource {
    /// By hand, through the gateway.
    Api,
    /// A due plan fired by the sweeper.
    Schedule,
}

impl RunSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RunSource::Api => "api",
            RunSource::Schedule => "schedule",
        }
    }
}

/// What the run buys.
#[derive(Debug, Clone, PartialEq)]
pub enum RunList {
    /// The plan's standing list, filtered and scaled for step `current_step + 1`.
    Standing,
    /// This list, verbatim, in its own lineage.
    Given(Vec<Recommendation>),
    /// Step `current_step + 1` sized from Cost Explorer recommendations.
    Sized(SizedStep),
}

/// The circumstances of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub source: RunSource,
    /// `key:<api key name>` or `planner`.
    pub actor: String,
    pub scheduled_date: Option<DateTime<Utc>>,
    /// The REST Idempotency-Key header, passed on.
    pub idempotency_key: Option<String>,
    /// SHA-256 (lowercase hex) of the canonical request; required with the key.
    pub request_hash: Option<String>,
    /// The creating key's id; for scheduled runs the plan's last editor's.
    pub actor_key_id: Option<String>,
    /// Price and check, store nothing, buy nothing.
    pub dry_run: bool,
}

/// The CreateExecution request the planner sends, in domain terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRequest {
    pub plan_id: Uuid,
    /// The ramp step a standing-list run buys; `None` for a given list.
    pub step_number: Option<u32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub target_account_ids: Vec<Uuid>,
    pub recommendations: Vec<Recommendation>,
    pub creation_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub auto_approve: bool,
    pub source: RunSource,
    pub actor: String,
    pub actor_key_id: Option<String>,
    pub dry_run: bool,
    /// The plan's own limit on the run's total commitment.
    pub max_commitment_per_run: Option<f64>,
    /// A sized run: when the oldest recommendation set it was sized from was collected.
    pub sized_from: Option<DateTime<Utc>>,
}

/// Why a run has nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NothingToRun {
    /// Every ramp step has completed.
    PlanFinished,
    /// No enabled account of the plan's providers to run in (an explicit list that
    /// filters down to nothing runs nothing; it never becomes "all accounts").
    NoTargets,
    /// No standing item is accepted by the plan's enabled services.
    NoApplicableItems,
    /// The standing items apply but the step's increment rounds to nothing.
    EmptyIncrement { step: u32 },
    /// A plan sized from recommendations: none collected matches its enabled services.
    NoRecommendations,
    /// A plan sized from recommendations: a target's set is missing or too old.
    StaleRecommendations(String),
}

impl fmt::Display for NothingToRun {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NothingToRun::PlanFinished => formatter.write_str("every ramp step has completed"),
            NothingToRun::NoTargets => formatter.write_str("no enabled target account"),
            NothingToRun::NoApplicableItems => formatter
                .write_str("no standing recommendation matches the plan's enabled services"),
            NothingToRun::EmptyIncrement { step } => {
                write!(formatter, "step {step} buys nothing after scaling")
            }
            NothingToRun::NoRecommendations => formatter
                .write_str("no collected recommendation matches the plan's enabled services"),
            NothingToRun::StaleRecommendations(detail) => {
                write!(formatter, "recommendations are stale: {detail}")
            }
        }
    }
}

/// Why a run cannot be built.
#[derive(Debug, Clone, PartialEq)]
pub enum RunRefusal {
    Nothing(NothingToRun),
    Invalid(ApiError),
}

impl From<RunRefusal> for ApiError {
    /// Nothing to run is FAILED_PRECONDITION (409 over REST); bad input stays 400.
    fn from(refusal: RunRefusal) -> Self {
        match refusal {
            RunRefusal::Nothing(nothing) => {
                ApiError::conflict(format!("nothing to run: {nothing}"))
            }
            RunRefusal::Invalid(error) => error,
        }
    }
}

/// Returns the ramp step a run without a given list buys (`current_step + 1`), or why
/// there is none: every step ran, or no target account is left.
pub fn step_to_run(plan: &Plan, targets: &[Uuid]) -> Result<u32, NothingToRun> {
    let step = plan.ramp.next_step().ok_or(NothingToRun::PlanFinished)?;
    if targets.is_empty() {
        return Err(NothingToRun::NoTargets);
    }
    Ok(step)
}

/// Returns the creation key of a standing-list run for `step`: one lineage per (plan,
/// step), so firing a step again is a retry of that lineage, never a new purchase.
pub fn standing_creation_key(plan_id: Uuid, step: u32) -> String {
    format!("plan:{plan_id}:step:{step}")
}

/// Returns the creation key of a run with a given list: the Idempotency-Key prefixed so
/// that it can never read `plan:<id>:step:<n>`, or none (a fresh random lineage).
pub fn given_creation_key(idempotency_key: Option<&str>) -> Option<String> {
    idempotency_key.map(|key| format!("api:{key}"))
}

/// Checks the idempotency fields: a key of 1 to 255 printable ASCII characters with a
/// 64-hex-digit request hash, or neither.
pub fn validate_idempotency(key: Option<&str>, request_hash: Option<&str>) -> Result<(), ApiError> {
    let Some(key) = key else {
        return Ok(());
    };
    check_key("idempotency_key", key)?;
    check_request_hash(request_hash)?;
    Ok(())
}

/// Returns the CreateExecution request of a run of `plan` over `targets`.
///
/// A given list is taken verbatim (no filtering or scaling) in its own lineage, and
/// buys no ramp step. The standing list buys step `current_step + 1`: its items the
/// plan's services accept, scaled to the step's increment, minus those naming an
/// account that is no longer a target; its creation key is `plan:<id>:step:<n>`.
/// The run is auto-approved when the plan auto-purchases.
pub fn build_execution_request(
    plan: &Plan,
    standing: &[Recommendation],
    targets: &[Uuid],
    list: RunList,
    options: RunOptions,
) -> Result<ExecutionRequest, RunRefusal> {
    validate_idempotency(
        options.idempotency_key.as_deref(),
        options.request_hash.as_deref(),
    )
    .map_err(RunRefusal::Invalid)?;
    let mut sized_from = None;
    let (step_number, recommendations, creation_key) = match list {
        RunList::Given(given) => {
            if given.is_empty() {
                return Err(RunRefusal::Invalid(ApiError::invalid_field(
                    "recommendations",
                    "must not be empty",
                )));
            }
            if targets.is_empty() {
                return Err(RunRefusal::Nothing(NothingToRun::NoTargets));
            }
            let key = given_creation_key(options.idempotency_key.as_deref());
            (None, given, key)
        }
        RunList::Sized(sized) => {
            let step = step_to_run(plan, targets).map_err(RunRefusal::Nothing)?;
            sized_from = Some(sized.sized_from);
            (
                Some(step),
                sized.items,
                Some(standing_creation_key(plan.id, step)),
            )
        }
        RunList::Standing => {
            let step = step_to_run(plan, targets).map_err(RunRefusal::Nothing)?;
            let selection = select_for_step(standing, &plan.services, &plan.ramp, step);
            if selection.applicable == 0 {
                return Err(RunRefusal::Nothing(NothingToRun::NoApplicableItems));
            }
            let items: Vec<Recommendation> = selection
                .items
                .into_iter()
                .filter(|item| {
                    item.cloud_account_id
                        .is_none_or(|account| targets.contains(&account))
                })
                .collect();
            if items.is_empty() {
                return Err(RunRefusal::Nothing(NothingToRun::EmptyIncrement { step }));
            }
            (
                Some(step),
                items,
                Some(standing_creation_key(plan.id, step)),
            )
        }
    };
    assign_targets(targets, &recommendations).map_err(|error| RunRefusal::Invalid(error.into()))?;
    Ok(ExecutionRequest {
        plan_id: plan.id,
        step_number,
        scheduled_date: options.scheduled_date,
        target_account_ids: targets.to_vec(),
        recommendations,
        creation_key,
        idempotency_key: options.idempotency_key,
        request_hash: options.request_hash,
        auto_approve: plan.auto_purchase,
        source: options.source,
        actor: options.actor,
        actor_key_id: options.actor_key_id,
        dry_run: options.dry_run,
        max_commitment_per_run: plan.max_commitment_per_run,
        sized_from,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cudly_vocabulary::{
        Provider, RecommendationDetails, RecommendationInput, validate_recommendations,
    };

    use super::*;
    use crate::domain::plan::{RampSchedule, RampType, ServiceConfig};

    fn plan(ramp_type: RampType, percent: f64, total_steps: u32, current_step: u32) -> Plan {
        let now = Utc::now();
        Plan {
            id: Uuid::parse_str("6f1c1c6e-0000-4000-8000-000000000001").unwrap(),
            name: "RDS ladder".into(),
            enabled: true,
            auto_purchase: false,
            max_commitment_per_run: None,
            editor: None,
            auto_purchase_requested_by: None,
            source: crate::domain::plan::PlanSource::List,
            notification_days_before: 7,
            services: BTreeMap::from([(
                "aws/rds".to_owned(),
                ServiceConfig {
                    provider: Provider::Aws,
                    service: "rds".into(),
                    enabled: true,
                    term: 1,
                    payment: "all-upfront".into(),
                    coverage: 100.0,
                    include_regions: vec![],
                    exclude_regions: vec![],
                    include_types: vec![],
                    exclude_types: vec![],
                },
            )]),
            ramp: RampSchedule {
                ramp_type,
                percent_per_step: percent,
                step_interval_days: 7,
                current_step,
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

    fn item(
        service: &str,
        count: u32,
        account: Option<Uuid>,
        all_accounts: bool,
    ) -> Recommendation {
        let mut details = RecommendationDetails::default();
        if service == "savingsplans" {
            details.hourly_commitment = Some("2.50".into());
        }
        validate_recommendations(vec![RecommendationInput {
            provider: "aws".into(),
            service: service.into(),
            region: "us-east-1".into(),
            resource_type: if service == "savingsplans" {
                "Compute".into()
            } else {
                "db.r6g.large".into()
            },
            engine: Some("postgresql".into()),
            count,
            term: 1,
            payment: "all-upfront".into(),
            cloud_account_id: account,
            all_accounts: Some(all_accounts),
            details: Some(details),
            upfront_cost: Some(100.0 * f64::from(count)),
            ..RecommendationInput::default()
        }])
        .unwrap()
        .remove(0)
    }

    fn options(source: RunSource) -> RunOptions {
        RunOptions {
            source,
            actor: "key:ops".into(),
            actor_key_id: None,
            dry_run: false,
            scheduled_date: None,
            idempotency_key: None,
            request_hash: None,
        }
    }

    const HASH: &str = "9094316e761d7af39d0790a8a4228582aa22cbaf6e01606eff3f578013f10633";

    #[test]
    fn a_standing_run_buys_the_next_step_in_the_step_lineage() {
        let plan = plan(RampType::Weekly25Pct, 25.0, 4, 1);
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let standing = vec![item("rds", 8, None, true), item("memorydb", 4, None, true)];
        let request = build_execution_request(
            &plan,
            &standing,
            &[a, b],
            RunList::Standing,
            options(RunSource::Schedule),
        )
        .unwrap();
        assert_eq!(request.step_number, Some(2));
        assert_eq!(
            request.creation_key.as_deref(),
            Some("plan:6f1c1c6e-0000-4000-8000-000000000001:step:2")
        );
        assert_eq!(request.target_account_ids, vec![a, b]);
        assert_eq!(
            request.recommendations.len(),
            1,
            "memorydb is not a service of the plan"
        );
        assert_eq!(request.recommendations[0].count, 2);
        assert_eq!(request.recommendations[0].upfront_cost, Some(200.0));
        assert!(!request.auto_approve);
        assert_eq!(request.source, RunSource::Schedule);
        assert_eq!(request.plan_id, plan.id);
    }

    #[test]
    fn an_auto_purchase_plan_is_auto_approved() {
        let mut plan = plan(RampType::Immediate, 100.0, 1, 0);
        plan.auto_purchase = true;
        let target = Uuid::new_v4();
        let request = build_execution_request(
            &plan,
            &[item("rds", 3, None, false)],
            &[target],
            RunList::Standing,
            options(RunSource::Schedule),
        )
        .unwrap();
        assert!(request.auto_approve);
        assert_eq!(request.step_number, Some(1));
        assert_eq!(request.recommendations[0].count, 3);
    }

    #[test]
    fn a_given_list_is_taken_verbatim_in_its_own_lineage() {
        let plan = plan(RampType::Weekly25Pct, 25.0, 4, 0);
        let target = Uuid::new_v4();
        // memorydb is not a plan service and the count is not scaled: verbatim.
        let given = vec![
            item("memorydb", 7, None, false),
            item("rds", 5, Some(target), false),
        ];
        let mut with_key = options(RunSource::Api);
        with_key.idempotency_key = Some("retry-42".into());
        with_key.request_hash = Some(HASH.into());
        let request = build_execution_request(
            &plan,
            &[],
            &[target],
            RunList::Given(given.clone()),
            with_key,
        )
        .unwrap();
        assert_eq!(request.recommendations, given);
        assert_eq!(request.step_number, None);
        assert_eq!(request.creation_key.as_deref(), Some("api:retry-42"));
        assert_eq!(request.idempotency_key.as_deref(), Some("retry-42"));
        assert_eq!(request.request_hash.as_deref(), Some(HASH));
        let without_key = build_execution_request(
            &plan,
            &[],
            &[target],
            RunList::Given(given),
            options(RunSource::Api),
        )
        .unwrap();
        assert_eq!(without_key.creation_key, None, "a fresh random lineage");
    }

    #[test]
    fn a_given_key_can_never_read_as_a_step_lineage() {
        let key = given_creation_key(Some("plan:x:step:1")).unwrap();
        assert!(!key.starts_with("plan:"));
    }

    #[test]
    fn runs_with_nothing_to_do_are_refused_with_the_reason() {
        let target = Uuid::new_v4();
        let rds = vec![item("rds", 1, None, false)];
        // (case, plan, standing list, targets, list, expected refusal)
        let cases = [
            (
                "plan finished",
                plan(RampType::Weekly25Pct, 25.0, 4, 4),
                rds.clone(),
                vec![target],
                RunList::Standing,
                NothingToRun::PlanFinished,
            ),
            (
                "no targets",
                plan(RampType::Immediate, 100.0, 1, 0),
                rds.clone(),
                vec![],
                RunList::Standing,
                NothingToRun::NoTargets,
            ),
            (
                "no targets for a given list",
                plan(RampType::Immediate, 100.0, 1, 0),
                vec![],
                vec![],
                RunList::Given(rds.clone()),
                NothingToRun::NoTargets,
            ),
            (
                "no applicable item",
                plan(RampType::Immediate, 100.0, 1, 0),
                vec![item("redshift", 3, None, false)],
                vec![target],
                RunList::Standing,
                NothingToRun::NoApplicableItems,
            ),
            (
                "empty standing list",
                plan(RampType::Immediate, 100.0, 1, 0),
                vec![],
                vec![target],
                RunList::Standing,
                NothingToRun::NoApplicableItems,
            ),
            (
                "increment rounds to nothing",
                plan(RampType::Weekly25Pct, 25.0, 4, 0),
                rds.clone(),
                vec![target],
                RunList::Standing,
                NothingToRun::EmptyIncrement { step: 1 },
            ),
            (
                "only items of accounts that are no longer targets",
                plan(RampType::Immediate, 100.0, 1, 0),
                vec![item("rds", 2, Some(Uuid::new_v4()), false)],
                vec![target],
                RunList::Standing,
                NothingToRun::EmptyIncrement { step: 1 },
            ),
        ];
        for (case, plan, standing, targets, list, expected) in cases {
            let refusal =
                build_execution_request(&plan, &standing, &targets, list, options(RunSource::Api))
                    .unwrap_err();
            assert_eq!(refusal, RunRefusal::Nothing(expected), "{case}");
        }
    }

    #[test]
    fn standing_items_of_accounts_no_longer_targeted_are_dropped() {
        let plan = plan(RampType::Immediate, 100.0, 1, 0);
        let target = Uuid::new_v4();
        let gone = Uuid::new_v4();
        let standing = vec![
            item("rds", 2, Some(gone), false),
            item("rds", 3, Some(target), false),
        ];
        let request = build_execution_request(
            &plan,
            &standing,
            &[target],
            RunList::Standing,
            options(RunSource::Api),
        )
        .unwrap();
        assert_eq!(request.recommendations.len(), 1);
        assert_eq!(request.recommendations[0].cloud_account_id, Some(target));
    }

    #[test]
    fn bad_targets_and_idempotency_fields_are_refused_naming_the_field() {
        let plan = plan(RampType::Immediate, 100.0, 1, 0);
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let stranger = Uuid::new_v4();
        let mut key_without_hash = options(RunSource::Api);
        key_without_hash.idempotency_key = Some("k".into());
        let mut bad_key = options(RunSource::Api);
        bad_key.idempotency_key = Some("has space".into());
        bad_key.request_hash = Some(HASH.into());
        // (case, targets, list, options, field)
        let cases = [
            (
                "empty given list",
                vec![a],
                RunList::Given(vec![]),
                options(RunSource::Api),
                "recommendations",
            ),
            (
                "item of another account",
                vec![a],
                RunList::Given(vec![item("rds", 1, Some(stranger), false)]),
                options(RunSource::Api),
                "recommendations[0].cloud_account_id",
            ),
            (
                "several targets and no account named",
                vec![a, b],
                RunList::Given(vec![
                    item("rds", 1, Some(a), false),
                    item("rds", 1, None, false),
                ]),
                options(RunSource::Api),
                "recommendations[1].cloud_account_id",
            ),
            (
                "standing item ambiguous over several targets",
                vec![a, b],
                RunList::Standing,
                options(RunSource::Schedule),
                "recommendations[0].cloud_account_id",
            ),
            (
                "key without hash",
                vec![a],
                RunList::Given(vec![item("rds", 1, None, false)]),
                key_without_hash,
                "request_hash",
            ),
            (
                "key with a space",
                vec![a],
                RunList::Given(vec![item("rds", 1, None, false)]),
                bad_key,
                "idempotency_key",
            ),
        ];
        let standing = vec![item("rds", 4, None, false)];
        for (case, targets, list, run_options, field) in cases {
            match build_execution_request(&plan, &standing, &targets, list, run_options) {
                Err(RunRefusal::Invalid(error)) => {
                    assert_eq!(
                        error.field.as_deref(),
                        Some(field),
                        "{case}: {}",
                        error.message
                    );
                    assert_eq!(error.http_status(), 400, "{case}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn one_target_needs_no_all_accounts_flag() {
        let plan = plan(RampType::Immediate, 100.0, 1, 0);
        let target = Uuid::new_v4();
        let request = build_execution_request(
            &plan,
            &[item("rds", 2, None, false)],
            &[target],
            RunList::Standing,
            options(RunSource::Api),
        )
        .unwrap();
        assert_eq!(request.target_account_ids, vec![target]);
    }

    #[test]
    fn nothing_to_run_is_a_conflict_and_bad_input_stays_invalid() {
        let nothing: ApiError = RunRefusal::Nothing(NothingToRun::NoTargets).into();
        assert_eq!(nothing.http_status(), 409);
        assert_eq!(nothing.message, "nothing to run: no enabled target account");
        let invalid: ApiError =
            RunRefusal::Invalid(ApiError::invalid_field("recommendations", "x")).into();
        assert_eq!(invalid.http_status(), 400);
    }
}
