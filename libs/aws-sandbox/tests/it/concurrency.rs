use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::InstanceType;
use aws_sdk_savingsplans::types::{SavingsPlanPaymentOption, SavingsPlanType};
use cudly_aws_sandbox::{CallOutcome, IDEMPOTENCY_TAG_KEY, Sandbox, Service};

use crate::common::*;

const CLIENTS: usize = 20;
const PURCHASES_PER_CLIENT: usize = 200;

/// What a client was told it bought.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Bought {
    service: Service,
    commitment_id: String,
    count: i64,
    /// The token, client token or reservation id the purchase carried, if any.
    key: Option<String>,
}

struct Offerings {
    ec2: String,
    savings_plans: String,
    rds: String,
    elasticache: String,
    memorydb: String,
    opensearch: String,
    redshift: String,
}

async fn offerings(config: &aws_config::SdkConfig) -> Offerings {
    Offerings {
        ec2: aws_sdk_ec2::Client::new(config)
            .describe_reserved_instances_offerings()
            .instance_type(InstanceType::M5Large)
            .send()
            .await
            .unwrap()
            .reserved_instances_offerings()[0]
            .reserved_instances_offering_id()
            .unwrap()
            .to_string(),
        savings_plans: aws_sdk_savingsplans::Client::new(config)
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
            .to_string(),
        rds: aws_sdk_rds::Client::new(config)
            .describe_reserved_db_instances_offerings()
            .db_instance_class("db.r5.large")
            .send()
            .await
            .unwrap()
            .reserved_db_instances_offerings()[0]
            .reserved_db_instances_offering_id()
            .unwrap()
            .to_string(),
        elasticache: aws_sdk_elasticache::Client::new(config)
            .describe_reserved_cache_nodes_offerings()
            .cache_node_type("cache.r6g.large")
            .send()
            .await
            .unwrap()
            .reserved_cache_nodes_offerings()[0]
            .reserved_cache_nodes_offering_id()
            .unwrap()
            .to_string(),
        memorydb: aws_sdk_memorydb::Client::new(config)
            .describe_reserved_nodes_offerings()
            .node_type("db.r6g.large")
            .send()
            .await
            .unwrap()
            .reserved_nodes_offerings()[0]
            .reserved_nodes_offering_id()
            .unwrap()
            .to_string(),
        opensearch: aws_sdk_opensearch::Client::new(config)
            .describe_reserved_instance_offerings()
            .send()
            .await
            .unwrap()
            .reserved_instance_offerings()[0]
            .reserved_instance_offering_id()
            .unwrap()
            .to_string(),
        redshift: aws_sdk_redshift::Client::new(config)
            .describe_reserved_node_offerings()
            .send()
            .await
            .unwrap()
            .reserved_node_offerings()[0]
            .reserved_node_offering_id()
            .unwrap()
            .to_string(),
    }
}

/// One client: its own SDK config (and so its own connection pool), buying 200
/// commitments round-robin across the seven purchase APIs.
async fn run_client(handle_endpoint_config: aws_config::SdkConfig, client: usize) -> Vec<Bought> {
    let config = handle_endpoint_config;
    let offerings = offerings(&config).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let savings_plans = aws_sdk_savingsplans::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    let elasticache = aws_sdk_elasticache::Client::new(&config);
    let memorydb = aws_sdk_memorydb::Client::new(&config);
    let opensearch = aws_sdk_opensearch::Client::new(&config);
    let redshift = aws_sdk_redshift::Client::new(&config);
    let mut bought = Vec::with_capacity(PURCHASES_PER_CLIENT);
    for index in 0..PURCHASES_PER_CLIENT {
        let idempotency_token = token(&format!("load:{client}:{index}"));
        let count = (index % 3) as i32 + 1;
        let record = match index % 7 {
            0 => {
                let id = ec2
                    .purchase_reserved_instances_offering()
                    .reserved_instances_offering_id(&offerings.ec2)
                    .instance_count(count)
                    .send()
                    .await
                    .unwrap()
                    .reserved_instances_id()
                    .unwrap()
                    .to_string();
                Bought {
                    service: Service::Ec2,
                    commitment_id: id,
                    count: count.into(),
                    key: None,
                }
            }
            1 => {
                let id = savings_plans
                    .create_savings_plan()
                    .savings_plan_offering_id(&offerings.savings_plans)
                    .commitment("0.10")
                    .client_token(&idempotency_token)
                    .tags(IDEMPOTENCY_TAG_KEY, &idempotency_token)
                    .send()
                    .await
                    .unwrap()
                    .savings_plan_id()
                    .unwrap()
                    .to_string();
                Bought {
                    service: Service::Savingsplans,
                    commitment_id: id,
                    count: 1,
                    key: Some(idempotency_token),
                }
            }
            2 => {
                let reservation = reservation_id("rds-id-", &idempotency_token);
                let reply = rds
                    .purchase_reserved_db_instances_offering()
                    .reserved_db_instances_offering_id(&offerings.rds)
                    .reserved_db_instance_id(&reservation)
                    .db_instance_count(count)
                    .send()
                    .await
                    .unwrap();
                let instance = reply.reserved_db_instance().unwrap();
                Bought {
                    service: Service::Rds,
                    commitment_id: instance.reserved_db_instance_id().unwrap().to_string(),
                    count: instance.db_instance_count().unwrap().into(),
                    key: Some(reservation),
                }
            }
            3 => {
                let reservation = reservation_id("elasticache-id-", &idempotency_token);
                let reply = elasticache
                    .purchase_reserved_cache_nodes_offering()
                    .reserved_cache_nodes_offering_id(&offerings.elasticache)
                    .reserved_cache_node_id(&reservation)
                    .cache_node_count(count)
                    .send()
                    .await
                    .unwrap();
                let node = reply.reserved_cache_node().unwrap();
                Bought {
                    service: Service::Elasticache,
                    commitment_id: node.reserved_cache_node_id().unwrap().to_string(),
                    count: node.cache_node_count().unwrap().into(),
                    key: Some(reservation),
                }
            }
            4 => {
                let reservation = reservation_id("memorydb-id-", &idempotency_token);
                let reply = memorydb
                    .purchase_reserved_nodes_offering()
                    .reserved_nodes_offering_id(&offerings.memorydb)
                    .reservation_id(&reservation)
                    .node_count(count)
                    .send()
                    .await
                    .unwrap();
                let node = reply.reserved_node().unwrap();
                Bought {
                    service: Service::Memorydb,
                    commitment_id: node.reservation_id().unwrap().to_string(),
                    count: node.node_count().into(),
                    key: Some(reservation),
                }
            }
            5 => {
                let reservation = reservation_id("opensearch-id-", &idempotency_token);
                let id = opensearch
                    .purchase_reserved_instance_offering()
                    .reserved_instance_offering_id(&offerings.opensearch)
                    .reservation_name(&reservation)
                    .instance_count(count)
                    .send()
                    .await
                    .unwrap()
                    .reserved_instance_id()
                    .unwrap()
                    .to_string();
                Bought {
                    service: Service::Opensearch,
                    commitment_id: id,
                    count: count.into(),
                    key: Some(reservation),
                }
            }
            _ => {
                let reply = redshift
                    .purchase_reserved_node_offering()
                    .reserved_node_offering_id(&offerings.redshift)
                    .node_count(count)
                    .send()
                    .await
                    .unwrap();
                let node = reply.reserved_node().unwrap();
                Bought {
                    service: Service::Redshift,
                    commitment_id: node.reserved_node_id().unwrap().to_string(),
                    count: node.node_count().unwrap().into(),
                    key: None,
                }
            }
        };
        bought.push(record);
    }
    bought
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_clients_buying_two_hundred_each_leave_a_ledger_that_matches_the_responses()
 {
    // Persisting, so the journal is under the same load and must keep every purchase.
    let directory = tempfile::tempdir().unwrap();
    let state_path = directory.path().join("state.json");
    let handle = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let region = if client % 2 == 0 {
            "us-east-1"
        } else {
            "eu-west-1"
        };
        let config =
            sdk_config_with(&handle, ROOT_KEY, SECRET, None, region, quick_retries()).await;
        clients.push(tokio::spawn(run_client(config, client)));
    }
    let mut responses: Vec<Bought> = Vec::new();
    for client in clients {
        responses.extend(client.await.unwrap());
    }
    assert_eq!(responses.len(), CLIENTS * PURCHASES_PER_CLIENT);

    let ledger = handle.ledger().await;
    let mut from_ledger: Vec<Bought> = ledger
        .commitments
        .iter()
        .map(|commitment| Bought {
            service: commitment.service,
            commitment_id: commitment.commitment_id.clone(),
            count: commitment.count,
            key: commitment
                .client_token
                .clone()
                .or_else(|| commitment.reservation_id.clone()),
        })
        .collect();
    from_ledger.sort();
    responses.sort();
    assert_eq!(
        from_ledger, responses,
        "the ledger's commitments are exactly the ones answered"
    );

    let purchase_calls: Vec<_> = ledger
        .calls
        .iter()
        .filter(|call| {
            call.operation.starts_with("Purchase") || call.operation == "CreateSavingsPlan"
        })
        .collect();
    assert_eq!(purchase_calls.len(), CLIENTS * PURCHASES_PER_CLIENT);
    assert!(
        purchase_calls
            .iter()
            .all(|call| call.outcome == CallOutcome::Ok)
    );
    let called_ids: BTreeSet<&str> = purchase_calls
        .iter()
        .filter_map(|call| call.commitment_id.as_deref())
        .collect();
    let answered_ids: BTreeSet<&str> = responses
        .iter()
        .map(|bought| bought.commitment_id.as_str())
        .collect();
    assert_eq!(called_ids, answered_ids);
    assert_eq!(called_ids.len(), CLIENTS * PURCHASES_PER_CLIENT);

    for bought in &responses {
        if let Some(key) = &bought.key {
            assert_eq!(
                ledger.commitments_for_token(key),
                1,
                "{key} bought more than once"
            );
        }
    }
    let per_service: BTreeMap<Service, usize> =
        ledger
            .commitments
            .iter()
            .fold(BTreeMap::new(), |mut counts, commitment| {
                *counts.entry(commitment.service).or_default() += 1;
                counts
            });
    assert_eq!(per_service.len(), 7);
    assert_eq!(
        per_service.values().sum::<usize>(),
        CLIENTS * PURCHASES_PER_CLIENT
    );

    handle.shutdown().await;
    let restarted = Sandbox::start(config().with_state_path(&state_path))
        .await
        .unwrap();
    assert_eq!(restarted.ledger().await, ledger);
    restarted.shutdown().await;
}
