use std::future::Future;
use std::sync::Arc;

use crate::error::LockResult;

/// A source of fencing tokens: strictly increasing numbers that survive restarts.
///
/// In this system it is a Postgres sequence. It must never be a Redis counter: Redis
/// here keeps nothing on disk, so a counter there could go backwards after a restart.
/// Implementations wrap their own errors with [`crate::LockError::fencing`].
pub trait FencingSource: Send + Sync {
    /// Returns the next token, greater than every token returned before.
    fn next_token(&self) -> impl Future<Output = LockResult<i64>> + Send;
}

impl<T: FencingSource + ?Sized> FencingSource for &T {
    fn next_token(&self) -> impl Future<Output = LockResult<i64>> + Send {
        (**self).next_token()
    }
}

impl<T: FencingSource + ?Sized> FencingSource for Arc<T> {
    fn next_token(&self) -> impl Future<Output = LockResult<i64>> + Send {
        (**self).next_token()
    }
}
