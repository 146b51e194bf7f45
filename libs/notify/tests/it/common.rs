//! Helpers of the notification tests: the tables in a fresh schema of a fresh database,
//! a local HTTP receiver on 127.0.0.1 that records what it gets and answers as told,
//! channels and events, and a dispatcher with short delays.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::Utc;
use cudly_notify::event::{ApprovalRequested, PurchaseLine, Totals};
use cudly_notify::{
    ChannelCipher, ChannelDraft, ChannelKey, ChannelRules, CreatedChannel, DispatchSettings,
    Dispatcher, Event, EventData, Notification, NotificationFilter, PrivateTargets, Sender,
    approval_links,
};
use cudly_testkit::TestDb;
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

/// What the receiver answers to one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Answers 200 after this long (a receiver stuck mid-request).
    Hang(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a utf-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a json body")
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Replies to the next requests, in order; then 200, except on `/broken*` paths,
    /// which always answer 500.
    script: Mutex<VecDeque<Reply>>,
}

/// A local HTTP receiver on 127.0.0.1.
pub struct Receiver {
    pub base_url: String,
    state: Arc<ReceiverState>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> Receiver {
        let state = Arc::new(ReceiverState {
            received: Mutex::default(),
            script: Mutex::new(script.into_iter().collect()),
        });
        let router = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the receiver serves");
        });
        Receiver {
            base_url,
            state,
            task,
        }
    }

    /// Returns the URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests came in, and returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        cudly_testkit::eventually(
            &format!("{count} requests"),
            Duration::from_secs(20),
            || async {
                let received = self.received();
                (received.len() >= count).then_some(received)
            },
        )
        .await
        .unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    state.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    if path.starts_with("/broken") {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let reply = state.script.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap(),
        Some(Reply::Hang(duration)) => {
            tokio::time::sleep(duration).await;
            StatusCode::OK
        }
        None => StatusCode::OK,
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
