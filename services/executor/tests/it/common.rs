//! Helpers shared by the end-to-end tests: the whole stack (REST gateway, accounts,
//! planner, executor, sweeper) on a fresh database, wired to an AWS sandbox; sandbox
//! accounts registered through REST; recommendations of each service; waiting for an
//! execution to end; the sandbox ledger keys of a token.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::purchase_operation;
use cudly_aws_sandbox::{AccountSpec, Ledger};
use cudly_common::grpc::{AuthChannel, Caller, client_channel};
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_testkit::rest::call;
use cudly_testkit::{TestStack, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// The stack and direct access to the executor's rows.
pub struct World {
    pub stack: TestStack,
    pub pool: sqlx::PgPool,
}

/// Starts the stack against a fresh sandbox, with short AWS timeouts so that an unknown
/// purchase outcome settles in seconds.
pub async fn world() -> World {
    world_with(|_| {}).await
}

/// As [`world`], after `adjust` changed the configuration.
pub async fn world_with(adjust: impl FnOnce(&mut cudly::StackConfig)) -> World {
    // `CUDLY_TEST_LOG=info` prints the services' logs while debugging a test.
    if let Ok(filter) = std::env::var("CUDLY_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let stack = TestStack::start_with_sandbox_and(|config| {
        let mut aws = config.executor.aws.clone();
        aws.call_timeout = Duration::from_secs(2);
        aws.max_attempts = 2;
        config.set_aws(aws);
        config.executor.runner.poll_interval = Duration::from_millis(200);
        config.executor.runner.settle_margin = Duration::from_millis(200);
        adjust(config);
    })
    .await
    .expect("the stack starts");
    let pool = stack.db.pool("executor").await.expect("executor pool");
    World { stack, pool }
}

/// An account registered through REST, backed by a sandbox account.
#[derive(Debug, Clone)]
pub struct TestAccount {
    pub id: String,
    pub external_id: String,
    pub access_key_id: String,
    pub secret: String,
}

/// Returns a random 12-digit AWS account number.
pub fn account_number() -> String {
    let digits = Uuid::new_v4().as_u128().to_string();
    format!("3{}", &digits[..11])
}

impl World {
    /// Sends `body` with the admin key; returns status and JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.stack, method, path, body).await
    }

    /// Sends a request without any API key.
    pub async fn call_anonymous(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.stack.http.request(method, self.stack.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Adds a sandbox account and registers it through REST with its keys; with
    /// `valid_secret` false the stored keys are wrong, so resolving its credentials fails.
    pub async fn add_account(&self, name: &str, valid_secret: bool) -> TestAccount {
        let external_id = account_number();
        let access_key_id = format!("AKIAT{external_id}");
        let secret = format!("sandboxSecret{external_id}CANARYabcdefghijkl");
        self.stack
            .sandbox()
            .add_account(
                AccountSpec::new(&external_id)
                    .with_name(name)
                    .with_access_key(&access_key_id, &secret),
            )
            .await;
        // The sandbox knows callers by access key id: invalid credentials are a key id
        // it never issued, with a secret that was never right either.
        let (stored_key_id, stored_secret) = if valid_secret {
            (access_key_id.clone(), secret.clone())
        } else {
            (
                format!("AKIAX{external_id}"),
                format!("wrongSecret{external_id}CANARYzyxwvutsrqpo"),
            )
        };
        let body = json!({
            "name": name,
            "provider": "aws",
            "external_id": external_id,
            "aws_auth_mode": "access_keys",
            "credentials": {
                "type": "aws_access_keys",
                "access_key_id": stored_key_id,
                "secret_access_key": stored_secret,
            },
        });
        let (status, account) = self.call(Method::POST, "/api/accounts", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "account created: {account}");
        TestAccount {
            id: account["id"].as_str().unwrap().to_owned(),
            external_id,
            access_key_id: stored_key_id,
            secret: stored_secret,
        }
    }

    /// Creates a direct execution of `recommendations` for one account; returns the
    /// reply (with its approval token).
    pub async fn create_direct(&self, account: &TestAccount, recommendations: Vec<Value>) -> Value {
        let body = json!({"cloud_account_id": account.id, "recommendations": recommendations});
        let (status, execution) = self.call(Method::POST, "/api/executions", Some(body)).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "execution created: {execution}"
        );
        execution
    }

    /// Approves an execution with its token and checks the reply.
    pub async fn approve(&self, execution: &Value) {
        let id = execution["id"].as_str().unwrap();
        let token = execution["approval_token"].as_str().unwrap();
        let (status, approved) = self
            .call_anonymous(
                Method::POST,
                &format!("/api/executions/{id}/approve"),
                Some(json!({ "token": token })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "approved: {approved}");
        assert_eq!(approved["status"], "approved");
    }

    /// Creates a direct execution, approves it and waits for its end.
    pub async fn buy(&self, account: &TestAccount, recommendations: Vec<Value>) -> Value {
        let execution = self.create_direct(account, recommendations).await;
        self.approve(&execution).await;
        self.wait_terminal(execution["id"].as_str().unwrap()).await
    }

    /// Returns an execution through REST.
    pub async fn execution(&self, id: &str) -> Value {
        let (status, execution) = self
            .call(Method::GET, &format!("/api/executions/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{execution}");
        execution
    }

    /// Waits until an execution reaches a terminal status and returns it.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        eventually("the execution to end", Duration::from_secs(90), || async {
            let execution = self.execution(id).await;
            let status = execution["status"].as_str().unwrap_or_default().to_owned();
            matches!(
                status.as_str(),
                "completed" | "partially_completed" | "failed" | "canceled" | "expired"
            )
            .then_some(execution)
        })
        .await
        .expect("the execution ended")
    }

    /// Returns the sandbox ledger.
    pub async fn ledger(&self) -> Ledger {
        self.stack.sandbox().ledger().await
    }

    /// Returns an executor client authenticated as `caller`.
    pub fn executor_client(&self, caller: Caller) -> ExecutorServiceClient<AuthChannel> {
        let url = format!("http://{}", self.stack.stack().executor_addr());
        let token = self.stack.secrets().internal_token(caller);
        ExecutorServiceClient::new(
            client_channel(&url, &token, Duration::from_secs(30)).expect("executor channel"),
        )
    }

    /// Returns the idempotency tokens of a child's items, by index.
    pub async fn tokens_of(&self, child_id: &str) -> Vec<(i32, String)> {
        sqlx::query_as(
            "SELECT item_index, idempotency_token FROM execution_items WHERE execution_id = $1 ORDER BY item_index",
        )
        .bind(Uuid::parse_str(child_id).unwrap())
        .fetch_all(&self.pool)
        .await
        .expect("tokens read")
    }

    /// Buys one line of `service` in `account` by hand, as an operator in the console
    /// would (untagged, unknown to the executor); returns the commitment id.
    pub async fn buy_by_hand(&self, account: &TestAccount, service: AwsService) -> String {
        use cudly_aws::purchase::{PurchaseSpec, Purchaser};
        use cudly_aws::sdk::{AwsSettings, SessionCredentials};

        let settings = AwsSettings::default().with_endpoint(self.stack.sandbox().endpoint());
        let credentials = SessionCredentials {
            access_key_id: account.access_key_id.clone(),
            secret_access_key: secrecy::SecretString::from(account.secret.clone()),
            session_token: None,
            expiration: None,
        };
        let by_hand = Purchaser::new(&settings, &credentials, "us-east-1");
        let line: cudly_vocabulary::Recommendation =
            serde_json::from_value(recommendation(service)).expect("a recommendation");
        let spec = PurchaseSpec::new(
            &line,
            &cudly_common::idempotency::derive_token("by-hand", 0),
        );
        let offering = by_hand.resolve_offering(&spec).await.expect("offering");
        by_hand
            .purchase(&spec, &offering)
            .await
            .expect("bought by hand")
            .commitment()
            .commitment_id
            .clone()
    }

    /// Counts the purchase calls of the sandbox ledger.
    pub async fn purchase_calls(&self) -> usize {
        let ledger = self.ledger().await;
        AwsService::ALL
            .iter()
            .map(|service| ledger.calls_of(purchase_operation(service.name())).count())
            .sum()
    }
}

/// The REST recommendation of one unit of `service`.
pub fn recommendation(service: AwsService) -> Value {
    match service {
        AwsService::Ec2 => json!({"provider": "aws", "service": "ec2", "region": "us-east-1",
            "resource_type": "m5.large", "platform": "Linux/UNIX", "count": 1, "term": 1,
            "payment": "no-upfront", "details": {"tenancy": "default", "offering_class": "standard"},
            "upfront_cost": 0.0}),
        AwsService::SavingsPlans => {
            json!({"provider": "aws", "service": "savingsplans", "region": "us-east-1",
            "resource_type": "Compute", "count": 1, "term": 1, "payment": "no-upfront",
            "details": {"plan_type": "Compute", "hourly_commitment": "1.25"}})
        }
        AwsService::Rds => json!({"provider": "aws", "service": "rds", "region": "us-east-1",
            "resource_type": "db.r5.large", "engine": "postgresql", "count": 2, "term": 1,
            "payment": "all-upfront", "details": {"multi_az": false}, "upfront_cost": 1234.5}),
        AwsService::ElastiCache => {
            json!({"provider": "aws", "service": "elasticache", "region": "us-east-1",
            "resource_type": "cache.m5.large", "engine": "redis", "count": 1, "term": 3,
            "payment": "partial-upfront"})
        }
        AwsService::MemoryDb => {
            json!({"provider": "aws", "service": "memorydb", "region": "us-east-1",
            "resource_type": "db.r6g.large", "count": 2, "term": 1, "payment": "no-upfront"})
        }
        AwsService::OpenSearch => {
            json!({"provider": "aws", "service": "opensearch", "region": "us-east-1",
            "resource_type": "r6g.large.search", "count": 3, "term": 1, "payment": "no-upfront"})
        }
        AwsService::Redshift => {
            json!({"provider": "aws", "service": "redshift", "region": "us-east-1",
            "resource_type": "dc2.large", "count": 2, "term": 1, "payment": "all-upfront"})
        }
    }
}

/// How many commitments the sandbox holds for an item's token (OpenSearch purchases
/// carry no tags: their reservation name derives from the token).
pub fn commitments_for(ledger: &Ledger, service: AwsService, token: &str) -> u64 {
    let key = match service {
        AwsService::OpenSearch => {
            cudly_common::idempotency::reservation_id("opensearch-id-", token)
        }
        _ => token.to_owned(),
    };
    ledger.commitments_for_token(&key)
}

/// Returns the children of a root reply.
pub fn children(execution: &Value) -> &Vec<Value> {
    execution["children"]
        .as_array()
        .expect("a root has children")
}

/// Puts an ended execution back as a crash would have left it after buying: root and
/// children running under a dead lease, items in flight, and each purchase attempt
/// either in flight with its call sent (the outcome never written) or, for odd
/// indices, recorded as bought without the item knowing it.
pub async fn rewind_to_a_crash_after_buying(world: &World, root_id: &str) {
    rewind(
        world,
        root_id,
        Some(
            "UPDATE purchase_attempts SET state = 'in_flight', commitment_id = NULL, \
                 lease_owner = 'crashed:000000000000' WHERE root_id = $1 AND item_index % 2 = 0",
        ),
    )
    .await;
}

/// As [`rewind_to_a_crash_after_buying`], every attempt recorded as bought: the crash
/// came after the commitment ids were recorded, before anything else.
pub async fn rewind_to_a_crash_after_recording(world: &World, root_id: &str) {
    rewind(world, root_id, None).await;
}

async fn rewind(world: &World, root_id: &str, attempts: Option<&'static str>) {
    let root = Uuid::parse_str(root_id).unwrap();
    let statements = [
        "UPDATE executions SET status = 'running', completed_at = NULL, error = NULL, \
             lease_owner = 'crashed:000000000000', heartbeat_at = now() - interval '1 hour' WHERE id = $1",
        "UPDATE executions SET status = 'running', completed_at = NULL, error = NULL, \
             lease_owner = 'crashed:000000000000' WHERE parent_id = $1",
        "UPDATE execution_items SET status = 'in_flight', commitment_id = NULL, purchased_at = NULL, \
             lease_owner = 'crashed:000000000000' \
         WHERE execution_id IN (SELECT id FROM executions WHERE parent_id = $1)",
        "DELETE FROM purchase_history WHERE root_id = $1",
    ];
    for statement in statements.into_iter().chain(attempts) {
        sqlx::query(statement)
            .bind(root)
            .execute(&world.pool)
            .await
            .expect("rewind");
    }
}
