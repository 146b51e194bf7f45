//! The plan model (docs/design/DOMAIN.md "Plans"): providers, the services map, the ramp schedule,
//! and the plan as stored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cudly_vocabulary::Provider;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One service of a plan, as stored in the plan's services document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub provider: Provider,
    pub service: String,
    pub enabled: bool,
    /// Years: 1 or 3.
    pub term: u32,
    pub payment: String,
    /// Percent, 0-100.
    pub coverage: f64,
    #[serde(default)]
    pub include_regions: Vec<String>,
    #[serde(default)]
    pub exclude_regions: Vec<String>,
    #[serde(default)]
    pub include_types: Vec<String>,
    #[serde(default)]
    pub exclude_types: Vec<String>,
}

/// Returns the services-map key of a provider and service: `"aws/ec2"`.
pub fn service_key(provider: Provider, service: &str) -> String {
    format!("{}/{service}", provider.as_str())
}

/// The kinds of ramp schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RampType {
    /// Everything at once: 100%, one step.
    Immediate,
    /// 25% per step, every 7 days, 4 steps.
    Weekly25Pct,
    /// 10% per step, every 30 days, 10 steps.
    Monthly10Pct,
    /// Steps given by the plan.
    Custom,
}

impl RampType {
    pub const ALL: [RampType; 4] = [
        RampType::Immediate,
        RampType::Weekly25Pct,
        RampType::Monthly10Pct,
        RampType::Custom,
    ];

    /// Returns the wire name: `immediate`, `weekly-25pct`, `monthly-10pct`, `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            RampType::Immediate => "immediate",
            RampType::Weekly25Pct => "weekly-25pct",
            RampType::Monthly10Pct => "monthly-10pct",
            RampType::Custom => "custom",
        }
    }

    /// Returns the ramp type named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A plan's ramp schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RampSchedule {
    pub ramp_type: RampType,
    /// Percent of the coverage added by each step (0 < p <= 100).
    pub percent_per_step: f64,
    pub step_interval_days: u32,
    /// Steps completed so far.
    pub current_step: u32,
    pub total_steps: u32,
    pub start_date: DateTime<Utc>,
}

impl RampSchedule {
    /// Returns the step the next run buys (`current_step + 1`), or `None` once every
    /// step has completed.
    pub fn next_step(&self) -> Option<u32> {
        (self.current_step < self.total_steps).then_some(self.current_step + 1)
    }

    /// Returns true when the schedule fields an operator writes are the same (the
    /// current step is not one of them).
    pub fn same_schedule(&self, other: &RampSchedule) -> bool {
        self.ramp_type == other.ramp_type
            && self.percent_per_step == other.percent_per_step
            && self.step_interval_days == other.step_interval_days
            && self.total_steps == other.total_steps
            && self.start_date == other.start_date
    }
}

/// A plan as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: Uuid,
    pub name: String,
    pub enabled: bool,
    pub auto_purchase: bool,
    pub notification_days_before: u32,
    /// Keyed `"<provider>/<service>"`.
    pub services: BTreeMap<String, ServiceConfig>,
    pub ramp: RampSchedule,
    /// Targets every enabled account of the plan's providers (no explicit list).
    pub all_enabled_accounts: bool,
    pub next_execution_date: Option<DateTime<Utc>>,
    pub last_execution_date: Option<DateTime<Utc>>,
    /// Times the next step (`ramp.current_step + 1`) was fired without completing.
    pub step_fires: u32,
    /// Why the planner paused (disabled) the plan; cleared when it is enabled again.
    pub paused_reason: Option<String>,
    /// The most one run may commit (USD); `None`: only the guardrails limit it.
    pub max_commitment_per_run: Option<f64>,
    /// Who last created or changed the plan: scheduled runs are created in their name.
    pub editor: Option<Editor>,
    /// An admin asked to turn auto_purchase on and waits for another identity.
    pub auto_purchase_requested_by: Option<Editor>,
    /// What a scheduled run buys: the standing list, or what Cost Explorer recommends.
    pub source: PlanSource,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Plan {
    /// Returns the plan's providers: the distinct providers of its services.
    pub fn providers(&self) -> BTreeSet<Provider> {
        providers_of(&self.services)
    }
}

/// What a plan's runs buy when no list is given (docs/design/DOMAIN.md "Plans" and
/// "Recommendations and sizing").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlanSource {
    /// The standing list, filtered and scaled per step.
    #[default]
    List,
    /// The stored Cost Explorer recommendations, sized by coverage per step.
    Recommendations,
}

impl PlanSource {
    pub const NAMES: [&'static str; 2] = ["list", "recommendations"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "list" => Some(Self::List),
            "recommendations" => Some(Self::Recommendations),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => Self::NAMES[0],
            Self::Recommendations => Self::NAMES[1],
        }
    }
}

/// Who creates or changes a plan: `key:<name>` and the key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editor {
    pub actor: String,
    pub key_id: Option<String>,
}

/// Returns the distinct providers of a services map.
pub fn providers_of(services: &BTreeMap<String, ServiceConfig>) -> BTreeSet<Provider> {
    services.values().map(|service| service.provider).collect()
}

/// The writable fields of a plan as received, before validation. Absent optional fields
/// take the REST defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanInput {
    pub name: String,
    pub enabled: Option<bool>,
    pub auto_purchase: Option<bool>,
    pub notification_days_before: Option<u32>,
    pub services: BTreeMap<String, ServiceInput>,
    pub ramp_schedule: Option<RampInput>,
    pub max_commitment_per_run: Option<f64>,
    /// `list` | `recommendations`; absent: list.
    pub source: Option<String>,
}

/// One service of a plan as received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceInput {
    pub provider: String,
    pub service: String,
    pub enabled: Option<bool>,
    pub term: u32,
    pub payment: String,
    pub coverage: f64,
    pub include_regions: Vec<String>,
    pub exclude_regions: Vec<String>,
    pub include_types: Vec<String>,
    pub exclude_types: Vec<String>,
}

/// A ramp schedule as received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RampInput {
    pub ramp_type: Option<String>,
    pub percent_per_step: Option<f64>,
    pub step_interval_days: Option<u32>,
    pub total_steps: Option<u32>,
    pub start_date: Option<DateTime<Utc>>,
}

/// A validated plan, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpec {
    pub name: String,
    pub enabled: bool,
    pub auto_purchase: bool,
    pub notification_days_before: u32,
    pub services: BTreeMap<String, ServiceConfig>,
    pub ramp: RampSpec,
    pub max_commitment_per_run: Option<f64>,
    pub source: PlanSource,
}

impl PlanSpec {
    /// Returns the providers of the validated services.
    pub fn providers(&self) -> BTreeSet<Provider> {
        providers_of(&self.services)
    }
}

/// A validated ramp schedule. `start_date` is `None` when not given: now on creation,
/// the stored date on update.
#[derive(Debug, Clone, PartialEq)]
pub struct RampSpec {
    pub ramp_type: RampType,
    pub percent_per_step: f64,
    pub step_interval_days: u32,
    pub total_steps: u32,
    pub start_date: Option<DateTime<Utc>>,
}

/// An account as the accounts service describes it, reduced to what plans need.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRef {
    pub id: Uuid,
    pub name: String,
    /// The provider's wire name (kept as text: an account of a provider this service
    /// does not know is still named in a mismatch).
    pub provider: String,
    pub external_id: String,
    pub enabled: bool,
}

impl AccountRef {
    /// Returns the account's provider when it is one this service knows.
    pub fn provider(&self) -> Option<Provider> {
        Provider::parse(&self.provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
        for kind in RampType::ALL {
            assert_eq!(RampType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Provider::parse("AWS"), None);
        assert_eq!(RampType::parse("weekly"), None);
    }

    #[test]
    fn the_next_step_is_none_after_the_last() {
        let mut ramp = RampSchedule {
            ramp_type: RampType::Weekly25Pct,
            percent_per_step: 25.0,
            step_interval_days: 7,
            current_step: 3,
            total_steps: 4,
            start_date: Utc::now(),
        };
        assert_eq!(ramp.next_step(), Some(4));
        ramp.current_step = 4;
        assert_eq!(ramp.next_step(), None);
    }
}
