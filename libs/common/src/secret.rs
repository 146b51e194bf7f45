//! Secret scrubbing for text that may end up in a log line, a stored error or a reply.

/// Replaces every occurrence of each non-empty secret in `text` with `[redacted]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut scrubbed = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        scrubbed = scrubbed.replace(secret, "[redacted]");
    }
    scrubbed
}

/// Removes the user-info part (`user:password@`) of a URL so that a database or Redis
/// URL can be named in a message.
pub fn url_without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_every_secret() {
        let text = "key AKIAEXAMPLE and secret s3cr3t-value twice s3cr3t-value";
        let scrubbed = redact(text, &["AKIAEXAMPLE", "s3cr3t-value", ""]);
        assert_eq!(
            scrubbed,
            "key [redacted] and secret [redacted] twice [redacted]"
        );
    }

    #[test]
    fn url_without_credentials_drops_the_password() {
        assert_eq!(
            url_without_credentials("postgres://user:pw@db:5432/cudly"),
            "postgres://db:5432/cudly"
        );
        assert_eq!(
            url_without_credentials("redis://127.0.0.1/"),
            "redis://127.0.0.1/"
        );
    }
}
