//! Notification channels: where events go (a webhook, Slack, Teams, email), which
//! events they want, and whether they may carry approval tokens ([`Audience`]).
//!
//! A channel's target and signing secret are secrets: the target of a Slack or Teams
//! webhook is itself a credential, and an email list is personal data. `Debug` never
//! prints them and errors never repeat them.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use rand::RngCore;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Event, EventKind};
use crate::target::PrivateTargets;

/// Longest channel name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most recipients of an email channel.
pub const MAX_EMAIL_RECIPIENTS: usize = 20;
/// Most plans or accounts a channel filters on.
pub const MAX_FILTER_IDS: usize = 1000;
/// Shortest and longest webhook signing secret a caller may choose.
pub const MIN_SECRET_CHARS: usize = 32;
pub const MAX_SECRET_CHARS: usize = 256;
/// Longest target URL.
const MAX_URL_CHARS: usize = 2048;
/// The hosts of Slack incoming webhooks (commercial and GovSlack).
const SLACK_HOSTS: [&str; 2] = ["hooks.slack.com", "hooks.slack-gov.com"];

/// How a channel is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A signed JSON POST to any URL.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook (Adaptive Card).
    Teams,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Teams,
        ChannelKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Who reads a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Named approvers only (an email to them, a signed webhook): the approval link may
    /// carry its token.
    Private,
    /// Anyone in a shared place: never a token, only the approval page, where the
    /// approver authenticates.
    Broadcast,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Private => "private",
            Audience::Broadcast => "broadcast",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Audience::Private, Audience::Broadcast]
            .into_iter()
            .find(|audience| audience.as_str() == name)
    }
}

/// Which events a channel wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub events: Vec<EventKind>,
    /// Empty: events about any plan, and events about no plan.
    pub plan_ids: Vec<Uuid>,
    /// Empty: events about any account, and events about no account.
    pub account_ids: Vec<Uuid>,
}

impl Subscription {
    /// Returns true when the channel wants `event`: its kind is subscribed and, where the
    /// channel filters on plans or accounts, the event is about one of them (an event
    /// about no plan never passes a plan filter).
    pub fn wants(&self, event: &Event) -> bool {
        let kind_wanted = self.events.contains(&event.kind());
        let plan_wanted = self.plan_ids.is_empty()
            || event
                .plan_id
                .is_some_and(|plan_id| self.plan_ids.contains(&plan_id));
        let account_wanted = self.account_ids.is_empty()
            || event
                .account_ids
                .iter()
                .any(|account_id| self.account_ids.contains(account_id));
        kind_wanted && plan_wanted && account_wanted
    }
}

/// Where a channel's notifications go.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A webhook, Slack or Teams URL.
    Url(Url),
    /// Email recipients.
    Email(Vec<String>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The host only: a webhook's path or query may hold its token.
            Target::Url(url) => write!(
                formatter,
                "Target::Url({}/[redacted])",
                url.host_str().unwrap_or("?")
            ),
            Target::Email(addresses) => {
                write!(formatter, "Target::Email([{} redacted])", addresses.len())
            }
        }
    }
}

impl Target {
    /// Returns the target as stored (encrypted) in its row.
    pub(crate) fn to_stored(&self) -> String {
        match self {
            Target::Url(url) => url.as_str().to_owned(),
            Target::Email(addresses) => addresses.join(","),
        }
    }

    /// Reads back a stored target of a channel of `kind`.
    pub(crate) fn from_stored(kind: ChannelKind, text: &str) -> Option<Self> {
        match kind {
            ChannelKind::Email => Some(Target::Email(text.split(',').map(str::to_owned).collect())),
            ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Teams => {
                Url::parse(text).ok().map(Target::Url)
            }
        }
    }

    /// Returns the URL, for the kinds reached over HTTP.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Target::Url(url) => Some(url),
            Target::Email(_) => None,
        }
    }
}

/// The HMAC key of a webhook channel: the UTF-8 bytes of this text.
#[derive(Clone, Debug)]
pub struct SigningSecret(SecretString);

impl SigningSecret {
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    /// Returns a random secret: 32 random bytes as 64 hex characters.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(SecretString::from(hex::encode(bytes)))
    }

    /// Returns the key bytes, for signing.
    pub(crate) fn key(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }

    /// Returns the secret's text: for the one reply that shows a generated secret.
    pub fn expose(&self) -> &SecretString {
        &self.0
    }
}

/// A channel with its secrets, as the dispatcher uses it.
#[derive(Clone, Debug)]
pub struct Channel {
    pub id: Uuid,
    pub name: String,
    pub kind: ChannelKind,
    pub audience: Audience,
    pub subscription: Subscription,
    pub target: Target,
    /// Webhooks only.
    pub signing_secret: Option<SigningSecret>,
    pub failing_since: Option<DateTime<Utc>>,
}

impl Channel {
    /// Returns true when the channel wants `event`.
    pub fn wants(&self, event: &Event) -> bool {
        self.subscription.wants(event)
    }
}

/// A channel as listed: no target, no secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelInfo {
    pub id: Uuid,
    pub name: String,
    pub kind: ChannelKind,
    pub audience: Audience,
    pub events: Vec<EventKind>,
    pub plan_ids: Vec<Uuid>,
    pub account_ids: Vec<Uuid>,
    pub consecutive_failures: i32,
    /// Set once the channel failed the dispatcher's threshold of deliveries in a row.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What the environment allows of a new channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelRules {
    /// Whether targets on loopback, link-local or private addresses are allowed (dev
    /// mode, `CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS`). Where they are, plain http is too.
    pub private_targets: PrivateTargets,
    /// Whether email can be sent (an SMTP server is configured).
    pub email_enabled: bool,
}

/// A channel as asked for (`POST /api/notification-channels`), not yet checked.
#[derive(Debug, Clone)]
pub struct ChannelDraft {
    pub name: String,
    pub kind: String,
    /// A URL, or comma-separated email addresses.
    pub target: SecretString,
    /// A webhook's signing secret; generated when absent.
    pub secret: Option<SecretString>,
    pub events: Vec<String>,
    pub plan_ids: Vec<Uuid>,
    pub account_ids: Vec<Uuid>,
    pub private: bool,
}

/// A checked channel, ready to store.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub id: Uuid,
    pub name: String,
    pub kind: ChannelKind,
    pub audience: Audience,
    pub subscription: Subscription,
    pub target: Target,
    pub signing_secret: Option<SigningSecret>,
    /// True when the library chose the signing secret: the caller shows it once.
    pub secret_generated: bool,
}

impl ChannelDraft {
    /// Checks the draft; each error names its field and never repeats a target or a
    /// secret. The target's addresses are checked apart ([`crate::target::check_target`]):
    /// that needs DNS.
    pub fn validate(self, rules: ChannelRules) -> Result<NewChannel, ApiError> {
        let name = validate_name(&self.name)?;
        let kind = ChannelKind::parse(self.kind.trim()).ok_or_else(|| {
            ApiError::invalid_field("kind", "must be one of webhook, slack, teams, email")
        })?;
        let audience = validate_audience(kind, self.private)?;
        let subscription = Subscription {
            events: validate_events(&self.events)?,
            plan_ids: validate_ids("plan_ids", self.plan_ids)?,
            account_ids: validate_ids("account_ids", self.account_ids)?,
        };
        let target = validate_target(kind, self.target.expose_secret().trim(), rules)?;
        let (signing_secret, secret_generated) = validate_secret(kind, self.secret)?;
        Ok(NewChannel {
            id: Uuid::new_v4(),
            name,
            kind,
            audience,
            subscription,
            target,
            signing_secret,
            secret_generated,
        })
    }
}

fn validate_name(name: &str) -> Result<String, ApiError> {
    cudly_common::names::display_name("name", name, MAX_NAME_CHARS)
}

fn validate_audience(kind: ChannelKind, private: bool) -> Result<Audience, ApiError> {
    match (kind, private) {
        (_, false) => Ok(Audience::Broadcast),
        (ChannelKind::Slack | ChannelKind::Teams, true) => Err(ApiError::invalid_field(
            "private",
            "slack and teams channels are read by everyone in them: they cannot be private",
        )),
        (ChannelKind::Webhook | ChannelKind::Email, true) => Ok(Audience::Private),
    }
}

fn validate_events(names: &[String]) -> Result<Vec<EventKind>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid_field("events", "name at least one event"));
    }
    let mut events = Vec::with_capacity(names.len());
    for name in names {
        let kind = EventKind::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
            ApiError::invalid_field(
                "events",
                format!(
                    "unknown event {:?}: one of {}",
                    name.chars().take(64).collect::<String>(),
                    known.join(", ")
                ),
            )
        })?;
        events.push(kind);
    }
    events.sort_unstable();
    events.dedup();
    Ok(events)
}

fn validate_ids(field: &str, mut ids: Vec<Uuid>) -> Result<Vec<Uuid>, ApiError> {
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_FILTER_IDS {
        return Err(ApiError::invalid_field(
            field,
            format!("at most {MAX_FILTER_IDS} ids"),
        ));
    }
    Ok(ids)
}

fn validate_target(kind: ChannelKind, text: &str, rules: ChannelRules) -> Result<Target, ApiError> {
    match kind {
        ChannelKind::Webhook => web_url(text, rules).map(Target::Url),
        // Where private targets are allowed (dev mode, tests), a local stand-in for
        // Slack or Teams may receive their messages.
        ChannelKind::Teams | ChannelKind::Slack if is_local_stand_in(text, rules) => {
            web_url(text, rules).map(Target::Url)
        }
        ChannelKind::Teams => web_url(text, rules).and_then(|url| {
            if url.scheme() == "https" {
                Ok(Target::Url(url))
            } else {
                Err(ApiError::invalid_field(
                    "target",
                    "a teams webhook must be an https url",
                ))
            }
        }),
        ChannelKind::Slack => web_url(text, rules).and_then(|url| {
            let is_slack = url.scheme() == "https"
                && url.port().is_none()
                && url
                    .host_str()
                    .is_some_and(|host| SLACK_HOSTS.contains(&host))
                && url.path().starts_with("/services/");
            if is_slack {
                Ok(Target::Url(url))
            } else {
                Err(ApiError::invalid_field(
                    "target",
                    "a slack incoming webhook is https://hooks.slack.com/services/...",
                ))
            }
        }),
        ChannelKind::Email => {
            if !rules.email_enabled {
                return Err(ApiError::invalid_field(
                    "kind",
                    "email is not configured on this server",
                ));
            }
            email_addresses(text).map(Target::Email)
        }
    }
}

/// Returns true when `text` is a URL on a loopback address and private targets are
/// allowed.
fn is_local_stand_in(text: &str, rules: ChannelRules) -> bool {
    rules.private_targets == PrivateTargets::Allowed
        && Url::parse(text).is_ok_and(|url| match url.host_str() {
            Some("localhost") => true,
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        })
}

/// Parses an absolute http(s) URL with a host, no credentials and no fragment; plain
/// http only where private targets are allowed (dev mode, tests), since a private
/// webhook's body carries approval tokens.
fn web_url(text: &str, rules: ChannelRules) -> Result<Url, ApiError> {
    let invalid = |problem: &str| ApiError::invalid_field("target", problem);
    if text.is_empty() {
        return Err(invalid("is required"));
    }
    if text.len() > MAX_URL_CHARS {
        return Err(invalid("the url is too long"));
    }
    let url = Url::parse(text).map_err(|_| invalid("must be an absolute http(s) url"))?;
    let scheme_allowed = match url.scheme() {
        "https" => true,
        "http" => rules.private_targets == PrivateTargets::Allowed,
        _ => false,
    };
    if !scheme_allowed {
        return Err(invalid("must be an https url"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the url needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("the url must not hold credentials"));
    }
    if url.fragment().is_some() {
        return Err(invalid("the url must not have a fragment"));
    }
    Ok(url)
}

fn email_addresses(text: &str) -> Result<Vec<String>, ApiError> {
    let addresses: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect();
    if addresses.is_empty() {
        return Err(ApiError::invalid_field(
            "target",
            "name at least one email address",
        ));
    }
    if addresses.len() > MAX_EMAIL_RECIPIENTS {
        return Err(ApiError::invalid_field(
            "target",
            format!("at most {MAX_EMAIL_RECIPIENTS} email addresses"),
        ));
    }
    if let Some(position) = addresses
        .iter()
        .position(|address| !is_email_address(address))
    {
        return Err(ApiError::invalid_field(
            "target",
            format!("address {} is not an email address", position + 1),
        ));
    }
    Ok(addresses)
}

/// A plain `local@domain.tld` address: what SMTP and the approvers' inboxes take,
/// without display names, comments or quoting.
fn is_email_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let plain = |part: &str| {
        part.chars()
            .all(|character| character.is_ascii_graphic() && !"<>()[]\\,;:\"@".contains(character))
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && plain(local)
        && plain(domain)
}

fn validate_secret(
    kind: ChannelKind,
    secret: Option<SecretString>,
) -> Result<(Option<SigningSecret>, bool), ApiError> {
    match (kind, secret) {
        (ChannelKind::Webhook, None) => Ok((Some(SigningSecret::generate()), true)),
        (ChannelKind::Webhook, Some(secret)) => {
            let length = secret.expose_secret().chars().count();
            if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&length) {
                return Err(ApiError::invalid_field(
                    "secret",
                    format!("must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters"),
                ));
            }
            if secret.expose_secret().chars().any(char::is_control) {
                return Err(ApiError::invalid_field(
                    "secret",
                    "must not hold control characters",
                ));
            }
            Ok((Some(SigningSecret::new(secret)), false))
        }
        (_, None) => Ok((None, false)),
        (_, Some(_)) => Err(ApiError::invalid_field(
            "secret",
            "only webhook channels are signed",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples;

    const STRICT: ChannelRules = ChannelRules {
        private_targets: PrivateTargets::Refused,
        email_enabled: true,
    };
    const DEV: ChannelRules = ChannelRules {
        private_targets: PrivateTargets::Allowed,
        email_enabled: true,
    };

    fn draft(kind: &str, target: &str) -> ChannelDraft {
        ChannelDraft {
            name: " approvers ".to_owned(),
            kind: kind.to_owned(),
            target: SecretString::from(target),
            secret: None,
            events: vec!["approval_requested".to_owned()],
            plan_ids: Vec::new(),
            account_ids: Vec::new(),
            private: false,
        }
    }

    fn field_of(result: Result<NewChannel, ApiError>) -> String {
        result.unwrap_err().field.unwrap()
    }

    #[test]
    fn a_webhook_gets_a_generated_secret_unless_it_brings_a_long_one() {
        let channel = draft("webhook", "https://example.com/hook")
            .validate(STRICT)
            .unwrap();
        assert_eq!(channel.name, "approvers");
        assert!(channel.secret_generated);
        assert_eq!(
            channel
                .signing_secret
                .unwrap()
                .expose()
                .expose_secret()
                .len(),
            64
        );
        let mut short = draft("webhook", "https://example.com/hook");
        short.secret = Some(SecretString::from("short-s3cr3t"));
        let error = short.validate(STRICT).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("secret"));
        assert!(!error.message.contains("s3cr3t"));
        let mut long = draft("webhook", "https://example.com/hook");
        long.secret = Some(SecretString::from("x".repeat(32)));
        assert!(!long.validate(STRICT).unwrap().secret_generated);
        let mut slack = draft("slack", "https://hooks.slack.com/services/T/B/X");
        slack.secret = Some(SecretString::from("x".repeat(32)));
        assert_eq!(field_of(slack.validate(STRICT)), "secret");
    }

    #[test]
    fn targets_are_checked_per_kind_and_never_echoed() {
        assert!(
            draft("slack", "https://hooks.slack.com/services/T0/B0/s3cr3t")
                .validate(STRICT)
                .is_ok()
        );
        for bad_slack in [
            "https://example.com/services/T0/B0/s3cr3t",
            "http://hooks.slack.com/services/T0/B0/s3cr3t",
            "https://hooks.slack.com:8443/services/T0/B0/s3cr3t",
        ] {
            let error = draft("slack", bad_slack).validate(DEV).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("target"), "{bad_slack}");
            assert!(!error.message.contains("s3cr3t"));
        }
        assert!(
            draft("teams", "https://x.webhook.office.com/webhookb2/s3cr3t")
                .validate(STRICT)
                .is_ok()
        );
        assert_eq!(
            field_of(draft("teams", "http://x.webhook.office.com/a").validate(DEV)),
            "target"
        );
        for bad_webhook in [
            "ftp://example.com/a",
            "not a url",
            "https://user:pw@example.com/a",
            "https://example.com/a#frag",
            "",
        ] {
            assert_eq!(
                field_of(draft("webhook", bad_webhook).validate(STRICT)),
                "target",
                "{bad_webhook}"
            );
        }
        // Plain http only where private targets are allowed (dev mode, tests).
        assert!(
            draft("webhook", "http://example.com/a")
                .validate(STRICT)
                .is_err()
        );
        assert!(
            draft("webhook", "http://127.0.0.1:9/a")
                .validate(DEV)
                .is_ok()
        );
    }

    #[test]
    fn email_channels_need_plain_addresses_and_a_configured_server() {
        let channel = draft("email", "a@example.com, b.c+d@example.org")
            .validate(STRICT)
            .unwrap();
        assert_eq!(
            channel.target,
            Target::Email(vec![
                "a@example.com".to_owned(),
                "b.c+d@example.org".to_owned()
            ])
        );
        for bad in [
            "",
            "a",
            "a@b",
            "Alice <a@example.com>",
            "a@example.com;b@x.y",
        ] {
            assert_eq!(
                field_of(draft("email", bad).validate(STRICT)),
                "target",
                "{bad}"
            );
        }
        let no_smtp = ChannelRules {
            email_enabled: false,
            ..STRICT
        };
        assert_eq!(
            field_of(draft("email", "a@example.com").validate(no_smtp)),
            "kind"
        );
    }

    #[test]
    fn slack_and_teams_cannot_be_private_but_webhooks_and_email_can() {
        let mut slack = draft("slack", "https://hooks.slack.com/services/T/B/X");
        slack.private = true;
        assert_eq!(field_of(slack.validate(STRICT)), "private");
        let mut email = draft("email", "a@example.com");
        email.private = true;
        assert_eq!(email.validate(STRICT).unwrap().audience, Audience::Private);
    }

    #[test]
    fn names_kinds_and_events_are_checked() {
        let mut nameless = draft("webhook", "https://example.com/a");
        nameless.name = "  ".to_owned();
        assert_eq!(field_of(nameless.validate(STRICT)), "name");
        assert_eq!(
            field_of(draft("sms", "https://example.com/a").validate(STRICT)),
            "kind"
        );
        let mut unknown = draft("webhook", "https://example.com/a");
        unknown.events = vec!["approval".to_owned()];
        assert_eq!(field_of(unknown.validate(STRICT)), "events");
        let mut none = draft("webhook", "https://example.com/a");
        none.events.clear();
        assert_eq!(field_of(none.validate(STRICT)), "events");
    }

    #[test]
    fn a_channel_wants_its_events_about_its_plans_and_accounts() {
        let event = samples::approval_requested();
        let mut subscription = Subscription {
            events: vec![EventKind::ApprovalRequested],
            plan_ids: Vec::new(),
            account_ids: Vec::new(),
        };
        assert!(subscription.wants(&event));
        subscription.plan_ids = vec![Uuid::new_v4()];
        assert!(!subscription.wants(&event));
        subscription.plan_ids.push(event.plan_id.unwrap());
        assert!(subscription.wants(&event));
        subscription.account_ids = vec![Uuid::new_v4()];
        assert!(!subscription.wants(&event));
        subscription.account_ids.push(event.account_ids[0]);
        assert!(subscription.wants(&event));
        subscription.events = vec![EventKind::ExecutionFinished];
        assert!(!subscription.wants(&event));
        // An event about no plan never passes a plan filter.
        let planless = samples::every_kind().remove(1);
        let filtered = Subscription {
            events: vec![EventKind::ExecutionFinished],
            plan_ids: vec![Uuid::new_v4()],
            account_ids: Vec::new(),
        };
        assert!(!filtered.wants(&planless));
    }

    #[test]
    fn debug_never_shows_targets_or_secrets() {
        let channel = draft("slack", "https://hooks.slack.com/services/T0/B0/s3cr3t")
            .validate(STRICT)
            .unwrap();
        let printed = format!("{channel:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("hooks.slack.com"));
        let email = Target::Email(vec!["alice@example.com".to_owned()]);
        assert!(!format!("{email:?}").contains("alice"));
        let mut webhook = draft("webhook", "https://example.com/a");
        webhook.secret = Some(SecretString::from(format!("s3cr3t{}", "x".repeat(32))));
        assert!(!format!("{webhook:?}").contains("s3cr3t"));
        let validated = webhook.validate(STRICT).unwrap();
        assert!(!format!("{validated:?}").contains("s3cr3t"));
    }
}
