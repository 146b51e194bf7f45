//! The whole system in-process for end-to-end tests: a fresh database, the five
//! services on loopback ports (the `cudly` stack) and an HTTP client holding the
//! bootstrap admin key.

use cudly::{Stack, StackConfig};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};

use crate::TestDb;

/// A running stack on its own database.
pub struct TestStack {
    pub db: TestDb,
    stack: Option<Stack>,
    admin_key: String,
    base_url: String,
    pub http: reqwest::Client,
}

impl TestStack {
    /// Starts the stack on a fresh database with default test settings.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts the stack after `adjust` has changed the test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut StackConfig)) -> anyhow::Result<Self> {
        let db = TestDb::create().await?;
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
        let mut config = StackConfig::for_tests(db.secret_url(), SecretString::from(redis_url));
        adjust(&mut config);
        let admin_key = config
            .secrets
            .bootstrap_admin_key
            .expose_secret()
            .to_owned();
        let stack = Stack::start(config).await?;
        let base_url = stack.gateway_url();
        let this = Self {
            db,
            stack: Some(stack),
            admin_key,
            base_url,
            http: reqwest::Client::new(),
        };
        this.wait_ready().await?;
        Ok(this)
    }

    /// Waits until `/health/readyz` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = self.url("/health/readyz");
        crate::eventually(
            "the stack to be ready",
            std::time::Duration::from_secs(30),
            || async {
                let response = self.http.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            },
        )
        .await
    }

    /// Returns the gateway URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    pub fn stack(&self) -> &Stack {
        self.stack.as_ref().expect("the stack runs until stop")
    }

    /// Returns a request to `path` authorised with the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.admin_key)
    }

    /// Sends `body` as JSON with the admin key and returns status and JSON reply
    /// (`Null` for an empty body).
    pub async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let mut request = self.admin(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, json))
    }

    /// Stops every service gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stack) = self.stack.take() {
            stack.stop().await?;
        }
        Ok(())
    }
}
