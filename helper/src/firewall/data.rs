//! The data path: the kernel sets of imported lists, loaded over netlink beside the structure,
//! never through `nft` and never by re-sending the ruleset.
//!
//! Invariants:
//! - A set is filled completely before any rule names it. A new version of a list goes into a
//!   new set, filled while no rule looks at it; the structure transaction that follows swaps
//!   the rules over in one step. So the packet path sees the old list or the new one, never a
//!   partial one, and never neither.
//! - A version that differs from the one a live set holds by at most [`MAX_IN_PLACE`] ranges
//!   (the daily update of a FireHOL or Spamhaus list) is not reloaded: its difference, kept by
//!   the list store, is deleted from and added to the live set in one transaction, which is as
//!   atomic for the packet path as the swap and costs a fraction of it.
//! - Loads go in transactions of at most `CHUNK` elements: other writers of the ruleset (a DNS
//!   answer's addresses, an apply) wait at most one chunk.
//! - What each set holds is on disk (`<state>/data-sets.json`): a set is recorded as holding a
//!   version only after the kernel committed it, and as unknown before any change to it starts.
//!   After a crash a set the record does not vouch for is never trusted: no new structure names
//!   it, and the structure transaction deletes it.
//! - A generation that does not change a list does not touch its set.
//!
//! Every call that writes runs under the firewall's apply lock, and blocks (netlink): callers
//! use `spawn_blocking`.

use super::compile::{Facts, PreviousFacts};
use super::kernel::Existing;
use super::netlink::{
    Batch, Element, ElementOp, Key, KeyType, NftSocket, SetRef, SetSpec, TableFamily,
};
use super::ruleset::{ImportedData, Ruleset, TABLE};
use crate::blocklist::ranges::NetworkList;
use crate::blocklist::store::{hex_digits, ListStore};
use palisade_dbus::policy::{Family, ShortName};
use palisade_dbus::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Elements per transaction of a big load (measured here: about 0.3 s per transaction at the
/// end of a million-entry load, so other writers are never held longer).
pub const CHUNK: usize = 20_000;

/// Most ranges (removed plus added, both families) a new version may change to be applied to
/// the live set as a difference, in one transaction: the daily change of the lists people use
/// fits (1 % of a million networks is 20,000 ranges out and in); `make bench` times it.
pub const MAX_IN_PLACE: u64 = 50_000;

/// What one kernel set of our table holds, as far as the record knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
enum Held {
    /// Exactly one family of one version of a list.
    Complete {
        list: ShortName,
        v6: bool,
        /// The version's content hash (hex).
        hash: String,
    },
    /// Being filled or changed, or left so by a crash: nothing is known.
    Unknown,
}

impl Held {
    fn holds(&self, list: &ShortName, family: Family) -> Option<&str> {
        match self {
            Held::Complete { list: l, v6, hash } if l == list && *v6 == (family == Family::V6) => {
                Some(hash)
            }
            _ => None,
        }
    }
}

/// The record on disk.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Record {
    sets: BTreeMap<String, Held>,
}

/// The data sets of our table, as far as the helper knows them.
#[derive(Debug)]
pub struct DataSets {
    path: PathBuf,
    record: Mutex<Record>,
}

impl DataSets {
    /// The record in `path` (missing or unreadable, as after an upgrade from the record of
    /// names only: nothing is vouched for, and the lists are loaded again once).
    pub fn open(path: PathBuf) -> Self {
        let record = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
            .unwrap_or_default();
        Self {
            path,
            record: Mutex::new(record),
        }
    }

    fn record(&self) -> Record {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn save(&self, record: Record) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Internal(e.to_string()))?;
        crate::store::write_atomic(&self.path, &bytes, 0o600)
            .map_err(|e| Error::Internal(format!("cannot record the loaded sets: {e}")))?;
        if let Ok(mut r) = self.record.lock() {
            *r = record;
        }
        Ok(())
    }

    /// Chooses the kernel set for each family of each imported list in `facts`: the set that
    /// holds that version already; else a live set holding the version it replaced, when the
    /// store keeps a difference small enough to apply in place; else a new name, free both in
    /// the record and among the sets the kernel's table has (`existing`).
    pub fn name_sets(&self, facts: &mut Facts, existing: &Existing) {
        let taken: BTreeSet<String> = existing.sets.iter().cloned().collect();
        let record = self.record();
        let mut chosen = BTreeSet::new();
        for (list, data) in facts.imported.iter_mut() {
            for family in [Family::V4, Family::V6] {
                let name = set_for(
                    &record,
                    &taken,
                    &chosen,
                    list,
                    family,
                    &data.hash,
                    data.previous.as_ref(),
                );
                chosen.insert(name.clone());
                match family {
                    Family::V4 => data.set_v4 = name,
                    Family::V6 => data.set_v6 = name,
                }
            }
        }
    }

    /// Makes sure every set of an imported list that `ruleset` names exists and holds the
    /// list's current version: sets that do not exist yet are filled from `lists`; a set
    /// holding the version before is brought up to date by the stored difference.
    /// `existing` is what the kernel's table holds.
    pub fn ensure_loaded(
        &self,
        ruleset: &Ruleset,
        existing: &Existing,
        lists: &ListStore,
    ) -> Result<(), Error> {
        let mut record = self.record();
        // A set the kernel no longer has (reboot, someone deleted the table) holds nothing.
        record.sets.retain(|name, _| existing.sets.contains(name));
        let mut socket = None;
        for set in &ruleset.sets {
            let Some(data) = &set.imported else { continue };
            let held = record.sets.get(&set.name).cloned();
            let held_hash = held.as_ref().and_then(|h| h.holds(&data.list, data.family));
            if held_hash == Some(data.hash.as_str()) {
                continue;
            }
            let socket = match &mut socket {
                Some(s) => s,
                None => socket.insert(open()?),
            };
            let target = set_ref(&set.name)?;
            if let Some(old) = held_hash {
                let old = old.to_owned();
                record = self.update_in_place(socket, &target, data, &old, lists, record)?;
                continue;
            }
            if existing.sets.contains(&set.name) {
                // A fill that did not finish (the helper died): start again from empty. Naming
                // never picks a set the kernel has unless the record vouches for it, so no rule
                // looks at this one.
                tracing::warn!("set {} holds unknown contents; filling it again", set.name);
                let mut batch = Batch::new();
                batch.delete_set(&target);
                socket.send(&mut batch).map_err(kernel)?;
            }
            record.sets.insert(set.name.clone(), Held::Unknown);
            self.save(record.clone())?;
            let hash = fill(socket, &target, data, lists)?;
            record.sets.insert(
                set.name.clone(),
                Held::Complete {
                    list: data.list.clone(),
                    v6: data.family == Family::V6,
                    hash,
                },
            );
            self.save(record.clone())?;
        }
        Ok(())
    }

    /// Turns the live set `target`, holding version `old` of `data`'s list, into the list's
    /// current version by the difference the store keeps: every removal and addition in one
    /// transaction. Returns the record after it.
    fn update_in_place(
        &self,
        socket: &mut NftSocket,
        target: &SetRef,
        data: &ImportedData,
        old: &str,
        lists: &ListStore,
        mut record: Record,
    ) -> Result<Record, Error> {
        let began = Instant::now();
        let stored = lists
            .load_diff(&data.list)
            .map_err(|e| unreadable(&data.list, e))?
            .filter(|d| hex_digits(&d.from) == old)
            .ok_or_else(|| {
                Error::ApplyFailed(format!(
                    "the list {} changed again while it was being enforced; nothing was \
                     changed, try again",
                    data.list.as_str()
                ))
            })?;
        let previous = record.sets.insert(target.set().to_owned(), Held::Unknown);
        self.save(record.clone())?;
        let mut batch = Batch::new();
        let (removed, added) = match data.family {
            Family::V4 => (
                batch.delete_elements(target, v4_ranges(&stored.ranges.removed)),
                batch.add_elements(target, v4_ranges(&stored.ranges.added)),
            ),
            Family::V6 => (
                batch.delete_elements(target, v6_ranges(&stored.ranges.removed)),
                batch.add_elements(target, v6_ranges(&stored.ranges.added)),
            ),
        };
        if let Err(e) = socket.send(&mut batch) {
            // The transaction did not land: the set holds what it held.
            if let Some(previous) = previous {
                record.sets.insert(target.set().to_owned(), previous);
            }
            self.save(record)?;
            return Err(kernel(e));
        }
        record.sets.insert(
            target.set().to_owned(),
            Held::Complete {
                list: data.list.clone(),
                v6: data.family == Family::V6,
                hash: hex_digits(&stored.to).to_owned(),
            },
        );
        self.save(record.clone())?;
        tracing::info!(
            "updated set {} of list {} in place: {removed} ranges removed, {added} added, in {:?}",
            target.set(),
            data.list.as_str(),
            began.elapsed()
        );
        Ok(record)
    }

    /// Sets of imported lists that `ruleset` does not name: deleted once the structure no
    /// longer names them. Returns their names.
    pub fn delete_unused(&self, ruleset: &Ruleset, existing: &Existing) -> Vec<String> {
        let named: BTreeSet<&str> = ruleset
            .sets
            .iter()
            .filter(|s| s.imported.is_some())
            .map(|s| s.name.as_str())
            .collect();
        let mut record = self.record();
        let unused: Vec<String> = existing
            .sets
            .iter()
            .filter(|s| record.sets.contains_key(*s) && !named.contains(s.as_str()))
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
                record.sets.retain(|s, _| !unused.contains(s));
                if let Err(e) = self.save(record) {
                    tracing::warn!("{e}");
                }
            }
            // Left for the next install to retry; the packet path no longer looks at them.
            Err(e) => tracing::warn!("cannot delete unused list sets: {e}"),
        }
        unused
    }

    /// The sets of imported lists the structure transaction must leave alone: every one the
    /// record vouches for (unused ones are deleted after the new structure stops naming them;
    /// unknown ones go with the structure transaction, since no new rule names them).
    pub fn kept(&self) -> BTreeSet<String> {
        self.record()
            .sets
            .into_iter()
            .filter(|(_, held)| matches!(held, Held::Complete { .. }))
            .map(|(name, _)| name)
            .collect()
    }
}

/// The set for one family of `list` at version `hash` (see [`DataSets::name_sets`]).
fn set_for(
    record: &Record,
    taken: &BTreeSet<String>,
    chosen: &BTreeSet<String>,
    list: &ShortName,
    family: Family,
    hash: &str,
    previous: Option<&PreviousFacts>,
) -> String {
    let live = |want: &str| {
        record.sets.iter().find_map(|(name, held)| {
            (held.holds(list, family) == Some(want)
                && taken.contains(name)
                && !chosen.contains(name))
            .then(|| name.clone())
        })
    };
    if let Some(name) = live(hash) {
        return name;
    }
    if let Some(name) = previous
        .filter(|p| p.changed <= MAX_IN_PLACE)
        .and_then(|p| live(&p.hash))
    {
        return name;
    }
    let stem = format!(
        "bl_{}_{}",
        list.as_str().replace('-', "_"),
        match family {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    );
    (1u64..)
        .map(|n| format!("{stem}_{n}"))
        .find(|name| {
            !record.sets.contains_key(name) && !taken.contains(name) && !chosen.contains(name)
        })
        .unwrap_or(stem)
}

fn v4_ranges(list: &NetworkList) -> impl Iterator<Item = Element> + '_ {
    list.v4().iter().map(|&(first, last)| Element::Range {
        first: Key::V4(Ipv4Addr::from(first)),
        last: Key::V4(Ipv4Addr::from(last)),
    })
}

fn v6_ranges(list: &NetworkList) -> impl Iterator<Item = Element> + '_ {
    list.v6().iter().map(|&(first, last)| Element::Range {
        first: Key::V6(Ipv6Addr::from(first)),
        last: Key::V6(Ipv6Addr::from(last)),
    })
}

fn unreadable(list: &ShortName, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("cannot read imported list {}: {e}", list.as_str()))
}

/// Creates the set and loads one family of the list into it, in chunks. Returns the version it
/// loaded: the store's current one, which is newer than `data`'s if the list changed since the
/// ruleset was compiled.
fn fill(
    socket: &mut NftSocket,
    target: &SetRef,
    data: &ImportedData,
    lists: &ListStore,
) -> Result<String, Error> {
    let began = Instant::now();
    let stored = lists
        .load(&data.list)
        .map_err(|e| unreadable(&data.list, e))?;
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
            socket.send_chunked(target, ElementOp::Add, v4_ranges(&stored.networks), CHUNK)
        }
        Family::V6 => {
            socket.send_chunked(target, ElementOp::Add, v6_ranges(&stored.networks), CHUNK)
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
    Ok(hex_digits(&stored.meta.content_hash).to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ShortName {
        ShortName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn complete(list: &str, v6: bool, hash: &str) -> Held {
        Held::Complete {
            list: name(list),
            v6,
            hash: hash.into(),
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn choose(
        record: &Record,
        taken: &[&str],
        hash: &str,
        previous: Option<(&str, u64)>,
    ) -> String {
        let previous = previous.map(|(hash, changed)| PreviousFacts {
            hash: hash.into(),
            changed,
        });
        set_for(
            record,
            &names(taken),
            &BTreeSet::new(),
            &name("fire-hol"),
            Family::V4,
            hash,
            previous.as_ref(),
        )
    }

    #[test]
    fn a_version_the_kernel_holds_keeps_its_set() {
        let mut record = Record::default();
        record
            .sets
            .insert("bl_fire_hol_v4_3".into(), complete("fire-hol", false, "aa"));
        record
            .sets
            .insert("bl_fire_hol_v6_3".into(), complete("fire-hol", true, "aa"));
        let taken = ["bl_fire_hol_v4_3", "bl_fire_hol_v6_3"];
        assert_eq!(choose(&record, &taken, "aa", None), "bl_fire_hol_v4_3");
        // Not in the kernel (after a reboot): a new set.
        assert_eq!(choose(&record, &[], "aa", None), "bl_fire_hol_v4_1");
    }

    #[test]
    fn a_small_difference_is_applied_to_the_live_set_and_a_big_one_gets_a_new_set() {
        let mut record = Record::default();
        record
            .sets
            .insert("bl_fire_hol_v4_1".into(), complete("fire-hol", false, "aa"));
        let taken = ["bl_fire_hol_v4_1"];
        assert_eq!(
            choose(&record, &taken, "bb", Some(("aa", MAX_IN_PLACE))),
            "bl_fire_hol_v4_1"
        );
        assert_eq!(
            choose(&record, &taken, "bb", Some(("aa", MAX_IN_PLACE + 1))),
            "bl_fire_hol_v4_2"
        );
        // A difference from a version no set holds is of no use.
        assert_eq!(
            choose(&record, &taken, "bb", Some(("cc", 1))),
            "bl_fire_hol_v4_2"
        );
        assert_eq!(choose(&record, &taken, "bb", None), "bl_fire_hol_v4_2");
    }

    #[test]
    fn new_names_avoid_every_set_the_record_or_the_kernel_knows() {
        let mut record = Record::default();
        record.sets.insert("bl_fire_hol_v4_1".into(), Held::Unknown);
        record
            .sets
            .insert("bl_fire_hol_v4_2".into(), complete("other", false, "aa"));
        // Unrecorded in the kernel (a record lost): never reused either.
        assert_eq!(
            choose(&record, &["bl_fire_hol_v4_3"], "aa", None),
            "bl_fire_hol_v4_4"
        );
        // An unknown set is never trusted, even for the version it was meant to hold.
        assert_eq!(
            choose(&record, &["bl_fire_hol_v4_1"], "aa", Some(("aa", 0))),
            "bl_fire_hol_v4_3"
        );
    }

    #[test]
    fn the_record_reads_back_and_an_old_record_vouches_for_nothing() {
        let dir = std::env::temp_dir().join(format!("palisade-data-sets-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("data-sets.json");
        // The record of names only, as an earlier helper wrote it.
        std::fs::write(&path, br#"["bl_big_0123456789ab_v4"]"#).unwrap_or_else(|e| panic!("{e}"));
        let sets = DataSets::open(path.clone());
        assert!(sets.kept().is_empty());
        let mut record = Record::default();
        record
            .sets
            .insert("bl_big_v4_1".into(), complete("big", false, "aa"));
        record.sets.insert("bl_big_v6_1".into(), Held::Unknown);
        sets.save(record).unwrap_or_else(|e| panic!("{e}"));
        let again = DataSets::open(path);
        assert_eq!(again.kept(), names(&["bl_big_v4_1"]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
