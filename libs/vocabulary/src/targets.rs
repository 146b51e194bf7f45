//! Which target account buys which line (docs/design/DOMAIN.md "Executions": targets).

use uuid::Uuid;

use crate::error::FieldError;
use crate::recommendation::Recommendation;

/// The lines one target account buys: indices into the list, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetItems {
    pub account_id: Uuid,
    pub item_indices: Vec<u32>,
}

/// Returns, per target (in target order), the lines it buys:
/// - a line naming cloud_account_id is bought by that account only (an error if it is
///   not a target);
/// - with one target, every other line is bought by it;
/// - with several targets, a line without cloud_account_id needs `all_accounts` (an
///   error otherwise) and is then bought by every target.
pub fn assign_targets(
    targets: &[Uuid],
    recommendations: &[Recommendation],
) -> Result<Vec<TargetItems>, FieldError> {
    let mut assigned: Vec<TargetItems> = targets
        .iter()
        .map(|account_id| TargetItems {
            account_id: *account_id,
            item_indices: Vec::new(),
        })
        .collect();
    for (index, recommendation) in recommendations.iter().enumerate() {
        let item_index = u32::try_from(index)
            .map_err(|_| FieldError::new("recommendations", "too many lines"))?;
        let field = format!("recommendations[{index}].cloud_account_id");
        match recommendation.cloud_account_id {
            Some(account_id) => {
                let target = assigned
                    .iter_mut()
                    .find(|target| target.account_id == account_id)
                    .ok_or_else(|| FieldError::new(&field, "is not one of the target accounts"))?;
                target.item_indices.push(item_index);
            }
            None if assigned.len() == 1 || recommendation.all_accounts => {
                for target in &mut assigned {
                    target.item_indices.push(item_index);
                }
            }
            None => {
                return Err(FieldError::new(
                    field,
                    "is required with several target accounts, unless all_accounts is true",
                ));
            }
        }
    }
    Ok(assigned)
}
