//! Words and numbers for the Activity page, as pure functions of the helper's log entries (and
//! the clock, passed in): who sent a packet, where to, which rule decided it, whether an entry
//! matches the search, the drops of each minute of the last hour for the chart and its sentence
//! for screen readers, and the policy snippet **Allow this** offers. Nothing here applies
//! anything or talks to the helper.

use crate::format;
use crate::i18n::{gettext, i18n_f, ni18n_f};
use palisade_dbus::policy::Verdict;
use palisade_dbus::types::{LogOwner, LoggedPacket, LoggedRule, LoggedRuleKind, PacketVerdict};
use relm4::gtk::glib;
use std::collections::BTreeMap;

/// Bars of the chart: one per minute of the last hour.
pub const MINUTES: usize = 60;
const MINUTE_MS: u64 = 60_000;

/// The policy's verdict of the same name, so a packet's verdict reads and looks like a rule's.
pub fn verdict(v: PacketVerdict) -> Verdict {
    match v {
        PacketVerdict::Accept => Verdict::Accept,
        PacketVerdict::Drop => Verdict::Drop,
        PacketVerdict::Reject => Verdict::Reject,
    }
}

/// Whether the packet was kept out (dropped or rejected): what the chart counts.
pub fn is_refused(p: &LoggedPacket) -> bool {
    p.rule.verdict != PacketVerdict::Accept
}

/// Who sent the packet: its VM, else its local user, else a dash (a packet from elsewhere).
pub fn who(p: &LoggedPacket) -> String {
    if !p.vm.is_empty() {
        p.vm.clone()
    } else if !p.user.is_empty() {
        p.user.clone()
    } else {
        "—".to_owned()
    }
}

/// Where the packet went: `192.0.2.1:443`, `[2001:db8::1]:443`, or the address alone when the
/// protocol has no ports.
pub fn destination(p: &LoggedPacket) -> String {
    let address = &p.destination;
    if p.destination_port == 0 {
        address.clone()
    } else if address.contains(':') {
        format!("[{address}]:{}", p.destination_port)
    } else {
        format!("{address}:{}", p.destination_port)
    }
}

/// The protocol's usual name, or its number for the rare ones.
pub fn protocol(p: &LoggedPacket) -> String {
    match p.protocol.as_str() {
        "tcp" => "TCP".to_owned(),
        "udp" => "UDP".to_owned(),
        "icmp" => "ICMP".to_owned(),
        "icmpv6" => "ICMPv6".to_owned(),
        "arp" => "ARP".to_owned(),
        // A frame a lab port guard dropped before its protocol could be read.
        "" => String::new(),
        // Translators: an IP protocol without a common name, by its number.
        other => i18n_f("protocol {number}", &[("number", other)]),
    }
}

/// Which rule decided, in words: "VM work, rule 2", "work's default action", "host rule 3",
/// "console guard".
pub fn rule(r: &LoggedRule) -> String {
    let first = r.first_rule.to_string();
    let last = r.last_rule.to_string();
    let merged = r.first_rule != r.last_rule;
    match (r.owner, r.kind) {
        (_, LoggedRuleKind::Spoofing) => {
            // Translators: a lab VM sent a frame from a MAC or address that is not its own (or
            // a kind of traffic its port does not carry); the firewall dropped it.
            i18n_f("{vm}'s port guard (not its own address)", &[("vm", &r.vm)])
        }
        (_, LoggedRuleKind::Refused) | (LogOwner::Console, _) => {
            // Translators: the part of the firewall that keeps users from consoles they may not
            // open.
            gettext("console guard")
        }
        (LogOwner::Vm, LoggedRuleKind::Default) => {
            // Translators: what a VM's rules do with traffic none of them matched.
            i18n_f("{vm}'s default action", &[("vm", &r.vm)])
        }
        (LogOwner::Vm, LoggedRuleKind::Numbered) if merged => i18n_f(
            "VM {vm}, rules {first}–{last}",
            &[("vm", &r.vm), ("first", &first), ("last", &last)],
        ),
        (LogOwner::Vm, LoggedRuleKind::Numbered) => i18n_f(
            "VM {vm}, rule {number}",
            &[("vm", &r.vm), ("number", &first)],
        ),
        (LogOwner::Host, LoggedRuleKind::Numbered) if merged => i18n_f(
            "host rules {first}–{last}",
            &[("first", &first), ("last", &last)],
        ),
        (LogOwner::Host, LoggedRuleKind::Numbered) => {
            i18n_f("host rule {number}", &[("number", &first)])
        }
        (LogOwner::Host, LoggedRuleKind::Default) => gettext("host rules"),
    }
}

/// What the search looks through: every word a row shows about the packet, and the raw ones
/// behind them (the user of a VM's process, the port, the protocol as the helper names it),
/// lower-cased once.
pub fn search_text(p: &LoggedPacket) -> String {
    [
        who(p),
        p.vm.clone(),
        p.user.clone(),
        p.rule.vm.clone(),
        destination(p),
        p.destination_port.to_string(),
        p.source.clone(),
        p.source_mac.clone(),
        p.protocol.clone(),
        protocol(p),
        rule(&p.rule),
        format::verdict(verdict(p.rule.verdict)),
    ]
    .join(" ")
    .to_lowercase()
}

/// Whether every word of the search `query` occurs in `text` (from [`search_text`]), ignoring
/// case; an empty search matches everything.
pub fn matches(text: &str, query: &str) -> bool {
    query
        .split_whitespace()
        .all(|word| text.contains(&word.to_lowercase()))
}

/// Whether the packet concerns VM `vm`: sent by it, or decided by its rules.
pub fn involves(p: &LoggedPacket, vm: &str) -> bool {
    p.vm == vm || (p.rule.owner == LogOwner::Vm && p.rule.vm == vm)
}

/// What the page's search and VM filter let through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The words searched for.
    pub query: String,
    /// Only what concerns this VM; `None` for everything.
    pub vm: Option<String>,
}

impl Filter {
    /// Whether the packet, with its [`search_text`], is shown.
    pub fn accepts(&self, p: &LoggedPacket, text: &str) -> bool {
        self.vm.as_deref().is_none_or(|vm| involves(p, vm)) && matches(text, &self.query)
    }
}

/// The VMs a packet concerns (for the filter's list), without repeats.
pub fn vms_of(p: &LoggedPacket) -> impl Iterator<Item = &str> {
    let by_rule = (p.rule.owner == LogOwner::Vm && p.rule.vm != p.vm).then_some(p.rule.vm.as_str());
    std::iter::once(p.vm.as_str())
        .chain(by_rule)
        .filter(|v| !v.is_empty())
}

/// When the packet was logged, in local time: the time of day for today's, date and time for
/// older ones.
pub fn clock_time(at_ms: u64, now_ms: u64) -> String {
    let local = |ms: u64| {
        i64::try_from(ms / 1_000)
            .ok()
            .and_then(|s| glib::DateTime::from_unix_local(s).ok())
    };
    let (Some(at), Some(now)) = (local(at_ms), local(now_ms)) else {
        return format::unix_time(at_ms / 1_000);
    };
    let today = at.ymd() == now.ymd();
    at.format(if today {
        "%H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M:%S"
    })
    .map(|s| s.to_string())
    .unwrap_or_else(|_| format::unix_time(at_ms / 1_000))
}

/// The note shown when the helper could not log everything.
pub fn missed_note(missed: u64) -> String {
    ni18n_f(
        "{count} entry was not logged: a flood; the counters still count it",
        "{count} entries were not logged: a flood; the counters still count them",
        format::saturated(missed),
        &[("count", &missed.to_string())],
    )
}

/// Refused packets per wall-clock minute, kept for the last hour only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DropChart {
    /// Minutes since 1970 → refused packets logged in that minute.
    minutes: BTreeMap<u64, u32>,
}

impl DropChart {
    /// Counts the packet if it was refused.
    pub fn add(&mut self, p: &LoggedPacket) {
        if is_refused(p) {
            let n = self.minutes.entry(p.at_ms / MINUTE_MS).or_default();
            *n = n.saturating_add(1);
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.minutes.clear();
    }

    /// Forgets minutes older than the chart shows at `now_ms`, so it holds at most an hour.
    pub fn prune(&mut self, now_ms: u64) {
        let oldest = (now_ms / MINUTE_MS).saturating_sub(MINUTES as u64 - 1);
        self.minutes = self.minutes.split_off(&oldest);
    }

    /// The bars at `now_ms`, oldest first; the last is the minute under way.
    pub fn bars(&self, now_ms: u64) -> [u32; MINUTES] {
        let mut bars = [0; MINUTES];
        let current = now_ms / MINUTE_MS;
        for (minute, n) in &self.minutes {
            if let Some(age) = current.checked_sub(*minute) {
                if let Some(i) = (MINUTES - 1).checked_sub(usize::try_from(age).unwrap_or(MINUTES))
                {
                    bars[i] = *n;
                }
            }
        }
        bars
    }
}

/// The chart in one sentence, for screen readers: the total, the busiest minute and the last.
pub fn chart_description(bars: &[u32; MINUTES]) -> String {
    let total: u64 = bars.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return gettext("Drops per minute over the last hour: none");
    }
    let most = bars.iter().copied().max().unwrap_or(0);
    let last = bars[MINUTES - 1];
    i18n_f(
        "Drops per minute over the last hour: {total} in all, most {most}, last minute {last}",
        &[
            ("total", &total.to_string()),
            ("most", &most.to_string()),
            ("last", &last.to_string()),
        ],
    )
}

/// A remote console of the live policy, so a console refusal can name the entry to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConsoleHint {
    /// Its name.
    pub name: String,
    /// Its address as the policy writes it.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The users it admits now.
    pub users: Vec<String>,
}

/// The dialog's sentence above the snippet.
pub fn allow_body(p: &LoggedPacket) -> String {
    if is_console(&p.rule) {
        i18n_f(
            "To let {user} open this console, change the policy as below and apply it. Nothing changes until then.",
            &[("user", &who(p))],
        )
    } else {
        i18n_f(
            "To let {who} reach {destination}, add this to the policy and apply it. Nothing changes until then.",
            &[("who", &who(p)), ("destination", &destination(p))],
        )
    }
}

fn is_console(r: &LoggedRule) -> bool {
    r.owner == LogOwner::Console || r.kind == LoggedRuleKind::Refused
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as TOML comment lines (a translation may hold line breaks of its own).
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// A policy snippet that would let this packet through, for the dialog of **Allow this**; `None`
/// for a packet that was let through. A VM's or the host's refusal becomes an accepting rule of
/// the same owner, placed before the rule that refused it; a console refusal becomes the user
/// added to that console's users. Pure text: nothing is applied.
pub fn allow_snippet(p: &LoggedPacket, consoles: &[RemoteConsoleHint]) -> Option<String> {
    if !is_refused(p) {
        return None;
    }
    let mut out = String::new();
    if is_console(&p.rule) {
        console_snippet(&mut out, p, consoles);
        return Some(out);
    }
    let r = &p.rule;
    let table = match (r.owner, r.kind) {
        (LogOwner::Host, LoggedRuleKind::Numbered) => {
            comment(
                &mut out,
                &i18n_f(
                    "With the host-wide rules, before host rule {number}:",
                    &[("number", &r.first_rule.to_string())],
                ),
            );
            "[[host_rule]]"
        }
        (LogOwner::Host, _) => {
            comment(&mut out, &gettext("With the host-wide rules:"));
            "[[host_rule]]"
        }
        (LogOwner::Vm, LoggedRuleKind::Numbered) => {
            comment(
                &mut out,
                &i18n_f(
                    "In the [[vm]] entry with name = {name}, before its rule {number}:",
                    &[
                        ("name", &toml_string(&r.vm)),
                        ("number", &r.first_rule.to_string()),
                    ],
                ),
            );
            "[[vm.rule]]"
        }
        (LogOwner::Vm, _) | (LogOwner::Console, _) => {
            comment(
                &mut out,
                &i18n_f(
                    "In the [[vm]] entry with name = {name}, after its rules:",
                    &[("name", &toml_string(&r.vm))],
                ),
            );
            "[[vm.rule]]"
        }
    };
    out.push_str(table);
    out.push_str("\naction = \"accept\"\n");
    out.push_str(&format!("destination = {}\n", toml_string(&p.destination)));
    match p.protocol.as_str() {
        proto @ ("tcp" | "udp") => {
            out.push_str(&format!("proto = \"{proto}\"\n"));
            if p.destination_port != 0 {
                out.push_str(&format!("ports = {}\n", p.destination_port));
            }
        }
        proto @ ("icmp" | "icmpv6") => out.push_str(&format!("proto = \"{proto}\"\n")),
        _ => {}
    }
    // Translators: the comment of a firewall rule written from the Activity page.
    let note = gettext("allowed from the activity log");
    out.push_str(&format!("comment = {}\n", toml_string(&note)));
    Some(out)
}

/// The snippet for a console refusal: the user added to the console's users.
fn console_snippet(out: &mut String, p: &LoggedPacket, consoles: &[RemoteConsoleHint]) {
    let at = destination(p);
    if p.user.is_empty() || p.user.starts_with('#') {
        comment(
            out,
            &i18n_f(
                "The console at {destination} was refused to a process without a user name ({user}).",
                &[("destination", &at), ("user", &who(p))],
            ),
        );
        comment(
            out,
            &gettext("The policy admits users by name: give that process an account of its own."),
        );
        return;
    }
    let remote = consoles
        .iter()
        .find(|c| c.host == p.destination && c.port == p.destination_port);
    if let Some(console) = remote {
        comment(
            out,
            &i18n_f(
                "In the [[remote_console]] entry with name = {name}:",
                &[("name", &toml_string(&console.name))],
            ),
        );
        let mut users = console.users.clone();
        if !users.contains(&p.user) {
            users.push(p.user.clone());
        }
        let list: Vec<String> = users.iter().map(|u| toml_string(u)).collect();
        out.push_str(&format!("users = [{}]\n", list.join(", ")));
        return;
    }
    let user = toml_string(&p.user);
    comment(
        out,
        &i18n_f(
            "The console at {destination} was refused to {user}. For a VM of this computer, add them in its [[vm]] entry:",
            &[("destination", &at), ("user", &p.user)],
        ),
    );
    out.push_str(&format!("console = {{ users = [{user}] }}\n"));
    comment(
        out,
        &gettext("For a console on another computer, in its [[remote_console]] entry:"),
    );
    out.push_str(&format!("users = [{user}]\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::Policy;

    fn packet(
        owner: LogOwner,
        kind: LoggedRuleKind,
        first: u32,
        verdict: PacketVerdict,
    ) -> LoggedPacket {
        LoggedPacket {
            seq: 7,
            at_ms: 1_700_000_000_000,
            rule: LoggedRule {
                owner,
                vm: if owner == LogOwner::Vm {
                    "work".into()
                } else {
                    String::new()
                },
                kind,
                first_rule: first,
                last_rule: first,
                verdict,
            },
            vm: "work".into(),
            user: "palisade-vm-work".into(),
            protocol: "tcp".into(),
            source: "127.0.0.1".into(),
            destination: "127.0.0.1".into(),
            source_port: 40_000,
            destination_port: 8444,
            length: 60,
            source_mac: String::new(),
        }
    }

    fn rejected() -> LoggedPacket {
        packet(
            LogOwner::Vm,
            LoggedRuleKind::Numbered,
            2,
            PacketVerdict::Reject,
        )
    }

    const WORK: &str = "[[vm]]\nname = \"work\"\ndefault = \"drop\"\n\n[[vm.rule]]\naction = \"reject\"\ndestination = \"127.0.0.1\"\nproto = \"tcp\"\nports = 8444\n\n";

    fn parses(doc: &str) -> Policy {
        match Policy::parse(doc.as_bytes()) {
            Ok(p) => p.policy,
            Err(findings) => panic!("{findings:?}\n{doc}"),
        }
    }

    #[test]
    fn names_who_where_and_which_rule() {
        let mut p = rejected();
        assert_eq!(who(&p), "work");
        assert_eq!(destination(&p), "127.0.0.1:8444");
        assert_eq!(protocol(&p), "TCP");
        assert_eq!(rule(&p.rule), "VM work, rule 2");
        p.rule.last_rule = 4;
        assert_eq!(rule(&p.rule), "VM work, rules 2–4");
        p.vm.clear();
        assert_eq!(who(&p), "palisade-vm-work");
        p.user.clear();
        assert_eq!(who(&p), "—");
        p.destination = "2001:db8::1".into();
        assert_eq!(destination(&p), "[2001:db8::1]:8444");
        p.destination_port = 0;
        p.protocol = "47".into();
        assert_eq!(destination(&p), "2001:db8::1");
        assert_eq!(protocol(&p), "protocol 47");

        let default = packet(
            LogOwner::Vm,
            LoggedRuleKind::Default,
            0,
            PacketVerdict::Drop,
        );
        assert_eq!(rule(&default.rule), "work's default action");
        let host = packet(
            LogOwner::Host,
            LoggedRuleKind::Numbered,
            3,
            PacketVerdict::Drop,
        );
        assert_eq!(rule(&host.rule), "host rule 3");
        let guard = packet(
            LogOwner::Console,
            LoggedRuleKind::Refused,
            0,
            PacketVerdict::Reject,
        );
        assert_eq!(rule(&guard.rule), "console guard");
    }

    #[test]
    fn search_matches_every_word_anywhere() {
        let text = search_text(&rejected());
        assert!(matches(&text, ""));
        assert!(matches(&text, "8444"));
        assert!(matches(&text, "WORK tcp"));
        assert!(matches(&text, "rule 2"));
        assert!(matches(&text, "reject"));
        assert!(matches(&text, "palisade-vm-work"));
        assert!(!matches(&text, "udp"));
        assert!(!matches(&text, "8444 banking"));
    }

    #[test]
    fn the_filter_takes_the_vm_and_the_words() {
        let p = rejected();
        let text = search_text(&p);
        let mut filter = Filter::default();
        assert!(filter.accepts(&p, &text));
        filter.vm = Some("banking".into());
        assert!(!filter.accepts(&p, &text));
        filter.vm = Some("work".into());
        filter.query = "8444".into();
        assert!(filter.accepts(&p, &text));
        filter.query = "8445".into();
        assert!(!filter.accepts(&p, &text));
    }

    #[test]
    fn a_packet_involves_its_sender_and_its_rules_owner() {
        let mut p = rejected();
        assert!(involves(&p, "work"));
        assert!(!involves(&p, "banking"));
        p.vm = "banking".into();
        assert!(involves(&p, "work") && involves(&p, "banking"));
        assert_eq!(vms_of(&p).collect::<Vec<_>>(), ["banking", "work"]);
        assert_eq!(vms_of(&rejected()).collect::<Vec<_>>(), ["work"]);
    }

    #[test]
    fn the_chart_counts_refusals_per_minute_of_the_last_hour() {
        let now = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS + 30_000;
        let mut chart = DropChart::default();
        let at = |ms: u64, v: PacketVerdict| {
            let mut p = rejected();
            p.at_ms = ms;
            p.rule.verdict = v;
            p
        };
        chart.add(&at(now, PacketVerdict::Reject));
        chart.add(&at(now - 10_000, PacketVerdict::Drop));
        chart.add(&at(now - 10_000, PacketVerdict::Accept));
        chart.add(&at(now - 60_000, PacketVerdict::Drop));
        chart.add(&at(now - 59 * 60_000, PacketVerdict::Drop));
        chart.add(&at(now - 60 * 60_000, PacketVerdict::Drop));
        chart.add(&at(now + 60_000, PacketVerdict::Drop));
        let bars = chart.bars(now);
        assert_eq!(bars[59], 2, "the minute under way");
        assert_eq!(bars[58], 1);
        assert_eq!(bars[0], 1, "59 minutes ago");
        assert_eq!(
            bars.iter().sum::<u32>(),
            4,
            "an hour ago and the future are left out"
        );
        assert_eq!(
            chart_description(&bars),
            "Drops per minute over the last hour: 4 in all, most 2, last minute 2"
        );
        chart.prune(now);
        assert_eq!(chart.minutes.len(), 4, "the hour-old minute is forgotten");
        assert_eq!(chart.bars(now), bars);
        assert_eq!(
            chart_description(&[0; MINUTES]),
            "Drops per minute over the last hour: none"
        );
    }

    #[test]
    fn the_missed_note_counts() {
        assert_eq!(
            missed_note(3),
            "3 entries were not logged: a flood; the counters still count them"
        );
    }

    #[test]
    fn clock_time_is_short_for_today() {
        let now = 1_700_000_000_000;
        assert_eq!(clock_time(now, now).len(), 8);
        assert!(clock_time(now - 3 * 86_400_000, now).starts_with("2023-11-1"));
    }

    #[test]
    fn a_vm_refusal_becomes_an_accepting_rule_before_the_refusing_one() {
        let snippet = allow_snippet(&rejected(), &[]).unwrap_or_default();
        assert_eq!(
            snippet,
            "# In the [[vm]] entry with name = \"work\", before its rule 2:\n[[vm.rule]]\n\
             action = \"accept\"\ndestination = \"127.0.0.1\"\nproto = \"tcp\"\nports = 8444\n\
             comment = \"allowed from the activity log\"\n"
        );
        // Placed before rule 2, the policy still validates and the new rule lets it through.
        let doc = WORK.replace(
            "\n\n[[vm.rule]]\naction = \"reject\"",
            &format!("\n\n{snippet}\n[[vm.rule]]\naction = \"reject\""),
        );
        let policy = parses(&doc);
        assert_eq!(policy.vms[0].rules.len(), 2);
        assert_eq!(policy.vms[0].rules[0].action, Verdict::Accept);
    }

    #[test]
    fn other_protocols_leave_out_what_they_lack() {
        let mut p = packet(
            LogOwner::Vm,
            LoggedRuleKind::Default,
            0,
            PacketVerdict::Drop,
        );
        p.protocol = "icmp".into();
        p.destination_port = 0;
        let icmp = allow_snippet(&p, &[]).unwrap_or_default();
        assert!(
            icmp.starts_with("# In the [[vm]] entry with name = \"work\", after its rules:\n"),
            "{icmp}"
        );
        assert!(
            icmp.contains("proto = \"icmp\"\n") && !icmp.contains("ports"),
            "{icmp}"
        );
        parses(&format!("{WORK}{icmp}"));
        p.protocol = "47".into();
        let other = allow_snippet(&p, &[]).unwrap_or_default();
        assert!(
            !other.contains("proto") && !other.contains("ports"),
            "{other}"
        );
        parses(&format!("{WORK}{other}"));
        p.rule.verdict = PacketVerdict::Accept;
        assert_eq!(allow_snippet(&p, &[]), None, "nothing to allow");
    }

    #[test]
    fn a_host_refusal_becomes_a_host_rule() {
        let mut p = packet(
            LogOwner::Host,
            LoggedRuleKind::Numbered,
            3,
            PacketVerdict::Drop,
        );
        p.protocol = "udp".into();
        p.destination_port = 53;
        let snippet = allow_snippet(&p, &[]).unwrap_or_default();
        assert!(
            snippet.starts_with("# With the host-wide rules, before host rule 3:\n[[host_rule]]\n"),
            "{snippet}"
        );
        assert!(
            snippet.contains("proto = \"udp\"\nports = 53\n"),
            "{snippet}"
        );
        assert_eq!(parses(&snippet).host_rules.len(), 1);
    }

    #[test]
    fn a_console_refusal_adds_the_user_to_the_console() {
        let mut p = packet(
            LogOwner::Console,
            LoggedRuleKind::Refused,
            0,
            PacketVerdict::Reject,
        );
        p.vm.clear();
        p.user = "pal-bob".into();
        p.destination_port = 5999;
        let lab = RemoteConsoleHint {
            name: "lab".into(),
            host: "127.0.0.1".into(),
            port: 5999,
            users: vec!["pal-alice".into()],
        };
        let snippet = allow_snippet(&p, &[lab]).unwrap_or_default();
        assert_eq!(
            snippet,
            "# In the [[remote_console]] entry with name = \"lab\":\nusers = [\"pal-alice\", \"pal-bob\"]\n"
        );
        let generic = allow_snippet(&p, &[]).unwrap_or_default();
        assert!(
            generic.contains("\nconsole = { users = [\"pal-bob\"] }\n"),
            "{generic}"
        );
        assert!(generic.ends_with("\nusers = [\"pal-bob\"]\n"), "{generic}");
        p.user = "#1234".into();
        let nameless = allow_snippet(&p, &[]).unwrap_or_default();
        assert!(nameless.lines().all(|l| l.starts_with("# ")), "{nameless}");
    }

    #[test]
    fn strings_are_escaped_for_toml() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
