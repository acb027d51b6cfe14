//! The interval maps and sets of rule runs (`RangeMap`, `RuleSet`): made and filled over
//! netlink before the structure that names them is installed, each element's counter starting
//! from what its predecessor's element counted.
//!
//! Invariants. Such a set is never changed in place: its name carries a fingerprint of its
//! elements, so one the kernel has under that name is the one wanted and is left alone, and a
//! changed run is a new set, filled while nothing refers to it, which the structure transaction
//! then names instead of the old one and deletes the old one in — the packet path sees the old
//! set or the new one, never a half-filled one. A set made here that no structure took (its
//! load failed) is deleted again; one left by a crash is deleted by the next structure load,
//! like every set no ruleset names. Counts are carried by element (keys, mark and counter name
//! alike) from the sets of the same run place, listed while the ruleset is compiled; what a
//! rule counted between the listing and the structure's transaction is lost.

use super::netlink::{Batch, Counted, Endpoint, NftSocket, RangeEntry, SetRef, TableFamily};
use super::ruleset::{MarkMapEntry, Ruleset, SetDef, SetKind, TABLE};
use palisade_dbus::policy::Family;
use palisade_dbus::Error;
use std::collections::HashMap;

/// An element as its keys, mark (0 in a rule set) and counter name, to find it again.
pub type ElementKey = (Endpoint, Endpoint, u32, String);

/// What the elements of the kernel's interval maps and sets counted, by run place (a set's name
/// less its fingerprint), then by element.
pub type Counts = HashMap<String, HashMap<ElementKey, Counted>>;

/// Lists what the elements of the kernel's interval maps and sets counted: one dump of the
/// table's sets, then of each such set's elements. Read while the ruleset is compiled, on the
/// other core; what a rule counts between this and the structure's transaction is lost.
pub fn counts() -> Result<Counts, Error> {
    let mut socket = NftSocket::open().map_err(|e| failed(&e))?;
    let mut counts: Counts = HashMap::new();
    for (name, entries) in
        super::kernel::interval_set_entries(&mut socket).map_err(|e| failed(&e))?
    {
        let Some((place, _)) = name.rsplit_once('_') else {
            continue;
        };
        let of_place = counts.entry(place.to_owned()).or_default();
        for e in entries {
            let (Some(last), Some(comment), Some(counted)) = (e.key_end, e.comment, e.counted)
            else {
                continue;
            };
            of_place.insert((e.key, last, e.mark.unwrap_or(0), comment), counted);
        }
    }
    Ok(counts)
}

/// Makes and fills each interval map and set of `ruleset` the kernel does not have (`existing`
/// names the table's sets), each element's counter starting from what the same element at the
/// same run place counted (`counts`); returns the names of those it made.
pub fn ensure(
    ruleset: &Ruleset,
    existing: &[String],
    counts: &Counts,
) -> Result<Vec<String>, Error> {
    let missing: Vec<&SetDef> = ruleset
        .sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::RangeMap(_) | SetKind::RuleSet(_)))
        .filter(|s| !existing.contains(&s.name))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut socket = NftSocket::open().map_err(|e| failed(&e))?;
    let mut batch = Batch::new();
    let none = HashMap::new();
    for set in &missing {
        let carried = set
            .name
            .rsplit_once('_')
            .and_then(|(place, _)| counts.get(place))
            .unwrap_or(&none);
        let (v6, map) = match set.kind {
            SetKind::RangeMap(f) => (f == Family::V6, true),
            SetKind::RuleSet(f) => (f == Family::V6, false),
            _ => continue,
        };
        let target = set_ref(&set.name)?;
        batch.new_endpoint_set(&target, v6, map);
        let entries: Vec<RangeEntry> = set
            .entries
            .iter()
            .map(|e| {
                let mut entry = range_entry(e, map);
                entry.counted = carried.get(&key_of(&entry)).copied();
                entry
            })
            .collect();
        batch
            .add_range_entries(&target, &entries)
            .map_err(|e| failed(&e))?;
    }
    socket.send(&mut batch).map_err(|e| failed(&e))?;
    Ok(missing.iter().map(|s| s.name.clone()).collect())
}

/// Deletes sets made by [`ensure`] that no structure took; what fails is only logged (the next
/// structure load deletes them anyway).
pub fn discard(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let attempt = || -> Result<(), Error> {
        let mut socket = NftSocket::open().map_err(|e| failed(&e))?;
        let mut batch = Batch::new();
        for name in names {
            batch.delete_set(&set_ref(name)?);
        }
        socket.send(&mut batch).map_err(|e| failed(&e))
    };
    if let Err(e) = attempt() {
        tracing::warn!("the unused rule sets {names:?} stay until the next load: {e}");
    }
}

/// The element the kernel stores for `e`: from its network's first address and first port to
/// its last address and last port.
pub fn range_entry(e: &MarkMapEntry, map: bool) -> RangeEntry {
    let first = super::patch::mark_entry(e).key;
    RangeEntry {
        first,
        last: Endpoint {
            addr: e.net.broadcast(),
            port: e.ports.1,
            ..first
        },
        mark: map.then_some(e.mark),
        comment: e.counter.clone(),
        counted: None,
    }
}

fn key_of(e: &RangeEntry) -> ElementKey {
    (e.first, e.last, e.mark.unwrap_or(0), e.comment.clone())
}

fn set_ref(name: &str) -> Result<SetRef, Error> {
    SetRef::new(TableFamily::Inet, TABLE, name).map_err(|e| failed(&e))
}

fn failed(e: &dyn std::fmt::Display) -> Error {
    Error::ApplyFailed(format!(
        "the kernel refused the rules' sets, nothing was changed: {e}"
    ))
}
