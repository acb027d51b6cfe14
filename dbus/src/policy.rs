//! The policy model: what an admin writes (TOML) and what the helper enforces.
//!
//! A document is read in two steps. `raw` mirrors the TOML loosely (integers as `i64`, names as
//! strings) and refuses unknown fields; `validate` turns it into the typed model below, collecting
//! every problem with its path rather than stopping at the first. Past `Policy::parse` no value can
//! be invalid, so the compiler and the QEMU supervisor never check again.

pub mod destination;
pub mod edit;
pub mod lab;
pub mod merge;
pub mod names;
pub mod ports;
mod raw;
mod shadow;
pub mod size;
mod validate;

use crate::types::Finding;
pub use destination::{Destination, Family};
pub use names::{AccountName, DiskName, HostName, ShortName, VmName};
pub use ports::{PortRange, PortSet};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Largest policy document the helper reads: well under the system bus's 32 MiB message limit, so
/// a too-large document gets this sentence instead of a cut connection. Big lists are imported
/// (`palisadectl blocklist import`), not written into the policy.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// Most networks a `[[blocklist]]` may list inline; bigger lists are imported
/// (`palisadectl blocklist import`) and named with `imported = true`.
pub const MAX_INLINE_ENTRIES: usize = 10_000;
/// Longest comment on a rule.
pub const MAX_COMMENT_CHARS: usize = 256;

/// A whole, valid policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// The virtual machines, each with its egress rules.
    pub vms: Vec<Vm>,
    /// Rules for every local process, VMs included, checked before any VM's own rules.
    pub host_rules: Vec<Rule>,
    /// Spice endpoints on other hosts, and who may reach them (console client role).
    pub remote_consoles: Vec<RemoteConsole>,
    /// Named address sets rules can refer to.
    pub blocklists: Vec<Blocklist>,
    /// Machine-wide settings.
    pub settings: Settings,
    /// Bridged lab networks.
    pub networks: Vec<lab::LabNetwork>,
}

/// Machine-wide settings (`[settings]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// How guests are run: KVM when it works, TCG otherwise, or forced.
    pub accel: Accel,
    /// Local TCP ports Spice displays are given from.
    pub spice_ports: PortRange,
    /// Earlier disk image versions kept after an update is promoted.
    pub versions_kept: u8,
    /// How long a console ticket (one-time Spice password) stays valid.
    pub console_ticket_seconds: u32,
    /// The DNS forwarder guests resolve through.
    pub dns: DnsSettings,
    /// The drop log.
    pub log: LogSettings,
    /// The metrics file for Prometheus' textfile collector.
    pub metrics: MetricsSettings,
    /// How changed drop-ins are applied.
    pub drop_ins: DropInSettings,
}

/// How the helper follows its drop-in folders (`[settings.drop_ins]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropInSettings {
    /// Reload by itself when a drop-in changes; when false only `Reload` (`palisadectl policy
    /// reload`, configuration management) applies them — what a play that wants its own
    /// confirmation window needs.
    pub watch: bool,
    /// The confirmation window of the watch's reloads (0: none).
    pub confirm_seconds: u32,
}

impl Default for DropInSettings {
    fn default() -> Self {
        Self {
            watch: true,
            confirm_seconds: 0,
        }
    }
}

/// The metrics file's settings (`[settings.metrics]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSettings {
    /// Where the helper keeps the Prometheus text file (written atomically after every
    /// generation change and every 15 s); none when not set.
    pub textfile: Option<std::path::PathBuf>,
}

/// The drop log's settings (`[settings.log]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    /// Keep the log in a file under the helper's state folder too, so it survives a restart.
    pub keep_on_disk: bool,
    /// Most bytes the file may take (two files of half this, the older dropped as the newer
    /// fills).
    pub disk_bytes: u64,
}

/// The drop log file's size when none is given, and the bounds of `disk_size`.
pub const LOG_DISK_DEFAULT: u64 = 8 << 20;
pub const LOG_DISK_MIN: u64 = 64 << 10;
pub const LOG_DISK_MAX: u64 = 1 << 30;

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            keep_on_disk: false,
            disk_bytes: LOG_DISK_DEFAULT,
        }
    }
}

/// The DNS forwarder's settings (`[settings.dns]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    /// Where the forwarder sends the questions it passes on.
    pub upstream: DnsUpstream,
    /// Shortest time an answered address stays admitted, whatever the answer's TTL: answers with
    /// a TTL of 0 or 1 must still admit the connection the guest opens next.
    pub ttl_floor_seconds: u32,
    /// Added to every admission, so a connection opened just before the TTL ends still passes.
    pub grace_seconds: u32,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            upstream: DnsUpstream::System,
            ttl_floor_seconds: 30,
            grace_seconds: 30,
        }
    }
}

/// Where the DNS forwarder asks. A failing upstream is reported, never replaced by another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsUpstream {
    /// The name servers of the host's `/etc/resolv.conf`, over UDP (TCP when an answer is
    /// truncated).
    System,
    /// One server, plain DNS over UDP and TCP.
    Server(std::net::SocketAddr),
    /// DNS over TLS (RFC 7858) to one server, whose certificate must name `name` and chain to
    /// the system's roots, or to the one CA in `ca` when given (pinned).
    Tls {
        /// The server's address (port 853, usually).
        server: std::net::SocketAddr,
        /// The name its certificate must carry.
        name: HostName,
        /// A PEM file with the only CA to trust instead of the system's roots.
        ca: Option<std::path::PathBuf>,
    },
    /// DNS over TCP to `server` through the SOCKS5 proxy at `proxy` (which resolves nothing
    /// itself: the forwarder names the server by address).
    Socks {
        /// The proxy, usually on this host.
        proxy: std::net::SocketAddr,
        /// The DNS server the proxy connects to.
        server: std::net::SocketAddr,
    },
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            accel: Accel::Auto,
            spice_ports: PortRange::new(5900, 5999).unwrap_or_else(|| unreachable!("5900 <= 5999")),
            versions_kept: 3,
            console_ticket_seconds: 60,
            dns: DnsSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            drop_ins: DropInSettings::default(),
        }
    }
}

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accel {
    /// KVM if a probe shows it works here, else TCG.
    Auto,
    /// Always KVM.
    Kvm,
    /// Always TCG (software emulation).
    Tcg,
}

/// One virtual machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// Its name, which also names its system user and firewall chain.
    pub name: VmName,
    /// Its disk image, a file in the VM's own image folder.
    pub disk: DiskName,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u8,
    /// How the guest reaches the network.
    pub network: NetworkMode,
    /// Its port on a lab network's bridge, for `NetworkMode::Bridge`.
    pub bridge: Option<lab::BridgePort>,
    /// Who may start, stop and attach devices.
    pub operators: Access,
    /// Who may open its console.
    pub console: Access,
    /// What happens to traffic no rule matched. Always logged.
    pub default_action: Verdict,
    /// Egress rules, first match wins.
    pub rules: Vec<Rule>,
    /// Whether the guest may resolve names, through the helper's DNS forwarder (which admits
    /// the addresses of names the rules mention as the guest learns them).
    pub dns: bool,
    /// Strict DNS: only names the VM's rules mention resolve; every other name is refused.
    pub strict_dns: bool,
    /// The host's SOCKS5 proxy port, which the guest reaches at 10.0.2.2; allowed by itself.
    pub socks_proxy: Option<u16>,
    /// The Spice display.
    pub display: Display,
    /// Boot a kernel directly instead of from the disk.
    pub kernel_boot: Option<KernelBoot>,
}

/// The Spice display of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Display {
    /// The emulated graphics card.
    pub video: Video,
    /// Copy and paste between guest and viewer (through the Spice agent).
    pub clipboard: bool,
    /// Spice over TLS, with a certificate from Palisade's own CA (which the ticket carries).
    pub tls: bool,
    /// The address Spice listens on: loopback unless other machines should reach it, which
    /// requires `tls`.
    pub address: std::net::IpAddr,
}

/// The emulated graphics card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Video {
    /// QXL, the classic Spice card.
    Qxl,
    /// virtio-gpu.
    Virtio,
}

/// Direct kernel boot: files in the VM's image folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelBoot {
    /// The kernel image.
    pub kernel: DiskName,
    /// The initial ramdisk, if any.
    pub initrd: Option<DiskName>,
    /// The kernel command line.
    pub cmdline: String,
}

/// Users and groups granted something.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Access {
    /// Local user names.
    pub users: Vec<AccountName>,
    /// Local group names; every member is granted.
    pub groups: Vec<AccountName>,
}

impl Access {
    /// Whether nobody is granted.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// How a guest reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// QEMU user-mode networking (slirp): guest traffic leaves as the VM's own UID.
    User,
    /// No network device at all.
    None,
    /// A port on a lab network's bridge, with its fixed MAC and address (`Vm::bridge`).
    Bridge,
}

/// What a rule does with the traffic it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Let it through (as far as this table is concerned).
    Accept,
    /// Discard it silently.
    Drop,
    /// Refuse it: TCP reset or ICMP unreachable, so programs fail fast.
    Reject,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        })
    }
}

/// Which transport a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// Every protocol.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (IPv4).
    Icmp,
    /// ICMPv6.
    Icmpv6,
}

impl Protocol {
    /// Whether the protocol has ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }

    /// The nftables name of the protocol, `None` for any.
    pub fn nft_name(self) -> Option<&'static str> {
        match self {
            Protocol::Any => None,
            Protocol::Tcp => Some("tcp"),
            Protocol::Udp => Some("udp"),
            Protocol::Icmp => Some("icmp"),
            Protocol::Icmpv6 => Some("icmpv6"),
        }
    }
}

/// One egress rule, in the Qubes firewall's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// What happens to matching traffic.
    pub action: Verdict,
    /// Where the traffic goes.
    pub destination: Destination,
    /// Which transport.
    pub protocol: Protocol,
    /// Destination ports (TCP/UDP only); `None` for every port.
    pub ports: Option<PortSet>,
    /// ICMP type (ICMP/ICMPv6 only); `None` for every type.
    pub icmp_type: Option<u8>,
    /// When the rule stops existing; `None` for never.
    pub expires: Option<SystemTime>,
    /// Log matching traffic.
    pub log: bool,
    /// The admin's note.
    pub comment: String,
    /// `enabled = false` keeps a rule in the document, and in its place in the numbering,
    /// while it decides nothing (the app shows it greyed).
    pub enabled: bool,
}

impl Rule {
    /// Whether the rule has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }

    /// Whether the rule decides packets at `now`: enabled and not expired.
    pub fn is_active(&self, now: SystemTime) -> bool {
        self.enabled && !self.is_expired(now)
    }

    /// Whether every packet `later` matches is matched by `self` too, so `later` never fires.
    pub fn covers(&self, later: &Rule) -> bool {
        let proto = self.protocol == Protocol::Any || self.protocol == later.protocol;
        let ports = match (&self.ports, &later.ports) {
            (None, _) => true,
            (Some(a), Some(b)) => a.contains(b),
            (Some(a), None) => a.is_all(),
        };
        let icmp = self.icmp_type.is_none() || self.icmp_type == later.icmp_type;
        self.enabled
            && self.expires.is_none()
            && proto
            && ports
            && icmp
            && self.destination.covers(&later.destination)
    }
}

/// A Spice endpoint on another host, for the console client role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConsole {
    /// Its name in lists and on the command line.
    pub name: ShortName,
    /// The server's address (a host name is resolved when the policy is applied).
    pub host: Destination,
    /// The Spice port (or TLS port when `tls`).
    pub port: u16,
    /// Whether the server speaks Spice over TLS.
    pub tls: bool,
    /// Who may connect.
    pub access: Access,
}

/// A named set of networks, matched in one lookup however large.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocklist {
    /// Its name, used by rules as `blocklist = "name"`.
    pub name: ShortName,
    /// The networks written in the policy (at most `MAX_INLINE_ENTRIES`); empty when imported.
    pub entries: Vec<ipnet::IpNet>,
    /// Its contents live in the helper's list store (`palisadectl blocklist import NAME ...`),
    /// loaded into the kernel on their own schedule; the policy only names it.
    pub imported: bool,
}

/// A policy that passed validation, with what validation still had to say.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The policy.
    pub policy: Policy,
    /// Warnings (shadowed rules, empty assignments, ...).
    pub warnings: Vec<Finding>,
}

impl Policy {
    /// Parses and validates a policy document. On failure every error is returned, each with
    /// its path; warnings come along with errors too, so one report shows everything.
    pub fn parse(document: &[u8]) -> Result<Parsed, Vec<Finding>> {
        validate::parse_document(document)
    }

    /// The VM with this name.
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.name.as_str() == name)
    }

    /// Number of rules, VMs and host together.
    pub fn rule_count(&self) -> usize {
        self.host_rules.len() + self.vms.iter().map(|v| v.rules.len()).sum::<usize>()
    }

    /// The earliest expiry still in the future, when the ruleset must be recompiled.
    pub fn next_expiry(&self, now: SystemTime) -> Option<SystemTime> {
        self.host_rules
            .iter()
            .chain(self.vms.iter().flat_map(|v| v.rules.iter()))
            .filter(|r| r.enabled)
            .filter_map(|r| r.expires)
            .filter(|t| *t > now)
            .min()
    }
}
