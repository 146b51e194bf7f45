//! The gateway's HTTP contract against the shared Postgres, with every backend URL
//! pointing at a closed port.

use std::time::Duration;

use cudly_gateway::{App, AppState, BackendUrls, Config};
use cudly_testkit::{TestDb, eventually, free_port};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "test-bootstrap-admin-key-0123456789";

struct TestGateway {
    base: String,
    metrics_url: String,
    http: reqwest::Client,
    db: TestDb,
    #[allow(dead_code)]
    state: AppState,
}

impl TestGateway {
    /// Starts a gateway on 127.0.0.1:0 on a fresh database and waits for its migrations.
    async fn spawn() -> Self {
        Self::spawn_with(closed_port_url()).await
    }

    /// Starts a gateway whose accounts backend is at `accounts_url`; the other backends
    /// point at closed ports.
    async fn spawn_with(accounts_url: String) -> Self {
        Self::spawn_adjusted(accounts_url, |_| {}).await
    }

    /// As [`TestGateway::spawn_with`], with `adjust` applied to the configuration.
    async fn spawn_adjusted(accounts_url: String, adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create().await.expect("create test database");
        let mut config = Config::new(db.secret_url(), SecretString::from("gateway-test-token"))
            .with_bootstrap_admin_key(ADMIN_KEY)
            .with_backends(BackendUrls {
                accounts: accounts_url,
                planner: closed_port_url(),
                executor: closed_port_url(),
                sweeper: closed_port_url(),
            });
        config.readiness_timeout = Duration::from_secs(1);
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = App::from_listener(config, listener)
            .await
            .expect("build gateway");
        let state = app.state().clone();
        let base = format!("http://{}", app.local_addr());
        let metrics_url = format!("http://{}/metrics", app.metrics_addr());
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        let migrated = state.clone();
        eventually("gateway migrations", Duration::from_secs(30), || {
            let migrated = migrated.clone();
            async move { migrated.is_migrated().then_some(()) }
        })
        .await
        .unwrap();
        Self {
            base,
            metrics_url,
            http: reqwest::Client::new(),
            db,
            state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        with_key(self.http.get(self.url(path)), key)
    }

    fn post(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        with_key(self.http.post(self.url(path)), key)
    }

    fn delete(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        with_key(self.http.delete(self.url(path)), key)
    }

    /// An approval of an execution that does not exist, by token: a token route.
    fn approve_unknown_execution(&self) -> reqwest::RequestBuilder {
        self.post(
            "/api/executions/00000000-0000-4000-8000-000000000000/approve",
            None,
        )
        .json(&json!({"token": "0".repeat(64)}))
    }

    /// Creates a key through the API with the admin key and returns the reply.
    async fn create_key(&self, name: &str, role: &str) -> Value {
        let response = self
            .post("/api/keys", Some(ADMIN_KEY))
            .json(&json!({"name": name, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }
}

fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn with_key(builder: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
    match key {
        Some(key) => builder.bearer_auth(key),
        None => builder,
    }
}

/// Asserts the status and a JSON error body, and returns the body.
async fn expect_json_error(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "body {body}");
    body
}

#[tokio::test]
async fn a_request_without_a_key_or_with_an_unknown_key_is_unauthorized() {
    let gateway = TestGateway::spawn().await;
    let missing = gateway.get("/api/keys", None).send().await.unwrap();
    expect_json_error(missing, StatusCode::UNAUTHORIZED).await;
    let unknown = gateway
        .get("/api/keys", Some("cudly_not-a-key"))
        .send()
        .await
        .unwrap();
    expect_json_error(unknown, StatusCode::UNAUTHORIZED).await;
    let wrong_scheme = gateway
        .get("/api/keys", None)
        .header("authorization", format!("Basic {ADMIN_KEY}"))
        .send()
        .await
        .unwrap();
    expect_json_error(wrong_scheme, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_viewer_key_may_read_but_not_write() {
    let gateway = TestGateway::spawn().await;
    let created = gateway.create_key("dashboard", "viewer").await;
    assert_eq!(created["role"], "viewer");
    let viewer_key = created["key"].as_str().unwrap();

    let write = gateway
        .post("/api/keys", Some(viewer_key))
        .json(&json!({"name": "sneaky", "role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_json_error(write, StatusCode::FORBIDDEN).await;

    let read = gateway
        .get("/api/keys", Some(viewer_key))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let listed: Value = read.json().await.unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "the refused write created nothing");
    assert_eq!(keys[0]["name"], "dashboard");
    assert!(
        keys[0]["last_used_at"].is_string(),
        "use is recorded: {listed}"
    );
    assert!(
        keys[0].get("key").is_none(),
        "a listed key never shows the key"
    );
}

#[tokio::test]
async fn the_admin_key_may_read_and_write() {
    let gateway = TestGateway::spawn().await;
    let read = gateway
        .get("/api/keys", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.json::<Value>().await.unwrap(), json!({"keys": []}));
    let created = gateway.create_key("ops", "admin").await;
    assert_eq!(created["name"], "ops");
    assert!(created["id"].is_string() && created["created_at"].is_string());

    let created_admin_key = created["key"].as_str().unwrap();
    let by_new_admin = gateway
        .post("/api/keys", Some(created_admin_key))
        .json(&json!({"name": "ci", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_new_admin.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let gateway = TestGateway::spawn().await;
    let response = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .header("content-type", "application/json")
        .body("{\"name\": \"ops\", ")
        .send()
        .await
        .unwrap();
    let body = expect_json_error(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "malformed json");
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_too_large() {
    let gateway = TestGateway::spawn().await;
    let name = "x".repeat(1024 * 1024 + 1);
    let response = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": name, "role": "viewer"}))
        .send()
        .await
        .unwrap();
    expect_json_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let gateway = TestGateway::spawn().await;
    let response = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .header("content-type", "text/plain")
        .body(r#"{"name":"ops","role":"admin"}"#)
        .send()
        .await
        .unwrap();
    expect_json_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn an_unknown_or_mistyped_field_is_a_bad_request_naming_the_field() {
    let gateway = TestGateway::spawn().await;
    let unknown = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "ops", "role": "admin", "expires": "tomorrow"}))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(unknown, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "expires", "{body}");
    assert!(!body.to_string().contains("tomorrow"), "{body}");

    let mistyped = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "ops", "role": "root-s3cr3t"}))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(mistyped, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "role", "{body}");
    assert!(
        !body.to_string().contains("root-s3cr3t"),
        "the value is never echoed: {body}"
    );

    let missing = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "ops"}))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(missing, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "role", "{body}");
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let gateway = TestGateway::spawn().await;
    let response = gateway
        .get("/api/nothing-here", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    expect_json_error(response, StatusCode::NOT_FOUND).await;
    let outside_api = gateway.get("/nothing", None).send().await.unwrap();
    expect_json_error(outside_api, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let gateway = TestGateway::spawn().await;
    let response = gateway
        .http
        .put(gateway.url("/api/keys"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    expect_json_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
    let on_health = gateway.post("/health/livez", None).send().await.unwrap();
    expect_json_error(on_health, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn keys_are_stored_hashed() {
    let gateway = TestGateway::spawn().await;
    let created = gateway.create_key("ops", "admin").await;
    let key = created["key"].as_str().unwrap().to_owned();
    let pool = gateway.db.pool("gateway").await.unwrap();
    let dump: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(dump.len(), 1);
    assert!(!dump[0].contains(&key), "the raw key is not stored");
    let hex_key = key
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>();
    assert!(!dump[0].contains(&hex_key), "nor its bytes");
    let hash_len: i32 = sqlx::query_scalar("SELECT octet_length(key_hash) FROM api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hash_len, 32);
}

#[tokio::test]
async fn a_deleted_key_is_unauthorized() {
    let gateway = TestGateway::spawn().await;
    let created = gateway.create_key("temporary", "viewer").await;
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        gateway
            .get("/api/keys", Some(key))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let deleted = gateway
        .delete(&format!("/api/keys/{id}"), Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = gateway.get("/api/keys", Some(key)).send().await.unwrap();
    expect_json_error(after, StatusCode::UNAUTHORIZED).await;

    let again = gateway
        .delete(&format!("/api/keys/{id}"), Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    expect_json_error(again, StatusCode::NOT_FOUND).await;
    let malformed = gateway
        .delete("/api/keys/not-a-uuid", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(malformed, StatusCode::BAD_REQUEST).await;
    assert!(!body.to_string().contains("not-a-uuid"), "{body}");
}

#[tokio::test]
async fn an_expired_key_is_unauthorized_and_a_past_expiry_is_refused() {
    let gateway = TestGateway::spawn().await;
    let past = (chrono::Utc::now() - chrono::TimeDelta::seconds(1)).to_rfc3339();
    let refused = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "stale", "role": "viewer", "expires_at": past}))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "expires_at");

    let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500)).to_rfc3339();
    let created = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "short-lived", "role": "viewer", "expires_at": soon}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert!(created["expires_at"].is_string(), "{created}");
    let key = created["key"].as_str().unwrap();
    let before = gateway.get("/api/keys", Some(key)).send().await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let after = gateway.get("/api/keys", Some(key)).send().await.unwrap();
    let body = expect_json_error(after, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "api key expired");
}

#[tokio::test]
async fn the_bootstrap_key_can_be_disabled_once_another_admin_key_exists() {
    let gateway = TestGateway::spawn().await;
    let disable = |key: &str| gateway.delete("/api/keys/bootstrap", Some(key)).send();
    let refused = disable(ADMIN_KEY).await.unwrap();
    let body = expect_json_error(refused, StatusCode::CONFLICT).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("another admin key"),
        "{body}"
    );
    let viewer = gateway.create_key("reader", "viewer").await;
    let refused = disable(viewer["key"].as_str().unwrap()).await.unwrap();
    expect_json_error(refused, StatusCode::FORBIDDEN).await;
    let admin = gateway.create_key("ops", "admin").await;
    let admin = admin["key"].as_str().unwrap();

    assert_eq!(
        disable(ADMIN_KEY).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let locked_out = gateway
        .get("/api/keys", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    expect_json_error(locked_out, StatusCode::UNAUTHORIZED).await;
    let listed = gateway.get("/api/keys", Some(admin)).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK, "the other admin goes on");
    assert_eq!(
        disable(admin).await.unwrap().status(),
        StatusCode::NO_CONTENT,
        "idempotent"
    );
}

#[tokio::test]
async fn a_client_that_keeps_failing_to_authenticate_is_locked_out_with_retry_after() {
    let gateway = TestGateway::spawn_adjusted(closed_port_url(), |config| {
        config.per_minute.failed_authentications = std::num::NonZeroU32::new(3).unwrap();
    })
    .await;
    let guess = || gateway.get("/api/keys", Some("cudly_a-guess")).send();
    for _ in 0..3 {
        expect_json_error(guess().await.unwrap(), StatusCode::UNAUTHORIZED).await;
    }
    let refused = guess().await.unwrap();
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body = expect_json_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        body["error"].as_str().unwrap().contains("too many failed"),
        "{body}"
    );
    // Locked out: even the right key waits, so a right guess is not told apart.
    let right = gateway
        .get("/api/keys", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(right.headers().contains_key("retry-after"));
    // Asking without a key is not a failure, and is answered as ever.
    let anonymous = gateway.get("/api/keys", None).send().await.unwrap();
    expect_json_error(anonymous, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn the_approval_token_routes_answer_429_past_their_limit() {
    let gateway = TestGateway::spawn_adjusted(closed_port_url(), |config| {
        config.per_minute.token_requests = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    let approve = || gateway.approve_unknown_execution().send();
    for _ in 0..2 {
        let status = approve().await.unwrap().status();
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let refused = approve().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    expect_json_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    let keys = gateway
        .get("/api/keys", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.status(),
        StatusCode::OK,
        "only the token routes are limited"
    );
}

#[tokio::test]
async fn credential_tests_and_discoveries_answer_429_past_their_limit() {
    // Each calls AWS (STS, Organizations) with the account's quotas: a flood is cut off
    // before it reaches the accounts service (here a closed port: 503 until the limit).
    let gateway = TestGateway::spawn_adjusted(closed_port_url(), |config| {
        config.per_minute.aws_checks = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    let id = uuid::Uuid::new_v4();
    let test = || {
        gateway
            .post(&format!("/api/accounts/{id}/test"), Some(ADMIN_KEY))
            .send()
    };
    for _ in 0..2 {
        assert_ne!(
            test().await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let refused = test().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    expect_json_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    let discover = gateway
        .post("/api/accounts/discover-org", Some(ADMIN_KEY))
        .json(&json!({"org_root_account_id": id}))
        .send()
        .await
        .unwrap();
    expect_json_error(discover, StatusCode::TOO_MANY_REQUESTS).await;
    let listed = gateway
        .get("/api/accounts", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_ne!(
        listed.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "only AWS checks are limited"
    );
}

#[tokio::test]
async fn no_reply_may_be_cached_least_of_all_one_carrying_a_key() {
    let gateway = TestGateway::spawn().await;
    let created = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "ci", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let responses = [
        created,
        gateway
            .get("/api/keys", Some(ADMIN_KEY))
            .send()
            .await
            .unwrap(),
        gateway.get("/api/keys", None).send().await.unwrap(),
        gateway.approve_unknown_execution().send().await.unwrap(),
        gateway.get("/no/such/route", None).send().await.unwrap(),
    ];
    for response in responses {
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{}",
            response.url()
        );
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{}",
            response.url()
        );
    }
}

/// Opens a raw connection to the gateway.
async fn connect(gateway: &TestGateway) -> tokio::net::TcpStream {
    let addr = gateway.base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

/// Reads until the peer closes the connection or `within` passes; returns what came
/// and whether the peer closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&received).into_owned(), true);
            }
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test]
async fn a_slow_header_client_is_cut_off_and_an_idle_connection_closed() {
    use tokio::io::AsyncWriteExt;
    let gateway = TestGateway::spawn_adjusted(closed_port_url(), |config| {
        config.connections.header_read_timeout = Duration::from_millis(500);
    })
    .await;

    // Slowloris: a request head trickled a byte at a time never completes in time.
    let mut slow = connect(&gateway).await;
    let started = std::time::Instant::now();
    let head = b"GET /health/livez HTTP/1.1\r\nHost: x\r\nX-Padding: ";
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    if !closed {
        closed = read_until_closed(&mut slow, Duration::from_secs(1)).await.1;
    }
    assert!(closed, "a slow-header client must be cut off");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A client that connects and sends nothing is closed too.
    let mut silent = connect(&gateway).await;
    let (received, closed) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(closed, "a silent connection must be closed");
    assert!(!received.contains("200 OK"), "{received}");

    // A whole request is answered; the kept-alive connection idle afterwards is closed.
    let mut idle = connect(&gateway).await;
    idle.write_all(b"GET /health/livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (received, closed) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(closed, "an idle kept-alive connection must be closed");
}

#[tokio::test]
async fn clients_over_the_connection_limit_wait_until_one_closes() {
    use tokio::io::AsyncWriteExt;
    let gateway = TestGateway::spawn_adjusted(closed_port_url(), |config| {
        config.connections.max_connections = 2;
        config.connections.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let request = b"GET /health/livez HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&gateway).await;
        stream.write_all(request).await.unwrap();
        let (received, _) = read_until_closed(&mut stream, Duration::from_millis(500)).await;
        assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
        held.push(stream);
    }
    // A third connection is queued by the kernel but not served while two are held.
    let mut third = connect(&gateway).await;
    third.write_all(request).await.unwrap();
    let (received, _) = read_until_closed(&mut third, Duration::from_millis(700)).await;
    assert_eq!(received, "", "served over the limit");
    // Closing one lets it in.
    drop(held.pop());
    let (received, _) = read_until_closed(&mut third, Duration::from_secs(3)).await;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let gateway = TestGateway::spawn().await;
    let responses = [
        gateway.get("/health/livez", None).send().await.unwrap(),
        gateway.get("/api/keys", None).send().await.unwrap(),
        gateway
            .get("/api/keys", Some(ADMIN_KEY))
            .send()
            .await
            .unwrap(),
        gateway.get("/no/such/route", None).send().await.unwrap(),
        gateway.post("/health/livez", None).send().await.unwrap(),
    ];
    for response in responses {
        let id = response
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "generated id {id} is a uuid"
        );
    }
    let given = gateway
        .get("/health/livez", None)
        .header("x-request-id", "req-from-client-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "req-from-client-42");
}

#[tokio::test]
async fn livez_answers_ok() {
    let gateway = TestGateway::spawn().await;
    let response = gateway.get("/health/livez", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_names_the_unreachable_backends_but_not_a_working_postgres() {
    let gateway = TestGateway::spawn().await;
    let response = gateway.get("/health/readyz", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    let failing: Vec<&str> = body["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        failing,
        ["accounts", "planner", "executor", "sweeper"],
        "{body}"
    );
}

/// A backend health service that answers SERVING and counts the checks it was asked.
#[derive(Clone, Default)]
struct CountingHealth {
    checks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for CountingHealth {
    async fn check(
        &self,
        _: tonic::Request<tonic_health::pb::HealthCheckRequest>,
    ) -> Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(tonic::Response::new(
            tonic_health::pb::HealthCheckResponse {
                status: tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            },
        ))
    }

    type WatchStream = tokio_stream::wrappers::ReceiverStream<
        Result<tonic_health::pb::HealthCheckResponse, tonic::Status>,
    >;

    async fn watch(
        &self,
        _: tonic::Request<tonic_health::pb::HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not watched"))
    }
}

#[tokio::test]
async fn readyz_answers_from_the_last_check_without_fanning_out_per_probe() {
    let health = CountingHealth::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let accounts_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(tonic_health::pb::health_server::HealthServer::new(
                health.clone(),
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let gateway = TestGateway::spawn_with(accounts_url).await;
    for _ in 0..50 {
        let response = gateway.get("/health/readyz", None).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "the other backends are down"
        );
    }
    let checks = health.checks.load(std::sync::atomic::Ordering::SeqCst);
    // The background check at start, one after the migrations, at most one more per
    // 2-second interval: not one per probe.
    assert!(checks <= 4, "{checks} health checks for 50 probes");
}

#[tokio::test]
async fn readyz_names_postgres_when_a_backend_reports_its_database_down() {
    use tonic_health::ServingStatus;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("postgres", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("redis", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let accounts_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let gateway = TestGateway::spawn_with(accounts_url).await;

    let response = gateway.get("/health/readyz", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    let failing: Vec<&str> = body["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        failing,
        ["accounts", "postgres", "planner", "executor", "sweeper"],
        "{body}"
    );

    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    // Readiness answers from the last background check: the change shows at the next.
    let failing: Vec<String> =
        eventually("the next health check", Duration::from_secs(10), || async {
            let response = gateway.get("/health/readyz", None).send().await.ok()?;
            let body: Value = response.json().await.ok()?;
            let failing: Vec<String> = body["failing"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            (!failing.contains(&"accounts".to_owned())).then_some(failing)
        })
        .await
        .expect("accounts serving again");
    assert_eq!(
        failing,
        ["planner", "executor", "sweeper"],
        "a serving backend is not asked further"
    );
}

#[tokio::test]
async fn metrics_show_the_request_counter_after_requests() {
    let gateway = TestGateway::spawn().await;
    gateway
        .get("/api/keys", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    gateway.get("/api/keys", None).send().await.unwrap();
    let on_api = gateway.get("/metrics", None).send().await.unwrap();
    assert_eq!(
        on_api.status(),
        StatusCode::NOT_FOUND,
        "/metrics is not on the API"
    );
    let response = gateway.http.get(&gateway.metrics_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let series = |status: &str| {
        text.lines().any(|line| {
            line.starts_with("http_requests_total{")
                && line.contains("method=\"GET\"")
                && line.contains("route=\"/api/keys\"")
                && line.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(series("200") && series("401"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "latency is a histogram: {text}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_valid_json_listing_the_keys_routes() {
    let gateway = TestGateway::spawn().await;
    let response = gateway.get("/api/openapi.json", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "no key needed");
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let keys = &document["paths"]["/api/keys"];
    assert!(
        keys["get"].is_object() && keys["post"].is_object(),
        "{document}"
    );
    assert!(document["paths"]["/api/keys/{id}"]["delete"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(document["components"]["schemas"]["CreateKeyRequest"].is_object());
}

#[tokio::test]
async fn the_notification_routes_are_documented_admin_only_and_check_input_before_the_executor() {
    let gateway = TestGateway::spawn().await;
    let response = gateway.get("/api/openapi.json", None).send().await.unwrap();
    let document: Value = response.json().await.unwrap();
    let paths = &document["paths"];
    let channels = &paths["/api/notification-channels"];
    assert!(
        channels["get"].is_object() && channels["post"].is_object(),
        "{document}"
    );
    for code in ["201", "400", "401", "403", "409", "503"] {
        assert!(
            channels["post"]["responses"][code].is_object(),
            "POST channels documents {code}"
        );
    }
    for code in ["204", "400", "403", "404", "503"] {
        assert!(
            paths["/api/notification-channels/{id}"]["delete"]["responses"][code].is_object(),
            "DELETE channel documents {code}"
        );
    }
    assert!(paths["/api/notifications"]["get"]["responses"]["400"].is_object());
    assert_eq!(
        document["components"]["schemas"]["CreateChannelBody"]["additionalProperties"],
        false
    );

    // Refused before the executor is asked (it is down here).
    let viewer = gateway.create_key("channel reader", "viewer").await;
    let viewer_key = viewer["key"].as_str().unwrap();
    let read = gateway
        .get("/api/notification-channels", Some(viewer_key))
        .send()
        .await
        .unwrap();
    expect_json_error(read, StatusCode::FORBIDDEN).await;
    let read = gateway
        .get("/api/notifications", Some(viewer_key))
        .send()
        .await
        .unwrap();
    expect_json_error(read, StatusCode::FORBIDDEN).await;
    let bad_filter = gateway
        .get("/api/notifications?execution_id=yesterday", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(bad_filter, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "execution_id", "{body}");
    let bad_kind = gateway
        .post("/api/notification-channels", Some(ADMIN_KEY))
        .json(
            &json!({"name": "ops", "kind": "pager", "target": "https://example.com/s3cr3t",
                      "events": ["approval_requested"]}),
        )
        .send()
        .await
        .unwrap();
    let body = expect_json_error(bad_kind, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "kind", "{body}");
    assert!(!body.to_string().contains("s3cr3t"), "{body}");
    let bad_id = gateway
        .delete("/api/notification-channels/not-a-uuid", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    expect_json_error(bad_id, StatusCode::BAD_REQUEST).await;

    // Good input reaches the executor, which is down: 503 naming it.
    let down = gateway
        .get("/api/notification-channels", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    let body = expect_json_error(down, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["error"], "executor service unavailable", "{body}");
}

#[tokio::test]
async fn a_traceparent_makes_the_request_span_a_child_of_the_caller() {
    let exporter = cudly_telemetry::init_for_tests("gateway");
    let gateway = TestGateway::spawn().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span_id = "00f067aa0ba902b7";
    let response = gateway
        .get("/health/livez", None)
        .header("traceparent", format!("00-{trace_id}-{parent_span_id}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let span = eventually("the request span", Duration::from_secs(5), || {
        let spans = exporter.get_finished_spans().unwrap_or_default();
        async move {
            spans
                .into_iter()
                .find(|span| span.span_context.trace_id().to_string() == trace_id)
        }
    })
    .await
    .unwrap();
    assert_eq!(span.parent_span_id.to_string(), parent_span_id);
    assert_eq!(span.name, "GET /health/livez");
}

// ---------------------------------------------------------------------------------------
// The key cache and the batched `last_used_at` (issue 22)

/// Starts a gateway that trusts a verified key for an hour, so that a key it refuses
/// right after accepting it is refused through invalidation or the expiry check, not
/// because its cache entry aged out.
async fn spawn_with_long_key_cache() -> TestGateway {
    TestGateway::spawn_adjusted(closed_port_url(), |config| {
        config.api_key_cache_ttl = Duration::from_secs(3600);
    })
    .await
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_even_right_after_a_cached_success() {
    let gateway = spawn_with_long_key_cache().await;
    let list = |key: &str| gateway.get("/api/keys", Some(key)).send();
    let admin = gateway.create_key("ops", "admin").await;
    let admin = admin["key"].as_str().unwrap();
    let reader = gateway.create_key("reader", "viewer").await;
    let reader_key = reader["key"].as_str().unwrap();
    let reader_id = reader["id"].as_str().unwrap();
    for attempt in ["looked up", "cached"] {
        let listed = list(reader_key).await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{attempt}");
    }

    let revoked = gateway
        .delete(&format!("/api/keys/{reader_id}"), Some(admin))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = list(reader_key).await.unwrap();
    let body = expect_json_error(refused, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "unknown api key");

    // The bootstrap key likewise, once disabled (it is cached: it created the keys).
    assert_eq!(list(ADMIN_KEY).await.unwrap().status(), StatusCode::OK);
    let disabled = gateway
        .delete("/api/keys/bootstrap", Some(admin))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let refused = list(ADMIN_KEY).await.unwrap();
    let body = expect_json_error(refused, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "the bootstrap admin key is disabled");
    assert_eq!(list(admin).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_key_is_refused_even_while_it_is_cached() {
    let gateway = spawn_with_long_key_cache().await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(3)).to_rfc3339();
    let created = gateway
        .post("/api/keys", Some(ADMIN_KEY))
        .json(&json!({"name": "short-lived", "role": "viewer", "expires_at": soon}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    let expires_at: chrono::DateTime<chrono::Utc> =
        created["expires_at"].as_str().unwrap().parse().unwrap();
    let cached = gateway.get("/api/keys", Some(key)).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::OK);

    let until_expired = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(until_expired + Duration::from_millis(100)).await;
    let after = gateway.get("/api/keys", Some(key)).send().await.unwrap();
    let body = expect_json_error(after, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "api key expired");
}

/// Returns the stored `last_used_at` of the key of id `id`.
async fn stored_last_use(
    gateway: &TestGateway,
    id: uuid::Uuid,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let pool = gateway.db.pool("gateway").await.unwrap();
    let last_used_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    last_used_at
}

#[tokio::test]
async fn key_uses_are_written_to_last_used_at_by_a_flush() {
    let gateway = spawn_with_long_key_cache().await;
    let created = gateway.create_key("dashboard", "viewer").await;
    let key = created["key"].as_str().unwrap();
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    for _ in 0..3 {
        let listed = gateway.get("/api/keys", Some(key)).send().await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK);
        let listed: Value = listed.json().await.unwrap();
        assert!(
            listed["keys"][0]["last_used_at"].is_string(),
            "listed before it is written: {listed}"
        );
    }

    gateway.state.flush_key_uses().await.unwrap();
    assert!(stored_last_use(&gateway, id).await.is_some());
    assert_eq!(
        gateway.state.flush_key_uses().await.unwrap(),
        0,
        "a use written is not written again"
    );
}

#[tokio::test]
async fn the_last_key_uses_are_written_when_the_gateway_stops() {
    let gateway = TestGateway::spawn().await;
    let created = gateway.create_key("nightly", "viewer").await;
    let key = created["key"].as_str().unwrap();
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();

    // A second gateway on the same database, stopped right after one request.
    let config = Config::new(
        gateway.db.secret_url(),
        SecretString::from("gateway-test-token"),
    )
    .with_backends(BackendUrls {
        accounts: closed_port_url(),
        planner: closed_port_url(),
        executor: closed_port_url(),
        sweeper: closed_port_url(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = App::from_listener(config, listener)
        .await
        .expect("build gateway");
    let state = app.state().clone();
    let url = format!("http://{}/api/keys", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    eventually("gateway migrations", Duration::from_secs(30), || {
        let state = state.clone();
        async move { state.is_migrated().then_some(()) }
    })
    .await
    .unwrap();
    let listed = gateway.http.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(stored_last_use(&gateway, id).await.is_some());
}
