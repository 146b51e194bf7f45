//! `cudly recommendations`: collect Cost Explorer's purchase recommendations now, and
//! list what was collected (docs/design/API.md, Recommendations).

use clap::{Args, Subcommand};

use super::client::Client;
use super::exit::{CliResult, ExitStatus};
use super::output::{self, Output, list, money, text, time};

#[derive(Debug, Subcommand)]
pub enum RecommendationsCommand {
    /// Collects recommendations now (billed Cost Explorer calls); exits 1 when an
    /// account failed.
    Refresh,
    /// Lists the latest recommendations of enabled accounts.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this account's (repeatable).
    #[arg(long = "account", value_name = "ACCOUNT_ID")]
    pub accounts: Vec<String>,
    /// ec2, savingsplans, rds, elasticache, memorydb, opensearch or redshift.
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    /// 1 or 3 (years).
    #[arg(long)]
    pub term: Option<u32>,
    /// no-upfront, partial-upfront or all-upfront.
    #[arg(long)]
    pub payment: Option<String>,
}

pub async fn run(
    command: RecommendationsCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    match command {
        RecommendationsCommand::Refresh => {
            let report = client
                .post_slow("/api/recommendations/refresh", &serde_json::json!({}))
                .await?;
            let accounts = list(&report, "accounts");
            let failed = accounts.iter().any(|account| !account["error"].is_null());
            if out.is_json() {
                out.json(&report)?;
            } else {
                let mut table = output::table(&["ACCOUNT", "COLLECTED", "ERROR"]);
                for account in accounts {
                    table.add_row(output::row([
                        text(&account["cloud_account_id"]),
                        text(&account["collected"]),
                        text(&account["error"]),
                    ]));
                }
                out.table(&table)?;
                out.line(&format!(
                    "{} Cost Explorer calls made",
                    text(&report["calls"])
                ))?;
            }
            Ok(if failed {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            })
        }
        RecommendationsCommand::List(args) => {
            let query = [
                ("account_ids", args.accounts.join(",")),
                ("service", args.service.unwrap_or_default()),
                ("region", args.region.unwrap_or_default()),
                (
                    "term",
                    args.term.map(|term| term.to_string()).unwrap_or_default(),
                ),
                ("payment", args.payment.unwrap_or_default()),
            ];
            let reply = client.get_query("/api/recommendations", &query).await?;
            if out.is_json() {
                out.json(&reply)?;
                return Ok(ExitStatus::Success);
            }
            let mut table = output::table(&[
                "ACCOUNT",
                "SERVICE",
                "REGION",
                "TYPE",
                "TERM",
                "PAYMENT",
                "COUNT",
                "UPFRONT",
                "MONTHLY SAVINGS",
                "COLLECTED",
            ]);
            for line in list(&reply, "recommendations") {
                let resource = match line["details"]["hourly_commitment"].as_str() {
                    Some(hourly) => format!("{} (${hourly}/h)", text(&line["resource_type"])),
                    None => text(&line["resource_type"]),
                };
                table.add_row(output::row([
                    text(&line["account_external_id"]),
                    text(&line["service"]),
                    text(&line["region"]),
                    resource,
                    text(&line["term"]),
                    text(&line["payment"]),
                    text(&line["recommended_count"]),
                    money(&line["upfront_cost"]),
                    money(&line["monthly_savings"]),
                    time(&line["collected_at"]),
                ]));
            }
            out.table(&table)?;
            Ok(ExitStatus::Success)
        }
    }
}
