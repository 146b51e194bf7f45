//! Starts the five services in one process, wired to each other over loopback gRPC.
//!
//! The configuration of each service comes from that service's own reader
//! ([`StackConfig::read`]); the stack only binds the listeners and tells each service
//! where its peers are.

use std::net::SocketAddr;

use anyhow::Context;
use cudly_common::config::{ConfigResult, Env, Layout};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::secrets::Secrets;

/// The configuration of every service of the stack.
#[derive(Clone)]
pub struct StackConfig {
    pub accounts: cudly_accounts::config::Config,
    pub planner: cudly_planner::config::Config,
    pub executor: cudly_executor::config::Config,
    pub sweeper: cudly_sweeper::config::Config,
    pub gateway: cudly_gateway::Config,
    /// The secrets the services were configured with (tests start extra instances
    /// with them).
    pub secrets: Secrets,
    /// Creates the database when it is missing (dev mode and tests).
    pub create_database: bool,
}

impl StackConfig {
    /// Reads every service's configuration with that service's own reader, inside the
    /// all-in-one layout: loopback listeners on any free port (but the gateway's
    /// `127.0.0.1:8080`), peers wired by [`Stack::start`].
    pub fn read(env: &Env, secrets: Secrets) -> ConfigResult<Self> {
        let layout = Layout::AllInOne;
        Ok(Self {
            accounts: cudly_accounts::config::Config::read(env, &secrets, layout)?,
            planner: cudly_planner::config::Config::read(env, &secrets, layout)?,
            executor: cudly_executor::config::Config::read(env, &secrets, layout)?,
            sweeper: cudly_sweeper::config::Config::read(env, &secrets, layout)?,
            gateway: cudly_gateway::Config::read(env, &secrets, layout)?,
            create_database: env.is_dev_mode(),
            secrets,
        })
    }

    /// Returns a configuration for a test: `database_url` and `redis_url`, everything
    /// else the defaults (no variable of the process environment is read), on
    /// 127.0.0.1 port 0, fresh secrets, fast health checks, sweeps on demand only.
    pub fn for_tests(database_url: SecretString, redis_url: SecretString) -> Self {
        Self::for_tests_with(database_url, redis_url, Secrets::generate())
    }

    /// As [`StackConfig::for_tests`] with the given secrets (a restart keeps them).
    pub fn for_tests_with(
        database_url: SecretString,
        redis_url: SecretString,
        secrets: Secrets,
    ) -> Self {
        let env = Env::from_pairs([
            ("DATABASE_URL", database_url.expose_secret()),
            ("REDIS_URL", redis_url.expose_secret()),
            ("CUDLY_GATEWAY_ADDR", "127.0.0.1:0"),
            ("CUDLY_GATEWAY_METRICS_ADDR", "127.0.0.1:0"),
            ("CUDLY_HEALTH_INTERVAL", "250ms"),
            ("CUDLY_EXECUTOR_POLL_INTERVAL", "200ms"),
            ("CUDLY_PURCHASE_SETTLE_MARGIN", "200ms"),
            ("CUDLY_ENV", "production"),
            // Tests receive notifications on loopback, quickly.
            ("CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
            ("CUDLY_NOTIFY_POLL_INTERVAL", "100ms"),
        ]);
        let mut config = Self::read(&env, secrets).expect("the test configuration is valid");
        // Tests run sweeps on demand (RunTask), never on a timer behind their back, and
        // share one Redis: each stack locks under its own prefix.
        config.sweeper.tuning.run_loops = false;
        // Production mode, but the guardrails of dev mode: most tests create and approve
        // with one key and auto-purchase without limits; the guardrail tests set them.
        config
            .executor
            .runner
            .guardrail_defaults
            .require_different_approver = false;
        config.executor.runner.auto_purchase_needs_window_limit = false;
        config.sweeper.tuning.lock_key_prefix =
            format!("cudly-test:{}:lock:task:", random_suffix());
        config
    }

    /// Sets how the services that call AWS (accounts, executor) reach it.
    pub fn set_aws(&mut self, settings: cudly_accounts::config::AwsSettings) {
        self.accounts.aws = settings.clone();
        self.executor.aws = settings;
    }
}

/// A running stack. Dropping it does not stop it; call [`Stack::stop`].
pub struct Stack {
    gateway_addr: SocketAddr,
    metrics_addr: SocketAddr,
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

/// Returns the gateway's address as people on this host reach it (loopback for a
/// gateway on every interface), unless `CUDLY_PUBLIC_URL` says otherwise.
fn public_url(gateway: SocketAddr) -> anyhow::Result<cudly_notify::Url> {
    let mut reachable = gateway;
    if reachable.ip().is_unspecified() {
        reachable.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    cudly_notify::Url::parse(&format!("http://{reachable}"))
        .context("the gateway's address as a URL")
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Stack {
    /// Binds every listener first (so each service knows the others' addresses), then
    /// starts the five services.
    pub async fn start(config: StackConfig) -> anyhow::Result<Self> {
        let StackConfig {
            mut accounts,
            mut planner,
            mut executor,
            mut sweeper,
            mut gateway,
            create_database,
            secrets: _,
        } = config;
        if create_database {
            cudly_common::db::ensure_database(&accounts.database_url)
                .await
                .context("creating the database")?;
        }
        let accounts_listener = bind(accounts.addr, "accounts").await?;
        let planner_listener = bind(planner.addr, "planner").await?;
        let executor_listener = bind(executor.addr, "executor").await?;
        let sweeper_listener = bind(sweeper.addr, "sweeper").await?;
        let gateway_listener = bind(gateway.addr, "gateway").await?;
        accounts.addr = accounts_listener.local_addr()?;
        planner.addr = planner_listener.local_addr()?;
        executor.addr = executor_listener.local_addr()?;
        sweeper.addr = sweeper_listener.local_addr()?;
        gateway.addr = gateway_listener.local_addr()?;

        if executor.public_url.is_none() {
            // Notifications link to the approval page on this gateway.
            executor.public_url = Some(public_url(gateway.addr)?);
        }
        planner.accounts_url = url(accounts.addr);
        planner.executor_url = url(executor.addr);
        executor.accounts_url = url(accounts.addr);
        executor.planner_url = url(planner.addr);
        sweeper.executor_url = url(executor.addr);
        sweeper.planner_url = url(planner.addr);
        gateway.backends = cudly_gateway::BackendUrls {
            accounts: url(accounts.addr),
            planner: url(planner.addr),
            executor: url(executor.addr),
            sweeper: url(sweeper.addr),
        };
        let addrs = (
            gateway.addr,
            accounts.addr,
            planner.addr,
            executor.addr,
            sweeper.addr,
        );

        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let accounts = cudly_accounts::app::App::from_listener(accounts, accounts_listener)?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("accounts", accounts.run_until_stopped(stop).await) });
        let planner = cudly_planner::app::App::from_listener(planner, planner_listener)?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("planner", planner.run_until_stopped(stop).await) });
        let executor = cudly_executor::app::App::from_listener(executor, executor_listener)?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("executor", executor.run_until_stopped(stop).await) });
        let sweeper = cudly_sweeper::app::App::from_listener(sweeper, sweeper_listener)?;
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("sweeper", sweeper.run_until_stopped(stop).await) });
        let gateway = cudly_gateway::App::from_listener(gateway, gateway_listener).await?;
        let metrics_addr = gateway.metrics_addr();
        let stop = cancel.clone().cancelled_owned();
        tasks.spawn(async move { ("gateway", gateway.run_until_stopped(stop).await) });

        let (gateway_addr, accounts_addr, planner_addr, executor_addr, sweeper_addr) = addrs;
        Ok(Self {
            gateway_addr,
            metrics_addr,
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

    /// Returns `http://<addr>/metrics`: the figures of every service of the process.
    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", url(self.metrics_addr))
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
