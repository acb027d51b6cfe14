//! Bridged lab networks: a bridge the helper owns per `[[network]]`, a port per bridged VM with
//! its fixed MAC and address, and the VM's NAT through a host address.
//!
//! Names the kernel sees are derived, never taken from the document: a bridge is `palb-NAME`
//! (network names are at most `NETWORK_NAME_MAX` characters, so it fits the kernel's 15), a VM's
//! port `palt-` and eight hex digits of a stable hash of the VM's name.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Longest lab network name: `palb-` plus this fits an interface name.
pub const NETWORK_NAME_MAX: usize = 10;
/// Most lab networks in a policy.
pub const MAX_NETWORKS: usize = 16;
/// Most port forwards of one VM.
pub const MAX_FORWARDS: usize = 64;

/// A bridged lab network (`[[network]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNetwork {
    /// Its name (`lab`).
    pub name: String,
    /// Its IPv4 subnet.
    pub subnet: ipnet::Ipv4Net,
    /// The host's address on it: the guests' gateway.
    pub host_address: Ipv4Addr,
}

impl LabNetwork {
    /// The bridge's interface name.
    pub fn bridge(&self) -> String {
        format!("palb-{}", self.name)
    }
}

/// A bridged VM's port: which network, and the only MAC and address it may send from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePort {
    /// The `[[network]]` it is on.
    pub network: String,
    /// Its address there.
    pub address: Ipv4Addr,
    /// Its MAC address.
    pub mac: MacAddress,
    /// Its NAT through a host address, if any; without, its traffic leaving the host is
    /// masqueraded behind the outgoing interface's address.
    pub nat: Option<Nat>,
}

/// NAT of one VM through one host address: connections to `address` (all ports, or only the
/// forwarded ones) reach the VM, and the VM's own connections leave from `address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat {
    /// The host address.
    pub address: Ipv4Addr,
    /// The ports forwarded; empty: every port.
    pub forwards: Vec<PortForward>,
}

/// One forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    /// TCP or UDP.
    pub proto: ForwardProtocol,
    /// The port on the host address.
    pub port: u16,
    /// The port on the VM.
    pub to_port: u16,
}

/// The protocols a port forward can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl ForwardProtocol {
    /// The protocol's name in nft.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardProtocol::Tcp => "tcp",
            ForwardProtocol::Udp => "udp",
        }
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// `52:54:00:12:34:56`: six pairs of hex digits; a unicast address other than all zeros.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("{text:?} is not a MAC address: write six pairs of hex digits, like \"52:54:00:12:34:56\"")
        };
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if out[0] & 1 == 1 || out == [0; 6] {
            return Err(format!(
                "{text} is a multicast or empty address: a guest needs a unicast one"
            ));
        }
        Ok(Self(out))
    }

    /// The address QEMU's range (52:54:00) gives `vm` when the policy names none: stable, so the
    /// guest keeps it across starts.
    pub fn for_vm(vm: &str) -> Self {
        let h = stable_hash(vm).to_be_bytes();
        Self([0x52, 0x54, 0x00, h[1], h[2], h[3]])
    }
}

impl std::fmt::Display for MacAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The interface name of `vm`'s bridge port.
pub fn port_name(vm: &str) -> String {
    format!("palt-{:08x}", stable_hash(vm))
}

/// FNV-1a, 32 bits: stable across releases (std's hashers are not), enough to tell a few
/// hundred VMs apart, and the validator refuses the rare two VMs whose names collide.
pub fn stable_hash(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A lab network's name: a short word that fits an interface name.
pub fn network_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= NETWORK_NAME_MAX
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a network name: use lower-case letters, digits and '-', start with \
             a letter, at most {NETWORK_NAME_MAX} characters"
        ))
    }
}

/// Whether `address` can be a host's or guest's address in `subnet` (not its network or
/// broadcast address).
pub fn usable_in(subnet: &ipnet::Ipv4Net, address: Ipv4Addr) -> bool {
    subnet.contains(&address) && address != subnet.network() && address != subnet.broadcast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_print_and_refuse_multicast() {
        let m = MacAddress::parse("52:54:00:AB:cd:01");
        assert_eq!(m.map(|m| m.to_string()), Ok("52:54:00:ab:cd:01".to_owned()));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "525400abcd01",
        ] {
            assert!(MacAddress::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MacAddress::for_vm("web"), MacAddress::for_vm("web"));
        assert_ne!(MacAddress::for_vm("web"), MacAddress::for_vm("db"));
        assert_eq!(MacAddress::for_vm("web").0[..3], [0x52, 0x54, 0x00]);
    }

    #[test]
    fn kernel_names_fit_an_interface_name() {
        assert!(port_name("a-very-long-virtual-machine-name").len() <= 15);
        let net = LabNetwork {
            name: "abcdefghij".into(),
            subnet: "10.77.0.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            host_address: Ipv4Addr::new(10, 77, 0, 1),
        };
        assert!(net.bridge().len() <= 15);
        assert!(network_name("abcdefghijk").is_err());
        assert!(network_name("Lab").is_err());
        assert_eq!(network_name("lab-2"), Ok("lab-2".into()));
    }
}
