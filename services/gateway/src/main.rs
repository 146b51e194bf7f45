//! The standalone gateway binary: production mode, so it refuses to start without its
//! internal token; the bootstrap admin key is optional.

use anyhow::Context;
use cudly_gateway::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("gateway")?;
    cudly_common::config::warn_unknown_vars();
    let config = Config::from_env().context("invalid configuration")?;
    let app = App::build(config).await?;
    app.run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await
}
