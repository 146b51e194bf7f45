//! The standalone gateway binary: production mode, so it refuses to start without its
//! internal token; the bootstrap admin key is optional.

use anyhow::Context;
use cudly_common::config::{Env, Layout};
use cudly_gateway::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("gateway")?;
    let env = Env::process();
    let config = Config::read(&env, &env, Layout::Standalone).context("invalid configuration")?;
    env.report_unused_vars();
    let app = App::build(config).await?;
    app.run_until_stopped(cudly_common::grpc::shutdown_signal())
        .await
}
