use super::*;
use crate::policy::names::HostName;
use crate::policy::ports::{PortRange, PortSet};
use crate::policy::{Protocol, Verdict};
use std::time::SystemTime;

/// Every pair compared: what the index must find, only faster.
fn shadowed_by_every_pair(rules: &[(usize, Rule)]) -> Vec<(usize, usize)> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, (_, later))| later.enabled)
        .filter_map(|(j, (later_no, later))| {
            rules[..j]
                .iter()
                .find(|(_, earlier)| earlier.covers(later))
                .map(|(earlier_no, _)| (*later_no, *earlier_no))
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed from its seed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn destination(r: &mut Random) -> Destination {
    let names = [
        "example.com",
        "mail.example.com",
        "a.mail.example.com",
        "example.org",
        "com",
    ];
    match r.below(10) {
        0 => Destination::Any,
        1 => Destination::Dns,
        2 => match HostName::parse(r.pick::<&str>(&names)) {
            Ok(h) => Destination::Host(h),
            Err(_) => Destination::Any,
        },
        3 => match HostName::parse(r.pick::<&str>(&names)) {
            Ok(h) => Destination::Wildcard(h),
            Err(_) => Destination::Any,
        },
        4..=6 => {
            let base = *r.pick(&["10.1.2.3", "10.1.200.7", "192.0.2.9"]);
            let len = r.below(33) as u8;
            let net = IpNet::new(base.parse().unwrap_or([0, 0, 0, 0].into()), len);
            net.map_or(Destination::Any, |n| Destination::Net(n.trunc()))
        }
        _ => {
            let base = *r.pick(&["2001:db8::1", "2001:db8:ff::2"]);
            let len = r.below(129) as u8;
            let net = IpNet::new(base.parse().unwrap_or([0u16; 8].into()), len);
            net.map_or(Destination::Any, |n| Destination::Net(n.trunc()))
        }
    }
}

fn rule(r: &mut Random) -> Rule {
    let protocol = *r.pick(&[Protocol::Any, Protocol::Tcp, Protocol::Udp, Protocol::Icmp]);
    let ports = match (protocol, r.below(3)) {
        (Protocol::Tcp | Protocol::Udp, 0) => None,
        (Protocol::Tcp | Protocol::Udp, k) => {
            let first = 440 + r.below(10) as u16;
            PortRange::new(first, first + (k as u16 - 1) * r.below(5) as u16)
                .and_then(|range| PortSet::from_ranges(vec![range]))
        }
        _ => None,
    };
    Rule {
        action: *r.pick(&[Verdict::Accept, Verdict::Drop]),
        destination: destination(r),
        protocol,
        ports,
        icmp_type: None,
        expires: (r.below(8) == 0).then_some(SystemTime::UNIX_EPOCH),
        log: false,
        comment: String::new(),
        enabled: r.below(6) != 0,
    }
}

#[test]
fn the_index_finds_what_comparing_every_pair_finds() {
    for seed in 1..=400u64 {
        let mut r = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let count = 1 + r.below(40) as usize;
        let rules: Vec<(usize, Rule)> = (1..=count).map(|n| (n, rule(&mut r))).collect();
        assert_eq!(
            shadowed(&rules),
            shadowed_by_every_pair(&rules),
            "seed {seed}: {rules:#?}"
        );
    }
}

#[test]
fn a_network_is_covered_through_a_prefix_length_seen_only_earlier() {
    let net = |s: &str| match s.parse::<IpNet>() {
        Ok(n) => Destination::Net(n),
        Err(e) => panic!("{s}: {e}"),
    };
    let accept = |d: Destination| Rule {
        action: Verdict::Accept,
        destination: d,
        protocol: Protocol::Any,
        ports: None,
        icmp_type: None,
        expires: None,
        log: false,
        comment: String::new(),
        enabled: true,
    };
    let rules = vec![
        (1, accept(net("10.0.0.0/8"))),
        (2, accept(net("192.0.2.0/24"))),
        (3, accept(net("10.1.2.3/32"))),
        (4, accept(net("192.0.3.1/32"))),
        (5, accept(net("192.0.2.77/32"))),
    ];
    assert_eq!(shadowed(&rules), vec![(3, 1), (5, 2)]);
}
