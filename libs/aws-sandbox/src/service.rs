//! The AWS services the sandbox emulates, named in docs/design/DOMAIN.md's vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One emulated AWS service. Serialized lowercase (`ec2`, `savingsplans`, ...), the
/// names the control API, faults and the ledger use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Sts,
    Organizations,
    Ec2,
    Savingsplans,
    Rds,
    Elasticache,
    Memorydb,
    Opensearch,
    Redshift,
    /// Cost Explorer: sells nothing, answers purchase recommendations seeded with
    /// `POST /_sandbox/recommendations`.
    Costexplorer,
}

/// How a service puts requests and errors on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// EC2's own query dialect: lowercase elements, `<Response><Errors>` errors.
    Ec2Query,
    /// awsQuery: form body in, `<XResponse><XResult>` out.
    AwsQuery,
    /// awsJson1_1: `X-Amz-Target` picks the operation, errors carry `__type`.
    AwsJson,
    /// restJson1: the path picks the operation, errors carry `x-amzn-ErrorType`.
    RestJson,
}

impl Service {
    /// Every service, in a stable order.
    pub const ALL: [Service; 10] = [
        Service::Sts,
        Service::Organizations,
        Service::Ec2,
        Service::Savingsplans,
        Service::Rds,
        Service::Elasticache,
        Service::Memorydb,
        Service::Opensearch,
        Service::Redshift,
        Service::Costexplorer,
    ];

    /// Returns the lowercase name used by the control API and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Sts => "sts",
            Service::Organizations => "organizations",
            Service::Ec2 => "ec2",
            Service::Savingsplans => "savingsplans",
            Service::Rds => "rds",
            Service::Elasticache => "elasticache",
            Service::Memorydb => "memorydb",
            Service::Opensearch => "opensearch",
            Service::Redshift => "redshift",
            Service::Costexplorer => "costexplorer",
        }
    }

    /// Returns the prefix IAM names this service's actions with (`ec2:DescribeX`,
    /// `es:PurchaseReservedInstanceOffering`, `ce:GetX`), which session policies match
    /// calls against.
    pub fn iam_prefix(self) -> &'static str {
        match self {
            Service::Opensearch => "es",
            Service::Costexplorer => "ce",
            other => other.as_str(),
        }
    }

    /// Returns the IAM action a call of `operation` is authorized as
    /// (`ec2:PurchaseReservedInstancesOffering`).
    pub fn iam_action(self, operation: &str) -> String {
        format!("{}:{operation}", self.iam_prefix())
    }

    /// Returns the service a SigV4 signing name belongs to (OpenSearch signs as `es`,
    /// Cost Explorer as `ce`).
    pub fn from_signing_name(name: &str) -> Option<Service> {
        match name {
            "sts" => Some(Service::Sts),
            "organizations" => Some(Service::Organizations),
            "ec2" => Some(Service::Ec2),
            "savingsplans" => Some(Service::Savingsplans),
            "rds" => Some(Service::Rds),
            "elasticache" => Some(Service::Elasticache),
            "memorydb" => Some(Service::Memorydb),
            "es" | "opensearch" => Some(Service::Opensearch),
            "redshift" => Some(Service::Redshift),
            "ce" => Some(Service::Costexplorer),
            _ => None,
        }
    }

    /// Returns the service whose awsQuery/ec2 API version a form body names.
    pub(crate) fn from_query_version(version: &str) -> Option<Service> {
        match version {
            "2016-11-15" => Some(Service::Ec2),
            "2011-06-15" => Some(Service::Sts),
            "2014-10-31" => Some(Service::Rds),
            "2015-02-02" => Some(Service::Elasticache),
            "2012-12-01" => Some(Service::Redshift),
            _ => None,
        }
    }

    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Service::Ec2 => Protocol::Ec2Query,
            Service::Sts | Service::Rds | Service::Elasticache | Service::Redshift => {
                Protocol::AwsQuery
            }
            Service::Organizations | Service::Memorydb | Service::Costexplorer => Protocol::AwsJson,
            Service::Opensearch | Service::Savingsplans => Protocol::RestJson,
        }
    }

    /// Returns the XML namespace of an XML service's responses.
    pub(crate) fn xml_namespace(self) -> &'static str {
        match self {
            Service::Ec2 => "http://ec2.amazonaws.com/doc/2016-11-15/",
            Service::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
            Service::Rds => "http://rds.amazonaws.com/doc/2014-10-31/",
            Service::Elasticache => "http://elasticache.amazonaws.com/doc/2015-02-02/",
            Service::Redshift => "http://redshift.amazonaws.com/doc/2012-12-01/",
            _ => "",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for Service {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.as_str() == value)
            .ok_or_else(|| format!("unknown service {value}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_prefixes_are_the_ones_aws_policies_name() {
        assert_eq!(Service::Opensearch.iam_prefix(), "es");
        assert_eq!(Service::Costexplorer.iam_prefix(), "ce");
        assert_eq!(
            Service::Ec2.iam_action("DescribeReservedInstances"),
            "ec2:DescribeReservedInstances"
        );
        for service in Service::ALL {
            assert!(!service.iam_prefix().is_empty());
        }
    }
}
