//! `cudly keys`: list, create and revoke API keys (docs/design/API.md, Keys). A new key
//! is printed once, by design: only its hash is stored.

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{Client, segment};
use super::exit::{CliResult, ExitStatus};
use super::output::{self, Output, list, text, time};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Lists the API keys (never the keys themselves).
    List,
    /// Creates an API key and prints it, once.
    Create(CreateArgs),
    /// Revokes an API key: requests with it fail from then on.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A unique name, recorded as the actor of what the key does (`key:<name>`).
    #[arg(long)]
    pub name: String,
    /// admin (everything) or viewer (read only).
    #[arg(long, value_parser = ["admin", "viewer"])]
    pub role: String,
    /// When the key stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z); absent: never.
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id.
    pub id: String,
}

pub async fn run(
    command: KeysCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    match command {
        KeysCommand::List => {
            let reply = client.get("/api/keys").await?;
            if out.is_json() {
                out.json(&reply)?;
                return Ok(ExitStatus::Success);
            }
            let mut table =
                output::table(&["ID", "NAME", "ROLE", "CREATED", "LAST USED", "EXPIRES"]);
            for key in list(&reply, "keys") {
                table.add_row(output::row([
                    text(&key["id"]),
                    text(&key["name"]),
                    text(&key["role"]),
                    time(&key["created_at"]),
                    time(&key["last_used_at"]),
                    time(&key["expires_at"]),
                ]));
            }
            out.table(&table)?;
        }
        KeysCommand::Create(args) => {
            let mut body = json!({"name": args.name, "role": args.role});
            if let Some(expires_at) = &args.expires_at {
                body["expires_at"] = json!(expires_at);
            }
            let created = client.post("/api/keys", &body).await?;
            if out.is_json() {
                out.json(&created)?;
            } else {
                out.table(&output::details(vec![
                    ("id", text(&created["id"])),
                    ("name", text(&created["name"])),
                    ("role", text(&created["role"])),
                    ("expires", time(&created["expires_at"])),
                ]))?;
                out.line(&format!(
                    "key (shown this once, store it now): {}",
                    text(&created["key"])
                ))?;
            }
        }
        KeysCommand::Revoke(args) => {
            client
                .delete(&format!("/api/keys/{}", segment(&args.id)))
                .await?;
            if out.is_json() {
                out.json(&json!({"id": args.id, "revoked": true}))?;
            } else {
                out.line(&format!("key {} revoked", args.id))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}
