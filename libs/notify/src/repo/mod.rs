//! The SQL of the notification tables (`sql/notifications.sql`), every function on the
//! caller's connection or pool.

pub mod channels;
pub(crate) mod claims;
pub mod outbox;
pub mod rotation;
