//! "My machines" as data: the VMs and remote consoles of this user, merged from `Consoles.List`
//! (what the user may open) and `Vms.List` (what the user may operate or open, with state), and
//! the words for their states. Pure functions, unit-tested without a display.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use palisade_dbus::types::{
    ConsoleInfo, ConsoleKind, RunMode, VmInfo, VmNetwork, VmNetworkMode, VmState,
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

    /// Whether **Open console** can work now (the helper decides in the end).
    pub fn can_open(&self) -> bool {
        self.console && !self.is_off()
    }

    /// The lines under the machine's name: its state, then a bridged VM's lab network and
    /// address and, with a NAT address, how it is reached from outside.
    pub fn subtitle(&self) -> String {
        let mut lines = vec![self.summary()];
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
}
