use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

// aws-config names these through deprecated aliases; the types they alias live in
// aws-runtime, which this crate does not otherwise need.
#[allow(deprecated)]
use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use cudly_aws_sandbox::{ConfigFile, Sandbox};

use crate::common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_cudly-aws-sandbox");

#[test]
fn help_documents_every_option() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--listen",
        "--config",
        "--state",
        "AWS_ENDPOINT_URL",
        "/_sandbox/",
    ] {
        assert!(
            help.contains(expected),
            "--help does not mention {expected}:\n{help}"
        );
    }
}

/// Starts the binary on a free port and returns it with its endpoint.
fn spawn(config: &std::path::Path, state: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--state")
        .arg(state)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{line}");
    (child, endpoint)
}

/// Sends SIGTERM (a graceful stop, which must exit 0) or SIGKILL (a crash).
fn stop(mut child: Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    if signal == "-TERM" {
        assert!(exit.success(), "{exit:?}");
    }
}

#[tokio::test]
async fn the_binary_serves_the_sdk_and_keeps_state_across_a_kill_and_restart() {
    let directory = tempfile::tempdir().unwrap();
    let config_path = directory.path().join("accounts.json");
    let state_path = directory.path().join("state.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec(&ConfigFile {
            accounts: accounts(),
        })
        .unwrap(),
    )
    .unwrap();

    let (child, endpoint) = spawn(&config_path, &state_path);
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ROOT_KEY, SECRET, None, None, "test"))
        .load()
        .await;
    let rds = aws_sdk_rds::Client::new(&sdk_config);
    let offering = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.t3.micro")
        .send()
        .await
        .unwrap()
        .reserved_db_instances_offerings()[0]
        .reserved_db_instances_offering_id()
        .unwrap()
        .to_string();
    rds.purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id("rds-id-binary")
        .send()
        .await
        .unwrap();
    // Killed outright: the purchase must come back from the journal.
    stop(child, "-KILL");

    let (child, endpoint) = spawn(&config_path, &state_path);
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ROOT_KEY, SECRET, None, None, "test"))
        .load()
        .await;
    let found = aws_sdk_rds::Client::new(&sdk_config)
        .describe_reserved_db_instances()
        .reserved_db_instance_id("rds-id-binary")
        .send()
        .await
        .unwrap();
    assert_eq!(found.reserved_db_instances().len(), 1);
    let health = reqwest::get(format!("{endpoint}/_sandbox/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    stop(child, "-TERM");
}

#[tokio::test]
#[allow(deprecated)]
async fn a_per_service_endpoint_override_reaches_the_sandbox() {
    // The `services` section of a profile is the file form of
    // AWS_ENDPOINT_URL_<SERVICE>; both feed the same endpoint resolution.
    let handle = Sandbox::start(config()).await.unwrap();
    let directory = tempfile::tempdir().unwrap();
    let profile_path = directory.path().join("config");
    std::fs::write(
        &profile_path,
        format!(
            "[profile sandbox]\nservices = sandbox\n\n[services sandbox]\nrds =\n  endpoint_url = {endpoint}\nmemorydb =\n  endpoint_url = {endpoint}\n",
            endpoint = handle.endpoint()
        ),
    )
    .unwrap();
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .profile_files(
            ProfileFiles::builder()
                .with_file(ProfileFileKind::Config, &profile_path)
                .build(),
        )
        .profile_name("sandbox")
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ROOT_KEY, SECRET, None, None, "test"))
        .load()
        .await;
    aws_sdk_rds::Client::new(&sdk_config)
        .describe_reserved_db_instances()
        .send()
        .await
        .unwrap();
    aws_sdk_memorydb::Client::new(&sdk_config)
        .describe_reserved_nodes()
        .send()
        .await
        .unwrap();
    let ledger = handle.ledger().await;
    assert_eq!(ledger.calls.len(), 2);
    assert!(ledger.calls.iter().all(|call| call.account_id == ROOT));
}
