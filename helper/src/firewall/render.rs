//! The ruleset in nft's own syntax: the structure transaction the kernel receives when a
//! generation is loaded whole ([`render_batch`]; a change of rules only goes over netlink,
//! written by `encode` as nft writes these lines and compared line by line by `patch`), and
//! the text people read in previews, diffs, `vm show`, the guest's file and golden files
//! ([`render_ruleset`]). Both come from the same code, so what is shown is what
//! is loaded. Notes (`ChainDef::notes`) appear as `#` lines, which nft skips.
//!
//! Text rather than nft's JSON: measured with 10,000 rules that cannot be merged, `nft -j -f`
//! took 0.68 s of CPU where `nft -f` of the same table took 0.45 s (the difference is jansson
//! and the allocator; the kernel's share is the same), and building and serialising the JSON
//! value in the helper came on top.
//!
//! Nothing is interpolated that nft could read as syntax: every name and value comes from a
//! validated type, strings go through [`quoted`] (which cannot end its quotes early), and the
//! names of what the kernel already holds are checked against nft's identifier grammar before
//! they are written ([`UnsayableName`] otherwise).

use super::compile::family_bounds;
use super::kernel::Existing;
use super::ruleset::*;
use palisade_dbus::policy::{Family, Verdict};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Renders the whole table.
pub fn render_ruleset(r: &Ruleset) -> String {
    let mut s = String::new();
    render_table(&mut s, r, true);
    render_port_guards(&mut s, r);
    s
}

/// The `bridge` table guarding the bridged VMs' ports, when there are any. Frames from a port
/// must come from its VM's MAC, be IPv4 or ARP (a lab is IPv4: IPv6 from a guest could announce
/// any address by neighbour discovery), carry its address (or none yet, for DHCP and ARP
/// probes), and never be a DHCP server's answer.
fn render_port_guards(s: &mut String, r: &Ruleset) {
    if r.port_guards.is_empty() {
        return;
    }
    let _ = writeln!(s, "table bridge {} {{", r.table);
    for g in &r.port_guards {
        let _ = writeln!(
            s,
            "\tcounter {} {{\n\t\tcomment {}\n\t}}",
            g.counter,
            quoted(g.tag().prefix().trim_end_matches(": "))
        );
    }
    s.push_str("\tchain ports {\n\t\ttype filter hook prerouting priority -200; policy accept;\n");
    for g in &r.port_guards {
        let port = quoted(&g.port);
        let (mac, ip) = (g.mac, g.address);
        let prefix = quoted(&g.tag().prefix());
        // (check, why, logged): the other kinds a guest's stack sends on its own (IPv6 router
        // solicitations, LLDP) are dropped without a log line, so the log shows attempts only.
        for (check, why, logged) in [
            (format!("ether saddr != {mac}"), "another MAC", true),
            (
                "ether type != { ip, arp }".to_owned(),
                "not IPv4 or ARP",
                false,
            ),
            (
                format!("arp saddr ether != {mac}"),
                "ARP for another MAC",
                true,
            ),
            (
                format!("arp saddr ip != {{ {ip}, 0.0.0.0 }}"),
                "ARP for another address",
                true,
            ),
            (
                format!("ip saddr != {{ {ip}, 0.0.0.0 }}"),
                "another source address",
                true,
            ),
            ("udp sport 67".to_owned(), "a DHCP server's answer", true),
        ] {
            // Logged on a line of its own, at most as often as the limit allows; counted and
            // dropped on the next, every time (the bridge table cannot use the inet table's
            // named limits).
            if logged {
                let _ = writeln!(
                    s,
                    "\t\tiifname {port} {check} limit rate {LOG_RATE_PER_SECOND}/second burst {LOG_BURST} packets log prefix {prefix} group {LOG_GROUP}"
                );
            }
            let _ = writeln!(
                s,
                "\t\tiifname {port} {check} counter name {} drop comment {}",
                quoted(&g.counter),
                quoted(&format!("vm {}: {why}", g.vm))
            );
        }
    }
    s.push_str("\t}\n}\n");
}

/// The transaction replacing the structure of `r`'s table with `r`, as `nft -f` reads it: the
/// table declared (created if missing, never deleted), every existing chain flushed and then
/// deleted, every existing named set deleted except the sets of imported lists `r` still names
/// (their elements stay where they are, and `nft` is never asked to read them), then `r`'s own
/// sets, chains and rules. The sets of imported lists are neither declared nor deleted: the data
/// path created and filled them, and a rule naming a missing one fails the whole transaction.
/// One `nft -f` run is one transaction: it lands whole or not at all. No other table is named.
pub fn render_batch(r: &Ruleset, existing: &Existing) -> Result<String, UnsayableName> {
    let t = r.table;
    // Sets that hold data the structure does not carry: imported lists and interval maps and
    // sets of rules (made over netlink, never declared here) and the forwarder's answers
    // (declared, which leaves an existing one and its elements alone).
    let kept: HashSet<&str> = r
        .sets
        .iter()
        .filter(|s| loaded_apart(s) || matches!(s.kind, SetKind::Answers(_)))
        .map(|s| s.name.as_str())
        .collect();
    // Mark maps the new structure has too are changed element by element (see `kept_maps`).
    let (kept_maps, gone_elements, unchanged) = kept_maps(r, existing);
    let kept: HashSet<&str> = kept.into_iter().chain(kept_maps).collect();
    let mut s = format!("add table inet {t}\n");
    for chain in &existing.chains {
        let _ = writeln!(s, "flush chain inet {t} {}", identifier("chain", chain)?);
    }
    for chain in &existing.chains {
        let _ = writeln!(s, "delete chain inet {t} {}", identifier("chain", chain)?);
    }
    for set in existing.sets.iter().filter(|s| !kept.contains(s.as_str())) {
        let _ = writeln!(s, "delete set inet {t} {}", identifier("set", set)?);
    }
    // Counters and limits the new structure names again are declared again, which leaves them
    // (and what they counted) as they are; the others go once no rule uses them.
    let declared: std::collections::HashSet<&str> =
        r.counters.iter().map(|(name, _)| name.as_str()).collect();
    for counter in &existing.counters {
        if !declared.contains(counter.as_str()) {
            let _ = writeln!(
                s,
                "delete counter inet {t} {}",
                identifier("counter", counter)?
            );
        }
    }
    for limit in existing.limits.iter().filter(|l| !r.limits.contains(l)) {
        let _ = writeln!(s, "delete limit inet {t} {}", identifier("limit", limit)?);
    }
    for (map, keys) in &gone_elements {
        let keys: Vec<String> = keys.iter().map(endpoint).collect();
        let _ = writeln!(s, "delete element inet {t} {map} {{ {} }}", keys.join(", "));
    }
    if unchanged.is_empty() {
        render_table(&mut s, r, false);
    } else {
        // Elements the kernel holds as they are stay out of the transaction, and so keep
        // their counts.
        let mut only_new = r.clone();
        for set in &mut only_new.sets {
            if let Some(same) = unchanged.get(set.name.as_str()) {
                set.entries.retain(|e| !same.contains(&patch_entry(e)));
            }
        }
        render_table(&mut s, &only_new, false);
    }
    if !r.port_guards.is_empty() {
        // Replaced whole in the same transaction as the inet table.
        let _ = writeln!(s, "add table bridge {t}\nflush table bridge {t}");
        render_port_guards(&mut s, r);
    } else if existing.bridge_table {
        let _ = writeln!(s, "delete table bridge {t}");
    }
    Ok(s)
}

/// An element of a mark map as the kernel lists it and as the ruleset has it, compared.
type ElementPrint = (palisade_nfnetlink::Endpoint, Option<u32>, Option<String>);

fn patch_entry(e: &MarkMapEntry) -> ElementPrint {
    let m = super::patch::mark_entry(e);
    (m.key, Some(m.mark), Some(m.comment))
}

/// The mark maps of `r` the kernel has already (same name and family): the structure keeps
/// them and changes their elements. Returns their names, per map the keys of the elements to
/// delete (gone, or changed), and per map the elements the kernel holds as `r` has them.
#[allow(clippy::type_complexity)]
fn kept_maps<'a>(
    r: &'a Ruleset,
    existing: &'a Existing,
) -> (
    Vec<&'a str>,
    Vec<(&'a str, Vec<palisade_nfnetlink::Endpoint>)>,
    HashMap<&'a str, HashSet<ElementPrint>>,
) {
    let mut names = Vec::new();
    let mut gone = Vec::new();
    let mut unchanged = HashMap::new();
    for (name, listed) in &existing.mark_maps {
        let Some(set) = r.sets.iter().find(|s| &s.name == name) else {
            continue;
        };
        let SetKind::MarkMap(family) = set.kind else {
            continue;
        };
        let same_family = listed.iter().all(|e| match family {
            Family::V4 => e.key.addr.is_ipv4(),
            Family::V6 => e.key.addr.is_ipv6(),
        });
        if !same_family {
            continue;
        }
        let wanted: HashSet<ElementPrint> = set.entries.iter().map(patch_entry).collect();
        let mut same = HashSet::new();
        let mut delete = Vec::new();
        for e in listed {
            let print = (e.key, e.mark, e.comment.clone());
            if wanted.contains(&print) {
                same.insert(print);
            } else {
                delete.push(e.key);
            }
        }
        names.push(name.as_str());
        if !delete.is_empty() {
            gone.push((name.as_str(), delete));
        }
        unchanged.insert(name.as_str(), same);
    }
    (names, gone, unchanged)
}

/// A mark map's key in nft's words.
fn endpoint(e: &palisade_nfnetlink::Endpoint) -> String {
    let proto = match e.proto {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        other => other.to_string(),
    };
    format!("{} . {proto} . {}", e.addr, e.port)
}

/// A chain or set of our table whose name nft's syntax cannot write (nft 1.0 has no quoted
/// identifiers), so the structure cannot be replaced by `nft -f`. Only someone editing our table
/// by hand can have put it there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the table holds a {kind} whose name nft cannot write ({name:?}); delete it by its handle (nft -a list chains)")]
pub struct UnsayableName {
    /// `chain`, `set`, `counter` or `limit`.
    pub kind: &'static str,
    /// The name, as the kernel reported it.
    pub name: String,
}

/// `name` if it is a plain nft identifier (a letter or `_`, then letters, digits, `_` and `-`),
/// the grammar of every name the compiler makes.
fn identifier<'a>(kind: &'static str, name: &'a str) -> Result<&'a str, UnsayableName> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 255;
    if plain {
        Ok(name)
    } else {
        Err(UnsayableName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Whether a set is made and filled apart from the structure, over netlink, before the
/// structure naming it is installed: an imported list's, or an interval map or set of rules.
fn loaded_apart(set: &SetDef) -> bool {
    set.imported.is_some() || matches!(set.kind, SetKind::RangeMap(_) | SetKind::RuleSet(_))
}

/// The table block; the sets made apart from it (`loaded_apart`) only when `with_imported`
/// (their declaration is for people).
fn render_table(s: &mut String, r: &Ruleset, with_imported: bool) {
    let _ = writeln!(s, "table inet {} {{", r.table);
    for set in r.sets.iter().filter(|s| with_imported || !loaded_apart(s)) {
        render_set(s, set);
    }
    for (name, tag) in &r.counters {
        let _ = writeln!(
            s,
            "\tcounter {name} {{\n\t\tcomment {}\n\t}}",
            quoted(tag.prefix().trim_end_matches(": "))
        );
    }
    for name in &r.limits {
        let _ = writeln!(
            s,
            "\tlimit {name} {{\n\t\trate {LOG_RATE_PER_SECOND}/second burst {LOG_BURST} packets\n\t}}"
        );
    }
    for chain in &r.chains {
        let _ = writeln!(s, "\tchain {} {{", chain.name);
        match chain.hook {
            Some(Hook::Output { policy }) => {
                let policy = match policy {
                    ChainPolicy::Accept => "accept",
                    ChainPolicy::Drop => "drop",
                };
                let _ = writeln!(
                    s,
                    "\t\ttype filter hook output priority filter; policy {policy};"
                );
            }
            Some(Hook::NatOutput) => {
                // Below dstnat (-100, which nft names only for prerouting): before any other
                // manager's NAT (libvirt's, docker's) can send our VMs' DNS elsewhere.
                let _ = writeln!(s, "\t\ttype nat hook output priority -110;");
            }
            Some(Hook::RawOutput) => {
                let _ = writeln!(s, "\t\ttype filter hook output priority raw;");
            }
            Some(Hook::Forward { policy }) => {
                let policy = match policy {
                    ChainPolicy::Accept => "accept",
                    ChainPolicy::Drop => "drop",
                };
                let _ = writeln!(
                    s,
                    "\t\ttype filter hook forward priority filter; policy {policy};"
                );
            }
            Some(Hook::Input { policy }) => {
                let policy = match policy {
                    ChainPolicy::Accept => "accept",
                    ChainPolicy::Drop => "drop",
                };
                let _ = writeln!(
                    s,
                    "\t\ttype filter hook input priority filter; policy {policy};"
                );
            }
            Some(Hook::NatPrerouting) => {
                let _ = writeln!(s, "\t\ttype nat hook prerouting priority -110;");
            }
            Some(Hook::NatPostrouting) => {
                let _ = writeln!(s, "\t\ttype nat hook postrouting priority 90;");
            }
            None => {}
        }
        render_body(s, chain, "\t\t");
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
}

/// The whole table as a file that replaces it when loaded with `nft -f`, run after run.
///
/// Only the guest's file needs this: the helper's own applies go through [`render_batch`], which
/// replaces the structure in place and keeps the sets of imported lists, and previews show just
/// the table.
/// Declaring the table first makes the delete succeed where it does not exist yet; the three
/// commands are one transaction, so a reload never leaves the table missing or half-written.
pub fn render_replacing(r: &Ruleset) -> String {
    format!(
        "table inet {t}\ndelete table inet {t}\n{}",
        render_ruleset(r),
        t = r.table
    )
}

/// One chain as nft would list it (for `vm show`), then the mark maps and rule sets its rules
/// look up.
pub fn render_chain(r: &Ruleset, name: &str) -> String {
    let mut s = String::new();
    if let Some(chain) = r.chains.iter().find(|c| c.name == name) {
        let _ = writeln!(s, "table inet {} chain {} {{", r.table, chain.name);
        render_body(&mut s, chain, "\t");
        s.push_str("}\n");
        for rule in &chain.rules {
            let looked_up = match (&rule.verdict, rule.matches.as_slice()) {
                (RuleVerdict::AcceptMarkedByMap(_, map, _), _) => Some(map),
                (_, [Match::EndpointInSet(_, set)]) => Some(set),
                _ => None,
            };
            if let Some(map) = looked_up {
                if let Some(set) = r.sets.iter().find(|s| &s.name == map) {
                    let _ = writeln!(s, "table inet {} {{", r.table);
                    render_set(&mut s, set);
                    s.push_str("}\n");
                }
            }
        }
    }
    s
}

/// A chain's rules, each preceded by its notes, one per line.
fn render_body(s: &mut String, chain: &ChainDef, indent: &str) {
    let notes_at = |s: &mut String, at: usize| {
        for (_, note) in chain.notes.iter().filter(|(i, _)| *i == at) {
            // A line break would end the `#` comment and start a command.
            let note = note.replace(|c: char| c.is_control(), " ");
            let _ = writeln!(s, "{indent}# {note}");
        }
    };
    for (i, rule) in chain.rules.iter().enumerate() {
        notes_at(s, i);
        for line in rule_lines(rule) {
            let _ = writeln!(s, "{indent}{line}");
        }
    }
    notes_at(s, chain.rules.len());
}

fn render_set(s: &mut String, set: &SetDef) {
    let (ty, flags) = match set.kind {
        SetKind::MarkMap(family) | SetKind::RangeMap(family) | SetKind::RuleSet(family) => {
            return render_mark_map(s, set, family)
        }
        SetKind::Ipv4Nets => ("ipv4_addr", "interval"),
        SetKind::Ipv6Nets => ("ipv6_addr", "interval"),
        SetKind::Ipv4Learned => ("ipv4_addr", "timeout"),
        SetKind::Ipv6Learned => ("ipv6_addr", "timeout"),
        SetKind::Answers(Family::V4) => ("ipv4_addr", "timeout"),
        SetKind::Answers(Family::V6) => ("ipv6_addr", "timeout"),
        SetKind::Marks => ("mark", ""),
        SetKind::ConsoleEndpoints(Family::V4) => ("ipv4_addr . inet_service", ""),
        SetKind::ConsoleEndpoints(Family::V6) => ("ipv6_addr . inet_service", ""),
        SetKind::ConsoleAllowed(Family::V4) => ("uid . ipv4_addr . inet_service", ""),
        SetKind::ConsoleAllowed(Family::V6) => ("uid . ipv6_addr . inet_service", ""),
        SetKind::Unlisted(Family::V4) => ("ipv4_addr", "dynamic,timeout"),
        SetKind::Unlisted(Family::V6) => ("ipv6_addr", "dynamic,timeout"),
    };
    let _ = write!(s, "\tset {} {{\n\t\ttype {ty}\n", set.name);
    if !flags.is_empty() {
        let _ = writeln!(s, "\t\tflags {flags}");
    }
    if matches!(set.kind, SetKind::Answers(_)) {
        let _ = writeln!(s, "\t\tsize {MAX_ANSWERS}");
        s.push_str("\t\t# filled by the DNS forwarder as the VM's names are answered\n");
    }
    if matches!(set.kind, SetKind::Unlisted(_)) {
        let _ = writeln!(
            s,
            "\t\tsize {MAX_UNLISTED}\n\t\ttimeout {UNLISTED_SECONDS}s"
        );
        s.push_str(
            "\t\t# addresses just looked up in the list and not in it: filled by the rules\n",
        );
    }
    if let Some(f) = &set.follows {
        if f.timeout_seconds > 0 {
            let _ = writeln!(s, "\t\ttimeout {}s", f.timeout_seconds);
        }
        let _ = writeln!(s, "\t\t# follows the answers for {}", f.name);
    }
    if let Some(data) = &set.imported {
        // The elements are loaded on their own (and may be a million): name them, not list them.
        let _ = writeln!(
            s,
            "\t\t# imported list {1} ({0} ranges in both families), version {2}",
            data.ranges, data.list, data.hash
        );
        match data.role {
            ListRole::Slice if !whole_family(data.first, data.last) => {
                let _ = writeln!(s, "\t\t# its addresses {}-{}", data.first, data.last);
            }
            ListRole::Slice => {}
            ListRole::Added => {
                let _ = writeln!(s, "\t\t# its ranges the version its slices hold lacks");
            }
            ListRole::Removed => {
                let _ = writeln!(s, "\t\t# ranges of the version its slices hold it lacks");
            }
        }
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

/// A mark map: one element a line, so a preview's diff shows the rules that changed. A range
/// map or rule set has `flags interval`; a rule set maps to nothing.
fn render_mark_map(s: &mut String, map: &SetDef, family: Family) {
    let is_map = !matches!(map.kind, SetKind::RuleSet(_));
    let interval = !matches!(map.kind, SetKind::MarkMap(_));
    let _ = write!(
        s,
        "\t{} {} {{\n\t\ttype {}_addr . inet_proto . inet_service{}\n{}\t\tcounter\n",
        if is_map { "map" } else { "set" },
        map.name,
        match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        },
        if is_map { " : mark" } else { "" },
        if interval { "\t\tflags interval\n" } else { "" }
    );
    if !map.entries.is_empty() {
        s.push_str("\t\telements = {");
        for (i, e) in map.entries.iter().enumerate() {
            let ports = match e.ports {
                (first, last) if first == last => first.to_string(),
                (first, last) => format!("{first}-{last}"),
            };
            // A hash map's key is the address masked to its networks' length.
            let addr = match interval {
                true => net(&e.net),
                false => e.net.network().to_string(),
            };
            let _ = write!(
                s,
                "{}\n\t\t\t{addr} . {} . {ports}",
                if i == 0 { "" } else { "," },
                e.proto,
            );
            let _ = write!(s, " comment {}", quoted(&e.counter));
            if is_map {
                let _ = write!(s, " : {:#010x}", e.mark);
            }
        }
        s.push_str("\n\t\t}\n");
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

/// One rule as nft lines: one, or two for a rule logging to nflog at a limited rate — the first
/// logs (its limit, when exceeded, ends only that line), the second counts and decides, so a
/// flood is counted and decided in full and logged at the limit's rate.
pub(crate) fn rule_lines(rule: &RuleDef) -> Vec<String> {
    match &rule.log {
        Some(LogDef::Nflog { tag, limit }) => {
            let mut parts: Vec<String> = rule.matches.iter().map(render_match).collect();
            parts.push(format!("limit name {}", quoted(limit)));
            parts.push(format!(
                "log prefix {} group {LOG_GROUP}",
                quoted(&tag.prefix())
            ));
            vec![parts.join(" "), one_line(rule)]
        }
        _ => vec![one_line(rule)],
    }
}

/// How many lines (kernel rules) [`rule_lines`] writes for `rule`, without writing them.
pub(crate) fn line_count(rule: &RuleDef) -> usize {
    match &rule.log {
        Some(LogDef::Nflog { .. }) => 2,
        _ => 1,
    }
}

/// A rule's matches, counter, kernel log, mark, verdict and comment on one line.
fn one_line(rule: &RuleDef) -> String {
    let mut parts: Vec<String> = rule.matches.iter().map(render_match).collect();
    match &rule.counter {
        Counter::None => {}
        Counter::Anonymous => parts.push("counter".into()),
        Counter::Named(name) => parts.push(format!("counter name {}", quoted(name))),
    }
    if let Some(LogDef::Kernel(prefix)) = &rule.log {
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
        RuleVerdict::RememberDaddr(f, set) => format!("add @{set} {{ {} daddr }}", nft_family(*f)),
        RuleVerdict::DaddrMap(map) => {
            let family = match map.first() {
                Some((std::net::IpAddr::V6(_), _, _)) => Family::V6,
                _ => Family::V4,
            };
            let entries: Vec<String> = map
                .iter()
                .map(|(first, last, chain)| format!("{first}-{last} : jump {chain}"))
                .collect();
            format!(
                "{} daddr vmap {{ {} }}",
                nft_family(family),
                entries.join(", ")
            )
        }
        RuleVerdict::Redirect(port) => format!("redirect to :{port}"),
        RuleVerdict::CtZone(zone) => format!("ct original zone set {zone}"),
        RuleVerdict::Dnat(to, None) => format!("dnat ip to {to}"),
        RuleVerdict::Dnat(to, Some(port)) => format!("dnat ip to {to}:{port}"),
        RuleVerdict::Snat(to) => format!("snat ip to {to}"),
        RuleVerdict::Masquerade => "masquerade".into(),
        RuleVerdict::AcceptMarkedByMap(family, map, prefix) => format!(
            "ct mark set {} . meta l4proto . th dport map @{map} accept",
            masked_daddr(*family, *prefix)
        ),
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
        Match::Family(f) => format!("meta nfproto {}", nfproto(*f)),
        Match::L4Proto(p) => format!("meta l4proto {p}"),
        Match::Daddr(n) => format!("{} daddr {}", nft_family(family_of(n)), net(n)),
        Match::DaddrAnyOf(f, nets) => format!("{} daddr {}", nft_family(*f), net_list(nets)),
        Match::DaddrNoneOf(f, nets) => format!("{} daddr != {}", nft_family(*f), net_list(nets)),
        Match::DaddrInSet(f, set) => format!("{} daddr @{set}", nft_family(*f)),
        Match::DaddrNotInSet(f, set) => format!("{} daddr != @{set}", nft_family(*f)),
        Match::EndpointInSet(f, set) => {
            format!("{} daddr . meta l4proto . th dport @{set}", nft_family(*f))
        }
        Match::DaddrWithin(first, last) => {
            let f = if first.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            };
            format!("{} daddr {first}-{last}", nft_family(f))
        }
        Match::Dport(p, ports) => format!("{p} dport {}", port_expr(ports)),
        Match::Sport(p, ports) => format!("{p} sport {}", port_expr(ports)),
        Match::IcmpType(p, t) => format!("{p} type {t}"),
        Match::IcmpTypeAnyOf(p, types) => {
            let list: Vec<String> = types.iter().map(ToString::to_string).collect();
            format!("{p} type {{ {} }}", list.join(", "))
        }
        Match::HopLimit(h) => format!("ip6 hoplimit {h}"),
        Match::Oif(name) => format!("oif {}", quoted(name)),
        Match::IifName(name) => format!("iifname {}", quoted(name)),
        Match::OifName(name) => format!("oifname {}", quoted(name)),
        Match::OifNameNot(name) => format!("oifname != {}", quoted(name)),
        Match::Saddr(n) => format!("{} saddr {}", nft_family(family_of(n)), net(n)),
        Match::CtDnat => "ct status dnat".into(),
        Match::CtEstablished => "ct state established,related".into(),
        Match::CtMarkInSet(set) => format!("ct mark @{set}"),
        Match::CtNew => "ct state new".into(),
        Match::CtReply => "ct direction reply".into(),
        Match::ConsoleEndpoint(f, set) => {
            format!("{} daddr . tcp dport @{set}", nft_family(*f))
        }
        Match::SkUid(uid) => format!("meta skuid {uid}"),
        Match::SkUidNot(uid) => format!("meta skuid != {uid}"),
        Match::ConsoleNotAllowed(f, set) => {
            format!(
                "meta skuid . {} daddr . tcp dport != @{set}",
                nft_family(*f)
            )
        }
    }
}

/// The destination address masked to `prefix` bits, as nft writes it (no mask for a whole
/// address).
fn masked_daddr(family: Family, prefix: u8) -> String {
    let mask = match family {
        Family::V4 => ipnet::Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, prefix)
            .ok()
            .filter(|n| n.prefix_len() < 32)
            .map(|n| n.netmask().to_string()),
        Family::V6 => ipnet::Ipv6Net::new(std::net::Ipv6Addr::UNSPECIFIED, prefix)
            .ok()
            .filter(|n| n.prefix_len() < 128)
            .map(|n| n.netmask().to_string()),
    };
    match mask {
        Some(mask) => format!("{} daddr & {mask}", nft_family(family)),
        None => format!("{} daddr", nft_family(family)),
    }
}

/// Networks as an anonymous set, braces even for one (as nft lists them).
fn net_list(nets: &[ipnet::IpNet]) -> String {
    let list: Vec<String> = nets.iter().map(net).collect();
    format!("{{ {} }}", list.join(", "))
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

/// A string in nft's quotes. nft's scanner knows no escapes: a `"` would end the string and the
/// rest would be read as commands, and a line break would end the command. Validation refuses
/// control characters and the compiler already replaces quotes in comments; this is the last
/// line of defence at the text boundary, so no caller can forget it.
fn quoted(s: &str) -> String {
    let safe: String = s
        .chars()
        .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
        .collect();
    format!("\"{safe}\"")
}

/// Whether `first..=last` is a family's whole address space.
fn whole_family(first: std::net::IpAddr, last: std::net::IpAddr) -> bool {
    [Family::V4, Family::V6]
        .into_iter()
        .any(|f| family_bounds(f) == (first, last))
}
