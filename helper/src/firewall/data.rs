//! The data path: the kernel sets of imported lists, loaded over netlink beside the structure,
//! never through `nft` and never by re-sending the ruleset.
//!
//! Invariants:
//! - A set is filled completely before any rule names it. Each version of a list has its own set
//!   (the content hash is in its name), filled while no rule looks at it; the structure
//!   transaction that follows swaps the rules over in one step. So the packet path sees the old
//!   list or the new one, never a partial one, and never neither.
//! - Loads go in transactions of at most `CHUNK` elements: other writers of the ruleset (a DNS
//!   answer's addresses, an apply) wait at most one chunk.
//! - Which sets were filled completely is on disk (`<state>/data-sets.json`) before a structure
//!   names them. After a crash a set the record does not list is a partial fill: it is deleted
//!   and filled again.
//! - A generation that does not change a list does not touch its set.
//!
//! Every call runs under the firewall's apply lock, and blocks (netlink): callers use
//! `spawn_blocking`.

use super::kernel::Existing;
use super::netlink::{
    Batch, Element, ElementOp, Key, KeyType, NftSocket, SetRef, SetSpec, TableFamily,
};
use super::ruleset::{ImportedData, Ruleset, TABLE};
use crate::blocklist::store::ListStore;
use palisade_dbus::policy::Family;
use palisade_dbus::Error;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Elements per transaction of a big load (measured here: about 0.3 s per transaction at the
/// end of a million-entry load, so other writers are never held longer).
pub const CHUNK: usize = 20_000;

/// The data sets of our table, as far as the helper knows them.
#[derive(Debug)]
pub struct DataSets {
    record: PathBuf,
    complete: Mutex<BTreeSet<String>>,
}

impl DataSets {
    /// The record in `record` (missing: nothing is known to be complete).
    pub fn open(record: PathBuf) -> Self {
        let complete = std::fs::read(&record)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BTreeSet<String>>(&bytes).ok())
            .unwrap_or_default();
        Self {
            record,
            complete: Mutex::new(complete),
        }
    }

    fn complete(&self) -> BTreeSet<String> {
        self.complete.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn save(&self, complete: BTreeSet<String>) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&complete).map_err(|e| Error::Internal(e.to_string()))?;
        crate::store::write_atomic(&self.record, &bytes, 0o600)
            .map_err(|e| Error::Internal(format!("cannot record the loaded sets: {e}")))?;
        if let Ok(mut c) = self.complete.lock() {
            *c = complete;
        }
        Ok(())
    }

    /// Makes sure every set of an imported list that `ruleset` names exists and is complete,
    /// filling those that are not from `lists`. `existing` is what the kernel's table holds.
    pub fn ensure_loaded(
        &self,
        ruleset: &Ruleset,
        existing: &Existing,
        lists: &ListStore,
    ) -> Result<(), Error> {
        let mut complete = self.complete();
        // A set the kernel no longer has (reboot, someone deleted the table) is not complete.
        complete.retain(|name| existing.sets.contains(name));
        let mut socket = None;
        for set in &ruleset.sets {
            let Some(data) = &set.imported else { continue };
            if complete.contains(&set.name) {
                continue;
            }
            let socket = match &mut socket {
                Some(s) => s,
                None => socket.insert(open()?),
            };
            let target = set_ref(&set.name)?;
            if existing.sets.contains(&set.name) {
                // A fill that did not finish (the helper died): start again from empty.
                tracing::warn!(
                    "set {} was not filled completely; filling it again",
                    set.name
                );
                let mut batch = Batch::new();
                batch.delete_set(&target);
                socket.send(&mut batch).map_err(kernel)?;
            }
            fill(socket, &target, data, lists)?;
            complete.insert(set.name.clone());
            self.save(complete.clone())?;
        }
        Ok(())
    }

    /// Sets of imported lists that neither `ruleset` names nor anything else needs: deleted once
    /// the structure no longer names them. Returns their names.
    pub fn delete_unused(&self, ruleset: &Ruleset, existing: &Existing) -> Vec<String> {
        let named: BTreeSet<&str> = ruleset
            .sets
            .iter()
            .filter(|s| s.imported.is_some())
            .map(|s| s.name.as_str())
            .collect();
        let mut complete = self.complete();
        let unused: Vec<String> = existing
            .sets
            .iter()
            .filter(|s| complete.contains(*s) && !named.contains(s.as_str()))
            .cloned()
            .collect();
        if unused.is_empty() {
            return unused;
        }
        let deleted = open().and_then(|mut socket| {
            for name in &unused {
                let mut batch = Batch::new();
                batch.delete_set(&set_ref(name)?);
                socket.send(&mut batch).map_err(kernel)?;
            }
            Ok(())
        });
        match deleted {
            Ok(()) => {
                complete.retain(|s| !unused.contains(s));
                if let Err(e) = self.save(complete) {
                    tracing::warn!("{e}");
                }
            }
            // Left for the next install to retry; the packet path no longer looks at them.
            Err(e) => tracing::warn!("cannot delete unused list sets: {e}"),
        }
        unused
    }

    /// The sets of imported lists the structure transaction must leave alone: every complete
    /// one (unused ones are deleted after the new structure stops naming them).
    pub fn kept(&self) -> BTreeSet<String> {
        self.complete()
    }
}

/// Creates the set and loads one family of the list into it, in chunks.
fn fill(
    socket: &mut NftSocket,
    target: &SetRef,
    data: &ImportedData,
    lists: &ListStore,
) -> Result<(), Error> {
    let began = Instant::now();
    let stored = lists.load(&data.list).map_err(|e| {
        Error::Internal(format!(
            "cannot read imported list {}: {e}",
            data.list.as_str()
        ))
    })?;
    let key = match data.family {
        Family::V4 => KeyType::Ipv4Addr,
        Family::V6 => KeyType::Ipv6Addr,
    };
    let mut batch = Batch::new();
    batch.new_set(
        target,
        &SetSpec {
            key,
            interval: true,
            timeout: false,
            default_timeout: None,
        },
    );
    socket.send(&mut batch).map_err(kernel)?;
    let loaded = match data.family {
        Family::V4 => {
            let ranges = stored
                .networks
                .v4()
                .iter()
                .map(|&(first, last)| Element::Range {
                    first: Key::V4(Ipv4Addr::from(first)),
                    last: Key::V4(Ipv4Addr::from(last)),
                });
            socket.send_chunked(target, ElementOp::Add, ranges, CHUNK)
        }
        Family::V6 => {
            let ranges = stored
                .networks
                .v6()
                .iter()
                .map(|&(first, last)| Element::Range {
                    first: Key::V6(Ipv6Addr::from(first)),
                    last: Key::V6(Ipv6Addr::from(last)),
                });
            socket.send_chunked(target, ElementOp::Add, ranges, CHUNK)
        }
    }
    .map_err(kernel)?;
    tracing::info!(
        "loaded {} ranges of list {} into set {} in {:?}",
        loaded.elements,
        data.list.as_str(),
        target.set(),
        began.elapsed()
    );
    Ok(())
}

/// What the kernel's table holds now (netlink dumps: no set element is read).
pub fn existing() -> Result<Existing, Error> {
    let mut socket = open()?;
    let chains = socket
        .list_chains(TableFamily::Inet, TABLE)
        .map_err(kernel)?
        .into_iter()
        .map(|c| c.name)
        .collect();
    let sets = socket
        .list_sets(TableFamily::Inet, TABLE)
        .map_err(kernel)?
        .into_iter()
        // Anonymous sets belong to their rules and go with them.
        .filter(|s| !s.anonymous())
        .map(|s| s.name)
        .collect();
    Ok(Existing { chains, sets })
}

fn open() -> Result<NftSocket, Error> {
    NftSocket::open()
        .map_err(|e| Error::ApplyFailed(format!("cannot reach the kernel's firewall: {e}")))
}

fn set_ref(name: &str) -> Result<SetRef, Error> {
    SetRef::new(TableFamily::Inet, TABLE, name).map_err(kernel)
}

fn kernel(e: super::netlink::NetlinkError) -> Error {
    Error::ApplyFailed(format!(
        "the kernel refused a list's data, nothing was changed: {e}"
    ))
}
