//! Sweeper recovery benchmark (not a test): seconds until 10 000 stranded executions are
//! terminal through the real `recover_stranded` task, against a bare SQL update of
//! 10 000 rows of the same shape.
//!
//! Stranded means what `recover_stranded` acts on (docs/design/DOMAIN.md, Sweeper; the executor's
//! ListStaleExecutions): a root in `running` whose lease heartbeat is older than
//! `CUDLY_STRANDED_RUNNING_AFTER` (10 min; here 1 h old), which is what an executor
//! killed mid-run leaves behind. The rows are written straight into the executor's
//! tables, then the task is triggered through the gateway
//! (`POST /api/admin/sweeps/recover_stranded/run`, admin key) of a whole stack in this
//! process ([`TestStack`]), run after run (each handles up to its batch limit of 500
//! roots) until a run finds nothing, and the executions are polled until all are
//! terminal. Two recovery paths, both needing no AWS call:
//!
//! - `redrive` (default; the recovery docs/design/DOMAIN.md names first): attempt 0, under the
//!   re-drive budget, so the sweeper calls Redrive (fencing check, lease takeover,
//!   attempt + 1) and the executor resumes the run in the background. The shape is a
//!   run killed after its one account finished (child `completed`, its item `bought`
//!   with its purchase_attempts row) and before the root was ended: the resumed run
//!   ends the root `completed` without calling AWS.
//! - `safe_fail`: attempt 3 = `CUDLY_REDRIVE_MAX_ATTEMPTS`, the budget spent, so the
//!   sweeper calls SafeFail. The shape is a run killed before its account started
//!   (child `running`, item `pending`): root and child end `failed`, the item `skipped`.
//!
//! A re-drive of a child that still has items to buy would resolve credentials and call
//! AWS (the sandbox): that cost is the fan-out benchmark's. The baseline is a fresh copy
//! of the same rows ended by `UPDATE executions SET status = $2, updated_at = now(),
//! completed_at = now() WHERE id = ANY($1)` over the 10 000 root ids.
//!
//! `cargo bench --workspace --bench recovery`.
//! Knobs: `RECOVERY_EXECUTIONS` (10000), `RECOVERY_PATH` (`redrive`, `safe_fail` or
//! `both`), `RECOVERY_TIMEOUT_SECONDS` (600, a guard, not a figure).

use std::time::{Duration, Instant};

use anyhow::Context;
use cudly_common::idempotency::{child_lineage_key, derive_token};
use cudly_sweeper::config::Tuning;
use cudly_testkit::{TestStack, bench};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const INSERT_ROOTS: &str = "\
    INSERT INTO executions (id, status, idempotency_key, recommendations, target_account_ids, \
        approved_by, created_by, source, attempt, lease_owner, heartbeat_at, started_at, \
        created_at, updated_at) \
    SELECT r.id, 'running', r.lineage_key, jsonb_build_array($4::jsonb), ARRAY[r.account_id], \
        'bench', 'bench', 'api', $5, 'benchdead000:' || left(replace(r.id::text, '-', ''), 12), \
        now() - interval '1 hour', now() - interval '65 minutes', now() - interval '70 minutes', \
        now() - interval '1 hour' \
    FROM UNNEST($1::uuid[], $2::text[], $3::uuid[]) AS r(id, lineage_key, account_id)";

const INSERT_CHILDREN: &str = "\
    INSERT INTO executions (id, parent_id, cloud_account_id, status, idempotency_key, \
        approved_by, created_by, source, lease_owner, heartbeat_at, started_at, completed_at, \
        created_at, updated_at) \
    SELECT c.id, c.root_id, c.account_id, $5::text, c.lineage_key, 'bench', 'bench', 'api', \
        'benchdead000:' || left(replace(c.root_id::text, '-', ''), 12), \
        now() - interval '1 hour', now() - interval '64 minutes', \
        CASE WHEN $5::text = 'completed' THEN now() - interval '61 minutes' END, \
        now() - interval '70 minutes', now() - interval '61 minutes' \
    FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]) \
        AS c(id, root_id, account_id, lineage_key)";

const INSERT_ITEMS: &str = "\
    INSERT INTO execution_items (execution_id, item_index, recommendation, idempotency_token, \
        status, commitment_id, purchased_at, lease_owner, claimed_at, updated_at) \
    SELECT i.child_id, 0, $3::jsonb, i.token, $4::text, \
        CASE WHEN $4::text = 'bought' THEN 'rds-id-' || left(i.token, 40) END, \
        CASE WHEN $4::text = 'bought' THEN now() - interval '62 minutes' END, \
        CASE WHEN $4::text = 'bought' \
            THEN 'benchdead000:' || left(replace(i.root_id::text, '-', ''), 12) END, \
        CASE WHEN $4::text = 'bought' THEN now() - interval '63 minutes' END, \
        now() - interval '62 minutes' \
    FROM UNNEST($1::uuid[], $2::text[], $5::uuid[]) AS i(child_id, token, root_id)";

const INSERT_ATTEMPTS: &str = "\
    INSERT INTO purchase_attempts (idempotency_token, state, execution_id, root_id, item_index, \
        cloud_account_id, service, started_at, sent_at, commitment_id, offering_id, updated_at) \
    SELECT a.token, 'bought', a.child_id, a.root_id, 0, a.account_id, 'rds', \
        now() - interval '63 minutes', now() - interval '63 minutes', \
        'rds-id-' || left(a.token, 40), 'bench-offering', now() - interval '62 minutes' \
    FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::uuid[]) \
        AS a(token, child_id, root_id, account_id)";

const BARE_UPDATE: &str = "UPDATE executions SET status = $2, updated_at = now(), \
    completed_at = now() WHERE id = ANY($1)";

const LIVE_COUNT: &str = "SELECT count(*) FROM executions \
    WHERE id = ANY($1) AND status IN ('pending', 'approved', 'running')";

const STATUS_COUNTS: &str = "SELECT status, count(*) FROM executions \
    WHERE id = ANY($1) GROUP BY status ORDER BY status";

const RUN_TASK: &str = "/api/admin/sweeps/recover_stranded/run";

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

/// Which recovery the stranded executions take, and so their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecoveryPath {
    Redrive,
    SafeFail,
}

impl RecoveryPath {
    fn parse_list(text: &str) -> anyhow::Result<Vec<Self>> {
        match text {
            "redrive" => Ok(vec![Self::Redrive]),
            "safe_fail" => Ok(vec![Self::SafeFail]),
            "both" => Ok(vec![Self::Redrive, Self::SafeFail]),
            other => anyhow::bail!("RECOVERY_PATH {other:?}: expected redrive, safe_fail or both"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Redrive => "redrive",
            Self::SafeFail => "safe_fail",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Redrive => {
                "root running, heartbeat 1 h old, attempt 0; its child completed, the item \
                 bought (purchase_attempts row bought): Redrive, then the resumed run ends \
                 the root completed"
            }
            Self::SafeFail => {
                "root running, heartbeat 1 h old, attempt = the re-drive budget; its child \
                 running, the item pending: SafeFail ends root and child failed, the item \
                 skipped"
            }
        }
    }

    fn root_attempt(self, tuning: &Tuning) -> i32 {
        match self {
            Self::Redrive => 0,
            Self::SafeFail => i32::try_from(tuning.redrive_max_attempts).unwrap_or(i32::MAX),
        }
    }

    fn child_status(self) -> &'static str {
        match self {
            Self::Redrive => "completed",
            Self::SafeFail => "running",
        }
    }

    fn item_status(self) -> &'static str {
        match self {
            Self::Redrive => "bought",
            Self::SafeFail => "pending",
        }
    }

    /// Returns the status the recovery ends the roots in.
    fn terminal(self) -> &'static str {
        match self {
            Self::Redrive => "completed",
            Self::SafeFail => "failed",
        }
    }
}

/// The ids and keys of a set of stranded executions: per root one child in one account
/// with one item, keys and tokens derived as the executor derives them.
struct Batch {
    roots: Vec<Uuid>,
    children: Vec<Uuid>,
    accounts: Vec<Uuid>,
    root_keys: Vec<String>,
    child_keys: Vec<String>,
    tokens: Vec<String>,
}

impl Batch {
    fn generate(size: usize) -> Self {
        let mut batch = Self {
            roots: Vec::with_capacity(size),
            children: Vec::with_capacity(size),
            accounts: Vec::with_capacity(size),
            root_keys: Vec::with_capacity(size),
            child_keys: Vec::with_capacity(size),
            tokens: Vec::with_capacity(size),
        };
        for _ in 0..size {
            let root_key = Uuid::new_v4().to_string();
            let account = Uuid::new_v4();
            let child_key = child_lineage_key(&root_key, &account.to_string());
            batch.tokens.push(derive_token(&child_key, 0));
            batch.roots.push(Uuid::new_v4());
            batch.children.push(Uuid::new_v4());
            batch.accounts.push(account);
            batch.root_keys.push(root_key);
            batch.child_keys.push(child_key);
        }
        batch
    }

    fn size(&self) -> usize {
        self.roots.len()
    }
}

/// The one line every execution buys.
fn recommendation() -> Value {
    json!({"provider": "aws", "service": "rds", "region": "us-east-1",
           "resource_type": "db.r6g.large", "engine": "postgresql", "count": 1, "term": 1,
           "payment": "all-upfront"})
}

/// Writes `batch` in the shape of `path` in one transaction, then refreshes the
/// planner statistics as autovacuum would.
async fn seed(
    pool: &PgPool,
    batch: &Batch,
    path: RecoveryPath,
    tuning: &Tuning,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(INSERT_ROOTS)
        .bind(&batch.roots)
        .bind(&batch.root_keys)
        .bind(&batch.accounts)
        .bind(recommendation())
        .bind(path.root_attempt(tuning))
        .execute(&mut *tx)
        .await
        .context("inserting roots")?;
    sqlx::query(INSERT_CHILDREN)
        .bind(&batch.children)
        .bind(&batch.roots)
        .bind(&batch.accounts)
        .bind(&batch.child_keys)
        .bind(path.child_status())
        .execute(&mut *tx)
        .await
        .context("inserting children")?;
    sqlx::query(INSERT_ITEMS)
        .bind(&batch.children)
        .bind(&batch.tokens)
        .bind(recommendation())
        .bind(path.item_status())
        .bind(&batch.roots)
        .execute(&mut *tx)
        .await
        .context("inserting items")?;
    if path.item_status() == "bought" {
        sqlx::query(INSERT_ATTEMPTS)
            .bind(&batch.tokens)
            .bind(&batch.children)
            .bind(&batch.roots)
            .bind(&batch.accounts)
            .execute(&mut *tx)
            .await
            .context("inserting purchase attempts")?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE executions, execution_items, purchase_attempts")
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends the roots of `batch` with one bare update; returns how long it took.
async fn bare_update(pool: &PgPool, batch: &Batch, to: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let updated = sqlx::query(BARE_UPDATE)
        .bind(&batch.roots)
        .bind(to)
        .execute(pool)
        .await?
        .rows_affected();
    let elapsed = started.elapsed();
    anyhow::ensure!(
        updated == batch.size() as u64,
        "the bare update changed {updated} rows"
    );
    Ok(elapsed)
}

/// The counts of sweep runs.
#[derive(Debug, Default, Clone, Copy)]
struct RunCounts {
    found: u64,
    acted: u64,
    race_lost: u64,
    errors: u64,
}

impl RunCounts {
    fn absorb(&mut self, run: RunCounts) {
        self.found += run.found;
        self.acted += run.acted;
        self.race_lost += run.race_lost;
        self.errors += run.errors;
    }
}

/// Runs recover_stranded once through the gateway; fails unless the run ran.
async fn run_sweep(stack: &TestStack) -> anyhow::Result<RunCounts> {
    let (status, body) = stack.admin_json(Method::POST, RUN_TASK, None).await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "run task answered {status}: {body}"
    );
    anyhow::ensure!(
        body["outcome"] == "ran",
        "the sweep run did not run: {body}"
    );
    let count = |name: &str| body[name].as_u64().unwrap_or_default();
    Ok(RunCounts {
        found: count("found"),
        acted: count("acted"),
        race_lost: count("race_lost"),
        errors: count("errors"),
    })
}

async fn live_count(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(LIVE_COUNT)
        .bind(ids)
        .fetch_one(pool)
        .await?)
}

/// Returns e.g. "10000 completed": how many of `ids` are in each status.
async fn status_counts(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<String> {
    let rows: Vec<(String, i64)> = sqlx::query_as(STATUS_COUNTS)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let parts: Vec<String> = rows
        .iter()
        .map(|(status, count)| format!("{count} {status}"))
        .collect();
    Ok(parts.join(", "))
}

/// What a recovery took.
struct Recovered {
    /// From the first sweep run to the last root terminal.
    elapsed: Duration,
    /// From the first sweep run to the end of the run that found nothing.
    sweeping: Duration,
    runs: u32,
    counts: RunCounts,
}

/// Runs sweeps until one finds nothing, then waits until every root of `batch` is
/// terminal.
async fn recover(
    stack: &TestStack,
    pool: &PgPool,
    batch: &Batch,
    timeout: Duration,
) -> anyhow::Result<Recovered> {
    let started = Instant::now();
    let mut runs = 0;
    let mut counts = RunCounts::default();
    loop {
        let run = run_sweep(stack).await?;
        runs += 1;
        counts.absorb(run);
        if run.found == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "sweeps still finding stranded roots after {timeout:?}"
        );
    }
    anyhow::ensure!(
        counts.found > 0,
        "the first sweep found nothing stranded: the seeded shape does not match the thresholds"
    );
    let sweeping = started.elapsed();
    loop {
        let live = live_count(pool, &batch.roots).await?;
        if live == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{live} executions still not terminal after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Recovered {
        elapsed: started.elapsed(),
        sweeping,
        runs,
        counts,
    })
}

/// Measures one recovery path against its bare-update baseline.
async fn bench_path(
    stack: &TestStack,
    pool: &PgPool,
    path: RecoveryPath,
    size: usize,
    tuning: &Tuning,
) -> anyhow::Result<()> {
    println!("-- path {}: {}", path.name(), path.describe());
    let copy = Batch::generate(size);
    seed(pool, &copy, path, tuning).await?;
    let bare = bare_update(pool, &copy, path.terminal()).await?;

    let stranded = Batch::generate(size);
    let seeding = Instant::now();
    seed(pool, &stranded, path, tuning).await?;
    println!(
        "seeded {size} stranded executions (root, child, item) in {} s",
        bench::number(seeding.elapsed().as_secs_f64())
    );
    let timeout = Duration::from_secs(bench::knob("RECOVERY_TIMEOUT_SECONDS", 600));
    let recovered = recover(stack, pool, &stranded, timeout).await?;
    let counts = recovered.counts;
    println!(
        "{} sweep runs in {} s: found {}, acted {}, race lost {}, errors {}; all terminal \
         {} s after the first run",
        recovered.runs,
        bench::number(recovered.sweeping.as_secs_f64()),
        counts.found,
        counts.acted,
        counts.race_lost,
        counts.errors,
        bench::number(recovered.elapsed.as_secs_f64()),
    );
    println!(
        "outcome: {} (expected {size} {})",
        status_counts(pool, &stranded.roots).await?,
        path.terminal()
    );
    let seconds = recovered.elapsed.as_secs_f64();
    bench::print_result(
        &format!(
            "sweeper recovery ({}) of {size} stranded executions to terminal",
            path.name()
        ),
        "s",
        seconds,
        &format!(
            "bare `UPDATE executions SET status = '{}' ... WHERE id = ANY($1)` of {size} fresh rows",
            path.terminal()
        ),
        bare.as_secs_f64(),
    );
    bench::print_result(
        &format!("sweeper recovery ({}) rate", path.name()),
        "executions/s",
        size as f64 / seconds,
        "bare update",
        size as f64 / bare.as_secs_f64(),
    );
    Ok(())
}

fn print_header(size: usize, paths: &[RecoveryPath], tuning: &Tuning) {
    println!("sweeper recovery benchmark");
    let names: Vec<&str> = paths.iter().map(|path| path.name()).collect();
    println!(
        "{size} stranded executions per path; paths: {}",
        names.join(", ")
    );
    println!(
        "sweeper: batch limit {} per run, re-drive budget {}, stranded running after {:?}, \
         approved after {:?}, lock ttl {:?}; runs triggered through the gateway's {RUN_TASK}",
        tuning.batch_limit,
        tuning.redrive_max_attempts,
        tuning.stranded_running_after,
        tuning.stranded_approved_after,
        tuning.lock_ttl,
    );
    bench::print_machine("this process");
}

async fn run() -> anyhow::Result<()> {
    let size = bench::knob("RECOVERY_EXECUTIONS", 10_000).max(1) as usize;
    let paths = RecoveryPath::parse_list(&bench::text_knob("RECOVERY_PATH", "redrive"))?;
    let mut tuning = Tuning::default();
    let stack = TestStack::start_with(|config| tuning = config.sweeper.tuning.clone()).await?;
    print_header(size, &paths, &tuning);
    let pool = stack.db.pool("executor").await?;
    for path in paths {
        bench_path(&stack, &pool, path, size, &tuning).await?;
    }
    pool.close().await;
    stack.stop().await
}
