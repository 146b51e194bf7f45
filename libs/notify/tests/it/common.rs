//! Helpers of the notification tests: the tables in a fresh schema of a fresh database,
//! channels and events, and a dispatcher with short delays; the local HTTP receiver is
//! the testkit's.

use std::time::Duration;

use chrono::Utc;
use cudly_notify::event::{ApprovalRequested, PurchaseLine, Totals};
use cudly_notify::{
    ChannelCipher, ChannelDraft, ChannelKey, ChannelRules, CreatedChannel, DispatchSettings,
    Dispatcher, Event, EventData, Notification, NotificationFilter, PrivateTargets, Sender,
    approval_links,
};
use cudly_testkit::TestDb;
pub use cudly_testkit::receiver::{Receiver, Reply};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The schema the tests put the tables in (any service's would do).
pub const SCHEMA: &str = "notify";
/// The approval token of [`approval_event`]: no broadcast body may contain it.
pub const CANARY_TOKEN: &str = "5ecre7c4n4ry0000111122223333444455556666777788889999aaaabbbbcccc";
/// A webhook signing secret the tests know.
pub const SECRET: &str = "test-signing-secret-0123456789abcdef";

/// A fresh database with the notification tables, and a cipher for its secrets.
pub struct World {
    pub db: TestDb,
    pub pool: PgPool,
    pub cipher: ChannelCipher,
}

impl World {
    pub async fn new() -> World {
        let db = TestDb::create().await.expect("a test database");
        let pool = pool_of(&db).await;
        sqlx::raw_sql("CREATE SCHEMA notify")
            .execute(&pool)
            .await
            .expect("the schema");
        sqlx::raw_sql(cudly_notify::SCHEMA_SQL)
            .execute(&pool)
            .await
            .expect("the notification tables");
        World {
            db,
            pool,
            cipher: ChannelCipher::new(ChannelKey::generate(), None),
        }
    }

    /// Creates a channel under dev-mode rules (targets on 127.0.0.1 allowed).
    pub async fn add_channel(&self, draft: ChannelDraft) -> CreatedChannel {
        let mut conn = self.pool.acquire().await.unwrap();
        cudly_notify::create_channel(&mut conn, &self.cipher, dev_rules(), draft)
            .await
            .expect("the channel is created")
    }

    /// Enqueues `event` in a transaction and commits it, as a service does with the
    /// change that causes the event.
    pub async fn enqueue_committed(&self, event: &Event) -> usize {
        let mut tx = self.pool.begin().await.unwrap();
        let deliveries = cudly_notify::enqueue(&mut tx, &self.cipher, event)
            .await
            .expect("the event is enqueued");
        tx.commit().await.unwrap();
        deliveries
    }

    /// Returns the notifications of every execution and channel.
    pub async fn notifications(&self) -> Vec<Notification> {
        let mut conn = self.pool.acquire().await.unwrap();
        cudly_notify::list_notifications(
            &mut conn,
            NotificationFilter {
                execution_id: None,
                channel_id: None,
                limit: 1000,
            },
        )
        .await
        .unwrap()
    }

    /// Returns a dispatcher over this database, sending under `private_targets`.
    pub fn dispatcher(
        &self,
        pool: PgPool,
        private_targets: PrivateTargets,
        settings: DispatchSettings,
    ) -> Dispatcher {
        let sender = Sender::new(private_targets, settings.send_timeout, None).unwrap();
        Dispatcher::new(pool, self.cipher.clone(), sender, settings).unwrap()
    }
}

/// Opens a pool on `db` whose connections use the test schema.
pub async fn pool_of(db: &TestDb) -> PgPool {
    db.pool(SCHEMA).await.expect("a pool on the test database")
}

pub fn dev_rules() -> ChannelRules {
    ChannelRules {
        private_targets: PrivateTargets::Allowed,
        email_enabled: false,
    }
}

/// Short delays, so that retries and lost leases play out in a second or two.
pub fn fast_settings() -> DispatchSettings {
    DispatchSettings {
        poll_interval: Duration::from_millis(50),
        batch_size: 32,
        concurrency: 4,
        lease: Duration::from_secs(4),
        send_timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        max_attempts: 5,
        failing_after: 3,
    }
}

/// A webhook channel on `url` wanting approval requests, signed with [`SECRET`].
pub fn webhook(name: &str, url: &str, private: bool) -> ChannelDraft {
    ChannelDraft {
        name: name.to_owned(),
        kind: "webhook".to_owned(),
        target: SecretString::from(url),
        secret: Some(SecretString::from(SECRET)),
        events: vec!["approval_requested".to_owned()],
        plan_ids: Vec::new(),
        account_ids: Vec::new(),
        private,
    }
}

/// An approval request whose link carries [`CANARY_TOKEN`].
pub fn approval_event() -> Event {
    let execution_id = Uuid::new_v4();
    let links = approval_links(
        &"https://cudly.example.com".parse().unwrap(),
        execution_id,
        &SecretString::from(CANARY_TOKEN),
    )
    .unwrap();
    Event::new(EventData::ApprovalRequested(ApprovalRequested {
        lines: vec![PurchaseLine {
            account: "prod (123456789012)".to_owned(),
            service: "rds".to_owned(),
            region: "us-east-1".to_owned(),
            resource_type: "db.r6g.large".to_owned(),
            count: 2,
            term_years: 1,
            payment: "partial-upfront".to_owned(),
            upfront: 1000.0,
            monthly: 50.0,
        }],
        totals: Totals {
            currency: "USD".to_owned(),
            upfront: 1000.0,
            monthly: 50.0,
            total_commitment: 1600.0,
        },
        requested_by: "key:ops".to_owned(),
        expires_at: Utc::now() + chrono::Duration::days(7),
        page_url: links.page_url,
        approval_url: Some(links.approval_url),
    }))
    .for_execution(execution_id)
    .for_accounts([Uuid::new_v4()])
}

/// A dispatcher running in its own task.
pub struct Running {
    pub cancel: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl Running {
    pub fn start(dispatcher: Dispatcher) -> Running {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(dispatcher.run(cancel.clone()));
        Running { cancel, handle }
    }

    /// Stops it the way a shutdown does: it finishes the batch in hand.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.handle.await.expect("the dispatcher stops cleanly");
    }

    /// Kills it the way a crash does: whatever it was sending is dropped mid-way.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Waits until `probe` finds what it looks for in the notifications.
pub async fn wait_for_notifications<T>(
    world: &World,
    what: &str,
    probe: impl Fn(&[Notification]) -> Option<T>,
) -> T {
    cudly_testkit::eventually(what, Duration::from_secs(20), || async {
        probe(&world.notifications().await)
    })
    .await
    .unwrap()
}
