//! The gRPC edge of the executor service: proto types are converted to domain types here
//! and nowhere else; each handler checks its caller, then calls the service layer.

use cudly_common::ApiError;
use cudly_common::audit;
use cudly_common::caller_policy::{CallerPolicy, CallerTable, caller_of};
use cudly_common::grpc::Caller;
use cudly_proto::common::v1 as common_pb;
use cudly_proto::convert::{
    parse_id, parse_ids, parse_optional_id, parse_optional_time, recommendation_inputs, timestamp,
};
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_server::{ExecutorService, ExecutorServiceServer};
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::config::Config;
use crate::domain::status::{ExecutionStatus, Source};
use crate::domain::targets::parse_targets;
use crate::repo::attempts::AttemptRow;
use crate::repo::executions::RootFilter;
use crate::repo::history::{HistoryFilter, PurchaseRow};
use crate::service::{
    AttemptTarget, CreateRequest, Decision, ExecutionView, Executor, GuardrailsUpdate,
    GuardrailsView, ResolveRequest,
};

mod notifications;

/// Fully qualified name of the service, reported in health.
pub const SERVICE_NAME: &str = cudly_proto::executor::v1::executor_service_server::SERVICE_NAME;

/// Every RPC of this service with the callers allowed to call it, enforced by
/// [`CallerPolicy`] before any handler runs (docs/design/ARCHITECTURE.md "Who calls whom").
pub const CALLERS: CallerTable = &[
    ("CreateExecution", GATEWAY_OR_PLANNER),
    ("GetExecution", GATEWAY),
    ("ListExecutions", GATEWAY),
    ("ApproveExecution", GATEWAY),
    ("CancelExecution", GATEWAY),
    ("PreviewApproval", GATEWAY),
    ("RetryExecution", GATEWAY),
    ("ListPurchaseHistory", GATEWAY_OR_PLANNER),
    ("ResolvePurchaseAttempt", GATEWAY),
    ("HasLiveExecution", PLANNER),
    ("ExpirePending", SWEEPER),
    ("ListStaleExecutions", SWEEPER),
    ("Redrive", SWEEPER),
    ("SafeFail", SWEEPER),
    ("GetGuardrails", GATEWAY_OR_PLANNER),
    ("PutGuardrails", GATEWAY),
    ("ListAuditEvents", GATEWAY),
    ("CreateNotificationChannel", GATEWAY),
    ("ListNotificationChannels", GATEWAY),
    ("DeleteNotificationChannel", GATEWAY),
    ("ListNotifications", GATEWAY),
    ("RaiseNotification", PLANNER),
];

/// The service implementation.
pub struct ExecutorGrpc {
    executor: Executor,
}

/// Returns the routes of this service behind the internal-token check.
pub fn routes(config: &Config, executor: Executor) -> tonic::service::Routes {
    let service = ExecutorServiceServer::new(ExecutorGrpc { executor });
    tonic::service::Routes::new(CallerPolicy::new(service, config.auth.clone(), CALLERS))
}

const GATEWAY: &[Caller] = &[Caller::Gateway];
const GATEWAY_OR_PLANNER: &[Caller] = &[Caller::Gateway, Caller::Planner];
const PLANNER: &[Caller] = &[Caller::Planner];
const SWEEPER: &[Caller] = &[Caller::Sweeper];

#[tonic::async_trait]
impl ExecutorService for ExecutorGrpc {
    #[tracing::instrument(skip_all, fields(rpc = "CreateExecution", caller))]
    async fn create_execution(
        &self,
        request: Request<pb::CreateExecutionRequest>,
    ) -> Result<Response<pb::CreateExecutionResponse>, Status> {
        let caller = caller_of(&request)?;
        tracing::Span::current().record("caller", caller.name());
        let create = create_request(request.into_inner(), caller)?;
        let dry_run = create.dry_run;
        let created = self.executor.create(create).await?;
        let mut execution = execution_to_proto(&created.view);
        if dry_run {
            // A dry run's rows were rolled back: it has no id to name.
            forget_ids(&mut execution);
        }
        Ok(Response::new(pb::CreateExecutionResponse {
            execution: Some(execution),
            approval_token: created
                .approval_token
                .as_ref()
                .map(|token| token.reveal().to_owned()),
            created: created.created,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetExecution", execution_id))]
    async fn get_execution(
        &self,
        request: Request<pb::GetExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let id = parse_id(&request.get_ref().id, "id").map_err(ApiError::from)?;
        tracing::Span::current().record("execution_id", tracing::field::display(id));
        let view = self.executor.get(id).await?;
        Ok(Response::new(execution_to_proto(&view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListExecutions"))]
    async fn list_executions(
        &self,
        request: Request<pb::ListExecutionsRequest>,
    ) -> Result<Response<pb::ListExecutionsResponse>, Status> {
        let request = request.into_inner();
        let filter = RootFilter {
            plan_id: parse_optional_id(request.plan_id.as_deref(), "plan_id")
                .map_err(ApiError::from)?,
            status: request
                .status
                .as_deref()
                .map(|status| ExecutionStatus::parse_field("status", status))
                .transpose()?,
            account_ids: parse_ids(&request.account_ids, "account_ids").map_err(ApiError::from)?,
            limit: request.limit.map(i64::from),
        };
        let views = self.executor.list(&filter).await?;
        Ok(Response::new(pb::ListExecutionsResponse {
            executions: views.iter().map(execution_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ApproveExecution", execution_id, by_token))]
    async fn approve_execution(
        &self,
        request: Request<pb::ApproveExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let trail = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.id, "id").map_err(ApiError::from)?;
        let span = tracing::Span::current();
        span.record("execution_id", tracing::field::display(id));
        span.record("by_token", request.token.is_some());
        let view = self
            .executor
            .decide(
                id,
                Decision::Approve,
                request.token.as_deref(),
                &request.actor,
                request.actor_key_id.as_deref(),
                &trail,
            )
            .await?;
        Ok(Response::new(execution_to_proto(&view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "CancelExecution", execution_id, by_token))]
    async fn cancel_execution(
        &self,
        request: Request<pb::CancelExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let trail = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.id, "id").map_err(ApiError::from)?;
        let span = tracing::Span::current();
        span.record("execution_id", tracing::field::display(id));
        span.record("by_token", request.token.is_some());
        let view = self
            .executor
            .decide(
                id,
                Decision::Cancel,
                request.token.as_deref(),
                &request.actor,
                request.actor_key_id.as_deref(),
                &trail,
            )
            .await?;
        Ok(Response::new(execution_to_proto(&view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PreviewApproval", execution_id))]
    async fn preview_approval(
        &self,
        request: Request<pb::PreviewApprovalRequest>,
    ) -> Result<Response<pb::PreviewApprovalResponse>, Status> {
        let request = request.into_inner();
        let id = parse_id(&request.id, "id").map_err(ApiError::from)?;
        tracing::Span::current().record("execution_id", tracing::field::display(id));
        let (view, approvable) = self.executor.preview(id, &request.token).await?;
        Ok(Response::new(pb::PreviewApprovalResponse {
            execution: Some(execution_to_proto(&view)),
            approvable,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RetryExecution", execution_id))]
    async fn retry_execution(
        &self,
        request: Request<pb::RetryExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let trail = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.id, "id").map_err(ApiError::from)?;
        tracing::Span::current().record("execution_id", tracing::field::display(id));
        let view = self
            .executor
            .retry(id, &request.actor, request.actor_key_id.as_deref(), &trail)
            .await?;
        Ok(Response::new(execution_to_proto(&view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListPurchaseHistory"))]
    async fn list_purchase_history(
        &self,
        request: Request<pb::ListPurchaseHistoryRequest>,
    ) -> Result<Response<pb::ListPurchaseHistoryResponse>, Status> {
        let request = request.into_inner();
        let filter = HistoryFilter {
            account_ids: parse_ids(&request.account_ids, "account_ids").map_err(ApiError::from)?,
            provider: request.provider,
            service: request.service,
            start: parse_optional_time(request.start.as_ref(), "start").map_err(ApiError::from)?,
            end: parse_optional_time(request.end.as_ref(), "end").map_err(ApiError::from)?,
            limit: request.limit.map(i64::from),
        };
        let rows = self.executor.history(&filter).await?;
        Ok(Response::new(pb::ListPurchaseHistoryResponse {
            purchases: rows.iter().map(purchase_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ResolvePurchaseAttempt"))]
    async fn resolve_purchase_attempt(
        &self,
        request: Request<pb::ResolvePurchaseAttemptRequest>,
    ) -> Result<Response<pb::ResolvePurchaseAttemptResponse>, Status> {
        use pb::resolve_purchase_attempt_request::{Resolution, Target};
        let trail = audit::actor_of(&request)?;
        let request = request.into_inner();
        let target = match request.target {
            Some(Target::IdempotencyToken(token)) => AttemptTarget::Token(token),
            Some(Target::Item(item)) => AttemptTarget::Item {
                execution_id: parse_id(&item.execution_id, "item.execution_id")
                    .map_err(ApiError::from)?,
                index: item.index,
            },
            None => return Err(ApiError::invalid_field("target", "is required").into()),
        };
        let bought_commitment_id = match request.resolution {
            Some(Resolution::Bought(bought)) => Some(bought.commitment_id),
            Some(Resolution::NotBought(_)) => None,
            None => return Err(ApiError::invalid_field("resolution", "is required").into()),
        };
        let attempt = self
            .executor
            .resolve_attempt(
                ResolveRequest {
                    target,
                    bought_commitment_id,
                    actor: request.actor,
                    actor_key_id: request.actor_key_id,
                },
                &trail,
            )
            .await?;
        Ok(Response::new(pb::ResolvePurchaseAttemptResponse {
            attempt: Some(attempt_to_proto(&attempt)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "HasLiveExecution"))]
    async fn has_live_execution(
        &self,
        request: Request<pb::HasLiveExecutionRequest>,
    ) -> Result<Response<pb::HasLiveExecutionResponse>, Status> {
        let plan_id = parse_id(&request.get_ref().plan_id, "plan_id").map_err(ApiError::from)?;
        let ids = self.executor.live_roots_of_plan(plan_id).await?;
        Ok(Response::new(pb::HasLiveExecutionResponse {
            live: !ids.is_empty(),
            execution_ids: ids.iter().map(Uuid::to_string).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ExpirePending"))]
    async fn expire_pending(
        &self,
        request: Request<pb::ExpirePendingRequest>,
    ) -> Result<Response<pb::ExpirePendingResponse>, Status> {
        let request = request.into_inner();
        let fencing = fencing(request.fencing)?;
        let counts = self
            .executor
            .expire_pending(
                &fencing.task,
                fencing.token,
                parse_optional_time(request.now.as_ref(), "now").map_err(ApiError::from)?,
            )
            .await?;
        Ok(Response::new(pb::ExpirePendingResponse {
            found: counts.found,
            acted: counts.acted,
            race_lost: counts.race_lost,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListStaleExecutions"))]
    async fn list_stale_executions(
        &self,
        request: Request<pb::ListStaleExecutionsRequest>,
    ) -> Result<Response<pb::ListStaleExecutionsResponse>, Status> {
        let request = request.into_inner();
        let fencing = fencing(request.fencing)?;
        if request.approved_after_seconds == 0 || request.running_after_seconds == 0 {
            return Err(ApiError::invalid(
                "approved_after_seconds and running_after_seconds must be positive",
            )
            .into());
        }
        let rows = self
            .executor
            .list_stale(
                &fencing.task,
                fencing.token,
                std::time::Duration::from_secs(request.approved_after_seconds),
                std::time::Duration::from_secs(request.running_after_seconds),
                request.limit,
                parse_optional_time(request.now.as_ref(), "now").map_err(ApiError::from)?,
            )
            .await?;
        Ok(Response::new(pb::ListStaleExecutionsResponse {
            executions: rows
                .iter()
                .map(|row| pb::StaleExecution {
                    id: row.id.to_string(),
                    status: row.status.clone(),
                    attempt: u32::try_from(row.attempt).unwrap_or_default(),
                    updated_at: Some(timestamp(row.updated_at)),
                    heartbeat_at: row.heartbeat_at.map(timestamp),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "Redrive", execution_id))]
    async fn redrive(
        &self,
        request: Request<pb::RedriveRequest>,
    ) -> Result<Response<pb::RedriveResponse>, Status> {
        let request = request.into_inner();
        let id = parse_id(&request.execution_id, "execution_id").map_err(ApiError::from)?;
        tracing::Span::current().record("execution_id", tracing::field::display(id));
        let fencing = fencing(request.fencing)?;
        let outcome = self
            .executor
            .redrive(id, &fencing.task, fencing.token, request.expected_attempt)
            .await?;
        Ok(Response::new(pb::RedriveResponse {
            accepted: outcome.accepted,
            outcome: outcome.outcome.to_owned(),
            reason: outcome.reason,
            attempt: u32::try_from(outcome.attempt).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "SafeFail", execution_id))]
    async fn safe_fail(
        &self,
        request: Request<pb::SafeFailRequest>,
    ) -> Result<Response<pb::SafeFailResponse>, Status> {
        let request = request.into_inner();
        let id = parse_id(&request.execution_id, "execution_id").map_err(ApiError::from)?;
        tracing::Span::current().record("execution_id", tracing::field::display(id));
        let fencing = fencing(request.fencing)?;
        let outcome = self
            .executor
            .safe_fail(
                id,
                &fencing.task,
                fencing.token,
                &request.reason,
                request.expected_attempt,
            )
            .await?;
        Ok(Response::new(pb::SafeFailResponse {
            status: outcome.status.as_str().to_owned(),
            race_lost: outcome.race_lost,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetGuardrails"))]
    async fn get_guardrails(
        &self,
        _request: Request<pb::GetGuardrailsRequest>,
    ) -> Result<Response<pb::Guardrails>, Status> {
        let view = self.executor.get_guardrails().await?;
        Ok(Response::new(guardrails_to_proto(&view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PutGuardrails"))]
    async fn put_guardrails(
        &self,
        request: Request<pb::PutGuardrailsRequest>,
    ) -> Result<Response<pb::Guardrails>, Status> {
        let trail = audit::actor_of(&request)?;
        let request = request.into_inner();
        let update = GuardrailsUpdate {
            max_execution_commitment: request.max_execution_commitment,
            max_window_commitment: request.max_window_commitment,
            window_days: request.window_days,
            require_different_approver: request.require_different_approver,
            price_tolerance_percent: request.price_tolerance_percent,
        };
        let view = self
            .executor
            .put_guardrails(
                &update,
                &request.actor,
                request.actor_key_id.as_deref(),
                &trail,
            )
            .await?;
        Ok(Response::new(guardrails_to_proto(&view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListAuditEvents"))]
    async fn list_audit_events(
        &self,
        request: Request<cudly_proto::audit::v1::ListAuditEventsRequest>,
    ) -> Result<Response<cudly_proto::audit::v1::ListAuditEventsResponse>, Status> {
        let events = audit::list_events(self.executor.pool(), request.get_ref()).await?;
        Ok(Response::new(events))
    }

    #[tracing::instrument(skip_all, fields(rpc = "CreateNotificationChannel"))]
    async fn create_notification_channel(
        &self,
        request: Request<pb::CreateNotificationChannelRequest>,
    ) -> Result<Response<pb::CreateNotificationChannelResponse>, Status> {
        let trail = audit::actor_of(&request)?;
        let mut request = request.into_inner();
        let draft = notifications::channel_draft(&mut request)?;
        let created = self
            .executor
            .create_channel(
                draft,
                &request.actor,
                request.actor_key_id.as_deref(),
                &trail,
            )
            .await?;
        Ok(Response::new(pb::CreateNotificationChannelResponse {
            channel: Some(notifications::channel_to_proto(&created.info)),
            generated_secret: created
                .generated_secret
                .map(|secret| secret.expose().expose_secret().to_owned()),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListNotificationChannels"))]
    async fn list_notification_channels(
        &self,
        _request: Request<pb::ListNotificationChannelsRequest>,
    ) -> Result<Response<pb::ListNotificationChannelsResponse>, Status> {
        let channels = self.executor.list_channels().await?;
        Ok(Response::new(pb::ListNotificationChannelsResponse {
            channels: channels
                .iter()
                .map(notifications::channel_to_proto)
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "DeleteNotificationChannel", channel_id))]
    async fn delete_notification_channel(
        &self,
        request: Request<pb::DeleteNotificationChannelRequest>,
    ) -> Result<Response<pb::DeleteNotificationChannelResponse>, Status> {
        let trail = audit::actor_of(&request)?;
        let request = request.into_inner();
        let id = parse_id(&request.id, "id").map_err(ApiError::from)?;
        tracing::Span::current().record("channel_id", tracing::field::display(id));
        self.executor
            .delete_channel(id, &request.actor, request.actor_key_id.as_deref(), &trail)
            .await?;
        Ok(Response::new(pb::DeleteNotificationChannelResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListNotifications"))]
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let filter = notifications::notification_filter(request.get_ref())?;
        let listed = self.executor.list_notifications(filter).await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: listed
                .iter()
                .map(notifications::notification_to_proto)
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RaiseNotification", event_id))]
    async fn raise_notification(
        &self,
        request: Request<pb::RaiseNotificationRequest>,
    ) -> Result<Response<pb::RaiseNotificationResponse>, Status> {
        let event = notifications::raised_event(request.get_ref())?;
        tracing::Span::current().record("event_id", tracing::field::display(event.id));
        let deliveries = self.executor.raise_planner_event(event).await?;
        Ok(Response::new(pb::RaiseNotificationResponse {
            deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
        }))
    }
}

fn fencing(fencing: Option<common_pb::Fencing>) -> Result<common_pb::Fencing, ApiError> {
    fencing.ok_or_else(|| ApiError::invalid_field("fencing", "is required"))
}

/// Returns the creation request `caller` sent, its fields parsed; the list is
/// validated by [`CreateRequest::checked_recommendations`].
pub fn create_request(
    request: pb::CreateExecutionRequest,
    caller: Caller,
) -> Result<CreateRequest, ApiError> {
    if request.auto_approve && caller != Caller::Planner {
        return Err(ApiError::permission_denied(
            "only the planner may create approved executions",
        ));
    }
    Ok(CreateRequest {
        plan_id: parse_optional_id(request.plan_id.as_deref(), "plan_id")?,
        step_number: request.step_number,
        scheduled_date: parse_optional_time(request.scheduled_date.as_ref(), "scheduled_date")?,
        targets: parse_targets(&request.target_account_ids)?,
        recommendations: recommendation_inputs(request.recommendations)?,
        creation_key: request.creation_key,
        idempotency_key: request.idempotency_key,
        request_hash: request.request_hash,
        auto_approve: request.auto_approve,
        source: Source::parse_creation(&request.source)?,
        actor: request.actor,
        actor_key_id: request.actor_key_id,
        caller_is_planner: caller == Caller::Planner,
        dry_run: request.dry_run,
        max_commitment_per_run: request.max_commitment_per_run,
        sized_from: parse_optional_time(request.sized_from.as_ref(), "sized_from")?,
    })
}

/// Returns the proto of an execution view (docs/design/API.md "Execution").
pub fn execution_to_proto(view: &ExecutionView) -> pb::Execution {
    let row = &view.row;
    let total_items = if row.is_root() {
        view.children.iter().map(|child| child.items.len()).sum()
    } else {
        view.items.len()
    };
    let quote = row.quote.as_ref().map(|quote| pb::ExecutionQuote {
        currency: quote.0.currency.clone(),
        upfront: quote.0.upfront,
        monthly: quote.0.monthly,
        total_commitment: quote.0.total_commitment,
    });
    // The system's price; rows created before quotes show the requesters' estimates.
    let total_upfront_cost = match &quote {
        Some(quote) => quote.upfront,
        None => view
            .children
            .iter()
            .flat_map(|child| child.items.iter())
            .chain(view.items.iter())
            .map(|item| item.recommendation.0.upfront_cost.unwrap_or(0.0))
            .sum(),
    };
    let total_items = u32::try_from(total_items).unwrap_or(u32::MAX);
    pb::Execution {
        id: row.id.to_string(),
        plan_id: row.plan_id.map(|id| id.to_string()),
        parent_id: row.parent_id.map(|id| id.to_string()),
        cloud_account_id: row.cloud_account_id.map(|id| id.to_string()),
        status: row.status.clone(),
        step_number: row.step_number.and_then(|step| u32::try_from(step).ok()),
        scheduled_date: row.scheduled_date.map(timestamp),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
        started_at: row.started_at.map(timestamp),
        completed_at: row.completed_at.map(timestamp),
        error: row.error.clone(),
        attempt: u32::try_from(row.attempt).unwrap_or_default(),
        approved_by: row.approved_by.clone(),
        source: row.source.clone(),
        total_items,
        total_upfront_cost,
        recommendations: if row.is_root() {
            row.recommendations
                .0
                .iter()
                .cloned()
                .map(Into::into)
                .collect()
        } else {
            Vec::new()
        },
        items: view
            .items
            .iter()
            .map(|item| pb::ExecutionItem {
                index: item.index(),
                recommendation: Some(item.recommendation.0.clone().into()),
                status: item.status.clone(),
                commitment_id: item.commitment_id.clone(),
                error: item.error.clone(),
                purchased_at: item.purchased_at.map(timestamp),
                quote: item.quote.as_ref().map(|quote| item_quote(&quote.0)),
            })
            .collect(),
        children: view.children.iter().map(execution_to_proto).collect(),
        approval_expires_at: if row.is_root() {
            row.approval_expires_at.map(timestamp)
        } else {
            None
        },
        created_by: row.created_by.clone(),
        quote,
        sized_from: row.sized_from.map(timestamp),
    }
}

fn item_quote(quote: &cudly_aws::purchase::Quote) -> pb::ItemQuote {
    pb::ItemQuote {
        offering_id: quote.offering_id.clone(),
        currency: quote.currency.clone(),
        fixed_price: quote.fixed_price,
        recurring_hourly: quote.recurring_hourly,
        count: quote.count,
        term_months: quote.term_months,
        upfront: quote.upfront(),
        monthly: quote.monthly(),
        total_commitment: quote.total_commitment(),
    }
}

/// Blanks the ids of a dry run's execution and its children.
fn forget_ids(execution: &mut pb::Execution) {
    execution.id.clear();
    execution.parent_id = None;
    for child in &mut execution.children {
        forget_ids(child);
    }
}

fn guardrails_to_proto(view: &GuardrailsView) -> pb::Guardrails {
    let guardrails = &view.guardrails;
    pb::Guardrails {
        max_execution_commitment: guardrails.max_execution_commitment,
        max_window_commitment: guardrails.max_window_commitment,
        window_days: guardrails.window_days,
        require_different_approver: guardrails.require_different_approver,
        price_tolerance_percent: guardrails.price_tolerance_percent,
        currency: cudly_aws::purchase::DEFAULT_CURRENCY.to_owned(),
        committed_in_window: view.committed_in_window,
    }
}

fn purchase_to_proto(row: &PurchaseRow) -> pb::Purchase {
    pb::Purchase {
        id: row.id.to_string(),
        execution_id: row.execution_id.to_string(),
        cloud_account_id: row.cloud_account_id.to_string(),
        account_external_id: row.account_external_id.clone(),
        plan_id: row.plan_id.map(|id| id.to_string()),
        provider: row.provider.clone(),
        service: row.service.clone(),
        region: row.region.clone(),
        resource_type: row.resource_type.clone(),
        count: u32::try_from(row.count).unwrap_or_default(),
        term: u32::try_from(row.term).unwrap_or_default(),
        payment: row.payment.clone(),
        commitment_id: row.commitment_id.clone(),
        upfront_cost: row.upfront_cost,
        purchased_at: Some(timestamp(row.purchased_at)),
        engine: row.engine.clone(),
        platform: row.platform.clone(),
        hourly_commitment: row.hourly_commitment.clone(),
    }
}

fn attempt_to_proto(row: &AttemptRow) -> pb::PurchaseAttempt {
    pb::PurchaseAttempt {
        token_masked: cudly_common::idempotency::mask_token(&row.idempotency_token),
        state: row.state.clone(),
        commitment_id: row.commitment_id.clone(),
        offering_id: row.offering_id.clone(),
        started_at: Some(timestamp(row.started_at)),
        sent_at: row.sent_at.map(timestamp),
    }
}
