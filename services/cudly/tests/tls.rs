//! TLS everywhere it travels, with certificates generated in the test: the services
//! call each other over TLS (and mutual TLS), and a plaintext client, one trusting
//! another CA, or (with mutual TLS) one without a certificate from the services' CA is
//! refused, as is one whose certificate names another service than its token (or
//! none); a renewed server certificate is served without a restart. The pool every
//! service uses connects to Postgres with `sslmode=verify-full`, and the sweeper's Redis
//! locks over `rediss://`, refusing a server whose certificate the root did not sign and
//! a server that accepts only TLS refuses a plaintext client.

use std::sync::Arc;
use std::time::Duration;

use cudly_common::db;
use cudly_common::grpc::{Caller, client_channel, secure_channel};
use cudly_common::tls::GrpcTls;
use cudly_lock::{LockConfig, RedisLock};
use cudly_proto::accounts::v1::ListAccountsRequest;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_testkit::TestStack;
use cudly_testkit::tls::TestPki;
use cudly_testkit::{PrivatePostgres, PrivateRedis};
use rustls::pki_types::pem::PemObject;
use secrecy::SecretString;
use serde_json::json;

fn url_with(base: &str, query: &str) -> SecretString {
    SecretString::from(format!("{base}?{query}"))
}

async fn ping(url: SecretString) -> Result<(), String> {
    let pool = db::lazy_pool(&url, "public", 1).map_err(|error| error.to_string())?;
    let result = db::ping(&pool).await.map_err(|error| error.to_string());
    pool.close().await;
    result
}

#[tokio::test]
async fn postgres_verify_full_accepts_the_right_ca_and_refuses_a_wrong_one_or_plaintext() {
    let pki = TestPki::generate().unwrap();
    let postgres = PrivatePostgres::start_tls(&pki).await.unwrap();
    let base = postgres.url("postgres");
    let ca = pki.ca_file().display().to_string();
    let other = pki.other_ca_file().display().to_string();

    ping(url_with(
        &base,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-full with the server's CA connects");
    let localhost = base.replace("127.0.0.1", "localhost");
    ping(url_with(
        &localhost,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect("the certificate names localhost too");

    let wrong_ca = ping(url_with(
        &base,
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ))
    .await;
    assert!(
        wrong_ca.is_err(),
        "a server whose certificate the root did not sign is refused"
    );
    let plaintext = ping(url_with(&base, "sslmode=disable")).await;
    let refusal = plaintext.expect_err("the server accepts TLS only");
    assert!(!refusal.is_empty());
}

#[tokio::test]
async fn redis_over_tls_accepts_the_right_ca_and_refuses_a_wrong_one_or_plaintext() {
    let pki = TestPki::generate().unwrap();
    let redis = PrivateRedis::start_tls(&pki).await.unwrap();
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let config = |ca: Option<std::path::PathBuf>| LockConfig {
        tls_ca_file: ca,
        ..LockConfig::default().with_key_prefix("cudly-tls-test:")
    };

    let lock = RedisLock::connect_with_config(&url, config(Some(pki.ca_file())))
        .await
        .expect("rediss with the server's CA connects");
    lock.ping().await.expect("and answers");

    let wrong = RedisLock::connect_with_config(&url, config(Some(pki.other_ca_file()))).await;
    assert!(
        wrong.is_err(),
        "a server whose certificate the root did not sign is refused"
    );
    let plaintext =
        RedisLock::connect_with_config(&url.replace("rediss://", "redis://"), config(None)).await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(lock) => lock.ping().await.is_err(),
    };
    assert!(
        refused,
        "a plaintext client gets nothing from a TLS-only server"
    );
}

/// TLS with the PKI's server certificate, which names no service.
fn server_tls(pki: &TestPki) -> GrpcTls {
    GrpcTls {
        cert_file: pki.server_cert_file(),
        key_file: pki.server_key_file(),
        ca_file: pki.ca_file(),
        mutual: false,
    }
}

/// Mutual TLS with the certificate naming `service`.
fn service_mtls(pki: &TestPki, service: &str) -> GrpcTls {
    GrpcTls {
        cert_file: pki.service_cert_file(service),
        key_file: pki.service_key_file(service),
        ca_file: pki.ca_file(),
        mutual: true,
    }
}

/// Starts a stack whose every service serves and calls with `tls_of(its name)`.
async fn stack_with(tls_of: impl Fn(&str) -> GrpcTls) -> TestStack {
    TestStack::start_with(|config| {
        for (service, common) in [
            ("accounts", &mut config.accounts.common),
            ("planner", &mut config.planner.common),
            ("executor", &mut config.executor.common),
            ("sweeper", &mut config.sweeper.common),
        ] {
            common.grpc_tls = Some(tls_of(service));
        }
        config.gateway.grpc_tls = Some(tls_of("gateway"));
    })
    .await
    .expect("the stack starts, every service reaching the others over tls")
}

/// Lists accounts as the gateway through a channel made with `tls` (`None`: plaintext).
async fn list_accounts(stack: &TestStack, tls: Option<&GrpcTls>) -> Result<(), tonic::Status> {
    let url = format!("http://{}", stack.stack().accounts_addr());
    let token = stack.secrets().internal_token(Caller::Gateway);
    let channel = match tls {
        Some(tls) => secure_channel(&url, &token, Duration::from_secs(5), Some(tls)),
        None => client_channel(&url, &token, Duration::from_secs(5)),
    }
    .expect("a channel");
    AccountsServiceClient::new(channel)
        .list_accounts(ListAccountsRequest::default())
        .await
        .map(|_| ())
}

/// Returns the certificate the server at `addr` presents (DER), trusting `pki`'s CA.
async fn presented_certificate(addr: std::net::SocketAddr, pki: &TestPki) -> Vec<u8> {
    cudly_common::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.ca_file()).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("a tls handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn the_services_speak_tls_refuse_plaintext_and_a_wrong_ca_and_reload_a_renewed_certificate() {
    let pki = TestPki::generate().unwrap();
    let tls = server_tls(&pki);
    let stack = stack_with(|_| tls.clone()).await;
    // The stack is ready: the gateway reached every backend's health over TLS.
    let (status, _) =
        cudly_testkit::rest::call(&stack, reqwest::Method::GET, "/api/accounts", None).await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "the gateway calls accounts over tls"
    );

    list_accounts(&stack, Some(&tls))
        .await
        .expect("tls with the right ca");
    assert!(
        list_accounts(&stack, None).await.is_err(),
        "plaintext is refused"
    );
    let wrong_ca = GrpcTls {
        ca_file: pki.other_ca_file(),
        ..tls.clone()
    };
    assert!(
        list_accounts(&stack, Some(&wrong_ca)).await.is_err(),
        "a client trusting another ca refuses the server"
    );

    // A renewed certificate is served from the next handshake, without a restart.
    let addr = stack.stack().accounts_addr();
    let before = presented_certificate(addr, &pki).await;
    pki.reissue_server().unwrap();
    let after = presented_certificate(addr, &pki).await;
    assert_ne!(before, after, "the renewed certificate is served");
    list_accounts(&stack, Some(&tls))
        .await
        .expect("and calls still work");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn with_mutual_tls_a_caller_needs_a_certificate_from_the_services_ca_naming_it() {
    let pki = TestPki::generate().unwrap();
    let stack = stack_with(|service| service_mtls(&pki, service)).await;
    let (status, account) = cudly_testkit::rest::call(
        &stack,
        reqwest::Method::POST,
        "/api/accounts",
        Some(json!({"name": "mtls", "provider": "aws", "external_id": "123456789012"})),
    )
    .await;
    assert_eq!(
        status,
        reqwest::StatusCode::CREATED,
        "the gateway presents its certificate: {account}"
    );
    let (status, plan) = cudly_testkit::rest::call(
        &stack,
        reqwest::Method::POST,
        "/api/plans",
        Some(
            json!({"name": "mtls", "services": {"aws/rds": {"provider": "aws",
            "service": "rds", "term": 1, "payment": "all-upfront", "coverage": 50}}}),
        ),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{plan}");
    let path = format!("/api/plans/{}/accounts", plan["id"].as_str().unwrap());
    let body = json!({"account_ids": [account["id"]]});
    let (status, bound) =
        cudly_testkit::rest::call(&stack, reqwest::Method::PUT, &path, Some(body)).await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "the planner checks the account with the accounts service as itself: {bound}"
    );

    let gateway = service_mtls(&pki, "gateway");
    list_accounts(&stack, Some(&gateway))
        .await
        .expect("the gateway's token with the gateway's certificate");
    let refused = |result: Result<(), tonic::Status>| result.expect_err("refused");
    let borrowed = refused(list_accounts(&stack, Some(&service_mtls(&pki, "executor"))).await);
    assert_eq!(
        borrowed.code(),
        tonic::Code::PermissionDenied,
        "{borrowed:?}"
    );
    assert!(
        borrowed.message().contains("names executor"),
        "the gateway's token with the executor's certificate: {borrowed:?}"
    );
    let unnamed = GrpcTls {
        mutual: true,
        ..server_tls(&pki)
    };
    let anonymous = refused(list_accounts(&stack, Some(&unnamed)).await);
    assert_eq!(
        anonymous.code(),
        tonic::Code::PermissionDenied,
        "{anonymous:?}"
    );

    let without_certificate = GrpcTls {
        mutual: false,
        ..gateway.clone()
    };
    refused(list_accounts(&stack, Some(&without_certificate)).await);
    let rogue = GrpcTls {
        cert_file: pki.rogue_cert_file(),
        key_file: pki.rogue_key_file(),
        ..gateway.clone()
    };
    refused(list_accounts(&stack, Some(&rogue)).await);
    refused(list_accounts(&stack, None).await);
    stack.stop().await.unwrap();
}
