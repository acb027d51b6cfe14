//! Rules that can never match because an earlier rule already matches all they do.
//!
//! fwbuilder refuses to compile such policies; Palisade warns, naming both rules, because the
//! usual cause is a broad rule placed above a narrow one by mistake.
//!
//! Comparing every pair would be quadratic (10,000 rules = 50 million checks). Instead each
//! earlier rule is indexed by its destination, and a later rule looks up only the destinations
//! that could cover its own: `any`, itself, its network's shorter prefixes of the lengths earlier
//! rules use (a policy of single addresses looks up one length, not 32), each parent domain of
//! its name. That keeps validation linear in practice, so it never dominates an apply.

use super::{Destination, Rule};
use ipnet::IpNet;
use std::collections::HashMap;

/// Pairs `(later, earlier)` of 1-based rule numbers where `earlier` covers `later`.
pub(super) fn shadowed(rules: &[(usize, Rule)]) -> Vec<(usize, usize)> {
    let mut by_destination: HashMap<&Destination, Vec<usize>> = HashMap::new();
    let mut lengths = PrefixLengths::default();
    let mut out = Vec::new();
    for (j, (later_no, later)) in rules.iter().enumerate() {
        // A disabled rule neither shadows nor is worth a warning.
        if !later.enabled {
            continue;
        }
        let wider = wider_destinations(&later.destination, &lengths);
        let itself = (later.destination != Destination::Any).then_some(&later.destination);
        let earliest = std::iter::once(&Destination::Any)
            .chain(itself)
            .chain(&wider)
            .filter_map(|d| by_destination.get(d))
            .flatten()
            .copied()
            .filter(|&i| rules[i].1.covers(later))
            .min();
        if let Some(i) = earliest {
            out.push((*later_no, rules[i].0));
        }
        if let Destination::Net(n) = &later.destination {
            lengths.insert(n);
        }
        by_destination
            .entry(&later.destination)
            .or_default()
            .push(j);
    }
    out
}

/// The prefix lengths of the networks among the rules indexed so far, per family (bit `n`:
/// a /n network). A /128 is never shorter than another network, so it needs no bit.
#[derive(Default)]
struct PrefixLengths {
    v4: u128,
    v6: u128,
}

impl PrefixLengths {
    fn bits(&self, n: &IpNet) -> u128 {
        match n {
            IpNet::V4(_) => self.v4,
            IpNet::V6(_) => self.v6,
        }
    }

    fn insert(&mut self, n: &IpNet) {
        let bit = 1u128.checked_shl(u32::from(n.prefix_len())).unwrap_or(0);
        match n {
            IpNet::V4(_) => self.v4 |= bit,
            IpNet::V6(_) => self.v6 |= bit,
        }
    }
}

/// The destinations other than `any` and `d` itself that could cover `d`: the networks of its
/// shorter prefixes whose lengths earlier rules use, and the wildcards of its parent domains.
fn wider_destinations(d: &Destination, lengths: &PrefixLengths) -> Vec<Destination> {
    match d {
        Destination::Net(n) => {
            let bits = lengths.bits(n);
            (0..n.prefix_len())
                .filter(|&len| bits & (1u128 << len) != 0)
                .filter_map(|len| IpNet::new(n.addr(), len).ok())
                .map(|w| Destination::Net(w.trunc()))
                .collect()
        }
        // `*.x` does not cover `x` itself, so only the parents' wildcards are candidates.
        Destination::Host(h) | Destination::Wildcard(h) => {
            h.parents().map(Destination::Wildcard).collect()
        }
        Destination::Any | Destination::Blocklist(_) | Destination::Dns => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
