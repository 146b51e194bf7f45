//! One module per emulated service. Each handler runs under the state lock, so a
//! purchase and its ledger entry are one atomic step.

mod costexplorer;
mod ec2;
mod elasticache;
mod memorydb;
mod opensearch;
mod organizations;
mod rds;
mod redshift;
mod savingsplans;
mod sts;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::identity::Principal;
use crate::ledger::IDEMPOTENCY_TAG_KEY;
use crate::protocol::{AwsError, Params, Reply};
use crate::service::Service;
use crate::state::SandboxState;

/// What the ledger learns from a call besides its outcome.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallNote {
    pub idempotency_token: Option<String>,
    pub reservation_id: Option<String>,
    pub client_token: Option<String>,
    pub commitment_id: Option<String>,
    /// A call opening a session: the `Policy` text it asked for.
    pub session_policy: Option<String>,
    /// A call opening a session: the session tags it asked for.
    pub requested_tags: BTreeMap<String, String>,
    /// A call opening a session: the `SourceIdentity` it asked for.
    pub requested_source_identity: Option<String>,
    /// A call opening a session: the `DurationSeconds` it asked for.
    pub requested_duration_seconds: Option<i64>,
}

impl CallNote {
    /// Records the idempotency token tag among `tags`, if any.
    pub fn note_tags(&mut self, tags: &BTreeMap<String, String>) {
        if let Some(token) = tags.get(IDEMPOTENCY_TAG_KEY) {
            self.idempotency_token = Some(token.clone());
        }
    }
}

/// One call being handled.
#[derive(Debug)]
pub(crate) struct CallContext<'a> {
    pub service: Service,
    pub operation: &'a str,
    pub params: &'a Params,
    pub json: &'a Value,
    /// `None` only for unsigned calls (AssumeRoleWithWebIdentity).
    pub principal: Option<Principal>,
    /// The account the call is attributed to; the web identity call sets it to the
    /// role's account.
    pub account_id: String,
    pub region: String,
    pub now: DateTime<Utc>,
    /// The sandbox's "AWS clock": `now` shifted by the `clock_offset_seconds` behaviour
    /// switch. New commitments are stamped with it.
    pub aws_now: DateTime<Utc>,
    pub note: CallNote,
}

impl CallContext<'_> {
    /// Returns a required form parameter.
    pub fn required(&self, name: &str) -> Result<&str, AwsError> {
        self.params
            .non_empty(name)
            .ok_or_else(|| AwsError::missing_parameter(self.service, name))
    }

    /// Returns an optional integer form parameter.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, AwsError> {
        self.params
            .non_empty(name)
            .map(|value| {
                value.parse::<i64>().map_err(|_| {
                    AwsError::invalid_parameter(self.service, format!("{name} must be an integer"))
                })
            })
            .transpose()
    }

    /// Returns an optional boolean form parameter.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, AwsError> {
        self.params
            .non_empty(name)
            .map(|value| match value {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(AwsError::invalid_parameter(
                    self.service,
                    format!("{name} must be true or false"),
                )),
            })
            .transpose()
    }

    /// Returns a string member of the JSON body.
    pub fn json_str(&self, name: &str) -> Option<&str> {
        self.json
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    }

    /// Returns a required string member of the JSON body.
    pub fn json_required(&self, name: &str) -> Result<&str, AwsError> {
        self.json_str(name)
            .ok_or_else(|| AwsError::missing_parameter(self.service, name))
    }

    /// Returns an integer member of the JSON body.
    pub fn json_integer(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.json.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or_else(|| {
                AwsError::invalid_parameter(self.service, format!("{name} must be an integer"))
            }),
        }
    }

    /// Returns a list of strings of the JSON body (absent: empty).
    pub fn json_strings(&self, name: &str) -> Vec<String> {
        self.json
            .get(name)
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(|value| value.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Returns the principal of a signed call.
    pub fn principal(&self) -> Result<&Principal, AwsError> {
        self.principal
            .as_ref()
            .ok_or_else(AwsError::missing_authentication)
    }
}

/// Handles one call of a known service.
pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.service {
        Service::Sts => sts::handle(context, state),
        Service::Organizations => organizations::handle(context, state),
        Service::Ec2 => ec2::handle(context, state),
        Service::Savingsplans => savingsplans::handle(context, state),
        Service::Rds => rds::handle(context, state),
        Service::Elasticache => elasticache::handle(context, state),
        Service::Memorydb => memorydb::handle(context, state),
        Service::Opensearch => opensearch::handle(context, state),
        Service::Redshift => redshift::handle(context, state),
        Service::Costexplorer => costexplorer::handle(context, state),
    }
}

/// Returns one page of `items` after the opaque `token` (an offset), and the token of
/// the next page when there is one.
pub(crate) fn paginate<T: Clone>(
    service: Service,
    items: &[T],
    token: Option<&str>,
    page_size: Option<i64>,
    default_page_size: usize,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let start = match token.filter(|token| !token.is_empty()) {
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|offset| offset.parse::<usize>().ok())
            .filter(|offset| *offset <= items.len())
            .ok_or_else(|| AwsError::invalid_parameter(service, "invalid pagination token"))?,
        None => 0,
    };
    let size = match page_size {
        Some(size) if size < 1 => {
            return Err(AwsError::invalid_parameter(
                service,
                "page size must be at least 1",
            ));
        }
        Some(size) => usize::try_from(size).unwrap_or(usize::MAX),
        None => default_page_size,
    };
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    Ok((items[start..end].to_vec(), next))
}

/// Formats a timestamp the way XML protocols carry them.
pub(crate) fn xml_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats a timestamp as JSON epoch seconds.
pub(crate) fn epoch_seconds(time: DateTime<Utc>) -> Value {
    let seconds = time.timestamp() as f64 + f64::from(time.timestamp_subsec_millis()) / 1000.0;
    serde_json::Number::from_f64(seconds)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Reads `Key`/`Value` structures of a query-protocol tag list.
pub(crate) fn query_tags(params: &Params, prefix: &str) -> BTreeMap<String, String> {
    params
        .structs(prefix)
        .into_iter()
        .filter_map(|tag| {
            let key = tag.get("Key")?.to_string();
            Some((key, tag.get("Value").unwrap_or_default().to_string()))
        })
        .collect()
}

/// Reads a JSON tag list `[{"Key": k, "Value": v}]`.
pub(crate) fn json_tags(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|tag| {
                    let key = tag.get("Key")?.as_str()?.to_string();
                    let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default();
                    Some((key, value.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Returns a purchase count, at least 1, defaulting to 1.
pub(crate) fn purchase_count(service: Service, count: Option<i64>) -> Result<i64, AwsError> {
    match count {
        None => Ok(1),
        Some(count) if count >= 1 => Ok(count),
        Some(_) => Err(AwsError::invalid_parameter(
            service,
            "the count must be at least 1",
        )),
    }
}

/// Parses a duration filter given in years or seconds.
pub(crate) fn duration_filter(
    service: Service,
    value: Option<&str>,
) -> Result<Option<Vec<i64>>, AwsError> {
    value
        .filter(|value| !value.is_empty())
        .map(|value| {
            value
                .parse::<i64>()
                .map(|duration| vec![crate::catalogue::normalize_duration(duration)])
                .map_err(|_| AwsError::invalid_parameter(service, "invalid duration"))
        })
        .transpose()
}

/// A new commitment id (a UUID, the shape EC2, Redshift, OpenSearch and Savings Plans
/// use).
pub(crate) fn new_commitment_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<u32> = (0..7).collect();
        let (first, next) = paginate(Service::Rds, &items, None, Some(3), 100).unwrap();
        assert_eq!(first, vec![0, 1, 2]);
        let (second, next) = paginate(Service::Rds, &items, next.as_deref(), Some(3), 100).unwrap();
        assert_eq!(second, vec![3, 4, 5]);
        let (third, next) = paginate(Service::Rds, &items, next.as_deref(), Some(3), 100).unwrap();
        assert_eq!(third, vec![6]);
        assert!(next.is_none());
        assert!(paginate(Service::Rds, &items, Some("bogus"), None, 100).is_err());
    }
}

/// Builds a new active commitment of the calling account and region, created at the
/// sandbox's AWS clock.
pub(crate) fn build_commitment(
    context: &CallContext<'_>,
    offering: crate::catalogue::Offering,
    commitment_id: String,
    count: i64,
    tags: BTreeMap<String, String>,
) -> crate::ledger::Commitment {
    crate::ledger::Commitment {
        service: context.service,
        account_id: context.account_id.clone(),
        region: context.region.clone(),
        commitment_id,
        offering_id: offering.offering_id.clone(),
        count,
        created_at: context.aws_now,
        tags,
        client_token: None,
        reservation_id: None,
        hourly_commitment: None,
        upfront_payment_amount: None,
        state: "active".to_string(),
        offering,
        request_fingerprint: None,
    }
}

/// Stores a new commitment and notes it on the call.
pub(crate) fn commit(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
    commitment: crate::ledger::Commitment,
) {
    context.note.commitment_id = Some(commitment.commitment_id.clone());
    context.note.note_tags(&commitment.tags);
    if commitment.reservation_id.is_some() {
        context.note.reservation_id = commitment.reservation_id.clone();
    }
    state.insert_commitment(commitment);
}

/// Matches `value` against an EC2-style filter pattern where `*` is any run of
/// characters and `?` any one character.
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, v));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            v = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod glob_tests {
    use super::glob_match;

    #[test]
    fn stars_and_question_marks_match_like_ec2_filters() {
        assert!(glob_match("abc", "abc"));
        assert!(glob_match("a*", "abc"));
        assert!(glob_match("*c", "abc"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*d", "abc"));
        assert!(!glob_match("abc", "abcd"));
    }
}
