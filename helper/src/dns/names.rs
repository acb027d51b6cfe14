//! Which names matter to which VM: built from the live policy and its compiled ruleset at every
//! generation, read by every question. Pure: no I/O, so its tests need no root.
//!
//! A VM rule naming a host (`mail.example.com`) matches exactly that name; a wildcard
//! (`*.example.com`) matches every name below the domain at any depth, never the domain itself
//! and never a name that merely ends in the same letters (`evilexample.com`). A rule that
//! drops or rejects an imported list with domain names makes those names, and every name below
//! them, answer NXDOMAIN. Only sets the ruleset declares are named, so an admission never
//! targets a set the kernel does not have.

use crate::firewall::compile::answers_set;
use crate::firewall::ruleset::{Ruleset, SetKind};
use palisade_dbus::policy::{Destination, Family, Policy, ShortName, Verdict, VmName};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

/// A host name or a wildcard from a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Every name below this domain.
    Below(String),
}

impl Pattern {
    /// Whether `name` (lower case, no final dot) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(n) => name == n,
            Pattern::Below(domain) => is_below(name, domain),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Below(d) => write!(f, "*.{d}"),
        }
    }
}

/// Whether `name` lies strictly below `domain`, label-wise.
fn is_below(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

/// The names of one list, lower case.
#[derive(Debug)]
pub struct DomainSet {
    /// The list's name.
    pub list: ShortName,
    names: HashSet<Box<str>>,
}

impl DomainSet {
    /// The set of `names`.
    pub fn new(list: ShortName, names: Vec<String>) -> Self {
        Self {
            list,
            names: names.into_iter().map(String::into_boxed_str).collect(),
        }
    }

    /// Whether `name` or a domain above it is listed.
    pub fn covers(&self, name: &str) -> bool {
        let mut rest = name;
        loop {
            if self.names.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => rest = parent,
                _ => return false,
            }
        }
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// One host name or wildcard of a VM, the sets its answers go into and the rules that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRule {
    /// What it matches.
    pub pattern: Pattern,
    /// The answers sets, by family (only the families its rules match).
    pub sets: Vec<(Family, String)>,
    /// The numbers of the VM's rules naming it (1-based, as `palisadectl` shows them).
    pub rules: Vec<usize>,
}

/// What the forwarder knows of one VM.
#[derive(Debug, Default)]
pub struct VmNames {
    /// Only names the rules mention resolve.
    pub strict: bool,
    /// Its names, in rule order.
    pub names: Vec<NameRule>,
    /// Domain lists its drop/reject rules name.
    pub blocked: Vec<Arc<DomainSet>>,
}

impl VmNames {
    /// The name rules `name` matches.
    pub fn matching(&self, name: &str) -> Vec<&NameRule> {
        self.names
            .iter()
            .filter(|r| r.pattern.matches(name))
            .collect()
    }

    /// The list that blocks `name`, if one does.
    pub fn blocked_by(&self, name: &str) -> Option<&ShortName> {
        self.blocked
            .iter()
            .find(|d| d.covers(name))
            .map(|d| &d.list)
    }
}

/// Every VM's names for one generation.
pub type NameTable = BTreeMap<VmName, VmNames>;

/// The table for `policy` as compiled into `ruleset` at `now`. `domains` gives the names of an
/// imported list (None when it has none).
pub fn name_table(
    policy: &Policy,
    ruleset: &Ruleset,
    now: SystemTime,
    domains: &mut dyn FnMut(&ShortName) -> Option<Arc<DomainSet>>,
) -> NameTable {
    let declared: HashSet<&str> = ruleset
        .sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::Answers(_)))
        .map(|s| s.name.as_str())
        .collect();
    let mut table = NameTable::new();
    for vm in policy.vms.iter().filter(|v| v.dns) {
        let mut names: Vec<NameRule> = Vec::new();
        let mut blocked: Vec<Arc<DomainSet>> = Vec::new();
        for (i, rule) in vm.rules.iter().enumerate() {
            if !rule.is_active(now) {
                continue;
            }
            let pattern = match &rule.destination {
                Destination::Host(h) => Pattern::Exact(h.as_str().to_ascii_lowercase()),
                Destination::Wildcard(d) => Pattern::Below(d.as_str().to_ascii_lowercase()),
                Destination::Blocklist(list) if rule.action != Verdict::Accept => {
                    if let Some(set) = domains(list) {
                        if !blocked.iter().any(|b| b.list == set.list) {
                            blocked.push(set);
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(existing) = names.iter_mut().find(|n| n.pattern == pattern) {
                existing.rules.push(i + 1);
                continue;
            }
            let sets = [Family::V4, Family::V6]
                .into_iter()
                .map(|f| (f, answers_set(&vm.name.chain(), &rule.destination, f)))
                .filter(|(_, name)| declared.contains(name.as_str()))
                .collect();
            names.push(NameRule {
                pattern,
                sets,
                rules: vec![i + 1],
            });
        }
        table.insert(
            vm.name.clone(),
            VmNames {
                strict: vm.strict_dns,
                names,
                blocked,
            },
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::compile::{compile_ruleset, Facts};
    use crate::test_support::policy;

    #[test]
    fn a_wildcard_matches_every_depth_below_and_nothing_else() {
        let p = Pattern::Below("corp.test".into());
        for yes in ["a.corp.test", "b.x.corp.test"] {
            assert!(p.matches(yes), "{yes}");
        }
        for no in [
            "corp.test",
            "corp.test.evil.test",
            "evilcorp.test",
            "test",
            "",
        ] {
            assert!(!p.matches(no), "{no}");
        }
        assert!(Pattern::Exact("allowed.test".into()).matches("allowed.test"));
        assert!(!Pattern::Exact("allowed.test".into()).matches("www.allowed.test"));
    }

    #[test]
    fn a_domain_list_covers_its_names_and_everything_below() {
        let list = ShortName::parse("ads").unwrap_or_else(|e| panic!("{e}"));
        let d = DomainSet::new(list, vec!["ads.test".into(), "tracker.example".into()]);
        assert!(d.covers("ads.test"));
        assert!(d.covers("x.y.ads.test"));
        assert!(!d.covers("badads.test"));
        assert!(!d.covers("test"));
    }

    #[test]
    fn the_table_names_only_declared_sets_and_joins_rules_of_one_name() {
        let p = policy(
            r#"
[[vm]]
name = "work"
dns = true
strict_dns = true
[[vm.rule]]
action = "accept"
destination = "allowed.test"
proto = "tcp"
[[vm.rule]]
action = "accept"
destination = "*.corp.test"
proto = "icmp"
[[vm.rule]]
action = "accept"
destination = "allowed.test"
proto = "udp"
[[vm.rule]]
action = "accept"
destination = "old.test"
expires = 2020-01-01T00:00:00Z

[[vm]]
name = "quiet"
[[vm.rule]]
action = "accept"
destination = "allowed.test"
"#,
        );
        let now = SystemTime::now();
        let facts = Facts {
            now: Some(now),
            ..Facts::default()
        };
        let ruleset = compile_ruleset(&p, &facts);
        let table = name_table(&p, &ruleset, now, &mut |_| None);
        let work = VmName::parse("work").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(table.len(), 1, "only VMs resolving through the forwarder");
        let names = &table[&work];
        assert!(names.strict);
        assert_eq!(names.names.len(), 2, "{names:?}");
        assert_eq!(names.names[0].rules, vec![1, 3]);
        assert_eq!(names.names[0].sets.len(), 2);
        // ICMP is IPv4 only: the wildcard has only the IPv4 set.
        assert_eq!(
            names.names[1]
                .sets
                .iter()
                .map(|(f, _)| *f)
                .collect::<Vec<_>>(),
            vec![Family::V4]
        );
        assert_eq!(names.matching("b.x.corp.test").len(), 1);
        assert!(
            names.matching("old.test").is_empty(),
            "expired rules name nothing"
        );
    }
}
