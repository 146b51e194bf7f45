//! The REST client of the CLI: bearer authentication, JSON in and out, and every
//! failure turned into a one-line [`CliError`] carrying the server's own message and the
//! exit status of its HTTP code (docs/design/API.md, Conventions: errors are
//! `{"error": ..., plus the rule's extra fields}`).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::config::{KeySource, Settings};
use super::exit::{CliError, CliResult, ExitStatus};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take, unless it says otherwise ([`Client::post_slow`]).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request the gateway lets run long may take: a recommendations refresh
/// has a 15-minute deadline (docs/design/API.md, Recommendations), plus a margin.
pub const SLOW_REQUEST_TIMEOUT: Duration = Duration::from_secs(16 * 60);
/// The reply header carrying the next page of the audit export.
const NEXT_CURSOR: &str = "x-next-cursor";

/// A gateway and the key to talk to it with.
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<SecretString>,
    key_source: KeySource,
}

/// A reply as text, for routes that answer other formats than JSON.
pub struct TextReply {
    pub body: String,
    pub next_cursor: Option<String>,
}

impl Client {
    /// Returns a client of the gateway the settings name.
    pub fn new(settings: &Settings) -> CliResult<Self> {
        // No client-wide timeout: each request sets its own (RequestBuilder::timeout).
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("cudly-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::failure(format!("cannot build the http client: {error}")))?;
        Ok(Self {
            http,
            base_url: settings.url.clone(),
            api_key: settings.api_key.clone(),
            key_source: settings.key_source,
        })
    }

    /// Returns the gateway's base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.json(Method::GET, path, &[], None).await
    }

    /// GET with query parameters; empty values are left out.
    pub async fn get_query(&self, path: &str, query: &[(&str, String)]) -> CliResult<Value> {
        self.json(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.json(Method::POST, path, &[], Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.json(Method::PUT, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.json(Method::DELETE, path, &[], None).await
    }

    /// POST to a route the gateway lets run long (a recommendations refresh).
    pub async fn post_slow(&self, path: &str, body: &Value) -> CliResult<Value> {
        let request = self
            .request(Method::POST, path, &[])
            .timeout(SLOW_REQUEST_TIMEOUT)
            .json(body);
        read_json(self.send(request).await?).await
    }

    /// POST with optional query parameters and an optional `Idempotency-Key`.
    pub async fn post_with(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> CliResult<Value> {
        let mut request = self.request(Method::POST, path, query).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = self.send(request).await?;
        read_json(response).await
    }

    /// GET whose reply is returned as text, with the next page's cursor.
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> CliResult<TextReply> {
        let response = self.send(self.request(Method::GET, path, query)).await?;
        let next_cursor = response
            .headers()
            .get(NEXT_CURSOR)
            .and_then(|value| value.to_str().ok())
            .filter(|cursor| !cursor.is_empty())
            .map(str::to_owned);
        let body = response.text().await.map_err(|error| {
            CliError::unavailable(format!("reading the reply: {}", root_cause(&error)))
        })?;
        Ok(TextReply { body, next_cursor })
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> CliResult<Value> {
        let mut request = self.request(method, path, query);
        if let Some(json) = body {
            request = request.json(json);
        }
        let response = self.send(request).await?;
        read_json(response).await
    }

    fn request(&self, method: Method, path: &str, query: &[(&str, String)]) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .timeout(REQUEST_TIMEOUT);
        let present: Vec<(&str, &str)> = query
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        if !present.is_empty() {
            request = request.query(&present);
        }
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        request
    }

    /// Sends the request; a transport failure or a non-2xx reply is an error.
    async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let mut error = reply_error(status.as_u16(), &text);
        if let Some(seconds) = retry_after {
            error
                .message
                .push_str(&format!("; retry after {seconds} s"));
        }
        if status.as_u16() == 401 && self.key_source == KeySource::None {
            error.message.push_str(
                "; no api key is configured: pass --api-key, set CUDLY_API_KEY or run cudly login",
            );
        }
        Err(error)
    }

    fn transport_error(&self, error: &reqwest::Error) -> CliError {
        let base = &self.base_url;
        let cause = root_cause(error);
        if error.is_timeout() {
            return CliError::unavailable(format!("{base} did not answer in time: {cause}"));
        }
        if error.is_connect() {
            return CliError::unavailable(format!("cannot reach {base}: {cause}"));
        }
        if error.is_builder() {
            return CliError::usage(format!("cannot send a request to {base}: {cause}"));
        }
        CliError::unavailable(format!("request to {base} failed: {cause}"))
    }
}

/// Returns the JSON of a successful reply; `Null` when it has no body (204).
async fn read_json(response: Response) -> CliResult<Value> {
    let text = response.text().await.map_err(|error| {
        CliError::unavailable(format!("reading the reply: {}", root_cause(&error)))
    })?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .map_err(|error| CliError::failure(format!("the server's reply is not json: {error}")))
}

/// Returns the error of a non-2xx reply: the server's `error` message with the extra
/// fields of the rule that refused, and the HTTP code.
pub fn reply_error(status: u16, body: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|json| json["error"].as_str())
        .map(str::to_owned)
        .or_else(|| {
            // Not our JSON (a proxy's page): its first line, kept short.
            body.lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .map(|line| line.chars().take(200).collect())
        })
        .unwrap_or_else(|| format!("the server answered http {status}"));
    let extras = parsed.as_ref().map(error_extras).unwrap_or_default();
    CliError::new(
        ExitStatus::of_http(status),
        format!("{message}{extras} (http {status})"),
    )
}

/// Returns the extra fields of an error body as ` (name: value, ...)`, or "".
fn error_extras(body: &Value) -> String {
    let names = |list: &Value| -> Option<String> {
        let entries = list.as_array()?;
        let names: Vec<String> = entries
            .iter()
            .map(|entry| {
                entry["name"]
                    .as_str()
                    .or_else(|| entry["id"].as_str())
                    .map_or_else(|| entry.to_string(), str::to_owned)
            })
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    };
    let mut parts = Vec::new();
    if let Some(status) = body["status"].as_str() {
        parts.push(format!("status: {status}"));
    }
    if let Some(dependents) = names(&body["dependents"]) {
        parts.push(format!("dependents: {dependents}"));
    }
    if let Some(mismatches) = names(&body["mismatches"]) {
        parts.push(format!("mismatches: {mismatches}"));
    }
    if let Some(item) = body["item"].as_u64() {
        parts.push(format!("item: {item}"));
    }
    if let Some(amount) = body["limit"].as_f64() {
        let name = body["limit_name"].as_str().unwrap_or("limit");
        parts.push(format!("{name}: {amount}"));
    }
    for field in ["committed", "requested"] {
        if let Some(amount) = body[field].as_f64() {
            parts.push(format!("{field}: {amount}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Returns the innermost cause of an error: reqwest's own text ("error sending
/// request") says less than what lies under it ("connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Returns `id` encoded as one path segment, so that an argument can never reach
/// another route (`../keys`).
pub fn segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.trim().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_server_message_and_its_fields() {
        let error = reply_error(
            409,
            r#"{"error":"execution is not pending","status":"approved"}"#,
        );
        assert_eq!(error.status, ExitStatus::Refused);
        assert_eq!(
            error.message,
            "execution is not pending (status: approved) (http 409)"
        );
        let error = reply_error(
            422,
            r#"{"error":"spend limit","limit":100.0,"committed":20.0,"requested":90.5}"#,
        );
        assert!(
            error
                .message
                .contains("limit: 100, committed: 20, requested: 90.5"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_reply_that_is_not_json_gives_its_first_line() {
        let error = reply_error(502, "\n<html>bad gateway</html>\nmore");
        assert_eq!(error.status, ExitStatus::Unavailable);
        assert_eq!(error.message, "<html>bad gateway</html> (http 502)");
        assert_eq!(
            reply_error(500, "").message,
            "the server answered http 500 (http 500)"
        );
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(segment("6f1c-aa"), "6f1c-aa");
        assert_eq!(segment("../keys"), "..%2Fkeys");
        assert_eq!(segment("a b?c"), "a%20b%3Fc");
    }
}
