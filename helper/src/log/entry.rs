//! From what the kernel logged to the entry people read: the rule from the prefix's tag, the
//! packet's protocol, addresses and ports from its headers. Pure: names for uids come from the
//! caller, so every case here is a unit test.

use super::nflog::Logged;
use crate::firewall::ruleset::{RuleTag, TagOwner, TagRule};
use etherparse::{ArpPacketSlice, EtherType, NetSlice, SlicedPacket, TransportSlice};
use palisade_dbus::policy::lab::MacAddress;
use palisade_dbus::policy::Verdict;
use palisade_dbus::types::{LogOwner, LoggedPacket, LoggedRule, LoggedRuleKind, PacketVerdict};

/// The bus's description of a rule tag.
pub fn logged_rule(tag: &RuleTag) -> LoggedRule {
    let (owner, vm) = match &tag.owner {
        TagOwner::Host => (LogOwner::Host, String::new()),
        TagOwner::Vm(vm) => (LogOwner::Vm, vm.to_string()),
        TagOwner::Console => (LogOwner::Console, String::new()),
    };
    let (kind, first_rule, last_rule) = match tag.rule {
        TagRule::Numbers { first, last } => (LoggedRuleKind::Numbered, first, last),
        TagRule::Default => (LoggedRuleKind::Default, 0, 0),
        TagRule::Refused => (LoggedRuleKind::Refused, 0, 0),
        TagRule::Spoofed => (LoggedRuleKind::Spoofing, 0, 0),
    };
    LoggedRule {
        owner,
        vm,
        kind,
        first_rule,
        last_rule,
        verdict: match tag.action {
            Verdict::Accept => PacketVerdict::Accept,
            Verdict::Drop => PacketVerdict::Drop,
            Verdict::Reject => PacketVerdict::Reject,
        },
    }
}

/// Who sent a logged packet, as the caller found out from its uid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The VM whose user the uid is.
    pub vm: Option<String>,
    /// The uid's user name, or `#uid`.
    pub user: Option<String>,
}

/// The entry for a logged packet (its `seq` left 0 for the log to give), or `None` when its
/// prefix is none of our rules' tags (another tool logging to our group).
pub fn entry(logged: &Logged, at_ms: u64, sender: Sender) -> Option<LoggedPacket> {
    let tag = RuleTag::parse(&logged.prefix)?;
    // A port guard's frame came from that VM's port: it is the sender whatever it claims (and
    // bridged frames carry no local socket to name one by).
    let sender = match (&tag.owner, tag.rule) {
        (TagOwner::Vm(vm), TagRule::Spoofed) => Sender {
            vm: Some(vm.to_string()),
            user: sender.user,
        },
        _ => sender,
    };
    let mut entry = LoggedPacket {
        seq: 0,
        at_ms,
        rule: logged_rule(&tag),
        vm: sender.vm.unwrap_or_default(),
        user: sender.user.unwrap_or_default(),
        protocol: String::new(),
        source: String::new(),
        destination: String::new(),
        source_port: 0,
        destination_port: 0,
        length: 0,
        source_mac: String::new(),
    };
    if tag.rule == TagRule::Spoofed {
        // On a lab port the frame's MAC is part of what was wrong with it.
        if let Some(mac) = logged.source_mac {
            entry.source_mac = MacAddress(mac).to_string();
        }
        if logged.ethertype == Some(ETHERTYPE_ARP) {
            read_arp(&logged.payload, &mut entry);
            return Some(entry);
        }
    }
    // What the headers tell; a payload cut short keeps what could be read.
    let Ok(packet) = SlicedPacket::from_ip(&logged.payload) else {
        return Some(entry);
    };
    let protocol = match &packet.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            entry.source = h.source_addr().to_string();
            entry.destination = h.destination_addr().to_string();
            entry.length = u32::from(h.total_len());
            h.protocol().0
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            entry.source = h.source_addr().to_string();
            entry.destination = h.destination_addr().to_string();
            entry.length = u32::from(h.payload_length()) + 40;
            ip.payload().ip_number.0
        }
        _ => return Some(entry),
    };
    entry.protocol = match protocol {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    };
    match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            entry.source_port = tcp.source_port();
            entry.destination_port = tcp.destination_port();
        }
        Some(TransportSlice::Udp(udp)) => {
            entry.source_port = udp.source_port();
            entry.destination_port = udp.destination_port();
        }
        _ => {}
    }
    Some(entry)
}

/// ARP's EtherType.
const ETHERTYPE_ARP: u16 = 0x0806;

/// An ARP packet's addresses: who it claims to be and whom it asks about (or answers).
fn read_arp(payload: &[u8], entry: &mut LoggedPacket) {
    entry.protocol = "arp".into();
    let Ok(arp) = ArpPacketSlice::from_slice(payload) else {
        return;
    };
    let address = |bytes: &[u8]| -> Option<String> {
        let octets: [u8; 4] = bytes.try_into().ok()?;
        Some(std::net::Ipv4Addr::from(octets).to_string())
    };
    if arp.proto_addr_type() == EtherType::IPV4 {
        entry.source = address(arp.sender_protocol_addr()).unwrap_or_default();
        entry.destination = address(arp.target_protocol_addr()).unwrap_or_default();
    }
    entry.length = u32::try_from(arp.slice().len()).unwrap_or(u32::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn logged(prefix: &str, payload: Vec<u8>) -> Logged {
        Logged {
            prefix: prefix.into(),
            uid: Some(990),
            payload,
            ethertype: Some(0x0800),
            source_mac: None,
        }
    }

    fn sender() -> Sender {
        Sender {
            vm: Some("web".into()),
            user: Some("palisade-vm-web".into()),
        }
    }

    #[test]
    fn a_tcp_syn_names_its_rule_addresses_and_ports() {
        let mut payload = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [192, 0, 2, 7], 64)
            .tcp(40_000, 22, 1, 1024)
            .syn()
            .write(&mut payload, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let e = entry(
            &logged("palisade vm=web rule=3 drop: ", payload),
            1_000,
            sender(),
        )
        .unwrap_or_else(|| panic!("an entry"));
        assert_eq!(e.rule.owner, LogOwner::Vm);
        assert_eq!(e.rule.vm, "web");
        assert_eq!(
            (e.rule.kind, e.rule.first_rule, e.rule.last_rule),
            (LoggedRuleKind::Numbered, 3, 3)
        );
        assert_eq!(e.rule.verdict, PacketVerdict::Drop);
        assert_eq!((e.vm.as_str(), e.user.as_str()), ("web", "palisade-vm-web"));
        assert_eq!(e.protocol, "tcp");
        assert_eq!((e.source.as_str(), e.source_port), ("10.0.0.1", 40_000));
        assert_eq!(
            (e.destination.as_str(), e.destination_port),
            ("192.0.2.7", 22)
        );
        assert_eq!(e.length, 40);
        assert_eq!(e.at_ms, 1_000);
    }

    #[test]
    fn udp_over_ipv6_and_icmp_are_read_too() {
        let mut payload = Vec::new();
        PacketBuilder::ipv6([0xfe; 16], [0x20; 16], 64)
            .udp(5353, 53)
            .write(&mut payload, b"abcd")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = entry(
            &logged("palisade host rule=2-4 reject: ", payload),
            0,
            Sender::default(),
        )
        .unwrap_or_else(|| panic!("an entry"));
        assert_eq!(
            (e.protocol.as_str(), e.destination_port, e.length),
            ("udp", 53, 52)
        );
        assert_eq!(e.rule.owner, LogOwner::Host);
        assert_eq!((e.rule.first_rule, e.rule.last_rule), (2, 4));
        assert_eq!((e.vm.as_str(), e.user.as_str()), ("", ""));

        let mut payload = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [192, 0, 2, 7], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut payload, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let e = entry(
            &logged("palisade vm=web default drop: ", payload),
            0,
            sender(),
        )
        .unwrap_or_else(|| panic!("an entry"));
        assert_eq!((e.protocol.as_str(), e.destination_port), ("icmp", 0));
        assert_eq!(e.rule.kind, LoggedRuleKind::Default);
    }

    /// A gratuitous ARP reply from a lab port, claiming another guest's address: the port's VM
    /// is the sender (no local socket sent it), with the frame's MAC and the claimed address.
    #[test]
    fn a_port_guard_names_the_vm_its_mac_and_the_arp_claim() {
        let mut payload = vec![0, 1, 8, 0, 6, 4, 0, 2];
        payload.extend([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 10, 77, 0, 11]);
        payload.extend([0xff; 6]);
        payload.extend([10, 77, 0, 11]);
        let logged = Logged {
            prefix: "palisade vm=attacker spoofed drop: ".into(),
            uid: None,
            payload,
            ethertype: Some(0x0806),
            source_mac: Some([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
        };
        let e = entry(&logged, 5, Sender::default()).unwrap_or_else(|| panic!("an entry"));
        assert_eq!(e.rule.kind, LoggedRuleKind::Spoofing);
        assert_eq!(
            (e.rule.vm.as_str(), e.vm.as_str()),
            ("attacker", "attacker")
        );
        assert_eq!(e.protocol, "arp");
        assert_eq!(
            (e.source.as_str(), e.destination.as_str()),
            ("10.77.0.11", "10.77.0.11")
        );
        assert_eq!(e.source_mac, "52:54:00:aa:bb:cc");
        assert_eq!(e.length, 28);

        // A forged IPv4 source on the same port reads as IP, still with the frame's MAC.
        let mut payload = Vec::new();
        PacketBuilder::ipv4([10, 77, 0, 99], [10, 77, 0, 1], 64)
            .udp(1000, 53)
            .write(&mut payload, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let logged = Logged {
            ethertype: Some(0x0800),
            payload,
            ..logged
        };
        let e = entry(&logged, 5, Sender::default()).unwrap_or_else(|| panic!("an entry"));
        assert_eq!(
            (e.protocol.as_str(), e.source.as_str()),
            ("udp", "10.77.0.99")
        );
        assert_eq!(e.source_mac, "52:54:00:aa:bb:cc");
        // Routed packets never show a MAC.
        let routed = Logged {
            prefix: "palisade vm=attacker rule=1 drop: ".into(),
            ..logged
        };
        let e = entry(&routed, 5, Sender::default()).unwrap_or_else(|| panic!("an entry"));
        assert_eq!(e.source_mac, "");
    }

    #[test]
    fn cut_or_foreign_input_never_fails() {
        // A payload cut inside its IP header still names the rule.
        let e = entry(
            &logged("palisade console refused: ", vec![0x45, 0, 0]),
            0,
            sender(),
        )
        .unwrap_or_else(|| panic!("an entry"));
        assert_eq!(e.rule.owner, LogOwner::Console);
        assert_eq!(e.protocol, "");
        // Another tool's prefix on our group is not ours to show.
        assert_eq!(entry(&logged("ulogd: ", Vec::new()), 0, sender()), None);
        for len in 0..64 {
            let noise: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = entry(&logged("palisade host rule=1 drop: ", noise), 0, sender());
        }
    }
}
