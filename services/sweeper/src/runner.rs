//! One run of a task under its Redis lock: take the lock, draw a fencing token from
//! Postgres, skip if the task ran recently, confirm the lock is still held, act while
//! it is held, record the run, release.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use cudly_lock::{LockConfig, LockGuard, RedisLock};
use cudly_proto::common::v1::Fencing;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{SweeperError, SweeperResult};
use crate::repo::{self, NewRun, PgFencing, SweepRunRow};
use crate::task::{Counts, Outcome, Task};
use crate::tasks::{self, Clients, TaskStop};

/// Runs tasks; shared by the periodic loops and the RunTask RPC.
#[derive(Clone)]
pub struct Sweeper {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    pool: PgPool,
    clients: Clients,
    fencing: PgFencing,
    holder: String,
    /// Connected lazily and kept: Redis may be down when the service starts.
    lock: Mutex<Option<RedisLock>>,
}

impl Sweeper {
    pub fn new(config: Config, pool: PgPool, clients: Clients) -> Self {
        let holder = format!(
            "sweeper-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        Self {
            inner: Arc::new(Inner {
                fencing: PgFencing { pool: pool.clone() },
                config,
                pool,
                clients,
                holder,
                lock: Mutex::new(None),
            }),
        }
    }

    /// Returns this sweeper's holder name, as recorded on its runs.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    async fn lock(&self) -> Result<RedisLock, cudly_lock::LockError> {
        let mut slot = self.inner.lock.lock().await;
        if let Some(lock) = slot.as_ref() {
            return Ok(lock.clone());
        }
        let lock_config = LockConfig {
            tls_ca_file: self.inner.config.redis_tls_ca_file.clone(),
            ..LockConfig::default()
                .with_key_prefix(self.inner.config.tuning.lock_key_prefix.clone())
        };
        let lock = RedisLock::connect_with_config(
            self.inner.config.redis_url.expose_secret(),
            lock_config,
        )
        .await?;
        *slot = Some(lock.clone());
        Ok(lock)
    }

    /// Returns Ok when Redis answers (the `redis` health entry).
    pub async fn ping_redis(&self) -> Result<(), String> {
        let lock = self.lock().await.map_err(|error| error.to_string())?;
        lock.ping().await.map_err(|error| error.to_string())
    }

    /// Runs `task` once. A manual run (RunTask) skips the "ran recently" check but
    /// still needs the lock. The run is recorded before the lock is released, so the
    /// next holder sees it and skips a task that has just run.
    pub async fn run_task(&self, task: Task, manual: bool) -> SweeperResult<SweepRunRow> {
        let started_at = Utc::now();
        let timer = Instant::now();
        let (attempt, guard) = self.attempt(task, manual).await;
        // A run that took the lock starts when it took it, so the recorded intervals of
        // acting runs reflect the lock's exclusion exactly.
        let started_at = attempt.acquired_at.unwrap_or(started_at);
        crate::metrics::record_run(task, attempt.outcome, attempt.counts, timer.elapsed());
        log_attempt(task, &attempt);
        let error = attempt.error.as_ref().map(ToString::to_string);
        let run = NewRun {
            task,
            holder: &self.inner.holder,
            outcome: attempt.outcome,
            started_at,
            counts: attempt.counts,
            fencing_token: attempt.fencing_token,
            error: error.as_deref(),
        };
        let record = repo::insert_run(&self.inner.pool, run)
            .await
            .map_err(SweeperError::db("recording the sweep run"));
        if let Some(guard) = guard
            && let Err(error) = guard.release().await
        {
            tracing::warn!(task = task.name(), %error, "lock release failed, it expires by its ttl");
        }
        record
    }

    /// Takes the lock and, holding it, runs the body. Returns the guard for release.
    async fn attempt(&self, task: Task, manual: bool) -> (Attempt, Option<LockGuard>) {
        let config = &self.inner.config;
        let lock = match self.lock().await {
            Ok(lock) => lock,
            Err(error) => return (Attempt::error(None, error.into()), None),
        };
        let guard = match lock
            .try_acquire(task.name(), config.tuning.lock_ttl, &self.inner.fencing)
            .await
        {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                return (
                    Attempt::of(Outcome::LockNotAcquired, Counts::default(), None),
                    None,
                );
            }
            Err(error) => return (Attempt::error(None, error.into()), None),
        };
        let acquired_at = Utc::now();
        let attempt = Attempt {
            acquired_at: Some(acquired_at),
            ..self.attempt_holding(task, manual, &guard).await
        };
        (attempt, Some(guard))
    }

    async fn attempt_holding(&self, task: Task, manual: bool, guard: &LockGuard) -> Attempt {
        let config = &self.inner.config;
        if !manual {
            match repo::ran_recently(&self.inner.pool, task, config.interval(task)).await {
                Ok(true) => return Attempt::of(Outcome::SkippedRecent, Counts::default(), None),
                Ok(false) => {}
                Err(error) => {
                    return Attempt::error(None, SweeperError::db("checking the last run")(error));
                }
            }
        }
        let token = guard.fencing_token();
        match guard.check_held().await {
            Ok(true) => {}
            Ok(false) => return Attempt::of(Outcome::LockLost, Counts::default(), Some(token)),
            Err(error) => return Attempt::error(Some(token), error.into()),
        }
        let fencing = Fencing {
            task: task.name().to_owned(),
            token,
        };
        let body = tasks::run_body(task, config, &self.inner.clients, guard, fencing);
        let result = tokio::select! {
            result = body => result,
            _ = guard.lost() => Err(TaskStop::LockLost(Counts::default())),
        };
        match result {
            Ok(counts) => Attempt::of(Outcome::Ran, counts, Some(token)),
            Err(TaskStop::LockLost(counts)) => Attempt::of(Outcome::LockLost, counts, Some(token)),
            Err(TaskStop::Failed(counts, reason)) => Attempt {
                error: Some(reason),
                ..Attempt::of(Outcome::Error, counts, Some(token))
            },
        }
    }

    /// Runs every task on its interval, once `dependencies` completes, until `cancel`
    /// fires; the current run finishes.
    pub fn spawn_loops(
        &self,
        cancel: CancellationToken,
        dependencies: impl Future<Output = ()> + Send + 'static,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let ready = futures::future::FutureExt::shared(Box::pin(dependencies));
        Task::ALL
            .into_iter()
            .map(|task| {
                let sweeper = self.clone();
                let cancel = cancel.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = ready => {}
                    }
                    sweeper.task_loop(task, cancel).await
                })
            })
            .collect()
    }

    async fn task_loop(&self, task: Task, cancel: CancellationToken) {
        let interval = self.inner.config.interval(task);
        loop {
            if let Err(error) = self.run_task(task, false).await {
                tracing::warn!(task = task.name(), %error, "sweep run not recorded");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// What one attempt at a task did, as recorded in sweep_runs.
struct Attempt {
    outcome: Outcome,
    counts: Counts,
    /// Recorded only for runs that acted (or tried to) under the lock.
    fencing_token: Option<i64>,
    error: Option<SweeperError>,
    /// When the lock was taken, for runs that took it.
    acquired_at: Option<chrono::DateTime<Utc>>,
}

impl Attempt {
    fn of(outcome: Outcome, counts: Counts, fencing_token: Option<i64>) -> Self {
        Self {
            outcome,
            counts,
            fencing_token,
            error: None,
            acquired_at: None,
        }
    }

    fn error(fencing_token: Option<i64>, reason: SweeperError) -> Self {
        Self {
            error: Some(reason),
            ..Self::of(Outcome::Error, Counts::default(), fencing_token)
        }
    }
}

fn log_attempt(task: Task, attempt: &Attempt) {
    let counts = attempt.counts;
    match attempt.outcome {
        Outcome::Ran => tracing::info!(
            task = task.name(),
            found = counts.found,
            acted = counts.acted,
            race_lost = counts.race_lost,
            errors = counts.errors,
            fencing_token = attempt.fencing_token,
            "sweep ran"
        ),
        Outcome::Error | Outcome::LockLost => tracing::warn!(
            task = task.name(),
            outcome = attempt.outcome.name(),
            error = attempt
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            "sweep did not finish"
        ),
        Outcome::LockNotAcquired | Outcome::SkippedRecent => {
            tracing::debug!(
                task = task.name(),
                outcome = attempt.outcome.name(),
                "sweep skipped"
            )
        }
    }
}
