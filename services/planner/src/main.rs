//! The `cudly-planner` binary: configuration from the environment, telemetry, metrics,
//! serve.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("planner")?;
    cudly_common::config::warn_unknown_vars();
    let config = cudly_planner::config::Config::from_env().context("invalid configuration")?;
    let metrics = cudly_common::metrics::spawn_standalone("planner", "0.0.0.0:9092")?;
    let app = cudly_planner::app::App::build(config).await?;
    let result = app
        .run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await;
    metrics.cancel();
    result
}
