//! The request bodies of the plan routes, and their wire forms.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cudly_proto::convert::timestamp;
use cudly_proto::planner::v1 as pb;
use cudly_vocabulary::RecommendationInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A plan as written (POST and PUT). Read-only fields of a plan (`id`, timestamps,
/// dates, `ramp_schedule.current_step`) are accepted and ignored, so that a plan read
/// with GET can be sent back with PUT.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// Required, at most 100 characters.
    pub name: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default false: executions wait for approval. Turning it on needs a rolling-window
    /// limit in `/api/guardrails` (422 otherwise).
    #[serde(default)]
    pub auto_purchase: Option<bool>,
    /// The most one run of the plan may commit, in USD (upfront + monthly × term);
    /// absent: only the guardrails limit it.
    #[serde(default)]
    pub max_commitment_per_run: Option<f64>,
    /// What runs buy when no list is given: `list` (the standing list, default) or
    /// `recommendations` (sized from Cost Explorer's recommendations by coverage).
    #[serde(default)]
    pub source: Option<String>,
    /// 0-30, default 7.
    #[serde(default)]
    pub notification_days_before: Option<u32>,
    /// Keyed `"<provider>/<service>"`, e.g. `"aws/ec2"`; at least one.
    pub services: BTreeMap<String, ServiceBody>,
    /// Default: immediate, starting now.
    #[serde(default)]
    pub ramp_schedule: Option<RampScheduleBody>,
    /// POST only: the accounts to bind; absent or empty: all enabled accounts of the
    /// plan's providers.
    #[serde(default)]
    pub account_ids: Option<Vec<Uuid>>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub id: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub next_execution_date: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub last_execution_date: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub step_fires: Option<u32>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub paused_reason: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub created_at: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub updated_at: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub updated_by: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub auto_purchase_requested_by: Option<String>,
}

/// One service of a plan as written.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// `aws` | `azure` | `gcp`; must agree with the key.
    pub provider: String,
    /// For aws: ec2, savingsplans, rds, elasticache, memorydb, opensearch, redshift; must
    /// agree with the key.
    pub service: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Years: 1 or 3.
    pub term: u32,
    /// aws: no-upfront | partial-upfront | all-upfront; azure: upfront | monthly; gcp:
    /// monthly.
    pub payment: String,
    /// Percent 0-100.
    pub coverage: f64,
    #[serde(default)]
    pub include_regions: Vec<String>,
    #[serde(default)]
    pub exclude_regions: Vec<String>,
    #[serde(default)]
    pub include_types: Vec<String>,
    #[serde(default)]
    pub exclude_types: Vec<String>,
}

/// A ramp schedule as written. A preset fills the fields not given; `custom` needs
/// percent_per_step, step_interval_days and total_steps.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RampScheduleBody {
    /// immediate | weekly-25pct | monthly-10pct | custom; default immediate.
    #[serde(default, rename = "type")]
    pub ramp_type: Option<String>,
    #[serde(default)]
    pub percent_per_step: Option<f64>,
    #[serde(default)]
    pub step_interval_days: Option<u32>,
    #[serde(default)]
    pub total_steps: Option<u32>,
    /// Default: now (on update: the stored start date).
    #[serde(default)]
    pub start_date: Option<DateTime<Utc>>,
    /// Read-only (advanced by completed executions), ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub current_step: Option<u32>,
}

/// The accounts to bind to a plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanAccountsBody {
    /// Empty: all enabled accounts of the plan's providers, resolved when it runs.
    pub account_ids: Vec<Uuid>,
}

/// A plan's standing recommendation list as written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsBody {
    pub recommendations: Vec<RecommendationInput>,
}

/// Starting an execution of a plan.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartExecutionBody {
    /// Buy this list verbatim (its own lineage). Absent: the plan's standing list,
    /// filtered and scaled for its next ramp step.
    #[serde(default)]
    pub recommendations: Option<Vec<RecommendationInput>>,
    #[serde(default)]
    pub scheduled_date: Option<DateTime<Utc>>,
}

/// Returns the wire form of a plan as written.
pub fn plan_input(body: PlanBody) -> pb::PlanInput {
    pb::PlanInput {
        name: body.name,
        enabled: body.enabled,
        auto_purchase: body.auto_purchase,
        max_commitment_per_run: body.max_commitment_per_run,
        source: body.source,
        notification_days_before: body.notification_days_before,
        services: body
            .services
            .into_iter()
            .map(|(key, service)| {
                let input = pb::ServiceConfigInput {
                    provider: service.provider,
                    service: service.service,
                    enabled: service.enabled,
                    term: service.term,
                    payment: service.payment,
                    coverage: service.coverage,
                    include_regions: service.include_regions,
                    exclude_regions: service.exclude_regions,
                    include_types: service.include_types,
                    exclude_types: service.exclude_types,
                };
                (key, input)
            })
            .collect(),
        ramp_schedule: body.ramp_schedule.map(|ramp| pb::RampScheduleInput {
            r#type: ramp.ramp_type,
            percent_per_step: ramp.percent_per_step,
            step_interval_days: ramp.step_interval_days,
            total_steps: ramp.total_steps,
            start_date: ramp.start_date.map(timestamp),
        }),
    }
}
