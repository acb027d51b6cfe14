//! A compiled rule as the kernel receives it: the nfnetlink expressions `nft` would write for
//! the rule's text (`render`), so that a generation changing a few rules can send just those
//! over netlink (`patch`) and `nft list` still shows them exactly as if `nft -f` had loaded them.
//!
//! Invariants: [`kernel_rules`] gives one entry per line `render` writes for the rule, in the
//! same order, or `None` when the rule uses anything not encoded here (anonymous sets,
//! concatenations, interface names, NAT, the guest's kernel log): such a generation is loaded
//! whole through `nft -f`, as before. Dependencies follow nft 1.0: a payload match is preceded
//! by the `meta nfproto` / `meta l4proto` test it implies unless the rule already tested it.
//! A root test checks every encodable rule of the compiled sample policies against what the
//! kernel holds after `nft -f` of the rendered text.

use super::ruleset::*;
use ipnet::IpNet;
use palisade_dbus::policy::{Family, PortSet, Verdict};
use palisade_nfnetlink::{
    CmpOp, CtKey, Expr, MetaKey, ObjectKind, PayloadBase, RuleSpec, Verdict as NlVerdict,
};

/// The kernel rules of `rule`, one per line of its text, or `None` if one is not encodable.
pub fn kernel_rules(rule: &RuleDef) -> Option<Vec<RuleSpec>> {
    match &rule.log {
        Some(LogDef::Nflog { tag, limit }) => {
            let mut log = matches(&rule.matches)?;
            log.push(Expr::ObjRef {
                kind: ObjectKind::Limit,
                name: limit.clone(),
            });
            log.push(Expr::Log {
                group: LOG_GROUP,
                prefix: tag.prefix(),
            });
            Some(vec![
                RuleSpec {
                    exprs: log,
                    comment: None,
                },
                deciding(rule)?,
            ])
        }
        Some(LogDef::Kernel(_)) => None,
        None => Some(vec![deciding(rule)?]),
    }
}

/// The rule's line that counts, marks and decides.
fn deciding(rule: &RuleDef) -> Option<RuleSpec> {
    let mut exprs = matches(&rule.matches)?;
    match &rule.counter {
        Counter::None => {}
        Counter::Anonymous => exprs.push(Expr::Counter),
        Counter::Named(name) => exprs.push(Expr::ObjRef {
            kind: ObjectKind::Counter,
            name: name.clone(),
        }),
    }
    if let Some(mark) = rule.set_mark {
        exprs.push(Expr::SetCtMark(mark));
    }
    exprs.push(Expr::Verdict(match &rule.verdict {
        RuleVerdict::Policy(Verdict::Accept) => NlVerdict::Accept,
        RuleVerdict::Policy(Verdict::Drop) => NlVerdict::Drop,
        RuleVerdict::Policy(Verdict::Reject) => NlVerdict::Jump(REJECT_CHAIN.into()),
        RuleVerdict::Return => NlVerdict::Return,
        RuleVerdict::Jump(chain) => NlVerdict::Jump(chain.clone()),
        _ => return None,
    }));
    Some(RuleSpec {
        exprs,
        // As `render` quotes it: nft stores the text between the quotes.
        comment: rule.comment.as_ref().map(|c| {
            c.chars()
                .map(|ch| {
                    if ch == '"' || ch.is_control() {
                        '\''
                    } else {
                        ch
                    }
                })
                .collect()
        }),
    })
}

/// What the rule has tested so far, as nft tracks it to leave out implied tests it already made.
#[derive(Debug, Default)]
struct Known {
    family: Option<Family>,
    l4: Option<u8>,
}

fn matches(list: &[Match]) -> Option<Vec<Expr>> {
    let mut out = Vec::new();
    let mut known = Known::default();
    for m in list {
        encode_match(m, &mut known, &mut out)?;
    }
    Some(out)
}

fn encode_match(m: &Match, known: &mut Known, out: &mut Vec<Expr>) -> Option<()> {
    match m {
        Match::Family(f) => {
            out.push(Expr::Meta(MetaKey::NfProto));
            out.push(eq(vec![nfproto_number(*f)]));
            known.family = Some(*f);
        }
        Match::L4Proto(p) => {
            let number = protocol_number(p)?;
            out.push(Expr::Meta(MetaKey::L4Proto));
            out.push(eq(vec![number]));
            known.l4 = Some(number);
        }
        Match::Daddr(net) => address(net, Side::Destination, known, out)?,
        Match::Saddr(net) => address(net, Side::Source, known, out)?,
        Match::DaddrInSet(f, set) | Match::DaddrNotInSet(f, set) => {
            need_family(*f, known, out);
            out.push(address_load(*f, Side::Destination));
            out.push(Expr::Lookup {
                set: set.clone(),
                invert: matches!(m, Match::DaddrNotInSet(..)),
            });
        }
        Match::DaddrWithin(first, last) => {
            let (f, first, last) = match (first, last) {
                (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                    (Family::V4, a.octets().to_vec(), b.octets().to_vec())
                }
                (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                    (Family::V6, a.octets().to_vec(), b.octets().to_vec())
                }
                _ => return None,
            };
            need_family(f, known, out);
            out.push(address_load(f, Side::Destination));
            out.push(Expr::Cmp {
                op: CmpOp::Gte,
                data: first,
            });
            out.push(Expr::Cmp {
                op: CmpOp::Lte,
                data: last,
            });
        }
        Match::Dport(p, ports) => port(p, ports, 2, known, out)?,
        Match::Sport(p, ports) => port(p, ports, 0, known, out)?,
        Match::IcmpType(p, t) => {
            need_l4(protocol_number(p)?, known, out);
            out.push(Expr::Payload {
                base: PayloadBase::Transport,
                offset: 0,
                len: 1,
            });
            out.push(eq(vec![*t]));
        }
        Match::HopLimit(h) => {
            need_family(Family::V6, known, out);
            out.push(Expr::Payload {
                base: PayloadBase::Network,
                offset: 7,
                len: 1,
            });
            out.push(eq(vec![*h]));
        }
        Match::CtEstablished => ct_state(0x6, out),
        Match::CtNew => ct_state(0x8, out),
        Match::CtReply => {
            out.push(Expr::Ct(CtKey::Direction));
            out.push(eq(vec![1]));
        }
        Match::CtMarkInSet(set) => {
            out.push(Expr::Ct(CtKey::Mark));
            out.push(Expr::Lookup {
                set: set.clone(),
                invert: false,
            });
        }
        Match::SkUid(uid) => {
            out.push(Expr::Meta(MetaKey::SkUid));
            out.push(eq(uid.to_ne_bytes().to_vec()));
        }
        Match::SkUidNot(uid) => {
            out.push(Expr::Meta(MetaKey::SkUid));
            out.push(Expr::Cmp {
                op: CmpOp::Neq,
                data: uid.to_ne_bytes().to_vec(),
            });
        }
        Match::DaddrAnyOf(..)
        | Match::DaddrNoneOf(..)
        | Match::IcmpTypeAnyOf(..)
        | Match::Oif(_)
        | Match::IifName(_)
        | Match::OifName(_)
        | Match::OifNameNot(_)
        | Match::CtDnat
        | Match::ConsoleEndpoint(..)
        | Match::EndpointInSet(..)
        | Match::ConsoleNotAllowed(..) => return None,
    }
    Some(())
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Source,
    Destination,
}

fn address_load(f: Family, side: Side) -> Expr {
    let (offset, len) = match (f, side) {
        (Family::V4, Side::Source) => (12, 4),
        (Family::V4, Side::Destination) => (16, 4),
        (Family::V6, Side::Source) => (8, 16),
        (Family::V6, Side::Destination) => (24, 16),
    };
    Expr::Payload {
        base: PayloadBase::Network,
        offset,
        len,
    }
}

/// A network test as nft writes it: the whole address compared, or only the bytes a prefix on
/// a byte boundary covers, or the address masked to its prefix.
fn address(net: &IpNet, side: Side, known: &mut Known, out: &mut Vec<Expr>) -> Option<()> {
    let f = family_of(net);
    let prefix = usize::from(net.prefix_len());
    if prefix == 0 {
        return None;
    }
    let network: Vec<u8> = match net.trunc().addr() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    need_family(f, known, out);
    let Expr::Payload { base, offset, len } = address_load(f, side) else {
        return None;
    };
    if prefix % 8 == 0 {
        let bytes = prefix / 8;
        out.push(Expr::Payload {
            base,
            offset,
            len: u32::try_from(bytes).ok()?,
        });
        out.push(eq(network[..bytes].to_vec()));
    } else {
        out.push(Expr::Payload { base, offset, len });
        let mask: Vec<u8> = (0..network.len())
            .map(|i| {
                let bits = prefix.saturating_sub(i * 8).min(8);
                (0xffu16 << (8 - bits)) as u8
            })
            .collect();
        out.push(Expr::Bitwise {
            mask,
            xor: vec![0; network.len()],
        });
        out.push(eq(network));
    }
    Some(())
}

/// A port test: one port compared, a range as two comparisons; a list needs an anonymous set.
fn port(
    proto: &str,
    ports: &PortSet,
    offset: u32,
    known: &mut Known,
    out: &mut Vec<Expr>,
) -> Option<()> {
    let [range] = ports.ranges() else {
        return None;
    };
    need_l4(protocol_number(proto)?, known, out);
    out.push(Expr::Payload {
        base: PayloadBase::Transport,
        offset,
        len: 2,
    });
    if range.first() == range.last() {
        out.push(eq(range.first().to_be_bytes().to_vec()));
    } else {
        out.push(Expr::Cmp {
            op: CmpOp::Gte,
            data: range.first().to_be_bytes().to_vec(),
        });
        out.push(Expr::Cmp {
            op: CmpOp::Lte,
            data: range.last().to_be_bytes().to_vec(),
        });
    }
    Some(())
}

fn ct_state(bits: u32, out: &mut Vec<Expr>) {
    out.push(Expr::Ct(CtKey::State));
    out.push(Expr::Bitwise {
        mask: bits.to_ne_bytes().to_vec(),
        xor: vec![0; 4],
    });
    out.push(Expr::Cmp {
        op: CmpOp::Neq,
        data: vec![0; 4],
    });
}

fn need_family(f: Family, known: &mut Known, out: &mut Vec<Expr>) {
    if known.family != Some(f) {
        out.push(Expr::Meta(MetaKey::NfProto));
        out.push(eq(vec![nfproto_number(f)]));
        known.family = Some(f);
    }
}

fn need_l4(number: u8, known: &mut Known, out: &mut Vec<Expr>) {
    if known.l4 != Some(number) {
        out.push(Expr::Meta(MetaKey::L4Proto));
        out.push(eq(vec![number]));
        known.l4 = Some(number);
    }
}

fn eq(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        op: CmpOp::Eq,
        data,
    }
}

/// `NFPROTO_IPV4`, `NFPROTO_IPV6`.
fn nfproto_number(f: Family) -> u8 {
    match f {
        Family::V4 => 2,
        Family::V6 => 10,
    }
}

/// The IP protocol number of the transport protocols rules name.
fn protocol_number(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" | "ipv6-icmp" => Some(58),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
