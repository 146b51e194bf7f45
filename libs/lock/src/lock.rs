use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::time::Instant;
use tracing::debug;

use crate::error::{LockError, LockResult};
use crate::fencing::FencingSource;
use crate::guard::LockGuard;

/// The key prefix of task locks: a lock named `n` lives at `cudly:lock:task:n`.
pub const DEFAULT_KEY_PREFIX: &str = "cudly:lock:task:";

/// The shortest TTL accepted: renewal runs every third of the TTL and needs some room.
const MIN_TTL: Duration = Duration::from_millis(30);

/// Extends the key's TTL only while it still holds our token.
static COMPARE_AND_EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('get', KEYS[1]) == ARGV[1] then \
             return redis.call('pexpire', KEYS[1], ARGV[2]) \
         else \
             return 0 \
         end",
    )
});

/// Deletes the key only while it still holds our token.
static COMPARE_AND_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('get', KEYS[1]) == ARGV[1] then \
             return redis.call('del', KEYS[1]) \
         else \
             return 0 \
         end",
    )
});

/// Connection and naming settings of a [`RedisLock`].
#[derive(Debug, Clone)]
pub struct LockConfig {
    /// Prepended to lock names to form Redis keys.
    pub key_prefix: String,
    /// How long one connection attempt may take.
    pub connection_timeout: Duration,
    /// How long Redis may take to answer one command.
    pub response_timeout: Duration,
    /// How many times a failed connection attempt is retried, with backoff.
    pub connection_retries: usize,
    /// The CA (PEM file) a `rediss://` server's certificate must chain to; `None`: the
    /// system's roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            connection_retries: 2,
            tls_ca_file: None,
        }
    }
}

impl LockConfig {
    /// Returns the config with another key prefix (tests use a unique one each).
    pub fn with_key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }
}

/// A client for Redis locks; cheap to clone (clones share one multiplexed connection,
/// which reconnects by itself after Redis comes back).
#[derive(Clone)]
pub struct RedisLock {
    connection: ConnectionManager,
    key_prefix: String,
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RedisLock")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    /// Connects with the default [`LockConfig`].
    pub async fn connect(redis_url: &str) -> LockResult<Self> {
        Self::connect_with_config(redis_url, LockConfig::default()).await
    }

    /// Connects to Redis, failing with [`LockError::Unavailable`] when it cannot be
    /// reached after the configured retries.
    pub async fn connect_with_config(redis_url: &str, config: LockConfig) -> LockResult<Self> {
        let client = match &config.tls_ca_file {
            Some(path) => {
                crate::tls::install_crypto_provider();
                let root_cert = std::fs::read(path).map_err(|error| LockError::TlsCa {
                    path: path.display().to_string(),
                    problem: error.kind().to_string(),
                })?;
                Client::build_with_tls(
                    redis_url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            None => {
                if redis_url.starts_with("rediss://") {
                    crate::tls::install_crypto_provider();
                }
                Client::open(redis_url)
            }
        }
        .map_err(|source| LockError::InvalidUrl { source })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connection_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(config.connection_retries)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(LockError::from_redis)?;
        debug!(key_prefix = %config.key_prefix, "connected to redis for locks");
        Ok(Self {
            connection,
            key_prefix: config.key_prefix,
        })
    }

    /// Returns the Redis key of the lock named `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.key_prefix, name)
    }

    /// Checks that Redis answers, for health reporting.
    pub async fn ping(&self) -> LockResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map_err(LockError::from_redis)?;
        Ok(())
    }

    /// Tries once to take the lock `name` for `ttl`, renewed in the background while
    /// the returned guard lives.
    ///
    /// Returns `Ok(None)` when another holder has the lock, and also when the lock was
    /// taken but lost while the fencing token was drawn (the draw outlived the TTL and
    /// someone else took the key): a guard is only returned for a lock still held after
    /// its fencing token was drawn. If the fencing source fails, the lock is released
    /// and the error returned.
    pub async fn try_acquire(
        &self,
        name: &str,
        ttl: Duration,
        fencing: &impl FencingSource,
    ) -> LockResult<Option<LockGuard>> {
        let ttl_ms = ttl_millis(ttl)?;
        let key = self.key(name);
        let holder_token = new_holder_token();
        let mut connection = self.connection.clone();

        let set_sent_at = Instant::now();
        let set_reply: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&holder_token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut connection)
            .await
            .map_err(LockError::from_redis)?;
        if set_reply.is_none() {
            debug!(%key, "lock held by another holder");
            return Ok(None);
        }

        let fencing_token = match fencing.next_token().await {
            Ok(fencing_token) => fencing_token,
            Err(error) => {
                release_best_effort(&mut connection, &key, &holder_token).await;
                return Err(error);
            }
        };

        let check_sent_at = Instant::now();
        match compare_and_extend(&mut connection, &key, &holder_token, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                debug!(
                    %key,
                    fencing_token,
                    draw_ms = check_sent_at.duration_since(set_sent_at).as_millis() as u64,
                    "lock lost while drawing the fencing token"
                );
                return Ok(None);
            }
            Err(error) => {
                release_best_effort(&mut connection, &key, &holder_token).await;
                return Err(error);
            }
        }

        debug!(%key, fencing_token, ttl_ms, "lock acquired");
        Ok(Some(LockGuard::start(
            connection,
            key,
            holder_token,
            fencing_token,
            ttl,
            valid_until(check_sent_at, ttl),
        )))
    }
}

/// Returns 128 random bits as 32 lowercase hex digits.
fn new_holder_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn ttl_millis(ttl: Duration) -> LockResult<u64> {
    if ttl < MIN_TTL {
        return Err(LockError::InvalidTtl {
            reason: "shorter than 30 ms",
        });
    }
    u64::try_from(ttl.as_millis())
        .ok()
        .filter(|millis| i64::try_from(*millis).is_ok())
        .ok_or(LockError::InvalidTtl { reason: "too long" })
}

/// Returns until when the lock is surely still ours, given that the last successful set
/// or extension was sent at `sent_at`: Redis starts the TTL when it receives the command,
/// after `sent_at`, and a margin covers the two clocks running at slightly different
/// rates.
pub(crate) fn valid_until(sent_at: Instant, ttl: Duration) -> Instant {
    let clock_drift_margin = ttl / 100 + Duration::from_millis(2);
    sent_at + ttl.saturating_sub(clock_drift_margin)
}

/// Extends the lock's TTL if it still holds `holder_token`; returns whether it did.
pub(crate) async fn compare_and_extend(
    connection: &mut ConnectionManager,
    key: &str,
    holder_token: &str,
    ttl: Duration,
) -> LockResult<bool> {
    let extended: i64 = COMPARE_AND_EXTEND
        .key(key)
        .arg(holder_token)
        .arg(ttl.as_millis() as u64)
        .invoke_async(connection)
        .await
        .map_err(LockError::from_redis)?;
    Ok(extended == 1)
}

/// Deletes the lock if it still holds `holder_token`; returns whether it did.
pub(crate) async fn compare_and_delete(
    connection: &mut ConnectionManager,
    key: &str,
    holder_token: &str,
) -> LockResult<bool> {
    let deleted: i64 = COMPARE_AND_DELETE
        .key(key)
        .arg(holder_token)
        .invoke_async(connection)
        .await
        .map_err(LockError::from_redis)?;
    Ok(deleted == 1)
}

/// Releases a lock on a failed acquire; a failure only means the key lives out its TTL.
async fn release_best_effort(connection: &mut ConnectionManager, key: &str, holder_token: &str) {
    if let Err(error) = compare_and_delete(connection, key, holder_token).await {
        debug!(%key, %error, "lock release after failed acquire did not succeed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_tokens_are_32_hex_digits_and_differ() {
        let first = new_holder_token();
        let second = new_holder_token();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|digit| digit.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }

    #[test]
    fn ttls_below_the_minimum_are_refused() {
        assert!(matches!(
            ttl_millis(Duration::from_millis(5)),
            Err(LockError::InvalidTtl { .. })
        ));
        assert_eq!(ttl_millis(Duration::from_millis(300)).unwrap(), 300);
    }

    #[test]
    fn validity_ends_before_the_ttl_runs_out_in_redis() {
        let sent_at = Instant::now();
        let until = valid_until(sent_at, Duration::from_millis(1000));
        assert_eq!(until - sent_at, Duration::from_millis(988));
    }

    #[test]
    fn default_config_uses_the_task_lock_prefix() {
        let config = LockConfig::default().with_key_prefix("test:");
        assert_eq!(config.key_prefix, "test:");
        assert_eq!(LockConfig::default().key_prefix, "cudly:lock:task:");
    }
}
