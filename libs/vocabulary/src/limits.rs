//! The limits every purchase list obeys, whoever checks it.

/// Most lines one purchase list (a plan's standing list, an execution) may hold.
pub const MAX_RECOMMENDATIONS: usize = 1000;
/// Largest count of one line. A ramp step only scales a count down, so a line the
/// planner stores always fits the executor.
pub const MAX_COUNT: u32 = 10_000;
/// Longest free-text field (resource type, engine, platform, offering id), in
/// characters.
pub const MAX_TEXT_CHARS: usize = 128;
