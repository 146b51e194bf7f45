//! The purchase recommendations Cost Explorer answers with, seeded with `POST
//! /_sandbox/recommendations` (docs/design/SANDBOX.md "Cost Explorer"): the seed's
//! shape, its validation, and the names of terms, payments and plan types on both
//! sides (CUDly's vocabulary in the seed, Cost Explorer's on the wire), so the rules
//! that accept a seed and those that match a request to it are one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{SandboxError, SandboxResult};
use crate::operations::sells_commitments;
use crate::service::Service;

/// A commitment's length, 1 or 3 years (any other number is refused when parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub(crate) enum Term {
    OneYear,
    ThreeYears,
}

impl Term {
    const ALL: [Term; 2] = [Term::OneYear, Term::ThreeYears];

    /// Returns Cost Explorer's `TermInYears` name.
    pub fn aws_name(self) -> &'static str {
        match self {
            Term::OneYear => "ONE_YEAR",
            Term::ThreeYears => "THREE_YEARS",
        }
    }

    /// Returns the term Cost Explorer's `TermInYears` names.
    pub fn from_aws_name(name: &str) -> Option<Term> {
        Term::ALL.into_iter().find(|term| term.aws_name() == name)
    }
}

impl TryFrom<u8> for Term {
    type Error = String;

    fn try_from(years: u8) -> Result<Term, String> {
        match years {
            1 => Ok(Term::OneYear),
            3 => Ok(Term::ThreeYears),
            _ => Err("term must be 1 or 3 (years)".to_string()),
        }
    }
}

impl From<Term> for u8 {
    fn from(term: Term) -> u8 {
        match term {
            Term::OneYear => 1,
            Term::ThreeYears => 3,
        }
    }
}

/// How a commitment is paid, spelled in the seed as CUDly does (`no-upfront`, ...).
// The variants spell AWS's payment options, "Upfront" included.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Payment {
    NoUpfront,
    PartialUpfront,
    AllUpfront,
}

impl Payment {
    const ALL: [Payment; 3] = [
        Payment::NoUpfront,
        Payment::PartialUpfront,
        Payment::AllUpfront,
    ];

    /// Returns Cost Explorer's `PaymentOption` name.
    pub fn aws_name(self) -> &'static str {
        match self {
            Payment::NoUpfront => "NO_UPFRONT",
            Payment::PartialUpfront => "PARTIAL_UPFRONT",
            Payment::AllUpfront => "ALL_UPFRONT",
        }
    }

    /// Returns the payment Cost Explorer's `PaymentOption` names, when it is one of the
    /// three that buy commitments (not the legacy utilization options).
    pub fn from_aws_name(name: &str) -> Option<Payment> {
        Payment::ALL
            .into_iter()
            .find(|payment| payment.aws_name() == name)
    }
}

/// The type of a Savings Plan, spelled in the seed as the Savings Plans API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PlanType {
    Compute,
    #[serde(rename = "EC2Instance")]
    Ec2Instance,
    SageMaker,
}

impl PlanType {
    const ALL: [PlanType; 3] = [
        PlanType::Compute,
        PlanType::Ec2Instance,
        PlanType::SageMaker,
    ];

    /// Returns the Savings Plans API's name (`Compute`, `EC2Instance`, `SageMaker`).
    fn name(self) -> &'static str {
        match self {
            PlanType::Compute => "Compute",
            PlanType::Ec2Instance => "EC2Instance",
            PlanType::SageMaker => "SageMaker",
        }
    }

    /// Returns Cost Explorer's `SavingsPlansType` name.
    pub fn aws_name(self) -> &'static str {
        match self {
            PlanType::Compute => "COMPUTE_SP",
            PlanType::Ec2Instance => "EC2_INSTANCE_SP",
            PlanType::SageMaker => "SAGEMAKER_SP",
        }
    }

    /// Returns the plan type Cost Explorer's `SavingsPlansType` names.
    pub fn from_aws_name(name: &str) -> Option<PlanType> {
        PlanType::ALL
            .into_iter()
            .find(|plan_type| plan_type.aws_name() == name)
    }
}

/// One recommendation, as `POST /_sandbox/recommendations` takes it and as the state
/// keeps it (in seeding order, which is the order Cost Explorer answers in). Members a
/// service has no field for (an engine on EC2, a platform on RDS) are kept and not
/// answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recommendation {
    /// The account that would buy it.
    pub account_id: String,
    /// ec2 | savingsplans | rds | elasticache | memorydb | opensearch | redshift.
    pub service: Service,
    /// Required but for savingsplans, where only EC2Instance plans report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The instance or node type, required but for savingsplans, where it may name the
    /// plan type again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// rds: the database engine; elasticache: the cache engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// ec2: the platform (default `Linux/UNIX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// rds: a Multi-AZ deployment (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    pub term: Term,
    pub payment: Payment,
    /// Instances or nodes to buy, more than 0, fractions allowed (AWS recommends
    /// normalized units); required but for savingsplans, which answer none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_count: Option<f64>,
    /// USD, at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upfront_cost: Option<f64>,
    /// USD, at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_savings: Option<f64>,
    /// savingsplans (required): Compute | EC2Instance | SageMaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<PlanType>,
    /// savingsplans (required): USD per hour as decimal text, more than 0, e.g. "1.25";
    /// answered as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_commitment: Option<String>,
    /// savingsplans, EC2Instance plans: the instance family, e.g. `m5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_family: Option<String>,
    /// savingsplans: the offering the plan would be bought from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_id: Option<String>,
}

impl Recommendation {
    /// Returns the first rule the seed breaks, if any.
    fn problem(&self) -> Option<String> {
        if self.account_id.is_empty() {
            return Some("account_id is empty".to_string());
        }
        if !sells_commitments(self.service) {
            return Some(format!("service {} sells no commitments", self.service));
        }
        let amounts = [
            ("recommended_count", self.recommended_count),
            ("upfront_cost", self.upfront_cost),
            ("monthly_savings", self.monthly_savings),
        ];
        if let Some((name, _)) = amounts
            .iter()
            .find(|(_, amount)| amount.is_some_and(|value| !value.is_finite() || value < 0.0))
        {
            return Some(format!("{name} must be a number of at least 0"));
        }
        if self.service == Service::Savingsplans {
            self.savings_plan_problem()
        } else {
            self.reservation_problem()
        }
    }

    fn reservation_problem(&self) -> Option<String> {
        for (name, member) in [
            ("region", &self.region),
            ("resource_type", &self.resource_type),
        ] {
            if member.as_deref().is_none_or(str::is_empty) {
                return Some(format!("{} needs {name}", self.service));
            }
        }
        if !self.recommended_count.is_some_and(|count| count > 0.0) {
            return Some(format!(
                "{} needs a recommended_count of more than 0",
                self.service
            ));
        }
        None
    }

    fn savings_plan_problem(&self) -> Option<String> {
        let Some(plan_type) = self.plan_type else {
            return Some("savingsplans needs plan_type".to_string());
        };
        if self
            .resource_type
            .as_deref()
            .is_some_and(|resource_type| resource_type != plan_type.name())
        {
            return Some("savingsplans: resource_type, when given, must equal plan_type".into());
        }
        if !self
            .hourly_commitment
            .as_deref()
            .is_some_and(is_positive_decimal)
        {
            return Some(
                "savingsplans needs hourly_commitment, decimal text of more than 0".to_string(),
            );
        }
        None
    }
}

/// Whether `text` is a decimal number above 0 written as digits with at most one point
/// (`"1"`, `"0.25"`), the form AWS carries amounts in.
fn is_positive_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
    digits(whole) && digits(fraction) && text.parse::<f64>().is_ok_and(|value| value > 0.0)
}

/// Reads the body of `POST /_sandbox/recommendations`: one recommendation, or an array
/// of them (bulk seeding). Either every one is valid or none is taken; an error names
/// the position of the first bad one.
pub(crate) fn parse_seeds(body: &[u8]) -> SandboxResult<Vec<Recommendation>> {
    let invalid = SandboxError::InvalidRecommendation;
    let value: Value = serde_json::from_slice(body).map_err(|error| invalid(error.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(invalid(
                "the body must be a JSON object or an array of them".to_string(),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(position, item)| {
            let recommendation: Recommendation = serde_json::from_value(item)
                .map_err(|error| invalid(format!("recommendation {position}: {error}")))?;
            match recommendation.problem() {
                Some(problem) => Err(invalid(format!("recommendation {position}: {problem}"))),
                None => Ok(recommendation),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> SandboxResult<Vec<Recommendation>> {
        parse_seeds(body.to_string().as_bytes())
    }

    fn ec2() -> Value {
        serde_json::json!({"account_id": "111111111111", "service": "ec2", "region": "us-east-1",
            "resource_type": "m5.large", "term": 1, "payment": "no-upfront", "recommended_count": 2.5})
    }

    #[test]
    fn one_seed_or_an_array_of_them_is_read() {
        assert_eq!(parse(ec2()).unwrap().len(), 1);
        let plan = serde_json::json!({"account_id": "1", "service": "savingsplans", "term": 3,
            "payment": "all-upfront", "plan_type": "EC2Instance", "hourly_commitment": "0.25",
            "resource_type": "EC2Instance"});
        let seeds = parse(serde_json::json!([ec2(), plan])).unwrap();
        assert_eq!(seeds[1].plan_type, Some(PlanType::Ec2Instance));
        assert_eq!(seeds[1].term, Term::ThreeYears);
    }

    #[test]
    fn a_bad_seed_anywhere_refuses_the_whole_body() {
        let changes: [(&str, Value); 9] = [
            ("service", "sts".into()),
            ("service", "lambda".into()),
            ("term", 2.into()),
            ("payment", "NO_UPFRONT".into()),
            ("recommended_count", (-1).into()),
            ("recommended_count", 0.into()),
            ("region", "".into()),
            ("colour", "blue".into()),
            ("account_id", "".into()),
        ];
        for (name, value) in changes {
            let mut bad = ec2();
            bad[name] = value;
            let error = parse(serde_json::json!([ec2(), bad])).unwrap_err();
            assert!(error.to_string().contains("recommendation 1"), "{error}");
        }
        for plan in [
            serde_json::json!({"plan_type": "Compute"}),
            serde_json::json!({"hourly_commitment": "1"}),
            serde_json::json!({"plan_type": "Compute", "hourly_commitment": "-1"}),
            serde_json::json!({"plan_type": "Compute", "hourly_commitment": "1e3"}),
            serde_json::json!({"plan_type": "Compute", "hourly_commitment": "1", "resource_type": "SageMaker"}),
        ] {
            let mut bad = plan;
            for (name, value) in [
                ("account_id", "1"),
                ("service", "savingsplans"),
                ("payment", "no-upfront"),
            ] {
                bad[name] = value.into();
            }
            bad["term"] = 1.into();
            assert!(parse(bad.clone()).is_err(), "{bad} was accepted");
        }
        assert!(parse(serde_json::json!("ec2")).is_err());
    }

    #[test]
    fn aws_names_round_trip() {
        for term in Term::ALL {
            assert_eq!(Term::from_aws_name(term.aws_name()), Some(term));
        }
        for payment in Payment::ALL {
            assert_eq!(Payment::from_aws_name(payment.aws_name()), Some(payment));
        }
        for plan_type in PlanType::ALL {
            assert_eq!(
                PlanType::from_aws_name(plan_type.aws_name()),
                Some(plan_type)
            );
        }
        assert_eq!(Payment::from_aws_name("HEAVY_UTILIZATION"), None);
    }
}
