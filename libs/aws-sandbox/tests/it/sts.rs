use std::time::Duration;

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
