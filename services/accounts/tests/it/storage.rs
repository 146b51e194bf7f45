//! Encryption at rest, key rotation, and the standalone binary's key configuration.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cudly_accounts::crypto::{CredentialCipher, CredentialKey, CredentialKeys};
use cudly_accounts::domain::CredentialType;
use cudly_common::grpc::{Caller, TokenDigest};
use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::common::*;

async fn blob_of(pool: &sqlx::PgPool, account: &str) -> String {
    sqlx::query_scalar("SELECT encrypted_blob FROM account_credentials WHERE account_id = $1")
        .bind(Uuid::parse_str(account).unwrap())
        .fetch_one(pool)
        .await
        .unwrap()
}

fn stack_cipher(stack: &cudly_testkit::TestStack) -> CredentialCipher {
    let key = CredentialKey::from_hex(stack.secrets().credential_key.expose_secret()).unwrap();
    CredentialCipher::new(CredentialKeys::new(key, None))
}

#[tokio::test]
async fn stored_blobs_have_the_documented_shape_and_hold_no_plaintext() {
    let stack = stack().await;
    let mut body = keys_account("keys", KEYS_ACCOUNT);
    body["credentials"] = keys_credentials();
    let id = create(&stack, body).await;
    let pool = stack.db.pool("accounts").await.unwrap();
    let blob = blob_of(&pool, &id).await;
    let (nonce, sealed) = blob.split_once('.').expect("nonce.ciphertext");
    assert_eq!(URL_SAFE_NO_PAD.decode(nonce).unwrap().len(), 12);
    assert!(URL_SAFE_NO_PAD.decode(sealed).unwrap().len() > 16);
    assert!(!blob.contains(KEYS_SECRET) && !blob.contains(KEYS_ACCESS_KEY_ID));
    let (plaintext, _) = stack_cipher(&stack)
        .decrypt(
            Uuid::parse_str(&id).unwrap(),
            CredentialType::AwsAccessKeys,
            &blob,
        )
        .expect("the stack's key opens its own blob");
    assert!(plaintext.expose_secret().contains(KEYS_SECRET));

    // Every write uses a fresh nonce.
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(keys_credentials()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_ne!(blob_of(&pool, &id).await, blob);
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_blob_copied_from_one_account_to_another_fails_to_decrypt() {
    let stack = stack().await;
    add_sandbox_accounts(&stack).await;
    let mut first_body = keys_account("first", KEYS_ACCOUNT);
    first_body["credentials"] = keys_credentials();
    let first = create(&stack, first_body).await;
    let mut second_body = keys_account("second", "123456789012");
    second_body["credentials"] =
        serde_json::json!({"access_key_id": "AKIASECONDACCOUNT001", "secret_access_key": "second"});
    let second = create(&stack, second_body).await;
    let pool = stack.db.pool("accounts").await.unwrap();
    let first_blob = blob_of(&pool, &first).await;
    sqlx::query("UPDATE account_credentials SET encrypted_blob = $1 WHERE account_id = $2")
        .bind(&first_blob)
        .bind(Uuid::parse_str(&second).unwrap())
        .execute(&pool)
        .await
        .unwrap();

    let cipher = stack_cipher(&stack);
    assert!(
        cipher
            .decrypt(
                Uuid::parse_str(&second).unwrap(),
                CredentialType::AwsAccessKeys,
                &first_blob
            )
            .is_err()
    );
    assert!(
        cipher
            .decrypt(
                Uuid::parse_str(&first).unwrap(),
                CredentialType::AzureClientSecret,
                &first_blob
            )
            .is_err()
    );

    // The service refuses it too: the test says so (nothing about the blob), session
    // credentials are an internal error, and the first account still works.
    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{second}/test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply,
        serde_json::json!({"ok": false, "error": "stored credentials cannot be decrypted with the configured credential key"})
    );
    let status = grpc_as(&stack, cudly_common::grpc::Caller::Executor)
        .resolve_credentials(cudly_proto::accounts::v1::ResolveCredentialsRequest {
            account_id: second.clone(),
            scope: "quote".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), "internal server error");
    let (status, reply) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{first}/test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["ok"], true, "{reply}");
    stack.stop().await.unwrap();
}

/// Runs the `cudly-accounts` binary with exactly `env` (plus PATH).
/// The digests of the accounts service's callers' tokens, as its environment gives them.
fn caller_digests() -> Vec<(String, String)> {
    [Caller::Gateway, Caller::Planner, Caller::Executor]
        .into_iter()
        .map(|caller| {
            let token = SecretString::from(format!("{}-token", caller.name()));
            (caller.digest_var(), TokenDigest::of_secret(&token).to_hex())
        })
        .collect()
}

#[test]
fn the_standalone_binary_refuses_a_token_of_another_service() {
    // The accounts service calls no one: any internal token in its environment is
    // another service's, with which it could pass for that service.
    let digests = caller_digests();
    let mut env: Vec<(&str, &str)> = digests
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let key = hex_key();
    env.extend([
        ("CUDLY_CREDENTIAL_KEY", key.as_str()),
        ("CUDLY_ACCOUNTS_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "off"),
        ("CUDLY_INTERNAL_TOKEN_EXECUTOR", "executor-token-canary"),
    ]);
    let output = run_binary(&[], &env);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("CUDLY_INTERNAL_TOKEN_EXECUTOR: a service holds only its own internal token"),
        "{stderr}"
    );
    assert!(!stderr.contains("executor-token-canary"), "{stderr}");

    // Without the foreign token, a missing digest is named.
    env.pop();
    env.retain(|(name, _)| *name != "CUDLY_INTERNAL_TOKEN_DIGEST_PLANNER");
    let output = run_binary(&[], &env);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("CUDLY_INTERNAL_TOKEN_DIGEST_PLANNER: must be set"),
        "{stderr}"
    );
}

fn run_binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cudly-accounts"));
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

#[tokio::test]
async fn rotating_the_credential_key_re_encrypts_every_blob() {
    let stack = stack().await;
    let old_key = stack.secrets().credential_key.expose_secret().to_owned();
    let mut ids = Vec::new();
    for (name, external_id) in [("a", "123456789012"), ("b", "210987654321")] {
        let mut body = keys_account(name, external_id);
        body["credentials"] = keys_credentials();
        ids.push(create(&stack, body).await);
    }
    let azure = create(
        &stack,
        serde_json::json!({"name": "sub", "provider": "azure", "external_id": "6f1c2a3b-1111-4222-8333-944455556666",
                           "credentials": {"client_secret": "azure-secret"}}),
    )
    .await;
    let new_key = hex_key();
    let database_url = stack.db.url().to_owned();
    let output = run_binary(
        &["rotate-credential-key"],
        &[
            ("DATABASE_URL", &database_url),
            ("CUDLY_CREDENTIAL_KEY", &new_key),
            ("CUDLY_CREDENTIAL_OLD_KEY", &old_key),
            ("RUST_LOG", "warn"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 re-encrypted, 0 already"), "{stdout}");
    assert!(!stdout.contains(&new_key) && !stderr.contains(&new_key) && !stderr.contains(&old_key));

    let pool = stack.db.pool("accounts").await.unwrap();
    let new_only = CredentialCipher::new(CredentialKeys::new(
        CredentialKey::from_hex(&new_key).unwrap(),
        None,
    ));
    for id in &ids {
        let blob = blob_of(&pool, id).await;
        let (plaintext, _) = new_only
            .decrypt(
                Uuid::parse_str(id).unwrap(),
                CredentialType::AwsAccessKeys,
                &blob,
            )
            .expect("the new key alone opens every blob");
        assert!(plaintext.expose_secret().contains(KEYS_SECRET));
    }
    let azure_blob = blob_of(&pool, &azure).await;
    assert!(
        new_only
            .decrypt(
                Uuid::parse_str(&azure).unwrap(),
                CredentialType::AzureClientSecret,
                &azure_blob
            )
            .is_ok()
    );

    // Running it again changes nothing.
    let output = run_binary(
        &["rotate-credential-key"],
        &[
            ("DATABASE_URL", &database_url),
            ("CUDLY_CREDENTIAL_KEY", &new_key),
            ("CUDLY_CREDENTIAL_OLD_KEY", &old_key),
            ("RUST_LOG", "warn"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success());
    assert!(stdout.contains("0 re-encrypted, 3 already"), "{stdout}");

    // A blob that neither key opens fails the whole rotation, which changes nothing.
    let before = blob_of(&pool, &ids[0]).await;
    let output = run_binary(
        &["rotate-credential-key"],
        &[
            ("DATABASE_URL", &database_url),
            ("CUDLY_CREDENTIAL_KEY", &hex_key()),
            ("CUDLY_CREDENTIAL_OLD_KEY", &old_key),
            ("RUST_LOG", "off"),
        ],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("do not decrypt"),
        "{output:?}"
    );
    assert_eq!(blob_of(&pool, &ids[0]).await, before);
    stack.stop().await.unwrap();
}

fn hex_key() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

#[test]
fn the_standalone_binary_refuses_to_start_with_both_or_neither_credential_key() {
    let tokens = caller_digests();
    let tokens: Vec<(&str, &str)> = tokens
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain([("CUDLY_ACCOUNTS_ADDR", "127.0.0.1:0"), ("RUST_LOG", "off")])
        .collect();
    let neither = run_binary(&[], &tokens);
    assert!(!neither.status.success());
    let stderr = String::from_utf8_lossy(&neither.stderr);
    assert!(
        stderr.contains("CUDLY_CREDENTIAL_KEY or CUDLY_CREDENTIAL_KEY_FILE must be set"),
        "{stderr}"
    );

    let key = hex_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("credential.key");
    std::fs::write(&key_file, &key).unwrap();
    let key_file = key_file.display().to_string();
    let mut both = tokens.to_vec();
    both.push(("CUDLY_CREDENTIAL_KEY", &key));
    both.push(("CUDLY_CREDENTIAL_KEY_FILE", &key_file));
    let output = run_binary(&[], &both);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set only one"), "{stderr}");
    assert!(!stderr.contains(&key), "{stderr}");

    let mut malformed = tokens.to_vec();
    malformed.push(("CUDLY_CREDENTIAL_KEY", "s3cr3t-but-not-hex"));
    let output = run_binary(&[], &malformed);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("64 hex characters"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}
