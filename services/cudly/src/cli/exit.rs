//! Exit codes of the operator CLI and the one error type every command returns.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | ok |
//! | 1 | any other failure (a 500, a local file, a credential test that failed) |
//! | 2 | usage: bad arguments (clap's own code), missing settings, an invalid URL |
//! | 3 | authentication or permission: 401, 403 |
//! | 4 | not found: 404 |
//! | 5 | refused or invalid: 400, 409, 410, 422, 429 and other 4xx |
//! | 6 | unavailable: 502, 503, 504, connection refused, timeout |
//! | 7 | `executions watch`: the execution ended other than completed |

/// What a run of the CLI ended with; [`ExitStatus::code`] is the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    Usage,
    Auth,
    NotFound,
    Refused,
    Unavailable,
    /// A watched execution ended failed, partially completed, canceled or expired.
    Unsuccessful,
}

impl ExitStatus {
    /// Returns the process exit code.
    pub const fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Auth => 3,
            ExitStatus::NotFound => 4,
            ExitStatus::Refused => 5,
            ExitStatus::Unavailable => 6,
            ExitStatus::Unsuccessful => 7,
        }
    }

    /// Returns the status of a failed HTTP reply.
    pub fn of_http(status: u16) -> Self {
        match status {
            401 | 403 => ExitStatus::Auth,
            404 => ExitStatus::NotFound,
            502..=504 => ExitStatus::Unavailable,
            400..=499 => ExitStatus::Refused,
            _ => ExitStatus::Failure,
        }
    }
}

/// A failed command: its exit status and a one-line message for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub status: ExitStatus,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The result of a command.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// Returns an error with `status`; newlines are folded so the message stays one line.
    pub fn new(status: ExitStatus, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let one_line = message
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            status,
            message: one_line,
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Failure, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Usage, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Unavailable, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_documented_codes() {
        let cases = [
            (400, 5),
            (401, 3),
            (403, 3),
            (404, 4),
            (409, 5),
            (410, 5),
            (422, 5),
            (429, 5),
            (500, 1),
            (503, 6),
            (504, 6),
        ];
        for (http, code) in cases {
            assert_eq!(ExitStatus::of_http(http).code(), code, "http {http}");
        }
    }

    #[test]
    fn a_message_is_one_line() {
        let error = CliError::failure("first\n  second\n\nthird");
        assert_eq!(error.message, "first second third");
    }
}
