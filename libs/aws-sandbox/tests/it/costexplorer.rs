use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::operation::get_reservation_purchase_recommendation::builders::GetReservationPurchaseRecommendationFluentBuilder;
use aws_sdk_costexplorer::operation::get_savings_plans_purchase_recommendation::GetSavingsPlansPurchaseRecommendationOutput;
use aws_sdk_costexplorer::types::PaymentOption::{AllUpfront, NoUpfront, PartialUpfront};
use aws_sdk_costexplorer::types::TermInYears::{OneYear, ThreeYears};
use aws_sdk_costexplorer::types::{
    AccountScope, InstanceDetails, LookbackPeriodInDays, PaymentOption,
    ReservationPurchaseRecommendationDetail, SupportedSavingsPlansType, TermInYears,
};
use cudly_aws_sandbox::{CallOutcome, FaultError, FaultSpec, Ledger, SandboxHandle, Service};
use serde_json::{Value, json};

use crate::common::*;

const RDS: &str = "Amazon Relational Database Service";

/// Posts `body` to `POST /_sandbox/recommendations` and returns the status.
async fn seed(handle: &SandboxHandle, body: Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/_sandbox/recommendations", handle.endpoint()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An RDS seed of `account`, 1 year, no upfront.
fn rds_seed(account: &str, resource_type: &str) -> Value {
    json!({"account_id": account, "service": "rds", "region": REGION,
           "resource_type": resource_type, "engine": "postgresql", "term": 1,
           "payment": "no-upfront", "recommended_count": 2.5, "upfront_cost": 120,
           "monthly_savings": 12.5})
}

async fn client(handle: &SandboxHandle, access_key_id: &str) -> Client {
    Client::new(&key_config(handle, access_key_id).await)
}

fn reservations(
    client: &Client,
    service: &str,
    term: TermInYears,
    payment: PaymentOption,
) -> GetReservationPurchaseRecommendationFluentBuilder {
    client
        .get_reservation_purchase_recommendation()
        .service(service)
        .term_in_years(term)
        .payment_option(payment)
}

/// Every 1-year no-upfront RDS detail the client sees at `scope`, page after page, and
/// the number of pages.
async fn rds_details(
    client: &Client,
    scope: AccountScope,
) -> (Vec<ReservationPurchaseRecommendationDetail>, usize) {
    let (mut details, mut pages, mut token) = (Vec::new(), 0, None);
    loop {
        let page = reservations(client, RDS, OneYear, NoUpfront)
            .account_scope(scope.clone())
            .set_next_page_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        for recommendation in page.recommendations() {
            details.extend_from_slice(recommendation.recommendation_details());
        }
        token = page.next_page_token().map(str::to_string);
        if token.is_none() {
            return (details, pages);
        }
    }
}

/// The (account, instance type) of each detail.
fn owners(details: &[ReservationPurchaseRecommendationDetail]) -> Vec<(String, String)> {
    details
        .iter()
        .map(|detail| {
            let account = detail.account_id().unwrap_or_default().to_string();
            let described = detail.instance_details().and_then(described_type);
            (account, described.unwrap_or_default())
        })
        .collect()
}

/// The instance or node type, whichever service's member holds it (OpenSearch's as
/// class and size).
fn described_type(details: &InstanceDetails) -> Option<String> {
    let opensearch = details.es_instance_details().map(|es| {
        let (class, size) = (es.instance_class(), es.instance_size());
        format!("{}.{}", class.unwrap_or_default(), size.unwrap_or_default())
    });
    details
        .ec2_instance_details()
        .and_then(|ec2| ec2.instance_type())
        .or_else(|| details.rds_instance_details()?.instance_type())
        .or_else(|| details.elasti_cache_instance_details()?.node_type())
        .or_else(|| details.memory_db_instance_details()?.node_type())
        .or_else(|| details.redshift_instance_details()?.node_type())
        .map(str::to_string)
        .or(opensearch)
}

async fn savings_plans(
    client: &Client,
    plan_type: SupportedSavingsPlansType,
    term: TermInYears,
    payment: PaymentOption,
) -> GetSavingsPlansPurchaseRecommendationOutput {
    client
        .get_savings_plans_purchase_recommendation()
        .savings_plans_type(plan_type)
        .term_in_years(term)
        .payment_option(payment)
        .lookback_period_in_days(LookbackPeriodInDays::ThirtyDays)
        .account_scope(AccountScope::Linked)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_root_sees_its_organization_across_pages_and_a_member_its_own() {
    let handle = start().await;
    let seeds: Vec<Value> = [(ROOT, 3), (MEMBER_A, 3), (MEMBER_B, 2), (SOLO, 1)]
        .into_iter()
        .flat_map(|(account, count)| {
            (1..=count).map(move |size| rds_seed(account, &format!("db.r6g.{size}xlarge")))
        })
        .collect();
    assert_eq!(seed(&handle, json!(seeds)).await, 201);
    let member_of = |value: &Value, name: &str| value[name].as_str().unwrap().to_string();
    let organization: Vec<(String, String)> = seeds[..8]
        .iter()
        .map(|value| {
            (
                member_of(value, "account_id"),
                member_of(value, "resource_type"),
            )
        })
        .collect();

    let root = client(&handle, ROOT_KEY).await;
    let (linked, pages) = rds_details(&root, AccountScope::Linked).await;
    assert_eq!((owners(&linked), pages), (organization.clone(), 2));
    let (payer, _) = rds_details(&root, AccountScope::Payer).await;
    assert_eq!(owners(&payer), organization[..3].to_vec());
    let member = client(&handle, MEMBER_KEY).await;
    let (own, _) = rds_details(&member, AccountScope::Linked).await;
    assert_eq!(owners(&own), organization[3..6].to_vec());

    let first = &linked[0];
    let rds = first
        .instance_details()
        .unwrap()
        .rds_instance_details()
        .unwrap();
    assert_eq!(
        (rds.database_engine(), rds.deployment_option(), rds.region()),
        (Some("PostgreSQL"), Some("Single-AZ"), Some(REGION))
    );
    assert_eq!(
        (
            first.recommended_number_of_instances_to_purchase(),
            first.upfront_cost(),
            first.estimated_monthly_savings_amount(),
            first.currency_code(),
        ),
        (Some("2.5"), Some("120"), Some("12.5"), Some("USD"))
    );

    let ledger: Ledger = reqwest::Client::new()
        .get(format!(
            "{}/_sandbox/ledger?service=costexplorer&account_id={ROOT}",
            handle.endpoint()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ledger.calls.len(), 3);
    assert!(
        ledger
            .calls
            .iter()
            .all(|call| call.service == Service::Costexplorer
                && call.operation == "GetReservationPurchaseRecommendation"
                && call.outcome == CallOutcome::Ok)
    );
}

#[tokio::test]
async fn requests_filter_by_service_term_and_payment() {
    let handle = start().await;
    let seeds: Vec<Value> = [
        ("ec2", "m5.large", 1, "no-upfront"),
        ("elasticache", "cache.r6g.large", 1, "no-upfront"),
        ("memorydb", "db.r6g.large", 1, "no-upfront"),
        ("opensearch", "r6g.large.search", 1, "no-upfront"),
        ("redshift", "ra3.xlplus", 1, "no-upfront"),
        ("rds", "db.m5.large", 3, "all-upfront"),
        ("rds", "db.t3.micro", 1, "partial-upfront"),
    ]
    .into_iter()
    .map(|(service, resource_type, term, payment)| {
        json!({"account_id": ROOT, "service": service, "region": REGION, "term": term,
               "resource_type": resource_type, "payment": payment, "recommended_count": 1})
    })
    .collect();
    assert_eq!(seed(&handle, json!(seeds)).await, 201);
    let root = client(&handle, ROOT_KEY).await;
    let cases: [(&str, TermInYears, PaymentOption, &[&str]); 8] = [
        (
            "Amazon Elastic Compute Cloud - Compute",
            OneYear,
            NoUpfront,
            &["m5.large"],
        ),
        (
            "Amazon ElastiCache",
            OneYear,
            NoUpfront,
            &["cache.r6g.large"],
        ),
        (
            "Amazon MemoryDB Service",
            OneYear,
            NoUpfront,
            &["db.r6g.large"],
        ),
        (
            "Amazon OpenSearch Service",
            OneYear,
            NoUpfront,
            &["r6g.large.search"],
        ),
        ("Amazon Redshift", OneYear, NoUpfront, &["ra3.xlplus"]),
        (RDS, ThreeYears, AllUpfront, &["db.m5.large"]),
        (RDS, OneYear, PartialUpfront, &["db.t3.micro"]),
        (RDS, OneYear, NoUpfront, &[]),
    ];
    for (service, term, payment, expected) in cases {
        let answer = reservations(&root, service, term, payment)
            .send()
            .await
            .unwrap();
        let types: Vec<String> = answer
            .recommendations()
            .iter()
            .flat_map(|recommendation| recommendation.recommendation_details())
            .filter_map(|detail| described_type(detail.instance_details()?))
            .collect();
        assert_eq!(types, expected, "{service}");
    }

    let unknown = reservations(&root, "Amazon Lambda", OneYear, NoUpfront)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), "ValidationException");
    let missing = root
        .get_reservation_purchase_recommendation()
        .service(RDS)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ValidationException");
    let bad_token = reservations(&root, RDS, OneYear, NoUpfront)
        .next_page_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_token), "InvalidNextTokenException");
}

#[tokio::test]
async fn savings_plans_recommendations_answer_by_plan_type_and_scope() {
    let handle = start().await;
    let plan = |account: &str, plan_type: &str, term: u8, hourly: &str| {
        json!({"account_id": account, "service": "savingsplans", "plan_type": plan_type,
               "term": term, "payment": "no-upfront", "hourly_commitment": hourly,
               "region": REGION, "instance_family": "m5", "monthly_savings": 10})
    };
    let seeds = json!([
        plan(ROOT, "Compute", 1, "1.25"),
        plan(MEMBER_A, "EC2Instance", 3, "0.5"),
        plan(MEMBER_B, "Compute", 1, "0.75"),
    ]);
    assert_eq!(seed(&handle, seeds).await, 201);

    let root = client(&handle, ROOT_KEY).await;
    let compute = savings_plans(
        &root,
        SupportedSavingsPlansType::ComputeSp,
        OneYear,
        NoUpfront,
    )
    .await;
    let recommendation = compute.savings_plans_purchase_recommendation().unwrap();
    let details = recommendation.savings_plans_purchase_recommendation_details();
    let answered: Vec<_> = details
        .iter()
        .map(|detail| {
            (
                detail.account_id().unwrap(),
                detail.hourly_commitment_to_purchase().unwrap(),
            )
        })
        .collect();
    assert_eq!(answered, vec![(ROOT, "1.25"), (MEMBER_B, "0.75")]);
    assert!(
        details[0]
            .savings_plans_details()
            .unwrap()
            .region()
            .is_none()
    );
    let summary = recommendation
        .savings_plans_purchase_recommendation_summary()
        .unwrap();
    assert_eq!(
        (
            summary.hourly_commitment_to_purchase(),
            summary.total_recommendation_count()
        ),
        (Some("2"), Some("2"))
    );

    let instance = savings_plans(
        &root,
        SupportedSavingsPlansType::Ec2InstanceSp,
        ThreeYears,
        NoUpfront,
    )
    .await;
    let details = instance
        .savings_plans_purchase_recommendation()
        .unwrap()
        .savings_plans_purchase_recommendation_details();
    let bound = details[0].savings_plans_details().unwrap();
    assert_eq!(
        (
            details.len(),
            details[0].account_id(),
            bound.region(),
            bound.instance_family()
        ),
        (1, Some(MEMBER_A), Some(REGION), Some("m5"))
    );

    let member = client(&handle, MEMBER_KEY).await;
    let own = savings_plans(
        &member,
        SupportedSavingsPlansType::ComputeSp,
        OneYear,
        NoUpfront,
    )
    .await;
    assert!(
        own.savings_plans_purchase_recommendation()
            .unwrap()
            .savings_plans_purchase_recommendation_details()
            .is_empty()
    );
}

#[tokio::test]
async fn a_throttle_fault_answers_limit_exceeded_which_the_sdk_retries() {
    let handle = start().await;
    handle
        .add_fault(
            FaultSpec::on_service(Service::Costexplorer)
                .error(FaultError::Throttle)
                .times(2),
        )
        .await;
    let no_retry = Client::new(&root_config_no_retry(&handle).await);
    let throttled = reservations(&no_retry, RDS, OneYear, NoUpfront)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&throttled), "LimitExceededException");
    let retrying = Client::new(&root_config(&handle).await);
    reservations(&retrying, RDS, OneYear, NoUpfront)
        .send()
        .await
        .unwrap();
    let outcomes: Vec<_> = handle
        .ledger_filtered(Some(ROOT), Some(Service::Costexplorer))
        .await
        .calls
        .into_iter()
        .map(|call| (call.outcome, call.error_code))
        .collect();
    let throttle = (
        CallOutcome::Error,
        Some("LimitExceededException".to_string()),
    );
    assert_eq!(
        outcomes,
        vec![throttle.clone(), throttle, (CallOutcome::Ok, None)]
    );
}

#[tokio::test]
async fn a_bad_seed_is_refused_with_its_body_and_a_reset_clears_seeds() {
    let handle = start().await;
    let plan = json!({"account_id": ROOT, "service": "savingsplans", "term": 1,
                      "payment": "no-upfront", "plan_type": "Compute", "hourly_commitment": "1"});
    let rds = rds_seed(ROOT, "db.m5.large");
    // Each seed with one member changed, or removed (null).
    let changes = [
        (rds.clone(), "service", json!("lambda")),
        (rds.clone(), "term", json!(2)),
        (rds.clone(), "payment", json!("NO_UPFRONT")),
        (rds, "recommended_count", json!(-1)),
        (plan.clone(), "plan_type", Value::Null),
        (plan, "hourly_commitment", Value::Null),
    ];
    for (mut bad, name, value) in changes {
        match value {
            Value::Null => bad.as_object_mut().unwrap().remove(name),
            value => bad.as_object_mut().unwrap().insert(name.to_string(), value),
        };
        let body = json!([rds_seed(ROOT, "db.t3.micro"), bad]);
        assert_eq!(seed(&handle, body).await, 400, "{name}");
    }
    let root = client(&handle, ROOT_KEY).await;
    assert!(rds_details(&root, AccountScope::Payer).await.0.is_empty());

    assert_eq!(seed(&handle, rds_seed(ROOT, "db.t3.micro")).await, 201);
    assert_eq!(rds_details(&root, AccountScope::Payer).await.0.len(), 1);
    handle.reset().await;
    assert!(rds_details(&root, AccountScope::Payer).await.0.is_empty());
}
