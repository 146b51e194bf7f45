//! The `cudly-sweeper` binary: configuration from the environment, telemetry, serve.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("sweeper")?;
    cudly_common::config::warn_unknown_vars();
    let config = cudly_sweeper::config::Config::from_env().context("invalid configuration")?;
    let app = cudly_sweeper::app::App::build(config).await?;
    app.run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await
}
