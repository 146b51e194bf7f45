use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceType;
use aws_sdk_savingsplans::types::{SavingsPlanPaymentOption, SavingsPlanType};
use cudly_aws_sandbox::{CallOutcome, FaultError, FaultSpec, Service};

use crate::common::*;

#[tokio::test]
async fn latency_delays_a_call_and_a_delayed_purchase_commits_after_its_delay() {
    let handle = start().await;
    let config = root_config(&handle).await;
    handle
        .add_fault(FaultSpec::on(Service::Sts, "GetCallerIdentity").latency(300, 0))
        .await;
    let started = Instant::now();
    aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    let rds = aws_sdk_rds::Client::new(&config);
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
    handle
        .add_fault(
            FaultSpec::on(Service::Rds, "PurchaseReservedDBInstancesOffering").latency(600, 0),
        )
        .await;
    let purchase = tokio::spawn(async move {
        rds.purchase_reserved_db_instances_offering()
            .reserved_db_instances_offering_id(offering)
            .reserved_db_instance_id("rds-id-delayed")
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(handle.ledger().await.commitments.is_empty());
    purchase.await.unwrap().unwrap();
    assert_eq!(handle.ledger().await.commitments.len(), 1);
}

#[tokio::test]
async fn jitter_adds_a_bounded_random_delay() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    handle
        .add_fault(FaultSpec::on_service(Service::Sts).latency(50, 100))
        .await;
    for _ in 0..5 {
        let started = Instant::now();
        sts.get_caller_identity().send().await.unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}

#[tokio::test]
async fn throttling_uses_each_protocols_code_and_the_sdk_retries_it() {
    let handle = start().await;
    let no_retry = root_config_no_retry(&handle).await;
    let retrying = root_config(&handle).await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Ec2)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Rds)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Memorydb)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Savingsplans)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Organizations)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Sts)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;

    let ec2 = aws_sdk_ec2::Client::new(&no_retry)
        .describe_reserved_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&ec2), "RequestLimitExceeded");
    let rds = aws_sdk_rds::Client::new(&no_retry)
        .describe_reserved_db_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&rds), "Throttling");
    let memorydb = aws_sdk_memorydb::Client::new(&no_retry)
        .describe_reserved_nodes()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&memorydb), "ThrottlingException");
    let savings_plans = aws_sdk_savingsplans::Client::new(&no_retry)
        .describe_savings_plans()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&savings_plans), "ThrottlingException");
    let organizations = aws_sdk_organizations::Client::new(&no_retry)
        .list_accounts()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&organizations), "TooManyRequestsException");
    let sts = aws_sdk_sts::Client::new(&no_retry)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&sts), "Throttling");

    // One throttle left per service: a retrying client rides over it.
    aws_sdk_ec2::Client::new(&retrying)
        .describe_reserved_instances()
        .send()
        .await
        .unwrap();
    aws_sdk_rds::Client::new(&retrying)
        .describe_reserved_db_instances()
        .send()
        .await
        .unwrap();
    aws_sdk_memorydb::Client::new(&retrying)
        .describe_reserved_nodes()
        .send()
        .await
        .unwrap();
    aws_sdk_savingsplans::Client::new(&retrying)
        .describe_savings_plans()
        .send()
        .await
        .unwrap();
    aws_sdk_organizations::Client::new(&retrying)
        .list_accounts()
        .send()
        .await
        .unwrap();
    aws_sdk_sts::Client::new(&retrying)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let ledger = handle.ledger().await;
    let throttled = ledger
        .calls
        .iter()
        .filter(|call| call.outcome == CallOutcome::Error)
        .count();
    assert_eq!(throttled, 12);
    assert_eq!(ledger.calls.len(), 18);
}

#[tokio::test]
async fn internal_errors_are_500s_with_each_services_code() {
    let handle = start().await;
    let config = root_config_no_retry(&handle).await;
    handle
        .add_fault(FaultSpec::on_service(Service::Elasticache).error(FaultError::Internal))
        .await;
    handle
        .add_fault(FaultSpec::on_service(Service::Opensearch).error(FaultError::Internal))
        .await;
    handle
        .add_fault(FaultSpec::on_service(Service::Ec2).error(FaultError::Internal))
        .await;
    handle
        .add_fault(FaultSpec::on_service(Service::Savingsplans).error(FaultError::Internal))
        .await;

    let elasticache = aws_sdk_elasticache::Client::new(&config)
        .describe_reserved_cache_nodes()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&elasticache), "InternalFailure");
    assert_eq!(elasticache.raw_response().unwrap().status().as_u16(), 500);
    let opensearch = aws_sdk_opensearch::Client::new(&config)
        .describe_reserved_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&opensearch), "InternalException");
    assert!(
        opensearch
            .as_service_error()
            .unwrap()
            .is_internal_exception()
    );
    let ec2 = aws_sdk_ec2::Client::new(&config)
        .describe_reserved_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&ec2), "InternalError");
    assert_eq!(ec2.raw_response().unwrap().status().as_u16(), 500);
    let savings_plans = aws_sdk_savingsplans::Client::new(&config)
        .describe_savings_plans()
        .send()
        .await
        .unwrap_err();
    assert!(
        savings_plans
            .as_service_error()
            .unwrap()
            .is_internal_server_exception()
    );
}

#[tokio::test]
async fn access_denied_is_not_retried_and_uses_each_services_code() {
    let handle = start().await;
    let retrying = root_config(&handle).await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Redshift)
                .error(FaultError::AccessDenied)
                .times(1),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Ec2)
                .error(FaultError::AccessDenied)
                .times(1),
        )
        .await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Memorydb)
                .error(FaultError::AccessDenied)
                .times(1),
        )
        .await;
    let redshift = aws_sdk_redshift::Client::new(&retrying)
        .describe_reserved_nodes()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&redshift), "AccessDenied");
    let ec2 = aws_sdk_ec2::Client::new(&retrying)
        .describe_reserved_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&ec2), "UnauthorizedOperation");
    let memorydb = aws_sdk_memorydb::Client::new(&retrying)
        .describe_reserved_nodes()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&memorydb), "AccessDeniedException");
    assert_eq!(handle.ledger().await.calls.len(), 3);
}

#[tokio::test]
async fn a_counted_fault_fails_the_next_n_calls_only() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config_no_retry(&handle).await);
    handle
        .add_fault(
            FaultSpec::on(Service::Sts, "GetCallerIdentity")
                .error(FaultError::Internal)
                .times(3),
        )
        .await;
    for _ in 0..3 {
        let error = sts.get_caller_identity().send().await.unwrap_err();
        assert_eq!(code(&error), "InternalFailure");
    }
    sts.get_caller_identity().send().await.unwrap();
    assert!(handle.snapshot().await.faults.is_empty());
}

#[tokio::test]
async fn faults_match_only_their_account_and_operation() {
    let handle = start().await;
    handle
        .add_fault(
            FaultSpec::on(Service::Sts, "GetCallerIdentity")
                .for_account(SOLO)
                .error(FaultError::AccessDenied),
        )
        .await;
    let root_sts = aws_sdk_sts::Client::new(&root_config_no_retry(&handle).await);
    root_sts.get_caller_identity().send().await.unwrap();
    root_sts.get_session_token().send().await.unwrap();
    let solo_sts = aws_sdk_sts::Client::new(&key_config(&handle, SOLO_KEY).await);
    let error = solo_sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(&error), "AccessDenied");
    solo_sts.get_session_token().send().await.unwrap();
    handle.clear_faults().await;
    solo_sts.get_caller_identity().send().await.unwrap();
}

#[tokio::test]
async fn drop_after_commit_loses_the_response_but_keeps_exactly_one_commitment() {
    let handle = start().await;
    let config = root_config_no_retry(&handle).await;

    let rds = aws_sdk_rds::Client::new(&config);
    let rds_offering = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.r5.large")
        .send()
        .await
        .unwrap()
        .reserved_db_instances_offerings()[0]
        .reserved_db_instances_offering_id()
        .unwrap()
        .to_string();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let ec2_offering = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::M5Large)
        .send()
        .await
        .unwrap()
        .reserved_instances_offerings()[0]
        .reserved_instances_offering_id()
        .unwrap()
        .to_string();
    let savings_plans = aws_sdk_savingsplans::Client::new(&config);
    let sp_offering = savings_plans
        .describe_savings_plans_offerings()
        .plan_types(SavingsPlanType::Compute)
        .payment_options(SavingsPlanPaymentOption::NoUpfront)
        .durations(31_536_000)
        .send()
        .await
        .unwrap()
        .search_results()[0]
        .offering_id()
        .unwrap()
        .to_string();

    for (service, operation) in [
        (Service::Rds, "PurchaseReservedDBInstancesOffering"),
        (Service::Ec2, "PurchaseReservedInstancesOffering"),
        (Service::Savingsplans, "CreateSavingsPlan"),
    ] {
        handle
            .add_fault(
                FaultSpec::on(service, operation)
                    .drop_after_commit()
                    .times(1),
            )
            .await;
    }

    let rds_token = token("drop:rds");
    let rds_reservation = reservation_id("rds-id-", &rds_token);
    let rds_error = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&rds_offering)
        .reserved_db_instance_id(&rds_reservation)
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&rds_error), "{rds_error:?}");
    let ec2_error = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&ec2_offering)
        .instance_count(1)
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&ec2_error), "{ec2_error:?}");
    let sp_token = token("drop:sp");
    let sp_error = savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(&sp_offering)
        .commitment("1")
        .client_token(&sp_token)
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&sp_error), "{sp_error:?}");

    // The purchases happened: the guards find them, and a retry with the same id or
    // token buys nothing more.
    let found = rds
        .describe_reserved_db_instances()
        .reserved_db_instance_id(&rds_reservation)
        .send()
        .await
        .unwrap();
    assert_eq!(found.reserved_db_instances().len(), 1);
    let retried = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&rds_offering)
        .reserved_db_instance_id(&rds_reservation)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&retried), "ReservedDBInstanceAlreadyExists");
    savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(&sp_offering)
        .commitment("1")
        .client_token(&sp_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ec2.describe_reserved_instances()
            .send()
            .await
            .unwrap()
            .reserved_instances()
            .len(),
        1
    );

    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments.len(), 3);
    assert_eq!(ledger.commitments_for_token(&rds_reservation), 1);
    assert_eq!(ledger.commitments_for_token(&sp_token), 1);
    let dropped: Vec<_> = ledger
        .calls
        .iter()
        .filter(|call| call.outcome == CallOutcome::Dropped)
        .collect();
    assert_eq!(dropped.len(), 3);
    assert!(dropped.iter().all(|call| call.commitment_id.is_some()));
}

#[tokio::test]
async fn drop_after_commit_works_for_every_other_purchase() {
    let handle = start().await;
    let config = root_config_no_retry(&handle).await;
    for (service, operation) in [
        (Service::Elasticache, "PurchaseReservedCacheNodesOffering"),
        (Service::Memorydb, "PurchaseReservedNodesOffering"),
        (Service::Opensearch, "PurchaseReservedInstanceOffering"),
        (Service::Redshift, "PurchaseReservedNodeOffering"),
    ] {
        handle
            .add_fault(
                FaultSpec::on(service, operation)
                    .drop_after_commit()
                    .times(1),
            )
            .await;
    }

    let elasticache = aws_sdk_elasticache::Client::new(&config);
    let offering = elasticache
        .describe_reserved_cache_nodes_offerings()
        .cache_node_type("cache.t3.micro")
        .send()
        .await
        .unwrap()
        .reserved_cache_nodes_offerings()[0]
        .reserved_cache_nodes_offering_id()
        .unwrap()
        .to_string();
    let error = elasticache
        .purchase_reserved_cache_nodes_offering()
        .reserved_cache_nodes_offering_id(offering)
        .reserved_cache_node_id("elasticache-id-dropped")
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&error), "{error:?}");

    let memorydb = aws_sdk_memorydb::Client::new(&config);
    let offering = memorydb
        .describe_reserved_nodes_offerings()
        .node_type("db.r6g.large")
        .send()
        .await
        .unwrap()
        .reserved_nodes_offerings()[0]
        .reserved_nodes_offering_id()
        .unwrap()
        .to_string();
    let error = memorydb
        .purchase_reserved_nodes_offering()
        .reserved_nodes_offering_id(offering)
        .reservation_id("memorydb-id-dropped")
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&error), "{error:?}");

    let opensearch = aws_sdk_opensearch::Client::new(&config);
    let offering = opensearch
        .describe_reserved_instance_offerings()
        .send()
        .await
        .unwrap()
        .reserved_instance_offerings()[0]
        .reserved_instance_offering_id()
        .unwrap()
        .to_string();
    let error = opensearch
        .purchase_reserved_instance_offering()
        .reserved_instance_offering_id(offering)
        .reservation_name("opensearch-id-dropped")
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&error), "{error:?}");

    let redshift = aws_sdk_redshift::Client::new(&config);
    let offering = redshift
        .describe_reserved_node_offerings()
        .send()
        .await
        .unwrap()
        .reserved_node_offerings()[0]
        .reserved_node_offering_id()
        .unwrap()
        .to_string();
    let error = redshift
        .purchase_reserved_node_offering()
        .reserved_node_offering_id(offering)
        .node_count(1)
        .send()
        .await
        .unwrap_err();
    assert!(is_dropped(&error), "{error:?}");

    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments.len(), 4);
    for reservation in [
        "elasticache-id-dropped",
        "memorydb-id-dropped",
        "opensearch-id-dropped",
    ] {
        assert_eq!(ledger.commitments_for_token(reservation), 1);
    }
    assert_eq!(
        ledger
            .calls
            .iter()
            .filter(|call| call.outcome == CallOutcome::Dropped)
            .count(),
        4
    );
}
