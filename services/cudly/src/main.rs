//! `cudly`: the whole system in one process (docs/design/ARCHITECTURE.md). Dev mode
//! unless `CUDLY_ENV=production`: missing secrets are generated once and kept under
//! `.cudly/`.

use std::path::PathBuf;

use anyhow::Context;
use cudly::{Secrets, Stack, StackConfig};
use cudly_common::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("cudly")?;
    let env = Env::process();
    let secrets = if env.is_dev_mode() {
        let dir = PathBuf::from(
            env.var("CUDLY_DEV_DIR")
                .unwrap_or_else(|| ".cudly".to_owned()),
        );
        let (secrets, files) =
            Secrets::load_or_create_dev(&env, &dir).context("preparing dev-mode secrets")?;
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
        Secrets::read(&env).context("production mode needs every secret in the environment")?
    };
    let config = StackConfig::read(&env, secrets).context("invalid configuration")?;
    env.report_unused_vars();
    let mut stack = Stack::start(config).await?;
    println!("gateway listening on {}", stack.gateway_url());
    println!("metrics of every service at {}", stack.metrics_url());
    tokio::select! {
        _ = cudly_common::grpc::shutdown_signal() => {}
        failure = stack.wait_for_failure() => failure?,
    }
    stack.stop().await
}
