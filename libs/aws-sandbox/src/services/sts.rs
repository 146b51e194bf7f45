//! STS (awsQuery): GetCallerIdentity, AssumeRole, AssumeRoleWithWebIdentity,
//! GetSessionToken.

use crate::config::RoleSpec;
use crate::identity::{self, Session};
use crate::protocol::{AwsError, Reply, XmlWriter};
use crate::services::{CallContext, xml_time};
use crate::state::SandboxState;

const DEFAULT_SESSION_SECONDS: u64 = 3600;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "GetCallerIdentity" => get_caller_identity(context),
        "AssumeRole" => assume_role(context, state),
        "AssumeRoleWithWebIdentity" => assume_role_with_web_identity(context, state),
        "GetSessionToken" => get_session_token(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn get_caller_identity(context: &CallContext<'_>) -> Result<Reply, AwsError> {
    let principal = context.principal()?;
    let mut xml = XmlWriter::new();
    xml.element("UserId", &principal.user_id)
        .element("Account", &principal.account_id)
        .element("Arn", &principal.arn);
    Ok(Reply::Xml(xml.finish()))
}

fn access_denied(message: String) -> AwsError {
    AwsError::new(403, "AccessDenied", message)
}

/// Finds the role of a role ARN.
fn find_role(state: &SandboxState, role_arn: &str) -> Result<(String, RoleSpec), AwsError> {
    let denied = || {
        access_denied(format!(
            "not authorized to perform sts:AssumeRole on {role_arn}"
        ))
    };
    let (account_id, role_name) = identity::parse_role_arn(role_arn).ok_or_else(denied)?;
    let role = state
        .account(&account_id)
        .and_then(|account| {
            account
                .roles
                .iter()
                .find(|role| role.role_name == role_name)
        })
        .cloned()
        .ok_or_else(denied)?;
    Ok((account_id, role))
}

/// The session lifetime: the requested one capped by the role's, else the role's, else
/// one hour.
fn session_seconds(requested: Option<i64>, role_limit: Option<u64>) -> Result<u64, AwsError> {
    let requested = requested
        .map(|seconds| {
            u64::try_from(seconds)
                .ok()
                .filter(|seconds| *seconds > 0)
                .ok_or_else(|| {
                    AwsError::bad_request("ValidationError", "DurationSeconds must be positive")
                })
        })
        .transpose()?;
    Ok(match (requested, role_limit) {
        (Some(requested), Some(limit)) => requested.min(limit),
        (Some(requested), None) => requested,
        (None, Some(limit)) => limit,
        (None, None) => DEFAULT_SESSION_SECONDS,
    })
}

fn assume_role(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let role_arn = context.required("RoleArn")?.to_string();
    let session_name = context.required("RoleSessionName")?.to_string();
    let caller_account = context.principal()?.account_id.clone();
    let (account_id, role) = find_role(state, &role_arn)?;
    if !role.trusted_account_ids.contains(&caller_account) {
        return Err(access_denied(format!(
            "account {caller_account} is not trusted by {role_arn}"
        )));
    }
    if let Some(expected) = &role.external_id
        && context.params.get("ExternalId") != Some(expected.as_str())
    {
        return Err(access_denied(format!(
            "the external id does not match what {role_arn} requires"
        )));
    }
    let seconds = session_seconds(context.integer("DurationSeconds")?, role.session_seconds)?;
    let session = open_role_session(context, state, &account_id, &role, &session_name, seconds);
    Ok(Reply::Xml(role_session_xml(&session, None)))
}

fn assume_role_with_web_identity(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let role_arn = context.required("RoleArn")?.to_string();
    let session_name = context.required("RoleSessionName")?.to_string();
    let token = context.params.get("WebIdentityToken").unwrap_or_default();
    if token.is_empty() {
        return Err(AwsError::bad_request(
            "InvalidIdentityToken",
            "the web identity token is empty",
        ));
    }
    let (account_id, role) = find_role(state, &role_arn)?;
    if !role.web_identity {
        return Err(access_denied(format!(
            "not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}"
        )));
    }
    context.account_id = account_id.clone();
    let seconds = session_seconds(context.integer("DurationSeconds")?, role.session_seconds)?;
    let session = open_role_session(context, state, &account_id, &role, &session_name, seconds);
    let subject = identity::stable_id("web-", token);
    Ok(Reply::Xml(role_session_xml(&session, Some(&subject))))
}

fn open_role_session(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
    account_id: &str,
    role: &RoleSpec,
    session_name: &str,
    seconds: u64,
) -> Session {
    let role_id = identity::stable_id("AROA", &format!("{account_id}:{}", role.role_name));
    let session = identity::new_session(
        account_id,
        format!(
            "arn:aws:sts::{account_id}:assumed-role/{}/{session_name}",
            role.role_name
        ),
        format!("{role_id}:{session_name}"),
        seconds,
        context.now,
    );
    state.insert_session(session.clone());
    session
}

fn credentials_xml(xml: &mut XmlWriter, session: &Session) {
    xml.open("Credentials")
        .element("AccessKeyId", &session.access_key_id)
        .element("SecretAccessKey", &session.secret_access_key)
        .element("SessionToken", &session.session_token)
        .element("Expiration", xml_time(session.expires_at))
        .close("Credentials");
}

fn role_session_xml(session: &Session, web_subject: Option<&str>) -> String {
    let mut xml = XmlWriter::new();
    credentials_xml(&mut xml, session);
    if let Some(subject) = web_subject {
        xml.element("SubjectFromWebIdentityToken", subject)
            .element("Provider", "sandbox")
            .element("Audience", "sandbox");
    }
    xml.open("AssumedRoleUser")
        .element("AssumedRoleId", &session.user_id)
        .element("Arn", &session.arn)
        .close("AssumedRoleUser")
        .element("PackedPolicySize", 0);
    xml.finish()
}

fn get_session_token(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let principal = context.principal()?.clone();
    if !principal.long_lived {
        return Err(access_denied(
            "cannot call GetSessionToken with session credentials".into(),
        ));
    }
    let seconds = session_seconds(context.integer("DurationSeconds")?, None)?;
    let session = identity::new_session(
        &principal.account_id,
        principal.arn.clone(),
        principal.user_id.clone(),
        seconds,
        context.now,
    );
    state.insert_session(session.clone());
    let mut xml = XmlWriter::new();
    credentials_xml(&mut xml, &session);
    Ok(Reply::Xml(xml.finish()))
}
