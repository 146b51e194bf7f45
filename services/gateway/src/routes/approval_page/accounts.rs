//! The names of the accounts an execution buys in, from the accounts service.

use std::collections::HashMap;

use cudly_proto::accounts::v1 as accounts_pb;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;

use crate::routes::executions::ExecutionView;
use crate::state::AppState;

/// A target account as the page names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AccountName {
    pub(super) name: String,
    /// The AWS account number.
    pub(super) number: Option<String>,
}

/// Returns the distinct accounts the execution buys in, in order.
pub(super) fn account_ids(execution: &ExecutionView) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let accounts = execution
        .children
        .iter()
        .filter_map(|child| child.cloud_account_id.as_ref())
        .chain(execution.cloud_account_id.as_ref());
    for id in accounts {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// Returns the names of the accounts that the accounts service knows, in one call; an
/// account it cannot name is shown by its id. A page without names beats no page.
pub(super) async fn account_names(
    state: &AppState,
    ids: &[String],
) -> HashMap<String, AccountName> {
    let mut client = AccountsServiceClient::new(state.clients.accounts.clone());
    let request = accounts_pb::GetAccountsByIdsRequest { ids: ids.to_vec() };
    let accounts = match client.get_accounts_by_ids(request).await {
        Ok(reply) => reply.into_inner().accounts,
        Err(status) => {
            tracing::debug!(code = ?status.code(), "approval page shows accounts by their ids");
            Vec::new()
        }
    };
    accounts
        .into_iter()
        .map(|account| {
            let name = AccountName {
                name: account.name,
                number: Some(account.external_id).filter(|number| !number.is_empty()),
            };
            (account.id, name)
        })
        .collect()
}
