//! The `cudly-sweeper` binary: configuration from the environment, telemetry, metrics,
//! serve.

use anyhow::Context;
use cudly_common::config::{Env, Layout};
use cudly_common::metrics::standalone_addr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("sweeper")?;
    let env = Env::process();
    let config = cudly_sweeper::config::Config::read(&env, &env, Layout::Standalone)
        .context("invalid configuration")?;
    let metrics_addr = standalone_addr(&env, "sweeper").context("invalid configuration")?;
    env.report_unused_vars();
    let app = cudly_sweeper::app::App::build(config).await?;
    let metrics = cudly_common::metrics::spawn_standalone(metrics_addr, Some(app.readiness()));
    let result = app
        .run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await;
    metrics.cancel();
    result
}
