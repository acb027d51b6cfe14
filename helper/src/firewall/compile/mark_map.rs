//! Runs of a VM's rules that each accept one host on a few TCP or UDP ports, compiled into one
//! map from `address . protocol . port` to the rule's connection mark, looked up by one rule
//! (`ct mark set ip daddr . meta l4proto . th dport map @m accept`), each element counting its
//! own packets. A packet costs one lookup instead of a test per rule, and a changed rule is a
//! changed element, not a kernel rule and a named counter deleted and made again: the kernel
//! takes an element in microseconds, a rule with its counter in tens of them.
//!
//! Invariants. Only neighbours form a run, and no key repeats within one, so a packet matches
//! at most one element: the one whose rule it would have met first. The policy's order is kept.
//! Logged rules, networks and port ranges wider than one, and anything but accept stay rules;
//! so do runs of fewer than [`MIN_RUN`] groups (people read rules more easily, and a few cost
//! a packet little). An element's comment is its rule's counter name, so the counters are read
//! from the kernel's listing alone. A map's name says where its run is (the chain and the run's place),
//! not what it holds, so a change of its rules is a change of its elements.

use super::{family_suffix, Owner};
use crate::firewall::ruleset::*;
use palisade_dbus::policy::{Destination, Family, Protocol, Rule, Verdict};
use std::collections::HashSet;
use std::net::IpAddr;

/// Fewest groups a run needs to become a map. A group is one kernel rule already (merged
/// neighbours share a set of hosts), so this counts the kernel rules the map replaces: a run
/// of a few big groups stays rules, and a change that splits a group (one host's port
/// changed) does not turn it into a map whose every element then changes mark.
pub(super) const MIN_RUN: usize = 16;
/// Most ports one rule of a run may name (each is an element of the map).
const MAX_PORTS: usize = 16;

/// The key of one element: destination address, protocol, port.
pub(super) type Key = (IpAddr, &'static str, u16);

/// The keys of a group of merged neighbours (often one rule), if it can be part of a run:
/// accepts, not logged, each of one host on at most [`MAX_PORTS`] TCP or UDP ports, no key
/// twice.
pub(super) fn keys(group: &[(usize, &Rule)]) -> Option<Vec<Key>> {
    let mut keys = Vec::new();
    for (_, rule) in group {
        keys.extend(rule_keys(rule)?);
    }
    let distinct: HashSet<&Key> = keys.iter().collect();
    (distinct.len() == keys.len()).then_some(keys)
}

fn rule_keys(rule: &Rule) -> Option<Vec<Key>> {
    if rule.action != Verdict::Accept || rule.log || rule.icmp_type.is_some() {
        return None;
    }
    let Destination::Net(net) = rule.destination else {
        return None;
    };
    if net.prefix_len() != net.max_prefix_len() {
        return None;
    }
    let proto = match rule.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        _ => return None,
    };
    let ranges = rule.ports.as_ref()?.ranges();
    let count: usize = ranges
        .iter()
        .map(|r| usize::from(r.last() - r.first()) + 1)
        .sum();
    if count > MAX_PORTS {
        return None;
    }
    Some(
        ranges
            .iter()
            .flat_map(|r| r.first()..=r.last())
            .map(|port| (net.addr(), proto, port))
            .collect(),
    )
}

/// A group of merged neighbours: each rule with its number in the policy.
pub(super) type Group<'a> = &'a [(usize, &'a Rule)];

/// A run being gathered: its groups with their keys.
#[derive(Default)]
pub(super) struct Run<'a> {
    groups: Vec<(Group<'a>, Vec<Key>)>,
    taken: HashSet<Key>,
}

impl<'a> Run<'a> {
    /// Whether a group with `keys` can join without repeating a key.
    pub(super) fn admits(&self, keys: &[Key]) -> bool {
        keys.iter().all(|k| !self.taken.contains(k))
    }

    pub(super) fn push(&mut self, group: Group<'a>, keys: Vec<Key>) {
        self.taken.extend(keys.iter().copied());
        self.groups.push((group, keys));
    }

    /// The run's groups, leaving it empty, when it has too few to be a map.
    pub(super) fn take_short(&mut self) -> Option<Vec<Group<'a>>> {
        if self.groups.len() >= MIN_RUN {
            return None;
        }
        self.taken.clear();
        Some(self.groups.drain(..).map(|(g, _)| g).collect())
    }

    /// The run as maps (one per family) and the rules looking them up, leaving it empty.
    /// `index` tells this run from the chain's others; `mark` and `counter` give a group's
    /// connection mark and counter name.
    pub(super) fn take_maps(
        &mut self,
        owner: &Owner<'_>,
        index: usize,
        mark: impl Fn(Group<'_>) -> u32,
        counter: impl Fn(&RuleTag, Group<'_>) -> String,
        out: &mut Ruleset,
    ) -> Vec<RuleDef> {
        self.taken.clear();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (group, keys) in self.groups.drain(..) {
            let number = |k: usize| u32::try_from(k).unwrap_or(u32::MAX);
            let tag = RuleTag {
                owner: owner.tag.clone(),
                rule: TagRule::Numbers {
                    first: number(group[0].0),
                    last: number(group[group.len() - 1].0),
                },
                action: Verdict::Accept,
            };
            let name = counter(&tag, group);
            let mark = mark(group);
            out.live_marks.insert(mark);
            for (addr, proto, port) in keys {
                let entry = MarkMapEntry {
                    addr,
                    proto,
                    port,
                    mark,
                    counter: name.clone(),
                };
                match addr {
                    IpAddr::V4(_) => v4.push(entry),
                    IpAddr::V6(_) => v6.push(entry),
                }
            }
            out.element_counters.push((name, tag));
        }
        let mut rules = Vec::new();
        for (family, entries) in [(Family::V4, v4), (Family::V6, v6)] {
            if entries.is_empty() {
                continue;
            }
            let name = format!("{}_m{index}_{}", owner.chain, family_suffix(family));
            out.sets.push(SetDef {
                name: name.clone(),
                kind: SetKind::MarkMap(family),
                nets: Vec::new(),
                marks: Vec::new(),
                consoles: Vec::new(),
                entries,
                imported: None,
                follows: None,
            });
            rules.push(RuleDef::new(
                Vec::new(),
                RuleVerdict::AcceptMarkedByMap(family, name),
            ));
        }
        rules
    }
}
