//! `cudly notifications list`: each event for each channel and where its delivery stands
//! (docs/design/API.md, Notifications).

use clap::{Args, Subcommand};

use super::client::Client;
use super::exit::{CliResult, ExitStatus};
use super::output::{self, Output, list, text, time};

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Lists notifications, oldest first (admin).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the notifications about this execution.
    #[arg(long, value_name = "EXECUTION_ID")]
    pub execution: Option<String>,
    /// Only the notifications for this channel.
    #[arg(long, value_name = "CHANNEL_ID")]
    pub channel: Option<String>,
    /// At most this many, 1 to 1000 [default: 1000].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

pub async fn run(
    command: NotificationsCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let NotificationsCommand::List(args) = command;
    let query = [
        ("execution_id", args.execution.unwrap_or_default()),
        ("channel_id", args.channel.unwrap_or_default()),
        (
            "limit",
            args.limit
                .map(|limit| limit.to_string())
                .unwrap_or_default(),
        ),
    ];
    let reply = client.get_query("/api/notifications", &query).await?;
    if out.is_json() {
        out.json(&reply)?;
        return Ok(ExitStatus::Success);
    }
    let mut table = output::table(&[
        "CREATED",
        "EVENT",
        "CHANNEL",
        "EXECUTION",
        "STATE",
        "ATTEMPTS",
        "DELIVERED",
        "LAST ERROR",
        "ID",
    ]);
    for notification in list(&reply, "notifications") {
        table.add_row(output::row([
            time(&notification["created_at"]),
            text(&notification["event"]),
            text(&notification["channel_id"]),
            text(&notification["execution_id"]),
            text(&notification["state"]),
            text(&notification["attempts"]),
            time(&notification["delivered_at"]),
            text(&notification["last_error"]),
            text(&notification["id"]),
        ]));
    }
    out.table(&table)?;
    Ok(ExitStatus::Success)
}
