//! `cudly`: the whole system in one process (docs/design/ARCHITECTURE.md), and the
//! operator CLI that speaks its REST API (docs/CLI.md).
//!
//! `cudly` (or `cudly serve`) runs the system. Dev mode unless `CUDLY_ENV=production`:
//! missing secrets are generated once and kept under `.cudly/`, and AWS is the
//! in-process emulator unless the operator opts into real AWS (`cudly::dev_aws`).
//! Every other subcommand is the CLI.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use cudly::cli::{Cli, Command};
use cudly::dev_aws::{self, AwsTarget};
use cudly::{Secrets, Stack, StackConfig};
use cudly_common::config::Env;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        None => runtime.block_on(serve(None)),
        Some(Command::Serve(ref args)) => runtime.block_on(serve(args.aws.clone())),
        Some(_) => {
            let code = runtime.block_on(cudly::cli::run(cli, &mut std::io::stdout()));
            std::process::exit(code);
        }
    }
}

async fn serve(aws_flag: Option<String>) -> anyhow::Result<()> {
    let _telemetry = cudly_telemetry::init("cudly")?;
    let env = Env::process();
    let dev_dir = PathBuf::from(
        env.var("CUDLY_DEV_DIR")
            .unwrap_or_else(|| ".cudly".to_owned()),
    );
    let secrets = if env.is_dev_mode() {
        let (secrets, files) =
            Secrets::load_or_create_dev(&env, &dev_dir).context("preparing dev-mode secrets")?;
        println!(
            "dev mode: credential key in {}",
            files.credential_key.display()
        );
        println!(
            "dev mode: admin key (CUDLY_BOOTSTRAP_ADMIN_KEY) and internal tokens in {}",
            files.secrets_env.display()
        );
        secrets
    } else {
        Secrets::read(&env).context("production mode needs every secret in the environment")?
    };
    let target = AwsTarget::choose(&env, aws_flag.as_deref()).context("invalid configuration")?;
    let mut config = StackConfig::read(&env, secrets).context("invalid configuration")?;
    env.report_unused_vars();
    let emulator: Option<dev_aws::Emulator> = match &target {
        #[cfg(not(feature = "emulator"))]
        AwsTarget::Emulator => anyhow::bail!(
            "this build of cudly has no AWS emulator (the production image): set \
             AWS_ENDPOINT_URL to an emulator you run, or CUDLY_AWS=real to use real AWS"
        ),
        #[cfg(feature = "emulator")]
        AwsTarget::Emulator => {
            let emulator = dev_aws::start_emulator(&dev_dir).await?;
            dev_aws::point_at_emulator(&mut config, &emulator.endpoint());
            println!(
                "dev mode: AWS is the in-process emulator at {} (nothing real is bought; \
                 state in {})",
                emulator.endpoint(),
                dev_dir.join("aws-emulator.json").display()
            );
            Some(emulator)
        }
        AwsTarget::Endpoint(endpoint) => {
            println!("dev mode: AWS calls go to AWS_ENDPOINT_URL={endpoint}");
            None
        }
        AwsTarget::Real if env.is_dev_mode() => {
            println!(
                "!!! dev mode with REAL AWS (CUDLY_AWS=real / --aws real): purchases spend real money !!!"
            );
            None
        }
        AwsTarget::Real => None,
    };
    let mut stack = Stack::start(config).await?;
    println!("gateway listening on {}", stack.gateway_url());
    println!("metrics of every service at {}", stack.metrics_url());
    if env.is_dev_mode() {
        println!("next, in another terminal: cudly demo");
    }
    let result = tokio::select! {
        _ = cudly_common::grpc::shutdown_signal() => Ok(()),
        failure = stack.wait_for_failure() => failure,
    };
    let stopped = stack.stop().await;
    if let Some(emulator) = emulator {
        dev_aws::stop_emulator(emulator).await;
    }
    result.and(stopped)
}
