//! Priced executions, dry runs, spend limits and separation of duties (docs/design/
//! DOMAIN.md "Quotes, dry run and spend limits", "Separation of duties"), end to end.

use std::str::FromStr;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::PriceUpdate;
use cudly_aws_sandbox::Service;
use cudly_aws_sandbox::catalogue::{self, Offering, OfferingQuery};
use cudly_common::config::{Env, Layout};
use cudly_common::grpc::{AuthChannel, Caller, client_channel};
use cudly_executor::app::App;
use cudly_executor::config::Config;
use cudly_proto::executor::v1::ApproveExecutionRequest;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{World, children, recommendation, world};

/// The items of every child of an execution.
fn items(execution: &Value) -> Vec<&Value> {
    children(execution)
        .iter()
        .flat_map(|child| child["items"].as_array().unwrap())
        .collect()
}

/// Returns the sandbox catalogue's offering a quote names.
fn listed_offering(line: &Value, quote: &Value) -> Offering {
    let service = Service::from_str(line["service"].as_str().unwrap()).unwrap();
    let query = OfferingQuery {
        instance_type: line["resource_type"].as_str().map(str::to_owned),
        ..OfferingQuery::default()
    };
    catalogue::generate(service, line["region"].as_str().unwrap(), &query)
        .into_iter()
        .find(|offering| offering.offering_id == quote["offering_id"].as_str().unwrap())
        .unwrap_or_else(|| panic!("the catalogue lists the quoted offering: {quote}"))
}

/// Equal up to the last digits of a decimal price read as `f32` (EC2) or `f64`.
fn same(listed: f64, quoted: f64) -> bool {
    (listed - quoted).abs() <= listed.abs().max(1.0) * 1e-6
}

/// Replaces the guardrails through REST; returns them as stored.
async fn set_guardrails(world: &World, guardrails: Value) -> Value {
    let (status, stored) = world
        .call(Method::PUT, "/api/guardrails", Some(guardrails))
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    stored
}

async fn rows(world: &World, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&world.pool)
        .await
        .unwrap()
}

/// Sends `body` with `key` (not the admin key); returns status and JSON.
async fn call_with(
    world: &World,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, world.stack.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_service_is_priced_by_the_system_and_never_by_the_requester() {
    let world = world().await;
    let account = world.add_account("priced", true).await;
    for service in AwsService::ALL {
        let mut line = recommendation(service);
        line["upfront_cost"] = json!(1.0);
        let execution = world.create_direct(&account, vec![line]).await;
        let item = items(&execution)[0];
        let quote = &item["quote"];
        let count = quote["count"].as_f64().unwrap();
        let fixed = quote["fixed_price"].as_f64().unwrap();
        let hourly = quote["recurring_hourly"].as_f64().unwrap();
        let months = quote["term_months"].as_f64().unwrap();
        assert!(
            fixed > 0.0 || hourly > 0.0,
            "{service:?} is priced: {quote}"
        );
        assert_eq!(quote["upfront"].as_f64(), Some(fixed * count), "{quote}");
        let total = fixed * count + hourly * count * 730.0 * months;
        assert!(
            (quote["total_commitment"].as_f64().unwrap() - total).abs() < 1e-6,
            "{quote}"
        );
        assert_eq!(
            execution["total_upfront_cost"],
            execution["quote"]["upfront"]
        );
        assert_ne!(
            execution["total_upfront_cost"], 1.0,
            "{service:?}: the requester's estimate is not the price"
        );
        assert!(!quote["offering_id"].as_str().unwrap().is_empty());
        if service != AwsService::SavingsPlans {
            // The sandbox's own catalogue, read without the SDK, lists the same price.
            let listed = listed_offering(&items(&execution)[0]["recommendation"], quote);
            assert!(
                same(listed.fixed_price, fixed),
                "{service:?}: {listed:?} vs {quote}"
            );
            let listed_hourly = if listed.recurring_hourly > 0.0 {
                listed.recurring_hourly
            } else {
                listed.usage_price
            };
            assert!(
                same(listed_hourly, hourly),
                "{service:?}: {listed:?} vs {quote}"
            );
        }
    }
    assert_eq!(world.purchase_calls().await, 0, "pricing buys nothing");
    world.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_price_raised_after_approval_refuses_the_item_and_buys_nothing() {
    let world = world().await;
    let account = world.add_account("repriced", true).await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let quote = items(&execution)[0]["quote"].clone();
    let fixed = quote["fixed_price"].as_f64().unwrap();
    world
        .stack
        .sandbox()
        .set_price(
            PriceUpdate::new(
                Service::from_str("rds").unwrap(),
                quote["offering_id"].as_str().unwrap(),
            )
            .with_fixed_price(fixed * 1.5),
        )
        .await
        .unwrap();
    world.approve(&execution).await;
    let ended = world.wait_terminal(execution["id"].as_str().unwrap()).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    let error = items(&ended)[0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("price moved since approval"), "{error}");
    assert_eq!(world.purchase_calls().await, 0, "nothing was sent");
    world.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_dry_run_prices_and_checks_everything_and_stores_and_buys_nothing() {
    let world = world().await;
    let account = world.add_account("dry", true).await;
    let body = json!({"cloud_account_id": account.id, "recommendations": [
        recommendation(AwsService::Ec2), recommendation(AwsService::Rds)]});
    let (status, dry) = world
        .call(Method::POST, "/api/executions?dry_run=true", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["status"], "dry_run");
    assert_eq!(dry["id"], Value::Null);
    assert!(dry.get("approval_token").is_none(), "{dry}");
    assert!(dry["quote"]["total_commitment"].as_f64().unwrap() > 0.0);
    for item in items(&dry) {
        assert!(item["quote"].is_object(), "{item}");
        assert_eq!(item["error"], Value::Null, "permitted: {item}");
    }
    assert_eq!(rows(&world, "executions").await, 0);
    assert_eq!(rows(&world, "execution_items").await, 0);
    let ledger = world.ledger().await;
    assert!(ledger.commitments.is_empty(), "nothing bought");
    let ec2_checks: Vec<_> = ledger
        .calls
        .iter()
        .filter(|call| call.operation == "PurchaseReservedInstancesOffering")
        .collect();
    assert_eq!(ec2_checks.len(), 1, "one EC2 permission check");
    assert_eq!(ec2_checks[0].error_code.as_deref(), Some("DryRunOperation"));
    // No purchase call but EC2's DryRun, which AWS answers without buying.
    assert_eq!(
        world.purchase_calls().await,
        1,
        "only the dry run reached a purchase API"
    );
    world.stack.stop().await.unwrap();
}

#[tokio::test]
async fn limits_refuse_before_anything_is_stored_and_approvers_must_differ_when_asked() {
    let world = world().await;
    let account = world.add_account("limited", true).await;
    set_guardrails(&world, json!({"max_execution_commitment": 1.0})).await;
    let body = json!({"cloud_account_id": account.id,
        "recommendations": [recommendation(AwsService::Rds)]});
    let (status, refused) = world
        .call(Method::POST, "/api/executions", Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["limit"], 1.0);
    assert_eq!(refused["committed"], 0.0);
    assert!(refused["requested"].as_f64().unwrap() > 1.0, "{refused}");
    assert_eq!(rows(&world, "executions").await, 0, "nothing stored");

    let guardrails = set_guardrails(&world, json!({"require_different_approver": true})).await;
    assert_eq!(guardrails["require_different_approver"], true);
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let id = execution["id"].as_str().unwrap();
    let token = execution["approval_token"].as_str().unwrap();
    let approve = format!("/api/executions/{id}/approve");
    // The approve link's preview shows the quote.
    let (status, preview) = world
        .call_anonymous(
            Method::GET,
            &format!("/api/purchases/approve/{id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["execution"]["quote"], execution["quote"]);
    assert!(
        preview["execution"]["quote"]["total_commitment"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let (status, alone) = world
        .call_anonymous(Method::POST, &approve, Some(json!({ "token": token })))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a token alone: {alone}");
    let (status, own) = world
        .call(Method::POST, &approve, Some(json!({ "token": token })))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the creator's key: {own}");
    assert!(
        own["error"]
            .as_str()
            .unwrap()
            .contains("approver must differ")
    );
    assert_eq!(world.execution(id).await["status"], "pending");

    let (status, key) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "second approver", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, approved) = call_with(
        &world,
        key["key"].as_str().unwrap(),
        Method::POST,
        &approve,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approved_by"], "key:second approver");
    assert_eq!(approved["created_by"], "key:bootstrap");
    world.stack.stop().await.unwrap();
}

/// Creates two pending executions of one RDS line and a window limit with room for one
/// of them; returns both and what each commits.
async fn two_pending_with_room_for_one(world: &World, name: &str) -> (Value, Value, f64) {
    let account = world.add_account(name, true).await;
    let line = || vec![recommendation(AwsService::Rds)];
    let first = world.create_direct(&account, line()).await;
    let second = world.create_direct(&account, line()).await;
    let each = first["quote"]["total_commitment"].as_f64().unwrap();
    set_guardrails(world, json!({"max_window_commitment": each * 1.5})).await;
    (first, second, each)
}

#[tokio::test]
async fn two_approvals_that_together_pass_the_window_limit_let_exactly_one_through() {
    let world = world().await;
    let (first, second, each) = two_pending_with_room_for_one(&world, "window").await;
    let approve = |execution: &Value| {
        let path = format!(
            "/api/executions/{}/approve",
            execution["id"].as_str().unwrap()
        );
        let token = execution["approval_token"].as_str().unwrap().to_owned();
        let world = &world;
        async move {
            world
                .call_anonymous(Method::POST, &path, Some(json!({ "token": token })))
                .await
        }
    };
    let (a, b) = tokio::join!(approve(&first), approve(&second));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY],
        "{} / {}",
        a.1,
        b.1
    );
    let refused = if a.0 == StatusCode::OK { &b.1 } else { &a.1 };
    assert!(
        (refused["committed"].as_f64().unwrap() - each).abs() < 1e-6,
        "{refused}"
    );
    let approved = if a.0 == StatusCode::OK {
        &first
    } else {
        &second
    };
    world.wait_terminal(approved["id"].as_str().unwrap()).await;
    assert_eq!(
        world.ledger().await.commitments.len(),
        1,
        "exactly one set of commitments"
    );
    world.stack.stop().await.unwrap();
}

/// A plan of RDS lines over `account_id` with `extra` fields; returns its id.
async fn rds_plan(world: &World, account_id: &str, extra: Value) -> String {
    let mut plan = json!({
        "name": "priced plan",
        "services": {"aws/rds": {"provider": "aws", "service": "rds", "term": 1,
            "payment": "all-upfront", "coverage": 100}},
        "account_ids": [account_id],
    });
    for (key, value) in extra.as_object().unwrap() {
        plan[key] = value.clone();
    }
    let (status, plan) = world.call(Method::POST, "/api/plans", Some(plan)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    let (status, _) = world
        .call(
            Method::PUT,
            &format!("/api/plans/{id}/recommendations"),
            Some(json!({"recommendations": [recommendation(AwsService::Rds)]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    id
}

#[tokio::test]
async fn a_plan_run_is_dry_run_limited_by_its_plan_and_created_in_its_editors_name() {
    let world = world().await;
    let account = world.add_account("planned", true).await;
    let plan = rds_plan(&world, &account.id, json!({})).await;
    let path = format!("/api/plans/{plan}/executions");
    let (status, dry) = world
        .call(
            Method::POST,
            &format!("{path}?dry_run=true"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["status"], "dry_run");
    assert_eq!(dry["id"], Value::Null);
    assert!(dry["quote"]["upfront"].as_f64().unwrap() > 0.0, "{dry}");
    assert_eq!(
        rows(&world, "executions").await,
        0,
        "a dry run stores nothing"
    );

    let limited = rds_plan(&world, &account.id, json!({"max_commitment_per_run": 1.0})).await;
    let (status, refused) = world
        .call(
            Method::POST,
            &format!("/api/plans/{limited}/executions"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["limit_name"], "max_commitment_per_run");
    assert_eq!(refused["limit"], 1.0);
    assert_eq!(rows(&world, "executions").await, 0, "nothing stored");

    // A scheduled run is created in the name of the plan's last editor (here the
    // bootstrap key), who cannot approve it when approvers must differ.
    set_guardrails(&world, json!({"require_different_approver": true})).await;
    let (status, fired) = world
        .call(Method::POST, "/api/admin/sweeps/fire_due_plans/run", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{fired}");
    let (_, listed) = world
        .call(
            Method::GET,
            &format!("/api/executions?plan_id={plan}"),
            None,
        )
        .await;
    let scheduled = &listed["executions"][0];
    assert_eq!(scheduled["source"], "schedule", "{listed}");
    assert_eq!(scheduled["created_by"], "key:bootstrap");
    let id = scheduled["id"].as_str().unwrap();
    let (status, own) = world
        .call(Method::POST, &format!("/api/executions/{id}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{own}");
    world.stack.stop().await.unwrap();
}

#[tokio::test]
async fn releasing_an_in_doubt_purchase_and_its_retry_take_a_second_identity() {
    let world = world().await;
    let account = world.add_account("in doubt", true).await;
    // An untagged commitment of the shape that no attempt records stops the first send:
    // the item fails, and an operator must say whether it is ours.
    world.buy_by_hand(&account, AwsService::Ec2).await;
    let done = world
        .buy(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    set_guardrails(&world, json!({"require_different_approver": true})).await;

    let resolve = format!(
        "/api/executions/{}/items/0/resolve",
        children(&done)[0]["id"].as_str().unwrap()
    );
    let not_bought = json!({"outcome": "not_bought"});
    let (status, own) = world
        .call(Method::POST, &resolve, Some(not_bought.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the creator alone: {own}");
    let (status, key) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "second admin", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let second = key["key"].as_str().unwrap();
    let (status, resolved) = call_with(&world, second, Method::POST, &resolve, not_bought).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");

    // The second admin's retry waits for an approval that is not theirs.
    let retry = format!("/api/executions/{}/retry", done["id"].as_str().unwrap());
    let (status, retried) = call_with(&world, second, Method::POST, &retry, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    assert_eq!(retried["status"], "pending", "{retried}");
    let approve = format!(
        "/api/executions/{}/approve",
        retried["id"].as_str().unwrap()
    );
    let (status, refused) = call_with(&world, second, Method::POST, &approve, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, approved) = world.call(Method::POST, &approve, None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approved_by"], "key:bootstrap");
    let ended = world.wait_terminal(retried["id"].as_str().unwrap()).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    world.stack.stop().await.unwrap();
}

/// Starts a second executor replica on the stack's database, with the stack's peers and
/// sandbox; returns a gateway client of it and what stops it.
async fn second_replica(
    world: &World,
) -> (
    ExecutorServiceClient<AuthChannel>,
    tokio_util::sync::CancellationToken,
) {
    use secrecy::ExposeSecret;
    let stack = world.stack.stack();
    let env = Env::from_pairs([(
        "DATABASE_URL",
        world.stack.db.secret_url().expose_secret().to_owned(),
    )]);
    let mut config = Config::read(&env, world.stack.secrets(), Layout::AllInOne).unwrap();
    config.accounts_url = format!("http://{}", stack.accounts_addr());
    config.planner_url = format!("http://{}", stack.planner_addr());
    config.aws = config.aws.with_endpoint(world.stack.sandbox().endpoint());
    config.runner.poll_interval = std::time::Duration::from_millis(200);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = App::from_listener(config, listener).unwrap();
    let addr = app.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    let channel = client_channel(
        &format!("http://{addr}"),
        &world.stack.secrets().internal_token(Caller::Gateway),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    (ExecutorServiceClient::new(channel), stop)
}

#[tokio::test]
async fn approvals_on_two_executor_replicas_cannot_pass_the_window_limit_together() {
    let world = world().await;
    let (mut other, stop_other) = second_replica(&world).await;
    let (first, second, _) = two_pending_with_room_for_one(&world, "replicas").await;
    let request = |execution: &Value| ApproveExecutionRequest {
        id: execution["id"].as_str().unwrap().to_owned(),
        token: execution["approval_token"].as_str().map(str::to_owned),
        actor: "token".to_owned(),
        actor_key_id: None,
    };
    let mut this = world.executor_client(Caller::Gateway);
    let (a, b) = tokio::join!(
        this.approve_execution(request(&first)),
        other.approve_execution(request(&second))
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one replica approves: {a:?} / {b:?}"
    );
    let refused = a.err().or(b.err()).unwrap();
    let refusal = cudly_common::ApiError::from_status(&refused);
    assert_eq!(refusal.code, cudly_common::ErrorCode::Unprocessable);
    assert_eq!(
        refusal.spend.map(|spend| spend.limit).as_deref(),
        Some("max_window_commitment")
    );
    let approved = if outcomes[0] { &first } else { &second };
    world.wait_terminal(approved["id"].as_str().unwrap()).await;
    assert_eq!(world.ledger().await.commitments.len(), 1);
    stop_other.cancel();
    world.stack.stop().await.unwrap();
}
