//! Cost Explorer recommendations: the refresh (collected through the accounts service,
//! which holds the credentials), the list, and the sizing of a plan step from them
//! (docs/design/DOMAIN.md "Recommendations and sizing").

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{Planner, notices};
use crate::clients::Collection;
use crate::domain::plan::{Plan, PlanSource};
use crate::domain::recommendations::{
    CollectableAccount, FilterInput, Query, StoredRecommendation, assign_to_accounts,
    covered_by_root, listed_accounts, queries_for, validate_filter,
};
use crate::domain::run::{NothingToRun, RunList, step_to_run};
use crate::domain::sizing::{SizingInput, SizingRules, size_step};
use crate::error::{PlannerResult, db};
use crate::repo::{self, recommendations as stored};
use cudly_vocabulary::Recommendation;

/// The operator's recommendation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecommendationSettings {
    /// Cost Explorer calls one refresh may make at most.
    pub call_budget: u32,
    pub sizing: SizingRules,
}

/// What one account's refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRefresh {
    pub cloud_account_id: Uuid,
    pub collected: u32,
    pub error: Option<String>,
}

/// What a refresh did, per account, and the Cost Explorer calls it made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    pub accounts: Vec<AccountRefresh>,
    pub calls: u32,
}

impl RefreshReport {
    fn failed(&mut self, account_id: Uuid, error: &str) {
        self.accounts.push(AccountRefresh {
            cloud_account_id: account_id,
            collected: 0,
            error: Some(error.to_owned()),
        });
    }
}

impl Planner {
    /// Collects recommendations once at each enabled organization root for the
    /// registered accounts its organization lists, then per account for the enabled
    /// accounts no root covered. Each collection's sets replace the stored ones in one
    /// transaction; an account whose collection failed keeps its previous set and is
    /// reported with the error, and one `recommendations_failed` notification names
    /// every such account (staged with their errors, in one transaction at the end;
    /// also when the refresh stopped half-way). With a fencing token, a newer holder's
    /// token refuses it.
    pub async fn refresh_recommendations(
        &self,
        fencing: Option<(&str, i64)>,
    ) -> PlannerResult<RefreshReport> {
        let mut conn = self.connection().await?;
        if let Some((task, token)) = fencing {
            super::check_task(task)?;
            repo::check_fencing(&mut conn, task, token).await?;
        }
        let queries = queries_for(&repo::list_plans(&mut conn).await?);
        drop(conn);
        let accounts = self.clients.collectable_accounts().await?;
        let mut report = RefreshReport::default();
        let collected = self.collect_all(&accounts, &queries, &mut report).await;
        let recorded = self.record_failures(&accounts, &report).await;
        collected?;
        recorded?;
        report.accounts.sort_by_key(|entry| entry.cloud_account_id);
        crate::metrics::recommendations_refreshed(report.calls);
        tracing::info!(
            accounts = report.accounts.len(),
            failed = report
                .accounts
                .iter()
                .filter(|entry| entry.error.is_some())
                .count(),
            calls = report.calls,
            "recommendations refreshed"
        );
        Ok(report)
    }

    /// Collects at each root, then at each account no root covered, storing each
    /// collection as it comes; failures are only reported (see
    /// [`Self::record_failures`]).
    async fn collect_all(
        &self,
        accounts: &[CollectableAccount],
        queries: &[Query],
        report: &mut RefreshReport,
    ) -> PlannerResult<()> {
        let mut done: HashSet<Uuid> = HashSet::new();
        for root in accounts.iter().filter(|account| account.is_org_root) {
            let collection = self.collect(root.id, true, queries, report).await?;
            report.calls += collection.calls;
            if let Some(error) = &collection.error {
                // Its members are reached through it, and would be collected through it:
                // they keep their sets too.
                for reached in accounts.iter().filter(|account| {
                    (account.id == root.id || account.bastion_id == Some(root.id))
                        && done.insert(account.id)
                }) {
                    keep_previous(reached.id, error, report);
                }
                continue;
            }
            let covered: Vec<Uuid> =
                covered_by_root(accounts, &collection.organization_account_ids)
                    .into_iter()
                    .filter(|id| done.insert(*id))
                    .collect();
            self.store(accounts, &covered, collection, report).await?;
        }
        for account in accounts
            .iter()
            .filter(|account| !done.contains(&account.id))
        {
            let collection = self.collect(account.id, false, queries, report).await?;
            report.calls += collection.calls;
            match &collection.error {
                Some(error) => keep_previous(account.id, error, report),
                None => {
                    self.store(accounts, &[account.id], collection, report)
                        .await?
                }
            }
        }
        Ok(())
    }

    async fn collect(
        &self,
        account_id: Uuid,
        organization: bool,
        queries: &[Query],
        report: &RefreshReport,
    ) -> PlannerResult<Collection> {
        let remaining = self
            .recommendations
            .call_budget
            .saturating_sub(report.calls);
        self.clients
            .collect_recommendations(account_id, organization, queries, remaining)
            .await
    }

    /// Replaces the sets of `covered` with what `collection` holds for each, in one
    /// transaction.
    async fn store(
        &self,
        accounts: &[CollectableAccount],
        covered: &[Uuid],
        collection: Collection,
        report: &mut RefreshReport,
    ) -> PlannerResult<()> {
        let now = Utc::now();
        let sets = assign_to_accounts(accounts, covered, collection.recommendations);
        let mut tx = self.begin().await?;
        for account in accounts
            .iter()
            .filter(|account| covered.contains(&account.id))
        {
            let set = sets.get(&account.id).map(Vec::as_slice).unwrap_or_default();
            stored::replace_set(&mut tx, account.id, &account.external_id, set, now).await?;
            report.accounts.push(AccountRefresh {
                cloud_account_id: account.id,
                collected: u32::try_from(set.len()).unwrap_or(u32::MAX),
                error: None,
            });
        }
        tx.commit().await.map_err(db("commit recommendations"))?;
        Ok(())
    }

    /// Records why each failed account of `report` kept its previous set, and stages
    /// the `recommendations_failed` notification naming them, in one transaction.
    async fn record_failures(
        &self,
        accounts: &[CollectableAccount],
        report: &RefreshReport,
    ) -> PlannerResult<()> {
        let failed: Vec<(Uuid, &str)> = report
            .accounts
            .iter()
            .filter_map(|entry| Some((entry.cloud_account_id, entry.error.as_deref()?)))
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (account_id, error) in &failed {
            stored::record_failure(&mut tx, *account_id, error).await?;
        }
        let event = notices::recommendations_failed(accounts, &failed);
        notices::stage(&mut tx, &event).await?;
        tx.commit()
            .await
            .map_err(db("commit recommendation failures"))?;
        Ok(())
    }

    /// Returns the stored recommendations of enabled accounts that pass the filters
    /// (one account: only its own; none named: every enabled account's).
    pub async fn list_recommendations(
        &self,
        input: FilterInput,
    ) -> PlannerResult<Vec<StoredRecommendation>> {
        let filter = validate_filter(input)?;
        let enabled: Vec<Uuid> = self
            .clients
            .collectable_accounts()
            .await?
            .iter()
            .map(|account| account.id)
            .collect();
        let accounts = listed_accounts(&filter, &enabled);
        let mut conn = self.connection().await?;
        stored::list(&mut conn, &accounts, &filter).await
    }

    /// Returns what a run of `plan` without a given list buys: its standing list, or
    /// for a plan sized from recommendations the sized step, or why it buys nothing.
    pub(super) async fn run_list(
        &self,
        conn: &mut sqlx::PgConnection,
        plan: &Plan,
        targets: &[Uuid],
        now: DateTime<Utc>,
    ) -> PlannerResult<Result<(RunList, Vec<Recommendation>), NothingToRun>> {
        if plan.source == PlanSource::List {
            let standing = repo::get_recommendations(conn, plan.id)
                .await?
                .unwrap_or_default();
            return Ok(Ok((RunList::Standing, standing)));
        }
        let step = match step_to_run(plan, targets) {
            Ok(step) => step,
            Err(nothing) => return Ok(Err(nothing)),
        };
        let rules = self.recommendations.sizing;
        let recommendations = stored::list(conn, targets, &Default::default()).await?;
        let collected_at = stored::collected_at(conn, targets).await?;
        let since = plan.created_at.min(now - rules.cooldown) - TimeDelta::minutes(1);
        let purchases = self.clients.past_purchases(targets, since).await?;
        Ok(size_step(SizingInput {
            plan,
            step,
            targets,
            recommendations: &recommendations,
            collected_at: &collected_at,
            purchases: &purchases,
            rules,
            now,
        })
        .map(|sized| (RunList::Sized(sized), Vec::new())))
    }
}

/// Reports an account whose collection failed: it keeps its previous set.
fn keep_previous(account_id: Uuid, error: &str, report: &mut RefreshReport) {
    tracing::warn!(%account_id, error, "recommendations not collected; the previous set stays");
    report.failed(account_id, error);
}
