//! `cudly guardrails`: the spend limits and approval rules (docs/design/API.md, Quotes,
//! guardrails, identities).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::Client;
use super::exit::{CliError, CliResult, ExitStatus};
use super::output::{self, Output, money, text};

/// The fields PUT /api/guardrails takes (every one: the reply's `currency` and
/// `committed_in_window` are read-only).
const WRITABLE: [&str; 5] = [
    "max_execution_commitment",
    "max_window_commitment",
    "window_days",
    "require_different_approver",
    "price_tolerance_percent",
];

#[derive(Debug, Subcommand)]
pub enum GuardrailsCommand {
    /// Shows the guardrails and what the rolling window commits now.
    Show,
    /// Changes the guardrails named; the others keep their values.
    Set(SetArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The most one execution may commit, in USD; `none` for no limit.
    #[arg(long, value_name = "USD|none", value_parser = parse_limit)]
    pub max_execution_commitment: Option<Limit>,
    /// The most the executions approved in the window may commit together, in USD;
    /// `none` for no limit.
    #[arg(long, value_name = "USD|none", value_parser = parse_limit)]
    pub max_window_commitment: Option<Limit>,
    /// The rolling window, 1 to 366 days.
    #[arg(long, value_name = "DAYS")]
    pub window_days: Option<u32>,
    /// Whether the creator of an execution may not approve it.
    #[arg(long, value_name = "true|false")]
    pub require_different_approver: Option<bool>,
    /// How far a price may rise after approval and still be bought, 0 to 100.
    #[arg(long, value_name = "PERCENT")]
    pub price_tolerance_percent: Option<f64>,
}

/// A spend limit given on the command line: an amount, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit(pub Option<f64>);

fn parse_limit(text: &str) -> Result<Limit, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    text.trim()
        .parse::<f64>()
        .map(|amount| Limit(Some(amount)))
        .map_err(|_| format!("{text:?} is not an amount in USD or `none`"))
}

pub async fn run(
    command: GuardrailsCommand,
    client: &Client,
    out: &mut Output<'_>,
) -> CliResult<ExitStatus> {
    let guardrails = match command {
        GuardrailsCommand::Show => client.get("/api/guardrails").await?,
        GuardrailsCommand::Set(args) => {
            // PUT replaces every field: start from what is in force.
            let current = client.get("/api/guardrails").await?;
            let body = changed(&current, &args)?;
            client.put("/api/guardrails", &body).await?
        }
    };
    if out.is_json() {
        out.json(&guardrails)?;
    } else {
        print_guardrails(out, &guardrails)?;
    }
    Ok(ExitStatus::Success)
}

/// Returns the PUT body: the writable fields of `current` with the changes of `args`.
fn changed(current: &Value, args: &SetArgs) -> CliResult<Value> {
    let mut body = json!({});
    for field in WRITABLE {
        body[field] = current[field].clone();
    }
    let mut any = false;
    let mut set = |field: &str, value: Value| {
        body[field] = value;
        any = true;
    };
    if let Some(Limit(limit)) = args.max_execution_commitment {
        set("max_execution_commitment", json!(limit));
    }
    if let Some(Limit(limit)) = args.max_window_commitment {
        set("max_window_commitment", json!(limit));
    }
    if let Some(days) = args.window_days {
        set("window_days", json!(days));
    }
    if let Some(required) = args.require_different_approver {
        set("require_different_approver", json!(required));
    }
    if let Some(percent) = args.price_tolerance_percent {
        set("price_tolerance_percent", json!(percent));
    }
    if !any {
        return Err(CliError::usage(
            "nothing to set: name at least one guardrail (cudly guardrails set --help)",
        ));
    }
    Ok(body)
}

fn print_guardrails(out: &mut Output<'_>, guardrails: &Value) -> CliResult<()> {
    let limit = |value: &Value| {
        if value.is_null() {
            "no limit".to_owned()
        } else {
            money(value)
        }
    };
    out.table(&output::details(vec![
        (
            "max per execution",
            limit(&guardrails["max_execution_commitment"]),
        ),
        (
            "max per window",
            limit(&guardrails["max_window_commitment"]),
        ),
        (
            "window",
            format!("{} days", text(&guardrails["window_days"])),
        ),
        (
            "committed in window",
            money(&guardrails["committed_in_window"]),
        ),
        (
            "different approver",
            text(&guardrails["require_different_approver"]),
        ),
        (
            "price tolerance",
            format!("{}%", text(&guardrails["price_tolerance_percent"])),
        ),
        ("currency", text(&guardrails["currency"])),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_keeps_the_other_guardrails() {
        let current = json!({"max_execution_commitment": 5000.0, "max_window_commitment": null,
            "window_days": 30, "require_different_approver": true, "price_tolerance_percent": 5.0,
            "currency": "USD", "committed_in_window": 12.0});
        let args = SetArgs {
            max_execution_commitment: Some(Limit(None)),
            max_window_commitment: None,
            window_days: Some(10),
            require_different_approver: None,
            price_tolerance_percent: None,
        };
        let body = changed(&current, &args).unwrap();
        assert_eq!(
            body,
            json!({"max_execution_commitment": null, "max_window_commitment": null,
                "window_days": 10, "require_different_approver": true,
                "price_tolerance_percent": 5.0})
        );
        assert_eq!(parse_limit("none"), Ok(Limit(None)));
        assert_eq!(parse_limit("12.5"), Ok(Limit(Some(12.5))));
        assert!(parse_limit("lots").is_err());
    }
}
