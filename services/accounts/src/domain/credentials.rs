//! Credential bodies (docs/design/DOMAIN.md: credentials are write-only). Values are wrapped in
//! [`SecretString`] from the moment they leave the proto message; errors name the key
//! at fault and never repeat a value (serde's messages are never passed through: they
//! quote the input).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::account::{CredentialType, Provider};
use crate::error::{AccountsError, AccountsResult};

/// Longest value accepted for one key (a GCP service account key is about 2.5 KiB).
const MAX_VALUE: usize = 16 * 1024;
/// Longest key name quoted back in an error.
const MAX_QUOTED_KEY: usize = 64;

/// A credential body as received: the type (empty: implied by the account) and every
/// other key of the body.
pub struct CredentialDraft {
    pub credential_type: String,
    pub fields: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for CredentialDraft {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CredentialDraft")
            .field("credential_type", &self.credential_type)
            .field("field_keys", &self.fields.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A validated credential body: its type and exactly the keys that type takes.
pub struct ValidCredentials {
    pub credential_type: CredentialType,
    fields: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for ValidCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ValidCredentials")
            .field("credential_type", &self.credential_type)
            .finish_non_exhaustive()
    }
}

/// The keys of each credential type; every one is required.
fn keys_of(credential_type: CredentialType) -> &'static [&'static str] {
    match credential_type {
        CredentialType::AwsAccessKeys => &["access_key_id", "secret_access_key"],
        CredentialType::AzureClientSecret => &["client_secret"],
        CredentialType::GcpServiceAccount => &["service_account_json"],
    }
}

/// Validates `draft` for an account of `provider`: the type (or the provider's type
/// when empty), every required key present and well formed, no unknown key.
pub fn validate_credentials(
    draft: CredentialDraft,
    provider: Provider,
) -> AccountsResult<ValidCredentials> {
    let type_text = draft.credential_type.trim();
    let credential_type = if type_text.is_empty() {
        CredentialType::of(provider)
    } else {
        CredentialType::parse(type_text).ok_or_else(|| {
            AccountsError::field(
                "credentials.type",
                "unknown credential type, expected aws_access_keys, azure_client_secret or gcp_service_account",
            )
        })?
    };
    if credential_type.provider() != provider {
        return Err(AccountsError::field(
            "credentials.type",
            format!(
                "does not fit a {} account (expected {})",
                provider.as_str(),
                CredentialType::of(provider).as_str()
            ),
        ));
    }
    let allowed = keys_of(credential_type);
    if let Some(unknown) = draft
        .fields
        .keys()
        .find(|key| !allowed.contains(&key.as_str()))
    {
        return Err(unknown_key_error(unknown, allowed));
    }
    for key in allowed {
        let Some(value) = draft.fields.get(*key) else {
            return Err(AccountsError::field(
                format!("credentials.{key}"),
                "is required",
            ));
        };
        check_value(credential_type, key, value.expose_secret())?;
    }
    Ok(ValidCredentials {
        credential_type,
        fields: draft.fields,
    })
}

/// Names an unknown key only when it looks like a key name: a value pasted as a key
/// must not be echoed.
fn unknown_key_error(key: &str, allowed: &[&str]) -> AccountsError {
    let expected = allowed.join(", ");
    let looks_like_a_name = !key.is_empty()
        && key.len() <= MAX_QUOTED_KEY
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if looks_like_a_name {
        AccountsError::field(
            format!("credentials.{key}"),
            format!("unknown field, expected {expected}"),
        )
    } else {
        AccountsError::field("credentials", format!("unknown field, expected {expected}"))
    }
}

fn check_value(credential_type: CredentialType, key: &str, value: &str) -> AccountsResult<()> {
    let field = format!("credentials.{key}");
    if value.trim().is_empty() {
        return Err(AccountsError::field(field, "is required"));
    }
    if value.len() > MAX_VALUE {
        return Err(AccountsError::field(field, "is too long"));
    }
    match (credential_type, key) {
        (CredentialType::AwsAccessKeys, "access_key_id") => {
            let well_formed = (16..=128).contains(&value.len())
                && value.chars().all(|c| c.is_ascii_alphanumeric());
            if !well_formed {
                return Err(AccountsError::field(
                    field,
                    "must be 16 to 128 letters or digits",
                ));
            }
        }
        (CredentialType::AwsAccessKeys, "secret_access_key") => {
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(AccountsError::field(field, "must not contain whitespace"));
            }
        }
        (CredentialType::GcpServiceAccount, "service_account_json") => {
            check_service_account_json(value)?
        }
        _ => {
            if value.chars().any(char::is_control) {
                return Err(AccountsError::field(
                    field,
                    "must not contain control characters",
                ));
            }
        }
    }
    Ok(())
}

/// A GCP service account key: a JSON object with `client_email` and `private_key`
/// strings, and `type` "service_account" when present.
fn check_service_account_json(value: &str) -> AccountsResult<()> {
    const FIELD: &str = "credentials.service_account_json";
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(value)
    else {
        return Err(AccountsError::field(
            FIELD,
            "must be a service account key (a json object)",
        ));
    };
    for required in ["client_email", "private_key"] {
        match object.get(required) {
            Some(serde_json::Value::String(text)) if !text.trim().is_empty() => {}
            _ => {
                return Err(AccountsError::field(
                    format!("{FIELD}.{required}"),
                    "is required (a string)",
                ));
            }
        }
    }
    match object.get("type") {
        None => Ok(()),
        Some(serde_json::Value::String(kind)) if kind == "service_account" => Ok(()),
        Some(_) => Err(AccountsError::field(
            format!("{FIELD}.type"),
            "must be \"service_account\"",
        )),
    }
}

impl ValidCredentials {
    /// Returns the body as the plaintext that is encrypted: a JSON object of the keys.
    pub fn to_plaintext(&self) -> SecretString {
        let exposed: BTreeMap<&str, &str> = self
            .fields
            .iter()
            .map(|(key, value)| (key.as_str(), value.expose_secret()))
            .collect();
        SecretString::from(serde_json::to_string(&exposed).unwrap_or_default())
    }

    /// Reads a decrypted plaintext back.
    pub fn from_plaintext(
        credential_type: CredentialType,
        plaintext: &SecretString,
    ) -> AccountsResult<Self> {
        let parsed: BTreeMap<String, String> = serde_json::from_str(plaintext.expose_secret())
            .map_err(|_| {
                AccountsError::Internal(format!(
                    "stored {} credentials are not a json object",
                    credential_type.as_str()
                ))
            })?;
        Ok(Self {
            credential_type,
            fields: parsed
                .into_iter()
                .map(|(key, value)| (key, SecretString::from(value)))
                .collect(),
        })
    }

    /// Returns the value of `key`, if stored.
    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.fields.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(kind: &str, fields: &[(&str, &str)]) -> CredentialDraft {
        CredentialDraft {
            credential_type: kind.to_owned(),
            fields: fields
                .iter()
                .map(|(key, value)| ((*key).to_owned(), SecretString::from((*value).to_owned())))
                .collect(),
        }
    }

    fn error_text(result: AccountsResult<ValidCredentials>) -> (String, String) {
        match result.unwrap_err() {
            AccountsError::InvalidField { field, problem } => (field, problem),
            other => panic!("expected a field error, got {other}"),
        }
    }

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY";

    #[test]
    fn aws_access_keys_are_accepted_with_an_implied_type() {
        let valid = validate_credentials(
            draft(
                "",
                &[
                    ("access_key_id", "AKIAIOSFODNN7EXAMPLE"),
                    ("secret_access_key", SECRET),
                ],
            ),
            Provider::Aws,
        )
        .unwrap();
        assert_eq!(valid.credential_type, CredentialType::AwsAccessKeys);
        let back =
            ValidCredentials::from_plaintext(valid.credential_type, &valid.to_plaintext()).unwrap();
        assert_eq!(
            back.get("secret_access_key").unwrap().expose_secret(),
            SECRET
        );
        assert!(!format!("{valid:?}").contains("CANARY"));
    }

    #[test]
    fn unknown_and_missing_keys_are_named_without_values() {
        let (field, problem) = error_text(validate_credentials(
            draft(
                "aws_access_keys",
                &[
                    ("access_key_id", "AKIAIOSFODNN7EXAMPLE"),
                    ("secret_access_key", SECRET),
                    ("region", "x"),
                ],
            ),
            Provider::Aws,
        ));
        assert_eq!(field, "credentials.region");
        assert!(problem.starts_with("unknown field"));
        let (field, _) = error_text(validate_credentials(
            draft(
                "aws_access_keys",
                &[("access_key_id", "AKIAIOSFODNN7EXAMPLE")],
            ),
            Provider::Aws,
        ));
        assert_eq!(field, "credentials.secret_access_key");
        let (field, problem) = error_text(validate_credentials(
            draft("aws_access_keys", &[(SECRET, "x")]),
            Provider::Aws,
        ));
        assert_eq!(field, "credentials");
        assert!(!problem.contains("CANARY"));
    }

    #[test]
    fn a_malformed_value_is_named_and_not_echoed() {
        let (field, problem) = error_text(validate_credentials(
            draft(
                "aws_access_keys",
                &[
                    ("access_key_id", "short!CANARY"),
                    ("secret_access_key", SECRET),
                ],
            ),
            Provider::Aws,
        ));
        assert_eq!(field, "credentials.access_key_id");
        assert!(!problem.contains("CANARY"));
    }

    #[test]
    fn the_type_must_fit_the_provider() {
        let (field, _) = error_text(validate_credentials(
            draft("azure_client_secret", &[("client_secret", "x")]),
            Provider::Aws,
        ));
        assert_eq!(field, "credentials.type");
        let (field, _) = error_text(validate_credentials(draft("ssh_key", &[]), Provider::Aws));
        assert_eq!(field, "credentials.type");
    }

    #[test]
    fn gcp_service_account_keys_are_checked_by_name() {
        let key = r#"{"type":"service_account","client_email":"sa@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----CANARY"}"#;
        assert!(
            validate_credentials(
                draft("gcp_service_account", &[("service_account_json", key)]),
                Provider::Gcp
            )
            .is_ok()
        );
        let (field, problem) = error_text(validate_credentials(
            draft(
                "gcp_service_account",
                &[("service_account_json", r#"{"client_email":"CANARY@x.com"}"#)],
            ),
            Provider::Gcp,
        ));
        assert_eq!(field, "credentials.service_account_json.private_key");
        assert!(!problem.contains("CANARY"));
        let (field, problem) = error_text(validate_credentials(
            draft(
                "gcp_service_account",
                &[("service_account_json", "{not json CANARY")],
            ),
            Provider::Gcp,
        ));
        assert_eq!(field, "credentials.service_account_json");
        assert!(!problem.contains("CANARY"));
    }
}
