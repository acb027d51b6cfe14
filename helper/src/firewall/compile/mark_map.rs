//! Runs of a VM's rules that each accept one host or network on a few TCP or UDP ports,
//! compiled into one map from `address . protocol . port` to the rule's connection mark, looked
//! up by one rule (`ct mark set ip daddr . meta l4proto . th dport map @m accept`; for networks
//! the address masked to their prefix, `ip daddr & 255.255.255.0`), each element counting its
//! own packets. A packet costs one lookup instead of a test per rule, and a changed rule is a
//! changed element, not a kernel rule and a named counter deleted and made again: the kernel
//! takes an element in microseconds, a rule with its counter in tens of them.
//!
//! Invariants. Only neighbours form a run, and no key repeats within one, so a packet matches
//! at most one element: the one whose rule it would have met first. The policy's order is kept.
//! The networks of one family in a run share one prefix length (the map's mask), so two of its
//! networks are the same key or disjoint; a network of another length ends the run. The map is
//! a hash of exact keys, never an interval map: the kernel changes an element of an interval
//! map of concatenations in about a millisecond, of a hash in microseconds.
//! Logged rules, port ranges wider than [`MAX_PORTS`], and anything but accept stay rules;
//! so do runs of fewer than [`MIN_RUN`] groups (people read rules more easily, and a few cost
//! a packet little). An element's comment is its rule's counter name, so the counters are read
//! from the kernel's listing alone. A map's name says where its run is (the chain and the run's place),
//! not what it holds, so a change of its rules is a change of its elements.

use super::{family_suffix, Owner};
use crate::firewall::ruleset::*;
use ipnet::IpNet;
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

/// The key of one element: destination network (its host bits cleared; a host is a full-length
/// network), protocol, port.
pub(super) type Key = (IpNet, &'static str, u16);

/// The keys of a group of merged neighbours (often one rule), if it can be part of a run:
/// accepts, not logged, each of one network on at most [`MAX_PORTS`] TCP or UDP ports, the
/// networks of a family all of one prefix length, no key twice.
pub(super) fn keys(group: &[(usize, &Rule)]) -> Option<Vec<Key>> {
    let mut keys = Vec::new();
    for (_, rule) in group {
        keys.extend(rule_keys(rule)?);
    }
    let distinct: HashSet<&Key> = keys.iter().collect();
    let mut prefixes = Prefixes::default();
    (distinct.len() == keys.len() && keys.iter().all(|k| prefixes.admit(&k.0))).then_some(keys)
}

/// The one prefix length of each family's networks in a run (or group).
#[derive(Default, Clone, Copy)]
struct Prefixes {
    v4: Option<u8>,
    v6: Option<u8>,
}

impl Prefixes {
    fn slot(&mut self, net: &IpNet) -> &mut Option<u8> {
        match net {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        }
    }

    /// Whether `net` has its family's length (the first network of a family sets it).
    fn admits(mut self, net: &IpNet) -> bool {
        self.admit(net)
    }

    /// Like [`Self::admits`], remembering the length.
    fn admit(&mut self, net: &IpNet) -> bool {
        let slot = self.slot(net);
        *slot.get_or_insert(net.prefix_len()) == net.prefix_len()
    }

    fn of(&self, family: Family) -> Option<u8> {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

fn rule_keys(rule: &Rule) -> Option<Vec<Key>> {
    if rule.action != Verdict::Accept || rule.log || rule.icmp_type.is_some() {
        return None;
    }
    let Destination::Net(net) = rule.destination else {
        return None;
    };
    let net = net.trunc();
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
            .map(|port| (net, proto, port))
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
    prefixes: Prefixes,
}

impl<'a> Run<'a> {
    /// Whether a group with `keys` can join without repeating a key or bringing a network of
    /// another length.
    pub(super) fn admits(&self, keys: &[Key]) -> bool {
        keys.iter()
            .all(|k| !self.taken.contains(k) && self.prefixes.admits(&k.0))
    }

    pub(super) fn push(&mut self, group: Group<'a>, keys: Vec<Key>) {
        for k in &keys {
            self.prefixes.admit(&k.0);
        }
        self.taken.extend(keys.iter().copied());
        self.groups.push((group, keys));
    }

    /// Forgets the run's keys and lengths (its groups are taken).
    fn clear(&mut self) {
        self.taken.clear();
        self.prefixes = Prefixes::default();
    }

    /// The run's groups, leaving it empty, when it has too few to be a map.
    pub(super) fn take_short(&mut self) -> Option<Vec<Group<'a>>> {
        if self.groups.len() >= MIN_RUN {
            return None;
        }
        self.clear();
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
        let prefixes = self.prefixes;
        self.clear();
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
            for (net, proto, port) in keys {
                let addr = net.network();
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
            let full = match family {
                Family::V4 => 32,
                Family::V6 => 128,
            };
            let prefix = prefixes.of(family).unwrap_or(full);
            rules.push(RuleDef::new(
                Vec::new(),
                RuleVerdict::AcceptMarkedByMap(family, name, prefix),
            ));
        }
        rules
    }
}
