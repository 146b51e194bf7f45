//! `cudly login`: checks a gateway URL and API key against the gateway, then keeps them
//! in the config file for the next commands.

use clap::Args;
use secrecy::SecretString;
use serde_json::json;

use super::client::Client;
use super::config::{self, ConfigFile, EnvLookup, Flags, KeySource, Settings};
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::Output;

/// `cudly login --url URL --api-key KEY` (the global options, or CUDLY_URL and
/// CUDLY_API_KEY).
#[derive(Debug, Args)]
pub struct LoginArgs {}

/// Checks the URL and key (any role may list keys) and writes the config file.
pub async fn run(flags: &Flags, env: EnvLookup<'_>, out: &mut Output<'_>) -> CliResult<ExitStatus> {
    let present = |value: Option<String>| value.filter(|text| !text.trim().is_empty());
    let given_url = present(flags.url.clone())
        .or_else(|| present(env(config::URL_VAR)))
        .ok_or_else(|| CliError::usage("login needs --url (or CUDLY_URL)"))?;
    let api_key = flags
        .api_key
        .as_ref()
        .map(|key| key.expose().to_owned())
        .or_else(|| present(env(config::API_KEY_VAR)))
        .ok_or_else(|| CliError::usage("login needs --api-key (or CUDLY_API_KEY)"))?;
    let url = config::normalize_url(&given_url)?;
    let settings = Settings {
        url: url.clone(),
        api_key: Some(SecretString::from(api_key.clone())),
        key_source: KeySource::Flag,
    };
    Client::new(&settings)?.get("/api/keys").await?;
    let path = config::config_path(flags, env)?;
    config::write_config_file(
        &path,
        &ConfigFile {
            url: Some(url.clone()),
            api_key: Some(api_key),
        },
    )?;
    if out.is_json() {
        out.json(&json!({"url": url, "config_file": path.display().to_string()}))?;
    } else {
        out.line(&format!(
            "logged in to {url}: settings saved to {} (readable by you only)",
            path.display()
        ))?;
    }
    Ok(ExitStatus::Success)
}
