//! `io.palisade.Helper1.Vms`: the D-Bus face of the VM service (`crate::machines`).
//!
//! Two layers of authorization on every call, both before anything is read or changed: polkit
//! for the kind of action, then the policy's assignment for this VM (its `operators`, or its
//! `console` list for listing). Callers polkit lets manage VMs (`vm.manage`) pass the second.

use crate::authz::{is_granted, Authority, Caller};
use crate::machines::{self, Machines, NewBridge, NewVm, Viewer};
use crate::vm::qemu::RunMode;
use crate::vm::usb::AttachRequest;
use palisade_dbus::policy::{names::quote, Policy, Vm, VmName};
use palisade_dbus::types::{AttachedDevice, ImageVersion, UsbDevice, VmDetails, VmInfo, VmState};
use palisade_dbus::{Action, Error};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

/// Default time a guest gets to power down before it is forced off.
const DEFAULT_STOP_SECONDS: u32 = 60;
/// Longest time a caller may give a guest to power down.
const MAX_STOP_SECONDS: u32 = 3600;

/// `io.palisade.Helper1.Vms`.
pub struct VmsIface {
    /// The VM service.
    pub machines: Machines,
    /// polkit.
    pub authority: Authority,
}

impl VmsIface {
    /// polkit `action`, then the VM must exist in the live policy and be assigned to the caller
    /// (or the caller may manage VMs). Returns the policy it was judged by.
    async fn authorize_vm(
        &self,
        header: &Header<'_>,
        action: Action,
        name: &str,
    ) -> Result<(Caller, Arc<Policy>, Vm), Error> {
        let caller = self.authority.check(header, action).await?;
        let policy = self.machines.live_policy();
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

    /// polkit `action`, and whether the caller may also manage VMs.
    async fn viewer(&self, header: &Header<'_>, action: Action) -> Result<Viewer, Error> {
        let caller = self.authority.check(header, action).await?;
        let admin = self.authority.allows(header, Action::VmManage).await;
        Ok(Viewer {
            uid: caller.uid,
            admin,
        })
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
        let viewer = self.viewer(&header, Action::VmOperate).await?;
        self.machines.list(viewer).await
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
        let new = NewVm {
            name: VmName::parse(name).map_err(Error::InvalidArgument)?,
            disk_bytes: machines::parse_disk_size(disk_size)?,
            memory: memory.to_owned(),
            cpus,
            bridge: None,
        };
        self.machines.create(new, caller.uid).await
    }

    /// Creates a VM bridged to a lab network: its disk and its policy entry.
    #[allow(clippy::too_many_arguments)] // one per argument of the D-Bus method, which is flat
    async fn create_bridged(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        disk_size: &str,
        memory: &str,
        cpus: u32,
        network: &str,
        address: &str,
        mac: &str,
        nat: &str,
        forwards: Vec<(String, u16, u16)>,
    ) -> Result<u64, Error> {
        // Authorize before even looking at the arguments; their words are read after.
        let caller = self.authority.check(&header, Action::VmManage).await?;
        let new = NewVm {
            name: VmName::parse(name).map_err(Error::InvalidArgument)?,
            disk_bytes: machines::parse_disk_size(disk_size)?,
            memory: memory.to_owned(),
            cpus,
            bridge: Some(NewBridge::from_arguments(
                network, address, mac, nat, forwards,
            )?),
        };
        self.machines.create(new, caller.uid).await
    }

    /// Deletes a stopped VM the local policy defines: its policy entry (a new generation), then
    /// its images.
    async fn delete(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<u64, Error> {
        let (caller, _, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        self.machines.delete(&vm, caller.uid).await
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
            "" => RunMode::Ephemeral,
            word => match RunMode::parse(word) {
                Some(RunMode::Ephemeral) => RunMode::Ephemeral,
                Some(RunMode::Update) => {
                    // Writing a new image version changes what every later run boots: admins
                    // only.
                    self.authority.check(&header, Action::VmManage).await?;
                    RunMode::Update
                }
                Some(RunMode::Install) | None => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is not a start mode: use \"ephemeral\" or \"update\"",
                        quote(word)
                    )))
                }
            },
        };
        self.machines.start(&policy, &vm, mode, None).await
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
        self.machines
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
        let seconds = match timeout_seconds {
            0 => DEFAULT_STOP_SECONDS,
            s => s.min(MAX_STOP_SECONDS),
        };
        let timeout = Duration::from_secs(u64::from(seconds));
        self.machines.stop(&vm, force, timeout).await
    }

    /// Resets a VM.
    async fn reset(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.machines.reset(&vm).await
    }

    /// Makes the finished update the base.
    async fn promote(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<u32, Error> {
        let (_, policy, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        self.machines.promote(&policy, &vm).await
    }

    /// Throws the finished update away.
    async fn discard(&self, #[zbus(header)] header: Header<'_>, name: &str) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        self.machines.discard(&vm)
    }

    /// The VM's image versions.
    async fn versions(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<Vec<ImageVersion>, Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.machines.versions(&vm)
    }

    /// Makes an earlier version the base.
    async fn restore(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        version: u32,
    ) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmManage, name).await?;
        self.machines.restore(&vm, version)
    }

    /// The exact QEMU command line, firewall chain and network of a VM.
    async fn show(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<VmDetails, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        let policy = self.machines.live_policy();
        let vm = find(&policy, name)?;
        self.machines.show(&policy, &vm).await
    }

    /// A ruleset for inside the guest mirroring its policy.
    async fn guest_firewall(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<String, Error> {
        self.authority.check(&header, Action::PolicyRead).await?;
        let policy = self.machines.live_policy();
        let vm = find(&policy, name)?;
        self.machines.guest_firewall(&policy, &vm).await
    }

    /// The host's USB devices.
    async fn usb_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<UsbDevice>, Error> {
        self.authority.check(&header, Action::VmOperate).await?;
        Ok(self.machines.usb_devices())
    }

    /// Attaches a host or emulated USB device to a running VM.
    async fn usb_attach(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        device: &str,
    ) -> Result<String, Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        let request = AttachRequest::parse(device).map_err(Error::InvalidArgument)?;
        self.machines.attach_usb(&vm, request).await
    }

    /// Detaches a device.
    async fn usb_detach(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
        id: &str,
    ) -> Result<(), Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.machines.detach_usb(&vm, id).await
    }

    /// Devices attached to a running VM.
    async fn usb_attached(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<Vec<AttachedDevice>, Error> {
        let (_, _, vm) = self.authorize_vm(&header, Action::VmOperate, name).await?;
        self.machines.attached_usb(&vm).await
    }

    /// Every VM's state, by name. Readable with `vm.operate`; changes are announced by
    /// invalidation only, so the values never travel in a broadcast anyone may receive.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn states(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> zbus::fdo::Result<HashMap<String, VmState>> {
        let Some(header) = header else {
            return Err(zbus::fdo::Error::AccessDenied(
                "the VM states are read through the bus only".into(),
            ));
        };
        let viewer = self
            .viewer(&header, Action::VmOperate)
            .await
            .map_err(|e| zbus::fdo::Error::AccessDenied(e.sentence()))?;
        Ok(self.machines.states(viewer).await)
    }

    /// A VM's state changed.
    #[zbus(signal)]
    pub async fn state_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        state: VmState,
    ) -> zbus::Result<()>;
}
