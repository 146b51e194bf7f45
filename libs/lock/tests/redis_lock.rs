//! Tests against the real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
//! Redis is shared, so every test uses its own key prefix and cleans up after itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cudly_lock::testing::InMemoryFencing;
use cudly_lock::{FencingSource, LockConfig, LockError, LockResult, RedisLock};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique_prefix() -> String {
    format!("cudly:test:lock:{}:", uuid::Uuid::new_v4())
}

/// A lock client whose keys live under a prefix no other test uses.
async fn unique_lock() -> RedisLock {
    RedisLock::connect_with_config(
        &redis_url(),
        LockConfig::default().with_key_prefix(unique_prefix()),
    )
    .await
    .unwrap()
}

async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn raw_get(key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut raw_connection().await)
        .await
        .unwrap()
}

async fn raw_delete(key: &str) {
    redis::cmd("DEL")
        .arg(key)
        .exec_async(&mut raw_connection().await)
        .await
        .unwrap();
}

/// A fencing source that takes a while, like a slow database.
struct SlowFencing {
    inner: InMemoryFencing,
    delay: Duration,
}

impl FencingSource for SlowFencing {
    async fn next_token(&self) -> LockResult<i64> {
        tokio::time::sleep(self.delay).await;
        self.inner.next_token().await
    }
}

struct FailingFencing;

impl FencingSource for FailingFencing {
    async fn next_token(&self) -> LockResult<i64> {
        Err(LockError::fencing("sequence does not exist"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_contenders_never_overlap() {
    let prefix = unique_prefix();
    let config = LockConfig::default().with_key_prefix(prefix);
    let first_lock = RedisLock::connect_with_config(&redis_url(), config.clone())
        .await
        .unwrap();
    let key = first_lock.key("overlap");
    let fencing = Arc::new(InMemoryFencing::default());
    let intervals: Arc<Mutex<Vec<(Instant, Instant, i64)>>> = Arc::default();
    let inside = Arc::new(AtomicBool::new(false));

    let mut contenders = Vec::new();
    for contender in 0..50 {
        // Half share one client, half have their own connection, like separate processes.
        let lock = if contender % 2 == 0 {
            first_lock.clone()
        } else {
            RedisLock::connect_with_config(&redis_url(), config.clone())
                .await
                .unwrap()
        };
        let fencing = fencing.clone();
        let intervals = intervals.clone();
        let inside = inside.clone();
        contenders.push(tokio::spawn(async move {
            loop {
                let guard_opt = lock
                    .try_acquire("overlap", Duration::from_secs(5), &fencing)
                    .await
                    .unwrap();
                let Some(guard) = guard_opt else {
                    tokio::time::sleep(Duration::from_millis(rand::random_range(1..=5))).await;
                    continue;
                };
                let enter = Instant::now();
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders inside");
                tokio::time::sleep(Duration::from_millis(3)).await;
                inside.store(false, Ordering::SeqCst);
                let leave = Instant::now();
                intervals
                    .lock()
                    .unwrap()
                    .push((enter, leave, guard.fencing_token()));
                assert!(guard.release().await.unwrap());
                return;
            }
        }));
    }
    for contender in contenders {
        contender.await.unwrap();
    }

    let mut intervals = intervals.lock().unwrap().clone();
    assert_eq!(intervals.len(), 50);
    intervals.sort_by_key(|(enter, _, _)| *enter);
    let overlaps = intervals
        .windows(2)
        .filter(|pair| pair[1].0 < pair[0].1)
        .count();
    assert_eq!(overlaps, 0);
    assert!(
        intervals.windows(2).all(|pair| pair[1].2 > pair[0].2),
        "fencing tokens grow with each holder"
    );
    assert_eq!(raw_get(&key).await, None);
}

#[tokio::test]
async fn holder_that_stops_renewing_loses_the_lock_and_the_next_fencing_token_is_greater() {
    let lock = unique_lock().await;
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_millis(300);

    let paused = lock
        .try_acquire("paused", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    let acquired_at = Instant::now();
    paused.stop_renewing();
    assert!(paused.is_held());
    assert!(
        lock.try_acquire("paused", ttl, &fencing)
            .await
            .unwrap()
            .is_none()
    );

    tokio::time::timeout(Duration::from_secs(2), paused.lost())
        .await
        .expect("a holder that stops renewing learns it lost the lock");
    assert!(acquired_at.elapsed() >= ttl / 2);
    assert!(!paused.is_held());
    assert!(paused.lost_token().is_cancelled());

    let next = loop {
        if let Some(guard) = lock.try_acquire("paused", ttl, &fencing).await.unwrap() {
            break guard;
        }
        assert!(
            acquired_at.elapsed() < Duration::from_secs(2),
            "lock never expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(next.fencing_token() > paused.fencing_token());
    assert!(!paused.check_held().await.unwrap());
    assert!(next.check_held().await.unwrap());

    assert!(!paused.release().await.unwrap());
    assert!(next.release().await.unwrap());
}

#[tokio::test]
async fn release_never_deletes_a_lock_another_holder_owns() {
    let lock = unique_lock().await;
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_millis(200);

    let stale = lock
        .try_acquire("owned", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    stale.stop_renewing();
    stale.lost().await;
    let owner = loop {
        if let Some(guard) = lock.try_acquire("owned", ttl, &fencing).await.unwrap() {
            break guard;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    assert!(!stale.release().await.unwrap());
    assert_eq!(
        raw_get(owner.key()).await.as_deref(),
        Some(owner.holder_token())
    );
    assert!(owner.is_held());
    let key = owner.key().to_owned();
    assert!(owner.release().await.unwrap());
    assert_eq!(raw_get(&key).await, None);
}

#[tokio::test]
async fn unreachable_redis_gives_a_clear_error_without_the_url() {
    let started = Instant::now();
    let error = RedisLock::connect("redis://:hunter2@127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::Unavailable { .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert_eq!(error.to_string(), "redis unavailable");
    let mut chain = String::new();
    let mut source_opt: Option<&dyn std::error::Error> = Some(&error);
    while let Some(source) = source_opt {
        chain.push_str(&source.to_string());
        source_opt = source.source();
    }
    assert!(!chain.contains("hunter2"), "{chain}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn malformed_redis_url_is_an_invalid_url_error() {
    let error = RedisLock::connect("http://:hunter2@example")
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::InvalidUrl { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("hunter2"));
}

#[tokio::test]
async fn ping_answers_when_redis_is_up() {
    unique_lock().await.ping().await.unwrap();
}

#[tokio::test]
async fn renewal_keeps_the_lock_beyond_its_ttl() {
    let lock = unique_lock().await;
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_millis(300);

    let guard = lock
        .try_acquire("renewed", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(ttl * 3).await;
    assert!(guard.is_held());
    assert!(guard.check_held().await.unwrap());
    assert!(
        lock.try_acquire("renewed", ttl, &fencing)
            .await
            .unwrap()
            .is_none()
    );
    assert!(guard.release().await.unwrap());
}

#[tokio::test]
async fn released_lock_can_be_taken_again_at_once() {
    let lock = unique_lock().await;
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_secs(5);

    let first = lock
        .try_acquire("again", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.holder_token().len(), 32);
    assert!(first.release().await.unwrap());
    let second = lock
        .try_acquire("again", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    assert!(second.fencing_token() > 1);
    assert!(second.release().await.unwrap());
}

#[tokio::test]
async fn renewal_marks_the_guard_lost_when_another_holder_takes_the_key() {
    let lock = unique_lock().await;
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_millis(300);

    let guard = lock
        .try_acquire("stolen", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    let lost_token = guard.lost_token();
    redis::cmd("SET")
        .arg(guard.key())
        .arg("someone-else")
        .arg("PX")
        .arg(5_000)
        .exec_async(&mut raw_connection().await)
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(1), guard.lost())
        .await
        .expect("renewal notices the key is no longer ours");
    assert!(lost_token.is_cancelled());
    assert!(!guard.is_held());
    let key = guard.key().to_owned();
    assert!(!guard.release().await.unwrap());
    assert_eq!(raw_get(&key).await.as_deref(), Some("someone-else"));
    raw_delete(&key).await;
}

#[tokio::test]
async fn fencing_draw_that_outlives_the_ttl_yields_no_guard_when_another_holder_took_the_lock() {
    let lock = unique_lock().await;
    let ttl = Duration::from_millis(100);
    let slow = SlowFencing {
        inner: InMemoryFencing::default(),
        delay: Duration::from_millis(400),
    };
    let fast = InMemoryFencing::starting_after(1_000);

    let slow_lock = lock.clone();
    let slow_attempt = tokio::spawn(async move { slow_lock.try_acquire("slow", ttl, &slow).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let other = loop {
        if let Some(guard) = lock
            .try_acquire("slow", Duration::from_secs(5), &fast)
            .await
            .unwrap()
        {
            break guard;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    assert!(slow_attempt.await.unwrap().unwrap().is_none());
    assert!(other.check_held().await.unwrap());
    assert!(other.release().await.unwrap());
}

#[tokio::test]
async fn failing_fencing_source_returns_its_error_and_frees_the_lock() {
    let lock = unique_lock().await;
    let ttl = Duration::from_secs(5);

    let error = lock
        .try_acquire("fencing", ttl, &FailingFencing)
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::Fencing { .. }), "{error:?}");
    assert_eq!(raw_get(&lock.key("fencing")).await, None);

    let guard = lock
        .try_acquire("fencing", ttl, &InMemoryFencing::default())
        .await
        .unwrap()
        .unwrap();
    assert!(guard.release().await.unwrap());
}

#[tokio::test]
async fn dropped_guard_stops_renewing_and_the_key_expires() {
    let lock = unique_lock().await;
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_millis(150);

    let guard = lock
        .try_acquire("dropped", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    let key = guard.key().to_owned();
    let lost_token = guard.lost_token();
    drop(guard);
    assert!(lost_token.is_cancelled());
    assert!(raw_get(&key).await.is_some());
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(raw_get(&key).await, None);
}

#[tokio::test]
async fn too_short_ttl_is_refused() {
    let lock = unique_lock().await;
    let error = lock
        .try_acquire(
            "short",
            Duration::from_millis(1),
            &InMemoryFencing::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::InvalidTtl { .. }), "{error:?}");
}

/// A TCP proxy to Redis that can be cut, to make Redis unreachable mid-hold.
struct CuttableProxy {
    url: String,
    accept_task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept_task = tokio::spawn(async move {
            // Dropping the set when this task is aborted aborts every proxied connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                connections.spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect("127.0.0.1:6379")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self {
            url: format!("redis://127.0.0.1:{port}"),
            accept_task,
        }
    }

    async fn cut(self) {
        self.accept_task.abort();
        let _ = self.accept_task.await;
    }
}

#[tokio::test]
async fn guard_turns_lost_when_redis_stays_unreachable_for_the_ttl() {
    let proxy = CuttableProxy::start().await;
    let config = LockConfig::default().with_key_prefix(unique_prefix());
    let lock = RedisLock::connect_with_config(&proxy.url, config)
        .await
        .unwrap();
    let fencing = InMemoryFencing::default();
    let ttl = Duration::from_millis(300);

    let guard = lock
        .try_acquire("cut", ttl, &fencing)
        .await
        .unwrap()
        .unwrap();
    let key = guard.key().to_owned();
    proxy.cut().await;
    let cut_at = Instant::now();

    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("a holder cut off from redis gives the lock up after its ttl");
    assert!(cut_at.elapsed() <= ttl + Duration::from_millis(250));
    assert!(!guard.is_held());
    assert!(!guard.check_held().await.unwrap());

    let error = lock.ping().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    let error = lock.try_acquire("cut", ttl, &fencing).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(guard.release().await.unwrap_err().is_unavailable());

    tokio::time::sleep(ttl).await;
    assert_eq!(raw_get(&key).await, None);
}
