//! Virtual machines: their system users (the identity the firewall matches with `meta skuid`),
//! disk image versions, the QEMU command line, the QMP monitor, and the supervisor that runs
//! them.

pub mod accel;
pub mod images;
pub mod launch;
pub mod qemu;
pub mod qmp;
pub mod supervisor;
pub mod tls;
pub mod usb;

/// An I/O failure while doing `what`, as the error the caller sees.
fn io(what: &str, e: impl std::fmt::Display) -> palisade_dbus::Error {
    palisade_dbus::Error::Internal(format!("could not {what}: {e}"))
}

/// How `vm` is on the network, as `List()` and `Show()` tell it: its mode and, when bridged,
/// its lab network, address, MAC and NAT with the forwarded ports.
pub fn network_info(vm: &palisade_dbus::policy::Vm) -> palisade_dbus::types::VmNetwork {
    use palisade_dbus::policy::lab::ForwardProtocol;
    use palisade_dbus::policy::NetworkMode;
    use palisade_dbus::types::{ForwardProto, PortForwardInfo, VmNetwork, VmNetworkMode};
    let mode = match vm.network {
        NetworkMode::User => VmNetworkMode::User,
        NetworkMode::None => VmNetworkMode::None,
        NetworkMode::Bridge => VmNetworkMode::Bridge,
    };
    let mut out = VmNetwork {
        mode,
        lab: String::new(),
        address: String::new(),
        mac: String::new(),
        nat_address: String::new(),
        forwards: Vec::new(),
    };
    if let Some(port) = &vm.bridge {
        out.lab.clone_from(&port.network);
        out.address = port.address.to_string();
        out.mac = port.mac.to_string();
        if let Some(nat) = &port.nat {
            out.nat_address = nat.address.to_string();
            out.forwards = nat
                .forwards
                .iter()
                .map(|f| PortForwardInfo {
                    proto: match f.proto {
                        ForwardProtocol::Tcp => ForwardProto::Tcp,
                        ForwardProtocol::Udp => ForwardProto::Udp,
                    },
                    port: f.port,
                    to_port: f.to_port,
                })
                .collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::network_info;
    use palisade_dbus::policy::Policy;
    use palisade_dbus::types::{ForwardProto, PortForwardInfo, VmNetworkMode};

    #[test]
    fn a_bridged_vm_shows_its_network_and_a_slirp_one_nothing_more() {
        let doc = r#"
[[network]]
name = "lab"
subnet = "10.77.0.0/24"
address = "10.77.0.1"

[[vm]]
name = "trap"
network = "bridge"
bridge = "lab"
address = "10.77.0.10"
mac = "52:54:00:00:00:10"
[vm.nat]
address = "192.0.2.10"
[[vm.nat.forward]]
proto = "tcp"
port = 2222
to_port = 22
[[vm.nat.forward]]
proto = "udp"
port = 53

[[vm]]
name = "work"

[[vm]]
name = "offline"
network = "none"
"#;
        let policy = Policy::parse(doc.as_bytes())
            .unwrap_or_else(|f| panic!("{f:?}"))
            .policy;
        let vm = |name: &str| {
            policy
                .vm(name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let trap = network_info(&vm("trap"));
        assert_eq!(trap.mode, VmNetworkMode::Bridge);
        assert_eq!(
            (
                trap.lab.as_str(),
                trap.address.as_str(),
                trap.mac.as_str(),
                trap.nat_address.as_str()
            ),
            ("lab", "10.77.0.10", "52:54:00:00:00:10", "192.0.2.10")
        );
        assert_eq!(
            trap.forwards,
            [
                PortForwardInfo {
                    proto: ForwardProto::Tcp,
                    port: 2222,
                    to_port: 22
                },
                PortForwardInfo {
                    proto: ForwardProto::Udp,
                    port: 53,
                    to_port: 53
                }
            ]
        );
        for (name, mode) in [
            ("work", VmNetworkMode::User),
            ("offline", VmNetworkMode::None),
        ] {
            let n = network_info(&vm(name));
            assert_eq!(n.mode, mode);
            assert!(
                n.lab.is_empty()
                    && n.address.is_empty()
                    && n.mac.is_empty()
                    && n.nat_address.is_empty()
                    && n.forwards.is_empty(),
                "{n:?}"
            );
        }
    }
}
