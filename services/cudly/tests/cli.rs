//! The operator CLI end to end against the in-process stack (docs/CLI.md): every
//! subcommand's happy path and one error each, tables checked for what they show and
//! `--json` output parsed back. Commands run in-process through `cudly::cli::run_with`;
//! two tests spawn the real binary for its exit codes and completion script.

use std::time::Duration;

use clap::Parser;
use cudly::cli::{Cli, run_with};
use cudly_aws_sandbox::operations::{guard_operation, sandbox_service};
use cudly_aws_sandbox::{AccountSpec, FaultError, FaultSpec};
use cudly_testkit::{TestStack, free_port};
use reqwest::Method;
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

/// An id no object has.
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// What one run of the CLI printed and returned.
struct Outcome {
    args: Vec<String>,
    code: i32,
    out: String,
    err: String,
}

impl Outcome {
    /// Checks the exit code; a failure other than 1 and 7 prints exactly one error line.
    #[track_caller]
    fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code of {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.out, self.err
        );
        if (2..=6).contains(&code) {
            assert!(
                self.err.starts_with("error: ") && self.err.trim_end().lines().count() == 1,
                "one error line: {:?}",
                self.err
            );
        }
        self
    }

    #[track_caller]
    fn assert_ok(&self) -> &Self {
        self.assert_exit(0)
    }

    /// Checks that stdout shows every one of `needles`.
    #[track_caller]
    fn shows(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.out.contains(needle),
                "{:?} should show {needle:?}:\n{}",
                self.args,
                self.out
            );
        }
        self
    }

    /// Returns stdout parsed as one JSON document.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|error| {
            panic!("{:?} printed no json ({error}):\n{}", self.args, self.out)
        })
    }

    /// Returns stdout parsed as one JSON document per line.
    #[track_caller]
    fn json_lines(&self) -> Vec<Value> {
        self.out
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a json line ({error}): {line}"))
            })
            .collect()
    }
}

/// Runs the CLI in-process with these arguments.
async fn cudly(args: &[&str]) -> Outcome {
    let cli = Cli::try_parse_from(std::iter::once("cudly").chain(args.iter().copied()))
        .unwrap_or_else(|error| panic!("{args:?} do not parse: {error}"));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(cli, &mut out, &mut err).await;
    Outcome {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        code,
        out: String::from_utf8(out).expect("utf-8 output"),
        err: String::from_utf8(err).expect("utf-8 errors"),
    }
}

/// The CLI pointed at a stack with one API key.
struct Operator {
    url: String,
    key: String,
}

impl Operator {
    fn admin(stack: &TestStack) -> Self {
        Self::with_key(stack, stack.admin_key())
    }

    fn with_key(stack: &TestStack, key: &str) -> Self {
        Self {
            url: stack.url(""),
            key: key.to_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        let mut full = vec!["--url", self.url.as_str(), "--api-key", self.key.as_str()];
        full.extend_from_slice(args);
        cudly(&full).await
    }

    /// Runs with `--json`, checks success and returns the parsed output.
    async fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.push("--json");
        let outcome = self.run(&full).await;
        outcome.assert_ok();
        outcome.json()
    }
}

/// Returns the entry of `list` whose `field` is `value`.
#[track_caller]
fn find<'v>(list: &'v Value, field: &str, value: &str) -> &'v Value {
    list.as_array()
        .and_then(|entries| entries.iter().find(|entry| entry[field] == value))
        .unwrap_or_else(|| panic!("no {field} = {value} in {list}"))
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// One RDS reservation bought by `account`.
fn rds_line(account: &str) -> Value {
    json!({"provider": "aws", "service": "rds", "region": "us-east-1",
        "resource_type": "db.r5.large", "engine": "postgresql", "count": 1, "term": 1,
        "payment": "all-upfront", "cloud_account_id": account, "details": {"multi_az": false}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_commands_register_test_discover_enable_and_disable() {
    const SOLO: &str = "710000000001";
    const SOLO_KEY: (&str, &str) = (
        "AKIACLISOLO000000001",
        "soloSecret0123456789abcdefghijklmnop",
    );
    const ROOT: &str = "710000000010";
    const ROOT_KEY: (&str, &str) = (
        "AKIACLIROOT000000001",
        "rootSecret0123456789abcdefghijklmnop",
    );
    const MEMBER: &str = "710000000011";
    let stack = TestStack::start_with_sandbox().await.unwrap();
    let admin = Operator::admin(&stack);
    let sandbox = stack.sandbox();
    sandbox
        .add_account(
            AccountSpec::new(SOLO)
                .with_name("solo")
                .with_access_key(SOLO_KEY.0, SOLO_KEY.1),
        )
        .await;

    // add
    let added = admin
        .run(&[
            "accounts",
            "add",
            "--name",
            "solo",
            "--external-id",
            SOLO,
            "--access-key-id",
            SOLO_KEY.0,
            "--secret-access-key",
            SOLO_KEY.1,
        ])
        .await;
    added.assert_ok().shows(&["solo", SOLO, "access_keys"]);
    assert!(!added.out.contains(SOLO_KEY.1), "a secret is never printed");
    admin
        .run(&["accounts", "add", "--name", "short", "--external-id", "123"])
        .await
        .assert_exit(5);

    // list
    admin
        .run(&["accounts", "list"])
        .await
        .assert_ok()
        .shows(&["NAME", "solo", SOLO]);
    let listed = admin.json(&["accounts", "list", "--provider", "aws"]).await;
    let solo_id = id_of(find(&listed["accounts"], "external_id", SOLO));
    Operator::with_key(&stack, "cudly_not_a_key")
        .run(&["accounts", "list"])
        .await
        .assert_exit(3);

    // show
    let shown = admin.json(&["accounts", "show", &solo_id]).await;
    assert_eq!(shown["name"], "solo");
    assert_eq!(shown["credentials_configured"], true);
    admin
        .run(&["accounts", "show", UNKNOWN])
        .await
        .assert_exit(4);

    // test
    admin
        .run(&["accounts", "test", &solo_id])
        .await
        .assert_ok()
        .shows(&["ok", SOLO]);
    let tested = admin.json(&["accounts", "test", &solo_id]).await;
    assert_eq!(tested["ok"], true, "{tested}");
    admin
        .run(&["accounts", "test", UNKNOWN])
        .await
        .assert_exit(4);

    // discover
    sandbox
        .add_account(
            AccountSpec::new(ROOT)
                .with_name("org-root")
                .with_access_key(ROOT_KEY.0, ROOT_KEY.1)
                .with_member(MEMBER, "member"),
        )
        .await;
    let root = admin
        .json(&[
            "accounts",
            "add",
            "--name",
            "org-root",
            "--external-id",
            ROOT,
            "--org-root",
            "--access-key-id",
            ROOT_KEY.0,
            "--secret-access-key",
            ROOT_KEY.1,
        ])
        .await;
    assert_eq!(root["aws_is_org_root"], true);
    let root_id = id_of(&root);
    let discovered = admin.json(&["accounts", "discover", &root_id]).await;
    assert_eq!(discovered["created"], 1, "{discovered}");
    let member_id = id_of(find(&discovered["accounts"], "external_id", MEMBER));
    admin
        .run(&["accounts", "discover", &root_id])
        .await
        .assert_ok()
        .shows(&[MEMBER, "created 0, skipped 1"]);
    admin
        .run(&["accounts", "discover", &solo_id])
        .await
        .assert_exit(5);

    // enable, disable
    let enabled = admin.json(&["accounts", "enable", &member_id]).await;
    assert_eq!(enabled["enabled"], true);
    admin
        .run(&["accounts", "disable", &member_id])
        .await
        .assert_ok()
        .shows(&["disabled"]);
    let member = admin.json(&["accounts", "show", &member_id]).await;
    assert_eq!(member["enabled"], false);
    admin
        .run(&["accounts", "enable", UNKNOWN])
        .await
        .assert_exit(4);
    admin
        .run(&["accounts", "disable", "not-a-uuid"])
        .await
        .assert_exit(5);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_executions_are_created_approved_watched_canceled_and_retried() {
    let stack = TestStack::start_with_sandbox_and(|config| {
        // Short AWS timeouts: a failing purchase settles in seconds.
        let mut aws = config.executor.aws.clone();
        aws.call_timeout = Duration::from_secs(2);
        aws.max_attempts = 2;
        config.set_aws(aws);
    })
    .await
    .unwrap();
    let admin = Operator::admin(&stack);
    let buyer = stack.add_sandbox_account("buyer").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list_file = dir.path().join("rds.json");
    std::fs::write(&list_file, json!([rds_line(&buyer)]).to_string()).unwrap();
    let list_path = list_file.to_str().unwrap();

    // plans create
    admin
        .run(&[
            "plans",
            "create",
            "--name",
            "rds-ladder",
            "--service",
            "rds",
            "--payment",
            "all-upfront",
            "--account",
            &buyer,
        ])
        .await
        .assert_ok()
        .shows(&["rds-ladder", "aws/rds (1y all-upfront 100%)"]);
    let second = admin
        .json(&[
            "plans",
            "create",
            "--name",
            "ec2-plan",
            "--service",
            "ec2",
            "--coverage",
            "80",
        ])
        .await;
    assert_eq!(second["services"]["aws/ec2"]["coverage"], 80.0);
    admin
        .run(&[
            "plans",
            "create",
            "--name",
            "bad",
            "--service",
            "rds",
            "--term",
            "2",
        ])
        .await
        .assert_exit(5);

    // plans list
    let plans = admin.json(&["plans", "list"]).await;
    let plan_id = id_of(find(&plans["plans"], "name", "rds-ladder"));
    admin
        .run(&["plans", "list"])
        .await
        .assert_ok()
        .shows(&["rds-ladder", "ec2-plan", &plan_id]);
    Operator::with_key(&stack, "cudly_not_a_key")
        .run(&["plans", "list"])
        .await
        .assert_exit(3);

    // plans show
    let plan = admin.json(&["plans", "show", &plan_id]).await;
    assert_eq!(plan["source"], "list");
    admin.run(&["plans", "show", UNKNOWN]).await.assert_exit(4);

    // plans accounts
    admin
        .run(&["plans", "accounts", &plan_id])
        .await
        .assert_ok()
        .shows(&[&buyer, "buyer"]);
    let binding = admin
        .json(&["plans", "accounts", &plan_id, "--set", &buyer])
        .await;
    assert_eq!(binding["account_ids"], json!([buyer]));
    admin
        .run(&["plans", "accounts", &plan_id, "--set", UNKNOWN])
        .await
        .assert_exit(4);

    // plans start: a pending execution with its approval link
    let started = admin
        .run(&["plans", "start", &plan_id, "--recommendations", list_path])
        .await;
    started
        .assert_ok()
        .shows(&["pending", "/approve/", "cudly executions approve"]);
    let to_cancel = admin
        .json(&["plans", "start", &plan_id, "--recommendations", list_path])
        .await;
    assert_eq!(to_cancel["status"], "pending");
    let cancel_token = to_cancel["approval_token"].as_str().unwrap().to_owned();
    let to_cancel_id = id_of(&to_cancel);
    admin
        .run(&["plans", "start", UNKNOWN, "--recommendations", list_path])
        .await
        .assert_exit(4);

    // executions list
    let executions = admin
        .json(&["executions", "list", "--plan", &plan_id])
        .await;
    assert_eq!(executions["executions"].as_array().unwrap().len(), 2);
    let first = executions["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|execution| execution["id"] != to_cancel_id.as_str())
        .unwrap();
    let first_id = id_of(first);
    admin
        .run(&["executions", "list"])
        .await
        .assert_ok()
        .shows(&[&first_id, &to_cancel_id, "pending"]);
    admin
        .run(&["executions", "list", "--plan", "not-a-uuid"])
        .await
        .assert_exit(5);

    // executions show
    admin
        .run(&["executions", "show", &first_id])
        .await
        .assert_ok()
        .shows(&["pending", "db.r5.large", &buyer]);
    let shown = admin.json(&["executions", "show", &first_id]).await;
    assert_eq!(shown["children"].as_array().unwrap().len(), 1);
    admin
        .run(&["executions", "show", UNKNOWN])
        .await
        .assert_exit(4);

    // executions approve, watch
    admin
        .run(&["executions", "approve", &first_id])
        .await
        .assert_ok()
        .shows(&["approved"]);
    let again = admin.run(&["executions", "approve", &first_id]).await;
    again.assert_exit(5);
    assert!(again.err.contains("(http 409)"), "{}", again.err);
    admin
        .run(&["executions", "watch", &first_id, "--interval", "0.2"])
        .await
        .assert_ok()
        .shows(&["completed", "items bought 1, failed 0"]);
    admin
        .run(&["executions", "watch", UNKNOWN])
        .await
        .assert_exit(4);

    // executions cancel: a wrong token is refused, the right one cancels
    admin
        .run(&[
            "executions",
            "cancel",
            &to_cancel_id,
            "--token",
            &"f".repeat(64),
        ])
        .await
        .assert_exit(3);
    let canceled = admin
        .json(&[
            "executions",
            "cancel",
            &to_cancel_id,
            "--token",
            &cancel_token,
        ])
        .await;
    assert_eq!(canceled["status"], "canceled");
    admin
        .run(&["executions", "watch", &to_cancel_id])
        .await
        .assert_exit(7)
        .shows(&["canceled"]);

    // executions retry: a failed execution, then its retry buys
    let guard_fault = stack
        .sandbox()
        .add_fault(
            FaultSpec::on(sandbox_service("rds"), guard_operation("rds"))
                .error(FaultError::Internal),
        )
        .await;
    let failing = admin
        .json(&["plans", "start", &plan_id, "--recommendations", list_path])
        .await;
    let failing_id = id_of(&failing);
    admin
        .json(&[
            "executions",
            "approve",
            &failing_id,
            "--token",
            failing["approval_token"].as_str().unwrap(),
        ])
        .await;
    let watched = admin
        .run(&[
            "executions",
            "watch",
            &failing_id,
            "--interval",
            "0.2",
            "--json",
        ])
        .await;
    watched.assert_exit(7);
    let lines = watched.json_lines();
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "final");
    assert_eq!(last["execution"]["status"], "failed", "{last}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|line| line["type"] == "progress")
    );
    stack.sandbox().remove_fault(guard_fault).await;
    let retried = admin.json(&["executions", "retry", &failing_id]).await;
    let retried_id = id_of(&retried);
    assert_ne!(retried_id, failing_id);
    admin
        .run(&["executions", "watch", &retried_id, "--interval", "0.2"])
        .await
        .assert_ok();
    admin
        .run(&["executions", "retry", &first_id])
        .await
        .assert_exit(5);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_plans_the_demo_organisation_and_its_execution_buys_once_approved() {
    let stack = TestStack::start_with_sandbox().await.unwrap();
    cudly::demo::seed(&stack.sandbox().endpoint())
        .await
        .unwrap();
    let admin = Operator::admin(&stack);
    let (status, created_key) = stack
        .admin_json(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "reader", "role": "viewer"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{created_key}");
    let viewer = Operator::with_key(&stack, created_key["key"].as_str().unwrap());

    // demo: an error first (a viewer cannot register accounts), then twice
    viewer.run(&["demo"]).await.assert_exit(3);
    let demo = admin.json(&["demo"]).await;
    assert_eq!(demo["reused_pending"], false);
    assert_eq!(
        demo["member_account_ids"].as_array().unwrap().len(),
        cudly::demo::MEMBERS.len()
    );
    let execution = &demo["execution"];
    assert_eq!(execution["status"], "pending", "{demo}");
    let execution_id = id_of(execution);
    let approval_url = demo["approval_url"].as_str().unwrap().to_owned();
    assert!(approval_url.starts_with(&stack.url("/approve/")));
    admin.run(&["demo"]).await.assert_ok().shows(&[
        &execution_id,
        "earlier",
        cudly::demo::ROOT_ACCOUNT_ID,
    ]);

    // recommendations refresh, list
    let refreshed = admin.json(&["recommendations", "refresh"]).await;
    assert!(
        !refreshed["accounts"].as_array().unwrap().is_empty(),
        "{refreshed}"
    );
    admin
        .run(&["recommendations", "refresh"])
        .await
        .assert_ok()
        .shows(&["Cost Explorer calls"]);
    viewer
        .run(&["recommendations", "refresh"])
        .await
        .assert_exit(3);
    let listed = admin.json(&["recommendations", "list"]).await;
    let lines = listed["recommendations"].as_array().unwrap();
    assert!(!lines.is_empty());
    let known: Vec<&str> = cudly::demo::MEMBERS
        .iter()
        .map(|(id, _)| *id)
        .chain([cudly::demo::ROOT_ACCOUNT_ID])
        .collect();
    for line in lines {
        let account = line["account_external_id"].as_str().unwrap();
        assert!(known.contains(&account), "{line}");
    }
    admin
        .run(&["recommendations", "list"])
        .await
        .assert_ok()
        .shows(&[lines[0]["account_external_id"].as_str().unwrap(), "SERVICE"]);
    admin
        .run(&["recommendations", "list", "--account", "not-a-uuid"])
        .await
        .assert_exit(5);

    // the printed link opens the approval page, which shows the execution and decides
    // nothing by itself; `executions approve` then approves it
    let page = reqwest::get(&approval_url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&execution_id));
    admin
        .run(&["executions", "approve", &execution_id])
        .await
        .assert_ok();
    let watched = admin
        .run(&[
            "executions",
            "watch",
            &execution_id,
            "--interval",
            "0.2",
            "--json",
        ])
        .await;
    watched.assert_ok();
    let last = watched.json_lines().pop().unwrap();
    assert_eq!(last["execution"]["status"], "completed", "{last}");
    assert!(last["items_bought"].as_u64().unwrap() > 0, "{last}");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_keys_audit_and_login_work_and_fail_with_their_codes() {
    let mut stack = TestStack::start().await.unwrap();
    let admin = Operator::admin(&stack);
    let wrong = Operator::with_key(&stack, "cudly_not_a_key");

    // guardrails show, set
    admin
        .run(&["guardrails", "show"])
        .await
        .assert_ok()
        .shows(&["max per execution", "no limit", "USD"]);
    wrong.run(&["guardrails", "show"]).await.assert_exit(3);
    let limited = admin
        .json(&["guardrails", "set", "--max-execution-commitment", "5000"])
        .await;
    assert_eq!(limited["max_execution_commitment"], 5000.0);
    let windowed = admin
        .json(&["guardrails", "set", "--window-days", "10"])
        .await;
    assert_eq!(windowed["window_days"], 10);
    assert_eq!(windowed["max_execution_commitment"], 5000.0, "kept");
    admin
        .run(&["guardrails", "set", "--max-execution-commitment", "none"])
        .await
        .assert_ok()
        .shows(&["no limit"]);
    admin
        .run(&["guardrails", "set", "--window-days", "0"])
        .await
        .assert_exit(5);
    admin.run(&["guardrails", "set"]).await.assert_exit(2);

    // keys create: the key is printed once
    let auditor = admin
        .json(&["keys", "create", "--name", "auditor", "--role", "viewer"])
        .await;
    let auditor_key = auditor["key"].as_str().unwrap().to_owned();
    assert_eq!(auditor["role"], "viewer");
    admin
        .run(&["keys", "create", "--name", "ops", "--role", "admin"])
        .await
        .assert_ok()
        .shows(&["shown this once", "ops"]);
    admin
        .run(&["keys", "create", "--name", "ops", "--role", "admin"])
        .await
        .assert_exit(5);
    let reader = Operator::with_key(&stack, &auditor_key);
    reader
        .run(&["keys", "create", "--name", "sneaky", "--role", "admin"])
        .await
        .assert_exit(3);

    // keys list
    let keys = admin.json(&["keys", "list"]).await;
    let auditor_id = id_of(find(&keys["keys"], "name", "auditor"));
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|key| key.get("key").is_none()),
        "a listed key never shows the key: {keys}"
    );
    admin
        .run(&["keys", "list"])
        .await
        .assert_ok()
        .shows(&["auditor", "viewer", "ops"]);
    wrong.run(&["keys", "list"]).await.assert_exit(3);

    // keys revoke
    admin
        .run(&["keys", "revoke", &auditor_id])
        .await
        .assert_ok()
        .shows(&["revoked"]);
    reader.run(&["keys", "list"]).await.assert_exit(3);
    admin.run(&["keys", "revoke", UNKNOWN]).await.assert_exit(4);

    // audit export
    let audit = admin.json(&["audit", "export"]).await;
    for action in ["key.create", "key.revoke", "guardrails.update"] {
        find(&audit["events"], "action", action);
    }
    admin
        .run(&["audit", "export", "--action", "key.*"])
        .await
        .assert_ok()
        .shows(&["key.create", "key.revoke"]);
    let csv = admin
        .run(&["audit", "export", "--format", "csv", "--page-size", "2"])
        .await;
    csv.assert_ok();
    assert!(csv.out.starts_with("id,at,service,actor"), "{}", csv.out);
    assert_eq!(
        csv.out
            .lines()
            .filter(|line| line.starts_with("id,at,"))
            .count(),
        1,
        "one header across pages"
    );
    assert_eq!(
        csv.out.lines().count(),
        audit["events"].as_array().unwrap().len() + 1
    );
    let jsonl = admin
        .run(&["audit", "export", "--format", "jsonl", "--page-size", "2"])
        .await;
    jsonl.assert_ok();
    assert_eq!(
        jsonl.json_lines().len(),
        audit["events"].as_array().unwrap().len()
    );
    admin
        .run(&["audit", "export", "--since", "yesterday"])
        .await
        .assert_exit(5);

    // login: a wrong key writes nothing, a good one is kept for the next commands
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cudly").join("config.toml");
    let config_path = config.to_str().unwrap();
    let url = stack.url("");
    cudly(&[
        "--config",
        config_path,
        "--url",
        &url,
        "--api-key",
        "cudly_not_a_key",
        "login",
    ])
    .await
    .assert_exit(3);
    assert!(!config.exists());
    cudly(&[
        "--config",
        config_path,
        "--url",
        &url,
        "--api-key",
        stack.admin_key(),
        "login",
    ])
    .await
    .assert_ok()
    .shows(&["logged in", config_path]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let from_file = cudly(&["--config", config_path, "keys", "list", "--json"]).await;
    from_file.assert_ok();
    find(&from_file.json()["keys"], "name", "ops");

    // unreachable: nothing listens, then the whole stack is down
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let refused = cudly(&["--url", &nowhere, "--api-key", "k", "accounts", "list"]).await;
    refused.assert_exit(6);
    assert!(refused.err.contains("cannot reach"), "{}", refused.err);
    stack.stop_services().await.unwrap();
    admin.run(&["plans", "list"]).await.assert_exit(6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_notifications_are_added_listed_and_deleted_and_fail_with_their_codes() {
    // The test stack allows webhook targets on loopback and has a notification key.
    let stack = TestStack::start().await.unwrap();
    let admin = Operator::admin(&stack);
    let target = format!("http://127.0.0.1:{}/hook", free_port());
    let chosen = "chosen-signing-secret-0123456789abcdef";

    // channels add: a generated secret is printed once, the target never
    let added = admin
        .run(&[
            "channels",
            "add",
            "--name",
            "ops hook",
            "--kind",
            "webhook",
            "--target",
            &target,
            "--event",
            "approval_requested",
            "--event",
            "execution_finished",
        ])
        .await;
    added.assert_ok().shows(&[
        "ops hook",
        "webhook",
        "approval_requested, execution_finished",
        "shown this once",
    ]);
    assert!(!added.out.contains(&target), "{}", added.out);
    let approvers = admin
        .json(&[
            "channels",
            "add",
            "--name",
            "approvers",
            "--kind",
            "webhook",
            "--target",
            &target,
            "--secret",
            chosen,
            "--event",
            "approval_requested",
            "--private",
        ])
        .await;
    assert_eq!(approvers["private"], true);
    assert!(approvers.get("secret").is_none(), "{approvers}");
    assert!(approvers.get("target").is_none(), "{approvers}");
    let approvers_id = id_of(&approvers);
    // an unknown event, a taken name: refused
    admin
        .run(&[
            "channels", "add", "--name", "tea", "--kind", "webhook", "--target", &target,
            "--event", "tea_time",
        ])
        .await
        .assert_exit(5);
    admin
        .run(&[
            "channels",
            "add",
            "--name",
            "ops hook",
            "--kind",
            "webhook",
            "--target",
            &target,
            "--event",
            "approval_requested",
        ])
        .await
        .assert_exit(5);
    assert!(
        Cli::try_parse_from([
            "cudly",
            "channels",
            "add",
            "--name",
            "x",
            "--kind",
            "pager",
            "--target",
            "t",
            "--event",
            "approval_requested",
        ])
        .is_err(),
        "an unknown kind is a usage error"
    );

    // channels list: never a target or a secret
    let channels = admin.json(&["channels", "list"]).await;
    find(&channels["channels"], "name", "ops hook");
    find(&channels["channels"], "name", "approvers");
    let listed = channels.to_string();
    assert!(
        !listed.contains(&target) && !listed.contains(chosen),
        "{listed}"
    );
    admin.run(&["channels", "list"]).await.assert_ok().shows(&[
        "ops hook",
        "approvers",
        "webhook",
        "any",
    ]);

    // a viewer key may do none of it
    let (status, created_key) = stack
        .admin_json(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "channel reader", "role": "viewer"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{created_key}");
    let viewer = Operator::with_key(&stack, created_key["key"].as_str().unwrap());
    viewer.run(&["channels", "list"]).await.assert_exit(3);
    viewer.run(&["notifications", "list"]).await.assert_exit(3);
    viewer
        .run(&["channels", "delete", &approvers_id])
        .await
        .assert_exit(3);

    // notifications list: nothing happened that the channels want
    let notifications = admin
        .json(&[
            "notifications",
            "list",
            "--channel",
            &approvers_id,
            "--limit",
            "5",
        ])
        .await;
    assert_eq!(notifications["notifications"], json!([]));
    admin
        .run(&["notifications", "list"])
        .await
        .assert_ok()
        .shows(&["EVENT", "STATE"]);
    admin
        .run(&["notifications", "list", "--execution", "yesterday"])
        .await
        .assert_exit(5);

    // channels delete: then it is gone
    let deleted = admin.json(&["channels", "delete", &approvers_id]).await;
    assert_eq!(deleted["deleted"], true);
    admin
        .run(&["channels", "delete", &approvers_id])
        .await
        .assert_exit(4);
    admin
        .run(&["channels", "list"])
        .await
        .assert_ok()
        .shows(&["ops hook"]);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn completions_and_usage_errors_need_no_server() {
    cudly(&["completions", "bash"])
        .await
        .assert_ok()
        .shows(&["_cudly", "complete", "executions"]);
    cudly(&["completions", "zsh"])
        .await
        .assert_ok()
        .shows(&["#compdef cudly"]);
    let missing =
        Cli::try_parse_from(["cudly", "executions", "watch"]).expect_err("an id is required");
    assert_eq!(missing.exit_code(), 2);
    assert!(
        Cli::try_parse_from(["cudly", "keys", "create", "--name", "x", "--role", "root"]).is_err()
    );
    cudly(&["--url", "not a url", "--api-key", "k", "accounts", "list"])
        .await
        .assert_exit(2);
    cudly(&["serve"]).await.assert_exit(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_with_the_documented_codes() {
    let stack = TestStack::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dev_dir = dir.path().join("dev");
    std::fs::create_dir_all(&dev_dir).unwrap();
    std::fs::write(
        dev_dir.join("secrets.env"),
        format!("CUDLY_BOOTSTRAP_ADMIN_KEY={}\n", stack.admin_key()),
    )
    .unwrap();
    let url = stack.url("");
    // A config file that does not exist: nothing of the user's own setup is read.
    let config = dir.path().join("absent.toml").to_str().unwrap().to_owned();
    let keyed = |key: &str| {
        [
            ("CUDLY_URL", url.clone()),
            ("CUDLY_API_KEY", key.to_owned()),
            ("CUDLY_CONFIG", config.clone()),
        ]
    };

    let listed = common::run_binary(&["accounts", "list"], &keyed(stack.admin_key())).await;
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let unknown =
        common::run_binary(&["accounts", "show", UNKNOWN], &keyed(stack.admin_key())).await;
    assert_eq!(unknown.status.code(), Some(4), "{unknown:?}");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("error: ") && line.ends_with("(http 404)")),
        "{stderr}"
    );
    let refused = common::run_binary(&["accounts", "list"], &keyed("cudly_not_a_key")).await;
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    // No key anywhere but the dev secrets file: a loopback URL gets the dev admin key.
    let dev_mode = common::run_binary(
        &["accounts", "list"],
        &[
            ("CUDLY_URL", url.clone()),
            ("CUDLY_CONFIG", config.clone()),
            ("CUDLY_DEV_DIR", dev_dir.to_str().unwrap().to_owned()),
        ],
    )
    .await;
    assert_eq!(dev_mode.status.code(), Some(0), "{dev_mode:?}");
    let usage = common::run_binary(&["accounts", "show"], &keyed(stack.admin_key())).await;
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn the_binary_prints_a_bash_completion_script() {
    let output = common::run_binary::<&str>(&["completions", "bash"], &[]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(
        script.contains("_cudly") && script.contains("complete -F"),
        "{script}"
    );
    for command in ["accounts", "plans", "executions", "demo", "completions"] {
        assert!(script.contains(command), "{command}");
    }
}
