//! The target accounts of an execution as a request names them, and the totals a
//! reply states. Which target buys which line is `cudly_vocabulary::assign_targets`.

use cudly_common::ApiError;
use cudly_proto::convert::parse_ids;
use cudly_vocabulary::Recommendation;
use uuid::Uuid;

/// Parses target account ids: at least one, each a uuid, no duplicates.
pub fn parse_targets(ids: &[String]) -> Result<Vec<Uuid>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid_field(
            "target_account_ids",
            "at least one target account is required",
        ));
    }
    let targets = parse_ids(ids, "target_account_ids")?;
    for (position, id) in targets.iter().enumerate() {
        if targets[..position].contains(id) {
            return Err(ApiError::invalid_field(
                &format!("target_account_ids[{position}]"),
                "duplicate target account",
            ));
        }
    }
    Ok(targets)
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
    use cudly_vocabulary::{RecommendationInput, validate_recommendations};

    use super::*;

    fn rds(upfront_cost: Option<f64>) -> Recommendation {
        let line = RecommendationInput {
            provider: "aws".into(),
            service: "rds".into(),
            region: "us-east-1".into(),
            resource_type: "db.r6g.large".into(),
            count: 2,
            term: 1,
            payment: "all-upfront".into(),
            upfront_cost,
            ..RecommendationInput::default()
        };
        validate_recommendations(vec![line]).unwrap().remove(0)
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
        totals.add(&rds(Some(1234.5)));
        totals.add(&rds(None));
        assert_eq!(totals.items, 2);
        assert_eq!(totals.upfront_cost, 1234.5);
    }
}
