//! A generation as a change to the table the kernel holds: when only rules, named counters and
//! connection marks differ from the installed ruleset, the kernel is sent just the rules that
//! changed (deleted by handle, added in place), the new counters and marks, in one netlink
//! transaction — atomic for the packet path like the full replacement through `nft -f`, which
//! stays the way for everything else (a chain, set, limit or port guard that changes, the first
//! install after a start, any doubt).
//!
//! Invariants:
//! - The plan is pure: [`plan`] compares the record of what was installed ([`KernelRecord`]:
//!   per chain a fingerprint of each kernel rule and, once known, its handle) with the new
//!   ruleset. Rules are compared by their typed definition and line, so a rule is kept only
//!   when it is defined as before, and `nft -f` would have loaded the same line.
//! - Per chain the change is a diff of the rules' fingerprints: runs of rules deleted by handle
//!   and new ones added where they were, the rest kept; a chain with more than a quarter of its
//!   rules changed is flushed and filled instead (the kernel finds a rule by handle by walking
//!   the chain), unless a rule it keeps is one `encode` cannot write. Any added rule that
//!   `encode` cannot write makes the whole generation go through `nft -f`.
//! - The version of a list a set holds is not structure: a list changed in place by the data
//!   path keeps its sets and its rules, and the generation naming it changes nothing here.
//! - The record is trusted only while every commit since it was made was the helper's own
//!   (`palisade_nfnetlink::commits`); the caller checks that before planning. A handle that
//!   is gone anyway fails the whole transaction, and the caller falls back to `nft -f`.

use super::encode::kernel_rules;
use super::render::line_count;
use super::ruleset::*;
use palisade_nfnetlink::{Endpoint, MarkEntry, Placement, RuleSpec};
use similar::DiffOp;
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};

/// What the kernel's table holds, as far as changing it in place needs to know. Small on
/// purpose: a fingerprint per rule, not the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRecord {
    /// Fingerprint of everything but rules, counters and marks (table, sets, chains, limits,
    /// port guards): a generation must match it to be changed in place.
    structure: u64,
    /// Per chain, in order: a fingerprint of each kernel rule.
    chains: Vec<(String, Vec<u64>)>,
    /// The handles of those rules, per chain in the same order, once learned from the kernel.
    handles: Option<Vec<Vec<u64>>>,
    /// The named counters.
    counters: BTreeSet<String>,
    /// The marks in the live marks set.
    marks: BTreeSet<u32>,
    /// Per mark map, its elements: key and a fingerprint of mark and counter, by key.
    maps: Vec<(String, Vec<(Endpoint, u64)>)>,
}

/// What to send the kernel to turn the recorded table into the new ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// Named counters to create, with their comments.
    pub new_counters: Vec<(String, String)>,
    /// Named counters no rule uses any more.
    pub gone_counters: Vec<String>,
    pub marks_added: Vec<u32>,
    pub marks_removed: Vec<u32>,
    pub chains: Vec<ChainPatch>,
    pub maps: Vec<MapPatch>,
}

/// The change to one mark map's elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPatch {
    pub map: String,
    /// Keys whose elements go (deleted before the additions: a changed element is deleted and
    /// added again, which restarts its counter as a renamed counter does).
    pub removed: Vec<Endpoint>,
    pub added: Vec<MarkEntry>,
    /// The map's elements afterwards.
    after: Vec<(Endpoint, u64)>,
}

/// The change to one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPatch {
    /// Its index in the ruleset's chains.
    pub index: usize,
    pub chain: String,
    pub change: ChainChange,
    /// The chain's rules afterwards: the handle of each kept one, `None` for each added one
    /// (in the order the patch adds them).
    layout: Vec<Option<u64>>,
    /// The fingerprints of the chain's rules afterwards.
    fingerprints: Vec<u64>,
}

/// How a chain changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainChange {
    /// Runs of rules deleted and added in place; the rest stay.
    Edit(Vec<Run>),
    /// Every rule goes and the new ones are appended: cheaper than many edits, since the
    /// kernel finds a rule by its handle by walking the chain from its start.
    Replace(Vec<RuleSpec>),
}

/// Rules deleted, and rules added where they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub delete: Vec<u64>,
    /// Where the added rules go; they are given in chain order.
    pub placement: Placement,
    pub add: Vec<RuleSpec>,
}

/// Past this share of a chain's rules (one in four) changing, the chain is replaced whole.
const EDIT_SHARE: usize = 4;
/// Longest a diff of one chain may look for the fewest edits before settling for more.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(20);

impl Patch {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.new_counters.is_empty()
            && self.gone_counters.is_empty()
            && self.marks_added.is_empty()
            && self.marks_removed.is_empty()
            && self.chains.is_empty()
            && self.maps.is_empty()
    }
}

impl KernelRecord {
    /// The record of `ruleset` as just installed; its handles are not known yet.
    pub fn of(ruleset: &Ruleset) -> Self {
        Self {
            structure: structure_of(ruleset),
            chains: ruleset
                .chains
                .iter()
                .map(|c| (c.name.clone(), fingerprints(c).0))
                .collect(),
            handles: None,
            counters: ruleset.counters.iter().map(|(n, _)| n.clone()).collect(),
            marks: marks_of(ruleset),
            maps: mark_maps(ruleset)
                .map(|(name, entries)| (name.to_owned(), map_prints(entries)))
                .collect(),
        }
    }

    /// Whether the handles are known.
    pub fn has_handles(&self) -> bool {
        self.handles.is_some()
    }

    /// Takes the handles the kernel listed (chain and handle per rule, in its order); `false`,
    /// leaving them unknown, unless every chain holds as many rules as recorded.
    pub fn learn_handles(&mut self, listed: &[(String, u64)]) -> bool {
        let mut handles: Vec<Vec<u64>> = vec![Vec::new(); self.chains.len()];
        for (chain, handle) in listed {
            match self.chains.iter().position(|(name, _)| name == chain) {
                Some(i) => handles[i].push(*handle),
                // A chain we did not make: someone else's, so the record is not the table.
                None => return false,
            }
        }
        let complete = self
            .chains
            .iter()
            .zip(&handles)
            .all(|((_, rules), h)| rules.len() == h.len());
        if complete {
            self.handles = Some(handles);
        }
        complete
    }

    /// The record after `patch` was committed, the kernel having given the added rules
    /// `added` (in the patch's order) as handles.
    /// Made from the patch rather than from the ruleset, which would render every rule again.
    pub fn patched(&self, patch: &Patch, added: &[u64]) -> Option<Self> {
        let mut record = self.clone();
        let handles = record.handles.as_mut()?;
        let mut added = added.iter().copied();
        for cp in &patch.chains {
            let now: Option<Vec<u64>> = cp
                .layout
                .iter()
                .map(|kept| kept.or_else(|| added.next()))
                .collect();
            *handles.get_mut(cp.index)? = now?;
            record.chains.get_mut(cp.index)?.1 = cp.fingerprints.clone();
        }
        if added.next().is_some() {
            return None;
        }
        for gone in &patch.gone_counters {
            record.counters.remove(gone);
        }
        record
            .counters
            .extend(patch.new_counters.iter().map(|(name, _)| name.clone()));
        for mark in &patch.marks_removed {
            record.marks.remove(mark);
        }
        record.marks.extend(&patch.marks_added);
        for mp in &patch.maps {
            let (_, entries) = record.maps.iter_mut().find(|(name, _)| *name == mp.map)?;
            entries.clone_from(&mp.after);
        }
        Some(record)
    }
}

/// How to turn what `record` says the kernel holds into `new`, or `None` when it has to be
/// loaded whole (the structure differs, a handle is unknown, or a rule is not encodable).
pub fn plan(record: &KernelRecord, new: &Ruleset) -> Option<Patch> {
    let handles = record.handles.as_ref()?;
    if structure_of(new) != record.structure || new.chains.len() != record.chains.len() {
        return None;
    }
    let mut patch = Patch::default();
    let declared: HashSet<&str> = new.counters.iter().map(|(n, _)| n.as_str()).collect();
    for (name, tag) in &new.counters {
        if !record.counters.contains(name) {
            let comment = tag.prefix().trim_end_matches(": ").to_owned();
            patch.new_counters.push((name.clone(), comment));
        }
    }
    patch.gone_counters = record
        .counters
        .iter()
        .filter(|n| !declared.contains(n.as_str()))
        .cloned()
        .collect();
    let marks = marks_of(new);
    patch.marks_added = marks.difference(&record.marks).copied().collect();
    patch.marks_removed = record.marks.difference(&marks).copied().collect();
    for (name, entries) in mark_maps(new) {
        let (_, old) = record.maps.iter().find(|(n, _)| n == name)?;
        if let Some(mp) = map_patch(name, old, entries) {
            patch.maps.push(mp);
        }
    }
    for (index, ((name, old), chain)) in record.chains.iter().zip(&new.chains).enumerate() {
        if *name != chain.name {
            return None;
        }
        let old_handles = handles.get(index)?;
        if old_handles.len() != old.len() {
            return None;
        }
        if let Some(cp) = chain_patch(index, old, old_handles, chain)? {
            patch.chains.push(cp);
        }
    }
    Some(patch)
}

/// The change to one chain: `None` if a rule it adds cannot be encoded, `Some(None)` if it is
/// unchanged.
fn chain_patch(
    index: usize,
    old: &[u64],
    handles: &[u64],
    chain: &ChainDef,
) -> Option<Option<ChainPatch>> {
    let (new, lines) = fingerprints(chain);
    if old == new.as_slice() {
        return Some(None);
    }
    let diff = || {
        similar::capture_diff_slices_deadline(
            similar::Algorithm::Myers,
            old,
            &new,
            Some(std::time::Instant::now() + DIFF_DEADLINE),
        )
    };
    // Each rule new to the chain is one the diff would add: when those alone pass the share,
    // the chain is known to be mostly changed without looking for the fewest edits, which on a
    // big chain changed throughout may run to the diff's deadline only to say the same.
    let known: HashSet<u64> = old.iter().copied().collect();
    let unseen = new.iter().filter(|p| !known.contains(p)).count();
    let ops = (unseen * EDIT_SHARE <= new.len()).then(&diff);
    let mostly_changed = ops
        .as_deref()
        .is_none_or(|ops| changed(ops) * EDIT_SHARE > new.len());
    // A chain mostly changed is replaced whole, unless a rule it keeps is not encodable (a
    // list's verdict map of slices): then only the changed rules need to be.
    let replacement = mostly_changed
        .then(|| specs(chain, &lines, |_| true))
        .flatten();
    let (change, layout) = match replacement {
        Some(all) => (ChainChange::Replace(all), vec![None; new.len()]),
        None => {
            let ops = ops.unwrap_or_else(&diff);
            edits(&ops, handles, chain, &lines, new.len())?
        }
    };
    Some(Some(ChainPatch {
        index,
        chain: chain.name.clone(),
        change,
        layout,
        fingerprints: new,
    }))
}

/// Rules the diff deletes and adds, together.
fn changed(ops: &[DiffOp]) -> usize {
    ops.iter()
        .map(|op| match *op {
            DiffOp::Equal { .. } => 0,
            DiffOp::Delete { old_len, .. } => old_len,
            DiffOp::Insert { new_len, .. } => new_len,
            DiffOp::Replace {
                old_len, new_len, ..
            } => old_len + new_len,
        })
        .sum()
}

/// The diff's runs as edits of the chain, and its layout afterwards.
fn edits(
    ops: &[DiffOp],
    handles: &[u64],
    chain: &ChainDef,
    lines: &[usize],
    new_len: usize,
) -> Option<(ChainChange, Vec<Option<u64>>)> {
    let mut layout = Vec::with_capacity(new_len);
    let mut wanted = vec![false; new_len];
    let mut runs = Vec::new();
    let mut last_kept: Option<u64> = None;
    for (i, op) in ops.iter().enumerate() {
        let (old_range, new_range) = match *op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                layout.extend(handles[old_index..old_index + len].iter().map(|h| Some(*h)));
                last_kept = handles.get(old_index + len - 1).copied().or(last_kept);
                let _ = new_index;
                continue;
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => (old_index..old_index + old_len, 0..0),
            DiffOp::Insert {
                new_index, new_len, ..
            } => (0..0, new_index..new_index + new_len),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => (
                old_index..old_index + old_len,
                new_index..new_index + new_len,
            ),
        };
        for w in new_range.clone() {
            wanted[w] = true;
            layout.push(None);
        }
        // New rules go after the last kept one, or before the next kept one, or (none kept
        // at all) at the end of the emptied chain.
        let placement = match last_kept {
            Some(h) => Placement::After(h),
            None => match ops[i..].iter().find_map(|op| match *op {
                DiffOp::Equal { old_index, .. } => handles.get(old_index).copied(),
                _ => None,
            }) {
                Some(h) => Placement::Before(h),
                None => Placement::Append,
            },
        };
        runs.push((handles[old_range].to_vec(), placement, new_range));
    }
    let mut added = specs(chain, lines, |line| wanted[line])?.into_iter();
    let runs = runs
        .into_iter()
        .map(|(delete, placement, new_range)| Run {
            delete,
            placement,
            add: added.by_ref().take(new_range.len()).collect(),
        })
        .collect();
    Some((ChainChange::Edit(runs), layout))
}

/// The kernel rules of the lines of `chain` that `wanted` picks, in order (`lines`: how many
/// lines each rule has, from [`fingerprints`]); `None` if one cannot be encoded.
fn specs(
    chain: &ChainDef,
    lines: &[usize],
    wanted: impl Fn(usize) -> bool,
) -> Option<Vec<RuleSpec>> {
    let mut out = Vec::new();
    let mut line = 0;
    for (rule, &lines) in chain.rules.iter().zip(lines) {
        if (line..line + lines).any(&wanted) {
            for (k, spec) in kernel_rules(rule)?.into_iter().enumerate() {
                if wanted(line + k) {
                    out.push(spec);
                }
            }
        }
        line += lines;
    }
    Some(out)
}

/// A fingerprint of each kernel rule of `chain` (one per line it renders to), and how many
/// lines each rule has. Taken from the typed rule, not its text: the same definition always
/// renders the same line, and rendering 10,000 rules was most of a plan's time.
fn fingerprints(chain: &ChainDef) -> (Vec<u64>, Vec<usize>) {
    let mut prints = Vec::with_capacity(chain.rules.len());
    let mut lines = Vec::with_capacity(chain.rules.len());
    for rule in &chain.rules {
        let count = line_count(rule);
        lines.push(count);
        prints.extend((0..count).map(|line| fingerprint(&(line, rule))));
    }
    (prints, lines)
}

fn fingerprint(value: &impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Everything of `r` a change in place leaves as it is.
fn structure_of(r: &Ruleset) -> u64 {
    let sets: Vec<String> = r
        .sets
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.kind == SetKind::Marks {
                s.marks.clear();
            }
            // A mark map's elements are changed in place; an interval map's or set's name
            // carries a fingerprint of them.
            s.entries.clear();
            // Which version of a list a set holds is the data path's business: a list changed
            // in place keeps its sets, and the structure does not carry the version.
            if let Some(data) = &mut s.imported {
                data.hash.clear();
                data.ranges = 0;
            }
            format!("{s:?}")
        })
        .collect();
    let chains: Vec<String> = r
        .chains
        .iter()
        .map(|c| format!("{}:{:?}", c.name, c.hook))
        .collect();
    fingerprint(&(
        r.table,
        sets,
        chains,
        &r.limits,
        format!("{:?}", r.port_guards),
    ))
}

/// The mark maps of `r` with their elements.
fn mark_maps(r: &Ruleset) -> impl Iterator<Item = (&str, &[MarkMapEntry])> {
    r.sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::MarkMap(_)))
        .map(|s| (s.name.as_str(), s.entries.as_slice()))
}

/// A mark map's element as the kernel takes it.
pub fn mark_entry(e: &MarkMapEntry) -> MarkEntry {
    MarkEntry {
        key: Endpoint {
            addr: e.net.network(),
            proto: if e.proto == "udp" { 17 } else { 6 },
            port: e.ports.0,
        },
        mark: e.mark,
        comment: e.counter.clone(),
    }
}

/// Each element's key and a fingerprint of the rest, by key.
fn map_prints(entries: &[MarkMapEntry]) -> Vec<(Endpoint, u64)> {
    let mut prints: Vec<(Endpoint, u64)> = entries
        .iter()
        .map(|e| (mark_entry(e).key, fingerprint(&(e.mark, &e.counter))))
        .collect();
    prints.sort_unstable();
    prints
}

/// The elements of a map that change from `old` to `entries`, `None` when none does.
fn map_patch(name: &str, old: &[(Endpoint, u64)], entries: &[MarkMapEntry]) -> Option<MapPatch> {
    let after = map_prints(entries);
    if after == old {
        return None;
    }
    let before: HashSet<&(Endpoint, u64)> = old.iter().collect();
    let kept: HashSet<&(Endpoint, u64)> = after.iter().filter(|p| before.contains(p)).collect();
    let removed = old
        .iter()
        .filter(|p| !kept.contains(p))
        .map(|(key, _)| *key)
        .collect();
    let added = entries
        .iter()
        .map(mark_entry)
        .filter(|e| !kept.contains(&(e.key, fingerprint(&(e.mark, &e.comment)))))
        .collect();
    Some(MapPatch {
        map: name.to_owned(),
        removed,
        added,
        after,
    })
}

fn marks_of(r: &Ruleset) -> BTreeSet<u32> {
    r.sets
        .iter()
        .filter(|s| s.kind == SetKind::Marks)
        .flat_map(|s| s.marks.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests;
