//! From a raw document to a typed `Policy`, collecting every problem with its path.
//!
//! Paths read like the document: `vm[work].rule[3].ports`, rules counted from 1 as the list
//! view shows them. A VM whose name is itself invalid is addressed by position (`vm#2`).

use super::names::quote;
use super::ports::{self, PortSet, MAX_RANGES};
use super::raw::*;
use super::*;
use crate::types::Severity;
use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

/// Most VMs a policy may declare.
const MAX_VMS: usize = 512;

mod lab;
/// Most users or groups in one access list.
const MAX_ACCOUNTS: usize = 1024;
/// Most memory a VM may ask for (1 TiB), in MiB.
const MAX_MEMORY_MIB: i64 = 1024 * 1024;
/// Most virtual CPUs.
const MAX_CPUS: i64 = 64;

pub(super) fn parse_document(document: &[u8]) -> Result<Parsed, Vec<Finding>> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(vec![error(
            "policy",
            format!(
                "the document is {} bytes; the most Palisade reads is {MAX_DOCUMENT_BYTES}",
                document.len()
            ),
        )]);
    }
    let text = std::str::from_utf8(document).map_err(|e| {
        vec![error(
            "policy",
            format!(
                "the document is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )]
    })?;
    let raw = read_toml(text).map_err(|f| vec![f])?;
    let mut v = Validator::default();
    let policy = v.policy(raw);
    if v.errors.is_empty() {
        Ok(Parsed {
            policy,
            warnings: v.warnings,
        })
    } else {
        let mut all = v.errors;
        all.extend(v.warnings);
        Err(all)
    }
}

fn read_toml(text: &str) -> Result<RawPolicy, Finding> {
    let located = |e: &toml::de::Error| {
        e.span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default()
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| error("policy", format!("{}{}", e.message().trim(), located(&e))))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "policy".to_owned()
        } else {
            path
        };
        let inner = e.into_inner();
        error(
            &path,
            format!("{}{}", inner.message().trim(), located(&inner)),
        )
    })
}

fn error(path: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        path: path.to_owned(),
        message,
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Validator {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(error(path, message.into()));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Finding {
            severity: Severity::Warning,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Runs a parser, recording its sentence at `path` on failure.
    fn check<T>(&mut self, path: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.error(path, e)).ok()
    }

    /// [`Self::check`] for field `field` of the item at `path`, whose path is written only on
    /// failure: a rule's six fields would otherwise cost six strings per rule (10,000 rules).
    fn check_field<T>(&mut self, path: &str, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.error(&format!("{path}.{field}"), e))
            .ok()
    }

    fn policy(&mut self, raw: RawPolicy) -> Policy {
        let networks = self.networks(raw.network);
        let blocklists = self.blocklists(raw.blocklist);
        let known: HashSet<String> = blocklists.iter().map(|b| b.name.to_string()).collect();
        if raw.vm.len() > MAX_VMS {
            self.error(
                "vm",
                format!("{} VMs declared; the most is {MAX_VMS}", raw.vm.len()),
            );
        }
        let mut seen = HashSet::new();
        let mut vms = Vec::new();
        for (i, rv) in raw.vm.into_iter().enumerate() {
            let path = match VmName::parse(&rv.name) {
                Ok(n) => format!("vm[{n}]"),
                Err(_) => format!("vm#{}", i + 1),
            };
            if !seen.insert(rv.name.clone()) {
                self.error(
                    &path,
                    format!("the VM name {} is used twice", quote(&rv.name)),
                );
            }
            if let Some(vm) = self.vm(&path, rv, &known) {
                vms.push(vm);
            }
        }
        self.lab_addresses(&networks, &vms);
        let host_rules = numbered_out(self.rules("host_rule", raw.host_rule, &known));
        let remote_consoles = self.remote_consoles(raw.remote_console);
        let settings = self.settings(raw.settings);
        Policy {
            networks,
            vms,
            host_rules,
            remote_consoles,
            blocklists,
            settings,
        }
    }

    fn vm(&mut self, path: &str, rv: RawVm, blocklists: &HashSet<String>) -> Option<Vm> {
        let name = self.check(&format!("{path}.name"), VmName::parse(&rv.name));
        let disk = match rv.disk {
            Some(d) => self.check(&format!("{path}.disk"), DiskName::parse(&d)),
            None => name
                .as_ref()
                .and_then(|n| DiskName::parse(&format!("{n}.qcow2")).ok()),
        };
        let memory_mib = self.memory(&format!("{path}.memory"), rv.memory);
        let cpus = match rv.cpus.unwrap_or(1) {
            n @ 1..=MAX_CPUS => u8::try_from(n).ok(),
            n => {
                self.error(
                    &format!("{path}.cpus"),
                    format!("{n} CPUs: give 1 to {MAX_CPUS}"),
                );
                None
            }
        };
        let network = match rv.network.as_deref().unwrap_or("user") {
            "user" => Some(NetworkMode::User),
            "none" => Some(NetworkMode::None),
            "bridge" => Some(NetworkMode::Bridge),
            other => {
                self.error(
                    &format!("{path}.network"),
                    format!(
                        "{} is not a network mode: use \"user\", \"bridge\" or \"none\"",
                        quote(other)
                    ),
                );
                None
            }
        };
        let bridge = self.bridge_port(
            path,
            network,
            lab::PortFields {
                bridge: &rv.bridge,
                address: &rv.address,
                mac: &rv.mac,
                nat: &rv.nat,
            },
            name.as_ref(),
        );
        let operators = self.access(&format!("{path}.operators"), rv.operators);
        let console = self.access(&format!("{path}.console"), rv.console);
        let default_action = match rv.default.as_deref() {
            None => Some(Verdict::Drop),
            Some(s) => self.check(&format!("{path}.default"), verdict(s)),
        };
        let rules = self.rules(&format!("{path}.rule"), rv.rule, blocklists);
        if rv.dns != Some(true) {
            // By the rule's number in the document: an invalid rule before it is left out of
            // `rules` but keeps its place in the numbering.
            for (number, rule) in &rules {
                if let Destination::Host(_) | Destination::Wildcard(_) = &rule.destination {
                    self.warn(
                        &format!("{path}.rule[{number}]"),
                        format!(
                            "the addresses of {} are learned from this VM's own lookups through \
                             Palisade: add dns = true, or this rule matches nothing",
                            rule.destination
                        ),
                    );
                }
            }
        }
        let socks_proxy = rv
            .socks_proxy
            .and_then(|p| self.check(&format!("{path}.socks_proxy"), ports::port_from_int(p)));
        let video = match rv.display.video.as_deref().unwrap_or("qxl") {
            "qxl" => Some(Video::Qxl),
            "virtio" => Some(Video::Virtio),
            other => {
                self.error(
                    &format!("{path}.display.video"),
                    format!(
                        "{} is not a video card: use \"qxl\" or \"virtio\"",
                        quote(other)
                    ),
                );
                None
            }
        };
        let kernel_boot = self.kernel_boot(path, rv.kernel, rv.initrd, rv.cmdline);
        let display_address = self.display_address(
            &format!("{path}.display.address"),
            rv.display.address.as_deref(),
            rv.display.tls.unwrap_or(false),
        );
        if operators.is_empty() && console.is_empty() {
            self.warn(
                path,
                "nobody but administrators may operate this VM or open its console",
            );
        }
        Some(Vm {
            name: name?,
            disk: disk?,
            memory_mib: memory_mib?,
            cpus: cpus?,
            network: network?,
            bridge: bridge?,
            operators,
            console,
            default_action: default_action?,
            rules: numbered_out(rules),
            dns: rv.dns.unwrap_or(false),
            strict_dns: self.strict_dns(path, rv.dns, rv.strict_dns),
            socks_proxy,
            display: Display {
                video: video?,
                clipboard: rv.display.clipboard.unwrap_or(false),
                tls: rv.display.tls.unwrap_or(false),
                address: display_address?,
            },
            kernel_boot: kernel_boot?,
        })
    }

    /// `Some(None)` for no kernel boot, `None` when there was an error.
    fn kernel_boot(
        &mut self,
        path: &str,
        kernel: Option<String>,
        initrd: Option<String>,
        cmdline: Option<String>,
    ) -> Option<Option<KernelBoot>> {
        let Some(kernel) = kernel else {
            if initrd.is_some() || cmdline.is_some() {
                self.error(path, "initrd and cmdline need a kernel");
                return None;
            }
            return Some(None);
        };
        let kernel = self.check(&format!("{path}.kernel"), DiskName::parse(&kernel));
        let initrd = match initrd {
            Some(i) => Some(self.check(&format!("{path}.initrd"), DiskName::parse(&i))?),
            None => None,
        };
        let cmdline = cmdline.unwrap_or_default();
        if cmdline.len() > 1024 || !cmdline.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            self.error(
                &format!("{path}.cmdline"),
                "a kernel command line is printable ASCII, at most 1024 characters",
            );
            return None;
        }
        Some(Some(KernelBoot {
            kernel: kernel?,
            initrd,
            cmdline,
        }))
    }

    /// Where Spice listens: one specific address; anything but loopback needs TLS, because the
    /// password would otherwise cross the network in the clear.
    fn display_address(
        &mut self,
        path: &str,
        raw: Option<&str>,
        tls: bool,
    ) -> Option<std::net::IpAddr> {
        let Some(text) = raw else {
            return Some(std::net::IpAddr::from([127, 0, 0, 1]));
        };
        let Ok(addr) = text.parse::<std::net::IpAddr>() else {
            self.error(path, format!("{} is not an IP address", quote(text)));
            return None;
        };
        if addr.is_unspecified() || addr.is_multicast() {
            self.error(
                path,
                "give the one address Spice should listen on, not a wildcard",
            );
            return None;
        }
        if !addr.is_loopback() && !tls {
            self.error(
                path,
                "Spice on an address other machines can reach needs display.tls = true",
            );
            return None;
        }
        Some(addr)
    }

    fn settings(&mut self, raw: RawSettings) -> Settings {
        let mut s = Settings::default();
        match raw.accel.as_deref() {
            None | Some("auto") => {}
            Some("kvm") => s.accel = Accel::Kvm,
            Some("tcg") => s.accel = Accel::Tcg,
            Some(other) => self.error(
                "settings.accel",
                format!(
                    "{} is not an accelerator: use \"auto\", \"kvm\" or \"tcg\"",
                    quote(other)
                ),
            ),
        }
        if let Some(r) = raw.spice_ports {
            match ports::ranges_from_str(&r).as_deref() {
                Ok([one]) if one.last() - one.first() < 4096 => s.spice_ports = *one,
                Ok(_) => self.error(
                    "settings.spice_ports",
                    "give one range of at most 4096 ports, like \"5900-5999\"",
                ),
                Err(e) => self.error("settings.spice_ports", e.clone()),
            }
        }
        match raw.versions_kept {
            None => {}
            Some(n @ 1..=100) => s.versions_kept = u8::try_from(n).unwrap_or(3),
            Some(n) => self.error(
                "settings.versions_kept",
                format!("{n}: keep 1 to 100 earlier versions"),
            ),
        }
        s.dns = self.dns_settings(raw.dns);
        s.log = self.log_settings(raw.log);
        if let Some(watch) = raw.drop_ins.watch {
            s.drop_ins.watch = watch;
        }
        match raw.drop_ins.confirm_seconds {
            None => {}
            Some(n @ 0..=86_400) => s.drop_ins.confirm_seconds = u32::try_from(n).unwrap_or(0),
            Some(n) => self.error(
                "settings.drop_ins.confirm_seconds",
                format!("{n} s: a confirmation window lasts 0 to 86400 seconds"),
            ),
        }
        if let Some(path) = raw.metrics.textfile {
            s.metrics.textfile = self.check("settings.metrics.textfile", textfile_path(&path));
        }
        match raw.console_ticket_seconds {
            None => {}
            Some(n @ 5..=3600) => s.console_ticket_seconds = u32::try_from(n).unwrap_or(60),
            Some(n) => self.error(
                "settings.console_ticket_seconds",
                format!("{n} s: a console ticket lasts 5 to 3600 seconds"),
            ),
        }
        s
    }

    fn strict_dns(&mut self, path: &str, dns: Option<bool>, strict: Option<bool>) -> bool {
        let strict = strict.unwrap_or(false);
        if strict && dns != Some(true) {
            self.error(
                &format!("{path}.strict_dns"),
                "strict DNS needs the guest to resolve through Palisade: add dns = true",
            );
        }
        strict
    }

    fn log_settings(&mut self, raw: RawLogSettings) -> LogSettings {
        let mut l = LogSettings {
            keep_on_disk: raw.keep_on_disk.unwrap_or(false),
            ..LogSettings::default()
        };
        if let Some(text) = raw.disk_size {
            match size::parse_size(&text, size::BareUnit::Bytes) {
                Some(n) if (LOG_DISK_MIN..=LOG_DISK_MAX).contains(&n) => l.disk_bytes = n,
                _ => self.error(
                    "settings.log.disk_size",
                    format!("{}: give a size from 64K to 1G, like \"8M\"", quote(&text)),
                ),
            }
        }
        l
    }

    fn dns_settings(&mut self, raw: RawDnsSettings) -> DnsSettings {
        let mut d = DnsSettings::default();
        let mut seconds = |field: &str, value: Option<i64>, most: i64, default: u32| match value {
            None => default,
            Some(n) if (0..=most).contains(&n) => u32::try_from(n).unwrap_or(default),
            Some(n) => {
                self.error(
                    &format!("settings.dns.{field}"),
                    format!("{n} s: give 0 to {most} seconds"),
                );
                default
            }
        };
        d.ttl_floor_seconds = seconds("ttl_floor_seconds", raw.ttl_floor_seconds, 86_400, 30);
        d.grace_seconds = seconds("grace_seconds", raw.grace_seconds, 3_600, 30);
        let server = self.socket_address("settings.dns.server", raw.server.as_deref());
        let unused = |this: &mut Self, field: &str, value: &Option<String>, kind: &str| {
            if value.is_some() {
                this.error(
                    &format!("settings.dns.{field}"),
                    format!("{field} is only read with upstream = {kind}"),
                );
            }
        };
        match raw.upstream.as_deref() {
            None | Some("system") => {
                unused(
                    self,
                    "server",
                    &raw.server,
                    "\"server\", \"tls\" or \"socks\"",
                );
                unused(self, "tls_name", &raw.tls_name, "\"tls\"");
                unused(self, "tls_ca", &raw.tls_ca, "\"tls\"");
                unused(self, "socks_proxy", &raw.socks_proxy, "\"socks\"");
            }
            Some("server") => {
                unused(self, "tls_name", &raw.tls_name, "\"tls\"");
                unused(self, "tls_ca", &raw.tls_ca, "\"tls\"");
                unused(self, "socks_proxy", &raw.socks_proxy, "\"socks\"");
                if let Some(server) = self.required(server, "settings.dns.server", "server") {
                    d.upstream = DnsUpstream::Server(server);
                }
            }
            Some("tls") => {
                unused(self, "socks_proxy", &raw.socks_proxy, "\"socks\"");
                let name = match raw.tls_name.as_deref().map(HostName::parse) {
                    Some(Ok(n)) => Some(n),
                    Some(Err(e)) => {
                        self.error("settings.dns.tls_name", e);
                        None
                    }
                    None => {
                        self.error(
                            "settings.dns.tls_name",
                            "DNS over TLS needs the name the server's certificate carries \
                             (tls_name = \"dns.example.net\")",
                        );
                        None
                    }
                };
                let ca = match raw.tls_ca.as_deref() {
                    None => Some(None),
                    Some(p)
                        if p.starts_with('/')
                            && !p.split('/').any(|c| c == "..")
                            && p.len() < 4096
                            && !p.contains('\0') =>
                    {
                        Some(Some(std::path::PathBuf::from(p)))
                    }
                    Some(p) => {
                        self.error(
                            "settings.dns.tls_ca",
                            format!("{} is not an absolute path to a PEM file", quote(p)),
                        );
                        None
                    }
                };
                if let (Some(server), Some(name), Some(ca)) = (
                    self.required(server, "settings.dns.server", "tls"),
                    name,
                    ca,
                ) {
                    d.upstream = DnsUpstream::Tls { server, name, ca };
                }
            }
            Some("socks") => {
                unused(self, "tls_name", &raw.tls_name, "\"tls\"");
                unused(self, "tls_ca", &raw.tls_ca, "\"tls\"");
                let proxy =
                    self.socket_address("settings.dns.socks_proxy", raw.socks_proxy.as_deref());
                let proxy = match proxy {
                    Ok(Some(p)) => Some(p),
                    Ok(None) => {
                        self.error(
                            "settings.dns.socks_proxy",
                            "DNS through SOCKS5 needs the proxy's address (socks_proxy = \"127.0.0.1:1080\")",
                        );
                        None
                    }
                    Err(()) => None,
                };
                if let (Some(server), Some(proxy)) =
                    (self.required(server, "settings.dns.server", "socks"), proxy)
                {
                    d.upstream = DnsUpstream::Socks { proxy, server };
                }
            }
            Some(other) => self.error(
                "settings.dns.upstream",
                format!(
                    "{} is not an upstream: use \"system\", \"server\", \"tls\" or \"socks\"",
                    quote(other)
                ),
            ),
        }
        d
    }

    /// `Ok(None)` when absent, `Err(())` (already reported) when malformed.
    fn socket_address(
        &mut self,
        path: &str,
        raw: Option<&str>,
    ) -> Result<Option<std::net::SocketAddr>, ()> {
        match raw.map(str::parse::<std::net::SocketAddr>) {
            None => Ok(None),
            Some(Ok(a)) => Ok(Some(a)),
            Some(Err(_)) => {
                self.error(
                    path,
                    format!(
                        "{} is not an address with a port, like \"192.0.2.53:53\" or \"[2001:db8::53]:853\"",
                        quote(raw.unwrap_or_default())
                    ),
                );
                Err(())
            }
        }
    }

    fn required(
        &mut self,
        value: Result<Option<std::net::SocketAddr>, ()>,
        path: &str,
        kind: &str,
    ) -> Option<std::net::SocketAddr> {
        match value {
            Ok(Some(a)) => Some(a),
            Ok(None) => {
                self.error(
                    path,
                    format!("upstream = \"{kind}\" needs the server's address (server = \"192.0.2.53:53\")"),
                );
                None
            }
            Err(()) => None,
        }
    }

    fn memory(&mut self, path: &str, raw: Option<RawSize>) -> Option<u32> {
        let mib = match raw {
            None => Some(1024),
            Some(RawSize::Mib(n)) => Some(n),
            Some(RawSize::Text(t)) => parse_size_mib(&t),
        };
        match mib {
            Some(n @ 16..=MAX_MEMORY_MIB) => u32::try_from(n).ok(),
            Some(n) => {
                self.error(path, format!("{n} MiB of memory: give 16 MiB to 1 TiB"));
                None
            }
            None => {
                self.error(
                    path,
                    "write memory in MiB (2048) or with a unit (\"2G\", \"512M\")",
                );
                None
            }
        }
    }

    fn access(&mut self, path: &str, raw: RawAccess) -> Access {
        let mut list = |what: &str, names: Vec<String>| -> Vec<AccountName> {
            if names.len() > MAX_ACCOUNTS {
                self.error(
                    &format!("{path}.{what}"),
                    format!("the most is {MAX_ACCOUNTS} names"),
                );
                return Vec::new();
            }
            names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    self.check(&format!("{path}.{what}[{}]", i + 1), AccountName::parse(n))
                })
                .collect()
        };
        let users = list("users", raw.users);
        let groups = list("groups", raw.groups);
        Access { users, groups }
    }

    /// The valid rules of a list, each with its 1-based number in the document.
    fn rules(
        &mut self,
        path: &str,
        raw: Vec<RawRule>,
        blocklists: &HashSet<String>,
    ) -> Vec<(usize, Rule)> {
        let rules: Vec<(usize, Rule)> = raw
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let p = format!("{path}[{}]", i + 1);
                self.rule(&p, r, blocklists).map(|r| (i + 1, r))
            })
            .collect();
        for (later, earlier) in super::shadow::shadowed(&rules) {
            self.warn(
                &format!("{path}[{later}]"),
                format!(
                    "this rule can never match: rule {earlier} above it already matches \
                     everything it does"
                ),
            );
        }
        rules
    }

    fn rule(&mut self, path: &str, r: RawRule, blocklists: &HashSet<String>) -> Option<Rule> {
        let action = self.check_field(path, "action", verdict(&r.action));
        let targets = [
            r.destination.is_some(),
            r.special_target.is_some(),
            r.blocklist.is_some(),
        ];
        if targets.iter().filter(|t| **t).count() > 1 {
            self.error(
                path,
                "give only one of destination, special_target and blocklist",
            );
            return None;
        }
        let destination = if let Some(d) = &r.destination {
            self.check_field(path, "destination", Destination::parse(d))
        } else if let Some(s) = &r.special_target {
            match s.as_str() {
                "dns" => Some(Destination::Dns),
                other => {
                    self.error(
                        &format!("{path}.special_target"),
                        format!(
                            "{} is not a special target: the only one is \"dns\"",
                            quote(other)
                        ),
                    );
                    None
                }
            }
        } else if let Some(b) = &r.blocklist {
            let p = format!("{path}.blocklist");
            match self.check(&p, ShortName::parse(b)) {
                Some(n) if blocklists.contains(n.as_str()) => Some(Destination::Blocklist(n)),
                Some(n) => {
                    self.error(
                        &p,
                        format!("no [[blocklist]] is named {}", quote(n.as_str())),
                    );
                    None
                }
                None => None,
            }
        } else {
            Some(Destination::Any)
        };
        let protocol = self.check_field(path, "proto", protocol(r.proto.as_deref()));
        let ports = r
            .ports
            .and_then(|p| self.check_field(path, "ports", port_set(p)));
        let icmp_type = r
            .icmp_type
            .and_then(|t| self.check_field(path, "icmp_type", icmp_type(t, protocol)));
        let expires = r
            .expires
            .and_then(|t| self.check_field(path, "expires", time(t)));
        let comment = r.comment.unwrap_or_default();
        let comment_ok =
            comment.chars().count() <= MAX_COMMENT_CHARS && !comment.chars().any(char::is_control);
        if !comment_ok {
            self.error(
                &format!("{path}.comment"),
                format!(
                    "a comment is one line of at most {MAX_COMMENT_CHARS} characters \
                     (this one has {} bytes)",
                    comment.len()
                ),
            );
        }
        let (protocol, destination) = (protocol?, destination?);
        if ports.is_some() && !protocol.has_ports() {
            self.error(
                &format!("{path}.ports"),
                "ports need proto = \"tcp\" or \"udp\"",
            );
        }
        if icmp_type.is_some() && !matches!(protocol, Protocol::Icmp | Protocol::Icmpv6) {
            self.error(
                &format!("{path}.icmp_type"),
                "icmp_type needs proto = \"icmp\" or \"icmpv6\"",
            );
        }
        match (protocol, destination.family()) {
            (Protocol::Icmp, Some(Family::V6)) => self.error(
                &format!("{path}.proto"),
                "ICMP is IPv4; use \"icmpv6\" for an IPv6 destination",
            ),
            (Protocol::Icmpv6, Some(Family::V4)) => self.error(
                &format!("{path}.proto"),
                "ICMPv6 is IPv6; use \"icmp\" for an IPv4 destination",
            ),
            _ => {}
        }
        if matches!(destination, Destination::Dns)
            && !matches!(protocol, Protocol::Any | Protocol::Tcp | Protocol::Udp)
        {
            self.error(
                &format!("{path}.proto"),
                "the dns target is reached over tcp or udp",
            );
        }
        Some(Rule {
            action: action?,
            destination,
            protocol,
            ports,
            icmp_type,
            expires,
            log: r.log.unwrap_or(false),
            comment: comment_ok.then_some(comment)?,
            enabled: r.enabled.unwrap_or(true),
        })
    }

    fn remote_consoles(&mut self, raw: Vec<RawRemoteConsole>) -> Vec<RemoteConsole> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, rc) in raw.into_iter().enumerate() {
            let path = match ShortName::parse(&rc.name) {
                Ok(n) => format!("remote_console[{n}]"),
                Err(_) => format!("remote_console#{}", i + 1),
            };
            if !seen.insert(rc.name.clone()) {
                self.error(&path, format!("the name {} is used twice", quote(&rc.name)));
            }
            let name = self.check(&format!("{path}.name"), ShortName::parse(&rc.name));
            let host = match Destination::parse(&rc.host) {
                Ok(d @ (Destination::Host(_) | Destination::Net(_))) if !is_network(&d) => Some(d),
                _ => {
                    self.error(
                        &format!("{path}.host"),
                        format!("{} is not one address or host name", quote(&rc.host)),
                    );
                    None
                }
            };
            let port = self.check(&format!("{path}.port"), ports::port_from_int(rc.port));
            let access = self.access(
                &path,
                RawAccess {
                    users: rc.users,
                    groups: rc.groups,
                },
            );
            if let (Some(name), Some(host), Some(port)) = (name, host, port) {
                out.push(RemoteConsole {
                    name,
                    host,
                    port,
                    tls: rc.tls,
                    access,
                });
            }
        }
        out
    }

    fn blocklists(&mut self, raw: Vec<RawBlocklist>) -> Vec<Blocklist> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, b) in raw.into_iter().enumerate() {
            let path = match ShortName::parse(&b.name) {
                Ok(n) => format!("blocklist[{n}]"),
                Err(_) => format!("blocklist#{}", i + 1),
            };
            if !seen.insert(b.name.clone()) {
                self.error(&path, format!("the name {} is used twice", quote(&b.name)));
            }
            let name = self.check(&format!("{path}.name"), ShortName::parse(&b.name));
            let mut entries = Vec::with_capacity(b.entries.len());
            let mut bad = 0usize;
            for (j, e) in b.entries.iter().enumerate() {
                match Destination::parse(e) {
                    Ok(Destination::Net(n)) => entries.push(n),
                    _ => {
                        bad += 1;
                        // One line per bad entry up to a point; a million-line report helps nobody.
                        if bad <= 20 {
                            self.error(
                                &format!("{path}.entries[{}]", j + 1),
                                format!("{} is not an address or network", quote(e)),
                            );
                        }
                    }
                }
            }
            if bad > 20 {
                self.error(
                    &format!("{path}.entries"),
                    format!("{} more bad entries", bad - 20),
                );
            }
            if b.entries.len() > MAX_INLINE_ENTRIES {
                self.error(
                    &format!("{path}.entries"),
                    format!(
                        "{} entries written in the policy; the most is {MAX_INLINE_ENTRIES}: import a \
                         big list with `palisadectl blocklist import` and name it here with \
                         imported = true",
                        b.entries.len()
                    ),
                );
            }
            if b.imported && !b.entries.is_empty() {
                self.error(
                    &format!("{path}.imported"),
                    "an imported list takes its entries from the import; remove `entries` or \
                     `imported`"
                        .to_owned(),
                );
            }
            if let Some(name) = name {
                out.push(Blocklist {
                    name,
                    entries,
                    imported: b.imported,
                });
            }
        }
        out
    }
}

fn is_network(d: &Destination) -> bool {
    matches!(d, Destination::Net(n) if n.prefix_len() != n.max_prefix_len())
}

fn verdict(s: &str) -> Result<Verdict, String> {
    match s {
        "accept" => Ok(Verdict::Accept),
        "drop" => Ok(Verdict::Drop),
        "reject" => Ok(Verdict::Reject),
        other => Err(format!(
            "{} is not an action: use \"accept\", \"drop\" or \"reject\"",
            quote(other)
        )),
    }
}

fn protocol(s: Option<&str>) -> Result<Protocol, String> {
    match s.unwrap_or("any") {
        "any" => Ok(Protocol::Any),
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "icmp" => Ok(Protocol::Icmp),
        "icmpv6" => Ok(Protocol::Icmpv6),
        other => Err(format!(
            "{} is not a protocol: use tcp, udp, icmp, icmpv6 or any",
            quote(other)
        )),
    }
}

fn port_set(raw: RawPorts) -> Result<PortSet, String> {
    let one = |n: i64| {
        ports::port_from_int(n).map(|p| {
            vec![PortRange::new(p, p)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        })
    };
    let ranges = match raw {
        RawPorts::One(n) => one(n)?,
        RawPorts::Text(t) => ports::ranges_from_str(&t)?,
        RawPorts::List(items) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(match item {
                    RawPortItem::One(n) => one(n)?,
                    RawPortItem::Text(t) => ports::ranges_from_str(&t)?,
                });
            }
            all
        }
    };
    if ranges.len() > MAX_RANGES {
        return Err(format!(
            "{} port ranges; the most one rule takes is {MAX_RANGES}",
            ranges.len()
        ));
    }
    PortSet::from_ranges(ranges).ok_or_else(|| "the port list is empty".to_owned())
}

/// ICMP types by the names nftables uses.
const ICMP_NAMES: [(&str, u8); 11] = [
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("address-mask-request", 17),
];

/// ICMPv6 types by the names nftables uses: the same words mean other numbers than in ICMP.
const ICMPV6_NAMES: [(&str, u8); 12] = [
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
];

fn icmp_type(raw: RawIcmpType, protocol: Option<Protocol>) -> Result<u8, String> {
    match raw {
        RawIcmpType::Number(n) => {
            u8::try_from(n).map_err(|_| format!("ICMP type {n} is out of range 0 to 255"))
        }
        RawIcmpType::Name(s) => {
            let names: &[(&str, u8)] = if protocol == Some(Protocol::Icmpv6) {
                &ICMPV6_NAMES
            } else {
                &ICMP_NAMES
            };
            names
                .iter()
                .find(|(name, _)| *name == s)
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    format!(
                        "{} is not an ICMP type name; give a number 0-255",
                        quote(&s)
                    )
                })
        }
    }
}

fn time(raw: RawTime) -> Result<SystemTime, String> {
    let text = match raw {
        RawTime::Toml(d) => d.to_string(),
        RawTime::Text(t) => t,
    };
    let bad = || {
        format!(
            "{} is not a time: write it like 2026-12-31T18:00:00Z",
            quote(&text)
        )
    };
    let t = humantime::parse_rfc3339_weak(&text).map_err(|_| bad())?;
    // Years past 9999 or before 1970 are typos, not policies.
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d < Duration::from_secs(253_402_300_799) => Ok(t),
        _ => Err(bad()),
    }
}

/// `"2G"`, `"512M"`, `"2048"` (MiB) to whole MiB.
fn parse_size_mib(t: &str) -> Option<i64> {
    let bytes = super::size::parse_size(t, super::size::BareUnit::Mebibytes)?;
    if bytes % (1 << 20) != 0 {
        return None;
    }
    i64::try_from(bytes >> 20).ok()
}

/// The rules of a numbered list, without their numbers.
fn numbered_out(rules: Vec<(usize, Rule)>) -> Vec<Rule> {
    rules.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests;

/// Where the metrics file may go: an absolute, plain path (no `.`, `..` or empty parts, nothing
/// but printable characters) to a file named `*.prom`, as the textfile collector reads. The
/// helper, as root, also checks the folder at write time (root's, not writable by others).
fn textfile_path(text: &str) -> Result<std::path::PathBuf, String> {
    use std::path::{Component, Path};
    let shown = quote(text);
    if text.len() > 1024 || text.chars().any(char::is_control) {
        return Err(format!("{shown} is not a usable path"));
    }
    let path = Path::new(text);
    let plain = path.is_absolute()
        && !text.contains("//")
        && path
            .components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)));
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > 5 && n.ends_with(".prom") && !n.starts_with('.'));
    if !plain || !named || text.ends_with('/') {
        return Err(format!(
            "{shown}: give an absolute path to a file ending in .prom, like \
             \"/var/lib/prometheus/node-exporter/palisade.prom\""
        ));
    }
    Ok(path.to_owned())
}
