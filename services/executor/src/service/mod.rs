//! The executor's operations, between the gRPC edge and the SQL: each takes domain
//! input, applies the rules of `domain` in one transaction through `repo`, and returns
//! views the edge turns into proto messages.

mod channels;
mod create;
mod decide;
mod dry_run;
mod guard;
mod query;
mod resolve;
mod retry;
mod sweep;

use std::collections::HashMap;

use cudly_common::ApiError;
use cudly_common::audit::{self, Actor};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use channels::relayed_event;
pub use create::{CreateRequest, Created};
pub use decide::Decision;
pub use guard::{GuardrailsUpdate, GuardrailsView};
pub use query::HistoryQuery;
pub use resolve::{AttemptTarget, ResolveRequest};
pub use sweep::{ExpireCounts, RedriveOutcome, SafeFailOutcome};

use crate::config::RunnerSettings;
use crate::error::{ExecutorError, ExecutorResult};
use crate::notices::Notices;
use crate::pricing::Pricer;
use crate::repo::executions::{self, ExecutionRow};
use crate::repo::items::{self, ItemRow};
use crate::runner::Runner;

/// An execution as shown: a root with its children (each with items), or a child with
/// its items.
#[derive(Debug, Clone)]
pub struct ExecutionView {
    pub row: ExecutionRow,
    pub items: Vec<ItemRow>,
    pub children: Vec<ExecutionView>,
}

/// The executor's operations.
#[derive(Clone)]
pub struct Executor {
    pool: PgPool,
    runner: Runner,
    pricer: Pricer,
}

impl Executor {
    /// The service's pool (its audit events are read straight from it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn new(pool: PgPool, runner: Runner) -> Self {
        Self {
            pool,
            pricer: runner.pricer(),
            runner,
        }
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The notifications this service raises.
    pub(crate) fn notices(&self) -> &Notices {
        self.runner.notices()
    }

    /// When `error` is a spend-limit refusal, notifies it. The refused change rolled
    /// back, so the event is written in a transaction of its own.
    pub(crate) async fn notify_refusal(&self, error: &ExecutorError, about: Refused<'_>) {
        if let ExecutorError::Api(ApiError {
            spend: Some(refusal),
            ..
        }) = error
        {
            let event =
                Notices::limit_refused(refusal, about.execution_id, about.plan_id, about.accounts);
            self.notices().raise_alone(&self.pool, &event).await;
        }
    }

    fn settings(&self) -> &RunnerSettings {
        self.runner.settings()
    }

    async fn conn(&self) -> ExecutorResult<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.pool
            .acquire()
            .await
            .map_err(ExecutorError::db("acquiring a connection"))
    }

    async fn begin(&self) -> ExecutorResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(ExecutorError::db("starting a transaction"))
    }
}

/// What a refused execution was about, for its notification.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused<'a> {
    /// None for a creation: nothing was created.
    pub execution_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub accounts: &'a [Uuid],
}

/// Returns the views of rows: roots get their children and items, children their items.
pub async fn views_of(
    conn: &mut PgConnection,
    rows: Vec<ExecutionRow>,
) -> ExecutorResult<Vec<ExecutionView>> {
    let root_ids: Vec<Uuid> = rows
        .iter()
        .filter(|row| row.is_root())
        .map(|row| row.id)
        .collect();
    let children = executions::children_of(conn, &root_ids).await?;
    let mut item_owner_ids: Vec<Uuid> = children.iter().map(|child| child.id).collect();
    item_owner_ids.extend(rows.iter().filter(|row| !row.is_root()).map(|row| row.id));
    let mut items_by_owner: HashMap<Uuid, Vec<ItemRow>> = HashMap::new();
    for item in items::items_of(conn, &item_owner_ids).await? {
        items_by_owner
            .entry(item.execution_id)
            .or_default()
            .push(item);
    }
    let mut children_by_root: HashMap<Uuid, Vec<ExecutionView>> = HashMap::new();
    for child in children {
        let Some(parent_id) = child.parent_id else {
            continue;
        };
        children_by_root
            .entry(parent_id)
            .or_default()
            .push(ExecutionView {
                items: items_by_owner.remove(&child.id).unwrap_or_default(),
                row: child,
                children: Vec::new(),
            });
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            if row.is_root() {
                ExecutionView {
                    children: children_by_root.remove(&row.id).unwrap_or_default(),
                    row,
                    items: Vec::new(),
                }
            } else {
                ExecutionView {
                    items: items_by_owner.remove(&row.id).unwrap_or_default(),
                    row,
                    children: Vec::new(),
                }
            }
        })
        .collect())
}

/// Returns the view of one execution, if it exists.
pub async fn view_of(conn: &mut PgConnection, id: Uuid) -> ExecutorResult<Option<ExecutionView>> {
    let Some(row) = executions::get(conn, id).await? else {
        return Ok(None);
    };
    Ok(views_of(conn, vec![row]).await?.pop())
}

/// Returns the view of an execution that must exist (just written).
pub async fn existing_view(conn: &mut PgConnection, id: Uuid) -> ExecutorResult<ExecutionView> {
    view_of(conn, id)
        .await?
        .ok_or_else(|| ExecutorError::Internal(format!("execution {id} vanished")))
}

/// The name this service records its audit events under.
pub(crate) const SERVICE: &str = "executor";

/// Records a change in its transaction by `actor` with `actor_key_id`, as the executor
/// recorded them (a token approval acts as `token`), in the request `trail` names.
pub(crate) async fn audit(
    conn: &mut PgConnection,
    trail: &Actor,
    actor: &str,
    actor_key_id: Option<&str>,
    change: audit::Change<'_>,
) -> ExecutorResult<()> {
    let actor = Actor {
        name: actor.to_owned(),
        key_id: actor_key_id.map(str::to_owned),
        request_id: trail.request_id.clone(),
    };
    audit::record(conn, SERVICE, &actor, change)
        .await
        .map_err(ExecutorError::db("recording an audit event"))
}
