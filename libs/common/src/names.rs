//! The rule for a display name a person types (accounts, plans, API keys, notification
//! channels): trimmed, required, at most a given length, no control characters; and how
//! an account is named to people in messages.

use crate::error::ApiError;

/// Returns an account as people know it in a message: `prod (123456789012)`.
pub fn account_label(name: &str, external_id: &str) -> String {
    format!("{name} ({external_id})")
}

/// Returns `text` trimmed, or a 400 naming `field` when it is empty, longer than
/// `max_chars` characters or holds a control character (never echoing the text).
pub fn display_name(field: &str, text: &str, max_chars: usize) -> Result<String, ApiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid_field(field, "is required"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_required_bounded_and_printable() {
        assert_eq!(display_name("name", "  ops  ", 10).unwrap(), "ops");
        for bad in ["", "   ", "a\u{7}b", "elevenchars"] {
            let error = display_name("name", bad, 10).unwrap_err();
            assert_eq!(error.http_status(), 400, "{bad:?}");
        }
    }
}
