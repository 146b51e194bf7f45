//! A Redis distributed lock with fencing tokens.
//!
//! A lock is a Redis key (`cudly:lock:task:<name>` by default) set with `SET NX PX` to a
//! random 128-bit holder token. While a [`LockGuard`] lives, a background task extends the
//! key's TTL every third of the TTL with a compare-and-extend script, and marks the guard
//! lost when the key is no longer ours or when no extension succeeded before the TTL
//! would have run out. Release is a compare-and-delete script, so a holder never deletes a
//! lock another holder owns.
//!
//! After taking the key, [`RedisLock::try_acquire`] draws a fencing token from the
//! [`FencingSource`] it is given (a Postgres sequence in this system, never Redis: Redis
//! here keeps nothing on disk, so a counter there could go backwards) and then checks
//! with compare-and-extend that the lock is still held, because the draw may have taken
//! longer than the TTL. A guard is only handed out for a lock that was still held after
//! its fencing token was drawn, so fencing tokens grow strictly from one holder to the
//! next.
//!
//! Dropping a guard without calling [`LockGuard::release`] only stops renewing: the key
//! stays in Redis until its TTL runs out.

mod error;
mod fencing;
mod guard;
mod lock;
pub mod testing;
pub mod tls;

pub use error::{LockError, LockResult};
pub use fencing::FencingSource;
pub use guard::LockGuard;
pub use lock::{DEFAULT_KEY_PREFIX, LockConfig, RedisLock};
