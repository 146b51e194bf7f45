//! `cudly audit export`: the audit trail of every service, every page (docs/design/API.md,
//! Audit). A table by default; `--format` streams the server's json, jsonl or csv.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::Client;
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::{self, Output, list, text, time};

/// Pages read at most, so that a server that keeps returning a cursor cannot keep the
/// export running forever (a million events at the largest page size).
const MAX_PAGES: usize = 1000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Exports the audit trail, oldest first, following every page (admin).
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Jsonl,
    Csv,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this actor, e.g. key:alice.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (account.update) or a target type's every action (account.*).
    #[arg(long)]
    pub action: Option<String>,
    /// The server's own format; default: a table, or json with --json.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Events per request, 1 to 1000.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub page_size: u32,
}

pub async fn run(
    command: AuditCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let AuditCommand::Export(args) = command;
    // A table is made from json pages too.
    let format = args.format.unwrap_or(Format::Json);
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        if page == MAX_PAGES {
            return Err(CliError::failure(format!(
                "the export did not end after {MAX_PAGES} pages: narrow it with --since and --until"
            )));
        }
        let query = [
            ("since", args.since.clone().unwrap_or_default()),
            ("until", args.until.clone().unwrap_or_default()),
            ("actor", args.actor.clone().unwrap_or_default()),
            ("action", args.action.clone().unwrap_or_default()),
            ("format", format.name().to_owned()),
            ("limit", args.page_size.to_string()),
            ("cursor", cursor.clone().unwrap_or_default()),
        ];
        let reply = client.get_text("/api/audit", &query).await?;
        match format {
            Format::Json => {
                let page_json: Value = serde_json::from_str(&reply.body).map_err(|error| {
                    CliError::failure(format!("the audit page is not json: {error}"))
                })?;
                events.extend(list(&page_json, "events").iter().cloned());
            }
            Format::Jsonl => out.raw(&reply.body)?,
            Format::Csv => {
                // Every page starts with the header line: keep the first one only.
                let body = if page == 0 {
                    reply.body.as_str()
                } else {
                    reply.body.split_once('\n').map_or("", |(_, rest)| rest)
                };
                out.raw(body)?;
            }
        }
        match reply.next_cursor {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => break,
        }
    }
    if format != Format::Json {
        return Ok(ExitStatus::Success);
    }
    if out.is_json() || args.format.is_some() {
        out.json(&json!({ "events": events }))?;
    } else {
        let mut table = output::table(&["AT", "SERVICE", "ACTOR", "ACTION", "TARGET", "REQUEST"]);
        for event in &events {
            table.add_row(output::row([
                time(&event["at"]),
                text(&event["service"]),
                text(&event["actor"]),
                text(&event["action"]),
                format!(
                    "{} {}",
                    text(&event["target_type"]),
                    text(&event["target_id"])
                ),
                text(&event["request_id"]),
            ]));
        }
        out.table(&table)?;
        out.line(&format!("{} events", events.len()))?;
    }
    Ok(ExitStatus::Success)
}
