//! The whole system in-process for end-to-end tests: a fresh database, the five
//! services on loopback ports (the `cudly` stack) and an HTTP client holding the
//! bootstrap admin key.

use std::sync::Arc;

use cudly::{Stack, StackConfig};
use cudly_aws::sdk::SessionCredentials;
use cudly_aws_sandbox::{AccountSpec, Sandbox, SandboxConfig, SandboxHandle};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};

use crate::TestDb;

/// A running stack on its own database.
pub struct TestStack {
    pub db: TestDb,
    stack: Option<Stack>,
    admin_key: String,
    secrets: cudly::Secrets,
    base_url: String,
    pub http: reqwest::Client,
    sandbox: Option<SandboxHandle>,
    /// Points a configuration at the sandbox, for a restart.
    sandbox_wiring: Option<Arc<Wiring>>,
}

/// A change of the test configuration that a restart makes again.
type Wiring = dyn Fn(&mut StackConfig) + Send + Sync;

fn redis_url() -> SecretString {
    SecretString::from(
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned()),
    )
}

/// The AWS account the stack's services run as when wired to the sandbox: its keys
/// are the services' ambient credentials (the identity role_arn accounts trust).
pub const SANDBOX_HOST_ACCOUNT_ID: &str = "999999999999";

impl TestStack {
    /// Starts the stack on a fresh database with default test settings.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts the stack after `adjust` has changed the test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut StackConfig)) -> anyhow::Result<Self> {
        let db = TestDb::create().await?;
        let mut config = StackConfig::for_tests(db.secret_url(), redis_url());
        adjust(&mut config);
        let admin_key = config
            .secrets
            .bootstrap_admin_key
            .expose_secret()
            .to_owned();
        let secrets = config.secrets.clone();
        let stack = Stack::start(config).await?;
        let base_url = stack.gateway_url();
        let this = Self {
            db,
            stack: Some(stack),
            admin_key,
            secrets,
            base_url,
            http: reqwest::Client::new(),
            sandbox: None,
            sandbox_wiring: None,
        };
        this.wait_ready().await?;
        Ok(this)
    }

    /// Starts an AWS sandbox and the stack pointed at it: every AWS call of the
    /// services goes to the sandbox, and their ambient credentials are keys of the
    /// sandbox account [`SANDBOX_HOST_ACCOUNT_ID`].
    pub async fn start_with_sandbox() -> anyhow::Result<Self> {
        Self::start_with_sandbox_and(|_| {}).await
    }

    /// As [`TestStack::start_with_sandbox`], after `adjust` has changed the test
    /// configuration.
    pub async fn start_with_sandbox_and(
        adjust: impl FnOnce(&mut StackConfig),
    ) -> anyhow::Result<Self> {
        let access_key_id = format!(
            "AKIA{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase()
        );
        let secret_access_key =
            uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
        let host = AccountSpec::new(SANDBOX_HOST_ACCOUNT_ID)
            .with_name("cudly-host")
            .with_access_key(access_key_id.clone(), secret_access_key.clone());
        let sandbox = Sandbox::start(SandboxConfig::default().with_account(host)).await?;
        let endpoint = sandbox.endpoint();
        let wiring: Arc<Wiring> = Arc::new(move |config: &mut StackConfig| {
            config.set_aws(config.executor.aws.clone().with_endpoint(endpoint.clone()));
            config.accounts.aws_ambient_credentials = Some(SessionCredentials {
                access_key_id: access_key_id.clone(),
                secret_access_key: SecretString::from(secret_access_key.clone()),
                session_token: None,
                expiration: None,
            });
        });
        let mut this = Self::start_with(|config| {
            wiring(config);
            adjust(config);
        })
        .await?;
        this.sandbox = Some(sandbox);
        this.sandbox_wiring = Some(wiring);
        Ok(this)
    }

    /// Returns the AWS sandbox of a stack started with
    /// [`TestStack::start_with_sandbox`].
    pub fn sandbox(&self) -> &SandboxHandle {
        self.sandbox
            .as_ref()
            .expect("the stack was started with start_with_sandbox")
    }

    /// Adds an account to the sandbox and registers it through REST with its access
    /// keys; returns its id. Creations price their items through a target account, so a
    /// test that creates executions needs one the sandbox knows.
    pub async fn add_sandbox_account(&self, name: &str) -> anyhow::Result<String> {
        let digits = uuid::Uuid::new_v4().as_u128().to_string();
        let external_id = format!("4{}", &digits[..11]);
        let access_key_id = format!("AKIAT{external_id}");
        let secret = format!("sandboxSecret{external_id}abcdefghijklmnop");
        self.sandbox()
            .add_account(
                AccountSpec::new(&external_id)
                    .with_name(name)
                    .with_access_key(&access_key_id, &secret),
            )
            .await;
        let (status, account) = self
            .admin_json(
                Method::POST,
                "/api/accounts",
                Some(serde_json::json!({
                    "name": name,
                    "provider": "aws",
                    "external_id": external_id,
                    "aws_auth_mode": "access_keys",
                    "credentials": {
                        "type": "aws_access_keys",
                        "access_key_id": access_key_id,
                        "secret_access_key": secret,
                    },
                })),
            )
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "registering {name}: {status} {account}"
        );
        account["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no id in {account}"))
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

    /// Returns the stack's secrets (internal tokens), for tests that start an extra
    /// service instance next to the stack.
    pub fn secrets(&self) -> &cudly::Secrets {
        &self.secrets
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

    /// Stops every service gracefully but keeps the database and the sandbox, for tests
    /// that look at what a shutdown left behind.
    pub async fn stop_services(&mut self) -> anyhow::Result<()> {
        match self.stack.take() {
            Some(stack) => stack.stop().await,
            None => Ok(()),
        }
    }

    /// Stops every service, then starts them again on the same database with the same
    /// secrets (and sandbox) after `adjust`: a restart of the whole system.
    pub async fn restart_services(
        &mut self,
        adjust: impl FnOnce(&mut StackConfig),
    ) -> anyhow::Result<()> {
        self.stop_services().await?;
        let mut config =
            StackConfig::for_tests_with(self.db.secret_url(), redis_url(), self.secrets.clone());
        if let Some(wiring) = &self.sandbox_wiring {
            wiring(&mut config);
        }
        adjust(&mut config);
        let stack = Stack::start(config).await?;
        self.base_url = stack.gateway_url();
        self.stack = Some(stack);
        self.wait_ready().await
    }

    /// Stops every service gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let stopped = match self.stack.take() {
            Some(stack) => stack.stop().await,
            None => Ok(()),
        };
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.shutdown().await;
        }
        stopped
    }
}
