//! The secrets the stack needs, from the environment or, in dev mode, generated once
//! and kept in 0600 files under `.cudly/` (docs/design/ARCHITECTURE.md, Dev mode).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cudly_common::config::{ConfigError, ConfigResult, Env, SecretSource};
use cudly_common::grpc::{Caller, TokenDigest};
use rand::RngCore;
use secrecy::SecretString;

use crate::private_files::{create_private_dir, write_private};

/// Every secret of the system. `Debug` is not derived: nothing here may be printed.
#[derive(Clone)]
pub struct Secrets {
    /// 64 hex characters: the AES-256-GCM key of stored credentials.
    pub credential_key: SecretString,
    pub bootstrap_admin_key: SecretString,
    /// 64 hex characters: the key of notification channels and the outbox; none in
    /// production without `CUDLY_NOTIFY_KEY` (notifications off).
    pub notify_key: Option<SecretString>,
    internal_tokens: BTreeMap<&'static str, SecretString>,
}

/// Where dev mode keeps what it generated.
#[derive(Debug, Clone)]
pub struct DevSecretFiles {
    pub credential_key: PathBuf,
    pub secrets_env: PathBuf,
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

impl Secrets {
    /// Returns freshly generated secrets (tests).
    pub fn generate() -> Self {
        Self {
            credential_key: SecretString::from(random_hex(32)),
            bootstrap_admin_key: SecretString::from(format!("cudly_admin_{}", random_hex(24))),
            notify_key: Some(SecretString::from(random_hex(32))),
            internal_tokens: Caller::ALL
                .iter()
                .map(|caller| (caller.name(), SecretString::from(random_hex(32))))
                .collect(),
        }
    }

    /// Returns the internal token of `caller`.
    pub fn internal_token(&self, caller: Caller) -> SecretString {
        self.internal_tokens
            .get(caller.name())
            .cloned()
            .expect("every caller has a token")
    }

    /// Reads every secret from the environment; production mode refuses to start
    /// without any of them.
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let mut internal_tokens = BTreeMap::new();
        for caller in Caller::ALL {
            internal_tokens.insert(caller.name(), env.internal_token(caller)?);
        }
        Ok(Self {
            credential_key: env.credential_key()?,
            bootstrap_admin_key: env
                .bootstrap_admin_key()
                .ok_or_else(|| ConfigError::new("CUDLY_BOOTSTRAP_ADMIN_KEY", "must be set"))?,
            notify_key: env.notify_key()?,
            internal_tokens,
        })
    }

    /// Dev mode: takes each secret from the environment when given, else from the
    /// files under `dir`, generating and keeping whatever is missing.
    pub fn load_or_create_dev(env: &Env, dir: &Path) -> anyhow::Result<(Self, DevSecretFiles)> {
        create_private_dir(dir)?;
        let files = DevSecretFiles {
            credential_key: dir.join("credential.key"),
            secrets_env: dir.join("secrets.env"),
        };
        let credential_key = match env.secret_or_file("CUDLY_CREDENTIAL_KEY")? {
            Some(key) => key,
            None => {
                if !files.credential_key.exists() {
                    write_private(&files.credential_key, &format!("{}\n", random_hex(32)))?;
                }
                read_key_file(&files.credential_key)?
            }
        };
        let mut stored = read_env_file(&files.secrets_env)?;
        let mut changed = false;
        let mut take = |name: String, generate: &dyn Fn() -> String| -> SecretString {
            if let Some(value) = env.secret(&name) {
                return value;
            }
            let value = stored.entry(name).or_insert_with(|| {
                changed = true;
                generate()
            });
            SecretString::from(value.clone())
        };
        let bootstrap_admin_key = take("CUDLY_BOOTSTRAP_ADMIN_KEY".to_owned(), &|| {
            format!("cudly_admin_{}", random_hex(24))
        });
        let mut internal_tokens = BTreeMap::new();
        for caller in Caller::ALL {
            internal_tokens.insert(caller.name(), take(caller.token_var(), &|| random_hex(32)));
        }
        let notify_key = match env.notify_key()? {
            Some(key) => key,
            None => take("CUDLY_NOTIFY_KEY".to_owned(), &|| random_hex(32)),
        };
        if changed {
            let body: String = stored
                .iter()
                .map(|(name, value)| format!("{name}={value}\n"))
                .collect();
            write_private(&files.secrets_env, &body)?;
        }
        Ok((
            Self {
                credential_key,
                bootstrap_admin_key,
                notify_key: Some(notify_key),
                internal_tokens,
            },
            files,
        ))
    }
}

impl SecretSource for Secrets {
    fn internal_token(&self, caller: Caller) -> ConfigResult<SecretString> {
        Ok(Secrets::internal_token(self, caller))
    }

    fn internal_token_digest(&self, caller: Caller) -> ConfigResult<TokenDigest> {
        Ok(TokenDigest::of_secret(&Secrets::internal_token(
            self, caller,
        )))
    }

    /// The all-in-one process holds every token: its services are one process anyway.
    fn foreign_token_vars(&self, _own: Option<Caller>) -> Vec<String> {
        Vec::new()
    }

    fn credential_key(&self) -> ConfigResult<SecretString> {
        Ok(self.credential_key.clone())
    }

    fn bootstrap_admin_key(&self) -> Option<SecretString> {
        Some(self.bootstrap_admin_key.clone())
    }

    fn notify_key(&self) -> ConfigResult<Option<SecretString>> {
        Ok(self.notify_key.clone())
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading credential key file {}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn dev_secrets_are_generated_once_and_kept_private() {
        let dir = tempfile_dir();
        let (first, files) = Secrets::load_or_create_dev(&Env::empty(), &dir).unwrap();
        let (second, _) = Secrets::load_or_create_dev(&Env::empty(), &dir).unwrap();
        assert_eq!(
            first.credential_key.expose_secret(),
            second.credential_key.expose_secret()
        );
        assert_eq!(
            first.internal_token(Caller::Executor).expose_secret(),
            second.internal_token(Caller::Executor).expose_secret()
        );
        assert_eq!(first.credential_key.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [&files.credential_key, &files.secrets_env] {
                let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
            // The directory too, even one that existed with a looser mode.
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cudly-secrets-{}", random_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
