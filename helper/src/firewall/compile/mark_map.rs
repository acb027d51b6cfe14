//! Runs of neighbouring rules that each name one host or network on some TCP or UDP ports,
//! compiled into one lookup per family: a packet costs one lookup instead of a test per rule,
//! and each element counts its own packets under its rule's counter name.
//!
//! A run of a VM's accepts is a map from `address . protocol . port` to the rule's connection
//! mark (`ct mark set ip daddr . meta l4proto . th dport map @m accept`). Where every rule names
//! at most [`MAX_PORTS`] ports and the family's networks share one prefix length it is a hash
//! of exact keys (`MarkMap`; networks looked up by the address masked to their length,
//! `ip daddr & 255.255.255.0`), changed element by element: the kernel takes an element in
//! microseconds where a rule with its counter takes tens of them. Otherwise (port ranges,
//! networks of several lengths) it is an interval map (`RangeMap`). A run of anything else —
//! drops, rejects, the host's accepts (a `return`) — is an interval set (`RuleSet`) looked up
//! by one rule with the run's verdict (`ip daddr . meta l4proto . th dport @s drop`). Interval
//! maps and sets are never changed in place (the kernel changes an element of an interval set
//! of concatenations in about a millisecond, and loads a fresh one of 10,000 in a tenth of a
//! second): each is made and filled over netlink (`firewall::range_sets`) before the structure
//! that names it replaces its predecessor.
//!
//! Invariants. Only neighbours form a run, they all do the same, and no two keys of a run
//! overlap (same protocol, one network within the other, ports in common), so a packet matches
//! at most one element: the one whose rule it would have met first. The policy's order is kept.
//! Logged rules, ICMP and rules without a network stay rules; so do runs of fewer than
//! [`MIN_RUN`] groups (people read rules more easily, and a few cost a packet little). An
//! element's comment is its rule's counter name, so the counters are read from the kernel's
//! listing alone. A hash map's name says where its run is (the chain and the run's place), not
//! what it holds, so a change of its rules is a change of its elements; an interval map's or
//! set's name adds a fingerprint of its elements, so a set the kernel has is the one wanted.

use super::{family_suffix, Owner};
use crate::firewall::ruleset::*;
use ipnet::IpNet;
use palisade_dbus::policy::{Destination, Family, Protocol, Rule, Verdict};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

/// Fewest groups a run needs to become a map. A group is one kernel rule already (merged
/// neighbours share a set of hosts), so this counts the kernel rules the map replaces: a run
/// of a few big groups stays rules, and a change that splits a group (one host's port
/// changed) does not turn it into a map whose every element then changes mark.
pub(super) const MIN_RUN: usize = 16;
/// Most ports one rule of a hash map's run may name (each is an element of the map).
const MAX_PORTS: usize = 16;
/// Most port ranges one rule may name to be part of a run (each is an element).
const MAX_RANGES: usize = 64;
/// Most keys of a run one key's overlap check may look at (the networks inside a wide one):
/// past it the key counts as overlapping and ends the run, which keeps compiling a hostile
/// policy linear; a run ended early is only more maps or rules, never a wrong one.
const MAX_SCAN: usize = 256;

/// The key of one element: destination network (its host bits cleared; a host is a
/// full-length network), protocol, first and last port.
pub(super) type Key = (IpNet, &'static str, u16, u16);

/// The keys of a group of merged neighbours, and whether they can be exact keys.
pub(super) struct Keys {
    keys: Vec<Key>,
    /// What the group's rules do.
    action: Verdict,
    /// Each rule names at most [`MAX_PORTS`] ports.
    exact: bool,
}

/// The keys of a group of merged neighbours (often one rule), if it can be part of a run: not
/// logged, each of one network on TCP or UDP, on at most [`MAX_RANGES`] port
/// ranges (all ports if it names none), no two keys overlapping.
pub(super) fn keys(group: &[(usize, &Rule)]) -> Option<Keys> {
    let mut keys = Vec::new();
    let mut exact = true;
    for (_, rule) in group {
        let of_rule = rule_keys(rule)?;
        exact &= of_rule
            .iter()
            .map(|k| usize::from(k.3 - k.2) + 1)
            .sum::<usize>()
            <= MAX_PORTS;
        keys.extend(of_rule);
    }
    let action = group.first()?.1.action;
    // One key overlaps nothing: most groups are one rule on one port or range.
    let disjoint = keys.len() < 2 || {
        let mut taken = Taken::default();
        keys.iter().all(|k| taken.insert(k))
    };
    (group.iter().all(|(_, r)| r.action == action) && disjoint).then_some(Keys {
        keys,
        action,
        exact,
    })
}

fn rule_keys(rule: &Rule) -> Option<Vec<Key>> {
    if rule.log || rule.icmp_type.is_some() {
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
    let Some(ports) = &rule.ports else {
        return Some(vec![(net, proto, 0, u16::MAX)]);
    };
    let ranges = ports.ranges();
    (ranges.len() <= MAX_RANGES).then(|| {
        ranges
            .iter()
            .map(|r| (net, proto, r.first(), r.last()))
            .collect()
    })
}

/// What a run's keys of one family allow: a hash map while every key is exact and all
/// networks have one prefix length.
#[derive(Clone, Copy)]
struct Shape {
    prefix: Option<u8>,
    exact: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            prefix: None,
            exact: true,
        }
    }
}

/// The shape of each family's keys in a run.
#[derive(Default, Clone, Copy)]
struct Shapes {
    v4: Shape,
    v6: Shape,
}

impl Shapes {
    /// Notes a key of `net`, `exact` if its rule's ports can be exact keys.
    fn admit(&mut self, net: &IpNet, exact: bool) {
        let shape = match net {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        };
        let len = *shape.prefix.get_or_insert(net.prefix_len());
        shape.exact &= exact && len == net.prefix_len();
    }

    fn of(&self, family: Family) -> Shape {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// The keys of a run, to find overlaps: per family and protocol, by network, the port ranges
/// (disjoint: only keys overlapping nothing are taken).
#[derive(Default)]
struct Taken {
    nets: HashMap<(bool, &'static str), Networks>,
}

#[derive(Default)]
struct Networks {
    /// By network (ordered by address, then prefix length): first port to last port.
    by_net: BTreeMap<IpNet, BTreeMap<u16, u16>>,
    /// The prefix lengths present, to find the networks containing one.
    lengths: BTreeSet<u8>,
}

impl Taken {
    /// Takes `key` unless it overlaps a taken one (or its check would look at too many).
    fn insert(&mut self, key: &Key) -> bool {
        let fits = !self.overlaps(key);
        if fits {
            self.add(key);
        }
        fits
    }

    /// Takes `key`, known to overlap no taken one.
    fn add(&mut self, key: &Key) {
        let &(net, proto, first, last) = key;
        let nets = self
            .nets
            .entry((matches!(net, IpNet::V4(_)), proto))
            .or_default();
        nets.lengths.insert(net.prefix_len());
        nets.by_net.entry(net).or_default().insert(first, last);
    }

    fn overlaps(&self, key: &Key) -> bool {
        let &(net, proto, first, last) = key;
        self.nets
            .get(&(matches!(net, IpNet::V4(_)), proto))
            .is_some_and(|nets| nets.overlaps(net, first, last))
    }
}

impl Networks {
    fn overlaps(&self, net: IpNet, first: u16, last: u16) -> bool {
        let ports_meet = |ports: &BTreeMap<u16, u16>| {
            ports
                .range(..=last)
                .next_back()
                .is_some_and(|(_, &end)| end >= first)
        };
        // The network itself and those containing it: one per prefix length present.
        for &len in self.lengths.range(..=net.prefix_len()) {
            let Ok(outer) = IpNet::new(net.addr(), len) else {
                continue;
            };
            if self.by_net.get(&outer.trunc()).is_some_and(ports_meet) {
                return true;
            }
        }
        // Those inside it: their keys sort after it, up to its last address.
        let Ok(end) = IpNet::new(net.broadcast(), net.max_prefix_len()) else {
            return true;
        };
        let inside = self
            .by_net
            .range((Bound::Excluded(net), Bound::Included(end)));
        for (scanned, (_, ports)) in inside.enumerate() {
            if scanned >= MAX_SCAN || ports_meet(ports) {
                return true;
            }
        }
        false
    }
}

/// A group of merged neighbours: each rule with its number in the policy.
pub(super) type Group<'a> = &'a [(usize, &'a Rule)];

/// A run being gathered: its groups with their keys.
#[derive(Default)]
pub(super) struct Run<'a> {
    groups: Vec<(Group<'a>, Vec<Key>)>,
    taken: Taken,
    shapes: Shapes,
    /// What every rule of the run does.
    action: Option<Verdict>,
}

impl<'a> Run<'a> {
    /// Whether a group with `keys` can join: it does what the run does, and overlaps no key of
    /// it.
    pub(super) fn admits(&self, keys: &Keys) -> bool {
        self.action.is_none_or(|a| a == keys.action)
            && !keys.keys.iter().any(|k| self.taken.overlaps(k))
    }

    pub(super) fn push(&mut self, group: Group<'a>, keys: Keys) {
        let Keys {
            keys,
            action,
            exact,
        } = keys;
        self.action = Some(action);
        // `admits` found no overlap, and `keys` found none among the group's own.
        for k in &keys {
            self.shapes.admit(&k.0, exact);
            self.taken.add(k);
        }
        self.groups.push((group, keys));
    }

    /// Forgets the run's keys (its groups are taken).
    fn clear(&mut self) -> (Shapes, Verdict) {
        self.taken = Taken::default();
        let action = self.action.take().unwrap_or(Verdict::Accept);
        (std::mem::take(&mut self.shapes), action)
    }

    /// The run's groups, leaving it empty, when it has too few to be a map.
    pub(super) fn take_short(&mut self) -> Option<Vec<Group<'a>>> {
        if self.groups.len() >= MIN_RUN {
            return None;
        }
        self.clear();
        Some(self.groups.drain(..).map(|(g, _)| g).collect())
    }

    /// The run as maps or sets (one per family) and the rules looking them up, leaving it
    /// empty: a VM's accepts are mark maps, anything else rule sets looked up by a rule with
    /// the run's verdict. `index` tells this run from the chain's others; `mark` and `counter`
    /// give a group's connection mark (asked for a VM's accepts only) and counter name.
    pub(super) fn take_maps(
        &mut self,
        owner: &Owner<'_>,
        index: usize,
        mark: impl Fn(Group<'_>) -> u32,
        counter: impl Fn(&RuleTag, Group<'_>) -> String,
        out: &mut Ruleset,
    ) -> Vec<RuleDef> {
        let (shapes, action) = self.clear();
        let marked = owner.vm.is_some() && action == Verdict::Accept;
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
                action,
            };
            let name = counter(&tag, group);
            let mark = if marked { mark(group) } else { 0 };
            if marked {
                out.live_marks.insert(mark);
            }
            for (net, proto, first, last) in keys {
                let entry = |ports| MarkMapEntry {
                    net,
                    proto,
                    ports,
                    mark,
                    counter: name.clone(),
                };
                let (family, shape) = match net {
                    IpNet::V4(_) => (&mut v4, shapes.v4),
                    IpNet::V6(_) => (&mut v6, shapes.v6),
                };
                if shape.exact && marked {
                    family.extend((first..=last).map(|port| entry((port, port))));
                } else {
                    family.push(entry((first, last)));
                }
            }
            out.element_counters.push((name, tag));
        }
        let mut rules = Vec::new();
        for (family, entries) in [(Family::V4, v4), (Family::V6, v6)] {
            if entries.is_empty() {
                continue;
            }
            let shape = shapes.of(family);
            let (kind, letter) = match (marked, shape.exact) {
                (true, true) => (SetKind::MarkMap(family), 'm'),
                (true, false) => (SetKind::RangeMap(family), 'r'),
                (false, _) => (SetKind::RuleSet(family), 's'),
            };
            let mut name = format!("{}_{letter}{index}_{}", owner.chain, family_suffix(family));
            if !matches!(kind, SetKind::MarkMap(_)) {
                // Filled over netlink before the structure names it, and never changed in
                // place: its name says what it holds, so a set the kernel has is the one wanted.
                name = format!("{name}_{:016x}", content_print(&entries));
            }
            out.sets.push(SetDef {
                name: name.clone(),
                kind,
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
            // An interval map holds the networks themselves: the address is looked up whole.
            let prefix = match shape.exact {
                true => shape.prefix.unwrap_or(full),
                false => full,
            };
            rules.push(match marked {
                true => RuleDef::new(
                    Vec::new(),
                    RuleVerdict::AcceptMarkedByMap(family, name, prefix),
                ),
                false => RuleDef::new(
                    vec![Match::EndpointInSet(family, name)],
                    super::rule_verdict(owner.vm.is_none(), action),
                ),
            });
        }
        rules
    }
}

/// A fingerprint of an interval map's or set's elements (64-bit FNV-1a, stable across
/// builds): two contents alike in it are taken for the same.
fn content_print(entries: &[MarkMapEntry]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for e in entries {
        eat(e.net.to_string().as_bytes());
        eat(e.proto.as_bytes());
        eat(&e.ports.0.to_be_bytes());
        eat(&e.ports.1.to_be_bytes());
        eat(&e.mark.to_be_bytes());
        eat(e.counter.as_bytes());
        eat(b"\0");
    }
    h
}
