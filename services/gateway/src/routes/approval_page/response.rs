//! What every answer of the approval page carries: the rendered HTML and the headers
//! (Content-Security-Policy, no framing, no caching).

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// No script, no external resource, inline styles only; forms post to this origin only;
/// never framed (clickjacking an Approve button).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Renders `template` as the body of a `status` answer, with the page's headers and an
/// optional cookie.
pub(super) fn render<T: Template>(
    status: StatusCode,
    template: &T,
    cookie: Option<HeaderValue>,
) -> Response {
    let mut response = match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "approval page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html(FALLBACK_PAGE)).into_response()
        }
    };
    let headers = response.headers_mut();
    page_headers(headers);
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The page when even the error template fails.
const FALLBACK_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Something went wrong · CUDly</title></head><body><main><h1>Something went wrong</h1><p>Nothing was approved or canceled. Try again in a minute.</p></main></body></html>";

/// The headers of every answer of the page: the CSP, no framing, no referrer outside
/// this origin (the URL holds the token), no caching. Not `no-referrer`: with it a
/// browser sends `Origin: null` on the form's POST, where the origin check wants the
/// real one.
pub(super) fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
