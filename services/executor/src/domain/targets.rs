//! Which target account buys which recommendation (DOMAIN.md "Executions": targets),
//! and the totals a creation reply states.

use std::collections::HashSet;

use cudly_common::ApiError;
use uuid::Uuid;

use crate::domain::recommendation::Recommendation;

/// The items one target account buys: indices into the root's recommendation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetItems {
    pub account_id: Uuid,
    pub item_indices: Vec<u32>,
}

/// Parses target account ids: at least one, each a uuid, no duplicates.
pub fn parse_targets(ids: &[String]) -> Result<Vec<Uuid>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid_field(
            "target_account_ids",
            "at least one target account is required",
        ));
    }
    let mut seen = HashSet::new();
    let mut targets = Vec::with_capacity(ids.len());
    for (position, text) in ids.iter().enumerate() {
        let field = format!("target_account_ids[{position}]");
        let id =
            Uuid::parse_str(text).map_err(|_| ApiError::invalid_field(&field, "must be a uuid"))?;
        if !seen.insert(id) {
            return Err(ApiError::invalid_field(&field, "duplicate target account"));
        }
        targets.push(id);
    }
    Ok(targets)
}

/// Returns, per target (in target order), the items it buys:
/// - a line naming cloud_account_id is bought by that account only (400 if it is not a
///   target);
/// - with one target, every other line is bought by it;
/// - with several targets, a line without cloud_account_id needs `all_accounts: true`
///   (400 otherwise) and is then bought by every target.
pub fn assign_items(
    targets: &[Uuid],
    recommendations: &[Recommendation],
) -> Result<Vec<TargetItems>, ApiError> {
    let mut plan: Vec<TargetItems> = targets
        .iter()
        .map(|account_id| TargetItems {
            account_id: *account_id,
            item_indices: Vec::new(),
        })
        .collect();
    for (index, recommendation) in recommendations.iter().enumerate() {
        let item_index = u32::try_from(index)
            .map_err(|_| ApiError::invalid_field("recommendations", "too many lines"))?;
        match recommendation.cloud_account_id {
            Some(account_id) => {
                let Some(target) = plan.iter_mut().find(|t| t.account_id == account_id) else {
                    return Err(ApiError::invalid_field(
                        &format!("recommendations[{index}].cloud_account_id"),
                        "is not one of the execution's target accounts",
                    ));
                };
                target.item_indices.push(item_index);
            }
            None if plan.len() == 1 || recommendation.all_accounts => {
                for target in &mut plan {
                    target.item_indices.push(item_index);
                }
            }
            None => {
                return Err(ApiError::invalid_field(
                    &format!("recommendations[{index}].cloud_account_id"),
                    "is required with several target accounts, unless all_accounts is true",
                ));
            }
        }
    }
    Ok(plan)
}

/// Item count and known upfront cost of a set of items.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub items: u32,
    pub upfront_cost: f64,
}

impl Totals {
    /// Adds one item bought from `recommendation`.
    pub fn add(&mut self, recommendation: &Recommendation) {
        self.items += 1;
        self.upfront_cost += recommendation.upfront_cost.unwrap_or(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::recommendation::tests::rds;

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn one_target_buys_every_line() {
        let targets = ids(1);
        let plan = assign_items(&targets, &[rds(), rds()]).unwrap();
        assert_eq!(plan[0].item_indices, vec![0, 1]);
    }

    #[test]
    fn a_named_account_buys_its_line_alone() {
        let targets = ids(2);
        let mut named = rds();
        named.cloud_account_id = Some(targets[1]);
        let mut everyone = rds();
        everyone.all_accounts = true;
        let plan = assign_items(&targets, &[named, everyone]).unwrap();
        assert_eq!(plan[0].item_indices, vec![1]);
        assert_eq!(plan[1].item_indices, vec![0, 1]);
    }

    #[test]
    fn a_line_naming_a_non_target_is_refused() {
        let targets = ids(2);
        let mut named = rds();
        named.cloud_account_id = Some(Uuid::new_v4());
        let error = assign_items(&targets, &[named]).unwrap_err();
        assert_eq!(error.http_status(), 400);
        assert_eq!(
            error.field.as_deref(),
            Some("recommendations[0].cloud_account_id")
        );
    }

    #[test]
    fn with_several_targets_an_unnamed_line_needs_all_accounts() {
        let targets = ids(2);
        let error = assign_items(&targets, &[rds()]).unwrap_err();
        assert!(error.message.contains("all_accounts"), "{}", error.message);
    }

    #[test]
    fn targets_must_be_distinct_uuids() {
        assert!(parse_targets(&[]).is_err());
        assert!(parse_targets(&["nope".to_owned()]).is_err());
        let id = Uuid::new_v4().to_string();
        assert!(parse_targets(&[id.clone(), id.clone()]).is_err());
        assert_eq!(parse_targets(&[id]).unwrap().len(), 1);
    }

    #[test]
    fn totals_count_items_and_known_costs() {
        let mut totals = Totals::default();
        totals.add(&rds());
        let mut unknown = rds();
        unknown.upfront_cost = None;
        totals.add(&unknown);
        assert_eq!(totals.items, 2);
        assert_eq!(totals.upfront_cost, 1234.5);
    }
}
