//! Notifications through the whole system (issue 21; docs/design/API.md
//! "Notifications and the approval page"): channels created over REST, events written
//! with the changes that cause them, delivered by the executor's dispatcher to a local
//! HTTP receiver.
//!
//! A webhook delivery carries a signature that verifies under the channel's secret;
//! Slack and Teams get their documented bodies and never the approval token; a receiver
//! that fails twice gets the event on the third try, under the same ids; a restart of
//! the whole system between the change and the delivery still delivers, under one
//! event id; a spend-limit refusal is announced.

use std::time::Duration;

use common::receiver::{Received, Receiver, WAIT, wait_for_event};
use cudly_notify::sign;
use cudly_testkit::receiver::Reply;
use cudly_testkit::rest::call;
use cudly_testkit::{TestStack, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

/// A webhook secret the tests choose, so they can verify signatures.
const SECRET: &str = "notification-test-secret-0123456789abcdef";

/// Starts the stack on the sandbox: its runner polls often, its dispatcher gives a
/// send 2 s and takes an abandoned delivery back after 4 s.
async fn start() -> TestStack {
    TestStack::start_with_sandbox_and(fast_notifications)
        .await
        .expect("the stack starts")
}

fn fast_notifications(config: &mut cudly::StackConfig) {
    config.executor.runner.poll_interval = Duration::from_millis(200);
    let dispatch = &mut config.executor.notify.dispatch;
    dispatch.poll_interval = Duration::from_millis(100);
    dispatch.send_timeout = Duration::from_secs(2);
    dispatch.lease = Duration::from_secs(4);
}

/// Creates a channel over REST; returns its id.
async fn add_channel(stack: &TestStack, body: Value) -> String {
    let (status, channel) = call(
        stack,
        Method::POST,
        "/api/notification-channels",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    assert!(
        channel.get("target").is_none(),
        "a target is never shown: {channel}"
    );
    channel["id"].as_str().expect("an id").to_owned()
}

/// A private, signed webhook wanting `events`.
async fn add_webhook(stack: &TestStack, receiver: &Receiver, events: &[&str]) -> String {
    add_channel(
        stack,
        json!({
            "name": "ops webhook",
            "kind": "webhook",
            "target": receiver.url("/hook"),
            "secret": SECRET,
            "events": events,
            "private": true,
        }),
    )
    .await
}

/// Returns the execution's notifications as the API lists them.
async fn notifications_of(stack: &TestStack, execution_id: &str) -> Vec<Value> {
    let path = format!("/api/notifications?execution_id={execution_id}");
    let (status, listed) = call(stack, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["notifications"].as_array().expect("a list").clone()
}

/// Returns a header of `request`, empty when it has none.
fn header(request: &Received, name: &str) -> String {
    request.header(name).unwrap_or_default()
}

/// Checks a webhook request's signature under [`SECRET`], as a receiver would.
fn assert_signed(request: &Received) {
    let now = chrono::Utc::now().timestamp();
    sign::verify(
        SECRET.as_bytes(),
        &header(request, sign::TIMESTAMP_HEADER),
        &request.body,
        &header(request, sign::SIGNATURE_HEADER),
        now,
        sign::DEFAULT_TOLERANCE,
    )
    .expect("the signature verifies under the channel's secret");
    let mut tampered = request.body.to_vec();
    tampered.push(b' ');
    assert!(
        sign::verify(
            SECRET.as_bytes(),
            &header(request, sign::TIMESTAMP_HEADER),
            &tampered,
            &header(request, sign::SIGNATURE_HEADER),
            now,
            sign::DEFAULT_TOLERANCE,
        )
        .is_err(),
        "a changed body does not verify"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_are_told_signed_on_a_webhook_and_without_the_token_on_slack_and_teams() {
    let stack = start().await;
    let receiver = Receiver::start([]).await;
    let events = ["approval_requested", "execution_finished"];
    add_webhook(&stack, &receiver, &events).await;
    for (kind, path) in [("slack", "/slack"), ("teams", "/teams")] {
        add_channel(
            &stack,
            json!({"name": kind, "kind": kind, "target": receiver.url(path), "events": events}),
        )
        .await;
    }
    let common::Pending { id, token, .. } = common::create_pending(&stack, "notified buyer").await;

    let hook = wait_for_event(&receiver, "/hook", "approval_requested", 1).await;
    let request = &hook[0];
    assert_signed(request);
    let body = request.json();
    assert_eq!(body["event"], "approval_requested");
    assert_eq!(
        body["id"].as_str(),
        request.header(sign::EVENT_ID_HEADER).as_deref()
    );
    assert_eq!(body["execution"], id.as_str());
    let approve_url = body["approve_url"]
        .as_str()
        .expect("a private channel gets the link");
    assert_eq!(
        approve_url,
        stack.url(&format!("/approve/{id}?token={token}")),
        "the link opens the approval page on the gateway"
    );
    let quote = &body["data"]["totals"];
    assert!(quote["total_commitment"].as_f64().unwrap() > 0.0, "{body}");
    let lines = body["data"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{body}");
    for line in lines {
        let account = line["account"].as_str().unwrap();
        assert!(
            account.starts_with("notified buyer (4"),
            "the account by its name and number: {account}"
        );
    }
    assert_eq!(body["data"]["requested_by"], "key:bootstrap");

    let slack = wait_for_event(&receiver, "/slack", "approval_requested", 1).await;
    let slack = slack[0].json();
    assert!(slack["text"].is_string(), "{slack}");
    let blocks = slack["blocks"].as_array().expect("Block Kit blocks");
    assert_eq!(blocks[0]["type"], "header", "{slack}");
    assert!(
        blocks.iter().any(|block| block["type"] == "actions"),
        "a button to the page: {slack}"
    );
    let teams = wait_for_event(&receiver, "/teams", "approval_requested", 1).await;
    let teams = teams[0].json();
    assert_eq!(teams["type"], "message");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    let page = stack.url(&format!("/approve/{id}"));
    for broadcast in [&slack, &teams] {
        let text = broadcast.to_string();
        assert!(
            !text.contains(&token),
            "a broadcast channel never gets the token: {text}"
        );
        assert!(text.contains(&page), "it links to the page instead: {text}");
    }

    let (status, approved) = call(
        &stack,
        Method::POST,
        &format!("/api/executions/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let finished = wait_for_event(&receiver, "/hook", "execution_finished", 1).await;
    assert_signed(&finished[0]);
    let finished = finished[0].json();
    assert_eq!(finished["data"]["status"], "completed", "{finished}");
    assert_eq!(finished["data"]["bought"], 2, "{finished}");
    assert_eq!(finished["data"]["failed"], 0, "{finished}");
    assert!(
        finished["data"]["committed"].as_f64().unwrap() > 0.0,
        "{finished}"
    );
    for path in ["/slack", "/teams"] {
        let finished = wait_for_event(&receiver, path, "execution_finished", 1).await;
        assert!(!finished[0].text().contains(&token));
    }

    let listed = eventually("every notification delivered", WAIT, || async {
        let listed = notifications_of(&stack, &id).await;
        (listed.len() == 6 && listed.iter().all(|n| n["state"] == "delivered")).then_some(listed)
    })
    .await
    .unwrap();
    for notification in &listed {
        assert_eq!(notification["attempts"], 1, "{notification}");
        assert!(notification["last_error"].is_null(), "{notification}");
    }
    for request in receiver.received() {
        assert!(
            request.path == "/hook" || !request.text().contains(&token),
            "only the private webhook carries the token"
        );
    }
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_the_event_on_the_third_try() {
    let stack = start().await;
    let receiver = Receiver::start([Reply::Status(500); 2]).await;
    add_webhook(&stack, &receiver, &["approval_requested"]).await;
    let id = common::create_pending(&stack, "notified buyer").await.id;

    let tries = wait_for_event(&receiver, "/hook", "approval_requested", 3).await;
    assert_eq!(tries.len(), 3, "no fourth try after a success");
    for request in &tries {
        assert_signed(request);
        assert_eq!(
            request.header(sign::EVENT_ID_HEADER),
            tries[0].header(sign::EVENT_ID_HEADER),
            "a retry is the same event"
        );
        assert_eq!(
            request.header(sign::DELIVERY_HEADER),
            tries[0].header(sign::DELIVERY_HEADER),
            "and the same delivery"
        );
    }
    let listed = eventually("the delivery recorded", WAIT, || async {
        let listed = notifications_of(&stack, &id).await;
        (listed.len() == 1 && listed[0]["state"] == "delivered").then_some(listed)
    })
    .await
    .unwrap();
    assert_eq!(listed[0]["attempts"], 3);
    assert_eq!(
        listed[0]["id"].as_str(),
        tries[0].header(sign::DELIVERY_HEADER).as_deref()
    );
    assert_eq!(
        listed[0]["event_id"].as_str(),
        tries[0].header(sign::EVENT_ID_HEADER).as_deref()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "nothing more after the success"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_the_change_and_the_delivery_delivers_one_event_id() {
    let mut stack = start().await;
    // The first request is received but never answered: the system stops while the
    // delivery is in flight, with its outcome unknown to the dispatcher.
    let receiver = Receiver::start([Reply::Hang(Duration::from_secs(3600))]).await;
    add_webhook(&stack, &receiver, &["approval_requested"]).await;
    let common::Pending { id, token, .. } = common::create_pending(&stack, "notified buyer").await;
    let first = wait_for_event(&receiver, "/hook", "approval_requested", 1).await;
    let event_id = header(&first[0], sign::EVENT_ID_HEADER);

    stack
        .restart_services(fast_notifications)
        .await
        .expect("the whole system restarts");

    let listed = eventually("the delivery made after the restart", WAIT, || async {
        let listed = notifications_of(&stack, &id).await;
        (listed.len() == 1 && listed[0]["state"] == "delivered").then_some(listed)
    })
    .await
    .unwrap();
    let requests = receiver.received();
    assert!(requests.len() >= 2, "delivered again after the restart");
    for request in &requests {
        assert_eq!(
            header(request, sign::EVENT_ID_HEADER),
            event_id,
            "every copy is the same event"
        );
        assert_signed(request);
        assert!(
            request.text().contains(&token),
            "the private link survived the restart"
        );
    }
    assert_eq!(listed[0]["event_id"], event_id.as_str());
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spend_limit_refusal_is_announced() {
    let stack = start().await;
    let receiver = Receiver::start([]).await;
    add_webhook(&stack, &receiver, &["limit_refused"]).await;
    let (status, guardrails) = call(
        &stack,
        Method::PUT,
        "/api/guardrails",
        Some(json!({"max_execution_commitment": 1.0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{guardrails}");
    let buyer = stack.add_sandbox_account("limited buyer").await.unwrap();
    let (status, refused) = call(
        &stack,
        Method::POST,
        "/api/executions",
        Some(json!({"cloud_account_id": buyer, "recommendations": common::approval_lines()})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    let announced = wait_for_event(&receiver, "/hook", "limit_refused", 1).await;
    assert_signed(&announced[0]);
    let body = announced[0].json();
    assert_eq!(body["data"]["limit"], "max_execution_commitment", "{body}");
    assert_eq!(body["data"]["amount"], 1.0, "{body}");
    assert!(body["data"]["requested"].as_f64().unwrap() > 1.0, "{body}");
    assert_eq!(body["accounts"], json!([buyer]), "{body}");
    assert!(body.get("approve_url").is_none());
    stack.stop().await.unwrap();
}

/// Creates a plan of one RDS line over `account` with `ramp_schedule`, not
/// auto-purchasing (each step waits for approval); returns its id.
async fn plan_needing_approval(stack: &TestStack, account: &str, ramp_schedule: Value) -> String {
    let (status, plan) = call(
        stack,
        Method::POST,
        "/api/plans",
        Some(json!({
            "name": format!("approved by hand {}", &uuid::Uuid::new_v4().to_string()[..8]),
            "auto_purchase": false,
            "notification_days_before": 7,
            "services": {"aws/rds": {"provider": "aws", "service": "rds", "term": 1,
                "payment": "all-upfront", "coverage": 100}},
            "account_ids": [account],
            "ramp_schedule": ramp_schedule,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().expect("an id").to_owned();
    let line = json!({"provider": "aws", "service": "rds", "region": "us-east-1",
        "resource_type": "db.r5.large", "engine": "postgresql", "count": 1, "term": 1,
        "payment": "all-upfront", "all_accounts": true});
    let (status, listed) = call(
        stack,
        Method::PUT,
        &format!("/api/plans/{id}/recommendations"),
        Some(json!({"recommendations": [line]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_step_needing_approval_and_an_upcoming_step_reach_the_plans_channels() {
    let stack = start().await;
    let receiver = Receiver::start([]).await;
    let account = stack.add_sandbox_account("scheduled buyer").await.unwrap();
    let now = chrono::Utc::now();
    let due = plan_needing_approval(
        &stack,
        &account,
        json!({"type": "immediate", "start_date": now - chrono::Duration::minutes(5)}),
    )
    .await;
    let upcoming = plan_needing_approval(
        &stack,
        &account,
        json!({"type": "weekly-25pct", "start_date": now + chrono::Duration::days(3)}),
    )
    .await;
    // One channel per plan: each hears of its own plan only.
    for (plan, path) in [(&due, "/due"), (&upcoming, "/upcoming")] {
        add_channel(
            &stack,
            json!({"name": format!("plan channel {path}"), "kind": "webhook",
                "target": receiver.url(path), "secret": SECRET, "private": true,
                "events": ["approval_requested", "step_upcoming"], "plan_ids": [plan]}),
        )
        .await;
    }

    let (status, fired) = call(
        &stack,
        Method::POST,
        "/api/admin/sweeps/fire_due_plans/run",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fired}");

    // The due step created a pending execution nobody asked for by hand: its approvers
    // are told, with the link that approves it.
    let requested = wait_for_event(&receiver, "/due", "approval_requested", 1).await;
    assert_signed(&requested[0]);
    let body = requested[0].json();
    assert_eq!(body["plan"], due.as_str(), "{body}");
    let (_, listed) = call(
        &stack,
        Method::GET,
        &format!("/api/executions?plan_id={due}"),
        None,
    )
    .await;
    let scheduled = &listed["executions"][0];
    assert_eq!(scheduled["source"], "schedule", "{listed}");
    assert_eq!(scheduled["status"], "pending", "{listed}");
    assert_eq!(body["execution"], scheduled["id"], "{body}");
    let link = body["approve_url"].as_str().expect("the private link");
    let path = link
        .strip_prefix(&stack.url(""))
        .expect("a link to this gateway");
    let page = reqwest::get(stack.url(path)).await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the link opens the approval page"
    );
    assert!(page.text().await.unwrap().contains("id=\"approve\""));

    // The other plan's first step fires in three days, within its seven days' notice.
    let reminded = wait_for_event(&receiver, "/upcoming", "step_upcoming", 1).await;
    assert_signed(&reminded[0]);
    let reminder = reminded[0].json();
    assert_eq!(reminder["plan"], upcoming.as_str(), "{reminder}");
    assert_eq!(reminder["data"]["step_number"], 1, "{reminder}");
    assert_eq!(reminder["data"]["needs_approval"], true, "{reminder}");
    assert_eq!(
        reminder["data"]["fires_on"],
        (now + chrono::Duration::days(3)).date_naive().to_string(),
        "{reminder}"
    );

    // Sweeping again reminds no one twice and fires nothing new.
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/admin/sweeps/fire_due_plans/run",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    assert_eq!(
        received.iter().filter(|r| r.path == "/upcoming").count(),
        1,
        "one reminder per step"
    );
    assert!(
        received
            .iter()
            .filter(|r| r.path == "/due")
            .all(|r| event_kind_is(r, "approval_requested")),
        "the due plan's channel hears of its own plan only"
    );
    stack.stop().await.unwrap();
}

fn event_kind_is(request: &Received, kind: &str) -> bool {
    header(request, sign::EVENT_HEADER) == kind
}
