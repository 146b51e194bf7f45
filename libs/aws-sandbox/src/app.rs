//! The running sandbox: state behind one lock, persistence, and the operations both
//! the control API and [`crate::SandboxHandle`] offer.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::config::{AccountSpec, SandboxConfig};
use crate::error::SandboxResult;
use crate::faults::{ActiveFault, FaultId, FaultSpec};
use crate::ledger::{Commitment, Ledger};
use crate::persistence;
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

struct Persistence {
    path: PathBuf,
    /// The state version last written; a writer that finds a newer version already on
    /// disk has nothing to do, so concurrent changes share one write.
    written_version: Mutex<u64>,
}

pub(crate) struct App {
    state: Mutex<SandboxState>,
    persistence: Option<Persistence>,
    config: SandboxConfig,
}

impl App {
    /// Builds the state from the config, reloading the state file when there is one.
    pub fn new(config: SandboxConfig) -> SandboxResult<App> {
        let accounts = config.load_accounts()?;
        let loaded = match &config.state_path {
            Some(path) => persistence::load(path)?,
            None => None,
        };
        let state = match loaded {
            Some(persisted) => {
                let mut state = SandboxState::from_persisted(persisted);
                // Accounts configured since the state was saved join it; accounts the
                // state already has keep their saved form.
                for account in accounts {
                    if !state.accounts.contains_key(&account.account_id) {
                        state.put_account(account);
                    }
                }
                state
            }
            None => {
                let mut state = SandboxState::default();
                state.reset(accounts);
                state
            }
        };
        let persistence = config.state_path.clone().map(|path| Persistence {
            path,
            written_version: Mutex::new(0),
        });
        let app = App {
            state: Mutex::new(state),
            persistence,
            config,
        };
        app.persist()?;
        Ok(app)
    }

    /// Locks the state. A panic while the lock was held leaves the state as it was at
    /// the panic, which is still the best account of what happened, so poisoning is
    /// ignored.
    pub fn lock(&self) -> MutexGuard<'_, SandboxState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the state file if the state changed since it was last written.
    pub fn persist(&self) -> SandboxResult<()> {
        let Some(persistence) = &self.persistence else {
            return Ok(());
        };
        let mut written_version = persistence
            .written_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (version, bytes) = {
            let state = self.lock();
            if state.version <= *written_version && *written_version != 0 {
                return Ok(());
            }
            (state.version, persistence::serialize(&state)?)
        };
        persistence::write_atomically(&persistence.path, &bytes)?;
        *written_version = version.max(1);
        Ok(())
    }

    /// Persists, logging a failure instead of returning it: the AWS side has already
    /// answered or must answer anyway.
    pub fn persist_or_log(&self) {
        if let Err(error) = self.persist() {
            tracing::error!(%error, "sandbox state not persisted");
        }
    }

    pub fn add_account(&self, account: AccountSpec) -> SandboxResult<()> {
        account.validate()?;
        self.lock().put_account(account);
        self.persist()
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
        self.lock().reset(accounts);
        self.persist()
    }

    pub fn state_path(&self) -> Option<&PathBuf> {
        self.persistence
            .as_ref()
            .map(|persistence| &persistence.path)
    }
}
