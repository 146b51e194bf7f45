//! Where the all-in-one binary's AWS calls go. Dev mode never spends real money by
//! accident: it starts the AWS emulator in-process, seeded with the demo organisation
//! ([`crate::demo`]), and points every AWS client at it, unless `AWS_ENDPOINT_URL`
//! names an emulator the operator runs or the operator opts into real AWS explicitly
//! (`CUDLY_AWS=real`, or `cudly serve --aws real`). Production mode always talks to
//! AWS (through the SDK's own endpoint resolution).

#[cfg(feature = "emulator")]
use std::path::Path;

#[cfg(feature = "emulator")]
use anyhow::Context;
use cudly_accounts::config::SessionCredentials;
#[cfg(feature = "emulator")]
use cudly_aws_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use cudly_common::config::{ConfigError, ConfigResult, Env};
use secrecy::SecretString;

use crate::demo;
use crate::stack::StackConfig;

/// The variable that opts dev mode into real AWS.
pub const AWS_TARGET_VAR: &str = "CUDLY_AWS";

/// Where the stack's AWS calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsTarget {
    /// The emulator, started in this process (dev mode's default).
    Emulator,
    /// An endpoint the operator named with `AWS_ENDPOINT_URL` (an emulator they run).
    Endpoint(String),
    /// Amazon Web Services itself: production mode, or dev mode opted in.
    Real,
}

impl AwsTarget {
    /// Chooses the target: `flag` (`--aws`) wins over `CUDLY_AWS`; both take `real` or
    /// `emulator`. Dev mode without either uses `AWS_ENDPOINT_URL` when set, else the
    /// emulator; production mode is always [`AwsTarget::Real`].
    pub fn choose(env: &Env, flag: Option<&str>) -> ConfigResult<Self> {
        let asked = match flag {
            Some(value) => Some(value.to_owned()),
            None => env.var(AWS_TARGET_VAR),
        };
        let asked = match asked.as_deref().map(str::trim) {
            None => None,
            Some("real") => Some(Self::Real),
            Some("emulator") => Some(Self::Emulator),
            Some(_) => {
                return Err(ConfigError::new(
                    AWS_TARGET_VAR,
                    "must be `real` or `emulator` (also --aws)",
                ));
            }
        };
        if !env.is_dev_mode() {
            return match asked {
                Some(Self::Emulator) => Err(ConfigError::new(
                    AWS_TARGET_VAR,
                    "the in-process emulator is for dev mode only",
                )),
                _ => Ok(Self::Real),
            };
        }
        Ok(match (asked, env.var("AWS_ENDPOINT_URL")) {
            (Some(target), _) => target,
            (None, Some(endpoint)) => Self::Endpoint(endpoint),
            (None, None) => Self::Emulator,
        })
    }
}

/// The running in-process emulator (none in a build without the `emulator` feature).
#[cfg(feature = "emulator")]
pub type Emulator = SandboxHandle;
#[cfg(not(feature = "emulator"))]
pub type Emulator = std::convert::Infallible;

/// Stops the emulator, saving its state.
pub async fn stop_emulator(emulator: Emulator) {
    #[cfg(feature = "emulator")]
    emulator.shutdown().await;
    #[cfg(not(feature = "emulator"))]
    match emulator {}
}

/// Starts the emulator, its state kept in `dir` across restarts (what was bought
/// stays bought) and seeded with the demo organisation the first time.
#[cfg(feature = "emulator")]
pub async fn start_emulator(dir: &Path) -> anyhow::Result<SandboxHandle> {
    let state = dir.join("aws-emulator.json");
    let first_start = !state.exists();
    let handle = Sandbox::start(SandboxConfig::default().with_state_path(&state))
        .await
        .context("starting the in-process AWS emulator")?;
    if first_start {
        demo::seed(&handle.endpoint())
            .await
            .context("seeding the demo organisation")?;
    }
    Ok(handle)
}

/// Points every AWS client of `config` at the emulator at `endpoint`, with the demo
/// host account's keys as the services' own credentials, so the SDK neither reaches
/// AWS nor looks for credentials of its own (environment, profile, instance role).
pub fn point_at_emulator(config: &mut StackConfig, endpoint: &str) {
    config.set_aws(config.executor.aws.clone().with_endpoint(endpoint));
    config.accounts.aws_ambient_credentials = Some(SessionCredentials {
        access_key_id: demo::HOST_ACCESS_KEY_ID.to_owned(),
        secret_access_key: SecretString::from(demo::HOST_SECRET_ACCESS_KEY),
        session_token: None,
        expiration: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(pairs: &[(&str, &str)], flag: Option<&str>) -> ConfigResult<AwsTarget> {
        AwsTarget::choose(&Env::from_pairs(pairs.iter().copied()), flag)
    }

    const CREDENTIALS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIAREALLOOKING00001"),
        ("AWS_SECRET_ACCESS_KEY", "real-looking-secret"),
    ];

    #[test]
    fn dev_mode_uses_the_emulator_even_with_aws_credentials_in_the_environment() {
        assert_eq!(choose(&CREDENTIALS, None).unwrap(), AwsTarget::Emulator);
        assert_eq!(
            choose(&[("CUDLY_AWS", "emulator")], None).unwrap(),
            AwsTarget::Emulator
        );
    }

    #[test]
    fn real_aws_in_dev_mode_takes_an_explicit_opt_in() {
        assert_eq!(
            choose(&[("CUDLY_AWS", "real")], None).unwrap(),
            AwsTarget::Real
        );
        assert_eq!(choose(&CREDENTIALS, Some("real")).unwrap(), AwsTarget::Real);
        assert_eq!(
            choose(&[("CUDLY_AWS", "real")], Some("emulator")).unwrap(),
            AwsTarget::Emulator,
            "the flag wins over the variable"
        );
        let error = choose(&[("CUDLY_AWS", "yes")], None).unwrap_err();
        assert!(error.to_string().contains("CUDLY_AWS"), "{error}");
    }

    #[test]
    fn an_endpoint_the_operator_names_is_used_as_is() {
        let pairs = [("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")];
        assert_eq!(
            choose(&pairs, None).unwrap(),
            AwsTarget::Endpoint("http://127.0.0.1:4566".to_owned())
        );
    }

    #[test]
    fn production_mode_always_talks_to_aws_and_refuses_the_emulator() {
        let production = [("CUDLY_ENV", "production")];
        assert_eq!(choose(&production, None).unwrap(), AwsTarget::Real);
        assert!(choose(&production, Some("emulator")).is_err());
    }
}
