//! Session credentials over an account run longer than one session: they are resolved
//! again before an item they could expire during.

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{AccountSpec, FaultSpec, RoleSpec};
use cudly_testkit::SANDBOX_HOST_ACCOUNT_ID;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn an_account_run_longer_than_its_session_resolves_fresh_credentials_before_they_expire() {
    let world = world().await;
    let external_id = account_number();
    world
        .stack
        .sandbox()
        .add_account(
            AccountSpec::new(&external_id)
                .with_name("short-sessions")
                .with_role(RoleSpec::new("CUDly", SANDBOX_HOST_ACCOUNT_ID).with_session_seconds(4)),
        )
        .await;
    let body = json!({
        "name": "short-sessions",
        "provider": "aws",
        "external_id": external_id,
        "aws_auth_mode": "role_arn",
        "aws_role_arn": format!("arn:aws:iam::{external_id}:role/CUDly"),
    });
    let (status, registered) = world.call(Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let account = TestAccount {
        id: registered["id"].as_str().unwrap().to_owned(),
        external_id: external_id.clone(),
        access_key_id: String::new(),
        secret: String::new(),
    };
    // Each purchase takes 1.5 s: five of them outlast one 4-second session.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Rds.name()),
                purchase_operation(AwsService::Rds.name()),
            )
            .for_account(&external_id)
            .latency(1500, 0),
        )
        .await;
    let done = world
        .buy(&account, vec![recommendation(AwsService::Rds); 5])
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let ledger = world.ledger().await;
    let bought = ledger
        .commitments
        .iter()
        .filter(|commitment| commitment.account_id == external_id)
        .count();
    assert_eq!(bought, 5);
    assert!(
        ledger.calls_of("AssumeRole").count() >= 2,
        "the session was resolved again"
    );
}
