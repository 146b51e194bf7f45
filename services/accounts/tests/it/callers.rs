//! Which internal caller may call which RPC: only the executor resolves credentials,
//! the planner reads accounts by id, lists enabled ones and collects Cost Explorer
//! recommendations, the gateway does the rest.

use cudly_common::grpc::Caller;
use cudly_proto::accounts::v1::{
    CollectRecommendationsRequest, CreateAccountRequest, GetAccountsByIdsRequest,
    ListEnabledAccountsRequest, RecommendationQuery, ResolveCredentialsRequest,
};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn only_the_executor_may_resolve_credentials() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let id = create(
        &stack,
        role_account("role", ROLE_ACCOUNT, ROLE_NAME, Some(ROLE_EXTERNAL_ID)),
    )
    .await;
    for caller in [Caller::Gateway, Caller::Planner] {
        let status = grpc_as(&stack, caller)
            .resolve_credentials(ResolveCredentialsRequest {
                account_id: id.clone(),
                scope: "quote".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{caller:?}");
    }
    // The sweeper's token is not accepted by this service at all.
    let status = grpc_as(&stack, Caller::Sweeper)
        .resolve_credentials(ResolveCredentialsRequest {
            account_id: id.clone(),
            scope: "quote".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        grpc_as(&stack, Caller::Executor)
            .resolve_credentials(ResolveCredentialsRequest {
                account_id: id,
                scope: "quote".into(),
                ..Default::default()
            })
            .await
            .is_ok()
    );
    // The executor may do nothing else.
    let status = grpc_as(&stack, Caller::Executor)
        .create_account(CreateAccountRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn the_planner_reads_accounts_by_id_and_lists_enabled_ones() {
    let stack = stack().await;
    let aws = create(&stack, keys_account("aws", "123456789012")).await;
    let mut disabled = keys_account("disabled", "210987654321");
    disabled["enabled"] = json!(false);
    let disabled = create(&stack, disabled).await;
    let gcp = create(
        &stack,
        json!({"name": "gcp", "provider": "gcp", "external_id": "analytics-prod"}),
    )
    .await;
    let missing = uuid::Uuid::new_v4().to_string();
    let mut planner = grpc_as(&stack, Caller::Planner);

    let reply = planner
        .get_accounts_by_ids(GetAccountsByIdsRequest {
            ids: vec![gcp.clone(), missing.clone(), aws.clone(), gcp.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = reply
        .accounts
        .iter()
        .map(|account| account.id.as_str())
        .collect();
    assert_eq!(ids, [gcp.as_str(), aws.as_str()]);
    assert_eq!(reply.not_found_ids, [missing]);

    let status = planner
        .get_accounts_by_ids(GetAccountsByIdsRequest {
            ids: vec!["nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    let enabled = planner
        .list_enabled_accounts(ListEnabledAccountsRequest {
            providers: vec!["aws".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = enabled
        .accounts
        .iter()
        .map(|account| account.id.as_str())
        .collect();
    assert_eq!(ids, [aws.as_str()], "{disabled} is disabled");
    let none = planner
        .list_enabled_accounts(ListEnabledAccountsRequest { providers: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert!(none.accounts.is_empty(), "no providers means no accounts");
    let status = planner
        .list_enabled_accounts(ListEnabledAccountsRequest {
            providers: vec!["oracle".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // The planner may not write.
    let status = planner
        .create_account(CreateAccountRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn only_the_planner_collects_recommendations_and_bad_requests_are_refused() {
    let stack = stack().await;
    let aws = create(&stack, keys_account("aws", "123456789012")).await;
    let mut disabled = keys_account("disabled", "210987654321");
    disabled["enabled"] = json!(false);
    let disabled = create(&stack, disabled).await;
    let request = |account_id: &str, organization: bool, service: &str, term: u32| {
        CollectRecommendationsRequest {
            account_id: account_id.to_owned(),
            organization,
            queries: vec![RecommendationQuery {
                service: service.into(),
                term,
                payment: "no-upfront".into(),
            }],
            call_budget: 10,
        }
    };
    for caller in [Caller::Gateway, Caller::Executor] {
        let status = grpc_as(&stack, caller)
            .collect_recommendations(request(&aws, false, "rds", 1))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{caller:?}");
    }
    let mut planner = grpc_as(&stack, Caller::Planner);
    for (refused, code) in [
        (
            request("nope", false, "rds", 1),
            tonic::Code::InvalidArgument,
        ),
        (
            request(&aws, false, "lambda", 1),
            tonic::Code::InvalidArgument,
        ),
        (request(&aws, false, "rds", 2), tonic::Code::InvalidArgument),
        (request(&aws, true, "rds", 1), tonic::Code::InvalidArgument),
        (
            request(&disabled, false, "rds", 1),
            tonic::Code::FailedPrecondition,
        ),
        (
            request(&uuid::Uuid::new_v4().to_string(), false, "rds", 1),
            tonic::Code::NotFound,
        ),
    ] {
        let status = planner.collect_recommendations(refused).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
    stack.stop().await.unwrap();
}
