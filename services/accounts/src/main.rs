//! The `cudly-accounts` binary: configuration from the environment, telemetry, metrics,
//! serve.
//!
//! `cudly-accounts` serves the gRPC API. `cudly-accounts rotate-credential-key`
//! re-encrypts every stored credential under `CUDLY_CREDENTIAL_KEY`, decrypting with
//! `CUDLY_CREDENTIAL_OLD_KEY` where needed, and exits.

use anyhow::Context;
use cudly_common::config::{Env, Layout};
use cudly_common::metrics::standalone_addr;

const USAGE: &str = "usage: cudly-accounts [rotate-credential-key]

  (no command)           serve the accounts gRPC API
  rotate-credential-key  re-encrypt every stored credential under CUDLY_CREDENTIAL_KEY
                         (blobs under CUDLY_CREDENTIAL_OLD_KEY are decrypted with it)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None => serve().await,
        Some("rotate-credential-key") => rotate().await,
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(_) => anyhow::bail!("unknown command\n{USAGE}"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("accounts")?;
    let env = Env::process();
    let config = cudly_accounts::config::Config::read(&env, &env, Layout::Standalone)
        .context("invalid configuration")?;
    let metrics_addr = standalone_addr(&env, "accounts").context("invalid configuration")?;
    env.report_unused_vars();
    let app = cudly_accounts::app::App::build(config).await?;
    let metrics = cudly_common::metrics::spawn_standalone(metrics_addr, Some(app.readiness()));
    let result = app
        .run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await;
    metrics.cancel();
    result
}

async fn rotate() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("accounts")?;
    let env = Env::process();
    let config =
        cudly_accounts::config::RotationConfig::read(&env).context("invalid configuration")?;
    env.report_unused_vars();
    let report = cudly_accounts::app::rotate(config).await?;
    println!(
        "credential key rotation done: {} re-encrypted, {} already under the current key",
        report.re_encrypted, report.already_current
    );
    Ok(())
}
