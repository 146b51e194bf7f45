//! Organizations (awsJson1_1): ListAccounts, paginated, from the organization root.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::protocol::{AwsError, Reply};
use crate::services::{CallContext, paginate};
use crate::state::SandboxState;

/// When every sandbox account joined its organization: fixed, so replies are stable.
const JOINED_EPOCH_SECONDS: i64 = 1_577_836_800;
const MAX_PAGE: i64 = 20;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "ListAccounts" => list_accounts(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn list_accounts(context: &CallContext<'_>, state: &SandboxState) -> Result<Reply, AwsError> {
    let caller = context.principal()?.account_id.clone();
    let Some(root_id) = state.organization_root_of(&caller) else {
        return Err(AwsError::bad_request(
            "AWSOrganizationsNotInUseException",
            "your account is not a member of an organization",
        ));
    };
    if root_id != caller {
        return Err(AwsError::bad_request(
            "AccessDeniedException",
            "you don't have permissions to access this resource",
        ));
    }
    let root = state
        .account(root_id)
        .ok_or_else(|| AwsError::new(500, "ServiceException", "organization root vanished"))?;
    let organization_id = organization_id(root_id);
    let mut accounts = vec![account_json(
        root_id,
        &organization_id,
        root_id,
        &root.display_name(),
        "CREATED",
    )];
    for member in root.organization_members.iter().flatten() {
        accounts.push(account_json(
            root_id,
            &organization_id,
            &member.account_id,
            &member.name,
            "INVITED",
        ));
    }
    let page_size = context.json_integer("MaxResults")?;
    if page_size.is_some_and(|size| !(1..=MAX_PAGE).contains(&size)) {
        return Err(AwsError::bad_request(
            "InvalidInputException",
            "MaxResults must be between 1 and 20",
        ));
    }
    let (page, next) = paginate(
        context.service,
        &accounts,
        context.json_str("NextToken"),
        page_size,
        MAX_PAGE as usize,
    )?;
    let mut reply = json!({ "Accounts": page });
    if let Some(next) = next {
        reply["NextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}

fn organization_id(root_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(root_id.as_bytes()));
    format!("o-{}", &digest[..10])
}

fn account_json(
    root_id: &str,
    organization_id: &str,
    account_id: &str,
    name: &str,
    joined_method: &str,
) -> Value {
    json!({
        "Id": account_id,
        "Arn": format!("arn:aws:organizations::{root_id}:account/{organization_id}/{account_id}"),
        "Email": format!("{account_id}@sandbox.invalid"),
        "Name": name,
        "Status": "ACTIVE",
        "State": "ACTIVE",
        "JoinedMethod": joined_method,
        "JoinedTimestamp": JOINED_EPOCH_SECONDS,
    })
}
