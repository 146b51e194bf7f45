//! Starts the five services in one process, wired to each other over loopback gRPC.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::secrets::Secrets;

/// What the stack needs to start.
#[derive(Clone)]
pub struct StackConfig {
    /// Database of every service (each keeps its own schema in it).
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Gateway listen address (`CUDLY_GATEWAY_ADDR`, default 127.0.0.1:8080).
    pub gateway_addr: SocketAddr,
    /// gRPC listen address of each back-end service (default 127.0.0.1:0).
    pub accounts_addr: SocketAddr,
    pub planner_addr: SocketAddr,
    pub executor_addr: SocketAddr,
    pub sweeper_addr: SocketAddr,
    pub secrets: Secrets,
    /// AWS region, endpoint override and timeouts of the services that call AWS.
    pub aws: cudly_accounts::config::AwsSettings,
    /// The accounts service's own credentials for AssumeRole (role_arn mode); `None`:
    /// the SDK's default provider chain. Tests set keys of the AWS sandbox.
    pub aws_ambient_credentials: Option<cudly_accounts::config::SessionCredentials>,
    /// The previous credential key during a rotation (`CUDLY_CREDENTIAL_OLD_KEY` or
    /// `CUDLY_CREDENTIAL_OLD_KEY_FILE`).
    pub credential_old_key: Option<cudly_accounts::config::CredentialKey>,
    /// How often each service re-checks its dependencies.
    pub health_interval: Duration,
    /// Creates the database when it is missing (dev mode and tests).
    pub create_database: bool,
    /// Sweeper intervals, lock TTL, stranded thresholds and re-drive budget.
    pub sweeper: cudly_sweeper::config::Tuning,
    /// Executor fan-out bound, approval lifetime, lease timing, polling.
    pub executor: cudly_executor::config::RunnerSettings,
}

impl StackConfig {
    /// Returns a configuration for a test: everything on 127.0.0.1 port 0, fresh
    /// secrets, fast health checks.
    pub fn for_tests(database_url: SecretString, redis_url: SecretString) -> Self {
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("loopback address parses");
        Self {
            database_url,
            redis_url,
            gateway_addr: any_port,
            accounts_addr: any_port,
            planner_addr: any_port,
            executor_addr: any_port,
            sweeper_addr: any_port,
            secrets: Secrets::generate(),
            aws: cudly_accounts::config::AwsSettings::default(),
            aws_ambient_credentials: None,
            credential_old_key: None,
            health_interval: Duration::from_millis(250),
            create_database: false,
            // Tests run sweeps on demand (RunTask), never on a timer behind their back.
            sweeper: cudly_sweeper::config::Tuning {
                run_loops: false,
                // Tests share one Redis: each stack locks under its own prefix.
                lock_key_prefix: format!("cudly-test:{}:lock:task:", random_suffix()),
                ..Default::default()
            },
            executor: cudly_executor::config::RunnerSettings {
                poll_interval: Duration::from_millis(200),
                settle_margin: Duration::from_millis(200),
                ..Default::default()
            },
        }
    }

    /// Reads the configuration of the `cudly` binary; secrets come from
    /// [`Secrets::load_or_create_dev`] in dev mode, else from the environment.
    pub fn from_env(secrets: Secrets) -> anyhow::Result<Self> {
        use cudly_common::config as env;
        Ok(Self {
            database_url: env::secret_var("DATABASE_URL")
                .unwrap_or_else(|| SecretString::from(env::DEFAULT_DATABASE_URL)),
            redis_url: env::redis_url(),
            gateway_addr: env::addr_var("CUDLY_GATEWAY_ADDR", "127.0.0.1:8080")?,
            accounts_addr: env::addr_var("CUDLY_ACCOUNTS_ADDR", "127.0.0.1:0")?,
            planner_addr: env::addr_var("CUDLY_PLANNER_ADDR", "127.0.0.1:0")?,
            executor_addr: env::addr_var("CUDLY_EXECUTOR_ADDR", "127.0.0.1:0")?,
            sweeper_addr: env::addr_var("CUDLY_SWEEPER_ADDR", "127.0.0.1:0")?,
            secrets,
            aws: cudly_accounts::config::aws_settings_from_env()?,
            aws_ambient_credentials: None,
            credential_old_key: cudly_accounts::crypto::old_key_from_env()?,
            health_interval: env::duration_var("CUDLY_HEALTH_INTERVAL", Duration::from_secs(2))?,
            create_database: env::is_dev_mode(),
            sweeper: cudly_sweeper::config::Tuning::from_env()?,
            executor: cudly_executor::config::RunnerSettings::from_env()?,
        })
    }

    fn auth(&self, callers: &[Caller]) -> InternalAuth {
        InternalAuth::new(
            callers
                .iter()
                .map(|caller| (*caller, self.secrets.internal_token(*caller)))
                .collect(),
        )
    }
}

/// A running stack. Dropping it does not stop it; call [`Stack::stop`].
pub struct Stack {
    gateway_addr: SocketAddr,
    accounts_addr: SocketAddr,
    planner_addr: SocketAddr,
    executor_addr: SocketAddr,
    sweeper_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

async fn bind(addr: SocketAddr, service: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {service} address {addr}"))
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Stack {
    /// Binds every listener first (so each service knows the others' addresses), then
    /// starts the five services.
    pub async fn start(config: StackConfig) -> anyhow::Result<Self> {
        if config.create_database {
            cudly_common::db::ensure_database(&config.database_url)
                .await
                .context("creating the database")?;
        }
        let accounts_listener = bind(config.accounts_addr, "accounts").await?;
        let planner_listener = bind(config.planner_addr, "planner").await?;
        let executor_listener = bind(config.executor_addr, "executor").await?;
        let sweeper_listener = bind(config.sweeper_addr, "sweeper").await?;
        let gateway_listener = bind(config.gateway_addr, "gateway").await?;
        let accounts_addr = accounts_listener.local_addr()?;
        let planner_addr = planner_listener.local_addr()?;
        let executor_addr = executor_listener.local_addr()?;
        let sweeper_addr = sweeper_listener.local_addr()?;
        let gateway_addr = gateway_listener.local_addr()?;

        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let accounts = cudly_accounts::app::App::from_listener(
            cudly_accounts::config::Config {
                addr: accounts_addr,
                database_url: config.database_url.clone(),
                auth: config.auth(cudly_accounts::config::ACCEPTED_CALLERS),
                health_interval: config.health_interval,
                credential_keys: cudly_accounts::config::CredentialKeys::new(
                    cudly_accounts::config::CredentialKey::from_hex(
                        config.secrets.credential_key_hex(),
                    )
                    .map_err(|problem| anyhow::anyhow!("the credential key {problem}"))?,
                    config.credential_old_key.clone(),
                ),
                aws: config.aws.clone(),
                aws_ambient_credentials: config.aws_ambient_credentials.clone(),
            },
            accounts_listener,
        )?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("accounts", accounts.run_until_stopped(stop).await) });

        let planner = cudly_planner::app::App::from_listener(
            cudly_planner::config::Config {
                addr: planner_addr,
                database_url: config.database_url.clone(),
                auth: config.auth(cudly_planner::config::ACCEPTED_CALLERS),
                health_interval: config.health_interval,
                internal_token: config.secrets.internal_token(Caller::Planner),
                accounts_url: url(accounts_addr),
                executor_url: url(executor_addr),
                call_timeout: cudly_planner::config::DEFAULT_CALL_TIMEOUT,
            },
            planner_listener,
        )?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("planner", planner.run_until_stopped(stop).await) });

        let executor = cudly_executor::app::App::from_listener(
            cudly_executor::config::Config {
                addr: executor_addr,
                database_url: config.database_url.clone(),
                auth: config.auth(cudly_executor::config::ACCEPTED_CALLERS),
                health_interval: config.health_interval,
                accounts_url: url(accounts_addr),
                planner_url: url(planner_addr),
                internal_token: config.secrets.internal_token(Caller::Executor),
                aws: config.aws.clone(),
                runner: config.executor.clone(),
            },
            executor_listener,
        )?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("executor", executor.run_until_stopped(stop).await) });

        let sweeper = cudly_sweeper::app::App::from_listener(
            cudly_sweeper::config::Config {
                addr: sweeper_addr,
                health_interval: config.health_interval,
                tuning: config.sweeper.clone(),
                ..cudly_sweeper::config::Config::new(
                    config.database_url.clone(),
                    config.redis_url.clone(),
                    config.auth(cudly_sweeper::config::ACCEPTED_CALLERS),
                    config.secrets.internal_token(Caller::Sweeper),
                    url(executor_addr),
                    url(planner_addr),
                )
            },
            sweeper_listener,
        )?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("sweeper", sweeper.run_until_stopped(stop).await) });

        let mut gateway_config = cudly_gateway::Config::new(
            config.database_url.clone(),
            config.secrets.internal_token(Caller::Gateway),
        );
        gateway_config.addr = gateway_addr;
        gateway_config.bootstrap_admin_key = Some(config.secrets.bootstrap_admin_key.clone());
        gateway_config.backends = cudly_gateway::BackendUrls {
            accounts: url(accounts_addr),
            planner: url(planner_addr),
            executor: url(executor_addr),
            sweeper: url(sweeper_addr),
        };
        let gateway = cudly_gateway::App::from_listener(gateway_config, gateway_listener).await?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("gateway", gateway.run_until_stopped(stop).await) });

        Ok(Self {
            gateway_addr,
            accounts_addr,
            planner_addr,
            executor_addr,
            sweeper_addr,
            cancel,
            tasks,
        })
    }

    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// Returns `http://<gateway addr>`.
    pub fn gateway_url(&self) -> String {
        url(self.gateway_addr)
    }

    pub fn accounts_addr(&self) -> SocketAddr {
        self.accounts_addr
    }

    pub fn planner_addr(&self) -> SocketAddr {
        self.planner_addr
    }

    pub fn executor_addr(&self) -> SocketAddr {
        self.executor_addr
    }

    pub fn sweeper_addr(&self) -> SocketAddr {
        self.sweeper_addr
    }

    /// Completes when any service stops on its own (an error), naming it.
    pub async fn wait_for_failure(&mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(Ok((service, Ok(())))) => anyhow::bail!("the {service} service stopped"),
            Some(Ok((service, Err(error)))) => {
                Err(error.context(format!("the {service} service failed")))
            }
            Some(Err(join_error)) => Err(anyhow::anyhow!("a service task panicked: {join_error}")),
            None => Ok(()),
        }
    }

    /// Stops every service gracefully and waits for them.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((service, Err(error))) => {
                    tracing::error!(service, error = %format!("{error:#}"), "service stopped with an error");
                    first_error.get_or_insert(error);
                }
                Err(join_error) => {
                    first_error
                        .get_or_insert(anyhow::anyhow!("a service task panicked: {join_error}"));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
