//! The `cudly-executor` binary: configuration from the environment, telemetry, metrics,
//! serve.
//!
//! `cudly-executor` serves the gRPC API. `cudly-executor rotate-notify-key` seals every
//! stored notification secret under `CUDLY_NOTIFY_KEY`, opening those under
//! `CUDLY_NOTIFY_OLD_KEY`, and exits.

use anyhow::Context;
use cudly_common::config::{Env, Layout, SecretSource};
use cudly_common::metrics::standalone_addr;

const USAGE: &str = "usage: cudly-executor [rotate-notify-key]

  (no command)       serve the executor gRPC API
  rotate-notify-key  re-encrypt every stored notification secret under CUDLY_NOTIFY_KEY
                     (secrets under CUDLY_NOTIFY_OLD_KEY are decrypted with it)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None => serve().await,
        Some("rotate-notify-key") => rotate().await,
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(_) => anyhow::bail!("unknown command\n{USAGE}"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("executor")?;
    let env = Env::process();
    let config = cudly_executor::config::Config::read(&env, &env, Layout::Standalone)
        .context("invalid configuration")?;
    let metrics_addr = standalone_addr(&env, "executor").context("invalid configuration")?;
    env.report_unused_vars();
    let app = cudly_executor::app::App::build(config).await?;
    let metrics = cudly_common::metrics::spawn_standalone(metrics_addr, Some(app.readiness()));
    let result = app
        .run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await;
    metrics.cancel();
    result
}

async fn rotate() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("executor")?;
    let env = Env::process();
    let notify = cudly_notify::NotifyConfig::read(&env, env.notify_key()?)
        .context("invalid configuration")?;
    let database_url = env.database_url("executor");
    env.report_unused_vars();
    let report = cudly_executor::app::rotate_notify_key(&database_url, &notify).await?;
    println!(
        "notification key rotation done: {} re-encrypted, {} already under the current key",
        report.re_encrypted, report.already_current
    );
    Ok(())
}
