use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sts::types::{Credentials, Tag};
use cudly_aws_sandbox::{CallOutcome, SandboxHandle};

use crate::common::*;

#[tokio::test]
async fn get_caller_identity_names_the_account_of_the_signing_key() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let identity = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(identity.account(), Some(ROOT));
    assert_eq!(
        identity.arn(),
        Some("arn:aws:iam::111111111111:user/sandbox")
    );
    assert!(identity.user_id().unwrap().starts_with("AIDA"));
}

#[tokio::test]
async fn an_unknown_key_is_invalid_client_token_id() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, "AKIAUNKNOWN000000000").await);
    let error = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(&error), "InvalidClientTokenId");
}

#[tokio::test]
async fn a_disabled_key_is_invalid_client_token_id() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, DISABLED_KEY).await);
    let error = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(&error), "InvalidClientTokenId");
}

#[tokio::test]
async fn assume_role_with_the_required_external_id_acts_in_the_role_account() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
        .role_session_name("cudly")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    let user = assumed.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::444444444444:assumed-role/Purchaser/cudly"
    );

    let session_config = sdk_config_with(
        &handle,
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
    assert_eq!(identity.arn(), Some(user.arn()));
}

#[tokio::test]
async fn assume_role_with_a_wrong_or_missing_external_id_is_access_denied() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let role_arn = format!("arn:aws:iam::{SOLO}:role/Purchaser");
    let wrong = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("cudly")
        .external_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), "AccessDenied");
    let missing = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("cudly")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "AccessDenied");
}

#[tokio::test]
async fn assume_role_from_an_untrusted_account_is_access_denied() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, SOLO_KEY).await);
    let error = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
        .role_session_name("cudly")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "AccessDenied");
    let unknown_role = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Nobody"))
        .role_session_name("cudly")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown_role), "AccessDenied");
}

#[tokio::test]
async fn an_expired_session_is_expired_token() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/ShortRole"))
        .role_session_name("short")
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let session_config = sdk_config_with(
        &handle,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        REGION,
        aws_config::retry::RetryConfig::disabled(),
    )
    .await;
    let error = aws_sdk_sts::Client::new(&session_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ExpiredToken");
}

#[tokio::test]
async fn a_session_key_with_a_wrong_session_token_is_invalid_client_token_id() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let session = sts.get_session_token().send().await.unwrap();
    let credentials = session.credentials().unwrap();
    let session_config = sdk_config_with(
        &handle,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some("forged".to_string()),
        REGION,
        aws_config::retry::RetryConfig::disabled(),
    )
    .await;
    let error = aws_sdk_sts::Client::new(&session_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "InvalidClientTokenId");
}

#[tokio::test]
async fn assume_role_with_web_identity_needs_a_web_identity_role() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let assumed = sts
        .assume_role_with_web_identity()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/WebRole"))
        .role_session_name("web")
        .web_identity_token("a-token")
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    assert_eq!(
        assumed.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::444444444444:assumed-role/WebRole/web"
    );
    let session_config = sdk_config_with(
        &handle,
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

    let refused = sts
        .assume_role_with_web_identity()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
        .role_session_name("web")
        .web_identity_token("a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "AccessDenied");
}

#[tokio::test]
async fn get_session_token_returns_credentials_of_the_caller_account() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, SOLO_KEY).await);
    let session = sts.get_session_token().send().await.unwrap();
    let credentials = session.credentials().unwrap();
    let expires_in = credentials.expiration().secs() - chrono::Utc::now().timestamp();
    assert!(
        (3500..=3600).contains(&expires_in),
        "expires in {expires_in}s"
    );
    let session_config = sdk_config_with(
        &handle,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        REGION,
        aws_config::retry::RetryConfig::disabled(),
    )
    .await;
    let session_sts = aws_sdk_sts::Client::new(&session_config);
    let identity = session_sts.get_caller_identity().send().await.unwrap();
    assert_eq!(identity.account(), Some(SOLO));
    let nested = session_sts.get_session_token().send().await.unwrap_err();
    assert_eq!(code(&nested), "AccessDenied");
}

/// Describes reserved instances and looks up caller identity, but not offerings: the
/// Deny wins over the `ec2:Describe*` Allow.
const SCOPED_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:Describe*","sts:GetCallerIdentity"],"Resource":"*"},{"Effect":"Deny","Action":"ec2:DescribeReservedInstancesOfferings","Resource":"*"}]}"#;
const APPROVER: &str = "alice@example.com";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// An SDK config signing with session credentials STS handed out, without retries.
async fn session_config(handle: &SandboxHandle, credentials: &Credentials) -> SdkConfig {
    sdk_config_with(
        handle,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        REGION,
        aws_config::retry::RetryConfig::disabled(),
    )
    .await
}

#[tokio::test]
async fn a_scoped_role_session_makes_only_the_calls_its_policy_allows_and_signs_with_its_tags() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
        .role_session_name("cudly-exec-1")
        .external_id(EXTERNAL_ID)
        .duration_seconds(900)
        .policy(SCOPED_POLICY)
        .tags(tag("cudly-execution", "exec-1"))
        .tags(tag("cudly-approved-by", APPROVER))
        .source_identity(APPROVER)
        .send()
        .await
        .unwrap();
    assert_eq!(assumed.source_identity(), Some(APPROVER));
    let session_arn = assumed.assumed_role_user().unwrap().arn().to_string();
    let expected_tags = tags(&[
        ("cudly-execution", "exec-1"),
        ("cudly-approved-by", APPROVER),
    ]);

    // The AssumeRole call records what the session was asked to be.
    let ledger = handle.ledger().await;
    let opened = ledger.calls_of("AssumeRole").next().unwrap();
    assert_eq!(opened.outcome, CallOutcome::Ok);
    assert_eq!(
        opened.principal_arn.as_deref(),
        Some("arn:aws:iam::111111111111:user/sandbox")
    );
    assert_eq!(opened.session_policy.as_deref(), Some(SCOPED_POLICY));
    assert_eq!(opened.requested_tags, expected_tags);
    assert_eq!(opened.requested_source_identity.as_deref(), Some(APPROVER));
    assert_eq!(opened.requested_duration_seconds, Some(900));
    assert!(opened.session_tags.is_empty());

    let config = session_config(&handle, assumed.credentials().unwrap()).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    ec2.describe_reserved_instances().send().await.unwrap();
    let denied = ec2
        .describe_reserved_instances_offerings()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "UnauthorizedOperation");
    let not_allowed = aws_sdk_rds::Client::new(&config)
        .describe_reserved_db_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&not_allowed), "AccessDenied");
    let session_sts = aws_sdk_sts::Client::new(&config);
    let identity = session_sts.get_caller_identity().send().await.unwrap();
    assert_eq!(identity.arn(), Some(session_arn.as_str()));
    let chained = session_sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
        .role_session_name("chained")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&chained), "AccessDenied");

    // Every call the session signed, allowed or refused, names it, its tags and its
    // source identity.
    let ledger = handle.ledger_filtered(Some(SOLO), None).await;
    let described = ledger.calls_of("DescribeReservedInstances").next().unwrap();
    assert_eq!(described.outcome, CallOutcome::Ok);
    assert_eq!(
        described.principal_arn.as_deref(),
        Some(session_arn.as_str())
    );
    assert_eq!(described.session_tags, expected_tags);
    assert_eq!(described.source_identity.as_deref(), Some(APPROVER));
    for (operation, error_code) in [
        (
            "DescribeReservedInstancesOfferings",
            "UnauthorizedOperation",
        ),
        ("DescribeReservedDBInstances", "AccessDenied"),
        ("AssumeRole", "AccessDenied"),
    ] {
        let refused = ledger.calls_of(operation).next().unwrap();
        assert_eq!(refused.outcome, CallOutcome::Error, "{operation}");
        assert_eq!(
            refused.error_code.as_deref(),
            Some(error_code),
            "{operation}"
        );
        assert_eq!(refused.session_tags, expected_tags, "{operation}");
        assert_eq!(refused.source_identity.as_deref(), Some(APPROVER));
    }
}

#[tokio::test]
async fn assume_role_refuses_bad_scoping_parameters_as_sts_does_and_records_what_was_asked() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&root_config(&handle).await);
    let request = || {
        sts.assume_role()
            .role_arn(format!("arn:aws:iam::{SOLO}:role/Purchaser"))
            .role_session_name("cudly")
            .external_id(EXTERNAL_ID)
    };
    let malformed = request().policy("{not json").send().await.unwrap_err();
    assert_eq!(code(&malformed), "MalformedPolicyDocument");
    let large_policy = format!(
        r#"{{"Statement":{{"Effect":"Allow","Action":"*"}}}}{}"#,
        " ".repeat(2048)
    );
    let large = request().policy(large_policy).send().await.unwrap_err();
    assert_eq!(code(&large), "PackedPolicyTooLarge");
    let short = request().duration_seconds(60).send().await.unwrap_err();
    assert_eq!(code(&short), "ValidationError");
    let identity = request().source_identity("a").send().await.unwrap_err();
    assert_eq!(code(&identity), "ValidationError");
    let too_many_tags = (0..51)
        .fold(request(), |request, index| {
            request.tags(tag(&format!("key-{index}"), "value"))
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&too_many_tags), "ValidationError");

    let ledger = handle.ledger().await;
    let refused: Vec<_> = ledger.calls_of("AssumeRole").collect();
    assert_eq!(refused.len(), 5);
    assert!(
        refused
            .iter()
            .all(|call| call.outcome == CallOutcome::Error)
    );
    assert_eq!(refused[0].session_policy.as_deref(), Some("{not json"));
    assert_eq!(refused[2].requested_duration_seconds, Some(60));
    assert_eq!(refused[3].requested_source_identity.as_deref(), Some("a"));
    assert_eq!(refused[4].requested_tags.len(), 51);
}

#[tokio::test]
async fn get_federation_token_opens_a_scoped_federated_session_for_long_lived_keys_only() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, SOLO_KEY).await);
    let policy = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:DescribeReservedInstances","Resource":"*"}}"#;
    let federated = sts
        .get_federation_token()
        .name("executor")
        .policy(policy)
        .tags(tag("cudly-execution", "exec-2"))
        .send()
        .await
        .unwrap();
    let user = federated.federated_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::444444444444:federated-user/executor"
    );
    assert_eq!(user.federated_user_id(), "444444444444:executor");
    let credentials = federated.credentials().unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    let expires_in = credentials.expiration().secs() - chrono::Utc::now().timestamp();
    assert!(
        (43_100..=43_200).contains(&expires_in),
        "expires in {expires_in}s"
    );

    let config = session_config(&handle, credentials).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    ec2.describe_reserved_instances().send().await.unwrap();
    let refused = ec2
        .describe_reserved_instances_offerings()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "UnauthorizedOperation");
    let session_sts = aws_sdk_sts::Client::new(&config);
    let identity = session_sts.get_caller_identity().send().await.unwrap();
    assert_eq!(identity.arn(), Some(user.arn()));
    assert_eq!(identity.account(), Some(SOLO));
    let nested = session_sts
        .get_federation_token()
        .name("again")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&nested), "AccessDenied");

    // Session credentials without any session policy are refused too.
    let plain_session = sts.get_session_token().send().await.unwrap();
    let plain_config = session_config(&handle, plain_session.credentials().unwrap()).await;
    let from_session = aws_sdk_sts::Client::new(&plain_config)
        .get_federation_token()
        .name("executor")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&from_session), "AccessDenied");

    let ledger = handle.ledger().await;
    let opened = ledger.calls_of("GetFederationToken").next().unwrap();
    assert_eq!(opened.outcome, CallOutcome::Ok);
    assert_eq!(opened.session_policy.as_deref(), Some(policy));
    assert_eq!(
        opened.requested_tags,
        tags(&[("cudly-execution", "exec-2")])
    );
    let described = ledger.calls_of("DescribeReservedInstances").next().unwrap();
    assert_eq!(described.principal_arn.as_deref(), Some(user.arn()));
    assert_eq!(
        described.session_tags,
        tags(&[("cudly-execution", "exec-2")])
    );
}

#[tokio::test]
async fn a_federated_session_without_a_policy_may_only_ask_who_it_is() {
    let handle = start().await;
    let sts = aws_sdk_sts::Client::new(&key_config(&handle, SOLO_KEY).await);
    let bad_name = sts
        .get_federation_token()
        .name("has space")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_name), "ValidationError");
    let long = sts
        .get_federation_token()
        .name("executor")
        .duration_seconds(129_601)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&long), "ValidationError");

    let federated = sts
        .get_federation_token()
        .name("executor")
        .duration_seconds(900)
        .send()
        .await
        .unwrap();
    let config = session_config(&handle, federated.credentials().unwrap()).await;
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        identity.arn(),
        Some("arn:aws:sts::444444444444:federated-user/executor")
    );
    let refused = aws_sdk_ec2::Client::new(&config)
        .describe_reserved_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "UnauthorizedOperation");
}
