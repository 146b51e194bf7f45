//! Test helpers shared with the services that use the lock.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::LockResult;
use crate::fencing::FencingSource;

/// A process-local fencing source backed by an atomic counter.
///
/// Only for tests: it starts over on every process start, which is exactly what a
/// production fencing source must never do.
#[derive(Debug, Default)]
pub struct InMemoryFencing {
    last: AtomicI64,
}

impl InMemoryFencing {
    /// Returns a source whose first token is `last + 1`.
    pub fn starting_after(last: i64) -> Self {
        Self {
            last: AtomicI64::new(last),
        }
    }

    /// Returns the last token handed out (or the starting value if none was).
    pub fn last(&self) -> i64 {
        self.last.load(Ordering::SeqCst)
    }
}

impl FencingSource for InMemoryFencing {
    async fn next_token(&self) -> LockResult<i64> {
        Ok(self.last.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_fencing_hands_out_increasing_tokens() {
        let fencing = InMemoryFencing::starting_after(41);
        assert_eq!(fencing.next_token().await.unwrap(), 42);
        assert_eq!(fencing.next_token().await.unwrap(), 43);
        assert_eq!(fencing.last(), 43);
    }
}
