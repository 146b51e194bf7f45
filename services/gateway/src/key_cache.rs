//! A short-lived cache of verified API keys, so that a request with a key seen a moment
//! ago costs no database round trip (issue 22).
//!
//! It maps the SHA-256 of a key that verified (a live row of `api_keys`, or the
//! bootstrap key while it is not disabled) to its [`Principal`] and `expires_at`. An
//! entry is trusted for `CUDLY_API_KEY_CACHE_TTL` (default 5 s; 0 turns the cache off),
//! then the key is read from the database again. What that means for changes to a key:
//!
//! - Expiry: `expires_at` is checked on every hit, so an expired key is refused at once
//!   whatever the TTL.
//! - Revocation and disabling the bootstrap key drop the entry on the replica that made
//!   the change, once the change is committed (routes/keys.rs), so they take effect
//!   immediately there. Every other replica goes on accepting the key for at most the
//!   TTL: that is the price of not asking Postgres on every request.
//! - A look-up that began before an invalidation does not store what it read
//!   ([`Ticket`]): it may have read the key before the revocation committed, and
//!   storing that would bring the revoked key back for a whole TTL.
//!
//! Only keys that verified are stored, never the outcome for an unknown key, so
//! guessing keys cannot grow the cache; and it holds at most [`MAX_ENTRIES`] (more live
//! keys than that only cost look-ups again). Entries are found by digest, like the
//! database's index probe: a comparison of digests that is not constant-time tells a
//! caller nothing it could use to forge a key (that would take a SHA-256 preimage).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::{KeyHash, Principal};

/// Default time a verified key is trusted without asking the database again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// Most keys cached at once.
pub const MAX_ENTRIES: usize = 10_000;

/// A key that verified: who it authenticates, until when, and when its last use was
/// recorded.
#[derive(Debug)]
pub struct CachedKey {
    principal: Principal,
    /// Past it the key is refused; `None`: never.
    expires_at: Option<DateTime<Utc>>,
    /// Unix seconds of the last use recorded (stored or waiting to be), shared by the
    /// requests of this entry so that a busy key records a use once a minute, not once
    /// a request.
    last_use_recorded: AtomicI64,
}

impl CachedKey {
    /// Returns the entry of a key authenticating `principal` until `expires_at`, last
    /// used at `last_used_at` as stored.
    pub fn new(
        principal: Principal,
        expires_at: Option<DateTime<Utc>>,
        last_used_at: Option<DateTime<Utc>>,
    ) -> Self {
        let last_use = last_used_at.map_or(i64::MIN, |at| at.timestamp());
        Self {
            principal,
            expires_at,
            last_use_recorded: AtomicI64::new(last_use),
        }
    }

    /// Returns whom the key authenticates.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Returns whether the key has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }

    /// Returns whether a use at `now` is to be recorded: true when the last one
    /// recorded is `resolution_secs` old or more, for one of the requests racing here.
    pub fn claim_use(&self, now: DateTime<Utc>, resolution_secs: i64) -> bool {
        let now_secs = now.timestamp();
        let last = self.last_use_recorded.load(Ordering::Relaxed);
        if now_secs.saturating_sub(last) < resolution_secs {
            return false;
        }
        self.last_use_recorded
            .compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// What the cache knows of a key.
#[derive(Debug)]
pub enum Lookup {
    /// Verified less than a TTL ago and not expired.
    Valid(Arc<CachedKey>),
    /// Verified less than a TTL ago, but past its `expires_at`.
    Expired,
    /// Not cached, or cached too long ago: ask the database.
    Miss,
}

/// Taken before a key is read from the database and given back to
/// [`KeyCache::insert`], which refuses it when an invalidation ran in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// The cache of one gateway; see the module documentation.
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<KeyHash, Slot>,
    /// Bumped by every invalidation.
    generation: u64,
}

#[derive(Debug)]
struct Slot {
    key: Arc<CachedKey>,
    stored_at: Instant,
}

impl KeyCache {
    /// Returns an empty cache trusting entries for `ttl` (zero: caching nothing), of
    /// at most [`MAX_ENTRIES`] entries.
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_ENTRIES)
    }

    /// Returns an empty cache trusting entries for `ttl`, of at most `capacity` entries.
    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// Returns whether the cache stores anything at all.
    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    /// Returns what the cache knows of the key of `hash`, expiry checked at `now`.
    pub fn lookup(&self, hash: &KeyHash, now: DateTime<Utc>) -> Lookup {
        self.lookup_at(hash, Instant::now(), now)
    }

    fn lookup_at(&self, hash: &KeyHash, at: Instant, now: DateTime<Utc>) -> Lookup {
        if !self.is_enabled() {
            return Lookup::Miss;
        }
        let inner = self.read();
        let Some(slot) = inner.entries.get(hash) else {
            return Lookup::Miss;
        };
        if at.saturating_duration_since(slot.stored_at) >= self.ttl {
            return Lookup::Miss;
        }
        if slot.key.expired(now) {
            return Lookup::Expired;
        }
        Lookup::Valid(Arc::clone(&slot.key))
    }

    /// Returns the ticket of a database read starting now.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.read().generation)
    }

    /// Stores `key` under `hash`, unless an invalidation ran since `ticket` was taken
    /// (what was read may predate it).
    pub fn insert(&self, ticket: Ticket, hash: KeyHash, key: Arc<CachedKey>) {
        self.insert_at(ticket, hash, key, Instant::now());
    }

    fn insert_at(&self, ticket: Ticket, hash: KeyHash, key: Arc<CachedKey>, at: Instant) {
        if !self.is_enabled() {
            return;
        }
        let mut inner = self.write();
        if inner.generation != ticket.0 {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&hash) {
            let ttl = self.ttl;
            inner
                .entries
                .retain(|_, slot| at.saturating_duration_since(slot.stored_at) < ttl);
            if inner.entries.len() >= self.capacity {
                // Every entry is fresh: any one may go (it costs one look-up again).
                let victim = inner.entries.keys().next().copied();
                if let Some(victim) = victim {
                    inner.entries.remove(&victim);
                }
            }
        }
        inner.entries.insert(hash, Slot { key, stored_at: at });
    }

    /// Forgets the key of id `key_id` (revoked) and keeps reads begun before now out.
    pub fn invalidate_key(&self, key_id: Uuid) {
        let mut inner = self.write();
        inner.generation += 1;
        inner
            .entries
            .retain(|_, slot| slot.key.principal.key_id != Some(key_id));
    }

    /// Forgets the key of hash `hash` (the bootstrap key, disabled) and keeps reads
    /// begun before now out.
    pub fn invalidate_hash(&self, hash: &KeyHash) {
        let mut inner = self.write();
        inner.generation += 1;
        inner.entries.remove(hash);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.read().entries.len()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::auth::Role;

    const TTL: Duration = Duration::from_secs(5);

    fn principal(name: &str) -> Principal {
        Principal {
            key_id: Some(Uuid::new_v4()),
            name: name.to_owned(),
            role: Role::Viewer,
        }
    }

    fn key(name: &str, expires_at: Option<DateTime<Utc>>) -> Arc<CachedKey> {
        Arc::new(CachedKey::new(principal(name), expires_at, None))
    }

    fn hash(byte: u8) -> KeyHash {
        [byte; 32]
    }

    fn is_valid_for(lookup: Lookup, name: &str) -> bool {
        matches!(lookup, Lookup::Valid(cached) if cached.principal().name == name)
    }

    #[test]
    fn a_verified_key_is_served_until_its_ttl_runs_out() {
        let cache = KeyCache::new(TTL);
        let start = Instant::now();
        let now = Utc::now();
        assert!(matches!(
            cache.lookup_at(&hash(1), start, now),
            Lookup::Miss
        ));
        cache.insert_at(cache.ticket(), hash(1), key("ops", None), start);
        assert!(is_valid_for(cache.lookup_at(&hash(1), start, now), "ops"));
        let almost = start + TTL - Duration::from_millis(1);
        assert!(is_valid_for(cache.lookup_at(&hash(1), almost, now), "ops"));
        assert!(matches!(
            cache.lookup_at(&hash(1), start + TTL, now),
            Lookup::Miss
        ));
        assert!(
            matches!(cache.lookup_at(&hash(2), start, now), Lookup::Miss),
            "another key"
        );
    }

    #[test]
    fn an_expired_key_is_refused_even_within_the_ttl() {
        let cache = KeyCache::new(TTL);
        let start = Instant::now();
        let now = Utc::now();
        let expires_at = now + TimeDelta::seconds(1);
        cache.insert_at(
            cache.ticket(),
            hash(1),
            key("short", Some(expires_at)),
            start,
        );
        assert!(is_valid_for(cache.lookup_at(&hash(1), start, now), "short"));
        assert!(matches!(
            cache.lookup_at(&hash(1), start, expires_at),
            Lookup::Expired
        ));
        assert!(matches!(
            cache.lookup_at(&hash(1), start, expires_at + TimeDelta::seconds(1)),
            Lookup::Expired
        ));
    }

    #[test]
    fn revoking_drops_the_entry_and_keeps_an_earlier_read_out() {
        let cache = KeyCache::new(TTL);
        let start = Instant::now();
        let now = Utc::now();
        let revoked = key("revoked", None);
        let revoked_id = revoked.principal().key_id.unwrap();
        cache.insert_at(cache.ticket(), hash(1), revoked, start);
        cache.insert_at(cache.ticket(), hash(2), key("kept", None), start);

        let before_revocation = cache.ticket();
        cache.invalidate_key(revoked_id);
        assert!(matches!(
            cache.lookup_at(&hash(1), start, now),
            Lookup::Miss
        ));
        assert!(is_valid_for(cache.lookup_at(&hash(2), start, now), "kept"));

        // A read that began before the revocation may have seen the key still live.
        let stale = Arc::new(CachedKey::new(
            Principal {
                key_id: Some(revoked_id),
                name: "revoked".to_owned(),
                role: Role::Viewer,
            },
            None,
            None,
        ));
        cache.insert_at(before_revocation, hash(1), stale, start);
        assert!(matches!(
            cache.lookup_at(&hash(1), start, now),
            Lookup::Miss
        ));

        cache.insert_at(cache.ticket(), hash(3), key("later", None), start);
        assert!(is_valid_for(cache.lookup_at(&hash(3), start, now), "later"));
    }

    #[test]
    fn disabling_the_bootstrap_key_drops_it() {
        let cache = KeyCache::new(TTL);
        let start = Instant::now();
        let now = Utc::now();
        let bootstrap = Arc::new(CachedKey::new(Principal::bootstrap(), None, None));
        let before = cache.ticket();
        cache.insert_at(before, hash(9), Arc::clone(&bootstrap), start);
        assert!(is_valid_for(
            cache.lookup_at(&hash(9), start, now),
            crate::auth::BOOTSTRAP_NAME
        ));
        cache.invalidate_hash(&hash(9));
        assert!(matches!(
            cache.lookup_at(&hash(9), start, now),
            Lookup::Miss
        ));
        cache.insert_at(before, hash(9), bootstrap, start);
        assert!(matches!(
            cache.lookup_at(&hash(9), start, now),
            Lookup::Miss
        ));
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let cache = KeyCache::with_capacity(TTL, 3);
        let start = Instant::now();
        let now = Utc::now();
        for byte in 0..10 {
            cache.insert_at(cache.ticket(), hash(byte), key("k", None), start);
            assert!(cache.len() <= 3);
        }
        assert!(is_valid_for(cache.lookup_at(&hash(9), start, now), "k"));
        // Stale entries make room before fresh ones are dropped.
        let later = start + TTL;
        cache.insert_at(cache.ticket(), hash(20), key("new", None), later);
        assert_eq!(cache.len(), 1);
        // Replacing an entry of a full cache drops nothing.
        cache.insert_at(cache.ticket(), hash(21), key("k", None), later);
        cache.insert_at(cache.ticket(), hash(22), key("k", None), later);
        cache.insert_at(cache.ticket(), hash(20), key("again", None), later);
        assert_eq!(cache.len(), 3);
        assert!(is_valid_for(
            cache.lookup_at(&hash(20), later, now),
            "again"
        ));
    }

    #[test]
    fn a_zero_ttl_turns_the_cache_off() {
        let cache = KeyCache::new(Duration::ZERO);
        let start = Instant::now();
        cache.insert_at(cache.ticket(), hash(1), key("ops", None), start);
        assert_eq!(cache.len(), 0);
        assert!(matches!(
            cache.lookup_at(&hash(1), start, Utc::now()),
            Lookup::Miss
        ));
    }

    #[test]
    fn a_busy_key_records_a_use_once_a_minute() {
        let now = Utc::now();
        let never_used = CachedKey::new(principal("new"), None, None);
        assert!(never_used.claim_use(now, 60));
        assert!(!never_used.claim_use(now, 60));
        assert!(!never_used.claim_use(now + TimeDelta::seconds(59), 60));
        assert!(never_used.claim_use(now + TimeDelta::seconds(60), 60));

        let used_lately =
            CachedKey::new(principal("busy"), None, Some(now - TimeDelta::seconds(10)));
        assert!(!used_lately.claim_use(now, 60));
        let used_long_ago =
            CachedKey::new(principal("idle"), None, Some(now - TimeDelta::seconds(61)));
        assert!(used_long_ago.claim_use(now, 60));
    }
}
