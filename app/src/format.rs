//! Words for the policy model: how a verdict, a destination, a rule or an assignment reads in
//! the window; and the few words every page needs (times, "3 hours ago", counts, the helper's
//! sentences capitalized). Pure functions of their arguments (and the clock, passed in),
//! translated with gettext.

use crate::i18n::{gettext, i18n_f, ni18n_f};
use palisade_dbus::policy::{Access, Destination, NetworkMode, PortSet, Protocol, Rule, Verdict};
use relm4::gtk::glib;
use std::time::SystemTime;

/// Separator between the parts of a row's subtitle.
const SEP: &str = " · ";

/// The name of a verdict, as on the coloured badge in front of a rule.
pub fn verdict(v: Verdict) -> String {
    match v {
        // Translators: what a firewall rule does with matching traffic: let it through.
        Verdict::Accept => gettext("Accept"),
        // Translators: what a firewall rule does with matching traffic: discard it silently.
        Verdict::Drop => gettext("Drop"),
        // Translators: what a firewall rule does with matching traffic: refuse it (TCP reset).
        Verdict::Reject => gettext("Reject"),
    }
}

/// What happens to traffic no rule matched, for a VM's summary line.
pub fn otherwise(v: Verdict) -> String {
    match v {
        Verdict::Accept => gettext("anything else accepted"),
        Verdict::Drop => gettext("anything else dropped"),
        Verdict::Reject => gettext("anything else rejected"),
    }
}

/// The style class of a verdict's badge.
pub fn verdict_css(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "success",
        Verdict::Drop => "error",
        Verdict::Reject => "warning",
    }
}

/// Where a rule points.
pub fn destination(d: &Destination) -> String {
    match d {
        Destination::Any => gettext("Any destination"),
        Destination::Net(_) | Destination::Host(_) | Destination::Wildcard(_) => d.to_string(),
        Destination::Blocklist(name) => i18n_f("Blocklist {name}", &[("name", name.as_str())]),
        // Translators: the special destination "dns" of a rule: the DNS servers the host uses.
        Destination::Dns => gettext("DNS servers"),
    }
}

/// The protocol a rule matches.
pub fn protocol(p: Protocol) -> String {
    match p {
        Protocol::Any => gettext("any protocol"),
        Protocol::Tcp => "TCP".to_owned(),
        Protocol::Udp => "UDP".to_owned(),
        Protocol::Icmp => "ICMP".to_owned(),
        Protocol::Icmpv6 => "ICMPv6".to_owned(),
    }
}

/// The ports of a rule, with the right plural.
pub fn ports(p: &PortSet) -> String {
    let single = matches!(p.ranges(), [r] if r.first() == r.last());
    let text = p.to_string();
    ni18n_f(
        "port {ports}",
        "ports {ports}",
        if single { 1 } else { 2 },
        &[("ports", &text)],
    )
}

/// Everything about a rule except its verdict and destination: protocol, ports or ICMP type,
/// expiry, logging and comment.
pub fn rule_details(rule: &Rule, now: SystemTime) -> String {
    let mut parts = Vec::new();
    if !rule.enabled {
        // Translators: a rule kept in the policy that decides nothing (enabled = false).
        parts.push(gettext("turned off"));
    }
    parts.push(protocol(rule.protocol));
    if let Some(p) = &rule.ports {
        parts.push(ports(p));
    } else if rule.protocol.has_ports() {
        parts.push(gettext("all ports"));
    }
    if let Some(t) = rule.icmp_type {
        parts.push(i18n_f("ICMP type {type}", &[("type", &t.to_string())]));
    }
    if let Some(when) = rule.expires {
        // "expires in 12 min", "expires at 18:00", "expired": the rows say it again every
        // minute.
        parts.push(crate::expiry::words(when, now));
    }
    if rule.log {
        // Translators: a firewall rule writes what it matches to the log.
        parts.push(gettext("logged"));
    }
    if !rule.comment.is_empty() {
        parts.push(i18n_f("“{comment}”", &[("comment", &rule.comment)]));
    }
    parts.join(SEP)
}

/// A VM's memory, in GiB when it is a whole number of them.
pub fn memory(mib: u32) -> String {
    let gib = mib / 1024;
    if gib > 0 && gib * 1024 == mib {
        i18n_f("{size} GiB", &[("size", &gib.to_string())])
    } else {
        i18n_f("{size} MiB", &[("size", &mib.to_string())])
    }
}

/// How a VM reaches the network.
pub fn network(mode: NetworkMode) -> String {
    match mode {
        NetworkMode::User => gettext("User-mode networking"),
        NetworkMode::None => gettext("No network"),
        NetworkMode::Bridge => gettext("Bridged to a lab network"),
    }
}

/// Where a bridged VM sits: its lab network and its address there.
pub fn bridged(network: &str, address: &str) -> String {
    i18n_f(
        // Translators: a VM's network: {network} is the name of a lab network (a bridge on the
        // host), {address} the VM's IPv4 address on it.
        "Bridged to lab network {network}, address {address}",
        &[("network", network), ("address", address)],
    )
}

/// How a bridged VM with a NAT address is reached from outside: the address and its forwarded
/// ports, each as (`tcp` or `udp`, port on the address, port on the VM); none: every port.
pub fn reachable(nat_address: &str, forwards: &[(&str, u16, u16)]) -> String {
    if forwards.is_empty() {
        return i18n_f(
            // Translators: a bridged VM's NAT: connections to this host address reach the VM.
            "Reachable at {address} on every port",
            &[("address", nat_address)],
        );
    }
    let ports = forwards
        .iter()
        .map(|(proto, port, to_port)| {
            if port == to_port {
                format!("{proto} {port}")
            } else {
                format!("{proto} {port} → {to_port}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    i18n_f(
        // Translators: a bridged VM's NAT: connections to these ports of this host address
        // reach the VM; {ports} is like "tcp 2222 → 22, udp 53".
        "Reachable at {address} ({ports})",
        &[("address", nat_address), ("ports", &ports)],
    )
}

/// Users and groups granted something; "Nobody" when empty.
pub fn access(a: &Access) -> String {
    if a.is_empty() {
        // Translators: no user and no group may operate this VM or open its console.
        return gettext("Nobody");
    }
    let mut parts = Vec::new();
    if !a.users.is_empty() {
        let users = join(a.users.iter().map(|u| u.as_str()));
        parts.push(ni18n_f(
            "user {users}",
            "users {users}",
            count(a.users.len()),
            &[("users", &users)],
        ));
    }
    if !a.groups.is_empty() {
        let groups = join(a.groups.iter().map(|g| g.as_str()));
        parts.push(ni18n_f(
            "group {groups}",
            "groups {groups}",
            count(a.groups.len()),
            &[("groups", &groups)],
        ));
    }
    parts.join(SEP)
}

/// Unix seconds as local date and time.
pub fn unix_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| glib::DateTime::from_unix_local(s).ok())
        .and_then(|dt| dt.format("%Y-%m-%d %H:%M:%S").ok())
        .map(|s| s.to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// How long ago Unix second `then` was at `now`: "just now", "5 minutes ago", "3 hours ago",
/// "2 days ago"; a time in the future (a clock set back) reads "just now".
pub fn ago(then: u64, now: u64) -> String {
    let secs = now.saturating_sub(then);
    // Each plural written out, so that xgettext finds the words.
    match secs {
        0..=59 => gettext("just now"),
        60..=3599 => {
            let n = secs / 60;
            ni18n_f(
                "{count} minute ago",
                "{count} minutes ago",
                saturated(n),
                &[("count", &n.to_string())],
            )
        }
        3600..=86_399 => {
            let n = secs / 3600;
            ni18n_f(
                "{count} hour ago",
                "{count} hours ago",
                saturated(n),
                &[("count", &n.to_string())],
            )
        }
        _ => {
            let n = secs / 86_400;
            ni18n_f(
                "{count} day ago",
                "{count} days ago",
                saturated(n),
                &[("count", &n.to_string())],
            )
        }
    }
}

/// A 64-bit count for `ngettext`, saturating rather than wrapping.
pub fn saturated(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The sentence with its first letter in upper case (the helper's sentences start in lower case
/// so that command-line tools can prefix them).
pub fn capitalized(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A count for `ngettext`, saturating rather than wrapping.
pub fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Names joined for a sentence.
fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// How many of a list's rules name a host that is not answering, for the list's summary line
/// (the rows themselves say which and why).
pub fn names_failing(count: usize) -> String {
    ni18n_f(
        "{count} name not answering",
        "{count} names not answering",
        self::count(count),
        &[("count", &count.to_string())],
    )
}

/// Most addresses a rule row lists of a name's last answer.
const NAME_ADDRESSES_SHOWN: usize = 3;

/// The state of the name a rule names, for its row: why its last lookup failed, or the
/// addresses its last answer admitted and when, or that it was not asked yet.
pub fn name_state(state: &palisade_dbus::types::DnsNameState) -> String {
    if !state.problem.is_empty() {
        // Translators: a rule's host name could not be resolved; {problem} says why.
        return i18n_f(
            "Name not answering: {problem}",
            &[("problem", &state.problem)],
        );
    }
    if state.last_answer_at == 0 {
        // Translators: no lookup of a rule's host name has been answered yet.
        return gettext("Name not asked yet");
    }
    let mut shown: Vec<&str> = state
        .addresses
        .iter()
        .take(NAME_ADDRESSES_SHOWN)
        .map(String::as_str)
        .collect();
    let more = state.addresses.len().saturating_sub(NAME_ADDRESSES_SHOWN);
    let more_text;
    if more > 0 {
        more_text = ni18n_f(
            "{count} more",
            "{count} more",
            count(more),
            &[("count", &more.to_string())],
        );
        shown.push(&more_text);
    }
    let at = unix_time(state.last_answer_at);
    if shown.is_empty() {
        // Translators: a rule's host name was answered at {time}, without addresses.
        i18n_f("Name answered {time}, no addresses", &[("time", &at)])
    } else {
        // Translators: the addresses a rule's host name had in its last answer, and when.
        i18n_f(
            "Name answered {time}: {addresses}",
            &[("time", &at), ("addresses", &shown.join(", "))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::Policy;
    use std::time::{Duration, UNIX_EPOCH};

    fn policy(doc: &str) -> Policy {
        match Policy::parse(doc.as_bytes()) {
            Ok(p) => p.policy,
            Err(findings) => panic!("{findings:?}"),
        }
    }

    const DOC: &str = r#"
[[vm]]
name = "work"
disk = "work.qcow2"
memory = "2G"
cpus = 2
network = "user"
operators = { users = ["alice"], groups = [] }
console = { users = ["alice", "bob"], groups = ["staff"] }
default = "drop"
[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = "443,8000-8100"
expires = 2030-01-01T00:00:00Z
log = true
comment = "mail"
[[vm.rule]]
action = "reject"
destination = "*.example.com"
proto = "udp"
ports = 53
"#;

    #[test]
    fn describes_rules() {
        let p = policy(DOC);
        let vm = &p.vms[0];
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = rule_details(&vm.rules[0], now);
        assert!(
            first.starts_with("TCP · ports 443,8000-8100 · expires on 20"),
            "{first}"
        );
        assert!(first.ends_with(" · logged · “mail”"), "{first}");
        let later = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert!(rule_details(&vm.rules[0], later).contains(" · expired · "));
        assert_eq!(rule_details(&vm.rules[1], now), "UDP · port 53");
        let off = Rule {
            enabled: false,
            ..vm.rules[1].clone()
        };
        assert_eq!(rule_details(&off, now), "turned off · UDP · port 53");
        assert_eq!(destination(&vm.rules[1].destination), "*.example.com");
        assert_eq!(destination(&vm.rules[0].destination), "127.0.0.1");
    }

    #[test]
    fn describes_vm_settings() {
        let p = policy(DOC);
        let vm = &p.vms[0];
        assert_eq!(memory(vm.memory_mib), "2 GiB");
        assert_eq!(memory(1536), "1536 MiB");
        assert_eq!(access(&vm.operators), "user alice");
        assert_eq!(access(&vm.console), "users alice, bob · group staff");
        assert_eq!(access(&Access::default()), "Nobody");
        assert_eq!(verdict(vm.default_action), "Drop");
    }

    #[test]
    fn describes_a_bridged_vms_network() {
        assert_eq!(
            bridged("lab", "10.77.0.10"),
            "Bridged to lab network lab, address 10.77.0.10"
        );
        assert_eq!(
            reachable("192.0.2.10", &[("tcp", 2222, 22), ("udp", 53, 53)]),
            "Reachable at 192.0.2.10 (tcp 2222 → 22, udp 53)"
        );
        assert_eq!(
            reachable("192.0.2.10", &[]),
            "Reachable at 192.0.2.10 on every port"
        );
    }

    #[test]
    fn capitalizes_the_first_letter_only() {
        assert_eq!(capitalized("cannot reach it: X"), "Cannot reach it: X");
        assert_eq!(capitalized("éa"), "Éa");
        assert_eq!(capitalized(""), "");
    }

    #[test]
    fn says_how_long_ago() {
        assert_eq!(ago(1_000, 1_030), "just now");
        assert_eq!(ago(1_000, 900), "just now");
        assert_eq!(ago(0, 60), "1 minute ago");
        assert_eq!(ago(0, 3599), "59 minutes ago");
        assert_eq!(ago(0, 3 * 3600 + 59), "3 hours ago");
        assert_eq!(ago(0, 86_400), "1 day ago");
        assert_eq!(ago(0, 10 * 86_400), "10 days ago");
    }

    #[test]
    fn formats_times() {
        assert!(unix_time(1_700_000_000).starts_with("2023-11-1"));
    }

    #[test]
    fn a_names_state_says_why_it_fails_or_what_it_answered() {
        use palisade_dbus::types::DnsNameState;
        let mut state = DnsNameState {
            vm: "host".into(),
            pattern: "mail.example.com".into(),
            rules: vec![1],
            addresses: Vec::new(),
            last_answer_at: 0,
            problem: String::new(),
        };
        assert_eq!(name_state(&state), "Name not asked yet");
        state.last_answer_at = 1_900_000_000;
        state.addresses = [
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.5",
        ]
        .map(String::from)
        .to_vec();
        let text = name_state(&state);
        assert!(
            text.starts_with("Name answered ")
                && text.ends_with(": 192.0.2.1, 192.0.2.2, 192.0.2.3, 2 more"),
            "{text}"
        );
        state.problem = "no answer within 2 s".into();
        assert_eq!(
            name_state(&state),
            "Name not answering: no answer within 2 s"
        );
    }
}
