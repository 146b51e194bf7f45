//! `/api/plans`: plans, their accounts and standing recommendations, and starting an
//! execution of a plan (docs/design/API.md, Plans and `POST /api/plans/{id}/executions`).
//! Every route calls the planner; changes need an admin key (the auth layer gives
//! viewers GET only). Request bodies are in [`models`], replies in [`views`].

mod models;
pub(crate) mod views;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cudly_common::ApiError;
use cudly_proto::common::v1 as common_pb;
use cudly_proto::convert::timestamp;
use cudly_proto::planner::v1 as pb;
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use models::{
    PlanAccountsBody, PlanBody, RampScheduleBody, RecommendationsBody, ServiceBody,
    StartExecutionBody,
};
pub use views::{
    PlanAccountView, PlanAccountsView, PlanList, PlanView, RampScheduleView, RecommendationList,
    ServiceView,
};

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency::IdempotentRequest;
use crate::routes::executions::{CreatedExecutionView, DryRunQuery, execution_view};
use crate::state::AppState;
use models::plan_input;
use views::{plan_accounts_view, plan_view};

/// Returns the `/api/plans` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans, create_plan))
        .routes(routes!(get_plan, update_plan, delete_plan))
        .routes(routes!(get_plan_accounts, set_plan_accounts))
        .routes(routes!(get_plan_recommendations, set_plan_recommendations))
        .routes(routes!(start_plan_execution))
}

fn planner(state: &AppState) -> PlannerServiceClient<cudly_common::grpc::AuthChannel> {
    PlannerServiceClient::new(state.clients.planner.clone())
}

fn planner_error(status: tonic::Status) -> crate::error::HttpError {
    grpc_error("planner", status)
}

/// Lists every plan, ordered by name.
#[utoipa::path(
    get,
    path = "/api/plans",
    tag = "plans",
    responses(
        (status = 200, description = "every plan", body = PlanList),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "planner service unavailable", body = ErrorBody),
    ),
)]
async fn list_plans(State(state): State<AppState>) -> HttpResult<ApiJson<PlanList>> {
    let reply = planner(&state)
        .list_plans(pb::ListPlansRequest {})
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(PlanList {
        plans: reply.plans.into_iter().map(plan_view).collect(),
    }))
}

/// Creates a plan, optionally bound to accounts (all of the plan's providers).
#[utoipa::path(
    post,
    path = "/api/plans",
    tag = "plans",
    request_body = PlanBody,
    responses(
        (status = 201, description = "the plan", body = PlanView),
        (status = 400, description = "invalid field, or accounts of another provider (`mismatches`)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "unknown account", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn create_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PlanBody>,
) -> HttpResult<(StatusCode, ApiJson<PlanView>)> {
    principal.require_admin()?;
    let account_ids = body.account_ids.as_ref().map(|ids| common_pb::IdList {
        ids: ids.iter().map(Uuid::to_string).collect(),
    });
    let request = pb::CreatePlanRequest {
        plan: Some(plan_input(body)),
        account_ids,
        actor: principal.actor(),
        actor_key_id: Some(principal.identity()),
    };
    let plan = planner(&state)
        .create_plan(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %plan.id, by = %principal.name, "plan created");
    Ok((StatusCode::CREATED, ApiJson(plan_view(plan))))
}

/// Returns one plan.
#[utoipa::path(
    get,
    path = "/api/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 200, description = "the plan", body = PlanView),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
    ),
)]
async fn get_plan(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<PlanView>> {
    let plan = planner(&state)
        .get_plan(pb::GetPlanRequest { id: id.to_string() })
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(plan_view(plan)))
}

/// Replaces a plan's writable fields (the ramp's current step is kept).
#[utoipa::path(
    put,
    path = "/api/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    request_body = PlanBody,
    responses(
        (status = 200, description = "the plan", body = PlanView),
        (status = 400, description = "invalid field, or a removed provider still used by bound accounts (`mismatches`)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn update_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PlanBody>,
) -> HttpResult<ApiJson<PlanView>> {
    principal.require_admin()?;
    if body.account_ids.is_some() {
        return Err(ApiError::invalid_field(
            "account_ids",
            "set a plan's accounts with PUT /api/plans/{id}/accounts",
        )
        .into());
    }
    let request = pb::UpdatePlanRequest {
        id: id.to_string(),
        plan: Some(plan_input(body)),
        actor: principal.actor(),
        actor_key_id: Some(principal.identity()),
    };
    let plan = planner(&state)
        .update_plan(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %plan.id, by = %principal.name, "plan updated");
    Ok(ApiJson(plan_view(plan)))
}

/// Deletes a plan and its account binding, unless it has a non-terminal execution.
#[utoipa::path(
    delete,
    path = "/api/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 409, description = "the plan has a non-terminal execution", body = ErrorBody),
        (status = 503, description = "planner or executor service unavailable (nothing deleted)", body = ErrorBody),
    ),
)]
async fn delete_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    planner(&state)
        .delete_plan(pb::DeletePlanRequest { id: id.to_string() })
        .await
        .map_err(planner_error)?;
    tracing::info!(plan_id = %id, by = %principal.name, "plan deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Returns the plan's account binding with the accounts' current data.
#[utoipa::path(
    get,
    path = "/api/plans/{id}/accounts",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 200, description = "the binding", body = PlanAccountsView),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn get_plan_accounts(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<PlanAccountsView>> {
    let binding = planner(&state)
        .get_plan_accounts(pb::GetPlanAccountsRequest {
            plan_id: id.to_string(),
        })
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(plan_accounts_view(binding)))
}

/// Replaces the plan's account list atomically; an empty list means every enabled
/// account of the plan's providers. On any error nothing changes.
#[utoipa::path(
    put,
    path = "/api/plans/{id}/accounts",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    request_body = PlanAccountsBody,
    responses(
        (status = 200, description = "the binding", body = PlanAccountsView),
        (status = 400, description = "malformed id, or accounts of another provider (`mismatches`)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan or account", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable (nothing changed)", body = ErrorBody),
    ),
)]
async fn set_plan_accounts(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PlanAccountsBody>,
) -> HttpResult<ApiJson<PlanAccountsView>> {
    principal.require_admin()?;
    let request = pb::SetPlanAccountsRequest {
        plan_id: id.to_string(),
        account_ids: body.account_ids.iter().map(Uuid::to_string).collect(),
    };
    let binding = planner(&state)
        .set_plan_accounts(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %id, accounts = binding.account_ids.len(), by = %principal.name, "plan accounts set");
    Ok(ApiJson(plan_accounts_view(binding)))
}

/// Returns the plan's standing recommendation list.
#[utoipa::path(
    get,
    path = "/api/plans/{id}/recommendations",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 200, description = "the standing list", body = RecommendationList),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
    ),
)]
async fn get_plan_recommendations(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<RecommendationList>> {
    let reply = planner(&state)
        .get_plan_recommendations(pb::GetPlanRecommendationsRequest {
            plan_id: id.to_string(),
        })
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(views::recommendation_list(reply.recommendations)?))
}

/// Replaces the plan's standing recommendation list: what a scheduled run buys, filtered
/// to the plan's services and scaled to each ramp step.
#[utoipa::path(
    put,
    path = "/api/plans/{id}/recommendations",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    request_body = RecommendationsBody,
    responses(
        (status = 200, description = "the standing list as stored (defaults applied)", body = RecommendationList),
        (status = 400, description = "invalid recommendation (the field is named)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
    ),
)]
async fn set_plan_recommendations(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RecommendationsBody>,
) -> HttpResult<ApiJson<RecommendationList>> {
    principal.require_admin()?;
    let request = pb::SetPlanRecommendationsRequest {
        plan_id: id.to_string(),
        recommendations: body.recommendations.into_iter().map(Into::into).collect(),
    };
    let reply = planner(&state)
        .set_plan_recommendations(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %id, items = reply.recommendations.len(), by = %principal.name, "plan recommendations set");
    Ok(ApiJson(views::recommendation_list(reply.recommendations)?))
}

/// Starts an execution of the plan: the given list verbatim, or the standing list for
/// the next ramp step (creation key `plan:<id>:step:<n>`). Honours `Idempotency-Key`:
/// the same key and body return the original execution, another body is 409.
#[utoipa::path(
    post,
    path = "/api/plans/{id}/executions",
    tag = "plans",
    params(
        ("id" = Uuid, Path, description = "the plan's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "makes the creation idempotent"),
        ("dry_run" = Option<bool>, Query, description = "true: the execution as it would be created (status dry_run, no id), nothing stored or bought"),
    ),
    request_body = StartExecutionBody,
    responses(
        (status = 201, description = "the execution; approval_token only in this reply", body = CreatedExecutionView),
        (status = 200, description = "dry run: the execution as it would be created", body = CreatedExecutionView),
        (status = 422, description = "an item cannot be priced (`item`), or a spend limit refuses it (`limit`, `committed`, `requested`)", body = ErrorBody),
        (status = 400, description = "invalid recommendation, or an account that is not a target", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 409, description = "nothing to run, or the Idempotency-Key was used with another body", body = ErrorBody),
        (status = 503, description = "planner, accounts or executor service unavailable", body = ErrorBody),
    ),
)]
async fn start_plan_execution(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<DryRunQuery>,
    ApiJson(body): ApiJson<StartExecutionBody>,
) -> HttpResult<(StatusCode, ApiJson<CreatedExecutionView>)> {
    principal.require_admin()?;
    let dry_run = query.requested();
    let idempotent = if dry_run {
        // A dry run stores nothing, so there is nothing to replay.
        IdempotentRequest::default()
    } else {
        IdempotentRequest::read(
            &headers,
            "POST",
            &format!("/api/plans/{id}/executions"),
            &body,
        )?
    };
    let request = pb::StartExecutionRequest {
        plan_id: id.to_string(),
        recommendations: body
            .recommendations
            .map(|list| common_pb::RecommendationList {
                recommendations: list.into_iter().map(Into::into).collect(),
            }),
        scheduled_date: body.scheduled_date.map(timestamp),
        idempotency_key: idempotent.key,
        request_hash: idempotent.request_hash,
        actor: principal.actor(),
        actor_key_id: Some(principal.identity()),
        dry_run,
    };
    let reply = planner(&state)
        .start_execution(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    let execution = reply.execution.ok_or_else(|| {
        tracing::error!(plan_id = %id, "planner started an execution but returned none");
        ApiError::internal()
    })?;
    tracing::info!(plan_id = %id, execution_id = %execution.id, created = reply.created, dry_run, by = %principal.name, "plan execution started");
    Ok((
        if dry_run {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        ApiJson(CreatedExecutionView {
            execution: execution_view(execution)?,
            approval_token: reply.approval_token,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_read_with_get_can_be_sent_back() {
        let body: PlanBody = crate::extract::parse_json(
            br#"{"id":"6f1c","name":"EC2 ladder","enabled":true,"auto_purchase":false,
            "notification_days_before":7,
            "services":{"aws/ec2":{"provider":"aws","service":"ec2","enabled":true,"term":1,
              "payment":"no-upfront","coverage":80,"include_regions":[],"exclude_regions":[],
              "include_types":[],"exclude_types":[]}},
            "ramp_schedule":{"type":"weekly-25pct","percent_per_step":25,"step_interval_days":7,
              "current_step":0,"total_steps":4,"start_date":"2026-11-24T00:00:00Z"},
            "next_execution_date":"2026-11-24T00:00:00Z","last_execution_date":null,
            "created_at":"2026-11-23T10:00:00Z","updated_at":"2026-11-23T10:00:00Z"}"#,
        )
        .unwrap();
        let input = plan_input(body);
        assert_eq!(input.services["aws/ec2"].coverage, 80.0);
        assert_eq!(
            input.ramp_schedule.unwrap().r#type.as_deref(),
            Some("weekly-25pct")
        );
    }

    #[test]
    fn an_unknown_plan_field_is_refused_by_name() {
        let error = crate::extract::parse_json::<PlanBody>(
            br#"{"name":"p","services":{"aws/ec2":{"provider":"aws","service":"ec2","term":1,
            "payment":"no-upfront","coverage":80,"colour":"red"}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.field.as_deref(),
            Some("services.aws/ec2.colour"),
            "{}",
            error.message
        );
    }
}
