//! TLS everywhere it travels, with certificates generated in the test: the services
//! call each other over TLS (and mutual TLS), and a plaintext client, one trusting
//! another CA, or (with mutual TLS) one without a certificate from the services' CA is
//! refused; a renewed server certificate is served without a restart. The pool every
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

/// The TLS settings of every service of a test stack: the PKI's server certificate,
/// which also serves as each service's client certificate.
fn stack_tls(pki: &TestPki, mutual: bool) -> GrpcTls {
    GrpcTls {
        cert_file: pki.server_cert_file(),
        key_file: pki.server_key_file(),
        ca_file: pki.ca_file(),
        mutual,
    }
}

async fn stack_with(tls: &GrpcTls) -> TestStack {
    TestStack::start_with(|config| {
        for common in [
            &mut config.accounts.common,
            &mut config.planner.common,
            &mut config.executor.common,
            &mut config.sweeper.common,
        ] {
            common.grpc_tls = Some(tls.clone());
        }
        config.gateway.grpc_tls = Some(tls.clone());
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
    let tls = stack_tls(&pki, false);
    let stack = stack_with(&tls).await;
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
async fn with_mutual_tls_a_caller_needs_a_certificate_from_the_services_ca() {
    let pki = TestPki::generate().unwrap();
    let tls = stack_tls(&pki, true);
    let stack = stack_with(&tls).await;
    let (status, _) =
        cudly_testkit::rest::call(&stack, reqwest::Method::GET, "/api/accounts", None).await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "the gateway presents its certificate"
    );

    list_accounts(&stack, Some(&tls))
        .await
        .expect("a client certificate the ca signed");
    let without_certificate = GrpcTls {
        mutual: false,
        ..tls.clone()
    };
    assert!(
        list_accounts(&stack, Some(&without_certificate))
            .await
            .is_err(),
        "a caller without a certificate is refused"
    );
    let rogue = GrpcTls {
        cert_file: pki.rogue_cert_file(),
        key_file: pki.rogue_key_file(),
        ..tls.clone()
    };
    assert!(
        list_accounts(&stack, Some(&rogue)).await.is_err(),
        "a caller whose certificate another ca signed is refused"
    );
    assert!(
        list_accounts(&stack, None).await.is_err(),
        "plaintext is refused"
    );
    stack.stop().await.unwrap();
}
