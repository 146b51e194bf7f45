//! The running sandbox: state behind one lock, persistence, and the operations both
//! the control API and [`crate::SandboxHandle`] offer.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::behaviour::{Behaviour, BehaviourUpdate};
use crate::config::{AccountSpec, SandboxConfig};
use crate::error::SandboxResult;
use crate::faults::{ActiveFault, FaultId, FaultSpec};
use crate::ledger::{Commitment, Ledger};
use crate::persistence::Store;
use crate::prices::PriceUpdate;
use crate::purchase_concurrency::{OpenPurchase, PurchaseConcurrency, PurchaseGauge};
use crate::recommendations::Recommendation;
use crate::service::Service;
use crate::state::SandboxState;

/// A listing of the sandbox's state, as `GET /_sandbox/state` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSnapshot {
    /// Accounts as they behave, organization members and their roles included.
    pub accounts: Vec<AccountSpec>,
    pub commitments: Vec<Commitment>,
    pub faults: Vec<ActiveFault>,
    /// Session credentials handed out and not yet reset.
    pub sessions: usize,
    /// Offerings described (and so purchasable by id) so far.
    pub known_offerings: usize,
    pub calls: usize,
}

pub(crate) struct App {
    state: Mutex<SandboxState>,
    store: Option<Mutex<Store>>,
    config: SandboxConfig,
    /// Outside the state: it is neither persisted nor reset, and a call is counted
    /// without taking the lock.
    purchases: PurchaseGauge,
}

impl App {
    /// Builds the state from the config, reloading the state file (snapshot and
    /// journal) when there is one.
    pub fn new(config: SandboxConfig) -> SandboxResult<App> {
        let accounts = config.load_accounts()?;
        let loaded = match &config.state_path {
            Some(path) => Store::load(path)?,
            None => None,
        };
        let (mut state, last_sequence) = match loaded {
            Some((mut state, last_sequence)) => {
                // Accounts configured since the state was saved join it; accounts the
                // state already has keep their saved form.
                for account in accounts {
                    if !state.accounts.contains_key(&account.account_id) {
                        state.put_account(account);
                    }
                }
                (state, last_sequence)
            }
            None => {
                let mut state = SandboxState::default();
                state.reset(accounts);
                (state, 0)
            }
        };
        state.take_changes();
        let store = match &config.state_path {
            Some(path) => Some(Mutex::new(Store::create(path, &state, last_sequence)?)),
            None => None,
        };
        Ok(App {
            state: Mutex::new(state),
            store,
            config,
            purchases: PurchaseGauge::default(),
        })
    }

    /// Locks the state. A panic while the lock was held leaves the state as it was at
    /// the panic, which is still the best account of what happened, so poisoning is
    /// ignored.
    pub fn lock(&self) -> MutexGuard<'_, SandboxState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `change` on the state and journals what it changed before releasing the
    /// lock, so the journal holds changes in the order they happened and a call is
    /// answered only once its changes are saved. A failing journal is logged: the
    /// emulator keeps serving from memory.
    pub fn mutate<R>(&self, change: impl FnOnce(&mut SandboxState) -> R) -> R {
        let mut state = self.lock();
        let result = change(&mut state);
        let changes = state.take_changes();
        if let Some(store) = &self.store {
            let mut store = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = store.append(&state, &changes) {
                tracing::error!(%error, "sandbox state change not persisted");
            }
        }
        result
    }

    /// Writes the whole state as a fresh snapshot (at shutdown).
    pub fn flush(&self) -> SandboxResult<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let state = self.lock();
        store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .compact(&state)
    }

    pub fn add_account(&self, account: AccountSpec) -> SandboxResult<()> {
        account.validate()?;
        self.mutate(|state| state.put_account(account));
        Ok(())
    }

    pub fn add_fault(&self, spec: FaultSpec) -> SandboxResult<FaultId> {
        spec.validate()?;
        Ok(self.lock().faults.add(spec))
    }

    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.lock().faults.remove(id)
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn faults(&self) -> Vec<ActiveFault> {
        self.lock().faults.list()
    }

    pub fn behaviour(&self) -> Behaviour {
        self.lock().behaviour
    }

    /// Sets every switch; an invalid behaviour changes nothing.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> SandboxResult<Behaviour> {
        behaviour.validate()?;
        self.lock().behaviour = behaviour;
        Ok(behaviour)
    }

    /// Changes the switches `update` names and returns them all; an update making the
    /// behaviour invalid changes nothing.
    pub fn update_behaviour(&self, update: BehaviourUpdate) -> SandboxResult<Behaviour> {
        let mut state = self.lock();
        let updated = state.behaviour.updated(update);
        updated.validate()?;
        state.behaviour = updated;
        Ok(updated)
    }

    /// Changes one offering's price from now on; an invalid update or an unknown
    /// offering changes nothing.
    pub fn set_price(&self, update: PriceUpdate) -> SandboxResult<()> {
        update.validate()?;
        self.mutate(|state| state.set_price(&update))
    }

    /// Seeds Cost Explorer recommendations (validated by the caller); returns how many.
    pub fn add_recommendations(&self, recommendations: Vec<Recommendation>) -> usize {
        self.mutate(|state| state.add_recommendations(recommendations))
    }

    pub fn ledger(&self, account_id: Option<&str>, service: Option<Service>) -> Ledger {
        self.lock().ledger(account_id, service)
    }

    pub fn accounts(&self) -> Vec<AccountSpec> {
        self.lock().effective_accounts().cloned().collect()
    }

    pub fn snapshot(&self) -> SandboxSnapshot {
        let state = self.lock();
        SandboxSnapshot {
            accounts: state.effective_accounts().cloned().collect(),
            commitments: state.commitments.clone(),
            faults: state.faults.list(),
            sessions: state.sessions.len(),
            known_offerings: state.offerings.len(),
            calls: state.calls.len(),
        }
    }

    /// Empties the state and reloads the configured accounts (the config file is read
    /// again).
    pub fn reset(&self) -> SandboxResult<()> {
        let accounts = self.config.load_accounts()?;
        self.mutate(|state| state.reset(accounts));
        Ok(())
    }

    /// Counts the call of `operation` of `service` as an open purchase until the returned
    /// guard drops, when it is one.
    pub fn open_purchase(&self, service: Service, operation: &str) -> Option<OpenPurchase<'_>> {
        self.purchases.enter(service, operation)
    }

    pub fn purchase_concurrency(&self) -> PurchaseConcurrency {
        self.purchases.read()
    }

    pub fn reset_purchase_peak(&self) {
        self.purchases.reset_peak();
    }

    pub fn state_path(&self) -> Option<PathBuf> {
        self.config.state_path.clone()
    }
}
