//! Helpers shared by the `cudly` integration tests: an AWS account registered with its
//! access keys, and the tables of every service's schema for the tests that scan or
//! digest every stored row.

use cudly_aws_sandbox::AccountSpec;
use cudly_testkit::TestStack;
use reqwest::Method;
use serde_json::json;
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
