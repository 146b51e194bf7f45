//! The control API under `/_sandbox/`: accounts, faults, behaviour switches, prices,
//! Cost Explorer recommendations, ledger, state, purchase concurrency and reset, in
//! JSON, for tests and demos that drive the sandbox over HTTP.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::behaviour::{BehaviourUpdate, present};
use crate::config::AccountSpec;
use crate::error::SandboxError;
use crate::faults::{FaultId, FaultSpec};
use crate::prices::{PriceUpdate, validate_prices};
use crate::recommendations::parse_seeds;
use crate::service::Service;

/// The largest body `POST /_sandbox/recommendations` takes: bulk seeding sends thousands
/// of seeds in one call, beyond axum's default of 2 MB.
const RECOMMENDATIONS_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Builds the control API router.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/_sandbox/health", get(health))
        .route("/_sandbox/accounts", post(add_account).get(list_accounts))
        .route("/_sandbox/ledger", get(ledger))
        .route("/_sandbox/state", get(snapshot))
        .route(
            "/_sandbox/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_sandbox/faults/{id}", delete(remove_fault))
        .route(
            "/_sandbox/behaviour",
            post(update_behaviour).get(get_behaviour),
        )
        .route(
            "/_sandbox/purchase-concurrency",
            get(purchase_concurrency).delete(reset_purchase_peak),
        )
        .route("/_sandbox/prices", put(set_price))
        .route(
            "/_sandbox/recommendations",
            post(add_recommendations).layer(DefaultBodyLimit::max(RECOMMENDATIONS_BODY_LIMIT)),
        )
        .route("/_sandbox/reset", post(reset))
        .with_state(app)
}

/// A control API failure: a bad request, or a 500 whose detail goes to the log.
struct ControlError(SandboxError);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        match self.0 {
            SandboxError::InvalidAccount(_)
            | SandboxError::InvalidFault(_)
            | SandboxError::InvalidBehaviour(_)
            | SandboxError::InvalidPrice(_)
            | SandboxError::InvalidRecommendation(_) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": self.0.to_string()})),
            )
                .into_response(),
            SandboxError::UnknownOffering(_) => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": self.0.to_string()})),
            )
                .into_response(),
            other => {
                tracing::error!(error = %other, "control api call failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": "internal server error"})),
                )
                    .into_response()
            }
        }
    }
}

impl From<SandboxError> for ControlError {
    fn from(error: SandboxError) -> Self {
        ControlError(error)
    }
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn add_account(
    State(app): State<Arc<App>>,
    Json(account): Json<AccountSpec>,
) -> Result<StatusCode, ControlError> {
    app.add_account(account)?;
    Ok(StatusCode::CREATED)
}

async fn list_accounts(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(app.accounts())
}

#[derive(Debug, Deserialize)]
struct LedgerQuery {
    account_id: Option<String>,
    service: Option<Service>,
}

async fn ledger(
    State(app): State<Arc<App>>,
    Query(query): Query<LedgerQuery>,
) -> impl IntoResponse {
    let account_id = query.account_id.filter(|account_id| !account_id.is_empty());
    Json(app.ledger(account_id.as_deref(), query.service))
}

async fn snapshot(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(app.snapshot())
}

async fn add_fault(
    State(app): State<Arc<App>>,
    Json(spec): Json<FaultSpec>,
) -> Result<impl IntoResponse, ControlError> {
    let id = app.add_fault(spec)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn list_faults(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(app.faults())
}

async fn clear_faults(State(app): State<Arc<App>>) -> StatusCode {
    app.clear_faults();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(app): State<Arc<App>>, Path(id): Path<u64>) -> StatusCode {
    if app.remove_fault(FaultId(id)) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn get_behaviour(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(app.behaviour())
}

/// Changes the switches the body names. The body is parsed here rather than by the
/// `Json` extractor so that every malformed body (not JSON, not an object, an unknown
/// field, a wrong type, `null`) is a 400, whatever its content type.
async fn update_behaviour(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ControlError> {
    let invalid = |message: String| ControlError(SandboxError::InvalidBehaviour(message));
    let value: Value = serde_json::from_slice(&body).map_err(|error| invalid(error.to_string()))?;
    if !value.is_object() {
        return Err(invalid("the body must be a JSON object".to_string()));
    }
    let update: BehaviourUpdate =
        serde_json::from_value(value).map_err(|error| invalid(error.to_string()))?;
    Ok(Json(app.update_behaviour(update)?))
}

async fn purchase_concurrency(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(app.purchase_concurrency())
}

async fn reset_purchase_peak(State(app): State<Arc<App>>) -> StatusCode {
    app.reset_purchase_peak();
    StatusCode::NO_CONTENT
}

/// The body of `PUT /_sandbox/prices` as sent: the service is read as text so that a
/// service the sandbox does not sell is a 404 like an unknown offering, not a 400.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    service: String,
    offering_id: String,
    #[serde(default, deserialize_with = "present")]
    fixed_price: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    recurring_hourly: Option<f64>,
}

/// Changes one offering's price. A body that is no JSON object, has an unknown field, a
/// wrong type or `null`, names no price or a negative one is a 400; an unknown service
/// or offering a 404; either changes nothing.
async fn set_price(State(app): State<Arc<App>>, body: Bytes) -> Result<StatusCode, ControlError> {
    let invalid = |message: String| ControlError(SandboxError::InvalidPrice(message));
    let value: Value = serde_json::from_slice(&body).map_err(|error| invalid(error.to_string()))?;
    if !value.is_object() {
        return Err(invalid("the body must be a JSON object".to_string()));
    }
    let price_body: PriceBody =
        serde_json::from_value(value).map_err(|error| invalid(error.to_string()))?;
    // The prices are checked before the service, so a bad price is a 400 whatever it
    // names.
    validate_prices(price_body.fixed_price, price_body.recurring_hourly)?;
    let service = price_body.service.parse::<Service>().map_err(|_| {
        ControlError(SandboxError::UnknownOffering(format!(
            "unknown service {:?}",
            price_body.service
        )))
    })?;
    let update = PriceUpdate {
        service,
        offering_id: price_body.offering_id,
        fixed_price: price_body.fixed_price,
        recurring_hourly: price_body.recurring_hourly,
    };
    app.set_price(update)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Seeds Cost Explorer recommendations: one object, or an array of them so a benchmark
/// seeds thousands in one call. Any bad seed is a 400 and none of the body is taken.
async fn add_recommendations(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<impl IntoResponse, ControlError> {
    let added = app.add_recommendations(parse_seeds(&body)?);
    Ok((StatusCode::CREATED, Json(json!({"added": added}))))
}

async fn reset(State(app): State<Arc<App>>) -> Result<StatusCode, ControlError> {
    app.reset()?;
    Ok(StatusCode::NO_CONTENT)
}
