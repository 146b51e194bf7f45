//! Helpers shared by the `cudly` benchmarks: the system run as processes (the all-in-one
//! `cudly` binary, or the five service binaries), seeding through the REST API, a
//! closed-loop load generator with latency percentiles, and resident memory read from
//! `/proc/<pid>/status`. Knobs and result lines are `cudly_testkit::bench`'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use cudly_common::grpc::Caller;
use cudly_testkit::{TestDb, bench, free_port, rest};
use hdrhistogram::Histogram;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

/// The bootstrap admin key every benchmark system is started with.
pub const ADMIN_KEY: &str = "cudly-bench-admin-key-0123456789abcdef";

/// The service binaries, in start order (the gateway last, once its backends listen).
pub const SERVICE_BINARIES: [(&str, &str); 5] = [
    ("accounts", "cudly-accounts"),
    ("planner", "cudly-planner"),
    ("executor", "cudly-executor"),
    ("sweeper", "cudly-sweeper"),
    ("gateway", "cudly-gateway"),
];

/// Prints the machine line every benchmark header carries: the load generator shares
/// the cores with the system it measures.
pub fn print_machine() {
    bench::print_machine("the load generator (this process), the system under test");
}

/// How the system runs: one `cudly` process, or one process per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    AllInOne,
    Separate,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::AllInOne => "all-in-one cudly process",
            Layout::Separate => "one process per service",
        }
    }
}

/// Returns where the binaries are: `BENCH_BIN_DIR`, else next to the `cudly` binary
/// cargo built for this benchmark (`target/<profile>/`).
pub fn binary_dir() -> PathBuf {
    match std::env::var_os("BENCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_BIN_EXE_cudly"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    }
}

/// Returns the `cudly` binary: the one in `BENCH_BIN_DIR` when set, else the one cargo
/// built for this benchmark.
pub fn cudly_binary() -> PathBuf {
    match std::env::var_os("BENCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join("cudly"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_cudly")),
    }
}

/// Returns the service binaries that are not built (cargo builds only `cudly` for
/// this package's benchmarks).
pub fn missing_service_binaries() -> Vec<PathBuf> {
    let dir = binary_dir();
    SERVICE_BINARIES
        .iter()
        .map(|(_, binary)| dir.join(binary))
        .filter(|path| !path.is_file())
        .collect()
}

/// One running process of the system.
pub struct Process {
    pub name: &'static str,
    child: tokio::process::Child,
    log: PathBuf,
}

/// The system under test, as processes on a benchmark database.
pub struct System {
    processes: Vec<Process>,
    gateway_url: String,
    http: reqwest::Client,
    /// Logs and the dev-mode secrets; removed when the system is dropped.
    _dir: tempfile::TempDir,
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buffer);
    hex::encode(buffer)
}

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Returns the variables every layout needs.
fn common_env(db: &TestDb, gateway_addr: &str, log_level: &str) -> Vec<(String, String)> {
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis_url),
        ("CUDLY_GATEWAY_ADDR", gateway_addr.to_owned()),
        ("CUDLY_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY.to_owned()),
        (
            "CUDLY_LOCK_KEY_PREFIX",
            format!("cudly-bench:{}:lock:task:", Uuid::new_v4().simple()),
        ),
        ("RUST_LOG", log_level.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Returns what the five service binaries need beyond [`common_env`]: secrets, each
/// service's address and URL, and a loopback metrics port each. Every process gets all
/// of them and reads its own.
fn separate_env() -> Vec<(String, String)> {
    let mut env = vec![("CUDLY_CREDENTIAL_KEY".to_owned(), random_hex(32))];
    for caller in Caller::ALL {
        env.push((caller.token_var(), random_hex(32)));
    }
    for (service, _) in SERVICE_BINARIES {
        if service == "gateway" {
            continue;
        }
        let upper = service.to_ascii_uppercase();
        let addr = loopback();
        env.push((format!("CUDLY_{upper}_URL"), format!("http://{addr}")));
        env.push((format!("CUDLY_{upper}_ADDR"), addr));
        env.push((format!("CUDLY_{upper}_METRICS_ADDR"), loopback()));
    }
    env
}

/// Returns the last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.lines().rev().take(15).collect();
    lines.reverse();
    lines.join("\n")
}

async fn spawn(
    name: &'static str,
    binary: &Path,
    env: &[(String, String)],
    dir: &Path,
) -> anyhow::Result<Process> {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let child = tokio::process::Command::new(binary)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            env.iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Process { name, child, log })
}

/// Stops a process with SIGTERM (the services shut down gracefully), SIGKILL after 10 s.
async fn terminate(process: &mut Process) {
    if let Some(pid) = process.child.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    let waited = tokio::time::timeout(Duration::from_secs(10), process.child.wait()).await;
    if waited.is_err() {
        let _ = process.child.start_kill();
        let _ = process.child.wait().await;
    }
}

impl System {
    /// Starts the system in `layout` on `db` and waits until the gateway is ready.
    pub async fn start(layout: Layout, db: &TestDb, log_level: &str) -> anyhow::Result<Self> {
        Self::start_with(layout, db, log_level, &[]).await
    }

    /// As [`System::start`], with `extra` variables for every process.
    pub async fn start_with(
        layout: Layout,
        db: &TestDb,
        log_level: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cudly-bench-").tempdir()?;
        let gateway_addr = loopback();
        let mut env = common_env(db, &gateway_addr, log_level);
        env.extend(
            extra
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        let mut processes = Vec::new();
        match layout {
            Layout::AllInOne => {
                let dev_dir = dir.path().join("dev").display().to_string();
                env.push(("CUDLY_DEV_DIR".to_owned(), dev_dir));
                processes.push(spawn("cudly", &cudly_binary(), &env, dir.path()).await?);
            }
            Layout::Separate => {
                env.extend(separate_env());
                let bin_dir = binary_dir();
                for (name, binary) in SERVICE_BINARIES {
                    processes.push(spawn(name, &bin_dir.join(binary), &env, dir.path()).await?);
                }
            }
        }
        let mut system = Self {
            processes,
            gateway_url: format!("http://{gateway_addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            _dir: dir,
        };
        if let Err(error) = system.wait_ready().await {
            system.stop().await;
            return Err(error);
        }
        Ok(system)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let ready = self.url("/health/readyz");
        let started = Instant::now();
        loop {
            if let Ok(response) = self.http.get(&ready).send().await
                && response.status() == StatusCode::OK
            {
                return Ok(());
            }
            for process in &mut self.processes {
                if let Ok(Some(status)) = process.child.try_wait() {
                    anyhow::bail!(
                        "{} exited at start ({status}); its log ends with:\n{}",
                        process.name,
                        log_tail(&process.log)
                    );
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                let tails: Vec<String> = self
                    .processes
                    .iter()
                    .map(|process| format!("{}:\n{}", process.name, log_tail(&process.log)))
                    .collect();
                anyhow::bail!(
                    "the gateway was not ready in 60 s; the logs end with:\n{}",
                    tails.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Returns the gateway URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }

    /// Returns the name and pid of every process.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes
            .iter()
            .filter_map(|process| process.child.id().map(|pid| (process.name, pid)))
            .collect()
    }

    /// Sends `body` as JSON with the admin key; returns status and JSON reply.
    pub async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        rest::admin_json(&self.http, &self.url(path), ADMIN_KEY, method, &body).await
    }

    /// Stops every process, the gateway first.
    pub async fn stop(mut self) {
        for process in self.processes.iter_mut().rev() {
            terminate(process).await;
        }
    }
}

/// The rows the load reads: one account and one execution (a root with one child and
/// one item), both created through the REST API.
pub struct Seeded {
    pub account_id: Uuid,
    pub execution_id: Uuid,
}

impl Seeded {
    pub fn account_path(&self) -> String {
        format!("/api/accounts/{}", self.account_id)
    }

    pub fn execution_path(&self) -> String {
        format!("/api/executions/{}", self.execution_id)
    }
}

fn created_id(what: &str, status: StatusCode, body: &Value) -> anyhow::Result<Uuid> {
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "{what} not created: {status} {body}"
    );
    let id = body["id"].as_str().with_context(|| format!("{what} id"))?;
    Ok(Uuid::parse_str(id)?)
}

/// Creates an account and a pending execution buying one RDS reservation in it. The
/// account is the demo organisation's root, which the all-in-one binary's in-process
/// AWS emulator knows (dev mode), so the execution can be priced.
pub async fn seed(system: &System) -> anyhow::Result<Seeded> {
    use cudly::demo;
    let account = json!({
        "name": "bench", "provider": "aws", "external_id": demo::ROOT_ACCOUNT_ID,
        "aws_auth_mode": "access_keys",
        "credentials": {"type": "aws_access_keys", "access_key_id": demo::ROOT_ACCESS_KEY_ID,
                        "secret_access_key": demo::ROOT_SECRET_ACCESS_KEY},
    });
    let (status, body) = system
        .admin_json(Method::POST, "/api/accounts", account)
        .await?;
    let account_id = created_id("account", status, &body)?;
    let execution = json!({
        "cloud_account_id": account_id,
        "recommendations": [{"provider": "aws", "service": "rds", "region": "us-east-1",
            "resource_type": "db.r6g.large", "engine": "postgresql", "count": 1, "term": 1,
            "payment": "all-upfront"}],
    });
    let (status, body) = system
        .admin_json(Method::POST, "/api/executions", execution)
        .await?;
    let execution_id = created_id("execution", status, &body)?;
    Ok(Seeded {
        account_id,
        execution_id,
    })
}

/// The load's shape: concurrent connections, warm-up, measured duration.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

impl LoadShape {
    /// Reads `GATEWAY_CONNECTIONS` (64), `GATEWAY_WARMUP_SECONDS` (2) and
    /// `GATEWAY_SECONDS` (10).
    pub fn from_env() -> Self {
        Self {
            connections: bench::knob("GATEWAY_CONNECTIONS", 64).max(1) as usize,
            warmup: Duration::from_secs(bench::knob("GATEWAY_WARMUP_SECONDS", 2)),
            duration: Duration::from_secs(bench::knob("GATEWAY_SECONDS", 10).max(1)),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} concurrent tasks, each sending its next request when the previous one is \
             answered, {} s warm-up, {} s measured",
            self.connections,
            self.warmup.as_secs(),
            self.duration.as_secs()
        )
    }
}

/// One request of a load task.
pub enum Probe {
    /// GET through the gateway with the admin key, on the task's own keep-alive
    /// connection (a client per task, one pooled connection).
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// A primary-key select on a pool shared by the tasks.
    Sql {
        pool: PgPool,
        statement: &'static str,
        id: Uuid,
    },
}

impl Probe {
    async fn send(&self) -> anyhow::Result<()> {
        match self {
            Probe::Http { client, url } => {
                let response = client.get(url).bearer_auth(ADMIN_KEY).send().await?;
                let status = response.status();
                response.bytes().await?;
                anyhow::ensure!(status == StatusCode::OK, "answered {status}");
            }
            Probe::Sql {
                pool,
                statement,
                id,
            } => {
                sqlx::query(*statement).bind(id).fetch_one(pool).await?;
            }
        }
        Ok(())
    }
}

/// Returns one HTTP probe per connection; task `i` requests `urls[i % urls.len()]`.
pub fn http_probes(urls: &[String], connections: usize) -> anyhow::Result<Vec<Probe>> {
    (0..connections)
        .map(|index| -> anyhow::Result<Probe> {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()?;
            let url = urls[index % urls.len()].clone();
            Ok(Probe::Http { client, url })
        })
        .collect()
}

/// Returns `connections` probes selecting row `id` with `statement` on `pool`.
pub fn sql_probes(
    pool: &PgPool,
    statement: &'static str,
    id: Uuid,
    connections: usize,
) -> Vec<Probe> {
    (0..connections)
        .map(|_| Probe::Sql {
            pool: pool.clone(),
            statement,
            id,
        })
        .collect()
}

/// Opens a pool of `connections` on the benchmark database with `schema` as search path,
/// set up as the services set up theirs, so the baseline differs from them only by
/// everything above the select.
pub async fn pool(db: &TestDb, schema: &str, connections: usize) -> anyhow::Result<PgPool> {
    let connections = u32::try_from(connections).unwrap_or(u32::MAX);
    let pool = cudly_common::db::lazy_pool(&db.secret_url(), schema, connections)?;
    cudly_common::db::ping(&pool).await?;
    Ok(pool)
}

/// What a load measured.
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latencies in microseconds.
    latencies: Histogram<u64>,
    seconds: f64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 60 s, three significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

impl LoadResult {
    fn empty() -> anyhow::Result<Self> {
        Ok(Self {
            requests: 0,
            errors: 0,
            first_error: None,
            latencies: histogram()?,
            seconds: 0.0,
        })
    }

    fn merge(&mut self, other: LoadResult) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.add(&other.latencies)?;
        Ok(())
    }

    /// Returns the answered requests per second.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// Returns the latency at `quantile` (0.5 for the median) in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latencies.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Prints the load's own figures and its errors, if any.
    pub fn print(&self, what: &str) {
        println!(
            "{what}: {} requests in {} s, {} req/s, p50 {} ms, p99 {} ms, max {} ms, {} errors",
            self.requests,
            self.seconds,
            bench::number(self.per_second()),
            bench::number(self.latency_ms(0.5)),
            bench::number(self.latency_ms(0.99)),
            bench::number(self.latencies.max() as f64 / 1000.0),
            self.errors
        );
        if let Some(error) = &self.first_error {
            println!("  first error: {error}");
        }
    }
}

/// Sends requests in a loop until `stop_at`; records those sent after `measure_from`.
async fn drive(
    probe: Probe,
    measure_from: Instant,
    stop_at: Instant,
) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult::empty()?;
    loop {
        let sent_at = Instant::now();
        if sent_at >= stop_at {
            return Ok(result);
        }
        let outcome = probe.send().await;
        if sent_at < measure_from {
            continue;
        }
        match outcome {
            Ok(()) => {
                result.requests += 1;
                let micros = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                result.latencies.saturating_record(micros.max(1));
            }
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert(format!("{error:#}"));
            }
        }
    }
}

/// Runs one task per probe, each sending its next request when the previous one is
/// answered, for the warm-up and then the measured duration.
pub async fn run_load(probes: Vec<Probe>, shape: &LoadShape) -> anyhow::Result<LoadResult> {
    let measure_from = Instant::now() + shape.warmup;
    let stop_at = measure_from + shape.duration;
    let mut tasks = JoinSet::new();
    for probe in probes {
        tasks.spawn(drive(probe, measure_from, stop_at));
    }
    let mut total = LoadResult::empty()?;
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined??)?;
    }
    total.seconds = shape.duration.as_secs_f64();
    Ok(total)
}

/// Resident memory of one process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the highest resident size since the process started.
    pub peak_kib: u64,
}

/// Reads VmRSS and VmHWM of `pid` from `/proc/<pid>/status`.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    };
    Ok(Memory {
        rss_kib: field("VmRSS:").with_context(|| format!("no VmRSS in {path}"))?,
        peak_kib: field("VmHWM:").unwrap_or_default(),
    })
}

/// Samples VmRSS of every process every 200 ms until `until`; returns each one's
/// highest sample in KiB, in the order of `pids`.
pub async fn highest_rss_until(pids: &[(&'static str, u32)], until: Instant) -> Vec<u64> {
    let mut highest = vec![0u64; pids.len()];
    while Instant::now() < until {
        for (sample, (_, pid)) in highest.iter_mut().zip(pids) {
            if let Ok(memory) = memory_of(*pid) {
                *sample = (*sample).max(memory.rss_kib);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    highest
}

/// Returns KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
