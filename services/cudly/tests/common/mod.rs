//! Helpers shared by the `cudly` integration tests: an AWS account registered with its
//! access keys, the tables of every service's schema for the tests that scan or digest
//! every stored row, the lines the approval-page tests buy, and the real binary run as
//! the CLI.

pub mod receiver;

use cudly_aws_sandbox::AccountSpec;
use cudly_testkit::TestStack;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

/// The schemas of the five services, each holding only its own service's tables.
pub const SCHEMAS: [&str; 5] = ["accounts", "planner", "executor", "sweeper", "gateway"];

/// Adds the sandbox account `external_id` with the access key `key_id` and `secret`,
/// then registers it through the gateway as `name` with the same keys (access_keys
/// mode); returns its id.
pub async fn add_keys_account(
    stack: &TestStack,
    name: &str,
    external_id: &str,
    key_id: &str,
    secret: &str,
) -> String {
    stack
        .sandbox()
        .add_account(AccountSpec::new(external_id).with_access_key(key_id, secret))
        .await;
    let (status, account) = stack
        .admin_json(
            Method::POST,
            "/api/accounts",
            Some(
                json!({"name": name, "provider": "aws", "external_id": external_id,
                "aws_auth_mode": "access_keys",
                "credentials": {"type": "aws_access_keys", "access_key_id": key_id,
                                "secret_access_key": secret}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{account}");
    account["id"].as_str().unwrap().to_owned()
}

/// Returns the names of the base tables of `schema`. They come from
/// information_schema, not from input, so a test may put them into SQL text.
pub async fn tables_of(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Two lines the approval-page tests buy: RDS all upfront (an upfront price, two
/// instances) and EC2 no upfront (a monthly price, one instance).
pub fn approval_lines() -> Value {
    json!([
        {"provider": "aws", "service": "rds", "region": "us-east-1",
         "resource_type": "db.r5.large", "engine": "postgresql", "count": 2, "term": 1,
         "payment": "all-upfront", "details": {"multi_az": false}},
        {"provider": "aws", "service": "ec2", "region": "us-east-1",
         "resource_type": "m5.large", "platform": "Linux/UNIX", "count": 1, "term": 1,
         "payment": "no-upfront", "details": {"tenancy": "default", "offering_class": "standard"}},
    ])
}

/// A pending execution of [`approval_lines`], created with the bootstrap admin key.
pub struct Pending {
    pub id: String,
    pub token: String,
    /// The creation reply.
    pub execution: Value,
}

impl Pending {
    /// The approval link's path, as the approver gets it.
    pub fn link(&self) -> String {
        format!("/approve/{}?token={}", self.id, self.token)
    }
}

/// Registers the sandbox account `buyer` and creates a pending direct execution of
/// [`approval_lines`] for it.
pub async fn create_pending(stack: &TestStack, buyer: &str) -> Pending {
    let account = stack
        .add_sandbox_account(buyer)
        .await
        .expect("account registered");
    let (status, execution) = cudly_testkit::rest::call(
        stack,
        Method::POST,
        "/api/executions",
        Some(json!({"cloud_account_id": account, "recommendations": approval_lines()})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{execution}");
    assert_eq!(execution["status"], "pending");
    Pending {
        id: execution["id"].as_str().expect("an id").to_owned(),
        token: execution["approval_token"]
            .as_str()
            .expect("a token")
            .to_owned(),
        execution,
    }
}

/// Runs the real `cudly` binary with the CLI's variables removed from its environment
/// (nothing of the user's own setup is read) and `vars` set.
pub async fn run_binary<V: AsRef<std::ffi::OsStr>>(
    args: &[&str],
    vars: &[(&str, V)],
) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudly"));
    command.args(args).kill_on_drop(true);
    for name in [
        "CUDLY_URL",
        "CUDLY_API_KEY",
        "CUDLY_CONFIG",
        "CUDLY_DEV_DIR",
    ] {
        command.env_remove(name);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().await.expect("the binary runs")
}
