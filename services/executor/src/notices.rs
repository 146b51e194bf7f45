//! Which of the executor's changes notify whom (docs/design/API.md "Notifications and
//! the approval page"): each event is built here from the rows the change wrote and
//! written to the outbox on the change's own transaction, so that it commits with the
//! change or not at all. The dispatcher (libs/notify) delivers it afterwards.
//!
//! Without a notification key (`CUDLY_NOTIFY_KEY`) notifications are off: no channel
//! can be stored, so nothing is written.

use std::collections::HashMap;

use chrono::Utc;
use cudly_common::grpc::AuthChannel;
use cudly_notify::event::{
    ApprovalRequested, ExecutionFinished, LimitRefused, OutcomeUnknown, PurchaseLine, Totals,
};
use cudly_notify::{
    ChannelCipher, ChannelRules, Event, EventData, NotifyConfig, Url, approval_links,
    approval_page_url,
};
use cudly_proto::accounts::v1::GetAccountsByIdsRequest;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use secrecy::SecretString;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::approval::ApprovalToken;
use crate::domain::status::{ExecutionStatus, ItemStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::service::ExecutionView;

/// The executor's notifications: the key the outbox is encrypted with, and where the
/// approval page is.
#[derive(Clone)]
pub struct Notices {
    cipher: Option<ChannelCipher>,
    rules: ChannelRules,
    public_url: Option<Url>,
}

impl Notices {
    pub fn new(config: &NotifyConfig, public_url: Option<Url>) -> Self {
        Self {
            cipher: config.cipher(),
            rules: config.channel_rules(),
            public_url,
        }
    }

    /// Whether notifications are on (a key is set).
    pub fn on(&self) -> bool {
        self.cipher.is_some()
    }

    /// The names of `ids` for an approval request, asked of the accounts service only
    /// while notifications are on ([`AccountLabels::fetch`]).
    pub async fn account_labels(
        &self,
        accounts: AccountsServiceClient<AuthChannel>,
        ids: &[Uuid],
    ) -> AccountLabels {
        if self.on() {
            AccountLabels::fetch(accounts, ids).await
        } else {
            AccountLabels::default()
        }
    }

    /// The key channels and the outbox are encrypted with; none when notifications are
    /// off.
    pub fn cipher(&self) -> Option<&ChannelCipher> {
        self.cipher.as_ref()
    }

    /// What new channels may be.
    pub fn rules(&self) -> ChannelRules {
        self.rules
    }

    /// Writes `event` to the outbox on `conn` (the change's transaction).
    pub async fn raise(&self, conn: &mut PgConnection, event: &Event) -> ExecutorResult<()> {
        let Some(cipher) = &self.cipher else {
            return Ok(());
        };
        cudly_notify::enqueue(conn, cipher, event)
            .await
            .map(|_| ())
            .map_err(notify_error)
    }

    /// Raises `event` in a transaction of its own: for what is not a change of this
    /// service's rows (a refusal). A failure is logged, never returned: the refusal
    /// itself must still reach its caller.
    pub async fn raise_alone(&self, pool: &PgPool, event: &Event) {
        if self.cipher.is_none() {
            return;
        }
        let raised = async {
            let mut tx = pool
                .begin()
                .await
                .map_err(ExecutorError::db("starting a transaction"))?;
            self.raise(&mut tx, event).await?;
            tx.commit()
                .await
                .map_err(ExecutorError::db("committing a notification"))
        };
        if let Err(error) = raised.await {
            tracing::warn!(error = %error, kind = %event.kind(), "a notification could not be written");
        }
    }

    /// The event of a root created pending: what it buys, for which accounts, at what
    /// quote, who asked, until when, and the approval page (with `token`, when the root
    /// has one, for private channels only).
    pub fn approval_requested(
        &self,
        root: &ExecutionView,
        token: Option<&ApprovalToken>,
        labels: &AccountLabels,
    ) -> Event {
        let (page_url, approval_url) = match &self.public_url {
            Some(base) => match token {
                Some(token) => {
                    let token = SecretString::from(token.reveal());
                    approval_links(base, root.row.id, &token)
                        .map(|links| (links.page_url, Some(links.approval_url)))
                        .unwrap_or_default()
                }
                None => (
                    approval_page_url(base, root.row.id).unwrap_or_default(),
                    None,
                ),
            },
            None => (String::new(), None),
        };
        let lines = root
            .children
            .iter()
            .flat_map(|child| {
                child
                    .items
                    .iter()
                    .map(move |item| purchase_line(labels.of(child.row.cloud_account_id), item))
            })
            .collect();
        let totals = match &root.row.quote {
            Some(quote) => Totals {
                currency: quote.0.currency.clone(),
                upfront: quote.0.upfront,
                monthly: quote.0.monthly,
                total_commitment: quote.0.total_commitment,
            },
            None => Totals {
                currency: cudly_aws::purchase::DEFAULT_CURRENCY.to_owned(),
                upfront: 0.0,
                monthly: 0.0,
                total_commitment: root.row.total_commitment,
            },
        };
        about_root(
            root,
            EventData::ApprovalRequested(ApprovalRequested {
                lines,
                totals,
                requested_by: root.row.created_by.clone(),
                expires_at: root.row.approval_expires_at.unwrap_or_else(Utc::now),
                page_url,
                approval_url,
            }),
        )
    }

    /// The events of a root that ended: the outcome, and when purchases were left
    /// unknown or in doubt, the call for an operator.
    pub fn run_finished(&self, root: &ExecutionView, ended: &RunEnd) -> Vec<Event> {
        let page_url = self.page_url(root.row.id);
        let mut events = vec![about_root(
            root,
            EventData::ExecutionFinished(ExecutionFinished {
                status: ended.status.as_str().to_owned(),
                bought: ended.bought,
                failed: ended.failed,
                committed: ended.committed,
                currency: ended.currency.clone(),
                page_url: page_url.clone(),
            }),
        )];
        if ended.unknown > 0 {
            events.push(about_root(
                root,
                EventData::OutcomeUnknown(OutcomeUnknown {
                    items: ended.unknown,
                    reason: "purchases whose outcome is unknown or in doubt: check them in \
                             the cloud console, then resolve them"
                        .to_owned(),
                    page_url,
                }),
            ));
        }
        events
    }

    /// The event of a spend-limit refusal of a creation or an approval.
    pub fn limit_refused(
        refusal: &cudly_common::SpendRefusal,
        execution_id: Option<Uuid>,
        plan_id: Option<Uuid>,
        account_ids: &[Uuid],
    ) -> Event {
        let mut event = Event::new(EventData::LimitRefused(LimitRefused::from_refusal(refusal)))
            .for_accounts(account_ids.iter().copied());
        event.execution_id = execution_id;
        event.plan_id = plan_id;
        event
    }

    /// The approval page of an execution without a token: whoever opens it
    /// authenticates there.
    fn page_url(&self, execution_id: Uuid) -> Option<String> {
        approval_page_url(self.public_url.as_ref()?, execution_id)
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Notices")
            .field("on", &self.cipher.is_some())
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .finish()
    }
}

/// The accounts as people know them, `name (external id)`, for the lines of an event.
#[derive(Debug, Clone, Default)]
pub struct AccountLabels(HashMap<Uuid, String>);

impl AccountLabels {
    /// Asks the accounts service for the names of `ids`. Best effort: an account it
    /// cannot name (or a service that does not answer) is shown by its id.
    pub async fn fetch(
        mut accounts: AccountsServiceClient<AuthChannel>,
        ids: &[Uuid],
    ) -> AccountLabels {
        let request = GetAccountsByIdsRequest {
            ids: ids.iter().map(Uuid::to_string).collect(),
        };
        match accounts.get_accounts_by_ids(request).await {
            Ok(reply) => AccountLabels(
                reply
                    .into_inner()
                    .accounts
                    .into_iter()
                    .filter_map(|account| {
                        let id = Uuid::parse_str(&account.id).ok()?;
                        Some((
                            id,
                            cudly_common::names::account_label(&account.name, &account.external_id),
                        ))
                    })
                    .collect(),
            ),
            Err(status) => {
                tracing::info!(code = ?status.code(), "accounts not named in a notification: the accounts service did not answer");
                AccountLabels::default()
            }
        }
    }

    /// Returns the label of `id`, or the id itself.
    fn of(&self, id: Option<Uuid>) -> String {
        match id {
            Some(id) => self.0.get(&id).cloned().unwrap_or_else(|| id.to_string()),
            None => String::new(),
        }
    }
}

/// How a root's run ended, counted over its items.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub status: ExecutionStatus,
    pub bought: u32,
    pub failed: u32,
    /// Items not bought whose purchase may have happened (an attempt in flight or in
    /// doubt): an operator must look.
    pub unknown: u32,
    /// What the bought items committed, by their quotes.
    pub committed: f64,
    pub currency: String,
}

impl RunEnd {
    /// Counts the items of `root` (a view with its children's items); `unknown` is the
    /// number of items whose purchase was sent with its outcome unknown or in doubt.
    pub fn of(root: &ExecutionView, status: ExecutionStatus, unknown: u32) -> Self {
        let mut ended = RunEnd {
            status,
            bought: 0,
            failed: 0,
            unknown,
            committed: 0.0,
            currency: root
                .row
                .quote
                .as_ref()
                .map(|quote| quote.0.currency.clone())
                .unwrap_or_else(|| cudly_aws::purchase::DEFAULT_CURRENCY.to_owned()),
        };
        for item in root.children.iter().flat_map(|child| &child.items) {
            match item.status() {
                Ok(ItemStatus::Bought) => {
                    ended.bought += 1;
                    if let Some(quote) = &item.quote {
                        ended.committed += quote.0.total_commitment();
                    }
                }
                Ok(ItemStatus::Failed) => ended.failed += 1,
                _ => {}
            }
        }
        ended
    }
}

/// Returns `data` as an event about `root`: its execution, plan and accounts.
fn about_root(root: &ExecutionView, data: EventData) -> Event {
    let mut event = Event::new(data)
        .for_execution(root.row.id)
        .for_accounts(root.row.target_account_ids.iter().copied());
    event.plan_id = root.row.plan_id;
    event
}

/// Returns one quoted line of a child's items, bought by `account`.
fn purchase_line(account: String, item: &crate::repo::items::ItemRow) -> PurchaseLine {
    let recommendation = &item.recommendation.0;
    let (upfront, monthly) = match &item.quote {
        Some(quote) => (quote.0.upfront(), quote.0.monthly()),
        None => (recommendation.upfront_cost.unwrap_or_default(), 0.0),
    };
    PurchaseLine {
        account,
        service: recommendation.service.to_string(),
        region: recommendation.region.clone(),
        resource_type: recommendation.resource_type.clone(),
        count: recommendation.count,
        term_years: u8::try_from(recommendation.term).unwrap_or(u8::MAX),
        payment: recommendation.payment.clone(),
        upfront,
        monthly,
    }
}

/// Returns a notification error as the executor's.
pub fn notify_error(error: cudly_notify::NotifyError) -> ExecutorError {
    match error {
        cudly_notify::NotifyError::Api(error) => ExecutorError::Api(error),
        other => ExecutorError::Api(other.into_api_error()),
    }
}
