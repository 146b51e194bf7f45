//! The notification routes end to end (issue 21; docs/design/API.md "Notifications"):
//! the whole stack, channels created, listed and deleted through the gateway and stored
//! by the executor.
//!
//! A channel's target and secret are write-only: the creation reply shows a webhook
//! secret only when the server generated it, and no reply ever shows the target. Every
//! route needs an admin key; bad input is a 400 naming the field.
//!
//! The test stack allows targets on loopback (`CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS`) and
//! has a notification key (`CUDLY_NOTIFY_KEY`), as `StackConfig::for_tests` sets them.

use cudly_testkit::rest::call;
use cudly_testkit::{TestStack, free_port};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "6f1c2a3b-1111-4222-8333-944455556666";

/// The fields a channel shows, in every reply.
const CHANNEL_FIELDS: [&str; 10] = [
    "id",
    "name",
    "kind",
    "events",
    "plan_ids",
    "account_ids",
    "private",
    "consecutive_failures",
    "failing_since",
    "created_at",
];

/// A webhook target on loopback: nothing needs to listen there, creating a channel sends
/// nothing.
fn hook_url() -> String {
    format!("http://127.0.0.1:{}/hook", free_port())
}

/// Sends `body` with `key` as the bearer; returns status and JSON reply (`Null` when
/// empty).
async fn call_with_key(
    stack: &TestStack,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = stack.http.request(method, stack.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("a reply body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not json: {text}"))
    };
    (status, json)
}

/// Checks that `reply` is a 400 naming `field`.
#[track_caller]
fn assert_bad_field(status: StatusCode, reply: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["field"], field, "{reply}");
    assert!(reply["error"].is_string(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_created_listed_and_deleted_by_admins_without_showing_their_target() {
    let stack = TestStack::start().await.expect("the stack starts");
    let target = hook_url();

    // A webhook without a secret: the reply shows the generated one, once, and never the
    // target.
    let (status, created) = call(
        &stack,
        Method::POST,
        "/api/notification-channels",
        Some(
            json!({"name": "ops hook", "kind": "webhook", "target": target,
                    "events": ["approval_requested", "execution_finished"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for field in CHANNEL_FIELDS {
        assert!(created.get(field).is_some(), "{field} missing: {created}");
    }
    assert_eq!(created["name"], "ops hook");
    assert_eq!(created["kind"], "webhook");
    assert_eq!(created["private"], false);
    assert_eq!(created["consecutive_failures"], 0);
    assert!(created["failing_since"].is_null(), "{created}");
    assert!(created["created_at"].is_string(), "{created}");
    assert_eq!(created["plan_ids"], json!([]));
    assert_eq!(created["account_ids"], json!([]));
    let mut events: Vec<&str> = created["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["approval_requested", "execution_finished"]);
    let secret = created["secret"].as_str().expect("a generated secret");
    assert!(
        secret.len() >= 32,
        "a signing secret of 32 characters or more"
    );
    assert!(created.get("target").is_none(), "{created}");
    assert!(!created.to_string().contains(&target), "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();

    // A secret the caller chose is not shown back.
    let chosen = "chosen-signing-secret-0123456789abcdef";
    let (status, private) = call(
        &stack,
        Method::POST,
        "/api/notification-channels",
        Some(
            json!({"name": "approvers hook", "kind": "webhook", "target": hook_url(),
                    "secret": chosen, "events": ["approval_requested"], "private": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{private}");
    assert_eq!(private["private"], true);
    assert!(private.get("secret").is_none(), "{private}");
    assert!(!private.to_string().contains(chosen), "{private}");

    // The name is taken while the channel lives.
    let (status, taken) = call(
        &stack,
        Method::POST,
        "/api/notification-channels",
        Some(
            json!({"name": "ops hook", "kind": "webhook", "target": hook_url(),
                    "events": ["approval_requested"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");

    // The list shows both, never a target or a secret.
    let (status, listed) = call(&stack, Method::GET, "/api/notification-channels", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let channels = listed["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 2, "{listed}");
    let shown = channels
        .iter()
        .find(|channel| channel["id"] == id.as_str())
        .expect("the webhook is listed");
    for field in CHANNEL_FIELDS {
        assert!(shown.get(field).is_some(), "{field} missing: {shown}");
    }
    for channel in channels {
        assert!(channel.get("target").is_none(), "{channel}");
        assert!(channel.get("secret").is_none(), "{channel}");
    }
    let text = listed.to_string();
    assert!(
        !text.contains(&target) && !text.contains(secret) && !text.contains(chosen),
        "{text}"
    );

    // A viewer key may neither read nor change channels, nor read notifications.
    let (status, viewer) = call(
        &stack,
        Method::POST,
        "/api/keys",
        Some(json!({"name": "notification reader", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{viewer}");
    let viewer_key = viewer["key"].as_str().expect("a key").to_owned();
    let refused = [
        (Method::GET, "/api/notification-channels".to_owned(), None),
        (
            Method::POST,
            "/api/notification-channels".to_owned(),
            Some(
                json!({"name": "sneaky", "kind": "webhook", "target": hook_url(),
                        "events": ["approval_requested"]}),
            ),
        ),
        (
            Method::DELETE,
            format!("/api/notification-channels/{id}"),
            None,
        ),
        (Method::GET, "/api/notifications".to_owned(), None),
    ];
    for (method, path, body) in refused {
        let (status, reply) = call_with_key(&stack, &viewer_key, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {reply}");
    }

    // Delete: 204, then 404; the list no longer shows it.
    let path = format!("/api/notification-channels/{id}");
    let (status, reply) = call(&stack, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    let (status, reply) = call(&stack, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    let (status, reply) = call(
        &stack,
        Method::DELETE,
        &format!("/api/notification-channels/{UNKNOWN_ID}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    let (_, listed) = call(&stack, Method::GET, "/api/notification-channels", None).await;
    assert!(
        listed["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .all(|channel| channel["id"] != id.as_str()),
        "{listed}"
    );

    // The executor recorded both changes with who made them.
    let (status, audit) = call(&stack, Method::GET, "/api/audit", None).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    for action in ["channel.create", "channel.delete"] {
        let event = audit["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|event| event["action"] == action && event["target_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no {action} event for {id}: {audit}"));
        assert_eq!(event["service"], "executor", "{event}");
        assert_eq!(event["actor"], "key:bootstrap", "{event}");
        assert_eq!(event["actor_key_id"], "bootstrap", "{event}");
    }

    // No delivery was due: nothing happened that the channels subscribe to.
    let (status, notifications) = call(
        &stack,
        Method::GET,
        &format!(
            "/api/notifications?channel_id={}&limit=10",
            private["id"].as_str().expect("an id")
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{notifications}");
    assert_eq!(notifications["notifications"], json!([]));
    stack.stop().await.expect("the stack stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_channel_input_and_bad_filters_are_a_400_naming_the_field() {
    let stack = TestStack::start().await.expect("the stack starts");
    let channel = |changes: Value| {
        let mut body = json!({"name": "bad input hook", "kind": "webhook",
                              "target": "http://127.0.0.1:9/hook",
                              "events": ["approval_requested"]});
        for (key, value) in changes.as_object().expect("an object") {
            body[key] = value.clone();
        }
        body
    };
    let cases = [
        ("kind", channel(json!({"kind": "pager"}))),
        ("events[0]", channel(json!({"events": [42]}))),
        (
            "events",
            channel(json!({"events": ["approval_requested", "tea_time"]})),
        ),
        ("events", channel(json!({"events": []}))),
        ("plan_ids[0]", channel(json!({"plan_ids": ["not-a-uuid"]}))),
        ("account_ids[0]", channel(json!({"account_ids": [1]}))),
        ("target", channel(json!({"target": "not a url"}))),
        ("secret", channel(json!({"secret": "too short"}))),
        ("private", channel(json!({"private": "yes"}))),
        ("colour", channel(json!({"colour": "red"}))),
    ];
    for (field, body) in cases {
        let (status, reply) = call(
            &stack,
            Method::POST,
            "/api/notification-channels",
            Some(body.clone()),
        )
        .await;
        assert_bad_field(status, &reply, field);
        assert!(!reply.to_string().contains("pager"), "{reply}");
    }
    // A slack channel is read by everyone in it: it cannot be private.
    let (status, reply) = call(
        &stack,
        Method::POST,
        "/api/notification-channels",
        Some(channel(json!({"kind": "slack",
            "target": "https://hooks.slack.com/services/T000/B000/XXXX", "private": true}))),
    )
    .await;
    assert_bad_field(status, &reply, "private");

    let (status, reply) = call(
        &stack,
        Method::DELETE,
        "/api/notification-channels/not-a-uuid",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");

    for (field, query) in [
        ("execution_id", "execution_id=yesterday"),
        ("channel_id", "channel_id=12"),
        ("limit", "limit=0"),
        ("limit", "limit=1001"),
    ] {
        let (status, reply) = call(
            &stack,
            Method::GET,
            &format!("/api/notifications?{query}"),
            None,
        )
        .await;
        assert_bad_field(status, &reply, field);
    }
    let (status, reply) = call(&stack, Method::GET, "/api/notifications?state=failed", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let (status, reply) = call(
        &stack,
        Method::GET,
        &format!("/api/notifications?execution_id={UNKNOWN_ID}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["notifications"], json!([]));

    // Nothing was created by any of it.
    let (_, listed) = call(&stack, Method::GET, "/api/notification-channels", None).await;
    assert_eq!(listed["channels"], json!([]), "{listed}");
    stack.stop().await.expect("the stack stops");
}
