//! The lease fence in SQL: a run whose lease was taken over (or cleared by a safe-fail)
//! can no longer claim items or write outcomes; the sweeper's fencing tokens only go up.

use chrono::Utc;
use cudly_executor::domain::quotes::QuoteTotal;
use cudly_executor::domain::status::{ExecutionStatus, Source};
use cudly_executor::repo::attempts::{self, NewAttempt};
use cudly_executor::repo::executions::{
    self, Identities, NewChild, NewItem, NewRoot, StatusChange,
};
use cudly_executor::repo::{Lease, items};
use cudly_testkit::TestDb;
use cudly_vocabulary::Recommendation;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn migrated_pool(db: &TestDb) -> sqlx::PgPool {
    let pool = cudly_common::db::lazy_pool(&db.secret_url(), "executor", 4).unwrap();
    cudly_common::db::migrate(&pool, &MIGRATOR, "executor")
        .await
        .unwrap();
    pool
}

fn line() -> Recommendation {
    serde_json::from_value(crate::common::recommendation(
        cudly_aws::purchase::AwsService::Rds,
    ))
    .unwrap()
}

/// A quote of the test line.
fn quote() -> cudly_aws::purchase::Quote {
    cudly_aws::purchase::Quote {
        offering_id: "offering-1".to_owned(),
        currency: "USD".to_owned(),
        fixed_price: 100.0,
        recurring_hourly: 0.0,
        count: 1,
        term_months: 12,
    }
}

/// Inserts a running root and child under lease owner "A", with one pending item.
async fn running_root(pool: &sqlx::PgPool) -> (Uuid, Uuid, String) {
    let mut conn = pool.acquire().await.unwrap();
    let root_id = Uuid::new_v4();
    let child_id = Uuid::new_v4();
    let account = Uuid::new_v4();
    let recommendations = vec![line()];
    let quote = quote();
    let total = QuoteTotal::of([&quote]).unwrap();
    assert!(
        executions::insert_root(
            &mut conn,
            &NewRoot {
                id: root_id,
                plan_id: None,
                status: ExecutionStatus::Running,
                lineage_key: "lineage",
                creation_key: None,
                step_number: None,
                scheduled_date: None,
                recommendations: &recommendations,
                targets: &[account],
                token_hash: None,
                approval_expires_at: None,
                approved_by: Some("test"),
                created_by: "test",
                source: Source::Api,
                identities: Identities::default(),
                quote: &total,
                sized_from: None,
            },
        )
        .await
        .unwrap()
    );
    let token = cudly_common::idempotency::derive_token("lineage:child", 0);
    executions::insert_child(
        &mut conn,
        &NewChild {
            id: child_id,
            parent_id: root_id,
            plan_id: None,
            account_id: account,
            status: ExecutionStatus::Running,
            lineage_key: "lineage:child",
            step_number: None,
            scheduled_date: None,
            approved_by: Some("test"),
            created_by: "test",
            source: Source::Api,
            identities: Identities::default(),
            quote: total.clone(),
            items: vec![NewItem {
                index: 0,
                recommendation: &recommendations[0],
                token: token.clone(),
                quote: &quote,
            }],
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE executions SET lease_owner = 'A', heartbeat_at = now() WHERE id = $1 OR parent_id = $1")
        .bind(root_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    (root_id, child_id, token)
}

#[tokio::test]
async fn a_run_whose_lease_was_taken_over_can_no_longer_claim_items_or_write_outcomes() {
    let db = TestDb::create().await.unwrap();
    let pool = migrated_pool(&db).await;
    let (root_id, child_id, token) = running_root(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let lease_a = Lease {
        root_id,
        owner: "A".to_owned(),
    };
    let lease_b = Lease {
        root_id,
        owner: "B".to_owned(),
    };
    let attempt = NewAttempt {
        token: &token,
        child_id,
        item_index: 0,
        account_id: Uuid::new_v4(),
        service: "rds",
    };
    assert!(
        items::claim(&mut conn, &lease_a, child_id, 0)
            .await
            .unwrap()
    );
    assert!(
        attempts::insert_if_absent(&mut conn, &lease_a, &attempt)
            .await
            .unwrap()
            .is_some()
    );

    // A re-drive takes the (stale) lease over.
    let takeover = StatusChange {
        set_lease: Some(Some("B")),
        require_heartbeat_before: Some(Utc::now() + chrono::Duration::hours(1)),
        bump_attempt: true,
        ..StatusChange::new(
            root_id,
            &[ExecutionStatus::Running],
            ExecutionStatus::Running,
            "sweeper",
        )
    };
    assert!(
        executions::change_status(&mut conn, &takeover)
            .await
            .unwrap()
            .applied()
    );

    // The old owner is fenced out of every write.
    assert!(!executions::renew_lease(&mut conn, &lease_a).await.unwrap());
    assert!(
        attempts::mark_sent(&mut conn, &lease_a, &token, "offer", chrono::Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !attempts::mark_bought(&mut conn, &lease_a, &token, "c-1")
            .await
            .unwrap()
    );
    assert!(
        !attempts::mark_failed(&mut conn, &lease_a, &token, "x")
            .await
            .unwrap()
    );
    assert!(
        !items::finish(
            &mut conn,
            &lease_a,
            child_id,
            0,
            cudly_executor::domain::status::ItemStatus::Bought,
            Some("c-1"),
            None
        )
        .await
        .unwrap()
    );
    let other = cudly_common::idempotency::derive_token("other", 0);
    assert!(
        attempts::insert_if_absent(
            &mut conn,
            &lease_a,
            &NewAttempt {
                token: &other,
                ..attempt.clone()
            }
        )
        .await
        .unwrap()
        .is_none()
    );
    let child_end = StatusChange {
        require_owner: Some("A"),
        require_root_lease: Some(&lease_a),
        ..StatusChange::new(
            child_id,
            &[ExecutionStatus::Running],
            ExecutionStatus::Completed,
            "executor",
        )
    };
    assert!(
        !executions::change_status(&mut conn, &child_end)
            .await
            .unwrap()
            .applied()
    );

    // The new owner claims the child, then the item, and takes the unsent attempt over.
    assert!(executions::renew_lease(&mut conn, &lease_b).await.unwrap());
    assert!(
        !items::claim(&mut conn, &lease_b, child_id, 0)
            .await
            .unwrap(),
        "the child first"
    );
    let child_claim = StatusChange {
        require_root_lease: Some(&lease_b),
        set_lease: Some(Some("B")),
        ..StatusChange::new(
            child_id,
            &[ExecutionStatus::Running],
            ExecutionStatus::Running,
            "executor",
        )
    };
    assert!(
        executions::change_status(&mut conn, &child_claim)
            .await
            .unwrap()
            .applied()
    );
    assert!(
        items::claim(&mut conn, &lease_b, child_id, 0)
            .await
            .unwrap()
    );
    let taken = attempts::take_over(&mut conn, &lease_b, &token, child_id, Some("A"), None)
        .await
        .unwrap()
        .expect("taken over");
    assert_eq!(taken.lease_owner.as_deref(), Some("B"));
    assert!(
        attempts::mark_sent(&mut conn, &lease_b, &token, "offer", chrono::Utc::now())
            .await
            .unwrap()
            .is_some()
    );
    // Once sent, the old owner's view of the attempt no longer matches.
    assert!(
        attempts::take_over(&mut conn, &lease_a, &token, child_id, Some("B"), None)
            .await
            .unwrap()
            .is_none()
    );

    // A safe-fail clears the lease: nobody writes any more.
    let safe_fail = StatusChange {
        set_lease: Some(None),
        error: Some("verify in the cloud console, then retry"),
        ..StatusChange::new(
            root_id,
            &[ExecutionStatus::Running],
            ExecutionStatus::Failed,
            "sweeper",
        )
    };
    assert!(
        executions::change_status(&mut conn, &safe_fail)
            .await
            .unwrap()
            .applied()
    );
    assert!(!executions::renew_lease(&mut conn, &lease_b).await.unwrap());
    assert!(
        !attempts::mark_bought(&mut conn, &lease_b, &token, "c-1")
            .await
            .unwrap()
    );
    let transitions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM status_transitions WHERE execution_id = $1")
            .bind(root_id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(transitions, 2, "each root change wrote its transition row");
}

#[tokio::test]
async fn a_fencing_token_is_refused_when_lower_accepted_when_equal_and_recorded_when_higher() {
    let db = TestDb::create().await.unwrap();
    let pool = migrated_pool(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    assert!(
        executions::check_fencing(&mut conn, "recover_stranded", 7)
            .await
            .unwrap()
    );
    assert!(
        executions::check_fencing(&mut conn, "recover_stranded", 7)
            .await
            .unwrap()
    );
    assert!(
        !executions::check_fencing(&mut conn, "recover_stranded", 6)
            .await
            .unwrap()
    );
    assert!(
        executions::check_fencing(&mut conn, "recover_stranded", 9)
            .await
            .unwrap()
    );
    assert!(
        !executions::check_fencing(&mut conn, "recover_stranded", 8)
            .await
            .unwrap()
    );
    assert!(
        executions::check_fencing(&mut conn, "expire_pending", 1)
            .await
            .unwrap(),
        "per task"
    );
}

#[tokio::test]
async fn a_lineage_holds_at_most_one_live_root() {
    let db = TestDb::create().await.unwrap();
    let pool = migrated_pool(&db).await;
    let (root_id, _, _) = running_root(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let second = NewRoot {
        id: Uuid::new_v4(),
        plan_id: None,
        status: ExecutionStatus::Approved,
        lineage_key: "lineage",
        creation_key: None,
        step_number: None,
        scheduled_date: None,
        recommendations: &[line()],
        targets: &[Uuid::new_v4()],
        token_hash: None,
        approval_expires_at: None,
        approved_by: Some("test"),
        created_by: "test",
        source: Source::Retry,
        identities: Identities::default(),
        quote: &QuoteTotal::of([&quote()]).unwrap(),
        sized_from: None,
    };
    assert!(
        !executions::insert_root(&mut conn, &second).await.unwrap(),
        "the live root blocks it"
    );
    sqlx::query("UPDATE executions SET status = 'failed' WHERE id = $1")
        .bind(root_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(
        executions::insert_root(&mut conn, &second).await.unwrap(),
        "once it ended"
    );
}
