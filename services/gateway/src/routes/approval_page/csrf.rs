//! The decision form's CSRF defence (docs/APPROVAL_PAGE.md): the double-submit cookie
//! and its hidden field, the `Origin` and `Sec-Fetch-Site` check, and the other request
//! headers the form's POST is checked by.

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use super::PAGE_PATH;

/// The double-submit cookie.
pub const CSRF_COOKIE: &str = "cudly_csrf";

/// Returns a new CSRF value: 32 random bytes in hex.
pub(super) fn new_csrf_value() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Returns the `Set-Cookie` value carrying `value`; `Secure` when the page came over
/// https (through a TLS-terminating proxy that says so).
pub(super) fn csrf_cookie(value: &str, https: bool) -> Option<HeaderValue> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{CSRF_COOKIE}={value}; Path={PAGE_PATH}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// Returns the `Set-Cookie` value that removes the CSRF cookie.
pub(super) fn cleared_csrf_cookie(https: bool) -> Option<HeaderValue> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{CSRF_COOKIE}=; Path={PAGE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// True when the request reached the proxy in front of the gateway over https. The
/// gateway itself speaks plain HTTP; a spoofed header only makes the cookie stricter.
pub(super) fn came_over_https(headers: &HeaderMap) -> bool {
    header_text(headers, "x-forwarded-proto")
        .and_then(|value| value.split(',').next())
        .is_some_and(|scheme| scheme.trim().eq_ignore_ascii_case("https"))
}

/// Returns the first `cudly_csrf` cookie the request carries (the most specific path
/// comes first, so a broader cookie planted elsewhere does not win).
pub(super) fn csrf_from_cookies(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// True when the cookie and the field are present, non-empty and equal, compared in
/// constant time.
pub(super) fn csrf_matches(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(cookie), Some(field)) if !cookie.is_empty() => {
            bool::from(cookie.as_bytes().ct_eq(field.trim().as_bytes()))
        }
        _ => false,
    }
}

/// True unless the browser says the form came from elsewhere: an `Origin` (browsers send
/// it on every form POST) that is not this host, or `Sec-Fetch-Site: cross-site`. A
/// request without either is a non-browser client, which the CSRF cookie still binds.
/// `X-Forwarded-Host` counts as this host too: a cross-site form cannot set it.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = header_text(headers, "sec-fetch-site").map(str::trim);
    if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some((scheme, authority)) = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.trim().split_once("://"))
    else {
        // `Origin: null`: a browser hides the origin where a referrer policy says
        // no-referrer (a user's privacy setting may), and a sandboxed frame elsewhere
        // sends it too. Only the browser's own `Sec-Fetch-Site`, which no page can set,
        // tells the first from the second.
        return fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("same-origin"));
    };
    let origin = normalized_authority(scheme, authority);
    [
        header_text(headers, header::HOST.as_str()),
        header_text(headers, "x-forwarded-host").and_then(|value| value.split(',').next()),
    ]
    .into_iter()
    .flatten()
    .any(|host| normalized_authority(scheme, host) == origin)
}

/// Returns `authority` in lowercase without the scheme's default port.
fn normalized_authority(scheme: &str, authority: &str) -> String {
    let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
    let default_port = match scheme.trim().to_ascii_lowercase().as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    match default_port.and_then(|port| authority.strip_suffix(port)) {
        Some(without_port) => without_port.to_owned(),
        None => authority,
    }
}

/// True for a form-urlencoded body, the only kind the page's forms send.
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    header_text(headers, header::CONTENT_TYPE.as_str())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn only_a_form_from_this_origin_passes_the_origin_check() {
        assert!(
            same_origin(&headers(&[("host", "127.0.0.1:8080")])),
            "no Origin: a non-browser client"
        );
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "cudly.example.com"),
            ("origin", "https://CUDLY.example.com:443"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "gateway:8080"),
            ("x-forwarded-host", "cudly.example.com"),
            ("origin", "https://cudly.example.com"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8081"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(
            same_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
            ])),
            "a browser hiding the origin of its own same-origin form"
        );
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-site"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }

    #[test]
    fn the_csrf_cookie_and_field_must_both_be_there_and_equal() {
        let value = new_csrf_value();
        assert_eq!(value.len(), 64);
        assert_ne!(value, new_csrf_value());
        let cookie_header = format!("other=1; {CSRF_COOKIE}={value}; x=y");
        let cookies = headers(&[("cookie", cookie_header.as_str())]);
        let cookie = csrf_from_cookies(&cookies);
        assert_eq!(cookie.as_deref(), Some(value.as_str()));
        assert!(csrf_matches(cookie.as_deref(), Some(value.as_str())));
        assert!(!csrf_matches(
            cookie.as_deref(),
            Some(new_csrf_value().as_str())
        ));
        assert!(!csrf_matches(cookie.as_deref(), Some("")));
        assert!(!csrf_matches(cookie.as_deref(), None));
        assert!(!csrf_matches(None, Some(value.as_str())));
        assert!(!csrf_matches(Some(""), Some("")));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        let plain = csrf_cookie("abc", false).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "cudly_csrf=abc; Path=/approve; HttpOnly; SameSite=Strict"
        );
        let secure = csrf_cookie("abc", true).unwrap();
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
        assert!(came_over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!came_over_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!came_over_https(&HeaderMap::new()));
    }
}
