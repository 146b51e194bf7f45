//! Test support: a planner on a fresh database next to in-process fakes of its two
//! dependencies (accounts, executor) that record what they were asked, a TCP proxy that
//! can cut a service off, and helpers over the whole stack's REST API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cudly_common::config::CommonSettings;
use cudly_common::grpc::{AuthChannel, Caller, InternalAuth, client_channel};
use cudly_planner::app::App;
use cudly_planner::config::Config;
use cudly_proto::accounts::v1 as accounts_pb;
use cudly_proto::accounts::v1::accounts_service_server::{AccountsService, AccountsServiceServer};
use cudly_proto::executor::v1 as executor_pb;
use cudly_proto::executor::v1::executor_service_server::{ExecutorService, ExecutorServiceServer};
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use cudly_testkit::rest::call;
use cudly_testkit::{TestDb, TestStack, eventually};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Returns a fresh random token.
fn token() -> SecretString {
    SecretString::from(Uuid::new_v4().simple().to_string())
}

/// Serves `routes` on 127.0.0.1:0 until the returned token is cancelled.
async fn serve(routes: tonic::service::Routes) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stopped.cancelled_owned(),
            )
            .await;
    });
    (addr, stop)
}

// ---------------------------------------------------------------------------------------
// Fake accounts service

/// An in-memory accounts service answering the two calls the planner makes.
#[derive(Clone, Default)]
pub struct FakeAccounts {
    accounts: Arc<Mutex<Vec<accounts_pb::Account>>>,
    /// Number of GetAccountsByIds calls and the ids of each.
    pub by_ids_calls: Arc<Mutex<Vec<Vec<String>>>>,
}

impl FakeAccounts {
    /// Adds an account and returns its id.
    pub fn add(&self, name: &str, provider: &str, enabled: bool) -> Uuid {
        let id = Uuid::new_v4();
        let mut accounts = self.accounts.lock().unwrap();
        let external_id = format!("{:012}", accounts.len() + 100_000_000_000);
        accounts.push(accounts_pb::Account {
            id: id.to_string(),
            name: name.to_owned(),
            provider: provider.to_owned(),
            external_id,
            enabled,
            ..accounts_pb::Account::default()
        });
        id
    }

    /// Enables or disables an account.
    pub fn set_enabled(&self, id: Uuid, enabled: bool) {
        for account in self.accounts.lock().unwrap().iter_mut() {
            if account.id == id.to_string() {
                account.enabled = enabled;
            }
        }
    }
}

/// The answer of an RPC a fake does not play: the planner never calls it.
fn not_faked<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not part of this fake"))
}

#[tonic::async_trait]
impl AccountsService for FakeAccounts {
    async fn get_accounts_by_ids(
        &self,
        request: Request<accounts_pb::GetAccountsByIdsRequest>,
    ) -> Result<Response<accounts_pb::GetAccountsByIdsResponse>, Status> {
        let ids = request.into_inner().ids;
        self.by_ids_calls.lock().unwrap().push(ids.clone());
        let accounts = self.accounts.lock().unwrap();
        let mut reply = accounts_pb::GetAccountsByIdsResponse::default();
        for id in ids {
            match accounts.iter().find(|account| account.id == id) {
                Some(account) => reply.accounts.push(account.clone()),
                None => reply.not_found_ids.push(id),
            }
        }
        Ok(Response::new(reply))
    }

    async fn list_enabled_accounts(
        &self,
        request: Request<accounts_pb::ListEnabledAccountsRequest>,
    ) -> Result<Response<accounts_pb::ListEnabledAccountsResponse>, Status> {
        let providers = request.into_inner().providers;
        let accounts = self
            .accounts
            .lock()
            .unwrap()
            .iter()
            .filter(|account| account.enabled && providers.contains(&account.provider))
            .cloned()
            .collect();
        Ok(Response::new(accounts_pb::ListEnabledAccountsResponse {
            accounts,
        }))
    }

    async fn create_account(
        &self,
        _: Request<accounts_pb::CreateAccountRequest>,
    ) -> Result<Response<accounts_pb::Account>, Status> {
        not_faked()
    }
    async fn get_account(
        &self,
        _: Request<accounts_pb::GetAccountRequest>,
    ) -> Result<Response<accounts_pb::Account>, Status> {
        not_faked()
    }
    async fn list_accounts(
        &self,
        _: Request<accounts_pb::ListAccountsRequest>,
    ) -> Result<Response<accounts_pb::ListAccountsResponse>, Status> {
        not_faked()
    }
    async fn update_account(
        &self,
        _: Request<accounts_pb::UpdateAccountRequest>,
    ) -> Result<Response<accounts_pb::Account>, Status> {
        not_faked()
    }
    async fn delete_account(
        &self,
        _: Request<accounts_pb::DeleteAccountRequest>,
    ) -> Result<Response<accounts_pb::DeleteAccountResponse>, Status> {
        not_faked()
    }
    async fn set_credentials(
        &self,
        _: Request<accounts_pb::SetCredentialsRequest>,
    ) -> Result<Response<accounts_pb::SetCredentialsResponse>, Status> {
        not_faked()
    }
    async fn test_credentials(
        &self,
        _: Request<accounts_pb::TestCredentialsRequest>,
    ) -> Result<Response<accounts_pb::TestCredentialsResponse>, Status> {
        not_faked()
    }
    async fn discover_organization(
        &self,
        _: Request<accounts_pb::DiscoverOrganizationRequest>,
    ) -> Result<Response<accounts_pb::DiscoverOrganizationResponse>, Status> {
        not_faked()
    }
    async fn resolve_credentials(
        &self,
        _: Request<accounts_pb::ResolveCredentialsRequest>,
    ) -> Result<Response<accounts_pb::ResolveCredentialsResponse>, Status> {
        not_faked()
    }

    async fn collect_recommendations(
        &self,
        _: Request<accounts_pb::CollectRecommendationsRequest>,
    ) -> Result<Response<accounts_pb::CollectRecommendationsResponse>, Status> {
        not_faked()
    }

    async fn list_audit_events(
        &self,
        _: Request<cudly_proto::audit::v1::ListAuditEventsRequest>,
    ) -> Result<Response<cudly_proto::audit::v1::ListAuditEventsResponse>, Status> {
        not_faked()
    }
}

// ---------------------------------------------------------------------------------------
// Fake executor service

/// An in-memory executor: records every CreateExecution request, returns one execution
/// per creation key (the same one again for a repeated key, like a live lineage),
/// answers HasLiveExecution as told, and takes the notifications the planner's relay
/// raises (once per event id, like the executor's outbox), or refuses them as told.
#[derive(Clone, Default)]
pub struct FakeExecutor {
    /// Every notification raised with it, once per event id, in order.
    pub notifications: Arc<Mutex<Vec<executor_pb::RaiseNotificationRequest>>>,
    /// While true, RaiseNotification answers UNAVAILABLE (an executor that is down).
    pub refuse_notifications: Arc<Mutex<bool>>,
    pub created: Arc<Mutex<Vec<executor_pb::CreateExecutionRequest>>>,
    by_key: Arc<Mutex<HashMap<String, String>>>,
    pub live_plans: Arc<Mutex<Vec<String>>>,
    /// The guardrails' window limit it answers; `None` (the default): a limit too high
    /// to bind, so auto_purchase plans may be created. [`NO_WINDOW_LIMIT`]: no limit.
    pub window_limit: Arc<Mutex<Option<f64>>>,
    /// The guardrails' require_different_approver it answers (default false).
    pub require_different_approver: Arc<Mutex<bool>>,
}

/// A [`FakeExecutor::window_limit`] meaning "the guardrails set no window limit".
pub const NO_WINDOW_LIMIT: f64 = -1.0;

impl FakeExecutor {
    pub fn requests(&self) -> Vec<executor_pb::CreateExecutionRequest> {
        self.created.lock().unwrap().clone()
    }

    /// Returns the notifications raised so far of kind `event` (e.g. `plan_paused`),
    /// each with its payload (`{"event", "data"}`).
    pub fn raised(&self, event: &str) -> Vec<(executor_pb::RaiseNotificationRequest, Value)> {
        self.notifications
            .lock()
            .unwrap()
            .iter()
            .map(|request| {
                let payload: Value =
                    serde_json::from_str(&request.payload_json).expect("a json payload");
                (request.clone(), payload)
            })
            .filter(|(_, payload)| payload["event"] == event)
            .collect()
    }
}

#[tonic::async_trait]
impl ExecutorService for FakeExecutor {
    async fn create_execution(
        &self,
        request: Request<executor_pb::CreateExecutionRequest>,
    ) -> Result<Response<executor_pb::CreateExecutionResponse>, Status> {
        let request = request.into_inner();
        self.created.lock().unwrap().push(request.clone());
        let key = request
            .creation_key
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let (id, created) = {
            let mut by_key = self.by_key.lock().unwrap();
            match by_key.get(&key) {
                Some(id) => (id.clone(), false),
                None => {
                    let id = Uuid::new_v4().to_string();
                    by_key.insert(key, id.clone());
                    (id, true)
                }
            }
        };
        let status = if request.auto_approve {
            "approved"
        } else {
            "pending"
        };
        let execution = executor_pb::Execution {
            id,
            plan_id: request.plan_id.clone(),
            status: status.to_owned(),
            step_number: request.step_number,
            source: request.source.clone(),
            total_items: u32::try_from(request.recommendations.len()).unwrap(),
            recommendations: request.recommendations.clone(),
            ..executor_pb::Execution::default()
        };
        Ok(Response::new(executor_pb::CreateExecutionResponse {
            execution: Some(execution),
            approval_token: (created && !request.auto_approve).then(|| "ab".repeat(32)),
            created,
        }))
    }

    async fn has_live_execution(
        &self,
        request: Request<executor_pb::HasLiveExecutionRequest>,
    ) -> Result<Response<executor_pb::HasLiveExecutionResponse>, Status> {
        let plan_id = request.into_inner().plan_id;
        let live = self.live_plans.lock().unwrap().contains(&plan_id);
        Ok(Response::new(executor_pb::HasLiveExecutionResponse {
            live,
            execution_ids: if live {
                vec![Uuid::new_v4().to_string()]
            } else {
                vec![]
            },
        }))
    }

    async fn get_execution(
        &self,
        _: Request<executor_pb::GetExecutionRequest>,
    ) -> Result<Response<executor_pb::Execution>, Status> {
        not_faked()
    }
    async fn list_executions(
        &self,
        _: Request<executor_pb::ListExecutionsRequest>,
    ) -> Result<Response<executor_pb::ListExecutionsResponse>, Status> {
        not_faked()
    }
    async fn approve_execution(
        &self,
        _: Request<executor_pb::ApproveExecutionRequest>,
    ) -> Result<Response<executor_pb::Execution>, Status> {
        not_faked()
    }
    async fn cancel_execution(
        &self,
        _: Request<executor_pb::CancelExecutionRequest>,
    ) -> Result<Response<executor_pb::Execution>, Status> {
        not_faked()
    }
    async fn preview_approval(
        &self,
        _: Request<executor_pb::PreviewApprovalRequest>,
    ) -> Result<Response<executor_pb::PreviewApprovalResponse>, Status> {
        not_faked()
    }
    async fn retry_execution(
        &self,
        _: Request<executor_pb::RetryExecutionRequest>,
    ) -> Result<Response<executor_pb::Execution>, Status> {
        not_faked()
    }
    async fn list_purchase_history(
        &self,
        _: Request<executor_pb::ListPurchaseHistoryRequest>,
    ) -> Result<Response<executor_pb::ListPurchaseHistoryResponse>, Status> {
        not_faked()
    }
    async fn resolve_purchase_attempt(
        &self,
        _: Request<executor_pb::ResolvePurchaseAttemptRequest>,
    ) -> Result<Response<executor_pb::ResolvePurchaseAttemptResponse>, Status> {
        not_faked()
    }
    async fn expire_pending(
        &self,
        _: Request<executor_pb::ExpirePendingRequest>,
    ) -> Result<Response<executor_pb::ExpirePendingResponse>, Status> {
        not_faked()
    }
    async fn list_stale_executions(
        &self,
        _: Request<executor_pb::ListStaleExecutionsRequest>,
    ) -> Result<Response<executor_pb::ListStaleExecutionsResponse>, Status> {
        not_faked()
    }
    async fn redrive(
        &self,
        _: Request<executor_pb::RedriveRequest>,
    ) -> Result<Response<executor_pb::RedriveResponse>, Status> {
        not_faked()
    }
    async fn safe_fail(
        &self,
        _: Request<executor_pb::SafeFailRequest>,
    ) -> Result<Response<executor_pb::SafeFailResponse>, Status> {
        not_faked()
    }

    async fn get_guardrails(
        &self,
        _: Request<executor_pb::GetGuardrailsRequest>,
    ) -> Result<Response<executor_pb::Guardrails>, Status> {
        let limit = match *self.window_limit.lock().unwrap() {
            None => Some(1e12),
            Some(limit) if limit == NO_WINDOW_LIMIT => None,
            Some(limit) => Some(limit),
        };
        Ok(Response::new(executor_pb::Guardrails {
            max_window_commitment: limit,
            require_different_approver: *self.require_different_approver.lock().unwrap(),
            window_days: 30,
            ..Default::default()
        }))
    }

    async fn put_guardrails(
        &self,
        _: Request<executor_pb::PutGuardrailsRequest>,
    ) -> Result<Response<executor_pb::Guardrails>, Status> {
        not_faked()
    }

    async fn list_audit_events(
        &self,
        _: Request<cudly_proto::audit::v1::ListAuditEventsRequest>,
    ) -> Result<Response<cudly_proto::audit::v1::ListAuditEventsResponse>, Status> {
        not_faked()
    }

    async fn create_notification_channel(
        &self,
        _: Request<executor_pb::CreateNotificationChannelRequest>,
    ) -> Result<Response<executor_pb::CreateNotificationChannelResponse>, Status> {
        not_faked()
    }
    async fn list_notification_channels(
        &self,
        _: Request<executor_pb::ListNotificationChannelsRequest>,
    ) -> Result<Response<executor_pb::ListNotificationChannelsResponse>, Status> {
        not_faked()
    }
    async fn delete_notification_channel(
        &self,
        _: Request<executor_pb::DeleteNotificationChannelRequest>,
    ) -> Result<Response<executor_pb::DeleteNotificationChannelResponse>, Status> {
        not_faked()
    }
    async fn list_notifications(
        &self,
        _: Request<executor_pb::ListNotificationsRequest>,
    ) -> Result<Response<executor_pb::ListNotificationsResponse>, Status> {
        not_faked()
    }

    async fn raise_notification(
        &self,
        request: Request<executor_pb::RaiseNotificationRequest>,
    ) -> Result<Response<executor_pb::RaiseNotificationResponse>, Status> {
        if *self.refuse_notifications.lock().unwrap() {
            return Err(Status::unavailable("the executor is down"));
        }
        let request = request.into_inner();
        let mut notifications = self.notifications.lock().unwrap();
        let repeated = notifications
            .iter()
            .any(|seen| seen.event_id == request.event_id);
        if !repeated {
            notifications.push(request);
        }
        Ok(Response::new(executor_pb::RaiseNotificationResponse {
            deliveries: u32::from(!repeated),
        }))
    }
}

// ---------------------------------------------------------------------------------------
// A planner next to the fakes

/// The planner's callers, each with its own token.
pub struct Tokens {
    pub gateway: SecretString,
    pub executor: SecretString,
    pub sweeper: SecretString,
    pub planner: SecretString,
}

impl Tokens {
    fn generate() -> Self {
        Self {
            gateway: token(),
            executor: token(),
            sweeper: token(),
            planner: token(),
        }
    }

    /// Returns the server-side check of a planner accepting these callers.
    fn auth(&self) -> InternalAuth {
        InternalAuth::from_tokens([
            (Caller::Gateway, &self.gateway),
            (Caller::Executor, &self.executor),
            (Caller::Sweeper, &self.sweeper),
        ])
    }
}

/// Starts a planner on 127.0.0.1:0 and returns its address; it runs until `stop`.
pub async fn spawn_planner(
    database_url: SecretString,
    auth: InternalAuth,
    internal_token: SecretString,
    accounts_url: String,
    executor_url: String,
    stop: CancellationToken,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        addr: listener.local_addr().unwrap(),
        database_url,
        auth,
        internal_token,
        accounts_url,
        executor_url,
        common: CommonSettings {
            health_interval: Duration::from_millis(200),
            internal_call_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        step_max_fires: cudly_planner::config::DEFAULT_STEP_MAX_FIRES,
        collection_timeout: Duration::from_secs(5),
        recommendation_call_budget: cudly_planner::config::DEFAULT_RECOMMENDATION_CALL_BUDGET,
        recommendation_cooldown: cudly_planner::config::DEFAULT_RECOMMENDATION_COOLDOWN,
        recommendation_max_age: cudly_planner::config::DEFAULT_RECOMMENDATION_MAX_AGE,
    };
    let app = App::from_listener(config, listener).unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(stop.cancelled_owned()));
    addr
}

/// A planner on its own database with fake accounts and executor services.
pub struct PlannerUnderTest {
    pub db: TestDb,
    pub accounts: FakeAccounts,
    pub executor: FakeExecutor,
    pub tokens: Tokens,
    pub addr: SocketAddr,
    accounts_proxy: Proxy,
    executor_proxy: Proxy,
    stop: CancellationToken,
    servers_stop: Vec<CancellationToken>,
}

impl PlannerUnderTest {
    pub async fn start() -> Self {
        let db = TestDb::create().await.expect("create test database");
        let accounts = FakeAccounts::default();
        let executor = FakeExecutor::default();
        let (accounts_addr, accounts_stop) = serve(tonic::service::Routes::new(
            AccountsServiceServer::new(accounts.clone()),
        ))
        .await;
        let (executor_addr, executor_stop) = serve(tonic::service::Routes::new(
            ExecutorServiceServer::new(executor.clone()),
        ))
        .await;
        let accounts_proxy = Proxy::start(accounts_addr).await;
        let executor_proxy = Proxy::start(executor_addr).await;
        let tokens = Tokens::generate();
        let stop = CancellationToken::new();
        let addr = spawn_planner(
            db.secret_url(),
            tokens.auth(),
            tokens.planner.clone(),
            accounts_proxy.url(),
            executor_proxy.url(),
            stop.clone(),
        )
        .await;
        let this = Self {
            db,
            accounts,
            executor,
            tokens,
            addr,
            accounts_proxy,
            executor_proxy,
            stop,
            servers_stop: vec![accounts_stop, executor_stop],
        };
        this.wait_migrated().await;
        this
    }

    /// Waits until every migration of the planner is applied (a request meeting a
    /// half-migrated schema fails on the missing columns).
    async fn wait_migrated(&self) {
        let pool = self.db.pool("planner").await.unwrap();
        let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .count() as i64;
        eventually("planner migrations", Duration::from_secs(30), || {
            let pool = pool.clone();
            async move {
                let applied: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                (applied == migrations).then_some(())
            }
        })
        .await
        .unwrap();
    }

    /// Returns a planner client calling as `caller`.
    pub fn client(&self, caller: Caller) -> PlannerServiceClient<AuthChannel> {
        let token = match caller {
            Caller::Gateway => &self.tokens.gateway,
            Caller::Executor => &self.tokens.executor,
            Caller::Sweeper => &self.tokens.sweeper,
            Caller::Planner => &self.tokens.planner,
        };
        let channel = client_channel(
            &format!("http://{}", self.addr),
            token,
            Duration::from_secs(10),
        )
        .unwrap();
        PlannerServiceClient::new(channel)
    }

    /// Cuts the planner off from its accounts service.
    pub async fn accounts_down(&self) {
        self.accounts_proxy.stop().await;
    }

    /// Cuts the planner off from its executor service.
    pub async fn executor_down(&self) {
        self.executor_proxy.stop().await;
    }

    /// Returns a pool on the planner's schema, for assertions on its rows.
    pub async fn pool(&self) -> sqlx::PgPool {
        self.db.pool("planner").await.unwrap()
    }
}

impl Drop for PlannerUnderTest {
    fn drop(&mut self) {
        self.stop.cancel();
        for server in &self.servers_stop {
            server.cancel();
        }
    }
}

// ---------------------------------------------------------------------------------------
// A TCP proxy that can cut a service off

/// Forwards connections to an upstream address until stopped; stopping closes the
/// listener and every open connection, as if the upstream process had died.
pub struct Proxy {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = stopped.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let connection_stop = stopped.clone();
                connections.spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = connection_stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
            drop(listener);
            while connections.join_next().await.is_some() {}
        });
        Self {
            addr,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Returns `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the upstream off: once this returns, the listener and every connection
    /// through it are closed.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------
// REST helpers over the whole stack

/// Starts the whole stack on a fresh database.
pub async fn start_stack() -> TestStack {
    TestStack::start().await.expect("start the stack")
}

/// Starts the whole stack and returns it with its internal tokens.
pub async fn start_stack_with_secrets() -> (TestStack, cudly::Secrets) {
    let mut captured = None;
    let stack = TestStack::start_with(|config| captured = Some(config.secrets.clone()))
        .await
        .expect("start the stack");
    (stack, captured.expect("the stack config was adjusted"))
}

/// Returns a 12-digit AWS account id unique enough for one test database.
fn aws_account_number() -> String {
    let digits: String = Uuid::new_v4()
        .as_u128()
        .to_string()
        .chars()
        .take(12)
        .collect();
    format!("{digits:0>12}")
}

/// Creates an AWS account through the API and returns its id.
pub async fn create_aws_account(stack: &TestStack, name: &str, enabled: bool) -> String {
    let external_id = aws_account_number();
    let body = json!({
        "name": name,
        "provider": "aws",
        "external_id": external_id,
        "enabled": enabled,
        "aws_auth_mode": "role_arn",
        "aws_role_arn": format!("arn:aws:iam::{external_id}:role/CUDly"),
    });
    let (status, account) = call(stack, Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "create aws account: {account}");
    account["id"].as_str().unwrap().to_owned()
}

/// Creates an Azure account through the API and returns its id.
pub async fn create_azure_account(stack: &TestStack, name: &str) -> String {
    let subscription = Uuid::new_v4().to_string();
    let body = json!({
        "name": name,
        "provider": "azure",
        "external_id": subscription,
        "azure_subscription_id": subscription,
        "azure_tenant_id": Uuid::new_v4().to_string(),
        "azure_client_id": Uuid::new_v4().to_string(),
    });
    let (status, account) = call(stack, Method::POST, "/api/accounts", Some(body)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "create azure account: {account}"
    );
    account["id"].as_str().unwrap().to_owned()
}

/// Returns a plan body whose services are the given `(provider/service, payment)` keys.
pub fn plan_body(name: &str, services: &[(&str, &str)]) -> Value {
    let services: serde_json::Map<String, Value> = services
        .iter()
        .map(|(key, payment)| {
            let (provider, service) = key.split_once('/').unwrap();
            (
                (*key).to_owned(),
                json!({
                    "provider": provider,
                    "service": service,
                    "term": 1,
                    "payment": payment,
                    "coverage": 80,
                }),
            )
        })
        .collect();
    json!({ "name": name, "services": services })
}

/// Creates an AWS EC2 plan through the API and returns its id.
pub async fn create_aws_plan(stack: &TestStack, name: &str) -> String {
    let (status, plan) = call(
        stack,
        Method::POST,
        "/api/plans",
        Some(plan_body(name, &[("aws/ec2", "no-upfront")])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "create plan: {plan}");
    plan["id"].as_str().unwrap().to_owned()
}

/// Returns the ids listed in a JSON array of strings, in order.
pub fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the `id` of each object of a JSON array, in order.
pub fn object_ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// A planner and gateway of their own next to the whole stack

/// The whole stack plus a second planner and gateway on the same database: the second
/// planner reaches the stack's accounts service through a [`Proxy`] that a test can cut,
/// and an executor of the test's choosing; the second gateway calls the second planner.
pub struct DetachedPlanner {
    pub stack: TestStack,
    pub gateway_url: String,
    pub http: reqwest::Client,
    accounts_proxy: Proxy,
    stop: CancellationToken,
}

impl DetachedPlanner {
    /// Starts it all; `executor_url` absent means the stack's executor.
    pub async fn start(executor_url: Option<String>) -> Self {
        let (stack, secrets) = start_stack_with_secrets().await;
        let addrs = stack.stack();
        let accounts_proxy = Proxy::start(addrs.accounts_addr()).await;
        let stop = CancellationToken::new();
        let auth = InternalAuth::from_tokens([
            (Caller::Gateway, &secrets.internal_token(Caller::Gateway)),
            (Caller::Executor, &secrets.internal_token(Caller::Executor)),
            (Caller::Sweeper, &secrets.internal_token(Caller::Sweeper)),
        ]);
        let planner_addr = spawn_planner(
            stack.db.secret_url(),
            auth,
            secrets.internal_token(Caller::Planner),
            accounts_proxy.url(),
            executor_url.unwrap_or_else(|| format!("http://{}", addrs.executor_addr())),
            stop.clone(),
        )
        .await;
        let config = cudly_gateway::Config::new(
            stack.db.secret_url(),
            secrets.internal_token(Caller::Gateway),
        )
        .with_bootstrap_admin_key(stack.admin_key())
        .with_backends(cudly_gateway::BackendUrls {
            accounts: format!("http://{}", addrs.accounts_addr()),
            planner: format!("http://{planner_addr}"),
            executor: format!("http://{}", addrs.executor_addr()),
            sweeper: format!("http://{}", addrs.sweeper_addr()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = cudly_gateway::App::from_listener(config, listener)
            .await
            .unwrap();
        let gateway_url = format!("http://{}", gateway.local_addr());
        let state = gateway.state().clone();
        tokio::spawn(gateway.run_until_stopped(stop.clone().cancelled_owned()));
        eventually("second gateway migrations", Duration::from_secs(30), || {
            let state = state.clone();
            async move { state.is_migrated().then_some(()) }
        })
        .await
        .unwrap();
        Self {
            stack,
            gateway_url,
            http: reqwest::Client::new(),
            accounts_proxy,
            stop,
        }
    }

    /// Returns a request through the second gateway with the admin key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.gateway_url))
            .bearer_auth(self.stack.admin_key())
    }

    /// Sends a request through the second gateway and returns status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        json_reply(response).await
    }

    /// Cuts the second planner off from the accounts service.
    pub async fn accounts_down(&self) {
        self.accounts_proxy.stop().await;
    }
}

impl Drop for DetachedPlanner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Returns status and JSON body (`Null` when empty) of a response.
pub async fn json_reply(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("response body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    (status, body)
}

/// Serves a fake executor on 127.0.0.1:0 until the token is cancelled.
pub async fn serve_fake_executor(executor: &FakeExecutor) -> (SocketAddr, CancellationToken) {
    serve(tonic::service::Routes::new(ExecutorServiceServer::new(
        executor.clone(),
    )))
    .await
}
