//! When a purchase was sent, by two clocks. AWS stamps a commitment with its own clock,
//! which SigV4 keeps within five minutes of the sending process's clock, not of the
//! database's; `sent_at` is the database's (the common reference of every process).
//! A reconciliation that looks for the commitment of an unknown outcome looks back from
//! the earlier of the two: more doubt is safe, a missed commitment would be bought again.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A difference between the database and the sender clocks worth a warning.
pub const CLOCK_SKEW_WARNING: Duration = Duration::from_secs(60);

/// When a purchase was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentAt {
    /// By the database's clock (`sent_at`).
    pub database: DateTime<Utc>,
    /// By the sending process's clock (`sent_at_sender`); absent on attempts sent
    /// before it was recorded.
    pub sender: Option<DateTime<Utc>>,
}

impl SentAt {
    /// Returns the instant a reconciliation looks back from: the earlier clock.
    pub fn look_back_from(&self) -> DateTime<Utc> {
        match self.sender {
            Some(sender) => sender.min(self.database),
            None => self.database,
        }
    }

    /// Returns how far apart the two clocks were at the send, when it is more than
    /// [`CLOCK_SKEW_WARNING`].
    pub fn worrying_skew(&self) -> Option<Duration> {
        let sender = self.sender?;
        let skew = (self.database - sender).abs().to_std().ok()?;
        (skew > CLOCK_SKEW_WARNING).then_some(skew)
    }
}

/// Returns `instant`, read on the database's clock, on the earlier of the database and
/// the sender clocks, given both clocks' readings now.
pub fn on_earlier_clock(
    instant: DateTime<Utc>,
    database_now: DateTime<Utc>,
    sender_now: DateTime<Utc>,
) -> DateTime<Utc> {
    instant.min(instant + (sender_now - database_now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_database_clock_ahead_looks_back_from_the_sender_clock() {
        let sent = SentAt {
            database: at(600),
            sender: Some(at(0)),
        };
        assert_eq!(sent.look_back_from(), at(0));
        assert_eq!(sent.worrying_skew(), Some(Duration::from_secs(600)));
    }

    #[test]
    fn a_sender_clock_ahead_looks_back_from_the_database_clock() {
        let sent = SentAt {
            database: at(0),
            sender: Some(at(30)),
        };
        assert_eq!(sent.look_back_from(), at(0));
        assert_eq!(sent.worrying_skew(), None, "30 s is within the warning");
    }

    #[test]
    fn an_instant_moves_to_the_sender_clock_only_when_that_is_behind() {
        assert_eq!(on_earlier_clock(at(0), at(100), at(40)), at(-60));
        assert_eq!(on_earlier_clock(at(0), at(100), at(160)), at(0));
    }

    #[test]
    fn an_attempt_without_the_sender_clock_uses_the_database_clock() {
        let sent = SentAt {
            database: at(0),
            sender: None,
        };
        assert_eq!(sent.look_back_from(), at(0));
        assert_eq!(sent.worrying_skew(), None);
    }
}
