//! Rules that can never match because an earlier rule already matches all they do.
//!
//! fwbuilder refuses to compile such policies; Palisade warns, naming both rules, because the
//! usual cause is a broad rule placed above a narrow one by mistake.
//!
//! Comparing every pair would be quadratic (10,000 rules = 50 million checks). Instead each
//! earlier rule is indexed by its destination, and a later rule looks up only the destinations
//! that could cover its own: `any`, each shorter prefix of its network, each parent domain of its
//! name. That keeps validation linear in practice, so it never dominates an apply.

use super::{Destination, Rule};
use ipnet::IpNet;
use std::collections::HashMap;

/// Pairs `(later, earlier)` of 1-based rule numbers where `earlier` covers `later`.
pub(super) fn shadowed(rules: &[(usize, Rule)]) -> Vec<(usize, usize)> {
    let mut by_destination: HashMap<&Destination, Vec<usize>> = HashMap::new();
    let mut out = Vec::new();
    for (j, (later_no, later)) in rules.iter().enumerate() {
        // A disabled rule neither shadows nor is worth a warning.
        if !later.enabled {
            continue;
        }
        let earliest = covering_destinations(&later.destination)
            .iter()
            .filter_map(|d| by_destination.get(d))
            .flatten()
            .copied()
            .filter(|&i| rules[i].1.covers(later))
            .min();
        if let Some(i) = earliest {
            out.push((*later_no, rules[i].0));
        }
        by_destination
            .entry(&later.destination)
            .or_default()
            .push(j);
    }
    out
}

/// Every destination that could cover `d`, `d` itself included.
fn covering_destinations(d: &Destination) -> Vec<Destination> {
    let mut out = vec![Destination::Any, d.clone()];
    match d {
        Destination::Net(n) => {
            out.extend((0..n.prefix_len()).filter_map(|len| {
                IpNet::new(n.addr(), len)
                    .ok()
                    .map(|w| Destination::Net(w.trunc()))
            }));
        }
        Destination::Host(h) | Destination::Wildcard(h) => {
            // `*.x` does not cover `x` itself, so only the parents' wildcards are candidates.
            out.extend(h.parents().map(Destination::Wildcard));
        }
        Destination::Any | Destination::Blocklist(_) | Destination::Dns => {}
    }
    out
}
