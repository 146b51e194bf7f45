//! `cudly demo`: the whole flow on the demo organisation that dev mode seeds into its
//! AWS emulator ([`crate::demo`]), through REST only: register the organisation root
//! with its access keys, discover and enable its members, collect their Cost Explorer
//! recommendations, plan them (a plan sized from recommendations), bind the accounts,
//! start the plan and print how to approve and follow the execution.
//!
//! Running it again reuses what exists: the root (by external id), the plan (by name)
//! and a pending execution of that plan.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{Map, Value, json};

use super::client::{Client, segment};
use super::executions::{approval_link, print_created};
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::{Output, list, text};
use crate::demo::{ROOT_ACCESS_KEY_ID, ROOT_ACCOUNT_ID, ROOT_NAME, ROOT_SECRET_ACCESS_KEY};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The name of the demo plan (reused when it exists).
    #[arg(long, default_value = "CUDly demo", value_name = "NAME")]
    pub plan_name: String,
}

pub async fn run(args: &DemoArgs, client: &Client, out: &mut Output<'_>) -> CliResult<ExitStatus> {
    let human = !out.is_json();
    let root_id = root_account(client, out, human).await?;

    let discovery = client
        .post(
            "/api/accounts/discover-org",
            &json!({"org_root_account_id": root_id}),
        )
        .await?;
    let mut organisation = vec![root_id.clone()];
    let mut members = Vec::new();
    for member in list(&discovery, "accounts") {
        let id = text(&member["id"]);
        enable(client, &id).await?;
        organisation.push(id.clone());
        members.push(id);
    }
    if human {
        out.line(&format!(
            "organisation: {} member accounts discovered and enabled",
            members.len()
        ))?;
    }

    let refresh = client
        .post_slow("/api/recommendations/refresh", &json!({}))
        .await?;
    let recommendations = client
        .get_query(
            "/api/recommendations",
            &[("account_ids", organisation.join(","))],
        )
        .await?;
    let lines = list(&recommendations, "recommendations");
    if lines.is_empty() {
        let refresh_error = list(&refresh, "accounts")
            .iter()
            .find_map(|account| account["error"].as_str())
            .map(|error| format!(" (refresh: {error})"))
            .unwrap_or_default();
        return Err(CliError::failure(format!(
            "the demo organisation has no recommendations{refresh_error}: the server must use the AWS emulator (cudly serve --aws emulator)"
        )));
    }
    let services = plan_services(lines);
    let target_accounts = targets(lines, &services);
    if human {
        out.line(&format!(
            "recommendations: {} collected for {} accounts",
            lines.len(),
            target_accounts.len()
        ))?;
    }

    let plan_id = upsert_plan(client, &args.plan_name, services).await?;
    client
        .put(
            &format!("/api/plans/{}/accounts", segment(&plan_id)),
            &json!({ "account_ids": target_accounts }),
        )
        .await?;
    if human {
        out.line(&format!("plan: {} ({plan_id})", args.plan_name))?;
    }

    let pending = client
        .get_query(
            "/api/executions",
            &[
                ("plan_id", plan_id.clone()),
                ("status", "pending".to_owned()),
            ],
        )
        .await?;
    let (execution, reused) = match list(&pending, "executions").first() {
        Some(existing) => (existing.clone(), true),
        None => {
            let path = format!("/api/plans/{}/executions", segment(&plan_id));
            (client.post(&path, &json!({})).await?, false)
        }
    };
    let approval_url = execution["approval_token"]
        .as_str()
        .map(|token| approval_link(client.base_url(), &text(&execution["id"]), token));

    if human {
        if reused {
            out.line(
                "an earlier `cudly demo` started this execution; it still waits for approval",
            )?;
        }
        print_created(out, client.base_url(), &execution)?;
    } else {
        out.json(&json!({
            "root_account_id": root_id,
            "member_account_ids": members,
            "recommendations": lines.len(),
            "plan_id": plan_id,
            "reused_pending": reused,
            "approval_url": approval_url,
            "execution": execution,
        }))?;
    }
    Ok(ExitStatus::Success)
}

/// Returns the id of the demo organisation's root, registering it with its access keys
/// when it is not registered yet.
async fn root_account(client: &Client, out: &mut Output<'_>, human: bool) -> CliResult<String> {
    let found = client
        .get_query(
            "/api/accounts",
            &[
                ("provider", "aws".to_owned()),
                ("search", ROOT_ACCOUNT_ID.to_owned()),
            ],
        )
        .await?;
    if let Some(existing) = list(&found, "accounts")
        .iter()
        .find(|account| account["external_id"] == ROOT_ACCOUNT_ID)
    {
        let id = text(&existing["id"]);
        if human {
            out.line(&format!(
                "root: {ROOT_NAME} ({ROOT_ACCOUNT_ID}) already registered as {id}"
            ))?;
        }
        return Ok(id);
    }
    let created = client
        .post(
            "/api/accounts",
            &json!({
                "name": ROOT_NAME,
                "provider": "aws",
                "external_id": ROOT_ACCOUNT_ID,
                "aws_auth_mode": "access_keys",
                "aws_is_org_root": true,
                "credentials": {
                    "type": "aws_access_keys",
                    "access_key_id": ROOT_ACCESS_KEY_ID,
                    "secret_access_key": ROOT_SECRET_ACCESS_KEY,
                },
            }),
        )
        .await?;
    let id = text(&created["id"]);
    if human {
        out.line(&format!(
            "root: {ROOT_NAME} ({ROOT_ACCOUNT_ID}) registered as {id}"
        ))?;
    }
    Ok(id)
}

/// Enables a discovered member (discovery creates them disabled).
async fn enable(client: &Client, id: &str) -> CliResult<()> {
    let path = format!("/api/accounts/{}", segment(id));
    let mut account = client.get(&path).await?;
    if account["enabled"].as_bool() != Some(true) {
        account["enabled"] = json!(true);
        client.put(&path, &account).await?;
    }
    Ok(())
}

/// The term and payment a plan service buys (one of each per service).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    term: u64,
    payment: String,
}

/// Returns, per service key (`aws/rds`), the term and payment most recommendations
/// share: a plan buys one shape per service.
fn plan_services(lines: &[Value]) -> BTreeMap<String, Shape> {
    let mut counts: BTreeMap<String, BTreeMap<Shape, usize>> = BTreeMap::new();
    for line in lines {
        let (Some(service), Some(term), Some(payment)) = (
            line["service"].as_str(),
            line["term"].as_u64(),
            line["payment"].as_str(),
        ) else {
            continue;
        };
        let shape = Shape {
            term,
            payment: payment.to_owned(),
        };
        *counts
            .entry(format!("aws/{service}"))
            .or_default()
            .entry(shape)
            .or_default() += 1;
    }
    counts
        .into_iter()
        .filter_map(|(key, shapes)| {
            // The most common shape; on a tie the first in order, so reruns agree.
            let best =
                shapes
                    .into_iter()
                    .fold(
                        None,
                        |best: Option<(Shape, usize)>, (shape, count)| match best {
                            Some((_, best_count)) if best_count >= count => best,
                            _ => Some((shape, count)),
                        },
                    )?;
            Some((key, best.0))
        })
        .collect()
}

/// Returns the accounts with a recommendation the plan buys, in order of appearance.
fn targets(lines: &[Value], services: &BTreeMap<String, Shape>) -> Vec<String> {
    let mut accounts: Vec<String> = Vec::new();
    for line in lines {
        let key = format!("aws/{}", line["service"].as_str().unwrap_or_default());
        let bought = services.get(&key).is_some_and(|shape| {
            line["term"].as_u64() == Some(shape.term)
                && line["payment"].as_str() == Some(shape.payment.as_str())
        });
        let account = text(&line["cloud_account_id"]);
        if bought && !accounts.contains(&account) {
            accounts.push(account);
        }
    }
    accounts
}

/// Creates the demo plan, or updates the one of that name; returns its id.
async fn upsert_plan(
    client: &Client,
    name: &str,
    services: BTreeMap<String, Shape>,
) -> CliResult<String> {
    let mut plan_services = Map::new();
    for (key, shape) in services {
        let service = key.trim_start_matches("aws/").to_owned();
        plan_services.insert(
            key,
            json!({
                "provider": "aws",
                "service": service,
                "term": shape.term,
                "payment": shape.payment,
                "coverage": 100,
            }),
        );
    }
    let body = json!({
        "name": name,
        "source": "recommendations",
        "services": plan_services,
    });
    let plans = client.get("/api/plans").await?;
    let existing = list(&plans, "plans")
        .iter()
        .find(|plan| plan["name"] == name)
        .map(|plan| text(&plan["id"]));
    let plan = match existing {
        Some(id) => {
            client
                .put(&format!("/api/plans/{}", segment(&id)), &body)
                .await?
        }
        None => client.post("/api/plans", &body).await?,
    };
    Ok(text(&plan["id"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_buys_the_most_common_shape_of_each_service() {
        let line = |account: &str, service: &str, term: u64, payment: &str| json!({"cloud_account_id": account, "service": service, "term": term, "payment": payment});
        let lines = vec![
            line("a", "rds", 1, "no-upfront"),
            line("b", "rds", 1, "no-upfront"),
            line("c", "rds", 3, "all-upfront"),
            line("c", "ec2", 3, "all-upfront"),
        ];
        let services = plan_services(&lines);
        assert_eq!(
            services["aws/rds"],
            Shape {
                term: 1,
                payment: "no-upfront".to_owned()
            }
        );
        assert_eq!(services["aws/ec2"].term, 3);
        assert_eq!(targets(&lines, &services), vec!["a", "b", "c"]);
    }
}
