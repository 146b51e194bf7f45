//! Delivery through the outbox to a local receiver: signatures, retries, restarts and
//! crashes, what broadcast channels get, failing channels.

use std::time::Duration;

use chrono::Utc;
use cudly_notify::sign::{self, VerifyError};
use cudly_notify::{NotificationState, PrivateTargets};

use crate::common::{
    CANARY_TOKEN, Receiver, Reply, Running, SECRET, World, approval_event, fast_settings, pool_of,
    wait_for_notifications, webhook,
};

#[tokio::test]
async fn a_webhook_delivery_carries_a_valid_signature() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    let channel = world
        .add_channel(webhook("signed", &receiver.url("/hook"), false))
        .await;
    let event = approval_event();
    assert_eq!(world.enqueue_committed(&event).await, 1);

    let dispatcher = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    let received = receiver.wait_for(1).await;
    dispatcher.stop().await;

    let request = &received[0];
    let timestamp = request.header("x-cudly-timestamp").unwrap();
    let signature = request.header("x-cudly-signature").unwrap();
    let now = Utc::now().timestamp();
    assert_eq!(
        sign::verify(
            SECRET.as_bytes(),
            &timestamp,
            &request.body,
            &signature,
            now,
            sign::DEFAULT_TOLERANCE
        ),
        Ok(())
    );
    let mut altered = request.body.clone();
    altered.push(b' ');
    assert_eq!(
        sign::verify(
            SECRET.as_bytes(),
            &timestamp,
            &altered,
            &signature,
            now,
            sign::DEFAULT_TOLERANCE
        ),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        request.header("x-cudly-event-id"),
        Some(event.id.to_string())
    );
    assert_eq!(
        request.header("x-cudly-event").as_deref(),
        Some("approval_requested")
    );
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = request.json();
    assert_eq!(body["id"], event.id.to_string());
    assert_eq!(body["event"], "approval_requested");

    let notifications = world.notifications().await;
    assert_eq!(notifications.len(), 1);
    let notification = &notifications[0];
    assert_eq!(notification.state, NotificationState::Delivered);
    assert_eq!(notification.attempts, 1);
    assert_eq!(notification.channel_id, channel.info.id);
    assert_eq!(notification.event_id, event.id);
    assert_eq!(notification.execution_id, event.execution_id);
    assert_eq!(
        request.header("x-cudly-delivery"),
        Some(notification.id.to_string())
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_on_the_third_try() {
    let world = World::new().await;
    let receiver = Receiver::start([Reply::Status(500), Reply::Status(503)]).await;
    world
        .add_channel(webhook("flaky", &receiver.url("/hook"), false))
        .await;
    let event = approval_event();
    world.enqueue_committed(&event).await;

    let dispatcher = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    let received = receiver.wait_for(3).await;
    dispatcher.stop().await;

    assert_eq!(received.len(), 3);
    let delivery_id = received[0].header("x-cudly-delivery");
    for request in &received {
        assert_eq!(
            request.header("x-cudly-event-id"),
            Some(event.id.to_string())
        );
        assert_eq!(request.header("x-cudly-delivery"), delivery_id);
    }
    let notifications = world.notifications().await;
    assert_eq!(notifications[0].state, NotificationState::Delivered);
    assert_eq!(notifications[0].attempts, 3);
    assert_eq!(notifications[0].last_error, None);
}

#[tokio::test]
async fn a_restart_between_the_commit_and_the_delivery_delivers_the_event_once() {
    let mut world = World::new().await;
    let receiver = Receiver::start([]).await;
    world
        .add_channel(webhook("after-restart", &receiver.url("/hook"), false))
        .await;
    let event = approval_event();
    world.enqueue_committed(&event).await;

    // The whole system goes down after the commit, before any dispatcher ran: every
    // connection is gone and only the database remains.
    world.pool.close().await;
    world.pool = pool_of(&world.db).await;

    let dispatcher = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    receiver.wait_for(1).await;
    // Further rounds of the dispatcher must not send it again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    dispatcher.stop().await;

    let event_ids: Vec<Option<String>> = receiver
        .received()
        .iter()
        .map(|request| request.header("x-cudly-event-id"))
        .collect();
    assert_eq!(event_ids, vec![Some(event.id.to_string())]);
    assert_eq!(
        world.notifications().await[0].state,
        NotificationState::Delivered
    );
}

#[tokio::test]
async fn a_dispatcher_killed_mid_delivery_is_replaced_and_the_event_keeps_its_id() {
    let world = World::new().await;
    // The first request never gets its answer in time: the dispatcher dies waiting.
    let receiver = Receiver::start([Reply::Hang(Duration::from_secs(30))]).await;
    world
        .add_channel(webhook("crash", &receiver.url("/hook"), false))
        .await;
    let event = approval_event();
    world.enqueue_committed(&event).await;

    let first = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    receiver.wait_for(1).await;
    first.kill().await;

    // The delivery stays leased to the dead dispatcher until its lease runs out; then
    // another takes it.
    let second = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    let received = receiver.wait_for(2).await;
    let notification = wait_for_notifications(&world, "the delivery recorded", |notifications| {
        notifications
            .iter()
            .find(|notification| notification.state == NotificationState::Delivered)
            .cloned()
    })
    .await;
    second.stop().await;

    // Duplicates, but only ever of the same event and delivery.
    for request in &received {
        assert_eq!(
            request.header("x-cudly-event-id"),
            Some(event.id.to_string())
        );
        assert_eq!(
            request.header("x-cudly-delivery"),
            Some(notification.id.to_string())
        );
        assert_eq!(request.json()["id"], event.id.to_string());
    }
    assert_eq!(notification.attempts, 2);
}

#[tokio::test]
async fn a_broadcast_channel_never_receives_the_token_and_a_private_one_does() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    world
        .add_channel(webhook("everyone", &receiver.url("/broadcast"), false))
        .await;
    world
        .add_channel(webhook("approvers", &receiver.url("/private"), true))
        .await;
    let event = approval_event();
    assert_eq!(world.enqueue_committed(&event).await, 2);

    // At rest the token is only encrypted, never in the event's payload.
    let (payload, ciphertext): (serde_json::Value, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT payload, approval_url_ciphertext FROM notification_events WHERE id = $1",
    )
    .bind(event.id)
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert!(!payload.to_string().contains(CANARY_TOKEN));
    let blob = ciphertext.expect("a private channel wants the approval link");
    assert!(!String::from_utf8_lossy(&blob).contains(CANARY_TOKEN));

    let dispatcher = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    let received = receiver.wait_for(2).await;
    dispatcher.stop().await;

    let at = |path: &str| {
        received
            .iter()
            .find(|request| request.path == path)
            .unwrap_or_else(|| panic!("a request on {path}"))
    };
    let broadcast = at("/broadcast");
    assert!(!broadcast.text().contains(CANARY_TOKEN));
    assert!(!broadcast.text().contains("token="));
    assert!(broadcast.json().get("approve_url").is_none());
    assert!(
        broadcast.json()["data"]["page_url"]
            .as_str()
            .unwrap()
            .starts_with("https://cudly.example.com/approve/")
    );
    let private = at("/private").json();
    assert!(
        private["approve_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?token={CANARY_TOKEN}"))
    );

    // Once no private delivery remains, the link is erased.
    let ciphertext: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT approval_url_ciphertext FROM notification_events WHERE id = $1")
            .bind(event.id)
            .fetch_one(&world.pool)
            .await
            .unwrap();
    assert!(ciphertext.is_none());
}

#[tokio::test]
async fn a_failing_channel_is_marked_while_another_channel_still_delivers() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    // `/broken` always answers 500; its URL holds a token that no stored error may show.
    let broken = world
        .add_channel(webhook(
            "broken",
            &receiver.url("/broken?key=url-s3cr3t"),
            false,
        ))
        .await;
    let working = world
        .add_channel(webhook("working", &receiver.url("/working"), false))
        .await;
    world.enqueue_committed(&approval_event()).await;
    world.enqueue_committed(&approval_event()).await;

    let dispatcher = Running::start(world.dispatcher(
        world.pool.clone(),
        PrivateTargets::Allowed,
        fast_settings(),
    ));
    let settled = wait_for_notifications(&world, "every delivery settled", |notifications| {
        let broken_failed = notifications
            .iter()
            .filter(|note| note.channel_id == broken.info.id)
            .all(|note| note.state == NotificationState::Failed);
        let working_delivered = notifications
            .iter()
            .filter(|note| note.channel_id == working.info.id)
            .all(|note| note.state == NotificationState::Delivered);
        (notifications.len() == 4 && broken_failed && working_delivered)
            .then(|| notifications.to_vec())
    })
    .await;
    dispatcher.stop().await;

    for note in settled
        .iter()
        .filter(|note| note.channel_id == broken.info.id)
    {
        assert_eq!(note.attempts, 5, "max attempts");
        let error = note.last_error.as_deref().unwrap();
        assert_eq!(error, "the receiver answered http 500");
        assert!(!error.contains("url-s3cr3t") && !error.contains("127.0.0.1"));
    }
    let mut conn = world.pool.acquire().await.unwrap();
    let channels = cudly_notify::list_channels(&mut conn).await.unwrap();
    let broken_now = channels
        .iter()
        .find(|channel| channel.id == broken.info.id)
        .unwrap();
    assert!(broken_now.failing_since.is_some());
    assert!(broken_now.consecutive_failures >= 3);
    let working_now = channels
        .iter()
        .find(|channel| channel.id == working.info.id)
        .unwrap();
    assert!(working_now.failing_since.is_none());
    assert_eq!(working_now.consecutive_failures, 0);
}

#[tokio::test]
async fn an_event_is_enqueued_with_its_transaction_and_only_once() {
    let world = World::new().await;
    let receiver = Receiver::start([]).await;
    world
        .add_channel(webhook("tx", &receiver.url("/hook"), false))
        .await;
    let event = approval_event();

    let mut tx = world.pool.begin().await.unwrap();
    assert_eq!(
        cudly_notify::enqueue(&mut tx, &world.cipher, &event)
            .await
            .unwrap(),
        1
    );
    tx.rollback().await.unwrap();
    assert!(world.notifications().await.is_empty());

    assert_eq!(world.enqueue_committed(&event).await, 1);
    assert_eq!(world.enqueue_committed(&event).await, 0);
    assert_eq!(world.notifications().await.len(), 1);
}
