//! The ruleset as the nftables JSON batch the kernel receives, in one transaction.
//!
//! The batch replaces the structure of the table in place — chains, rules and small sets — and
//! leaves the sets of imported lists alone, so a generation that does not change a list does not
//! touch its elements (and `nft` is never asked to read them). nft applies a batch atomically:
//! either the new structure replaces the old one completely or, on any error, the old one stays
//! untouched. Notes (`ChainDef::notes`) are for the text rendering only and are left out.

use super::ruleset::*;
use nftables::batch::Batch;
use nftables::expr::{self, Expression, NamedExpression, SetItem};
use nftables::schema::{self, NfListObject, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{self, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use palisade_dbus::policy::{Family, Verdict};
use std::borrow::Cow;
use std::collections::HashSet;

/// What the kernel's table holds now, as far as replacing its structure needs to know: the names
/// of its chains and of its named sets (from netlink dumps, which read no set elements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Every chain of the table.
    pub chains: Vec<String>,
    /// Every named set of the table (anonymous sets go with their rules).
    pub sets: Vec<String>,
}

/// The batch replacing the structure of `r`'s table with `r`, as the JSON document `nft -j -f`
/// reads: every existing chain flushed and deleted, every existing set deleted except the sets
/// of imported lists `r` still names (their elements stay where they are), then `r`'s sets,
/// chains and rules added. One transaction: the new structure replaces the old one completely or,
/// on any error, the old one stays untouched. No other table is named.
///
/// Everything is built with the nftables crate's types except the console sets, whose key
/// includes a uid: the crate has no `uid` set type, so those `add set` commands are written as
/// plain JSON in the same batch (same transaction), right after the deletions.
pub fn ruleset_batch(r: &Ruleset, existing: &Existing) -> serde_json::Value {
    let t = r.table;
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table(t)));
    for chain in &existing.chains {
        batch.add_cmd(schema::NfCmd::Flush(schema::FlushObject::Chain(
            named_chain(t, chain),
        )));
    }
    for chain in &existing.chains {
        batch.delete(NfListObject::Chain(named_chain(t, chain)));
    }
    let kept: HashSet<&str> = r
        .sets
        .iter()
        .filter(|s| s.imported.is_some())
        .map(|s| s.name.as_str())
        .collect();
    for set in existing.sets.iter().filter(|s| !kept.contains(s.as_str())) {
        batch.delete(NfListObject::Set(Box::new(named_set(t, set))));
    }
    let deletions = 1 + 2 * existing.chains.len() + existing.sets.len()
        - existing
            .sets
            .iter()
            .filter(|s| kept.contains(s.as_str()))
            .count();
    let (console_sets, sets): (Vec<&SetDef>, Vec<&SetDef>) = r
        .sets
        .iter()
        .filter(|s| s.imported.is_none())
        .partition(|s| {
            matches!(
                s.kind,
                SetKind::ConsoleEndpoints(_) | SetKind::ConsoleAllowed(_)
            )
        });
    for set in sets {
        batch.add(NfListObject::Set(Box::new(set_object(t, set))));
    }
    for chain in &r.chains {
        batch.add(NfListObject::Chain(chain_object(t, chain)));
    }
    for chain in &r.chains {
        for rule in &chain.rules {
            batch.add(NfListObject::Rule(rule_object(t, &chain.name, rule)));
        }
    }
    let mut document = serde_json::to_value(batch.to_nftables()).unwrap_or_default();
    if let Some(commands) = document.get_mut("nftables").and_then(|n| n.as_array_mut()) {
        let at = commands.len().min(deletions);
        commands.splice(
            at..at,
            console_sets.into_iter().map(|s| console_set_command(t, s)),
        );
    }
    document
}

fn console_set_command(table: &str, set: &SetDef) -> serde_json::Value {
    let (family, with_uid) = match set.kind {
        SetKind::ConsoleEndpoints(f) => (f, false),
        SetKind::ConsoleAllowed(f) => (f, true),
        _ => (Family::V4, false),
    };
    let addr_type = match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    };
    let types: Vec<&str> = if with_uid {
        vec!["uid", addr_type, "inet_service"]
    } else {
        vec![addr_type, "inet_service"]
    };
    let elements: Vec<serde_json::Value> = set
        .consoles
        .iter()
        .map(|(uid, addr, port)| {
            let mut parts = Vec::new();
            if let Some(u) = uid {
                parts.push(serde_json::json!(u));
            }
            parts.push(serde_json::json!(addr.to_string()));
            parts.push(serde_json::json!(port));
            serde_json::json!({ "concat": parts })
        })
        .collect();
    let mut body =
        serde_json::json!({ "family": "inet", "table": table, "name": set.name, "type": types });
    if !elements.is_empty() {
        body["elem"] = serde_json::Value::Array(elements);
    }
    serde_json::json!({ "add": { "set": body } })
}

fn table(name: &'static str) -> schema::Table<'static> {
    schema::Table {
        family: NfFamily::INet,
        name: name.into(),
        handle: None,
    }
}

fn set_object(table: &'static str, set: &SetDef) -> schema::Set<'static> {
    let (ty, flag) = match set.kind {
        SetKind::Ipv4Nets => (SetType::Ipv4Addr, Some(SetFlag::Interval)),
        SetKind::Ipv6Nets => (SetType::Ipv6Addr, Some(SetFlag::Interval)),
        SetKind::Ipv4Learned => (SetType::Ipv4Addr, Some(SetFlag::Timeout)),
        SetKind::Ipv6Learned => (SetType::Ipv6Addr, Some(SetFlag::Timeout)),
        SetKind::Marks => (SetType::Mark, None),
        // Written as plain JSON by `console_set_command`; never reaches here.
        SetKind::ConsoleEndpoints(_) | SetKind::ConsoleAllowed(_) => (SetType::InetService, None),
    };
    let elements: Vec<Expression<'static>> = if set.kind == SetKind::Marks {
        set.marks.iter().map(|m| Expression::Number(*m)).collect()
    } else {
        set.nets.iter().map(net).collect()
    };
    schema::Set {
        family: NfFamily::INet,
        table: table.into(),
        name: set.name.clone().into(),
        set_type: SetTypeValue::Single(ty),
        flags: flag.map(|f| HashSet::from([f])),
        elem: (!elements.is_empty()).then(|| Cow::Owned(elements)),
        ..schema::Set::default()
    }
}

/// A chain by name only, for flushing and deleting.
fn named_chain(table: &'static str, name: &str) -> schema::Chain<'static> {
    schema::Chain {
        family: NfFamily::INet,
        table: table.into(),
        name: name.to_owned().into(),
        ..schema::Chain::default()
    }
}

/// A set by name only, for deleting.
fn named_set(table: &'static str, name: &str) -> schema::Set<'static> {
    schema::Set {
        family: NfFamily::INet,
        table: table.into(),
        name: name.to_owned().into(),
        ..schema::Set::default()
    }
}

fn chain_object(table: &'static str, chain: &ChainDef) -> schema::Chain<'static> {
    let mut c = schema::Chain {
        family: NfFamily::INet,
        table: table.into(),
        name: chain.name.clone().into(),
        ..schema::Chain::default()
    };
    if let Some(Hook::Output { policy }) = chain.hook {
        c._type = Some(NfChainType::Filter);
        c.hook = Some(NfHook::Output);
        c.prio = Some(0);
        c.policy = Some(match policy {
            ChainPolicy::Accept => NfChainPolicy::Accept,
            ChainPolicy::Drop => NfChainPolicy::Drop,
        });
    }
    c
}

fn rule_object(table: &'static str, chain: &str, rule: &RuleDef) -> schema::Rule<'static> {
    let mut expr: Vec<Statement<'static>> = rule.matches.iter().map(match_statement).collect();
    if rule.counter {
        expr.push(Statement::Counter(stmt::Counter::Anonymous(None)));
    }
    if let Some(prefix) = &rule.log {
        expr.push(Statement::Log(Some(stmt::Log {
            prefix: Some(prefix.clone().into()),
            group: None,
            snaplen: None,
            queue_threshold: None,
            level: None,
            flags: None,
        })));
    }
    if let Some(m) = rule.set_mark {
        expr.push(Statement::Mangle(stmt::Mangle {
            key: ct("mark"),
            value: Expression::Number(m),
        }));
    }
    expr.push(match &rule.verdict {
        RuleVerdict::Policy(Verdict::Accept) => Statement::Accept(None),
        RuleVerdict::Policy(Verdict::Drop) => Statement::Drop(None),
        RuleVerdict::Policy(Verdict::Reject) => jump(REJECT_CHAIN),
        RuleVerdict::Return => Statement::Return(None),
        RuleVerdict::TcpReset => Statement::Reject(Some(stmt::Reject::new(
            Some(stmt::RejectType::TCPReset),
            None,
        ))),
        RuleVerdict::IcmpxUnreachable => Statement::Reject(Some(stmt::Reject::new(
            Some(stmt::RejectType::ICMPX),
            Some(nftables::types::RejectCode::PortUnreach),
        ))),
        RuleVerdict::Jump(c) => jump(c),
        RuleVerdict::UidMap(map) => Statement::VerdictMap(stmt::VerdictMap {
            key: meta(expr::MetaKey::Skuid),
            data: Expression::Named(NamedExpression::Set(
                map.iter()
                    .map(|(uid, c)| {
                        SetItem::Mapping(
                            Expression::Number(*uid),
                            Expression::Verdict(expr::Verdict::Jump(stmt::JumpTarget {
                                target: c.clone().into(),
                            })),
                        )
                    })
                    .collect(),
            )),
        }),
    });
    schema::Rule {
        family: NfFamily::INet,
        table: table.into(),
        chain: chain.to_owned().into(),
        expr: Cow::Owned(expr),
        comment: rule.comment.clone().map(Cow::Owned),
        ..schema::Rule::default()
    }
}

fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(stmt::JumpTarget {
        target: chain.to_owned().into(),
    })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(stmt::Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn meta(key: expr::MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(expr::Meta { key }))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(expr::CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(expr::Payload::PayloadField(
        expr::PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn net(n: &ipnet::IpNet) -> Expression<'static> {
    if n.prefix_len() == n.max_prefix_len() {
        Expression::String(n.addr().to_string().into())
    } else {
        Expression::Named(NamedExpression::Prefix(expr::Prefix {
            addr: Box::new(Expression::String(n.addr().to_string().into())),
            len: u32::from(n.prefix_len()),
        }))
    }
}

/// Networks as an anonymous set.
fn net_set(nets: &[ipnet::IpNet]) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        nets.iter().map(|n| SetItem::Element(net(n))).collect(),
    ))
}

fn ports(p: &palisade_dbus::policy::PortSet) -> Expression<'static> {
    let one = |r: &palisade_dbus::policy::PortRange| {
        if r.first() == r.last() {
            Expression::Number(u32::from(r.first()))
        } else {
            Expression::Range(Box::new(expr::Range {
                range: [
                    Expression::Number(u32::from(r.first())),
                    Expression::Number(u32::from(r.last())),
                ],
            }))
        }
    };
    match p.ranges() {
        [r] => one(r),
        many => Expression::Named(NamedExpression::Set(
            many.iter().map(|r| SetItem::Element(one(r))).collect(),
        )),
    }
}

fn match_statement(m: &Match) -> Statement<'static> {
    match m {
        Match::Family(f) => eq(
            meta(expr::MetaKey::Nfproto),
            Expression::String(nfproto(*f).into()),
        ),
        Match::L4Proto(p) => eq(
            meta(expr::MetaKey::L4proto),
            Expression::String((*p).into()),
        ),
        Match::Daddr(n) => eq(payload(nft_family(family_of(n)), "daddr"), net(n)),
        Match::DaddrAnyOf(f, nets) => eq(payload(nft_family(*f), "daddr"), net_set(nets)),
        Match::DaddrNoneOf(f, nets) => Statement::Match(stmt::Match {
            left: payload(nft_family(*f), "daddr"),
            right: net_set(nets),
            op: Operator::NEQ,
        }),
        Match::DaddrInSet(f, set) => eq(
            payload(nft_family(*f), "daddr"),
            Expression::String(format!("@{set}").into()),
        ),
        Match::Dport(p, set) => eq(payload(p, "dport"), ports(set)),
        Match::Sport(p, set) => eq(payload(p, "sport"), ports(set)),
        Match::IcmpType(p, t) => eq(payload(p, "type"), Expression::Number(u32::from(*t))),
        Match::IcmpTypeAnyOf(p, types) => eq(
            payload(p, "type"),
            Expression::Named(NamedExpression::Set(
                types
                    .iter()
                    .map(|t| SetItem::Element(Expression::Number(u32::from(*t))))
                    .collect(),
            )),
        ),
        Match::HopLimit(h) => eq(
            payload("ip6", "hoplimit"),
            Expression::Number(u32::from(*h)),
        ),
        Match::Oif(name) => eq(meta(expr::MetaKey::Oif), Expression::String((*name).into())),
        Match::CtEstablished => Statement::Match(stmt::Match {
            left: ct("state"),
            right: Expression::List(vec![
                Expression::String("established".into()),
                Expression::String("related".into()),
            ]),
            op: Operator::IN,
        }),
        Match::CtMarkInSet(set) => eq(ct("mark"), Expression::String(format!("@{set}").into())),
        Match::CtReply => eq(ct("direction"), Expression::String("reply".into())),
        Match::CtNew => Statement::Match(stmt::Match {
            left: ct("state"),
            right: Expression::List(vec![Expression::String("new".into())]),
            op: Operator::IN,
        }),
        Match::ConsoleEndpoint(f, set) => eq(
            Expression::Named(NamedExpression::Concat(vec![
                payload(nft_family(*f), "daddr"),
                payload("tcp", "dport"),
            ])),
            Expression::String(format!("@{set}").into()),
        ),
        Match::ConsoleNotAllowed(f, set) => Statement::Match(stmt::Match {
            left: Expression::Named(NamedExpression::Concat(vec![
                meta(expr::MetaKey::Skuid),
                payload(nft_family(*f), "daddr"),
                payload("tcp", "dport"),
            ])),
            right: Expression::String(format!("@{set}").into()),
            op: Operator::NEQ,
        }),
    }
}
