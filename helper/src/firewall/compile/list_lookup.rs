//! The rules that look an imported list up, cheap for the addresses it does not hold.
//!
//! A big list sits in slices of interval sets behind a verdict map on the address (see
//! `firewall/data`). A search of an interval set costs about a microsecond, and every packet of
//! every connection paid it, although nearly all go to addresses the list does not hold, the
//! same ones again and again (measured over loopback: +16 % per TCP connection). So each family
//! of a list has an *unlisted* set, a hash set of the addresses just found in none of its sets,
//! and every rule naming the list tests it first and skips the list's sets for them.
//!
//! Invariants:
//! - An address enters the unlisted set only from a rule that found it in no set of the list's
//!   current version: not in the slice the address falls in, nor in the overlay's added set;
//!   or in the removed set and not the added one. What the rule's own ports and protocols say
//!   plays no part, so one set serves every rule naming the list.
//! - The set belongs to one group of slices (`<stem>_u`): a version loaded into new slices comes
//!   with a new, empty set in the structure transaction that swaps the rules over; a version
//!   applied as an overlay empties it in the overlay's own transaction, and once more right
//!   after it (`data`): a packet judged by the old version while that transaction commits may
//!   add its address after the first. Its elements expire after [`UNLISTED_SECONDS`] besides.
//! - A full set costs speed only: the address is looked up in the list's sets as before.
//! - A host rule that accepts (returns from the host chain) is written in place, slice by slice
//!   behind a test of the slice's addresses: a `return` in a chain a verdict map jumped to
//!   would leave that chain only, and the host's later rules would still judge the packet.

use super::super::ruleset::*;
use super::{expand, family_suffix, unlisted_set, ListOverlay, ListShard};
use palisade_dbus::policy::Family;

/// The kernel sets of one family of an imported list.
pub(super) struct ListSets<'a> {
    pub family: Family,
    pub slices: &'a [ListShard],
    pub overlay: Option<&'a ListOverlay>,
}

impl ListSets<'_> {
    /// The set of addresses just found in none of these sets.
    fn unlisted(&self) -> Option<String> {
        self.slices.first().map(|s| unlisted_set(&s.set))
    }
}

/// The rules of `template` (a rule naming the list, with its counter, log, mark and verdict)
/// for one family of the list, each alternative of `transports` in turn. Chains a verdict map
/// jumps to are added to `out`, named from `stem`.
pub(super) fn list_rules(
    stem: &str,
    template: &RuleDef,
    sets: &ListSets<'_>,
    transports: &[Vec<Match>],
    out: &mut Ruleset,
) -> Vec<RuleDef> {
    let Some(unlisted) = sets.unlisted() else {
        return Vec::new();
    };
    let f = sets.family;
    let gate = Match::DaddrNotInSet(f, unlisted.clone());
    let mut rules = Vec::new();
    if let Some(o) = sets.overlay {
        let added = vec![gate.clone(), Match::DaddrInSet(f, o.added.clone())];
        rules.extend(expand(template, &[added], transports));
    }
    let in_place = matches!(template.verdict, RuleVerdict::Return) || sets.slices.len() == 1;
    if in_place {
        for shard in sets.slices {
            let mut guard = Vec::new();
            if sets.slices.len() > 1 {
                guard.push(Match::DaddrWithin(shard.first, shard.last));
            }
            guard.push(gate.clone());
            for mut rule in slice_rules(template, sets, shard, &unlisted, transports) {
                rule.matches = guard.iter().cloned().chain(rule.matches).collect();
                rules.push(rule);
            }
        }
        return rules;
    }
    let mut jumps = Vec::new();
    for (k, shard) in sets.slices.iter().enumerate() {
        let chain = format!("{stem}_{}_s{k}", family_suffix(f));
        let body = slice_rules(template, sets, shard, &unlisted, transports);
        out.chains.push(ChainDef::new(chain.clone(), None, body));
        jumps.push((shard.first, shard.last, chain));
    }
    rules.push(RuleDef::new(vec![gate], RuleVerdict::DaddrMap(jumps)));
    rules
}

/// The rules for an address within `shard`'s addresses: the rule itself when the slice holds
/// the address (and the overlay has not removed it), then the address remembered as unlisted
/// when no set of the list's current version holds it.
fn slice_rules(
    template: &RuleDef,
    sets: &ListSets<'_>,
    shard: &ListShard,
    unlisted: &str,
    transports: &[Vec<Match>],
) -> Vec<RuleDef> {
    let f = sets.family;
    let remember = |matches| RuleDef::new(matches, RuleVerdict::RememberDaddr(f, unlisted.into()));
    let mut found = vec![Match::DaddrInSet(f, shard.set.clone())];
    let mut absent = vec![Match::DaddrNotInSet(f, shard.set.clone())];
    let mut rules = Vec::new();
    match sets.overlay {
        None => {
            rules.extend(expand(template, &[found], transports));
            rules.push(remember(absent));
        }
        Some(o) => {
            found.push(Match::DaddrNotInSet(f, o.removed.clone()));
            absent.push(Match::DaddrNotInSet(f, o.added.clone()));
            rules.extend(expand(template, &[found], transports));
            rules.push(remember(absent));
            rules.push(remember(vec![
                Match::DaddrInSet(f, o.removed.clone()),
                Match::DaddrNotInSet(f, o.added.clone()),
            ]));
        }
    }
    rules
}
