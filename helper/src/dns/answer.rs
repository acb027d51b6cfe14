//! Reading a guest's question and the upstream's answer, and building the few answers the
//! forwarder gives itself (NXDOMAIN for blocked names, REFUSED in strict mode, SERVFAIL when it
//! cannot vouch for an answer). hickory-proto does every byte of parsing and encoding: nothing
//! here walks wire format by hand, so compression loops, oversized names and truncated records
//! are its parser's errors, which the forwarder turns into "drop" or FORMERR.
//!
//! What counts from an answer: the A and AAAA records reached from the asked name through its
//! CNAME chain, each with the smallest TTL along the way (the mapping holds only as long as
//! every link does). Records for other names in the same answer admit nothing.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::IpAddr;

/// Longest CNAME chain followed; longer ones admit nothing (real chains have a few links).
const MAX_CHAIN: usize = 16;

/// A guest's question, as far as the forwarder needs it.
#[derive(Debug, Clone)]
pub struct Question {
    /// The message id, echoed by every answer.
    pub id: u16,
    /// The asked name, lower case, without the final dot.
    pub name: String,
    /// The record type asked for.
    pub kind: RecordType,
    query: Query,
    recursion_desired: bool,
}

/// Why a message from a guest is not a question the forwarder passes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAQuestion {
    /// Not even a DNS header: dropped without an answer.
    Unreadable,
    /// A DNS message, but not one standard query with one question: answered with this code.
    Unsupported { id: u16, code: ResponseCode },
}

/// Reads a guest's message.
pub fn read_question(bytes: &[u8]) -> Result<Question, NotAQuestion> {
    let message = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) if bytes.len() >= 12 => {
            return Err(NotAQuestion::Unsupported {
                id: u16::from_be_bytes([bytes[0], bytes[1]]),
                code: ResponseCode::FormErr,
            })
        }
        Err(_) => return Err(NotAQuestion::Unreadable),
    };
    if message.message_type() != MessageType::Query {
        return Err(NotAQuestion::Unreadable);
    }
    let unsupported = |code| NotAQuestion::Unsupported {
        id: message.id(),
        code,
    };
    if message.op_code() != OpCode::Query {
        return Err(unsupported(ResponseCode::NotImp));
    }
    let [query] = message.queries() else {
        return Err(unsupported(ResponseCode::FormErr));
    };
    Ok(Question {
        id: message.id(),
        name: plain_name(query.name()),
        kind: query.query_type(),
        query: query.clone(),
        recursion_desired: message.recursion_desired(),
    })
}

/// The helper's own question for `name` (an A or AAAA query asking for recursion), and its
/// bytes; `None` for a name hickory cannot write.
pub fn own_question(name: &str, kind: RecordType, id: u16) -> Option<(Question, Vec<u8>)> {
    let mut fqdn = Name::from_ascii(name).ok()?;
    fqdn.set_fqdn(true);
    let query = Query::query(fqdn, kind);
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(query.clone());
    let bytes = m.to_vec().ok()?;
    let q = Question {
        id,
        name: plain_name(query.name()),
        kind,
        query,
        recursion_desired: true,
    };
    Some((q, bytes))
}

/// A name as the policy writes names: lower case, no final dot (the root is "").
pub fn plain_name(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// The forwarder's own answer to `q`: no records, just `code`.
pub fn own_answer(q: &Question, code: ResponseCode) -> Vec<u8> {
    let mut m = Message::error_msg(q.id, OpCode::Query, code);
    m.add_query(q.query.clone())
        .set_recursion_desired(q.recursion_desired)
        .set_recursion_available(true);
    m.to_vec().unwrap_or_default()
}

/// A bare error answer for a message that was not a question the forwarder reads.
pub fn error_answer(id: u16, code: ResponseCode) -> Vec<u8> {
    Message::error_msg(id, OpCode::Query, code)
        .to_vec()
        .unwrap_or_default()
}

/// What an upstream answer says about the asked name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// The answer's code (NOERROR, NXDOMAIN, ...).
    pub code: ResponseCode,
    /// The addresses the asked name leads to, each with its effective TTL in seconds.
    pub found: Vec<(IpAddr, u32)>,
    /// The answer was cut short (TC): the guest will ask again over TCP.
    pub truncated: bool,
}

/// Why an upstream answer is not passed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    /// hickory-proto cannot read it.
    #[error("the upstream's answer cannot be read")]
    Unreadable,
    /// It answers another message or another question.
    #[error("the upstream answered another question")]
    Mismatch,
}

/// Reads `answer` to `q`: the A/AAAA records reached from the asked name through CNAMEs.
pub fn addresses(answer: &[u8], q: &Question) -> Result<Addresses, BadAnswer> {
    let m = Message::from_vec(answer).map_err(|_| BadAnswer::Unreadable)?;
    let same_question = matches!(m.queries(), [a] if a.query_type() == q.kind
        && a.query_class() == q.query.query_class()
        && plain_name(a.name()) == q.name);
    if m.id() != q.id || m.message_type() != MessageType::Response || !same_question {
        return Err(BadAnswer::Mismatch);
    }
    let mut current = q.name.clone();
    let mut chain_ttl = u32::MAX;
    for _ in 0..MAX_CHAIN {
        let next = m.answers().iter().find_map(|r| match r.data() {
            RData::CNAME(target) if plain_name(r.name()) == current => {
                Some((plain_name(&target.0), r.ttl()))
            }
            _ => None,
        });
        match next {
            Some((target, ttl)) if target != current => {
                current = target;
                chain_ttl = chain_ttl.min(ttl);
            }
            _ => break,
        }
    }
    let found = m
        .answers()
        .iter()
        .filter(|r| plain_name(r.name()) == current)
        .filter_map(|r| {
            let ttl = r.ttl().min(chain_ttl);
            match r.data() {
                RData::A(a) => Some((IpAddr::V4(a.0), ttl)),
                RData::AAAA(a) => Some((IpAddr::V6(a.0), ttl)),
                _ => None,
            }
        })
        .collect();
    Ok(Addresses {
        code: m.response_code(),
        found,
        truncated: m.truncated(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::Record;
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn question(n: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(name(n), kind));
        m.to_vec().unwrap_or_else(|e| panic!("{e}"))
    }

    fn answer(q: &[u8], records: Vec<Record>) -> Vec<u8> {
        let mut m = Message::from_vec(q).unwrap_or_else(|e| panic!("{e}"));
        m.set_message_type(MessageType::Response);
        for r in records {
            m.add_answer(r);
        }
        m.to_vec().unwrap_or_else(|e| panic!("{e}"))
    }

    fn a(n: &str, ttl: u32, addr: [u8; 4]) -> Record {
        Record::from_rdata(
            name(n),
            ttl,
            RData::A(A::from(std::net::Ipv4Addr::from(addr))),
        )
    }

    fn cname(n: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(name(n), ttl, RData::CNAME(CNAME(name(target))))
    }

    #[test]
    fn a_question_is_read_in_lower_case_without_the_final_dot() {
        let q = read_question(&question("Allowed.TEST.", RecordType::A))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (q.id, q.name.as_str(), q.kind),
            (7, "allowed.test", RecordType::A)
        );
        let nx = Message::from_vec(&own_answer(&q, ResponseCode::NXDomain))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(nx.id(), 7);
        assert_eq!(nx.response_code(), ResponseCode::NXDomain);
        assert_eq!(nx.queries().len(), 1);
        assert!(nx.recursion_desired());
    }

    #[test]
    fn garbage_is_dropped_and_odd_messages_get_an_error_code() {
        assert_eq!(
            read_question(b"\x01\x02").err(),
            Some(NotAQuestion::Unreadable)
        );
        let mut junk = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        // A name of one label that claims 63 bytes and ends the message: not readable.
        junk.extend_from_slice(&[63, b'a']);
        assert!(matches!(
            read_question(&junk),
            Err(NotAQuestion::Unsupported {
                id: 0x1234,
                code: ResponseCode::FormErr
            })
        ));
        // A compression pointer to itself.
        let mut looped = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(read_question(&looped).is_err());
        let mut two = Message::new();
        two.set_id(9)
            .add_query(Query::query(name("a.test."), RecordType::A))
            .add_query(Query::query(name("b.test."), RecordType::A));
        let two = two.to_vec().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_question(&two),
            Err(NotAQuestion::Unsupported {
                id: 9,
                code: ResponseCode::FormErr
            })
        ));
    }

    #[test]
    fn the_cname_chain_leads_to_the_addresses_that_count_with_the_smallest_ttl() {
        let q = question("www.allowed.test.", RecordType::A);
        let ans = answer(
            &q,
            vec![
                cname("www.allowed.test.", 30, "edge.cdn.test."),
                cname("edge.cdn.test.", 300, "node.cdn.test."),
                a("node.cdn.test.", 60, [192, 0, 2, 1]),
                a("node.cdn.test.", 10, [192, 0, 2, 2]),
                // Another name's record in the same answer admits nothing.
                a("evil.test.", 600, [203, 0, 113, 9]),
            ],
        );
        let read = read_question(&q).unwrap_or_else(|e| panic!("{e:?}"));
        let got = addresses(&ans, &read).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got.found,
            vec![
                ("192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}")), 30),
                ("192.0.2.2".parse().unwrap_or_else(|e| panic!("{e}")), 10),
            ]
        );
        assert_eq!(got.code, ResponseCode::NoError);
    }

    #[test]
    fn a_cname_loop_ends_and_admits_nothing() {
        let q = question("a.test.", RecordType::AAAA);
        let ans = answer(
            &q,
            vec![
                cname("a.test.", 30, "b.test."),
                cname("b.test.", 30, "a.test."),
                Record::from_rdata(
                    name("x.test."),
                    30,
                    RData::AAAA(AAAA::from(std::net::Ipv6Addr::LOCALHOST)),
                ),
            ],
        );
        let read = read_question(&q).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(addresses(&ans, &read)
            .unwrap_or_else(|e| panic!("{e}"))
            .found
            .is_empty());
    }

    #[test]
    fn an_answer_to_another_question_is_refused() {
        let q = question("allowed.test.", RecordType::A);
        let other = answer(
            &question("other.test.", RecordType::A),
            vec![a("other.test.", 30, [192, 0, 2, 1])],
        );
        let read = read_question(&q).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(addresses(&other, &read), Err(BadAnswer::Mismatch));
        assert_eq!(addresses(b"\x00", &read), Err(BadAnswer::Unreadable));
    }
}
