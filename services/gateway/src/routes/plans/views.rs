//! The replies of the plan routes, built from the planner's wire types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::common::v1 as common_pb;
use cudly_proto::convert::optional_time;
use cudly_proto::planner::v1 as pb;
use cudly_vocabulary::Recommendation;
use serde::Serialize;
use utoipa::ToSchema;

/// A plan (docs/design/API.md "Plan").
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub auto_purchase: bool,
    pub notification_days_before: u32,
    pub services: BTreeMap<String, ServiceView>,
    pub ramp_schedule: RampScheduleView,
    /// Null when the plan has nothing more to run.
    pub next_execution_date: Option<DateTime<Utc>>,
    pub last_execution_date: Option<DateTime<Utc>>,
    /// Times the next step was fired without completing.
    pub step_fires: u32,
    /// Why the planner paused (disabled) the plan; null unless it did. Enabling the plan
    /// clears it.
    pub paused_reason: Option<String>,
    /// The most one run may commit (USD); null: only the guardrails limit it.
    pub max_commitment_per_run: Option<f64>,
    /// Who last created or changed the plan; scheduled runs are created in their name.
    pub updated_by: Option<String>,
    /// When approvers must differ: who asked to turn auto_purchase on; a write with
    /// `auto_purchase: true` by another admin enables it.
    pub auto_purchase_requested_by: Option<String>,
    /// `list` | `recommendations`.
    pub source: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One service of a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub provider: String,
    pub service: String,
    pub enabled: bool,
    pub term: u32,
    pub payment: String,
    pub coverage: f64,
    pub include_regions: Vec<String>,
    pub exclude_regions: Vec<String>,
    pub include_types: Vec<String>,
    pub exclude_types: Vec<String>,
}

/// A plan's ramp schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RampScheduleView {
    #[serde(rename = "type")]
    pub ramp_type: String,
    pub percent_per_step: f64,
    pub step_interval_days: u32,
    /// Steps completed so far.
    pub current_step: u32,
    pub total_steps: u32,
    pub start_date: Option<DateTime<Utc>>,
}

/// Every plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub plans: Vec<PlanView>,
}

/// A plan's account binding.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanAccountsView {
    /// The explicit list (empty when all_enabled_accounts).
    pub account_ids: Vec<String>,
    /// The plan targets every enabled account of its providers.
    pub all_enabled_accounts: bool,
    /// The listed accounts that still exist, or the enabled accounts of the plan's
    /// providers now.
    pub accounts: Vec<PlanAccountView>,
}

/// An account bound to a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanAccountView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub external_id: String,
    pub enabled: bool,
}

/// A recommendation list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationList {
    pub recommendations: Vec<Recommendation>,
}

/// Returns the JSON form of a plan.
pub fn plan_view(plan: pb::Plan) -> PlanView {
    let ramp = plan.ramp_schedule.unwrap_or_default();
    PlanView {
        id: plan.id,
        name: plan.name,
        enabled: plan.enabled,
        auto_purchase: plan.auto_purchase,
        notification_days_before: plan.notification_days_before,
        services: plan
            .services
            .into_iter()
            .map(|(key, service)| {
                let view = ServiceView {
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
                (key, view)
            })
            .collect(),
        ramp_schedule: RampScheduleView {
            ramp_type: ramp.r#type,
            percent_per_step: ramp.percent_per_step,
            step_interval_days: ramp.step_interval_days,
            current_step: ramp.current_step,
            total_steps: ramp.total_steps,
            start_date: optional_time(ramp.start_date.as_ref()),
        },
        next_execution_date: optional_time(plan.next_execution_date.as_ref()),
        last_execution_date: optional_time(plan.last_execution_date.as_ref()),
        step_fires: plan.step_fires,
        paused_reason: plan.paused_reason,
        max_commitment_per_run: plan.max_commitment_per_run,
        source: plan.source,
        updated_by: plan.updated_by,
        auto_purchase_requested_by: plan.auto_purchase_requested_by,
        created_at: optional_time(plan.created_at.as_ref()),
        updated_at: optional_time(plan.updated_at.as_ref()),
    }
}

/// Returns the JSON form of a plan's account binding.
pub fn plan_accounts_view(binding: pb::PlanAccounts) -> PlanAccountsView {
    PlanAccountsView {
        account_ids: binding.account_ids,
        all_enabled_accounts: binding.all_enabled_accounts,
        accounts: binding
            .accounts
            .into_iter()
            .map(|account| PlanAccountView {
                id: account.id,
                name: account.name,
                provider: account.provider,
                external_id: account.external_id,
                enabled: account.enabled,
            })
            .collect(),
    }
}

/// Returns the JSON form of lines a service sent; a line outside the vocabulary is an
/// internal error (every service validates what it stores).
pub fn recommendations(
    lines: Vec<common_pb::Recommendation>,
) -> Result<Vec<Recommendation>, ApiError> {
    lines
        .into_iter()
        .map(|line| {
            Recommendation::try_from(line).map_err(|error| {
                tracing::error!(field = %error.field, "a service sent a recommendation outside the vocabulary");
                ApiError::internal()
            })
        })
        .collect()
}

/// Returns the JSON form of a recommendation list.
pub fn recommendation_list(
    lines: Vec<common_pb::Recommendation>,
) -> Result<RecommendationList, ApiError> {
    Ok(RecommendationList {
        recommendations: recommendations(lines)?,
    })
}
