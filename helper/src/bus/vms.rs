//! `io.palisade.Helper1.Vms`: the D-Bus face of the VM supervisor.
//!
//! Two layers of authorization on every call, both before anything is read or changed: polkit
//! for the kind of action, then the policy's assignment for this VM (its `operators`, or its
//! `console` list for listing). Callers polkit lets manage VMs (`vm.manage`) pass the second.

use crate::authz::{is_granted, Authority, Caller};
use crate::firewall::{compile, facts, render, Firewall, Origin};
use crate::vm::qemu::RunMode;
use crate::vm::supervisor::Supervisor;
use crate::vm::{guest_firewall, images, usb};
use palisade_dbus::policy::{names::quote, Policy, Vm, VmName};
use palisade_dbus::types::{AttachedDevice, ImageVersion, UsbDevice, VmDetails, VmInfo};
use palisade_dbus::{Action, Error};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

/// Default time a guest gets to power down before it is forced off.
const DEFAULT_STOP_SECONDS: u32 = 60;

/// `io.palisade.Helper1.Vms`.
pub struct VmsIface {
    /// The firewall, which owns the live policy.
    pub firewall: Arc<Firewall>,
    /// The VM supervisor.
    pub supervisor: Arc<Supervisor>,
    /// polkit.
    pub authority: Authority,
}

impl VmsIface {
    /// polkit `action`, then the VM must exist in the live policy and be assigned to the caller
    /// (or the caller may manage VMs).
    async fn authorize_vm(
        &self,
        header: &Header<'_>,
        action: Action,
        name: &str,
    ) -> Result<(Caller, Policy, Vm), Error> {
        let caller = self.authority.check(header, action).await?;
        let (_, policy) = self.firewall.live_policy().await;
        let vm = find(&policy, name)?;
        if action != Action::VmManage
            && !is_granted(&vm.operators, caller.uid)
            && !self.authority.allows(header, Action::VmManage).await
        {
            return Err(Error::NotAuthorized(format!(
                "you are not an operator of {}",
                vm.name
            )));
        }
        Ok((caller, policy, vm))
    }
}

impl VmsIface {
    /// A VM's console port is guarded by the kernel before QEMU first listens on it.
    async fn prepare_console(&self, policy: &Policy, vm: &Vm) -> Result<(), Error> {
        if self.supervisor.prepare_spice_port(policy, vm).await? {
            self.firewall.reinstall().await?;
        }
        Ok(())
    }
}

fn find(policy: &Policy, name: &str) -> Result<Vm, Error> {
    let name = VmName::parse(name).map_err(Error::InvalidArgument)?;
    policy
        .vm(name.as_str())
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("there is no VM named {name}")))
}

#[zbus::interface(name = "io.palisade.Helper1.Vms")]
impl VmsIface {
    /// The VMs the caller may operate or open, with their state.
    async fn list(&self, #[zbus(header)] header: Header<'_>) -> Result<Vec<VmInfo>, Error> {
        let caller = self.authority.check(&header, Action::VmOperate).await?;
        let admin = self.authority.allows(&header, Action::VmManage).await;
        let (_, policy) = self.firewall.live_policy().await;
        let mut out = Vec::new();
        for vm in &policy.vms {
            let console = admin || is_granted(&vm.console, caller.uid);
            let operate = admin || is_granted(&vm.operators, caller.uid);
            if console || operate {
                out.push(self.supervisor.info_of(vm, console, operate).await?);
            }
        }
        Ok(out)
    }

    /// Creates a VM's disk and its policy entry.
    async fn create(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        disk_size: &str,
        memory: &str,
        cpus: u32,
    ) -> Result<u64, Error> {
        let caller = self.authority.check(&header, Action::VmManage).await?;
        let name = VmName::parse(name).map_err(Error::InvalidArgument)?;
        let bytes = images::parse_disk_size(disk_size).map_err(Error::InvalidArgument)?;
        let (generation, document) = self.firewall.get().await;
        let (_, policy) = self.firewall.live_policy().await;
        if policy.vm(name.as_str()).is_some() {
            return Err(Error::InvalidArgument(format!(
                "a VM named {name} exists already"
            )));
        }
        // The new entry is serialized by the toml crate, never spliced from strings, and the
        // whole document is validated as any policy is.
        let mut entry = toml::Table::new();
        entry.insert("name".into(), name.to_string().into());
        entry.insert("memory".into(), memory.to_owned().into());
        entry.insert("cpus".into(), i64::from(cpus).into());
        let mut table = toml::Table::new();
        table.insert(
            "vm".into(),
            toml::Value::Array(vec![toml::Value::Table(entry)]),
        );
        let fragment = toml::to_string(&table).map_err(|e| Error::Internal(e.to_string()))?;
        let new_document = format!("{}\n{fragment}", document.trim_end());
        let parsed = Policy::parse(new_document.as_bytes()).map_err(|f| {
            Error::InvalidArgument(
                f.iter()
                    .filter(|f| f.path.starts_with(&format!("vm[{name}]")))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let vm = find(&parsed.policy, name.as_str())?;
        let images = self.supervisor.images_of(&vm);
        images.create(bytes).await?;
        let origin = Origin {
            author_uid: caller.uid,
            reason: format!("vm create {name}"),
        };
        match self
            .firewall
            .apply(new_document.into_bytes(), generation, 0, origin)
            .await
        {
            Ok(applied) => Ok(applied.generation),
            Err(e) => {
                let _ = std::fs::remove_dir_all(images.dir());
                Err(e)
            }
        }
    }

    /// Starts a VM.
    async fn start(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        mode: &str,
    ) -> Result<VmInfo, Error> {
        // Authorize before even looking at the arguments.
        let (_, policy, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        let mode = match mode {
            "" | "ephemeral" => RunMode::Ephemeral,
            "update" => {
                // Writing a new image version changes what every later run boots: admins only.
                self.authority.check(&header, Action::VmManage).await?;
                RunMode::Update
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{} is not a start mode: use \"ephemeral\" or \"update\"",
                    quote(other)
                )))
            }
        };
        self.prepare_console(&policy, &vm).await?;
        self.supervisor.start(&policy, &vm, mode, None).await
    }

    /// Starts a VM from an installer ISO with a new writable image version.
    async fn install(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        iso: zbus::OwnedFd,
    ) -> Result<VmInfo, Error> {
        let (_, policy, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        let iso: OwnedFd = iso.into();
        check_iso(&iso)?;
        self.prepare_console(&policy, &vm).await?;
        self.supervisor
            .start(&policy, &vm, RunMode::Install, Some(iso))
            .await
    }

    /// Powers a VM down, forced after the timeout (or at once).
    async fn stop(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        force: bool,
        timeout_seconds: u32,
    ) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        let seconds = if timeout_seconds == 0 {
            DEFAULT_STOP_SECONDS
        } else {
            timeout_seconds.min(3600)
        };
        self.supervisor
            .stop(&vm.name, force, Duration::from_secs(u64::from(seconds)))
            .await
    }

    /// Resets a VM.
    async fn reset(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.supervisor.reset(&vm.name).await
    }

    /// Makes the finished update the base.
    async fn promote(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<u32, Error> {
        let (_, policy, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        let images = self.supervisor.images_of(&vm);
        // A running ephemeral VM still reads the current base through its overlay.
        let in_use = if self.supervisor.is_running(&vm.name).await {
            Some(images.summary().0)
        } else {
            None
        };
        images.promote(policy.settings.versions_kept, in_use)
    }

    /// Throws the finished update away.
    async fn discard(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        self.supervisor.images_of(&vm).discard()
    }

    /// The VM's image versions.
    async fn versions(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<Vec<ImageVersion>, Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.supervisor.images_of(&vm).versions()
    }

    /// Makes an earlier version the base.
    async fn restore(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        version: u32,
    ) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        self.supervisor.images_of(&vm).restore(version)
    }

    /// The exact QEMU command line and firewall chain of a VM.
    async fn show(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<VmDetails, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        let (_, policy) = self.firewall.live_policy().await;
        let vm = find(&policy, name)?;
        let facts =
            facts::gather(&policy, facts::Users::LookUp, &self.firewall.images_dir()).await?;
        let ruleset = compile::compile_ruleset(&policy, &facts);
        let chain = render::render_chain(&ruleset, &vm.name.chain());
        Ok(self.supervisor.details(&policy, &vm, chain).await)
    }

    /// A ruleset for inside the guest mirroring its policy.
    async fn guest_firewall(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<String, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        let (_, policy) = self.firewall.live_policy().await;
        let vm = find(&policy, name)?;
        let facts =
            facts::gather(&policy, facts::Users::LookUp, &self.firewall.images_dir()).await?;
        Ok(guest_firewall::guest_ruleset(&vm, &policy, &facts))
    }

    /// The host's USB devices.
    async fn usb_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<UsbDevice>, Error> {
        self.authority.check(&header, Action::VmOperate).await?;
        Ok(usb::list_host_devices(Path::new(usb::SYSFS_USB_DEVICES))
            .into_iter()
            .filter(|d| !d.is_hub)
            .map(|d| UsbDevice {
                bus: d.bus,
                address: d.address,
                vendor_id: d.vendor_id,
                product_id: d.product_id,
                manufacturer: d.manufacturer,
                product: d.product,
            })
            .collect())
    }

    /// Attaches a host or emulated USB device to a running VM.
    async fn usb_attach(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        device: &str,
    ) -> Result<String, Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        if let Some(model) = device.strip_prefix("emulated:") {
            // Emulated devices take the same QMP path as host devices; tests and kiosks use them.
            let driver = match model {
                "usb-tablet" | "usb-kbd" | "usb-mouse" => model,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is not an emulated device: use usb-tablet, usb-kbd or usb-mouse",
                        quote(other)
                    )))
                }
            };
            return self
                .supervisor
                .device_add(&vm.name, driver, Vec::new(), driver.to_owned())
                .await;
        }
        let selector = usb::parse_device_selector(device).map_err(Error::InvalidArgument)?;
        let devices = usb::list_host_devices(Path::new(usb::SYSFS_USB_DEVICES));
        let d = usb::select(&devices, &selector)
            .map_err(Error::NotFound)?
            .clone();
        let uid = crate::vm::account::vm_uid(&vm.name)
            .ok_or_else(|| Error::Internal("the VM has no user".into()))?;
        // QEMU opens the device node itself, as the VM's user: hand the node over for the
        // duration of the attachment (libvirt does the same).
        let node = usb::device_node(&d);
        nix::unistd::chown(&node, Some(nix::unistd::Uid::from_raw(uid)), None).map_err(|e| {
            Error::Internal(format!("cannot hand {} to the VM: {e}", node.display()))
        })?;
        let props = vec![
            ("hostbus".to_owned(), d.bus.into()),
            ("hostaddr".to_owned(), d.address.into()),
        ];
        let description = format!(
            "usb-host {}.{} {:04x}:{:04x} {} {}",
            d.bus, d.address, d.vendor_id, d.product_id, d.manufacturer, d.product
        );
        let added = self
            .supervisor
            .device_add(&vm.name, "usb-host", props, description)
            .await;
        if added.is_err() {
            let _ = nix::unistd::chown(&node, Some(nix::unistd::Uid::from_raw(0)), None);
        }
        added
    }

    /// Detaches a device.
    async fn usb_detach(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        id: &str,
    ) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        let device = self.supervisor.device_del(&vm.name, id).await?;
        if let Some(rest) = device.description.strip_prefix("usb-host ") {
            if let Some((bus, addr)) = rest
                .split_whitespace()
                .next()
                .and_then(|ba| ba.split_once('.'))
            {
                let node = format!("/dev/bus/usb/{:0>3}/{:0>3}", bus, addr);
                let _ =
                    nix::unistd::chown(Path::new(&node), Some(nix::unistd::Uid::from_raw(0)), None);
            }
        }
        Ok(())
    }

    /// Devices attached to a running VM.
    async fn usb_attached(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<Vec<AttachedDevice>, Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.supervisor.attached(&vm.name).await
    }

    /// Every VM's state, by name. Readable with `vm.operate`; changes are announced by
    /// invalidation only, so the values never travel in a broadcast anyone may receive.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn states(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> zbus::fdo::Result<HashMap<String, String>> {
        let Some(header) = header else {
            return Err(zbus::fdo::Error::AccessDenied(
                "the VM states are read through the bus only".into(),
            ));
        };
        let caller = self
            .authority
            .check(&header, Action::VmOperate)
            .await
            .map_err(|e| zbus::fdo::Error::AccessDenied(e.sentence()))?;
        let admin = self.authority.allows(&header, Action::VmManage).await;
        let (_, policy) = self.firewall.live_policy().await;
        let mut states = HashMap::new();
        for vm in &policy.vms {
            if admin || is_granted(&vm.operators, caller.uid) || is_granted(&vm.console, caller.uid)
            {
                states.insert(
                    vm.name.to_string(),
                    self.supervisor.state_of(&vm.name).await,
                );
            }
        }
        Ok(states)
    }

    /// A VM's state changed.
    #[zbus(signal)]
    pub async fn state_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        state: &str,
    ) -> zbus::Result<()>;
}

/// An installer must be a regular, non-empty ISO 9660 image ("CD001" at byte 32769): not a
/// folder, a device, or a secret file someone linked to.
fn check_iso(fd: &OwnedFd) -> Result<(), Error> {
    let file = std::fs::File::from(fd.try_clone().map_err(|e| Error::Internal(e.to_string()))?);
    let meta = file
        .metadata()
        .map_err(|e| Error::InvalidArgument(format!("cannot inspect the ISO: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(Error::InvalidArgument(
            "the ISO must be a regular file, not a folder or a device".into(),
        ));
    }
    let mut magic = [0u8; 5];
    match file.read_exact_at(&mut magic, 32_769) {
        Ok(()) if &magic == b"CD001" => Ok(()),
        _ => Err(Error::InvalidArgument(
            "this file is not an ISO 9660 installer image".into(),
        )),
    }
}
