//! `cudly completions <shell>`: the shell completion script clap generates from the
//! command definitions, so it never falls behind them.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use super::exit::{CliResult, ExitStatus};
use super::output::Output;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script of `args.shell`, e.g. `cudly completions bash >
/// /etc/bash_completion.d/cudly`.
pub fn run(args: &CompletionsArgs, out: &mut Output<'_>) -> CliResult<ExitStatus> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "cudly", out.writer());
    Ok(ExitStatus::Success)
}
