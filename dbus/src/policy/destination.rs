//! Where a rule points: an address or network, a host name, a `*.domain` wildcard, a named
//! blocklist, or the special target "dns" (the resolvers the VM's traffic goes to).

use super::names::{HostName, ShortName};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A rule's destination. `Any` when the rule names none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Destination {
    /// Every destination.
    Any,
    /// One address (as a /32 or /128) or a network.
    Net(IpNet),
    /// A host name; the firewall follows its addresses as DNS answers change.
    Host(HostName),
    /// Every name below a domain (`*.example.com`), not the domain itself.
    Wildcard(HostName),
    /// A named blocklist from the policy's `[[blocklist]]` section.
    Blocklist(ShortName),
    /// The DNS servers this host resolves with (Qubes' `specialtarget=dns`).
    Dns,
}

impl Destination {
    /// Parses the `destination` field: an address, a CIDR, a host name or `*.domain`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<std::net::IpAddr>() {
            return Ok(Self::Net(IpNet::from(addr)));
        }
        if s.contains('/') {
            return match s.parse::<IpNet>() {
                Ok(net) if net.trunc() == net => Ok(Self::Net(net)),
                Ok(net) => Err(format!(
                    "{s} has host bits set: did you mean {}?",
                    net.trunc()
                )),
                Err(_) => Err(format!(
                    "{} is not a valid network: write an address and a prefix length up to 32 \
                     (IPv4) or 128 (IPv6), like 192.0.2.0/24",
                    super::names::quote(s)
                )),
            };
        }
        if let Some(rest) = s.strip_prefix("*.") {
            return HostName::parse(rest).map(Self::Wildcard);
        }
        HostName::parse(s).map(Self::Host).map_err(|_| {
            format!(
                "{} is not an address, a network, a host name or a *.domain wildcard",
                super::names::quote(s)
            )
        })
    }

    /// Whether every packet this destination matches is also matched by `self`.
    pub fn covers(&self, other: &Destination) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (Self::Net(a), Self::Net(b)) => a.contains(b),
            (Self::Wildcard(a), Self::Host(b)) => b.is_within(a) && a != b,
            (Self::Wildcard(a), Self::Wildcard(b)) => b.is_within(a),
            (a, b) => a == b,
        }
    }

    /// The IP family this destination pins, if any.
    pub fn family(&self) -> Option<Family> {
        match self {
            Self::Net(IpNet::V4(_)) => Some(Family::V4),
            Self::Net(IpNet::V6(_)) => Some(Family::V6),
            _ => None,
        }
    }
}

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Self::Net(n) => write!(f, "{n}"),
            Self::Host(h) => write!(f, "{h}"),
            Self::Wildcard(h) => write!(f, "*.{h}"),
            Self::Blocklist(b) => write!(f, "blocklist {b}"),
            Self::Dns => f.write_str("dns"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert!(matches!(
            Destination::parse("127.0.0.1"),
            Ok(Destination::Net(_))
        ));
        assert!(matches!(
            Destination::parse("2001:db8::/32"),
            Ok(Destination::Net(_))
        ));
        assert!(matches!(
            Destination::parse("mail.example.com"),
            Ok(Destination::Host(_))
        ));
        assert!(matches!(
            Destination::parse("*.aws.amazon.com"),
            Ok(Destination::Wildcard(_))
        ));
    }

    #[test]
    fn rejects_bad_networks() {
        assert!(Destination::parse("10.0.0.0/33").is_err_and(|e| e.contains("prefix length")));
        assert!(Destination::parse("10.0.0.1/8").is_err_and(|e| e.contains("10.0.0.0/8")));
        assert!(Destination::parse("work; flush ruleset").is_err());
    }

    #[test]
    fn coverage() {
        let p = |s| Destination::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(p("10.0.0.0/8").covers(&p("10.1.2.3")));
        assert!(!p("10.1.2.3").covers(&p("10.0.0.0/8")));
        assert!(p("*.example.com").covers(&p("a.example.com")));
        assert!(!p("*.example.com").covers(&p("example.com")));
        assert!(Destination::Any.covers(&p("*.example.com")));
    }
}
