//! The compiled ruleset: a small, typed picture of exactly what goes into table `inet palisade`.
//!
//! The compiler produces this; `json` turns it into the nftables batch the kernel receives and
//! `render` into the nft text people read in previews and golden files. Keeping one
//! intermediate form means the two can never describe different rulesets.

use ipnet::IpNet;
use palisade_dbus::policy::{PortSet, Verdict};
use std::collections::BTreeSet;

/// Our table. Its name is fixed: the helper never creates, edits or deletes any other table.
pub const TABLE: &str = "palisade";
/// The comment naming the table's manager, on the table's first rule.
pub const MANAGED_BY: &str = "managed by Palisade (palisade-helper): edits here are overwritten";
/// Chain that rejects: TCP reset for TCP, ICMP port-unreachable otherwise.
pub const REJECT_CHAIN: &str = "do_reject";
/// Prefix of the console endpoint sets (`_v4`, `_v6`).
pub const CONSOLE_PORTS: &str = "console_ports";
/// Prefix of the console allowed sets (`_v4`, `_v6`).
pub const CONSOLE_ALLOWED: &str = "console_allowed";
/// Set of connection marks whose accepting rule still exists.
pub const LIVE_MARKS: &str = "live_marks";

/// A whole table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Named sets, declared before the chains that use them.
    pub sets: Vec<SetDef>,
    /// Chains; base chains carry their hook.
    pub chains: Vec<ChainDef>,
    /// Marks set by accepting rules: connections carrying one of these stay allowed.
    pub live_marks: BTreeSet<u32>,
}

impl Ruleset {
    /// Number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

/// What a set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// IPv4 networks (interval set).
    Ipv4Nets,
    /// IPv6 networks (interval set).
    Ipv6Nets,
    /// IPv4 addresses learned at run time, expiring with their DNS TTL.
    Ipv4Learned,
    /// IPv6 addresses learned at run time, expiring with their DNS TTL.
    Ipv6Learned,
    /// Connection marks.
    Marks,
    /// Console endpoints: `address . port` (one family).
    ConsoleEndpoints(IpFamily),
    /// Who may reach which console: `uid . address . port` (one family).
    ConsoleAllowed(IpFamily),
}

/// A named set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    /// Its name inside our table.
    pub name: String,
    /// What it holds.
    pub kind: SetKind,
    /// Networks (for the address kinds).
    pub nets: Vec<IpNet>,
    /// Marks (for `Marks`).
    pub marks: Vec<u32>,
    /// Console tuples (for the console kinds): uid (allowed sets only), address, port.
    pub consoles: Vec<(Option<u32>, std::net::IpAddr, u16)>,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainDef {
    /// Its name.
    pub name: String,
    /// `Some` for a base chain.
    pub hook: Option<Hook>,
    /// The rules, in order.
    pub rules: Vec<RuleDef>,
}

/// Where a base chain hooks in. Policy is always accept: our table only restricts by rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Locally generated packets, filter priority.
    Output,
}

/// One rule: all matches must hold, then the statements run in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    /// Conditions.
    pub matches: Vec<Match>,
    /// Count the packets it sees.
    pub counter: bool,
    /// Log with this prefix.
    pub log: Option<String>,
    /// Mark the connection.
    pub set_mark: Option<u32>,
    /// What happens.
    pub verdict: RuleVerdict,
    /// Shown in listings.
    pub comment: Option<String>,
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The packet is IPv4 / IPv6.
    Family(IpFamily),
    /// The layer-4 protocol.
    L4Proto(&'static str),
    /// Destination address in a network (family implied).
    Daddr(IpNet),
    /// Destination address in any of these networks (one family).
    DaddrAnyOf(IpFamily, Vec<IpNet>),
    /// Destination address in a named set.
    DaddrInSet(IpFamily, String),
    /// Destination port of a TCP/UDP packet.
    Dport(&'static str, PortSet),
    /// ICMP or ICMPv6 type.
    IcmpType(&'static str, u8),
    /// Connection is established or related.
    CtEstablished,
    /// Connection mark is in a named set.
    CtMarkInSet(String),
    /// The connection is new.
    CtNew,
    /// The packet travels in the reply direction of its connection.
    CtReply,
    /// `daddr . tcp dport` is in a console endpoint set.
    ConsoleEndpoint(IpFamily, String),
    /// `meta skuid . daddr . tcp dport` is NOT in a console allowed set.
    ConsoleNotAllowed(IpFamily, String),
}

/// IPv4 or IPv6, as nft names the payload protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// `ip`
    V4,
    /// `ip6`
    V6,
}

impl IpFamily {
    /// The nft payload protocol name.
    pub fn nft(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }
}

/// How a rule ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleVerdict {
    /// A policy verdict (reject jumps to `do_reject`).
    Policy(Verdict),
    /// Leave this chain.
    Return,
    /// Reject with a TCP reset (only after `meta l4proto tcp`).
    TcpReset,
    /// Reject with ICMP(x) port unreachable.
    IcmpxUnreachable,
    /// Jump by socket owner: `meta skuid vmap { uid : jump chain }`.
    UidMap(Vec<(u32, String)>),
    /// Jump to another chain.
    Jump(String),
}

impl RuleDef {
    /// A rule with these matches and verdict, nothing else.
    pub fn new(matches: Vec<Match>, verdict: RuleVerdict) -> Self {
        Self {
            matches,
            counter: false,
            log: None,
            set_mark: None,
            verdict,
            comment: None,
        }
    }
}
