//! The approval page's error pages: why a page cannot be shown or a decision was
//! refused, with the HTTP status of each, as a human page that never shows the token
//! nor the detail of a 500.

use std::time::Duration;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use cudly_common::ApiError;

use super::response::render;

/// What an error page after a refused POST adds.
pub(super) const NOTHING_DECIDED: &str = "Nothing was approved or canceled by this request.";

#[derive(Template)]
#[template(path = "approval_error.html")]
struct ErrorPage {
    title: &'static str,
    status: u16,
    detail: Option<String>,
    hint: Option<&'static str>,
    note: Option<&'static str>,
}

/// Why a page cannot be shown or a decision was refused.
pub(super) struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: Option<String>,
    hint: Option<&'static str>,
    retry_after: Option<Duration>,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: &str) -> Self {
        Self {
            status,
            title,
            detail: Some(detail.to_owned()),
            hint: None,
            retry_after: None,
        }
    }

    pub(super) fn no_such_link() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "No such approval link",
            "Check that the whole link was copied.",
        )
    }

    pub(super) fn key_needed() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Sign in to decide",
            "This form carries no approval token: enter your CUDly API key to decide.",
        )
    }

    pub(super) fn expired_form() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Open the approval link again to decide.",
        )
    }

    pub(super) fn foreign_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form was not sent from the approval page",
            "Open the approval link and decide there.",
        )
    }

    pub(super) fn too_many(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Wait a minute, then open the approval link again.",
            )
        }
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let title = match status {
            StatusCode::BAD_REQUEST => "This request is not valid",
            StatusCode::UNAUTHORIZED => "That API key was not accepted",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "No such purchase",
            StatusCode::CONFLICT => "Already decided",
            StatusCode::GONE => "This approval link has expired",
            StatusCode::PAYLOAD_TOO_LARGE => "The form is too large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "The form could not be read",
            StatusCode::UNPROCESSABLE_ENTITY => "Refused by a spend limit",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::SERVICE_UNAVAILABLE => "CUDly is unavailable",
            StatusCode::GATEWAY_TIMEOUT => "CUDly took too long to answer",
            _ => "Something went wrong",
        };
        let hint = match status {
            StatusCode::CONFLICT => Some("Open the approval link again to see where it stands."),
            StatusCode::GONE => Some("Ask for a new purchase to be requested."),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                Some("Try again in a minute.")
            }
            _ => None,
        };
        // A 500 shows nothing of its cause; the cause goes to the log, once.
        let detail = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            if error.message != ApiError::internal().message {
                tracing::error!(detail = %error.message, code = error.code.as_str(), "approval page failed");
            }
            None
        } else {
            Some(sentence(&error.message))
        };
        Self {
            status,
            title,
            detail,
            hint,
            retry_after: None,
        }
    }
}

/// Returns an API message (lowercase, no period; never a value that was sent) as a
/// sentence.
fn sentence(message: &str) -> String {
    let mut characters = message.trim().chars();
    let Some(first) = characters.next() else {
        return String::new();
    };
    let mut text: String = first.to_uppercase().chain(characters).collect();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// Returns the HTML page of `problem`, with `note` (after a refused POST).
pub(super) fn problem_page(problem: Problem, note: Option<&'static str>) -> Response {
    let page = ErrorPage {
        title: problem.title,
        status: problem.status.as_u16(),
        detail: problem.detail,
        hint: problem.hint,
        note,
    };
    let mut response = render(problem.status, &page, None);
    if let Some(wait) = problem.retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use cudly_common::ErrorCode;

    #[test]
    fn errors_read_as_sentences_and_a_500_shows_no_detail() {
        let gone: Problem = ApiError::new(ErrorCode::Gone, "approval token expired").into();
        assert_eq!(gone.status, StatusCode::GONE);
        assert_eq!(gone.detail.as_deref(), Some("Approval token expired."));
        let mut internal = ApiError::internal();
        internal.message = "relation executions does not exist".to_owned();
        let internal: Problem = internal.into();
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(internal.detail.is_none());
    }

    #[test]
    fn the_error_page_never_shows_a_token_and_escapes_what_it_shows() {
        let page = ErrorPage {
            title: "Not allowed",
            status: 403,
            detail: Some("<script>alert(1)</script>".to_owned()),
            hint: None,
            note: Some(NOTHING_DECIDED),
        };
        let html = page.render().unwrap();
        // Escaped (askama writes numeric entities), so never markup.
        assert!(html.contains("alert(1)"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("<html lang=\"en\">"));
    }
}
