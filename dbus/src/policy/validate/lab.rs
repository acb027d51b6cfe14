//! Validation of lab networks and bridged VMs' ports: each on its own first, then across the
//! policy (the network a VM names exists, its address lies in that subnet, no address, MAC,
//! port name or NAT address is used twice).

use super::super::lab::{
    self, BridgePort, ForwardProtocol, LabNetwork, MacAddress, Nat, PortForward, MAX_FORWARDS,
    MAX_NETWORKS,
};
use super::super::raw::{RawNat, RawNetwork};
use super::super::{NetworkMode, Vm, VmName};
use super::Validator;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The fields of a `[[vm]]` that describe its bridge port.
pub(in crate::policy) struct PortFields<'a> {
    pub bridge: &'a Option<String>,
    pub address: &'a Option<String>,
    pub mac: &'a Option<String>,
    pub nat: &'a Option<RawNat>,
}

impl Validator {
    /// The `[[network]]` entries.
    pub(super) fn networks(&mut self, raw: Vec<RawNetwork>) -> Vec<LabNetwork> {
        if raw.len() > MAX_NETWORKS {
            self.error(
                "network",
                format!(
                    "{} networks declared; the most is {MAX_NETWORKS}",
                    raw.len()
                ),
            );
        }
        let mut out: Vec<LabNetwork> = Vec::new();
        for (i, rn) in raw.into_iter().enumerate() {
            let path = match lab::network_name(&rn.name) {
                Ok(n) => format!("network[{n}]"),
                Err(_) => format!("network#{}", i + 1),
            };
            let name = self.check(&format!("{path}.name"), lab::network_name(&rn.name));
            let subnet = match rn.subnet.parse::<ipnet::Ipv4Net>() {
                Ok(n) if (8..=30).contains(&n.prefix_len()) && n.trunc() == n => Some(n),
                Ok(_) => {
                    self.error(
                        &format!("{path}.subnet"),
                        format!(
                            "{}: give the network's own address and a prefix of 8 to 30, like \"10.77.0.0/24\"",
                            rn.subnet
                        ),
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        &format!("{path}.subnet"),
                        format!(
                            "{:?} is not an IPv4 network, like \"10.77.0.0/24\"",
                            rn.subnet
                        ),
                    );
                    None
                }
            };
            let host = self.check(&format!("{path}.address"), ipv4(&rn.address));
            let (Some(name), Some(subnet), Some(host_address)) = (name, subnet, host) else {
                continue;
            };
            if !lab::usable_in(&subnet, host_address) {
                self.error(
                    &format!("{path}.address"),
                    format!("{host_address} is not a usable address in {subnet}"),
                );
                continue;
            }
            if out.iter().any(|n| n.name == name) {
                self.error(&path, format!("the network {name} is defined twice"));
                continue;
            }
            if let Some(other) = out.iter().find(|n| {
                n.subnet.contains(&subnet.network()) || subnet.contains(&n.subnet.network())
            }) {
                self.error(
                    &format!("{path}.subnet"),
                    format!(
                        "{subnet} overlaps network {}'s {}",
                        other.name, other.subnet
                    ),
                );
                continue;
            }
            out.push(LabNetwork {
                name,
                subnet,
                host_address,
            });
        }
        out
    }

    /// A VM's bridge port fields, on their own. `Some(None)`: not bridged; `None`: an error.
    pub(super) fn bridge_port(
        &mut self,
        path: &str,
        mode: Option<NetworkMode>,
        rv: PortFields<'_>,
        name: Option<&VmName>,
    ) -> Option<Option<BridgePort>> {
        if mode != Some(NetworkMode::Bridge) {
            for (field, set) in [
                ("bridge", rv.bridge.is_some()),
                ("address", rv.address.is_some()),
                ("mac", rv.mac.is_some()),
                ("nat", rv.nat.is_some()),
            ] {
                if set {
                    self.error(
                        &format!("{path}.{field}"),
                        "only a VM with network = \"bridge\" has this",
                    );
                }
            }
            return Some(None);
        }
        let network = match &rv.bridge {
            Some(b) => self.check(&format!("{path}.bridge"), lab::network_name(b)),
            None => {
                self.error(
                    &format!("{path}.bridge"),
                    "name the [[network]] this VM is on, like bridge = \"lab\"",
                );
                None
            }
        };
        let address = match &rv.address {
            Some(a) => self.check(&format!("{path}.address"), ipv4(a)),
            None => {
                self.error(
                    &format!("{path}.address"),
                    "give the VM's address on its network, like address = \"10.77.0.10\"",
                );
                None
            }
        };
        let mac = match &rv.mac {
            Some(m) => self.check(&format!("{path}.mac"), MacAddress::parse(m)),
            None => name.map(|n| MacAddress::for_vm(n.as_str())),
        };
        let nat = match &rv.nat {
            None => Some(None),
            Some(n) => self.nat(&format!("{path}.nat"), n).map(Some),
        };
        Some(Some(BridgePort {
            network: network?,
            address: address?,
            mac: mac?,
            nat: nat?,
        }))
    }

    fn nat(&mut self, path: &str, raw: &RawNat) -> Option<Nat> {
        let address = self.check(&format!("{path}.address"), ipv4(&raw.address));
        if raw.forward.len() > MAX_FORWARDS {
            self.error(
                &format!("{path}.forward"),
                format!("{} forwards; the most is {MAX_FORWARDS}", raw.forward.len()),
            );
            return None;
        }
        let mut forwards: Vec<PortForward> = Vec::new();
        let mut ok = true;
        for (i, f) in raw.forward.iter().enumerate() {
            let here = format!("{path}.forward[{}]", i + 1);
            let proto = match f.proto.as_str() {
                "tcp" => Some(ForwardProtocol::Tcp),
                "udp" => Some(ForwardProtocol::Udp),
                other => {
                    self.error(
                        &format!("{here}.proto"),
                        format!("{other:?} cannot be forwarded: use \"tcp\" or \"udp\""),
                    );
                    None
                }
            };
            let port = self.check(&format!("{here}.port"), forward_port(f.port));
            let to_port = self.check(
                &format!("{here}.to_port"),
                forward_port(f.to_port.unwrap_or(f.port)),
            );
            match (proto, port, to_port) {
                (Some(proto), Some(port), Some(to_port)) => {
                    if forwards.iter().any(|o| o.proto == proto && o.port == port) {
                        self.error(
                            &here,
                            format!("{}/{port} is forwarded twice", proto.as_str()),
                        );
                        ok = false;
                    } else {
                        forwards.push(PortForward {
                            proto,
                            port,
                            to_port,
                        });
                    }
                }
                _ => ok = false,
            }
        }
        ok.then_some(())?;
        Some(Nat {
            address: address?,
            forwards,
        })
    }

    /// Checks across the policy: each bridged VM's network exists and holds its address, and no
    /// address, MAC, port name or NAT address serves two.
    pub(super) fn lab_addresses(&mut self, networks: &[LabNetwork], vms: &[Vm]) {
        let mut addresses: HashMap<(String, Ipv4Addr), String> = HashMap::new();
        let mut macs: HashMap<MacAddress, String> = HashMap::new();
        let mut ports: HashMap<String, String> = HashMap::new();
        let mut nats: HashMap<Ipv4Addr, String> = HashMap::new();
        for vm in vms {
            let Some(port) = &vm.bridge else { continue };
            let path = format!("vm[{}]", vm.name);
            let name = vm.name.to_string();
            let Some(net) = networks.iter().find(|n| n.name == port.network) else {
                self.error(
                    &format!("{path}.bridge"),
                    format!("there is no [[network]] named {}", port.network),
                );
                continue;
            };
            if !lab::usable_in(&net.subnet, port.address) || port.address == net.host_address {
                self.error(
                    &format!("{path}.address"),
                    format!(
                        "{} is not a guest's address in network {} ({}, the host is {})",
                        port.address, net.name, net.subnet, net.host_address
                    ),
                );
            }
            if let Some(other) = addresses.insert((net.name.clone(), port.address), name.clone()) {
                self.error(
                    &format!("{path}.address"),
                    format!("{} is VM {other}'s address too", port.address),
                );
            }
            if let Some(other) = macs.insert(port.mac, name.clone()) {
                self.error(
                    &format!("{path}.mac"),
                    format!("{} is VM {other}'s MAC address too", port.mac),
                );
            }
            if let Some(other) = ports.insert(lab::port_name(&name), name.clone()) {
                self.error(
                    &path,
                    format!("this VM's name and VM {other}'s give the same port name: rename one"),
                );
            }
            if let Some(nat) = &port.nat {
                if networks.iter().any(|n| n.subnet.contains(&nat.address)) {
                    self.error(
                        &format!("{path}.nat.address"),
                        format!(
                            "{} is inside a lab network: give one of the host's outside addresses",
                            nat.address
                        ),
                    );
                }
                if let Some(other) = nats.insert(nat.address, name.clone()) {
                    self.error(
                        &format!("{path}.nat.address"),
                        format!(
                            "{} is VM {other}'s NAT address too: each VM goes out through its own",
                            nat.address
                        ),
                    );
                }
            }
        }
    }
}

fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address, like \"10.77.0.10\""))
}

fn forward_port(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{n} is not a port: give 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::lab::{ForwardProtocol, MacAddress};
    use crate::policy::{NetworkMode, Policy};

    const LAB: &str = r#"
[[network]]
name = "lab"
subnet = "10.77.0.0/24"
address = "10.77.0.1"

[[vm]]
name = "trap"
network = "bridge"
bridge = "lab"
address = "10.77.0.10"
[vm.nat]
address = "192.0.2.10"
[[vm.nat.forward]]
proto = "tcp"
port = 2222
to_port = 22
[[vm.nat.forward]]
proto = "tcp"
port = 80

[[vm]]
name = "other"
network = "bridge"
bridge = "lab"
address = "10.77.0.11"
mac = "52:54:00:00:00:11"
"#;

    fn errors(doc: &str) -> String {
        match Policy::parse(doc.as_bytes()) {
            Ok(_) => String::new(),
            Err(f) => f
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn a_lab_with_nat_and_forwards_parses() {
        let p = Policy::parse(LAB.as_bytes())
            .unwrap_or_else(|f| panic!("{f:?}"))
            .policy;
        assert_eq!(p.networks.len(), 1);
        assert_eq!(p.networks[0].bridge(), "palb-lab");
        let trap = p.vm("trap").unwrap_or_else(|| panic!("no trap"));
        assert_eq!(trap.network, NetworkMode::Bridge);
        let port = trap.bridge.as_ref().unwrap_or_else(|| panic!("no port"));
        assert_eq!(port.mac, MacAddress::for_vm("trap"));
        let nat = port.nat.as_ref().unwrap_or_else(|| panic!("no nat"));
        assert_eq!(nat.forwards.len(), 2);
        assert_eq!(
            (
                nat.forwards[1].proto,
                nat.forwards[1].port,
                nat.forwards[1].to_port
            ),
            (ForwardProtocol::Tcp, 80, 80)
        );
        let other = p.vm("other").unwrap_or_else(|| panic!("no other"));
        assert_eq!(
            other.bridge.as_ref().map(|b| b.mac.to_string()),
            Some("52:54:00:00:00:11".into())
        );
    }

    #[test]
    fn lab_mistakes_are_refused_with_their_path() {
        let cases = [
            (
                LAB.replacen("bridge = \"lab\"", "bridge = \"lob\"", 1),
                "vm[trap].bridge",
                "no [[network]] named lob",
            ),
            (
                LAB.replace("10.77.0.11", "10.77.0.10"),
                "vm[other].address",
                "VM trap's address too",
            ),
            (
                LAB.replacen("10.77.0.10", "10.78.0.10", 1),
                "vm[trap].address",
                "not a guest's address",
            ),
            (
                LAB.replacen("10.77.0.10", "10.77.0.1", 1),
                "vm[trap].address",
                "not a guest's address",
            ),
            (
                LAB.replace(
                    "mac = \"52:54:00:00:00:11\"",
                    &format!("mac = \"{}\"", MacAddress::for_vm("trap")),
                ),
                "vm[other].mac",
                "VM trap's MAC",
            ),
            (
                LAB.replace("192.0.2.10", "10.77.0.99"),
                "vm[trap].nat.address",
                "inside a lab network",
            ),
            (
                LAB.replace("port = 80", "port = 2222"),
                "vm[trap].nat.forward[2]",
                "forwarded twice",
            ),
            (
                LAB.replace("proto = \"tcp\"\nport = 80", "proto = \"icmp\"\nport = 80"),
                "vm[trap].nat.forward[2].proto",
                "cannot be forwarded",
            ),
            (
                LAB.replace("subnet = \"10.77.0.0/24\"", "subnet = \"10.77.0.5/24\""),
                "network[lab].subnet",
                "network's own address",
            ),
            (
                LAB.replace("name = \"lab\"", "name = \"a-very-long-name\""),
                "network#1.name",
                "not a network name",
            ),
            (
                format!("{LAB}\n[[vm]]\nname = \"plain\"\naddress = \"10.77.0.12\"\n"),
                "vm[plain].address",
                "only a VM with network = \"bridge\"",
            ),
            (
                LAB.replacen("bridge = \"lab\"\n", "", 1),
                "vm[trap].bridge",
                "name the [[network]]",
            ),
        ];
        for (doc, path, words) in cases {
            let e = errors(&doc);
            assert!(
                e.lines().any(|l| l.starts_with(path) && l.contains(words)),
                "{path}: {words}\n{e}"
            );
        }
    }
}
