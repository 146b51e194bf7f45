//! Rotating the notification key (`cudly-executor rotate-notify-key`): every stored
//! channel secret ends under the new key, a second run changes nothing, and a run with
//! keys that open nothing fails and changes nothing.

use std::process::Command;

use cudly_notify::crypto::SecretField;
use cudly_notify::{ChannelCipher, ChannelKey};
use cudly_testkit::TestStack;
use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

fn rotate(database_url: &str, key: &str, old_key: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cudly-executor"));
    command.arg("rotate-notify-key").env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command
        .env("DATABASE_URL", database_url)
        .env("CUDLY_NOTIFY_KEY", key)
        .env("RUST_LOG", "warn");
    if let Some(old_key) = old_key {
        command.env("CUDLY_NOTIFY_OLD_KEY", old_key);
    }
    command.output().expect("the binary runs")
}

/// The stored secrets of every channel: (channel id, field, blob).
async fn stored_secrets(stack: &TestStack) -> Vec<(Uuid, SecretField, Vec<u8>)> {
    let pool = stack.db.pool("executor").await.unwrap();
    type Blob = Option<Vec<u8>>;
    let rows: Vec<(Uuid, Blob, Blob)> = sqlx::query_as(
        "SELECT id, target_ciphertext, signing_secret_ciphertext FROM notification_channels",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut secrets = Vec::new();
    for (id, target, secret) in rows {
        secrets.extend(target.map(|blob| (id, SecretField::ChannelTarget, blob)));
        secrets.extend(secret.map(|blob| (id, SecretField::ChannelSigningSecret, blob)));
    }
    secrets
}

#[tokio::test]
async fn rotating_the_notification_key_reseals_every_channel_secret_once() {
    let mut stack = TestStack::start().await.unwrap();
    let old_key = stack
        .secrets()
        .notify_key
        .as_ref()
        .expect("a notification key")
        .expose_secret()
        .to_owned();
    for (name, kind, target) in [
        ("hook", "webhook", "http://127.0.0.1:9/hook"),
        ("slack", "slack", "http://127.0.0.1:9/services/T0/B0/x"),
    ] {
        let (status, created) = call(
            &stack,
            Method::POST,
            "/api/notification-channels",
            Some(json!({"name": name, "kind": kind, "target": target,
                "events": ["approval_requested"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    stack.stop_services().await.unwrap();
    let before = stored_secrets(&stack).await;
    assert_eq!(before.len(), 3, "two targets and one signing secret");

    let database_url = stack.db.url().to_owned();
    let new_key = hex::encode(rand::random::<[u8; 32]>());
    let stranger = hex::encode(rand::random::<[u8; 32]>());
    let refused = rotate(&database_url, &stranger, None);
    assert!(!refused.status.success(), "keys that open nothing fail");
    assert_eq!(stored_secrets(&stack).await, before, "and change nothing");

    let output = rotate(&database_url, &new_key, Some(&old_key));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 re-encrypted, 0 already"), "{stdout}");
    for key in [&new_key, &old_key] {
        assert!(!stdout.contains(key.as_str()) && !stderr.contains(key.as_str()));
    }
    let new_only = ChannelCipher::new(ChannelKey::from_hex(&new_key).unwrap(), None);
    for (id, field, blob) in stored_secrets(&stack).await {
        let opened = new_only
            .decrypt(id, field, &blob)
            .expect("under the new key");
        if field == SecretField::ChannelTarget {
            assert!(opened.expose_secret().starts_with("http://127.0.0.1:9/"));
        }
    }

    let again = rotate(&database_url, &new_key, Some(&old_key));
    let stdout = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success());
    assert!(stdout.contains("0 re-encrypted, 3 already"), "{stdout}");
    stack.stop().await.unwrap();
}
