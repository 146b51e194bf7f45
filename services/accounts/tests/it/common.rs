//! Helpers shared by the tests: a stack wired to the AWS sandbox, sandbox accounts,
//! account bodies and internal gRPC clients.

use std::time::Duration;

use cudly_aws_sandbox::{AccountSpec, RoleSpec};
use cudly_common::grpc::{AuthChannel, Caller, client_channel};
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_testkit::{SANDBOX_HOST_ACCOUNT_ID, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Starts the whole stack pointed at a fresh AWS sandbox.
pub async fn stack() -> TestStack {
    TestStack::start_with_sandbox()
        .await
        .expect("stack with sandbox starts")
}

/// An AWS account with long-lived keys (for access_keys mode).
pub const KEYS_ACCOUNT: &str = "111111111111";
pub const KEYS_ACCESS_KEY_ID: &str = "AKIAKEYSACCOUNT00001";
pub const KEYS_SECRET: &str = "keys-account-secret-CANARY-4f1d9a0b7c2e";

/// An AWS account with a role the services' own identity may assume with an external id.
pub const ROLE_ACCOUNT: &str = "222222222222";
pub const ROLE_NAME: &str = "CUDly";
pub const ROLE_EXTERNAL_ID: &str = "cudly-ext-1";

/// Adds the keys account and the role account to the sandbox.
pub async fn add_sandbox_accounts(stack: &TestStack) {
    stack
        .sandbox()
        .add_account(
            AccountSpec::new(KEYS_ACCOUNT)
                .with_name("keys")
                .with_access_key(KEYS_ACCESS_KEY_ID, KEYS_SECRET),
        )
        .await;
    stack
        .sandbox()
        .add_account(AccountSpec::new(ROLE_ACCOUNT).with_name("role").with_role(
            RoleSpec::new(ROLE_NAME, SANDBOX_HOST_ACCOUNT_ID).with_external_id(ROLE_EXTERNAL_ID),
        ))
        .await;
}

/// Returns the role ARN of `role` in `account`.
pub fn role_arn(account: &str, role: &str) -> String {
    format!("arn:aws:iam::{account}:role/{role}")
}

/// The body of an access_keys account.
pub fn keys_account(name: &str, external_id: &str) -> Value {
    json!({"name": name, "provider": "aws", "external_id": external_id, "aws_auth_mode": "access_keys"})
}

/// The body of a role_arn account.
pub fn role_account(
    name: &str,
    external_id: &str,
    role: &str,
    aws_external_id: Option<&str>,
) -> Value {
    json!({
        "name": name,
        "provider": "aws",
        "external_id": external_id,
        "aws_auth_mode": "role_arn",
        "aws_role_arn": role_arn(external_id, role),
        "aws_external_id": aws_external_id,
    })
}

/// The body of a bastion-mode account.
pub fn bastion_account(name: &str, external_id: &str, bastion_id: &str, role: &str) -> Value {
    json!({
        "name": name,
        "provider": "aws",
        "external_id": external_id,
        "aws_auth_mode": "bastion",
        "aws_bastion_id": bastion_id,
        "aws_role_arn": role_arn(external_id, role),
    })
}

/// The access keys body of the keys account.
pub fn keys_credentials() -> Value {
    json!({"type": "aws_access_keys", "access_key_id": KEYS_ACCESS_KEY_ID, "secret_access_key": KEYS_SECRET})
}

/// Creates an account through the API and returns its id; panics on anything but 201.
pub async fn create(stack: &TestStack, body: Value) -> String {
    let (status, reply) = stack
        .admin_json(Method::POST, "/api/accounts", Some(body))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    reply["id"].as_str().expect("an id").to_owned()
}

/// Returns an accounts client calling as `caller`.
pub fn grpc_as(stack: &TestStack, caller: Caller) -> AccountsServiceClient<AuthChannel> {
    let url = format!("http://{}", stack.stack().accounts_addr());
    let channel = client_channel(
        &url,
        &stack.secrets().internal_token(caller),
        Duration::from_secs(30),
    )
    .expect("channel to the accounts service");
    AccountsServiceClient::new(channel)
}
