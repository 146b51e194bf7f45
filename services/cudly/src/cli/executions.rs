//! `cudly executions`: list, show, approve, cancel, retry and watch executions
//! (docs/design/API.md, Executions).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, segment};
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::{self, Output, list, money, text, time};
use super::watch::{self, Progress};

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// Lists root executions, newest first.
    List(ListArgs),
    /// Shows an execution with its accounts and items.
    Show(IdArg),
    /// Approves a pending execution, with its approval token or an admin key.
    Approve(DecideArgs),
    /// Cancels a pending execution, with its approval token or an admin key.
    Cancel(DecideArgs),
    /// Buys what a failed or partially completed execution did not (a new execution of
    /// the same lineage, approved).
    Retry(IdArg),
    /// Follows an execution until it ends; exits 0 when it completed, 7 otherwise.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this plan's executions.
    #[arg(long, value_name = "PLAN_ID")]
    pub plan: Option<String>,
    /// Only roots in this status (pending, approved, running, completed,
    /// partially_completed, failed, canceled, expired).
    #[arg(long)]
    pub status: Option<String>,
    /// Only roots with a child for this account (repeatable).
    #[arg(long = "account", value_name = "ACCOUNT_ID")]
    pub accounts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The execution's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The execution's id.
    pub id: String,
    /// The approval token from the creation reply; without it, the API key decides
    /// (admin only).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The execution's id.
    pub id: String,
    /// Seconds between two polls.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
}

pub async fn run(
    command: ExecutionsCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    match command {
        ExecutionsCommand::List(args) => list_executions(&args, client, out).await,
        ExecutionsCommand::Show(args) => {
            let execution = client
                .get(&format!("/api/executions/{}", segment(&args.id)))
                .await?;
            print_execution(out, &execution)
        }
        ExecutionsCommand::Approve(args) => decide(&args, "approve", client, out).await,
        ExecutionsCommand::Cancel(args) => decide(&args, "cancel", client, out).await,
        ExecutionsCommand::Retry(args) => {
            let path = format!("/api/executions/{}/retry", segment(&args.id));
            let execution = client.post(&path, &json!({})).await?;
            if out.is_json() {
                out.json(&execution)?;
            } else {
                let new_id = text(&execution["id"]);
                out.line(&format!(
                    "retry of {} created: execution {new_id} ({}); follow it: cudly executions watch {new_id}",
                    args.id,
                    text(&execution["status"])
                ))?;
            }
            Ok(ExitStatus::Success)
        }
        ExecutionsCommand::Watch(args) => {
            if !(args.interval.is_finite() && args.interval >= 0.1) {
                return Err(CliError::usage("--interval must be at least 0.1 seconds"));
            }
            let interval = Duration::from_secs_f64(args.interval);
            watch::watch(client, out, &args.id, interval).await
        }
    }
}

async fn list_executions(
    args: &ListArgs,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let query = [
        ("plan_id", args.plan.clone().unwrap_or_default()),
        ("status", args.status.clone().unwrap_or_default()),
        ("account_ids", args.accounts.join(",")),
    ];
    let reply = client.get_query("/api/executions", &query).await?;
    if out.is_json() {
        out.json(&reply)?;
        return Ok(ExitStatus::Success);
    }
    let mut table = output::table(&[
        "ID",
        "PLAN",
        "STATUS",
        "STEP",
        "ACCOUNTS",
        "ITEMS",
        "COMMITMENT",
        "CREATED",
    ]);
    for execution in list(&reply, "executions") {
        let progress = Progress::of(execution);
        table.add_row(output::row([
            text(&execution["id"]),
            text(&execution["plan_id"]),
            progress.status.clone(),
            text(&execution["step_number"]),
            format!("{}/{}", progress.accounts_done, progress.accounts_total),
            format!("{}/{}", progress.items_settled(), progress.items_total),
            money(&execution["quote"]["total_commitment"]),
            time(&execution["created_at"]),
        ]));
    }
    out.table(&table)?;
    Ok(ExitStatus::Success)
}

/// Approves or cancels (`action`) by token or by key.
async fn decide(
    args: &DecideArgs,
    action: &str,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let body = match &args.token {
        Some(token) => json!({ "token": token }),
        None => json!({}),
    };
    let path = format!("/api/executions/{}/{action}", segment(&args.id));
    let execution = client.post(&path, &body).await?;
    if out.is_json() {
        out.json(&execution)?;
    } else {
        out.line(&format!(
            "execution {} is {}",
            args.id,
            text(&execution["status"])
        ))?;
        if action == "approve" {
            out.line(&format!("follow it: cudly executions watch {}", args.id))?;
        }
    }
    Ok(ExitStatus::Success)
}

/// Prints an execution: its summary, its accounts and its items.
pub fn print_execution(out: &mut Output<'_>, execution: &Value) -> CliResult<ExitStatus> {
    if out.is_json() {
        out.json(execution)?;
        return Ok(ExitStatus::Success);
    }
    let progress = Progress::of(execution);
    out.table(&output::details(vec![
        ("id", text(&execution["id"])),
        ("status", progress.status.clone()),
        ("plan", text(&execution["plan_id"])),
        ("step", text(&execution["step_number"])),
        ("source", text(&execution["source"])),
        (
            "created",
            format!(
                "{} by {}",
                time(&execution["created_at"]),
                text(&execution["created_by"])
            ),
        ),
        ("approved by", text(&execution["approved_by"])),
        ("approval expires", time(&execution["approval_expires_at"])),
        ("progress", progress.summary()),
        ("upfront", money(&execution["quote"]["upfront"])),
        ("monthly", money(&execution["quote"]["monthly"])),
        (
            "total commitment",
            money(&execution["quote"]["total_commitment"]),
        ),
        ("error", text(&execution["error"])),
    ]))?;
    if !list(execution, "children").is_empty() {
        out.table(&watch::children_table(execution))?;
    }
    let mut items = output::table(&[
        "ACCOUNT",
        "#",
        "SERVICE",
        "REGION",
        "TYPE",
        "COUNT",
        "TERM",
        "PAYMENT",
        "STATUS",
        "COMMITMENT ID",
        "ERROR",
    ]);
    let children = list(execution, "children");
    let units: Vec<&Value> = if children.is_empty() {
        vec![execution]
    } else {
        children.iter().collect()
    };
    let mut any_item = false;
    for unit in units {
        for item in list(unit, "items") {
            any_item = true;
            let line = &item["recommendation"];
            items.add_row(output::row([
                text(&unit["cloud_account_id"]),
                text(&item["index"]),
                text(&line["service"]),
                text(&line["region"]),
                text(&line["resource_type"]),
                text(&line["count"]),
                text(&line["term"]),
                text(&line["payment"]),
                text(&item["status"]),
                text(&item["commitment_id"]),
                text(&item["error"]),
            ]));
        }
    }
    if any_item {
        out.table(&items)?;
    }
    Ok(ExitStatus::Success)
}

/// Returns the approval link of a new execution: the approval page, which shows the
/// execution and its quote and decides only by its forms (docs/APPROVAL_PAGE.md).
pub fn approval_link(base_url: &str, id: &str, token: &str) -> String {
    format!(
        "{base_url}/approve/{}?token={}",
        segment(id),
        segment(token)
    )
}

/// Prints a new execution (`plans start`, `demo`): what it buys, and how to approve and
/// follow it. The approval token is shown: it is what the approver needs.
pub fn print_created(out: &mut Output<'_>, base_url: &str, created: &Value) -> CliResult<()> {
    let id = text(&created["id"]);
    let status = text(&created["status"]);
    let progress = Progress::of(created);
    out.line(&format!(
        "execution {id} is {status}: {} items across {} accounts, {} total commitment ({} upfront)",
        progress.items_total,
        progress.accounts_total,
        money(&created["quote"]["total_commitment"]),
        money(&created["quote"]["upfront"]),
    ))?;
    if status == "dry_run" {
        out.line("dry run: nothing was stored or bought")?;
        return Ok(());
    }
    if let Some(token) = created["approval_token"].as_str() {
        out.line(&format!(
            "approval page: {}",
            approval_link(base_url, &id, token)
        ))?;
    }
    if status == "pending" {
        out.line(&format!("approve it:  cudly executions approve {id}"))?;
    }
    out.line(&format!("follow it:   cudly executions watch {id}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_approval_link_escapes_its_parts() {
        assert_eq!(
            approval_link("http://127.0.0.1:8080", "6f1c", "ab12"),
            "http://127.0.0.1:8080/approve/6f1c?token=ab12"
        );
    }
}
