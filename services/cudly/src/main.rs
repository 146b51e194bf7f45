//! `cudly`: the whole system in one process (ARCHITECTURE.md). Dev mode unless
//! `CUDLY_ENV=production`: missing secrets are generated once and kept under `.cudly/`.

use std::path::PathBuf;

use anyhow::Context;
use cudly::{Secrets, Stack, StackConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("cudly")?;
    cudly_common::config::warn_unknown_vars();
    let secrets = if cudly_common::config::is_dev_mode() {
        let dir = PathBuf::from(
            cudly_common::config::var("CUDLY_DEV_DIR").unwrap_or_else(|| ".cudly".to_owned()),
        );
        let (secrets, files) =
            Secrets::load_or_create_dev(&dir).context("preparing dev-mode secrets")?;
        println!(
            "dev mode: credential key in {}",
            files.credential_key.display()
        );
        println!(
            "dev mode: admin key and internal tokens in {}",
            files.secrets_env.display()
        );
        secrets
    } else {
        Secrets::from_env().context("production mode needs every secret in the environment")?
    };
    let config = StackConfig::from_env(secrets).context("invalid configuration")?;
    let mut stack = Stack::start(config).await?;
    println!("gateway listening on {}", stack.gateway_url());
    tokio::select! {
        _ = cudly_common::grpc::shutdown_signal() => {}
        failure = stack.wait_for_failure() => failure?,
    }
    stack.stop().await
}
