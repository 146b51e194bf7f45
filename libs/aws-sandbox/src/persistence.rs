//! Persistence: a snapshot file plus a journal of the changes made since it.
//!
//! The snapshot is replaced atomically (written beside, synced, renamed over), so it is
//! always either the old or the new one. Every change is appended to the journal before
//! the call that made it is answered, so an acknowledged purchase survives even a
//! killed emulator; appending costs the size of the change, not of the state, which
//! keeps thousands of purchases cheap. At start (after replay), at shutdown and every
//! [`COMPACT_AFTER`] changes the state is written as a new snapshot and the journal
//! starts over. Each journal line carries a sequence number and the snapshot the last
//! one it includes, so a crash between the two steps replays nothing twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalogue::Offering;
use crate::config::AccountSpec;
use crate::error::{SandboxError, SandboxResult};
use crate::identity::Session;
use crate::ledger::{Commitment, LedgerCall};
use crate::prices::PriceOverride;
use crate::recommendations::Recommendation;
use crate::state::{Change, PersistedState, SandboxState};

/// Journal length after which the state is compacted into a new snapshot.
pub(crate) const COMPACT_AFTER: u64 = 20_000;

/// A borrowed view of what is persisted, so saving does not clone the state.
#[derive(Serialize)]
struct PersistedView<'a> {
    last_sequence: u64,
    accounts: &'a BTreeMap<String, AccountSpec>,
    sessions: &'a BTreeMap<String, Session>,
    commitments: &'a [Commitment],
    calls: &'a [LedgerCall],
    offerings: &'a BTreeMap<String, Offering>,
    price_overrides: &'a BTreeMap<String, PriceOverride>,
    recommendations: &'a [Recommendation],
}

#[derive(Serialize)]
struct JournalLineRef<'a> {
    sequence: u64,
    change: &'a Change,
}

#[derive(Deserialize)]
struct JournalLine {
    sequence: u64,
    change: Change,
}

/// The snapshot and journal of one state file.
pub(crate) struct Store {
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    journal: BufWriter<File>,
    next_sequence: u64,
    since_snapshot: u64,
}

impl Store {
    /// Loads the snapshot at `path` and replays its journal onto it; a missing
    /// snapshot is an empty state. Returns `None` when there was nothing saved.
    pub fn load(path: &Path) -> SandboxResult<Option<(SandboxState, u64)>> {
        let Some(snapshot) = read_snapshot(path)? else {
            return Ok(None);
        };
        let mut last_sequence = snapshot.last_sequence;
        let mut state = SandboxState::from_persisted(snapshot);
        let journal_path = journal_path(path);
        let file = match File::open(&journal_path) {
            Ok(file) => Some(file),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SandboxError::Read {
                    path: journal_path,
                    source,
                });
            }
        };
        for line in file
            .map(|file| BufReader::new(file).lines())
            .into_iter()
            .flatten()
        {
            let line = line.map_err(|source| SandboxError::Read {
                path: journal_path.clone(),
                source,
            })?;
            // A line cut short by a kill mid-write is the last one: nothing follows it.
            let Ok(entry) = serde_json::from_str::<JournalLine>(&line) else {
                tracing::warn!(path = %journal_path.display(), "journal ends in a partial line");
                break;
            };
            if entry.sequence > last_sequence {
                state.apply(entry.change);
                last_sequence = entry.sequence;
            }
        }
        state.take_changes();
        Ok(Some((state, last_sequence)))
    }

    /// Writes `state` as the snapshot at `path` and starts an empty journal beside it.
    pub fn create(path: &Path, state: &SandboxState, last_sequence: u64) -> SandboxResult<Store> {
        write_snapshot(path, state, last_sequence)?;
        let journal_path = journal_path(path);
        let journal = open_journal(&journal_path)?;
        Ok(Store {
            snapshot_path: path.to_path_buf(),
            journal_path,
            journal,
            next_sequence: last_sequence + 1,
            since_snapshot: 0,
        })
    }

    /// Appends changes to the journal and hands them to the kernel before returning,
    /// so they survive the emulator process; compacts when the journal is long.
    pub fn append(&mut self, state: &SandboxState, changes: &[Change]) -> SandboxResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let write_error = |source| SandboxError::Write {
            path: self.journal_path.clone(),
            source,
        };
        for change in changes {
            let line = JournalLineRef {
                sequence: self.next_sequence,
                change,
            };
            serde_json::to_writer(&mut self.journal, &line)?;
            self.journal.write_all(b"\n").map_err(write_error)?;
            self.next_sequence += 1;
            self.since_snapshot += 1;
        }
        self.journal.flush().map_err(write_error)?;
        if self.since_snapshot >= COMPACT_AFTER {
            self.compact(state)?;
        }
        Ok(())
    }

    /// Writes the whole state as the snapshot and empties the journal.
    pub fn compact(&mut self, state: &SandboxState) -> SandboxResult<()> {
        let last_sequence = self.next_sequence - 1;
        write_snapshot(&self.snapshot_path, state, last_sequence)?;
        self.journal = open_journal(&self.journal_path)?;
        self.since_snapshot = 0;
        Ok(())
    }
}

/// The journal of the snapshot at `path`: `<path>.journal`.
pub(crate) fn journal_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(".journal");
    path.with_file_name(name)
}

/// Opens the journal empty: its old lines are all in the snapshot just written.
fn open_journal(path: &Path) -> SandboxResult<BufWriter<File>> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|source| SandboxError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(BufWriter::new(file))
}

fn read_snapshot(path: &Path) -> SandboxResult<Option<PersistedState>> {
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

fn write_snapshot(path: &Path, state: &SandboxState, last_sequence: u64) -> SandboxResult<()> {
    let view = PersistedView {
        last_sequence,
        accounts: &state.accounts,
        sessions: &state.sessions,
        commitments: &state.commitments,
        calls: &state.calls,
        offerings: &state.offerings,
        price_overrides: &state.price_overrides,
        recommendations: &state.recommendations,
    };
    write_atomically(path, &serde_json::to_vec(&view)?)
}

/// Replaces `path` with `bytes` atomically.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> SandboxResult<()> {
    let write_error = |source| SandboxError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = temporary_path(path);
    let mut file = File::create(&temporary).map_err(write_error)?;
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

    fn account(id: &str) -> AccountSpec {
        AccountSpec::new(id).with_access_key(format!("AKIA{id}"), "s")
    }

    #[test]
    fn journaled_changes_replay_onto_the_snapshot() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        assert!(Store::load(&path).unwrap().is_none());
        let mut state = SandboxState::default();
        state.put_account(account("1"));
        state.take_changes();
        let mut store = Store::create(&path, &state, 0).unwrap();
        state.put_account(account("2"));
        let changes = state.take_changes();
        store.append(&state, &changes).unwrap();

        let (loaded, last_sequence) = Store::load(&path).unwrap().unwrap();
        assert_eq!(last_sequence, 1);
        assert!(loaded.accounts.contains_key("1") && loaded.accounts.contains_key("2"));
    }

    #[test]
    fn a_crash_between_snapshot_and_journal_reset_replays_nothing_twice() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        let mut state = SandboxState::default();
        let mut store = Store::create(&path, &state, 0).unwrap();
        state.reset(vec![account("1")]);
        state.put_account(account("2"));
        let changes = state.take_changes();
        store.append(&state, &changes).unwrap();
        // The snapshot is written but the journal keeps its old lines.
        write_snapshot(&path, &state, 2).unwrap();
        let (loaded, last_sequence) = Store::load(&path).unwrap().unwrap();
        assert_eq!(last_sequence, 2);
        assert_eq!(loaded.accounts.len(), 2);
    }

    #[test]
    fn price_overrides_survive_the_journal_and_the_snapshot_and_a_reset_clears_them() {
        use crate::catalogue::OfferingQuery;
        use crate::prices::PriceUpdate;
        use crate::service::Service;

        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        let mut state = SandboxState::default();
        let mut store = Store::create(&path, &state, 0).unwrap();
        let offering_id = state
            .describe_offerings(Service::Redshift, "us-east-1", &OfferingQuery::default())
            .remove(0)
            .offering_id;
        state
            .set_price(&PriceUpdate::new(Service::Redshift, &offering_id).with_fixed_price(42.0))
            .unwrap();
        let changes = state.take_changes();
        store.append(&state, &changes).unwrap();

        let (mut journaled, _) = Store::load(&path).unwrap().unwrap();
        let price = |state: &mut SandboxState| {
            state
                .find_offering(Service::Redshift, "us-east-1", &offering_id)
                .unwrap()
                .fixed_price
        };
        assert_eq!(price(&mut journaled), 42.0);
        store.compact(&state).unwrap();
        let (mut snapshotted, _) = Store::load(&path).unwrap().unwrap();
        assert_eq!(price(&mut snapshotted), 42.0);
        snapshotted.reset(Vec::new());
        assert_ne!(price(&mut snapshotted), 42.0);
    }

    #[test]
    fn seeded_recommendations_survive_the_journal_and_the_snapshot() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        let mut state = SandboxState::default();
        let mut store = Store::create(&path, &state, 0).unwrap();
        let seeds = crate::recommendations::parse_seeds(
            br#"{"account_id": "1", "service": "redshift", "region": "us-east-1",
                 "resource_type": "ra3.xlplus", "term": 3, "payment": "all-upfront",
                 "recommended_count": 2}"#,
        )
        .unwrap();
        state.add_recommendations(seeds.clone());
        let changes = state.take_changes();
        store.append(&state, &changes).unwrap();
        assert_eq!(
            Store::load(&path).unwrap().unwrap().0.recommendations,
            seeds
        );
        store.compact(&state).unwrap();
        assert_eq!(
            Store::load(&path).unwrap().unwrap().0.recommendations,
            seeds
        );
    }

    #[test]
    fn a_partial_last_journal_line_is_ignored() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json");
        let mut state = SandboxState::default();
        let mut store = Store::create(&path, &state, 0).unwrap();
        state.put_account(account("1"));
        let changes = state.take_changes();
        store.append(&state, &changes).unwrap();
        let mut journal = OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .unwrap();
        journal.write_all(b"{\"sequence\": 2, \"chan").unwrap();
        let (loaded, _) = Store::load(&path).unwrap().unwrap();
        assert!(loaded.accounts.contains_key("1"));
    }
}
