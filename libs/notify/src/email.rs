//! Sending email over SMTP with lettre (cargo feature `email`): STARTTLS that must
//! succeed by default, implicit TLS, or (dev mode) a plain local relay. The rest of the
//! library sees only [`EmailSender::new`] and [`EmailSender::send`]; without the feature
//! an `EmailSender` cannot be made. Written against lettre 0.11 (features `builder`,
//! `smtp-transport`, `tokio1`, `tokio1-rustls`, `ring`).

use std::time::Duration;

use cudly_common::config::ConfigError;

use crate::config::SmtpSettings;
use crate::failure::DeliveryFailure;
use crate::render::MailContent;

#[cfg(feature = "email")]
pub use with_lettre::EmailSender;
#[cfg(not(feature = "email"))]
pub use without_lettre::EmailSender;

#[cfg(feature = "email")]
mod with_lettre {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::SmtpSecurity;

    /// Sends notification emails through one SMTP relay.
    #[derive(Clone)]
    pub struct EmailSender {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    }

    impl std::fmt::Debug for EmailSender {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("EmailSender")
        }
    }

    impl EmailSender {
        /// Returns a sender through the relay of `settings`; `timeout` bounds each SMTP
        /// command. Errors name the variable at fault, never the password.
        pub fn new(settings: &SmtpSettings, timeout: Duration) -> Result<Self, ConfigError> {
            let from: Mailbox = settings.from.parse().map_err(|_| {
                ConfigError::new("CUDLY_NOTIFY_EMAIL_FROM", "is not an email address")
            })?;
            let host = settings.host.as_str();
            let tls_error = |_: lettre::transport::smtp::Error| {
                ConfigError::new("CUDLY_NOTIFY_SMTP_HOST", "cannot set up tls")
            };
            let relay = match settings.security {
                SmtpSecurity::StartTls => {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls_error)?
                }
                SmtpSecurity::Tls => {
                    AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls_error)?
                }
                SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            };
            let configured = relay.port(settings.port).timeout(Some(timeout));
            let authenticated = match (&settings.username, &settings.password) {
                (Some(username), Some(password)) => configured.credentials(Credentials::new(
                    username.clone(),
                    password.expose_secret().to_owned(),
                )),
                _ => configured,
            };
            let transport: AsyncSmtpTransport<Tokio1Executor> = authenticated.build();
            Ok(Self { transport, from })
        }

        /// Sends `mail` to every address of `to`, in one message.
        pub async fn send(&self, to: &[String], mail: &MailContent) -> Result<(), DeliveryFailure> {
            let mut builder = Message::builder()
                .from(self.from.clone())
                .subject(mail.subject.clone());
            for address in to {
                let mailbox: Mailbox =
                    address.parse().map_err(|_| DeliveryFailure::BadRecipient)?;
                builder = builder.to(mailbox);
            }
            let message = builder
                .multipart(MultiPart::alternative_plain_html(
                    mail.text.clone(),
                    mail.html.clone(),
                ))
                .map_err(|_| DeliveryFailure::Corrupt)?;
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| smtp_failure(&error))
        }
    }

    /// Classifies an SMTP error by its code and kind; the server's text (which may echo
    /// addresses) is left out.
    fn smtp_failure(error: &lettre::transport::smtp::Error) -> DeliveryFailure {
        if let Some(code) = error.status() {
            return DeliveryFailure::SmtpRefused {
                code: code.to_string(),
                permanent: error.is_permanent(),
            };
        }
        if error.is_timeout() {
            return DeliveryFailure::Timeout;
        }
        DeliveryFailure::Smtp
    }
}

#[cfg(not(feature = "email"))]
mod without_lettre {
    use super::*;

    /// Stands for the email sender of builds without the `email` feature: it cannot be
    /// made, so no email is ever sent.
    #[derive(Debug, Clone)]
    pub struct EmailSender {
        never: std::convert::Infallible,
    }

    impl EmailSender {
        pub fn new(_settings: &SmtpSettings, _timeout: Duration) -> Result<Self, ConfigError> {
            Err(ConfigError::new(
                "CUDLY_NOTIFY_SMTP_HOST",
                "this build has no email support (cargo feature email)",
            ))
        }

        pub async fn send(
            &self,
            _to: &[String],
            _mail: &MailContent,
        ) -> Result<(), DeliveryFailure> {
            let never = self.never;
            match never {}
        }
    }
}
