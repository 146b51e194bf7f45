//! Dry runs (docs/design/DOMAIN.md "Quotes, dry run and spend limits"): the execution as
//! it would be created, priced and checked against the limits in a transaction that is
//! rolled back, then each EC2 purchase asked with DryRun whether it would be accepted.

use std::collections::HashMap;

use cudly_aws::purchase::{AwsService, PurchaseSpec};
use futures::future::join_all;
use uuid::Uuid;

use crate::error::ExecutorResult;
use crate::runner::accounts::Purpose;
use crate::service::{Created, ExecutionView, Executor};

/// The status a dry run's execution shows.
pub const DRY_RUN_STATUS: &str = "dry_run";

impl Executor {
    /// Turns the rolled-back creation into the dry run's reply: status `dry_run`, no
    /// approval token, and on each item the refusal, if any, of its purchase's dry run.
    pub(crate) async fn dry_run(&self, created: Created) -> ExecutorResult<Created> {
        let tolerance = {
            let mut conn = self.conn().await?;
            self.guardrails(&mut conn).await?.price_tolerance()
        };
        let mut view = created.view;
        let targets: Vec<Uuid> = view
            .children
            .iter()
            .filter_map(|child| child.row.cloud_account_id)
            .collect();
        let sessions = &self.pricer.sessions(&targets, Purpose::DryRun);
        let checks = view.children.iter().flat_map(|child| {
            let account_id = child.row.cloud_account_id.unwrap_or_default();
            child
                .items
                .iter()
                .filter(|item| item.recommendation.0.service == AwsService::Ec2)
                .map(move |item| async move {
                    let spec = PurchaseSpec {
                        limit_price: item.limit_price(tolerance),
                        ..PurchaseSpec::new(&item.recommendation.0, &item.idempotency_token)
                    };
                    let offering = item.offering_id.clone().unwrap_or_default();
                    let refusal = match sessions
                        .purchaser(account_id, &item.recommendation.0.region)
                        .await
                    {
                        Ok(purchaser) => purchaser
                            .check_purchase(&spec, &offering)
                            .await
                            .err()
                            .map(|error| error.to_string()),
                        Err(error) => Some(error.message),
                    };
                    ((item.execution_id, item.item_index), refusal)
                })
        });
        let refusals: HashMap<(Uuid, i32), Option<String>> = join_all(checks.collect::<Vec<_>>())
            .await
            .into_iter()
            .collect();
        mark(&mut view, &refusals);
        Ok(Created {
            view,
            approval_token: None,
            created: false,
        })
    }
}

/// Sets the dry-run status on the root and its children, and each refusal on its item.
fn mark(view: &mut ExecutionView, refusals: &HashMap<(Uuid, i32), Option<String>>) {
    view.row.status = DRY_RUN_STATUS.to_owned();
    view.row.approval_expires_at = None;
    for item in &mut view.items {
        if let Some(Some(refusal)) = refusals.get(&(item.execution_id, item.item_index)) {
            item.error = Some(crate::runner::stored_error(&format!(
                "dry run: the purchase would be refused: {refusal}"
            )));
        }
    }
    for child in &mut view.children {
        mark(child, refusals);
    }
}
