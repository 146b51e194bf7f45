//! TLS to Redis (`rediss://`) by rustls. rustls picks its crypto from one process-wide
//! provider when several are compiled in (the AWS SDK brings aws-lc-rs; redis and sqlx
//! use ring), and redis's client asks for that default: install ring once.

/// Installs ring as the process's rustls provider, unless one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
