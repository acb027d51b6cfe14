//! Lab guests without a VM, for the labs tests and bench: a network namespace per guest on a
//! veth port named like its VM's port (`palt-HASH`) on the helper's bridge `palb-lab`, with the
//! VM's MAC and address and the bridge's host address as its router; and an "outside" namespace
//! on an uplink of the helper's namespace that carries the host's addresses.
//!
//! The helper's policy must already define network `lab` (10.77.0.0/24, host 10.77.0.1): the
//! bridge exists once it is applied. The port guards and rules are the helper's; nothing here
//! touches a table. Dropping a [`Lab`] deletes the namespaces, and with them their veth pairs.

use crate::netns::{Netns, NETNS_PREFIX};
use crate::process::{describe, run_bounded};
use crate::TestEnv;
use anyhow::{bail, Result};
use std::process::Command;
use std::time::Duration;

/// The host's first address on the uplink: what a masquerade picks.
pub const HOST_PRIMARY: &str = "192.0.2.5";
/// More host addresses on the uplink, for VMs' NAT.
pub const HOST_NAT_ADDRESSES: [&str; 2] = ["192.0.2.10", "192.0.2.20"];
/// The outside namespace's address.
pub const OUTSIDE: &str = "192.0.2.99";

/// The guest namespaces and the outside one, wired to the helper's bridge and uplink.
pub struct Lab {
    guests: Vec<(String, Netns)>,
    /// The outside: 192.0.2.99/24 on the uplink, routing 10.77.0.0/24 through the host.
    pub outside: Netns,
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) -> Result<()> {
    let out = run_bounded(Command::new("ip").args(args), Duration::from_secs(10));
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), describe(&out));
    }
    Ok(())
}

impl Lab {
    /// Wires each of `guests` — (VM, address, MAC) — to the bridge of network `lab` in `env`'s
    /// namespace, and the outside to its uplink.
    pub fn wire(env: &TestEnv, guests: &[(&str, &str, &str)]) -> Result<Lab> {
        let host = env.netns().to_owned();
        let id = host.trim_start_matches(NETNS_PREFIX).to_owned();
        ip(&["-n", &host, "link", "show", "palb-lab"])?;
        let mut made = Vec::new();
        for (vm, address, mac) in guests {
            let ns = Netns::create(&format!("{id}-{vm}"))?;
            let port = palisade_dbus::policy::lab::port_name(vm);
            let guest = ns.name().to_owned();
            // Kept before the links are made: dropping it then removes the namespace.
            made.push((vm.to_string(), ns));
            ip(&[
                "-n", &host, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &guest,
            ])?;
            ip(&["-n", &guest, "link", "set", "eth0", "address", mac])?;
            let cidr = format!("{address}/24");
            ip(&["-n", &guest, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &guest, "link", "set", "eth0", "up"])?;
            ip(&["-n", &guest, "route", "add", "default", "via", "10.77.0.1"])?;
            ip(&["-n", &host, "link", "set", &port, "master", "palb-lab"])?;
            ip(&["-n", &host, "link", "set", &port, "up"])?;
        }
        let outside = Netns::create(&format!("{id}-out"))?;
        let out = outside.name().to_owned();
        ip(&[
            "-n", &host, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns",
            &out,
        ])?;
        for address in std::iter::once(HOST_PRIMARY).chain(HOST_NAT_ADDRESSES) {
            let cidr = format!("{address}/24");
            ip(&["-n", &host, "addr", "add", &cidr, "dev", "uplink"])?;
        }
        ip(&["-n", &host, "link", "set", "uplink", "up"])?;
        let cidr = format!("{OUTSIDE}/24");
        ip(&["-n", &out, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &out, "link", "set", "eth0", "up"])?;
        // The outside may try the lab's addresses directly, past the NAT.
        ip(&[
            "-n",
            &out,
            "route",
            "add",
            "10.77.0.0/24",
            "via",
            HOST_PRIMARY,
        ])?;
        Ok(Lab {
            guests: made,
            outside,
        })
    }

    /// The namespace of guest `vm`.
    pub fn guest(&self, vm: &str) -> Option<&Netns> {
        self.guests
            .iter()
            .find(|(name, _)| name == vm)
            .map(|(_, ns)| ns)
    }
}
