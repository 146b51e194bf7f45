//! Sweeps under Redis locks: concurrent sweepers never act at once, acting runs carry
//! increasing fencing tokens, recent runs are skipped, and nothing acts without Redis.

mod common;

use std::time::Duration;

use cudly_sweeper::repo::{self, SweepRunRow};
use cudly_sweeper::task::Task;
use cudly_testkit::{PrivateRedis, TestStack};

use common::{extra_sweeper, shared_redis, test_tuning};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_concurrent_sweepers_never_act_at_once_and_fence_in_order() {
    let stack = TestStack::start().await.unwrap();
    let tuning = test_tuning(Duration::from_secs(2), Duration::from_millis(150));
    let sweepers: Vec<_> = (0..3)
        .map(|_| extra_sweeper(&stack, &shared_redis(), tuning.clone()))
        .collect();
    let holders: Vec<String> = sweepers.iter().map(|s| s.holder().to_owned()).collect();

    let mut tasks = Vec::new();
    for sweeper in sweepers {
        tasks.push(tokio::spawn(async move {
            for round in 0..12u64 {
                sweeper.run_task(Task::ExpirePending, false).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20 + (round * 7) % 40)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let pool = stack.db.pool("sweeper").await.unwrap();
    let runs: Vec<SweepRunRow> = repo::list_runs(&pool, Some(Task::ExpirePending), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|run| holders.contains(&run.holder))
        .collect();
    assert_eq!(runs.len(), 36, "every attempt is recorded");
    let mut acting: Vec<&SweepRunRow> = runs.iter().filter(|run| run.outcome == "ran").collect();
    assert!(acting.len() >= 2, "several runs acted: {}", acting.len());
    for run in &runs {
        assert!(
            ["ran", "lock_not_acquired", "skipped_recent"].contains(&run.outcome.as_str()),
            "unexpected outcome {} ({:?})",
            run.outcome,
            run.error
        );
    }
    assert!(
        runs.iter().any(|run| run.outcome != "ran"),
        "some runs were turned away"
    );

    acting.sort_by_key(|run| run.started_at);
    for pair in acting.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        let earlier_end = earlier.finished_at.unwrap();
        assert!(
            earlier_end <= later.started_at,
            "acting runs overlap: {earlier:?} and {later:?}"
        );
        assert!(
            earlier.fencing_token.unwrap() < later.fencing_token.unwrap(),
            "fencing tokens do not increase: {earlier:?} then {later:?}"
        );
    }
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_run_more_recently_than_its_interval_is_skipped() {
    let stack = TestStack::start().await.unwrap();
    let sweeper = extra_sweeper(
        &stack,
        &shared_redis(),
        test_tuning(Duration::from_secs(2), Duration::from_secs(3600)),
    );
    let first = sweeper.run_task(Task::ExpirePending, false).await.unwrap();
    assert_eq!(first.outcome, "ran", "{first:?}");
    let second = sweeper.run_task(Task::ExpirePending, false).await.unwrap();
    assert_eq!(second.outcome, "skipped_recent");
    assert_eq!(second.fencing_token, None);
    // A manual run (RunTask) is not skipped.
    let manual = sweeper.run_task(Task::ExpirePending, true).await.unwrap();
    assert_eq!(manual.outcome, "ran");
    assert!(manual.fencing_token.unwrap() > first.fencing_token.unwrap());
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_nothing_acts_and_sweeps_resume_when_it_returns() {
    let stack = TestStack::start().await.unwrap();
    let mut redis = PrivateRedis::start().await.unwrap();
    let sweeper = extra_sweeper(
        &stack,
        &redis.url(),
        test_tuning(Duration::from_secs(2), Duration::from_millis(10)),
    );
    sweeper.ping_redis().await.unwrap();

    redis.stop().await.unwrap();
    assert!(
        sweeper.ping_redis().await.is_err(),
        "redis down is reported unhealthy"
    );
    let refused = sweeper.run_task(Task::ExpirePending, true).await.unwrap();
    assert_eq!(refused.outcome, "error");
    assert_eq!(refused.counts.acted, 0);
    assert_eq!(
        refused.fencing_token, None,
        "no fencing token is drawn without the lock"
    );
    let error = refused.error.clone().unwrap_or_default();
    assert!(error.contains("redis"), "{error}");
    assert!(
        !error.contains(&redis.url()),
        "the redis url is not in the error: {error}"
    );

    redis.start_again().await.unwrap();
    let resumed =
        cudly_testkit::eventually("sweeps to resume", Duration::from_secs(20), || async {
            let run = sweeper.run_task(Task::ExpirePending, true).await.ok()?;
            (run.outcome == "ran").then_some(run)
        })
        .await
        .unwrap();
    assert!(resumed.fencing_token.is_some());
    stack.stop().await.unwrap();
}

/// Four sweepers with a short lock TTL race for the expiry task against a private
/// Redis that is restarted twice mid-run (every lock vanishes with it). Expiries keep
/// arriving. However the leases overlap across a restart, the executor accepts the
/// expiries of one holder at a time: read in the order they were written, the fencing
/// tokens on the expiry transitions never go down. Stale holders are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweepers_racing_across_redis_restarts_act_in_fencing_order_only() {
    use cudly_common::grpc::{Caller, client_channel};
    use cudly_proto::common::v1::Recommendation;
    use cudly_proto::executor::v1::CreateExecutionRequest;
    use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let stack = TestStack::start_with_sandbox_and(|config| {
        config.executor.runner.approval_ttl = Duration::from_millis(150);
    })
    .await
    .unwrap();
    // Creations are priced through their target, which the sandbox must know.
    let target = stack.add_sandbox_account("lock-race").await.unwrap();
    let mut redis = PrivateRedis::start().await.unwrap();
    let tuning = test_tuning(Duration::from_millis(300), Duration::from_millis(10));
    let sweepers: Vec<_> = (0..4)
        .map(|_| extra_sweeper(&stack, &redis.url(), tuning.clone()))
        .collect();
    let holders: Vec<String> = sweepers.iter().map(|s| s.holder().to_owned()).collect();
    let stop = Arc::new(AtomicBool::new(false));

    // Pending executions whose approval window closes almost at once.
    let executor = ExecutorServiceClient::new(
        client_channel(
            &format!("http://{}", stack.stack().executor_addr()),
            &stack.secrets().internal_token(Caller::Gateway),
            Duration::from_secs(10),
        )
        .unwrap(),
    );
    let producer = {
        let stop = stop.clone();
        let mut executor = executor.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let mut created = 0u32;
            while !stop.load(Ordering::Relaxed) {
                executor
                    .create_execution(CreateExecutionRequest {
                        target_account_ids: vec![target.clone()],
                        recommendations: vec![Recommendation {
                            provider: "aws".to_owned(),
                            service: "rds".to_owned(),
                            region: "us-east-1".to_owned(),
                            resource_type: "db.r5.large".to_owned(),
                            engine: Some("postgresql".to_owned()),
                            count: 1,
                            term: 1,
                            payment: "all-upfront".to_owned(),
                            ..Recommendation::default()
                        }],
                        source: "api".to_owned(),
                        actor: "lock-race".to_owned(),
                        ..CreateExecutionRequest::default()
                    })
                    .await
                    .unwrap();
                created += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            created
        })
    };
    let mut racers = Vec::new();
    for sweeper in sweepers {
        let stop = stop.clone();
        racers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = sweeper.run_task(Task::ExpirePending, true).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        redis.stop().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.start_again().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    let created = producer.await.unwrap();
    for racer in racers {
        racer.await.unwrap();
    }

    let executor_pool = stack.db.pool("executor").await.unwrap();
    let expiries: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM status_transitions WHERE to_status = 'expired' AND actor = 'sweeper' \
         ORDER BY id",
    )
    .fetch_all(&executor_pool)
    .await
    .unwrap();
    let tokens: Vec<i64> = expiries
        .iter()
        .map(|reason| {
            reason
                .rsplit_once("fencing token ")
                .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| panic!("no fencing token in {reason:?}"))
        })
        .collect();
    let backwards = tokens.windows(2).filter(|pair| pair[1] < pair[0]).count();
    let sweeper_pool = stack.db.pool("sweeper").await.unwrap();
    let runs: Vec<SweepRunRow> = repo::list_runs(&sweeper_pool, Some(Task::ExpirePending), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|run| holders.contains(&run.holder))
        .collect();
    let count = |outcome: &str| runs.iter().filter(|run| run.outcome == outcome).count();
    println!(
        "{created} executions created, {} expiry transitions under {} distinct tokens; runs: {} ran, \
         {} lock_not_acquired, {} lock_lost (lock gone or fencing token refused), {} error (redis down)",
        tokens.len(),
        tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        count("ran"),
        count("lock_not_acquired"),
        count("lock_lost"),
        count("error"),
    );
    assert_eq!(
        backwards, 0,
        "expiries went back in fencing order: {tokens:?}"
    );
    assert!(
        tokens.len() > 20,
        "the sweepers expired executions: {}",
        tokens.len()
    );
    assert!(count("error") > 0, "runs failed while redis was down");
    // Every accepted token was drawn by a run that held the lock when it started.
    let drawn: std::collections::HashSet<i64> =
        repo::list_runs(&sweeper_pool, Some(Task::ExpirePending), 10_000)
            .await
            .unwrap()
            .iter()
            .filter_map(|run| run.fencing_token)
            .collect();
    for token in &tokens {
        assert!(
            drawn.contains(token),
            "token {token} was drawn by no recorded run"
        );
    }
    // Two acting runs never share a token.
    let mut acting: Vec<i64> = runs
        .iter()
        .filter(|run| run.outcome == "ran")
        .filter_map(|run| run.fencing_token)
        .collect();
    let before = acting.len();
    acting.sort_unstable();
    acting.dedup();
    assert_eq!(
        acting.len(),
        before,
        "two acting runs shared a fencing token"
    );
    stack.stop().await.unwrap();
}
