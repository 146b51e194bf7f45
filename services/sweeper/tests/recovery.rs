//! Recovery of stranded executions: an executor killed mid-execution leaves a running
//! root; a recover_stranded sweep re-drives it through a live executor with the same
//! tokens, and the AWS sandbox shows every item bought exactly once. A sweeper whose
//! lock expired has its stale fencing token refused by the executor.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cudly_aws_sandbox::{AccountSpec, FaultSpec, Service};
use cudly_common::grpc::{Caller, InternalAuth, client_channel};
use cudly_lock::RedisLock;
use cudly_proto::common::v1::Fencing;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_proto::executor::v1::{ApproveExecutionRequest, ExpirePendingRequest};
use cudly_sweeper::repo::PgFencing;
use cudly_sweeper::task::Task;
use cudly_testkit::{TestStack, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use common::{extra_sweeper, shared_redis, test_tuning};

const STALE_AFTER: Duration = Duration::from_secs(2);

/// An executor in its own runtime on its own thread, so that it can be killed
/// abruptly: its tasks stop at their next await, as in a killed process.
struct Victim {
    addr: SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Victim {
    fn start(stack: &TestStack) -> Self {
        let secrets = stack.secrets().clone();
        let tokens = [Caller::Gateway, Caller::Planner, Caller::Sweeper]
            .map(|caller| (caller, secrets.internal_token(caller)));
        let auth = InternalAuth::from_tokens(tokens.iter().map(|(caller, token)| (*caller, token)));
        let runner = cudly_executor::config::RunnerSettings {
            stranded_running_after: STALE_AFTER,
            poll_interval: Duration::from_secs(3600),
            // Items one at a time, so that the kill lands between two purchases.
            max_item_parallelism: 1,
            ..Default::default()
        };
        let config = cudly_executor::config::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url: stack.db.secret_url(),
            auth,
            common: cudly_common::config::CommonSettings {
                health_interval: Duration::from_millis(250),
                ..Default::default()
            },
            accounts_url: format!("http://{}", stack.stack().accounts_addr()),
            planner_url: format!("http://{}", stack.stack().planner_addr()),
            internal_token: secrets.internal_token(Caller::Executor),
            aws: cudly_aws::sdk::AwsSettings::default().with_endpoint(stack.sandbox().endpoint()),
            runner,
            notify: cudly_notify::NotifyConfig::read(&cudly_common::config::Env::empty(), None)
                .unwrap(),
            public_url: None,
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = cudly_executor::app::App::from_listener(config, listener).unwrap();
                tokio::spawn(app.run_until_stopped(std::future::pending()));
            });
            let _ = kill_rx.recv();
            runtime.shutdown_background();
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            addr,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn start_stack() -> TestStack {
    TestStack::start_with_sandbox_and(|config| {
        // Only re-drives (and this test) start runs on the stack's own executor.
        config.executor.runner.poll_interval = Duration::from_secs(3600);
        config.executor.runner.stranded_running_after = STALE_AFTER;
        config.executor.runner.settle_margin = Duration::from_millis(200);
        let mut aws = config.executor.aws.clone();
        aws.call_timeout = Duration::from_secs(5);
        config.set_aws(aws);
    })
    .await
    .unwrap()
}

/// Registers a sandbox account with keys through REST; returns (id, external id).
async fn add_account(stack: &TestStack) -> (String, String) {
    let digits = uuid::Uuid::new_v4().as_u128().to_string();
    let external_id = format!("4{}", &digits[..11]);
    let key_id = format!("AKIAR{external_id}");
    let secret = format!("recoverySecret{external_id}abcdefghij");
    stack
        .sandbox()
        .add_account(AccountSpec::new(&external_id).with_access_key(&key_id, &secret))
        .await;
    let body = json!({
        "name": format!("recovery-{external_id}"),
        "provider": "aws",
        "external_id": external_id,
        "aws_auth_mode": "access_keys",
        "credentials": {"type": "aws_access_keys", "access_key_id": key_id, "secret_access_key": secret},
    });
    let (status, account) = stack
        .admin_json(Method::POST, "/api/accounts", Some(body))
        .await
        .unwrap();
    assert_eq!(status, 201, "{account}");
    (account["id"].as_str().unwrap().to_owned(), external_id)
}

fn rds(resource_type: &str) -> Value {
    json!({"provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": resource_type,
           "engine": "postgresql", "count": 1, "term": 1, "payment": "all-upfront"})
}

async fn execution(stack: &TestStack, id: &str) -> Value {
    let (status, body) = stack
        .admin_json(Method::GET, &format!("/api/executions/{id}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_executor_leaves_a_running_execution_that_a_sweep_redrives_to_completed_buying_each_item_once()
 {
    let stack = start_stack().await;
    let (account_id, external_id) = add_account(&stack).await;
    let body = json!({"cloud_account_id": account_id,
                      "recommendations": [rds("db.r6g.large"), rds("db.r6g.xlarge"), rds("db.r6g.2xlarge")]});
    let (status, created) = stack
        .admin_json(Method::POST, "/api/executions", Some(body))
        .await
        .unwrap();
    assert_eq!(status, 201, "{created}");
    let root_id = created["id"].as_str().unwrap().to_owned();
    let token = created["approval_token"].as_str().unwrap().to_owned();

    // Slow purchases, so the kill lands between items.
    stack
        .sandbox()
        .add_fault(
            FaultSpec::on(Service::Rds, "PurchaseReservedDBInstancesOffering").latency(600, 0),
        )
        .await;

    let mut victim = Victim::start(&stack);
    let channel = client_channel(
        &format!("http://{}", victim.addr),
        &stack.secrets().internal_token(Caller::Gateway),
        Duration::from_secs(10),
    )
    .unwrap();
    ExecutorServiceClient::new(channel)
        .approve_execution(ApproveExecutionRequest {
            id: root_id.clone(),
            token: Some(token),
            actor: "token".into(),
            actor_key_id: None,
        })
        .await
        .unwrap();

    eventually(
        "the victim to buy its first item",
        Duration::from_secs(30),
        || async {
            let ledger = stack.sandbox().ledger().await;
            let bought = ledger
                .commitments
                .iter()
                .filter(|c| c.account_id == external_id)
                .count();
            (bought >= 1).then_some(())
        },
    )
    .await
    .unwrap();
    victim.kill();

    let stranded = execution(&stack, &root_id).await;
    assert_eq!(
        stranded["status"], "running",
        "the killed run leaves its root running: {stranded}"
    );
    let bought_before = stack
        .sandbox()
        .ledger()
        .await
        .commitments
        .iter()
        .filter(|c| c.account_id == external_id)
        .count();
    assert!(
        bought_before < 3,
        "the kill came before the last item ({bought_before} bought)"
    );

    let mut tuning = test_tuning(Duration::from_secs(5), Duration::from_millis(10));
    tuning.stranded_running_after = STALE_AFTER;
    let sweeper = extra_sweeper(&stack, &shared_redis(), tuning);
    let redriven = eventually(
        "a sweep to re-drive the stale root",
        Duration::from_secs(30),
        || async {
            let run = sweeper.run_task(Task::RecoverStranded, true).await.ok()?;
            (run.outcome == "ran" && run.counts.acted >= 1).then_some(run)
        },
    )
    .await
    .unwrap();
    assert!(redriven.fencing_token.is_some());

    let finished = eventually(
        "the re-driven root to complete",
        Duration::from_secs(60),
        || async {
            let body = execution(&stack, &root_id).await;
            (body["status"] == "completed").then_some(body)
        },
    )
    .await
    .unwrap();
    assert!(finished["attempt"].as_u64().unwrap() >= 1, "{finished}");

    let ledger = stack.sandbox().ledger().await;
    let commitments: Vec<_> = ledger
        .commitments
        .iter()
        .filter(|c| c.account_id == external_id)
        .collect();
    assert_eq!(
        commitments.len(),
        3,
        "every item bought exactly once: {commitments:?}"
    );
    let mut ids: Vec<&str> = commitments
        .iter()
        .map(|c| c.commitment_id.as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct reservations");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweeper_whose_lock_expired_has_its_stale_fencing_token_refused_and_acts_no_further() {
    let stack = start_stack().await;
    let tuning = test_tuning(Duration::from_millis(300), Duration::from_millis(10));
    let pool = stack.db.pool("sweeper").await.unwrap();
    let lock = RedisLock::connect_with_config(
        &shared_redis(),
        cudly_lock::LockConfig::default().with_key_prefix(tuning.lock_key_prefix.clone()),
    )
    .await
    .unwrap();
    let fencing = PgFencing { pool: pool.clone() };

    // A holder that pauses past its TTL.
    let paused = lock
        .try_acquire(
            Task::ExpirePending.name(),
            Duration::from_millis(300),
            &fencing,
        )
        .await
        .unwrap()
        .expect("the lock is free");
    paused.stop_renewing();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !paused.is_held(),
        "the paused holder knows its lock ran out"
    );

    // Another sweeper takes the lock and acts with a higher token.
    let sweeper = extra_sweeper(&stack, &shared_redis(), tuning);
    let run = sweeper.run_task(Task::ExpirePending, true).await.unwrap();
    assert_eq!(run.outcome, "ran", "{run:?}");
    assert!(run.fencing_token.unwrap() > paused.fencing_token());

    // The paused holder wakes up and tries to act with its old token: refused.
    let channel = client_channel(
        &format!("http://{}", stack.stack().executor_addr()),
        &stack.secrets().internal_token(Caller::Sweeper),
        Duration::from_secs(10),
    )
    .unwrap();
    let stale = Fencing {
        task: Task::ExpirePending.name().to_owned(),
        token: paused.fencing_token(),
    };
    let refused = ExecutorServiceClient::new(channel)
        .expire_pending(ExpirePendingRequest {
            fencing: Some(stale.clone()),
            now: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Aborted, "{refused:?}");
    let detail = cudly_proto::status::error_detail(&refused).unwrap();
    assert_eq!(detail.code, "stale_fencing_token");

    // And the task body itself stops at once, reporting the lock lost.
    let channel = |addr: std::net::SocketAddr| {
        client_channel(
            &format!("http://{addr}"),
            &stack.secrets().internal_token(Caller::Sweeper),
            Duration::from_secs(10),
        )
        .unwrap()
    };
    let planner = cudly_proto::planner::v1::planner_service_client::PlannerServiceClient::new(
        channel(stack.stack().planner_addr()),
    );
    let clients = cudly_sweeper::tasks::Clients {
        executor: ExecutorServiceClient::new(channel(stack.stack().executor_addr())),
        planner_refresh: planner.clone(),
        planner,
    };
    let stopped = cudly_sweeper::tasks::run_body(
        Task::ExpirePending,
        sweeper.config(),
        &clients,
        &paused,
        stale,
    )
    .await;
    assert!(
        matches!(stopped, Err(cudly_sweeper::tasks::TaskStop::LockLost(_))),
        "{stopped:?}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_executions_past_their_lifetime_expire_and_fresh_ones_are_untouched() {
    let stack = TestStack::start_with_sandbox_and(|config| {
        config.executor.runner.approval_ttl = Duration::from_secs(2);
    })
    .await
    .unwrap();
    let (account_id, _) = add_account(&stack).await;
    let body = json!({"cloud_account_id": account_id, "recommendations": [rds("db.r6g.large")]});
    let (_, old) = stack
        .admin_json(Method::POST, "/api/executions", Some(body.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, fresh) = stack
        .admin_json(Method::POST, "/api/executions", Some(body))
        .await
        .unwrap();

    let sweeper = extra_sweeper(
        &stack,
        &shared_redis(),
        test_tuning(Duration::from_secs(5), Duration::from_millis(10)),
    );
    let run = sweeper.run_task(Task::ExpirePending, true).await.unwrap();
    assert_eq!(run.outcome, "ran", "{run:?}");
    assert_eq!(
        (run.counts.found, run.counts.acted, run.counts.race_lost),
        (1, 1, 0),
        "{run:?}"
    );
    assert_eq!(
        execution(&stack, old["id"].as_str().unwrap()).await["status"],
        "expired"
    );
    assert_eq!(
        execution(&stack, fresh["id"].as_str().unwrap()).await["status"],
        "pending"
    );

    // An expired execution can no longer be approved by its token: 410 or 409.
    let (status, _) = stack
        .admin_json(
            Method::POST,
            &format!("/api/executions/{}/approve", old["id"].as_str().unwrap()),
            Some(json!({"token": old["approval_token"]})),
        )
        .await
        .unwrap();
    assert!(status == 410 || status == 409, "{status}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_execution_that_completes_between_listing_and_acting_is_skipped_as_race_lost() {
    let stack = start_stack().await;
    let (account_id, external_id) = add_account(&stack).await;
    let body = json!({"cloud_account_id": account_id,
                      "recommendations": [rds("db.r6g.large"), rds("db.r6g.xlarge")]});
    let (_, created) = stack
        .admin_json(Method::POST, "/api/executions", Some(body))
        .await
        .unwrap();
    let root_id = created["id"].as_str().unwrap().to_owned();
    stack
        .sandbox()
        .add_fault(
            FaultSpec::on(Service::Rds, "PurchaseReservedDBInstancesOffering").latency(600, 0),
        )
        .await;
    let mut victim = Victim::start(&stack);
    let channel = client_channel(
        &format!("http://{}", victim.addr),
        &stack.secrets().internal_token(Caller::Gateway),
        Duration::from_secs(10),
    )
    .unwrap();
    ExecutorServiceClient::new(channel)
        .approve_execution(ApproveExecutionRequest {
            id: root_id.clone(),
            token: Some(created["approval_token"].as_str().unwrap().to_owned()),
            actor: "token".into(),
            actor_key_id: None,
        })
        .await
        .unwrap();
    eventually(
        "the victim to buy its first item",
        Duration::from_secs(30),
        || async {
            let ledger = stack.sandbox().ledger().await;
            ledger
                .commitments
                .iter()
                .any(|c| c.account_id == external_id)
                .then_some(())
        },
    )
    .await
    .unwrap();
    victim.kill();
    stack.sandbox().clear_faults().await;
    tokio::time::sleep(STALE_AFTER + Duration::from_millis(500)).await;

    // The sweep lists the stale root, then pauses; meanwhile another re-drive (an
    // operator's, fenced under its own task name) finishes the execution.
    let mut tuning = test_tuning(Duration::from_secs(30), Duration::from_millis(10));
    tuning.stranded_running_after = STALE_AFTER;
    tuning.pause_before_acting = Duration::from_secs(8);
    let sweeper = extra_sweeper(&stack, &shared_redis(), tuning);
    let sweep = tokio::spawn(async move { sweeper.run_task(Task::RecoverStranded, true).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let channel = client_channel(
        &format!("http://{}", stack.stack().executor_addr()),
        &stack.secrets().internal_token(Caller::Sweeper),
        Duration::from_secs(10),
    )
    .unwrap();
    let redrive = ExecutorServiceClient::new(channel)
        .redrive(cudly_proto::executor::v1::RedriveRequest {
            execution_id: root_id.clone(),
            fencing: Some(Fencing {
                task: "operator_redrive".into(),
                token: 1,
            }),
            expected_attempt: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(redrive.accepted, "{redrive:?}");
    eventually(
        "the execution to complete during the pause",
        Duration::from_secs(30),
        || async { (execution(&stack, &root_id).await["status"] == "completed").then_some(()) },
    )
    .await
    .unwrap();

    let run = sweep.await.unwrap().unwrap();
    assert_eq!(run.outcome, "ran", "{run:?}");
    assert_eq!(
        (run.counts.found, run.counts.acted, run.counts.race_lost),
        (1, 0, 1),
        "{run:?}"
    );
    let ledger = stack.sandbox().ledger().await;
    assert_eq!(
        ledger
            .commitments
            .iter()
            .filter(|c| c.account_id == external_id)
            .count(),
        2
    );
    stack.stop().await.unwrap();
}
