//! Approval: by token or admin key, wrong 403, expired 410, not pending 409 (and nothing
//! changes), one run per approval, previews act on nothing, idempotent creation.

use cudly_aws::purchase::AwsService;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::*;

async fn transitions(world: &World, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM status_transitions WHERE execution_id = $1")
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_one(&world.pool)
        .await
        .unwrap()
}

async fn set_expiry(world: &World, id: &str, interval: &str) {
    let statement = match interval {
        "past" => {
            "UPDATE executions SET approval_expires_at = now() - interval '1 minute' WHERE id = $1"
        }
        _ => "UPDATE executions SET approval_expires_at = now() + interval '1 day' WHERE id = $1",
    };
    sqlx::query(statement)
        .bind(Uuid::parse_str(id).unwrap())
        .execute(&world.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn approving_with_a_wrong_token_is_403_an_expired_one_410_an_approved_one_409_and_changes_nothing()
 {
    let world = world().await;
    let account = world.add_account("approvals", true).await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let id = execution["id"].as_str().unwrap();
    let token = execution["approval_token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    let approve_path = format!("/api/executions/{id}/approve");
    let before = transitions(&world, id).await;

    let (status, error) = world
        .call_anonymous(
            Method::POST,
            &approve_path,
            Some(json!({"token": "0".repeat(64)})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    assert_eq!(world.execution(id).await["status"], "pending");

    set_expiry(&world, id, "past").await;
    let (status, error) = world
        .call_anonymous(Method::POST, &approve_path, Some(json!({"token": token})))
        .await;
    assert_eq!(status, StatusCode::GONE, "{error}");
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/purchases/cancel/{id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(world.execution(id).await["status"], "pending");
    assert_eq!(transitions(&world, id).await, before, "nothing changed");

    set_expiry(&world, id, "future").await;
    let (status, approved) = world
        .call_anonymous(Method::POST, &approve_path, Some(json!({"token": token})))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approved_by"], "token");
    let (status, error) = world
        .call_anonymous(Method::POST, &approve_path, Some(json!({"token": token})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert!(
        error["status"].is_string(),
        "the conflict names the status: {error}"
    );
    assert_ne!(error["status"], "pending");
    let done = world.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
}

#[tokio::test]
async fn approving_twice_at_once_runs_the_execution_once() {
    let world = world().await;
    let account = world.add_account("double", true).await;
    let execution = world
        .create_direct(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::MemoryDb),
            ],
        )
        .await;
    let id = execution["id"].as_str().unwrap();
    let token = execution["approval_token"].as_str().unwrap();
    let approve_path = format!("/api/executions/{id}/approve");
    let link = format!("/api/purchases/approve/{id}?token={token}");
    let (one, two) = tokio::join!(
        world.call_anonymous(Method::POST, &approve_path, Some(json!({"token": token}))),
        world.call_anonymous(Method::POST, &link, None)
    );
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        one.1,
        two.1
    );
    let done = world.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let claims: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM status_transitions WHERE execution_id = $1 AND to_status = 'running'",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(claims, 1, "the root was claimed once");
    assert_eq!(world.purchase_calls().await, 2, "one purchase per item");
}

#[tokio::test]
async fn the_approve_link_shows_what_would_be_approved_and_changes_nothing() {
    let world = world().await;
    let account = world.add_account("links", true).await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::ElastiCache)])
        .await;
    let id = execution["id"].as_str().unwrap();
    let token = execution["approval_token"].as_str().unwrap();
    let link = format!("/api/purchases/approve/{id}?token={token}");
    let before = transitions(&world, id).await;

    let (status, preview) = world.call_anonymous(Method::GET, &link, None).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["approvable"], true);
    assert_eq!(preview["execution"]["id"], id);
    assert_eq!(preview["execution"]["total_items"], 1);
    assert!(
        preview.get("approval_token").is_none()
            && preview["execution"].get("approval_token").is_none()
    );
    let (status, _) = world
        .call_anonymous(
            Method::GET,
            &format!("/api/purchases/approve/{id}?token={}", "f".repeat(64)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = world
        .call_anonymous(Method::GET, &format!("/api/purchases/approve/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(world.execution(id).await["status"], "pending");
    assert_eq!(
        transitions(&world, id).await,
        before,
        "a preview acts on nothing"
    );

    let (status, canceled) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/purchases/cancel/{id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert!(
        children(&canceled)
            .iter()
            .all(|child| child["status"] == "canceled"),
        "{canceled}"
    );
    let (status, preview) = world.call_anonymous(Method::GET, &link, None).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["approvable"], false);
    assert!(
        world
            .ledger()
            .await
            .calls
            .iter()
            .all(|call| !call.operation.starts_with("Purchase"))
    );
}

#[tokio::test]
async fn an_admin_key_approves_without_a_token_and_a_viewer_key_cannot() {
    let world = world().await;
    let account = world.add_account("admins", true).await;
    let (status, viewer) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "reader", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{viewer}");
    let viewer_key = viewer["key"].as_str().unwrap();
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::OpenSearch)])
        .await;
    let id = execution["id"].as_str().unwrap();
    let path = format!("/api/executions/{id}/approve");

    let response = world
        .stack
        .http
        .post(world.stack.url(&path))
        .bearer_auth(viewer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, _) = world.call_anonymous(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(world.execution(id).await["status"], "pending");

    let (status, approved) = world.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approved_by"], "key:bootstrap");
    let done = world.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_original_execution_and_refuses_another_body() {
    let world = world().await;
    let account = world.add_account("idempotent", true).await;
    let body = json!({"cloud_account_id": account.id, "recommendations": [recommendation(AwsService::Rds)]});
    let send = |body: Value| {
        world
            .stack
            .admin(Method::POST, "/api/executions")
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert!(first["approval_token"].is_string());
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"], "the same execution");
    assert!(
        again.get("approval_token").is_none(),
        "the token is shown once"
    );
    let mut other = body.clone();
    other["recommendations"][0]["count"] = json!(5);
    let conflict = send(other).await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let (_, listed) = world.call(Method::GET, "/api/executions", None).await;
    assert_eq!(
        listed["executions"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

#[tokio::test]
async fn a_line_for_an_account_that_is_not_a_target_is_refused_and_nothing_is_created() {
    let world = world().await;
    let account = world.add_account("target", true).await;
    let mut line = recommendation(AwsService::Rds);
    line["cloud_account_id"] = json!(Uuid::new_v4().to_string());
    let body = json!({"cloud_account_id": account.id, "recommendations": [line]});
    let (status, error) = world
        .call(Method::POST, "/api/executions", Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("cloud_account_id"),
        "{error}"
    );
    let (_, listed) = world.call(Method::GET, "/api/executions", None).await;
    assert!(
        listed["executions"].as_array().unwrap().is_empty(),
        "{listed}"
    );
}

#[tokio::test]
async fn every_purchase_call_names_its_execution_and_approver_as_cloudtrail_would() {
    // The session the executor buys with is scoped by the accounts service; its tags
    // (and, from AssumeRole, its SourceIdentity) travel with every call it signs.
    let world = world().await;
    let account = world.add_account("trail", true).await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    let id = execution["id"].as_str().unwrap();
    let (status, approved) = world
        .call(Method::POST, &format!("/api/executions/{id}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let ended = world.wait_terminal(id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let approver = ended["approved_by"].as_str().unwrap().to_owned();
    assert!(approver.starts_with("key:"), "{approver}");

    let ledger = world.ledger().await;
    let purchase = ledger
        .calls_of("PurchaseReservedInstancesOffering")
        .next()
        .expect("one purchase");
    let tag = |key: &str| purchase.session_tags.get(key).cloned();
    assert_eq!(tag("cudly:execution-id").as_deref(), Some(id));
    assert_eq!(tag("cudly:approved-by"), Some(approver));
    assert_eq!(tag("cudly:scope").as_deref(), Some("purchase"));
    // Pricing at creation used a describe-only session, which never bought.
    let quote_sessions = ledger
        .calls
        .iter()
        .filter(|call| call.session_tags.get("cudly:scope").map(String::as_str) == Some("quote"));
    assert!(quote_sessions.clone().count() > 0);
    assert!(
        quote_sessions
            .into_iter()
            .all(|call| !call.operation.starts_with("Purchase"))
    );
}
