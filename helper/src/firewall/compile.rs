//! Policy in, ruleset out: the pure heart of the firewall.
//!
//! `compile_ruleset` has no side effects and reads nothing but its arguments; everything it needs
//! from the machine (VM uids, resolvers, answers for host names, the time) arrives in `Facts`.
//! That is what lets its tests and golden files run without root.
//!
//! Shape of the output, in evaluation order for a packet leaving the host:
//! `output` → `host` (host-wide rules; accept means "no objection", i.e. return) → by socket owner
//! `meta skuid vmap { uid : jump vm_<name> }` → the VM's chain: connections still covered by a
//! live accepting rule pass, then the VM's rules in order, then its default action, logged.
//! Accepting rules mark the connection with the rule's id; when a rule disappears its id leaves
//! `live_marks`, so the connections it let in are judged again by the new rules.
//!
//! The pieces that decide what a policy rule means in nft terms (its transport matches, the family
//! an ICMP protocol pins, the host-wide accept, log prefixes, the default rule, comments, the
//! reject chain) are `pub(crate)` so the guest's ruleset (`guest`) is built from them too: the
//! two firewalls of a VM cannot read one rule two ways.

use super::ruleset::*;
use ipnet::IpNet;
use palisade_dbus::policy::{
    AccountName, Destination, Family, HostName, Policy, PortRange, PortSet, Protocol, Rule,
    ShortName, Verdict, Vm, VmName,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::SystemTime;

/// What the compiler needs to know about the machine.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Uid of each VM's system user. A VM missing here (its user does not exist yet, in a
    /// preview) is left out of the uid map.
    pub vm_uids: BTreeMap<VmName, u32>,
    /// The resolvers this host uses; the "dns" target means these.
    pub dns_servers: Vec<IpAddr>,
    /// Current addresses of host names the policy mentions.
    pub resolved: HashMap<HostName, Vec<IpAddr>>,
    /// The time against which expiry is judged.
    pub now: Option<SystemTime>,
    /// The Spice port recorded for each VM that has one.
    pub spice_ports: BTreeMap<VmName, u16>,
    /// Uids of the users access lists name.
    pub user_uids: HashMap<AccountName, u32>,
    /// Member uids of the groups access lists name (supplementary and primary members).
    pub group_uids: HashMap<AccountName, Vec<u32>>,
    /// The current version of each imported list the policy names.
    pub imported: BTreeMap<ShortName, ImportedFacts>,
    /// The DNS forwarder's port for each VM that resolves through it (`dns = true`).
    pub dns_ports: BTreeMap<VmName, u16>,
    /// Seconds an address of a name the helper resolved itself stays in its learned set unless
    /// the name is answered again (the policy's TTL floor plus grace; 0 keeps it until the next
    /// install).
    pub learned_seconds: u32,
}

/// What the compiler knows of an imported list: enough to name and describe its sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedFacts {
    /// Content hash of the list's current version (hex).
    pub hash: String,
    /// Ranges it holds, both families.
    pub ranges: u64,
    /// The version it replaced, when the store keeps the difference.
    pub previous: Option<PreviousFacts>,
    /// Where the current version is cut into kernel sets, per family (the list store's cuts).
    pub splits_v4: Vec<std::net::Ipv4Addr>,
    pub splits_v6: Vec<std::net::Ipv6Addr>,
    /// The kernel sets holding its IPv4 and IPv6 ranges, each a slice of the family's
    /// addresses, in address order, together covering the family: as the data path chose them
    /// (`data::DataSets::name_sets`).
    pub sets_v4: Vec<ListShard>,
    pub sets_v6: Vec<ListShard>,
    /// When those sets hold an older version (the base), the two sets that correct it to the
    /// current one, per family (see [`ListRole`]).
    pub overlay_v4: Option<ListOverlay>,
    pub overlay_v6: Option<ListOverlay>,
}

impl ImportedFacts {
    /// The kernel sets of one family.
    pub fn sets(&self, family: Family) -> &[ListShard] {
        match family {
            Family::V4 => &self.sets_v4,
            Family::V6 => &self.sets_v6,
        }
    }

    /// The overlay of one family, if its slices hold an older version.
    pub fn overlay(&self, family: Family) -> Option<&ListOverlay> {
        match family {
            Family::V4 => self.overlay_v4.as_ref(),
            Family::V6 => self.overlay_v6.as_ref(),
        }
    }
}

/// The overlay sets of one family of an imported list whose slices hold version `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOverlay {
    /// The version the slices hold (hex).
    pub base: String,
    /// The set of the current version's ranges the base lacks.
    pub added: String,
    /// The set of the base's ranges the current version lacks.
    pub removed: String,
}

/// One kernel set of an imported list: the list's ranges from `first` to `last` (cut at both
/// ends), of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListShard {
    pub set: String,
    pub first: IpAddr,
    pub last: IpAddr,
}

/// The version an imported list replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousFacts {
    /// Its content hash (hex).
    pub hash: String,
    /// Ranges the difference to the current version changes.
    pub changed: u64,
    /// Ranges it adds (a set updated by the difference grows by at most these).
    pub added: u64,
}

/// Longest comment the kernel keeps with a rule (nft's user data is 256 bytes, shared).
const MAX_NFT_COMMENT: usize = 120;

/// Compiles a validated policy into the one table Palisade owns.
pub fn compile_ruleset(policy: &Policy, facts: &Facts) -> Ruleset {
    let now = facts.now.unwrap_or(SystemTime::UNIX_EPOCH);
    let mut out = Ruleset::new(TABLE);

    for b in &policy.blocklists {
        if b.imported {
            // Gathering the facts refuses a policy naming a list nobody imported.
            let Some(data) = facts.imported.get(&b.name) else {
                continue;
            };
            for family in [Family::V4, Family::V6] {
                let overlay = data.overlay(family);
                let base = overlay.map_or(&data.hash, |o| &o.base);
                let kind = match family {
                    Family::V4 => SetKind::Ipv4Nets,
                    Family::V6 => SetKind::Ipv6Nets,
                };
                let whole = family_bounds(family);
                let overlay_sets = overlay
                    .into_iter()
                    .flat_map(|o| [(&o.added, ListRole::Added), (&o.removed, ListRole::Removed)]);
                let slices = data
                    .sets(family)
                    .iter()
                    .map(|shard| (&shard.set, (shard.first, shard.last), ListRole::Slice, base));
                let overlays = overlay_sets.map(|(name, role)| (name, whole, role, &data.hash));
                for (name, (first, last), role, hash) in slices.chain(overlays) {
                    let mut set = net_set(name, kind, Vec::new());
                    set.imported = Some(ImportedData {
                        list: b.name.clone(),
                        family,
                        hash: hash.clone(),
                        ranges: data.ranges,
                        first,
                        last,
                        role,
                    });
                    out.sets.push(set);
                }
                if let Some(first) = data.sets(family).first() {
                    out.sets.push(net_set(
                        &unlisted_set(&first.set),
                        SetKind::Unlisted(family),
                        Vec::new(),
                    ));
                }
            }
            continue;
        }
        let (v4, v6) = split_families(b.entries.iter().copied());
        out.sets.push(net_set(
            &blocklist_set(b.name.as_str(), Family::V4),
            SetKind::Ipv4Nets,
            v4,
        ));
        out.sets.push(net_set(
            &blocklist_set(b.name.as_str(), Family::V6),
            SetKind::Ipv6Nets,
            v6,
        ));
    }

    let mut output = ChainDef::new(
        "output",
        Some(Hook::Output {
            policy: ChainPolicy::Accept,
        }),
        Vec::new(),
    );
    let mut jump_host = RuleDef::new(Vec::new(), RuleVerdict::Jump("host".into()));
    jump_host.comment = Some(MANAGED_BY.into());
    output.rules.push(jump_host);
    let forwarders = forwarders(policy, facts);
    output.rules.extend(forwarder_guards(&forwarders));
    output.rules.extend(console_rules(policy, facts, &mut out));
    let uid_map: Vec<(u32, String)> = policy
        .vms
        .iter()
        .filter_map(|vm| {
            facts
                .vm_uids
                .get(&vm.name)
                .map(|uid| (*uid, vm.name.chain()))
        })
        .collect();
    if !uid_map.is_empty() {
        output
            .rules
            .push(RuleDef::new(Vec::new(), RuleVerdict::UidMap(uid_map)));
    }

    let mut chains = vec![output];
    if !forwarders.is_empty() {
        chains.push(dns_zones(&forwarders));
        chains.push(dns_redirect(&forwarders));
    }
    let host = Owner {
        chain: "host".into(),
        tag: TagOwner::Host,
        vm: None,
        forwarder: None,
    };
    chains.push(ChainDef::new(
        "host",
        None,
        compile_rules(
            &host,
            Source::Policy,
            &policy.host_rules,
            facts,
            now,
            &mut out,
        ),
    ));

    for vm in &policy.vms {
        let forwarder = forwarders.iter().find(|f| f.vm == &vm.name).map(|f| f.port);
        let owner = Owner {
            chain: vm.name.chain(),
            tag: TagOwner::Vm(vm.name.clone()),
            vm: Some(&vm.name),
            forwarder,
        };
        let mut rules = vec![
            // Replies on connections others opened to the VM (a viewer on its Spice port): the
            // VM's egress policy is about what the VM itself reaches out to.
            RuleDef::new(vec![Match::CtReply], RuleVerdict::Policy(Verdict::Accept)),
            RuleDef::new(
                vec![Match::CtEstablished, Match::CtMarkInSet(LIVE_MARKS.into())],
                RuleVerdict::Policy(Verdict::Accept),
            ),
        ];
        rules.extend(compile_rules(
            &owner,
            Source::Implicit,
            &implicit_rules(vm),
            facts,
            now,
            &mut out,
        ));
        if forwarder.is_some() {
            rules.extend(other_resolvers_refused());
        }
        rules.extend(compile_rules(
            &owner,
            Source::Policy,
            &vm.rules,
            facts,
            now,
            &mut out,
        ));
        let tag = RuleTag {
            owner: owner.tag.clone(),
            rule: TagRule::Default,
            action: vm.default_action,
        };
        let (counter, log) = counted_and_logged(&tag, &vm.default_action.to_string(), &mut out);
        rules.push(default_rule(vm.default_action, counter, log));
        chains.push(ChainDef::new(owner.chain, None, rules));
    }

    chains.push(reject_chain());

    out.sets.insert(
        0,
        SetDef {
            name: LIVE_MARKS.into(),
            kind: SetKind::Marks,
            nets: Vec::new(),
            marks: out.live_marks.iter().copied().collect(),
            consoles: Vec::new(),
            entries: Vec::new(),
            imported: None,
            follows: None,
        },
    );
    // The chains compiling rules added (a big list's slices) go after the ones naming them.
    chains.append(&mut out.chains);
    out.chains = chains;
    lab::add_lab(policy, &mut out);
    let mut declared = HashSet::new();
    out.counters
        .retain(|(name, _)| declared.insert(name.clone()));
    out
}

/// The last rule of a VM's chain: its default action, counted and logged.
pub(crate) fn default_rule(action: Verdict, counter: Counter, log: LogDef) -> RuleDef {
    let mut default = RuleDef::new(Vec::new(), RuleVerdict::Policy(action));
    default.counter = counter;
    default.log = Some(log);
    default.comment = Some("default action".into());
    default
}

/// The named counter and the rate-limited nflog statement of the host's rule `tag`: the counter
/// is named after the rule and a hash of what it does (`content`), so a rule that stays as it was
/// keeps counting across generations while a changed or renumbered one starts from zero; the
/// limit is shared by the owner's rules. Both are declared in `out`.
fn counted_and_logged(tag: &RuleTag, content: &str, out: &mut Ruleset) -> (Counter, LogDef) {
    let name = counter_name(tag, content);
    // Declared once: `compile_ruleset` drops repeats at the end (a search per rule here made
    // compiling 10,000 rules quadratic, 0.45 s).
    out.counters.push((name.clone(), tag.clone()));
    let limit = format!("log_{}", owner_word(&tag.owner));
    if !out.limits.contains(&limit) {
        out.limits.push(limit.clone());
    }
    (
        Counter::Named(name),
        LogDef::Nflog {
            tag: tag.clone(),
            limit,
        },
    )
}

/// The name of rule `tag`'s counter: after the rule and a hash of what it does (`content`).
fn counter_name(tag: &RuleTag, content: &str) -> String {
    let rule = match tag.rule {
        TagRule::Numbers { first, last } if first == last => format!("r{first}"),
        TagRule::Numbers { first, last } => format!("r{first}-{last}"),
        TagRule::Default => "default".to_owned(),
        TagRule::Refused => "refused".to_owned(),
        TagRule::Spoofed => "spoofed".to_owned(),
    };
    let hash = fnv1a(content.bytes().chain(tag.action.to_string().into_bytes()));
    format!("c_{}_{rule}_{hash:08x}", owner_word(&tag.owner))
}

/// An owner in counter and limit names.
fn owner_word(owner: &TagOwner) -> String {
    match owner {
        TagOwner::Host => "host".to_owned(),
        TagOwner::Vm(vm) => format!("vm_{vm}"),
        TagOwner::Console => "console".to_owned(),
    }
}

/// The chain a reject verdict jumps to: TCP reset for TCP, ICMP(v6) port-unreachable otherwise.
pub(crate) fn reject_chain() -> ChainDef {
    ChainDef::new(
        REJECT_CHAIN,
        None,
        vec![
            RuleDef::new(vec![Match::L4Proto("tcp")], RuleVerdict::TcpReset),
            RuleDef::new(Vec::new(), RuleVerdict::IcmpxUnreachable),
        ],
    )
}

/// Console access: every new TCP connection to a console endpoint (a local VM's Spice port, on
/// 127.0.0.1 and ::1, or a remote console) must come from a uid allowed for that endpoint, else
/// it is counted, logged and reset. Whatever the number of users and consoles, a packet costs
/// one lookup in the endpoint set and, for console traffic only, one in the allowed set.
fn console_rules(policy: &Policy, facts: &Facts, out: &mut Ruleset) -> Vec<RuleDef> {
    let mut endpoints: Vec<(IpAddr, u16, Vec<u32>)> = Vec::new();
    for vm in &policy.vms {
        if let Some(port) = facts.spice_ports.get(&vm.name).copied().filter(|p| *p > 0) {
            let uids = expand_access(&vm.console, facts);
            // Spice listens where the policy says; loopback is guarded for both families.
            let addrs = if vm.display.address.is_loopback() {
                vec![
                    IpAddr::from([127, 0, 0, 1]),
                    IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                ]
            } else {
                vec![vm.display.address]
            };
            for addr in addrs {
                endpoints.push((addr, port, uids.clone()));
            }
        }
    }
    for rc in &policy.remote_consoles {
        let addrs: Vec<IpAddr> = match &rc.host {
            Destination::Net(n) => vec![n.addr()],
            Destination::Host(h) => facts.resolved.get(h).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        let uids = expand_access(&rc.access, facts);
        endpoints.extend(addrs.into_iter().map(|a| (a, rc.port, uids.clone())));
    }
    let mut rules = Vec::new();
    for family in [Family::V4, Family::V6] {
        let in_family = |a: &IpAddr| family_of(&IpNet::from(*a)) == family;
        let suffix = family_suffix(family);
        let ports = format!("{CONSOLE_PORTS}_{suffix}");
        let allowed = format!("{CONSOLE_ALLOWED}_{suffix}");
        let mut endpoint_set: Vec<(Option<u32>, IpAddr, u16)> = Vec::new();
        let mut allowed_set: Vec<(Option<u32>, IpAddr, u16)> = Vec::new();
        for (addr, port, uids) in endpoints.iter().filter(|(a, _, _)| in_family(a)) {
            endpoint_set.push((None, *addr, *port));
            allowed_set.extend(uids.iter().map(|u| (Some(*u), *addr, *port)));
        }
        endpoint_set.sort_unstable();
        endpoint_set.dedup();
        allowed_set.sort_unstable();
        allowed_set.dedup();
        out.sets.push(SetDef {
            name: ports.clone(),
            kind: SetKind::ConsoleEndpoints(family),
            nets: Vec::new(),
            marks: Vec::new(),
            consoles: endpoint_set,
            entries: Vec::new(),
            imported: None,
            follows: None,
        });
        out.sets.push(SetDef {
            name: allowed.clone(),
            kind: SetKind::ConsoleAllowed(family),
            nets: Vec::new(),
            marks: Vec::new(),
            consoles: allowed_set,
            entries: Vec::new(),
            imported: None,
            follows: None,
        });
        let mut rule = RuleDef::new(
            vec![
                Match::L4Proto("tcp"),
                Match::CtNew,
                Match::ConsoleEndpoint(family, ports),
                Match::ConsoleNotAllowed(family, allowed),
            ],
            RuleVerdict::TcpReset,
        );
        let tag = RuleTag {
            owner: TagOwner::Console,
            rule: TagRule::Refused,
            action: Verdict::Reject,
        };
        let (counter, log) = counted_and_logged(&tag, "", out);
        rule.counter = counter;
        rule.log = Some(log);
        rule.comment = Some("console access".into());
        rules.push(rule);
    }
    rules
}

/// The uids an access list names: its users, and every member of its groups.
fn expand_access(access: &palisade_dbus::policy::Access, facts: &Facts) -> Vec<u32> {
    let mut uids: Vec<u32> = access
        .users
        .iter()
        .filter_map(|u| facts.user_uids.get(u).copied())
        .chain(
            access
                .groups
                .iter()
                .flat_map(|g| facts.group_uids.get(g).cloned().unwrap_or_default()),
        )
        .collect();
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// What a VM's settings allow before its own rules: its SOCKS5 proxy on the host (which the
/// guest reaches at 10.0.2.2 and the host sees on loopback) and, if enabled, its DNS.
pub fn implicit_rules(vm: &Vm) -> Vec<Rule> {
    let accept = |destination, protocol, ports: Option<PortSet>, comment: &str| Rule {
        action: Verdict::Accept,
        destination,
        protocol,
        ports,
        icmp_type: None,
        expires: None,
        log: false,
        comment: comment.into(),
        enabled: true,
    };
    let mut rules = Vec::new();
    if let Some(port) = vm.socks_proxy {
        let ports = single_port(port);
        for loopback in [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ] {
            rules.push(accept(
                Destination::Net(IpNet::from(loopback)),
                Protocol::Tcp,
                ports.clone(),
                "SOCKS5 proxy",
            ));
        }
    }
    if vm.dns {
        rules.push(accept(Destination::Dns, Protocol::Any, None, "guest DNS"));
    }
    rules
}

/// Whose rules are being compiled.
struct Owner<'a> {
    chain: String,
    tag: TagOwner,
    vm: Option<&'a VmName>,
    /// The VM's DNS forwarder port: its "dns" target means the forwarder.
    forwarder: Option<u16>,
}

/// A VM whose DNS goes to its own forwarder port.
struct Forwarder<'a> {
    vm: &'a VmName,
    uid: u32,
    port: u16,
}

/// The VMs that resolve through the forwarder and have a uid and a port.
fn forwarders<'a>(policy: &'a Policy, facts: &Facts) -> Vec<Forwarder<'a>> {
    policy
        .vms
        .iter()
        .filter(|vm| vm.dns)
        .filter_map(|vm| {
            Some(Forwarder {
                vm: &vm.name,
                uid: *facts.vm_uids.get(&vm.name)?,
                port: *facts.dns_ports.get(&vm.name)?,
            })
        })
        .collect()
}

/// The loopback addresses the forwarder listens on; `redirect` sends to the one of the
/// packet's family.
const LOOPBACKS: [IpAddr; 2] = [
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
];

/// A VM's forwarder port hears only that VM: the port is how the forwarder knows who asked, so
/// no other local process (another VM included) may send to it.
fn forwarder_guards(forwarders: &[Forwarder<'_>]) -> Vec<RuleDef> {
    let mut rules = Vec::new();
    for f in forwarders {
        for addr in LOOPBACKS {
            for proto in ["udp", "tcp"] {
                let mut rule = RuleDef::new(
                    vec![
                        Match::Daddr(IpNet::from(addr)),
                        Match::Dport(proto, single_port_set(f.port)),
                        Match::SkUidNot(f.uid),
                    ],
                    RuleVerdict::Policy(Verdict::Drop),
                );
                rule.counter = Counter::Anonymous;
                rule.comment = Some(format!("DNS forwarder of {}: that VM only", f.vm));
                rules.push(rule);
            }
        }
    }
    rules
}

/// Each VM's DNS connections are tracked in a conntrack zone of their own (the original
/// direction; replies are found in the common zone). Without it, a connection from another
/// program that happens to reuse the same ports within conntrack's memory of a VM's closed one
/// (30 s for UDP) would be taken for it and redirected to that VM's forwarder — and dropped
/// there — while a VM's new question could inherit a connection that was never redirected.
fn dns_zones(forwarders: &[Forwarder<'_>]) -> ChainDef {
    let rules = vm_dns_rules(forwarders, |f| {
        (
            RuleVerdict::CtZone(conntrack_zone(f.uid)),
            format!("DNS of {} in its own conntrack zone", f.vm),
        )
    });
    ChainDef::new(DNS_ZONES, Some(Hook::RawOutput), rules)
}

/// One rule per forwarder and transport (UDP, TCP) matching that VM's DNS (its uid, port 53),
/// with the verdict and comment `what` gives for the VM.
fn vm_dns_rules(
    forwarders: &[Forwarder<'_>],
    what: impl Fn(&Forwarder<'_>) -> (RuleVerdict, String),
) -> Vec<RuleDef> {
    let mut rules = Vec::new();
    for f in forwarders {
        let (verdict, comment) = what(f);
        for proto in ["udp", "tcp"] {
            let mut rule = RuleDef::new(
                vec![
                    Match::SkUid(f.uid),
                    Match::Dport(proto, single_port_set(53)),
                ],
                verdict.clone(),
            );
            rule.comment = Some(comment.clone());
            rules.push(rule);
        }
    }
    rules
}

/// A VM's conntrack zone, from its uid: stable across generations and restarts, never 0 (the
/// zone of everything else).
fn conntrack_zone(uid: u32) -> u16 {
    u16::try_from(uid % 65_534 + 1).unwrap_or(u16::MAX)
}

/// The NAT chain: every VM's DNS (to whichever server, port 53, UDP and TCP) goes to its own
/// forwarder port, whatever the guest or slirp chose as its resolver.
fn dns_redirect(forwarders: &[Forwarder<'_>]) -> ChainDef {
    let rules = vm_dns_rules(forwarders, |f| {
        (
            RuleVerdict::Redirect(f.port),
            format!("DNS of {} to its forwarder", f.vm),
        )
    });
    ChainDef::new(DNS_REDIRECT, Some(Hook::NatOutput), rules)
}

/// After the forwarder's accept: no other resolver, over plain DNS (53) or DNS over TLS or
/// QUIC (853), so every name the VM learns passes the forwarder.
fn other_resolvers_refused() -> Vec<RuleDef> {
    let ports = PortSet::from_ranges(
        [53, 853]
            .into_iter()
            .filter_map(|p| PortRange::new(p, p))
            .collect(),
    )
    .unwrap_or_else(|| unreachable!("two ports are a port set"));
    ["udp", "tcp"]
        .into_iter()
        .map(|proto| {
            let mut rule = RuleDef::new(
                vec![Match::Dport(proto, ports.clone())],
                RuleVerdict::Policy(Verdict::Reject),
            );
            rule.counter = Counter::Anonymous;
            rule.comment = Some("DNS only through Palisade".into());
            rule
        })
        .collect()
}

/// The forwarder's endpoints as destination and transport alternatives: what a VM's "dns" target
/// means once its DNS is redirected (the filter chains see the redirected destination).
fn forwarder_matches(port: u16, protocol: Protocol) -> (Vec<Vec<Match>>, Vec<Vec<Match>>) {
    let destinations = LOOPBACKS
        .iter()
        .map(|a| vec![Match::Daddr(IpNet::from(*a))])
        .collect();
    let protocols: &[&'static str] = match protocol {
        Protocol::Udp => &["udp"],
        Protocol::Tcp => &["tcp"],
        _ => &["udp", "tcp"],
    };
    let transports = protocols
        .iter()
        .map(|p| vec![Match::Dport(p, single_port_set(port))])
        .collect();
    (destinations, transports)
}

fn single_port_set(port: u16) -> PortSet {
    single_port(port).unwrap_or_else(|| unreachable!("a single port is a port set"))
}

/// Where the rules being compiled come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The policy's own: numbered, with named counters and nflog logging.
    Policy,
    /// What a VM's settings imply (`implicit_rules`): counted, never logged.
    Implicit,
}

fn compile_rules(
    owner: &Owner<'_>,
    source: Source,
    rules: &[Rule],
    facts: &Facts,
    now: SystemTime,
    out: &mut Ruleset,
) -> Vec<RuleDef> {
    let live: Vec<(usize, &Rule)> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_active(now))
        .map(|(i, r)| (i + 1, r))
        .collect();
    let mut compiled = Vec::new();
    let mut run = mark_map::Run::default();
    let mut maps = 0;
    // Neighbours that differ only in their destination network become one rule with a set of
    // networks: one lookup per packet instead of one rule each, and first-match order is kept
    // because only adjacent rules merge. Runs of rules on networks and ports become one map or set.
    for group in live.chunk_by(|(_, a), (_, b)| mergeable(a, b)) {
        let mappable = match source {
            Source::Policy => mark_map::keys(group),
            Source::Implicit => None,
        };
        let joins = mappable.as_ref().is_some_and(|keys| run.admits(keys));
        if !joins {
            close_run(owner, &mut run, &mut maps, facts, out, &mut compiled);
        }
        match mappable {
            Some(keys) => run.push(group, keys),
            None => compiled.extend(compile_group(owner, source, group, facts, out)),
        }
    }
    close_run(owner, &mut run, &mut maps, facts, out, &mut compiled);
    compiled
}

/// Ends the run being gathered: as a mark map when it is long enough, else as rules.
fn close_run(
    owner: &Owner<'_>,
    run: &mut mark_map::Run<'_>,
    maps: &mut usize,
    facts: &Facts,
    out: &mut Ruleset,
    compiled: &mut Vec<RuleDef>,
) {
    if let Some(short) = run.take_short() {
        for group in short {
            compiled.extend(compile_group(owner, Source::Policy, group, facts, out));
        }
        return;
    }
    compiled.extend(run.take_maps(
        owner,
        *maps,
        |group| owner.vm.map_or(0, |vm| group_mark(vm, group)),
        |tag, group| {
            let content: String = group.iter().map(|(_, r)| rule_content(r)).collect();
            counter_name(tag, &content)
        },
        out,
    ));
    *maps += 1;
}

/// The nft rules of one group of merged neighbours (often a single rule).
fn compile_group(
    owner: &Owner<'_>,
    source: Source,
    group: &[(usize, &Rule)],
    facts: &Facts,
    out: &mut Ruleset,
) -> Vec<RuleDef> {
    let mut compiled = Vec::new();
    let (first_number, rule) = group[0];
    let last_number = group[group.len() - 1].0;
    let numbers = if group.len() == 1 {
        first_number.to_string()
    } else {
        format!("{first_number}-{last_number}")
    };
    let mark = match (owner.vm, rule.action) {
        (Some(vm), Verdict::Accept) => Some(group_mark(vm, group)),
        _ => None,
    };
    if let Some(m) = mark {
        out.live_marks.insert(m);
    }
    let verdict = rule_verdict(owner.vm.is_none(), rule.action);
    let (destinations, transports) = match (owner.forwarder, &rule.destination) {
        (Some(port), Destination::Dns) => forwarder_matches(port, rule.protocol),
        _ if group.len() == 1 => (
            destination_matches(owner, first_number, rule, facts, out),
            transport_matches(rule),
        ),
        _ => (merged_destinations(group), transport_matches(rule)),
    };
    let shared_comment = group.iter().all(|(_, r)| r.comment == rule.comment);
    let comment = if group.len() == 1 || (shared_comment && !rule.comment.is_empty()) {
        (!rule.comment.is_empty()).then(|| shorten(&rule.comment))
    } else {
        Some(format!("rules {numbers}"))
    };
    let (counter, log) = match source {
        Source::Policy => {
            let tag = RuleTag {
                owner: owner.tag.clone(),
                rule: TagRule::Numbers {
                    first: u32::try_from(first_number).unwrap_or(u32::MAX),
                    last: u32::try_from(last_number).unwrap_or(u32::MAX),
                },
                action: rule.action,
            };
            let content: String = group.iter().map(|(_, r)| rule_content(r)).collect();
            let (counter, log) = counted_and_logged(&tag, &content, out);
            (counter, rule.log.then_some(log))
        }
        Source::Implicit => (Counter::Anonymous, None),
    };
    let template = RuleDef {
        matches: Vec::new(),
        counter,
        log,
        set_mark: mark,
        verdict,
        comment,
    };
    compiled.extend(expand(&template, &destinations, &transports));
    if let Destination::Blocklist(name) = &rule.destination {
        let stem = format!("{}_r{first_number}", owner.chain);
        for sets in families(rule)
            .into_iter()
            .filter_map(|f| imported_sets(name, facts, f))
        {
            compiled.extend(list_lookup::list_rules(
                &stem,
                &template,
                &sets,
                &transports,
                out,
            ));
        }
    }
    compiled
}

/// How a policy rule's action ends its nft rules. In the host chain an accept only means "no
/// objection" (return): the VM's own rules still apply.
pub(crate) fn rule_verdict(in_host_chain: bool, action: Verdict) -> RuleVerdict {
    match action {
        Verdict::Accept if in_host_chain => RuleVerdict::Return,
        v => RuleVerdict::Policy(v),
    }
}

/// What a policy rule does, for its counter's name: everything but its comment and expiry,
/// which change no packet's fate.
fn rule_content(rule: &Rule) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{}|{};",
        rule.destination, rule.protocol, rule.ports, rule.icmp_type, rule.action, rule.log
    )
}

/// The log prefix of rules `numbers` (`3` or `3-5`) of `label`'s rules, in a guest's kernel log
/// (the host's rules log to nflog, with a [`RuleTag`]'s prefix).
pub(crate) fn log_prefix(label: &str, numbers: &str, action: Verdict) -> String {
    format!("palisade {label} rule={numbers} {action}: ")
}

/// One nft rule per destination alternative and transport alternative: a copy of `template`
/// matching the destination, then the transport, then whatever `template` already matches.
pub(crate) fn expand(
    template: &RuleDef,
    destinations: &[Vec<Match>],
    transports: &[Vec<Match>],
) -> Vec<RuleDef> {
    let mut rules = Vec::with_capacity(destinations.len() * transports.len());
    for d in destinations {
        for t in transports {
            let mut rule = template.clone();
            rule.matches = d
                .iter()
                .chain(t)
                .chain(&template.matches)
                .cloned()
                .collect();
            rules.push(rule);
        }
    }
    rules
}

/// Whether two adjacent rules may share one nft rule: same everything but their networks.
fn mergeable(a: &Rule, b: &Rule) -> bool {
    matches!(
        (&a.destination, &b.destination),
        (Destination::Net(_), Destination::Net(_))
    ) && a.action == b.action
        && a.protocol == b.protocol
        && a.ports == b.ports
        && a.icmp_type == b.icmp_type
        && a.log == b.log
}

fn merged_destinations(group: &[(usize, &Rule)]) -> Vec<Vec<Match>> {
    let nets = group.iter().filter_map(|(_, r)| match r.destination {
        Destination::Net(n) => Some(n),
        _ => None,
    });
    let (v4, v6) = split_families(nets);
    [(Family::V4, v4), (Family::V6, v6)]
        .into_iter()
        .filter(|(_, nets)| !nets.is_empty())
        .map(|(f, nets)| vec![Match::DaddrAnyOf(f, nets)])
        .collect()
}

/// The mark of a group: its one rule's mark, or a hash over all members' marks, so that
/// removing any member changes the mark and the group's connections are judged again.
fn group_mark(vm: &VmName, group: &[(usize, &Rule)]) -> u32 {
    match group {
        [(_, rule)] => connection_mark(vm, rule),
        many => fnv1a(
            many.iter()
                .flat_map(|(_, r)| connection_mark(vm, r).to_le_bytes()),
        ),
    }
}

/// The destination alternatives (one nft rule each) that together match `rule`'s destination.
fn destination_matches(
    owner: &Owner<'_>,
    number: usize,
    rule: &Rule,
    facts: &Facts,
    out: &mut Ruleset,
) -> Vec<Vec<Match>> {
    let pinned = pinned_family(rule.protocol);
    let families = families(rule);
    match &rule.destination {
        Destination::Any => vec![pinned.map(Match::Family).into_iter().collect()],
        Destination::Net(n) => vec![vec![Match::Daddr(*n)]],
        Destination::Host(_) | Destination::Wildcard(_) if owner.vm.is_some() => {
            let mut alternatives = Vec::new();
            for family in families {
                let name = answers_set(&owner.chain, &rule.destination, family);
                if !out.sets.iter().any(|s| s.name == name) {
                    out.sets
                        .push(net_set(&name, SetKind::Answers(family), Vec::new()));
                }
                alternatives.push(vec![Match::DaddrInSet(family, name)]);
            }
            alternatives
        }
        Destination::Host(_) | Destination::Wildcard(_) => {
            let (learned, follows) = match &rule.destination {
                Destination::Host(h) => (
                    facts.resolved.get(h).cloned().unwrap_or_default(),
                    Some(FollowedName {
                        name: h.clone(),
                        timeout_seconds: facts.learned_seconds,
                    }),
                ),
                _ => (Vec::new(), None),
            };
            let (v4, v6) = split_families(learned.into_iter().map(IpNet::from));
            let mut alternatives = Vec::new();
            for (family, nets, kind) in [
                (Family::V4, v4, SetKind::Ipv4Learned),
                (Family::V6, v6, SetKind::Ipv6Learned),
            ] {
                if families.contains(&family) {
                    let name = format!("{}_r{number}_{}", owner.chain, family_suffix(family));
                    let mut set = net_set(&name, kind, nets);
                    set.follows = follows.clone();
                    out.sets.push(set);
                    alternatives.push(vec![Match::DaddrInSet(family, name)]);
                }
            }
            alternatives
        }
        Destination::Blocklist(b) => families
            .iter()
            .flat_map(|f| blocklist_matches(b, facts, *f))
            .collect(),
        Destination::Dns => {
            let (v4, v6) = split_families(facts.dns_servers.iter().copied().map(IpNet::from));
            [(Family::V4, v4), (Family::V6, v6)]
                .into_iter()
                .filter(|(_, nets)| !nets.is_empty())
                .map(|(f, nets)| vec![Match::DaddrAnyOf(f, nets)])
                .collect()
        }
    }
}

/// The family a protocol pins: ICMP exists only over IPv4, ICMPv6 only over IPv6.
pub(crate) fn pinned_family(protocol: Protocol) -> Option<Family> {
    match protocol {
        Protocol::Icmp => Some(Family::V4),
        Protocol::Icmpv6 => Some(Family::V6),
        _ => None,
    }
}

/// The transport alternatives of `rule` (the "dns" target means udp and tcp port 53).
pub(crate) fn transport_matches(rule: &Rule) -> Vec<Vec<Match>> {
    let dns_port = single_port(53);
    match (&rule.destination, rule.protocol) {
        (Destination::Dns, Protocol::Any) => ["udp", "tcp"]
            .iter()
            .map(|p| transport(p, rule.ports.as_ref().or(dns_port.as_ref()), None))
            .collect(),
        (Destination::Dns, p) => vec![transport(
            p.nft_name().unwrap_or("udp"),
            rule.ports.as_ref().or(dns_port.as_ref()),
            None,
        )],
        (_, Protocol::Any) => vec![Vec::new()],
        (_, p) => vec![transport(
            p.nft_name().unwrap_or_default(),
            rule.ports.as_ref(),
            rule.icmp_type,
        )],
    }
}

/// The port set of one port (always `Some`: one valid port makes a valid set).
pub(crate) fn single_port(port: u16) -> Option<PortSet> {
    PortSet::from_ranges(PortRange::new(port, port).into_iter().collect())
}

/// The transport matches. A port or ICMP-type match implies its protocol (nft adds the
/// `meta l4proto` dependency itself), so the explicit protocol match is written only when
/// nothing else names it: every statement less is parsing time saved on large rulesets.
fn transport(proto: &'static str, ports: Option<&PortSet>, icmp_type: Option<u8>) -> Vec<Match> {
    match (ports, icmp_type) {
        (Some(p), _) => vec![Match::Dport(proto, p.clone())],
        (None, Some(t)) => vec![Match::IcmpType(proto, t)],
        (None, None) => vec![Match::L4Proto(proto)],
    }
}

/// The IPv4 and the IPv6 networks among `nets`, each merged.
pub(crate) fn split_families(nets: impl Iterator<Item = IpNet>) -> (Vec<IpNet>, Vec<IpNet>) {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = nets.partition(|n| matches!(n, IpNet::V4(_)));
    // Interval sets refuse overlapping elements, so overlaps are merged first.
    (IpNet::aggregate(&v4), IpNet::aggregate(&v6))
}

/// A set of networks (or learned addresses).
pub(crate) fn net_set(name: &str, kind: SetKind, nets: Vec<IpNet>) -> SetDef {
    SetDef {
        name: name.into(),
        kind,
        nets,
        marks: Vec::new(),
        consoles: Vec::new(),
        entries: Vec::new(),
        imported: None,
        follows: None,
    }
}

fn family_suffix(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// The set holding one family of a blocklist.
pub fn blocklist_set(name: &str, f: Family) -> String {
    format!("bl_{}_{}", name.replace('-', "_"), family_suffix(f))
}

/// The families a rule's packets can be of: one if its protocol pins it.
fn families(rule: &Rule) -> Vec<Family> {
    match pinned_family(rule.protocol) {
        Some(f) => vec![f],
        None => vec![Family::V4, Family::V6],
    }
}

/// The alternatives matching one family of blocklist `name` when it is written in the policy:
/// its one set. An imported list is looked up in the sets the data path chose for it
/// ([`imported_sets`], `list_lookup`), and has no alternatives here; an imported list whose
/// sets were not chosen names the inline set, which does not exist: the kernel refuses such a
/// ruleset rather than dropping the rule.
fn blocklist_matches(name: &ShortName, facts: &Facts, f: Family) -> Vec<Vec<Match>> {
    if imported_sets(name, facts, f).is_some() {
        return Vec::new();
    }
    vec![vec![Match::DaddrInSet(f, blocklist_set(name.as_str(), f))]]
}

/// The kernel sets of one family of imported list `name`, if the data path chose them.
fn imported_sets<'f>(
    name: &ShortName,
    facts: &'f Facts,
    family: Family,
) -> Option<list_lookup::ListSets<'f>> {
    let data = facts.imported.get(name)?;
    let slices = data.sets(family);
    (!slices.is_empty()).then(|| list_lookup::ListSets {
        family,
        slices,
        overlay: data.overlay(family),
    })
}

/// The set remembering the addresses found in none of the sets of the group of slices whose
/// first set is `slice`: `<stem>_u` for slices `<stem>_s<k>` (see `list_lookup`).
pub fn unlisted_set(slice: &str) -> String {
    let stem = slice.rsplit_once("_s").map_or(slice, |(stem, _)| stem);
    format!("{stem}_u")
}

/// The first and last address of a family.
pub(crate) fn family_bounds(family: Family) -> (IpAddr, IpAddr) {
    match family {
        Family::V4 => (
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(std::net::Ipv4Addr::BROADCAST),
        ),
        Family::V6 => (
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX)),
        ),
    }
}

/// The set holding the addresses the forwarder admitted for `destination` (a host name or a
/// wildcard) in the VM chain `chain`. Named by the destination, not the rule's position, so it
/// and its addresses outlive edits elsewhere in the policy; rules naming the same destination
/// share it.
pub fn answers_set(chain: &str, destination: &Destination, family: Family) -> String {
    format!(
        "{chain}_n{:08x}_{}",
        fnv1a(destination.to_string().bytes()),
        family_suffix(family)
    )
}

/// The connection mark of an accepting rule: a stable hash of what it matches (not of its
/// comment or position), so editing a comment or inserting a rule above keeps connections open.
pub fn connection_mark(vm: &VmName, rule: &Rule) -> u32 {
    let key = format!(
        "{vm}|{}|{:?}|{}|{:?}",
        rule.destination,
        rule.protocol,
        rule.ports
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        rule.icmp_type
    );
    fnv1a(key.bytes())
}

/// FNV-1a: tiny, stable across releases and platforms, good enough spread for ids. Never 0,
/// which is the mark of connections nobody marked.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// The copy of an admin's comment the kernel keeps: shortened to fit, with quotes and
/// backslashes replaced, which nft's own syntax cannot carry in a comment (the policy keeps
/// the original).
pub(crate) fn shorten(s: &str) -> String {
    let s = s.replace('"', "'").replace('\\', "/");
    if s.len() <= MAX_NFT_COMMENT {
        return s;
    }
    let mut end = MAX_NFT_COMMENT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

mod lab;
mod list_lookup;
mod mark_map;
#[cfg(test)]
pub(crate) mod tests;
