//! Persistence: the state as one JSON file, replaced atomically (write a temporary
//! file beside it, sync it, rename it over the old one) so a crash leaves either the
//! old or the new state, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalogue::Offering;
use crate::config::AccountSpec;
use crate::error::{SandboxError, SandboxResult};
use crate::identity::Session;
use crate::ledger::{Commitment, LedgerCall};
use crate::state::{PersistedState, SandboxState};

/// A borrowed view of what is persisted, so saving does not clone the state.
#[derive(Serialize)]
struct PersistedView<'a> {
    accounts: &'a BTreeMap<String, AccountSpec>,
    sessions: &'a BTreeMap<String, Session>,
    commitments: &'a [Commitment],
    calls: &'a [LedgerCall],
    offerings: &'a BTreeMap<String, Offering>,
}

/// Serializes the persisted part of the state.
pub(crate) fn serialize(state: &SandboxState) -> SandboxResult<Vec<u8>> {
    let view = PersistedView {
        accounts: &state.accounts,
        sessions: &state.sessions,
        commitments: &state.commitments,
        calls: &state.calls,
        offerings: &state.offerings,
    };
    Ok(serde_json::to_vec(&view)?)
}

/// Loads a state file; a missing file is an empty state.
pub(crate) fn load(path: &Path) -> SandboxResult<Option<PersistedState>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SandboxError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| SandboxError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Replaces `path` with `bytes` atomically.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> SandboxResult<()> {
    let write_error = |source| SandboxError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = temporary_path(path);
    let mut file = std::fs::File::create(&temporary).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(write_error)?;
    Ok(())
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_state_loads_back() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        assert!(load(&path).unwrap().is_none());
        let mut state = SandboxState::default();
        state.put_account(AccountSpec::new("111122223333").with_access_key("AKIA1", "s"));
        write_atomically(&path, &serialize(&state).unwrap()).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert!(loaded.accounts.contains_key("111122223333"));
        let leftovers: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
