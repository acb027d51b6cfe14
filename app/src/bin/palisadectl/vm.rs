//! `palisadectl vm`: create, start, stop and inspect virtual machines, their image versions and
//! their USB devices.

use crate::output::{print, shell_words, when};
use crate::{UsbCommand, VmCommand};
use palisade_app::handover::open_as_caller;
use palisade_dbus::proxy::VmsProxy;
use palisade_dbus::types::RunMode;
use palisade_dbus::Error;
use std::process::ExitCode;

/// Runs a `vm` subcommand against the helper.
pub async fn run(json: bool, proxy: &VmsProxy<'_>, cmd: &VmCommand) -> Result<ExitCode, Error> {
    let done = |what: String| move || format!("{what}\n");
    match cmd {
        VmCommand::List => {
            let vms = proxy.list().await?;
            print(json, &vms, || {
                let mut out = format!(
                    "{:<20}  {:<13}  {:<9}  {:>5}  {:>7}  {}\n",
                    "NAME", "STATE", "MODE", "SPICE", "BASE", "CONSOLE"
                );
                for v in &vms {
                    out.push_str(&format!(
                        "{:<20}  {:<13}  {:<9}  {:>5}  {:>7}  {}\n",
                        v.name,
                        v.state,
                        v.mode,
                        v.spice_port,
                        if v.pending_version > 0 {
                            format!("v{} (+v{})", v.base_version, v.pending_version)
                        } else {
                            format!("v{}", v.base_version)
                        },
                        if v.console_allowed { "yes" } else { "no" }
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
        } => {
            let generation = proxy.create(name, disk_size, memory, *cpus).await?;
            print(
                json,
                &serde_json::json!({ "generation": generation }),
                done(format!("{name} created (policy generation {generation}).")),
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
                    "# QEMU command line\n{}\n\n# Firewall chain\n{}",
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
