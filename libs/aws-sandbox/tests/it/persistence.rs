use cudly_aws_sandbox::{AccountSpec, ConfigFile, Sandbox, SandboxConfig};

use crate::common::*;

async fn rds_offering(rds: &aws_sdk_rds::Client) -> String {
    rds.describe_reserved_db_instances_offerings()
        .db_instance_class("db.m5.large")
        .send()
        .await
        .unwrap()
        .reserved_db_instances_offerings()[0]
        .reserved_db_instances_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn commitments_sessions_and_accounts_survive_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_path = directory.path().join("sandbox-state.json");
    let handle = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    let rds = aws_sdk_rds::Client::new(&root_config(&handle).await);
    let offering = rds_offering(&rds).await;
    let reservation = reservation_id("rds-id-", &token("persisted"));
    rds.purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap();
    let assumed = aws_sdk_sts::Client::new(&root_config(&handle).await)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
        .role_session_name("persisted")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap().clone();
    handle
        .add_account(AccountSpec::new("777777777777").with_access_key("AKIAADDED00000000001", "s"))
        .await;
    let before = handle.ledger().await;
    handle.shutdown().await;

    let restarted = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    assert_eq!(restarted.ledger().await, before);
    let rds = aws_sdk_rds::Client::new(&root_config(&restarted).await);
    let found = rds
        .describe_reserved_db_instances()
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap();
    assert_eq!(found.reserved_db_instances().len(), 1);
    let again = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ReservedDBInstanceAlreadyExists");

    let session_config = sdk_config_with(
        &restarted,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        REGION,
        quick_retries(),
    )
    .await;
    let identity = aws_sdk_sts::Client::new(&session_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(identity.account(), Some(SOLO));
    let added = aws_sdk_sts::Client::new(&key_config(&restarted, "AKIAADDED00000000001").await)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(added.account(), Some("777777777777"));
    restarted.shutdown().await;
}

#[tokio::test]
async fn acknowledged_purchases_survive_a_crash_without_a_final_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    let state_path = directory.path().join("state.json");
    let crashed = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    let sdk_config = root_config(&crashed).await;
    let offering = rds_offering(&aws_sdk_rds::Client::new(&sdk_config)).await;
    let mut purchases = Vec::new();
    for index in 0..20 {
        let rds = aws_sdk_rds::Client::new(&sdk_config);
        let offering = offering.clone();
        purchases.push(tokio::spawn(async move {
            rds.purchase_reserved_db_instances_offering()
                .reserved_db_instances_offering_id(offering)
                .reserved_db_instance_id(format!("rds-id-concurrent-{index}"))
                .send()
                .await
                .unwrap();
        }));
    }
    for purchase in purchases {
        purchase.await.unwrap();
    }
    let acknowledged = crashed.ledger().await;
    // No shutdown, so no final snapshot: what the restart sees comes from the journal.
    drop(crashed);

    let restarted = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    let recovered = restarted.ledger().await;
    assert_eq!(recovered.commitments.len(), 20);
    assert_eq!(recovered, acknowledged);
    // The restart compacted the journal into a complete, parseable snapshot.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(saved["commitments"].as_array().unwrap().len(), 20);
    let mut entries: Vec<String> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, vec!["state.json", "state.json.journal"]);
    restarted.shutdown().await;
}

#[tokio::test]
async fn reset_reads_the_config_file_again() {
    let directory = tempfile::tempdir().unwrap();
    let config_path = directory.path().join("accounts.json");
    let write_config = |accounts: Vec<AccountSpec>| {
        std::fs::write(
            &config_path,
            serde_json::to_vec(&ConfigFile { accounts }).unwrap(),
        )
        .unwrap();
    };
    write_config(vec![
        AccountSpec::new("888888888888").with_access_key("AKIAFILE000000000001", "s"),
    ]);
    let handle = Sandbox::start(SandboxConfig {
        config_path: Some(config_path.clone()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let first = aws_sdk_sts::Client::new(&key_config(&handle, "AKIAFILE000000000001").await);
    assert_eq!(
        first.get_caller_identity().send().await.unwrap().account(),
        Some("888888888888")
    );
    write_config(vec![
        AccountSpec::new("999999999999").with_access_key("AKIAFILE000000000002", "s"),
    ]);
    handle.reset().await;
    assert_eq!(
        code(&first.get_caller_identity().send().await.unwrap_err()),
        "InvalidClientTokenId"
    );
    let second = aws_sdk_sts::Client::new(&key_config(&handle, "AKIAFILE000000000002").await);
    assert_eq!(
        second.get_caller_identity().send().await.unwrap().account(),
        Some("999999999999")
    );
}

#[tokio::test]
async fn a_described_zonal_offering_is_purchasable_by_id_after_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_path = directory.path().join("state.json");
    let handle = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    let described = aws_sdk_ec2::Client::new(&root_config(&handle).await)
        .describe_reserved_instances_offerings()
        .instance_type(aws_sdk_ec2::types::InstanceType::C5Large)
        .availability_zone("us-east-1c")
        .send()
        .await
        .unwrap();
    let offering_id = described.reserved_instances_offerings()[0]
        .reserved_instances_offering_id()
        .unwrap()
        .to_string();
    handle.shutdown().await;

    let restarted = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&restarted).await);
    let bought = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&offering_id)
        .instance_count(1)
        .send()
        .await
        .unwrap();
    let reserved = ec2
        .describe_reserved_instances()
        .reserved_instances_ids(bought.reserved_instances_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        reserved.reserved_instances()[0].availability_zone(),
        Some("us-east-1c")
    );
    restarted.shutdown().await;
}
