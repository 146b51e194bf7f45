//! Behaviour switches: AWS behaviour the documentation leaves open, chosen per sandbox
//! so client code can be tested against each possibility. Like faults they are not
//! persisted, and a reset restores the defaults.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::catalogue::ONE_YEAR_SECONDS;
use crate::error::{SandboxError, SandboxResult};

/// The largest clock offset accepted, either way: 100 years.
pub const MAX_CLOCK_OFFSET_SECONDS: i64 = 100 * ONE_YEAR_SECONDS;

/// Whether Redshift lets reserved nodes be tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedshiftReservedNodeTags {
    /// CreateTags and DescribeTags accept reserved nodes.
    #[default]
    Supported,
    /// CreateTags and DescribeTags naming a reserved node answer `InvalidTagFault`.
    Rejected,
}

/// The behaviour switches, as `GET /_sandbox/behaviour` answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Whether Redshift reserved nodes can be tagged (default `supported`).
    pub redshift_reserved_node_tags: RedshiftReservedNodeTags,
    /// Whether an OpenSearch purchase reusing a `ReservationName` of the account and
    /// region is refused with `ResourceAlreadyExistsException` (default `true`);
    /// `false` creates a second reservation of that name.
    pub opensearch_unique_reservation_name: bool,
    /// How far the sandbox's "AWS clock" is ahead of the real one (negative: behind);
    /// commitments created while it is set are stamped with that clock (default 0).
    pub clock_offset_seconds: i64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            redshift_reserved_node_tags: RedshiftReservedNodeTags::Supported,
            opensearch_unique_reservation_name: true,
            clock_offset_seconds: 0,
        }
    }
}

impl Behaviour {
    /// Checks that the clock offset is at most [`MAX_CLOCK_OFFSET_SECONDS`] either way.
    pub fn validate(&self) -> SandboxResult<()> {
        if self.clock_offset_seconds.unsigned_abs() > MAX_CLOCK_OFFSET_SECONDS.unsigned_abs() {
            return Err(SandboxError::InvalidBehaviour(format!(
                "clock_offset_seconds must be between -{MAX_CLOCK_OFFSET_SECONDS} and {MAX_CLOCK_OFFSET_SECONDS}"
            )));
        }
        Ok(())
    }

    /// Returns the behaviour with the switches `update` names changed, the others as
    /// they are.
    pub fn updated(self, update: BehaviourUpdate) -> Behaviour {
        Behaviour {
            redshift_reserved_node_tags: update
                .redshift_reserved_node_tags
                .unwrap_or(self.redshift_reserved_node_tags),
            opensearch_unique_reservation_name: update
                .opensearch_unique_reservation_name
                .unwrap_or(self.opensearch_unique_reservation_name),
            clock_offset_seconds: update
                .clock_offset_seconds
                .unwrap_or(self.clock_offset_seconds),
        }
    }

    /// Returns the sandbox's "AWS clock" at the real time `now`: `now` shifted by the
    /// clock offset.
    pub fn aws_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        TimeDelta::try_seconds(self.clock_offset_seconds)
            .and_then(|offset| now.checked_add_signed(offset))
            .unwrap_or(now)
    }

    /// Whether Redshift refuses tag calls on reserved nodes.
    pub fn redshift_rejects_reserved_node_tags(&self) -> bool {
        self.redshift_reserved_node_tags == RedshiftReservedNodeTags::Rejected
    }
}

/// A change of some switches, the body of `POST /_sandbox/behaviour`: the switches it
/// names change, the others stay. Unknown fields and `null` values are refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourUpdate {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub redshift_reserved_node_tags: Option<RedshiftReservedNodeTags>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub opensearch_unique_reservation_name: Option<bool>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub clock_offset_seconds: Option<i64>,
}

/// Deserializes a field that, when present, must hold a value (`null` is refused).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_only_the_switches_it_names() {
        let update: BehaviourUpdate =
            serde_json::from_str(r#"{"clock_offset_seconds": -60}"#).unwrap();
        let updated = Behaviour::default().updated(update);
        assert_eq!(updated.clock_offset_seconds, -60);
        assert!(updated.opensearch_unique_reservation_name);
        assert_eq!(
            updated.redshift_reserved_node_tags,
            RedshiftReservedNodeTags::Supported
        );
    }

    #[test]
    fn unknown_fields_wrong_types_and_nulls_are_refused() {
        for body in [
            r#"{"colour": "blue"}"#,
            r#"{"clock_offset_seconds": "60"}"#,
            r#"{"clock_offset_seconds": 1.5}"#,
            r#"{"opensearch_unique_reservation_name": "yes"}"#,
            r#"{"redshift_reserved_node_tags": "maybe"}"#,
            r#"{"redshift_reserved_node_tags": null}"#,
        ] {
            assert!(
                serde_json::from_str::<BehaviourUpdate>(body).is_err(),
                "{body} was accepted"
            );
        }
    }

    #[test]
    fn the_clock_offset_shifts_the_aws_clock_within_bounds() {
        let now = Utc::now();
        let behind = Behaviour {
            clock_offset_seconds: -3600,
            ..Behaviour::default()
        };
        assert_eq!(behind.aws_time(now), now - TimeDelta::seconds(3600));
        assert_eq!(Behaviour::default().aws_time(now), now);
        assert!(behind.validate().is_ok());
        let absurd = Behaviour {
            clock_offset_seconds: i64::MIN,
            ..Behaviour::default()
        };
        assert!(absurd.validate().is_err());
    }
}
