//! STS (awsQuery): GetCallerIdentity, AssumeRole, AssumeRoleWithWebIdentity,
//! GetSessionToken, GetFederationToken.
//!
//! A session may be opened with a session policy (which the sandbox then enforces on
//! every call the session signs, see [`crate::identity::authorize`]), session tags and
//! a source identity, checked as STS checks them. What a call asked for lands in the
//! ledger (even when refused), and every later call of the session carries the tags and
//! the source identity into the ledger, so a test can prove that the credentials a
//! component was handed were scoped and name who approved what they did.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::RoleSpec;
use crate::identity::{self, Principal, Session};
use crate::policy::{self, SessionPolicy};
use crate::protocol::{AwsError, Params, Reply, XmlWriter};
use crate::services::{CallContext, query_tags, xml_time};
use crate::state::SandboxState;

const DEFAULT_SESSION_SECONDS: u64 = 3600;
/// The shortest session STS opens (AssumeRole, AssumeRoleWithWebIdentity,
/// GetFederationToken).
const MIN_SESSION_SECONDS: i64 = 900;
/// GetFederationToken's longest session.
const MAX_FEDERATION_SECONDS: i64 = 129_600;
/// GetFederationToken's session when DurationSeconds is left out.
const DEFAULT_FEDERATION_SECONDS: i64 = 43_200;
/// The most session tags a call may pass.
const MAX_SESSION_TAGS: usize = 50;
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;
/// The session tag list parameters, `Tags.member.N.Key` and `Tags.member.N.Value`.
const TAGS_PARAMETER: &str = "Tags.member";

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "GetCallerIdentity" => get_caller_identity(context),
        "AssumeRole" => assume_role(context, state),
        "AssumeRoleWithWebIdentity" => assume_role_with_web_identity(context, state),
        "GetSessionToken" => get_session_token(context, state),
        "GetFederationToken" => get_federation_token(context, state),
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

fn validation_error(message: String) -> AwsError {
    AwsError::bad_request("ValidationError", message)
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

/// What a session is opened with besides its identity: the session policy that limits
/// it, its tags and its source identity.
#[derive(Debug, Default)]
struct SessionScope {
    policy: Option<SessionPolicy>,
    tags: BTreeMap<String, String>,
    source_identity: Option<String>,
}

impl SessionScope {
    fn apply_to(self, session: &mut Session) {
        session.policy = self.policy;
        session.tags = self.tags;
        session.source_identity = self.source_identity;
    }
}

/// Notes what a call opening a session asked for, before any of it is checked, so the
/// ledger shows what a refused request asked for too.
fn note_session_request(context: &mut CallContext<'_>) {
    let params = context.params;
    let note = &mut context.note;
    note.session_policy = params.non_empty("Policy").map(str::to_string);
    note.requested_tags = query_tags(params, TAGS_PARAMETER);
    note.requested_source_identity = params.non_empty("SourceIdentity").map(str::to_string);
    note.requested_duration_seconds = params
        .non_empty("DurationSeconds")
        .and_then(|seconds| seconds.parse::<i64>().ok());
}

/// Reads the optional `Policy` (see [`SessionPolicy::parse`]) and the
/// `PackedPolicySize` the reply reports for it (0 without one).
fn read_policy(params: &Params) -> Result<(Option<SessionPolicy>, u32), AwsError> {
    match params.non_empty("Policy") {
        None => Ok((None, 0)),
        Some(text) => Ok((
            Some(SessionPolicy::parse(text)?),
            policy::packed_policy_size(text),
        )),
    }
}

/// Reads the session tags, refusing what STS refuses (`ValidationError`): more than
/// 50, a key outside 1 to 128 characters or a value over 256, characters other than
/// letters, digits, spaces and `_.:/=+-@`, or two keys that differ only in case (STS
/// compares tag keys case-insensitively).
fn read_tags(params: &Params) -> Result<BTreeMap<String, String>, AwsError> {
    let entries = params.structs(TAGS_PARAMETER);
    if entries.len() > MAX_SESSION_TAGS {
        return Err(validation_error(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_SESSION_TAGS}"
        )));
    }
    let mut tags = BTreeMap::new();
    let mut lowercase_keys = BTreeSet::new();
    for entry in entries {
        let key = entry.get("Key").unwrap_or_default();
        let value = entry.get("Value").unwrap_or_default();
        check_tag_text("key", key, 1, MAX_TAG_KEY_CHARS)?;
        check_tag_text("value", value, 0, MAX_TAG_VALUE_CHARS)?;
        if !lowercase_keys.insert(key.to_lowercase()) {
            return Err(validation_error(format!(
                "Duplicate tag keys found: {key}. Please note that Tag keys are case insensitive."
            )));
        }
        tags.insert(key.to_string(), value.to_string());
    }
    Ok(tags)
}

/// Refuses a tag key or value outside `min..=max` characters of STS's tag alphabet.
fn check_tag_text(part: &str, text: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let length = text.chars().count();
    let allowed = |character: char| {
        character.is_alphanumeric() || character.is_whitespace() || "_.:/=+-@".contains(character)
    };
    if (min..=max).contains(&length) && text.chars().all(allowed) {
        return Ok(());
    }
    Err(validation_error(format!(
        "the session tag {part} {text:?} must be {min} to {max} characters of letters, \
         digits, spaces and _.:/=+-@"
    )))
}

/// Reads the optional `SourceIdentity`: 2 to 64 characters of `[\w+=,.@-]`.
fn read_source_identity(params: &Params) -> Result<Option<String>, AwsError> {
    params
        .non_empty("SourceIdentity")
        .map(|value| {
            check_identifier("sourceIdentity", value, 2, 64)?;
            Ok(value.to_string())
        })
        .transpose()
}

/// Refuses a value outside `min..=max` characters of `[\w+=,.@-]`, the pattern STS
/// gives a source identity and a federated user's name.
fn check_identifier(parameter: &str, value: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let length = value.chars().count();
    let allowed =
        |character: char| character.is_ascii_alphanumeric() || "_+=,.@-".contains(character);
    if (min..=max).contains(&length) && value.chars().all(allowed) {
        return Ok(());
    }
    Err(validation_error(format!(
        "1 validation error detected: Value '{value}' at '{parameter}' failed to satisfy \
         constraint: Member must be {min} to {max} characters matching [\\w+=,.@-]*"
    )))
}

/// Reads `DurationSeconds`, refusing one under `min` or over `max` (`ValidationError`).
fn read_duration(
    context: &CallContext<'_>,
    min: i64,
    max: Option<i64>,
) -> Result<Option<i64>, AwsError> {
    let Some(seconds) = context.integer("DurationSeconds")? else {
        return Ok(None);
    };
    if seconds < min {
        return Err(validation_error(format!(
            "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to \
             satisfy constraint: Member must have value greater than or equal to {min}"
        )));
    }
    if let Some(max) = max
        && seconds > max
    {
        return Err(validation_error(format!(
            "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to \
             satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(Some(seconds))
}

/// The source identity of a role session opened by `caller`: the caller's own when it
/// has one (AWS keeps it across chained sessions and refuses to change it), else the
/// requested one.
fn chained_source_identity(
    caller: &Principal,
    requested: Option<String>,
) -> Result<Option<String>, AwsError> {
    match (&caller.source_identity, requested) {
        (Some(kept), Some(requested)) if *kept != requested => Err(access_denied(format!(
            "the source identity {kept} of {} cannot be changed to {requested}",
            caller.arn
        ))),
        (Some(kept), _) => Ok(Some(kept.clone())),
        (None, requested) => Ok(requested),
    }
}

fn assume_role(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    note_session_request(context);
    let role_arn = context.required("RoleArn")?.to_string();
    let session_name = context.required("RoleSessionName")?.to_string();
    let requested_seconds = read_duration(context, MIN_SESSION_SECONDS, None)?;
    let (policy, packed_policy_size) = read_policy(context.params)?;
    let tags = read_tags(context.params)?;
    let requested_identity = read_source_identity(context.params)?;
    let caller = context.principal()?.clone();
    let (account_id, role) = find_role(state, &role_arn)?;
    if !role.trusted_account_ids.contains(&caller.account_id) {
        return Err(access_denied(format!(
            "account {} is not trusted by {role_arn}",
            caller.account_id
        )));
    }
    if let Some(expected) = &role.external_id
        && context.params.get("ExternalId") != Some(expected.as_str())
    {
        return Err(access_denied(format!(
            "the external id does not match what {role_arn} requires"
        )));
    }
    let scope = SessionScope {
        policy,
        tags,
        source_identity: chained_source_identity(&caller, requested_identity)?,
    };
    let seconds = session_seconds(requested_seconds, role.session_seconds)?;
    let session = open_role_session(
        context,
        state,
        &account_id,
        &role,
        &session_name,
        seconds,
        scope,
    );
    Ok(Reply::Xml(role_session_xml(
        &session,
        None,
        packed_policy_size,
    )))
}

/// AssumeRoleWithWebIdentity: unsigned, the token is the proof. Of the session's
/// scoping parameters only `Policy` is read (web identity sessions take their tags and
/// source identity from the token, which the sandbox does not decode).
fn assume_role_with_web_identity(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    note_session_request(context);
    let role_arn = context.required("RoleArn")?.to_string();
    let session_name = context.required("RoleSessionName")?.to_string();
    let token = context.params.get("WebIdentityToken").unwrap_or_default();
    if token.is_empty() {
        return Err(AwsError::bad_request(
            "InvalidIdentityToken",
            "the web identity token is empty",
        ));
    }
    let requested_seconds = read_duration(context, MIN_SESSION_SECONDS, None)?;
    let (policy, packed_policy_size) = read_policy(context.params)?;
    let (account_id, role) = find_role(state, &role_arn)?;
    if !role.web_identity {
        return Err(access_denied(format!(
            "not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}"
        )));
    }
    context.account_id = account_id.clone();
    let seconds = session_seconds(requested_seconds, role.session_seconds)?;
    let scope = SessionScope {
        policy,
        ..SessionScope::default()
    };
    let session = open_role_session(
        context,
        state,
        &account_id,
        &role,
        &session_name,
        seconds,
        scope,
    );
    let subject = identity::stable_id("web-", token);
    Ok(Reply::Xml(role_session_xml(
        &session,
        Some(&subject),
        packed_policy_size,
    )))
}

fn open_role_session(
    context: &CallContext<'_>,
    state: &mut SandboxState,
    account_id: &str,
    role: &RoleSpec,
    session_name: &str,
    seconds: u64,
    scope: SessionScope,
) -> Session {
    let role_id = identity::stable_id("AROA", &format!("{account_id}:{}", role.role_name));
    let mut session = identity::new_session(
        account_id,
        format!(
            "arn:aws:sts::{account_id}:assumed-role/{}/{session_name}",
            role.role_name
        ),
        format!("{role_id}:{session_name}"),
        seconds,
        context.now,
    );
    scope.apply_to(&mut session);
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

fn role_session_xml(
    session: &Session,
    web_subject: Option<&str>,
    packed_policy_size: u32,
) -> String {
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
        .element("PackedPolicySize", packed_policy_size)
        .optional("SourceIdentity", session.source_identity.as_deref());
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

/// GetFederationToken: a session of the federated user `Name` in the caller's account,
/// for long-lived keys only (like GetSessionToken). As in AWS the session may make only
/// the calls its `Policy` allows, and without one none but GetCallerIdentity.
fn get_federation_token(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    note_session_request(context);
    let name = context.required("Name")?.to_string();
    check_identifier("name", &name, 2, 32)?;
    let seconds = read_duration(context, MIN_SESSION_SECONDS, Some(MAX_FEDERATION_SECONDS))?
        .unwrap_or(DEFAULT_FEDERATION_SECONDS);
    let (policy, packed_policy_size) = read_policy(context.params)?;
    let tags = read_tags(context.params)?;
    let principal = context.principal()?.clone();
    if !principal.long_lived {
        return Err(access_denied(
            "cannot call GetFederationToken with session credentials".into(),
        ));
    }
    let account_id = &principal.account_id;
    let mut session = identity::new_session(
        account_id,
        federated_user_arn(account_id, &name),
        format!("{account_id}:{name}"),
        seconds.unsigned_abs(),
        context.now,
    );
    let scope = SessionScope {
        policy: Some(policy.unwrap_or_default()),
        tags,
        source_identity: None,
    };
    scope.apply_to(&mut session);
    state.insert_session(session.clone());
    Ok(Reply::Xml(federation_xml(&session, packed_policy_size)))
}

/// The ARN of a federated user, `arn:aws:sts::<account>:federated-user/<name>`.
fn federated_user_arn(account_id: &str, name: &str) -> String {
    format!("arn:aws:sts::{account_id}:federated-user/{name}")
}

/// The inside of `<GetFederationTokenResult>`, element names as AWS's.
fn federation_xml(session: &Session, packed_policy_size: u32) -> String {
    let mut xml = XmlWriter::new();
    credentials_xml(&mut xml, session);
    xml.open("FederatedUser")
        .element("FederatedUserId", &session.user_id)
        .element("Arn", &session.arn)
        .close("FederatedUser")
        .element("PackedPolicySize", packed_policy_size);
    xml.finish()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        )
    }

    fn tag_params(count: usize, key: &str, value: &str) -> Params {
        let mut pairs = Vec::new();
        for index in 1..=count {
            pairs.push((format!("Tags.member.{index}.Key"), format!("{key}{index}")));
            pairs.push((format!("Tags.member.{index}.Value"), value.to_string()));
        }
        Params::from_pairs(pairs)
    }

    #[test]
    fn session_tags_are_read_by_key() {
        let tags = read_tags(&params(&[
            ("Tags.member.1.Key", "cudly-execution"),
            ("Tags.member.1.Value", "exec-1"),
            ("Tags.member.2.Key", "cudly-approved-by"),
            ("Tags.member.2.Value", "alice@example.com"),
        ]))
        .unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags["cudly-execution"], "exec-1");
        assert_eq!(tags["cudly-approved-by"], "alice@example.com");
        assert!(read_tags(&Params::default()).unwrap().is_empty());
    }

    #[test]
    fn session_tags_beyond_what_sts_takes_are_validation_errors() {
        assert_eq!(read_tags(&tag_params(50, "k", "v")).unwrap().len(), 50);
        let refused = [
            tag_params(51, "k", "v"),
            tag_params(1, &"k".repeat(128), "v"),
            tag_params(1, "k", &"v".repeat(257)),
            tag_params(1, "k", "it's"),
            params(&[("Tags.member.1.Value", "no key")]),
            params(&[
                ("Tags.member.1.Key", "Approver"),
                ("Tags.member.1.Value", "a"),
                ("Tags.member.2.Key", "approver"),
                ("Tags.member.2.Value", "b"),
            ]),
        ];
        for params in refused {
            assert_eq!(read_tags(&params).unwrap_err().code, "ValidationError");
        }
        // The longest key (the index makes the 127-character stem 128) and value pass.
        assert!(read_tags(&tag_params(1, &"k".repeat(127), &"v".repeat(256))).is_ok());
    }

    #[test]
    fn a_source_identity_is_2_to_64_name_characters() {
        let read = |value: &str| read_source_identity(&params(&[("SourceIdentity", value)]));
        assert_eq!(
            read("alice@example.com").unwrap().as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(read("").unwrap(), None);
        let too_long = "a".repeat(65);
        for bad in ["a", too_long.as_str(), "alice smith", "alice/admin"] {
            assert_eq!(read(bad).unwrap_err().code, "ValidationError", "{bad}");
        }
    }

    #[test]
    fn a_policy_is_parsed_and_sized() {
        let (policy, size) = read_policy(&params(&[(
            "Policy",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#,
        )]))
        .unwrap();
        assert_eq!(policy.unwrap().allow, vec!["ec2:describe*".to_string()]);
        assert!((1..=100).contains(&size));
        assert_eq!(read_policy(&Params::default()).unwrap(), (None, 0));
        let malformed = read_policy(&params(&[("Policy", "{")])).unwrap_err();
        assert_eq!(malformed.code, "MalformedPolicyDocument");
        let too_large = "x".repeat(2049);
        let large = read_policy(&params(&[("Policy", too_large.as_str())])).unwrap_err();
        assert_eq!(large.code, "PackedPolicyTooLarge");
    }

    #[test]
    fn federated_user_names_follow_the_sts_pattern() {
        assert!(check_identifier("name", "executor", 2, 32).is_ok());
        assert!(check_identifier("name", "cudly-exec_1.a@b=c,d+e", 2, 32).is_ok());
        let too_long = "x".repeat(33);
        for bad in ["x", too_long.as_str(), "exec utor", "exec/1"] {
            assert!(check_identifier("name", bad, 2, 32).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_chained_session_keeps_the_source_identity() {
        let mut caller = Principal {
            account_id: "1".into(),
            arn: "arn:aws:sts::1:assumed-role/A/s".into(),
            user_id: "AROA:s".into(),
            access_key_id: "ASIA".into(),
            long_lived: false,
            policy: None,
            session_tags: BTreeMap::new(),
            source_identity: None,
        };
        assert_eq!(
            chained_source_identity(&caller, Some("alice".into())).unwrap(),
            Some("alice".into())
        );
        caller.source_identity = Some("alice".into());
        assert_eq!(
            chained_source_identity(&caller, None).unwrap(),
            Some("alice".into())
        );
        assert_eq!(
            chained_source_identity(&caller, Some("alice".into())).unwrap(),
            Some("alice".into())
        );
        let changed = chained_source_identity(&caller, Some("bob".into())).unwrap_err();
        assert_eq!(changed.code, "AccessDenied");
    }

    #[test]
    fn the_federation_reply_has_the_elements_the_sdk_reads() {
        let mut session = identity::new_session(
            "444444444444",
            federated_user_arn("444444444444", "executor"),
            "444444444444:executor".into(),
            900,
            Utc::now(),
        );
        session.policy = Some(SessionPolicy::default());
        let xml = federation_xml(&session, 7);
        assert!(xml.starts_with("<Credentials><AccessKeyId>ASIA"));
        assert!(xml.contains(
            "<FederatedUser><FederatedUserId>444444444444:executor</FederatedUserId>\
             <Arn>arn:aws:sts::444444444444:federated-user/executor</Arn></FederatedUser>"
        ));
        assert!(xml.ends_with("<PackedPolicySize>7</PackedPolicySize>"));
    }

    #[test]
    fn a_role_session_reply_names_its_source_identity() {
        let mut session = identity::new_session(
            "1",
            "arn:aws:sts::1:assumed-role/A/s".into(),
            "AROA:s".into(),
            900,
            Utc::now(),
        );
        assert!(!role_session_xml(&session, None, 0).contains("SourceIdentity"));
        session.source_identity = Some("alice".into());
        let xml = role_session_xml(&session, None, 3);
        assert!(xml.ends_with(
            "<PackedPolicySize>3</PackedPolicySize><SourceIdentity>alice</SourceIdentity>"
        ));
    }
}
