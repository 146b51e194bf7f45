//! The audit trail through REST: every kind of change leaves one event, naming who
//! (key id and name, or `token`), what, on what, the request id and digests; the export
//! filters, pages and renders JSON, JSON lines and CSV; and a revoked key's name is
//! never given to another key.

use std::collections::BTreeSet;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{FaultError, FaultSpec};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Every event of the trail, all pages, oldest first.
async fn trail(world: &World, filter: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/audit?limit=3{filter}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", urlencode(cursor)));
        }
        let (status, page) = world.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

async fn as_key(
    world: &World,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = world
        .stack
        .http
        .request(method, world.stack.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_kind_of_change_leaves_one_event_naming_who_what_and_the_request() {
    let world = world().await;
    // A key of its own, so the trail shows a named actor.
    let (status, created) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "alice", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let alice = created["key"].as_str().unwrap().to_owned();
    let alice_id = created["id"].as_str().unwrap().to_owned();

    // Accounts and credentials (the valid account buys; the other's keys are wrong).
    let account = world.add_account("audited", true).await;
    let (status, _) = as_key(
        &world,
        &alice,
        Method::PUT,
        &format!("/api/accounts/{}", account.id),
        Some(
            json!({"name": "audited-renamed", "provider": "aws", "external_id": account.external_id,
            "aws_auth_mode": "access_keys", "enabled": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = as_key(
        &world,
        &alice,
        Method::POST,
        &format!("/api/accounts/{}/credentials", account.id),
        Some(
            json!({"type": "aws_access_keys", "access_key_id": account.access_key_id,
            "secret_access_key": account.secret}),
        ),
    )
    .await;
    assert!(status.is_success(), "{status}");

    // A plan, its accounts and its items.
    let (status, plan) = as_key(&world, &alice, Method::POST, "/api/plans",
        Some(json!({"name": "audited plan", "services": {"aws/ec2": {"provider": "aws", "service": "ec2",
            "term": 1, "payment": "no-upfront", "coverage": 50}}}))).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    let (status, _) = as_key(
        &world,
        &alice,
        Method::PUT,
        &format!("/api/plans/{plan_id}/accounts"),
        Some(json!({"account_ids": [account.id]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = as_key(&world, &alice, Method::PUT, &format!("/api/plans/{plan_id}"),
        Some(json!({"name": "audited plan 2", "services": {"aws/ec2": {"provider": "aws", "service": "ec2",
            "term": 1, "payment": "no-upfront", "coverage": 60}}}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Guardrails.
    let (status, body) = as_key(
        &world,
        &alice,
        Method::PUT,
        "/api/guardrails",
        Some(json!({"max_execution_commitment": 1000000.0, "window_days": 30})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An approval by key, a cancellation by token, a retry of a failure.
    let approved = world
        .create_direct(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    let approved_id = approved["id"].as_str().unwrap().to_owned();
    let (status, _) = as_key(
        &world,
        &alice,
        Method::POST,
        &format!("/api/executions/{approved_id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let canceled = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let canceled_id = canceled["id"].as_str().unwrap().to_owned();
    let token = canceled["approval_token"].as_str().unwrap();
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/purchases/cancel/{canceled_id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The purchase is refused once, so the run fails and can be retried.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::MemoryDb.name()),
                purchase_operation(AwsService::MemoryDb.name()),
            )
            .for_account(&account.external_id)
            .error(FaultError::AccessDenied)
            .times(1),
        )
        .await;
    let failed = world
        .buy(&account, vec![recommendation(AwsService::MemoryDb)])
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    let (status, retried) = as_key(
        &world,
        &alice,
        Method::POST,
        &format!("/api/executions/{failed_id}/retry"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");

    // A plan deleted and a key revoked.
    let (status, _) = as_key(
        &world,
        &alice,
        Method::DELETE,
        &format!("/api/plans/{plan_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, bob) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "bob", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let (status, _) = as_key(
        &world,
        &alice,
        Method::DELETE,
        &format!("/api/keys/{bob_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let events = trail(&world, "").await;
    // The latest event of the action on the target.
    let find = |action: &str, target: &str| -> Value {
        events
            .iter()
            .rev()
            .find(|event| event["action"] == action && event["target_id"] == target)
            .unwrap_or_else(|| panic!("no {action} on {target} in {events:#?}"))
            .clone()
    };
    let by_alice = [
        find("account.update", &account.id),
        find(
            "credentials.set",
            &format!("{}/aws_access_keys", account.id),
        ),
        find("plan.create", &plan_id),
        find("plan_accounts.set", &plan_id),
        find("plan.update", &plan_id),
        find("plan.delete", &plan_id),
        find("execution.approve", &approved_id),
        find("execution.retry", &failed_id),
        find("key.revoke", &bob_id),
    ];
    for event in &by_alice {
        assert_eq!(event["actor"], "key:alice", "{event}");
        assert_eq!(event["actor_key_id"], alice_id.as_str(), "{event}");
        assert!(
            event["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{event}"
        );
    }
    let guardrails = events
        .iter()
        .find(|event| event["action"] == "guardrails.update")
        .unwrap();
    assert_eq!(guardrails["actor"], "key:alice");
    assert_eq!(find("execution.cancel", &canceled_id)["actor"], "token");
    assert_eq!(find("key.create", &alice_id)["actor"], "key:bootstrap");
    let created_account = find("account.create", &account.id);
    assert!(created_account["before_digest"].is_null());
    assert_eq!(created_account["after_digest"].as_str().unwrap().len(), 64);
    let updated = find("account.update", &account.id);
    assert_ne!(updated["before_digest"], updated["after_digest"]);
    // Oldest first, each event once, from every service that changed something.
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "paging repeated an event");
    let services: BTreeSet<&str> = events
        .iter()
        .map(|event| event["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["accounts", "executor", "gateway", "planner"])
    );

    // Filters.
    let plans = trail(&world, "&action=plan.*").await;
    assert_eq!(plans.len(), 3, "{plans:#?}");
    let tokens = trail(&world, "&actor=token").await;
    // The cancellation above, and the approval by token of the run that failed.
    assert_eq!(tokens.len(), 2, "{tokens:#?}");
    assert!(
        tokens
            .iter()
            .all(|event| event["actor"] == "token" && event["actor_key_id"].is_null())
    );
    let future = trail(&world, "&since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());

    // The same page as JSON lines and CSV.
    for (format, content_type) in [("jsonl", "application/x-ndjson"), ("csv", "text/csv")] {
        let response = world
            .stack
            .admin(
                Method::GET,
                &format!("/api/audit?format={format}&action=plan.*"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type)
        );
        let text = response.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        match format {
            "jsonl" => {
                assert_eq!(lines.len(), 3);
                for line in lines {
                    let event: Value = serde_json::from_str(line).unwrap();
                    assert!(event["action"].as_str().unwrap().starts_with("plan."));
                }
            }
            _ => {
                assert_eq!(lines.len(), 4, "header and three rows: {text}");
                assert!(lines[0].starts_with("id,at,service,actor"));
            }
        }
    }

    // A revoked key authenticates no more, and its name is never reused.
    let (status, _) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "bob", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, keys) = world.call(Method::GET, "/api/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !keys.to_string().contains(&bob_id),
        "a revoked key is not listed"
    );

    // Bad input: 400 naming the filter.
    for (query, field) in [
        ("format=xml", "format"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=yesterday", "since"),
        ("cursor=forged", "cursor"),
        ("colour=blue", "colour"),
    ] {
        let (status, body) = world
            .call(Method::GET, &format!("/api/audit?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.to_string().contains(field), "{query}: {body}");
    }
    // Viewers may not read the trail.
    let (status, viewer) = world
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "carol", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = as_key(
        &world,
        viewer["key"].as_str().unwrap(),
        Method::GET,
        "/api/audit",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
