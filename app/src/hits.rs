//! How often each rule of the live policy decided a packet, for the policy view's rule rows:
//! the helper's counters (`Log.Counters`) found by the rule they belong to, and the words a row
//! shows ("12 hits, last 3 minutes ago"). Rules the compiler merged into one kernel rule share
//! one counter, which each of them shows.

use crate::format;
use crate::i18n::{gettext, i18n_f, ni18n_f};
use palisade_dbus::types::{LogOwner, LoggedRuleKind, RuleCounter};

/// The counters of one read, looked up by rule.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hits {
    counters: Vec<RuleCounter>,
}

impl Hits {
    /// The counters the helper gave.
    pub fn new(counters: Vec<RuleCounter>) -> Self {
        Self { counters }
    }

    /// The numbered rule at 1-based `position` of `owner`'s list (VM `vm`'s, or the host's).
    fn numbered(&self, owner: LogOwner, vm: &str, position: usize) -> Option<&RuleCounter> {
        let position = u32::try_from(position).ok()?;
        self.counters.iter().find(|c| {
            let r = &c.rule;
            r.owner == owner
                && r.kind == LoggedRuleKind::Numbered
                && (owner != LogOwner::Vm || r.vm == vm)
                && (r.first_rule..=r.last_rule).contains(&position)
        })
    }

    /// VM `vm`'s rule at 1-based `position`.
    pub fn vm_rule(&self, vm: &str, position: usize) -> Option<&RuleCounter> {
        self.numbered(LogOwner::Vm, vm, position)
    }

    /// The host-wide rule at 1-based `position`.
    pub fn host_rule(&self, position: usize) -> Option<&RuleCounter> {
        self.numbered(LogOwner::Host, "", position)
    }

    /// VM `vm`'s default action.
    pub fn vm_default(&self, vm: &str) -> Option<&RuleCounter> {
        self.counters.iter().find(|c| {
            c.rule.owner == LogOwner::Vm
                && c.rule.kind == LoggedRuleKind::Default
                && c.rule.vm == vm
        })
    }
}

/// A rule's hits at Unix second `now`: "no hits yet", "12 hits", "12 hits, last 3 minutes ago".
pub fn text(counter: &RuleCounter, now: u64) -> String {
    if counter.packets == 0 {
        // Translators: a firewall rule has decided no packet yet.
        return gettext("no hits yet");
    }
    let hits = ni18n_f(
        "{count} hit",
        "{count} hits",
        format::saturated(counter.packets),
        &[("count", &counter.packets.to_string())],
    );
    if counter.last_hit == 0 {
        // Counted before the helper started: when is not known.
        return hits;
    }
    // Translators: {hits} is "12 hits", {ago} "3 minutes ago".
    i18n_f(
        "{hits}, last {ago}",
        &[
            ("hits", &hits),
            ("ago", &format::ago(counter.last_hit, now)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::types::{LoggedRule, PacketVerdict};

    fn counter(
        owner: LogOwner,
        vm: &str,
        kind: LoggedRuleKind,
        rules: (u32, u32),
        packets: u64,
    ) -> RuleCounter {
        RuleCounter {
            rule: LoggedRule {
                owner,
                vm: vm.into(),
                kind,
                first_rule: rules.0,
                last_rule: rules.1,
                verdict: PacketVerdict::Drop,
            },
            packets,
            bytes: packets * 60,
            last_hit: 0,
        }
    }

    #[test]
    fn finds_each_rows_counter_merged_rules_sharing_one() {
        let hits = Hits::new(vec![
            counter(LogOwner::Vm, "work", LoggedRuleKind::Numbered, (1, 1), 5),
            counter(LogOwner::Vm, "work", LoggedRuleKind::Numbered, (2, 4), 7),
            counter(LogOwner::Vm, "work", LoggedRuleKind::Default, (0, 0), 9),
            counter(
                LogOwner::Vm,
                "banking",
                LoggedRuleKind::Numbered,
                (1, 1),
                11,
            ),
            counter(LogOwner::Host, "", LoggedRuleKind::Numbered, (1, 2), 13),
            counter(LogOwner::Console, "", LoggedRuleKind::Refused, (0, 0), 15),
        ]);
        let packets = |c: Option<&RuleCounter>| c.map(|c| c.packets);
        assert_eq!(packets(hits.vm_rule("work", 1)), Some(5));
        assert_eq!(packets(hits.vm_rule("work", 3)), Some(7));
        assert_eq!(packets(hits.vm_rule("work", 4)), Some(7));
        assert_eq!(packets(hits.vm_rule("work", 5)), None);
        assert_eq!(packets(hits.vm_rule("banking", 1)), Some(11));
        assert_eq!(packets(hits.vm_default("work")), Some(9));
        assert_eq!(packets(hits.vm_default("banking")), None);
        assert_eq!(packets(hits.host_rule(2)), Some(13));
        assert_eq!(packets(hits.host_rule(3)), None);
    }

    #[test]
    fn says_how_many_and_when() {
        let mut c = counter(LogOwner::Vm, "work", LoggedRuleKind::Numbered, (2, 2), 0);
        assert_eq!(text(&c, 1_000), "no hits yet");
        c.packets = 1;
        assert_eq!(text(&c, 1_000), "1 hit");
        c.packets = 12;
        c.last_hit = 1_000 - 180;
        assert_eq!(text(&c, 1_000), "12 hits, last 3 minutes ago");
    }
}
