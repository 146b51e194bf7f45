//! The account rules of docs/design/DOMAIN.md through the gateway's REST API, one test per rule.

use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn an_account_is_created_read_listed_updated_and_deleted() {
    let stack = stack().await;
    let (status, created) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(
            json!({"name": "Prod-US", "provider": "aws", "external_id": "123456789012",
                    "contact_email": "ops@example.com"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["aws_auth_mode"], "access_keys");
    assert_eq!(created["aws_is_org_root"], false);
    assert_eq!(created["description"], serde_json::Value::Null);
    assert_eq!(created["credentials_configured"], false);
    for field in [
        "aws_role_arn",
        "aws_external_id",
        "aws_bastion_id",
        "aws_web_identity_token_file",
        "azure_subscription_id",
        "azure_tenant_id",
        "azure_client_id",
        "gcp_project_id",
        "gcp_client_email",
    ] {
        assert!(
            created.get(field).is_some_and(serde_json::Value::is_null),
            "{field} in {created}"
        );
    }

    let (status, fetched) = call(&stack, Method::GET, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    // PUT takes the full account; read-only fields sent back are ignored.
    let mut full = fetched.clone();
    full["name"] = json!("Prod-US-East");
    full["enabled"] = json!(false);
    full["credentials_configured"] = json!(true);
    let (status, updated) = call(
        &stack,
        Method::PUT,
        &format!("/api/accounts/{id}"),
        Some(full),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Prod-US-East");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["credentials_configured"], false);
    assert_eq!(updated["created_at"], created["created_at"]);

    let (status, list) = call(&stack, Method::GET, "/api/accounts", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);

    let (status, _) = call(&stack, Method::DELETE, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, missing) = call(&stack, Method::GET, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (status, _) = call(&stack, Method::DELETE, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_provider_and_external_id_is_a_conflict() {
    let stack = stack().await;
    create(&stack, keys_account("first", "123456789012")).await;
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(keys_account("second", "123456789012")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("already exists"),
        "{reply}"
    );
    // The same external id under another provider is another account (and must be an
    // id of that provider).
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "sub", "provider": "azure", "external_id": "6f1c2a3b-1111-4222-8333-944455556666"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Azure subscription ids are compared without regard to case.
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "sub2", "provider": "azure", "external_id": "6F1C2A3B-1111-4222-8333-944455556666"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn changing_provider_or_external_id_is_refused_and_changes_nothing() {
    let stack = stack().await;
    let id = create(&stack, keys_account("stable", "123456789012")).await;
    let path = format!("/api/accounts/{id}");
    let (_, before) = call(&stack, Method::GET, &path, None).await;

    let mut moved = keys_account("renamed too", "210987654321");
    let (status, reply) = call(&stack, Method::PUT, &path, Some(moved.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "external_id");

    moved["external_id"] = json!("123456789012");
    moved["provider"] = json!("gcp");
    let (status, reply) = call(&stack, Method::PUT, &path, Some(moved)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "provider");

    let (_, after) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(after, before, "a refused update changes nothing");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_role_arn_is_refused() {
    let stack = stack().await;
    for arn in [
        "arn:aws:iam::123456789012:user/CUDly",
        "arn:aws:iam::1234:role/CUDly",
        "arn:aws:sts::123456789012:role/CUDly",
        "CUDly",
    ] {
        let mut body = role_account("bad arn", "123456789012", "CUDly", None);
        body["aws_role_arn"] = json!(arn);
        let (status, reply) = call(&stack, Method::POST, "/api/accounts", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{arn}: {reply}");
        assert_eq!(reply["field"], "aws_role_arn", "{reply}");
    }
    // The ARN's account must be the account's external id.
    let mut body = role_account("other account", "123456789012", "CUDly", None);
    body["aws_role_arn"] = json!(role_arn("210987654321", "CUDly"));
    let (status, reply) = call(&stack, Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("external_id"),
        "{reply}"
    );
    // role_arn mode needs an ARN.
    let mut body = role_account("no arn", "123456789012", "CUDly", None);
    body["aws_role_arn"] = serde_json::Value::Null;
    let (status, _) = call(&stack, Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = call(&stack, Method::GET, "/api/accounts", None).await;
    assert_eq!(list["accounts"], json!([]));
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn bastion_chaining_is_refused() {
    let stack = stack().await;
    let root = create(&stack, role_account("root", "100000000001", "CUDly", None)).await;
    let member = create(
        &stack,
        bastion_account("member", "100000000002", &root, "Member"),
    )
    .await;

    // A bastion that is itself in bastion mode.
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(bastion_account(
            "chained",
            "100000000003",
            &member,
            "Member",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"], "bastion chaining is not supported");

    // An account used as bastion cannot move to bastion mode itself.
    let other = create(&stack, role_account("other", "100000000004", "CUDly", None)).await;
    let (status, reply) = call(
        &stack,
        Method::PUT,
        &format!("/api/accounts/{root}"),
        Some(bastion_account("root", "100000000001", &other, "CUDly")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"], "bastion chaining is not supported");

    // An account cannot be its own bastion.
    let (status, reply) = call(
        &stack,
        Method::PUT,
        &format!("/api/accounts/{other}"),
        Some(bastion_account("other", "100000000004", &other, "CUDly")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"], "bastion chaining is not supported");

    // The bastion must exist and be an AWS account.
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(bastion_account(
            "orphan",
            "100000000005",
            &uuid::Uuid::new_v4().to_string(),
            "X",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "aws_bastion_id");
    let (_, list) = call(&stack, Method::GET, "/api/accounts", None).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 3);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_a_bastion_with_dependents_is_a_conflict_naming_them() {
    let stack = stack().await;
    let root = create(&stack, role_account("root", "100000000001", "CUDly", None)).await;
    let first = create(
        &stack,
        bastion_account("b-member", "100000000002", &root, "Member"),
    )
    .await;
    let second = create(
        &stack,
        bastion_account("a-member", "100000000003", &root, "Member"),
    )
    .await;

    let (status, reply) = call(
        &stack,
        Method::DELETE,
        &format!("/api/accounts/{root}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(
        reply["dependents"],
        json!([{"id": second, "name": "a-member"}, {"id": first, "name": "b-member"}])
    );
    let (status, _) = call(&stack, Method::GET, &format!("/api/accounts/{root}"), None).await;
    assert_eq!(status, StatusCode::OK, "the bastion is still there");

    for dependent in [&first, &second] {
        let (status, _) = call(
            &stack,
            Method::DELETE,
            &format!("/api/accounts/{dependent}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _) = call(
        &stack,
        Method::DELETE,
        &format!("/api/accounts/{root}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_credential_keys_are_refused_without_echoing_values() {
    let stack = stack().await;
    let id = create(&stack, keys_account("keys", KEYS_ACCOUNT)).await;
    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(
            json!({"type": "aws_access_keys", "access_key_id": KEYS_ACCESS_KEY_ID,
                    "secret_access_key": KEYS_SECRET, "region": "value-CANARY-region"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "credentials.region");
    assert!(!reply.to_string().contains("CANARY"), "{reply}");

    // A missing key is named too.
    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(json!({"type": "aws_access_keys", "access_key_id": KEYS_ACCESS_KEY_ID})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "credentials.secret_access_key");

    // A malformed value is named, never echoed.
    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(json!({"access_key_id": "bad key CANARY", "secret_access_key": KEYS_SECRET})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "credentials.access_key_id");
    assert!(!reply.to_string().contains("CANARY"), "{reply}");

    // An unknown type, and a type of another provider.
    for body in [
        json!({"type": "ssh_key", "key": "x"}),
        json!({"type": "azure_client_secret", "client_secret": "x"}),
    ] {
        let (status, reply) = call(
            &stack,
            Method::POST,
            &format!("/api/accounts/{id}/credentials"),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["field"], "credentials.type");
    }
    let (_, account) = call(&stack, Method::GET, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(
        account["credentials_configured"], false,
        "nothing was stored"
    );

    // Invalid inline credentials create nothing.
    let mut body = keys_account("inline", "123456789012");
    body["credentials"] = json!({"access_key_id": KEYS_ACCESS_KEY_ID, "secret_access_key": KEYS_SECRET, "colour": "x"});
    let (status, reply) = call(&stack, Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], "credentials.colour");
    let (_, list) = call(&stack, Method::GET, "/api/accounts", None).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn credentials_are_never_in_any_response_body() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let mut bodies = Vec::new();
    let mut body = keys_account("keys", KEYS_ACCOUNT);
    body["credentials"] = keys_credentials();
    let (status, created) = call(&stack, Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["credentials_configured"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    bodies.push(created.clone());

    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(keys_credentials()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    bodies.push(reply);
    for (method, path, body) in [
        (Method::GET, format!("/api/accounts/{id}"), None),
        (Method::GET, "/api/accounts".to_owned(), None),
        (
            Method::GET,
            format!("/api/accounts?search={KEYS_ACCOUNT}"),
            None,
        ),
        (Method::POST, format!("/api/accounts/{id}/test"), None),
        (
            Method::PUT,
            format!("/api/accounts/{id}"),
            Some(created.clone()),
        ),
        (
            Method::PUT,
            format!("/api/accounts/{id}"),
            Some({
                let mut with_secret = created.clone();
                with_secret["credentials"] = keys_credentials();
                with_secret
            }),
        ),
    ] {
        let (_, reply) = call(&stack, method, &path, body).await;
        bodies.push(reply);
    }
    let (_, openapi) = call(&stack, Method::GET, "/api/openapi.json", None).await;
    bodies.push(openapi);
    assert_eq!(bodies[5]["ok"], true, "the test passed: {}", bodies[5]);
    for body in &bodies {
        let text = body.to_string();
        assert!(!text.contains(KEYS_SECRET), "a secret in {text}");
        assert!(
            !text.contains(KEYS_ACCESS_KEY_ID),
            "an access key id in {text}"
        );
        assert!(!text.contains("secret_access_key\":\""), "{text}");
    }
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn listing_filters_by_provider_enabled_and_search() {
    let stack = stack().await;
    create(&stack, keys_account("Prod 100%", "123456789012")).await;
    let mut disabled = keys_account("staging", "210987654321");
    disabled["enabled"] = json!(false);
    create(&stack, disabled).await;
    create(
        &stack,
        json!({"name": "analytics", "provider": "gcp", "external_id": "analytics-prod"}),
    )
    .await;
    let names = |reply: &serde_json::Value| -> Vec<String> {
        reply["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|account| account["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = call(&stack, Method::GET, "/api/accounts", None).await;
    assert_eq!(names(&all), ["Prod 100%", "analytics", "staging"]);
    let (_, aws) = call(&stack, Method::GET, "/api/accounts?provider=aws", None).await;
    assert_eq!(names(&aws), ["Prod 100%", "staging"]);
    let (_, enabled) = call(
        &stack,
        Method::GET,
        "/api/accounts?provider=aws&enabled=true",
        None,
    )
    .await;
    assert_eq!(names(&enabled), ["Prod 100%"]);
    let (_, searched) = call(&stack, Method::GET, "/api/accounts?search=PROD", None).await;
    assert_eq!(names(&searched), ["Prod 100%", "analytics"]);
    let (_, by_id) = call(&stack, Method::GET, "/api/accounts?search=2109", None).await;
    assert_eq!(names(&by_id), ["staging"]);
    let (_, wildcard) = call(&stack, Method::GET, "/api/accounts?search=%25", None).await;
    assert_eq!(names(&wildcard), ["Prod 100%"], "% is a literal character");
    let (_, empty) = call(
        &stack,
        Method::GET,
        "/api/accounts?provider=&enabled=&search=",
        None,
    )
    .await;
    assert_eq!(names(&empty).len(), 3, "empty filters are no filters");
    let (status, _) = call(&stack, Method::GET, "/api/accounts?provider=oracle", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&stack, Method::GET, "/api/accounts?enabled=maybe", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn discovery_is_for_admins_only() {
    let stack = stack().await;
    let (status, key) = call(
        &stack,
        Method::POST,
        "/api/keys",
        Some(json!({"name": "reader", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let viewer = key["key"].as_str().unwrap();
    let response = stack
        .http
        .post(stack.url("/api/accounts/discover-org"))
        .bearer_auth(viewer)
        .json(&json!({"org_root_account_id": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A viewer may read.
    let response = stack
        .http
        .get(stack.url("/api/accounts"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // An admin reaches the rules: an unknown root is 404.
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"account_id": uuid::Uuid::new_v4()})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn azure_and_gcp_accounts_are_stored_and_their_tests_say_not_supported_yet() {
    let stack = stack().await;
    let azure = create(
        &stack,
        json!({"name": "sub", "provider": "azure", "external_id": "6f1c2a3b-1111-4222-8333-944455556666",
               "azure_tenant_id": "0f1c2a3b-1111-4222-8333-944455556666",
               "azure_client_id": "1f1c2a3b-1111-4222-8333-944455556666"}),
    )
    .await;
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{azure}/test"),
        None,
    )
    .await;
    assert_eq!(
        tested,
        json!({"ok": false, "error": "no credentials configured"})
    );
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{azure}/credentials"),
        Some(json!({"type": "azure_client_secret", "client_secret": "azure-secret-CANARY"})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, account) = call(&stack, Method::GET, &format!("/api/accounts/{azure}"), None).await;
    assert_eq!(account["credentials_configured"], true);
    assert_eq!(account["aws_auth_mode"], serde_json::Value::Null);
    let (status, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{azure}/test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["ok"], false);
    assert!(
        tested["error"]
            .as_str()
            .unwrap()
            .contains("not supported yet"),
        "{tested}"
    );

    let mut gcp_body = json!({"name": "project", "provider": "gcp", "external_id": "analytics-prod",
                              "gcp_client_email": "cudly@analytics-prod.iam.gserviceaccount.com"});
    gcp_body["credentials"] = json!({"type": "gcp_service_account", "service_account_json": {
        "type": "service_account", "project_id": "analytics-prod",
        "client_email": "cudly@analytics-prod.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\ngcp-CANARY\n-----END PRIVATE KEY-----\n"}});
    let (status, gcp) = call(&stack, Method::POST, "/api/accounts", Some(gcp_body)).await;
    assert_eq!(status, StatusCode::CREATED, "{gcp}");
    assert_eq!(gcp["credentials_configured"], true);
    assert!(!gcp.to_string().contains("CANARY"));
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{}/test", gcp["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(
        tested["error"]
            .as_str()
            .unwrap()
            .contains("not supported yet"),
        "{tested}"
    );

    // AWS fields on other providers are refused, naming the field.
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "x", "provider": "gcp", "external_id": "other-project", "aws_is_org_root": true})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["field"], "aws_is_org_root");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_ids_and_bodies_are_400_and_unknown_accounts_404() {
    let stack = stack().await;
    let (status, reply) = call(&stack, Method::GET, "/api/accounts/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let unknown = uuid::Uuid::new_v4();
    for (method, path, body) in [
        (Method::GET, format!("/api/accounts/{unknown}"), None),
        (
            Method::PUT,
            format!("/api/accounts/{unknown}"),
            Some(keys_account("x", "123456789012")),
        ),
        (Method::DELETE, format!("/api/accounts/{unknown}"), None),
        (
            Method::POST,
            format!("/api/accounts/{unknown}/credentials"),
            Some(keys_credentials()),
        ),
        (Method::POST, format!("/api/accounts/{unknown}/test"), None),
    ] {
        let (status, reply) = call(&stack, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {reply}");
    }
    for body in [
        json!({"provider": "aws", "external_id": "123456789012"}),
        json!({"name": "x", "provider": "aws", "external_id": "123456789012", "colour": "red"}),
        json!({"name": "x", "provider": "aws", "external_id": "123"}),
        json!({"name": "x", "provider": "oracle", "external_id": "123456789012"}),
        json!({"name": "x", "provider": "aws", "external_id": "123456789012", "contact_email": "nobody"}),
        json!({"name": "x", "provider": "aws", "external_id": "123456789012", "aws_auth_mode": "magic"}),
        json!({"name": "x".repeat(256), "provider": "aws", "external_id": "123456789012"}),
    ] {
        let (status, reply) = call(&stack, Method::POST, "/api/accounts", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
    }
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_an_account_removes_its_credentials() {
    let stack = stack().await;
    let mut body = keys_account("keys", KEYS_ACCOUNT);
    body["credentials"] = keys_credentials();
    let id = create(&stack, body).await;
    let pool = stack.db.pool("accounts").await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM account_credentials")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);
    let (status, _) = call(&stack, Method::DELETE, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count().await, 0);
    stack.stop().await.unwrap();
}
