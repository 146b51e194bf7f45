//! The names of the accounts an execution buys in, from the accounts service.

use std::collections::HashMap;

use cudly_proto::accounts::v1 as accounts_pb;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;

use crate::routes::executions::ExecutionView;
use crate::state::AppState;

/// Accounts named on one page; past this, the others show their ids (a plan may buy in
/// many accounts, and each name is one call to the accounts service).
const MAX_NAMED_ACCOUNTS: usize = 50;

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

/// Returns the names of the accounts that the accounts service knows; an account it
/// cannot name is shown by its id. A page without names beats no page.
pub(super) async fn account_names(
    state: &AppState,
    ids: &[String],
) -> HashMap<String, AccountName> {
    let mut client = AccountsServiceClient::new(state.clients.accounts.clone());
    let mut names = HashMap::new();
    for id in ids.iter().take(MAX_NAMED_ACCOUNTS) {
        match client
            .get_account(accounts_pb::GetAccountRequest { id: id.clone() })
            .await
        {
            Ok(account) => {
                let account = account.into_inner();
                names.insert(
                    id.clone(),
                    AccountName {
                        name: account.name,
                        number: Some(account.external_id).filter(|number| !number.is_empty()),
                    },
                );
            }
            Err(status) => {
                tracing::debug!(account_id = %id, code = ?status.code(), "approval page shows an account by its id");
                // Down for one is down for all: do not wait for each in turn.
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) {
                    break;
                }
            }
        }
    }
    names
}
