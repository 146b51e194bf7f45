//! Where the CLI finds the gateway and its API key, and the config file `cudly login`
//! writes.
//!
//! Each setting is taken from the first source that has it:
//! 1. the flags `--url` and `--api-key`;
//! 2. the environment: `CUDLY_URL`, `CUDLY_API_KEY`;
//! 3. the config file: `--config`, else `CUDLY_CONFIG`, else
//!    `<user config dir>/cudly/config.toml` (written by `cudly login`);
//! 4. local development: the URL `http://127.0.0.1:8080` and the bootstrap admin key of
//!    the dev secrets file `.cudly/secrets.env` (directory `CUDLY_DEV_DIR`), which the
//!    `cudly` server writes in dev mode. That key is only ever sent to a loopback URL,
//!    so a URL pointing elsewhere never receives a local secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::private_files::{create_private_dir, write_private};

use super::exit::{CliError, CliResult};

/// The gateway of a local `cudly` run.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
pub const URL_VAR: &str = "CUDLY_URL";
pub const API_KEY_VAR: &str = "CUDLY_API_KEY";
pub const CONFIG_VAR: &str = "CUDLY_CONFIG";
pub const DEV_DIR_VAR: &str = "CUDLY_DEV_DIR";
/// The dev directory when `CUDLY_DEV_DIR` is unset, as the server uses it.
const DEFAULT_DEV_DIR: &str = ".cudly";
const DEV_SECRETS_FILE: &str = "secrets.env";
const DEV_ADMIN_KEY: &str = "CUDLY_BOOTSTRAP_ADMIN_KEY";

/// Reads an environment variable; the process environment in production, a map in
/// tests (the process environment cannot safely be changed while tests run).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Returns a variable of the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A secret given on the command line or in the environment (an API key, an AWS
/// secret): kept in a [`SecretString`], so `Debug` of the parsed arguments never shows it.
#[derive(Clone)]
pub struct SecretArg(SecretString);

impl SecretArg {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn secret(&self) -> SecretString {
        self.0.clone()
    }
}

impl From<String> for SecretArg {
    fn from(text: String) -> Self {
        Self(SecretString::from(text))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// The global flags that locate the gateway.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub url: Option<String>,
    pub api_key: Option<SecretArg>,
    pub config: Option<PathBuf>,
}

/// Where the API key came from, for hints in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Flag,
    Environment,
    ConfigFile,
    DevSecrets,
    None,
}

/// The resolved settings of a command that talks to the gateway.
pub struct Settings {
    pub url: String,
    pub api_key: Option<SecretString>,
    pub key_source: KeySource,
}

/// The config file: `url` and `api_key`, both optional.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConfigFile")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Returns the settings of a command, from the sources in the module's order.
pub fn resolve(flags: &Flags, env: EnvLookup<'_>) -> CliResult<Settings> {
    let env_var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let mut url_opt = flags.url.clone().or_else(|| env_var(URL_VAR));
    let mut key_opt: Option<(SecretString, KeySource)> = flags
        .api_key
        .as_ref()
        .map(|flag| (flag.secret(), KeySource::Flag))
        .or_else(|| {
            env_var(API_KEY_VAR).map(|text| (SecretString::from(text), KeySource::Environment))
        });
    // The file is read only when needed, so that a broken file never stands in the way
    // of flags that say everything. Without a user config directory there is no file.
    if url_opt.is_none() || key_opt.is_none() {
        let file = match config_path(flags, env) {
            Ok(path) => read_config_file(&path)?,
            Err(_) => ConfigFile::default(),
        };
        url_opt = url_opt.or(file.url);
        if key_opt.is_none() {
            key_opt = file
                .api_key
                .filter(|text| !text.trim().is_empty())
                .map(|text| (SecretString::from(text), KeySource::ConfigFile));
        }
    }
    let url = normalize_url(url_opt.as_deref().unwrap_or(DEFAULT_URL))?;
    if key_opt.is_none() && is_loopback(&url) {
        key_opt = dev_admin_key(&dev_dir(env))?.map(|key| (key, KeySource::DevSecrets));
    }
    let (api_key, key_source) = match key_opt {
        Some((key, source)) => (Some(key), source),
        None => (None, KeySource::None),
    };
    Ok(Settings {
        url,
        api_key,
        key_source,
    })
}

/// Returns the config file's path: `--config`, `CUDLY_CONFIG`, or the user's config
/// directory.
pub fn config_path(flags: &Flags, env: EnvLookup<'_>) -> CliResult<PathBuf> {
    if let Some(path) = &flags.config {
        return Ok(path.clone());
    }
    if let Some(path) = env(CONFIG_VAR).filter(|path| !path.trim().is_empty()) {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|dir| dir.join("cudly").join("config.toml"))
        .ok_or_else(|| {
            CliError::usage(format!(
                "no user config directory on this system: pass --config or set {CONFIG_VAR}"
            ))
        })
}

/// Returns the dev directory of a local server.
fn dev_dir(env: EnvLookup<'_>) -> PathBuf {
    env(DEV_DIR_VAR)
        .filter(|dir| !dir.trim().is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DEV_DIR), PathBuf::from)
}

/// Reads the config file; a missing file is an empty one.
pub fn read_config_file(path: &Path) -> CliResult<ConfigFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigFile::default());
        }
        Err(error) => {
            return Err(CliError::failure(format!(
                "cannot read the config file {}: {error}",
                path.display()
            )));
        }
    };
    // Not the parser's message: it may quote the offending line, which may hold the key.
    toml::from_str(&text).map_err(|_| {
        CliError::failure(format!(
            "the config file {} is not valid (expected `url = \"...\"` and `api_key = \"...\"`)",
            path.display()
        ))
    })
}

/// Writes the config file readable by the owner only (0600, its directory 0700),
/// replacing it atomically.
pub fn write_config_file(path: &Path, config: &ConfigFile) -> CliResult<()> {
    let text = toml::to_string(config)
        .map_err(|error| CliError::failure(format!("cannot encode the config file: {error}")))?;
    let failed =
        |error: anyhow::Error| CliError::failure(format!("cannot save the config: {error:#}"));
    // A directory that exists (perhaps one the user named) keeps its mode; one made
    // here is the owner's only.
    if let Some(dir) = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty() && !dir.exists())
    {
        create_private_dir(dir).map_err(failed)?;
    }
    write_private(path, &text).map_err(failed)
}

/// Returns the URL without a trailing slash, or a usage error when it is not an
/// http(s) URL with a host.
pub fn normalize_url(url: &str) -> CliResult<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|error| CliError::usage(format!("invalid url {trimmed:?}: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(CliError::usage(format!(
            "invalid url {trimmed:?}: expected http://host[:port] or https://host[:port]"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Returns whether `url` names this machine.
fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    // An IPv6 host comes bracketed: `[::1]`.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    bare_host.eq_ignore_ascii_case("localhost")
        || bare_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Returns the bootstrap admin key of the dev secrets file in `dir`, if there is one.
fn dev_admin_key(dir: &Path) -> CliResult<Option<SecretString>> {
    let path = dir.join(DEV_SECRETS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(CliError::failure(format!(
                "cannot read {}: {error}",
                path.display()
            )));
        }
    };
    let values: BTreeMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect();
    Ok(values
        .get(DEV_ADMIN_KEY)
        .filter(|key| !key.is_empty())
        .map(|key| SecretString::from((*key).to_owned())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cudly-cli-config-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Returns an environment holding (a copy of) `vars`.
    fn lookup(vars: &HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + use<> {
        let vars = vars.clone();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let dir = temp_dir();
        let file = dir.join("config.toml");
        write_config_file(
            &file,
            &ConfigFile {
                url: Some("http://file.example:1".to_owned()),
                api_key: Some("from-file".to_owned()),
            },
        )
        .unwrap();
        let mut vars = HashMap::new();
        vars.insert(CONFIG_VAR, file.display().to_string());
        vars.insert(DEV_DIR_VAR, dir.display().to_string());
        let file_env = lookup(&vars);
        let from_file = resolve(&Flags::default(), &file_env).unwrap();
        assert_eq!(from_file.url, "http://file.example:1");
        assert_eq!(from_file.key_source, KeySource::ConfigFile);

        vars.insert(URL_VAR, "http://env.example:2/".to_owned());
        vars.insert(API_KEY_VAR, "from-env".to_owned());
        let env = lookup(&vars);
        let from_env = resolve(&Flags::default(), &env).unwrap();
        assert_eq!(from_env.url, "http://env.example:2");
        assert_eq!(
            from_env.api_key.unwrap().expose_secret(),
            "from-env",
            "the environment's key"
        );

        let flags = Flags {
            url: Some("http://flag.example:3".to_owned()),
            api_key: Some(SecretArg::from("from-flag".to_owned())),
            config: None,
        };
        let from_flags = resolve(&flags, &env).unwrap();
        assert_eq!(from_flags.url, "http://flag.example:3");
        assert_eq!(from_flags.key_source, KeySource::Flag);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_dev_admin_key_is_only_sent_to_a_loopback_url() {
        let dir = temp_dir();
        std::fs::write(
            dir.join(DEV_SECRETS_FILE),
            "CUDLY_INTERNAL_TOKEN_GATEWAY=x\nCUDLY_BOOTSTRAP_ADMIN_KEY=cudly_admin_dev\n",
        )
        .unwrap();
        let mut vars = HashMap::new();
        vars.insert(CONFIG_VAR, dir.join("absent.toml").display().to_string());
        vars.insert(DEV_DIR_VAR, dir.display().to_string());
        let env = lookup(&vars);
        let local = resolve(&Flags::default(), &env).unwrap();
        assert_eq!(local.url, DEFAULT_URL);
        assert_eq!(local.key_source, KeySource::DevSecrets);
        assert_eq!(local.api_key.unwrap().expose_secret(), "cudly_admin_dev");

        let remote_flags = Flags {
            url: Some("https://cudly.example.com".to_owned()),
            ..Flags::default()
        };
        let remote = resolve(&remote_flags, &env).unwrap();
        assert!(remote.api_key.is_none());
        assert_eq!(remote.key_source, KeySource::None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[cfg(unix)]
    #[test]
    fn the_config_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let path = dir.join("nested").join("config.toml");
        write_config_file(&path, &ConfigFile::default()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            normalize_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_url("127.0.0.1:8080").is_err());
        assert!(normalize_url("ftp://example.com").is_err());
        assert!(is_loopback("http://localhost:1"));
        assert!(is_loopback("http://[::1]:1"));
        assert!(!is_loopback("http://10.0.0.1:1"));
    }

    #[test]
    fn a_debug_print_never_shows_a_key() {
        let printed = format!(
            "{:?} {:?}",
            SecretArg::from("s3cr3t".to_owned()),
            ConfigFile {
                url: None,
                api_key: Some("s3cr3t".to_owned())
            }
        );
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }
}
