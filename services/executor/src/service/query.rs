//! Reads: one execution, roots newest first, purchase history, a plan's live roots.

use cudly_common::ApiError;
use uuid::Uuid;

use crate::error::ExecutorResult;
use crate::repo::executions::{self, RootFilter};
use crate::repo::history::{self, HistoryFilter, PurchaseRow};
use crate::service::{ExecutionView, Executor, view_of, views_of};

/// Filters of the purchase history.
pub type HistoryQuery = HistoryFilter;

impl Executor {
    /// Returns a root with its children and items, or a child with its items.
    pub async fn get(&self, id: Uuid) -> ExecutorResult<ExecutionView> {
        let mut conn = self.conn().await?;
        view_of(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")).into())
    }

    /// Returns roots, newest first, with their children.
    pub async fn list(&self, filter: &RootFilter) -> ExecutorResult<Vec<ExecutionView>> {
        let mut conn = self.conn().await?;
        let rows = executions::list_roots(&mut conn, filter).await?;
        views_of(&mut conn, rows).await
    }

    /// Returns purchases, newest first.
    pub async fn history(&self, filter: &HistoryQuery) -> ExecutorResult<Vec<PurchaseRow>> {
        let mut conn = self.conn().await?;
        history::list(&mut conn, filter).await
    }

    /// Returns a plan's non-terminal roots.
    pub async fn live_roots_of_plan(&self, plan_id: Uuid) -> ExecutorResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        executions::live_roots_of_plan(&mut conn, plan_id).await
    }
}
