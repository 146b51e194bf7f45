use aws_sdk_savingsplans::types::{
    SavingsPlanFilter, SavingsPlanPaymentOption, SavingsPlanProductType, SavingsPlanType,
    SavingsPlansFilterName,
};
use cudly_aws_sandbox::{IDEMPOTENCY_TAG_KEY, Service};

use crate::common::*;

async fn offering_id(
    savings_plans: &aws_sdk_savingsplans::Client,
    plan_type: SavingsPlanType,
) -> String {
    let offerings = savings_plans
        .describe_savings_plans_offerings()
        .plan_types(plan_type)
        .durations(31_536_000)
        .payment_options(SavingsPlanPaymentOption::NoUpfront)
        .send()
        .await
        .unwrap();
    let results = offerings.search_results();
    assert_eq!(results.len(), 1);
    results[0].offering_id().unwrap().to_string()
}

#[tokio::test]
async fn offerings_exist_for_every_plan_type_term_and_payment() {
    let handle = start().await;
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let all = savings_plans
        .describe_savings_plans_offerings()
        .send()
        .await
        .unwrap();
    assert_eq!(all.search_results().len(), 3 * 2 * 3);
    let compute = offering_id(&savings_plans, SavingsPlanType::Compute).await;
    assert_eq!(
        compute,
        offering_id(&savings_plans, SavingsPlanType::Compute).await
    );
    assert_ne!(
        compute,
        offering_id(&savings_plans, SavingsPlanType::Ec2Instance).await
    );
    assert_ne!(
        compute,
        offering_id(&savings_plans, SavingsPlanType::Sagemaker).await
    );

    let lambda = savings_plans
        .describe_savings_plans_offerings()
        .product_type(SavingsPlanProductType::Lambda)
        .send()
        .await
        .unwrap();
    assert!(
        lambda
            .search_results()
            .iter()
            .all(|offering| offering.plan_type() == Some(&SavingsPlanType::Compute))
    );
    assert_eq!(lambda.search_results().len(), 6);
}

#[tokio::test]
async fn create_savings_plan_dedupes_by_client_token() {
    let handle = start().await;
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let offering = offering_id(&savings_plans, SavingsPlanType::Compute).await;
    let idempotency_token = token("sp-lineage:0");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created = savings_plans
            .create_savings_plan()
            .savings_plan_offering_id(&offering)
            .commitment("2.50")
            .client_token(&idempotency_token)
            .tags(IDEMPOTENCY_TAG_KEY, &idempotency_token)
            .send()
            .await
            .unwrap();
        ids.push(created.savings_plan_id().unwrap().to_string());
    }
    assert!(ids.iter().all(|id| id == &ids[0]));

    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments.len(), 1);
    assert_eq!(ledger.commitments_for_token(&idempotency_token), 1);
    assert_eq!(
        ledger.commitments[0].hourly_commitment.as_deref(),
        Some("2.50")
    );
    assert_eq!(ledger.commitments[0].count, 1);
    assert_eq!(ledger.calls_of("CreateSavingsPlan").count(), 3);
    assert!(
        ledger
            .calls_of("CreateSavingsPlan")
            .all(
                |call| call.client_token.as_deref() == Some(idempotency_token.as_str())
                    && call.commitment_id.as_deref() == Some(ids[0].as_str())
            )
    );
}

#[tokio::test]
async fn the_same_client_token_with_other_parameters_is_a_validation_error() {
    let handle = start().await;
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let offering = offering_id(&savings_plans, SavingsPlanType::Compute).await;
    let idempotency_token = token("sp-lineage:1");
    savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(&offering)
        .commitment("1.00")
        .client_token(&idempotency_token)
        .send()
        .await
        .unwrap();
    let error = savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(&offering)
        .commitment("9.00")
        .client_token(&idempotency_token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ValidationException");
    assert_eq!(handle.ledger().await.commitments.len(), 1);
}

#[tokio::test]
async fn describe_savings_plans_reports_tags_commitment_and_filters() {
    let handle = start().await;
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let compute = offering_id(&savings_plans, SavingsPlanType::Compute).await;
    let sagemaker = offering_id(&savings_plans, SavingsPlanType::Sagemaker).await;
    let first_token = token("sp-lineage:2");
    let first = savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(&compute)
        .commitment("0.75")
        .client_token(&first_token)
        .tags(IDEMPOTENCY_TAG_KEY, &first_token)
        .send()
        .await
        .unwrap()
        .savings_plan_id()
        .unwrap()
        .to_string();
    savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(&sagemaker)
        .commitment("3")
        .send()
        .await
        .unwrap();

    let all = savings_plans.describe_savings_plans().send().await.unwrap();
    assert_eq!(all.savings_plans().len(), 2);
    let described = savings_plans
        .describe_savings_plans()
        .savings_plan_ids(&first)
        .send()
        .await
        .unwrap();
    let plan = &described.savings_plans()[0];
    assert_eq!(plan.savings_plan_id(), Some(first.as_str()));
    assert_eq!(plan.commitment(), Some("0.75"));
    assert_eq!(plan.offering_id(), Some(compute.as_str()));
    assert_eq!(plan.savings_plan_type(), Some(&SavingsPlanType::Compute));
    assert_eq!(
        plan.state(),
        Some(&aws_sdk_savingsplans::types::SavingsPlanState::Active)
    );
    assert_eq!(
        plan.tags().unwrap().get(IDEMPOTENCY_TAG_KEY),
        Some(&first_token)
    );
    let compute_only = savings_plans
        .describe_savings_plans()
        .filters(
            SavingsPlanFilter::builder()
                .name(SavingsPlansFilterName::SavingsPlanType)
                .values("Compute")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(compute_only.savings_plans().len(), 1);
    let paged = savings_plans
        .describe_savings_plans()
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(paged.savings_plans().len(), 1);
    assert!(paged.next_token().is_some());
}

#[tokio::test]
async fn an_unknown_offering_is_resource_not_found() {
    let handle = start().await;
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let error = savings_plans
        .create_savings_plan()
        .savings_plan_offering_id("00000000-0000-4000-8000-000000000000")
        .commitment("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ResourceNotFoundException");
    let offering = offering_id(&savings_plans, SavingsPlanType::Compute).await;
    let invalid = savings_plans
        .create_savings_plan()
        .savings_plan_offering_id(offering)
        .commitment("lots")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&invalid), "ValidationException");
    assert!(
        handle
            .ledger()
            .await
            .commitments_of(Service::Savingsplans)
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn savings_plans_are_global_to_the_account_whatever_region_signs() {
    let handle = start().await;
    let west = aws_sdk_savingsplans::Client::new(
        &sdk_config_with(
            &handle,
            ROOT_KEY,
            SECRET,
            None,
            "eu-west-1",
            quick_retries(),
        )
        .await,
    );
    let east = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let offering = offering_id(&west, SavingsPlanType::Compute).await;
    assert_eq!(offering, offering_id(&east, SavingsPlanType::Compute).await);
    let idempotency_token = token("sp-global");
    let created = west
        .create_savings_plan()
        .savings_plan_offering_id(&offering)
        .commitment("1")
        .client_token(&idempotency_token)
        .send()
        .await
        .unwrap();
    let described = east.describe_savings_plans().send().await.unwrap();
    assert_eq!(described.savings_plans().len(), 1);
    assert_eq!(
        described.savings_plans()[0].savings_plan_id(),
        created.savings_plan_id()
    );
    let retried = east
        .create_savings_plan()
        .savings_plan_offering_id(&offering)
        .commitment("1")
        .client_token(&idempotency_token)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.savings_plan_id(), created.savings_plan_id());
    assert_eq!(
        handle
            .ledger()
            .await
            .commitments_for_token(&idempotency_token),
        1
    );
}
