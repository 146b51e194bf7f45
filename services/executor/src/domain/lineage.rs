//! Lineage keys (docs/design/DOMAIN.md "Idempotency"): a root's key is derived from its creation key
//! scoped by route and plan, so keys never collide across plans; without a creation key
//! it is a random uuid. Every item token derives from it.

use cudly_common::ApiError;
use cudly_common::idempotency::check_key;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Prefix of creation keys taken from an Idempotency-Key header.
const IDEMPOTENCY_KEY_PREFIX: &str = "idempotency-key:";

/// How a root was asked for: through a plan, or directly for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Plan,
    Direct,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Plan => "plan",
            Route::Direct => "direct",
        }
    }

    pub fn of(plan_id: Option<Uuid>) -> Self {
        if plan_id.is_some() {
            Route::Plan
        } else {
            Route::Direct
        }
    }
}

/// Returns the lineage key of (route, plan, creation key): lowercase hex SHA-256 of the
/// three, separated so no two triples share an input.
pub fn derived_lineage_key(route: Route, plan_id: Option<Uuid>, creation_key: &str) -> String {
    let plan = plan_id.map(|id| id.to_string()).unwrap_or_default();
    let input = format!(
        "cudly-lineage\n{}\n{plan}\n{}",
        route.as_str(),
        creation_key
    );
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Returns a fresh random lineage key.
pub fn random_lineage_key() -> String {
    Uuid::new_v4().to_string()
}

/// Returns the creation key of a request: the given one, else one made from the
/// Idempotency-Key, else none (a fresh lineage). Keys are 1-255 printable ASCII
/// characters; `plan:` keys are the planner's.
pub fn creation_key(
    given: Option<&str>,
    idempotency_key: Option<&str>,
    caller_is_planner: bool,
) -> Result<Option<String>, ApiError> {
    if let Some(key) = idempotency_key {
        check_key("idempotency_key", key)?;
    }
    match given {
        Some(key) => {
            check_key("creation_key", key)?;
            if key.starts_with("plan:") && !caller_is_planner {
                return Err(ApiError::invalid_field(
                    "creation_key",
                    "plan step keys are reserved for the planner",
                ));
            }
            Ok(Some(key.to_owned()))
        }
        None => Ok(idempotency_key.map(|key| format!("{IDEMPOTENCY_KEY_PREFIX}{key}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_creation_key_gives_the_same_lineage_only_within_one_plan() {
        let plan = Some(Uuid::new_v4());
        let other_plan = Some(Uuid::new_v4());
        let key = "plan:x:step:1";
        assert_eq!(
            derived_lineage_key(Route::Plan, plan, key),
            derived_lineage_key(Route::Plan, plan, key)
        );
        assert_ne!(
            derived_lineage_key(Route::Plan, plan, key),
            derived_lineage_key(Route::Plan, other_plan, key)
        );
        assert_ne!(
            derived_lineage_key(Route::Plan, plan, key),
            derived_lineage_key(Route::Direct, None, key)
        );
        assert_eq!(derived_lineage_key(Route::Direct, None, key).len(), 64);
    }

    #[test]
    fn an_idempotency_key_becomes_a_prefixed_creation_key() {
        assert_eq!(
            creation_key(None, Some("abc"), false).unwrap().as_deref(),
            Some("idempotency-key:abc")
        );
        assert_eq!(creation_key(None, None, false).unwrap(), None);
        assert_eq!(
            creation_key(Some("plan:1:step:2"), Some("abc"), true)
                .unwrap()
                .as_deref(),
            Some("plan:1:step:2")
        );
    }

    #[test]
    fn plan_step_keys_are_the_planners_alone() {
        assert!(creation_key(Some("plan:1:step:2"), None, false).is_err());
        assert!(creation_key(Some("plan:1:step:2"), None, true).is_ok());
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(creation_key(None, Some(""), false).is_err());
        assert!(creation_key(None, Some("has space"), false).is_err());
        assert!(creation_key(None, Some(&"k".repeat(256)), false).is_err());
    }
}
