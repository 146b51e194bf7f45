//! One delivery attempt: renders the event for the channel and sends it, a signed JSON
//! POST for a webhook, a plain JSON POST for Slack and Teams, an email otherwise.
//!
//! The HTTP client follows no redirect (a redirect could lead past the address rule),
//! uses no proxy (the rule must see the address actually connected to) and resolves
//! names through [`GuardedResolver`].

use std::time::Duration;

use chrono::Utc;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use uuid::Uuid;

use crate::channel::{Channel, ChannelKind, Target};
use crate::config::SmtpSettings;
use crate::email::EmailSender;
use crate::error::{NotifyError, NotifyResult};
use crate::event::Event;
use crate::failure::DeliveryFailure;
use crate::render::{Rendered, render};
use crate::sign;
use crate::target::{GuardedResolver, PrivateTargets, check_literal};

/// Longest connection set-up, within the send timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends notifications.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    private_targets: PrivateTargets,
    send_timeout: Duration,
    email: Option<EmailSender>,
}

impl Sender {
    /// Returns a sender applying `private_targets` to every request, giving each
    /// delivery `send_timeout`, and sending email through `smtp` when given.
    pub fn new(
        private_targets: PrivateTargets,
        send_timeout: Duration,
        smtp: Option<&SmtpSettings>,
    ) -> NotifyResult<Self> {
        let http = reqwest::Client::builder()
            .dns_resolver(GuardedResolver::new(private_targets))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(send_timeout)
            .connect_timeout(send_timeout.min(MAX_CONNECT_TIMEOUT))
            // Plain http is for dev mode and tests, as in channel validation.
            .https_only(private_targets == PrivateTargets::Refused)
            .user_agent(concat!("cudly-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| NotifyError::HttpClient("cannot build the http client".to_owned()))?;
        let email = smtp
            .map(|settings| EmailSender::new(settings, send_timeout))
            .transpose()?;
        Ok(Self {
            http,
            private_targets,
            send_timeout,
            email,
        })
    }

    /// Sends `event` to `channel` as delivery `delivery_id`.
    pub async fn send(
        &self,
        channel: &Channel,
        event: &Event,
        delivery_id: Uuid,
    ) -> Result<(), DeliveryFailure> {
        let rendered = render(channel.kind, channel.audience, event);
        let sending = async {
            match (&channel.target, rendered) {
                (Target::Url(url), Rendered::Json(body)) => {
                    self.post(channel, event, delivery_id, url, body).await
                }
                (Target::Email(addresses), Rendered::Email(mail)) => match &self.email {
                    Some(email) => email.send(addresses, &mail).await,
                    None => Err(DeliveryFailure::EmailUnavailable),
                },
                _ => Err(DeliveryFailure::Corrupt),
            }
        };
        tokio::time::timeout(self.send_timeout, sending)
            .await
            .unwrap_or(Err(DeliveryFailure::Timeout))
    }

    async fn post(
        &self,
        channel: &Channel,
        event: &Event,
        delivery_id: Uuid,
        url: &Url,
        body: Vec<u8>,
    ) -> Result<(), DeliveryFailure> {
        // Names are checked by the resolver as the client connects; literals here.
        check_literal(self.private_targets, url).map_err(DeliveryFailure::Target)?;
        let mut request = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json");
        if channel.kind == ChannelKind::Webhook {
            let secret = channel
                .signing_secret
                .as_ref()
                .ok_or(DeliveryFailure::Corrupt)?;
            let timestamp = Utc::now().timestamp();
            request = request
                .header(sign::EVENT_HEADER, event.kind().as_str())
                .header(sign::EVENT_ID_HEADER, event.id.to_string())
                .header(sign::DELIVERY_HEADER, delivery_id.to_string())
                .header(sign::TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    sign::SIGNATURE_HEADER,
                    sign::sign(secret.key(), timestamp, &body),
                );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| DeliveryFailure::from_http(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection() {
            return Err(DeliveryFailure::Redirect(status.as_u16()));
        }
        Err(DeliveryFailure::Status {
            code: status.as_u16(),
            retry_after: retry_after_seconds(response.headers()),
        })
    }
}

/// Reads a `Retry-After` given in seconds (the HTTP-date form is ignored).
fn retry_after_seconds(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}
