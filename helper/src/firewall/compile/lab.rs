//! The lab networks' part of the ruleset (pure): bridged VMs' traffic filtered by their own
//! rules on the way out (to other networks and to the host), only NAT'd or answering traffic on
//! the way in, the NAT chains below other managers' priorities, and each port's guard for the
//! `bridge` table.
//!
//! A bridged VM is recognised by its source address on its bridge; the port guard makes that
//! address its alone (frames from its port carry its MAC and its address, or they are dropped),
//! so the VM's own rule chain — the same one its slirp twin would meet — decides for it.

use super::super::ruleset::*;
use ipnet::{IpNet, Ipv4Net};
use palisade_dbus::policy::lab::{self, LabNetwork};
use palisade_dbus::policy::{Policy, PortRange, PortSet, Vm};

/// The forward filter chain.
pub const LAB_FORWARD: &str = "lab_forward";
/// The input filter chain (bridged VMs reaching the host).
pub const LAB_INPUT: &str = "lab_input";
/// Destination NAT.
pub const LAB_DNAT: &str = "lab_dnat";
/// Source NAT.
pub const LAB_SNAT: &str = "lab_snat";

/// Adds the lab chains and port guards of `policy` to `out`; nothing without lab networks.
pub fn add_lab(policy: &Policy, out: &mut Ruleset) {
    if policy.networks.is_empty() {
        return;
    }
    let bridged: Vec<(&Vm, &LabNetwork, &lab::BridgePort)> = policy
        .vms
        .iter()
        .filter_map(|vm| {
            let port = vm.bridge.as_ref()?;
            let net = policy.networks.iter().find(|n| n.name == port.network)?;
            Some((vm, net, port))
        })
        .collect();
    let mut forward = vec![RuleDef::new(
        vec![Match::CtEstablished],
        RuleVerdict::Policy(palisade_dbus::policy::Verdict::Accept),
    )];
    let mut input = forward.clone();
    // Guests of one network reach each other: a lab is one network. Frames between them are
    // bridged and meet no inet hook, unless br_netfilter is loaded (Docker loads it); then they
    // pass through forward with the bridge on both sides, and must pass here just the same.
    // The port guards still hold them to their own MAC and address.
    for net in &policy.networks {
        let mut within = RuleDef::new(
            vec![Match::IifName(net.bridge()), Match::OifName(net.bridge())],
            RuleVerdict::Policy(palisade_dbus::policy::Verdict::Accept),
        );
        within.comment = Some(format!("network {}: between its guests", net.name));
        forward.push(within);
    }
    let mut dnat = Vec::new();
    let mut snat = Vec::new();
    for (vm, net, port) in &bridged {
        let from_vm = vec![
            Match::IifName(net.bridge()),
            Match::Saddr(host(port.address)),
        ];
        // Out of the lab and to the host: the VM's own rules, ending in its default.
        forward.push(RuleDef::new(
            from_vm.clone(),
            RuleVerdict::Jump(vm.name.chain()),
        ));
        input.push(RuleDef::new(from_vm, RuleVerdict::Jump(vm.name.chain())));
        if let Some(nat) = &port.nat {
            let outside = host(nat.address);
            if nat.forwards.is_empty() {
                dnat.push(RuleDef::new(
                    vec![Match::Daddr(outside)],
                    RuleVerdict::Dnat(port.address, None),
                ));
            }
            for f in &nat.forwards {
                let proto = f.proto.as_str();
                let Some(ports) =
                    PortRange::new(f.port, f.port).and_then(|r| PortSet::from_ranges(vec![r]))
                else {
                    continue;
                };
                dnat.push(RuleDef::new(
                    vec![
                        Match::Daddr(outside),
                        Match::L4Proto(proto),
                        Match::Dport(proto, ports),
                    ],
                    RuleVerdict::Dnat(port.address, Some(f.to_port)),
                ));
            }
            // Out through the very address it is reached at: no other manager's masquerade
            // gets to choose another one.
            snat.push(RuleDef::new(
                vec![
                    Match::Saddr(host(port.address)),
                    Match::OifNameNot(net.bridge()),
                ],
                RuleVerdict::Snat(nat.address),
            ));
        }
    }
    for net in &policy.networks {
        // In to the lab: what a NAT rule sent there (and the answers, accepted above); nothing
        // else from outside starts a connection to a guest.
        let mut to_lab = RuleDef::new(
            vec![Match::OifName(net.bridge()), Match::CtDnat],
            RuleVerdict::Policy(palisade_dbus::policy::Verdict::Accept),
        );
        to_lab.comment = Some(format!("network {}: forwarded to a guest", net.name));
        forward.push(to_lab);
        let mut closed = RuleDef::new(
            vec![Match::OifName(net.bridge())],
            RuleVerdict::Policy(palisade_dbus::policy::Verdict::Drop),
        );
        closed.counter = Counter::Anonymous;
        forward.push(closed);
        // An address no VM of the network has cannot pass the port guards; whatever else
        // arrives from the bridge is dropped.
        for chain in [&mut forward, &mut input] {
            let mut unknown = RuleDef::new(
                vec![Match::IifName(net.bridge())],
                RuleVerdict::Policy(palisade_dbus::policy::Verdict::Drop),
            );
            unknown.counter = Counter::Anonymous;
            chain.push(unknown);
        }
        snat.push(RuleDef::new(
            vec![
                Match::Saddr(IpNet::V4(subnet(net))),
                Match::OifNameNot(net.bridge()),
            ],
            RuleVerdict::Masquerade,
        ));
    }
    out.chains.push(ChainDef::new(
        LAB_FORWARD,
        Some(Hook::Forward {
            policy: ChainPolicy::Accept,
        }),
        forward,
    ));
    out.chains.push(ChainDef::new(
        LAB_INPUT,
        Some(Hook::Input {
            policy: ChainPolicy::Accept,
        }),
        input,
    ));
    out.chains
        .push(ChainDef::new(LAB_DNAT, Some(Hook::NatPrerouting), dnat));
    out.chains
        .push(ChainDef::new(LAB_SNAT, Some(Hook::NatPostrouting), snat));
    out.port_guards = bridged
        .iter()
        .map(|(vm, _, port)| {
            let name = lab::port_name(vm.name.as_str());
            let what = format!("{name} {} {}", port.mac, port.address);
            PortGuard {
                vm: vm.name.clone(),
                counter: format!(
                    "c_vm_{}_spoofed_{:08x}",
                    vm.name,
                    super::fnv1a(what.bytes())
                ),
                port: name,
                mac: port.mac,
                address: port.address,
            }
        })
        .collect();
}

fn host(a: std::net::Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(a))
}

fn subnet(net: &LabNetwork) -> Ipv4Net {
    net.subnet
}
