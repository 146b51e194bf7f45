//! The `cudly-planner` binary: configuration from the environment, telemetry, serve.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("planner")?;
    cudly_common::config::warn_unknown_vars();
    let config = cudly_planner::config::Config::from_env().context("invalid configuration")?;
    let app = cudly_planner::app::App::build(config).await?;
    app.run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await
}
