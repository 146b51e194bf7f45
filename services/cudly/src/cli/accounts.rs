//! `cudly accounts`: list, show and register cloud accounts, test their credentials,
//! discover an AWS organisation, enable and disable (docs/design/API.md, Accounts).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, segment};
use super::config::SecretArg;
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::{self, Output, list, text, time};

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Lists accounts, ordered by name.
    List(ListArgs),
    /// Shows an account.
    Show(IdArg),
    /// Registers an account, with its AWS access keys when given.
    Add(AddArgs),
    /// Tests an account's credentials (STS GetCallerIdentity); exits 1 when they fail.
    Test(IdArg),
    /// Registers the members of an AWS organisation through its root account (new
    /// members are created disabled).
    Discover(DiscoverArgs),
    /// Enables an account: plans target it again.
    Enable(IdArg),
    /// Disables an account: no plan targets it.
    Disable(IdArg),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The account's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// aws, azure or gcp.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only enabled accounts.
    #[arg(long, conflicts_with = "disabled")]
    pub enabled: bool,
    /// Only disabled accounts.
    #[arg(long)]
    pub disabled: bool,
    /// A part of the name or of the external id.
    #[arg(long)]
    pub search: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub name: String,
    /// The 12-digit AWS account id (Azure: the subscription id, GCP: the project id).
    #[arg(long)]
    pub external_id: String,
    #[arg(long, default_value = "aws")]
    pub provider: String,
    /// access_keys, role_arn, bastion or workload_identity_federation [default:
    /// access_keys]
    #[arg(long, value_name = "MODE")]
    pub auth_mode: Option<String>,
    /// The role to assume (role_arn, bastion and workload_identity_federation modes).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The ExternalId the role requires.
    #[arg(long, value_name = "ID")]
    pub role_external_id: Option<String>,
    /// Bastion mode: the account whose credentials assume the role.
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub bastion: Option<String>,
    /// The account is an AWS organisation root (discovery, consolidated
    /// recommendations).
    #[arg(long)]
    pub org_root: bool,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long, value_name = "EMAIL")]
    pub contact_email: Option<String>,
    /// Registers the account disabled.
    #[arg(long)]
    pub disabled: bool,
    /// AWS access key id (access_keys mode; the secret comes with it).
    #[arg(long, value_name = "ID")]
    pub access_key_id: Option<String>,
    /// AWS secret access key; prefer the environment variable, which no process
    /// listing shows.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CUDLY_AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<SecretArg>,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The organisation root account's id (registered with --org-root).
    pub root_id: String,
    /// The role assumed in the members [default: CudlyPurchaser].
    #[arg(long, value_name = "ROLE")]
    pub member_role: Option<String>,
}

pub async fn run(
    command: AccountsCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    match command {
        AccountsCommand::List(args) => {
            let enabled = match (args.enabled, args.disabled) {
                (true, _) => "true",
                (_, true) => "false",
                _ => "",
            };
            let query = [
                ("provider", args.provider.unwrap_or_default()),
                ("enabled", enabled.to_owned()),
                ("search", args.search.unwrap_or_default()),
            ];
            let reply = client.get_query("/api/accounts", &query).await?;
            if out.is_json() {
                out.json(&reply)?;
            } else {
                out.table(&accounts_table(list(&reply, "accounts")))?;
            }
            Ok(ExitStatus::Success)
        }
        AccountsCommand::Show(args) => {
            let account = client.get(&account_path(&args.id)).await?;
            print_account(out, &account)?;
            Ok(ExitStatus::Success)
        }
        AccountsCommand::Add(args) => {
            let account = client.post("/api/accounts", &account_body(&args)?).await?;
            print_account(out, &account)?;
            Ok(ExitStatus::Success)
        }
        AccountsCommand::Test(args) => {
            let path = format!("{}/test", account_path(&args.id));
            let result = client.post(&path, &json!({})).await?;
            let ok = result["ok"].as_bool() == Some(true);
            if out.is_json() {
                out.json(&result)?;
            } else if ok {
                out.line(&format!(
                    "ok: the credentials work, as {}",
                    text(&result["caller_identity"])
                ))?;
            } else {
                out.line(&format!("failed: {}", text(&result["error"])))?;
            }
            Ok(if ok {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            })
        }
        AccountsCommand::Discover(args) => discover(&args, client, out).await,
        AccountsCommand::Enable(args) => set_enabled(&args.id, true, client, out).await,
        AccountsCommand::Disable(args) => set_enabled(&args.id, false, client, out).await,
    }
}

fn account_path(id: &str) -> String {
    format!("/api/accounts/{}", segment(id))
}

/// Returns the POST body of a new account; credentials only with both keys.
fn account_body(args: &AddArgs) -> CliResult<Value> {
    let mut body = json!({
        "name": args.name,
        "provider": args.provider,
        "external_id": args.external_id,
    });
    let optional = [
        ("aws_auth_mode", &args.auth_mode),
        ("aws_role_arn", &args.role_arn),
        ("aws_external_id", &args.role_external_id),
        ("aws_bastion_id", &args.bastion),
        ("description", &args.description),
        ("contact_email", &args.contact_email),
    ];
    for (field, given) in optional {
        if let Some(value) = given {
            body[field] = json!(value);
        }
    }
    if args.org_root {
        body["aws_is_org_root"] = json!(true);
    }
    if args.disabled {
        body["enabled"] = json!(false);
    }
    if let Some(key_id) = &args.access_key_id {
        let secret = args.secret_access_key.as_ref().ok_or_else(|| {
            CliError::usage(
                "--access-key-id needs the secret: --secret-access-key or CUDLY_AWS_SECRET_ACCESS_KEY",
            )
        })?;
        if args.auth_mode.is_none() {
            body["aws_auth_mode"] = json!("access_keys");
        }
        body["credentials"] = json!({
            "type": "aws_access_keys",
            "access_key_id": key_id,
            "secret_access_key": secret.expose(),
        });
    }
    Ok(body)
}

async fn discover(
    args: &DiscoverArgs,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let mut body = json!({"org_root_account_id": args.root_id});
    if let Some(role) = &args.member_role {
        body["member_role_name"] = json!(role);
    }
    let result = client.post("/api/accounts/discover-org", &body).await?;
    if out.is_json() {
        out.json(&result)?;
        return Ok(ExitStatus::Success);
    }
    let mut table = output::table(&["ID", "NAME", "EXTERNAL ID", "NEW"]);
    for account in list(&result, "accounts") {
        table.add_row(output::row([
            text(&account["id"]),
            text(&account["name"]),
            text(&account["external_id"]),
            text(&account["created"]),
        ]));
    }
    out.table(&table)?;
    out.line(&format!(
        "discovered {}, created {}, skipped {}; new accounts are disabled: cudly accounts enable <id>",
        text(&result["discovered"]),
        text(&result["created"]),
        text(&result["skipped"])
    ))?;
    Ok(ExitStatus::Success)
}

/// Enables or disables an account: the full account is read and written back (PUT
/// replaces every field).
async fn set_enabled(
    id: &str,
    enabled: bool,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let path = account_path(id);
    let mut account = client.get(&path).await?;
    account["enabled"] = json!(enabled);
    let updated = client.put(&path, &account).await?;
    if out.is_json() {
        out.json(&updated)?;
    } else {
        out.line(&format!(
            "account {} ({}) is {}",
            text(&updated["name"]),
            text(&updated["id"]),
            if enabled { "enabled" } else { "disabled" }
        ))?;
    }
    Ok(ExitStatus::Success)
}

fn accounts_table(accounts: &[Value]) -> comfy_table::Table {
    let mut table = output::table(&[
        "ID",
        "NAME",
        "PROVIDER",
        "EXTERNAL ID",
        "AUTH",
        "ORG ROOT",
        "ENABLED",
        "CREDENTIALS",
    ]);
    for account in accounts {
        table.add_row(output::row([
            text(&account["id"]),
            text(&account["name"]),
            text(&account["provider"]),
            text(&account["external_id"]),
            text(&account["aws_auth_mode"]),
            text(&account["aws_is_org_root"]),
            text(&account["enabled"]),
            text(&account["credentials_configured"]),
        ]));
    }
    table
}

fn print_account(out: &mut Output<'_>, account: &Value) -> CliResult<()> {
    if out.is_json() {
        return out.json(account);
    }
    out.table(&output::details(vec![
        ("id", text(&account["id"])),
        ("name", text(&account["name"])),
        ("provider", text(&account["provider"])),
        ("external id", text(&account["external_id"])),
        ("enabled", text(&account["enabled"])),
        ("auth mode", text(&account["aws_auth_mode"])),
        ("role arn", text(&account["aws_role_arn"])),
        ("bastion", text(&account["aws_bastion_id"])),
        ("org root", text(&account["aws_is_org_root"])),
        ("credentials", text(&account["credentials_configured"])),
        ("description", text(&account["description"])),
        ("contact", text(&account["contact_email"])),
        ("created", time(&account["created_at"])),
        ("updated", time(&account["updated_at"])),
    ]))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn access_keys_become_inline_credentials() {
        let cli = Cli::try_parse_from([
            "cudly",
            "accounts",
            "add",
            "--name",
            "prod",
            "--external-id",
            "123456789012",
            "--access-key-id",
            "AKIAEXAMPLE",
            "--secret-access-key",
            "s3cr3t",
        ])
        .unwrap();
        let Some(Command::Accounts(AccountsCommand::Add(args))) = cli.command else {
            panic!("not accounts add");
        };
        assert!(!format!("{args:?}").contains("s3cr3t"));
        let body = account_body(&args).unwrap();
        assert_eq!(body["aws_auth_mode"], "access_keys");
        assert_eq!(body["credentials"]["secret_access_key"], "s3cr3t");
        assert_eq!(body["provider"], "aws");
    }
}
