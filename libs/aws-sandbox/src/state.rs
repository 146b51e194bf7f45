//! The sandbox's state: accounts, sessions, commitments per (account, region), the
//! ledger of calls, the offerings described so far, their price overrides, the seeded
//! Cost Explorer recommendations, and the installed faults.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::behaviour::Behaviour;
use crate::catalogue::{self, Offering, OfferingQuery};
use crate::config::{
    AccessKeySpec, AccountSpec, CUDLY_MEMBER_ROLE, ORGANIZATION_ACCESS_ROLE, RoleSpec,
};
use crate::error::{SandboxError, SandboxResult};
use crate::faults::FaultSet;
use crate::identity::Session;
use crate::ledger::{Commitment, Ledger, LedgerCall};
use crate::prices::{PriceOverride, PriceUpdate};
use crate::recommendations::Recommendation;
use crate::service::Service;

/// One change to the persisted state, as the journal records it. Replaying the changes
/// of a journal on the snapshot they follow rebuilds the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Change {
    Account {
        account: AccountSpec,
    },
    Reset {
        accounts: Vec<AccountSpec>,
    },
    Session {
        session: Session,
    },
    Commitment {
        commitment: Commitment,
    },
    CommitmentUpdated {
        position: usize,
        commitment: Commitment,
    },
    Call {
        call: LedgerCall,
    },
    Offering {
        offering: Offering,
    },
    Price {
        offering_id: String,
        price: PriceOverride,
    },
    /// One `POST /_sandbox/recommendations`, every seed it added.
    Recommendations {
        recommendations: Vec<Recommendation>,
    },
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PersistedState {
    /// Sequence number of the last journal change the snapshot includes.
    #[serde(default)]
    pub last_sequence: u64,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountSpec>,
    #[serde(default)]
    pub sessions: BTreeMap<String, Session>,
    #[serde(default)]
    pub commitments: Vec<Commitment>,
    #[serde(default)]
    pub calls: Vec<LedgerCall>,
    #[serde(default)]
    pub offerings: BTreeMap<String, Offering>,
    #[serde(default)]
    pub price_overrides: BTreeMap<String, PriceOverride>,
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
}

/// The whole mutable state, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct SandboxState {
    /// Accounts as configured (config file, `SandboxConfig`, control API).
    pub accounts: BTreeMap<String, AccountSpec>,
    pub sessions: BTreeMap<String, Session>,
    pub commitments: Vec<Commitment>,
    pub calls: Vec<LedgerCall>,
    /// Every offering described so far, so a purchase can find it by id, at its
    /// catalogue price.
    pub offerings: BTreeMap<String, Offering>,
    /// Prices set with `PUT /_sandbox/prices`, by offering id, laid over the catalogue's
    /// wherever an offering leaves the state.
    pub price_overrides: BTreeMap<String, PriceOverride>,
    /// What Cost Explorer answers with, in seeding order.
    pub recommendations: Vec<Recommendation>,
    pub faults: FaultSet,
    /// The behaviour switches; not persisted, like the faults.
    pub behaviour: Behaviour,
    /// Changes made since the journal last took them.
    pending: Vec<Change>,
    /// Accounts as they behave: configured ones plus organization members, each
    /// member with the organization access role.
    effective_accounts: BTreeMap<String, AccountSpec>,
    key_owner: HashMap<String, (String, usize)>,
    organization_root_of: HashMap<String, String>,
    commitments_by_scope: HashMap<(String, String), Vec<usize>>,
}

impl SandboxState {
    pub fn from_persisted(persisted: PersistedState) -> SandboxState {
        let mut state = SandboxState {
            accounts: persisted.accounts,
            sessions: persisted.sessions,
            commitments: persisted.commitments,
            calls: persisted.calls,
            offerings: persisted.offerings,
            price_overrides: persisted.price_overrides,
            recommendations: persisted.recommendations,
            ..SandboxState::default()
        };
        state.rebuild_accounts();
        state.rebuild_commitment_index();
        state
    }

    /// Returns the changes made since the last call, for the journal.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.pending)
    }

    /// Applies a journaled change (on replay after a restart).
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Account { account } => self.put_account(account),
            Change::Reset { accounts } => self.reset(accounts),
            Change::Session { session } => self.insert_session(session),
            Change::Commitment { commitment } => self.insert_commitment(commitment),
            Change::CommitmentUpdated {
                position,
                commitment,
            } => {
                if let Some(existing) = self.commitments.get_mut(position) {
                    *existing = commitment;
                }
            }
            Change::Call { call } => self.push_call(call),
            Change::Offering { offering } => {
                self.offerings
                    .insert(offering.offering_id.clone(), offering);
            }
            Change::Price { offering_id, price } => {
                self.price_overrides.insert(offering_id, price);
            }
            Change::Recommendations { recommendations } => {
                self.add_recommendations(recommendations);
            }
        }
        self.pending.clear();
    }

    /// Empties the state (seeded recommendations included), restores the default
    /// behaviour and list prices and installs `accounts`; the offering registry stays, since the catalogue is the same before
    /// and after.
    pub fn reset(&mut self, accounts: Vec<AccountSpec>) {
        self.pending.push(Change::Reset {
            accounts: accounts.clone(),
        });
        self.accounts = accounts
            .into_iter()
            .map(|account| (account.account_id.clone(), account))
            .collect();
        self.sessions.clear();
        self.commitments.clear();
        self.calls.clear();
        self.faults.clear();
        self.price_overrides.clear();
        self.recommendations.clear();
        self.behaviour = Behaviour::default();
        self.rebuild_accounts();
        self.rebuild_commitment_index();
    }

    /// Adds or replaces an account.
    pub fn put_account(&mut self, account: AccountSpec) {
        self.pending.push(Change::Account {
            account: account.clone(),
        });
        self.accounts.insert(account.account_id.clone(), account);
        self.rebuild_accounts();
    }

    /// Stores session credentials handed out by STS.
    pub fn insert_session(&mut self, session: Session) {
        self.pending.push(Change::Session {
            session: session.clone(),
        });
        self.sessions.insert(session.access_key_id.clone(), session);
    }

    /// Appends seeded recommendations after those there are; returns how many.
    pub fn add_recommendations(&mut self, recommendations: Vec<Recommendation>) -> usize {
        let added = recommendations.len();
        self.pending.push(Change::Recommendations {
            recommendations: recommendations.clone(),
        });
        self.recommendations.extend(recommendations);
        added
    }

    /// Appends a call to the ledger.
    pub fn push_call(&mut self, call: LedgerCall) {
        self.pending.push(Change::Call { call: call.clone() });
        self.calls.push(call);
    }

    fn rebuild_accounts(&mut self) {
        let mut effective = self.accounts.clone();
        let mut organization_root_of = HashMap::new();
        for root in self.accounts.values() {
            let Some(members) = &root.organization_members else {
                continue;
            };
            organization_root_of.insert(root.account_id.clone(), root.account_id.clone());
            for member in members {
                organization_root_of.insert(member.account_id.clone(), root.account_id.clone());
                let account = effective
                    .entry(member.account_id.clone())
                    .or_insert_with(|| {
                        AccountSpec::new(member.account_id.clone()).with_name(member.name.clone())
                    });
                for role_name in [ORGANIZATION_ACCESS_ROLE, CUDLY_MEMBER_ROLE] {
                    if !account.roles.iter().any(|role| role.role_name == role_name) {
                        account
                            .roles
                            .push(RoleSpec::new(role_name, root.account_id.clone()));
                    }
                }
            }
        }
        let mut key_owner = HashMap::new();
        for account in effective.values() {
            for (index, key) in account.access_keys.iter().enumerate() {
                key_owner.insert(
                    key.access_key_id.clone(),
                    (account.account_id.clone(), index),
                );
            }
        }
        self.effective_accounts = effective;
        self.key_owner = key_owner;
        self.organization_root_of = organization_root_of;
    }

    fn rebuild_commitment_index(&mut self) {
        let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (position, commitment) in self.commitments.iter().enumerate() {
            index
                .entry((commitment.account_id.clone(), commitment.region.clone()))
                .or_default()
                .push(position);
        }
        self.commitments_by_scope = index;
    }

    /// Returns the account and key of a long-lived access key id.
    pub fn long_lived_key(&self, access_key_id: &str) -> Option<(&str, &AccessKeySpec)> {
        let (account_id, index) = self.key_owner.get(access_key_id)?;
        let account = self.effective_accounts.get(account_id)?;
        Some((account_id.as_str(), account.access_keys.get(*index)?))
    }

    pub fn account(&self, account_id: &str) -> Option<&AccountSpec> {
        self.effective_accounts.get(account_id)
    }

    pub fn effective_accounts(&self) -> impl Iterator<Item = &AccountSpec> {
        self.effective_accounts.values()
    }

    /// Returns the organization root of an account that belongs to an organization.
    pub fn organization_root_of(&self, account_id: &str) -> Option<&str> {
        self.organization_root_of
            .get(account_id)
            .map(String::as_str)
    }

    pub fn insert_commitment(&mut self, commitment: Commitment) {
        self.pending.push(Change::Commitment {
            commitment: commitment.clone(),
        });
        let position = self.commitments.len();
        self.commitments_by_scope
            .entry((commitment.account_id.clone(), commitment.region.clone()))
            .or_default()
            .push(position);
        self.commitments.push(commitment);
    }

    /// Returns the commitments of one service in one (account, region), oldest first.
    pub fn commitments_in<'a>(
        &'a self,
        account_id: &str,
        region: &str,
        service: Service,
    ) -> impl Iterator<Item = &'a Commitment> + 'a {
        let positions = self
            .commitments_by_scope
            .get(&(account_id.to_string(), region.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        positions
            .iter()
            .filter_map(|position| self.commitments.get(*position))
            .filter(move |commitment| commitment.service == service)
    }

    /// Changes a commitment of one service in one (account, region), found by id;
    /// returns whether it exists.
    pub fn update_commitment(
        &mut self,
        account_id: &str,
        region: &str,
        service: Service,
        commitment_id: &str,
        update: impl FnOnce(&mut Commitment),
    ) -> bool {
        let Some(positions) = self
            .commitments_by_scope
            .get(&(account_id.to_string(), region.to_string()))
        else {
            return false;
        };
        let Some(position) = positions.iter().copied().find(|position| {
            self.commitments.get(*position).is_some_and(|commitment| {
                commitment.service == service && commitment.commitment_id == commitment_id
            })
        }) else {
            return false;
        };
        let Some(commitment) = self.commitments.get_mut(position) else {
            return false;
        };
        update(commitment);
        self.pending.push(Change::CommitmentUpdated {
            position,
            commitment: commitment.clone(),
        });
        true
    }

    /// Describes offerings at their current prices and remembers them (at their
    /// catalogue prices) for later purchases by id, zonal EC2 offerings included (their
    /// ids differ from the regional ones).
    pub fn describe_offerings(
        &mut self,
        service: Service,
        region: &str,
        query: &OfferingQuery,
    ) -> Vec<Offering> {
        let offerings = catalogue::generate(service, region, query);
        for offering in &offerings {
            if !self.offerings.contains_key(&offering.offering_id) {
                self.pending.push(Change::Offering {
                    offering: offering.clone(),
                });
                self.offerings
                    .insert(offering.offering_id.clone(), offering.clone());
            }
        }
        offerings
            .into_iter()
            .map(|offering| self.priced(offering))
            .collect()
    }

    /// Returns `offering` at its current price: the catalogue's, or the one a price
    /// update set.
    fn priced(&self, mut offering: Offering) -> Offering {
        if let Some(price) = self.price_overrides.get(&offering.offering_id) {
            price.apply(&mut offering);
        }
        offering
    }

    /// Changes the price of an offering the sandbox knows (one described before, or
    /// part of a default catalogue a purchase looked in), from now on; the prices the
    /// update does not name stay as they are.
    pub fn set_price(&mut self, update: &PriceUpdate) -> SandboxResult<()> {
        let known = self
            .offerings
            .get(&update.offering_id)
            .is_some_and(|offering| offering.service == update.service);
        if !known {
            return Err(SandboxError::UnknownOffering(format!(
                "{} has no offering {} (describe it first)",
                update.service, update.offering_id
            )));
        }
        let price = self
            .price_overrides
            .get(&update.offering_id)
            .copied()
            .unwrap_or_default()
            .merged(update);
        self.pending.push(Change::Price {
            offering_id: update.offering_id.clone(),
            price,
        });
        self.price_overrides
            .insert(update.offering_id.clone(), price);
        Ok(())
    }

    /// Returns an offering of `service` by id at its current price, whether described
    /// before (zonal EC2 offerings too) or part of the region's default (regional)
    /// catalogue.
    pub fn find_offering(
        &mut self,
        service: Service,
        region: &str,
        offering_id: &str,
    ) -> Option<Offering> {
        let expected_region = if service == Service::Savingsplans {
            ""
        } else {
            region
        };
        if let Some(offering) = self.offerings.get(offering_id) {
            return (offering.service == service && offering.region == expected_region)
                .then(|| self.priced(offering.clone()));
        }
        self.describe_offerings(service, region, &OfferingQuery::default())
            .into_iter()
            .find(|offering| offering.offering_id == offering_id)
    }

    /// Returns the ledger, filtered by account and service when given.
    pub fn ledger(&self, account_id: Option<&str>, service: Option<Service>) -> Ledger {
        let account_matches = |candidate: &str| account_id.is_none_or(|wanted| wanted == candidate);
        let service_matches = |candidate: Service| service.is_none_or(|wanted| wanted == candidate);
        let calls = self
            .calls
            .iter()
            .filter(|call| account_matches(&call.account_id) && service_matches(call.service))
            .cloned()
            .collect();
        let commitments = self
            .commitments
            .iter()
            .filter(|commitment| {
                account_matches(&commitment.account_id) && service_matches(commitment.service)
            })
            .cloned()
            .collect();
        Ledger::from_parts(calls, commitments)
    }
}
