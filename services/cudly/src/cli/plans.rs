//! `cudly plans`: list, show and create plans, bind their accounts and start an
//! execution (docs/design/API.md, Plans).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{Client, segment};
use super::executions;
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::{self, Output, list, money, text, time};

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Lists every plan.
    List,
    /// Shows a plan.
    Show(IdArg),
    /// Creates a plan from options, or from a JSON file with the whole plan.
    Create(CreateArgs),
    /// Shows a plan's accounts, or replaces them.
    Accounts(AccountsArgs),
    /// Starts an execution of a plan (pending approval unless the plan auto-purchases).
    Start(StartArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The plan's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The plan's name.
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// A service to buy: ec2, savingsplans, rds, elasticache, memorydb, opensearch,
    /// redshift, or provider/service (repeatable).
    #[arg(
        long = "service",
        value_name = "SERVICE",
        required_unless_present = "file"
    )]
    pub services: Vec<String>,
    /// Term of every service, in years: 1 or 3.
    #[arg(long, default_value_t = 1)]
    pub term: u32,
    /// Payment of every service: no-upfront, partial-upfront or all-upfront.
    #[arg(long, default_value = "no-upfront")]
    pub payment: String,
    /// Percent of what is recommended or listed to buy, 0 to 100.
    #[arg(long, default_value_t = 100.0)]
    pub coverage: f64,
    /// What runs buy: `list` (the standing list) or `recommendations` (sized from Cost
    /// Explorer's recommendations).
    #[arg(long, value_parser = ["list", "recommendations"])]
    pub source: Option<String>,
    /// Ramp schedule: immediate, weekly-25pct or monthly-10pct.
    #[arg(long)]
    pub ramp: Option<String>,
    /// Runs are approved without a person (needs a rolling-window spend limit).
    #[arg(long)]
    pub auto_purchase: bool,
    /// The most one run may commit, in USD.
    #[arg(long, value_name = "USD")]
    pub max_commitment_per_run: Option<f64>,
    /// An account to bind (repeatable); none: every enabled account of the plan's
    /// providers.
    #[arg(long = "account", value_name = "ACCOUNT_ID")]
    pub accounts: Vec<String>,
    /// A JSON file holding the whole plan (the body of POST /api/plans).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "services"])]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AccountsArgs {
    /// The plan's id.
    pub id: String,
    /// Replaces the plan's accounts with these (repeatable).
    #[arg(long = "set", value_name = "ACCOUNT_ID", conflicts_with = "all")]
    pub set: Vec<String>,
    /// Binds the plan to every enabled account of its providers, now and later.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The plan's id.
    pub id: String,
    /// A JSON file with the recommendations to buy (an array, or an object with
    /// `recommendations`); without it, the plan's next ramp step.
    #[arg(long, value_name = "FILE")]
    pub recommendations: Option<PathBuf>,
    /// Prices and checks the execution; stores and buys nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Makes the start idempotent: the same key returns the same execution.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

pub async fn run(
    command: PlansCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    match command {
        PlansCommand::List => {
            let reply = client.get("/api/plans").await?;
            if out.is_json() {
                out.json(&reply)?;
            } else {
                out.table(&plans_table(list(&reply, "plans")))?;
            }
        }
        PlansCommand::Show(args) => {
            let plan = client
                .get(&format!("/api/plans/{}", segment(&args.id)))
                .await?;
            print_plan(out, &plan)?;
        }
        PlansCommand::Create(args) => {
            let body = match &args.file {
                Some(path) => read_json_file(path)?,
                None => plan_body(&args)?,
            };
            let plan = client.post("/api/plans", &body).await?;
            print_plan(out, &plan)?;
        }
        PlansCommand::Accounts(args) => {
            let path = format!("/api/plans/{}/accounts", segment(&args.id));
            let binding = if args.all {
                client.put(&path, &json!({"account_ids": []})).await?
            } else if !args.set.is_empty() {
                client.put(&path, &json!({"account_ids": args.set})).await?
            } else {
                client.get(&path).await?
            };
            print_binding(out, &binding)?;
        }
        PlansCommand::Start(args) => {
            let mut body = json!({});
            if let Some(path) = &args.recommendations {
                body["recommendations"] = recommendations_of(read_json_file(path)?, path)?;
            }
            let query = [(
                "dry_run",
                if args.dry_run {
                    "true".to_owned()
                } else {
                    String::new()
                },
            )];
            let created = client
                .post_with(
                    &format!("/api/plans/{}/executions", segment(&args.id)),
                    &query,
                    &body,
                    args.idempotency_key.as_deref(),
                )
                .await?;
            if out.is_json() {
                out.json(&created)?;
            } else {
                executions::print_created(out, client.base_url(), &created)?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Returns the plan body the options describe: every service with the same term,
/// payment and coverage.
fn plan_body(args: &CreateArgs) -> CliResult<Value> {
    let mut services = Map::new();
    for service in &args.services {
        let (provider, name) = service.split_once('/').unwrap_or(("aws", service.as_str()));
        services.insert(
            format!("{provider}/{name}"),
            json!({
                "provider": provider,
                "service": name,
                "term": args.term,
                "payment": args.payment,
                "coverage": args.coverage,
            }),
        );
    }
    let name = args
        .name
        .clone()
        .ok_or_else(|| CliError::usage("--name is required without --file"))?;
    let mut body = json!({"name": name, "services": services});
    if let Some(source) = &args.source {
        body["source"] = json!(source);
    }
    if let Some(ramp) = &args.ramp {
        body["ramp_schedule"] = json!({"type": ramp});
    }
    if args.auto_purchase {
        body["auto_purchase"] = json!(true);
    }
    if let Some(limit) = args.max_commitment_per_run {
        body["max_commitment_per_run"] = json!(limit);
    }
    if !args.accounts.is_empty() {
        body["account_ids"] = json!(args.accounts);
    }
    Ok(body)
}

/// Reads a JSON file given on the command line.
fn read_json_file(path: &Path) -> CliResult<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::usage(format!("cannot read {}: {error}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|error| CliError::usage(format!("{} is not json: {error}", path.display())))
}

/// Returns the recommendation array of a file: the array itself, or its
/// `recommendations`.
fn recommendations_of(file: Value, path: &Path) -> CliResult<Value> {
    match file {
        Value::Array(_) => Ok(file),
        Value::Object(mut object) => object.remove("recommendations").ok_or_else(|| {
            CliError::usage(format!(
                "{} holds no recommendations: expected an array or {{\"recommendations\": [...]}}",
                path.display()
            ))
        }),
        _ => Err(CliError::usage(format!(
            "{} holds no recommendations: expected an array",
            path.display()
        ))),
    }
}

fn plans_table(plans: &[Value]) -> comfy_table::Table {
    let mut table = output::table(&[
        "ID", "NAME", "ENABLED", "SOURCE", "SERVICES", "AUTO", "STEP", "NEXT RUN",
    ]);
    for plan in plans {
        let ramp = &plan["ramp_schedule"];
        table.add_row(output::row([
            text(&plan["id"]),
            text(&plan["name"]),
            text(&plan["enabled"]),
            text(&plan["source"]),
            services_of(plan),
            text(&plan["auto_purchase"]),
            format!(
                "{}/{}",
                text(&ramp["current_step"]),
                text(&ramp["total_steps"])
            ),
            time(&plan["next_execution_date"]),
        ]));
    }
    table
}

/// Returns `aws/ec2 (1y no-upfront 80%), ...`.
fn services_of(plan: &Value) -> String {
    let Some(services) = plan["services"].as_object() else {
        return "-".to_owned();
    };
    services
        .iter()
        .map(|(key, service)| {
            format!(
                "{key} ({}y {} {}%)",
                text(&service["term"]),
                text(&service["payment"]),
                text(&service["coverage"])
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_plan(out: &mut Output<'_>, plan: &Value) -> CliResult<()> {
    if out.is_json() {
        return out.json(plan);
    }
    let ramp = &plan["ramp_schedule"];
    out.table(&output::details(vec![
        ("id", text(&plan["id"])),
        ("name", text(&plan["name"])),
        ("enabled", text(&plan["enabled"])),
        ("paused because", text(&plan["paused_reason"])),
        ("source", text(&plan["source"])),
        ("services", services_of(plan)),
        ("auto purchase", text(&plan["auto_purchase"])),
        ("max per run", money(&plan["max_commitment_per_run"])),
        (
            "ramp",
            format!(
                "{}: step {}/{}, every {} days",
                text(&ramp["type"]),
                text(&ramp["current_step"]),
                text(&ramp["total_steps"]),
                text(&ramp["step_interval_days"])
            ),
        ),
        ("next run", time(&plan["next_execution_date"])),
        ("last run", time(&plan["last_execution_date"])),
        (
            "updated",
            format!(
                "{} by {}",
                time(&plan["updated_at"]),
                text(&plan["updated_by"])
            ),
        ),
    ]))
}

fn print_binding(out: &mut Output<'_>, binding: &Value) -> CliResult<()> {
    if out.is_json() {
        return out.json(binding);
    }
    if binding["all_enabled_accounts"].as_bool() == Some(true) {
        out.line("every enabled account of the plan's providers; now:")?;
    }
    let mut table = output::table(&["ID", "NAME", "PROVIDER", "EXTERNAL ID", "ENABLED"]);
    for account in list(binding, "accounts") {
        table.add_row(output::row([
            text(&account["id"]),
            text(&account["name"]),
            text(&account["provider"]),
            text(&account["external_id"]),
            text(&account["enabled"]),
        ]));
    }
    out.table(&table)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn create_args(args: &[&str]) -> CreateArgs {
        let cli = Cli::try_parse_from(["cudly", "plans", "create"].iter().chain(args)).unwrap();
        match cli.command {
            Some(Command::Plans(PlansCommand::Create(create))) => create,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_make_a_plan_body() {
        let args = create_args(&[
            "--name",
            "ladder",
            "--service",
            "rds",
            "--service",
            "aws/ec2",
            "--term",
            "3",
            "--payment",
            "all-upfront",
            "--coverage",
            "80",
            "--account",
            "a1",
        ]);
        let body = plan_body(&args).unwrap();
        assert_eq!(body["services"]["aws/rds"]["term"], 3);
        assert_eq!(body["services"]["aws/ec2"]["payment"], "all-upfront");
        assert_eq!(body["services"]["aws/ec2"]["coverage"], 80.0);
        assert_eq!(body["account_ids"], json!(["a1"]));
        assert!(body.get("ramp_schedule").is_none());
    }

    #[test]
    fn a_recommendation_file_is_an_array_or_an_envelope() {
        let path = Path::new("r.json");
        let line = json!({"service": "rds"});
        assert_eq!(
            recommendations_of(json!([line.clone()]), path).unwrap(),
            json!([line.clone()])
        );
        assert_eq!(
            recommendations_of(json!({"recommendations": [line.clone()]}), path).unwrap(),
            json!([line])
        );
        assert!(recommendations_of(json!("x"), path).is_err());
    }
}
