//! The ruleset in nft's own syntax, for previews, diffs, `vm show` and golden files.
//!
//! The output is valid input for `nft -f` and describes the same table as the JSON batch; a test
//! feeds both to `nft --check` so the two renderings cannot drift apart.

use super::ruleset::*;
use palisade_dbus::policy::Verdict;
use std::fmt::Write;

/// Renders the whole table.
pub fn render_ruleset(r: &Ruleset) -> String {
    let mut s = format!("table inet {TABLE} {{\n");
    for set in &r.sets {
        render_set(&mut s, set);
    }
    for chain in &r.chains {
        let _ = writeln!(s, "\tchain {} {{", chain.name);
        if let Some(Hook::Output) = chain.hook {
            s.push_str("\t\ttype filter hook output priority filter; policy accept;\n");
        }
        for rule in &chain.rules {
            let _ = writeln!(s, "\t\t{}", render_rule(rule));
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

/// One chain as nft would list it (for `vm show`).
pub fn render_chain(r: &Ruleset, name: &str) -> String {
    let mut s = String::new();
    if let Some(chain) = r.chains.iter().find(|c| c.name == name) {
        let _ = writeln!(s, "table inet {TABLE} chain {} {{", chain.name);
        for rule in &chain.rules {
            let _ = writeln!(s, "\t{}", render_rule(rule));
        }
        s.push_str("}\n");
    }
    s
}

fn render_set(s: &mut String, set: &SetDef) {
    let (ty, flags) = match set.kind {
        SetKind::Ipv4Nets => ("ipv4_addr", "interval"),
        SetKind::Ipv6Nets => ("ipv6_addr", "interval"),
        SetKind::Ipv4Learned => ("ipv4_addr", "timeout"),
        SetKind::Ipv6Learned => ("ipv6_addr", "timeout"),
        SetKind::Marks => ("mark", ""),
        SetKind::ConsoleEndpoints(IpFamily::V4) => ("ipv4_addr . inet_service", ""),
        SetKind::ConsoleEndpoints(IpFamily::V6) => ("ipv6_addr . inet_service", ""),
        SetKind::ConsoleAllowed(IpFamily::V4) => ("uid . ipv4_addr . inet_service", ""),
        SetKind::ConsoleAllowed(IpFamily::V6) => ("uid . ipv6_addr . inet_service", ""),
    };
    let _ = write!(s, "\tset {} {{\n\t\ttype {ty}\n", set.name);
    if !flags.is_empty() {
        let _ = writeln!(s, "\t\tflags {flags}");
    }
    let elements: Vec<String> = match set.kind {
        SetKind::Marks => set.marks.iter().map(|m| format!("{m:#010x}")).collect(),
        SetKind::ConsoleEndpoints(_) | SetKind::ConsoleAllowed(_) => set
            .consoles
            .iter()
            .map(|(uid, addr, port)| match uid {
                Some(u) => format!("{u} . {addr} . {port}"),
                None => format!("{addr} . {port}"),
            })
            .collect(),
        _ => set.nets.iter().map(net).collect(),
    };
    if !elements.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", elements.join(", "));
    }
    s.push_str("\t}\n");
}

fn net(n: &ipnet::IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// One rule on one line.
pub fn render_rule(rule: &RuleDef) -> String {
    let mut parts: Vec<String> = rule.matches.iter().map(render_match).collect();
    if rule.counter {
        parts.push("counter".into());
    }
    if let Some(prefix) = &rule.log {
        parts.push(format!("log prefix {}", quoted(prefix)));
    }
    if let Some(m) = rule.set_mark {
        parts.push(format!("ct mark set {m:#010x}"));
    }
    parts.push(match &rule.verdict {
        RuleVerdict::Policy(Verdict::Accept) => "accept".into(),
        RuleVerdict::Policy(Verdict::Drop) => "drop".into(),
        RuleVerdict::Policy(Verdict::Reject) => format!("jump {REJECT_CHAIN}"),
        RuleVerdict::Return => "return".into(),
        RuleVerdict::TcpReset => "reject with tcp reset".into(),
        RuleVerdict::IcmpxUnreachable => "reject with icmpx port-unreachable".into(),
        RuleVerdict::Jump(c) => format!("jump {c}"),
        RuleVerdict::UidMap(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(uid, c)| format!("{uid} : jump {c}"))
                .collect();
            format!("meta skuid vmap {{ {} }}", entries.join(", "))
        }
    });
    if let Some(c) = &rule.comment {
        parts.push(format!("comment {}", quoted(c)));
    }
    parts.join(" ")
}

fn render_match(m: &Match) -> String {
    match m {
        Match::Family(f) => format!(
            "meta nfproto {}",
            match f {
                IpFamily::V4 => "ipv4",
                IpFamily::V6 => "ipv6",
            }
        ),
        Match::L4Proto(p) => format!("meta l4proto {p}"),
        Match::Daddr(n) => format!("{} daddr {}", family_of(n).nft(), net(n)),
        Match::DaddrAnyOf(f, nets) => {
            let list: Vec<String> = nets.iter().map(net).collect();
            format!("{} daddr {{ {} }}", f.nft(), list.join(", "))
        }
        Match::DaddrInSet(f, set) => format!("{} daddr @{set}", f.nft()),
        Match::Dport(p, ports) => format!("{p} dport {}", port_expr(ports)),
        Match::IcmpType(p, t) => format!("{p} type {t}"),
        Match::CtEstablished => "ct state established,related".into(),
        Match::CtMarkInSet(set) => format!("ct mark @{set}"),
        Match::CtNew => "ct state new".into(),
        Match::CtReply => "ct direction reply".into(),
        Match::ConsoleEndpoint(f, set) => format!("{} daddr . tcp dport @{set}", f.nft()),
        Match::ConsoleNotAllowed(f, set) => {
            format!("meta skuid . {} daddr . tcp dport != @{set}", f.nft())
        }
    }
}

fn port_expr(ports: &palisade_dbus::policy::PortSet) -> String {
    match ports.ranges() {
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("{{ {} }}", list.join(", "))
        }
    }
}

/// Which payload protocol an address belongs to.
pub fn family_of(n: &ipnet::IpNet) -> IpFamily {
    match n {
        ipnet::IpNet::V4(_) => IpFamily::V4,
        ipnet::IpNet::V6(_) => IpFamily::V6,
    }
}

fn quoted(s: &str) -> String {
    // Validation refused control characters and the compiler replaced quotes and backslashes.
    format!("\"{s}\"")
}
