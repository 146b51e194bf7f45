//! The operator CLI of the `cudly` binary (docs/CLI.md): clap subcommands that speak
//! the REST API of a running gateway. Human-readable tables by default, the server's
//! JSON with `--json`, one-line errors with the server's message, and exit codes that
//! say what happened ([`exit`]).
//!
//! [`run`] executes a parsed command and writes to the writer it is given, so tests run
//! the CLI in-process and read what it printed.

mod accounts;
mod audit;
mod channels;
mod client;
mod completions;
mod config;
mod demo;
mod executions;
mod exit;
mod guardrails;
mod keys;
mod login;
mod notifications;
mod output;
mod plans;
mod recommendations;
mod watch;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use config::SecretArg;
pub use exit::ExitStatus;

use client::Client;
use config::Flags;
use exit::{CliError, CliResult};
use output::Output;

/// `cudly`: runs the whole system (no command, or `serve`), or operates a running one.
#[derive(Parser)]
#[command(
    name = "cudly",
    version,
    about = "CUDly: buys AWS Reserved Instances and Savings Plans across accounts",
    long_about = "Without a command, or with `serve`, runs the whole system in one process. \
                  The other commands operate a running gateway through its REST API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The gateway's URL [default: CUDLY_URL, the config file, then http://127.0.0.1:8080]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// The API key [default: CUDLY_API_KEY, the config file, then the local dev admin key]
    #[arg(long, global = true, value_name = "KEY")]
    pub api_key: Option<SecretArg>,
    /// Prints the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The config file [default: CUDLY_CONFIG, then <user config dir>/cudly/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cli")
            .field("command", &self.command)
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("json", &self.json)
            .field("config", &self.config)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the whole system in one process (the default).
    Serve(ServeArgs),
    /// Checks a gateway URL and API key and saves them in the config file (mode 0600).
    ///
    /// Give them with the global options: `cudly login --url URL --api-key KEY`.
    Login(login::LoginArgs),
    /// Cloud accounts: list, register, test credentials, discover an AWS organisation.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Purchase plans: list, create, bind accounts, start an execution.
    #[command(subcommand)]
    Plans(plans::PlansCommand),
    /// Executions: list, approve, cancel, retry, watch live.
    #[command(subcommand)]
    Executions(executions::ExecutionsCommand),
    /// Cost Explorer purchase recommendations.
    #[command(subcommand)]
    Recommendations(recommendations::RecommendationsCommand),
    /// Spend limits and approval rules.
    #[command(subcommand)]
    Guardrails(guardrails::GuardrailsCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Notification channels: list, add (webhook, Slack, Teams, email), delete.
    #[command(subcommand)]
    Channels(channels::ChannelsCommand),
    /// Notifications: each event for each channel and where its delivery stands.
    #[command(subcommand)]
    Notifications(notifications::NotificationsCommand),
    /// Registers the demo organisation, plans its recommendations and starts the plan.
    Demo(demo::DemoArgs),
    /// Prints a shell completion script.
    Completions(completions::CompletionsArgs),
}

/// How `cudly serve` reaches AWS.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// `real` AWS, or the in-process AWS `emulator` seeded with the demo organisation.
    #[arg(long, value_name = "real|emulator", value_parser = ["real", "emulator"])]
    pub aws: Option<String>,
}

/// Runs an operator command (anything but `serve`), printing to `out` and errors to
/// stderr; returns the process exit code (docs/CLI.md, Exit codes).
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> i32 {
    let mut errors = std::io::stderr();
    run_with(cli, out, &mut errors).await
}

/// As [`run`], with errors written to `errors` (one line each, `error: ...`).
pub async fn run_with(
    cli: Cli,
    out: &mut (dyn Write + Send),
    errors: &mut (dyn Write + Send),
) -> i32 {
    let Cli {
        command,
        url,
        api_key,
        json,
        config,
    } = cli;
    let flags = Flags {
        url,
        api_key,
        config,
    };
    let mut output = Output::new(out, json);
    let result = match command {
        Some(given) => execute(given, &flags, &mut output).await,
        None => Err(CliError::usage(
            "no command given: `cudly --help` lists them",
        )),
    };
    let flushed = output.flush();
    match result.and_then(|status| flushed.map(|()| status)) {
        Ok(status) => status.code(),
        Err(error) => {
            let _ = writeln!(errors, "error: {error}");
            let _ = errors.flush();
            error.status.code()
        }
    }
}

async fn execute(command: Command, flags: &Flags, out: &mut Output<'_>) -> CliResult<ExitStatus> {
    match command {
        Command::Serve(_) => Err(CliError::usage(
            "`serve` runs the server; the operator commands do not handle it",
        )),
        Command::Completions(args) => completions::run(&args, out),
        Command::Login(_) => login::run(flags, &config::process_env, out).await,
        Command::Accounts(sub) => accounts::run(sub, &connect(flags)?, out).await,
        Command::Plans(sub) => plans::run(sub, &connect(flags)?, out).await,
        Command::Executions(sub) => executions::run(sub, &connect(flags)?, out).await,
        Command::Recommendations(sub) => recommendations::run(sub, &connect(flags)?, out).await,
        Command::Guardrails(sub) => guardrails::run(sub, &connect(flags)?, out).await,
        Command::Keys(sub) => keys::run(sub, &connect(flags)?, out).await,
        Command::Audit(sub) => audit::run(sub, &connect(flags)?, out).await,
        Command::Channels(sub) => channels::run(sub, &connect(flags)?, out).await,
        Command::Notifications(sub) => notifications::run(sub, &connect(flags)?, out).await,
        Command::Demo(args) => demo::run(&args, &connect(flags)?, out).await,
    }
}

/// Returns a client of the gateway the flags, environment and files name.
fn connect(flags: &Flags) -> CliResult<Client> {
    Client::new(&config::resolve(flags, &config::process_env)?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_serve_and_serve_takes_the_aws_option() {
        let cli = Cli::try_parse_from(["cudly"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["cudly", "serve", "--aws", "emulator"]).unwrap();
        match cli.command {
            Some(Command::Serve(args)) => assert_eq!(args.aws.as_deref(), Some("emulator")),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["cudly", "serve", "--aws", "moon"]).is_err());
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli =
            Cli::try_parse_from(["cudly", "accounts", "list", "--json", "--url", "http://x:1"])
                .unwrap();
        assert!(cli.json);
        assert_eq!(cli.url.as_deref(), Some("http://x:1"));
        let printed = format!(
            "{:?}",
            Cli::try_parse_from(["cudly", "--api-key", "s3cr3t", "keys", "list"]).unwrap()
        );
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }
}
