//! Helpers of the sweeper's integration tests: extra sweeper instances next to an
//! in-process stack, sharing its database and the executor and planner it runs.

use std::time::Duration;

use cudly_common::config::{Env, Layout};
use cudly_common::grpc::InternalAuth;
use cudly_sweeper::config::{Config, Tuning};
use cudly_sweeper::runner::Sweeper;
use cudly_testkit::TestStack;
use secrecy::ExposeSecret;

/// Returns tuning for tests: no loops, short intervals, a lock prefix of our own.
pub fn test_tuning(lock_ttl: Duration, interval: Duration) -> Tuning {
    let mut tuning = Tuning {
        run_loops: false,
        lock_ttl,
        lock_key_prefix: format!("cudly-test:{}:lock:task:", uuid::Uuid::new_v4().simple()),
        ..Tuning::default()
    };
    for value in tuning.intervals.values_mut() {
        *value = interval;
    }
    tuning
}

/// Returns a sweeper acting on `stack`'s executor and planner with `redis_url`.
pub fn extra_sweeper(stack: &TestStack, redis_url: &str, tuning: Tuning) -> Sweeper {
    let env = Env::from_pairs([
        (
            "DATABASE_URL",
            stack.db.secret_url().expose_secret().to_owned(),
        ),
        ("REDIS_URL", redis_url.to_owned()),
        ("CUDLY_INTERNAL_CALL_TIMEOUT", "10s".to_owned()),
    ]);
    let mut config = Config::read(&env, stack.secrets(), Layout::AllInOne).unwrap();
    // Accepts no caller: tests drive it directly, never over gRPC.
    config.auth = InternalAuth::new(Vec::new());
    config.executor_url = format!("http://{}", stack.stack().executor_addr());
    config.planner_url = format!("http://{}", stack.stack().planner_addr());
    config.tuning = tuning;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    cudly_sweeper::app::App::from_listener(config, listener)
        .unwrap()
        .sweeper()
}

pub fn shared_redis() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}
