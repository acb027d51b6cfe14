//! Every well-known name of the contract: bus name, object path, interfaces and polkit actions.
//!
//! Interfaces are versioned through the bus name (`Helper1`); an incompatible change gets a new
//! number rather than silently changing a signature under existing clients.

/// The helper's well-known name on the system bus.
pub const BUS_NAME: &str = "io.palisade.Helper1";
/// The one object the helper exports.
pub const OBJECT_PATH: &str = "/io/palisade/Helper1";
/// Helper status: version, live generation, health.
pub const STATUS_INTERFACE: &str = "io.palisade.Helper1";
/// The firewall policy: read, validate, preview, apply, confirm, roll back, history.
pub const POLICY_INTERFACE: &str = "io.palisade.Helper1.Policy";
/// Virtual machines: create, run, update, devices.
pub const VMS_INTERFACE: &str = "io.palisade.Helper1.Vms";
/// Consoles: which Spice displays the caller may open, and one-time tickets for them.
pub const CONSOLES_INTERFACE: &str = "io.palisade.Helper1.Consoles";
/// Blocklists: imported lists of networks and domains the policy names.
pub const BLOCKLISTS_INTERFACE: &str = "io.palisade.Helper1.Blocklists";
/// The drop log: what the firewall's logged rules decided, and per-rule counters.
pub const LOG_INTERFACE: &str = "io.palisade.Helper1.Log";
/// Prefix of every error name the helper returns.
pub const ERROR_PREFIX: &str = "io.palisade.Error";
/// The application id of the desktop app (also its D-Bus name on the session bus).
pub const APP_ID: &str = "io.palisade.Palisade";
/// Group whose members the shipped polkit rules let manage policy without a password.
pub const ADMIN_GROUP: &str = "palisade-admin";

/// A polkit action. The helper checks exactly one of these before every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the status, the live policy and its history.
    PolicyRead,
    /// Change the firewall policy.
    PolicyManage,
    /// Create, delete and reconfigure virtual machines.
    VmManage,
    /// Start, stop and attach devices to virtual machines one is assigned to.
    VmOperate,
    /// Open the console of a virtual machine one is assigned to.
    ConsoleOpen,
    /// Read the log of dropped connections.
    LogRead,
}

impl Action {
    /// Every action, in the order the polkit policy file lists them.
    pub const ALL: [Action; 6] = [
        Action::PolicyRead,
        Action::PolicyManage,
        Action::VmManage,
        Action::VmOperate,
        Action::ConsoleOpen,
        Action::LogRead,
    ];

    /// The polkit action id.
    pub fn id(self) -> &'static str {
        match self {
            Action::PolicyRead => "io.palisade.policy.read",
            Action::PolicyManage => "io.palisade.policy.manage",
            Action::VmManage => "io.palisade.vm.manage",
            Action::VmOperate => "io.palisade.vm.operate",
            Action::ConsoleOpen => "io.palisade.console.open",
            Action::LogRead => "io.palisade.log.read",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
