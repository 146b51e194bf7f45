//! The AWS services a recommendation may name, and the facts of their purchase calls
//! that the idempotency protocol relies on (docs/design/DOMAIN.md "Idempotency").

use std::fmt;

use serde::{Deserialize, Serialize};

/// The wire names of [`AwsService`], in [`AwsService::ALL`] order.
pub const AWS_SERVICE_NAMES: [&str; 7] = [
    "ec2",
    "savingsplans",
    "rds",
    "elasticache",
    "memorydb",
    "opensearch",
    "redshift",
];

/// An AWS service that sells commitments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AwsService {
    Ec2,
    SavingsPlans,
    Rds,
    ElastiCache,
    MemoryDb,
    OpenSearch,
    Redshift,
}

impl AwsService {
    pub const ALL: [AwsService; 7] = [
        AwsService::Ec2,
        AwsService::SavingsPlans,
        AwsService::Rds,
        AwsService::ElastiCache,
        AwsService::MemoryDb,
        AwsService::OpenSearch,
        AwsService::Redshift,
    ];

    /// Returns the service named `name` (`ec2`, `savingsplans`, `rds`, `elasticache`,
    /// `memorydb`, `opensearch`, `redshift`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|service| service.name() == name)
    }

    /// Returns the wire name, e.g. `savingsplans`.
    pub fn name(self) -> &'static str {
        match self {
            AwsService::Ec2 => AWS_SERVICE_NAMES[0],
            AwsService::SavingsPlans => AWS_SERVICE_NAMES[1],
            AwsService::Rds => AWS_SERVICE_NAMES[2],
            AwsService::ElastiCache => AWS_SERVICE_NAMES[3],
            AwsService::MemoryDb => AWS_SERVICE_NAMES[4],
            AwsService::OpenSearch => AWS_SERVICE_NAMES[5],
            AwsService::Redshift => AWS_SERVICE_NAMES[6],
        }
    }

    /// True when the purchase call carries the token (a client-chosen id, name or
    /// client token) that the commitment keeps from its creation, so a look-up by token
    /// after the call settled tells for sure whether it was bought (RDS, ElastiCache,
    /// MemoryDB, OpenSearch, Savings Plans). EC2 and Redshift commitments get the token
    /// only from a tag written afterwards.
    pub fn commitment_carries_token(self) -> bool {
        !matches!(self, AwsService::Ec2 | AwsService::Redshift)
    }

    /// True when AWS documents that re-sending the purchase call with the same token
    /// cannot buy twice, so an unknown outcome may be re-sent at once: RDS, ElastiCache
    /// and MemoryDB refuse a reservation id already used, Savings Plans honour a client
    /// token. OpenSearch documents no uniqueness of its reservation name: it is re-sent
    /// only after its outcome settled and a look-up found nothing.
    pub fn resend_is_idempotent(self) -> bool {
        matches!(
            self,
            AwsService::Rds
                | AwsService::ElastiCache
                | AwsService::MemoryDb
                | AwsService::SavingsPlans
        )
    }

    /// Returns the reservation-id prefix of a service whose purchase takes a
    /// client-chosen id.
    pub fn reservation_prefix(self) -> Option<&'static str> {
        match self {
            AwsService::Rds => Some("rds-id-"),
            AwsService::ElastiCache => Some("elasticache-id-"),
            AwsService::MemoryDb => Some("memorydb-id-"),
            AwsService::OpenSearch => Some("opensearch-id-"),
            AwsService::Ec2 | AwsService::SavingsPlans | AwsService::Redshift => None,
        }
    }
}

impl fmt::Display for AwsService {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_serde_name() {
        for (service, name) in AwsService::ALL.into_iter().zip(AWS_SERVICE_NAMES) {
            assert_eq!(service.name(), name);
            assert_eq!(AwsService::from_name(name), Some(service));
            assert_eq!(serde_json::to_value(service).unwrap(), name);
        }
    }

    #[test]
    fn only_ec2_and_redshift_purchases_carry_no_client_id() {
        let without: Vec<AwsService> = AwsService::ALL
            .into_iter()
            .filter(|service| !service.commitment_carries_token())
            .collect();
        assert_eq!(without, [AwsService::Ec2, AwsService::Redshift]);
    }

    #[test]
    fn a_service_re_sent_at_once_carries_its_token() {
        for service in AwsService::ALL {
            if service.resend_is_idempotent() {
                assert!(service.commitment_carries_token(), "{service}");
            }
        }
        assert!(!AwsService::OpenSearch.resend_is_idempotent());
    }
}
