//! The notification settings a service reads from its environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CUDLY_NOTIFY_KEY` / `_FILE` | — | 64 hex characters: encrypts targets, secrets, links |
//! | `CUDLY_NOTIFY_OLD_KEY` / `_FILE` | — | the previous key, during a rotation |
//! | `CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS` | true in dev mode | targets on private addresses |
//! | `CUDLY_NOTIFY_POLL_INTERVAL` | 1s | how often the dispatcher looks for due deliveries |
//! | `CUDLY_NOTIFY_SEND_TIMEOUT` | 10s | deadline of one delivery |
//! | `CUDLY_NOTIFY_MAX_ATTEMPTS` | 12 | attempts before a delivery is failed |
//! | `CUDLY_NOTIFY_FAILING_AFTER` | 5 | failures in a row that mark a channel failing |
//! | `CUDLY_NOTIFY_SMTP_HOST` | — | the SMTP relay; unset: no email channels |
//! | `CUDLY_NOTIFY_SMTP_PORT` | by security | 587 starttls, 465 tls, 25 none |
//! | `CUDLY_NOTIFY_SMTP_SECURITY` | starttls | starttls, tls, or none (dev mode only) |
//! | `CUDLY_NOTIFY_SMTP_USERNAME`, `CUDLY_NOTIFY_SMTP_PASSWORD` / `_FILE` | — | SMTP login |
//! | `CUDLY_NOTIFY_EMAIL_FROM` | — | the sender address; required with a host |

use std::time::Duration;

use cudly_common::config::{ConfigError, ConfigResult, Env};
use secrecy::{ExposeSecret, SecretString};

use crate::channel::ChannelRules;
use crate::crypto::{ChannelCipher, ChannelKey};
use crate::target::PrivateTargets;

/// How the dispatcher works through the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchSettings {
    /// Pause between looks for due deliveries when the last found none.
    pub poll_interval: Duration,
    /// Deliveries claimed at once.
    pub batch_size: u32,
    /// Deliveries sent at once.
    pub concurrency: usize,
    /// How long a claimed delivery stays with its dispatcher: past it (a crash), any
    /// dispatcher takes it again. Longer than `send_timeout`.
    pub lease: Duration,
    /// Deadline of one delivery.
    pub send_timeout: Duration,
    /// Wait before the second attempt; doubled after each failure up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Attempts before a delivery is failed for good.
    pub max_attempts: u32,
    /// Failed deliveries in a row that mark a channel failing (and alert).
    pub failing_after: u32,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch_size: 32,
            concurrency: 8,
            lease: Duration::from_secs(60),
            send_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(10 * 60),
            max_attempts: 12,
            failing_after: 5,
        }
    }
}

impl DispatchSettings {
    /// Reads the documented variables over the defaults.
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let defaults = Self::default();
        let settings = Self {
            poll_interval: env.duration("CUDLY_NOTIFY_POLL_INTERVAL", defaults.poll_interval)?,
            send_timeout: env.duration("CUDLY_NOTIFY_SEND_TIMEOUT", defaults.send_timeout)?,
            max_attempts: env.parse("CUDLY_NOTIFY_MAX_ATTEMPTS", defaults.max_attempts)?,
            failing_after: env.parse("CUDLY_NOTIFY_FAILING_AFTER", defaults.failing_after)?,
            ..defaults
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings the dispatcher cannot work with.
    pub fn validate(&self) -> ConfigResult<()> {
        let positive = [
            ("CUDLY_NOTIFY_POLL_INTERVAL", self.poll_interval),
            ("CUDLY_NOTIFY_SEND_TIMEOUT", self.send_timeout),
        ];
        for (variable, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::new(variable, "must be longer than zero"));
            }
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                "CUDLY_NOTIFY_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        if self.failing_after == 0 {
            return Err(ConfigError::new(
                "CUDLY_NOTIFY_FAILING_AFTER",
                "must be at least 1",
            ));
        }
        // A lease shorter than a send would let a second dispatcher send it too.
        if self.lease <= self.send_timeout {
            return Err(ConfigError::new(
                "CUDLY_NOTIFY_SEND_TIMEOUT",
                "must be shorter than the dispatcher's lease (60s)",
            ));
        }
        if self.batch_size == 0 || self.concurrency == 0 {
            return Err(ConfigError::new(
                "notification dispatch settings",
                "batch size and concurrency must be positive",
            ));
        }
        Ok(())
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded by STARTTLS, which must succeed (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: a local relay, dev mode only.
    None,
}

/// The SMTP relay email channels go through.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The sender, e.g. `CUDly <cudly@example.com>`.
    pub from: String,
}

impl SmtpSettings {
    /// Reads the SMTP variables; none when no host is set.
    pub fn read(env: &Env) -> ConfigResult<Option<Self>> {
        let Some(host) = env.var("CUDLY_NOTIFY_SMTP_HOST") else {
            return Ok(None);
        };
        let security = match env.var("CUDLY_NOTIFY_SMTP_SECURITY").as_deref() {
            None | Some("starttls") => SmtpSecurity::StartTls,
            Some("tls") => SmtpSecurity::Tls,
            Some("none") if env.is_dev_mode() => SmtpSecurity::None,
            Some("none") => {
                return Err(ConfigError::new(
                    "CUDLY_NOTIFY_SMTP_SECURITY",
                    "none is allowed in dev mode only",
                ));
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "CUDLY_NOTIFY_SMTP_SECURITY",
                    "must be starttls, tls or none",
                ));
            }
        };
        let default_port = match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        };
        let username = env.var("CUDLY_NOTIFY_SMTP_USERNAME");
        let password = env.secret_or_file("CUDLY_NOTIFY_SMTP_PASSWORD")?;
        if username.is_some() != password.is_some() {
            return Err(ConfigError::new(
                "CUDLY_NOTIFY_SMTP_USERNAME and CUDLY_NOTIFY_SMTP_PASSWORD",
                "set both or neither",
            ));
        }
        let from = env.var("CUDLY_NOTIFY_EMAIL_FROM").ok_or_else(|| {
            ConfigError::new(
                "CUDLY_NOTIFY_EMAIL_FROM",
                "must be set with CUDLY_NOTIFY_SMTP_HOST",
            )
        })?;
        if !cfg!(feature = "email") {
            return Err(ConfigError::new(
                "CUDLY_NOTIFY_SMTP_HOST",
                "this build has no email support (cargo feature email)",
            ));
        }
        Ok(Some(Self {
            host: host.trim().to_owned(),
            port: env.parse("CUDLY_NOTIFY_SMTP_PORT", default_port)?,
            security,
            username,
            password,
            from: from.trim().to_owned(),
        }))
    }
}

/// Everything a service needs to run notifications.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// None when `CUDLY_NOTIFY_KEY` is unset: the service decides (dev mode may
    /// generate one; without a key, channels cannot be stored).
    pub key: Option<ChannelKey>,
    pub old_key: Option<ChannelKey>,
    pub private_targets: PrivateTargets,
    pub dispatch: DispatchSettings,
    pub smtp: Option<SmtpSettings>,
}

impl NotifyConfig {
    /// Reads the notification variables; `key` is `CUDLY_NOTIFY_KEY` as the service's
    /// secret source gives it (the environment, or the key `cudly` keeps in dev mode).
    pub fn read(env: &Env, key: Option<SecretString>) -> ConfigResult<Self> {
        let key = parse_key("CUDLY_NOTIFY_KEY", key)?;
        let old_key = read_key(env, "CUDLY_NOTIFY_OLD_KEY")?;
        let allow_private = env.parse("CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS", env.is_dev_mode())?;
        Ok(Self {
            key,
            old_key,
            private_targets: if allow_private {
                PrivateTargets::Allowed
            } else {
                PrivateTargets::Refused
            },
            dispatch: DispatchSettings::read(env)?,
            smtp: SmtpSettings::read(env)?,
        })
    }

    /// Returns the cipher of the configured keys, if a key is set.
    pub fn cipher(&self) -> Option<ChannelCipher> {
        self.key
            .clone()
            .map(|key| ChannelCipher::new(key, self.old_key.clone()))
    }

    /// Returns what new channels may be.
    pub fn channel_rules(&self) -> ChannelRules {
        ChannelRules {
            private_targets: self.private_targets,
            email_enabled: self.smtp.is_some(),
        }
    }
}

fn read_key(env: &Env, variable: &str) -> ConfigResult<Option<ChannelKey>> {
    parse_key(variable, env.secret_or_file(variable)?)
}

fn parse_key(variable: &str, hex: Option<SecretString>) -> ConfigResult<Option<ChannelKey>> {
    hex.map(|hex| ChannelKey::from_hex(hex.expose_secret()))
        .transpose()
        .map_err(|problem| ConfigError::new(variable, problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_allows_private_targets_and_production_refuses_them() {
        let dev = NotifyConfig::read(&Env::empty(), None).unwrap();
        assert_eq!(dev.private_targets, PrivateTargets::Allowed);
        assert!(dev.key.is_none());
        assert!(!dev.channel_rules().email_enabled);
        let production =
            NotifyConfig::read(&Env::from_pairs([("CUDLY_ENV", "production")]), None).unwrap();
        assert_eq!(production.private_targets, PrivateTargets::Refused);
        let opted_in = NotifyConfig::read(
            &Env::from_pairs([
                ("CUDLY_ENV", "production"),
                ("CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(opted_in.private_targets, PrivateTargets::Allowed);
    }

    #[test]
    fn a_bad_key_is_named_but_never_echoed() {
        let error = NotifyConfig::read(&Env::empty(), Some("s3cr3t-not-hex".into())).unwrap_err();
        assert_eq!(error.variable, "CUDLY_NOTIFY_KEY");
        assert!(!error.to_string().contains("s3cr3t"));
        let env = Env::from_pairs([("CUDLY_NOTIFY_OLD_KEY", "s3cr3t-not-hex")]);
        let error = NotifyConfig::read(&env, None).unwrap_err();
        assert_eq!(error.variable, "CUDLY_NOTIFY_OLD_KEY");
        let key = "ab".repeat(32);
        let config = NotifyConfig::read(&Env::empty(), Some(key.into())).unwrap();
        assert!(config.cipher().is_some());
    }

    #[test]
    fn smtp_needs_a_sender_and_tls_outside_dev_mode() {
        let missing_from = Env::from_pairs([("CUDLY_NOTIFY_SMTP_HOST", "smtp.example.com")]);
        assert_eq!(
            SmtpSettings::read(&missing_from).unwrap_err().variable,
            "CUDLY_NOTIFY_EMAIL_FROM"
        );
        let plain_in_production = Env::from_pairs([
            ("CUDLY_ENV", "production"),
            ("CUDLY_NOTIFY_SMTP_HOST", "smtp.example.com"),
            ("CUDLY_NOTIFY_SMTP_SECURITY", "none"),
            ("CUDLY_NOTIFY_EMAIL_FROM", "cudly@example.com"),
        ]);
        assert_eq!(
            SmtpSettings::read(&plain_in_production)
                .unwrap_err()
                .variable,
            "CUDLY_NOTIFY_SMTP_SECURITY"
        );
        let env = Env::from_pairs([
            ("CUDLY_NOTIFY_SMTP_HOST", "smtp.example.com"),
            ("CUDLY_NOTIFY_EMAIL_FROM", "cudly@example.com"),
        ]);
        if cfg!(feature = "email") {
            let smtp = SmtpSettings::read(&env).unwrap().unwrap();
            assert_eq!(smtp.port, 587);
            assert_eq!(smtp.security, SmtpSecurity::StartTls);
        } else {
            assert!(SmtpSettings::read(&env).is_err());
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(DispatchSettings::default().validate().is_ok());
        let env = Env::from_pairs([("CUDLY_NOTIFY_MAX_ATTEMPTS", "0")]);
        assert!(DispatchSettings::read(&env).is_err());
        let env = Env::from_pairs([("CUDLY_NOTIFY_SEND_TIMEOUT", "2m")]);
        assert!(DispatchSettings::read(&env).is_err());
    }
}
