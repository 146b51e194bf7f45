//! The demo organisation dev mode seeds into its in-process AWS emulator, and which
//! `cudly demo` registers: a root with long-lived keys and three members (each with the
//! role discovery assumes), and Cost Explorer recommendations for the members. Every
//! id and key here is made up and public; no real AWS account accepts them.

use anyhow::Context;
use serde_json::{Value, json};

/// The organisation's root (management) account.
pub const ROOT_ACCOUNT_ID: &str = "111111111111";
pub const ROOT_NAME: &str = "demo-root";
pub const ROOT_ACCESS_KEY_ID: &str = "AKIADEMOROOT00000001";
pub const ROOT_SECRET_ACCESS_KEY: &str = "demo-root-secret-not-a-real-key-0000000000";

/// The members: account id and name.
pub const MEMBERS: &[(&str, &str)] = &[
    ("222222222222", "demo-web"),
    ("333333333333", "demo-data"),
    ("444444444444", "demo-analytics"),
];

/// The account the services themselves run as in the emulator (their ambient
/// credentials), so the SDK never looks for credentials of its own.
pub const HOST_ACCOUNT_ID: &str = "555555555555";
pub const HOST_ACCESS_KEY_ID: &str = "AKIADEMOHOST00000001";
pub const HOST_SECRET_ACCESS_KEY: &str = "demo-host-secret-not-a-real-key-0000000000";

/// The region of the seeded recommendations.
pub const REGION: &str = "us-east-1";

/// RDS recommendations per member: instance type, engine, recommended count.
const RECOMMENDED: &[(&str, &str, f64)] = &[
    ("db.r6g.large", "postgresql", 2.0),
    ("db.m6g.large", "mysql", 1.0),
];

/// Creates the host account, the organisation and its recommendations in the emulator
/// at `endpoint` through its control API (docs/design/SANDBOX.md); posting again
/// replaces the accounts, so seeding twice is harmless.
pub async fn seed(endpoint: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let endpoint = endpoint.trim_end_matches('/');
    for account in accounts() {
        control(&http, &format!("{endpoint}/_sandbox/accounts"), &account).await?;
    }
    control(
        &http,
        &format!("{endpoint}/_sandbox/recommendations"),
        &Value::Array(recommendations()),
    )
    .await
}

fn accounts() -> [Value; 2] {
    let members: Vec<Value> = MEMBERS
        .iter()
        .map(|(account_id, name)| json!({"account_id": account_id, "name": name}))
        .collect();
    [
        json!({"account_id": HOST_ACCOUNT_ID, "name": "cudly-host",
               "access_keys": [{"access_key_id": HOST_ACCESS_KEY_ID,
                                "secret_access_key": HOST_SECRET_ACCESS_KEY}]}),
        json!({"account_id": ROOT_ACCOUNT_ID, "name": ROOT_NAME,
               "access_keys": [{"access_key_id": ROOT_ACCESS_KEY_ID,
                                "secret_access_key": ROOT_SECRET_ACCESS_KEY}],
               "organization_members": members}),
    ]
}

fn recommendations() -> Vec<Value> {
    MEMBERS
        .iter()
        .flat_map(|(account_id, _)| {
            RECOMMENDED
                .iter()
                .map(move |(resource_type, engine, count)| {
                    json!({"account_id": account_id, "service": "rds", "region": REGION,
                       "resource_type": resource_type, "engine": engine, "term": 1,
                       "payment": "no-upfront", "recommended_count": count,
                       "upfront_cost": 0.0, "monthly_savings": 40.0 * count})
                })
        })
        .collect()
}

async fn control(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<()> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("calling the AWS emulator at {url}"))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "the AWS emulator answered {status} to {url}"
    );
    Ok(())
}
