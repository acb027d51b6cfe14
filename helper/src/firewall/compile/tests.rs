//! Compiler tests: golden files of the generated ruleset (reviewed like code), plus a check that
//! the kernel's nft accepts both renderings of every golden policy.
//!
//! Set `PALISADE_BLESS=1` to rewrite the golden files after an intended change, then review the
//! diff in git like any other code change.

use super::*;
use crate::firewall::{
    data::sliced_sets,
    kernel::Existing,
    render::{render_batch, render_ruleset},
};
use crate::test_support::policy;
use palisade_dbus::policy::AccountName;
use std::time::Duration;

pub(crate) fn facts() -> Facts {
    let work = VmName::parse("work").unwrap_or_else(|e| panic!("{e}"));
    let bank = VmName::parse("banking").unwrap_or_else(|e| panic!("{e}"));
    let mail = HostName::parse("mail.example.com").unwrap_or_else(|e| panic!("{e}"));
    Facts {
        vm_uids: BTreeMap::from([(work, 990), (bank, 991)]),
        dns_servers: vec!["192.0.2.53".parse().unwrap_or_else(|e| panic!("{e}"))],
        resolved: HashMap::from([(
            mail,
            vec!["198.51.100.7".parse().unwrap_or_else(|e| panic!("{e}"))],
        )]),
        now: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
        spice_ports: BTreeMap::from([(
            VmName::parse("work").unwrap_or_else(|e| panic!("{e}")),
            5901,
        )]),
        user_uids: HashMap::from([(
            AccountName::parse("alice").unwrap_or_else(|e| panic!("{e}")),
            1000,
        )]),
        group_uids: HashMap::from([(
            AccountName::parse("staff").unwrap_or_else(|e| panic!("{e}")),
            vec![1000, 1002],
        )]),
        imported: BTreeMap::new(),
        learned_seconds: 60,
        dns_ports: BTreeMap::from([
            (
                VmName::parse("work").unwrap_or_else(|e| panic!("{e}")),
                40053,
            ),
            (
                VmName::parse("banking").unwrap_or_else(|e| panic!("{e}")),
                40054,
            ),
        ]),
    }
}

fn golden(name: &str, actual: &str) {
    crate::test_support::golden("src/firewall/compile/golden", name, actual);
}

pub(crate) const WORK: &str = r#"
[[blocklist]]
name = "bad-nets"
entries = ["192.0.2.0/25", "192.0.2.128/25", "2001:db8::/32"]

[[host_rule]]
action = "drop"
blocklist = "bad-nets"
log = true

[[remote_console]]
name = "server-work"
host = "2001:db8::10"
port = 5902
groups = ["staff"]

[[vm]]
name = "work"
dns = true
strict_dns = true
console = { users = ["alice"], groups = ["staff"] }
[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = 8443
comment = "the \"mail\" gateway"
[[vm.rule]]
action = "accept"
special_target = "dns"
[[vm.rule]]
action = "accept"
destination = "mail.example.com"
proto = "tcp"
ports = "25,465,587,993"
[[vm.rule]]
action = "reject"
destination = "*.ads.example.net"
[[vm.rule]]
action = "accept"
proto = "icmp"
icmp_type = "echo-request"
[[vm.rule]]
action = "accept"
destination = "10.9.9.9"
expires = 2020-01-01T00:00:00Z

[[vm]]
name = "banking"
default = "reject"
dns = true
socks_proxy = 1080
console = { users = ["alice"] }
[[vm.rule]]
action = "accept"
destination = "2001:db8:1::/48"
proto = "tcp"
ports = [443, "8000-8100"]
"#;

#[test]
fn golden_work_and_banking() {
    golden(
        "work_and_banking",
        &render_ruleset(&compile_ruleset(&policy(WORK), &facts())),
    );
}

#[test]
fn golden_empty_policy() {
    golden(
        "empty",
        &render_ruleset(&compile_ruleset(&Policy::default(), &Facts::default())),
    );
}

#[test]
fn expired_rules_are_left_out_and_their_marks_are_not_live() {
    let p = policy(WORK);
    let r = compile_ruleset(&p, &facts());
    let expired = connection_mark(&p.vms[0].name, &p.vms[0].rules[5]);
    assert!(!r.live_marks.contains(&expired));
    assert!(!render_ruleset(&r).contains("10.9.9.9"));
    let mut early = facts();
    early.now = Some(SystemTime::UNIX_EPOCH);
    assert!(render_ruleset(&compile_ruleset(&p, &early)).contains("10.9.9.9"));
}

/// A disabled rule compiles to nothing and keeps its number: the rules after it are logged and
/// counted under the numbers the document (and the app) gives them.
#[test]
fn disabled_rules_decide_nothing_and_keep_their_place() {
    let doc = "[[vm]]\nname = \"work\"\ndefault = \"drop\"\n\n\
        [[vm.rule]]\naction = \"accept\"\ndestination = \"192.0.2.1\"\nproto = \"tcp\"\nports = 22\nenabled = false\n\n\
        [[vm.rule]]\naction = \"reject\"\ndestination = \"192.0.2.2\"\nproto = \"tcp\"\nports = 443\nlog = true\n";
    let p = policy(doc);
    assert!(!p.vms[0].rules[0].enabled && p.vms[0].rules[1].enabled);
    let text = render_ruleset(&compile_ruleset(&p, &facts()));
    assert!(!text.contains("192.0.2.1"), "{text}");
    assert!(text.contains("palisade vm=work rule=2 reject"), "{text}");
    assert!(!text.contains("rule=1 "), "{text}");
    let enabled = policy(&doc.replace("enabled = false\n", ""));
    let text = render_ruleset(&compile_ruleset(&enabled, &facts()));
    assert!(text.contains("192.0.2.1"), "{text}");
}

#[test]
fn marks_ignore_comments_and_position() {
    let a = policy("[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.1\"\ncomment = \"x\"\n");
    let b = policy("[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"drop\"\ndestination = \"10.0.0.2\"\n[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.1\"\n");
    assert_eq!(
        connection_mark(&a.vms[0].name, &a.vms[0].rules[0]),
        connection_mark(&b.vms[0].name, &b.vms[0].rules[1])
    );
}

#[test]
fn vms_without_a_user_yet_are_not_in_the_uid_map() {
    let r = compile_ruleset(&policy(WORK), &Facts::default());
    assert!(!render_ruleset(&r).contains("vmap"));
}

fn many_rules(n: u32, port: impl Fn(u32) -> u32) -> Policy {
    let mut doc = String::from("[[vm]]\nname = \"work\"\nconsole = { users = [\"alice\"] }\n");
    for i in 0..n {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"10.{}.{}.{}\"\nproto = \"tcp\"\nports = {}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255,
            port(i)
        ));
    }
    let parsed = Policy::parse(doc.as_bytes()).unwrap_or_else(|f| panic!("{:?}", &f[..1]));
    assert!(parsed.warnings.is_empty());
    parsed.policy
}

/// Fixed rules around the VM's own: output (jump host, console v4/v6, uid map), vm chain
/// replies, established and default (3), do_reject (2).
const FIXED_RULES: usize = 9;

#[test]
fn adjacent_rules_differing_only_in_network_share_one_set_lookup() {
    let r = compile_ruleset(&many_rules(10_000, |_| 443), &facts());
    assert_eq!(r.rule_count(), FIXED_RULES + 1);
    let text = render_ruleset(&r);
    assert!(
        text.contains("comment \"rules 1-10000\""),
        "{}",
        &text[..2000.min(text.len())]
    );
}

#[test]
fn rules_that_differ_otherwise_stay_separate_and_in_order() {
    let p = policy(
        "[[vm]]\nname = \"work\"\n\
         [[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.1\"\n\
         [[vm.rule]]\naction = \"drop\"\ndestination = \"10.0.0.2\"\n\
         [[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.3\"\n\
         [[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.4\"\n",
    );
    let text = render_ruleset(&compile_ruleset(&p, &facts()));
    let one = text.find("10.0.0.1 ").unwrap_or(usize::MAX);
    let two = text.find("10.0.0.2 ").unwrap_or(usize::MAX);
    let merged = text.find("{ 10.0.0.3, 10.0.0.4 }").unwrap_or(usize::MAX);
    assert!(one < two && two < merged && merged < usize::MAX, "{text}");
}

/// A policy whose VM "work" has `rules`, each `(destination, proto, ports, extra)`.
fn vm_rules(rules: &[(&str, &str, &str, &str)]) -> Policy {
    let mut doc = String::from("[[vm]]\nname = \"work\"\nconsole = { users = [\"alice\"] }\n");
    for (destination, proto, ports, extra) in rules {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"{destination}\"\nproto = \"{proto}\"\nports = {ports}\n{extra}\n"
        ));
    }
    policy(&doc)
}

fn mark_maps(r: &Ruleset) -> Vec<&SetDef> {
    r.sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::MarkMap(_)))
        .collect()
}

#[test]
fn a_run_of_single_hosts_and_ports_becomes_one_map_lookup() {
    let p = many_rules(10_000, |i| 1000 + i % 2);
    let r = compile_ruleset(&p, &facts());
    assert_eq!(r.rule_count(), FIXED_RULES + 1);
    let maps = mark_maps(&r);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].name, "vm_work_m0_v4");
    assert_eq!(maps[0].entries.len(), 10_000);
    let vm = &p.vms[0];
    for (i, e) in maps[0].entries.iter().enumerate() {
        assert_eq!(e.mark, connection_mark(&vm.name, &vm.rules[i]));
        assert!(r.live_marks.contains(&e.mark));
        assert_eq!(e.ports.0, 1000 + (i % 2) as u16);
        assert!(
            e.counter.starts_with(&format!("c_vm_work_r{}_", i + 1)),
            "{}",
            e.counter
        );
    }
    // The rules' counters live in the elements: no named counter but the default action's.
    assert_eq!(r.element_counters.len(), 10_000);
    assert_eq!(r.counters.len(), 2, "{:?}", r.counters);
    let text = render_ruleset(&r);
    assert!(
        text.contains("ct mark set ip daddr . meta l4proto . th dport map @vm_work_m0_v4 accept")
    );
    assert!(
        text.contains("\t\t\t10.0.0.1 . tcp . 1001 comment \"c_vm_work_r2_"),
        "{}",
        &text[..3000]
    );
    // `vm show` shows the chain and the map it looks up.
    let chain = crate::firewall::render::render_chain(&r, "vm_work");
    assert!(chain.contains("map @vm_work_m0_v4 accept") && chain.contains("\tmap vm_work_m0_v4 {"));
    assert_eq!(chain.matches(" . tcp . ").count(), 10_000);
}

#[test]
fn only_long_runs_of_plain_accepts_of_one_host_become_maps_and_order_is_kept() {
    let host = |i: usize| format!("10.0.0.{i}");
    let compiled = |rules: &[(String, &str, &str, &str)]| {
        let rules: Vec<(&str, &str, &str, &str)> = rules
            .iter()
            .map(|(d, p, o, e)| (d.as_str(), *p, *o, *e))
            .collect();
        compile_ruleset(&vm_rules(&rules), &facts())
    };
    // Fifteen stay rules (they merge into one set lookup: same port); sixteen of different
    // ports become a map.
    let fifteen: Vec<_> = (0..15)
        .map(|i| (host(i), "tcp", if i % 2 == 0 { "1" } else { "2" }, ""))
        .collect();
    assert!(mark_maps(&compiled(&fifteen)).is_empty());
    let mut sixteen = fifteen.clone();
    sixteen.push((host(15), "udp", "[53, 5353]", ""));
    let r = compiled(&sixteen);
    assert_eq!(mark_maps(&r).len(), 1);
    assert_eq!(
        mark_maps(&r)[0].entries.len(),
        17,
        "two ports, two elements"
    );
    // A logged rule ends a run and stays a rule where it is; a key already in the run starts a
    // new one.
    for (breaker, stays) in [
        (
            (host(200), "tcp", "22", "log = true"),
            "10.0.0.200 tcp dport 22",
        ),
        ((host(2), "tcp", "443", ""), "map @vm_work_m1_v4"),
    ] {
        let mut rules: Vec<_> = (0..20)
            .map(|i| (host(i), "tcp", if i % 2 == 0 { "443" } else { "80" }, ""))
            .collect();
        rules.push(breaker);
        rules.extend((40..60).map(|i| (host(i), "tcp", if i % 2 == 0 { "443" } else { "80" }, "")));
        let r = compiled(&rules);
        assert_eq!(mark_maps(&r).len(), 2, "{stays}");
        let text = render_ruleset(&r);
        let first = text.find("map @vm_work_m0_v4 accept").unwrap_or(usize::MAX);
        let middle = text.find(stays).unwrap_or(usize::MAX);
        let last = text
            .rfind("map @vm_work_m1_v4 accept")
            .unwrap_or(usize::MAX);
        assert!(
            first < middle && middle <= last && last < usize::MAX,
            "{stays}: {text}"
        );
    }
    // Both families: one map each, looked up by its own rule.
    let mut both: Vec<_> = (0..10).map(|i| (host(i), "tcp", "443", "")).collect();
    both.extend((0..10).map(|i| (format!("2001:db8::{i}"), "tcp", "443", "")));
    let both: Vec<_> = both
        .into_iter()
        .enumerate()
        .map(|(k, (d, p, _, e))| (d, p, if k % 2 == 0 { "443" } else { "80" }, e))
        .collect();
    let r = compiled(&both);
    let names: Vec<&str> = mark_maps(&r).iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["vm_work_m0_v4", "vm_work_m0_v6"]);
    assert!(render_ruleset(&r)
        .contains("ct mark set ip6 daddr . meta l4proto . th dport map @vm_work_m0_v6 accept"));
}

/// Networks of one length per family form a run too: the map's keys are the networks, and its
/// lookup masks the address to their length.
#[test]
fn a_run_of_networks_of_one_length_is_a_map_looked_up_by_the_masked_address() {
    let mut rules: Vec<(String, &str, &str, &str)> = (0..20)
        .map(|i| {
            (
                format!("10.{i}.7.0/24"),
                "tcp",
                if i % 2 == 0 { "443" } else { "80" },
                "",
            )
        })
        .collect();
    rules.extend((0..20).map(|i| {
        (
            format!("2001:db8:{i}::/48"),
            "udp",
            if i % 2 == 0 { "53" } else { "853" },
            "",
        )
    }));
    // A logged /16 after them ends the run and stays a rule.
    rules.push(("10.99.0.0/16".into(), "tcp", "22", "log = true"));
    let rules: Vec<(&str, &str, &str, &str)> = rules
        .iter()
        .map(|(d, p, o, e)| (d.as_str(), *p, *o, *e))
        .collect();
    let r = compile_ruleset(&vm_rules(&rules), &facts());
    let maps = mark_maps(&r);
    let names: Vec<&str> = maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["vm_work_m0_v4", "vm_work_m0_v6"]);
    assert_eq!(maps[0].entries[3].net.network().to_string(), "10.3.7.0");
    assert_eq!(maps[1].entries[1].net.network().to_string(), "2001:db8:1::");
    let text = render_ruleset(&r);
    for want in [
        "ct mark set ip daddr & 255.255.255.0 . meta l4proto . th dport map @vm_work_m0_v4 accept",
        "ct mark set ip6 daddr & ffff:ffff:ffff:: . meta l4proto . th dport map @vm_work_m0_v6 accept",
        "\t\t\t10.3.7.0 . tcp . 80 comment \"c_vm_work_r4_",
        "ip daddr 10.99.0.0/16 tcp dport 22 counter name",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
}

/// A set's name less the fingerprint of its elements an interval map's or set's name ends in.
fn place(set: &SetDef) -> String {
    match set.kind {
        SetKind::MarkMap(_) => set.name.clone(),
        _ => {
            let (place, print) = set.name.rsplit_once('_').unwrap_or_default();
            assert_eq!(print.len(), 16, "{}", set.name);
            place.to_owned()
        }
    }
}

/// `text` with each interval map's and set's name shortened to its place.
fn without_prints(r: &Ruleset, mut text: String) -> String {
    for set in &r.sets {
        if matches!(set.kind, SetKind::RangeMap(_) | SetKind::RuleSet(_)) {
            text = text.replace(&set.name, &place(set));
        }
    }
    text
}

fn range_maps(r: &Ruleset) -> Vec<&SetDef> {
    r.sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::RangeMap(_)))
        .collect()
}

/// A port range or a network of another length makes its family's run an interval map: one
/// element per network and port range, the address looked up whole. Keys of a run never
/// overlap: a network inside an earlier one on a port in common ends the run.
#[test]
fn a_run_with_port_ranges_or_networks_of_several_lengths_is_an_interval_map() {
    let mut rules: Vec<(String, &str, &str, &str)> = (0..20)
        .map(|i| {
            let port = if i % 2 == 0 { "443" } else { "80" };
            (format!("10.0.0.{i}"), "tcp", port, "")
        })
        .collect();
    rules.push(("10.0.0.200".into(), "tcp", "\"1000-2000\"", ""));
    rules.push(("10.1.0.0/16".into(), "udp", "53", ""));
    // Inside the /16 on other ports: no packet matches both, so it joins.
    rules.push(("10.1.2.0/24".into(), "udp", "[54, 60]", ""));
    // IPv6 hosts of one length on single ports: that family's map stays a hash.
    rules.extend((0..20).map(|i| (format!("2001:db8::{i}"), "tcp", "443", "")));
    // Inside the /16 on its port: a packet to 10.1.2.3:53 must meet the /16's rule first, so
    // this starts another run, of it and the hosts after it.
    rules.push(("10.1.2.0/24".into(), "udp", "\"50-59\"", ""));
    rules.extend((0..20).map(|i| {
        let port = if i % 2 == 0 { "22" } else { "23" };
        (format!("10.2.0.{i}"), "tcp", port, "")
    }));
    let rules: Vec<(&str, &str, &str, &str)> = rules
        .iter()
        .map(|(d, p, o, e)| (d.as_str(), *p, *o, *e))
        .collect();
    let r = compile_ruleset(&vm_rules(&rules), &facts());
    let names = |sets: Vec<&SetDef>| -> Vec<String> { sets.into_iter().map(place).collect() };
    assert_eq!(names(range_maps(&r)), ["vm_work_r0_v4", "vm_work_r1_v4"]);
    assert_eq!(names(mark_maps(&r)), ["vm_work_m0_v6"]);
    let first = range_maps(&r)[0];
    assert_eq!(first.entries.len(), 20 + 1 + 1 + 2);
    assert_eq!(range_maps(&r)[1].entries.len(), 21);
    let text = without_prints(&r, render_ruleset(&r));
    for want in [
        "flags interval",
        "\t\t\t10.0.0.200 . tcp . 1000-2000 comment \"c_vm_work_r21_",
        "\t\t\t10.1.0.0/16 . udp . 53 comment",
        "\t\t\t10.1.2.0/24 . udp . 60 comment",
        "\t\t\t10.0.0.3 . tcp . 80 comment",
        "\t\t\t10.1.2.0/24 . udp . 50-59 comment",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    let lookup = |map: &str| {
        text.find(&format!(
            "ct mark set ip daddr . meta l4proto . th dport map @{map} accept"
        ))
        .unwrap_or_else(|| panic!("{map} is looked up unmasked in\n{text}"))
    };
    assert!(lookup("vm_work_r0_v4") < lookup("vm_work_r1_v4"));
}

fn rule_sets(r: &Ruleset) -> Vec<&SetDef> {
    r.sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::RuleSet(_)))
        .collect()
}

/// Runs of drops, of rejects and of the host's accepts are rule sets, each element counting,
/// looked up by one rule with the run's verdict; a change of action ends a run. Only a VM's
/// accepts mark connections.
#[test]
fn runs_of_drops_rejects_and_host_accepts_are_rule_sets_looked_up_with_their_verdict() {
    let rules = |owner: &str, action: &str, base: usize| -> String {
        (0..20)
            .map(|i| {
                format!(
                    "[[{owner}]]\naction = \"{action}\"\ndestination = \"10.{base}.0.{i}\"\nproto = \"tcp\"\nports = {}\n",
                    if i % 2 == 0 { "\"1000-1100\"" } else { "22" }
                )
            })
            .collect()
    };
    let doc = format!(
        "{}{}[[vm]]\nname = \"work\"\n{}{}{}",
        rules("host_rule", "accept", 1),
        rules("host_rule", "drop", 2),
        rules("vm.rule", "drop", 3),
        rules("vm.rule", "reject", 4),
        rules("vm.rule", "accept", 5),
    );
    let r = compile_ruleset(&policy(&doc), &facts());
    let names = |sets: Vec<&SetDef>| -> Vec<String> { sets.into_iter().map(place).collect() };
    assert_eq!(
        names(rule_sets(&r)),
        ["host_s0_v4", "host_s1_v4", "vm_work_s0_v4", "vm_work_s1_v4"]
    );
    assert_eq!(names(range_maps(&r)), ["vm_work_r2_v4"]);
    for set in rule_sets(&r) {
        assert_eq!(set.entries.len(), 20, "{}", set.name);
        assert!(set.entries.iter().all(|e| !r.live_marks.contains(&e.mark)));
    }
    let text = without_prints(&r, render_ruleset(&r));
    for want in [
        "ip daddr . meta l4proto . th dport @host_s0_v4 return",
        "ip daddr . meta l4proto . th dport @host_s1_v4 drop",
        "ip daddr . meta l4proto . th dport @vm_work_s0_v4 drop",
        "ip daddr . meta l4proto . th dport @vm_work_s1_v4 jump do_reject",
        "map @vm_work_r2_v4 accept",
        "\tset vm_work_s1_v4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\tflags interval\n\t\tcounter\n",
        "\t\t\t10.4.0.2 . tcp . 1000-1100 comment \"c_vm_work_r23_",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    let at = |s: &str| text.find(s).unwrap_or(usize::MAX);
    assert!(at("@vm_work_s0_v4 drop") < at("@vm_work_s1_v4 jump"));
    assert!(at("@vm_work_s1_v4 jump") < at("@vm_work_r2_v4 accept"));
    // The host's counters and tags say what the rules do.
    let tags: Vec<Verdict> = r
        .element_counters
        .iter()
        .filter(|(_, t)| t.owner == TagOwner::Host)
        .map(|(_, t)| t.action)
        .collect();
    assert_eq!(tags.len(), 40);
    assert!(tags[..20].iter().all(|a| *a == Verdict::Accept));
    assert!(tags[20..].iter().all(|a| *a == Verdict::Drop));
}

/// Neighbours merged into a few big groups stay rules, also when one of them is split by a
/// changed port: the run counts kernel rules, not policy rules.
#[test]
fn a_run_of_few_big_groups_stays_rules() {
    let split = compile_ruleset(
        &many_rules(10_000, |i| if i == 4321 { 9000 } else { 443 }),
        &facts(),
    );
    assert!(mark_maps(&split).is_empty());
    assert_eq!(split.rule_count(), FIXED_RULES + 3);
}

#[test]
fn removing_a_member_changes_the_group_mark() {
    let all = compile_ruleset(&many_rules(3, |_| 443), &facts());
    let fewer = compile_ruleset(&many_rules(2, |_| 443), &facts());
    assert!(all.live_marks.is_disjoint(&fewer.live_marks));
}

/// A host-wide rule naming a host looks its addresses up in a learned set that says which name
/// it follows and keeps the addresses resolved at install only for the learned time (the
/// refresher renews them by TTL).
#[test]
fn a_host_rule_by_name_follows_its_answers_in_a_learned_set() {
    let p = policy(
        "[[host_rule]]\naction = \"drop\"\ndestination = \"mail.example.com\"\n\n\
         [[host_rule]]\naction = \"drop\"\ndestination = \"gone.example.com\"\n",
    );
    let r = compile_ruleset(&p, &facts());
    let mail = r
        .sets
        .iter()
        .find(|s| s.name == "host_r1_v4")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(
        mail.follows
            .as_ref()
            .map(|f| (f.name.as_str(), f.timeout_seconds)),
        Some(("mail.example.com", 60))
    );
    let text = render_ruleset(&r);
    for want in [
        "set host_r1_v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\ttimeout 60s\n\t\t\
         # follows the answers for mail.example.com\n\t\telements = { 198.51.100.7 }",
        "# follows the answers for gone.example.com",
        "ip daddr @host_r1_v4 counter name \"c_host_r1_",
        "ip daddr @host_r2_v4 counter name \"c_host_r2_",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
}

/// Adds to `f` the imported list `name` at version `hash`: its IPv4 ranges in the sets
/// `bl_<name>_v4_1_s0`, `_s1`, ... cut at `v4_cuts`, its IPv6 ranges in one set.
pub(crate) fn import_list(f: &mut Facts, name: &str, hash: &str, ranges: u64, v4_cuts: &[&str]) {
    let cuts: Vec<IpAddr> = v4_cuts
        .iter()
        .map(|c| c.parse().unwrap_or_else(|e| panic!("{c}: {e}")))
        .collect();
    let stem = |family| format!("{}_1", blocklist_set(name, family));
    f.imported.insert(
        ShortName::parse(name).unwrap_or_else(|e| panic!("{e}")),
        ImportedFacts {
            hash: hash.into(),
            ranges,
            sets_v4: sliced_sets(&stem(Family::V4), Family::V4, &cuts),
            sets_v6: sliced_sets(&stem(Family::V6), Family::V6, &[]),
            ..ImportedFacts::default()
        },
    );
}

/// A policy whose host rule drops what the imported list `big` holds.
pub(crate) const BIG_LIST: &str = "[[blocklist]]\nname = \"big\"\nimported = true\n\n\
                                   [[host_rule]]\naction = \"drop\"\nblocklist = \"big\"\n";

/// Gives the imported list `name` overlay sets over slices at version `00ee` in both families.
pub(crate) fn add_overlays(f: &mut Facts, name: &str) {
    let list = ShortName::parse(name).unwrap_or_else(|e| panic!("{e}"));
    let Some(data) = f.imported.get_mut(&list) else {
        panic!("{name} is not imported");
    };
    for family in [Family::V4, Family::V6] {
        let stem = format!("{}_1", blocklist_set(name, family));
        let overlay = Some(ListOverlay {
            base: "00ee".into(),
            added: format!("{stem}_a1"),
            removed: format!("{stem}_r1"),
        });
        match family {
            Family::V4 => data.overlay_v4 = overlay,
            Family::V6 => data.overlay_v6 = overlay,
        }
    }
}

/// A list whose slices hold an older version is looked up in the added set, or in its slice
/// and not in the removed set; the slices are declared at the base version, the overlay sets
/// at the current one.
#[test]
fn a_list_with_an_overlay_is_the_added_set_or_a_slice_less_the_removed_set() {
    let p = policy(BIG_LIST);
    let mut f = facts();
    import_list(&mut f, "big", "00ff", 3, &["10.0.0.0"]);
    add_overlays(&mut f, "big");
    let r = compile_ruleset(&p, &f);
    let text = render_ruleset(&r);
    for want in [
        "ip daddr @bl_big_v4_1_a1 counter name \"c_host_r1_",
        "chain host_r1_v4_s0 {\n\t\tip daddr @bl_big_v4_1_s0 ip daddr != @bl_big_v4_1_r1 counter",
        "chain host_r1_v4_s1 {\n\t\tip daddr @bl_big_v4_1_s1 ip daddr != @bl_big_v4_1_r1 counter",
        "ip6 daddr @bl_big_v6_1_a1 counter",
        "ip6 daddr @bl_big_v6_1_s0 ip6 daddr != @bl_big_v6_1_r1 counter",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    // The added set's rule comes before the map of slices.
    let added = text.find("@bl_big_v4_1_a1 counter").unwrap_or(usize::MAX);
    let map = text.find("ip daddr vmap").unwrap_or(0);
    assert!(added < map, "{text}");
    let held = |set: &str| {
        r.sets
            .iter()
            .find(|s| s.name == set)
            .and_then(|s| s.imported.clone())
            .map(|d| (d.hash, d.role))
    };
    assert_eq!(
        held("bl_big_v4_1_s1"),
        Some(("00ee".into(), ListRole::Slice))
    );
    assert_eq!(
        held("bl_big_v4_1_a1"),
        Some(("00ff".into(), ListRole::Added))
    );
    assert_eq!(
        held("bl_big_v6_1_r1"),
        Some(("00ff".into(), ListRole::Removed))
    );
}

/// A list spread over several sets is looked up in one of them, chosen by a verdict map on the
/// address; a list in one set is looked up directly.
#[test]
fn a_list_in_several_sets_is_looked_up_through_a_map_of_slices() {
    let p = policy(BIG_LIST);
    let mut f = facts();
    import_list(&mut f, "big", "00ff", 3, &["10.0.0.0"]);
    let text = render_ruleset(&compile_ruleset(&p, &f));
    for want in [
        "ip daddr vmap { 0.0.0.0-9.255.255.255 : jump host_r1_v4_s0, \
         10.0.0.0-255.255.255.255 : jump host_r1_v4_s1 }",
        "chain host_r1_v4_s0 {\n\t\tip daddr @bl_big_v4_1_s0 counter name \"c_host_r1_",
        "chain host_r1_v4_s1 {\n\t\tip daddr @bl_big_v4_1_s1 counter name \"c_host_r1_",
        "# its addresses 10.0.0.0-255.255.255.255",
        "ip6 daddr @bl_big_v6_1_s0 counter name \"c_host_r1_",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    assert!(!text.contains("ip6 daddr ::-"), "{text}");
    // Without chosen sets the rule names a set that does not exist: the kernel refuses it.
    f.imported.values_mut().for_each(|d| d.sets_v4.clear());
    let text = render_ruleset(&compile_ruleset(&p, &f));
    assert!(text.contains("ip daddr @bl_big_v4 "), "{text}");
}

/// Every rule naming an imported list first asks whether the address was just found in none of
/// its sets (a hash set per family, shared by the rules), and the slice's chain remembers an
/// address no set holds; a list in one slice is looked up in place.
#[test]
fn an_address_no_set_of_a_list_holds_is_remembered_and_skips_the_list() {
    let p = policy(&format!(
        "{BIG_LIST}\n[[host_rule]]\naction = \"reject\"\nblocklist = \"big\"\nproto = \"tcp\"\nports = 25\n"
    ));
    let mut f = facts();
    import_list(&mut f, "big", "00ff", 3, &["10.0.0.0"]);
    let r = compile_ruleset(&p, &f);
    let unlisted: Vec<(&str, SetKind)> = r
        .sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::Unlisted(_)))
        .map(|s| (s.name.as_str(), s.kind))
        .collect();
    assert_eq!(
        unlisted,
        [
            ("bl_big_v4_1_u", SetKind::Unlisted(Family::V4)),
            ("bl_big_v6_1_u", SetKind::Unlisted(Family::V6))
        ]
    );
    let text = render_ruleset(&r);
    for want in [
        "set bl_big_v4_1_u {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\tsize 65536\n\t\ttimeout 1s\n",
        "\t\tip daddr != @bl_big_v4_1_u ip daddr vmap { 0.0.0.0-9.255.255.255 : jump host_r1_v4_s0, ",
        "chain host_r1_v4_s1 {\n\t\tip daddr @bl_big_v4_1_s1 counter name \"c_host_r1_",
        "drop\n\t\tip daddr != @bl_big_v4_1_s1 add @bl_big_v4_1_u { ip daddr }\n\t}",
        "\t\tip daddr != @bl_big_v4_1_u ip daddr vmap { 0.0.0.0-9.255.255.255 : jump host_r2_v4_s0, ",
        "chain host_r2_v4_s0 {\n\t\tip daddr @bl_big_v4_1_s0 tcp dport 25 counter name \"c_host_r2_",
        "jump do_reject\n\t\tip daddr != @bl_big_v4_1_s0 add @bl_big_v4_1_u { ip daddr }\n\t}",
        "\t\tip6 daddr != @bl_big_v6_1_u ip6 daddr @bl_big_v6_1_s0 counter name \"c_host_r1_",
        "drop\n\t\tip6 daddr != @bl_big_v6_1_u ip6 daddr != @bl_big_v6_1_s0 add @bl_big_v6_1_u { ip6 daddr }\n",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    // Only the rules naming the list look at the set.
    assert_eq!(text.matches("!= @bl_big_v4_1_u").count(), 2, "{text}");

    // Over an overlay an address is remembered when it is in neither its slice nor the added
    // set, or in the removed set and not the added one.
    add_overlays(&mut f, "big");
    let text = render_ruleset(&compile_ruleset(&p, &f));
    for want in [
        "\t\tip daddr != @bl_big_v4_1_u ip daddr @bl_big_v4_1_a1 counter name \"c_host_r1_",
        "\t\tip daddr != @bl_big_v4_1_s0 ip daddr != @bl_big_v4_1_a1 add @bl_big_v4_1_u { ip daddr }\n\t\t\
         ip daddr @bl_big_v4_1_r1 ip daddr != @bl_big_v4_1_a1 add @bl_big_v4_1_u { ip daddr }\n\t}",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    assert_eq!(unlisted_set("bl_big_v4_3_s12"), "bl_big_v4_3_u");
}

/// A host rule accepting a list spread over slices is written in place, slice by slice behind
/// a test of the slice's addresses: a `return` in a chain a verdict map jumped to would leave
/// only that chain, and the host's later rules would still refuse the listed address.
#[test]
fn a_host_accept_of_a_sliced_list_returns_from_the_host_chain() {
    let p = policy(
        "[[blocklist]]\nname = \"big\"\nimported = true\n\n\
         [[host_rule]]\naction = \"accept\"\nblocklist = \"big\"\n\n\
         [[host_rule]]\naction = \"drop\"\ndestination = \"0.0.0.0/0\"\n",
    );
    let mut f = facts();
    import_list(&mut f, "big", "00ff", 3, &["10.0.0.0"]);
    let text = render_ruleset(&compile_ruleset(&p, &f));
    assert!(!text.contains("vmap"), "{text}");
    let host = text
        .split("chain host {")
        .nth(1)
        .and_then(|t| t.split("\n\t}").next())
        .unwrap_or_default();
    let lines: Vec<&str> = host
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let accepts = [
        "ip daddr 0.0.0.0-9.255.255.255 ip daddr != @bl_big_v4_1_u ip daddr @bl_big_v4_1_s0 counter",
        "ip daddr 0.0.0.0-9.255.255.255 ip daddr != @bl_big_v4_1_u ip daddr != @bl_big_v4_1_s0 add @bl_big_v4_1_u { ip daddr }",
        "ip daddr 10.0.0.0-255.255.255.255 ip daddr != @bl_big_v4_1_u ip daddr @bl_big_v4_1_s1 counter",
        "ip daddr 10.0.0.0-255.255.255.255 ip daddr != @bl_big_v4_1_u ip daddr != @bl_big_v4_1_s1 add @bl_big_v4_1_u { ip daddr }",
    ];
    for (line, want) in lines.iter().zip(accepts) {
        assert!(line.starts_with(want), "{want} is not {line} in\n{host}");
    }
    assert!(
        lines[0].ends_with("return") && lines[2].ends_with("return"),
        "{host}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("ip daddr 0.0.0.0/0 counter") && l.ends_with("drop")),
        "{host}"
    );
}

/// Both renderings go through the real nft in check mode inside a throwaway network namespace.
#[test]
#[ignore = "needs root for nft in a network namespace: make test runs it"]
fn nft_accepts_both_renderings() {
    // The text of an imported list's set declares it (empty): previews and `vm show` load.
    let with_list = policy(
        "[[blocklist]]\nname = \"big\"\nimported = true\n\n\
         [[host_rule]]\naction = \"drop\"\nblocklist = \"big\"\n\n\
         [[host_rule]]\naction = \"drop\"\ndestination = \"mail.example.com\"\n",
    );
    let mut f = facts();
    import_list(&mut f, "big", "00ff", 3, &["10.0.0.0", "172.16.0.0"]);
    crate::test_support::nft_check(&[], &render_ruleset(&compile_ruleset(&with_list, &f)));
    // With overlays, in both families (one slice for IPv6, three for IPv4).
    add_overlays(&mut f, "big");
    crate::test_support::nft_check(&[], &render_ruleset(&compile_ruleset(&with_list, &f)));
    // A host rule accepting the list, written in place.
    let accepting = policy(
        "[[blocklist]]\nname = \"big\"\nimported = true\n\n\
         [[host_rule]]\naction = \"accept\"\nblocklist = \"big\"\nlog = true\n",
    );
    crate::test_support::nft_check(&[], &render_ruleset(&compile_ruleset(&accepting, &f)));
    let r = compile_ruleset(&policy(WORK), &facts());
    let batch = render_batch(&r, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    crate::test_support::nft_check(&[], &batch);
    crate::test_support::nft_check(&[], &render_ruleset(&r));
    // Mark maps, both families, of hosts and of networks (a logged rule between them).
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for i in 0..80 {
        if i == 40 {
            doc.push_str("[[vm.rule]]\naction = \"accept\"\ndestination = \"10.9.9.9\"\nproto = \"tcp\"\nports = 1\nlog = true\n");
        }
        let host = match (i < 40, i % 2) {
            (true, 0) => format!("10.0.0.{i}"),
            (true, _) => format!("2001:db8::{i}"),
            (false, 0) => format!("10.1.{i}.0/24"),
            (false, _) => format!("2001:db8:{i}::/48"),
        };
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"{host}\"\nproto = \"{}\"\nports = [{}, 8080]\n",
            if i % 3 == 0 { "udp" } else { "tcp" },
            1000 + i
        ));
    }
    let r = compile_ruleset(&policy(&doc), &facts());
    assert_eq!(mark_maps(&r).len(), 4);
    let batch = render_batch(&r, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    crate::test_support::nft_check(&[], &batch);
    // Interval maps, both families, of networks of several lengths and port ranges: declared
    // with their elements in the text people see, named but not declared in the batch (they
    // are made over netlink before it).
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for i in 0..40 {
        let net = match i % 4 {
            0 => format!("10.0.0.{i}"),
            1 => format!("10.{i}.0.0/16"),
            2 => format!("2001:db8::{i}"),
            _ => format!("2001:db8:{i}::/48"),
        };
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"{net}\"\nproto = \"tcp\"\nports = [\"{}-{}\", 8080]\n",
            1000 + i,
            1100 + i
        ));
    }
    let r = compile_ruleset(&policy(&doc), &facts());
    assert_eq!(range_maps(&r).len(), 2);
    crate::test_support::nft_check(&[], &render_ruleset(&r));
    let batch = render_batch(&r, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    for map in range_maps(&r) {
        assert!(!batch.contains(&format!("map {} {{", map.name)), "{batch}");
        assert!(
            batch.contains(&format!("map @{} accept", map.name)),
            "{batch}"
        );
    }
    // Rule sets: drops and rejects of a VM, the host's accepts, both families.
    let mut doc = String::new();
    for (owner, action) in [
        ("host_rule", "accept"),
        ("vm.rule", "drop"),
        ("vm.rule", "reject"),
    ] {
        if owner == "vm.rule" && !doc.contains("[[vm]]") {
            doc.push_str("[[vm]]\nname = \"work\"\n");
        }
        for i in 0..40 {
            let net = match i % 2 {
                0 => format!("10.{i}.0.0/16"),
                _ => format!("2001:db8::{i}"),
            };
            doc.push_str(&format!(
                "[[{owner}]]\naction = \"{action}\"\ndestination = \"{net}\"\nproto = \"udp\"\nports = [\"{}-{}\", 53]\n",
                1000 + i,
                1100 + i
            ));
        }
    }
    let r = compile_ruleset(&policy(&doc), &facts());
    assert_eq!(rule_sets(&r).len(), 6);
    crate::test_support::nft_check(&[], &render_ruleset(&r));
}

/// The structure transaction loaded for real, then loaded again over what the first one left
/// (as the helper does on every apply): the second replaces chains and small sets in place,
/// keeps an imported list's set and its elements, and names no other table.
#[test]
#[ignore = "needs root to load nft rules in a network namespace: make test runs it"]
fn the_batch_replaces_the_structure_in_place_and_keeps_imported_sets() {
    let r = compile_ruleset(&policy(WORK), &facts());
    let first = render_batch(&r, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    let existing = Existing {
        chains: r.chains.iter().map(|c| c.name.clone()).collect(),
        sets: r
            .sets
            .iter()
            .map(|s| s.name.clone())
            .chain(["bl_kept_v4".to_owned()])
            .collect(),
        counters: r
            .counters
            .iter()
            .map(|(name, _)| name.clone())
            .chain(["c_gone".to_owned()])
            .collect(),
        limits: vec!["log_vm_gone".into()],
        mark_maps: Vec::new(),
        bridge_table: false,
    };
    let mut kept = r.clone();
    kept.sets.push(SetDef {
        name: "bl_kept_v4".into(),
        kind: SetKind::Ipv4Nets,
        nets: Vec::new(),
        marks: Vec::new(),
        consoles: Vec::new(),
        entries: Vec::new(),
        imported: Some(ImportedData {
            role: ListRole::Slice,
            list: ShortName::parse("kept").unwrap_or_else(|e| panic!("{e}")),
            family: Family::V4,
            hash: "00".into(),
            ranges: 1,
            first: IpAddr::from([0, 0, 0, 0]),
            last: IpAddr::from([255, 255, 255, 255]),
        }),
        follows: None,
    });
    let second = render_batch(&kept, &existing).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("palisade-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("first.nft"), &first).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("second.nft"), &second).unwrap_or_else(|e| panic!("{e}"));
    let script = "set -eu\n\
        nft -f first.nft\n\
        nft add set inet palisade bl_kept_v4 '{ type ipv4_addr; flags interval; }'\n\
        nft add element inet palisade bl_kept_v4 '{ 203.0.113.0/24 }'\n\
        leftovers() { nft add counter inet palisade c_gone; \
            nft add limit inet palisade log_vm_gone '{ rate 1/second; }'; }\n\
        leftovers\n\
        nft -f second.nft\n\
        leftovers\n\
        nft -f second.nft\n\
        nft list set inet palisade bl_kept_v4\n\
        nft list chains\n\
        nft list counters table inet palisade\n\
        nft list limits table inet palisade\n";
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{second}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("203.0.113.0/24"), "{text}");
    // What no rule names any more is gone; what the rules name is there.
    assert!(
        !text.contains("c_gone") && !text.contains("log_vm_gone"),
        "{text}"
    );
    for (name, _) in &r.counters {
        assert!(text.contains(&format!("counter {name} {{")), "{text}");
    }
    for chain in &r.chains {
        assert_eq!(
            text.matches(&format!("chain {} {{", chain.name)).count(),
            1,
            "{text}"
        );
    }
}

/// An imported list becomes the set the data path chose for it, described and never listed; the
/// structure batch neither declares nor deletes it, and a rule naming the list looks it up.
#[test]
fn an_imported_list_is_the_chosen_set_that_the_structure_leaves_alone() {
    let p = policy(
        "[[blocklist]]\nname = \"fire-hol\"\nimported = true\n\n\
         [[host_rule]]\naction = \"drop\"\nblocklist = \"fire-hol\"\n",
    );
    let mut f = facts();
    import_list(&mut f, "fire-hol", "0123456789abcdef0123", 1_000_000, &[]);
    let r = compile_ruleset(&p, &f);
    let text = render_ruleset(&r);
    assert!(
        text.contains("set bl_fire_hol_v4_1_s0 {")
            && text.contains("# imported list fire-hol (1000000 ranges in both families)")
            && text.contains("ip daddr @bl_fire_hol_v4_1_s0"),
        "{text}"
    );
    let existing = Existing {
        chains: vec!["output".into(), "old_chain".into()],
        sets: vec![
            "live_marks".into(),
            "bl_old_v4".into(),
            "bl_fire_hol_v4_1_s0".into(),
        ],
        ..Existing::default()
    };
    let batch = render_batch(&r, &existing).unwrap_or_else(|e| panic!("{e}"));
    // Up to the table block: what the transaction removes, exactly as the JSON batch before it
    // did — every chain flushed, then deleted, then every set but the imported list's.
    let (head, table) = batch
        .split_once("table inet palisade {\n")
        .unwrap_or_else(|| panic!("{batch}"));
    assert_eq!(
        head,
        "add table inet palisade\n\
         flush chain inet palisade output\n\
         flush chain inet palisade old_chain\n\
         delete chain inet palisade output\n\
         delete chain inet palisade old_chain\n\
         delete set inet palisade live_marks\n\
         delete set inet palisade bl_old_v4\n"
    );
    // The table block declares our small sets and chains, never the imported list's set, and
    // nothing in the transaction names another table or deletes ours.
    assert!(!table.contains("bl_fire_hol_v4_1_s0 {"), "{table}");
    assert!(table.contains("ip daddr @bl_fire_hol_v4_1"), "{table}");
    assert!(table.contains("set live_marks {") && table.contains("chain output {"));
    assert!(!batch.contains("delete table"), "{batch}");
    assert_eq!(batch.matches("inet palisade").count(), 8, "{batch}");
}

/// With nothing in the kernel, nothing is flushed or deleted; a name nft's syntax cannot write
/// (someone edited our table by hand) refuses the transaction instead of being interpolated.
#[test]
fn the_batch_deletes_nothing_it_was_not_told_of_and_writes_no_raw_names() {
    let r = compile_ruleset(&policy(WORK), &facts());
    let batch = render_batch(&r, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(batch.starts_with("add table inet palisade\ntable inet palisade {\n"));
    assert_eq!(
        batch.split_once('\n').map(|(_, b)| b),
        Some(render_ruleset(&r).as_str())
    );
    for (chains, sets) in [
        (vec!["x; delete table ip filter"], vec![]),
        (vec![], vec!["a\nflush ruleset"]),
        (vec!["\"q\""], vec![]),
        (vec!["9lives"], vec![]),
    ] {
        let existing = Existing {
            chains: chains.into_iter().map(String::from).collect(),
            sets: sets.into_iter().map(String::from).collect(),
            ..Existing::default()
        };
        let refused = render_batch(&r, &existing);
        assert!(refused.is_err(), "{existing:?} -> {refused:?}");
    }
}

/// Every tag the compiler writes into a log prefix reads back as itself, and nothing else
/// reads as a tag.
#[test]
fn log_prefixes_carry_their_rule_tags() {
    let vm = VmName::parse("web").unwrap_or_else(|e| panic!("{e}"));
    let tags = [
        RuleTag {
            owner: TagOwner::Vm(vm.clone()),
            rule: TagRule::Numbers { first: 3, last: 3 },
            action: Verdict::Drop,
        },
        RuleTag {
            owner: TagOwner::Host,
            rule: TagRule::Numbers { first: 2, last: 5 },
            action: Verdict::Reject,
        },
        RuleTag {
            owner: TagOwner::Vm(vm.clone()),
            rule: TagRule::Default,
            action: Verdict::Accept,
        },
        RuleTag {
            owner: TagOwner::Vm(vm),
            rule: TagRule::Spoofed,
            action: Verdict::Drop,
        },
        RuleTag {
            owner: TagOwner::Console,
            rule: TagRule::Refused,
            action: Verdict::Reject,
        },
    ];
    for tag in tags {
        let prefix = tag.prefix();
        assert!(prefix.len() < 64, "{prefix}");
        assert_eq!(RuleTag::parse(&prefix), Some(tag), "{prefix}");
    }
    assert_eq!(
        RuleTag::parse("palisade vm=web rule=3 drop: "),
        Some(RuleTag {
            owner: TagOwner::Vm(VmName::parse("web").unwrap_or_else(|e| panic!("{e}"))),
            rule: TagRule::Numbers { first: 3, last: 3 },
            action: Verdict::Drop,
        })
    );
    for other in [
        "",
        "palisade ",
        "palisade vm=web rule=0 drop: ",
        "palisade vm=web rule=5-3 drop: ",
        "palisade vm=Web rule=3 drop: ",
        "palisade vm=web rule=3 maybe: ",
        "palisade vm=web rule=3 drop",
        "palisade vm=web rule=3 drop extra: ",
        "palisade console default drop: ",
        "palisade host refused: ",
        "palisade host spoofed drop: ",
        "palisade console spoofed drop: ",
        "palisade guest rule=1 drop: ",
        "iptables DROP: ",
    ] {
        assert_eq!(RuleTag::parse(other), None, "{other:?}");
    }
}

/// A rule that stays as it was keeps its counter (and what it counted) across generations; a
/// changed or renumbered one gets a new counter. The log shares one limit per owner.
#[test]
fn counters_follow_what_a_rule_does() {
    let counters = |text: &str| compile_ruleset(&policy(text), &facts()).counters;
    let base = "[[vm]]\nname = \"work\"\n\n\
        [[vm.rule]]\naction = \"accept\"\ndestination = \"192.0.2.1\"\nproto = \"tcp\"\nports = \"443\"\n";
    let first = counters(base);
    let commented = counters(&format!("{base}comment = \"bank\"\n"));
    assert_eq!(first, commented);
    let changed = counters(&base.replace("443", "8443"));
    assert_ne!(first, changed);
    let tags_of = |c: &[(String, RuleTag)]| c.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
    assert_eq!(tags_of(&first), tags_of(&changed));
    let r = compile_ruleset(&policy(base), &facts());
    assert!(
        r.limits.contains(&"log_vm_work".to_owned()),
        "{:?}",
        r.limits
    );
}

pub(crate) const LAB: &str = r#"
[[network]]
name = "lab"
subnet = "10.77.0.0/24"
address = "10.77.0.1"

[[vm]]
name = "trap"
network = "bridge"
bridge = "lab"
address = "10.77.0.10"
mac = "52:54:00:00:00:10"
default = "drop"
[vm.nat]
address = "192.0.2.10"
[[vm.nat.forward]]
proto = "tcp"
port = 2222
to_port = 22

[[vm.rule]]
action = "accept"
destination = "198.51.100.7"
proto = "tcp"
ports = 443

[[vm]]
name = "plain"
network = "bridge"
bridge = "lab"
address = "10.77.0.11"
mac = "52:54:00:00:00:11"
"#;

#[test]
fn a_lab_compiles_to_nat_below_other_managers_egress_by_the_vms_rules_and_port_guards() {
    let p = crate::test_support::policy(LAB);
    let text = render_ruleset(&compile_ruleset(&p, &Facts::default()));
    golden("lab", &text);
    for line in [
        "type nat hook prerouting priority -110;",
        "ip daddr 192.0.2.10 meta l4proto tcp tcp dport 2222 dnat ip to 10.77.0.10:22",
        "type nat hook postrouting priority 90;",
        "ip saddr 10.77.0.10 oifname != \"palb-lab\" snat ip to 192.0.2.10",
        "ip saddr 10.77.0.0/24 oifname != \"palb-lab\" masquerade",
        "iifname \"palb-lab\" ip saddr 10.77.0.10 jump vm_trap",
        "oifname \"palb-lab\" ct status dnat accept",
        "table bridge palisade {",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // The nat rule for "plain" is the network's masquerade; it has no DNAT.
    assert_eq!(text.matches("dnat ip to").count(), 1);
    let port = palisade_dbus::policy::lab::port_name("trap");
    let ruleset = compile_ruleset(&p, &Facts::default());
    let counter = &ruleset.port_guards[0].counter;
    assert!(counter.starts_with("c_vm_trap_spoofed_"), "{counter}");
    assert!(
        text.contains(&format!(
            "iifname \"{port}\" ether saddr != 52:54:00:00:00:10 counter name \"{counter}\" drop"
        )),
        "{text}"
    );
    // The guards' counters are the drop log's too, under the VM's port-guard tag.
    let tags = ruleset.counters_and_tags();
    let (_, tag) = tags
        .iter()
        .find(|(name, _)| name == counter)
        .unwrap_or_else(|| panic!("{counter} is not among {tags:?}"));
    assert_eq!(tag.rule, TagRule::Spoofed);
    // A guard that holds something else counts anew.
    let moved = crate::test_support::policy(&LAB.replace("10.77.0.10", "10.77.0.20"));
    assert_ne!(
        &compile_ruleset(&moved, &Facts::default()).port_guards[0].counter,
        counter
    );
}

#[test]
fn a_lab_ruleset_is_what_nft_accepts() {
    let p = crate::test_support::policy(LAB);
    let r = compile_ruleset(&p, &Facts::default());
    crate::test_support::nft_check(&[], &render_ruleset(&r));
    let batch = render_batch(&r, &crate::firewall::kernel::Existing::default())
        .unwrap_or_else(|e| panic!("{e}"));
    crate::test_support::nft_check(&[], &batch);
}

#[test]
fn a_policy_without_labs_has_no_lab_chains_and_no_bridge_table() {
    let p = crate::test_support::policy("[[vm]]\nname = \"work\"\n");
    let text = render_ruleset(&compile_ruleset(&p, &Facts::default()));
    assert!(
        !text.contains("lab_") && !text.contains("table bridge"),
        "{text}"
    );
}

/// A lab's bridge table is replaced whole with the inet table, and deleted in the same
/// transaction once no bridged VM is left; a machine that never had one is not touched.
#[test]
fn the_bridge_table_comes_and_goes_with_the_lab_in_one_transaction() {
    let lab = compile_ruleset(&policy(LAB), &Facts::default());
    let batch = render_batch(&lab, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(batch.contains("add table bridge palisade\nflush table bridge palisade\n"));
    let plain = compile_ruleset(&policy("[[vm]]\nname = \"work\"\n"), &Facts::default());
    let had = Existing {
        bridge_table: true,
        ..Existing::default()
    };
    let batch = render_batch(&plain, &had).unwrap_or_else(|e| panic!("{e}"));
    assert!(batch.contains("delete table bridge palisade\n"), "{batch}");
    let batch = render_batch(&plain, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!batch.contains("bridge"), "{batch}");
}

/// A mark map the kernel has already stays through a replacement of the structure: its
/// elements that are gone or changed are deleted, the new and changed ones added, and those
/// the kernel holds as they are left alone, counts and all.
#[test]
fn a_mark_map_the_kernel_has_is_changed_element_by_element_by_the_structure() {
    let mut doc = String::from("[[vm]]\nname = \"work\"\n");
    for k in 0..20 {
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.{k}\"\nproto = \"tcp\"\nports = {}\n",
            1000 + k
        ));
    }
    let r = compile_ruleset(&policy(&doc), &facts());
    let map = r
        .sets
        .iter()
        .find(|s| s.name == "vm_work_m0_v4")
        .unwrap_or_else(|| panic!("the map"));
    let listed = |e: &MarkMapEntry, mark: u32| {
        let m = crate::firewall::patch::mark_entry(e);
        palisade_nfnetlink::ListedEntry {
            key: m.key,
            key_end: None,
            mark: Some(mark),
            comment: Some(m.comment),
            counted: None,
        }
    };
    let mut kernel: Vec<_> = map.entries[..19]
        .iter()
        .map(|e| listed(e, e.mark))
        .collect();
    kernel[3].mark = Some(7);
    let mut stray = listed(&map.entries[0], 1);
    stray.key.port = 9;
    kernel.push(stray);
    let existing = Existing {
        sets: vec!["vm_work_m0_v4".into(), "live_marks".into()],
        mark_maps: vec![("vm_work_m0_v4".into(), kernel)],
        ..Existing::default()
    };
    let batch = render_batch(&r, &existing).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !batch.contains("delete set inet palisade vm_work_m0_v4"),
        "{batch}"
    );
    assert!(
        batch.contains("delete set inet palisade live_marks"),
        "{batch}"
    );
    assert!(
        batch.contains(
            "delete element inet palisade vm_work_m0_v4 { 10.0.0.3 . tcp . 1003, 10.0.0.0 . tcp . 9 }"
        ),
        "{batch}"
    );
    let added: Vec<&str> = batch
        .lines()
        .filter(|l| l.contains(" . tcp . ") && l.contains(" : "))
        .collect();
    assert_eq!(added.len(), 2, "{batch}");
    assert!(
        added[0].contains("10.0.0.3 . tcp . 1003") && added[1].contains("10.0.0.19 . tcp . 1019")
    );
    // The preview and a first install still show and load every element.
    let first = render_batch(&r, &Existing::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.matches(" . tcp . ").count(), 20);
}
