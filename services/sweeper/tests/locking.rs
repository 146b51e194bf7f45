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
