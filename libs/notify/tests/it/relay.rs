//! The relay: an event staged in the caller's transaction, forwarded at least once under
//! its own id, deleted once forwarded, and kept with its failure code while forwards
//! fail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cudly_notify::event::PlanPaused;
use cudly_notify::relay::{self, Relay, RelayError, RelaySettings};
use cudly_notify::{Event, EventData, EventKind};
use cudly_testkit::TestDb;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{approval_event, pool_of};

/// A fresh database with the relay table in the test schema.
async fn relay_db() -> (TestDb, PgPool) {
    let db = TestDb::create().await.expect("a test database");
    let pool = pool_of(&db).await;
    sqlx::raw_sql("CREATE SCHEMA notify")
        .execute(&pool)
        .await
        .expect("the schema");
    sqlx::raw_sql(cudly_notify::RELAY_SQL)
        .execute(&pool)
        .await
        .expect("the relay table");
    (db, pool)
}

/// Short delays, so that retries play out in well under a second.
fn fast_settings() -> RelaySettings {
    RelaySettings {
        poll_interval: Duration::from_millis(20),
        batch_size: 8,
        lease: Duration::from_secs(5),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
    }
}

fn paused_event() -> Event {
    Event::new(EventData::PlanPaused(PlanPaused {
        plan_name: "nightly".to_owned(),
        reason: "step 1 was fired 3 times without completing".to_owned(),
    }))
    .for_plan(Uuid::new_v4())
    .for_accounts([Uuid::new_v4(), Uuid::new_v4()])
}

/// Stages `event` in a transaction and commits it.
async fn stage_committed(pool: &PgPool, event: &Event) {
    let mut tx = pool.begin().await.unwrap();
    relay::stage(&mut tx, event).await.expect("staged");
    tx.commit().await.unwrap();
}

/// Returns the staged rows: (id, attempts, last_error).
async fn staged(pool: &PgPool) -> Vec<(Uuid, i32, Option<String>)> {
    sqlx::query_as("SELECT id, attempts, last_error FROM notification_relay ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// What a test forward returns.
type Forwarded = std::future::Ready<Result<(), RelayError>>;

/// The receiving end of a test relay: it records every event forwarded.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Event>>>,
}

impl Receiver {
    /// Returns a forward to this receiver that fails its first `failures` calls.
    fn forward(&self, failures: usize) -> impl Fn(Event) -> Forwarded + Send + Sync + 'static {
        let received = Arc::clone(&self.received);
        move |event: Event| {
            let count = {
                let mut received = received.lock().unwrap();
                received.push(event);
                received.len()
            };
            std::future::ready(if count <= failures {
                Err(RelayError::new("Unavailable"))
            } else {
                Ok(())
            })
        }
    }

    fn received(&self) -> Vec<Event> {
        self.received.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn an_event_staged_in_a_rolled_back_transaction_leaves_nothing() {
    let (_db, pool) = relay_db().await;
    let mut tx = pool.begin().await.unwrap();
    relay::stage(&mut tx, &paused_event()).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(staged(&pool).await.is_empty());

    // Committed, it is there once however often it is staged.
    let event = paused_event();
    stage_committed(&pool, &event).await;
    stage_committed(&pool, &event).await;
    assert_eq!(staged(&pool).await, [(event.id, 0, None)]);
}

#[tokio::test]
async fn an_event_with_an_approval_link_is_never_staged() {
    let (_db, pool) = relay_db().await;
    let mut conn = pool.acquire().await.unwrap();
    let refused = relay::stage(&mut conn, &approval_event().for_execution(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("approval link"), "{refused}");
    assert!(staged(&pool).await.is_empty());
}

#[tokio::test]
async fn a_forward_that_fails_twice_then_succeeds_relays_the_same_event_and_deletes_it() {
    let (_db, pool) = relay_db().await;
    let event = paused_event();
    stage_committed(&pool, &event).await;

    let receiver = Receiver::default();
    let cancel = CancellationToken::new();
    let relay = Relay::new(pool.clone(), fast_settings());
    let task = tokio::spawn(relay.run(cancel.clone(), receiver.forward(2)));
    cudly_testkit::eventually("a relayed event", Duration::from_secs(20), || async {
        let done = receiver.received().len() >= 3 && staged(&pool).await.is_empty();
        done.then_some(())
    })
    .await
    .unwrap();
    cancel.cancel();
    task.await.expect("the relay stops cleanly");

    let received = receiver.received();
    assert_eq!(received.len(), 3, "nothing after the success");
    for forwarded in &received {
        assert_eq!(forwarded.id, event.id);
        assert_eq!(forwarded.kind(), EventKind::PlanPaused);
        assert_eq!(forwarded.plan_id, event.plan_id);
        assert_eq!(forwarded.account_ids, event.account_ids);
        assert_eq!(forwarded.execution_id, None);
        let drift = forwarded.occurred_at - event.occurred_at;
        assert!(drift.num_milliseconds().abs() < 1, "{drift:?}");
        let EventData::PlanPaused(data) = &forwarded.data else {
            panic!("{forwarded:?}");
        };
        assert_eq!(data.plan_name, "nightly");
    }
    assert!(staged(&pool).await.is_empty());
}

#[tokio::test]
async fn a_forward_that_keeps_failing_keeps_the_row_with_its_code_and_holds_the_rest() {
    let (_db, pool) = relay_db().await;
    let first = paused_event();
    stage_committed(&pool, &first).await;
    let second = paused_event();
    stage_committed(&pool, &second).await;

    let receiver = Receiver::default();
    let relay = Relay::new(pool.clone(), fast_settings());
    let forward = receiver.forward(usize::MAX);
    // One pass: the first failure ends it, the second event waits for the next.
    assert_eq!(relay.relay_once(&forward).await.unwrap(), 0);
    assert_eq!(receiver.received().len(), 1);

    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone(), forward));
    cudly_testkit::eventually("repeated failures", Duration::from_secs(20), || async {
        let rows = staged(&pool).await;
        let all_failed_thrice = rows.iter().all(|(_, attempts, _)| *attempts >= 3);
        all_failed_thrice.then_some(rows)
    })
    .await
    .unwrap();
    cancel.cancel();
    task.await.expect("the relay stops cleanly");

    let rows = staged(&pool).await;
    assert_eq!(rows.len(), 2, "nothing is lost");
    for (_, _, last_error) in &rows {
        assert_eq!(last_error.as_deref(), Some("Unavailable"));
    }
    let ids: Vec<Uuid> = receiver.received().iter().map(|event| event.id).collect();
    assert!(ids.contains(&first.id) && ids.contains(&second.id));
}
