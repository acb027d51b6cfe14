use super::wire::*;
use super::*;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// A decoder for what the encoder wrote, so the tests read messages the way the kernel does.

#[derive(Debug)]
struct Msg {
    msg_type: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    len: usize,
    body: Vec<u8>,
}

fn messages(mut buf: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("a field of its size")) as usize;
        assert!(
            len >= NLMSG_HDRLEN + NFGENMSG_LEN && len <= buf.len(),
            "bad length {len}"
        );
        assert_eq!(len % 4, 0, "messages are 4-byte aligned");
        out.push(Msg {
            msg_type: u16::from_ne_bytes(buf[4..6].try_into().expect("a field of its size")),
            flags: u16::from_ne_bytes(buf[6..8].try_into().expect("a field of its size")),
            seq: u32::from_ne_bytes(buf[8..12].try_into().expect("a field of its size")),
            family: buf[16],
            res_id: u16::from_be_bytes(buf[18..20].try_into().expect("a field of its size")),
            len,
            body: buf[20..len].to_vec(),
        });
        buf = &buf[len..];
    }
    out
}

/// Attributes as (type without flags, nested flag, payload).
fn attrs(mut buf: &[u8]) -> Vec<(u16, bool, Vec<u8>)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]);
        assert!(len >= 4 && len <= buf.len(), "bad attribute length {len}");
        out.push((
            kind & 0x3fff,
            kind & NLA_F_NESTED != 0,
            buf[4..len].to_vec(),
        ));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

fn attr(list: &[(u16, bool, Vec<u8>)], kind: u16) -> Option<Vec<u8>> {
    list.iter().find(|a| a.0 == kind).map(|a| a.2.clone())
}

fn string(payload: &[u8]) -> String {
    assert_eq!(payload.last(), Some(&0), "strings are NUL-terminated");
    String::from_utf8(payload[..payload.len() - 1].to_vec()).expect("UTF-8")
}

fn be32(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload.try_into().expect("a field of its size"))
}

/// The kernel elements of one element message, decoded back.
fn decode_elements(body: &[u8]) -> (String, String, Vec<KernelElement>) {
    let top = attrs(body);
    let table = string(&attr(&top, NFTA_SET_ELEM_LIST_TABLE).expect("the attribute"));
    let set = string(&attr(&top, NFTA_SET_ELEM_LIST_SET).expect("the attribute"));
    let list = top
        .iter()
        .find(|a| a.0 == NFTA_SET_ELEM_LIST_ELEMENTS)
        .expect("an element list");
    assert!(list.1, "the element list is nested");
    let mut out = Vec::new();
    for (kind, nested, payload) in attrs(&list.2) {
        assert_eq!((kind, nested), (NFTA_LIST_ELEM, true));
        let fields = attrs(&payload);
        let key = attrs(&attr(&fields, NFTA_SET_ELEM_KEY).expect("the attribute"));
        let value = attr(&key, NFTA_DATA_VALUE).expect("the attribute");
        let key = match value.len() {
            4 => Key::V4(
                <[u8; 4]>::try_from(value)
                    .expect("a key of its size")
                    .into(),
            ),
            16 => Key::V6(
                <[u8; 16]>::try_from(value)
                    .expect("a key of its size")
                    .into(),
            ),
            n => panic!("key of {n} bytes"),
        };
        let flags = attr(&fields, NFTA_SET_ELEM_FLAGS).map_or(0, |p| be32(&p));
        let timeout_ms = attr(&fields, NFTA_SET_ELEM_TIMEOUT)
            .map(|p| u64::from_be_bytes(p.try_into().expect("a field of its size")));
        let open =
            attr(&fields, NFTA_SET_ELEM_USERDATA).is_some_and(|u| u == ELEM_USERDATA_INTERVAL_OPEN);
        out.push(KernelElement {
            key,
            end: flags & NFT_SET_ELEM_INTERVAL_END != 0,
            open,
            timeout_ms,
        });
    }
    (table, set, out)
}

fn set_ref(set: &str) -> SetRef {
    SetRef::new(TableFamily::Inet, "palisade_nltest", set).expect("valid names")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("a valid address")
}

fn v4(text: &str) -> Key {
    Key::V4(text.parse().expect("a valid address"))
}

fn v6(text: &str) -> Key {
    Key::V6(text.parse().expect("a valid address"))
}

fn start(key: Key) -> KernelElement {
    KernelElement {
        key,
        end: false,
        open: false,
        timeout_ms: None,
    }
}

fn end(key: Key) -> KernelElement {
    KernelElement {
        end: true,
        ..start(key)
    }
}

fn open(key: Key) -> KernelElement {
    KernelElement {
        open: true,
        ..start(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding, without root.

#[test]
fn interval_ends_at_the_first_address_after_the_network() {
    assert_eq!(
        interval_bounds(&net("10.0.0.0/24")),
        (v4("10.0.0.0"), Some(v4("10.0.1.0")))
    );
    assert_eq!(
        interval_bounds(&net("10.1.2.3/32")),
        (v4("10.1.2.3"), Some(v4("10.1.2.4")))
    );
    // Host bits are ignored, as nft does.
    assert_eq!(
        interval_bounds(&net("10.0.0.5/24")),
        (v4("10.0.0.0"), Some(v4("10.0.1.0")))
    );
    assert_eq!(
        interval_bounds(&net("10.255.255.255/32")),
        (v4("10.255.255.255"), Some(v4("11.0.0.0")))
    );
    assert_eq!(
        interval_bounds(&net("2001:db8::/32")),
        (v6("2001:db8::"), Some(v6("2001:db9::")))
    );
    assert_eq!(
        interval_bounds(&net("2001:db8::1/128")),
        (v6("2001:db8::1"), Some(v6("2001:db8::2")))
    );
    assert_eq!(interval_bounds(&net("::/128")), (v6("::"), Some(v6("::1"))));
}

#[test]
fn networks_reaching_the_top_have_no_end() {
    for (text, first) in [
        ("0.0.0.0/0", v4("0.0.0.0")),
        ("255.255.255.255/32", v4("255.255.255.255")),
        ("255.255.255.0/24", v4("255.255.255.0")),
        ("128.0.0.0/1", v4("128.0.0.0")),
        ("::/0", v6("::")),
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ),
        ("ff00::/8", v6("ff00::")),
    ] {
        let elements: Vec<_> = Element::Network(net(text)).kernel_elements().collect();
        assert_eq!(elements, vec![open(first)], "{text}");
    }
    let elements: Vec<_> = Element::Network(net("0.0.0.0/1"))
        .kernel_elements()
        .collect();
    assert_eq!(elements, vec![start(v4("0.0.0.0")), end(v4("128.0.0.0"))]);
}

#[test]
fn elements_are_laid_out_as_nft_lays_them_out() {
    // `nft --debug=mnl add element inet t s { 10.0.0.0/24 }`, lengths in host order.
    let mut buf = Vec::new();
    for e in Element::Network(net("10.0.0.0/24")).kernel_elements() {
        let before = buf.len();
        e.encode(&mut buf);
        assert_eq!(buf.len() - before, e.size());
    }
    let mut expected = Vec::new();
    for chunk in [
        &[16u16.to_ne_bytes(), (1 | NLA_F_NESTED).to_ne_bytes()].concat()[..],
        &[12u16.to_ne_bytes(), (1 | NLA_F_NESTED).to_ne_bytes()].concat(),
        &[8u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat(),
        &[10, 0, 0, 0],
        &[24u16.to_ne_bytes(), (1 | NLA_F_NESTED).to_ne_bytes()].concat(),
        &[12u16.to_ne_bytes(), (1 | NLA_F_NESTED).to_ne_bytes()].concat(),
        &[8u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat(),
        &[10, 0, 1, 0],
        &[8u16.to_ne_bytes(), 3u16.to_ne_bytes()].concat(),
        &[0, 0, 0, 1],
    ] {
        expected.extend_from_slice(chunk);
    }
    assert_eq!(buf, expected);
}

#[test]
fn timeouts_are_big_endian_milliseconds_and_never_zero() {
    let e = Element::expiring(v6("::1"), Duration::from_secs(10));
    let k: Vec<_> = e.kernel_elements().collect();
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].timeout_ms, Some(10_000));
    let mut buf = Vec::new();
    k[0].encode(&mut buf);
    assert_eq!(buf.len(), k[0].size());
    let fields = attrs(&attrs(&buf)[0].2);
    assert_eq!(
        attr(&fields, NFTA_SET_ELEM_TIMEOUT).expect("the attribute"),
        10_000u64.to_be_bytes()
    );
    let key = attrs(&attr(&fields, NFTA_SET_ELEM_KEY).expect("the attribute"));
    assert_eq!(
        attr(&key, NFTA_DATA_VALUE).expect("the attribute"),
        "::1".parse::<Ipv6Addr>().expect("a valid address").octets()
    );
    let zero = Element::expiring(v4("10.0.0.1"), Duration::ZERO);
    assert_eq!(
        zero.kernel_elements()
            .next()
            .expect("one element")
            .timeout_ms,
        Some(1)
    );
    let plain = Element::single(v4("10.0.0.1"));
    assert_eq!(
        plain
            .kernel_elements()
            .next()
            .expect("one element")
            .timeout_ms,
        None
    );
}

#[test]
fn a_batch_is_framed_and_every_message_asks_for_an_answer() {
    let mut batch = Batch::new();
    assert!(batch.is_empty());
    batch.add_elements(&set_ref("s"), [Element::Network(net("10.0.0.0/8"))]);
    batch.delete_elements(&set_ref("s"), [Element::Network(net("10.0.0.0/8"))]);
    batch.flush_set(&set_ref("s"));
    assert_eq!(batch.message_count(), 3);
    let end_at = batch.seal(1000);
    let all = messages(&batch.buf);
    assert_eq!(all.len(), 5);
    let (begin, end) = (&all[0], &all[4]);
    assert_eq!(begin.msg_type, NFNL_MSG_BATCH_BEGIN);
    assert_eq!(end.msg_type, NFNL_MSG_BATCH_END);
    for marker in [begin, end] {
        assert_eq!(marker.flags, NLM_F_REQUEST);
        assert_eq!(marker.res_id, NFNL_SUBSYS_NFTABLES);
        assert_eq!(marker.family, 0);
        assert!(marker.body.is_empty());
    }
    let seqs: Vec<u32> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1000, 1001, 1002, 1003, 1004]);
    for m in &all[1..4] {
        assert_ne!(m.flags & NLM_F_ACK, 0, "every message asks for an answer");
        assert_eq!(m.family, libc::NFPROTO_INET as u8);
    }
    assert_eq!(all[1].msg_type, nft_type(NFT_MSG_NEWSETELEM));
    assert_ne!(all[1].flags & NLM_F_CREATE, 0);
    assert_eq!(all[2].msg_type, nft_type(NFT_MSG_DELSETELEM));
    assert_eq!(all[3].msg_type, nft_type(NFT_MSG_DELSETELEM));
    // A flush names the set and no element.
    let flush = attrs(&all[3].body);
    assert_eq!(
        string(&attr(&flush, NFTA_SET_ELEM_LIST_SET).expect("the attribute")),
        "s"
    );
    assert!(attr(&flush, NFTA_SET_ELEM_LIST_ELEMENTS).is_none());
    batch.unseal(end_at);
    assert_eq!(messages(&batch.buf).len(), 4);
    batch.clear();
    assert!(batch.is_empty());
    assert_eq!(messages(&batch.buf).len(), 1);
}

#[test]
fn long_element_lists_are_split_below_64_kib_and_lose_nothing() {
    // 60,000 IPv6 networks with every kind of element, and 200,000 IPv4 ones.
    let v6_nets: Vec<Element> = (0..60_000u128)
        .map(|i| {
            let base = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + (i << 64);
            Element::Network(IpNet::new(Ipv6Addr::from(base).into(), 64).expect("a valid prefix"))
        })
        .chain([Element::Network(net("ff00::/8"))])
        .collect();
    let v4_nets = (0..200_000u32).map(|i| {
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 256;
        let prefix = if i % 2 == 0 { 24 } else { 32 };
        Element::Network(IpNet::new(Ipv4Addr::from(base).into(), prefix).expect("a valid prefix"))
    });
    let timeouts: Vec<Element> = (0..5_000u32)
        .map(|i| Element::expiring(Ipv4Addr::from(i), Duration::from_secs(60)))
        .collect();
    for (name, elements) in [
        ("six", v6_nets.clone()),
        ("four", v4_nets.collect()),
        ("dns", timeouts),
    ] {
        let mut batch = Batch::new();
        let taken = batch.add_elements(&set_ref(name), elements.iter().copied());
        assert_eq!(taken, elements.len());
        let expected: Vec<KernelElement> =
            elements.iter().flat_map(|e| e.kernel_elements()).collect();
        batch.seal(1);
        let all = messages(&batch.buf);
        assert!(all.len() > 3, "{name}: the list was split");
        let mut decoded = Vec::new();
        let mut counted = 0;
        for (i, m) in all[1..all.len() - 1].iter().enumerate() {
            assert!(m.len <= 65_535, "{name}: message of {} bytes", m.len);
            let (table, set, elems) = decode_elements(&m.body);
            assert_eq!((table.as_str(), set.as_str()), ("palisade_nltest", name));
            counted += batch.messages[i].elements;
            // Messages are filled: the next element would not have fitted.
            if i + 2 < all.len() - 1 {
                assert!(
                    m.len + 64 > 65_535,
                    "{name}: message {i} only {} bytes",
                    m.len
                );
            }
            decoded.extend(elems);
        }
        assert_eq!(decoded, expected, "{name}");
        // Each element counts once, or twice when a network's end went to the next message.
        assert!(
            counted >= taken && counted < taken + all.len(),
            "{name}: {counted}"
        );
    }
}

#[test]
fn no_elements_no_message() {
    let mut batch = Batch::new();
    assert_eq!(batch.add_elements(&set_ref("s"), []), 0);
    assert!(batch.is_empty());
}

#[test]
fn a_new_set_carries_what_nft_sends() {
    let mut batch = Batch::new();
    batch.new_set(
        &set_ref("q"),
        &SetSpec {
            key: KeyType::Ipv4Addr,
            interval: true,
            timeout: false,
            default_timeout: Some(Duration::from_secs(300)),
        },
    );
    batch.new_set(
        &set_ref("r"),
        &SetSpec {
            key: KeyType::Ipv6Addr,
            interval: false,
            timeout: false,
            default_timeout: None,
        },
    );
    batch.delete_set(&set_ref("r"));
    batch.seal(1);
    let all = messages(&batch.buf);
    let q = attrs(&all[1].body);
    assert_eq!(all[1].msg_type, nft_type(NFT_MSG_NEWSET));
    assert_eq!(
        string(&attr(&q, NFTA_SET_TABLE).expect("the attribute")),
        "palisade_nltest"
    );
    assert_eq!(
        string(&attr(&q, NFTA_SET_NAME).expect("the attribute")),
        "q"
    );
    assert_eq!(
        be32(&attr(&q, NFTA_SET_FLAGS).expect("the attribute")),
        0x14
    );
    assert_eq!(
        be32(&attr(&q, NFTA_SET_KEY_TYPE).expect("the attribute")),
        7
    );
    assert_eq!(be32(&attr(&q, NFTA_SET_KEY_LEN).expect("the attribute")), 4);
    assert_eq!(be32(&attr(&q, NFTA_SET_ID).expect("the attribute")), 1);
    assert_eq!(
        attr(&q, NFTA_SET_TIMEOUT).expect("the attribute"),
        300_000u64.to_be_bytes()
    );
    assert_eq!(
        attr(&q, NFTA_SET_USERDATA).expect("the attribute"),
        SET_USERDATA_KEY_BIG_ENDIAN
    );
    let r = attrs(&all[2].body);
    assert_eq!(be32(&attr(&r, NFTA_SET_FLAGS).expect("the attribute")), 0);
    assert_eq!(
        be32(&attr(&r, NFTA_SET_KEY_TYPE).expect("the attribute")),
        8
    );
    assert_eq!(
        be32(&attr(&r, NFTA_SET_KEY_LEN).expect("the attribute")),
        16
    );
    assert_eq!(be32(&attr(&r, NFTA_SET_ID).expect("the attribute")), 2);
    assert!(attr(&r, NFTA_SET_TIMEOUT).is_none());
    assert_eq!(all[3].msg_type, nft_type(NFT_MSG_DELSET));
    assert_eq!(
        string(&attr(&attrs(&all[3].body), NFTA_SET_NAME).expect("the attribute")),
        "r"
    );
}

#[test]
fn names_are_checked_once() {
    assert!(SetRef::new(TableFamily::Inet, "palisade", "blocklist_v4").is_ok());
    assert!(SetRef::new(TableFamily::Inet, &"t".repeat(255), "s").is_ok());
    for (table, set) in [
        ("", "s"),
        ("t", ""),
        ("t", "a\0b"),
        (&"t".repeat(256)[..], "s"),
    ] {
        let err = SetRef::new(TableFamily::Inet, table, set).expect_err("the kernel refuses");
        assert!(
            err.to_string().contains("is not a valid nftables name"),
            "{err}"
        );
    }
    assert_eq!(
        SetRef::new(TableFamily::Ip6, "t", "s")
            .expect("valid names")
            .to_string(),
        "set ip6 t s"
    );
}

/// An answer as the kernel writes it: `nlmsgerr` with the request's header only (capped) and,
/// optionally, the extended-ack message.
fn answer(seq: u32, errno: i32, text: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-errno).to_ne_bytes());
    let mut request = Vec::new();
    let start = begin_message(
        &mut request,
        nft_type(NFT_MSG_NEWSETELEM),
        NLM_F_REQUEST,
        1,
        0,
    );
    end_message(&mut request, start);
    set_seq(&mut request, start, seq);
    body.extend_from_slice(&request[..NLMSG_HDRLEN]);
    let mut flags = NLM_F_CAPPED;
    if let Some(text) = text {
        flags |= NLM_F_ACK_TLVS;
        put_str(&mut body, NLMSGERR_ATTR_MSG, text);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&77u32.to_ne_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn answers_are_read_with_their_errno_and_text() {
    let mut datagram = answer(7, 0, None);
    datagram.extend(answer(8, libc::ENOENT, Some("set not found")));
    assert_eq!(
        parse_replies(&datagram).expect("well-formed answers"),
        vec![
            Reply::Ack {
                seq: 7,
                errno: 0,
                message: None
            },
            Reply::Ack {
                seq: 8,
                errno: libc::ENOENT,
                message: Some("set not found".to_owned())
            },
        ]
    );
    assert_eq!(parse_replies(&datagram[..datagram.len() - 3]), None);
    assert_eq!(parse_replies(&[]), Some(vec![]));
}

#[test]
fn a_refusal_is_a_sentence_naming_the_request() {
    let mut batch = Batch::new();
    batch.add_elements(&set_ref("present"), [Element::single(v4("10.0.0.1"))]);
    batch.add_elements(
        &set_ref("missing"),
        [
            Element::single(v4("10.0.0.1")),
            Element::single(v4("10.0.0.2")),
        ],
    );
    batch.delete_elements(&set_ref("present"), [Element::Network(net("10.0.0.0/8"))]);
    assert_eq!(
        batch.describe(2),
        "delete 1 element from set inet palisade_nltest present"
    );
    assert_eq!(batch.describe(9), "an unknown request");
    let err = NetlinkError::Refused {
        what: batch.describe(1),
        index: 2,
        count: 2,
        errno: libc::ENOENT,
        reason: reason(libc::ENOENT, None),
    };
    assert_eq!(
        err.to_string(),
        "the kernel refused to add 2 elements to set inet palisade_nltest missing (message 2 \
         of 2 in the transaction): No such file or directory (os error 2); nothing of the \
         transaction was applied"
    );
    assert_eq!(err.errno(), Some(libc::ENOENT));
    assert_eq!(
        reason(libc::EINVAL, Some("bad key")),
        "Invalid argument (os error 22): bad key"
    );
}

// ---------------------------------------------------------------------------------------------
// Listings, without root: descriptions as the kernel writes them, built with the writers above.

/// One message of a dump: an object of type `msg` described by `write`.
fn described(msg: u16, seq: u32, flags: u16, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::new();
    let start = begin_message(&mut buf, nft_type(msg), flags, libc::NFPROTO_INET as u8, 0);
    write(&mut buf);
    end_message(&mut buf, start);
    set_seq(&mut buf, start, seq);
    buf
}

/// A chain as `nf_tables_fill_chain_info` lays it out: table, handle, name, and for a base
/// chain the hook, policy and type; then its use count.
fn chain_message(seq: u32, table: &str, name: &str, base: bool) -> Vec<u8> {
    described(NFT_MSG_NEWCHAIN, seq, NLM_F_MULTI, |buf| {
        put_str(buf, NFTA_CHAIN_TABLE, table);
        put_be64(buf, 2, 7); // NFTA_CHAIN_HANDLE
        put_str(buf, NFTA_CHAIN_NAME, name);
        if base {
            let hook = begin_nest(buf, NFTA_CHAIN_HOOK);
            put_be32(buf, 1, 1); // NFTA_HOOK_HOOKNUM: input
            put_be32(buf, 2, 0); // NFTA_HOOK_PRIORITY
            end_nest(buf, hook);
            put_be32(buf, 5, 1); // NFTA_CHAIN_POLICY: accept
            put_str(buf, 7, "filter"); // NFTA_CHAIN_TYPE
        }
        put_be32(buf, 8, 0); // NFTA_CHAIN_USE
    })
}

/// A set as `nf_tables_fill_set` lays it out (flags only when not 0), user data and all.
fn set_message(seq: u32, table: &str, name: &str, flags: u32, key: KeyType) -> Vec<u8> {
    described(NFT_MSG_NEWSET, seq, NLM_F_MULTI, |buf| {
        put_str(buf, NFTA_SET_TABLE, table);
        put_str(buf, NFTA_SET_NAME, name);
        put_be64(buf, 16, 3); // NFTA_SET_HANDLE
        if flags != 0 {
            put_be32(buf, NFTA_SET_FLAGS, flags);
        }
        put_be32(buf, NFTA_SET_KEY_TYPE, key.datatype());
        put_be32(buf, NFTA_SET_KEY_LEN, key.len());
        put_be32(buf, 6, 0); // NFTA_SET_POLICY
        put_attr(buf, NFTA_SET_USERDATA, &SET_USERDATA_KEY_BIG_ENDIAN);
    })
}

/// `NLMSG_DONE`, its body the dump's outcome (0 or a negative errno).
fn done_message(seq: u32, flags: u16, errno: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((NLMSG_HDRLEN + 4) as u32).to_ne_bytes());
    out.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_MULTI | flags).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&77u32.to_ne_bytes());
    out.extend_from_slice(&(-errno).to_ne_bytes());
    out
}

fn chain(name: &str, base: bool) -> ChainInfo {
    ChainInfo {
        name: name.to_owned(),
        base,
    }
}

fn set_info(name: &str, flags: u32, key_type: u32, key_len: u32) -> SetInfo {
    SetInfo {
        name: name.to_owned(),
        flags,
        key_type,
        key_len,
    }
}

/// Feeds datagrams to a reader of a chain dump of `palisade_nltest` sent with sequence 40;
/// returns what each datagram ended with.
fn read_chain_dump(datagrams: &[Vec<u8>]) -> Vec<Option<DumpEnd<ChainInfo>>> {
    let mut reader = DumpReader::new(40, NFT_MSG_NEWCHAIN, |attrs: &[u8]| {
        parse_chain(attrs, "palisade_nltest")
    });
    datagrams
        .iter()
        .map(|d| reader.take(parse_replies(d).expect("well-formed answers")))
        .collect()
}

#[test]
fn descriptions_are_read_from_the_kernels_layout() {
    let chains = [
        chain_message(1, "palisade_nltest", "input", true),
        chain_message(1, "palisade_nltest", "allow", false),
        chain_message(1, "other", "input", true),
    ];
    let parsed: Vec<_> = chains
        .iter()
        .map(
            |m| match &parse_replies(m).expect("a well-formed message")[..] {
                [Reply::Other {
                    seq: 1,
                    msg_type,
                    flags,
                    attrs,
                }] => {
                    assert_eq!(*msg_type, nft_type(NFT_MSG_NEWCHAIN));
                    assert_eq!(*flags, NLM_F_MULTI);
                    parse_chain(attrs, "palisade_nltest").expect("a well-formed chain")
                }
                other => panic!("unexpected answers {other:?}"),
            },
        )
        .collect();
    assert_eq!(
        parsed,
        vec![
            Some(chain("input", true)),
            Some(chain("allow", false)),
            None
        ]
    );

    let sets = [
        set_message(
            1,
            "palisade_nltest",
            "block4",
            NFT_SET_INTERVAL,
            KeyType::Ipv4Addr,
        ),
        set_message(
            1,
            "palisade_nltest",
            "dns6",
            NFT_SET_TIMEOUT,
            KeyType::Ipv6Addr,
        ),
        set_message(1, "palisade_nltest", "plain", 0, KeyType::Ipv6Addr),
        set_message(1, "palisade_nltest", "__set0", 0x3, KeyType::Ipv4Addr),
        set_message(1, "other", "block4", NFT_SET_INTERVAL, KeyType::Ipv4Addr),
    ];
    let parsed: Vec<_> = sets
        .iter()
        .map(
            |m| match &parse_replies(m).expect("a well-formed message")[..] {
                [Reply::Other { attrs, .. }] => {
                    parse_set(attrs, "palisade_nltest").expect("a well-formed set")
                }
                other => panic!("unexpected answers {other:?}"),
            },
        )
        .collect();
    assert_eq!(
        parsed,
        vec![
            Some(set_info("block4", 0x4, 7, 4)),
            Some(set_info("dns6", 0x10, 8, 16)),
            Some(set_info("plain", 0, 8, 16)),
            Some(set_info("__set0", 0x3, 7, 4)),
            None,
        ]
    );
    let anonymous = set_info("__set0", 0x3, 7, 4);
    assert!(anonymous.anonymous() && !anonymous.interval() && !anonymous.timeout());
    assert!(set_info("b", 0x4, 7, 4).interval());
    assert!(set_info("d", 0x10, 8, 16).timeout());
}

#[test]
fn a_dump_is_read_over_datagrams_to_its_done() {
    // Several descriptions in one datagram, the rest in the next; answers to other requests
    // (a late acknowledgement, a stale dump) in between are skipped.
    let mut first = chain_message(40, "palisade_nltest", "input", true);
    first.extend(chain_message(40, "other", "x", false));
    first.extend(answer(39, 0, None));
    first.extend(chain_message(39, "palisade_nltest", "stale", false));
    first.extend(chain_message(40, "palisade_nltest", "allow", false));
    let mut second = chain_message(40, "palisade_nltest", "log_drop", false);
    second.extend(done_message(39, 0, 0));
    second.extend(done_message(40, 0, 0));
    assert_eq!(
        read_chain_dump(&[first, second]),
        vec![
            None,
            Some(DumpEnd::Listed(vec![
                chain("input", true),
                chain("allow", false),
                chain("log_drop", false),
            ])),
        ]
    );
    // An empty dump.
    assert_eq!(
        read_chain_dump(&[done_message(40, 0, 0)]),
        vec![Some(DumpEnd::Listed(vec![]))]
    );
}

#[test]
fn a_dump_ends_missing_interrupted_failed_or_malformed() {
    // Refused before it began: a missing table, or another reason.
    assert_eq!(
        read_chain_dump(&[answer(40, libc::ENOENT, Some("table not found"))]),
        vec![Some(DumpEnd::Missing)]
    );
    assert_eq!(
        read_chain_dump(&[answer(40, libc::EPERM, None)]),
        vec![Some(DumpEnd::Failed {
            errno: libc::EPERM,
            message: None
        })]
    );
    // Failed part-way: the errno comes in NLMSG_DONE.
    let mut failed = chain_message(40, "palisade_nltest", "input", true);
    failed.extend(done_message(40, 0, libc::EMSGSIZE));
    assert_eq!(
        read_chain_dump(&[failed]),
        vec![Some(DumpEnd::Failed {
            errno: libc::EMSGSIZE,
            message: None
        })]
    );
    // The ruleset changed: read to the end, then reported.
    let first = chain_message(40, "palisade_nltest", "input", true);
    let mut second = described(NFT_MSG_NEWCHAIN, 40, NLM_F_MULTI | NLM_F_DUMP_INTR, |buf| {
        put_str(buf, NFTA_CHAIN_TABLE, "palisade_nltest");
        put_str(buf, NFTA_CHAIN_NAME, "allow");
    });
    second.extend(done_message(40, NLM_F_DUMP_INTR, 0));
    assert_eq!(
        read_chain_dump(&[first.clone(), second]),
        vec![None, Some(DumpEnd::Interrupted)]
    );
    // Only the done message carries the mark.
    assert_eq!(
        read_chain_dump(&[first.clone(), done_message(40, NLM_F_DUMP_INTR, 0)]),
        vec![None, Some(DumpEnd::Interrupted)]
    );
    // A description without a name: the dump is read to its end all the same.
    let nameless = described(NFT_MSG_NEWCHAIN, 40, NLM_F_MULTI, |buf| {
        put_str(buf, NFTA_CHAIN_TABLE, "palisade_nltest");
    });
    assert_eq!(
        read_chain_dump(&[nameless, first, done_message(40, 0, 0)]),
        vec![None, None, Some(DumpEnd::Malformed)]
    );
}

#[test]
fn malformed_descriptions_are_refused_never_a_panic() {
    let chain_bytes = chain_message(1, "palisade_nltest", "input", true);
    let set_bytes = set_message(1, "palisade_nltest", "block4", 0x4, KeyType::Ipv4Addr);
    for bytes in [&chain_bytes, &set_bytes] {
        let attrs = &bytes[NLMSG_HDRLEN + NFGENMSG_LEN..];
        assert!(parse_attrs(attrs).is_some());
        // Cut anywhere: an attribute list cut inside an attribute is malformed; cut between
        // attributes, what is left is read (and then lacks what comes later).
        for cut in 0..attrs.len() {
            let _ = parse_chain(&attrs[..cut], "palisade_nltest");
            let _ = parse_set(&attrs[..cut], "palisade_nltest");
        }
        for cut in 0..bytes.len() {
            let _ = parse_replies(&bytes[..cut]);
        }
        // Any one byte changed to anything.
        for at in 0..bytes.len() {
            for value in [0u8, 1, 3, 4, 5, 0x7f, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[at] = value;
                if let Some(replies) = parse_replies(&bad) {
                    for reply in replies {
                        if let Reply::Other { attrs, .. } = reply {
                            let _ = parse_chain(&attrs, "palisade_nltest");
                            let _ = parse_set(&attrs, "palisade_nltest");
                        }
                    }
                }
            }
        }
    }
    let attrs = &set_bytes[NLMSG_HDRLEN + NFGENMSG_LEN..];
    // A length below the header, past the end, or a header cut short.
    let header = |len: u16| [len.to_ne_bytes(), 1u16.to_ne_bytes()].concat();
    assert_eq!(parse_attrs(&header(2)), None);
    assert_eq!(parse_attrs(&[&header(9)[..], &[0; 4]].concat()), None);
    assert_eq!(parse_attrs(&header(8)[..2]), None);
    assert_eq!(parse_attrs(&[]), Some(vec![]));
    assert_eq!(
        parse_attrs(&[&header(5)[..], &[42, 0, 0, 0]].concat()),
        Some(vec![Attr {
            kind: 1,
            payload: &[42]
        }])
    );
    // The last attribute (6 bytes of user data, 2 of padding) cut by 3 bytes: into its payload.
    assert!(parse_set(&attrs[..attrs.len() - 2], "palisade_nltest").is_some());
    assert_eq!(
        parse_set(&attrs[..attrs.len() - 3], "palisade_nltest"),
        None
    );
    // A key type of 2 bytes instead of 4.
    let short_key = described(NFT_MSG_NEWSET, 1, 0, |buf| {
        put_str(buf, NFTA_SET_TABLE, "palisade_nltest");
        put_str(buf, NFTA_SET_NAME, "s");
        put_attr(buf, NFTA_SET_KEY_TYPE, &[0, 7]);
        put_be32(buf, NFTA_SET_KEY_LEN, 4);
    });
    assert_eq!(
        parse_set(&short_key[NLMSG_HDRLEN + NFGENMSG_LEN..], "palisade_nltest"),
        None
    );
    // No table, no name, an empty name.
    for write in [
        (|buf: &mut Vec<u8>| put_str(buf, NFTA_CHAIN_NAME, "input")) as fn(&mut Vec<u8>),
        |buf| put_str(buf, NFTA_CHAIN_TABLE, "palisade_nltest"),
        |buf| {
            put_str(buf, NFTA_CHAIN_TABLE, "palisade_nltest");
            put_str(buf, NFTA_CHAIN_NAME, "");
        },
    ] {
        let bytes = described(NFT_MSG_NEWCHAIN, 1, 0, write);
        assert_eq!(
            parse_chain(&bytes[NLMSG_HDRLEN + NFGENMSG_LEN..], "palisade_nltest"),
            None
        );
    }
    // A done message without its outcome.
    assert_eq!(
        parse_replies(&done_message(1, 0, 0)[..NLMSG_HDRLEN + 2]),
        None
    );
    let mut short_done = done_message(1, 0, 0);
    short_done.truncate(NLMSG_HDRLEN);
    short_done[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    assert_eq!(parse_replies(&short_done), None);
}

#[test]
fn listing_errors_are_sentences() {
    for (err, text) in [
        (
            NetlinkError::MalformedListing {
                what: "the sets of table inet palisade".to_owned(),
            },
            "the kernel's listing of the sets of table inet palisade is malformed",
        ),
        (
            NetlinkError::ListingInterrupted {
                what: "the chains of table inet palisade".to_owned(),
                attempts: 10,
            },
            "cannot list the chains of table inet palisade: the ruleset changed while it was \
             read, 10 times in a row",
        ),
        (
            NetlinkError::Listing {
                what: "the sets of table inet palisade".to_owned(),
                source: io::Error::from_raw_os_error(libc::EBUSY),
            },
            "cannot list the sets of table inet palisade: Device or resource busy (os error 16)",
        ),
    ] {
        assert_eq!(err.to_string(), text);
    }
}

// ---------------------------------------------------------------------------------------------
// Against the real kernel, as root, each test in a network namespace of its own.

/// Runs `f` on a new thread moved into a new network namespace: the namespace belongs to the
/// thread, and so do sockets it opens and programs it starts.
pub(crate) fn in_netns<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET) needs root");
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes())
            .expect("writes to the child");
    }
    let out = child.wait_with_output().expect("the child finishes");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

pub(crate) fn nft(args: &[&str]) -> String {
    run("nft", args, None)
}

const TABLE: &str = "
table inet palisade_nltest {
    set v4 { type ipv4_addr; flags interval; }
    set v6 { type ipv6_addr; flags interval; }
    set dns { type ipv4_addr; flags timeout; }
    set dns6 { type ipv6_addr; flags timeout; }
}
";

/// A set's elements as nft lists them (`nft -j`, so only for sets of up to ~10k elements):
/// networks as `addr/len`, single addresses as they are, with the timeout in seconds if any.
fn listed(set: &str) -> BTreeSet<(String, Option<u64>)> {
    let out = nft(&["-j", "list", "set", "inet", "palisade_nltest", set]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("nft -j prints JSON");
    let item = json["nftables"]
        .as_array()
        .expect("a list of objects")
        .iter()
        .find_map(|i| i.get("set"))
        .expect("the set")
        .clone();
    let mut out = BTreeSet::new();
    for e in item["elem"].as_array().cloned().unwrap_or_default() {
        let (value, timeout) = match e.get("elem") {
            Some(inner) => (inner["val"].clone(), inner["timeout"].as_u64()),
            None => (e, None),
        };
        let text = if let Some(s) = value.as_str() {
            s.to_owned()
        } else if let Some(p) = value.get("prefix") {
            format!("{}/{}", p["addr"].as_str().expect("an address"), p["len"])
        } else if let Some(r) = value.get("range") {
            format!(
                "{}-{}",
                r[0].as_str().expect("an address"),
                r[1].as_str().expect("an address")
            )
        } else {
            panic!("unexpected element {value}")
        };
        out.insert((text, timeout));
    }
    out
}

/// How nft lists a network: a single address bare, else as a prefix.
fn as_listed(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.trunc().to_string()
    }
}

/// `count` non-overlapping IPv4 networks, alternately a /24 and a /32, from 10.0.0.0 on.
fn v4_networks(count: u32) -> impl Iterator<Item = IpNet> + Clone {
    (0..count).map(|i| {
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 256;
        if i % 2 == 0 {
            IpNet::new(Ipv4Addr::from(base).into(), 24).expect("a valid prefix")
        } else {
            IpNet::new(Ipv4Addr::from(base + 7).into(), 32).expect("a valid prefix")
        }
    })
}

fn networks(nets: impl Iterator<Item = IpNet>) -> impl Iterator<Item = Element> {
    nets.map(Element::Network)
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_loads_reads_back_and_deletes() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(TABLE));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");

        // 10,000 IPv4 intervals, including one open at the top, in one transaction.
        let mut v4: Vec<IpNet> = v4_networks(9_999).collect();
        v4.push(net("255.255.255.0/24"));
        let mut batch = Batch::new();
        batch.add_elements(&set_ref("v4"), networks(v4.iter().copied()));
        let began = Instant::now();
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        eprintln!(
            "10,000 IPv4 intervals in one transaction ({} messages, {} bytes): {:?}",
            batch.message_count(),
            batch.encoded_len(),
            began.elapsed()
        );
        let expected: BTreeSet<_> = v4.iter().map(|n| (as_listed(n), None)).collect();
        assert_eq!(listed("v4"), expected);

        // IPv6 intervals, the top one open.
        let six: Vec<IpNet> = (0..1_000u128)
            .map(|i| {
                let base = 0x2001_0db8u128 << 96 | i << 64;
                IpNet::new(
                    Ipv6Addr::from(base).into(),
                    if i % 2 == 0 { 64 } else { 128 },
                )
                .expect("a valid prefix")
            })
            .chain([net("ffff::/16")])
            .collect();
        batch.clear();
        batch.add_elements(&set_ref("v6"), networks(six.iter().copied()));
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        let expected6: BTreeSet<_> = six.iter().map(|n| (as_listed(n), None)).collect();
        assert_eq!(listed("v6"), expected6);

        // 2,000 addresses with timeouts, through the chunked path (4 transactions).
        let dns: Vec<Element> = (0..2_000u32)
            .map(|i| {
                Element::expiring(
                    Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 0, 0)) + i),
                    Duration::from_secs(3_600),
                )
            })
            .collect();
        let began = Instant::now();
        let loaded = nft_socket
            .send_chunked(&set_ref("dns"), ElementOp::Add, dns.iter().copied(), 500)
            .expect("the load lands");
        eprintln!(
            "2,000 timeout elements in 4 transactions: {:?}",
            began.elapsed()
        );
        assert_eq!(
            loaded,
            Loaded {
                transactions: 4,
                elements: 2_000
            }
        );
        let expected_dns: BTreeSet<_> = (0..2_000u32)
            .map(|i| {
                let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 0, 0)) + i);
                (a.to_string(), Some(3_600))
            })
            .collect();
        assert_eq!(listed("dns"), expected_dns);
        batch.clear();
        batch.add_elements(
            &set_ref("dns6"),
            [Element::expiring(
                v6("2001:db8::53"),
                Duration::from_secs(600),
            )],
        );
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert_eq!(
            listed("dns6"),
            BTreeSet::from([("2001:db8::53".to_owned(), Some(600))])
        );

        // Deleting: every other interval, chunked, and half the addresses in one batch.
        let (gone, kept): (Vec<_>, Vec<_>) = v4.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let loaded = nft_socket
            .send_chunked(
                &set_ref("v4"),
                ElementOp::Delete,
                networks(gone.iter().map(|(_, n)| **n)),
                2_000,
            )
            .expect("the deletion lands");
        assert_eq!(loaded.elements, 5_000);
        let expected: BTreeSet<_> = kept.iter().map(|(_, n)| (as_listed(n), None)).collect();
        assert_eq!(listed("v4"), expected);
        batch.clear();
        batch.delete_elements(&set_ref("dns"), dns[..1_000].iter().copied());
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        let second_half: BTreeSet<_> = expected_dns
            .into_iter()
            .filter(|(a, _)| {
                let a: Ipv4Addr = a.parse().expect("a valid address");
                u32::from(a) >= u32::from(Ipv4Addr::new(192, 168, 0, 0)) + 1_000
            })
            .collect();
        assert_eq!(listed("dns"), second_half);

        // Flushing empties a set; its neighbours keep their elements.
        batch.clear();
        batch.flush_set(&set_ref("v6"));
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert!(listed("v6").is_empty());
        assert_eq!(listed("dns6").len(), 1);
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_lookups_match_the_intervals() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(TABLE));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let mut batch = Batch::new();
        batch.add_elements(
            &set_ref("v4"),
            networks(
                [
                    "10.0.0.0/24",
                    "10.0.1.7/32",
                    "0.0.0.0/8",
                    "255.255.255.255/32",
                ]
                .into_iter()
                .map(net),
            ),
        );
        batch.add_elements(&set_ref("v6"), [Element::Network(net("::/0"))]);
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        let found = |set: &str, addr: &str| {
            Command::new("nft")
                .args(["get", "element", "inet", "palisade_nltest", set])
                .arg(format!("{{ {addr} }}"))
                .output()
                .expect("nft runs")
                .status
                .success()
        };
        for addr in [
            "10.0.0.0",
            "10.0.0.255",
            "10.0.1.7",
            "0.0.0.0",
            "0.255.255.255",
            "255.255.255.255",
        ] {
            assert!(found("v4", addr), "{addr} is in the set");
        }
        for addr in [
            "10.0.1.0",
            "10.0.1.6",
            "10.0.1.8",
            "1.0.0.0",
            "255.255.255.254",
            "9.255.255.255",
        ] {
            assert!(!found("v4", addr), "{addr} is not in the set");
        }
        for addr in [
            "::",
            "2001:db8::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(found("v6", addr), "{addr} is in ::/0");
        }
        assert_eq!(listed("v6"), BTreeSet::from([("::/0".to_owned(), None)]));
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_timeouts_expire_and_refresh_restarts_them() {
    // Timing margins are wide on purpose: the test must hold on a loaded machine, so what it
    // checks is the expiry the kernel reports, not how long a sleep took.
    in_netns(|| {
        run("nft", &["-f", "-"], Some(TABLE));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let dns = set_ref("dns");
        let timed = |a: &str, ms: u64| Element::expiring(v4(a), Duration::from_millis(ms));
        let mut batch = Batch::new();
        batch.add_elements(
            &dns,
            [
                timed("10.0.0.1", 1_000),
                timed("10.0.0.2", 3_600_000),
                timed("10.0.0.3", 2_000),
                timed("10.0.0.4", 2_000),
            ],
        );
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        std::thread::sleep(Duration::from_millis(1_200));
        // 10.0.0.3: refreshed to 60 s. 10.0.0.4: only added again. 10.0.0.5: refreshed without
        // having been there.
        batch.clear();
        batch.refresh_elements(
            &dns,
            &[timed("10.0.0.3", 60_000), timed("10.0.0.5", 60_000)],
        );
        batch.add_elements(&dns, [timed("10.0.0.4", 60_000)]);
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        let left = expires_in("dns");
        // Without the refresh 10.0.0.3 would have under a second left.
        assert!(
            left.get("10.0.0.3").is_some_and(|ms| *ms > 30_000),
            "refresh restarts the timeout: {left:?}"
        );
        assert!(
            left.get("10.0.0.5").is_some_and(|ms| *ms > 30_000),
            "refresh adds a missing element: {left:?}"
        );
        eprintln!(
            "an element added again with a longer timeout has {:?} ms left",
            left.get("10.0.0.4")
        );
        std::thread::sleep(Duration::from_millis(1_800));
        // At least 3 s after the first load: 10.0.0.1 (1 s) is gone, the rest lives on.
        let now: BTreeSet<String> = listed("dns").into_iter().map(|(a, _)| a).collect();
        assert!(!now.contains("10.0.0.1"), "{now:?}");
        assert!(
            now.contains("10.0.0.2") && now.contains("10.0.0.3"),
            "{now:?}"
        );
        batch.clear();
        batch.delete_elements(
            &dns,
            [
                Element::single(v4("10.0.0.3")),
                Element::single(v4("10.0.0.4")),
                Element::single(v4("10.0.0.5")),
            ],
        );
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the deletions");
        let later: BTreeSet<String> = listed("dns").into_iter().map(|(a, _)| a).collect();
        assert_eq!(later, BTreeSet::from(["10.0.0.2".to_owned()]));
    });
}

/// Milliseconds each element of a small timeout set has left, as nft reports them.
fn expires_in(set: &str) -> std::collections::BTreeMap<String, u64> {
    let out = nft(&["-j", "list", "set", "inet", "palisade_nltest", set]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("nft -j prints JSON");
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("set"))
        .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| {
            let inner = e.get("elem")?;
            // nft prints seconds, with a fraction where there is one.
            let seconds = inner["expires"].as_f64()?;
            Some((inner["val"].as_str()?.to_owned(), (seconds * 1000.0) as u64))
        })
        .collect()
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_a_refused_request_names_its_set_and_applies_nothing() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(TABLE));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let mut batch = Batch::new();
        batch.add_elements(&set_ref("v4"), networks(v4_networks(5_000)));
        let ok_messages = batch.message_count();
        batch.add_elements(&set_ref("missing"), [Element::Network(net("10.9.9.0/24"))]);
        batch.add_elements(&set_ref("v6"), [Element::Network(net("2001:db8::/32"))]);
        let err = nft_socket.send(&mut batch).expect_err("the kernel refuses");
        let text = err.to_string();
        eprintln!("{text}");
        assert_eq!(err.errno(), Some(libc::ENOENT));
        assert!(text.contains("set inet palisade_nltest missing"), "{text}");
        assert!(
            text.contains(&format!(
                "message {} of {}",
                ok_messages + 1,
                ok_messages + 2
            )),
            "{text}"
        );
        assert!(listed("v4").is_empty(), "nothing of the transaction landed");
        assert!(listed("v6").is_empty(), "nothing of the transaction landed");

        // The socket stays usable, and a key of the wrong family is refused too.
        batch.clear();
        batch.add_elements(&set_ref("v4"), [Element::Network(net("2001:db8::/32"))]);
        let err = nft_socket.send(&mut batch).expect_err("the kernel refuses");
        eprintln!("{err}");
        assert!(err.errno().is_some(), "{err}");
        // Deleting what is not there fails the transaction.
        batch.clear();
        batch.add_elements(&set_ref("dns"), [Element::single(v4("10.0.0.1"))]);
        batch.delete_elements(&set_ref("dns"), [Element::single(v4("10.0.0.2"))]);
        let err = nft_socket.send(&mut batch).expect_err("the kernel refuses");
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        assert!(listed("dns").is_empty());
        // A chunked load that fails part-way says what landed.
        let elements = networks(v4_networks(300).chain([net("2001:db8::/32")]));
        let err = nft_socket
            .send_chunked(&set_ref("v4"), ElementOp::Add, elements, 100)
            .expect_err("the kernel refuses");
        eprintln!("{err}");
        assert!(
            matches!(
                err,
                NetlinkError::PartlyLoaded {
                    landed: 3,
                    elements: 300,
                    failed: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(listed("v4").len(), 300);
        // And then a good transaction goes through.
        batch.clear();
        batch.add_elements(&set_ref("dns"), [Element::single(v4("10.0.0.1"))]);
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert_eq!(listed("dns").len(), 1);
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_sets_are_created_looked_up_and_deleted() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some("table inet palisade_nltest {}"));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let block = set_ref("block6");
        let dns = set_ref("dns");
        assert!(!nft_socket
            .set_exists(&block)
            .expect("the lookup is answered"));
        let elsewhere = SetRef::new(TableFamily::Inet, "no_such_table", "s").expect("valid names");
        assert!(!nft_socket
            .set_exists(&elsewhere)
            .expect("the lookup is answered"));
        assert!(nft_socket
            .table_exists(TableFamily::Inet, "palisade_nltest")
            .expect("the lookup is answered"));
        assert!(!nft_socket
            .table_exists(TableFamily::Inet, "no_such_table")
            .expect("the lookup is answered"));
        assert!(!nft_socket
            .table_exists(TableFamily::Ip, "palisade_nltest")
            .expect("another family is another table"));

        let mut batch = Batch::new();
        batch.new_set(
            &block,
            &SetSpec {
                key: KeyType::Ipv6Addr,
                interval: true,
                timeout: false,
                default_timeout: None,
            },
        );
        batch.new_set(
            &dns,
            &SetSpec {
                key: KeyType::Ipv4Addr,
                interval: false,
                timeout: true,
                default_timeout: Some(Duration::from_secs(120)),
            },
        );
        batch.add_elements(&block, [Element::Network(net("2001:db8::/48"))]);
        batch.add_elements(&dns, [Element::single(v4("10.0.0.1"))]);
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert!(nft_socket
            .set_exists(&block)
            .expect("the lookup is answered"));
        assert!(nft_socket.set_exists(&dns).expect("the lookup is answered"));

        let text = nft(&["list", "table", "inet", "palisade_nltest"]);
        eprintln!("{text}");
        assert!(text.contains("type ipv6_addr"), "{text}");
        assert!(text.contains("flags interval"), "{text}");
        assert!(text.contains("2001:db8::/48"), "{text}");
        assert!(text.contains("type ipv4_addr"), "{text}");
        assert!(text.contains("timeout 2m"), "{text}");
        // The set's default timeout applies to an element without its own.
        assert_eq!(
            listed("dns"),
            BTreeSet::from([("10.0.0.1".to_owned(), None)])
        );

        // Creating again with the same properties is a no-op, as `nft add set` is.
        batch.clear();
        batch.new_set(
            &dns,
            &SetSpec {
                key: KeyType::Ipv4Addr,
                interval: false,
                timeout: true,
                default_timeout: Some(Duration::from_secs(120)),
            },
        );
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert_eq!(listed("dns").len(), 1);

        batch.clear();
        batch.delete_set(&block);
        batch.delete_set(&dns);
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert!(!nft_socket
            .set_exists(&block)
            .expect("the lookup is answered"));
        assert!(!nft_socket.set_exists(&dns).expect("the lookup is answered"));
    });
}

/// Whether the kernel lets a UDP datagram to `addr` leave (the test chain drops `@big`). This is
/// how the big set is checked: `nft get element` on it did not finish within 60 s (nft reads the
/// whole set first), and listing it is out of the question.
fn may_send_to(addr: Ipv4Addr) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    match socket.send_to(b"x", (addr, 9)) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => false,
        Err(e) => panic!("sending to {addr}: {e}"),
    }
}

fn million_setup() {
    run(
        "nft",
        &["-f", "-"],
        Some(
            "table inet palisade_nltest {
                set big { type ipv4_addr; flags interval; }
                set small { type ipv4_addr; flags timeout; }
                chain out { type filter hook output priority 0; policy accept; ip daddr @big drop; }
            }",
        ),
    );
    run("ip", &["link", "set", "lo", "up"], None);
    run("ip", &["route", "add", "0.0.0.0/0", "dev", "lo"], None);
}

fn check_million_by_packets() {
    // i = 0: 10.0.0.0/24; i = 1: 10.0.1.7/32; i = 999,999: 10.0.0.0 + 999,999 * 256 + 7.
    let last = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + 999_999 * 256 + 7);
    let after = Ipv4Addr::from(u32::from(last) + 1);
    for addr in [
        Ipv4Addr::new(10, 0, 0, 77),
        Ipv4Addr::new(10, 0, 1, 7),
        Ipv4Addr::new(10, 1, 2, 200),
        last,
    ] {
        assert!(!may_send_to(addr), "{addr} is in the set, so dropped");
    }
    for addr in [
        Ipv4Addr::new(10, 0, 1, 8),
        Ipv4Addr::new(10, 0, 1, 6),
        Ipv4Addr::new(9, 9, 9, 9),
        after,
    ] {
        assert!(may_send_to(addr), "{addr} is not in the set, so sent");
    }
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_a_million_intervals_in_chunks() {
    in_netns(|| {
        million_setup();
        assert!(
            may_send_to(Ipv4Addr::new(10, 0, 0, 77)),
            "nothing blocked before the load"
        );
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let began = Instant::now();
        let loaded = nft_socket
            .send_chunked(
                &set_ref("big"),
                ElementOp::Add,
                networks(v4_networks(1_000_000)),
                20_000,
            )
            .expect("the load lands");
        eprintln!(
            "1,000,000 IPv4 intervals in {} transactions of 20,000: {:?}",
            loaded.transactions,
            began.elapsed()
        );
        assert_eq!(
            loaded,
            Loaded {
                transactions: 50,
                elements: 1_000_000
            }
        );
        check_million_by_packets();
        let status = std::fs::read_to_string("/proc/self/status").expect("our own status");
        let peak = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("VmHWM: ?");
        eprintln!("peak memory of this test process after the load: {peak}");

        // A few-address write beside the big set stays quick, and lookups of it too.
        let began = Instant::now();
        assert!(nft_socket
            .set_exists(&set_ref("big"))
            .expect("the lookup is answered"));
        eprintln!("set_exists on the 1M set: {:?}", began.elapsed());
        let mut batch = Batch::new();
        batch.add_elements(
            &set_ref("small"),
            (1..=4)
                .map(|i| Element::expiring(Ipv4Addr::new(192, 0, 2, i), Duration::from_secs(60))),
        );
        let began = Instant::now();
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        eprintln!(
            "4 timeout elements beside the 1M set: {:?}",
            began.elapsed()
        );
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_a_million_intervals_in_one_transaction() {
    in_netns(|| {
        million_setup();
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let mut batch = Batch::new();
        let began = Instant::now();
        batch.add_elements(&set_ref("big"), networks(v4_networks(1_000_000)));
        let encoded = began.elapsed();
        let began = Instant::now();
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        eprintln!(
            "1,000,000 IPv4 intervals in one transaction ({} messages, {} bytes): encoded in \
             {encoded:?}, sent and acknowledged in {:?}",
            batch.message_count(),
            batch.encoded_len(),
            began.elapsed()
        );
        check_million_by_packets();
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_a_transaction_refused_as_a_whole_is_reported() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(TABLE));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let mut batch = Batch::new();
        batch.add_elements(&set_ref("dns"), [Element::single(v4("10.0.0.1"))]);
        // A begin marker for a subsystem that does not exist: the kernel refuses the batch
        // before it looks at any message in it.
        batch.buf[18..20].copy_from_slice(&0x00ffu16.to_be_bytes());
        let err = nft_socket.send(&mut batch).expect_err("the kernel refuses");
        eprintln!("{err}");
        assert!(
            matches!(
                err,
                NetlinkError::TransactionRefused {
                    errno: libc::EINVAL,
                    ..
                }
            ),
            "{err}"
        );
        assert!(listed("dns").is_empty());
        // The next transaction is read correctly, stale answers or not.
        batch.buf[18..20].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        nft_socket
            .send(&mut batch)
            .expect("the kernel takes the batch");
        assert_eq!(listed("dns").len(), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Listings against the real kernel.

/// Our table with a base chain, two regular chains, an interval set, a timeout set and a rule
/// with an anonymous set; beside it a table of the same family and one of the same name in
/// another family, whose chains and sets must not be listed.
const LISTED_TABLES: &str = "
table inet palisade_nltest {
    set block4 { type ipv4_addr; flags interval; }
    set dns6 { type ipv6_addr; flags timeout; }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr @block4 drop
        ip6 saddr @dns6 drop
        jump allow
    }
    chain allow { ip saddr { 192.0.2.1, 192.0.2.2 } accept; jump log_drop; }
    chain log_drop { drop; }
}
table inet other_nltest {
    set other_set { type ipv4_addr; }
    chain other_base { type filter hook output priority 0; }
    chain other_regular { }
}
table ip palisade_nltest {
    set ip_family_set { type ipv4_addr; }
    chain ip_family_chain { }
}
";

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_lists_the_chains_and_sets_of_one_table() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(LISTED_TABLES));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let chains = nft_socket
            .list_chains(TableFamily::Inet, "palisade_nltest")
            .expect("the chains are listed");
        let sets = nft_socket
            .list_sets(TableFamily::Inet, "palisade_nltest")
            .expect("the sets are listed");
        eprintln!("{chains:?}\n{sets:?}");
        assert_eq!(
            sorted(chains),
            vec![
                chain("allow", false),
                chain("input", true),
                chain("log_drop", false)
            ]
        );
        assert_eq!(
            sorted(sets),
            vec![
                set_info("__set0", NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, 7, 4),
                set_info("block4", NFT_SET_INTERVAL, 7, 4),
                set_info("dns6", NFT_SET_TIMEOUT, 8, 16),
            ]
        );
        // The other tables, through the same calls.
        assert_eq!(
            sorted(
                nft_socket
                    .list_chains(TableFamily::Inet, "other_nltest")
                    .expect("the chains are listed")
            ),
            vec![chain("other_base", true), chain("other_regular", false)]
        );
        assert_eq!(
            nft_socket
                .list_chains(TableFamily::Ip, "palisade_nltest")
                .expect("the chains are listed"),
            vec![chain("ip_family_chain", false)]
        );
        assert_eq!(
            nft_socket
                .list_sets(TableFamily::Ip, "palisade_nltest")
                .expect("the sets are listed"),
            vec![set_info("ip_family_set", 0, 7, 4)]
        );
    });
}

/// Dumps as the listings send them, every object kept with its table, to see where the
/// kernel applies the table named in the request.
fn tables_in_dump(nft_socket: &mut NftSocket, kind: &DumpKind, table_attr: u16) -> Vec<String> {
    nft_socket
        .dump(kind, TableFamily::Inet, "palisade_nltest", |attrs| {
            let attrs = parse_attrs(attrs)?;
            Some(Some(
                String::from_utf8_lossy(attr_bytes(find_attr(&attrs, table_attr)?)).into_owned(),
            ))
        })
        .expect("the dump is read")
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_what_the_kernel_does_with_the_table_in_a_dump() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(LISTED_TABLES));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let chain_tables: BTreeSet<_> = tables_in_dump(&mut nft_socket, &CHAINS, NFTA_CHAIN_TABLE)
            .into_iter()
            .collect();
        let set_tables: BTreeSet<_> = tables_in_dump(&mut nft_socket, &SETS, NFTA_SET_TABLE)
            .into_iter()
            .collect();
        eprintln!(
            "a chain dump naming table palisade_nltest sent chains of {chain_tables:?}; a set \
             dump sent sets of {set_tables:?}"
        );
        // Sets: restricted by the kernel since nf_tables began (nft_ctx_init_from_setattr).
        assert_eq!(set_tables, BTreeSet::from(["palisade_nltest".to_owned()]));
        // Chains: whatever the kernel does, the family is kept apart.
        assert!(chain_tables.contains("palisade_nltest"), "{chain_tables:?}");
        // A missing table: the set dump is refused with ENOENT, the chain dump is not.
        let mut missing = |kind: &DumpKind| {
            let mut seen = 0;
            let listed = nft_socket.dump(kind, TableFamily::Inet, "no_such_table", |_| {
                seen += 1;
                Some(Some(()))
            });
            (listed.map(|l| l.len()), seen)
        };
        let (chains, chains_seen) = missing(&CHAINS);
        let (sets, sets_seen) = missing(&SETS);
        eprintln!(
            "for a missing table, a chain dump sent {chains_seen} chains, a set dump {sets_seen} \
             sets ({chains:?}, {sets:?})"
        );
        assert_eq!(sets_seen, 0);
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_empty_and_missing_tables_list_nothing() {
    in_netns(|| {
        run(
            "nft",
            &["-f", "-"],
            Some(
                "table inet palisade_nltest {}
                 table inet other_nltest {
                     set s { type ipv4_addr; }
                     chain c { type filter hook input priority 0; }
                 }",
            ),
        );
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        for table in ["palisade_nltest", "no_such_table"] {
            assert_eq!(
                nft_socket
                    .list_chains(TableFamily::Inet, table)
                    .expect("the chains are listed"),
                vec![],
                "{table}"
            );
            assert_eq!(
                nft_socket
                    .list_sets(TableFamily::Inet, table)
                    .expect("the sets are listed"),
                vec![],
                "{table}"
            );
        }
        // Another family is another table.
        assert_eq!(
            nft_socket
                .list_chains(TableFamily::Ip6, "other_nltest")
                .expect("the chains are listed"),
            vec![]
        );
        assert_eq!(
            nft_socket
                .list_sets(TableFamily::Ip6, "other_nltest")
                .expect("the sets are listed"),
            vec![]
        );
        for bad in ["", "a\0b"] {
            let err = nft_socket
                .list_sets(TableFamily::Inet, bad)
                .expect_err("an invalid name");
            assert!(matches!(err, NetlinkError::InvalidName { .. }), "{err}");
            let err = nft_socket
                .list_chains(TableFamily::Inet, bad)
                .expect_err("an invalid name");
            assert!(matches!(err, NetlinkError::InvalidName { .. }), "{err}");
        }
        // The socket still works for everything else.
        assert!(nft_socket
            .table_exists(TableFamily::Inet, "palisade_nltest")
            .expect("the lookup is answered"));
    });
}

/// `chains` regular chains and `sets` sets in our table, beside a base chain.
fn many(chains: usize, sets: usize) -> String {
    let mut text = String::from(
        "table inet palisade_nltest {\n chain input { type filter hook input priority 0; }\n",
    );
    for i in 0..chains {
        text.push_str(&format!(" chain regular_{i:04} {{ }}\n"));
    }
    for i in 0..sets {
        text.push_str(&format!(
            " set set_{i:04} {{ type ipv6_addr; flags interval, timeout; }}\n"
        ));
    }
    text.push_str("}\n");
    text
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_long_listings_span_many_datagrams() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(&many(3_000, 1_000)));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let began = Instant::now();
        let chains = nft_socket
            .list_chains(TableFamily::Inet, "palisade_nltest")
            .expect("the chains are listed");
        eprintln!("3,001 chains listed in {:?}", began.elapsed());
        let began = Instant::now();
        let sets = nft_socket
            .list_sets(TableFamily::Inet, "palisade_nltest")
            .expect("the sets are listed");
        eprintln!("1,000 sets listed in {:?}", began.elapsed());
        let mut expected = vec![chain("input", true)];
        expected.extend((0..3_000).map(|i| chain(&format!("regular_{i:04}"), false)));
        assert_eq!(sorted(chains), expected);
        let expected: Vec<_> = (0..1_000)
            .map(|i| {
                set_info(
                    &format!("set_{i:04}"),
                    NFT_SET_INTERVAL | NFT_SET_TIMEOUT,
                    8,
                    16,
                )
            })
            .collect();
        assert_eq!(sorted(sets), expected);
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_a_dump_the_ruleset_changed_under_is_asked_for_again() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(&many(3_000, 0)));
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let mut writer = NftSocket::open().expect("the netlink socket opens");
        // A chain dump by hand: the first datagram, then a commit, then the rest.
        let seq = nft_socket.take_seqs(1);
        let mut buf = Vec::new();
        let start = begin_message(
            &mut buf,
            nft_type(NFT_MSG_GETCHAIN),
            NLM_F_REQUEST | NLM_F_DUMP,
            libc::NFPROTO_INET as u8,
            0,
        );
        end_message(&mut buf, start);
        set_seq(&mut buf, start, seq);
        nft_socket.transmit(&buf).expect("the request is sent");
        let mut reader = DumpReader::new(seq, NFT_MSG_NEWCHAIN, |attrs: &[u8]| {
            parse_chain(attrs, "palisade_nltest")
        });
        let mut datagrams = 1;
        let first = nft_socket.receive(0).expect("the dump's first datagram");
        assert_eq!(reader.take(first), None, "the dump needs more datagrams");
        let mut batch = Batch::new();
        batch.new_set(
            &set_ref("changed"),
            &SetSpec {
                key: KeyType::Ipv4Addr,
                interval: false,
                timeout: false,
                default_timeout: None,
            },
        );
        writer.send(&mut batch).expect("the kernel takes the batch");
        let end = loop {
            datagrams += 1;
            let replies = nft_socket.receive(0).expect("the dump's next datagram");
            if let Some(end) = reader.take(replies) {
                break end;
            }
        };
        eprintln!("a dump of {datagrams} datagrams with a commit after the first: {end:?}");
        assert_eq!(end, DumpEnd::Interrupted);
        // The listing asks again and gets the whole table, and the socket serves a new dump.
        let chains = nft_socket
            .list_chains(TableFamily::Inet, "palisade_nltest")
            .expect("the chains are listed");
        assert_eq!(chains.len(), 3_001);
        assert_eq!(
            nft_socket
                .list_sets(TableFamily::Inet, "palisade_nltest")
                .expect("the sets are listed"),
            vec![set_info("changed", 0, 7, 4)]
        );
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_list_sets_beside_200_000_intervals() {
    in_netns(|| {
        run(
            "nft",
            &["-f", "-"],
            Some(
                "table inet palisade_nltest {
                    set big { type ipv4_addr; flags interval; }
                    set small { type ipv4_addr; flags timeout; }
                    chain out { type filter hook output priority 0; ip daddr @big drop; }
                    chain allow { }
                }",
            ),
        );
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let began = Instant::now();
        let loaded = nft_socket
            .send_chunked(
                &set_ref("big"),
                ElementOp::Add,
                networks(v4_networks(200_000)),
                20_000,
            )
            .expect("the load lands");
        eprintln!(
            "200,000 IPv4 intervals in {} transactions: {:?}",
            loaded.transactions,
            began.elapsed()
        );
        assert_eq!(loaded.elements, 200_000);
        let began = Instant::now();
        let sets = nft_socket
            .list_sets(TableFamily::Inet, "palisade_nltest")
            .expect("the sets are listed");
        let sets_took = began.elapsed();
        let began = Instant::now();
        let chains = nft_socket
            .list_chains(TableFamily::Inet, "palisade_nltest")
            .expect("the chains are listed");
        let chains_took = began.elapsed();
        eprintln!("beside 200,000 intervals: list_sets {sets_took:?}, list_chains {chains_took:?}");
        assert_eq!(
            sorted(sets),
            vec![
                set_info("big", NFT_SET_INTERVAL, 7, 4),
                set_info("small", NFT_SET_TIMEOUT, 7, 4),
            ]
        );
        assert_eq!(
            sorted(chains),
            vec![chain("allow", false), chain("out", true)]
        );
    });
}

const COUNTED_TABLE: &str = "
table inet palisade_nltest {
    counter hits { }
    counter idle { }
    limit rate_log { rate 10/second burst 20 packets }
    chain output {
        type filter hook output priority filter; policy accept;
        ip daddr 127.0.0.9 udp dport 9 counter name \"hits\" drop
    }
}
table inet other_nltest {
    counter elsewhere { }
}
";

#[test]
#[ignore = "needs root and a network namespace"]
fn root_lists_objects_with_what_each_counter_counted() {
    in_netns(|| {
        run("ip", &["link", "set", "lo", "up"], None);
        run("nft", &["-f", "-"], Some(COUNTED_TABLE));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        for _ in 0..7 {
            // Dropped in the output hook: the send itself fails (EPERM), the counter counts it.
            let _ = sender.send_to(b"12345678", "127.0.0.9:9");
        }
        let mut nft_socket = NftSocket::open().expect("the netlink socket opens");
        let objects = sorted(
            nft_socket
                .list_objects(TableFamily::Inet, "palisade_nltest")
                .expect("the objects are listed"),
        );
        eprintln!("{objects:?}");
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["hits", "idle", "rate_log"]);
        // 8 bytes of payload, 8 of UDP header, 20 of IPv4 header.
        assert_eq!(
            objects[0].counted,
            Some(Counted {
                packets: 7,
                bytes: 7 * 36
            })
        );
        assert!(objects[0].is_counter());
        assert_eq!(objects[1].counted, Some(Counted::default()));
        assert!(!objects[2].is_counter());
        assert_eq!(objects[2].counted, None);
        assert_eq!(
            nft_socket
                .list_objects(TableFamily::Inet, "missing_nltest")
                .expect("a missing table has no objects"),
            Vec::new()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Rules

const RULES_TABLE: &str = "
table inet palisade_rltest {
    set marks { type mark; }
    set s4 { type ipv4_addr; flags interval; }
    counter c1 { comment \"first\" }
    limit l1 { rate 50/second burst 100 packets }
    chain target { }
    chain by_nft { }
    chain by_netlink { }
}
";

/// A chain's rules as nft lists them, the chain's name and the handles left out.
fn chain_listing(chain: &str, debug: bool) -> String {
    let mut args = vec!["list", "chain", "inet", "palisade_rltest", chain];
    if debug {
        args.insert(0, "--debug=netlink");
    }
    nft(&args)
        .replace(chain, "CHAIN")
        .lines()
        // The debug listing heads each rule with its handle and the previous rule's.
        .map(|l| match l.strip_prefix("inet palisade_rltest CHAIN ") {
            Some(_) => "inet palisade_rltest CHAIN",
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rule_chain(name: &str) -> ChainRef {
    ChainRef::new(TableFamily::Inet, "palisade_rltest", name).expect("valid names")
}

fn cmp(op: CmpOp, data: &[u8]) -> Expr {
    Expr::Cmp {
        op,
        data: data.to_vec(),
    }
}

/// `ip daddr 10.0.0.1 tcp dport 1000 counter name "c1" ct mark set 0xd9121c1d accept comment
/// "hello"`, as nft writes it in an inet table.
fn sample_rule() -> RuleSpec {
    RuleSpec {
        exprs: vec![
            Expr::Meta(MetaKey::NfProto),
            cmp(CmpOp::Eq, &[2]),
            Expr::Payload {
                base: PayloadBase::Network,
                offset: 16,
                len: 4,
            },
            cmp(CmpOp::Eq, &[10, 0, 0, 1]),
            Expr::Meta(MetaKey::L4Proto),
            cmp(CmpOp::Eq, &[6]),
            Expr::Payload {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
            },
            cmp(CmpOp::Eq, &1000u16.to_be_bytes()),
            Expr::ObjRef {
                kind: ObjectKind::Counter,
                name: "c1".into(),
            },
            Expr::SetCtMark(0xd912_1c1d),
            Expr::Verdict(Verdict::Accept),
        ],
        comment: Some("hello".into()),
    }
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_rules_added_over_netlink_read_back_as_nfts_own() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(RULES_TABLE));
        let nft_rules = "
add rule inet palisade_rltest by_nft ip daddr 10.0.0.1 tcp dport 1000 counter name \"c1\" ct mark set 0xd9121c1d accept comment \"hello\"
add rule inet palisade_rltest by_nft ct state established,related ct mark @marks accept
add rule inet palisade_rltest by_nft ct direction reply meta skuid != 0 ip6 daddr 2001:db8::/33 udp sport 5 counter jump target
add rule inet palisade_rltest by_nft ip daddr != @s4 udp dport 1000-2000 limit name \"l1\" log prefix \"p: \" group 27183
add rule inet palisade_rltest by_nft ip daddr 10.1.0.0/16 drop
add rule inet palisade_rltest by_nft return
";
        run("nft", &["-f", "-"], Some(nft_rules));
        let ct_state = |bits: u32| {
            vec![
                Expr::Ct(CtKey::State),
                Expr::Bitwise {
                    mask: bits.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                },
                cmp(CmpOp::Neq, &[0; 4]),
            ]
        };
        let mut second = ct_state(6);
        second.extend([
            Expr::Ct(CtKey::Mark),
            Expr::Lookup {
                set: "marks".into(),
                invert: false,
            },
            Expr::Verdict(Verdict::Accept),
        ]);
        let mut v6_mask = vec![0xff; 4];
        v6_mask.extend([0x80]);
        v6_mask.resize(16, 0);
        let mut v6_net = vec![0x20, 0x01, 0x0d, 0xb8];
        v6_net.resize(16, 0);
        let third = vec![
            Expr::Ct(CtKey::Direction),
            cmp(CmpOp::Eq, &[1]),
            Expr::Meta(MetaKey::SkUid),
            cmp(CmpOp::Neq, &0u32.to_ne_bytes()),
            Expr::Meta(MetaKey::NfProto),
            cmp(CmpOp::Eq, &[10]),
            Expr::Payload {
                base: PayloadBase::Network,
                offset: 24,
                len: 16,
            },
            Expr::Bitwise {
                mask: v6_mask,
                xor: vec![0; 16],
            },
            cmp(CmpOp::Eq, &v6_net),
            Expr::Meta(MetaKey::L4Proto),
            cmp(CmpOp::Eq, &[17]),
            Expr::Payload {
                base: PayloadBase::Transport,
                offset: 0,
                len: 2,
            },
            cmp(CmpOp::Eq, &5u16.to_be_bytes()),
            Expr::Counter,
            Expr::Verdict(Verdict::Jump("target".into())),
        ];
        let fourth = vec![
            Expr::Meta(MetaKey::NfProto),
            cmp(CmpOp::Eq, &[2]),
            Expr::Payload {
                base: PayloadBase::Network,
                offset: 16,
                len: 4,
            },
            Expr::Lookup {
                set: "s4".into(),
                invert: true,
            },
            Expr::Meta(MetaKey::L4Proto),
            cmp(CmpOp::Eq, &[17]),
            Expr::Payload {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
            },
            cmp(CmpOp::Gte, &1000u16.to_be_bytes()),
            cmp(CmpOp::Lte, &2000u16.to_be_bytes()),
            Expr::ObjRef {
                kind: ObjectKind::Limit,
                name: "l1".into(),
            },
            Expr::Log {
                group: 27183,
                prefix: "p: ".into(),
            },
        ];
        let fifth = vec![
            Expr::Meta(MetaKey::NfProto),
            cmp(CmpOp::Eq, &[2]),
            Expr::Payload {
                base: PayloadBase::Network,
                offset: 16,
                len: 2,
            },
            cmp(CmpOp::Eq, &[10, 1]),
            Expr::Verdict(Verdict::Drop),
        ];
        let sixth = vec![Expr::Verdict(Verdict::Return)];
        let chain = rule_chain("by_netlink");
        let mut batch = Batch::new();
        batch
            .add_rule(&chain, Placement::Append, &sample_rule())
            .expect("a valid rule");
        for exprs in [second, third, fourth, fifth, sixth] {
            batch
                .add_rule(
                    &chain,
                    Placement::Append,
                    &RuleSpec {
                        exprs,
                        comment: None,
                    },
                )
                .expect("a valid rule");
        }
        let mut socket = NftSocket::open().expect("the netlink socket opens");
        socket.send(&mut batch).expect("the kernel takes the rules");
        assert_eq!(
            chain_listing("by_netlink", false),
            chain_listing("by_nft", false)
        );
        assert_eq!(
            chain_listing("by_netlink", true),
            chain_listing("by_nft", true)
        );
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_rules_go_where_placed_and_go_by_handle() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(RULES_TABLE));
        let chain = rule_chain("by_netlink");
        let verdict_rule = |v: Verdict, comment: &str| RuleSpec {
            exprs: vec![Expr::Verdict(v)],
            comment: Some(comment.into()),
        };
        let mut socket = NftSocket::open().expect("the netlink socket opens");
        let mut batch = Batch::new();
        for name in ["one", "two", "three"] {
            batch
                .add_rule(
                    &chain,
                    Placement::Append,
                    &verdict_rule(Verdict::Return, name),
                )
                .expect("a valid rule");
        }
        socket.send(&mut batch).expect("the kernel takes the rules");
        let handles: Vec<u64> = socket
            .list_rules(TableFamily::Inet, "palisade_rltest")
            .expect("the rules are listed")
            .into_iter()
            .filter(|r| r.chain == "by_netlink")
            .map(|r| r.handle)
            .collect();
        assert_eq!(handles.len(), 3);

        // One transaction: "two" goes, a rule comes after "one", another before "three", one at
        // the end; a new counter, and "c1" deleted (no rule uses it).
        let mut batch = Batch::new();
        batch.delete_rule(&chain, handles[1]);
        batch
            .add_rule(
                &chain,
                Placement::After(handles[0]),
                &verdict_rule(Verdict::Accept, "after one"),
            )
            .expect("a valid rule");
        batch
            .add_rule(
                &chain,
                Placement::Before(handles[2]),
                &verdict_rule(Verdict::Drop, "before three"),
            )
            .expect("a valid rule");
        batch
            .add_rule(
                &chain,
                Placement::Append,
                &verdict_rule(Verdict::Jump("target".into()), "last"),
            )
            .expect("a valid rule");
        let fresh = ObjectRef::new(
            TableFamily::Inet,
            "palisade_rltest",
            ObjectKind::Counter,
            "c2",
        )
        .expect("valid names");
        batch
            .new_counter(&fresh, Some("second"))
            .expect("a valid comment");
        let old = ObjectRef::new(
            TableFamily::Inet,
            "palisade_rltest",
            ObjectKind::Counter,
            "c1",
        )
        .expect("valid names");
        batch.delete_object(&old);
        socket
            .send(&mut batch)
            .expect("the kernel takes the change");
        let listing = chain_listing("by_netlink", false);
        let comments: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split("comment \"").nth(1))
            .map(|c| c.trim_end_matches('"'))
            .collect();
        assert_eq!(
            comments,
            ["one", "after one", "before three", "three", "last"],
            "{listing}"
        );
        let objects = nft(&["list", "counters", "table", "inet", "palisade_rltest"]);
        assert!(
            objects.contains("counter c2") && objects.contains("comment \"second\""),
            "{objects}"
        );
        assert!(!objects.contains("counter c1"), "{objects}");

        // A handle that is gone fails the whole transaction, and a counter name taken too.
        let mut batch = Batch::new();
        batch
            .add_rule(
                &chain,
                Placement::Append,
                &verdict_rule(Verdict::Return, "never"),
            )
            .expect("a valid rule");
        batch.delete_rule(&chain, handles[1]);
        let e = socket
            .send(&mut batch)
            .expect_err("a deleted handle is refused");
        assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
        assert!(
            e.to_string()
                .contains("delete a rule of chain inet palisade_rltest by_netlink"),
            "{e}"
        );
        let mut batch = Batch::new();
        batch.new_counter(&fresh, None).expect("no comment");
        let e = socket
            .send(&mut batch)
            .expect_err("a taken counter name is refused");
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert_eq!(chain_listing("by_netlink", false), listing);

        // Marks in a `type mark` set read back as nft writes them.
        let marks =
            SetRef::new(TableFamily::Inet, "palisade_rltest", "marks").expect("valid names");
        let mut batch = Batch::new();
        batch.add_elements(&marks, [Element::single(Key::Mark(0xd912_1c1d))]);
        socket.send(&mut batch).expect("the kernel takes the mark");
        let set = nft(&["list", "set", "inet", "palisade_rltest", "marks"]);
        assert!(set.contains("0xd9121c1d"), "{set}");

        // A flush empties the chain, in the same transaction as rules added after it.
        let mut batch = Batch::new();
        batch.flush_chain(&chain);
        batch
            .add_rule(
                &chain,
                Placement::Append,
                &verdict_rule(Verdict::Drop, "alone"),
            )
            .expect("a valid rule");
        socket.send(&mut batch).expect("the kernel takes the flush");
        let listing = chain_listing("by_netlink", false);
        assert_eq!(listing.matches("comment").count(), 1, "{listing}");
        assert!(listing.contains("drop comment \"alone\""), "{listing}");

        // Comments past what nft's user data holds are refused before anything is sent.
        let long = verdict_rule(Verdict::Return, &"x".repeat(255));
        assert!(matches!(
            Batch::new().add_rule(&chain, Placement::Append, &long),
            Err(NetlinkError::InvalidComment { len: 255 })
        ));
    });
}

#[test]
#[ignore = "needs root and a network namespace"]
fn root_commits_are_told_and_only_own_ones_count() {
    in_netns(|| {
        run("nft", &["-f", "-"], Some(RULES_TABLE));
        let mut socket = NftSocket::open().expect("the netlink socket opens");
        assert!(!socket.only_own_commits().expect("the generation is read"));
        socket.mark_known().expect("the generation is read");
        assert!(socket.only_own_commits().expect("the generation is read"));

        // Own transactions keep the run; the handles of added rules come back in order.
        let chain = rule_chain("by_netlink");
        let mut batch = Batch::new();
        for comment in ["a", "b"] {
            batch
                .add_rule(
                    &chain,
                    Placement::Append,
                    &RuleSpec {
                        exprs: vec![Expr::Verdict(Verdict::Return)],
                        comment: Some(comment.into()),
                    },
                )
                .expect("a valid rule");
        }
        let handles = socket
            .send_rules(&mut batch)
            .expect("the kernel takes the rules");
        let listed: Vec<u64> = socket
            .list_rules(TableFamily::Inet, "palisade_rltest")
            .expect("the rules are listed")
            .into_iter()
            .filter(|r| r.chain == "by_netlink")
            .map(|r| r.handle)
            .collect();
        assert_eq!(handles, listed);
        // A transaction opening with a deletion, then counters made and deleted: only its first
        // message asks for an echo, and that is enough for the kernel to tell its generation.
        let counter = |name: &str| {
            ObjectRef::new(
                TableFamily::Inet,
                "palisade_rltest",
                ObjectKind::Counter,
                name,
            )
            .expect("valid names")
        };
        let mut batch = Batch::new();
        batch.delete_rule(&chain, handles[0]);
        batch
            .new_counter(&counter("told"), Some("made"))
            .expect("a valid comment");
        batch.delete_object(&counter("told"));
        socket
            .send(&mut batch)
            .expect("the kernel takes the deletions");
        assert!(
            socket.only_own_commits().expect("the generation is read"),
            "the commit was told and recorded as ours"
        );
        let marks =
            SetRef::new(TableFamily::Inet, "palisade_rltest", "marks").expect("valid names");
        let mut other_socket = NftSocket::open().expect("the netlink socket opens");
        let mut batch = Batch::new();
        batch.add_elements(&marks, [Element::single(Key::Mark(7))]);
        other_socket
            .send(&mut batch)
            .expect("the kernel takes the mark");
        assert!(
            socket.only_own_commits().expect("the generation is read"),
            "another socket of this process is still this process"
        );

        // Anyone else's commit ends it, until the ruleset is marked known again.
        nft(&["add", "rule", "inet", "palisade_rltest", "by_nft", "return"]);
        assert!(!socket.only_own_commits().expect("the generation is read"));
        let mut batch = Batch::new();
        batch.add_elements(&marks, [Element::single(Key::Mark(8))]);
        socket.send(&mut batch).expect("the kernel takes the mark");
        assert!(!socket.only_own_commits().expect("the generation is read"));
        socket.mark_known().expect("the generation is read");
        assert!(socket.only_own_commits().expect("the generation is read"));

        // A write through nft is vouched for only when it was the one commit in between.
        let before = socket.generation().expect("the generation is read");
        nft(&["add", "rule", "inet", "palisade_rltest", "by_nft", "return"]);
        assert!(socket
            .mark_known_after_one(before)
            .expect("the generation is read"));
        assert!(socket.only_own_commits().expect("the generation is read"));
        let before = socket.generation().expect("the generation is read");
        nft(&["add", "rule", "inet", "palisade_rltest", "by_nft", "return"]);
        nft(&["add", "rule", "inet", "palisade_rltest", "by_nft", "return"]);
        assert!(!socket
            .mark_known_after_one(before)
            .expect("the generation is read"));
        assert!(!socket.only_own_commits().expect("the generation is read"));
    });
}
