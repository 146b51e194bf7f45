//! Cloud providers, their payment options and their commitment terms.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::service::AWS_SERVICE_NAMES;

/// Payment options of AWS commitments.
pub const AWS_PAYMENT_OPTIONS: [&str; 3] = ["no-upfront", "partial-upfront", "all-upfront"];

/// Commitment terms, in years.
pub const TERMS_YEARS: [u32; 2] = [1, 3];

/// A cloud provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Azure,
    Gcp,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Aws, Provider::Azure, Provider::Gcp];

    /// Returns the provider's wire name: `aws`, `azure`, `gcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
        }
    }

    /// Returns the provider named `name` (exact, lowercase), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|provider| provider.as_str() == name)
    }

    /// Returns the payment options the provider sells commitments with.
    pub fn payment_options(self) -> &'static [&'static str] {
        match self {
            Provider::Aws => &AWS_PAYMENT_OPTIONS,
            Provider::Azure => &["upfront", "monthly"],
            Provider::Gcp => &["monthly"],
        }
    }

    /// Returns the provider's service names, when the vocabulary fixes them (AWS only
    /// for now: Azure and GCP services are accepted as lowercase names).
    pub fn services(self) -> Option<&'static [&'static str]> {
        match self {
            Provider::Aws => Some(&AWS_SERVICE_NAMES),
            Provider::Azure | Provider::Gcp => None,
        }
    }

    /// Returns true when recommendations of this provider can be bought (AWS only).
    pub fn is_purchasable(self) -> bool {
        self == Provider::Aws
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
            let json = serde_json::to_value(provider).unwrap();
            assert_eq!(json, provider.as_str());
        }
        assert_eq!(Provider::parse("AWS"), None);
    }
}
