//! The policy document as written, before validation.
//!
//! Numbers are `i64` and names are `String` so that an out-of-range port or a malformed name
//! reaches `validate`, which reports it with its path and a sentence, instead of failing inside
//! serde with a type error. Unknown fields are refused: a typo must not silently disable a rule.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub vm: Vec<RawVm>,
    #[serde(default)]
    pub host_rule: Vec<RawRule>,
    #[serde(default)]
    pub remote_console: Vec<RawRemoteConsole>,
    #[serde(default)]
    pub blocklist: Vec<RawBlocklist>,
    #[serde(default)]
    pub settings: RawSettings,
    #[serde(default)]
    pub network: Vec<RawNetwork>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub name: String,
    pub subnet: String,
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNat {
    pub address: String,
    #[serde(default)]
    pub forward: Vec<RawForward>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    pub proto: String,
    pub port: i64,
    pub to_port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub accel: Option<String>,
    pub spice_ports: Option<String>,
    pub versions_kept: Option<i64>,
    pub console_ticket_seconds: Option<i64>,
    #[serde(default)]
    pub dns: RawDnsSettings,
    #[serde(default)]
    pub log: RawLogSettings,
    #[serde(default)]
    pub metrics: RawMetricsSettings,
    #[serde(default)]
    pub drop_ins: RawDropInSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDropInSettings {
    pub watch: Option<bool>,
    pub confirm_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetricsSettings {
    pub textfile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogSettings {
    pub keep_on_disk: Option<bool>,
    pub disk_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsSettings {
    pub upstream: Option<String>,
    pub server: Option<String>,
    pub tls_name: Option<String>,
    pub tls_ca: Option<String>,
    pub socks_proxy: Option<String>,
    pub ttl_floor_seconds: Option<i64>,
    pub grace_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVm {
    pub name: String,
    pub disk: Option<String>,
    pub memory: Option<RawSize>,
    pub cpus: Option<i64>,
    pub network: Option<String>,
    pub bridge: Option<String>,
    pub address: Option<String>,
    pub mac: Option<String>,
    pub nat: Option<RawNat>,
    #[serde(default)]
    pub operators: RawAccess,
    #[serde(default)]
    pub console: RawAccess,
    pub default: Option<String>,
    #[serde(default)]
    pub rule: Vec<RawRule>,
    pub dns: Option<bool>,
    pub strict_dns: Option<bool>,
    pub socks_proxy: Option<i64>,
    #[serde(default)]
    pub display: RawDisplay,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisplay {
    pub video: Option<String>,
    pub clipboard: Option<bool>,
    pub tls: Option<bool>,
    pub address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSize {
    Mib(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub action: String,
    pub destination: Option<String>,
    pub special_target: Option<String>,
    pub blocklist: Option<String>,
    pub proto: Option<String>,
    pub ports: Option<RawPorts>,
    pub icmp_type: Option<RawIcmpType>,
    pub expires: Option<RawTime>,
    pub log: Option<bool>,
    pub comment: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPorts {
    One(i64),
    Text(String),
    List(Vec<RawPortItem>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPortItem {
    One(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawIcmpType {
    Number(i64),
    Name(String),
}

/// TOML has a native date-time; people also write strings. Both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTime {
    Toml(toml::value::Datetime),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemoteConsole {
    pub name: String,
    pub host: String,
    pub port: i64,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlocklist {
    pub name: String,
    #[serde(default)]
    pub entries: Vec<String>,
    #[serde(default)]
    pub imported: bool,
}
