//! Client proxies, declared once for the app, `palisadectl` and the tests alike.
//!
//! Method names and signatures mirror the helper's `#[interface]` impls; the helper's
//! introspection test fails if a method is added there without a polkit check.
//! Arguments are basic D-Bus types (`ay`, `t`, `u`, `s`) so any tool (`dbus-send`, `busctl`) can
//! call them too; the enums of `types` travel as their words (`s`).

use crate::error::Error;
use crate::types::{
    Applied, AttachedDevice, BlocklistInfo, CandidateReport, Client, ConsoleInfo, ConsoleTicket,
    Finding, GenerationInfo, ImageVersion, PolicySources, Preview, Reloaded, RunMode, Status,
    UsbDevice, VmDetails, VmInfo, VmState,
};

/// `io.palisade.Helper1`: status of the helper.
#[zbus::proxy(
    interface = "io.palisade.Helper1",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Helper {
    /// Health, version and live generation. polkit: `io.palisade.policy.read`.
    fn status(&self) -> Result<Status, Error>;
}

/// `io.palisade.Helper1.Policy`: the firewall policy and its generations.
#[zbus::proxy(
    interface = "io.palisade.Helper1.Policy",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Policy {
    /// The live generation and its local policy document (TOML): the one `Apply` replaces. The
    /// live policy is that document merged after the drop-ins (`Sources`). polkit: `policy.read`.
    fn get(&self) -> Result<(u64, String), Error>;

    /// The files the live policy was merged from, in merge order (the local policy last), and
    /// where drop-ins go. polkit: `policy.read`.
    fn sources(&self) -> Result<PolicySources, Error>;

    /// What the policy would be with `document` in place as the admin drop-in `name`
    /// (`50-office.toml`) and the other drop-ins as they are on disk: valid or not, and what
    /// would change. Changes nothing. polkit: `policy.read`.
    fn check(&self, name: &str, document: &[u8]) -> Result<CandidateReport, Error>;

    /// Reads the drop-ins again and applies them, merged with the live local policy, as a new
    /// generation — unless that is what is live already. Refused while a generation waits for
    /// confirmation. polkit: `policy.manage`.
    fn reload(&self, confirm_seconds: u32) -> Result<Reloaded, Error>;

    /// Every problem (errors and warnings) of a local policy document, merged after the live
    /// drop-ins. polkit: `policy.read`.
    fn validate(&self, document: &[u8]) -> Result<Vec<Finding>, Error>;

    /// The ruleset a local policy document compiles to (merged after the live drop-ins) and its
    /// diff against the live one. polkit: `policy.read`.
    fn preview(&self, document: &[u8]) -> Result<Preview, Error>;

    /// Applies a local policy document (merged after the live drop-ins) atomically if
    /// `base_generation` is still live. With `confirm_seconds > 0` the previous generation
    /// returns unless `Confirm` arrives in time. `client` is recorded with the generation.
    /// polkit: `policy.manage`.
    fn apply(
        &self,
        document: &[u8],
        base_generation: u64,
        confirm_seconds: u32,
        client: Client,
    ) -> Result<Applied, Error>;

    /// Keeps a pending generation. polkit: `policy.manage`.
    fn confirm(&self, generation: u64) -> Result<(), Error>;

    /// Applies an earlier generation's policy again, as a new generation. polkit: `policy.manage`.
    /// Its files come back as they were, drop-ins included (so the live policy may then differ
    /// from the drop-ins on disk: `Status.drift`).
    fn rollback(&self, generation: u64, client: Client) -> Result<Applied, Error>;

    /// Every generation, newest first. polkit: `policy.read`.
    fn history(&self) -> Result<Vec<GenerationInfo>, Error>;

    /// The unified diff from generation `from`'s policy to generation `to`'s (each merged as it
    /// was applied; empty when they are the same). polkit: `policy.read`.
    fn diff(&self, from: u64, to: u64) -> Result<String, Error>;

    /// A new generation became live (apply, confirm timeout, rollback, expiry).
    #[zbus(signal)]
    fn generation_changed(&self, generation: u64) -> zbus::Result<()>;
}

/// `io.palisade.Helper1.Vms`: virtual machines. Operating a VM needs polkit
/// `io.palisade.vm.operate` and an assignment in the policy (or `vm.manage`); changing images
/// needs `io.palisade.vm.manage`.
#[zbus::proxy(
    interface = "io.palisade.Helper1.Vms",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Vms {
    /// The VMs the caller may operate or open, with their state.
    fn list(&self) -> Result<Vec<VmInfo>, Error>;

    /// Creates a VM: its image folder, an empty disk of `disk_size` ("20G"), and its entry in
    /// the policy (a new generation). Returns the generation. polkit: `vm.manage`.
    fn create(&self, name: &str, disk_size: &str, memory: &str, cpus: u32) -> Result<u64, Error>;

    /// Creates a VM as `create` does, bridged to the lab network `network` at `address`, with
    /// `mac` (empty: a stable one from QEMU's range) and its NAT through the host address `nat`
    /// (empty: none) with `forwards`, each (`tcp` or `udp`, port on `nat`, port on the VM; none:
    /// every port). The helper reads these after authorization and validates them as the same
    /// fields of a policy file, with the same sentences. polkit: `vm.manage`.
    #[allow(clippy::too_many_arguments)] // one per argument of the D-Bus method, which is flat
    fn create_bridged(
        &self,
        name: &str,
        disk_size: &str,
        memory: &str,
        cpus: u32,
        network: &str,
        address: &str,
        mac: &str,
        nat: &str,
        forwards: &[(&str, u16, u16)],
    ) -> Result<u64, Error>;

    /// Deletes a VM: refused while it runs and for a VM a drop-in defines. Its entry leaves the
    /// local policy (a new generation), then its disk images are deleted; if the policy cannot
    /// be applied, everything stays. Returns the generation. polkit: `vm.manage`.
    fn delete(&self, name: &str) -> Result<u64, Error>;

    /// Starts a VM: `mode` is `ephemeral` (the default: nothing survives) or `update` (writes a
    /// new image version). polkit: `vm.operate` (`vm.manage` for update).
    /// The helper reads the mode as a string, after authorization.
    fn start(&self, name: &str, mode: RunMode) -> Result<VmInfo, Error>;

    /// Starts a VM from an installer ISO (opened by the caller, passed as a descriptor) with a
    /// new writable image version. polkit: `vm.manage`.
    fn install(&self, name: &str, iso: zbus::Fd<'_>) -> Result<VmInfo, Error>;

    /// Asks the guest to power down (ACPI), forcing it off after `timeout_seconds`; `force`
    /// pulls the plug at once.
    fn stop(&self, name: &str, force: bool, timeout_seconds: u32) -> Result<(), Error>;

    /// Resets the VM like a reset button.
    fn reset(&self, name: &str) -> Result<(), Error>;

    /// Makes the finished update the new base image. polkit: `vm.manage`.
    fn promote(&self, name: &str) -> Result<u32, Error>;

    /// Throws the finished update away. polkit: `vm.manage`.
    fn discard(&self, name: &str) -> Result<(), Error>;

    /// The VM's image versions.
    fn versions(&self, name: &str) -> Result<Vec<ImageVersion>, Error>;

    /// Makes an earlier version the base again. polkit: `vm.manage`.
    fn restore(&self, name: &str, version: u32) -> Result<(), Error>;

    /// The exact QEMU command line, the firewall chain and the network of a VM. polkit:
    /// `policy.read`.
    fn show(&self, name: &str) -> Result<VmDetails, Error>;

    /// An nftables ruleset for inside the guest that mirrors its policy. polkit: `policy.read`.
    fn guest_firewall(&self, name: &str) -> Result<String, Error>;

    /// The host's USB devices.
    fn usb_devices(&self) -> Result<Vec<UsbDevice>, Error>;

    /// Attaches a host USB device (`vendor:product` or `bus.address`) or an emulated one
    /// (`emulated:usb-tablet`, `emulated:usb-kbd`) to a running VM; returns its id.
    fn usb_attach(&self, name: &str, device: &str) -> Result<String, Error>;

    /// Detaches a device by the id `usb_attach` returned.
    fn usb_detach(&self, name: &str, id: &str) -> Result<(), Error>;

    /// The devices attached to a running VM.
    fn usb_attached(&self, name: &str) -> Result<Vec<AttachedDevice>, Error>;

    /// A VM's state changed (driven by QEMU's own events).
    #[zbus(signal)]
    fn state_changed(&self, name: &str, state: VmState) -> zbus::Result<()>;
}

/// `io.palisade.Helper1.Consoles`: Spice consoles. polkit `io.palisade.console.open`, then the
/// policy's console assignment (`console = { users, groups }` of a VM or remote console).
#[zbus::proxy(
    interface = "io.palisade.Helper1.Consoles",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Consoles {
    /// The consoles the caller may open.
    fn list(&self) -> Result<Vec<ConsoleInfo>, Error>;

    /// A one-time ticket for a console: for a local VM a fresh Spice password that expires
    /// shortly; for a remote console its address. Rate-limited per caller.
    fn open(&self, name: &str) -> Result<ConsoleTicket, Error>;
}

/// `io.palisade.Helper1.Blocklists`: lists kept outside the policy (a million networks load in
/// seconds), named by the policy's `[[blocklist]] imported = true`. polkit
/// `io.palisade.policy.read` to look, `io.palisade.policy.manage` to change.
#[zbus::proxy(
    interface = "io.palisade.Helper1.Blocklists",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Blocklists {
    /// Imports (or replaces) list `name` from a regular file the caller opened and passes as a
    /// descriptor (the helper never opens a caller's path). `format` is `auto`, `plain`,
    /// `netset`, `spamhaus`, `hosts` or `domains`; `strict` refuses the whole list at the first
    /// bad line; `force` accepts a list covering a whole address family. If the live policy
    /// names the list, the kernel enforces the new version when this returns.
    fn import(
        &self,
        name: &str,
        file: zbus::Fd<'_>,
        format: &str,
        strict: bool,
        force: bool,
    ) -> Result<BlocklistInfo, Error>;

    /// Imports (or replaces) list `name` downloaded from `url` (`http` or `https` only, at most
    /// 2048 characters), read again every `refresh_seconds` (0: never; else 300 to 2592000, 30
    /// days) with a conditional request: an unchanged list (`304 Not Modified`, or the same
    /// content hash) reloads nothing. `format`, `strict` and `force` as for `import`, kept for the
    /// refreshes. A download or parse failure changes nothing.
    fn import_url(
        &self,
        name: &str,
        url: &str,
        refresh_seconds: u32,
        format: &str,
        strict: bool,
        force: bool,
    ) -> Result<BlocklistInfo, Error>;

    /// Reads a downloaded list's address again now (conditionally, as a scheduled refresh
    /// does); a list imported from a file cannot be refreshed, only imported again.
    fn refresh(&self, name: &str) -> Result<BlocklistInfo, Error>;

    /// Every imported list.
    fn list(&self) -> Result<Vec<BlocklistInfo>, Error>;

    /// One imported list.
    fn show(&self, name: &str) -> Result<BlocklistInfo, Error>;

    /// Removes an imported list the live policy does not name.
    fn remove(&self, name: &str) -> Result<(), Error>;
}

/// `io.palisade.Helper1.Dns`: the DNS forwarder's log and the state of the names rules mention.
#[zbus::proxy(
    interface = "io.palisade.Helper1.Dns",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Dns {
    /// The state of every host name and wildcard the live policy's VM rules mention, and of the
    /// names the helper resolves itself (host-wide rules, remote consoles; their `vm` is
    /// `host`): addresses admitted by the last answer, when, and why the last lookup failed.
    /// polkit: `policy.read`.
    fn names(&self) -> Result<Vec<crate::types::DnsNameState>, Error>;

    /// The latest questions guests asked (at most 1000), of VM `vm` (all VMs when empty), only
    /// those after `after_seq` when `follow` is true (to follow the log, pass the last `seq`
    /// seen). polkit: `log.read`.
    fn log(
        &self,
        vm: &str,
        follow: bool,
        after_seq: u64,
    ) -> Result<Vec<crate::types::DnsEvent>, Error>;
}

/// `io.palisade.Helper1.Log`: the drop log. What the firewall's logged rules decided (every
/// rule with `log = true`, every VM's default action, console refusals), read from the
/// kernel's nflog by the helper, and every rule's packet and byte counters. polkit
/// `io.palisade.log.read`, with the VM asked about as the detail `vm` (empty for all), so a
/// polkit rule can let a VM's operator read that VM's entries only.
#[zbus::proxy(
    interface = "io.palisade.Helper1.Log",
    default_service = "io.palisade.Helper1",
    default_path = "/io/palisade/Helper1"
)]
pub trait Log {
    /// The logged packets of VM `vm` (all when empty) logged at or after `since_ms` (Unix
    /// milliseconds; 0 for all the helper keeps), oldest first, at most `max` (at most 10,000)
    /// of the latest.
    fn show(
        &self,
        vm: &str,
        since_ms: u64,
        max: u32,
    ) -> Result<Vec<crate::types::LoggedPacket>, Error>;

    /// The counters of VM `vm`'s rules (every rule's when empty: the host's and the console
    /// guard's too), read from the kernel now.
    fn counters(&self, vm: &str) -> Result<Vec<crate::types::RuleCounter>, Error>;

    /// Sends the caller `Logged` signals (addressed to the caller alone) with VM `vm`'s new
    /// entries (all when empty) until it calls `unfollow` or leaves the bus. Bursts are sent
    /// together, at most a few times a second.
    fn follow(&self, vm: &str) -> Result<(), Error>;

    /// Stops the caller's `Logged` signals (`vm` as given to `follow`, which polkit is asked
    /// about again).
    fn unfollow(&self, vm: &str) -> Result<(), Error>;

    /// New entries for a follower; `missed` counts entries lost since the last signal (the
    /// kernel's queue overflowed, or the follower's share of a flood was cut).
    #[zbus(signal)]
    fn logged(&self, packets: Vec<crate::types::LoggedPacket>, missed: u64) -> zbus::Result<()>;
}
