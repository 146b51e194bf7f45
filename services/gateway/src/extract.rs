//! Extractors whose rejections follow the REST contract.
//!
//! - [`ApiJson`]: a JSON body. Not JSON (content type) → 415; over the body limit → 413;
//!   malformed JSON → 400 "malformed json"; a missing, unknown or mistyped field → 400
//!   naming the field (with its path, e.g. `services.aws/ec2.term`) but never echoing
//!   the value sent. Request types use `#[serde(deny_unknown_fields)]`.
//! - [`ApiPath`]: path parameters; a malformed uuid → 400 naming the parameter.
//! - [`ApiQuery`]: query parameters, with the same value-free messages.
//!
//! `ApiJson` is also the response wrapper: it serialises like `axum::Json`.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cudly_common::{ApiError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// Longest field name quoted back in an error; longer ones are cut.
const MAX_FIELD_NAME: usize = 128;

/// A JSON request body (or response) with the contract's rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a json body (content-type: application/json)",
            )
            .into());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    HttpError(ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "request body too large",
                    ))
                } else {
                    HttpError(ApiError::invalid("could not read the request body"))
                }
            })?;
        parse_json(&bytes).map(ApiJson).map_err(HttpError)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON body into `T`, mapping failures to the contract's value-free errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_escaped_nul(bytes) {
        // No text column can store it (Postgres refuses U+0000): refuse it here, as
        // bad input, rather than as a database error further in.
        return Err(ApiError::invalid(
            "request body: text must not contain NUL characters (\\u0000)",
        ));
    }
    // Every body is an object; serde would also read a struct from an array (`[]` as
    // all defaults), which no client means.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid("request body: expected a json object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => describe_data_error(&path, &inner.to_string()),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::invalid("malformed json")
            }
            serde_json::error::Category::Io => ApiError::invalid("could not read the request body"),
        }
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::invalid("malformed json"))?;
    Ok(value)
}

/// True when a JSON text holds the escape `\u0000` (an unescaped NUL is malformed JSON
/// anyway). A backslash before `u0000` escapes it only when the run of backslashes
/// before the `u` is odd.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"u0000";
    bytes.windows(ESCAPE.len()).enumerate().any(|(at, window)| {
        window == ESCAPE
            && bytes[..at]
                .iter()
                .rev()
                .take_while(|byte| **byte == b'\\')
                .count()
                % 2
                == 1
    })
}

/// Returns true for `application/json` and `application/<anything>+json`, with or
/// without parameters such as `charset`.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
}

/// Path parameters with the contract's rejections (400 naming the parameter).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(HttpError(path_error(rejection))),
        }
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(failure) = rejection else {
        // Missing parameters mean a handler was mounted on a route without them.
        tracing::error!(detail = %rejection.body_text(), "path parameters missing");
        return ApiError::internal();
    };
    match failure.kind() {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => ApiError::invalid_field(
            &field_name(key),
            format!(
                "malformed path parameter, expected {}",
                type_name(expected_type)
            ),
        ),
        ErrorKind::DeserializeError { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => {
            ApiError::invalid_field(&field_name(key), "malformed path parameter")
        }
        ErrorKind::ParseError { expected_type, .. }
        | ErrorKind::ParseErrorAtIndex { expected_type, .. } => ApiError::invalid(format!(
            "malformed path parameter, expected {}",
            type_name(expected_type)
        )),
        ErrorKind::WrongNumberOfParameters { .. } | ErrorKind::UnsupportedType { .. } => {
            tracing::error!(detail = %failure.body_text(), "path extractor does not fit its route");
            ApiError::internal()
        }
        _ => ApiError::invalid("malformed path parameter"),
    }
}

/// Returns a readable name of a Rust type: `uuid::Uuid` → `uuid`, `u32` → `u32`.
fn type_name(rust_type: &str) -> String {
    rust_type
        .rsplit("::")
        .next()
        .unwrap_or(rust_type)
        .to_ascii_lowercase()
}

/// Query parameters (`?provider=aws&enabled=true`) with the contract's rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.contains("%00") {
            return Err(HttpError(ApiError::invalid(
                "query parameters must not contain NUL characters",
            )));
        }
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|error| HttpError(describe_query_error(&error.to_string())))
    }
}

fn describe_query_error(message: &str) -> ApiError {
    match describe_data_error(".", message) {
        error if error.field.is_some() => error,
        _ => ApiError::invalid("invalid query parameters"),
    }
}

/// How serde's own data errors start (serde::de::Error's provided messages).
const SERDE_MESSAGES: [&str; 7] = [
    "invalid type:",
    "invalid value:",
    "invalid length",
    "unknown variant",
    "unknown field",
    "missing field",
    "duplicate field",
];

/// Turns a serde data error into a 400 that names the field and says what was expected,
/// without ever repeating the value that was sent.
fn describe_data_error(path: &str, message: &str) -> ApiError {
    let message = strip_position(message);
    // serde's own messages end with ", expected <what the type wants>"; the value sent
    // may come before it and may itself hold ", expected ", so only the last one counts,
    // and only in messages of serde's own shapes (a type's custom message may quote
    // the input anywhere).
    let expected = SERDE_MESSAGES
        .iter()
        .any(|prefix| message.starts_with(prefix))
        .then(|| message.rsplit_once(", expected "))
        .flatten()
        .map(|(_, expected)| expected);
    if let Some(field) = backticked_after(message, "missing field `") {
        return ApiError::invalid_field(&join_path(path, &field), "is required");
    }
    if let Some(field) = backticked_after(message, "unknown field `") {
        let problem = match expected {
            Some(expected) => format!("unknown field, expected {expected}"),
            None => "unknown field".to_owned(),
        };
        // The path of an unknown field already ends with the field itself.
        let full = if path == field || path.ends_with(&format!(".{field}")) {
            field_name(path)
        } else {
            join_path(path, &field)
        };
        return ApiError::invalid_field(&full, problem);
    }
    if let Some(field) = backticked_after(message, "duplicate field `") {
        return ApiError::invalid_field(&join_path(path, &field), "duplicate field");
    }
    let problem = if message.starts_with("invalid type:") {
        "wrong type"
    } else if message.starts_with("unknown variant") {
        "unknown value"
    } else if message.starts_with("invalid length") {
        "wrong length"
    } else {
        // invalid value, or a type's own message (which may quote the input)
        "invalid value"
    };
    let problem = match expected {
        Some(expected) => format!("{problem}, expected {expected}"),
        None => problem.to_owned(),
    };
    if path == "." || path.is_empty() {
        return ApiError::invalid(format!("request body: {problem}"));
    }
    ApiError::invalid_field(path, problem)
}

/// Drops serde_json's ` at line L column C` suffix.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(index) => &message[..index],
        None => message,
    }
}

/// Returns the text between `prefix` and the next backtick, if `message` starts so.
fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    Some(field_name(&rest[..end]))
}

/// Returns a field name safe to quote back: control characters dropped, length capped.
fn field_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD_NAME)
        .collect()
}

fn join_path(path: &str, field: &str) -> String {
    if path == "." || path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        term: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        role: Role,
        #[serde(default)]
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Admin,
    }

    fn error_of(json: &str) -> ApiError {
        parse_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn malformed_json_says_so() {
        assert_eq!(error_of("{\"name\": ").message, "malformed json");
        assert_eq!(error_of("").message, "malformed json");
        assert_eq!(
            error_of("{\"name\":\"a\",\"role\":\"admin\"} trailing").message,
            "malformed json"
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = error_of(r#"{"name":"a"}"#);
        assert_eq!(error.field.as_deref(), Some("role"));
        assert_eq!(error.http_status(), 400);
    }

    #[test]
    fn an_unknown_field_is_named() {
        let error = error_of(r#"{"name":"a","role":"admin","colour":"red"}"#);
        assert_eq!(error.field.as_deref(), Some("colour"), "{}", error.message);
        assert!(!error.message.contains("red"));
        let nested = error_of(r#"{"name":"a","role":"admin","nested":{"term":1,"extra":2}}"#);
        assert_eq!(
            nested.field.as_deref(),
            Some("nested.extra"),
            "{}",
            nested.message
        );
    }

    #[test]
    fn a_wrong_type_names_the_field_without_echoing_the_value() {
        let error = error_of(r#"{"name":"a","role":"admin","nested":{"term":"s3cr3t"}}"#);
        assert_eq!(
            error.field.as_deref(),
            Some("nested.term"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("s3cr3t"), "{}", error.message);
        let error = error_of(r#"{"name":"a","role":"superuser"}"#);
        assert_eq!(error.field.as_deref(), Some("role"));
        assert!(!error.message.contains("superuser"), "{}", error.message);
        let error = error_of(r#"{"name":12345678,"role":"admin"}"#);
        assert!(!error.message.contains("12345678"), "{}", error.message);
        // A value that itself reads like the end of serde's message.
        let error =
            error_of(r#"{"name":"a","role":"admin","nested":{"term":"1, expected s3cr3t"}}"#);
        assert_eq!(error.field.as_deref(), Some("nested.term"));
        assert!(!error.message.contains("s3cr3t"), "{}", error.message);
        let error = error_of(r#"{"name":"a","role":"x, expected s3cr3t"}"#);
        assert!(!error.message.contains("s3cr3t"), "{}", error.message);
    }

    #[test]
    fn an_array_is_not_a_body() {
        assert_eq!(
            error_of("[]").message,
            "request body: expected a json object"
        );
        assert_eq!(error_of(r#" ["a","admin"]"#).http_status(), 400);
    }

    #[test]
    fn an_escaped_nul_is_refused_and_an_escaped_backslash_is_not() {
        let error = error_of(r#"{"name":"a\u0000b","role":"admin"}"#);
        assert_eq!(error.http_status(), 400);
        assert!(error.message.contains("NUL"), "{}", error.message);
        assert!(has_escaped_nul(br#""\\\u0000""#));
        // `\\u0000` is a backslash followed by the text u0000.
        assert!(!has_escaped_nul(br#""\\\\u0000""#));
        assert!(parse_json::<Body>(br#"{"name":"a\\u0000","role":"admin"}"#).is_ok());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!is_json_content_type(&headers));
        for (value, expected) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("text/json", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json_content_type(&headers), expected, "{value}");
        }
    }

    #[test]
    fn query_errors_do_not_echo_values() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Query {
            enabled: Option<bool>,
        }
        let error = serde_urlencoded::from_str::<Query>("enabled=s3cr3t").unwrap_err();
        let error = describe_query_error(&error.to_string());
        assert_eq!(error.http_status(), 400);
        assert!(!error.message.contains("s3cr3t"), "{}", error.message);
    }
}
