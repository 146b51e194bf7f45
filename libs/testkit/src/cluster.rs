//! The system as separate service processes, as a Helm install runs it: the
//! `cudly-accounts`, `cudly-planner`, `cudly-executor`, `cudly-sweeper` and
//! `cudly-gateway` binaries, any number of executor and sweeper replicas, one database
//! and one Redis. For tests of replicas and of one service stopping or dying while the
//! others run on.
//!
//! The binaries are the ones cargo built next to the test (`cargo nextest run
//! --workspace` builds every package's binaries; `cargo build --workspace --bins` does
//! it alone). Every process logs to its own file, kept until the cluster is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cudly_common::grpc::{Caller, TokenDigest};
use secrecy::SecretString;

use crate::wait::free_port;

/// How long a process may take to report it serves.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub executors: usize,
    pub sweepers: usize,
    /// Database URL of every service (each uses its own schema).
    pub database_url: String,
    pub redis_url: String,
    /// Extra variables for every process (timings, AWS endpoint, log level).
    pub env: Vec<(String, String)>,
}

/// One service process.
pub struct ServiceProcess {
    /// `accounts`, `planner`, `executor`, `sweeper` or `gateway`.
    pub service: &'static str,
    /// `executor-0`, `sweeper-1`, ...
    pub name: String,
    /// Its gRPC (or, for the gateway, HTTP) address.
    pub addr: SocketAddr,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
}

/// The running processes and the secrets they share.
pub struct Cluster {
    bin_dir: PathBuf,
    logs: tempfile::TempDir,
    processes: Vec<ServiceProcess>,
    admin_key: String,
    tokens: Vec<(Caller, String)>,
    http: reqwest::Client,
}

fn random_hex(chars: usize) -> String {
    let mut text = String::new();
    while text.len() < chars {
        text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    text.truncate(chars);
    text
}

/// Returns the directory of the binaries cargo built with this test.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("CUDLY_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().context("locating the test binary")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the test binary has no target directory")
}

impl Cluster {
    /// Starts accounts, planner, the executors, the sweepers and the gateway, in that
    /// order, each once it can reach the ones before. The planner and the gateway call
    /// `executor-0`; sweeper i calls executor `(i + 1) % executors`, so that the
    /// sweepers' re-drives land on other replicas than the callers' creations.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        anyhow::ensure!(spec.executors >= 1, "at least one executor");
        let bin_dir = bin_dir()?;
        for binary in [
            "cudly-accounts",
            "cudly-planner",
            "cudly-executor",
            "cudly-sweeper",
            "cudly-gateway",
        ] {
            if !bin_dir.join(binary).exists() {
                bail!(
                    "{} is missing: build the service binaries first (cargo build --workspace --bins)",
                    bin_dir.join(binary).display()
                );
            }
        }
        let tokens: Vec<(Caller, String)> = Caller::ALL
            .into_iter()
            .map(|caller| (caller, random_hex(48)))
            .collect();
        let admin_key = format!("cluster-admin-{}", random_hex(32));
        let addr = || -> SocketAddr {
            format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("a loopback address")
        };
        let accounts = addr();
        let planner = addr();
        let executors: Vec<SocketAddr> = (0..spec.executors).map(|_| addr()).collect();
        let sweepers: Vec<SocketAddr> = (0..spec.sweepers).map(|_| addr()).collect();
        let gateway = addr();
        let url = |addr: SocketAddr| format!("http://{addr}");

        let mut common: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), spec.database_url.clone()),
            ("REDIS_URL".into(), spec.redis_url.clone()),
            ("CUDLY_ENV".into(), "production".into()),
            ("CUDLY_CREDENTIAL_KEY".into(), random_hex(64)),
            ("CUDLY_BOOTSTRAP_ADMIN_KEY".into(), admin_key.clone()),
            (
                "CUDLY_LOCK_KEY_PREFIX".into(),
                format!("cluster:{}:", random_hex(12)),
            ),
            ("CUDLY_ACCOUNTS_URL".into(), url(accounts)),
            ("CUDLY_PLANNER_URL".into(), url(planner)),
            ("CUDLY_EXECUTOR_URL".into(), url(executors[0])),
        ];
        if let Some(sweeper) = sweepers.first() {
            common.push(("CUDLY_SWEEPER_URL".into(), url(*sweeper)));
        }
        // Every service knows the digests of every caller's token; each holds only its
        // own token (added per process below), as a deployment gives them.
        for (caller, token) in &tokens {
            common.push((
                caller.digest_var(),
                TokenDigest::of(token.as_bytes()).to_hex(),
            ));
        }
        common.extend(spec.env.iter().cloned());

        let logs = tempfile::tempdir().context("a directory for the logs")?;
        let mut processes = Vec::new();
        let mut add = |service: &'static str,
                       name: String,
                       addr: SocketAddr,
                       extra: Vec<(String, String)>| {
            let upper = service.to_ascii_uppercase();
            let mut env = common.clone();
            if let Some((caller, token)) =
                tokens.iter().find(|(caller, _)| caller.name() == service)
            {
                env.push((caller.token_var(), token.clone()));
            }
            env.push((format!("CUDLY_{upper}_ADDR"), addr.to_string()));
            env.push((format!("CUDLY_{upper}_METRICS_ADDR"), "127.0.0.1:0".into()));
            env.extend(extra);
            let log = logs.path().join(format!("{name}.log"));
            processes.push(ServiceProcess {
                service,
                name,
                addr,
                env,
                log,
                child: None,
            });
        };
        add("accounts", "accounts".into(), accounts, Vec::new());
        add("planner", "planner".into(), planner, Vec::new());
        for (index, executor) in executors.iter().enumerate() {
            add(
                "executor",
                format!("executor-{index}"),
                *executor,
                Vec::new(),
            );
        }
        for (index, sweeper) in sweepers.iter().enumerate() {
            let executor = executors[(index + 1) % executors.len()];
            add(
                "sweeper",
                format!("sweeper-{index}"),
                *sweeper,
                vec![("CUDLY_EXECUTOR_URL".into(), url(executor))],
            );
        }
        add("gateway", "gateway".into(), gateway, Vec::new());

        let mut cluster = Self {
            bin_dir,
            logs,
            processes,
            admin_key,
            tokens,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        let names: Vec<String> = cluster.processes.iter().map(|p| p.name.clone()).collect();
        for name in names {
            cluster.start_process(&name).await?;
        }
        Ok(cluster)
    }

    fn process_mut(&mut self, name: &str) -> anyhow::Result<&mut ServiceProcess> {
        self.processes
            .iter_mut()
            .find(|process| process.name == name)
            .with_context(|| format!("no process {name}"))
    }

    /// Returns the process `name`.
    pub fn process(&self, name: &str) -> &ServiceProcess {
        self.processes
            .iter()
            .find(|process| process.name == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Starts (or starts again) the process `name` and waits until it serves.
    pub async fn start_process(&mut self, name: &str) -> anyhow::Result<()> {
        let bin_dir = self.bin_dir.clone();
        let http = self.http.clone();
        let process = self.process_mut(name)?;
        anyhow::ensure!(process.child.is_none(), "{name} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&process.log)?;
        let child =
            tokio::process::Command::new(bin_dir.join(format!("cudly-{}", process.service)))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(process.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {name}"))?;
        process.child = Some(child);
        process.wait_ready(&http).await
    }

    /// SIGKILLs the process `name`: no shutdown hook runs, its leases stay behind.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let process = self.process_mut(name)?;
        if let Some(mut child) = process.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Returns the gateway's base URL.
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.process("gateway").addr)
    }

    /// Returns the bootstrap admin key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// Sets a rolling-window spend limit too high to bind, through the gateway: the
    /// cluster runs in production mode, where auto-approved plan runs need one.
    pub async fn allow_auto_purchase(&self) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/api/guardrails", self.gateway_url()))
            .bearer_auth(&self.admin_key)
            .json(&serde_json::json!({"max_window_commitment": 1e15}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "setting the guardrails: {}",
            response.status()
        );
        Ok(())
    }

    /// Returns the internal token of `caller`.
    pub fn internal_token(&self, caller: Caller) -> SecretString {
        let token = self
            .tokens
            .iter()
            .find(|(known, _)| *known == caller)
            .map(|(_, token)| token.clone())
            .unwrap_or_default();
        SecretString::from(token)
    }

    /// Returns the names of every process of `service`.
    pub fn names_of(&self, service: &str) -> Vec<String> {
        self.processes
            .iter()
            .filter(|process| process.service == service)
            .map(|process| process.name.clone())
            .collect()
    }

    /// Returns the whole log of the process `name` (every start appends to it).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(&self.process(name).log).unwrap_or_default()
    }

    /// Returns the last `lines` lines of every process's log, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = format!("logs in {}\n", self.logs.path().display());
        for process in &self.processes {
            let log = self.log(&process.name);
            let all: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {} ---\n", process.name));
            text.push_str(&all[all.len().saturating_sub(lines)..].join("\n"));
            text.push('\n');
        }
        text
    }

    /// Stops every process (SIGKILL).
    pub async fn stop(&mut self) {
        let names: Vec<String> = self.processes.iter().map(|p| p.name.clone()).collect();
        for name in names {
            let _ = self.kill(&name).await;
        }
    }
}

impl ServiceProcess {
    /// Waits until the process reports it serves: the gateway's `/health/readyz`, the
    /// others' `grpc.health.v1` check.
    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if self.serves(http).await {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "{} exited at start ({status}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} not ready in {READY_TIMEOUT:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn serves(&self, http: &reqwest::Client) -> bool {
        if self.service == "gateway" {
            return http
                .get(format!("http://{}/health/readyz", self.addr))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
        }
        cudly_common::server::is_serving(&format!("http://{}", self.addr)).await
    }
}
