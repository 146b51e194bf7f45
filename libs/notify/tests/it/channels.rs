//! Channels: the address rule at creation and at delivery, secrets at rest, names,
//! deletion.

use cudly_common::ErrorCode;
use cudly_notify::{
    ChannelRules, NotificationState, NotifyError, PrivateTargets, create_channel, delete_channel,
    list_channels,
};
use secrecy::ExposeSecret;

use crate::common::{
    Receiver, Running, World, approval_event, fast_settings, wait_for_notifications, webhook,
};

const PRODUCTION: ChannelRules = ChannelRules {
    private_targets: PrivateTargets::Refused,
    email_enabled: false,
};

fn refused_target(result: Result<cudly_notify::CreatedChannel, NotifyError>) -> String {
    match result {
        Err(NotifyError::Api(error)) => {
            assert_eq!(error.code, ErrorCode::InvalidArgument);
            assert_eq!(error.field.as_deref(), Some("target"));
            error.message
        }
        other => panic!("expected a refused target, got {other:?}"),
    }
}

#[tokio::test]
async fn a_channel_on_a_private_address_is_refused_outside_dev_mode() {
    let world = World::new().await;
    let mut conn = world.pool.acquire().await.unwrap();
    for target in [
        "https://127.0.0.1:8443/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
    ] {
        let message = refused_target(
            create_channel(
                &mut conn,
                &world.cipher,
                PRODUCTION,
                webhook("internal", target, false),
            )
            .await,
        );
        assert!(!message.contains("hook"), "{message}");
    }
    // Plain http is refused too outside dev mode.
    refused_target(
        create_channel(
            &mut conn,
            &world.cipher,
            PRODUCTION,
            webhook("plain", "http://127.0.0.1:9/hook", false),
        )
        .await,
    );
    assert!(list_channels(&mut conn).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_delivery_to_a_private_address_is_refused_where_the_rule_applies() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    // Created in dev mode, then delivered by a dispatcher under the production rule
    // (the rule changed, or the name now resolves elsewhere).
    world
        .add_channel(webhook("moved", &receiver.url("/hook"), false))
        .await;
    world.enqueue_committed(&approval_event()).await;
    let mut settings = fast_settings();
    settings.max_attempts = 1;

    let dispatcher =
        Running::start(world.dispatcher(world.pool.clone(), PrivateTargets::Refused, settings));
    let notification = wait_for_notifications(&world, "the delivery refused", |notifications| {
        notifications
            .iter()
            .find(|notification| notification.state == NotificationState::Failed)
            .cloned()
    })
    .await;
    dispatcher.stop().await;

    assert_eq!(
        notification.last_error.as_deref(),
        Some(
            cudly_notify::target::TargetError::Forbidden
                .to_string()
                .as_str()
        )
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn targets_and_secrets_are_stored_encrypted_and_never_listed() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    let target = receiver.url("/hook?key=target-s3cr3t");
    let created = world.add_channel(webhook("quiet", &target, false)).await;
    assert!(created.generated_secret.is_none(), "the caller chose one");

    let (target_blob, secret_blob): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT target_ciphertext, signing_secret_ciphertext \
         FROM notification_channels WHERE id = $1",
    )
    .bind(created.info.id)
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert!(!String::from_utf8_lossy(&target_blob).contains("target-s3cr3t"));
    assert!(!String::from_utf8_lossy(&secret_blob).contains("test-signing-secret"));

    let mut conn = world.pool.acquire().await.unwrap();
    let listed = list_channels(&mut conn).await.unwrap();
    assert_eq!(listed, vec![created.info.clone()]);
    assert!(!format!("{listed:?}").contains("s3cr3t"));

    // A webhook without a secret gets one, shown once.
    let mut unsigned = webhook("generated", &receiver.url("/other"), false);
    unsigned.secret = None;
    let generated = world.add_channel(unsigned).await;
    let secret = generated.generated_secret.expect("a generated secret");
    assert_eq!(secret.expose().expose_secret().len(), 64);
}

#[tokio::test]
async fn names_are_unique_among_live_channels_and_deletion_erases_secrets() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    let first = world
        .add_channel(webhook("ops", &receiver.url("/hook"), false))
        .await;
    let mut conn = world.pool.acquire().await.unwrap();
    let taken = create_channel(
        &mut conn,
        &world.cipher,
        crate::common::dev_rules(),
        webhook("ops", &receiver.url("/hook"), false),
    )
    .await;
    match taken {
        Err(NotifyError::Api(error)) => assert_eq!(error.code, ErrorCode::AlreadyExists),
        other => panic!("expected a taken name, got {other:?}"),
    }

    // A pending delivery of a deleted channel fails; its secrets are gone.
    world.enqueue_committed(&approval_event()).await;
    let deleted = delete_channel(&mut conn, first.info.id).await.unwrap();
    assert_eq!(deleted.map(|channel| channel.id), Some(first.info.id));
    assert!(
        delete_channel(&mut conn, first.info.id)
            .await
            .unwrap()
            .is_none()
    );
    let (target_blob, secret_blob): (Option<Vec<u8>>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT target_ciphertext, signing_secret_ciphertext \
         FROM notification_channels WHERE id = $1",
    )
    .bind(first.info.id)
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert!(target_blob.is_none() && secret_blob.is_none());
    let notifications = world.notifications().await;
    assert_eq!(notifications[0].state, NotificationState::Failed);
    assert_eq!(
        notifications[0].last_error.as_deref(),
        Some("the channel was deleted")
    );

    // The name is free again.
    world
        .add_channel(webhook("ops", &receiver.url("/hook"), false))
        .await;
}
