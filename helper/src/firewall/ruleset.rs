//! The compiled ruleset: a small, typed picture of exactly what goes into one nftables table.
//!
//! The compiler produces this for the host's table `inet palisade`, and `guest` for the table
//! `inet palisade_guest` a VM loads inside itself; `render` turns it into the transaction the
//! kernel receives and into the nft text people read in previews, guest files and golden files.
//! Keeping one intermediate form means what is shown can never differ from what is loaded, and
//! the host and the guest cannot spell the same match two ways.
//!
//! Address families are the contract crate's `Family`; the names nft gives them live here
//! (`nft_family`, `nfproto`), because they belong to nftables, not to the policy.

use ipnet::IpNet;
use palisade_dbus::policy::{Family, HostName, PortSet, ShortName, Verdict, VmName};
use std::collections::BTreeSet;

/// The host's table. Its name is fixed: the helper never creates, edits or deletes any other
/// table on the host.
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
/// The NAT chain sending each VM's DNS to its forwarder port.
pub const DNS_REDIRECT: &str = "dns_redirect";
/// The chain putting each VM's DNS connections in a conntrack zone of their own.
pub const DNS_ZONES: &str = "dns_zones";
/// The nflog group our logged rules send to; the helper's drop log reads it. A number no
/// distribution's logging daemon uses by default (ulogd listens on group 0 or 1).
pub const LOG_GROUP: u16 = 27_183;
/// Log entries one owner's rules may produce per second, and in one burst: over it packets are
/// still counted and decided, not logged, so a flood costs the host a bounded amount of work.
pub const LOG_RATE_PER_SECOND: u32 = 50;
pub const LOG_BURST: u32 = 100;
/// Most addresses one answers set holds: a guest resolving endless names under a wildcard fills
/// it, and then its answers are refused rather than the helper's or the kernel's memory growing.
pub const MAX_ANSWERS: u32 = 65_536;
/// Most addresses one family of an imported list remembers as not listed, and for how long
/// (see `compile/list_lookup`): a full set only costs speed, and a remembered address is looked
/// up in the list again within a second, whatever happened meanwhile.
pub const MAX_UNLISTED: u32 = 65_536;
pub const UNLISTED_SECONDS: u32 = 1;

/// A whole table (of family `inet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name: `TABLE` on the host. Fixed names only, hence `'static`.
    pub table: &'static str,
    /// Named sets, declared before the chains that use them.
    pub sets: Vec<SetDef>,
    /// Chains; base chains carry their hook.
    pub chains: Vec<ChainDef>,
    /// Marks set by accepting rules: connections carrying one of these stay allowed.
    pub live_marks: BTreeSet<u32>,
    /// Named counters (the host's policy rules, default actions and console refusals): the rule
    /// each counts, by the counter's name.
    pub counters: Vec<(String, RuleTag)>,
    /// Counters kept by the elements of mark maps (each element carries its counter's name as
    /// its comment), with the rule each counts: no named counter object stands behind them.
    pub element_counters: Vec<(String, RuleTag)>,
    /// Named log rate limits, one per owner of logged rules (`LOG_RATE_PER_SECOND`).
    pub limits: Vec<String>,
    /// The bridged VMs' ports and what each may send from: the `bridge` table's rules.
    pub port_guards: Vec<PortGuard>,
}

/// One bridged VM's port on its lab bridge: frames from it must carry its MAC, its IPv4 packets
/// and ARP its address, and it may not answer DHCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGuard {
    /// The VM.
    pub vm: VmName,
    /// The port's interface name.
    pub port: String,
    /// The one source MAC allowed.
    pub mac: palisade_dbus::policy::lab::MacAddress,
    /// The one source address allowed (and 0.0.0.0, for DHCP and ARP probes).
    pub address: std::net::Ipv4Addr,
    /// The named counter of the `bridge` table every drop of this guard counts in: named after
    /// the VM and a hash of what the guard holds, so an unchanged guard keeps its count.
    pub counter: String,
}

impl PortGuard {
    /// The rule tag the guard's drops are logged and counted under.
    pub fn tag(&self) -> RuleTag {
        RuleTag {
            owner: TagOwner::Vm(self.vm.clone()),
            rule: TagRule::Spoofed,
            action: palisade_dbus::policy::Verdict::Drop,
        }
    }
}

impl Ruleset {
    /// Every named counter, in both tables, with the rule it counts (the drop log's key).
    pub fn counters_and_tags(&self) -> Vec<(String, RuleTag)> {
        let guards = self
            .port_guards
            .iter()
            .map(|g| (g.counter.clone(), g.tag()));
        self.counters
            .iter()
            .chain(&self.element_counters)
            .cloned()
            .chain(guards)
            .collect()
    }

    /// An empty table named `table`.
    pub fn new(table: &'static str) -> Self {
        Self {
            table,
            sets: Vec::new(),
            chains: Vec::new(),
            live_marks: BTreeSet::new(),
            counters: Vec::new(),
            element_counters: Vec::new(),
            limits: Vec::new(),
            port_guards: Vec::new(),
        }
    }

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
    /// Addresses the DNS forwarder admitted for one VM's rules naming one host name or
    /// wildcard, each expiring with its answer. Filled at run time over netlink, kept across
    /// generations while a rule names it, and bounded in size (a full set refuses the answer).
    Answers(Family),
    /// Connection marks.
    Marks,
    /// Console endpoints: `address . port` (one family).
    ConsoleEndpoints(Family),
    /// Who may reach which console: `uid . address . port` (one family).
    ConsoleAllowed(Family),
    /// A map from `address . protocol . port` to a connection mark, each element with its own
    /// counter (one family): a run of a VM's rules that each accept one host on some ports.
    MarkMap(Family),
    /// Like `MarkMap`, with `flags interval`: each element a network, a protocol and a range of
    /// ports. Never changed in place (the kernel changes an element of an interval map of
    /// concatenations in about a millisecond): its name carries a fingerprint of its elements,
    /// and it is made and filled over netlink before the structure naming it is installed,
    /// each element's count carried from its predecessor (`range_sets`).
    RangeMap(Family),
    /// A set of `network . protocol . port range` with `flags interval`, each element with its
    /// own counter (one family): a run of rules of one verdict other than a VM's accept (drops,
    /// rejects, the host's accepts), looked up by one rule with that verdict. Made like a
    /// `RangeMap`; its elements' `mark` is unused.
    RuleSet(Family),
    /// Addresses recently looked up in an imported list and found in none of its sets (one
    /// family), filled by the packet path and expiring after `UNLISTED_SECONDS`: the rules
    /// naming the list skip its sets for them.
    Unlisted(Family),
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
    /// Elements (for `MarkMap`, `RangeMap` and `RuleSet`), in the order of their rules.
    pub entries: Vec<MarkMapEntry>,
    /// For a set of an imported list: which list and which version of it. Its elements are not
    /// part of the ruleset: the data path loads them over netlink before the structure that
    /// names the set is installed, and the structure transaction never touches them.
    pub imported: Option<ImportedData>,
    /// For a set of a host name the helper resolves itself (a learned set): the name, and how
    /// long its addresses stay unless its answers are asked again. The DNS forwarder's
    /// refresher keeps them as the name's answers change.
    pub follows: Option<FollowedName>,
}

/// One element of a mark map: packets to `net`, protocol `proto`, a port in `ports` get the
/// rule's connection mark and are accepted, and counted under `counter`. In a `MarkMap` the
/// ports are one port and `net` has the map's prefix length; in a `RangeMap` any network and
/// range. An element of a `RuleSet` is the same without a mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkMapEntry {
    /// The destination network, its host bits cleared (a host is a full-length network).
    pub net: ipnet::IpNet,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// First and last port.
    pub ports: (u16, u16),
    pub mark: u32,
    /// The name the rule's counter is read under (the element's comment).
    pub counter: String,
}

/// A host name whose answers a learned set follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedName {
    /// The name.
    pub name: HostName,
    /// Seconds its addresses stay in the set after an answer (the elements the ruleset
    /// carries, resolved at install, and those the refresher adds without a TTL of their own).
    pub timeout_seconds: u32,
}

/// The contents of an imported list, as one kernel set holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedData {
    /// The list's name.
    pub list: ShortName,
    /// Which address family of the list the set holds.
    pub family: Family,
    /// The list's content hash: a new version of the list gets a new set.
    pub hash: String,
    /// Ranges the list holds (both families), for people reading the ruleset.
    pub ranges: u64,
    /// The addresses of the family this set holds the list's ranges for (cut at both ends):
    /// a big list is spread over several sets, each a slice of the address space.
    pub first: std::net::IpAddr,
    pub last: std::net::IpAddr,
    /// What the set holds of the list.
    pub role: ListRole,
}

/// What one kernel set of an imported list holds. A list changed since its slices were loaded
/// is the slices' version (the base) corrected by two small overlay sets, so that a refresh
/// touches only those: an address is listed when it is in the added set, or in its slice and
/// not in the removed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRole {
    /// The ranges of version `hash` within `first`..=`last`.
    Slice,
    /// Ranges of version `hash` that the base does not have (whole family).
    Added,
    /// Ranges of the base that version `hash` does not have (whole family).
    Removed,
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
    /// Remarks for people reading the text: each is shown as a `# ` line before the rule at its
    /// index (after the last rule for `rules.len()`). nft skips them and the kernel keeps no such
    /// lines; what must survive loading belongs in a rule's comment.
    pub notes: Vec<(usize, String)>,
}

impl ChainDef {
    /// A chain with these rules and no notes.
    pub fn new(name: impl Into<String>, hook: Option<Hook>, rules: Vec<RuleDef>) -> Self {
        Self {
            name: name.into(),
            hook,
            rules,
            notes: Vec::new(),
        }
    }
}

/// Where a base chain hooks in (a filter chain at filter priority) and what becomes of a packet
/// no rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Locally generated packets.
    Output {
        /// The chain's policy.
        policy: ChainPolicy,
    },
    /// Locally generated packets, destination NAT, before any filter chain sees them (so the
    /// filter chains see the translated destination).
    NatOutput,
    /// Locally generated packets before connection tracking sees them (raw priority).
    RawOutput,
    /// Packets for the host itself (bridged VMs reaching the host's own services).
    Input {
        /// The chain's policy.
        policy: ChainPolicy,
    },
    /// Routed packets (bridged VMs' traffic to and from other networks).
    Forward {
        /// The chain's policy.
        policy: ChainPolicy,
    },
    /// Arriving packets, destination NAT, before other managers' (priority -110, below dstnat).
    NatPrerouting,
    /// Leaving packets, source NAT, before other managers' (priority 90, below srcnat): the
    /// first NAT that matches a connection is the one it keeps.
    NatPostrouting,
}

/// A base chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainPolicy {
    /// The host's table: it only restricts, by its rules, so whatever they leave passes on to
    /// the next base chain (another table's, or the kernel).
    Accept,
    /// An allow-list (the guest's table): what no rule accepted is dropped.
    Drop,
}

/// One rule: all matches must hold, then the statements run in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleDef {
    /// Conditions.
    pub matches: Vec<Match>,
    /// Count the packets it sees.
    pub counter: Counter,
    /// Log what it decides.
    pub log: Option<LogDef>,
    /// Mark the connection.
    pub set_mark: Option<u32>,
    /// What happens.
    pub verdict: RuleVerdict,
    /// Shown in listings.
    pub comment: Option<String>,
}

/// A rule's counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Counter {
    /// None.
    None,
    /// Its own, shown in listings (`counter`).
    Anonymous,
    /// A named counter of the table (`counter name "n"`), shared by every nft rule of one
    /// policy rule and read by the drop log without listing rules.
    Named(String),
}

/// How a rule logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogDef {
    /// To the kernel log with this prefix (the guest's table: nobody reads nflog there).
    Kernel(String),
    /// To the helper's drop log (nflog group `LOG_GROUP`), at most as often as the named limit
    /// allows; `tag` says which rule, its prefix carries it.
    Nflog { tag: RuleTag, limit: String },
}

/// Which rule of the policy an nft rule enforces: what its counter and its log entries are
/// attributed to. It travels in the log prefix, whose text [`RuleTag::prefix`] writes and
/// [`RuleTag::parse`] reads back (nft takes 127 bytes of prefix; VM names have at most 20).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleTag {
    /// Whose rule.
    pub owner: TagOwner,
    /// Which of its rules.
    pub rule: TagRule,
    /// What it does.
    pub action: Verdict,
}

/// Whose rules a [`RuleTag`] names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagOwner {
    /// The host-wide rules.
    Host,
    /// A VM's rules.
    Vm(VmName),
    /// The console guard (a local user reaching a console they may not use).
    Console,
}

/// Which rule of its owner a [`RuleTag`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagRule {
    /// Rules `first` to `last` (1-based; equal for one rule), merged into one nft rule.
    Numbers { first: u32, last: u32 },
    /// The VM's default action.
    Default,
    /// The console guard's refusal.
    Refused,
    /// A lab VM's port guard: a frame with a MAC, address or kind not the VM's.
    Spoofed,
}

impl RuleTag {
    /// The log prefix: `palisade vm=web rule=3 drop: `, `palisade host rule=2-4 reject: `,
    /// `palisade vm=web default drop: `, `palisade console refused: `.
    pub fn prefix(&self) -> String {
        let owner = match &self.owner {
            TagOwner::Host => "host".to_owned(),
            TagOwner::Vm(vm) => format!("vm={vm}"),
            TagOwner::Console => "console".to_owned(),
        };
        match self.rule {
            TagRule::Numbers { first, last } if first == last => {
                format!("palisade {owner} rule={first} {}: ", self.action)
            }
            TagRule::Numbers { first, last } => {
                format!("palisade {owner} rule={first}-{last} {}: ", self.action)
            }
            TagRule::Default => format!("palisade {owner} default {}: ", self.action),
            TagRule::Refused => format!("palisade {owner} refused: "),
            TagRule::Spoofed => format!("palisade {owner} spoofed {}: ", self.action),
        }
    }

    /// The tag a prefix written by [`RuleTag::prefix`] carries; `None` for any other text.
    pub fn parse(prefix: &str) -> Option<Self> {
        let words = prefix.strip_prefix("palisade ")?.strip_suffix(": ")?;
        let mut words = words.split(' ');
        let owner = match words.next()? {
            "host" => TagOwner::Host,
            "console" => TagOwner::Console,
            other => TagOwner::Vm(VmName::parse(other.strip_prefix("vm=")?).ok()?),
        };
        let (rule, action) = match (words.next()?, words.next()) {
            ("refused", None) if owner == TagOwner::Console => (TagRule::Refused, Verdict::Reject),
            ("default", Some(action)) if owner != TagOwner::Console => {
                (TagRule::Default, verdict_word(action)?)
            }
            ("spoofed", Some(action)) if matches!(owner, TagOwner::Vm(_)) => {
                (TagRule::Spoofed, verdict_word(action)?)
            }
            (numbers, Some(action)) if owner != TagOwner::Console => {
                let numbers = numbers.strip_prefix("rule=")?;
                let (first, last) = numbers.split_once('-').unwrap_or((numbers, numbers));
                let (first, last) = (first.parse().ok()?, last.parse().ok()?);
                if first == 0 || last < first {
                    return None;
                }
                (TagRule::Numbers { first, last }, verdict_word(action)?)
            }
            _ => return None,
        };
        if words.next().is_some() {
            return None;
        }
        Some(Self {
            owner,
            rule,
            action,
        })
    }
}

fn verdict_word(word: &str) -> Option<Verdict> {
    [Verdict::Accept, Verdict::Drop, Verdict::Reject]
        .into_iter()
        .find(|v| v.to_string() == word)
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// The packet is IPv4 / IPv6.
    Family(Family),
    /// The layer-4 protocol.
    L4Proto(&'static str),
    /// Destination address in a network (family implied).
    Daddr(IpNet),
    /// Destination address in any of these networks (one family).
    DaddrAnyOf(Family, Vec<IpNet>),
    /// Destination address in none of these networks (one family).
    DaddrNoneOf(Family, Vec<IpNet>),
    /// Destination address in a named set.
    DaddrInSet(Family, String),
    /// Destination address not in a named set.
    DaddrNotInSet(Family, String),
    /// `daddr . l4proto . th dport` in a named `RuleSet`.
    EndpointInSet(Family, String),
    /// Destination address from the first to the last, inclusive (one family).
    DaddrWithin(std::net::IpAddr, std::net::IpAddr),
    /// Destination port of a TCP/UDP packet.
    Dport(&'static str, PortSet),
    /// Source port of a TCP/UDP packet.
    Sport(&'static str, PortSet),
    /// ICMP or ICMPv6 type.
    IcmpType(&'static str, u8),
    /// ICMP or ICMPv6 type, any of these.
    IcmpTypeAnyOf(&'static str, Vec<u8>),
    /// IPv6 hop limit (255 only on packets that cannot have crossed a router).
    HopLimit(u8),
    /// The output interface, by name.
    Oif(&'static str),
    /// The input interface's name.
    IifName(String),
    /// The output interface's name.
    OifName(String),
    /// Any output interface but this one.
    OifNameNot(String),
    /// Source address in a network (family implied).
    Saddr(IpNet),
    /// The connection's destination was translated (by a DNAT rule).
    CtDnat,
    /// Connection is established or related.
    CtEstablished,
    /// Connection mark is in a named set.
    CtMarkInSet(String),
    /// The connection is new.
    CtNew,
    /// The packet travels in the reply direction of its connection.
    CtReply,
    /// `daddr . tcp dport` is in a console endpoint set.
    ConsoleEndpoint(Family, String),
    /// `meta skuid . daddr . tcp dport` is NOT in a console allowed set.
    ConsoleNotAllowed(Family, String),
    /// The sending socket belongs to this uid.
    SkUid(u32),
    /// The sending socket belongs to another uid (or to none).
    SkUidNot(u32),
}

/// The nft payload protocol of a family: `ip` or `ip6`.
pub fn nft_family(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

/// The `meta nfproto` value of a family: `ipv4` or `ipv6`.
pub fn nfproto(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// The family of an address or network.
pub fn family_of(n: &IpNet) -> Family {
    match n {
        IpNet::V4(_) => Family::V4,
        IpNet::V6(_) => Family::V6,
    }
}

/// How a rule ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Jump by destination address: `ip daddr vmap { first-last : jump chain, ... }` (one
    /// family, ranges disjoint); an address in none goes on to the next rule.
    DaddrMap(Vec<SliceJump>),
    /// Destination NAT to this port on the local host (in a `NatOutput` chain only).
    Redirect(u16),
    /// Track the connection's original direction in this conntrack zone, then go on (in a
    /// `RawOutput` chain only).
    CtZone(u16),
    /// Destination NAT to this address, and port if given (in a `NatPrerouting` chain only).
    Dnat(std::net::Ipv4Addr, Option<u16>),
    /// Source NAT to this address (in a `NatPostrouting` chain only).
    Snat(std::net::Ipv4Addr),
    /// Source NAT to the outgoing interface's address (in a `NatPostrouting` chain only).
    Masquerade,
    /// Accept a packet whose `address . protocol . port` is in the named mark map (of this
    /// family), its address masked to the prefix length given (the full length for hosts),
    /// marking its connection with the element's mark; any other goes on.
    AcceptMarkedByMap(Family, String, u8),
    /// Add the packet's destination address to the named set of this family (`add @set {
    /// ip daddr }`), then go on: an `Unlisted` set, from the rule that found the address in
    /// none of its list's sets.
    RememberDaddr(Family, String),
}

/// One entry of a [`RuleVerdict::DaddrMap`]: addresses from the first to the last jump to the
/// chain.
pub type SliceJump = (std::net::IpAddr, std::net::IpAddr, String);

impl RuleDef {
    /// A rule with these matches and verdict, nothing else.
    pub fn new(matches: Vec<Match>, verdict: RuleVerdict) -> Self {
        Self {
            matches,
            counter: Counter::None,
            log: None,
            set_mark: None,
            verdict,
            comment: None,
        }
    }
}
