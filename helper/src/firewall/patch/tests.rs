//! The plan, without a kernel: what changes in place, where new rules go, when a chain is
//! replaced whole and when the generation has to be loaded through `nft -f`.

use super::*;
use crate::firewall::compile::{compile_ruleset, Facts};
use crate::firewall::render::rule_lines;
use crate::test_support::policy;

/// A VM with `ports.len()` rules dropping ICMP of type `port % 256` to 10.0.0.k (neighbours
/// differ, so none merge; ICMP rules are never a map's or set's elements: kernel rules).
fn ruleset(ports: &[u16]) -> Ruleset {
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for (k, port) in ports.iter().enumerate() {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"drop\"\ndestination = \"10.0.0.{k}\"\nproto = \"icmp\"\nicmp_type = {}\n",
            port % 256
        ));
    }
    compile_vm_policy(&doc)
}

/// A VM with `ports.len()` accepting rules to 10.0.{k/256}.{k%256}, each to its one port: a
/// run that is a mark map.
fn mapped(ports: &[u16]) -> Ruleset {
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for (k, port) in ports.iter().enumerate() {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.{}.{}\"\nproto = \"tcp\"\nports = {port}\n",
            k / 256,
            k % 256
        ));
    }
    compile_vm_policy(&doc)
}

fn compile_vm_policy(doc: &str) -> Ruleset {
    let mut facts = Facts::default();
    facts.vm_uids.insert(
        palisade_dbus::policy::VmName::parse("work").unwrap_or_else(|e| panic!("{e}")),
        990,
    );
    compile_ruleset(&policy(doc), &facts)
}

/// `ports` rules, alternating so no two neighbours merge.
fn alternating(n: usize) -> Vec<u16> {
    (0..n).map(|i| 1000 + (i % 2) as u16).collect()
}

/// The record of `r` with made-up handles: chain c's rule k has handle 1000 * (c + 1) + k.
fn recorded(r: &Ruleset) -> KernelRecord {
    let mut record = KernelRecord::of(r);
    let listed: Vec<(String, u64)> = record
        .chains
        .iter()
        .enumerate()
        .flat_map(|(c, (name, rules))| {
            (0..rules.len()).map(move |k| (name.clone(), 1000 * (c as u64 + 1) + k as u64))
        })
        .collect();
    assert!(record.learn_handles(&listed));
    record
}

fn vm_chain(r: &Ruleset) -> usize {
    r.chains
        .iter()
        .position(|c| c.name == "vm_work")
        .unwrap_or_else(|| panic!("the VM's chain"))
}

fn only_chain(patch: &Patch) -> &ChainPatch {
    assert_eq!(patch.chains.len(), 1, "{patch:?}");
    &patch.chains[0]
}

fn runs(cp: &ChainPatch) -> &[Run] {
    match &cp.change {
        ChainChange::Edit(runs) => runs,
        ChainChange::Replace(_) => panic!("an edit, not a replacement: {cp:?}"),
    }
}

#[test]
fn nothing_is_planned_before_the_handles_are_known() {
    let r = ruleset(&alternating(4));
    assert_eq!(plan(&KernelRecord::of(&r), &r), None);
    assert_eq!(plan(&recorded(&r), &r), Some(Patch::default()));
}

#[test]
fn one_changed_rule_is_deleted_and_added_in_its_place() {
    let mut ports = alternating(40);
    let old = ruleset(&ports);
    let record = recorded(&old);
    ports[20] = 9000;
    let new = ruleset(&ports);
    let patch = plan(&record, &new).unwrap_or_else(|| panic!("a plan"));
    let cp = only_chain(&patch);
    let base = 1000 * (vm_chain(&old) as u64 + 1);
    // The VM's chain starts with its two connection-tracking rules.
    let first_rule = 2;
    let [run] = runs(cp) else {
        panic!("one run: {cp:?}")
    };
    assert_eq!(run.delete, [base + first_rule + 20]);
    assert_eq!(run.placement, Placement::After(base + first_rule + 19));
    assert_eq!(run.add.len(), 1);
    assert_eq!(
        (patch.new_counters.len(), patch.gone_counters.len()),
        (1, 1)
    );
    // A drop marks no connection.
    assert_eq!((patch.marks_added.len(), patch.marks_removed.len()), (0, 0));

    // The record afterwards: the new rule's handle where the old one was, the rest kept.
    let after = record
        .patched(&patch, &[77])
        .unwrap_or_else(|| panic!("a record"));
    let handles = after.handles.as_ref().unwrap_or_else(|| panic!("handles"));
    let chain = &handles[vm_chain(&new)];
    assert_eq!(chain[(first_rule + 20) as usize], 77);
    assert_eq!(chain[(first_rule + 19) as usize], base + first_rule + 19);
    assert_eq!(chain[(first_rule + 21) as usize], base + first_rule + 21);
    // What the record says now is what the new ruleset is.
    let mut fresh = KernelRecord::of(&new);
    fresh.handles = after.handles.clone();
    assert_eq!(after, fresh);
    assert_eq!(plan(&after, &new), Some(Patch::default()));
    assert_eq!(
        record.patched(&patch, &[77, 78]),
        None,
        "one handle too many"
    );
}

#[test]
fn changes_far_apart_are_separate_runs() {
    let mut ports = alternating(100);
    let old = ruleset(&ports);
    let record = recorded(&old);
    ports[3] = 9000;
    ports[90] = 9001;
    let patch = plan(&record, &ruleset(&ports)).unwrap_or_else(|| panic!("a plan"));
    let edits = runs(only_chain(&patch));
    assert_eq!(edits.len(), 2, "{edits:?}");
    assert!(edits
        .iter()
        .all(|r| r.delete.len() == 1 && r.add.len() == 1));
}

#[test]
fn rules_added_at_either_end_go_there() {
    let old = ruleset(&alternating(10));
    let record = recorded(&old);
    let base = 1000 * (vm_chain(&old) as u64 + 1);
    let mut longer = alternating(10);
    longer.push(7000);
    let patch = plan(&record, &ruleset(&longer)).unwrap_or_else(|| panic!("a plan"));
    let [run] = runs(only_chain(&patch)) else {
        panic!("one run")
    };
    assert!(run.delete.is_empty());
    // After the last accepting rule, before the default rules.
    assert_eq!(run.placement, Placement::After(base + 2 + 9));
    assert_eq!(run.add.len(), 1);
}

#[test]
fn a_chain_mostly_changed_is_replaced_whole() {
    let old = ruleset(&alternating(40));
    let record = recorded(&old);
    let other: Vec<u16> = (0..40).map(|i| 3000 + (i % 2) as u16).collect();
    let new = ruleset(&other);
    let patch = plan(&record, &new).unwrap_or_else(|| panic!("a plan"));
    let cp = only_chain(&patch);
    let ChainChange::Replace(rules) = &cp.change else {
        panic!("a replacement: {cp:?}")
    };
    let lines: usize = new.chains[vm_chain(&new)]
        .rules
        .iter()
        .map(|r| rule_lines(r).len())
        .sum();
    assert_eq!(rules.len(), lines);
    let added: Vec<u64> = (0..lines as u64).map(|h| 50_000 + h).collect();
    let after = record
        .patched(&patch, &added)
        .unwrap_or_else(|| panic!("a record"));
    assert_eq!(
        after.handles.as_ref().map(|h| h[vm_chain(&new)].clone()),
        Some(added)
    );
}

#[test]
fn other_structure_or_unencodable_rules_go_through_nft() {
    let old = ruleset(&alternating(4));
    let record = recorded(&old);
    // A second VM: a new chain.
    let mut doc = String::from("[[vm]]\nname = \"work\"\n[[vm]]\nname = \"other\"\n");
    doc.push_str("[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.1\"\n");
    assert_eq!(
        plan(&record, &compile_ruleset(&policy(&doc), &Facts::default())),
        None
    );
    // A rule with a list of ports needs an anonymous set.
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for (k, port) in alternating(4).iter().enumerate() {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.{k}\"\nproto = \"tcp\"\nports = {port}\n"
        ));
    }
    doc.push_str("[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.9\"\nproto = \"tcp\"\nports = [25, 465]\n");
    let mut facts = Facts::default();
    facts.vm_uids.insert(
        palisade_dbus::policy::VmName::parse("work").unwrap_or_else(|e| panic!("{e}")),
        990,
    );
    assert_eq!(plan(&record, &compile_ruleset(&policy(&doc), &facts)), None);
}

#[test]
fn handles_are_learned_only_for_exactly_the_recorded_rules() {
    let r = ruleset(&alternating(3));
    let mut record = KernelRecord::of(&r);
    let mut listed: Vec<(String, u64)> = record
        .chains
        .iter()
        .flat_map(|(name, rules)| rules.iter().map(move |_| (name.clone(), 1)))
        .collect();
    listed.push(("vm_work".into(), 99));
    assert!(!record.learn_handles(&listed), "one rule too many");
    listed.pop();
    listed.push(("someone_elses".into(), 99));
    assert!(!record.learn_handles(&listed), "a chain we did not make");
    listed.pop();
    assert!(record.learn_handles(&listed));
}

/// A host rule naming an imported list spread over several sets (a verdict map of slices,
/// which `encode` does not write) beside `port`'s rule, with the list at version `hash`.
fn with_list(port: u16, hash: &str) -> Ruleset {
    use crate::firewall::compile::ImportedFacts;
    use crate::firewall::data::sliced_sets;
    use palisade_dbus::policy::{Family, ShortName};
    let doc = format!(
        "[[blocklist]]\nname = \"big\"\nimported = true\n\n[[host_rule]]\naction = \"drop\"\n\
         blocklist = \"big\"\n\n[[host_rule]]\naction = \"drop\"\ndestination = \"192.0.2.1\"\n\
         proto = \"tcp\"\nports = {port}\n"
    );
    let cuts: Vec<std::net::IpAddr> = ["10.0.0.0", "20.0.0.0"]
        .iter()
        .map(|c| c.parse().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut facts = Facts::default();
    facts.imported.insert(
        ShortName::parse("big").unwrap_or_else(|e| panic!("{e}")),
        ImportedFacts {
            hash: hash.into(),
            ranges: 3,
            sets_v4: sliced_sets("bl_big_v4_1", Family::V4, &cuts),
            sets_v6: sliced_sets("bl_big_v6_1", Family::V6, &[]),
            ..ImportedFacts::default()
        },
    );
    compile_ruleset(&policy(&doc), &facts)
}

#[test]
fn a_policy_naming_a_list_in_several_sets_is_changed_in_place() {
    let old = with_list(7000, "aa");
    let record = recorded(&old);
    // An unrelated rule changed in a short chain: more than a quarter of it, but the list's
    // verdict map cannot be written, so only the changed rule is.
    let patch = plan(&record, &with_list(7001, "aa")).unwrap_or_else(|| panic!("a plan"));
    let cp = only_chain(&patch);
    assert_eq!(runs(cp).len(), 1, "{cp:?}");
    // A new version of the list in the same sets changes nothing in the structure.
    assert_eq!(
        plan(&record, &with_list(7000, "bb")),
        Some(Patch::default())
    );
}

#[test]
fn a_rule_has_as_many_fingerprints_as_lines_and_kernel_rules() {
    use crate::firewall::compile::tests::{facts, LAB, WORK};
    use crate::firewall::encode::kernel_rules;
    for doc in [WORK, LAB] {
        let r = compile_ruleset(&policy(doc), &facts());
        let mut logged = 0;
        for chain in &r.chains {
            let (prints, lines) = fingerprints(chain);
            assert_eq!(lines.len(), chain.rules.len());
            assert_eq!(prints.len(), lines.iter().sum::<usize>());
            for (rule, &count) in chain.rules.iter().zip(&lines) {
                assert_eq!(count, rule_lines(rule).len(), "{rule:?}");
                if let Some(specs) = kernel_rules(rule) {
                    assert_eq!(count, specs.len(), "{rule:?}");
                }
                logged += usize::from(count > 1);
            }
        }
        assert!(
            logged > 0,
            "a logged rule (two lines) is among those checked"
        );
    }
}

#[test]
fn fingerprints_differ_exactly_where_rules_do() {
    let a = ruleset(&alternating(6));
    let b = ruleset(&[1000, 1001, 1000, 9999, 1000, 1001]);
    let c = vm_chain(&a);
    let (pa, lines) = fingerprints(&a.chains[c]);
    let (pb, _) = fingerprints(&b.chains[c]);
    assert_eq!(pa.len(), pb.len());
    // Per rule: whether any of its lines' fingerprints differ, and whether it differs.
    let mut line = 0;
    let mut differing = Vec::new();
    let mut changed = Vec::new();
    for (k, count) in lines.iter().enumerate() {
        if pa[line..line + count] != pb[line..line + count] {
            differing.push(k);
        }
        if a.chains[c].rules[k] != b.chains[c].rules[k] {
            changed.push(k);
        }
        line += count;
    }
    assert_eq!(differing, changed);
    assert!(!changed.is_empty());
}

#[test]
fn a_changed_rule_of_a_mark_map_is_an_element_changed() {
    let mut ports = alternating(10_000);
    let old = mapped(&ports);
    let record = recorded(&old);
    ports[4321] = 9000;
    let new = mapped(&ports);
    let patch = plan(&record, &new).unwrap_or_else(|| panic!("a plan"));
    assert!(
        patch.chains.is_empty(),
        "no rule changes: {:?}",
        patch.chains
    );
    assert!(patch.new_counters.is_empty() && patch.gone_counters.is_empty());
    assert_eq!(patch.maps.len(), 1);
    let mp = &patch.maps[0];
    assert_eq!(mp.map, "vm_work_m0_v4");
    let addr: std::net::IpAddr = "10.0.16.225".parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        mp.removed,
        [Endpoint {
            addr,
            proto: 6,
            port: 1001
        }]
    );
    assert_eq!(mp.added.len(), 1);
    assert_eq!((mp.added[0].key.addr, mp.added[0].key.port), (addr, 9000));
    assert!(mp.added[0].comment.starts_with("c_vm_work_r4322_"));
    assert_eq!((patch.marks_added.len(), patch.marks_removed.len()), (1, 1));
    assert_eq!(patch.marks_added[0], mp.added[0].mark);
    // What the record says after the patch is what a record of the new ruleset says.
    let after = record
        .patched(&patch, &[])
        .unwrap_or_else(|| panic!("patched"));
    assert_eq!(plan(&after, &new), Some(Patch::default()));
    assert_eq!(after.maps, recorded(&new).maps);
}

#[test]
fn every_rule_of_a_mark_map_changed_is_every_element_replaced_and_no_rule() {
    let old = mapped(&alternating(10_000));
    let record = recorded(&old);
    let new = mapped(
        &vec![3000; 10_000]
            .iter()
            .enumerate()
            .map(|(i, p)| p + (i % 2) as u16)
            .collect::<Vec<_>>(),
    );
    let patch = plan(&record, &new).unwrap_or_else(|| panic!("a plan"));
    assert!(patch.chains.is_empty());
    assert_eq!(patch.maps[0].removed.len(), 10_000);
    assert_eq!(patch.maps[0].added.len(), 10_000);
    // A rule's comment is not in the kernel's elements: changing it changes nothing.
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for k in 0..20 {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.{k}\"\nproto = \"udp\"\nports = {}\ncomment = \"rule {k}\"\n",
            100 + k
        ));
    }
    let commented = compile_vm_policy(&doc);
    let renamed = compile_vm_policy(&doc.replace("comment = \"rule 7\"", "comment = \"seven\""));
    assert_eq!(
        plan(&recorded(&commented), &renamed),
        Some(Patch::default())
    );
    // A run split in two is another structure: loaded whole.
    let split = compile_vm_policy(&doc.replace(
        "destination = \"10.0.0.10\"\nproto = \"udp\"",
        "destination = \"10.0.0.0/24\"\nproto = \"udp\"",
    ));
    assert_eq!(plan(&recorded(&commented), &split), None);
}
