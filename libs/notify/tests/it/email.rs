//! Email channels through a local SMTP relay (dev mode's plain relay on 127.0.0.1): the
//! dispatcher sends one message to every address of the channel, with the subject and
//! the private approval link; a relay that refuses a message is a failed attempt whose
//! stored error is the SMTP code only.

use std::sync::{Arc, Mutex};

use cudly_notify::config::{SmtpSecurity, SmtpSettings};
use cudly_notify::{
    ChannelDraft, ChannelRules, Dispatcher, NotificationState, PrivateTargets, Sender,
};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::{
    CANARY_TOKEN, Running, World, approval_event, fast_settings, wait_for_notifications,
};

/// One message an SMTP client handed over.
#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP relay: answers the commands a client sends in order, keeps each
/// message, and refuses the first `refuse` messages at end of data with `refusal`.
#[derive(Clone)]
struct Relay {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl Relay {
    async fn start(refuse: usize, refusal: &'static str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let refusals = Arc::new(Mutex::new(refuse));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, refusals) = (kept.clone(), refusals.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let mut mail = Mail::default();
                    write.write_all(b"220 relay.test ESMTP\r\n").await.ok();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250-relay.test\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            mail = Mail {
                                from: line[10..].trim().to_owned(),
                                ..Mail::default()
                            };
                            b"250 ok\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            mail.to.push(line[8..].trim().to_owned());
                            b"250 ok\r\n"
                        } else if upper == "DATA" {
                            write.write_all(b"354 go ahead\r\n").await.ok();
                            while let Ok(Some(data)) = lines.next_line().await {
                                if data == "." {
                                    break;
                                }
                                mail.data.push_str(&data);
                                mail.data.push('\n');
                            }
                            let refuse = {
                                let mut left = refusals.lock().unwrap();
                                let refuse = *left > 0;
                                *left = left.saturating_sub(1);
                                refuse
                            };
                            if refuse {
                                refusal.as_bytes()
                            } else {
                                kept.lock().unwrap().push(std::mem::take(&mut mail));
                                b"250 queued\r\n"
                            }
                        } else if upper.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.ok();
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Relay { port, mails }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "CUDly <cudly@example.com>".to_owned(),
        }
    }
}

fn email_rules() -> ChannelRules {
    ChannelRules {
        private_targets: PrivateTargets::Allowed,
        email_enabled: true,
    }
}

async fn email_world(relay: &Relay) -> (World, Dispatcher) {
    let world = World::new().await;
    let mut conn = world.pool.acquire().await.unwrap();
    cudly_notify::create_channel(
        &mut conn,
        &world.cipher,
        email_rules(),
        ChannelDraft {
            name: "approvers".to_owned(),
            kind: "email".to_owned(),
            target: SecretString::from("alice@example.com, bob@example.com"),
            secret: None,
            events: vec!["approval_requested".to_owned()],
            plan_ids: Vec::new(),
            account_ids: Vec::new(),
            private: true,
        },
    )
    .await
    .expect("an email channel");
    drop(conn);
    let settings = fast_settings();
    let sender = Sender::new(
        PrivateTargets::Allowed,
        settings.send_timeout,
        Some(&relay.settings()),
    )
    .unwrap();
    let dispatcher =
        Dispatcher::new(world.pool.clone(), world.cipher.clone(), sender, settings).unwrap();
    (world, dispatcher)
}

/// Runs `dispatcher` until every notification of `world` is in `state`; returns them.
async fn run_until(
    world: &World,
    dispatcher: Dispatcher,
    state: NotificationState,
) -> Vec<cudly_notify::Notification> {
    let running = Running::start(dispatcher);
    let what = format!("every notification {state:?}");
    let reached = wait_for_notifications(world, &what, |notifications| {
        notifications
            .iter()
            .all(|notification| notification.state == state)
            .then(|| notifications.to_vec())
    })
    .await;
    running.stop().await;
    reached
}

#[tokio::test]
async fn an_email_channel_sends_one_message_to_its_approvers_with_the_link() {
    let relay = Relay::start(0, "").await;
    let (world, dispatcher) = email_world(&relay).await;
    let event = approval_event();
    assert_eq!(world.enqueue_committed(&event).await, 1);
    let delivered = run_until(&world, dispatcher, NotificationState::Delivered).await;
    assert_eq!(delivered.len(), 1);
    let mails = relay.mails();
    assert_eq!(mails.len(), 1, "one message for both addresses");
    let mail = &mails[0];
    assert_eq!(mail.from, "<cudly@example.com>");
    assert_eq!(mail.to, ["<alice@example.com>", "<bob@example.com>"]);
    assert!(mail.data.contains("Subject: "), "{}", mail.data);
    assert!(mail.data.contains("Approval requested"), "{}", mail.data);
    assert!(
        mail.data.contains("multipart/alternative"),
        "a text and an html part"
    );
    // Quoted-printable may wrap the link; the token itself is one unbroken word.
    assert!(
        mail.data.contains(&CANARY_TOKEN[..40]),
        "a private channel carries the link"
    );
}

#[tokio::test]
async fn a_relay_that_defers_is_retried_and_one_that_refuses_is_not() {
    let relay = Relay::start(1, "451 4.3.0 mailbox busy, try later\r\n").await;
    let (world, dispatcher) = email_world(&relay).await;
    world.enqueue_committed(&approval_event()).await;
    let delivered = run_until(&world, dispatcher, NotificationState::Delivered).await;
    assert_eq!(
        delivered[0].attempts, 2,
        "deferred once, sent on the second try"
    );
    assert_eq!(relay.mails().len(), 1);

    let refusing = Relay::start(
        usize::MAX,
        "554 5.7.1 relay denied for alice@example.com\r\n",
    )
    .await;
    let (world, dispatcher) = email_world(&refusing).await;
    world.enqueue_committed(&approval_event()).await;
    let failed = run_until(&world, dispatcher, NotificationState::Failed).await;
    assert_eq!(failed[0].attempts, 1, "a permanent refusal is not retried");
    let error = failed[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("554"), "{error}");
    assert!(
        !error.contains("alice"),
        "the relay's text is not kept: {error}"
    );
    assert!(refusing.mails().is_empty());
}
