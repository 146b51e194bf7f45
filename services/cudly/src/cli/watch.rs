//! `cudly executions watch`: polls an execution until it ends, showing accounts done,
//! items bought and failed and the amount committed, with a progress bar (on stderr,
//! when it is a terminal) or, with `--json`, one JSON line per change and a last line
//! with the final execution.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::client::{Client, segment};
use super::exit::{CliResult, ExitStatus};
use super::output::{self, Output, list, usd};

/// The statuses an execution ends in (services/executor: completed,
/// partially_completed, failed, canceled, expired).
const TERMINAL: [&str; 5] = [
    "completed",
    "partially_completed",
    "failed",
    "canceled",
    "expired",
];
/// Polls that may fail in a row (a gateway restarting) before the watch gives up.
const MAX_FAILED_POLLS: u32 = 5;

/// Returns whether an execution in `status` will not change any more.
pub fn is_terminal(status: &str) -> bool {
    TERMINAL.contains(&status)
}

/// Returns the exit status of an ended execution: success only when it completed.
pub fn outcome(status: &str) -> ExitStatus {
    if status == "completed" {
        ExitStatus::Success
    } else {
        ExitStatus::Unsuccessful
    }
}

/// Where an execution stands, counted from its children and items.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub status: String,
    pub accounts_done: usize,
    pub accounts_total: usize,
    pub items_total: usize,
    pub items_bought: usize,
    pub items_failed: usize,
    pub items_skipped: usize,
    /// The total commitment (upfront + monthly × term) of the items bought, USD.
    pub committed: f64,
    /// The quoted total commitment of the whole execution, when quoted.
    pub quoted: Option<f64>,
}

impl Progress {
    /// Counts a root (its children) or a child (itself).
    pub fn of(execution: &Value) -> Self {
        let children = list(execution, "children");
        let units: Vec<&Value> = if children.is_empty() {
            vec![execution]
        } else {
            children.iter().collect()
        };
        let mut progress = Progress {
            status: execution["status"].as_str().unwrap_or("unknown").to_owned(),
            accounts_done: 0,
            accounts_total: units.len(),
            items_total: 0,
            items_bought: 0,
            items_failed: 0,
            items_skipped: 0,
            committed: 0.0,
            quoted: execution["quote"]["total_commitment"].as_f64(),
        };
        for unit in units {
            if unit["status"].as_str().is_some_and(is_terminal) {
                progress.accounts_done += 1;
            }
            for item in list(unit, "items") {
                progress.items_total += 1;
                match item["status"].as_str() {
                    Some("bought") => {
                        progress.items_bought += 1;
                        progress.committed +=
                            item["quote"]["total_commitment"].as_f64().unwrap_or(0.0);
                    }
                    Some("failed") => progress.items_failed += 1,
                    Some("skipped") => progress.items_skipped += 1,
                    _ => {}
                }
            }
        }
        if progress.items_total == 0 {
            // Items may not be listed yet: the root knows how many there are.
            progress.items_total = execution["total_items"]
                .as_u64()
                .and_then(|total| usize::try_from(total).ok())
                .unwrap_or(0);
        }
        progress
    }

    /// Returns the items that will not change any more.
    pub fn items_settled(&self) -> usize {
        self.items_bought + self.items_failed + self.items_skipped
    }

    /// Returns the JSON line of this progress.
    pub fn to_json(&self, id: &str) -> Value {
        json!({
            "id": id,
            "status": self.status,
            "accounts_done": self.accounts_done,
            "accounts_total": self.accounts_total,
            "items_total": self.items_total,
            "items_bought": self.items_bought,
            "items_failed": self.items_failed,
            "items_skipped": self.items_skipped,
            "committed": self.committed,
        })
    }

    /// Returns the one-line summary: `running: accounts 1/3, bought 4, failed 0,
    /// $1,200.00 committed`.
    pub fn summary(&self) -> String {
        let waiting = match self.status.as_str() {
            "pending" => " (waiting for approval)",
            "approved" => " (waiting to start)",
            _ => "",
        };
        let quoted = self
            .quoted
            .map(|amount| format!(" of {}", usd(amount)))
            .unwrap_or_default();
        format!(
            "{}{waiting}: accounts {}/{}, items bought {}, failed {}, {}{quoted} committed",
            self.status,
            self.accounts_done,
            self.accounts_total,
            self.items_bought,
            self.items_failed,
            usd(self.committed),
        )
    }
}

/// Polls execution `id` every `interval` until it ends; returns its outcome.
pub async fn watch(
    client: &Client,
    out: &mut Output<'_>,
    id: &str,
    interval: Duration,
) -> CliResult<ExitStatus> {
    let path = format!("/api/executions/{}", segment(id));
    // The first read fails the watch at once: an unknown id is not worth waiting for.
    let mut execution = client.get(&path).await?;
    let bar = progress_bar(out.is_json());
    let mut last: Option<Progress> = None;
    let mut failed_polls = 0;
    loop {
        let progress = Progress::of(&execution);
        if last.as_ref() != Some(&progress) {
            report(out, &bar, id, &progress)?;
            last = Some(progress.clone());
        }
        if is_terminal(&progress.status) {
            bar.finish_and_clear();
            return finish(out, id, &execution, &progress);
        }
        tokio::time::sleep(interval).await;
        match client.get(&path).await {
            Ok(next) => {
                execution = next;
                failed_polls = 0;
            }
            Err(error) if error.status == ExitStatus::Unavailable => {
                failed_polls += 1;
                if failed_polls >= MAX_FAILED_POLLS {
                    bar.finish_and_clear();
                    return Err(error);
                }
            }
            Err(error) => {
                bar.finish_and_clear();
                return Err(error);
            }
        }
    }
}

/// Returns the bar: drawn on stderr when it is a terminal (indicatif hides it
/// otherwise), never with `--json`, whose output is for programs.
fn progress_bar(json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} items  {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Shows a change: on the bar, or as a line when there is no bar to show it on.
fn report(out: &mut Output<'_>, bar: &ProgressBar, id: &str, progress: &Progress) -> CliResult<()> {
    if out.is_json() {
        let mut line = progress.to_json(id);
        line["type"] = json!("progress");
        return out.json_line(&line);
    }
    bar.set_length(u64::try_from(progress.items_total).unwrap_or(u64::MAX));
    bar.set_position(u64::try_from(progress.items_settled()).unwrap_or(u64::MAX));
    bar.set_message(progress.summary());
    if bar.is_hidden() {
        out.line(&progress.summary())?;
    }
    Ok(())
}

/// Prints the outcome and returns its exit status.
fn finish(
    out: &mut Output<'_>,
    id: &str,
    execution: &Value,
    progress: &Progress,
) -> CliResult<ExitStatus> {
    if out.is_json() {
        let mut line = progress.to_json(id);
        line["type"] = json!("final");
        line["execution"] = execution.clone();
        out.json_line(&line)?;
    } else {
        out.line(&format!("execution {id} {}", progress.summary()))?;
        let errors = std::iter::once(execution)
            .chain(list(execution, "children").iter())
            .filter_map(|unit| unit["error"].as_str())
            .collect::<Vec<_>>();
        for error in errors {
            out.line(&format!("  error: {error}"))?;
        }
        if progress.status != "completed" {
            out.line(&format!(
                "details: cudly executions show {id}{}",
                if matches!(progress.status.as_str(), "failed" | "partially_completed") {
                    format!("; buy what is missing: cudly executions retry {id}")
                } else {
                    String::new()
                }
            ))?;
        }
    }
    Ok(outcome(&progress.status))
}

/// Returns a table of the execution's children: account, status, items, commitment.
pub fn children_table(execution: &Value) -> comfy_table::Table {
    let mut table = output::table(&[
        "ACCOUNT",
        "STATUS",
        "BOUGHT",
        "FAILED",
        "ITEMS",
        "COMMITTED",
        "ERROR",
    ]);
    for child in list(execution, "children") {
        let progress = Progress::of(child);
        table.add_row(output::row([
            output::text(&child["cloud_account_id"]),
            progress.status.clone(),
            progress.items_bought.to_string(),
            progress.items_failed.to_string(),
            progress.items_total.to_string(),
            usd(progress.committed),
            output::text(&child["error"]),
        ]));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_children_and_items() {
        let execution = json!({
            "status": "running",
            "total_items": 3,
            "quote": {"total_commitment": 300.0},
            "children": [
                {"status": "completed", "items": [
                    {"status": "bought", "quote": {"total_commitment": 100.0}},
                    {"status": "bought", "quote": {"total_commitment": 50.5}},
                ]},
                {"status": "running", "items": [{"status": "in_flight"}, {"status": "failed"}]},
            ],
        });
        let progress = Progress::of(&execution);
        assert_eq!((progress.accounts_done, progress.accounts_total), (1, 2));
        assert_eq!(
            (
                progress.items_total,
                progress.items_bought,
                progress.items_failed
            ),
            (4, 2, 1)
        );
        assert!((progress.committed - 150.5).abs() < 1e-9);
        assert_eq!(
            progress.summary(),
            "running: accounts 1/2, items bought 2, failed 1, $150.50 of $300.00 committed"
        );
    }

    #[test]
    fn only_completed_is_a_success() {
        assert_eq!(outcome("completed"), ExitStatus::Success);
        for status in ["partially_completed", "failed", "canceled", "expired"] {
            assert!(is_terminal(status));
            assert_eq!(outcome(status).code(), 7, "{status}");
        }
        assert!(!is_terminal("pending") && !is_terminal("running"));
    }
}
