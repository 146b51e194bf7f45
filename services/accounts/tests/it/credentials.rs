//! Credential tests (REST) and session credentials (ResolveCredentials, gRPC as the
//! executor) for every AWS mode, against the sandbox.

use cudly_aws::sdk::{AwsSettings, SessionCredentials};
use cudly_aws::sts::Sts;
use cudly_aws_sandbox::{AccountSpec, RoleSpec};
use cudly_common::grpc::Caller;
use cudly_proto::accounts::v1::{ResolveCredentialsRequest, ResolveCredentialsResponse};
use cudly_testkit::rest::call;
use cudly_testkit::{SANDBOX_HOST_ACCOUNT_ID, TestStack};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;

use crate::common::*;

async fn resolve(stack: &TestStack, id: &str) -> Result<ResolveCredentialsResponse, tonic::Status> {
    grpc_as(stack, Caller::Executor)
        .resolve_credentials(ResolveCredentialsRequest {
            account_id: id.to_owned(),
            scope: "quote".into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Asks the sandbox who the resolved credentials belong to.
async fn caller_account(
    stack: &TestStack,
    resolved: &ResolveCredentialsResponse,
) -> (String, String) {
    let settings = AwsSettings::default().with_endpoint(stack.sandbox().endpoint());
    let credentials = SessionCredentials {
        access_key_id: resolved.access_key_id.clone(),
        secret_access_key: SecretString::from(resolved.secret_access_key.clone()),
        session_token: Some(SecretString::from(resolved.session_token.clone())),
        expiration: None,
    };
    let identity = Sts::with_credentials(&settings, &credentials)
        .get_caller_identity()
        .await
        .expect("the session credentials work");
    (identity.account, identity.arn)
}

async fn ledger_count(stack: &TestStack, operation: &str) -> usize {
    stack.sandbox().ledger().await.calls_of(operation).count()
}

#[tokio::test]
async fn testing_access_keys_reports_the_caller_identity() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let id = create(&stack, keys_account("keys", KEYS_ACCOUNT)).await;
    let test_path = format!("/api/accounts/{id}/test");

    let (status, reply) = call(&stack, Method::POST, &test_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply,
        json!({"ok": false, "error": "no credentials configured"})
    );

    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(keys_credentials()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, reply) = call(&stack, Method::POST, &test_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["caller_identity"],
        format!("arn:aws:iam::{KEYS_ACCOUNT}:user/sandbox")
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn testing_with_refused_keys_names_the_step_and_no_secret() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let mut body = keys_account("keys", KEYS_ACCOUNT);
    body["credentials"] = json!({"access_key_id": "AKIAUNKNOWNKEY000001", "secret_access_key": "unknown-secret-CANARY"});
    let id = create(&stack, body).await;
    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["ok"], false, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.starts_with("GetSessionToken: InvalidClientTokenId"),
        "{error}"
    );
    assert!(
        !error.contains("CANARY") && !error.contains("AKIAUNKNOWNKEY000001"),
        "{error}"
    );

    // Keys of another account than the external id are caught by the test.
    let mut body = keys_account("mismatch", "333333333333");
    body["credentials"] = keys_credentials();
    let id = create(&stack, body).await;
    let (_, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/test"),
        None,
    )
    .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains(KEYS_ACCOUNT),
        "{reply}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn resolve_credentials_for_a_role_arn_account_names_the_target_account() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let id = create(
        &stack,
        role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some(ROLE_EXTERNAL_ID)),
    )
    .await;
    let resolved = resolve(&stack, &id).await.expect("credentials resolve");
    assert!(resolved.access_key_id.starts_with("ASIA"));
    assert!(!resolved.session_token.is_empty());
    assert_eq!(resolved.external_id, ROLE_ACCOUNT);
    assert_eq!(resolved.provider, "aws");
    assert!(resolved.enabled);
    let expiration = resolved.expiration.expect("an expiration");
    assert!(expiration.seconds > chrono::Utc::now().timestamp() + 600);
    let (account, arn) = caller_account(&stack, &resolved).await;
    assert_eq!(account, ROLE_ACCOUNT);
    let session = format!("cudly-{}", &id[..8]);
    assert_eq!(
        arn,
        format!("arn:aws:sts::{ROLE_ACCOUNT}:assumed-role/{ROLE_NAME}/{session}")
    );
    // The debug form of the reply shows no secret.
    let printed = format!("{resolved:?}");
    assert!(
        !printed.contains(&resolved.secret_access_key)
            && !printed.contains(&resolved.session_token)
    );

    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], true, "{tested}");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn resolve_credentials_with_a_wrong_external_id_fails_clearly_without_secrets() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let id = create(
        &stack,
        role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some("not-the-right-one")),
    )
    .await;
    let status = resolve(&stack, &id)
        .await
        .expect_err("a wrong external id is refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("AssumeRole: AccessDenied"), "{message}");
    assert!(message.contains("external id"), "{message}");
    let ambient_secret = "CANARY";
    assert!(!message.contains(ambient_secret), "{message}");
    assert!(
        !message.contains("AKIA") && !message.contains("ASIA"),
        "{message}"
    );

    let (status, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["ok"], false);
    assert!(
        tested["error"]
            .as_str()
            .unwrap()
            .starts_with("AssumeRole: AccessDenied"),
        "{tested}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn resolve_credentials_refuses_disabled_and_deleted_accounts() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let mut body = role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some(ROLE_EXTERNAL_ID));
    body["enabled"] = json!(false);
    let id = create(&stack, body.clone()).await;
    let status = resolve(&stack, &id).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("disabled"));

    body["enabled"] = json!(true);
    let (status, _) = call(
        &stack,
        Method::PUT,
        &format!("/api/accounts/{id}"),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(resolve(&stack, &id).await.is_ok());

    let (status, _) = call(&stack, Method::DELETE, &format!("/api/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let status = resolve(&stack, &id).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // No stored keys, and other providers, are preconditions too.
    let keys = create(&stack, keys_account("keys", KEYS_ACCOUNT)).await;
    let status = resolve(&stack, &keys).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(status.message(), "no credentials configured");
    let gcp = create(
        &stack,
        json!({"name": "p", "provider": "gcp", "external_id": "analytics-prod"}),
    )
    .await;
    let status = resolve(&stack, &gcp).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("not supported yet"), "{status:?}");
    let status = resolve(&stack, "not-a-uuid").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn access_keys_accounts_hand_over_a_federated_session_never_the_keys() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let mut body = keys_account("keys", KEYS_ACCOUNT);
    body["credentials"] = keys_credentials();
    let id = create(&stack, body).await;
    let resolved = resolve(&stack, &id).await.expect("credentials resolve");
    assert_ne!(
        resolved.access_key_id, KEYS_ACCESS_KEY_ID,
        "session credentials, never the stored keys"
    );
    assert_ne!(resolved.secret_access_key, KEYS_SECRET);
    assert!(!resolved.session_token.is_empty());
    let (account, _) = caller_account(&stack, &resolved).await;
    assert_eq!(account, KEYS_ACCOUNT);
    // GetSessionToken takes no session policy; a federated user's session does.
    assert_eq!(ledger_count(&stack, "GetFederationToken").await, 1);
    assert_eq!(ledger_count(&stack, "GetSessionToken").await, 0);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn bastion_accounts_resolve_through_their_bastion_in_one_hop() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    stack
        .sandbox()
        .add_account(
            AccountSpec::new("444444444444")
                .with_role(RoleSpec::new("Member", KEYS_ACCOUNT).with_external_id("member-ext")),
        )
        .await;
    let mut bastion_body = keys_account("bastion", KEYS_ACCOUNT);
    bastion_body["credentials"] = keys_credentials();
    let bastion = create(&stack, bastion_body).await;
    let mut member_body = bastion_account("member", "444444444444", &bastion, "Member");
    member_body["aws_external_id"] = json!("member-ext");
    let member = create(&stack, member_body).await;
    let resolved = resolve(&stack, &member)
        .await
        .expect("credentials resolve through the bastion");
    let (account, arn) = caller_account(&stack, &resolved).await;
    assert_eq!(account, "444444444444");
    assert!(
        arn.ends_with(&format!("assumed-role/Member/cudly-{}", &member[..8])),
        "{arn}"
    );
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{member}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], true, "{tested}");

    // A failure in the bastion names it.
    let orphan_bastion = create(&stack, keys_account("empty bastion", "555555555555")).await;
    let orphan = create(
        &stack,
        bastion_account("orphan", "666666666666", &orphan_bastion, "Member"),
    )
    .await;
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{orphan}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], false);
    let error = tested["error"].as_str().unwrap();
    assert!(
        error.starts_with("bastion account empty bastion"),
        "{error}"
    );
    assert!(error.ends_with("no credentials configured"), "{error}");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn workload_identity_federation_resolves_from_the_token_file() {
    let stack = stack().await;
    stack
        .sandbox()
        .add_account(
            AccountSpec::new("777777777777")
                .with_role(RoleSpec::new("Federated", "000000000000").with_web_identity()),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.web-identity-CANARY.sig\n",
    )
    .unwrap();
    let id = create(
        &stack,
        json!({"name": "federated", "provider": "aws", "external_id": "777777777777",
               "aws_auth_mode": "workload_identity_federation",
               "aws_role_arn": role_arn("777777777777", "Federated"),
               "aws_web_identity_token_file": token_file.display().to_string()}),
    )
    .await;
    let resolved = resolve(&stack, &id)
        .await
        .expect("credentials resolve from the token");
    let (account, _) = caller_account(&stack, &resolved).await;
    assert_eq!(account, "777777777777");

    std::fs::remove_file(&token_file).unwrap();
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], false);
    assert!(
        tested["error"]
            .as_str()
            .unwrap()
            .contains("web identity token file"),
        "{tested}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn session_credentials_are_cached_until_the_account_or_its_bastion_changes() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let body = role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some(ROLE_EXTERNAL_ID));
    let id = create(&stack, body.clone()).await;
    let first = resolve(&stack, &id).await.unwrap();
    let second = resolve(&stack, &id).await.unwrap();
    assert_eq!(
        first.access_key_id, second.access_key_id,
        "served from the cache"
    );
    assert_eq!(ledger_count(&stack, "AssumeRole").await, 1);

    let mut renamed = body;
    renamed["name"] = json!("role renamed");
    let (status, _) = call(
        &stack,
        Method::PUT,
        &format!("/api/accounts/{id}"),
        Some(renamed),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let third = resolve(&stack, &id).await.unwrap();
    assert_ne!(
        third.access_key_id, first.access_key_id,
        "a write drops the cache entry"
    );
    assert_eq!(ledger_count(&stack, "AssumeRole").await, 2);

    // A write to the bastion drops its dependents' entries too.
    stack
        .sandbox()
        .add_account(
            AccountSpec::new("444444444444").with_role(RoleSpec::new("Member", KEYS_ACCOUNT)),
        )
        .await;
    let mut bastion_body = keys_account("bastion", KEYS_ACCOUNT);
    bastion_body["credentials"] = keys_credentials();
    let bastion = create(&stack, bastion_body).await;
    let member = create(
        &stack,
        bastion_account("member", "444444444444", &bastion, "Member"),
    )
    .await;
    let before = resolve(&stack, &member).await.unwrap();
    assert_eq!(
        resolve(&stack, &member).await.unwrap().access_key_id,
        before.access_key_id
    );
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{bastion}/credentials"),
        Some(keys_credentials()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = resolve(&stack, &member).await.unwrap();
    assert_ne!(after.access_key_id, before.access_key_id);
    assert_eq!(ledger_count(&stack, "GetSessionToken").await, 2);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn the_services_own_identity_is_what_role_arn_accounts_trust() {
    let stack = stack().await;
    // A role that trusts another account than the services' own identity.
    stack
        .sandbox()
        .add_account(
            AccountSpec::new(ROLE_ACCOUNT).with_role(RoleSpec::new(ROLE_NAME, "123123123123")),
        )
        .await;
    let id = create(&stack, role_account("role", ROLE_ACCOUNT, ROLE_NAME, None)).await;
    let status = resolve(&stack, &id).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains(SANDBOX_HOST_ACCOUNT_ID),
        "{status:?}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_cached_session_that_would_not_last_as_long_as_asked_is_replaced() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let body = role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some(ROLE_EXTERNAL_ID));
    let id = create(&stack, body).await;
    let resolve_for = |seconds: u32| {
        let request = ResolveCredentialsRequest {
            account_id: id.clone(),
            min_validity_seconds: seconds,
            scope: "quote".into(),
            ..Default::default()
        };
        let mut client = grpc_as(&stack, Caller::Executor);
        async move {
            client
                .resolve_credentials(request)
                .await
                .expect("resolved")
                .into_inner()
        }
    };
    // Handed-over sessions last 15 minutes.
    let first = resolve_for(0).await;
    let cached = resolve_for(10 * 60).await;
    assert_eq!(
        cached.access_key_id, first.access_key_id,
        "lasts long enough"
    );
    let replaced = resolve_for(20 * 60).await;
    assert_ne!(
        replaced.access_key_id, first.access_key_id,
        "15 minutes are not 20: a new session"
    );
    assert_eq!(ledger_count(&stack, "AssumeRole").await, 2);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_role_account_created_without_an_external_id_gets_one_that_assume_role_sends() {
    const ACCOUNT: &str = "444444444444";
    let stack = stack().await;
    let id = create(&stack, role_account("role", ACCOUNT, ROLE_NAME, None)).await;
    let path = format!("/api/accounts/{id}");
    let (_, mut account) = call(&stack, Method::GET, &path, None).await;
    let generated = account["aws_external_id"].as_str().unwrap().to_owned();
    assert!(
        generated.starts_with("cudly-") && generated.len() == 38,
        "{generated}"
    );
    // The role trusts CUDly-rs only when it asks with that external id.
    stack
        .sandbox()
        .add_account(AccountSpec::new(ACCOUNT).with_role(
            RoleSpec::new(ROLE_NAME, SANDBOX_HOST_ACCOUNT_ID).with_external_id(&generated),
        ))
        .await;
    let (_, reply) = call(&stack, Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(reply["ok"], true, "{reply}");

    // A full replacement that leaves it out keeps it: the trust policy names it.
    account["aws_external_id"] = serde_json::Value::Null;
    account["name"] = json!("role, renamed");
    let (status, updated) = call(&stack, Method::PUT, &path, Some(account)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["aws_external_id"], generated.as_str());
    let mut keys = keys_account("keys", KEYS_ACCOUNT);
    keys["credentials"] = keys_credentials();
    let keys = create(&stack, keys).await;
    let (_, keys) = call(&stack, Method::GET, &format!("/api/accounts/{keys}"), None).await;
    assert_eq!(
        keys["aws_external_id"],
        serde_json::Value::Null,
        "keys assume no role"
    );
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_purchase_session_is_scoped_short_and_names_its_execution_and_approver() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let role = create(
        &stack,
        role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some(ROLE_EXTERNAL_ID)),
    )
    .await;
    let mut keys_body = keys_account("keys", KEYS_ACCOUNT);
    keys_body["credentials"] = keys_credentials();
    let keys = create(&stack, keys_body).await;
    let execution_id = "6f1c2a3b-1111-4222-8333-944455556666";
    let purchase = |account_id: &str| ResolveCredentialsRequest {
        account_id: account_id.to_owned(),
        scope: "purchase".into(),
        execution_id: execution_id.into(),
        approved_by: "key:alice".into(),
        ..Default::default()
    };
    for account_id in [&role, &keys] {
        grpc_as(&stack, Caller::Executor)
            .resolve_credentials(purchase(account_id))
            .await
            .expect("a purchase session");
    }

    let ledger = stack.sandbox().ledger().await;
    let expected_tags = [
        ("cudly:scope", "purchase"),
        ("cudly:execution-id", execution_id),
        ("cudly:approved-by", "key:alice"),
    ];
    // AssumeRole (role account) and GetFederationToken (access keys) alike.
    for operation in ["AssumeRole", "GetFederationToken"] {
        let call = ledger
            .calls_of(operation)
            .next()
            .unwrap_or_else(|| panic!("{operation}"));
        let policy = call.session_policy.as_deref().expect("a session policy");
        assert!(
            policy.contains("ec2:PurchaseReservedInstancesOffering"),
            "{policy}"
        );
        assert!(!policy.contains("ec2:RunInstances"), "{policy}");
        assert_eq!(call.requested_duration_seconds, Some(900), "{operation}");
        for (key, value) in expected_tags {
            assert_eq!(
                call.requested_tags.get(key).map(String::as_str),
                Some(value),
                "{operation} {key}"
            );
        }
    }
    let assume = ledger.calls_of("AssumeRole").next().unwrap();
    assert_eq!(
        assume.requested_source_identity.as_deref(),
        Some("key=alice")
    );

    // A session is never handed out unscoped, and a purchase names its execution.
    let mut unscoped = purchase(&role);
    unscoped.scope = String::new();
    let mut anonymous = purchase(&role);
    anonymous.execution_id = String::new();
    for (request, field) in [(unscoped, "scope"), (anonymous, "execution_id")] {
        let status = grpc_as(&stack, Caller::Executor)
            .resolve_credentials(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
    stack.stop().await.unwrap();
}
