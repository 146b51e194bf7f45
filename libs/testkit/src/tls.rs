//! Certificates for TLS tests, generated in the test (rcgen): a CA, a server certificate
//! for `localhost` and `127.0.0.1` signed by it, and a second CA that signed nothing (a
//! client trusting only it must refuse the server).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// PEM files of a test PKI, in a temporary directory removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cudly-pki-")
            .tempdir_in("/tmp")?;
        let ca = new_ca()?;
        let other_ca = new_ca()?;
        let server_key = KeyPair::generate()?;
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
            .signed_by(&server_key, &ca.1)?;
        let write = |name: &str, text: String| -> anyhow::Result<()> {
            std::fs::write(dir.path().join(name), text).with_context(|| format!("writing {name}"))
        };
        write("ca.pem", ca.0)?;
        write("other-ca.pem", other_ca.0)?;
        write("server.pem", server.pem())?;
        write("server.key", server_key.serialize_pem())?;
        Ok(Self { dir })
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
}

/// Returns a self-signed CA: its certificate (PEM) and its issuer.
fn new_ca() -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), Issuer::new(params, key)))
}
