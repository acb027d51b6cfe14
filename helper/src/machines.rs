//! The VM service: what `io.palisade.Helper1.Vms` does, composed from the firewall (which owns
//! the live policy and the kernel ruleset) and the VM supervisor (which owns QEMU and the disk
//! images). This is the one place the two meet; neither imports the other, except that the
//! firewall asks the supervisor for console ports through `firewall::facts::ConsolePorts`.
//!
//! Callers have been authorized by the bus layer before any method here runs; the `Vm` they pass
//! comes from the live policy that authorization read.

use crate::authz::is_granted;
use crate::firewall::{Firewall, Origin};
use crate::vm::qemu::RunMode;
use crate::vm::supervisor::Supervisor;
use crate::vm::usb::{self, AttachRequest};
use crate::{accounts, vm::images};
use palisade_dbus::policy::lab::MAX_FORWARDS;
use palisade_dbus::policy::{Policy, Vm, VmName};
use palisade_dbus::types::{
    AttachedDevice, GenerationSource, ImageVersion, SourceKind, UsbDevice, VmDetails, VmInfo,
    VmState,
};
use palisade_dbus::Error;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Who is asking, for the methods whose answer depends on it.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// The caller's uid.
    pub uid: u32,
    /// polkit lets the caller manage VMs: every VM is theirs to see and operate.
    pub admin: bool,
}

impl Viewer {
    /// Whether the viewer may open `vm`'s console.
    fn console(&self, vm: &Vm) -> bool {
        self.admin || is_granted(&vm.console, self.uid)
    }

    /// Whether the viewer may start and stop `vm`.
    fn operate(&self, vm: &Vm) -> bool {
        self.admin || is_granted(&vm.operators, self.uid)
    }
}

/// What a new VM starts with.
#[derive(Debug, Clone)]
pub struct NewVm {
    /// Its name.
    pub name: VmName,
    /// Size of its empty disk, bytes.
    pub disk_bytes: u64,
    /// Memory as the caller wrote it (`4G`); validated with the rest of the policy.
    pub memory: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Its port on a lab network, for a bridged VM; `None`: user-mode networking.
    pub bridge: Option<NewBridge>,
}

/// Where a new bridged VM sits, as the caller wrote it: the words are validated with the rest of
/// the policy, as the same fields of a policy file are, so a mistake reads the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBridge {
    /// The lab network (`bridge`).
    pub network: String,
    /// Its address there.
    pub address: String,
    /// Its MAC address; `None`: a stable one from QEMU's range.
    pub mac: Option<String>,
    /// Its NAT: the host address and the forwarded ports.
    pub nat: Option<NewNat>,
}

/// A new bridged VM's NAT, as the caller wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNat {
    /// The host address.
    pub address: String,
    /// The forwarded ports: protocol word, port on the host address, port on the VM.
    pub forwards: Vec<(String, u16, u16)>,
}

impl NewBridge {
    /// The arguments of `Vms.CreateBridged`: an empty `mac` or `nat` is none. Refuses only what
    /// the policy cannot say: forwards without a NAT address, and more forwards than a policy
    /// may have (before a document is built from them).
    pub fn from_arguments(
        network: &str,
        address: &str,
        mac: &str,
        nat: &str,
        forwards: Vec<(String, u16, u16)>,
    ) -> Result<Self, Error> {
        if forwards.len() > MAX_FORWARDS {
            return Err(Error::InvalidArgument(format!(
                "{} forwards; the most is {MAX_FORWARDS}",
                forwards.len()
            )));
        }
        let nat = match (nat, forwards.is_empty()) {
            ("", true) => None,
            ("", false) => {
                return Err(Error::InvalidArgument(
                    "ports are forwarded from a NAT address: give one too".into(),
                ))
            }
            (address, _) => Some(NewNat {
                address: address.to_owned(),
                forwards,
            }),
        };
        Ok(Self {
            network: network.to_owned(),
            address: address.to_owned(),
            mac: (!mac.is_empty()).then(|| mac.to_owned()),
            nat,
        })
    }
}

/// The VM service.
pub struct Machines {
    firewall: Arc<Firewall>,
    supervisor: Arc<Supervisor>,
}

impl Machines {
    /// The service over these two.
    pub fn new(firewall: Arc<Firewall>, supervisor: Arc<Supervisor>) -> Self {
        Self {
            firewall,
            supervisor,
        }
    }

    /// The live policy, which authorization judges by.
    pub fn live_policy(&self) -> Arc<Policy> {
        self.firewall.live_policy().1
    }

    /// The VMs `viewer` may operate or open, with their state.
    pub async fn list(&self, viewer: Viewer) -> Result<Vec<VmInfo>, Error> {
        let (_, policy) = self.firewall.live_policy();
        let mut out = Vec::new();
        for vm in &policy.vms {
            let (console, operate) = (viewer.console(vm), viewer.operate(vm));
            if console || operate {
                out.push(self.supervisor.info_of(vm, console, operate).await?);
            }
        }
        Ok(out)
    }

    /// The state of every VM `viewer` may operate or open, by name.
    pub async fn states(&self, viewer: Viewer) -> HashMap<String, VmState> {
        let (_, policy) = self.firewall.live_policy();
        let mut states = HashMap::new();
        for vm in policy
            .vms
            .iter()
            .filter(|vm| viewer.console(vm) || viewer.operate(vm))
        {
            states.insert(
                vm.name.to_string(),
                self.supervisor.state_of(&vm.name).await,
            );
        }
        states
    }

    /// Creates the VM's empty disk and adds its entry to the policy, as a new generation. If the
    /// policy cannot be applied, the disk is removed again: nothing is left half-made.
    pub async fn create(&self, new: NewVm, author_uid: u32) -> Result<u64, Error> {
        let live = self.firewall.snapshot();
        let policy = &live.policy;
        // The VM joins the local policy (the drop-ins are not the helper's to edit).
        let (generation, document) = self.firewall.get();
        if policy.vm(new.name.as_str()).is_some() {
            return Err(Error::InvalidArgument(format!(
                "a VM named {} exists already",
                new.name
            )));
        }
        let new_document = document_with_vm(&document, &new)?;
        let parsed = self
            .firewall
            .parse_with_local(new_document.as_bytes())
            .map_err(|findings| {
                // The new VM's own findings; all of them if none is its own.
                let own = format!("vm[{}]", new.name);
                let mine: Vec<String> = findings
                    .iter()
                    .filter(|f| f.path.starts_with(&own))
                    .map(ToString::to_string)
                    .collect();
                Error::InvalidArgument(if mine.is_empty() {
                    findings
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    mine.join("\n")
                })
            })?;
        let vm = parsed
            .policy
            .vm(new.name.as_str())
            .cloned()
            .ok_or_else(|| Error::Internal("the new VM is missing from its policy".into()))?;
        let images = self.supervisor.images_of(&vm);
        images.create(new.disk_bytes).await?;
        let origin = Origin {
            author_uid,
            reason: format!("vm create {}", new.name),
            source: GenerationSource::Other,
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

    /// Deletes `vm`: refused while it runs and for a VM a drop-in defines (the helper does not
    /// edit drop-ins). Its entry leaves the local policy as a new generation, through the same
    /// apply as `create`; only once that generation is live are its images, its runtime folder,
    /// its console certificate and its system user deleted, so a policy that cannot be applied
    /// leaves everything as it was. Returns the generation.
    pub async fn delete(&self, vm: &Vm, author_uid: u32) -> Result<u64, Error> {
        let state = self.supervisor.state_of(&vm.name).await;
        if !matches!(state, VmState::ShutDown | VmState::Crashed) {
            return Err(Error::Conflict(format!(
                "{} is {state}: stop it before deleting it",
                vm.name
            )));
        }
        // No start may begin while the entry and the images go.
        let Some(_hold) = self.supervisor.hold_stopped(&vm.name).await else {
            return Err(Error::Conflict(format!(
                "{} is starting or running: stop it before deleting it",
                vm.name
            )));
        };
        let sources = self.firewall.sources().sources;
        if let Some(file) = sources
            .iter()
            .filter(|s| s.kind != SourceKind::Local)
            .find(|s| document_defines_vm(&s.document, vm.name.as_str()))
        {
            return Err(Error::Conflict(format!(
                "{} is defined by the drop-in {} ({}); the helper does not edit drop-ins: \
                 remove it there",
                vm.name, file.name, file.path
            )));
        }
        let (generation, document) = self.firewall.get();
        let new_document = document_without_vm(&document, vm.name.as_str())?;
        // Judged as any policy is: a part of the policy that still names the VM says so here.
        self.firewall
            .parse_with_local(new_document.as_bytes())
            .map_err(|findings| {
                Error::InvalidArgument(
                    findings
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
        let images = self.supervisor.images_of(vm);
        let origin = Origin {
            author_uid,
            reason: format!("vm delete {}", vm.name),
            source: GenerationSource::Other,
        };
        let applied = self
            .firewall
            .apply(new_document.into_bytes(), generation, 0, origin)
            .await?;
        // The VM is gone from the live policy: nothing can start it any more.
        if let Err(e) = std::fs::remove_dir_all(images.dir()) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(
                    "{} was deleted from the policy but its images stay in {}: {e}",
                    vm.name,
                    images.dir().display()
                );
            }
        }
        self.supervisor.forget(&vm.name);
        if let Err(e) = accounts::remove_vm_user(&vm.name).await {
            tracing::warn!("{} was deleted from the policy: {e}", vm.name);
        }
        Ok(applied.generation)
    }

    /// Starts `vm` (with an installer ISO in install mode). Its console port is guarded by the
    /// kernel before QEMU first listens on it.
    pub async fn start(
        &self,
        policy: &Policy,
        vm: &Vm,
        mode: RunMode,
        iso: Option<OwnedFd>,
    ) -> Result<VmInfo, Error> {
        if let Some(iso) = &iso {
            check_iso(iso)?;
        }
        if self.supervisor.prepare_spice_port(policy, vm).await? {
            self.firewall.reinstall().await?;
        }
        self.supervisor.start(policy, vm, mode, iso).await
    }

    /// Powers `vm` down, forced after `timeout` (or at once).
    pub async fn stop(&self, vm: &Vm, force: bool, timeout: Duration) -> Result<(), Error> {
        self.supervisor.stop(&vm.name, force, timeout).await
    }

    /// Resets `vm`.
    pub async fn reset(&self, vm: &Vm) -> Result<(), Error> {
        self.supervisor.reset(&vm.name).await
    }

    /// Makes the finished update the base; returns its version.
    pub async fn promote(&self, policy: &Policy, vm: &Vm) -> Result<u32, Error> {
        let images = self.supervisor.images_of(vm);
        // A running ephemeral VM still reads the current base through its overlay.
        let in_use = if self.supervisor.is_running(&vm.name).await {
            Some(images.summary().0)
        } else {
            None
        };
        images.promote(policy.settings.versions_kept, in_use)
    }

    /// Throws the finished update away.
    pub fn discard(&self, vm: &Vm) -> Result<(), Error> {
        self.supervisor.images_of(vm).discard()
    }

    /// The image versions of `vm`.
    pub fn versions(&self, vm: &Vm) -> Result<Vec<ImageVersion>, Error> {
        self.supervisor.images_of(vm).versions()
    }

    /// Makes an earlier version the base.
    pub fn restore(&self, vm: &Vm, version: u32) -> Result<(), Error> {
        self.supervisor.images_of(vm).restore(version)
    }

    /// The exact QEMU command line and firewall chain of `vm`.
    pub async fn show(&self, policy: &Policy, vm: &Vm) -> Result<VmDetails, Error> {
        let chain = self.firewall.vm_chain(policy, vm).await?;
        Ok(self.supervisor.details(policy, vm, chain).await)
    }

    /// A ruleset for inside `vm`'s guest, mirroring its policy.
    pub async fn guest_firewall(&self, policy: &Policy, vm: &Vm) -> Result<String, Error> {
        self.firewall.guest_ruleset(policy, vm).await
    }

    /// The host's USB devices, hubs left out.
    pub fn usb_devices(&self) -> Vec<UsbDevice> {
        usb::list_host_devices(Path::new(usb::SYSFS_USB_DEVICES))
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
            .collect()
    }

    /// Attaches a device to running `vm`; returns the id to detach it by. A host device's node
    /// belongs to the VM's user while it is attached.
    pub async fn attach_usb(&self, vm: &Vm, request: AttachRequest) -> Result<String, Error> {
        let selector = match request {
            AttachRequest::Emulated(driver) => {
                return self
                    .supervisor
                    .device_add(&vm.name, driver, Vec::new(), driver.to_owned(), None)
                    .await
            }
            AttachRequest::Host(selector) => selector,
        };
        let devices = usb::list_host_devices(Path::new(usb::SYSFS_USB_DEVICES));
        let d = usb::select(&devices, &selector)
            .map_err(Error::NotFound)?
            .clone();
        let uid = accounts::vm_uid(&vm.name)
            .ok_or_else(|| Error::Internal("the VM has no user".into()))?;
        let node = usb::device_node(&d);
        usb::hand_over(&node, uid).map_err(Error::Internal)?;
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
            .device_add(&vm.name, "usb-host", props, description, Some(node.clone()))
            .await;
        if added.is_err() {
            usb::take_back(&node);
        }
        added
    }

    /// Detaches a device by its id; a host device's node goes back to root.
    pub async fn detach_usb(&self, vm: &Vm, id: &str) -> Result<(), Error> {
        let attachment = self.supervisor.device_del(&vm.name, id).await?;
        if let Some(node) = &attachment.node {
            usb::take_back(node);
        }
        Ok(())
    }

    /// Devices attached to running `vm`.
    pub async fn attached_usb(&self, vm: &Vm) -> Result<Vec<AttachedDevice>, Error> {
        self.supervisor.attached(&vm.name).await
    }
}

/// `document` with a `[[vm]]` entry for `new` appended. The entry is serialized by the toml crate,
/// never spliced from strings, and the caller validates the whole document as any policy is.
pub(crate) fn document_with_vm(document: &str, new: &NewVm) -> Result<String, Error> {
    let mut entry = toml::Table::new();
    entry.insert("name".into(), new.name.to_string().into());
    entry.insert("memory".into(), new.memory.clone().into());
    entry.insert("cpus".into(), i64::from(new.cpus).into());
    if let Some(bridge) = &new.bridge {
        entry.insert("network".into(), "bridge".into());
        entry.insert("bridge".into(), bridge.network.clone().into());
        entry.insert("address".into(), bridge.address.clone().into());
        if let Some(mac) = &bridge.mac {
            entry.insert("mac".into(), mac.clone().into());
        }
        if let Some(nat) = &bridge.nat {
            let forwards = nat
                .forwards
                .iter()
                .map(|(proto, port, to_port)| {
                    let mut f = toml::Table::new();
                    f.insert("proto".into(), proto.clone().into());
                    f.insert("port".into(), i64::from(*port).into());
                    f.insert("to_port".into(), i64::from(*to_port).into());
                    toml::Value::Table(f)
                })
                .collect();
            let mut table = toml::Table::new();
            table.insert("address".into(), nat.address.clone().into());
            table.insert("forward".into(), toml::Value::Array(forwards));
            entry.insert("nat".into(), toml::Value::Table(table));
        }
    }
    let mut table = toml::Table::new();
    table.insert(
        "vm".into(),
        toml::Value::Array(vec![toml::Value::Table(entry)]),
    );
    let fragment = toml::to_string(&table).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(format!("{}\n{fragment}", document.trim_end()))
}

/// Whether the policy document `text` has a `[[vm]]` named `name` (an unreadable document has
/// none: the merge would have refused it).
fn document_defines_vm(text: &str, name: &str) -> bool {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return false;
    };
    doc.get("vm")
        .and_then(toml_edit::Item::as_array_of_tables)
        .is_some_and(|vms| {
            vms.iter()
                .any(|t| t.get("name").and_then(toml_edit::Item::as_str) == Some(name))
        })
}

/// The local policy `document` without its `[[vm]]` named `name`, every other byte as it was
/// (comments included). Refused when the document has no such VM.
pub(crate) fn document_without_vm(document: &str, name: &str) -> Result<String, Error> {
    let mut doc = document
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| Error::Internal(format!("the local policy cannot be read: {e}")))?;
    let vms = doc
        .get_mut("vm")
        .and_then(toml_edit::Item::as_array_of_tables_mut);
    let Some(vms) = vms else {
        return Err(Error::NotFound(format!(
            "the local policy has no VM named {name}"
        )));
    };
    let Some(index) = vms
        .iter()
        .position(|t| t.get("name").and_then(toml_edit::Item::as_str) == Some(name))
    else {
        return Err(Error::NotFound(format!(
            "the local policy has no VM named {name}"
        )));
    };
    vms.remove(index);
    if vms.is_empty() {
        doc.remove("vm");
    }
    Ok(doc.to_string())
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

/// Parses the disk size argument of `vm create`.
pub fn parse_disk_size(text: &str) -> Result<u64, Error> {
    images::parse_disk_size(text).map_err(Error::InvalidArgument)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_vm_entry_is_serialized_not_spliced() {
        let new = NewVm {
            name: VmName::parse("work").expect("valid"),
            disk_bytes: 1 << 30,
            memory: "2G\"\n[[vm]]\nname = \"evil\"".into(),
            cpus: 2,
            bridge: None,
        };
        let doc = document_with_vm("[settings]\n", &new).expect("serializes");
        let value: toml::Table = toml::from_str(&doc).expect("still TOML");
        let vms = value["vm"].as_array().expect("one array");
        assert_eq!(vms.len(), 1, "{doc}");
        assert_eq!(vms[0]["memory"].as_str(), Some(new.memory.as_str()));
    }

    #[test]
    fn a_deleted_vm_leaves_the_rest_of_the_document_as_it_was() {
        let doc = "# the office\n[settings]\naccel = \"tcg\"\n\n[[vm]]\nname = \"work\"\n\n\
                   [[vm.rule]]\naction = \"accept\"\n\n# kept\n[[vm]]\nname = \"build\"\n";
        let without = document_without_vm(doc, "work").unwrap_or_else(|e| panic!("{e}"));
        assert!(!document_defines_vm(&without, "work"), "{without}");
        assert!(document_defines_vm(&without, "build"), "{without}");
        assert!(
            without.starts_with("# the office\n[settings]\naccel = \"tcg\"\n"),
            "{without}"
        );
        assert!(!without.contains("accept"), "its rules stayed: {without}");
        let none = document_without_vm(&without, "build").unwrap_or_else(|e| panic!("{e}"));
        assert!(!none.contains("[[vm]]"), "{none}");
        assert!(matches!(
            document_without_vm(&none, "build"),
            Err(Error::NotFound(_))
        ));
    }

    const LAB: &str =
        "[[network]]\nname = \"lab\"\nsubnet = \"10.77.0.0/24\"\naddress = \"10.77.0.1\"\n";

    fn bridged(address: &str, nat: &str, forwards: &[(&str, u16, u16)]) -> NewVm {
        let forwards = forwards
            .iter()
            .map(|(p, a, b)| ((*p).to_owned(), *a, *b))
            .collect();
        NewVm {
            name: VmName::parse("lab1").unwrap_or_else(|e| panic!("{e}")),
            disk_bytes: 1 << 30,
            memory: "1G".into(),
            cpus: 1,
            bridge: Some(
                NewBridge::from_arguments("lab", address, "", nat, forwards)
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
        }
    }

    #[test]
    fn a_bridged_vm_entry_is_a_lab_vm_of_the_policy() {
        let new = bridged("10.77.0.20", "192.0.2.20", &[("tcp", 2222, 22)]);
        let doc = document_with_vm(LAB, &new).unwrap_or_else(|e| panic!("{e}"));
        let policy = Policy::parse(doc.as_bytes())
            .unwrap_or_else(|f| panic!("{f:?}\n{doc}"))
            .policy;
        let vm = policy.vm("lab1").unwrap_or_else(|| panic!("no lab1"));
        let port = vm.bridge.as_ref().unwrap_or_else(|| panic!("not bridged"));
        assert_eq!(
            (port.network.as_str(), port.address.to_string()),
            ("lab", "10.77.0.20".to_owned())
        );
        assert_eq!(
            port.mac,
            palisade_dbus::policy::lab::MacAddress::for_vm("lab1")
        );
        let nat = port.nat.as_ref().unwrap_or_else(|| panic!("no NAT"));
        assert_eq!(nat.address.to_string(), "192.0.2.20");
        assert_eq!(
            nat.forwards
                .iter()
                .map(|f| (f.proto.as_str(), f.port, f.to_port))
                .collect::<Vec<_>>(),
            [("tcp", 2222, 22)]
        );
    }

    #[test]
    fn bridged_mistakes_read_as_in_a_policy_file() {
        for (new, path, words) in [
            (
                bridged("10.99.0.5", "", &[]),
                "vm[lab1].address",
                "10.99.0.5 is not a guest's address in network lab",
            ),
            (
                bridged("10.77.0.20", "192.0.2.20", &[("icmp", 1, 1)]),
                "vm[lab1].nat.forward[1].proto",
                "\"icmp\" cannot be forwarded",
            ),
            (
                bridged("10.77.0.20\"\nmac = \"x", "", &[]),
                "vm[lab1].address",
                "is not an IPv4 address",
            ),
        ] {
            let doc = document_with_vm(LAB, &new).unwrap_or_else(|e| panic!("{e}"));
            let findings = match Policy::parse(doc.as_bytes()) {
                Ok(_) => panic!("{path} accepted:\n{doc}"),
                Err(f) => f,
            };
            assert!(
                findings
                    .iter()
                    .any(|f| f.path == path && f.message.contains(words)),
                "{path}: {words}\n{findings:?}"
            );
        }
    }

    #[test]
    fn bridged_arguments_need_a_nat_address_for_forwards() {
        let forwards = || vec![("tcp".to_owned(), 2222, 22)];
        assert!(NewBridge::from_arguments("lab", "10.77.0.20", "", "", forwards()).is_err());
        let b = NewBridge::from_arguments("lab", "10.77.0.20", "", "", Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((b.mac, b.nat), (None, None));
        let many = vec![("tcp".to_owned(), 1, 1); MAX_FORWARDS + 1];
        assert!(NewBridge::from_arguments("lab", "10.77.0.20", "", "192.0.2.1", many).is_err());
        let b = NewBridge::from_arguments(
            "lab",
            "10.77.0.20",
            "52:54:00:00:00:20",
            "192.0.2.1",
            forwards(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.mac.as_deref(), Some("52:54:00:00:00:20"));
        assert_eq!(b.nat.map(|n| n.forwards), Some(forwards()));
    }
}
