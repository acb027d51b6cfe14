//! Lab networks on the host: a bridge per `[[network]]` (its address, up) and, while a bridged
//! VM runs, its port — a persistent tap owned by the VM's user, on its bridge, which QEMU
//! (running as that user) attaches to by name without any privilege.
//!
//! Links are made with iproute2's `ip`, argument by argument (never a shell), from names the
//! policy model derives (`palb-` + a validated network name, `palt-` + a hash): a tap's owner
//! can only be set with the tun driver's ioctls, which no maintained crate wraps without unsafe
//! code of ours, and `ip tuntap` does exactly that; bridges and addresses go the same way so
//! one tool makes every link. Only links named `palb-*`/`palt-*` are ever changed or deleted.

use palisade_dbus::policy::lab::{self, LabNetwork};
use palisade_dbus::policy::VmName;
use palisade_dbus::Error;
use std::process::Command;

/// Prefix of every bridge the helper owns.
const BRIDGE_PREFIX: &str = "palb-";

/// Makes the host's bridges what `networks` says: each present with the host's address and up;
/// `palb-*` bridges no network names any more are deleted. Turns IPv4 forwarding on when there
/// is a network (its NAT needs it); where that is not allowed (a sandboxed unit) the returned
/// warning says what to set.
pub fn sync_bridges(networks: &[LabNetwork]) -> Result<Option<String>, Error> {
    let present = bridges()?;
    for name in present
        .iter()
        .filter(|b| b.starts_with(BRIDGE_PREFIX) && !networks.iter().any(|n| &n.bridge() == *b))
    {
        ip(&["link", "del", "dev", name])?;
    }
    for net in networks {
        let bridge = net.bridge();
        if !present.contains(&bridge) {
            ip(&["link", "add", "name", &bridge, "type", "bridge"])?;
        }
        let wanted = format!("{}/{}", net.host_address, net.subnet.prefix_len());
        if addresses(&bridge)? != [wanted.clone()] {
            ip(&["addr", "flush", "dev", &bridge])?;
            ip(&["addr", "add", &wanted, "dev", &bridge])?;
        }
        ip(&["link", "set", "dev", &bridge, "up"])?;
    }
    if networks.is_empty() {
        return Ok(None);
    }
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    if forwarding.trim() == "1" {
        return Ok(None);
    }
    Ok(match std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        Ok(()) => None,
        Err(e) => Some(format!(
            "IPv4 forwarding is off and the helper may not turn it on ({e}): lab VMs reach no \
             other network until net.ipv4.ip_forward = 1 is set (for example in \
             /etc/sysctl.d/90-palisade.conf)"
        )),
    })
}

/// Creates `vm`'s port on `network`'s bridge, owned by `uid`, and returns its name. A port left
/// over from an earlier run is made again, so its owner and bridge are the current ones.
pub fn create_port(vm: &VmName, uid: u32, network: &LabNetwork) -> Result<String, Error> {
    let port = lab::port_name(vm.as_str());
    delete_port(vm);
    let uid = uid.to_string();
    ip(&["tuntap", "add", "dev", &port, "mode", "tap", "user", &uid])?;
    let attached = ip(&["link", "set", "dev", &port, "master", &network.bridge()])
        .and_then(|_| ip(&["link", "set", "dev", &port, "up"]));
    if let Err(e) = attached {
        delete_port(vm);
        return Err(e);
    }
    Ok(port)
}

/// Deletes `vm`'s port, if it exists.
pub fn delete_port(vm: &VmName) {
    let port = lab::port_name(vm.as_str());
    if std::path::Path::new("/sys/class/net").join(&port).exists() {
        if let Err(e) = ip(&["link", "del", "dev", &port]) {
            tracing::warn!("cannot delete {vm}'s port {port}: {e}");
        }
    }
}

/// The names of the host's links that are our bridges (read from sysfs: no process runs for a
/// policy without labs).
fn bridges() -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir("/sys/class/net")
        .map_err(|e| Error::Internal(format!("cannot list the network links: {e}")))?;
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            name.starts_with(BRIDGE_PREFIX)
                && std::path::Path::new("/sys/class/net")
                    .join(name)
                    .join("bridge")
                    .exists()
        })
        .collect())
}

/// A link's IPv4 addresses as `address/prefix`.
fn addresses(link: &str) -> Result<Vec<String>, Error> {
    let out = ip(&["-j", "-4", "addr", "show", "dev", link])?;
    let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    Ok(links
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| {
            Some(format!(
                "{}/{}",
                a["local"].as_str()?,
                a["prefixlen"].as_u64()?
            ))
        })
        .collect())
}

/// Runs `ip ARGS`; its error output is the error's sentence.
fn ip(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::Internal(format!("cannot run ip: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::ApplyFailed(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
