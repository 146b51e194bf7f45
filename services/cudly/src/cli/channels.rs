//! `cudly channels`: list, add and delete notification channels (docs/design/API.md,
//! Notifications). A channel's target and secret are write-only: no reply shows them,
//! but a webhook secret the server generated, printed once by `channels add`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, segment};
use super::config::SecretArg;
use super::exit::{CliResult, ExitStatus};
use super::output::{self, Output, list, text, time};

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Lists the notification channels (never their targets or secrets).
    List,
    /// Adds a notification channel; a webhook's generated signing secret is printed once.
    Add(AddArgs),
    /// Deletes a notification channel: nothing more is sent to it.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A unique name.
    #[arg(long)]
    pub name: String,
    /// How the channel is reached.
    #[arg(long, value_parser = ["webhook", "slack", "teams", "email"])]
    pub kind: String,
    /// The webhook URL, or comma-separated email addresses (email). A Slack or Teams
    /// URL is itself a credential: prefer the environment variable, which no process
    /// listing shows.
    #[arg(
        long,
        value_name = "URL|EMAILS",
        env = "CUDLY_CHANNEL_TARGET",
        hide_env_values = true
    )]
    pub target: SecretArg,
    /// A webhook's signing secret (32 to 256 characters); absent: the server generates
    /// one and this command prints it once.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CUDLY_CHANNEL_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<SecretArg>,
    /// An event the channel wants (repeatable, at least one): approval_requested,
    /// execution_finished, outcome_unknown, limit_refused, plan_paused,
    /// recommendations_failed, step_upcoming.
    #[arg(long = "event", value_name = "EVENT", required = true)]
    pub events: Vec<String>,
    /// Only events about this plan (repeatable); none: any plan.
    #[arg(long = "plan", value_name = "PLAN_ID")]
    pub plans: Vec<String>,
    /// Only events about this account (repeatable); none: any account.
    #[arg(long = "account", value_name = "ACCOUNT_ID")]
    pub accounts: Vec<String>,
    /// Read by named approvers only: approval links sent here may carry their token
    /// (webhook and email only).
    #[arg(long)]
    pub private: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The channel's id.
    pub id: String,
}

pub async fn run(
    command: ChannelsCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    match command {
        ChannelsCommand::List => {
            let reply = client.get("/api/notification-channels").await?;
            if out.is_json() {
                out.json(&reply)?;
                return Ok(ExitStatus::Success);
            }
            let mut table = output::table(&[
                "ID",
                "NAME",
                "KIND",
                "EVENTS",
                "PRIVATE",
                "PLANS",
                "ACCOUNTS",
                "FAILURES",
                "FAILING SINCE",
                "CREATED",
            ]);
            for channel in list(&reply, "channels") {
                table.add_row(output::row([
                    text(&channel["id"]),
                    text(&channel["name"]),
                    text(&channel["kind"]),
                    text(&channel["events"]),
                    text(&channel["private"]),
                    filter(&channel["plan_ids"]),
                    filter(&channel["account_ids"]),
                    text(&channel["consecutive_failures"]),
                    time(&channel["failing_since"]),
                    time(&channel["created_at"]),
                ]));
            }
            out.table(&table)?;
        }
        ChannelsCommand::Add(args) => {
            let created = client
                .post("/api/notification-channels", &add_body(&args))
                .await?;
            if out.is_json() {
                out.json(&created)?;
            } else {
                out.table(&output::details(vec![
                    ("id", text(&created["id"])),
                    ("name", text(&created["name"])),
                    ("kind", text(&created["kind"])),
                    ("events", text(&created["events"])),
                    ("private", text(&created["private"])),
                    ("plans", filter(&created["plan_ids"])),
                    ("accounts", filter(&created["account_ids"])),
                ]))?;
                if let Some(secret) = created["secret"].as_str() {
                    out.line(&format!(
                        "signing secret (shown this once, store it now): {secret}"
                    ))?;
                    out.line("the receiver checks X-Cudly-Signature with it")?;
                }
            }
        }
        ChannelsCommand::Delete(args) => {
            client
                .delete(&format!("/api/notification-channels/{}", segment(&args.id)))
                .await?;
            if out.is_json() {
                out.json(&json!({"id": args.id, "deleted": true}))?;
            } else {
                out.line(&format!("channel {} deleted", args.id))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Returns the POST body of `channels add`.
fn add_body(args: &AddArgs) -> Value {
    let mut body = json!({
        "name": args.name,
        "kind": args.kind,
        "target": args.target.expose(),
        "events": args.events,
        "private": args.private,
    });
    if let Some(secret) = &args.secret {
        body["secret"] = json!(secret.expose());
    }
    if !args.plans.is_empty() {
        body["plan_ids"] = json!(args.plans);
    }
    if !args.accounts.is_empty() {
        body["account_ids"] = json!(args.accounts);
    }
    body
}

/// Returns a plan or account filter as table text: `any` when empty, else the ids.
fn filter(ids: &Value) -> String {
    match ids.as_array() {
        Some(items) if !items.is_empty() => text(ids),
        _ => "any".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_holds_what_was_given_and_debug_hides_the_target_and_secret() {
        let args = AddArgs {
            name: "ops".to_owned(),
            kind: "webhook".to_owned(),
            target: SecretArg::from("https://hooks.example.com/s3cr3t".to_owned()),
            secret: Some(SecretArg::from("signing-s3cr3t".to_owned())),
            events: vec!["approval_requested".to_owned()],
            plans: Vec::new(),
            accounts: vec!["a".to_owned(), "b".to_owned()],
            private: true,
        };
        let body = add_body(&args);
        assert_eq!(body["target"], "https://hooks.example.com/s3cr3t");
        assert_eq!(body["secret"], "signing-s3cr3t");
        assert_eq!(body["account_ids"], json!(["a", "b"]));
        assert!(body.get("plan_ids").is_none());
        assert_eq!(body["private"], true);
        let printed = format!("{args:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert_eq!(filter(&json!([])), "any");
        assert_eq!(filter(&json!(["x"])), "x");
    }
}
