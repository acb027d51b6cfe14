//! The bytes: netlink and nf_tables constants, an attribute writer over a `Vec<u8>`, and the
//! readers for the kernel's answers and for the attributes of the objects it describes. Values are those of `linux/netlink.h`,
//! `linux/netfilter/nfnetlink.h` and `linux/netfilter/nf_tables.h`; they are part of the kernel's
//! stable ABI.

/// `struct nlmsghdr`: length, type, flags, sequence, port id.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct nfgenmsg`: family, version, resource id.
pub const NFGENMSG_LEN: usize = 4;
/// Netlink attribute header: length and type, both 16-bit.
pub const NLA_HDRLEN: usize = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
/// Set by the kernel on every message of a dump (only the tests build such messages).
#[cfg(test)]
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
/// Set by the kernel on a message of a dump when the ruleset changed while it was dumped: the
/// dump is not one consistent picture and has to be asked for again.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_ROOT | NLM_F_MATCH`: every object (of the family, of the table where the kernel
/// filters), one message each, then `NLMSG_DONE`.
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
/// Set by the kernel on an acknowledgement that carries only the request's header.
pub const NLM_F_CAPPED: u16 = 0x100;
/// Set by the kernel on an acknowledgement followed by extended-ack attributes.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

pub const NLMSG_ERROR: u16 = 0x2;
pub const NLMSG_DONE: u16 = 0x3;
/// `NLMSGERR_ATTR_MSG`: the kernel's error text, NUL-terminated.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NFNETLINK_V0: u8 = 0;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_GETTABLE: u16 = 1;
pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_NAME: u16 = 3;
/// Present on base chains only: the hook, priority and devices they are attached to.
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_GETSET: u16 = 10;
pub const NFT_MSG_DELSET: u16 = 11;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_DELSETELEM: u16 = 14;

pub const NFTA_SET_TABLE: u16 = 1;
pub const NFTA_SET_NAME: u16 = 2;
pub const NFTA_SET_FLAGS: u16 = 3;
pub const NFTA_SET_KEY_TYPE: u16 = 4;
pub const NFTA_SET_KEY_LEN: u16 = 5;
pub const NFTA_SET_ID: u16 = 10;
pub const NFTA_SET_TIMEOUT: u16 = 11;
pub const NFTA_SET_USERDATA: u16 = 13;

pub const NFT_SET_ANONYMOUS: u32 = 0x1;
/// Anonymous sets of rules carry it (only the tests build such sets).
#[cfg(test)]
pub const NFT_SET_CONSTANT: u32 = 0x2;
pub const NFT_SET_INTERVAL: u32 = 0x4;
pub const NFT_SET_MAP: u32 = 0x8;
pub const NFT_SET_TIMEOUT: u32 = 0x10;

// Stateful objects (`counter`, `limit`, ...): the dump of a table's objects and their data.
pub const NFT_MSG_NEWOBJ: u16 = 18;
pub const NFT_MSG_GETOBJ: u16 = 19;
pub const NFTA_OBJ_TABLE: u16 = 1;
pub const NFTA_OBJ_NAME: u16 = 2;
pub const NFTA_OBJ_TYPE: u16 = 3;
pub const NFTA_OBJ_DATA: u16 = 4;
pub const NFT_OBJECT_COUNTER: u32 = 1;
pub const NFTA_COUNTER_BYTES: u16 = 1;
pub const NFTA_COUNTER_PACKETS: u16 = 2;

pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_SET_ELEM_KEY: u16 = 1;
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;
pub const NFTA_DATA_VALUE: u16 = 1;
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;

/// nft's user data in a set: the key's byte order (`NFTNL_UDATA_SET_KEYBYTEORDER`) is big
/// endian (`BYTEORDER_BIG_ENDIAN`), so `nft list` prints addresses, as for a set it made.
pub const SET_USERDATA_KEY_BIG_ENDIAN: [u8; 6] = [0, 4, 2, 0, 0, 0];
/// nft's user data on the start of an interval that runs to the top of the address space
/// (`NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`), so `nft list` shows the
/// network as a prefix. Little endian: nft writes it in host order and this is x86/arm64 Linux.
pub const ELEM_USERDATA_INTERVAL_OPEN: [u8; 6] = [1, 4, 1, 0, 0, 0];

/// nf_tables message type: the subsystem in the high byte.
pub const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// Attribute length rounded up to the 4-byte alignment netlink requires.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Bytes an attribute with a payload of `payload` bytes takes, padding included.
pub const fn attr_size(payload: usize) -> usize {
    align(NLA_HDRLEN + payload)
}

/// Appends one netlink message header and `nfgenmsg`; returns where the message starts, for
/// [`end_message`]. The sequence number is written at send time.
pub fn begin_message(
    buf: &mut Vec<u8>,
    msg_type: u16,
    flags: u16,
    family: u8,
    res_id: u16,
) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by end_message
    buf.extend_from_slice(&msg_type.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: 0 is the kernel
    buf.push(family);
    buf.push(NFNETLINK_V0);
    buf.extend_from_slice(&res_id.to_be_bytes());
    start
}

/// Writes the length of the message that began at `start`.
pub fn end_message(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Writes the sequence number of the message at `start`.
pub fn set_seq(buf: &mut [u8], start: usize, seq: u32) {
    buf[start + 8..start + 12].copy_from_slice(&seq.to_ne_bytes());
}

pub fn put_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = NLA_HDRLEN + payload.len();
    // Callers pass names (at most 256 bytes) and fixed-size values: always fits in 16 bits.
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len() + align(len) - len, 0);
}

/// A NUL-terminated string attribute, as the kernel's `NLA_STRING` policy reads it.
pub fn put_str(buf: &mut Vec<u8>, kind: u16, value: &str) {
    let len = NLA_HDRLEN + value.len() + 1;
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value.as_bytes());
    buf.push(0);
    buf.resize(buf.len() + align(len) - len, 0);
}

pub fn put_be32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    put_attr(buf, kind, &value.to_be_bytes());
}

pub fn put_be64(buf: &mut Vec<u8>, kind: u16, value: u64) {
    put_attr(buf, kind, &value.to_be_bytes());
}

/// Opens a nested attribute; returns where it starts, for [`end_nest`].
pub fn begin_nest(buf: &mut Vec<u8>, kind: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

/// Closes the nested attribute that began at `start`. Its length must fit in 16 bits: callers
/// split element lists long before (see `MAX_MESSAGE`), and debug builds check.
pub fn end_nest(buf: &mut [u8], start: usize) {
    let len = buf.len() - start;
    debug_assert!(
        len <= usize::from(u16::MAX),
        "nested attribute of {len} bytes"
    );
    buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
}

/// One message of the kernel's answer, as far as this module needs to understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `NLMSG_ERROR`: an acknowledgement (`errno` 0) or a refusal of the request with `seq`.
    Ack {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    /// `NLMSG_DONE`: the end of a dump; `errno` is 0 unless the dump failed part-way.
    Done { seq: u32, flags: u16, errno: i32 },
    /// Any other message: an object the kernel describes (the answer to a get, or one part of a
    /// dump), with its attributes, the bytes after the `nfgenmsg` (none if it has no
    /// `nfgenmsg`); [`parse_attrs`] splits them.
    Other {
        seq: u32,
        msg_type: u16,
        flags: u16,
        attrs: Vec<u8>,
    },
}

/// Splits one datagram from the kernel into its messages. `None` when it is malformed.
pub fn parse_replies(mut data: &[u8]) -> Option<Vec<Reply>> {
    let mut replies = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return None;
        }
        let msg_type = u16::from_ne_bytes(data[4..6].try_into().ok()?);
        let flags = u16::from_ne_bytes(data[6..8].try_into().ok()?);
        let seq = u32::from_ne_bytes(data[8..12].try_into().ok()?);
        let body = &data[NLMSG_HDRLEN..len];
        replies.push(match msg_type {
            NLMSG_ERROR => parse_error(flags, body)?,
            // The dump's outcome, an `int`; extended-ack attributes may follow.
            NLMSG_DONE => Reply::Done {
                seq,
                flags,
                errno: -i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?),
            },
            _ => Reply::Other {
                seq,
                msg_type,
                flags,
                attrs: body.get(NFGENMSG_LEN..).unwrap_or_default().to_vec(),
            },
        });
        data = &data[align(len).min(data.len())..];
    }
    Some(replies)
}

/// `struct nlmsgerr`: the negative errno, then the request's header (and, unless capped, its
/// payload), then with `NLM_F_ACK_TLVS` the extended-ack attributes.
fn parse_error(flags: u16, body: &[u8]) -> Option<Reply> {
    let error = i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?);
    let request = body.get(4..4 + NLMSG_HDRLEN)?;
    let request_len = u32::from_ne_bytes(request[0..4].try_into().ok()?) as usize;
    let request_seq = u32::from_ne_bytes(request[8..12].try_into().ok()?);
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align(request_len)
        };
        let mut tlvs = body.get(4 + echoed..).unwrap_or_default();
        while tlvs.len() >= NLA_HDRLEN {
            let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
            let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & NLA_TYPE_MASK;
            if len < NLA_HDRLEN || len > tlvs.len() {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let text = &tlvs[NLA_HDRLEN..len];
                let text = text.split(|b| *b == 0).next().unwrap_or_default();
                message = Some(String::from_utf8_lossy(text).into_owned());
            }
            tlvs = &tlvs[align(len).min(tlvs.len())..];
        }
    }
    Some(Reply::Ack {
        seq: request_seq,
        errno: -error,
        message,
    })
}

/// One attribute of a received message: its type (flags masked off) and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

/// Splits a list of attributes (not descending into nested ones). `None` when it is malformed:
/// an attribute shorter than its header, longer than what is left, or bytes left over that
/// cannot hold a header.
pub fn parse_attrs(mut data: &[u8]) -> Option<Vec<Attr<'_>>> {
    let mut attrs = Vec::new();
    while !data.is_empty() {
        let header = data.get(..NLA_HDRLEN)?;
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        let payload = data.get(NLA_HDRLEN..len)?;
        attrs.push(Attr { kind, payload });
        data = data.get(align(len)..).unwrap_or_default();
    }
    Some(attrs)
}

/// The payload of the first attribute of this type.
pub fn find_attr<'a>(attrs: &[Attr<'a>], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|a| a.kind == kind).map(|a| a.payload)
}

/// A string attribute's bytes, up to its terminating NUL.
pub fn attr_bytes(payload: &[u8]) -> &[u8] {
    payload.split(|b| *b == 0).next().unwrap_or_default()
}

/// A big-endian 32-bit attribute; `None` unless it has exactly 4 bytes.
pub fn attr_be32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.try_into().ok()?))
}

/// A big-endian 64-bit attribute (a counter's packets and bytes); `None` unless it has exactly
/// 8 bytes.
pub fn attr_be64(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.try_into().ok()?))
}

// Rules and their expressions (`linux/netfilter/nf_tables.h`).
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_DELRULE: u16 = 8;
pub const NFT_MSG_DELOBJ: u16 = 20;
/// With a position: after that rule (without: before it); without one: at the chain's end.
pub const NLM_F_APPEND: u16 = 0x800;
pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_HANDLE: u16 = 3;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_RULE_POSITION: u16 = 6;
pub const NFTA_RULE_USERDATA: u16 = 7;
pub const NFTA_EXPR_NAME: u16 = 1;
pub const NFTA_EXPR_DATA: u16 = 2;
pub const NFTA_OBJ_USERDATA: u16 = 8;
pub const NFT_OBJECT_LIMIT: u32 = 4;
/// nft's user data TLV holding a rule's or an object's comment (`NFTNL_UDATA_RULE_COMMENT`,
/// `NFTNL_UDATA_OBJ_COMMENT`).
pub const UDATA_COMMENT: u8 = 0;

pub const NFT_REG_VERDICT: u32 = 0;
pub const NFT_REG_1: u32 = 1;
pub const NFTA_DATA_VERDICT: u16 = 2;
pub const NFTA_VERDICT_CODE: u16 = 1;
pub const NFTA_VERDICT_CHAIN: u16 = 2;
pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: i32 = 1;
pub const NFT_JUMP: i32 = -3;
pub const NFT_RETURN: i32 = -5;

pub const NFTA_META_DREG: u16 = 1;
pub const NFTA_META_KEY: u16 = 2;
pub const NFTA_CMP_SREG: u16 = 1;
pub const NFTA_CMP_OP: u16 = 2;
pub const NFTA_CMP_DATA: u16 = 3;
pub const NFTA_PAYLOAD_DREG: u16 = 1;
pub const NFTA_PAYLOAD_BASE: u16 = 2;
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub const NFTA_PAYLOAD_LEN: u16 = 4;
pub const NFTA_BITWISE_SREG: u16 = 1;
pub const NFTA_BITWISE_DREG: u16 = 2;
pub const NFTA_BITWISE_LEN: u16 = 3;
pub const NFTA_BITWISE_MASK: u16 = 4;
pub const NFTA_BITWISE_XOR: u16 = 5;
pub const NFTA_LOOKUP_SET: u16 = 1;
pub const NFTA_LOOKUP_SREG: u16 = 2;
pub const NFTA_LOOKUP_FLAGS: u16 = 5;
pub const NFT_LOOKUP_F_INV: u32 = 1;
pub const NFTA_IMMEDIATE_DREG: u16 = 1;
pub const NFTA_IMMEDIATE_DATA: u16 = 2;
pub const NFTA_OBJREF_IMM_TYPE: u16 = 1;
pub const NFTA_OBJREF_IMM_NAME: u16 = 2;
pub const NFTA_CT_DREG: u16 = 1;
pub const NFTA_CT_KEY: u16 = 2;
pub const NFTA_CT_SREG: u16 = 4;
pub const NFTA_LOG_GROUP: u16 = 1;
pub const NFTA_LOG_PREFIX: u16 = 2;
/// With `NLM_F_CREATE`: fail if the object exists (same bit as `NLM_F_ACK_TLVS`, which the
/// kernel sets only on answers).
pub const NLM_F_EXCL: u16 = 0x200;
/// Tell the sender what the message did (an added rule with its handle). On a batch's first
/// message it also makes the kernel tell the generation the batch commits.
pub const NLM_F_ECHO: u16 = 0x8;
pub const NFT_MSG_NEWGEN: u16 = 15;
pub const NFT_MSG_GETGEN: u16 = 16;
pub const NFTA_GEN_ID: u16 = 1;
