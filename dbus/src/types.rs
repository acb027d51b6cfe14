//! Plain data that crosses the bus. Every type here derives serde and `zbus::Type`; none carries
//! behaviour beyond formatting, so both sides read them the same way.

use serde::{Deserialize, Serialize};
use zbus::Type;

/// An enum that crosses the bus as one of a fixed set of words (zvariant signature `s`), with the
/// word for each variant written once: serde uses it on the wire, `as_str` in logs and files,
/// `parse` for arguments that arrive as strings and are read only after authorization.
macro_rules! wire_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Serialize, Deserialize, Type, PartialEq, Eq, Hash)]
        #[zbus(signature = "s")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the bus.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The variant whose word is `word`.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// A VM's state, from QEMU's own events.
    pub enum VmState {
        /// The helper is launching its QEMU.
        Starting = "starting",
        /// The guest runs.
        Running = "running",
        /// QEMU stopped the guest's CPUs (a `stop` or an error); it can resume.
        Paused = "paused",
        /// The guest asked to power off; QEMU is about to exit.
        ShuttingDown = "shutting down",
        /// No QEMU runs for it.
        ShutDown = "shut down",
        /// QEMU ended without being asked to, or the guest panicked.
        Crashed = "crashed",
        /// The helper does not know: a remote console, whose machine it cannot see.
        Unknown = "unknown",
    }
}

wire_enum! {
    /// How a run treats the VM's disk.
    pub enum RunMode {
        /// The base is read-only; writes go to a throw-away overlay.
        Ephemeral = "ephemeral",
        /// A new image version, written directly.
        Update = "update",
        /// A new image version plus an installer ISO to boot from.
        Install = "install",
    }
}

wire_enum! {
    /// Where a console's machine runs.
    pub enum ConsoleKind {
        /// A VM on this host.
        Local = "local",
        /// A Spice server on another host (the console client role).
        Remote = "remote",
    }
}

wire_enum! {
    /// Where a generation stands.
    pub enum GenerationState {
        /// In the kernel now, confirmed.
        Live = "live",
        /// In the kernel now, waiting for `Confirm` before its window runs out.
        Pending = "pending",
        /// Was live and confirmed; a later generation replaced it.
        Confirmed = "confirmed",
        /// Was pending and came out again: nobody confirmed it in time.
        Reverted = "reverted",
        /// Was pending when a later generation replaced it.
        Superseded = "superseded",
    }
}

wire_enum! {
    /// The part an image version plays.
    pub enum ImageRole {
        /// What a normal start boots.
        Base = "base",
        /// An earlier base, kept for `restore`.
        Kept = "kept",
        /// Being written by update mode, or finished and waiting for promote or discard.
        Update = "update",
    }
}

/// What `Status()` returns: is the helper healthy, and which generation is live.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct Status {
    /// The helper's version.
    pub version: String,
    /// The live policy generation (0 before the first apply).
    pub generation: u64,
    /// Unix time (seconds) until which the live generation waits for `Confirm`; 0 when confirmed.
    pub pending_until: u64,
    /// Number of VMs in the live policy.
    pub vms: u32,
    /// Number of rules in the live ruleset, all VMs together.
    pub rules: u32,
    /// Whether our table is present in the kernel right now.
    pub table_present: bool,
    /// A problem the admin should know about (corrupt policy file, ...), or empty.
    pub problem: String,
    /// Who made the live generation.
    pub source: GenerationSource,
    /// SHA-256 of the live generation's (merged) policy document, hex.
    pub policy_hash: String,
    /// Unix time the live generation was applied (0 before the first).
    pub applied_at: u64,
    /// Whether the drop-ins on disk say what is live.
    pub drift: Drift,
}

wire_enum! {
    /// Where a file of the policy comes from. The live policy is these files merged: drop-ins in
    /// file-name order across the vendor and admin folders, then the local policy.
    pub enum SourceKind {
        /// Shipped with a package (`/usr/lib/palisade/policy.d/*.toml`).
        Vendor = "vendor",
        /// Put in place by an admin or configuration management (`/etc/palisade/policy.d/*.toml`).
        Admin = "admin",
        /// The policy the app and `palisadectl policy apply` edit (`/etc/palisade/policy.toml`).
        Local = "local",
    }
}

/// One file of the live policy, as `Policy.Sources()` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct PolicySource {
    /// Its file name (`50-office.toml`, `policy.toml`).
    pub name: String,
    /// Where it comes from.
    pub kind: SourceKind,
    /// Its full path on the helper's machine.
    pub path: String,
    /// Its contents as they were when the live generation was made.
    pub document: String,
}

/// What `Policy.Sources()` returns.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct PolicySources {
    /// The live generation.
    pub generation: u64,
    /// Its files in merge order; merged with `policy::merge::merge` they give its document.
    pub sources: Vec<PolicySource>,
    /// Where admins and configuration management put drop-ins (`/etc/palisade/policy.d`).
    pub admin_dir: String,
    /// Where packages put theirs (`/usr/lib/palisade/policy.d`).
    pub vendor_dir: String,
    /// The local policy file (`/etc/palisade/policy.toml`).
    pub local_file: String,
}

wire_enum! {
    /// Who made a generation.
    pub enum GenerationSource {
        /// An admin in the app.
        App = "app",
        /// An admin with `palisadectl`.
        Palisadectl = "palisadectl",
        /// Another program on the bus.
        Other = "other",
        /// The drop-ins changed (the path watch, or `palisadectl policy reload`).
        DropIns = "drop-ins",
        /// The helper at start, adopting policy files changed while it was stopped.
        Boot = "boot",
        /// Made before generations recorded their source.
        Unrecorded = "unrecorded",
    }
}

wire_enum! {
    /// The program asking for an apply or a rollback, recorded with the generation it makes.
    pub enum Client {
        /// The Palisade app.
        App = "app",
        /// `palisadectl`.
        Palisadectl = "palisadectl",
        /// Anything else.
        Other = "other",
    }
}

impl Client {
    /// The generation source this client's generations record.
    pub fn source(self) -> GenerationSource {
        match self {
            Client::App => GenerationSource::App,
            Client::Palisadectl => GenerationSource::Palisadectl,
            Client::Other => GenerationSource::Other,
        }
    }
}

wire_enum! {
    /// Whether the live policy is what the drop-ins on disk say.
    pub enum Drift {
        /// It is.
        InSync = "in sync",
        /// The drop-ins on disk say something else: changed and not reloaded yet, refused when
        /// reloaded, or a rollback went back past them.
        Drifted = "drifted",
        /// The drop-ins cannot be read or do not merge; `Status.problem` says why.
        Unreadable = "unreadable",
    }
}

/// What `Policy.Check()` says about a candidate drop-in: whether the policy would still be
/// valid with it in place, and what would change.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct CandidateReport {
    /// Whether the merged policy with the candidate validates.
    pub valid: bool,
    /// Every finding, errors first; those about a drop-in name its file.
    pub findings: Vec<Finding>,
    /// Whether reloading with the candidate in place would make a new generation.
    pub changes: bool,
    /// Unified diff of the live merged policy document against the candidate's.
    pub policy_diff: String,
    /// Unified diff of the live ruleset against the candidate's (empty when invalid).
    pub ruleset_diff: String,
    /// SHA-256 of the merged document with the candidate, hex (empty when it does not merge).
    pub policy_hash: String,
}

/// What `Policy.Reload()` returns.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct Reloaded {
    /// Whether a new generation was made; false when the drop-ins say what is live.
    pub changed: bool,
    /// The generation live now, new or not.
    pub applied: Applied,
}

/// One entry of the generation history.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct GenerationInfo {
    /// The generation number, counting from 1.
    pub generation: u64,
    /// Unix time (seconds) it was applied.
    pub applied_at: u64,
    /// Uid of the caller who applied it (0 for the helper itself).
    pub author_uid: u32,
    /// Where it stands.
    pub state: GenerationState,
    /// Why it exists: `apply`, `rollback to N`, `boot`, ...
    pub origin: String,
    /// Who made it.
    pub source: GenerationSource,
    /// SHA-256 of its (merged) policy document, hex; empty for generations made before
    /// generations recorded it.
    pub policy_hash: String,
}

/// Severity of a validation finding.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Type, PartialEq, Eq)]
#[zbus(signature = "s")]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy cannot be applied.
    Error,
    /// The policy can be applied, but probably does not do what its author meant.
    Warning,
}

/// One finding of validation: where, how bad, and what to do about it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Where in the policy, e.g. `vm[work].rule[3].ports`.
    pub path: String,
    /// The sentence for the user.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What `Preview()` returns.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct Preview {
    /// The ruleset that would be applied, in nft syntax.
    pub ruleset: String,
    /// A unified diff of the live ruleset against `ruleset`.
    pub diff: String,
    /// Warnings found while validating (errors make `Preview` fail instead).
    pub warnings: Vec<Finding>,
}

/// What `Apply()` and `Rollback()` return.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct Applied {
    /// The generation now live.
    pub generation: u64,
    /// Unix time until which it waits for `Confirm`; 0 when it needs none.
    pub pending_until: u64,
    /// Open connections cut because the new ruleset refuses them.
    pub connections_cut: u32,
    /// Warnings found while validating.
    pub warnings: Vec<Finding>,
}

/// One VM as `Vms.List()` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct VmInfo {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: VmState,
    /// How it runs; for a VM that is not running, how a plain start runs it (ephemeral).
    pub mode: RunMode,
    /// The local TCP port of its Spice display (0 before the first start).
    pub spice_port: u16,
    /// The QEMU process id while running, else 0.
    pub pid: u32,
    /// The image version that is the base.
    pub base_version: u32,
    /// A finished update waiting for `promote` or `discard` (0 when none).
    pub pending_version: u32,
    /// Whether the caller may open its console.
    pub console_allowed: bool,
    /// Whether the caller may start, stop and reset it.
    pub may_operate: bool,
    /// Spice channels connected right now (a viewer opens several).
    pub viewer_channels: u32,
    /// How its guest reaches the network.
    pub network: VmNetwork,
}

wire_enum! {
    /// How a VM's guest reaches the network (the policy's `network`).
    pub enum VmNetworkMode {
        /// QEMU's user-mode networking (slirp).
        User = "user",
        /// No network device at all.
        None = "none",
        /// A port on a lab network's bridge.
        Bridge = "bridge",
    }
}

wire_enum! {
    /// The protocol of a forwarded port.
    pub enum ForwardProto {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
}

/// A port of a bridged VM's NAT address forwarded to the VM.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct PortForwardInfo {
    /// TCP or UDP.
    pub proto: ForwardProto,
    /// The port on the NAT address.
    pub port: u16,
    /// The port on the VM.
    pub to_port: u16,
}

/// How a VM is on the network, as `Vms.List()` and `Vms.Show()` return it. The fields after
/// `mode` are a bridged VM's; empty for the others.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct VmNetwork {
    /// User-mode, none, or bridged.
    pub mode: VmNetworkMode,
    /// The lab network (`[[network]]`) a bridged VM is on.
    pub lab: String,
    /// Its IPv4 address on that network.
    pub address: String,
    /// Its MAC address.
    pub mac: String,
    /// The host address it is reachable at and leaves from (its NAT); empty without one.
    pub nat_address: String,
    /// The ports of `nat_address` forwarded to it; empty with a NAT address: every port.
    pub forwards: Vec<PortForwardInfo>,
}

/// One disk image version of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct ImageVersion {
    /// The version number.
    pub version: u32,
    /// Unix seconds it was created.
    pub created_at: u64,
    /// The part it plays.
    pub role: ImageRole,
    /// Size on disk, bytes.
    pub bytes: u64,
}

/// A USB device of the host.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct UsbDevice {
    /// Bus number.
    pub bus: u8,
    /// Address on the bus.
    pub address: u8,
    /// Vendor id.
    pub vendor_id: u16,
    /// Product id.
    pub product_id: u16,
    /// Manufacturer name as the device reports it.
    pub manufacturer: String,
    /// Product name as the device reports it.
    pub product: String,
}

/// A device attached to a running VM.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct AttachedDevice {
    /// The id to detach it by.
    pub id: String,
    /// What it is (`usb-host 1.4 046d:c52b Logitech USB Receiver`, `usb-tablet`), for people.
    pub description: String,
}

/// What `Vms.Show()` returns: everything Palisade does for this VM, in plain text.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct VmDetails {
    /// The exact QEMU command line (the running one, or the one the next start would use).
    pub command_line: Vec<String>,
    /// The firewall chain that applies to the VM's traffic.
    pub firewall_chain: String,
    /// How its guest reaches the network.
    pub network: VmNetwork,
}

/// A console the caller may open (`Consoles.List()`).
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct ConsoleInfo {
    /// The VM's or remote console's name.
    pub name: String,
    /// A VM on this host, or a Spice server elsewhere.
    pub kind: ConsoleKind,
    /// A local VM's state; `Unknown` for remote consoles.
    pub state: VmState,
    /// Where the viewer connects.
    pub host: String,
    /// The Spice port (the TLS port when `tls`).
    pub port: u16,
    /// Whether the connection uses TLS.
    pub tls: bool,
}

/// What a viewer needs to connect once (`Consoles.Open()`).
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct ConsoleTicket {
    /// The console's name (the viewer's title).
    pub name: String,
    /// Where to connect.
    pub host: String,
    /// The Spice port.
    pub port: u16,
    /// A one-time password; empty for remote consoles (the user types the remote's own).
    pub password: String,
    /// Unix seconds after which the password no longer works; 0 when there is none.
    pub expires_at: u64,
    /// Whether to use TLS.
    pub tls: bool,
    /// PEM of the CA that signed the server's certificate, when `tls`.
    pub ca_pem: String,
}

wire_enum! {
    /// Where an imported list comes from.
    pub enum ListSourceKind {
        /// A file an admin handed over.
        File = "file",
        /// A URL the helper fetches on a schedule.
        Url = "url",
    }
}

/// A line of an imported list that was skipped.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct ListProblem {
    /// Its line number, from 1.
    pub line: u64,
    /// Why, as a sentence.
    pub reason: String,
    /// The line, cleaned of control characters and shortened.
    pub text: String,
}

/// An imported list, as `Blocklists.List()` and `Show()` return it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct BlocklistInfo {
    /// Its name, which the policy uses.
    pub name: String,
    /// File or URL.
    pub source_kind: ListSourceKind,
    /// The file's label (its name when imported) or the URL.
    pub source: String,
    /// The format it is read as.
    pub format: String,
    /// Whether one bad line refuses the whole list.
    pub strict: bool,
    /// Merged address ranges, both families.
    pub ranges: u64,
    /// IPv4 addresses covered.
    pub addresses_v4: u64,
    /// IPv6 addresses covered, in decimal (more than 64 bits).
    pub addresses_v6: String,
    /// Domain names (they take effect through the DNS forwarder).
    pub domains: u64,
    /// Lines the source had.
    pub lines: u64,
    /// Unix seconds of the first import.
    pub imported_at: u64,
    /// Unix seconds the source was last read.
    pub refreshed_at: u64,
    /// The first lines skipped, with why.
    pub problems: Vec<ListProblem>,
    /// Lines skipped beyond those.
    pub problems_not_listed: u64,
    /// `sha256:` and the hash of the merged contents.
    pub content_hash: String,
    /// Whether the live policy names it.
    pub in_use: bool,
    /// Seconds between scheduled downloads of a URL list; 0 for never and for a file.
    pub refresh_seconds: u64,
}

wire_enum! {
    /// Whose rule decided a logged packet.
    pub enum LogOwner {
        /// A VM's own rules (or its default action).
        Vm = "vm",
        /// The host-wide rules.
        Host = "host",
        /// The console guard: a local user reached for a console they may not open.
        Console = "console",
    }
}

wire_enum! {
    /// Which kind of rule of its owner.
    pub enum LoggedRuleKind {
        /// Numbered rules of the policy (`first_rule` to `last_rule`).
        Numbered = "numbered",
        /// The VM's default action.
        Default = "default",
        /// The console guard's refusal.
        Refused = "refused",
        /// A lab VM's port guard: a frame from its port with a MAC, address or kind not its own.
        Spoofing = "spoofing",
    }
}

wire_enum! {
    /// What a rule did with a packet.
    pub enum PacketVerdict {
        /// Let it through.
        Accept = "accept",
        /// Discarded it.
        Drop = "drop",
        /// Refused it (TCP reset, ICMP unreachable).
        Reject = "reject",
    }
}

/// Which rule of the live policy: who owns it and its numbers.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq, Hash)]
pub struct LoggedRule {
    /// Whose rule.
    pub owner: LogOwner,
    /// The VM, for `Vm`; empty otherwise.
    pub vm: String,
    /// Which kind of rule.
    pub kind: LoggedRuleKind,
    /// For `Numbered`: the rule's number (1-based), or the first and last of rules merged into
    /// one; 0 otherwise.
    pub first_rule: u32,
    pub last_rule: u32,
    /// What the rule does.
    pub verdict: PacketVerdict,
}

impl std::fmt::Display for LoggedRule {
    /// `vm web rule 3 (drop)`, `host rules 2-4 (reject)`, `vm web default (drop)`, `console
    /// guard (reject)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.owner {
            LogOwner::Vm => write!(f, "vm {} ", self.vm)?,
            LogOwner::Host => f.write_str("host ")?,
            LogOwner::Console => f.write_str("console ")?,
        }
        match self.kind {
            LoggedRuleKind::Numbered if self.first_rule == self.last_rule => {
                write!(f, "rule {}", self.first_rule)?
            }
            LoggedRuleKind::Numbered => write!(f, "rules {}-{}", self.first_rule, self.last_rule)?,
            LoggedRuleKind::Default => f.write_str("default")?,
            LoggedRuleKind::Refused => f.write_str("guard")?,
            LoggedRuleKind::Spoofing => f.write_str("port guard")?,
        }
        write!(f, " ({})", self.verdict)
    }
}

/// One packet a logged rule decided, for `palisadectl log` and the app's Activity page.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct LoggedPacket {
    /// Its place in the log (the helper's count, kept across restarts with the file log).
    pub seq: u64,
    /// When the kernel logged it, Unix milliseconds.
    pub at_ms: u64,
    /// The rule.
    pub rule: LoggedRule,
    /// The VM whose process sent it (by its socket's owner), or empty.
    pub vm: String,
    /// The local user whose process sent it (a user's name, or `#uid` for a uid without one),
    /// or empty when no local socket sent it.
    pub user: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, or the protocol's number.
    pub protocol: String,
    /// Source and destination addresses.
    pub source: String,
    pub destination: String,
    /// Ports of TCP and UDP packets; 0 for other protocols.
    pub source_port: u16,
    pub destination_port: u16,
    /// The packet's length in bytes (its IP header's total).
    pub length: u32,
    /// The source MAC of a frame a lab VM's port guard dropped, `52:54:00:..`; empty for routed
    /// packets (their MAC says nothing about who sent them). Absent in older file logs.
    #[serde(default)]
    pub source_mac: String,
}

/// One rule's counter, for `palisadectl log counters` and the app's rule rows.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct RuleCounter {
    /// The rule.
    pub rule: LoggedRule,
    /// Packets and bytes it decided since it took its present form (an unchanged rule keeps
    /// counting across generations; a changed one starts again).
    pub packets: u64,
    pub bytes: u64,
    /// When it last decided a packet, Unix seconds, as far as the helper saw (its log entries,
    /// and its counter read every few seconds); 0 when it has not since the helper started.
    pub last_hit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::wire::{serialized::Context, to_bytes, LE};
    use zbus::zvariant::Type;

    #[test]
    fn wire_enums_travel_as_their_words() {
        let ctxt = Context::new(LE, 0);
        for state in VmState::ALL {
            assert_eq!(VmState::SIGNATURE, "s");
            let bytes = to_bytes(ctxt, state).expect("serialize");
            let (back, _): (VmState, _) = bytes.deserialize().expect("deserialize");
            assert_eq!(back, *state);
            let (word, _): (String, _) = bytes.deserialize().expect("a string");
            assert_eq!(word, state.as_str());
            assert_eq!(VmState::parse(&word), Some(*state));
        }
        assert_eq!(RunMode::parse("update"), Some(RunMode::Update));
        assert_eq!(RunMode::parse("Update"), None);
        assert_eq!(GenerationState::ALL.len(), 5);
        assert_eq!(ConsoleKind::Remote.to_string(), "remote");
        assert_eq!(ImageRole::parse("kept"), Some(ImageRole::Kept));
    }
}

wire_enum! {
    /// What the DNS forwarder did with one question.
    pub enum DnsOutcome {
        /// Passed on and answered; the name is no rule's, so nothing was admitted.
        Answered = "answered",
        /// Answered after the answered addresses were put in the VM's sets.
        Admitted = "admitted",
        /// A domain list the VM's rules block names it: answered NXDOMAIN.
        Blocked = "blocked",
        /// Strict mode, or a name browsers ask to learn whether DoH is allowed: not passed on.
        Refused = "refused",
        /// The upstream failed, or the firewall did not take the addresses: answered SERVFAIL.
        Failed = "failed",
    }
}

/// One question a guest asked, for `palisadectl dns log`.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct DnsEvent {
    /// Its place in the log: ask for events after the last one seen to follow it.
    pub seq: u64,
    /// When, in Unix seconds.
    pub at: u64,
    /// The VM that asked.
    pub vm: String,
    /// The name asked, lower case.
    pub name: String,
    /// The record type asked for (`A`, `AAAA`, `MX`, ...).
    pub kind: String,
    /// What happened.
    pub outcome: DnsOutcome,
    /// The addresses admitted (empty unless `Admitted`).
    pub admitted: Vec<String>,
    /// The VM's rules (1-based) that admitted them, or the list that blocked the name.
    pub rules: Vec<u32>,
    /// Words for people: the blocking list, the upstream's error, the answer's code.
    pub detail: String,
    /// How long the kernel took to take the admitted addresses, in microseconds (the answer
    /// waited that long; 0 when nothing was admitted).
    pub admit_us: u64,
}

/// The state of one host name or wildcard a VM's rules name, for status and the app's rule rows.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq, Eq)]
pub struct DnsNameState {
    /// The VM, or `host` for a name the helper resolves itself (host-wide rules, the rules of
    /// VMs without the forwarder, remote consoles).
    pub vm: String,
    /// The name or `*.domain`.
    pub pattern: String,
    /// The VM's rules (1-based) naming it.
    pub rules: Vec<u32>,
    /// Addresses admitted by the last answer that had some.
    pub addresses: Vec<String>,
    /// When the last answer came, Unix seconds (0: never asked yet).
    pub last_answer_at: u64,
    /// Why the last lookup failed, empty when it did not: this name's rule admits nothing new
    /// while it fails, and only this rule is affected.
    pub problem: String,
}
