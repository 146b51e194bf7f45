//! Lock benchmark (not a test): acquire + release per second of the sweeper's real Redis
//! lock against raw `SET key value NX PX ttl` + `DEL key`, against the local Redis.
//!
//! The real cycle is what a sweep run does around its task body:
//! `RedisLock::try_acquire` with the sweeper's fencing source (`PgFencing`: `SELECT
//! nextval('fencing_seq')` in the sweeper schema of a fresh database) and
//! `LockGuard::release`. That is `SET NX PX`, the Postgres round trip for the fencing
//! token, a compare-and-extend script (the lock is still ours after the draw), the spawn
//! of the renewal task, then a compare-and-delete script: three Redis round trips and one
//! Postgres round trip, against the baseline's two Redis round trips. To split the
//! difference, the same cycle also runs with an in-process fencing counter
//! (`cudly_lock::testing::InMemoryFencing`: the Redis part alone), and the fencing draw
//! runs alone. The baseline uses the same connection type as the lock (one multiplexed
//! `redis::aio::ConnectionManager` with the lock's timeouts, shared by the tasks).
//!
//! Each variant runs with one task (sequential cycles) and with 16 concurrent tasks, each
//! on its own key; keys carry a prefix unique to the run and the lock TTL is 30 s (the
//! sweeper's default), so renewal never fires within a cycle.
//!
//! `cargo bench --workspace --bench lock`.
//! Knobs: `LOCK_SECONDS` (5 per variant), `LOCK_WARMUP_SECONDS` (1), `LOCK_TASKS` (16),
//! `LOCK_TTL_MS` (30000), `REDIS_URL` (`redis://127.0.0.1:6379/`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cudly_lock::testing::InMemoryFencing;
use cudly_lock::{FencingSource, LockConfig, RedisLock};
use cudly_sweeper::repo::{PgFencing, next_fencing_token};
use cudly_testkit::{TestDb, bench};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::JoinSet;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

/// What one cycle does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The sweeper's lock with its Postgres fencing source.
    Lock,
    /// The same lock with an in-process fencing counter.
    LockWithoutPostgres,
    /// Raw SET NX PX + DEL.
    Raw,
    /// The fencing draw alone.
    FencingDraw,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Lock => "real lock acquire+release (Postgres fencing)",
            Variant::LockWithoutPostgres => "real lock acquire+release (in-process fencing)",
            Variant::Raw => "raw SET NX PX + DEL",
            Variant::FencingDraw => "fencing draw alone (SELECT nextval('fencing_seq'))",
        }
    }
}

/// Everything the cycles share; cheap to clone (connections and pools are shared).
#[derive(Clone)]
struct Setup {
    lock: RedisLock,
    raw: ConnectionManager,
    pg_fencing: PgFencing,
    memory_fencing: Arc<InMemoryFencing>,
    key_prefix: String,
    ttl: Duration,
}

/// Returns a connection configured as the lock configures its own.
async fn raw_connection(redis_url: &str) -> anyhow::Result<ConnectionManager> {
    let config = LockConfig::default();
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connection_timeout))
        .set_response_timeout(Some(config.response_timeout))
        .set_number_of_retries(config.connection_retries)
        .set_max_delay(Duration::from_secs(2));
    let client = redis::Client::open(redis_url)?;
    Ok(ConnectionManager::new_with_config(client, manager_config).await?)
}

async fn acquire_release(
    lock: &RedisLock,
    name: &str,
    ttl: Duration,
    fencing: &impl FencingSource,
) -> anyhow::Result<()> {
    let guard = lock
        .try_acquire(name, ttl, fencing)
        .await?
        .context("the lock was held by someone else")?;
    anyhow::ensure!(guard.release().await?, "the lock was taken before release");
    Ok(())
}

async fn set_delete(
    mut connection: ConnectionManager,
    key: &str,
    ttl: Duration,
) -> anyhow::Result<()> {
    // A random 128-bit value, as the lock's holder token.
    let value = uuid::Uuid::new_v4().simple().to_string();
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(&mut connection)
        .await?;
    anyhow::ensure!(set.is_some(), "the key was set by someone else");
    let deleted: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut connection)
        .await?;
    anyhow::ensure!(deleted == 1, "the key was gone before DEL");
    Ok(())
}

impl Setup {
    async fn cycle(&self, variant: Variant, name: &str, key: &str) -> anyhow::Result<()> {
        match variant {
            Variant::Lock => acquire_release(&self.lock, name, self.ttl, &self.pg_fencing).await,
            Variant::LockWithoutPostgres => {
                acquire_release(&self.lock, name, self.ttl, &self.memory_fencing).await
            }
            Variant::Raw => set_delete(self.raw.clone(), key, self.ttl).await,
            Variant::FencingDraw => {
                next_fencing_token(&self.pg_fencing.pool).await?;
                Ok(())
            }
        }
    }

    /// Runs cycles on one lock name until `stop_at`; counts those started after
    /// `measure_from`.
    async fn count_cycles(
        &self,
        variant: Variant,
        index: usize,
        measure_from: Instant,
        stop_at: Instant,
    ) -> anyhow::Result<u64> {
        let name = format!("bench-{index}");
        // The key the lock uses for `name`, so the raw cycle writes the same key.
        let key = format!("{}{name}", self.key_prefix);
        let mut cycles = 0;
        loop {
            let started = Instant::now();
            if started >= stop_at {
                return Ok(cycles);
            }
            self.cycle(variant, &name, &key).await?;
            if started >= measure_from {
                cycles += 1;
            }
        }
    }

    /// Returns cycles per second of `variant` with `tasks` concurrent tasks.
    async fn measure(
        &self,
        variant: Variant,
        tasks: usize,
        warmup: Duration,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let measure_from = Instant::now() + warmup;
        let stop_at = measure_from + duration;
        let mut set = JoinSet::new();
        for index in 0..tasks {
            let setup = self.clone();
            set.spawn(async move {
                setup
                    .count_cycles(variant, index, measure_from, stop_at)
                    .await
            });
        }
        let mut cycles = 0;
        while let Some(joined) = set.join_next().await {
            cycles += joined??;
        }
        Ok(cycles as f64 / duration.as_secs_f64())
    }
}

/// Creates the sweeper schema (its migrations) on `db`; returns the sweeper's pool of
/// `connections`.
async fn sweeper_pool(db: &TestDb, connections: u32) -> anyhow::Result<sqlx::PgPool> {
    let pool = cudly_common::db::lazy_pool(&db.secret_url(), "sweeper", connections)?;
    cudly_common::db::migrate(&pool, &MIGRATOR, "sweeper").await?;
    Ok(pool)
}

/// The rates of one concurrency level, by variant.
struct Rates {
    tasks: usize,
    lock: f64,
    without_postgres: f64,
    raw: f64,
    fencing: f64,
}

/// Measures `variant` and prints its rate.
async fn rate_of(
    setup: &Setup,
    variant: Variant,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<f64> {
    let rate = setup.measure(variant, tasks, warmup, duration).await?;
    println!(
        "{tasks} task(s), {}: {} cycles/s",
        variant.label(),
        bench::number(rate)
    );
    Ok(rate)
}

async fn measure_all(
    setup: &Setup,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Rates> {
    Ok(Rates {
        tasks,
        lock: rate_of(setup, Variant::Lock, tasks, warmup, duration).await?,
        without_postgres: rate_of(setup, Variant::LockWithoutPostgres, tasks, warmup, duration)
            .await?,
        raw: rate_of(setup, Variant::Raw, tasks, warmup, duration).await?,
        fencing: rate_of(setup, Variant::FencingDraw, tasks, warmup, duration).await?,
    })
}

fn print_rates(rates: &Rates) {
    let tasks = rates.tasks;
    let baseline = Variant::Raw.label();
    bench::print_result(
        &format!(
            "lock acquire+release, {tasks} task(s), {}",
            Variant::Lock.label()
        ),
        "ops/s",
        rates.lock,
        baseline,
        rates.raw,
    );
    bench::print_result(
        &format!(
            "lock acquire+release, {tasks} task(s), {}",
            Variant::LockWithoutPostgres.label()
        ),
        "ops/s",
        rates.without_postgres,
        baseline,
        rates.raw,
    );
    bench::print_result(
        &format!("{tasks} task(s), {}", Variant::FencingDraw.label()),
        "ops/s",
        rates.fencing,
        baseline,
        rates.raw,
    );
}

/// Explains the sequential ratio by the time each part of a cycle adds.
fn print_breakdown(sequential: &Rates) {
    let micros = |rate: f64| if rate > 0.0 { 1e6 / rate } else { 0.0 };
    let raw = micros(sequential.raw);
    let without_postgres = micros(sequential.without_postgres);
    let lock = micros(sequential.lock);
    println!(
        "per sequential cycle: raw {} µs (2 Redis round trips); real lock without Postgres {} µs \
         (+{} µs: a third Redis round trip, two Lua scripts instead of plain commands, the \
         renewal task); real lock {} µs (+{} µs for the fencing draw, which alone takes {} µs)",
        bench::number(raw),
        bench::number(without_postgres),
        bench::number(without_postgres - raw),
        bench::number(lock),
        bench::number(lock - without_postgres),
        bench::number(micros(sequential.fencing)),
    );
}

async fn run() -> anyhow::Result<()> {
    let duration = Duration::from_secs(bench::knob("LOCK_SECONDS", 5).max(1));
    let warmup = Duration::from_secs(bench::knob("LOCK_WARMUP_SECONDS", 1));
    let concurrent = bench::knob("LOCK_TASKS", 16).max(1) as usize;
    let ttl = Duration::from_millis(bench::knob("LOCK_TTL_MS", 30_000).max(100));
    let redis_url = bench::text_knob("REDIS_URL", "redis://127.0.0.1:6379/");
    let key_prefix = format!("cudly-bench:{}:lock:task:", uuid::Uuid::new_v4().simple());

    println!("lock benchmark");
    println!(
        "{} s per variant after {} s warm-up; 1 task, then {concurrent} tasks on distinct \
         keys; lock ttl {ttl:?}; key prefix {key_prefix}",
        duration.as_secs(),
        warmup.as_secs()
    );
    println!(
        "fencing: the sweeper's PgFencing on a fresh database, pool of {concurrent} \
         connections (the sweeper's own pool has 10)"
    );
    bench::print_machine("this process");

    let db = TestDb::create().await?;
    let pool = sweeper_pool(&db, u32::try_from(concurrent).unwrap_or(u32::MAX)).await?;
    let lock = RedisLock::connect_with_config(
        &redis_url,
        LockConfig::default().with_key_prefix(key_prefix.clone()),
    )
    .await?;
    let setup = Setup {
        lock,
        raw: raw_connection(&redis_url).await?,
        pg_fencing: PgFencing { pool: pool.clone() },
        memory_fencing: Arc::new(InMemoryFencing::default()),
        key_prefix,
        ttl,
    };

    let sequential = measure_all(&setup, 1, warmup, duration).await?;
    let parallel = measure_all(&setup, concurrent, warmup, duration).await?;
    print_rates(&sequential);
    print_rates(&parallel);
    print_breakdown(&sequential);
    pool.close().await;
    Ok(())
}
