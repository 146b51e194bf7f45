//! AWS Organizations discovery through the REST API against a sandbox organization.

use cudly_aws_sandbox::AccountSpec;
use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

const ROOT: &str = "900000000000";
const ROOT_KEY_ID: &str = "AKIAORGROOT000000001";
const ROOT_SECRET: &str = "org-root-secret-CANARY";
const MEMBERS: [(&str, &str); 3] = [
    ("900000000001", "alpha"),
    ("900000000002", "beta"),
    ("900000000003", "gamma"),
];

async fn organization(stack: &cudly_testkit::TestStack) -> String {
    let mut root = AccountSpec::new(ROOT)
        .with_name("root")
        .with_access_key(ROOT_KEY_ID, ROOT_SECRET);
    for (id, name) in MEMBERS {
        root = root.with_member(id, name);
    }
    stack.sandbox().add_account(root).await;
    let mut body = keys_account("org root", ROOT);
    body["aws_is_org_root"] = json!(true);
    body["credentials"] = json!({"access_key_id": ROOT_KEY_ID, "secret_access_key": ROOT_SECRET});
    create(stack, body).await
}

#[tokio::test]
async fn discovery_creates_unknown_members_disabled_through_the_root_and_skips_known_ones() {
    let stack = stack().await;
    let root = organization(&stack).await;
    let known = create(&stack, keys_account("beta (known)", "900000000002")).await;

    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": root})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["discovered"], 3, "{reply}");
    assert_eq!(reply["created"], 2);
    assert_eq!(reply["skipped"], 1);
    let accounts = reply["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 3);
    for account in accounts {
        assert_ne!(
            account["external_id"], ROOT,
            "the root's own account is excluded"
        );
    }
    let beta = accounts
        .iter()
        .find(|account| account["external_id"] == "900000000002")
        .unwrap();
    assert_eq!(beta["created"], false);
    assert_eq!(beta["id"], known.as_str());
    assert_eq!(beta["name"], "beta (known)");

    let alpha = accounts
        .iter()
        .find(|account| account["external_id"] == "900000000001")
        .unwrap();
    assert_eq!(alpha["created"], true);
    assert_eq!(alpha["name"], "alpha");
    let alpha_id = alpha["id"].as_str().unwrap();
    let (_, stored) = call(
        &stack,
        Method::GET,
        &format!("/api/accounts/{alpha_id}"),
        None,
    )
    .await;
    assert_eq!(stored["enabled"], false);
    assert_eq!(stored["aws_auth_mode"], "bastion");
    assert_eq!(stored["aws_bastion_id"], root.as_str());
    assert_eq!(
        stored["aws_role_arn"],
        "arn:aws:iam::900000000001:role/CudlyPurchaser"
    );

    // A created member's credentials resolve through the root (the sandbox gives
    // every member the dedicated CudlyPurchaser role trusted by the root).
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{alpha_id}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(
        tested["caller_identity"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sts::900000000001:assumed-role/CudlyPurchaser/")
    );

    let (status, again) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"account_id": root})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["discovered"], 3);
    assert_eq!(again["created"], 0, "a second run creates none");
    assert_eq!(again["skipped"], 3);
    let (_, list) = call(&stack, Method::GET, "/api/accounts", None).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 4);
    assert!(!reply.to_string().contains("CANARY") && !again.to_string().contains("CANARY"));
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn discovery_uses_the_requested_member_role_name() {
    let stack = stack().await;
    let root = organization(&stack).await;
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": root, "member_role_name": "CUDlyMember"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let id = reply["accounts"][0]["id"].as_str().unwrap();
    let (_, stored) = call(&stack, Method::GET, &format!("/api/accounts/{id}"), None).await;
    assert!(
        stored["aws_role_arn"]
            .as_str()
            .unwrap()
            .ends_with(":role/CUDlyMember"),
        "{stored}"
    );
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": root, "member_role_name": "not/a role"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn discovery_refuses_roots_that_are_unknown_not_org_roots_or_in_bastion_mode() {
    let stack = stack().await;
    let root = organization(&stack).await;
    let plain = create(&stack, keys_account("plain", "123456789012")).await;
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": plain})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");

    let mut bastioned = bastion_account("bastioned root", "210987654321", &root, "Admin");
    bastioned["aws_is_org_root"] = json!(true);
    let bastioned = create(&stack, bastioned).await;
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": bastioned})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("bastion"),
        "{reply}"
    );

    let gcp = create(
        &stack,
        json!({"name": "p", "provider": "gcp", "external_id": "analytics-prod"}),
    )
    .await;
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": gcp})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": uuid::Uuid::new_v4()})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    stack.stop().await.unwrap();
}
