//! REST calls to the gateway with the admin key: [`call`] for a test on the in-process
//! [`TestStack`], [`admin_json`] for a gateway running in a child process (the
//! benchmarks, crash injection), where there is no `TestStack` to ask.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::TestStack;

/// Sends a request with the admin key and returns status and JSON reply (`Null` for an
/// empty body). Panics when the request cannot be sent or the reply is not JSON, so the
/// test fails at the call that went wrong.
pub async fn call(
    stack: &TestStack,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    stack
        .admin_json(method, path, body)
        .await
        .expect("request sent")
}

/// Sends `body` as JSON to `url` with `admin_key` as bearer token; returns status and
/// JSON reply (`Null` for an empty body).
pub async fn admin_json(
    http: &reqwest::Client,
    url: &str,
    admin_key: &str,
    method: Method,
    body: &Value,
) -> anyhow::Result<(StatusCode, Value)> {
    let response = http
        .request(method, url)
        .bearer_auth(admin_key)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    };
    Ok((status, json))
}
