//! Postgres and Redis over TLS, with certificates generated in the test: the pool every
//! service uses connects with `sslmode=verify-full` to a server whose certificate
//! chains to the given root, and refuses one that does not; the sweeper's Redis locks
//! connect over `rediss://` likewise. A server that accepts only TLS refuses a
//! plaintext client.

use cudly_common::db;
use cudly_lock::{LockConfig, RedisLock};
use cudly_testkit::tls::TestPki;
use cudly_testkit::{PrivatePostgres, PrivateRedis};
use secrecy::SecretString;

fn url_with(base: &str, query: &str) -> SecretString {
    SecretString::from(format!("{base}?{query}"))
}

async fn ping(url: SecretString) -> Result<(), String> {
    let pool = db::lazy_pool(&url, "public", 1).map_err(|error| error.to_string())?;
    let result = db::ping(&pool).await.map_err(|error| error.to_string());
    pool.close().await;
    result
}

#[tokio::test]
async fn postgres_verify_full_accepts_the_right_ca_and_refuses_a_wrong_one_or_plaintext() {
    let pki = TestPki::generate().unwrap();
    let postgres = PrivatePostgres::start_tls(&pki).await.unwrap();
    let base = postgres.url("postgres");
    let ca = pki.ca_file().display().to_string();
    let other = pki.other_ca_file().display().to_string();

    ping(url_with(
        &base,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-full with the server's CA connects");
    let localhost = base.replace("127.0.0.1", "localhost");
    ping(url_with(
        &localhost,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect("the certificate names localhost too");

    let wrong_ca = ping(url_with(
        &base,
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ))
    .await;
    assert!(
        wrong_ca.is_err(),
        "a server whose certificate the root did not sign is refused"
    );
    let plaintext = ping(url_with(&base, "sslmode=disable")).await;
    let refusal = plaintext.expect_err("the server accepts TLS only");
    assert!(!refusal.is_empty());
}

#[tokio::test]
async fn redis_over_tls_accepts_the_right_ca_and_refuses_a_wrong_one_or_plaintext() {
    let pki = TestPki::generate().unwrap();
    let redis = PrivateRedis::start_tls(&pki).await.unwrap();
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let config = |ca: Option<std::path::PathBuf>| LockConfig {
        tls_ca_file: ca,
        ..LockConfig::default().with_key_prefix("cudly-tls-test:")
    };

    let lock = RedisLock::connect_with_config(&url, config(Some(pki.ca_file())))
        .await
        .expect("rediss with the server's CA connects");
    lock.ping().await.expect("and answers");

    let wrong = RedisLock::connect_with_config(&url, config(Some(pki.other_ca_file()))).await;
    assert!(
        wrong.is_err(),
        "a server whose certificate the root did not sign is refused"
    );
    let plaintext =
        RedisLock::connect_with_config(&url.replace("rediss://", "redis://"), config(None)).await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(lock) => lock.ping().await.is_err(),
    };
    assert!(
        refused,
        "a plaintext client gets nothing from a TLS-only server"
    );
}
