//! "My machines" as data: the VMs and remote consoles of this user, merged from `Consoles.List`
//! (what the user may open) and `Vms.List` (what the user may operate or open, with state), and
//! the words for their states; the admin's new-VM form judged with the contract's validators;
//! the USB menu of a running VM. Pure functions, unit-tested without a display.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use palisade_dbus::types::{
    AttachedDevice, ConsoleInfo, ConsoleKind, RunMode, UsbDevice, VmInfo, VmNetwork, VmNetworkMode,
    VmState,
};

/// Where a machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A VM on this host.
    Local,
    /// A Spice server on another host (console client role).
    Remote,
}

/// One row of "My machines".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The VM's or remote console's name.
    pub name: String,
    /// Local VM or remote console.
    pub kind: Kind,
    /// A local VM's state; `Unknown` for remote consoles.
    pub state: VmState,
    /// How a running VM runs.
    pub mode: RunMode,
    /// Where a remote console is (host and port); empty for local VMs.
    pub host: String,
    /// The remote console's port.
    pub port: u16,
    /// Whether a remote console uses TLS.
    pub tls: bool,
    /// Whether the user may open its console (it is in `Consoles.List`).
    pub console: bool,
    /// Whether the user may start and stop it (`may_operate` of its `Vms.List` entry).
    pub operate: bool,
    /// A local VM's network, from its `Vms.List` entry; `None` when only `Consoles.List` named it.
    pub network: Option<VmNetwork>,
    /// A finished update (or install) waiting for promote or discard; 0 when none.
    pub pending: u32,
    /// Whether polkit lets this user manage VMs (create, versions, delete): the admin's
    /// controls are shown. Set by the page, not by the lists.
    pub manage: bool,
}

impl Machine {
    /// Whether a local VM is known not to run, so there is no display to open.
    pub fn is_off(&self) -> bool {
        self.kind == Kind::Local && matches!(self.state, VmState::ShutDown | VmState::Crashed)
    }

    /// Whether the **Start** button belongs on its row.
    pub fn can_start(&self) -> bool {
        self.operate && self.is_off()
    }

    /// Whether the **Stop** button belongs on its row.
    pub fn can_stop(&self) -> bool {
        self.operate && self.kind == Kind::Local && self.state != VmState::Unknown && !self.is_off()
    }

    /// Whether the admin's **Manage** button belongs on its row: a VM of this host.
    pub fn can_manage(&self) -> bool {
        self.manage && self.kind == Kind::Local && self.state != VmState::Unknown
    }

    /// Whether the **USB devices** menu belongs on its row: a running VM the user operates.
    pub fn can_usb(&self) -> bool {
        self.operate && self.kind == Kind::Local && self.state == VmState::Running
    }

    /// Whether **Open console** can work now (the helper decides in the end).
    pub fn can_open(&self) -> bool {
        self.console && !self.is_off()
    }

    /// The lines under the machine's name: its state, then a bridged VM's lab network and
    /// address and, with a NAT address, how it is reached from outside.
    pub fn subtitle(&self) -> String {
        let mut lines = vec![self.summary()];
        if self.manage && self.pending > 0 {
            lines.push(i18n_f(
                "Version {version} waits: promote it to keep it, or discard it",
                &[("version", &self.pending.to_string())],
            ));
        }
        lines.extend(self.network_lines());
        lines.join("\n")
    }

    /// A bridged VM's network in words; nothing for other machines (user-mode networking is
    /// what a VM has unless said otherwise).
    pub fn network_lines(&self) -> Vec<String> {
        let Some(n) = self
            .network
            .as_ref()
            .filter(|n| n.mode == VmNetworkMode::Bridge)
        else {
            return Vec::new();
        };
        let mut lines = vec![format::bridged(&n.lab, &n.address)];
        if !n.nat_address.is_empty() {
            let forwards: Vec<(&str, u16, u16)> = n
                .forwards
                .iter()
                .map(|f| (f.proto.as_str(), f.port, f.to_port))
                .collect();
            lines.push(format::reachable(&n.nat_address, &forwards));
        }
        lines
    }

    /// The first line under the machine's name: its state, or where a remote console is.
    pub fn summary(&self) -> String {
        match self.kind {
            Kind::Local => state_words(self.state, self.mode),
            Kind::Remote => {
                let address = if self.host.contains(':') {
                    format!("[{}]:{}", self.host, self.port)
                } else {
                    format!("{}:{}", self.host, self.port)
                };
                if self.tls {
                    i18n_f("Remote console at {address}, TLS", &[("address", &address)])
                } else {
                    i18n_f("Remote console at {address}", &[("address", &address)])
                }
            }
        }
    }
}

/// The rows for what the helper listed: every VM of `vms` (with start and stop where the
/// helper says the user may operate it), every console of `consoles` (with **Open console**),
/// each name once. Local VMs first, then remote consoles, each by name. `None` stands for a
/// list the helper would not give; without the console list, a VM's own `console_allowed` says
/// whether its console may be opened.
pub fn merge(consoles: Option<&[ConsoleInfo]>, vms: Option<&[VmInfo]>) -> Vec<Machine> {
    let mut out: Vec<Machine> = vms
        .unwrap_or_default()
        .iter()
        .map(|vm| Machine {
            name: vm.name.clone(),
            kind: Kind::Local,
            state: vm.state,
            mode: vm.mode,
            host: String::new(),
            port: 0,
            tls: false,
            console: consoles.is_none() && vm.console_allowed,
            operate: vm.may_operate,
            network: Some(vm.network.clone()),
            pending: vm.pending_version,
            manage: false,
        })
        .collect();
    for c in consoles.unwrap_or_default() {
        let kind = match c.kind {
            ConsoleKind::Local => Kind::Local,
            ConsoleKind::Remote => Kind::Remote,
        };
        if let Some(m) = out.iter_mut().find(|m| m.name == c.name && m.kind == kind) {
            m.console = true;
            continue;
        }
        out.push(Machine {
            name: c.name.clone(),
            kind,
            state: c.state,
            mode: RunMode::Ephemeral,
            host: if kind == Kind::Remote {
                c.host.clone()
            } else {
                String::new()
            },
            port: if kind == Kind::Remote { c.port } else { 0 },
            tls: kind == Kind::Remote && c.tls,
            console: true,
            operate: false,
            network: None,
            pending: 0,
            manage: false,
        });
    }
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// A VM's state (and how it runs) in words. Every state the helper can send has its words:
/// the match is exhaustive, so a state added to the contract does not compile until it has them.
pub fn state_words(state: VmState, mode: RunMode) -> String {
    match (state, mode) {
        (VmState::Running, RunMode::Update) => gettext("Running in update mode: changes are kept"),
        (VmState::Running, RunMode::Install) => gettext("Running the installer"),
        // Translators: a VM's state. Changes made inside it are thrown away when it stops.
        (VmState::Running, RunMode::Ephemeral) => gettext("Running"),
        // Translators: a VM's state: the helper is launching it.
        (VmState::Starting, _) => gettext("Starting…"),
        // Translators: a VM's state.
        (VmState::Paused, _) => gettext("Paused"),
        // Translators: a VM's state: the guest powers off and QEMU is about to end.
        (VmState::ShuttingDown, _) => gettext("Shutting down…"),
        // Translators: a VM's state.
        (VmState::ShutDown, _) => gettext("Shut down"),
        // Translators: a VM's state: QEMU ended unexpectedly.
        (VmState::Crashed, _) => gettext("Crashed"),
        (VmState::Unknown, _) => gettext("State unknown"),
    }
}

/// A field of the new-VM form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The VM's name.
    Name,
    /// Its disk size.
    Disk,
    /// Its memory.
    Memory,
    /// Its virtual CPUs.
    Cpus,
    /// The lab network it is bridged to.
    Network,
    /// Its address there.
    Address,
    /// Its MAC address.
    Mac,
    /// The host address of its NAT.
    Nat,
    /// Its forwarded ports.
    Forwards,
}

/// What `Vms.Create` gets, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVm {
    /// The name.
    pub name: String,
    /// The disk size as typed (the helper reads it again).
    pub disk_size: String,
    /// The memory as typed.
    pub memory: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Its port on a lab network (`Vms.CreateBridged`); `None`: user-mode networking.
    pub bridge: Option<NewBridge>,
}

/// A new VM's port on a lab network, as `Vms.CreateBridged` takes it. The words are the
/// helper's to judge against the policy (which lab networks exist, which addresses are free),
/// with the policy's sentences; only their shape is checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBridge {
    /// The lab network (a `[[network]]` of the policy).
    pub network: String,
    /// The VM's IPv4 address on it.
    pub address: String,
    /// Its MAC address; empty: a stable one the helper picks.
    pub mac: String,
    /// The host address it is reachable at and leaves from; empty: none.
    pub nat: String,
    /// Ports of the NAT address forwarded to it; none: every port.
    pub forwards: Vec<palisade_app::forward::Forward>,
}

/// The network part of the new-VM form as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeForm {
    pub network: String,
    pub address: String,
    pub mac: String,
    pub nat: String,
    pub forwards: String,
}

/// The network part of the form (a lab network is named), judged for its shape: an IPv4
/// address, a MAC address of six hex pairs, forwards as `tcp:2222:22`; forwards need a NAT
/// address. Whether the network exists and the address is free is the helper's to say.
pub fn check_bridge(form: &BridgeForm) -> Result<NewBridge, Vec<(Field, String)>> {
    let mut problems = Vec::new();
    let network = form.network.trim();
    let address = form.address.trim();
    if address.parse::<std::net::Ipv4Addr>().is_err() {
        problems.push((
            Field::Address,
            gettext("Write the VM's IPv4 address on the lab network, like 10.77.0.10"),
        ));
    }
    let mac = form.mac.trim();
    let pairs: Vec<&str> = mac.split(':').collect();
    if !mac.is_empty()
        && (pairs.len() != 6
            || pairs
                .iter()
                .any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit())))
    {
        problems.push((
            Field::Mac,
            gettext("Write a MAC address as six pairs of hex digits, like 52:54:00:12:34:56, or leave it empty"),
        ));
    }
    let nat = form.nat.trim();
    if !nat.is_empty() && nat.parse::<std::net::Ipv4Addr>().is_err() {
        problems.push((
            Field::Nat,
            gettext("Write one of this computer's IPv4 addresses, or leave it empty for no NAT"),
        ));
    }
    let forwards = match palisade_app::forward::parse_forwards(&form.forwards) {
        Ok(forwards) => forwards,
        Err(why) => {
            problems.push((Field::Forwards, why));
            Vec::new()
        }
    };
    if nat.is_empty() && !forwards.is_empty() {
        problems.push((
            Field::Forwards,
            gettext("Forwarded ports need a NAT address"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(NewBridge {
        network: network.to_owned(),
        address: address.to_owned(),
        mac: mac.to_owned(),
        nat: nat.to_owned(),
        forwards,
    })
}

/// The new-VM form as typed, judged by the contract's own rules before anything is sent: the
/// name by `VmName::parse`, the disk by `parse_disk_size` (what the helper applies to
/// `Vms.Create`), memory and CPUs by validating the `[[vm]]` entry the helper would write, with
/// `Policy::parse` (so the sentences are the policy's). Each problem is on its field.
pub fn check_new_vm(
    name: &str,
    disk_size: &str,
    memory: &str,
    cpus: &str,
) -> Result<NewVm, Vec<(Field, String)>> {
    use palisade_dbus::policy::{size, Policy, VmName};
    let mut problems = Vec::new();
    let name = name.trim();
    if let Err(why) = VmName::parse(name) {
        problems.push((Field::Name, why));
    }
    if let Err(why) = size::parse_disk_size(disk_size.trim()) {
        problems.push((Field::Disk, why));
    }
    let cpu_count = match cpus.trim().parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            problems.push((
                Field::Cpus,
                gettext("Write the number of virtual CPUs, like 2"),
            ));
            None
        }
    };
    // The entry the helper would add, as its fields would read in a policy file. The name is
    // one that parses, so that the findings' paths are known.
    let mut entry = toml_edit::Table::new();
    entry.insert("name", toml_edit::value("new"));
    entry.insert("memory", toml_edit::value(memory.trim()));
    entry.insert("cpus", toml_edit::value(i64::from(cpu_count.unwrap_or(1))));
    let mut vms = toml_edit::ArrayOfTables::new();
    vms.push(entry);
    let mut doc = toml_edit::DocumentMut::new();
    doc.insert("vm", toml_edit::Item::ArrayOfTables(vms));
    if let Err(findings) = Policy::parse(doc.to_string().as_bytes()) {
        for f in findings
            .iter()
            .filter(|f| f.severity == palisade_dbus::types::Severity::Error)
        {
            match f.path.as_str() {
                "vm[new].memory" => problems.push((Field::Memory, f.message.clone())),
                "vm[new].cpus" => problems.push((Field::Cpus, f.message.clone())),
                _ => {}
            }
        }
    }
    match (problems.is_empty(), cpu_count) {
        (true, Some(cpus)) => Ok(NewVm {
            name: name.to_owned(),
            disk_size: disk_size.trim().to_owned(),
            memory: memory.trim().to_owned(),
            cpus,
            bridge: None,
        }),
        _ => Err(problems),
    }
}

/// The emulated devices every VM can take, as `Vms.UsbAttach` names them.
pub const EMULATED_USB: [&str; 2] = ["usb-tablet", "usb-kbd"];

/// One entry of a running VM's USB menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbEntry {
    /// What `Vms.UsbAttach` takes (`emulated:usb-tablet`, `1.4`); empty for an attached device
    /// the host no longer lists.
    pub device: String,
    /// Its name for people.
    pub label: String,
    /// The id it is attached by, when it is attached.
    pub attached: Option<String>,
}

/// The USB menu: the host's devices (`Vms.UsbDevices`), then the emulated ones, each marked
/// with its id when `attached` (`Vms.UsbAttached`) lists it; an attached device the host no
/// longer lists comes last, so that it can still be detached.
pub fn usb_entries(devices: &[UsbDevice], attached: &[AttachedDevice]) -> Vec<UsbEntry> {
    let mut left: Vec<&AttachedDevice> = attached.iter().collect();
    let mut take = |matches: &dyn Fn(&str) -> bool| {
        let i = left.iter().position(|a| matches(&a.description))?;
        Some(left.remove(i).id.clone())
    };
    let mut out = Vec::new();
    for d in devices {
        let prefix = format!("usb-host {}.{} ", d.bus, d.address);
        let product = format!("{} {}", d.manufacturer.trim(), d.product.trim());
        let product = product.trim();
        let label = if product.is_empty() {
            format!("{:04x}:{:04x}", d.vendor_id, d.product_id)
        } else {
            format!("{product} ({:04x}:{:04x})", d.vendor_id, d.product_id)
        };
        out.push(UsbEntry {
            device: format!("{}.{}", d.bus, d.address),
            label,
            attached: take(&|description: &str| description.starts_with(&prefix)),
        });
    }
    for driver in EMULATED_USB {
        out.push(UsbEntry {
            device: format!("emulated:{driver}"),
            label: emulated_label(driver),
            attached: take(&|description: &str| description == driver),
        });
    }
    out.extend(left.into_iter().map(|a| UsbEntry {
        device: String::new(),
        label: a.description.clone(),
        attached: Some(a.id.clone()),
    }));
    out
}

/// An emulated device's name for people.
fn emulated_label(driver: &str) -> String {
    match driver {
        "usb-tablet" => gettext("Virtual tablet (emulated)"),
        "usb-kbd" => gettext("Virtual keyboard (emulated)"),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, state: &str) -> VmInfo {
        // From JSON, so that a field added to the contract later needs one line here.
        serde_json::from_value(serde_json::json!({
            "name": name,
            "state": state,
            "mode": "ephemeral",
            "spice_port": 5900,
            "pid": 0,
            "base_version": 1,
            "pending_version": 0,
            "console_allowed": true,
            "may_operate": true,
            "viewer_channels": 0,
            "network": {
                "mode": "user", "lab": "", "address": "", "mac": "", "nat_address": "",
                "forwards": [],
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn console(name: &str, kind: ConsoleKind, state: VmState) -> ConsoleInfo {
        ConsoleInfo {
            name: name.into(),
            kind,
            state,
            host: "192.0.2.10".into(),
            port: 5901,
            tls: true,
        }
    }

    #[test]
    fn merges_vms_and_consoles_once_each() {
        let vms = [vm("work", "running"), vm("build", "shut down")];
        let consoles = [
            console("work", ConsoleKind::Local, VmState::Running),
            console("server", ConsoleKind::Remote, VmState::Unknown),
            console("banking", ConsoleKind::Local, VmState::ShutDown),
        ];
        let rows = merge(Some(&consoles), Some(&vms));
        let names: Vec<(&str, Kind, bool, bool)> = rows
            .iter()
            .map(|m| (m.name.as_str(), m.kind, m.console, m.operate))
            .collect();
        assert_eq!(
            names,
            [
                ("banking", Kind::Local, true, false),
                ("build", Kind::Local, false, true),
                ("work", Kind::Local, true, true),
                ("server", Kind::Remote, true, false),
            ]
        );
        let work = &rows[2];
        assert!(work.can_open() && work.can_stop() && !work.can_start());
        let build = &rows[1];
        assert!(!build.can_open() && build.can_start() && !build.can_stop());
        let banking = &rows[0];
        assert!(!banking.can_open() && !banking.can_start() && !banking.can_stop());
        let server = &rows[3];
        assert!(server.can_open() && !server.can_start() && !server.can_stop());
        assert_eq!(server.summary(), "Remote console at 192.0.2.10:5901, TLS");
        assert!(work.host.is_empty() && work.port == 0);
    }

    #[test]
    fn only_a_vm_the_user_may_operate_gets_start_and_stop() {
        let console_only = |state| VmInfo {
            may_operate: false,
            ..vm("work", state)
        };
        let consoles = [console("work", ConsoleKind::Local, VmState::ShutDown)];
        for consoles in [None, Some(&consoles[..])] {
            let off = merge(consoles, Some(&[console_only("shut down")]));
            assert_eq!(off.len(), 1);
            assert!(off[0].console && !off[0].operate);
            assert!(!off[0].can_start() && !off[0].can_stop() && !off[0].can_open());
            let on = merge(consoles, Some(&[console_only("running")]));
            assert!(!on[0].can_start() && !on[0].can_stop());
        }
    }

    #[test]
    fn a_list_the_helper_refused_leaves_the_other() {
        let consoles = [console("work", ConsoleKind::Local, VmState::Running)];
        let rows = merge(Some(&consoles), None);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].console && !rows[0].operate && !rows[0].can_stop());
        let vms = [vm("work", "shut down")];
        let rows = merge(None, Some(&vms));
        assert!(rows[0].console && rows[0].can_start() && !rows[0].can_open());
        let rows = merge(Some(&[]), Some(&vms));
        assert!(!rows[0].console);
        assert!(merge(None, None).is_empty());
    }

    #[test]
    fn names_states() {
        assert_eq!(state_words(VmState::Running, RunMode::Ephemeral), "Running");
        assert_eq!(
            state_words(VmState::Running, RunMode::Update),
            "Running in update mode: changes are kept"
        );
        assert_eq!(
            state_words(VmState::ShutDown, RunMode::Ephemeral),
            "Shut down"
        );
        // Every state the helper can send has words of its own, never the raw word.
        for state in VmState::ALL {
            let words = state_words(*state, RunMode::Ephemeral);
            assert!(!words.is_empty() && words != state.as_str(), "{state}");
        }
        let mut m = merge(None, Some(&[vm("v6", "unknown")]))[0].clone();
        m.kind = Kind::Remote;
        m.host = "2001:db8::1".into();
        m.port = 5900;
        m.tls = false;
        assert_eq!(m.summary(), "Remote console at [2001:db8::1]:5900");
    }

    #[test]
    fn a_bridged_vm_says_where_it_sits_and_how_it_is_reached() {
        let lab = |nat: &str, forwards: serde_json::Value| -> VmInfo {
            let mut v =
                serde_json::to_value(vm("lab1", "running")).unwrap_or_else(|e| panic!("{e}"));
            v["network"] = serde_json::json!({
                "mode": "bridge", "lab": "lab", "address": "10.77.0.20",
                "mac": "52:54:00:00:00:20", "nat_address": nat, "forwards": forwards,
            });
            serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
        };
        let forwarded = lab(
            "192.0.2.20",
            serde_json::json!([{ "proto": "tcp", "port": 2222, "to_port": 22 }]),
        );
        let row = &merge(None, Some(&[forwarded]))[0];
        assert_eq!(
            row.subtitle(),
            "Running\nBridged to lab network lab, address 10.77.0.20\n\
             Reachable at 192.0.2.20 (tcp 2222 → 22)"
        );
        let no_nat = &merge(None, Some(&[lab("", serde_json::json!([]))]))[0];
        assert_eq!(
            no_nat.network_lines(),
            ["Bridged to lab network lab, address 10.77.0.20"]
        );
        // A user-mode VM, and a VM only the console list named, keep their one line.
        let plain = &merge(None, Some(&[vm("work", "running")]))[0];
        assert_eq!(plain.subtitle(), "Running");
        let consoles = [console("work", ConsoleKind::Local, VmState::Running)];
        let only_console = &merge(Some(&consoles), None)[0];
        assert_eq!(only_console.subtitle(), "Running");
    }

    #[test]
    fn the_new_vm_form_is_judged_by_the_contract() {
        let ok = check_new_vm("work", "20G", "2G", "2").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((ok.name.as_str(), ok.cpus), ("work", 2));
        let fields = |r: Result<NewVm, Vec<(Field, String)>>| -> Vec<Field> {
            r.err()
                .unwrap_or_default()
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(
            fields(check_new_vm("Bad Name", "20G", "2G", "2")),
            [Field::Name]
        );
        assert_eq!(
            fields(check_new_vm("work", "17T", "2G", "2")),
            [Field::Disk]
        );
        assert_eq!(
            fields(check_new_vm("work", "20G", "2X", "2")),
            [Field::Memory]
        );
        assert_eq!(
            fields(check_new_vm("work", "20G", "8M", "2")),
            [Field::Memory]
        );
        assert_eq!(
            fields(check_new_vm("work", "20G", "2G", "0")),
            [Field::Cpus]
        );
        assert_eq!(
            fields(check_new_vm("work", "20G", "2G", "two")),
            [Field::Cpus]
        );
        // A quote in a field stays in its field.
        assert_eq!(
            fields(check_new_vm("work", "20G", "2G\"\ncpus = 9", "1")),
            [Field::Memory]
        );
    }

    #[test]
    fn the_usb_menu_marks_what_is_attached() {
        let host = UsbDevice {
            bus: 1,
            address: 4,
            vendor_id: 0x046d,
            product_id: 0xc52b,
            manufacturer: "Logitech".into(),
            product: "USB Receiver".into(),
        };
        let attached = [
            AttachedDevice {
                id: "usb1".into(),
                description: "usb-tablet".into(),
            },
            AttachedDevice {
                id: "usb2".into(),
                description: "usb-host 1.4 046d:c52b Logitech USB Receiver".into(),
            },
            AttachedDevice {
                id: "usb3".into(),
                description: "usb-host 2.9 1234:5678 Gone".into(),
            },
        ];
        let entries = usb_entries(&[host], &attached);
        let view: Vec<(&str, Option<&str>)> = entries
            .iter()
            .map(|e| (e.device.as_str(), e.attached.as_deref()))
            .collect();
        assert_eq!(
            view,
            [
                ("1.4", Some("usb2")),
                ("emulated:usb-tablet", Some("usb1")),
                ("emulated:usb-kbd", None),
                ("", Some("usb3")),
            ]
        );
        assert_eq!(entries[0].label, "Logitech USB Receiver (046d:c52b)");
        assert!(usb_entries(&[], &[]).iter().all(|e| e.attached.is_none()));
    }

    #[test]
    fn a_lab_port_is_judged_for_its_shape() {
        let form = |address: &str, mac: &str, nat: &str, forwards: &str| BridgeForm {
            network: " lab ".into(),
            address: address.into(),
            mac: mac.into(),
            nat: nat.into(),
            forwards: forwards.into(),
        };
        assert_eq!(
            check_bridge(&form("10.77.0.20", "", "192.0.2.20", "tcp:2222:22")),
            Ok(NewBridge {
                network: "lab".into(),
                address: "10.77.0.20".into(),
                mac: String::new(),
                nat: "192.0.2.20".into(),
                forwards: vec![("tcp".into(), 2222, 22)],
            })
        );
        let fields = |r: Result<NewBridge, Vec<(Field, String)>>| {
            r.err()
                .unwrap_or_default()
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(check_bridge(&form("10.77.0", "", "", ""))),
            [Field::Address]
        );
        assert_eq!(
            fields(check_bridge(&form("10.77.0.20", "52:54:00:12:34", "", ""))),
            [Field::Mac]
        );
        assert_eq!(
            fields(check_bridge(&form("10.77.0.20", "", "nat", ""))),
            [Field::Nat]
        );
        // Forwards without a NAT address have nowhere to arrive.
        assert_eq!(
            fields(check_bridge(&form("10.77.0.20", "", "", "tcp:22"))),
            [Field::Forwards]
        );
        assert_eq!(
            fields(check_bridge(&form("10.77.0.20", "", "192.0.2.20", "ssh"))),
            [Field::Forwards]
        );
    }
}
