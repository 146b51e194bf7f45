//! `cudly-aws-sandbox`: serves the AWS sandbox over HTTP until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use cudly_aws_sandbox::{Sandbox, SandboxConfig};

/// A stateful emulator of the AWS APIs CUDly calls (STS, Organizations, EC2, Savings
/// Plans, RDS, ElastiCache, MemoryDB, OpenSearch, Redshift), all on one port.
///
/// Point SDK clients at it with AWS_ENDPOINT_URL=http://ADDR (or a per-service
/// AWS_ENDPOINT_URL_<SERVICE>); requests are attributed to the account owning the
/// SigV4 access key id. The control API lives under http://ADDR/_sandbox/ (accounts,
/// faults, ledger, state, reset, health).
#[derive(Debug, Parser)]
#[command(name = "cudly-aws-sandbox", version, about, long_about)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "CUDLY_SANDBOX_LISTEN", default_value = "127.0.0.1:4566")]
    listen: SocketAddr,

    /// JSON file of accounts, keys and roles: {"accounts": [{"account_id": ...,
    /// "access_keys": [...], "roles": [...], "organization_members": [...]}]}. Read at
    /// start and again on every POST /_sandbox/reset.
    #[arg(long, env = "CUDLY_SANDBOX_CONFIG")]
    config: Option<PathBuf>,

    /// File to persist state to (rewritten atomically after every change) and to
    /// reload it from at start, so commitments survive a restart.
    #[arg(long, env = "CUDLY_SANDBOX_STATE")]
    state: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let handle = Sandbox::start(SandboxConfig {
        listen: Some(args.listen),
        accounts: Vec::new(),
        config_path: args.config,
        state_path: args.state,
    })
    .await?;
    println!("cudly-aws-sandbox listening on {}", handle.endpoint());
    wait_for_signal().await?;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
