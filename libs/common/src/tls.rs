//! TLS between the services (docs/design/ARCHITECTURE.md "Who calls whom"): a service
//! given `CUDLY_GRPC_TLS_CERT` and `CUDLY_GRPC_TLS_KEY` serves gRPC over TLS (rustls)
//! and calls its peers over TLS, checking their certificates against
//! `CUDLY_GRPC_TLS_CA`; with `CUDLY_GRPC_MTLS=true` it also asks its callers for a
//! certificate signed by that CA and presents its own to its peers. A renewed
//! certificate (cert-manager rewrites the files) is served from the next handshake on,
//! without a restart.
//!
//! With mutual TLS a caller's certificate also names the caller, as the URI subject
//! alternative name `spiffe://cudly/<service>` (cert-manager's `uris`), and the caller
//! policy refuses a call whose certificate names another service than its token
//! ([`named_callers`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{ConfigError, ConfigResult, Env};
use crate::grpc::Caller;

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a certificate names the CUDly service holding it (followed by the service's
/// name): the SPIFFE ID form of a URI subject alternative name.
pub const SERVICE_ID_PREFIX: &str = "spiffe://cudly/";

/// Installs ring as the process's rustls provider, unless one is installed already:
/// rustls needs one default when several are compiled in (the AWS SDK brings aws-lc-rs).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS settings of a service's gRPC server and clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTls {
    /// PEM certificate chain of this service (`CUDLY_GRPC_TLS_CERT`).
    pub cert_file: PathBuf,
    /// PEM private key (`CUDLY_GRPC_TLS_KEY`).
    pub key_file: PathBuf,
    /// PEM CA the peers' certificates chain to (`CUDLY_GRPC_TLS_CA`).
    pub ca_file: PathBuf,
    /// Callers must present a certificate the CA signed (`CUDLY_GRPC_MTLS`).
    pub mutual: bool,
}

impl GrpcTls {
    /// Reads the settings: none of the files means no TLS; some but not all is an error.
    pub fn read(env: &Env) -> ConfigResult<Option<Self>> {
        let cert = env.var("CUDLY_GRPC_TLS_CERT");
        let key = env.var("CUDLY_GRPC_TLS_KEY");
        let ca = env.var("CUDLY_GRPC_TLS_CA");
        let mutual = env.parse("CUDLY_GRPC_MTLS", false)?;
        match (cert, key, ca) {
            (None, None, None) if !mutual => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(Self {
                cert_file: cert.into(),
                key_file: key.into(),
                ca_file: ca.into(),
                mutual,
            })),
            _ => Err(ConfigError::new(
                "CUDLY_GRPC_TLS_CERT, CUDLY_GRPC_TLS_KEY and CUDLY_GRPC_TLS_CA",
                "set all three for TLS (CUDLY_GRPC_MTLS needs them too), or none",
            )),
        }
    }

    /// Returns the acceptor of the gRPC server: this service's certificate, reloaded
    /// when its files change, and with mutual TLS a check of the caller's.
    pub fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        install_crypto_provider();
        let resolver = Arc::new(ReloadingCert::load(&self.cert_file, &self.key_file)?);
        let builder = rustls::ServerConfig::builder();
        let builder = if self.mutual {
            let verifier = WebPkiClientVerifier::builder(Arc::new(self.roots()?)).build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Returns the TLS of this service's gRPC clients.
    pub fn client_config(&self) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        install_crypto_provider();
        let ca = std::fs::read(&self.ca_file)
            .map_err(|error| anyhow::anyhow!("reading {}: {error}", self.ca_file.display()))?;
        let mut config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca));
        if self.mutual {
            let cert = std::fs::read(&self.cert_file)?;
            let key = std::fs::read(&self.key_file)?;
            config = config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        Ok(config)
    }

    fn roots(&self) -> anyhow::Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_file)? {
            roots.add(cert?)?;
        }
        Ok(roots)
    }
}

/// This service's certificate, read again when the files' modification times change.
#[derive(Debug)]
struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Mutex<(Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl ReloadingCert {
    fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Self> {
        let key = read_certified_key(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: Mutex::new((modified(cert_file, key_file), Arc::new(key))),
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stamp = modified(&self.cert_file, &self.key_file);
        if stamp != current.0 {
            // A half-written pair fails to load: keep serving the previous one.
            match read_certified_key(&self.cert_file, &self.key_file) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert_file.display(), "grpc tls certificate reloaded");
                    *current = (stamp, Arc::new(key));
                }
                Err(error) => {
                    tracing::warn!(%error, "grpc tls certificate changed but cannot be loaded yet");
                }
            }
        }
        Some(current.1.clone())
    }
}

fn modified(cert_file: &Path, key_file: &Path) -> Option<SystemTime> {
    let time = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    time(cert_file).max(time(key_file))
}

fn read_certified_key(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertifiedKey> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|error| anyhow::anyhow!("reading {}: {error}", cert_file.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|error| anyhow::anyhow!("reading {}: {error}", key_file.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(CertifiedKey::from_der(certs, key, &provider)?)
}

/// Returns the callers a certificate (DER) names by [`SERVICE_ID_PREFIX`]: none for a
/// certificate that cannot be parsed or names no service.
pub fn named_callers(cert: &CertificateDer<'_>) -> Vec<Caller> {
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    cert.valid_uri_names()
        .filter_map(|uri| uri.strip_prefix(SERVICE_ID_PREFIX))
        .filter_map(Caller::from_name)
        .collect()
}

/// Accepts connections on `listener` and hands on those whose TLS handshake completes
/// (each handshake runs on its own task, so a slow client holds up no one).
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl tokio_stream::Stream<Item = io::Result<TlsStream<TcpStream>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // The server dropped the stream (it stopped): stop accepting at once.
            let accepted = tokio::select! {
                _ = sender.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let handed_on = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = handed_on.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => tracing::info!(%peer, %error, "tls handshake refused"),
                    Err(_) => tracing::info!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Returns `url` with the `https` scheme when TLS is on (the peers' URLs are written
/// once, `http://`, in every deployment file).
pub fn peer_url(url: &str, tls: Option<&GrpcTls>) -> String {
    match (tls, url.strip_prefix("http://")) {
        (Some(_), Some(rest)) => format!("https://{rest}"),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;

    fn certificate_naming(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        for uri in uris {
            let uri = (*uri).to_owned().try_into().unwrap();
            params.subject_alt_names.push(SanType::URI(uri));
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_names_the_services_of_its_spiffe_uris_only() {
        let named = |uris: &[&str]| named_callers(&certificate_naming(uris));
        assert_eq!(named(&["spiffe://cudly/executor"]), [Caller::Executor]);
        assert_eq!(
            named(&["spiffe://cudly/gateway", "spiffe://cudly/planner"]),
            [Caller::Gateway, Caller::Planner]
        );
        assert!(named(&[]).is_empty(), "no uri names no one");
        assert!(
            named(&["spiffe://cudly/accounts"]).is_empty(),
            "accounts calls no one"
        );
        assert!(
            named(&["spiffe://other/executor"]).is_empty(),
            "another trust domain"
        );
        assert!(named(&["https://cudly/executor"]).is_empty());
        assert!(named_callers(&CertificateDer::from(vec![1, 2, 3])).is_empty());
    }
}
