//! The gRPC edge of the planner service: proto types are converted to domain types here
//! and nowhere else (but for the clients' own edge in `clients.rs`). Each RPC checks its
//! caller, converts, calls [`Planner`], and converts back.

use chrono::{TimeDelta, Utc};
use cudly_common::ApiError;
use cudly_common::audit;
use cudly_common::caller_policy::{CallerPolicy, CallerTable};
use cudly_common::grpc::Caller;
use cudly_proto::convert::{
    details_to_wire, parse_id, parse_optional_time, recommendation_inputs, timestamp,
};
use cudly_proto::planner::v1 as pb;
use cudly_proto::planner::v1::planner_service_server::{PlannerService, PlannerServiceServer};
use cudly_vocabulary::Recommendation;
use tonic::{Request, Response, Status};

use crate::clients::Clients;
use crate::config::Config;
use crate::domain::plan::{
    AccountRef, Editor, Plan, PlanInput, RampInput, ServiceConfig, ServiceInput,
};
use crate::domain::recommendations::{FilterInput, StoredRecommendation};
use crate::domain::run::{RunOptions, RunSource};
use crate::domain::sizing::SizingRules;
use crate::service::{FireReport, PlanAccounts, Planner, RecommendationSettings};

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::planner::v1::planner_service_server::SERVICE_NAME;

/// Every RPC of this service with the callers allowed to call it, enforced by
/// [`CallerPolicy`] before any handler runs (docs/design/ARCHITECTURE.md "Who calls whom").
pub const CALLERS: CallerTable = &[
    ("CreatePlan", &[Caller::Gateway]),
    ("GetPlan", &[Caller::Gateway]),
    ("ListPlans", &[Caller::Gateway]),
    ("UpdatePlan", &[Caller::Gateway]),
    ("DeletePlan", &[Caller::Gateway]),
    ("SetPlanAccounts", &[Caller::Gateway]),
    ("GetPlanAccounts", &[Caller::Gateway]),
    ("SetPlanRecommendations", &[Caller::Gateway]),
    ("GetPlanRecommendations", &[Caller::Gateway]),
    ("StartExecution", &[Caller::Gateway]),
    ("FireDuePlans", &[Caller::Sweeper]),
    ("CompletePlanStep", &[Caller::Executor]),
    (
        "RefreshRecommendations",
        &[Caller::Gateway, Caller::Sweeper],
    ),
    ("ListRecommendations", &[Caller::Gateway]),
    ("ListAuditEvents", &[Caller::Gateway]),
];

/// The service implementation.
pub struct PlannerGrpc {
    planner: Planner,
}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, planner: Planner) -> tonic::service::Routes {
    let service = PlannerServiceServer::new(PlannerGrpc { planner });
    tonic::service::Routes::new(CallerPolicy::new(service, config.auth.clone(), CALLERS))
}

/// Returns the planner's operations over `pool`, with clients of its dependencies.
pub fn planner(config: &Config, pool: sqlx::PgPool) -> anyhow::Result<Planner> {
    Ok(Planner::new(
        pool,
        Clients::new(config)?,
        config.step_max_fires,
        RecommendationSettings {
            call_budget: config.recommendation_call_budget,
            sizing: SizingRules {
                cooldown: TimeDelta::from_std(config.recommendation_cooldown)?,
                max_age: TimeDelta::from_std(config.recommendation_max_age)?,
            },
        },
    ))
}

fn plan_input(proto: Option<pb::PlanInput>) -> Result<PlanInput, ApiError> {
    let proto = proto.ok_or_else(|| ApiError::invalid_field("plan", "is required"))?;
    let ramp_schedule = match proto.ramp_schedule {
        None => None,
        Some(ramp) => Some(RampInput {
            ramp_type: ramp.r#type,
            percent_per_step: ramp.percent_per_step,
            step_interval_days: ramp.step_interval_days,
            total_steps: ramp.total_steps,
            start_date: parse_optional_time(ramp.start_date.as_ref(), "ramp_schedule.start_date")?,
        }),
    };
    Ok(PlanInput {
        name: proto.name,
        enabled: proto.enabled,
        auto_purchase: proto.auto_purchase,
        max_commitment_per_run: proto.max_commitment_per_run,
        source: proto.source,
        notification_days_before: proto.notification_days_before,
        services: proto
            .services
            .into_iter()
            .map(|(key, service)| {
                let input = ServiceInput {
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
        ramp_schedule,
    })
}

fn service_proto(service: &ServiceConfig) -> pb::ServiceConfig {
    pb::ServiceConfig {
        provider: service.provider.as_str().to_owned(),
        service: service.service.clone(),
        enabled: service.enabled,
        term: service.term,
        payment: service.payment.clone(),
        coverage: service.coverage,
        include_regions: service.include_regions.clone(),
        exclude_regions: service.exclude_regions.clone(),
        include_types: service.include_types.clone(),
        exclude_types: service.exclude_types.clone(),
    }
}

/// Returns who creates or changes a plan; the actor is required.
fn editor(actor: String, key_id: Option<String>) -> Result<Editor, ApiError> {
    if actor.trim().is_empty() {
        return Err(ApiError::invalid_field("actor", "is required"));
    }
    Ok(Editor { actor, key_id })
}

fn plan_proto(plan: &Plan) -> pb::Plan {
    pb::Plan {
        id: plan.id.to_string(),
        name: plan.name.clone(),
        enabled: plan.enabled,
        auto_purchase: plan.auto_purchase,
        notification_days_before: plan.notification_days_before,
        services: plan
            .services
            .iter()
            .map(|(key, service)| (key.clone(), service_proto(service)))
            .collect(),
        ramp_schedule: Some(pb::RampSchedule {
            r#type: plan.ramp.ramp_type.as_str().to_owned(),
            percent_per_step: plan.ramp.percent_per_step,
            step_interval_days: plan.ramp.step_interval_days,
            current_step: plan.ramp.current_step,
            total_steps: plan.ramp.total_steps,
            start_date: Some(timestamp(plan.ramp.start_date)),
        }),
        next_execution_date: plan.next_execution_date.map(timestamp),
        last_execution_date: plan.last_execution_date.map(timestamp),
        step_fires: plan.step_fires,
        paused_reason: plan.paused_reason.clone(),
        max_commitment_per_run: plan.max_commitment_per_run,
        updated_by: plan.editor.as_ref().map(|editor| editor.actor.clone()),
        auto_purchase_requested_by: plan
            .auto_purchase_requested_by
            .as_ref()
            .map(|editor| editor.actor.clone()),
        source: plan.source.as_str().to_owned(),
        created_at: Some(timestamp(plan.created_at)),
        updated_at: Some(timestamp(plan.updated_at)),
    }
}

fn account_proto(account: &AccountRef) -> pb::PlanAccount {
    pb::PlanAccount {
        id: account.id.to_string(),
        name: account.name.clone(),
        provider: account.provider.clone(),
        external_id: account.external_id.clone(),
        enabled: account.enabled,
    }
}

fn plan_accounts_proto(binding: &PlanAccounts) -> pb::PlanAccounts {
    pb::PlanAccounts {
        account_ids: binding
            .account_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        all_enabled_accounts: binding.all_enabled_accounts,
        accounts: binding.accounts.iter().map(account_proto).collect(),
    }
}

fn recommendations_proto(recommendations: &[Recommendation]) -> pb::PlanRecommendations {
    pb::PlanRecommendations {
        recommendations: recommendations.iter().cloned().map(Into::into).collect(),
    }
}

fn fire_report_proto(report: FireReport) -> pb::FireDuePlansResponse {
    pb::FireDuePlansResponse {
        found: report.found,
        fired: report.fired,
        race_lost: report.race_lost,
        errors: report.errors,
        skipped: u32::try_from(report.skipped.len()).unwrap_or(u32::MAX),
        executions: report
            .executions
            .into_iter()
            .map(|fired| pb::FiredExecution {
                plan_id: fired.plan_id.to_string(),
                step_number: fired.step_number,
                execution_id: fired.execution_id,
                status: fired.status,
                created: fired.created,
            })
            .collect(),
        skipped_plans: report
            .skipped
            .into_iter()
            .map(|skipped| pb::SkippedPlan {
                plan_id: skipped.plan_id.to_string(),
                step_number: skipped.step_number,
                reason: skipped.reason,
                step_advanced: skipped.step_advanced,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl PlannerService for PlannerGrpc {
    #[tracing::instrument(skip_all)]
    async fn create_plan(
        &self,
        request: Request<pb::CreatePlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let input = plan_input(request.plan)?;
        let account_ids = request.account_ids.map(|list| list.ids);
        let editor = editor(request.actor, request.actor_key_id)?;
        let plan = self
            .planner
            .create_plan(&actor, input, account_ids, &editor, Utc::now())
            .await?;
        Ok(Response::new(plan_proto(&plan)))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().id))]
    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let id = parse_id(&request.get_ref().id, "id").map_err(ApiError::from)?;
        let plan = self.planner.get_plan(id).await?;
        Ok(Response::new(plan_proto(&plan)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_plans(
        &self,
        _request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        let plans = self.planner.list_plans().await?;
        Ok(Response::new(pb::ListPlansResponse {
            plans: plans.iter().map(plan_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().id))]
    async fn update_plan(
        &self,
        request: Request<pb::UpdatePlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.id, "id").map_err(ApiError::from)?;
        let input = plan_input(request.plan)?;
        let editor = editor(request.actor, request.actor_key_id)?;
        let plan = self
            .planner
            .update_plan(&actor, id, input, &editor, Utc::now())
            .await?;
        Ok(Response::new(plan_proto(&plan)))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().id))]
    async fn delete_plan(
        &self,
        request: Request<pb::DeletePlanRequest>,
    ) -> Result<Response<pb::DeletePlanResponse>, Status> {
        let actor = audit::actor_of(&request)?;
        let id = parse_id(&request.get_ref().id, "id").map_err(ApiError::from)?;
        self.planner.delete_plan(&actor, id).await?;
        Ok(Response::new(pb::DeletePlanResponse {}))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().plan_id))]
    async fn set_plan_accounts(
        &self,
        request: Request<pb::SetPlanAccountsRequest>,
    ) -> Result<Response<pb::PlanAccounts>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let plan_id = parse_id(&request.plan_id, "plan_id").map_err(ApiError::from)?;
        let binding = self
            .planner
            .set_plan_accounts(&actor, plan_id, request.account_ids)
            .await?;
        Ok(Response::new(plan_accounts_proto(&binding)))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().plan_id))]
    async fn get_plan_accounts(
        &self,
        request: Request<pb::GetPlanAccountsRequest>,
    ) -> Result<Response<pb::PlanAccounts>, Status> {
        let plan_id = parse_id(&request.get_ref().plan_id, "plan_id").map_err(ApiError::from)?;
        let binding = self.planner.get_plan_accounts(plan_id).await?;
        Ok(Response::new(plan_accounts_proto(&binding)))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().plan_id))]
    async fn set_plan_recommendations(
        &self,
        request: Request<pb::SetPlanRecommendationsRequest>,
    ) -> Result<Response<pb::PlanRecommendations>, Status> {
        let actor = audit::actor_of(&request)?;
        let request = request.into_inner();
        let plan_id = parse_id(&request.plan_id, "plan_id").map_err(ApiError::from)?;
        let inputs = recommendation_inputs(request.recommendations).map_err(ApiError::from)?;
        let stored = self
            .planner
            .set_recommendations(&actor, plan_id, inputs)
            .await?;
        Ok(Response::new(recommendations_proto(&stored)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_audit_events(
        &self,
        request: Request<cudly_proto::audit::v1::ListAuditEventsRequest>,
    ) -> Result<Response<cudly_proto::audit::v1::ListAuditEventsResponse>, Status> {
        let events = audit::list_events(self.planner.pool(), request.get_ref()).await?;
        Ok(Response::new(events))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().plan_id))]
    async fn get_plan_recommendations(
        &self,
        request: Request<pb::GetPlanRecommendationsRequest>,
    ) -> Result<Response<pb::PlanRecommendations>, Status> {
        let plan_id = parse_id(&request.get_ref().plan_id, "plan_id").map_err(ApiError::from)?;
        let stored = self.planner.get_recommendations(plan_id).await?;
        Ok(Response::new(recommendations_proto(&stored)))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().plan_id))]
    async fn start_execution(
        &self,
        request: Request<pb::StartExecutionRequest>,
    ) -> Result<Response<pb::StartExecutionResponse>, Status> {
        let request = request.into_inner();
        let plan_id = parse_id(&request.plan_id, "plan_id").map_err(ApiError::from)?;
        let given = request
            .recommendations
            .map(|list| recommendation_inputs(list.recommendations))
            .transpose()
            .map_err(ApiError::from)?;
        let options = RunOptions {
            source: RunSource::Api,
            actor: request.actor,
            scheduled_date: parse_optional_time(request.scheduled_date.as_ref(), "scheduled_date")
                .map_err(ApiError::from)?,
            idempotency_key: request.idempotency_key,
            request_hash: request.request_hash,
            actor_key_id: request.actor_key_id,
            dry_run: request.dry_run,
        };
        let created = self
            .planner
            .start_execution(plan_id, given, options)
            .await?;
        Ok(Response::new(pb::StartExecutionResponse {
            execution: created.reply.execution,
            approval_token: created.reply.approval_token,
            created: created.reply.created,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn fire_due_plans(
        &self,
        request: Request<pb::FireDuePlansRequest>,
    ) -> Result<Response<pb::FireDuePlansResponse>, Status> {
        let request = request.into_inner();
        let fencing = request
            .fencing
            .ok_or_else(|| ApiError::invalid_field("fencing", "is required"))?;
        let now = parse_optional_time(request.now.as_ref(), "now")
            .map_err(ApiError::from)?
            .unwrap_or_else(Utc::now);
        let report = self
            .planner
            .fire_due_plans(&fencing.task, fencing.token, now)
            .await?;
        Ok(Response::new(fire_report_proto(report)))
    }

    #[tracing::instrument(skip_all, fields(plan_id = %request.get_ref().plan_id, step = request.get_ref().step_number))]
    async fn complete_plan_step(
        &self,
        request: Request<pb::CompletePlanStepRequest>,
    ) -> Result<Response<pb::CompletePlanStepResponse>, Status> {
        let request = request.into_inner();
        let plan_id = parse_id(&request.plan_id, "plan_id").map_err(ApiError::from)?;
        let execution_id =
            parse_id(&request.execution_id, "execution_id").map_err(ApiError::from)?;
        let completed_at = parse_optional_time(request.completed_at.as_ref(), "completed_at")
            .map_err(ApiError::from)?
            .unwrap_or_else(Utc::now);
        let outcome = self
            .planner
            .complete_plan_step(plan_id, request.step_number, execution_id, completed_at)
            .await?;
        Ok(Response::new(pb::CompletePlanStepResponse {
            advanced: outcome.advanced,
            current_step: outcome.current_step,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn refresh_recommendations(
        &self,
        request: Request<pb::RefreshRecommendationsRequest>,
    ) -> Result<Response<pb::RefreshRecommendationsResponse>, Status> {
        let fencing = request.into_inner().fencing;
        let report = self
            .planner
            .refresh_recommendations(
                fencing
                    .as_ref()
                    .map(|fencing| (fencing.task.as_str(), fencing.token)),
            )
            .await?;
        Ok(Response::new(pb::RefreshRecommendationsResponse {
            accounts: report
                .accounts
                .into_iter()
                .map(|entry| pb::AccountRefresh {
                    cloud_account_id: entry.cloud_account_id.to_string(),
                    collected: entry.collected,
                    error: entry.error,
                })
                .collect(),
            calls: report.calls,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_recommendations(
        &self,
        request: Request<pb::ListRecommendationsRequest>,
    ) -> Result<Response<pb::ListRecommendationsResponse>, Status> {
        let request = request.into_inner();
        let recommendations = self
            .planner
            .list_recommendations(FilterInput {
                account_ids: request.account_ids,
                service: request.service,
                region: request.region,
                term: request.term,
                payment: request.payment,
            })
            .await?;
        Ok(Response::new(pb::ListRecommendationsResponse {
            recommendations: recommendations.into_iter().map(stored_proto).collect(),
        }))
    }
}

fn stored_proto(stored: StoredRecommendation) -> pb::StoredRecommendation {
    let detail = stored.recommendation;
    pb::StoredRecommendation {
        id: stored.id.to_string(),
        cloud_account_id: stored.cloud_account_id.to_string(),
        account_external_id: stored.account_external_id,
        provider: "aws".to_owned(),
        service: detail.service.name().to_owned(),
        region: detail.region,
        resource_type: detail.resource_type,
        engine: detail.engine,
        platform: detail.platform,
        term: detail.term,
        payment: detail.payment,
        recommended_count: detail.recommended_count,
        upfront_cost: detail.upfront_cost,
        monthly_savings: detail.monthly_savings,
        details: Some(details_to_wire(detail.details)),
        collected_at: Some(timestamp(stored.collected_at)),
    }
}
