//! Certificates for TLS tests, generated in the test (rcgen): a CA, a server certificate
//! for `localhost` and `127.0.0.1` signed by it (which may be reissued, to test
//! reloading; it names no service), one certificate per service naming it as mutual TLS
//! needs (`spiffe://cudly/<service>`), and a second CA with a client certificate of its
//! own (a client trusting only that CA must refuse the server; a server must refuse
//! that client).

use std::path::{Path, PathBuf};

use anyhow::Context;
use cudly_common::tls::SERVICE_ID_PREFIX;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

/// The services given a certificate naming them.
pub const SERVICES: [&str; 5] = ["gateway", "planner", "executor", "sweeper", "accounts"];

/// PEM files of a test PKI, in a temporary directory removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl TestPki {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cudly-pki-")
            .tempdir_in("/tmp")?;
        let (ca_pem, ca) = new_ca()?;
        let (other_ca_pem, other_ca) = new_ca()?;
        let write = |name: &str, text: String| -> anyhow::Result<()> {
            std::fs::write(dir.path().join(name), text).with_context(|| format!("writing {name}"))
        };
        write("ca.pem", ca_pem)?;
        write("other-ca.pem", other_ca_pem)?;
        let (rogue, rogue_key) = leaf(&other_ca, None)?;
        write("rogue.pem", rogue)?;
        write("rogue.key", rogue_key)?;
        for service in SERVICES {
            let (cert, key) = leaf(&ca, Some(service))?;
            write(&format!("{service}.pem"), cert)?;
            write(&format!("{service}.key"), key)?;
        }
        let pki = Self { dir, ca };
        pki.reissue_server()?;
        Ok(pki)
    }

    /// Writes a new server certificate and key, signed by the CA, over the old ones.
    pub fn reissue_server(&self) -> anyhow::Result<()> {
        let (cert, key) = leaf(&self.ca, None)?;
        // The key first: a server reloading in between fails on a mismatched pair and
        // keeps the old one until the certificate lands too.
        std::fs::write(self.server_key_file(), key)?;
        std::fs::write(self.server_cert_file(), cert)?;
        Ok(())
    }

    /// A certificate and key signed by the other CA (a client no server here trusts).
    pub fn rogue_cert_file(&self) -> PathBuf {
        self.dir.path().join("rogue.pem")
    }

    pub fn rogue_key_file(&self) -> PathBuf {
        self.dir.path().join("rogue.key")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing here.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The certificate of `service` (one of [`SERVICES`]), naming it.
    pub fn service_cert_file(&self, service: &str) -> PathBuf {
        self.dir.path().join(format!("{service}.pem"))
    }

    pub fn service_key_file(&self, service: &str) -> PathBuf {
        self.dir.path().join(format!("{service}.key"))
    }
}

/// Returns a certificate for `localhost` and `127.0.0.1` signed by `issuer`, naming
/// `service` when given, and its key, as PEM.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    service: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    if let Some(service) = service {
        let uri = format!("{SERVICE_ID_PREFIX}{service}");
        params.subject_alt_names.push(SanType::URI(uri.try_into()?));
    }
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Returns a self-signed CA: its certificate (PEM) and its issuer.
fn new_ca() -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), Issuer::new(params, key)))
}
