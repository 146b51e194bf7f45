//! Plan ↔ account binding rules (docs/design/DOMAIN.md "Plans"): which accounts a plan may be bound
//! to, which accounts an update would orphan, and which accounts a run targets.

use std::collections::{BTreeSet, HashSet};

use cudly_common::ApiError;
use cudly_common::error::AccountMismatch;
use uuid::Uuid;

use super::plan::AccountRef;

use cudly_vocabulary::Provider;

/// Most accounts one plan may list explicitly.
pub const MAX_PLAN_ACCOUNTS: usize = 5000;

/// Returns the ids parsed and de-duplicated in the order given, or a 400 naming the
/// first malformed one (`account_ids[2]`).
pub fn parse_account_ids(ids: &[String]) -> Result<Vec<Uuid>, ApiError> {
    if ids.len() > MAX_PLAN_ACCOUNTS {
        return Err(ApiError::invalid_field(
            "account_ids",
            format!("at most {MAX_PLAN_ACCOUNTS} accounts are allowed"),
        ));
    }
    let mut parsed = cudly_proto::convert::parse_ids(ids, "account_ids")?;
    let mut seen = HashSet::with_capacity(parsed.len());
    parsed.retain(|id| seen.insert(*id));
    Ok(parsed)
}

/// Checks that every requested account exists (else 404 naming the missing ids) and has
/// one of the plan's providers (else 400 listing every mismatched account by name and
/// provider). Returns the accounts in the requested order.
pub fn check_binding(
    requested: &[Uuid],
    found: Vec<AccountRef>,
    not_found: &[Uuid],
    providers: &BTreeSet<Provider>,
) -> Result<Vec<AccountRef>, ApiError> {
    let mut missing: Vec<Uuid> = not_found.to_vec();
    for id in requested {
        if !found.iter().any(|account| account.id == *id) && !missing.contains(id) {
            missing.push(*id);
        }
    }
    if !missing.is_empty() {
        let listed: Vec<String> = missing.iter().map(Uuid::to_string).collect();
        return Err(ApiError::not_found(format!(
            "accounts not found: {}",
            listed.join(", ")
        )));
    }
    let ordered: Vec<AccountRef> = requested
        .iter()
        .filter_map(|id| found.iter().find(|account| account.id == *id).cloned())
        .collect();
    let mismatches = mismatched(&ordered, providers);
    if !mismatches.is_empty() {
        return Err(mismatch_error(
            format!(
                "accounts do not match the plan's providers ({})",
                provider_list(providers)
            ),
            mismatches,
        ));
    }
    Ok(ordered)
}

/// Returns the accounts whose provider is not one of `providers`.
pub fn mismatched(accounts: &[AccountRef], providers: &BTreeSet<Provider>) -> Vec<AccountMismatch> {
    accounts
        .iter()
        .filter(|account| {
            !account
                .provider()
                .is_some_and(|provider| providers.contains(&provider))
        })
        .map(|account| AccountMismatch {
            id: account.id.to_string(),
            name: account.name.clone(),
            provider: account.provider.clone(),
        })
        .collect()
}

/// Returns a 400 whose message names every mismatched account and whose `mismatches`
/// field lists them.
pub fn mismatch_error(lead: String, mismatches: Vec<AccountMismatch>) -> ApiError {
    let named: Vec<String> = mismatches
        .iter()
        .map(|mismatch| format!("{} ({})", mismatch.name, mismatch.provider))
        .collect();
    let mut error =
        ApiError::invalid(format!("{lead}: {}", named.join(", "))).with_mismatches(mismatches);
    error.field = Some("account_ids".to_owned());
    error
}

/// Returns the bound accounts an update to `new_providers` would orphan, as a 400
/// naming them; Ok when none.
pub fn check_orphans(
    bound: &[AccountRef],
    new_providers: &BTreeSet<Provider>,
) -> Result<(), ApiError> {
    let orphans = mismatched(bound, new_providers);
    if orphans.is_empty() {
        return Ok(());
    }
    let mut error = mismatch_error(
        "services: the update removes a provider still used by the plan's accounts".to_owned(),
        orphans,
    );
    error.field = Some("services".to_owned());
    Err(error)
}

/// Returns the accounts a run targets, in order: the enabled accounts of the plan's
/// providers among `candidates`. For an explicit list, `candidates` are the listed
/// accounts still known (in list order); for "all enabled accounts", the accounts
/// service's answer. Disabled or unknown accounts are never targets.
pub fn select_targets(candidates: &[AccountRef], providers: &BTreeSet<Provider>) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    candidates
        .iter()
        .filter(|account| account.enabled)
        .filter(|account| {
            account
                .provider()
                .is_some_and(|provider| providers.contains(&provider))
        })
        .filter(|account| seen.insert(account.id))
        .map(|account| account.id)
        .collect()
}

/// Returns "aws, azure".
pub fn provider_list(providers: &BTreeSet<Provider>) -> String {
    providers
        .iter()
        .map(|provider| provider.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, provider: &str, enabled: bool) -> AccountRef {
        AccountRef {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            provider: provider.to_owned(),
            external_id: "123456789012".to_owned(),
            enabled,
        }
    }

    fn aws_only() -> BTreeSet<Provider> {
        BTreeSet::from([Provider::Aws])
    }

    #[test]
    fn account_ids_are_parsed_deduplicated_and_named_when_malformed() {
        let id = Uuid::new_v4();
        let parsed = parse_account_ids(&[id.to_string(), format!(" {id} ")]).unwrap();
        assert_eq!(parsed, vec![id]);
        let error = parse_account_ids(&[id.to_string(), "nope".to_owned()]).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("account_ids[1]"));
        assert_eq!(error.http_status(), 400);
    }

    #[test]
    fn every_mismatched_account_is_named_with_its_provider() {
        let prod = account("Prod", "aws", true);
        let staging = account("Staging", "aws", true);
        let azure = account("Azure-Sub", "azure", true);
        let gcp = account("GCP-Proj", "gcp", false);
        let requested = vec![prod.id, azure.id, staging.id, gcp.id];
        let found = vec![gcp.clone(), staging.clone(), azure.clone(), prod.clone()];
        let error = check_binding(&requested, found, &[], &aws_only()).unwrap_err();
        assert_eq!(error.http_status(), 400);
        let names: Vec<(&str, &str)> = error
            .mismatches
            .iter()
            .map(|m| (m.name.as_str(), m.provider.as_str()))
            .collect();
        assert_eq!(names, vec![("Azure-Sub", "azure"), ("GCP-Proj", "gcp")]);
        assert!(
            error.message.contains("Azure-Sub (azure)"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("GCP-Proj (gcp)"),
            "{}",
            error.message
        );
        assert_eq!(error.to_json()["mismatches"][0]["id"], azure.id.to_string());
    }

    #[test]
    fn an_unknown_account_is_not_found_before_any_mismatch() {
        let azure = account("Azure-Sub", "azure", true);
        let ghost = Uuid::new_v4();
        let error =
            check_binding(&[azure.id, ghost], vec![azure], &[ghost], &aws_only()).unwrap_err();
        assert_eq!(error.http_status(), 404);
        assert!(error.message.contains(&ghost.to_string()));
        // An id the accounts service forgot to list is missing too.
        let silent = Uuid::new_v4();
        let error = check_binding(&[silent], vec![], &[], &aws_only()).unwrap_err();
        assert_eq!(error.http_status(), 404);
    }

    #[test]
    fn matching_accounts_come_back_in_the_requested_order() {
        let first = account("First", "aws", true);
        let second = account("Second", "aws", false);
        let bound = check_binding(
            &[second.id, first.id],
            vec![first.clone(), second.clone()],
            &[],
            &aws_only(),
        )
        .unwrap();
        assert_eq!(bound, vec![second, first]);
    }

    #[test]
    fn removing_a_provider_in_use_orphans_its_accounts() {
        let prod = account("Prod", "aws", true);
        let azure = account("Azure-Sub", "azure", true);
        let bound = vec![prod, azure];
        let both = BTreeSet::from([Provider::Aws, Provider::Azure]);
        assert!(check_orphans(&bound, &both).is_ok());
        let error = check_orphans(&bound, &aws_only()).unwrap_err();
        assert_eq!(error.http_status(), 400);
        assert_eq!(error.field.as_deref(), Some("services"));
        assert_eq!(error.mismatches.len(), 1);
        assert_eq!(error.mismatches[0].name, "Azure-Sub");
    }

    #[test]
    fn targets_are_the_enabled_accounts_of_the_plan_providers() {
        let prod = account("Prod", "aws", true);
        let disabled = account("Old", "aws", false);
        let azure = account("Azure-Sub", "azure", true);
        let staging = account("Staging", "aws", true);
        // (case, candidates, expected targets)
        let cases = [
            (
                "enabled aws accounts in order",
                vec![staging.clone(), disabled.clone(), prod.clone()],
                vec![staging.id, prod.id],
            ),
            (
                "a provider outside the plan is never a target",
                vec![azure.clone(), prod.clone()],
                vec![prod.id],
            ),
            (
                "only disabled accounts: nothing",
                vec![disabled.clone()],
                vec![],
            ),
            ("no candidates: nothing", vec![], vec![]),
            (
                "duplicates once",
                vec![prod.clone(), prod.clone()],
                vec![prod.id],
            ),
        ];
        for (case, candidates, expected) in cases {
            assert_eq!(select_targets(&candidates, &aws_only()), expected, "{case}");
        }
    }
}
