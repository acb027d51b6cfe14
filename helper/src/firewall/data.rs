//! The data path: the kernel sets of imported lists, loaded over netlink beside the structure,
//! never through `nft` and never by re-sending the ruleset.
//!
//! Invariants:
//! - One family of one version of a list is held by a *group* of sets, `<stem>_s0`, `_s1`,
//!   ..., each holding the list's ranges within one slice of the family's addresses; the
//!   slices are cut where the list store says ([`SHARD_RANGES`] ranges each) and together cover
//!   the family. The kernel rebuilds a set's lookup structure on every transaction that
//!   touches it, so small sets keep every transaction short: a load, a difference and the
//!   other writers waiting behind them (a DNS answer's addresses) alike.
//! - A set is filled completely before any rule names it. A new version of a list goes into a
//!   new group, filled while no rule looks at it; the structure transaction that follows swaps
//!   the rules over in one step. So the packet path sees the old list or the new one, never a
//!   partial one, and never neither.
//! - A new version of a list whose slices hold an older one (the base) is not reloaded while
//!   the difference between the two stays under [`MAX_OVERLAY`] ranges (the daily updates of a
//!   FireHOL or Spamhaus list): two small *overlay* sets beside the slices hold it — the
//!   ranges the base lacks and those it has too many (see [`ListRole`] for the lookup). A
//!   refresh composes what the overlay holds with the store's last difference
//!   (`ranges::compose`) and changes both overlay sets in one transaction: the packet path goes
//!   from the old list to the new one in one step, and the kernel rebuilds two sets of the
//!   overlay's size instead of every slice (the kernel's cost of a transaction grows with the
//!   size of each set it touches). What an overlay holds is kept in a file beside the record,
//!   named by the overlay's added set and checked by hash.
//! - Loads go in transactions of at most [`CHUNK`] elements into one small set: other writers
//!   of the ruleset wait at most one chunk.
//! - What each set holds is on disk (`<state>/data-sets.json`): a set is recorded as holding a
//!   version only after the kernel committed it, and as unknown before any change to it starts.
//!   After a crash a set the record does not vouch for is never trusted: no new structure names
//!   it, and the structure transaction deletes it. A group is used only while every one of its
//!   sets is vouched for at the same version, and an overlay only while both its sets are
//!   vouched for at the same version over that group.
//! - A generation that does not change a list does not touch its sets.
//!
//! Every call that writes runs under the firewall's apply lock, and blocks (netlink): callers
//! use `spawn_blocking`.

use super::compile::{blocklist_set, unlisted_set, Facts, ImportedFacts, ListOverlay, ListShard};
use super::kernel::Existing;
use super::netlink::{
    Batch, Element, ElementOp, Key, KeyType, NftSocket, SetRef, SetSpec, TableFamily,
};
use super::ruleset::{ImportedData, ListRole, Ruleset, SetDef, TABLE};
use crate::blocklist::ranges::{compose, diff, NetworkList};
use crate::blocklist::store::{
    hex_digits, read_difference, write_difference, ListStore, StoredDiff, StoredList,
};
use palisade_dbus::policy::{Family, ShortName};
use palisade_dbus::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Elements per transaction of a big load (measured here: under 40 ms per transaction into a
/// set of [`SHARD_RANGES`] ranges, so other writers are never held longer).
pub const CHUNK: usize = 5_000;

/// Most ranges a list's two overlay sets of one family may hold together (see
/// [`ListRole`]): past that, the list is loaded afresh into new slices. The daily change of
/// the lists people use fits many times over (1 % of a million networks is 20,000 ranges out
/// and in); a refresh costs the kernel its change plus rebuilding sets of this size, not the
/// list's; `make bench` times it.
pub const MAX_OVERLAY: u64 = 100_000;

/// What one kernel set of our table holds, as far as the record knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
enum Held {
    /// Exactly the ranges of one version of a list, of one family, between `first` and
    /// `last`.
    Complete {
        list: ShortName,
        v6: bool,
        /// The version's content hash (hex).
        hash: String,
        first: IpAddr,
        last: IpAddr,
        /// How many ranges (kernel intervals) the set holds.
        ranges: u64,
    },
    /// One of the two overlay sets of a group whose slices hold version `base`: with them, the
    /// list's version `hash` (see [`ListRole`]).
    Overlay {
        list: ShortName,
        v6: bool,
        /// Which of the two: the ranges `hash` adds to the base, or those it drops.
        added: bool,
        base: String,
        hash: String,
        /// How many ranges the set holds.
        ranges: u64,
        /// The hash of the file holding both sets' ranges (the difference base → `hash`).
        content: String,
    },
    /// Being filled or changed, or left so by a crash: nothing is known.
    Unknown,
}

impl Held {
    fn holds(&self, list: &ShortName, family: Family) -> Option<&str> {
        match self {
            Held::Complete {
                list: l, v6, hash, ..
            } if l == list && *v6 == (family == Family::V6) => Some(hash),
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
    /// The record in `path` (missing or unreadable, as after an upgrade from an older record:
    /// nothing is vouched for, and the lists are loaded again once).
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

    /// Chooses the kernel sets for each family of each imported list in `facts`: the slices
    /// that hold that version already; else live slices (with their overlay, if they have one)
    /// whose overlay can take the store's last difference; else new slices, their names free
    /// both in the record and among the sets the kernel's table has (`existing`), cut where the
    /// list store says.
    pub fn name_sets(&self, facts: &mut Facts, existing: &Existing) {
        let taken: BTreeSet<String> = existing.sets.iter().cloned().collect();
        let record = self.record();
        let mut chosen = BTreeSet::new();
        for (list, data) in facts.imported.iter_mut() {
            for family in [Family::V4, Family::V6] {
                let (sets, overlay) = sets_for(&record, &taken, &chosen, list, family, data);
                chosen.extend(sets.iter().map(|s| s.set.clone()));
                chosen.extend(
                    overlay
                        .iter()
                        .flat_map(|o| [o.added.clone(), o.removed.clone()]),
                );
                match family {
                    Family::V4 => (data.sets_v4, data.overlay_v4) = (sets, overlay),
                    Family::V6 => (data.sets_v6, data.overlay_v6) = (sets, overlay),
                }
            }
        }
    }

    /// Makes sure every set of an imported list that `ruleset` names exists and holds what it
    /// should: slices that do not exist yet are filled from `lists`; an overlay is made or
    /// brought up to date by the stored difference. `existing` is what the kernel's table
    /// holds.
    pub fn ensure_loaded(
        &self,
        ruleset: &Ruleset,
        existing: &Existing,
        lists: &ListStore,
    ) -> Result<(), Error> {
        let mut record = self.record();
        // A set the kernel no longer has (reboot, someone deleted the table) holds nothing.
        record.sets.retain(|name, _| existing.sets.contains(name));
        let mut groups: BTreeMap<(&ShortName, bool), Vec<(&SetDef, &ImportedData)>> =
            BTreeMap::new();
        for set in &ruleset.sets {
            if let Some(data) = &set.imported {
                groups
                    .entry((&data.list, data.family == Family::V6))
                    .or_default()
                    .push((set, data));
            }
        }
        let mut socket = None;
        for ((list, _), sets) in groups {
            let role = |r: ListRole| sets.iter().find(|(_, d)| d.role == r).copied();
            let overlay = role(ListRole::Added).zip(role(ListRole::Removed));
            let fills: Vec<(&SetDef, &ImportedData)> = sets
                .iter()
                .filter(|(set, data)| {
                    data.role == ListRole::Slice
                        && record
                            .sets
                            .get(&set.name)
                            .and_then(|h| h.holds(&data.list, data.family))
                            != Some(data.hash.as_str())
                })
                .copied()
                .collect();
            let overlay = overlay.filter(|((added, data), (removed, _))| {
                [added, removed].iter().any(|set| {
                    !matches!(record.sets.get(&set.name),
                        Some(Held::Overlay { hash, .. }) if *hash == data.hash)
                })
            });
            if fills.is_empty() && overlay.is_none() {
                continue;
            }
            let socket = match &mut socket {
                Some(s) => s,
                None => socket.insert(open()?),
            };
            let mut work = GroupWork::new(list, lists);
            for (set, data) in fills {
                let target = set_ref(&set.name)?;
                if existing.sets.contains(&set.name) {
                    // A fill that did not finish (the helper died): start again from empty.
                    // Naming never picks a set the kernel has unless the record vouches for
                    // it, so no rule looks at this one.
                    tracing::warn!("set {} holds unknown contents; filling it again", set.name);
                    let mut batch = Batch::new();
                    batch.delete_set(&target);
                    socket.send(&mut batch).map_err(kernel)?;
                }
                record.sets.insert(set.name.clone(), Held::Unknown);
                self.save(record.clone())?;
                let (hash, ranges) = work.fill(socket, &target, data)?;
                record.sets.insert(
                    set.name.clone(),
                    Held::Complete {
                        list: data.list.clone(),
                        v6: data.family == Family::V6,
                        hash,
                        first: data.first,
                        last: data.last,
                        ranges,
                    },
                );
                self.save(record.clone())?;
            }
            work.log();
            if let Some((added, removed)) = overlay {
                let slice = sets.iter().find(|(_, d)| d.role == ListRole::Slice);
                let base = slice.map(|(_, d)| d.hash.clone()).unwrap_or_default();
                let unlisted = slice
                    .map(|(set, _)| unlisted_set(&set.name))
                    .filter(|name| existing.sets.contains(name));
                record = self.update_overlay(
                    socket,
                    Overlay {
                        added: added.0,
                        removed: removed.0,
                        data: added.1,
                        base,
                        unlisted,
                    },
                    &mut work,
                    record,
                )?;
            }
        }
        Ok(())
    }

    /// Brings a group's overlay sets to the list's current version: made empty if they are
    /// new, then changed by the difference between what they hold (base → the version they
    /// were at, read back from the file kept beside the record) and what they must hold
    /// (that composed with the store's last difference), both sets in one transaction. The
    /// packet path goes from the old list to the new one in one step; the slices, and so most
    /// of the list, are not touched. Returns the record after it.
    fn update_overlay(
        &self,
        socket: &mut NftSocket,
        overlay: Overlay<'_>,
        work: &mut GroupWork<'_>,
        mut record: Record,
    ) -> Result<Record, Error> {
        let began = Instant::now();
        let data = overlay.data;
        let (added_ref, removed_ref) = (
            set_ref(&overlay.added.name)?,
            set_ref(&overlay.removed.name)?,
        );
        let content_path = self.overlay_file(&overlay.added.name);
        let held = (
            record.sets.get(&overlay.added.name),
            record.sets.get(&overlay.removed.name),
        );
        // What the sets hold now: nothing if they are new; else the kept difference, which
        // must be the one both sets' records name. Without it the overlay is no longer trusted:
        // the next install names new slices instead (loading the list whole), and its structure
        // transaction drops these sets.
        let known = match held {
            (None, None) => Ok((overlay.base.clone(), None)),
            (
                Some(Held::Overlay {
                    base,
                    hash,
                    content,
                    ..
                }),
                Some(Held::Overlay { content: c, .. }),
            ) if *base == overlay.base && content == c => {
                read_difference(&content_path, content).map(|so_far| (hash.clone(), Some(so_far)))
            }
            _ => Err("their record does not say the same of both".to_owned()),
        };
        let (at, so_far) = match known {
            Ok(known) => known,
            Err(why) => {
                for set in [&overlay.added.name, &overlay.removed.name] {
                    record.sets.insert(set.clone(), Held::Unknown);
                }
                self.save(record)?;
                return Err(Error::ApplyFailed(format!(
                    "what the overlay sets of list {} hold is not known ({why}); nothing was \
                     changed, and the next try loads the list whole",
                    data.list.as_str()
                )));
            }
        };
        let fresh = so_far.is_none();
        let so_far = so_far.unwrap_or_default();
        let stored = work.diff(&at)?;
        let (step, to) = (
            stored.ranges.family(data.family),
            hex_digits(&stored.to).to_owned(),
        );
        let target = compose(&so_far, &step);
        let (to_added, to_removed) = (
            diff(&so_far.added, &target.added),
            diff(&so_far.removed, &target.removed),
        );
        let mut batch = Batch::new();
        if fresh {
            let spec = SetSpec {
                key: key_type(data.family),
                interval: true,
                timeout: false,
                default_timeout: None,
            };
            batch.new_set(&added_ref, &spec);
            batch.new_set(&removed_ref, &spec);
        }
        // The kernel takes an element in or out at about the same cost, and empties a set at a
        // quarter of that per element: when the overlay changes more ranges than it will hold
        // (a change undone and another made, as daily updates do), both sets are emptied and
        // filled again instead, in the same one transaction.
        let (ops, refill) = (
            to_added.len() + to_removed.len(),
            target.len() + so_far.len() / 4,
        );
        let mut changed = 0;
        if refill < ops {
            for (set, ranges) in [(&added_ref, &target.added), (&removed_ref, &target.removed)] {
                batch.flush_set(set);
                changed += batch.add_elements(set, within(ranges, data));
            }
        } else {
            for (set, change) in [(&added_ref, &to_added), (&removed_ref, &to_removed)] {
                changed += batch.delete_elements(set, within(&change.removed, data));
                changed += batch.add_elements(set, within(&change.added, data));
            }
        }
        // The addresses remembered as not in the list were judged by the old version.
        if let Some(unlisted) = &overlay.unlisted {
            batch.flush_set(&set_ref(unlisted)?);
        }
        let before = record.clone();
        for set in [&overlay.added.name, &overlay.removed.name] {
            record.sets.insert(set.clone(), Held::Unknown);
        }
        self.save(record.clone())?;
        if let Err(e) = socket.send(&mut batch) {
            // The transaction did not land: the sets hold what they held.
            self.save(before)?;
            return Err(kernel(e));
        }
        let content = write_difference(&content_path, &target).map_err(|e| {
            Error::Internal(format!("cannot keep what a list's overlay holds: {e}"))
        })?;
        for (set, added, ranges) in [
            (&overlay.added.name, true, target.added.len()),
            (&overlay.removed.name, false, target.removed.len()),
        ] {
            record.sets.insert(
                set.clone(),
                Held::Overlay {
                    list: data.list.clone(),
                    v6: data.family == Family::V6,
                    added,
                    base: overlay.base.clone(),
                    hash: to.clone(),
                    ranges: ranges as u64,
                    content: content.clone(),
                },
            );
        }
        self.save(record.clone())?;
        if let Some(unlisted) = &overlay.unlisted {
            // A packet the old version judged while the transaction committed may have added
            // its address after the flush; by now such a packet is done (it would otherwise
            // pass until its element expires, within a second).
            let mut again = Batch::new();
            again.flush_set(&set_ref(unlisted)?);
            if let Err(e) = socket.send(&mut again) {
                tracing::warn!("cannot empty {unlisted} again after the overlay changed: {e}");
            }
        }
        tracing::info!(
            "updated list {} in place in one transaction (overlay sets {} and {} over the \
             slices of version {}{}): {changed} ranges changed, the overlay now {} ranges added \
             and {} removed, in {:?}",
            data.list.as_str(),
            overlay.added.name,
            overlay.removed.name,
            overlay.base.get(..12).unwrap_or(&overlay.base),
            if refill < ops {
                ", emptied and filled"
            } else {
                ""
            },
            target.added.len(),
            target.removed.len(),
            began.elapsed()
        );
        Ok(record)
    }

    /// The file beside the record that keeps what the overlay whose added set is `added_set`
    /// holds.
    fn overlay_file(&self, added_set: &str) -> PathBuf {
        self.path
            .with_file_name(format!("data-overlay-{added_set}.ranges"))
    }

    /// Removes the files of overlays the record no longer knows (deleted, or gone from the
    /// kernel with a reboot), so they do not pile up beside the record.
    fn remove_stale_overlay_files(&self, record: &Record) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(set) = name
                .to_str()
                .and_then(|n| n.strip_prefix("data-overlay-"))
                .and_then(|n| n.strip_suffix(".ranges"))
            else {
                continue;
            };
            if !matches!(
                record.sets.get(set),
                Some(Held::Overlay { added: true, .. })
            ) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Sets of imported lists that `ruleset` does not name: deleted once the structure no
    /// longer names them, one transaction each (a set is small). Returns their names.
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
            self.remove_stale_overlay_files(&record);
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
                self.remove_stale_overlay_files(&record);
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
            .filter(|(_, held)| matches!(held, Held::Complete { .. } | Held::Overlay { .. }))
            .map(|(name, _)| name)
            .collect()
    }
}

/// The overlay sets of one family of a list, to be brought to the version `data` names over
/// slices holding version `base`.
struct Overlay<'a> {
    added: &'a SetDef,
    removed: &'a SetDef,
    data: &'a ImportedData,
    base: String,
    /// The group's set of addresses found in none of the list's sets, if the kernel has it.
    unlisted: Option<String>,
}

/// One family of one list being brought up to date: its contents and its difference, read
/// from the store once for all the group's sets, and what was loaded, for one log line.
struct GroupWork<'a> {
    list: &'a ShortName,
    lists: &'a ListStore,
    contents: Option<StoredList>,
    diff: Option<StoredDiff>,
    began: Instant,
    filled: Vec<String>,
    loaded: usize,
}

impl<'a> GroupWork<'a> {
    fn new(list: &'a ShortName, lists: &'a ListStore) -> Self {
        Self {
            list,
            lists,
            contents: None,
            diff: None,
            began: Instant::now(),
            filled: Vec::new(),
            loaded: 0,
        }
    }

    /// The stored difference, which must start at version `old`.
    fn diff(&mut self, old: &str) -> Result<&StoredDiff, Error> {
        if self.diff.is_none() {
            let list = self.list;
            let stored = self
                .lists
                .load_diff(list)
                .map_err(|e| unreadable(list, e))?;
            self.diff = stored;
        }
        self.diff
            .as_ref()
            .filter(|d| hex_digits(&d.from) == old)
            .ok_or_else(|| {
                Error::ApplyFailed(format!(
                    "the list {} changed again while it was being enforced; nothing was \
                     changed, try again",
                    self.list.as_str()
                ))
            })
    }

    /// Creates `target` and loads into it the list's ranges within `data`'s addresses, in
    /// chunks. Returns the version it loaded (the store's current one, which is newer than
    /// `data`'s if the list changed since the ruleset was compiled; every set of the group
    /// gets the same one) and how many ranges.
    fn fill(
        &mut self,
        socket: &mut NftSocket,
        target: &SetRef,
        data: &ImportedData,
    ) -> Result<(String, u64), Error> {
        let stored = match &mut self.contents {
            Some(s) => &*s,
            None => {
                let list = self.list;
                let loaded = self.lists.load(list).map_err(|e| unreadable(list, e))?;
                &*self.contents.insert(loaded)
            }
        };
        let mut batch = Batch::new();
        batch.new_set(
            target,
            &SetSpec {
                key: key_type(data.family),
                interval: true,
                timeout: false,
                default_timeout: None,
            },
        );
        socket.send(&mut batch).map_err(kernel)?;
        let loaded = socket
            .send_chunked(
                target,
                ElementOp::Add,
                within(&stored.networks, data),
                CHUNK,
            )
            .map_err(kernel)?;
        self.filled.push(target.set().to_owned());
        self.loaded += loaded.elements;
        Ok((
            hex_digits(&stored.meta.content_hash).to_owned(),
            loaded.elements as u64,
        ))
    }

    fn log(&self) {
        match self.filled.as_slice() {
            [] => {}
            [one] => tracing::info!(
                "loaded {} ranges of list {} into set {one} in {:?}",
                self.loaded,
                self.list.as_str(),
                self.began.elapsed()
            ),
            [first, .., last] => tracing::info!(
                "loaded {} ranges of list {} into sets {first} to {last} ({} sets) in {:?}",
                self.loaded,
                self.list.as_str(),
                self.filled.len(),
                self.began.elapsed()
            ),
        }
    }
}

/// The kernel sets for one family of `list` at its current version, and their overlay when
/// the slices hold an older one (see [`DataSets::name_sets`]).
fn sets_for(
    record: &Record,
    taken: &BTreeSet<String>,
    chosen: &BTreeSet<String>,
    list: &ShortName,
    family: Family,
    data: &ImportedFacts,
) -> (Vec<ListShard>, Option<ListOverlay>) {
    let naming = Naming {
        record,
        taken,
        chosen,
        list,
        family,
    };
    if let Some((sets, _)) = naming.group(&data.hash, None) {
        return (sets, None);
    }
    let previous = data.previous.as_ref();
    // An overlay already at this version, or at the one before with room for the difference.
    for o in naming.overlays() {
        let fits = previous
            .is_some_and(|p| p.hash == o.hash && o.ranges.saturating_add(p.changed) <= MAX_OVERLAY);
        if o.hash == data.hash || fits {
            if let Some((sets, _)) = naming.group(&o.base, Some(&o.stem)) {
                return (
                    sets,
                    Some(ListOverlay {
                        base: o.base,
                        added: o.added,
                        removed: o.removed,
                    }),
                );
            }
        }
    }
    // Slices at the version before, without an overlay yet: one is made for them.
    if let Some(p) = previous.filter(|p| p.changed <= MAX_OVERLAY) {
        if let Some((sets, stem)) = naming.group(&p.hash, None) {
            let names = (1u64..)
                .map(|n| (format!("{stem}_a{n}"), format!("{stem}_r{n}")))
                .find(|(a, r)| naming.is_free(a) && naming.is_free(r));
            if let Some((added, removed)) = names {
                return (
                    sets,
                    Some(ListOverlay {
                        base: p.hash.clone(),
                        added,
                        removed,
                    }),
                );
            }
        }
    }
    let stem = blocklist_set(list.as_str(), family);
    let in_use = |stem: &str| {
        let prefix = format!("{stem}_");
        naming
            .known()
            .any(|name| name == stem || name.starts_with(&prefix))
    };
    let stem = (1u64..)
        .map(|n| format!("{stem}_{n}"))
        .find(|s| !in_use(s))
        .unwrap_or(stem);
    let cuts: Vec<IpAddr> = match family {
        Family::V4 => data.splits_v4.iter().copied().map(IpAddr::from).collect(),
        Family::V6 => data.splits_v6.iter().copied().map(IpAddr::from).collect(),
    };
    (sliced_sets(&stem, family, &cuts), None)
}

/// What naming the sets of one family of `list` goes by: the record, the sets the kernel's
/// table has (`taken`) and those already chosen for other lists and families.
struct Naming<'a> {
    record: &'a Record,
    taken: &'a BTreeSet<String>,
    chosen: &'a BTreeSet<String>,
    list: &'a ShortName,
    family: Family,
}

impl Naming<'_> {
    /// Every name the record, the kernel or an earlier choice has.
    fn known(&self) -> impl Iterator<Item = &String> {
        self.record.sets.keys().chain(self.taken).chain(self.chosen)
    }

    /// Whether `name` is free for a new set.
    fn is_free(&self, name: &str) -> bool {
        !self.record.sets.contains_key(name)
            && !self.taken.contains(name)
            && !self.chosen.contains(name)
    }

    /// Whether the set `name` is in the kernel's table and not chosen yet.
    fn usable(&self, name: &str) -> bool {
        self.taken.contains(name) && !self.chosen.contains(name)
    }

    /// A group of live slices holding version `hash` that together cover the family, all
    /// usable (of stem `stem` when given); with its stem.
    fn group(&self, hash: &str, stem: Option<&str>) -> Option<(Vec<ListShard>, String)> {
        let mut groups: BTreeMap<&str, Vec<ListShard>> = BTreeMap::new();
        for (name, held) in &self.record.sets {
            let Held::Complete { first, last, .. } = held else {
                continue;
            };
            if held.holds(self.list, self.family) != Some(hash) || !self.usable(name) {
                continue;
            }
            let Some((group, _)) = name.rsplit_once("_s") else {
                continue;
            };
            if stem.is_some_and(|s| s != group) {
                continue;
            }
            groups.entry(group).or_default().push(ListShard {
                set: name.clone(),
                first: *first,
                last: *last,
            });
        }
        groups.into_iter().find_map(|(group, mut sets)| {
            sets.sort_by_key(|s| s.first);
            let spans: Vec<(IpAddr, IpAddr)> = sets.iter().map(|s| (s.first, s.last)).collect();
            let cuts: Vec<IpAddr> = spans.iter().skip(1).map(|s| s.0).collect();
            (spans == slices(self.family, &cuts)).then(|| (sets, group.to_owned()))
        })
    }

    /// The overlay pairs the record vouches for, both sets usable and at the same versions.
    fn overlays(&self) -> Vec<LiveOverlay> {
        let mut out = Vec::new();
        for (name, held) in &self.record.sets {
            let Held::Overlay {
                list,
                v6,
                added: true,
                base,
                hash,
                ranges,
                content,
            } = held
            else {
                continue;
            };
            if list != self.list || *v6 != (self.family == Family::V6) || !self.usable(name) {
                continue;
            }
            let Some((stem, n)) = name.rsplit_once("_a") else {
                continue;
            };
            let removed = format!("{stem}_r{n}");
            let partner = match self.record.sets.get(&removed) {
                Some(Held::Overlay {
                    added: false,
                    base: b,
                    hash: h,
                    ranges: r,
                    content: c,
                    ..
                }) if b == base && h == hash && c == content && self.usable(&removed) => *r,
                _ => continue,
            };
            out.push(LiveOverlay {
                stem: stem.to_owned(),
                added: name.clone(),
                removed,
                base: base.clone(),
                hash: hash.clone(),
                ranges: ranges.saturating_add(partner),
            });
        }
        out
    }
}

/// A live overlay pair, as the record knows it.
struct LiveOverlay {
    stem: String,
    added: String,
    removed: String,
    base: String,
    hash: String,
    /// Ranges in both sets.
    ranges: u64,
}

/// The sets of a new group, `<stem>_s0`, `_s1`, ...: one per slice of `family`'s addresses
/// between `cuts` (see [`slices`]).
pub(crate) fn sliced_sets(stem: &str, family: Family, cuts: &[IpAddr]) -> Vec<ListShard> {
    slices(family, cuts)
        .into_iter()
        .enumerate()
        .map(|(k, (first, last))| ListShard {
            set: format!("{stem}_s{k}"),
            first,
            last,
        })
        .collect()
}

/// The slices of a family's addresses between `cuts` (ascending, none at the family's first
/// address): `[first address, cut 1 - 1], [cut 1, cut 2 - 1], ..., [last cut, last address]`.
fn slices(family: Family, cuts: &[IpAddr]) -> Vec<(IpAddr, IpAddr)> {
    let (zero, max): (u128, u128) = match family {
        Family::V4 => (0, u128::from(u32::MAX)),
        Family::V6 => (0, u128::MAX),
    };
    let to_ip = |a: u128| -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(a).unwrap_or(u32::MAX))),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(a)),
        }
    };
    let numbers: Vec<u128> = cuts
        .iter()
        .filter_map(|c| match (family, c) {
            (Family::V4, IpAddr::V4(a)) => Some(u128::from(u32::from(*a))),
            (Family::V6, IpAddr::V6(a)) => Some(u128::from(*a)),
            _ => None,
        })
        .filter(|&c| c > zero)
        .collect();
    let mut out = Vec::with_capacity(numbers.len() + 1);
    let mut start = zero;
    for cut in numbers {
        if cut <= start {
            // Not ascending: a record or list store that says so is not to be trusted with
            // more than one slice here.
            continue;
        }
        out.push((to_ip(start), to_ip(cut - 1)));
        start = cut;
    }
    out.push((to_ip(start), to_ip(max)));
    out
}

/// The ranges of `list` within `data`'s addresses and family, as kernel elements.
fn within<'l>(
    list: &'l NetworkList,
    data: &ImportedData,
) -> Box<dyn Iterator<Item = Element> + 'l> {
    match (data.first, data.last) {
        (IpAddr::V4(first), IpAddr::V4(last)) => Box::new(
            list.v4_within(u32::from(first), u32::from(last))
                .map(|(first, last)| Element::Range {
                    first: Key::V4(Ipv4Addr::from(first)),
                    last: Key::V4(Ipv4Addr::from(last)),
                }),
        ),
        (IpAddr::V6(first), IpAddr::V6(last)) => Box::new(
            list.v6_within(u128::from(first), u128::from(last))
                .map(|(first, last)| Element::Range {
                    first: Key::V6(Ipv6Addr::from(first)),
                    last: Key::V6(Ipv6Addr::from(last)),
                }),
        ),
        _ => Box::new(std::iter::empty()),
    }
}

/// The kernel's key type of a family's addresses.
fn key_type(family: Family) -> KeyType {
    match family {
        Family::V4 => KeyType::Ipv4Addr,
        Family::V6 => KeyType::Ipv6Addr,
    }
}

fn unreadable(list: &ShortName, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("cannot read imported list {}: {e}", list.as_str()))
}

/// The kernel's numbers of the object types the compiler makes (`NFT_OBJECT_*`).
const NFT_OBJECT_COUNTER: u32 = 1;
const NFT_OBJECT_LIMIT: u32 = 4;

/// What the kernel's table holds now (netlink dumps: no set element is read), but for its
/// counters and limits ([`with_objects`]).
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
    // A kernel without nftables' bridge family has no such table (and a lab policy then fails
    // at its own apply, with the kernel's sentence); nothing else depends on the answer.
    let bridge_table = socket
        .table_exists(TableFamily::Bridge, TABLE)
        .unwrap_or(false);
    Ok(Existing {
        chains,
        sets,
        counters: Vec::new(),
        limits: Vec::new(),
        mark_maps: Vec::new(),
        bridge_table,
    })
}

/// `existing` with the table's named counters and limits and its mark maps' elements, which
/// only a replacement of the structure needs: a change in place leaves them to the patch, and
/// a table of 10,000 rules has as many counters to list.
pub fn with_objects(mut existing: Existing) -> Result<Existing, Error> {
    let (mut counters, mut limits) = (Vec::new(), Vec::new());
    let mut socket = open()?;
    for object in socket
        .list_objects(TableFamily::Inet, TABLE)
        .map_err(kernel)?
    {
        match object.kind {
            NFT_OBJECT_COUNTER => counters.push(object.name),
            NFT_OBJECT_LIMIT => limits.push(object.name),
            // The compiler makes no other kind; one made by hand stays, unused.
            _ => {}
        }
    }
    existing.counters = counters;
    existing.limits = limits;
    // The hash maps the structure keeps; interval ones are replaced whole (`range_sets`).
    existing.mark_maps = super::kernel::mark_map_entries(&mut socket, false).map_err(kernel)?;
    Ok(existing)
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
    use crate::firewall::compile::PreviousFacts;

    fn name(s: &str) -> ShortName {
        ShortName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn complete(list: &str, v6: bool, hash: &str, span: (&str, &str), ranges: u64) -> Held {
        Held::Complete {
            list: name(list),
            v6,
            hash: hash.into(),
            first: ip(span.0),
            last: ip(span.1),
            ranges,
        }
    }

    const ALL: (&str, &str) = ("0.0.0.0", "255.255.255.255");

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn facts(hash: &str, previous: Option<(&str, u64)>, cuts: &[&str]) -> ImportedFacts {
        ImportedFacts {
            hash: hash.into(),
            previous: previous.map(|(hash, changed)| PreviousFacts {
                hash: hash.into(),
                changed,
                added: changed / 2,
            }),
            splits_v4: cuts
                .iter()
                .map(|c| c.parse().unwrap_or_else(|e| panic!("{e}")))
                .collect(),
            ..ImportedFacts::default()
        }
    }

    /// The slices' names, then the overlay's added and removed sets.
    fn choose(record: &Record, taken: &[&str], data: &ImportedFacts) -> Vec<String> {
        let (sets, overlay) = sets_for(
            record,
            &names(taken),
            &BTreeSet::new(),
            &name("fire-hol"),
            Family::V4,
            data,
        );
        sets.into_iter()
            .map(|s| s.set)
            .chain(overlay.into_iter().flat_map(|o| [o.added, o.removed]))
            .collect()
    }

    fn overlay(added: bool, base: &str, hash: &str, ranges: u64) -> Held {
        Held::Overlay {
            list: name("fire-hol"),
            v6: false,
            added,
            base: base.into(),
            hash: hash.into(),
            ranges,
            content: "sha256:00".into(),
        }
    }

    #[test]
    fn a_version_the_kernel_holds_keeps_its_sets() {
        let mut record = Record::default();
        record.sets.insert(
            "bl_fire_hol_v4_3_s0".into(),
            complete("fire-hol", false, "aa", ("0.0.0.0", "9.255.255.255"), 10),
        );
        record.sets.insert(
            "bl_fire_hol_v4_3_s1".into(),
            complete("fire-hol", false, "aa", ("10.0.0.0", "255.255.255.255"), 10),
        );
        record.sets.insert(
            "bl_fire_hol_v6_3_s0".into(),
            complete(
                "fire-hol",
                true,
                "aa",
                ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                1,
            ),
        );
        let taken = [
            "bl_fire_hol_v4_3_s0",
            "bl_fire_hol_v4_3_s1",
            "bl_fire_hol_v6_3_s0",
        ];
        assert_eq!(
            choose(&record, &taken, &facts("aa", None, &[])),
            vec!["bl_fire_hol_v4_3_s0", "bl_fire_hol_v4_3_s1"]
        );
        // Not in the kernel (after a reboot): new sets, cut where the store says.
        assert_eq!(
            choose(&record, &[], &facts("aa", None, &["1.0.0.0"])),
            vec!["bl_fire_hol_v4_1_s0", "bl_fire_hol_v4_1_s1"]
        );
        // One set of the group missing: the group is not used.
        assert_eq!(
            choose(&record, &taken[..1], &facts("aa", None, &[])),
            vec!["bl_fire_hol_v4_1_s0"]
        );
    }

    #[test]
    fn a_small_difference_goes_to_an_overlay_and_a_big_one_gets_new_slices() {
        let mut record = Record::default();
        record.sets.insert(
            "bl_fire_hol_v4_1_s0".into(),
            complete("fire-hol", false, "aa", ALL, 20_000),
        );
        let taken = ["bl_fire_hol_v4_1_s0"];
        let overlaid = vec![
            "bl_fire_hol_v4_1_s0",
            "bl_fire_hol_v4_1_a1",
            "bl_fire_hol_v4_1_r1",
        ];
        let new = vec!["bl_fire_hol_v4_2_s0"];
        assert_eq!(
            choose(
                &record,
                &taken,
                &facts("bb", Some(("aa", MAX_OVERLAY)), &[])
            ),
            overlaid
        );
        assert_eq!(
            choose(
                &record,
                &taken,
                &facts("bb", Some(("aa", MAX_OVERLAY + 1)), &[])
            ),
            new
        );
        // A difference from a version no set holds is of no use.
        assert_eq!(
            choose(&record, &taken, &facts("bb", Some(("cc", 1)), &[])),
            new
        );
        assert_eq!(choose(&record, &taken, &facts("bb", None, &[])), new);

        // The overlay live at "bb" (60,000 ranges over base "aa"): kept at "bb", and taking the
        // next difference while the two together stay within the bound.
        record.sets.insert(
            "bl_fire_hol_v4_1_a1".into(),
            overlay(true, "aa", "bb", 35_000),
        );
        record.sets.insert(
            "bl_fire_hol_v4_1_r1".into(),
            overlay(false, "aa", "bb", 25_000),
        );
        let taken = [
            "bl_fire_hol_v4_1_s0",
            "bl_fire_hol_v4_1_a1",
            "bl_fire_hol_v4_1_r1",
        ];
        assert_eq!(
            choose(&record, &taken, &facts("bb", Some(("aa", 5)), &[])),
            overlaid
        );
        let room = MAX_OVERLAY - 60_000;
        assert_eq!(
            choose(&record, &taken, &facts("cc", Some(("bb", room)), &[])),
            overlaid
        );
        assert_eq!(
            choose(&record, &taken, &facts("cc", Some(("bb", room + 1)), &[])),
            new
        );
        // Either overlay set missing from the kernel, or unknown: not used, and not reused.
        assert_eq!(
            choose(&record, &taken[..2], &facts("cc", Some(("bb", 5)), &[])),
            new
        );
        let mut unknown = record.clone();
        unknown
            .sets
            .insert("bl_fire_hol_v4_1_r1".into(), Held::Unknown);
        assert_eq!(
            choose(&unknown, &taken, &facts("cc", Some(("bb", 5)), &[])),
            new
        );
        // Slices at the base with no usable overlay get a new one, named past the old.
        assert_eq!(
            choose(&unknown, &taken, &facts("dd", Some(("aa", 5)), &[])),
            vec![
                "bl_fire_hol_v4_1_s0",
                "bl_fire_hol_v4_1_a2",
                "bl_fire_hol_v4_1_r2",
            ]
        );
    }

    #[test]
    fn new_names_avoid_every_set_the_record_or_the_kernel_knows() {
        let mut record = Record::default();
        record
            .sets
            .insert("bl_fire_hol_v4_1_s0".into(), Held::Unknown);
        record.sets.insert(
            "bl_fire_hol_v4_2_s3".into(),
            complete("other", false, "aa", ALL, 1),
        );
        // Unrecorded in the kernel (a record lost): never reused either, nor the old names.
        assert_eq!(
            choose(
                &record,
                &["bl_fire_hol_v4_3_s0", "bl_fire_hol_v4_4"],
                &facts("aa", None, &[])
            ),
            vec!["bl_fire_hol_v4_5_s0"]
        );
        // An unknown set is never trusted, even for the version it was meant to hold.
        assert_eq!(
            choose(
                &record,
                &["bl_fire_hol_v4_1_s0"],
                &facts("aa", Some(("aa", 0)), &[])
            ),
            vec!["bl_fire_hol_v4_3_s0"]
        );
    }

    #[test]
    fn slices_cover_the_family_and_groups_must_cover_it_too() {
        assert_eq!(
            slices(Family::V4, &[]),
            vec![(ip("0.0.0.0"), ip("255.255.255.255"))]
        );
        assert_eq!(
            slices(
                Family::V4,
                &[
                    ip("10.0.0.0"),
                    ip("10.0.0.0"),
                    ip("0.0.0.0"),
                    ip("172.16.0.1")
                ]
            ),
            vec![
                (ip("0.0.0.0"), ip("9.255.255.255")),
                (ip("10.0.0.0"), ip("172.16.0.0")),
                (ip("172.16.0.1"), ip("255.255.255.255")),
            ]
        );
        assert_eq!(
            slices(Family::V6, &[ip("2001:db8::")]),
            vec![
                (ip("::"), ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")),
                (
                    ip("2001:db8::"),
                    ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
                ),
            ]
        );
        // A group with a gap between its slices does not vouch for the list.
        let mut record = Record::default();
        record.sets.insert(
            "bl_fire_hol_v4_1_s0".into(),
            complete("fire-hol", false, "aa", ("0.0.0.0", "9.255.255.255"), 1),
        );
        record.sets.insert(
            "bl_fire_hol_v4_1_s1".into(),
            complete("fire-hol", false, "aa", ("10.0.0.1", "255.255.255.255"), 1),
        );
        let taken = ["bl_fire_hol_v4_1_s0", "bl_fire_hol_v4_1_s1"];
        assert_eq!(
            choose(&record, &taken, &facts("aa", None, &[])),
            vec!["bl_fire_hol_v4_2_s0"]
        );
    }

    #[test]
    fn within_cuts_a_list_at_a_sets_addresses() {
        let list = NetworkList::from_ranges(vec![(5, 20), (30, 40), (50, 60)], vec![(1, 2)]);
        let data = |first: &str, last: &str| ImportedData {
            role: ListRole::Slice,
            list: name("x"),
            family: Family::V4,
            hash: String::new(),
            ranges: 0,
            first: ip(first),
            last: ip(last),
        };
        let got: Vec<Element> = within(&list, &data("0.0.0.10", "0.0.0.35")).collect();
        let v4 = |a: u32| Key::V4(Ipv4Addr::from(a));
        assert_eq!(
            got,
            vec![
                Element::Range {
                    first: v4(10),
                    last: v4(20)
                },
                Element::Range {
                    first: v4(30),
                    last: v4(35)
                },
            ]
        );
        assert_eq!(within(&list, &data("::", "::ffff")).count(), 1);
    }

    #[test]
    fn the_record_reads_back_and_an_old_record_vouches_for_nothing() {
        let dir = std::env::temp_dir().join(format!("palisade-data-sets-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("data-sets.json");
        // A record as an earlier helper wrote it (one set per family, no addresses).
        std::fs::write(
            &path,
            br#"{"sets":{"bl_big_v4_1":{"state":"complete","list":"big","v6":false,"hash":"aa"}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sets = DataSets::open(path.clone());
        assert!(sets.kept().is_empty());
        let mut record = Record::default();
        record.sets.insert(
            "bl_big_v4_1_s0".into(),
            complete("big", false, "aa", ALL, 3),
        );
        record.sets.insert("bl_big_v6_1_s0".into(), Held::Unknown);
        sets.save(record).unwrap_or_else(|e| panic!("{e}"));
        let again = DataSets::open(path);
        assert_eq!(again.kept(), names(&["bl_big_v4_1_s0"]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
