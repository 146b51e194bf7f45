use cudly_aws_sandbox::{AccountSpec, Ledger, SandboxSnapshot, Service};
use serde_json::{Value, json};

use crate::common::*;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn rds_purchase(config: &aws_config::SdkConfig, reservation: &str) {
    let rds = aws_sdk_rds::Client::new(config);
    let offering = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.t3.micro")
        .send()
        .await
        .unwrap()
        .reserved_db_instances_offerings()[0]
        .reserved_db_instances_offering_id()
        .unwrap()
        .to_string();
    rds.purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(offering)
        .reserved_db_instance_id(reservation)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn health_answers_ok() {
    let handle = start().await;
    let response = http()
        .get(format!("{}/_sandbox/health", handle.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_posted_account_is_usable_and_a_repost_replaces_it() {
    let handle = start().await;
    let url = format!("{}/_sandbox/accounts", handle.endpoint());
    let created = http()
        .post(&url)
        .json(&json!({
            "account_id": "555555555555",
            "name": "posted",
            "access_keys": [{"access_key_id": "AKIAPOSTED0000000001", "secret_access_key": "s"}],
            "roles": [{"role_name": "Purchaser", "external_id": "x", "trusted_account_ids": [ROOT]}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, "AKIAPOSTED0000000001").await);
    assert_eq!(
        sts.get_caller_identity().send().await.unwrap().account(),
        Some("555555555555")
    );
    aws_sdk_sts::Client::new(&root_config(&handle).await)
        .assume_role()
        .role_arn("arn:aws:iam::555555555555:role/Purchaser")
        .role_session_name("s")
        .external_id("x")
        .send()
        .await
        .unwrap();

    let replaced = http()
        .post(&url)
        .json(&json!({
            "account_id": "555555555555",
            "access_keys": [{"access_key_id": "AKIAPOSTED0000000001", "secret_access_key": "s", "disabled": true}],
            "roles": []
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 201);
    let error = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(&error), "InvalidClientTokenId");

    let invalid = http()
        .post(&url)
        .json(&json!({"account_id": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let listed: Vec<AccountSpec> = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert!(listed.iter().any(|account| account.account_id == MEMBER_B));
}

#[tokio::test]
async fn faults_are_installed_listed_and_removed_over_http() {
    let handle = start().await;
    let url = format!("{}/_sandbox/faults", handle.endpoint());
    let created = http()
        .post(&url)
        .json(&json!({"service": "sts", "operation": "GetCallerIdentity", "error": "throttle", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert!(body["id"].as_u64().is_some());
    let sts = aws_sdk_sts::Client::new(&root_config_no_retry(&handle).await);
    let error = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(&error), "Throttling");
    sts.get_caller_identity().send().await.unwrap();

    let standing = http()
        .post(&url)
        .json(&json!({"service": "sts", "error": "access_denied"}))
        .send()
        .await
        .unwrap();
    let standing_id = standing.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let listed: Vec<Value> = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        code(&sts.get_caller_identity().send().await.unwrap_err()),
        "AccessDenied"
    );
    let removed = http()
        .delete(format!("{url}/{standing_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let removed_again = http()
        .delete(format!("{url}/{standing_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed_again.status(), 404);
    sts.get_caller_identity().send().await.unwrap();

    http()
        .post(&url)
        .json(&json!({"latency_ms": 1}))
        .send()
        .await
        .unwrap();
    let cleared = http().delete(&url).send().await.unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(handle.snapshot().await.faults.is_empty());

    let useless = http()
        .post(&url)
        .json(&json!({"service": "sts"}))
        .send()
        .await
        .unwrap();
    assert_eq!(useless.status(), 400);
    let unknown_service = http()
        .post(&url)
        .json(&json!({"service": "lambda", "error": "throttle"}))
        .send()
        .await
        .unwrap();
    assert!(unknown_service.status().is_client_error());
}

#[tokio::test]
async fn the_ledger_over_http_filters_by_account_and_service_and_counts_tokens() {
    let handle = start().await;
    rds_purchase(&root_config(&handle).await, "rds-id-root").await;
    rds_purchase(&key_config(&handle, SOLO_KEY).await, "rds-id-solo").await;
    aws_sdk_sts::Client::new(&root_config(&handle).await)
        .get_caller_identity()
        .send()
        .await
        .unwrap();

    let url = format!("{}/_sandbox/ledger", handle.endpoint());
    let all: Ledger = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(all, handle.ledger().await);
    assert_eq!(all.commitments.len(), 2);
    assert_eq!(all.by_token.get("rds-id-root"), Some(&1));

    let root_only: Ledger = http()
        .get(format!("{url}?account_id={ROOT}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root_only.commitments.len(), 1);
    assert!(root_only.calls.iter().all(|call| call.account_id == ROOT));
    let sts_only: Ledger = http()
        .get(format!("{url}?service=sts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sts_only.calls.len(), 1);
    assert!(sts_only.commitments.is_empty());
    assert_eq!(
        handle
            .ledger_filtered(Some(SOLO), Some(Service::Rds))
            .await
            .commitments[0]
            .commitment_id,
        "rds-id-solo"
    );

    let raw: Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    let commitment = &raw["commitments"][0];
    for field in [
        "service",
        "account_id",
        "region",
        "commitment_id",
        "offering_id",
        "count",
        "created_at",
        "tags",
    ] {
        assert!(commitment.get(field).is_some(), "commitment lacks {field}");
    }
    let call = &raw["calls"][0];
    for field in [
        "at",
        "account_id",
        "region",
        "service",
        "operation",
        "outcome",
    ] {
        assert!(call.get(field).is_some(), "call lacks {field}");
    }
}

#[tokio::test]
async fn reset_empties_the_state_and_reloads_the_configured_accounts() {
    let handle = start().await;
    rds_purchase(&root_config(&handle).await, "rds-id-before-reset").await;
    handle
        .add_account(AccountSpec::new("666666666666").with_access_key("AKIAEPHEMERAL0000001", "s"))
        .await;
    http()
        .post(format!("{}/_sandbox/faults", handle.endpoint()))
        .json(&json!({"service": "ec2", "latency_ms": 5}))
        .send()
        .await
        .unwrap();

    let state: SandboxSnapshot = http()
        .get(format!("{}/_sandbox/state", handle.endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state.commitments.len(), 1);
    assert_eq!(state.faults.len(), 1);
    assert!(
        state
            .accounts
            .iter()
            .any(|account| account.account_id == "666666666666")
    );

    let reset = http()
        .post(format!("{}/_sandbox/reset", handle.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    let ledger = handle.ledger().await;
    assert!(ledger.commitments.is_empty() && ledger.calls.is_empty());
    assert!(handle.snapshot().await.faults.is_empty());
    let ephemeral = aws_sdk_sts::Client::new(&key_config(&handle, "AKIAEPHEMERAL0000001").await)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&ephemeral), "InvalidClientTokenId");
    // The configured accounts are back, and the purchase can be made again.
    rds_purchase(&root_config(&handle).await, "rds-id-before-reset").await;
    handle.reset().await;
    assert!(handle.ledger().await.commitments.is_empty());
}

#[tokio::test]
async fn an_unsigned_or_unknown_request_is_refused() {
    let handle = start().await;
    let unsigned = http()
        .post(handle.endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=DescribeReservedDBInstances&Version=2014-10-31")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    assert!(
        unsigned
            .text()
            .await
            .unwrap()
            .contains("MissingAuthenticationToken")
    );
    let unknown = http()
        .get(format!("{}/nothing-here", handle.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
}
