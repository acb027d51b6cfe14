//! `palisadectl vm`: create, start, stop and inspect virtual machines, their image versions and
//! their USB devices.

use crate::output::{print, shell_words, when};
use crate::{UsbCommand, VmCommand};
use palisade_app::handover::open_as_caller;
use palisade_dbus::proxy::VmsProxy;
use palisade_dbus::types::{RunMode, VmNetwork, VmNetworkMode};
use palisade_dbus::Error;
use std::process::ExitCode;

/// The NETWORK column of `vm list`: `user`, `none`, `lab 10.77.0.10`, `lab 10.77.0.10 via
/// 192.0.2.10`.
pub fn network_summary(n: &VmNetwork) -> String {
    match n.mode {
        VmNetworkMode::User | VmNetworkMode::None => n.mode.to_string(),
        VmNetworkMode::Bridge if n.nat_address.is_empty() => format!("{} {}", n.lab, n.address),
        VmNetworkMode::Bridge => format!("{} {} via {}", n.lab, n.address, n.nat_address),
    }
}

/// The network part of `vm show`: every field, one per line, and each forward as
/// `tcp 192.0.2.10:2222 -> 10.77.0.10:22`.
pub fn network_details(n: &VmNetwork) -> String {
    let mut out = format!("Mode: {}\n", n.mode);
    if n.mode != VmNetworkMode::Bridge {
        return out;
    }
    out.push_str(&format!(
        "Lab network: {}\nAddress: {}\nMAC: {}\n",
        n.lab, n.address, n.mac
    ));
    if n.nat_address.is_empty() {
        out.push_str("NAT: none (leaves masqueraded behind the host)\n");
        return out;
    }
    out.push_str(&format!("NAT: {}\n", n.nat_address));
    if n.forwards.is_empty() {
        out.push_str(&format!(
            "Forwarded: every port of {} -> {}\n",
            n.nat_address, n.address
        ));
    }
    for f in &n.forwards {
        out.push_str(&format!(
            "Forwarded: {} {}:{} -> {}:{}\n",
            f.proto, n.nat_address, f.port, n.address, f.to_port
        ));
    }
    out
}

/// Asks on the terminal whether to delete `name`; refuses without a terminal to ask on, so a
/// script must say `--yes`.
fn confirm_delete(name: &str) -> Result<bool, Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidArgument(format!(
            "deleting {name} loses its disks and every version of them: give --yes to confirm"
        )));
    }
    eprint!("Delete {name}, its disk images and every version of them? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Runs a `vm` subcommand against the helper.
pub async fn run(json: bool, proxy: &VmsProxy<'_>, cmd: &VmCommand) -> Result<ExitCode, Error> {
    let done = |what: String| move || format!("{what}\n");
    match cmd {
        VmCommand::List => {
            let vms = proxy.list().await?;
            print(json, &vms, || {
                let mut out = format!(
                    "{:<20}  {:<13}  {:<9}  {:>5}  {:>7}  {:<7}  {}\n",
                    "NAME", "STATE", "MODE", "SPICE", "BASE", "CONSOLE", "NETWORK"
                );
                for v in &vms {
                    out.push_str(&format!(
                        "{:<20}  {:<13}  {:<9}  {:>5}  {:>7}  {:<7}  {}\n",
                        v.name,
                        v.state,
                        v.mode,
                        v.spice_port,
                        if v.pending_version > 0 {
                            format!("v{} (+v{})", v.base_version, v.pending_version)
                        } else {
                            format!("v{}", v.base_version)
                        },
                        if v.console_allowed { "yes" } else { "no" },
                        network_summary(&v.network)
                    ));
                }
                out
            });
        }
        VmCommand::Create {
            name,
            disk_size,
            memory,
            cpus,
            bridge,
            address,
            mac,
            nat,
            forwards,
        } => {
            let generation = match bridge {
                None => proxy.create(name, disk_size, memory, *cpus).await?,
                Some(network) => {
                    let forwards: Vec<(&str, u16, u16)> = forwards
                        .iter()
                        .map(|(proto, port, to)| (proto.as_str(), *port, *to))
                        .collect();
                    proxy
                        .create_bridged(
                            name,
                            disk_size,
                            memory,
                            *cpus,
                            network,
                            address.as_deref().unwrap_or_default(),
                            mac.as_deref().unwrap_or_default(),
                            nat.as_deref().unwrap_or_default(),
                            &forwards,
                        )
                        .await?
                }
            };
            print(
                json,
                &serde_json::json!({ "generation": generation }),
                done(format!("{name} created (policy generation {generation}).")),
            );
        }
        VmCommand::Delete { name, yes } => {
            if !*yes && !confirm_delete(name)? {
                return Err(Error::InvalidArgument(format!(
                    "{name} was not deleted: answer y to delete it, or give --yes"
                )));
            }
            let generation = proxy.delete(name).await?;
            print(
                json,
                &serde_json::json!({ "deleted": name, "generation": generation }),
                done(format!(
                    "{name} and its disk images are deleted (policy generation {generation})."
                )),
            );
        }
        VmCommand::Start {
            name,
            update,
            install,
        } => {
            let info = match install {
                Some(iso) => {
                    let file = open_as_caller(iso, "the ISO")?;
                    proxy.install(name, zbus::Fd::from(&file)).await?
                }
                None => {
                    proxy
                        .start(
                            name,
                            if *update {
                                RunMode::Update
                            } else {
                                RunMode::Ephemeral
                            },
                        )
                        .await?
                }
            };
            print(
                json,
                &info,
                done(format!(
                    "{} is {} ({}), Spice on 127.0.0.1:{}.",
                    info.name, info.state, info.mode, info.spice_port
                )),
            );
        }
        VmCommand::Stop {
            name,
            force,
            timeout,
        } => {
            proxy.stop(name, *force, *timeout).await?;
            print(
                json,
                &serde_json::json!({ "stopped": name }),
                done(format!("{name} is shut down.")),
            );
        }
        VmCommand::Reset { name } => {
            proxy.reset(name).await?;
            print(
                json,
                &serde_json::json!({ "reset": name }),
                done(format!("{name} was reset.")),
            );
        }
        VmCommand::Promote { name } => {
            let v = proxy.promote(name).await?;
            print(
                json,
                &serde_json::json!({ "base": v }),
                done(format!("Version {v} is now the base of {name}.")),
            );
        }
        VmCommand::Discard { name } => {
            proxy.discard(name).await?;
            print(
                json,
                &serde_json::json!({ "discarded": name }),
                done(format!("The update of {name} was thrown away.")),
            );
        }
        VmCommand::Versions { name } => {
            let versions = proxy.versions(name).await?;
            print(json, &versions, || {
                let mut out = format!(
                    "{:>7}  {:<20}  {:<7}  {:>12}\n",
                    "VERSION", "CREATED", "ROLE", "BYTES"
                );
                for v in &versions {
                    out.push_str(&format!(
                        "{:>7}  {:<20}  {:<7}  {:>12}\n",
                        v.version,
                        when(v.created_at),
                        v.role,
                        v.bytes
                    ));
                }
                out
            });
        }
        VmCommand::Restore { name, version } => {
            proxy.restore(name, *version).await?;
            print(
                json,
                &serde_json::json!({ "base": version }),
                done(format!("Version {version} is the base of {name} again.")),
            );
        }
        VmCommand::Show { name } => {
            let d = proxy.show(name).await?;
            print(json, &d, || {
                format!(
                    "# Network\n{}\n# QEMU command line\n{}\n\n# Firewall chain\n{}",
                    network_details(&d.network),
                    shell_words(&d.command_line),
                    d.firewall_chain
                )
            });
        }
        VmCommand::GuestFirewall { name } => {
            let ruleset = proxy.guest_firewall(name).await?;
            print(json, &serde_json::json!({ "ruleset": ruleset }), || {
                ruleset.clone()
            });
        }
        VmCommand::Usb(UsbCommand::List) => {
            let devices = proxy.usb_devices().await?;
            print(json, &devices, || {
                let mut out = String::new();
                for d in &devices {
                    out.push_str(&format!(
                        "{}.{}  {:04x}:{:04x}  {} {}\n",
                        d.bus, d.address, d.vendor_id, d.product_id, d.manufacturer, d.product
                    ));
                }
                if devices.is_empty() {
                    out.push_str("No USB devices.\n");
                }
                out
            });
        }
        VmCommand::Usb(UsbCommand::Attach { vm, device }) => {
            let id = proxy.usb_attach(vm, device).await?;
            print(
                json,
                &serde_json::json!({ "id": id }),
                done(format!("Attached as {id}.")),
            );
        }
        VmCommand::Usb(UsbCommand::Detach { vm, id }) => {
            proxy.usb_detach(vm, id).await?;
            print(
                json,
                &serde_json::json!({ "detached": id }),
                done(format!("{id} detached.")),
            );
        }
        VmCommand::Usb(UsbCommand::Attached { vm }) => {
            let devices = proxy.usb_attached(vm).await?;
            print(json, &devices, || {
                devices
                    .iter()
                    .map(|d| format!("{}  {}\n", d.id, d.description))
                    .collect()
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::types::{ForwardProto, PortForwardInfo};

    fn bridged(nat: &str, forwards: Vec<PortForwardInfo>) -> VmNetwork {
        VmNetwork {
            mode: VmNetworkMode::Bridge,
            lab: "lab".into(),
            address: "10.77.0.10".into(),
            mac: "52:54:00:00:00:10".into(),
            nat_address: nat.into(),
            forwards,
        }
    }

    fn plain(mode: VmNetworkMode) -> VmNetwork {
        VmNetwork {
            mode,
            lab: String::new(),
            address: String::new(),
            mac: String::new(),
            nat_address: String::new(),
            forwards: Vec::new(),
        }
    }

    #[test]
    fn the_network_column_is_short() {
        assert_eq!(network_summary(&plain(VmNetworkMode::User)), "user");
        assert_eq!(network_summary(&plain(VmNetworkMode::None)), "none");
        assert_eq!(network_summary(&bridged("", Vec::new())), "lab 10.77.0.10");
        assert_eq!(
            network_summary(&bridged("192.0.2.10", Vec::new())),
            "lab 10.77.0.10 via 192.0.2.10"
        );
    }

    #[test]
    fn show_names_every_network_field_and_forward() {
        assert_eq!(network_details(&plain(VmNetworkMode::User)), "Mode: user\n");
        let forwards = vec![
            PortForwardInfo {
                proto: ForwardProto::Tcp,
                port: 2222,
                to_port: 22,
            },
            PortForwardInfo {
                proto: ForwardProto::Udp,
                port: 53,
                to_port: 53,
            },
        ];
        assert_eq!(
            network_details(&bridged("192.0.2.10", forwards)),
            "Mode: bridge\nLab network: lab\nAddress: 10.77.0.10\nMAC: 52:54:00:00:00:10\n\
             NAT: 192.0.2.10\nForwarded: tcp 192.0.2.10:2222 -> 10.77.0.10:22\n\
             Forwarded: udp 192.0.2.10:53 -> 10.77.0.10:53\n"
        );
        assert!(network_details(&bridged("192.0.2.10", Vec::new()))
            .contains("Forwarded: every port of 192.0.2.10 -> 10.77.0.10\n"));
        assert!(network_details(&bridged("", Vec::new())).contains("NAT: none"));
    }
}
