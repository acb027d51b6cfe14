//! What `kernel_rules` writes, against nft: the root test loads sample rulesets as text with
//! `nft -f`, adds every encodable rule again over netlink into a chain of its own, and compares
//! the kernel's account of both (`nft --debug=netlink`, expression by expression).

use super::*;
use crate::firewall::compile::tests::{add_overlays, facts, import_list, BIG_LIST, LAB, WORK};
use crate::firewall::compile::{compile_ruleset, Facts};
use crate::firewall::render::{render_ruleset, rule_lines};
use crate::test_support::policy;
use palisade_dbus::policy::{PortRange, PortSet};
use palisade_nfnetlink::{Batch, ChainRef, NftSocket, Placement, TableFamily};
use std::process::{Command, Stdio};

fn ports(ranges: &[(u16, u16)]) -> PortSet {
    PortSet::from_ranges(
        ranges
            .iter()
            .filter_map(|(a, b)| PortRange::new(*a, *b))
            .collect(),
    )
    .unwrap_or_else(|| panic!("valid ports"))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Rules of shapes the sample policies may lack, each on its own.
fn shapes() -> Vec<RuleDef> {
    let tag = RuleTag {
        owner: TagOwner::Host,
        rule: TagRule::Numbers { first: 3, last: 3 },
        action: Verdict::Drop,
    };
    let mut logged = RuleDef::new(
        vec![
            Match::Daddr(net("10.1.2.0/23")),
            Match::Dport("udp", ports(&[(1000, 2000)])),
        ],
        RuleVerdict::Policy(Verdict::Drop),
    );
    logged.log = Some(LogDef::Nflog {
        tag,
        limit: "log_host".into(),
    });
    logged.counter = Counter::Anonymous;
    let mut marked = RuleDef::new(
        vec![
            Match::Daddr(net("2001:db8::/33")),
            Match::Sport("tcp", ports(&[(5, 5)])),
        ],
        RuleVerdict::Policy(Verdict::Accept),
    );
    marked.set_mark = Some(0x0102_0304);
    marked.comment = Some("a \"quoted\" comment".into());
    vec![
        logged,
        marked,
        RuleDef::new(
            vec![
                Match::Family(Family::V6),
                Match::Daddr(net("2001:db8::1/128")),
                Match::IcmpType("icmpv6", 135),
                Match::HopLimit(255),
            ],
            RuleVerdict::Return,
        ),
        RuleDef::new(
            vec![
                Match::Saddr(net("10.0.0.0/8")),
                Match::SkUidNot(0),
                Match::CtNew,
            ],
            RuleVerdict::Policy(Verdict::Reject),
        ),
        RuleDef::new(
            vec![Match::DaddrWithin(
                "10.0.0.0".parse().unwrap_or_else(|e| panic!("{e}")),
                "10.255.255.255".parse().unwrap_or_else(|e| panic!("{e}")),
            )],
            RuleVerdict::Jump("do_reject".into()),
        ),
        RuleDef::new(
            vec![Match::L4Proto("udp"), Match::SkUid(7)],
            RuleVerdict::Return,
        ),
    ]
}

#[test]
fn one_kernel_rule_per_rendered_line() {
    let r = compile_ruleset(&policy(WORK), &facts());
    let mut encoded = 0;
    for rule in r.chains.iter().flat_map(|c| &c.rules).chain(&shapes()) {
        if let Some(specs) = kernel_rules(rule) {
            assert_eq!(specs.len(), rule_lines(rule).len(), "{rule:?}");
            encoded += 1;
        }
    }
    assert!(encoded >= 10, "only {encoded} rules encodable");
}

#[test]
fn what_is_not_encoded_is_refused_whole() {
    let list = RuleDef::new(
        vec![Match::Dport("tcp", ports(&[(25, 25), (465, 465)]))],
        RuleVerdict::Policy(Verdict::Accept),
    );
    assert_eq!(
        kernel_rules(&list),
        None,
        "a port list needs an anonymous set"
    );
    let nat = RuleDef::new(vec![Match::L4Proto("tcp")], RuleVerdict::Masquerade);
    assert_eq!(kernel_rules(&nat), None);
    let everything = RuleDef::new(
        vec![Match::Daddr(net("0.0.0.0/0"))],
        RuleVerdict::Policy(Verdict::Drop),
    );
    assert_eq!(kernel_rules(&everything), None);
}

#[test]
fn implied_tests_are_written_once_per_rule() {
    let rule = RuleDef::new(
        vec![
            Match::Daddr(net("10.0.0.1/32")),
            Match::Saddr(net("10.0.0.2/32")),
            Match::Dport("tcp", ports(&[(80, 80)])),
            Match::Sport("tcp", ports(&[(81, 81)])),
        ],
        RuleVerdict::Policy(Verdict::Accept),
    );
    let specs = kernel_rules(&rule).unwrap_or_else(|| panic!("encodable"));
    let metas = specs[0]
        .exprs
        .iter()
        .filter(|e| matches!(e, Expr::Meta(_)))
        .count();
    assert_eq!(metas, 2, "one nfproto and one l4proto test: {:?}", specs[0]);
}

// ---------------------------------------------------------------------------------------------
// Against the kernel

fn in_netns<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("unshare(CLONE_NEWNET) needs root: {e}"));
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn nft(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nft: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kernel's expressions of each rule of `chain`, in order.
fn expressions(chain: &str) -> Vec<String> {
    let out = nft(
        &["--debug=netlink", "list", "chain", "inet", TABLE, chain],
        None,
    );
    let head = format!("inet {TABLE} {chain} ");
    let mut rules: Vec<String> = Vec::new();
    let mut inside = false;
    for line in out.lines() {
        if line.starts_with("  ") {
            if inside {
                if let Some(last) = rules.last_mut() {
                    last.push_str(line);
                    last.push('\n');
                }
            }
        } else {
            inside = line.starts_with(&head);
            if inside {
                rules.push(String::new());
            }
        }
    }
    rules
}

/// Loads `r` as text, then each chain's encodable rules over netlink into a chain of their
/// own; the kernel must hold the same expressions for both. Returns how many rules compared.
fn compare_with_nft(r: Ruleset) -> usize {
    in_netns(move || {
        nft(&["-f", "-"], Some(&render_ruleset(&r)));
        let mut socket = NftSocket::open().unwrap_or_else(|e| panic!("{e}"));
        let mut compared = 0;
        for (i, chain) in r.chains.iter().enumerate() {
            let copy = format!("netlink_{i}");
            nft(&["add", "chain", "inet", TABLE, &copy], None);
            let target =
                ChainRef::new(TableFamily::Inet, TABLE, &copy).unwrap_or_else(|e| panic!("{e}"));
            let mut batch = Batch::new();
            let mut wanted = Vec::new();
            for rule in &chain.rules {
                let lines = rule_lines(rule).len();
                match kernel_rules(rule) {
                    Some(specs) => {
                        for spec in &specs {
                            batch
                                .add_rule(&target, Placement::Append, spec)
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                        wanted.extend(std::iter::repeat_n(true, lines));
                    }
                    None => wanted.extend(std::iter::repeat_n(false, lines)),
                }
            }
            socket
                .send(&mut batch)
                .unwrap_or_else(|e| panic!("chain {}: {e}", chain.name));
            let expected: Vec<String> = expressions(&chain.name)
                .into_iter()
                .zip(&wanted)
                .filter(|(_, w)| **w)
                .map(|(e, _)| e)
                .collect();
            assert_eq!(
                expressions(&copy),
                expected,
                "chain {}: the kernel holds other expressions for the netlink copy",
                chain.name
            );
            compared += expected.len();
        }
        compared
    })
}

#[test]
#[ignore = "needs root and a network namespace: make test runs it"]
fn root_encoded_rules_are_what_nft_loads() {
    let mut compared = compare_with_nft(compile_ruleset(&policy(WORK), &facts()));
    compared += compare_with_nft(compile_ruleset(&policy(LAB), &Facts::default()));
    // An imported list with overlays: each slice's rule tests "in the slice, not in the removed
    // set" (an inverted lookup).
    let mut f = facts();
    import_list(&mut f, "big", "00ff", 3, &["10.0.0.0"]);
    add_overlays(&mut f, "big");
    compared += compare_with_nft(compile_ruleset(&policy(BIG_LIST), &f));
    let mut r = compile_ruleset(&policy(WORK), &facts());
    r.limits.push("log_host".into());
    r.chains
        .push(super::ChainDef::new("shapes", None, shapes()));
    compared += compare_with_nft(r);
    assert!(compared >= 20, "only {compared} rules compared");
}
