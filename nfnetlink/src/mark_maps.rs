//! Maps from `address . protocol . port` to a connection mark, element by element: entries
//! added and deleted inside a transaction, and a listing of every entry with what its counter
//! counted and its comment (of interval maps too, each entry with its last key). With one such map a long run of "this host, this port: accept and
//! mark" rules is one rule and one lookup, and changing many of them is a change of elements,
//! which the kernel takes in microseconds each, where a rule with its own named counter costs
//! tens of microseconds to add and as much to delete.
//!
//! Invariants. The map is made elsewhere (`nft -f`) as `type ipv4_addr . inet_proto .
//! inet_service : mark` (or `ipv6_addr`), usually with `counter`: the kernel then gives every
//! element added here a counter of its own. Keys are laid out as the kernel compares them:
//! each field of the concatenation in its own 32-bit registers, the address and the port in
//! network order, the protocol one byte, padding zero. An element's comment travels in nft's
//! user data format, so `nft list` shows it; a comment over 254 bytes is refused, never cut.

use super::wire::*;
use super::{Batch, Counted, ElementOp, NetlinkError, NftSocket, SetRef};
use std::net::IpAddr;

/// `NFTA_SET_ELEM_DATA`, `NFTA_SET_ELEM_EXPR` (one expression), `NFTA_SET_ELEM_EXPRESSIONS`.
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
/// The last key of an element of an interval map (`flags interval`): its first is the key.
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;
/// Longest comment nft's user data can carry (one length byte, the NUL included).
const MAX_COMMENT: usize = 254;
/// `NFTA_SET_*` attributes and flags an interval set of endpoints needs besides the common ones.
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_DESC_CONCAT: u16 = 2;
const NFTA_SET_FIELD_LEN: u16 = 1;
const NFTA_SET_EXPR: u16 = 17;
const NFTA_EXPR_DATA: u16 = 2;
const NFT_SET_CONCAT: u32 = 0x80;
/// nft's type numbers: `mark`, and the concatenations `ipv4_addr . inet_proto . inet_service`
/// and `ipv6_addr . inet_proto . inet_service` (six bits per field: 7 or 8, 12, 13).
const TYPE_MARK: u32 = 19;
const TYPE_ENDPOINT_V4: u32 = (7 << 12) | (12 << 6) | 13;
const TYPE_ENDPOINT_V6: u32 = (8 << 12) | (12 << 6) | 13;
/// nft's set user data: the key's byte order "none" (a concatenation), the data's "host" (a
/// mark). Without it nft would print a map's marks byte-swapped.
const ENDPOINT_MAP_USERDATA: [u8; 12] = [0, 4, 0, 0, 0, 0, 1, 4, 1, 0, 0, 0];
const ENDPOINT_SET_USERDATA: [u8; 6] = [0, 4, 0, 0, 0, 0];

/// The key of one entry: destination address, IP protocol number, destination port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub proto: u8,
    pub port: u16,
}

impl Endpoint {
    /// The key as the kernel stores it; its length is 12 bytes for IPv4, 24 for IPv6.
    fn bytes(&self) -> ([u8; 24], usize) {
        let mut key = [0u8; 24];
        let at = match self.addr {
            IpAddr::V4(a) => {
                key[..4].copy_from_slice(&a.octets());
                4
            }
            IpAddr::V6(a) => {
                key[..16].copy_from_slice(&a.octets());
                16
            }
        };
        key[at] = self.proto;
        key[at + 4..at + 6].copy_from_slice(&self.port.to_be_bytes());
        (key, at + 8)
    }

    /// A key read back from the kernel: `None` unless it has one of the two layouts.
    fn from_bytes(key: &[u8]) -> Option<Self> {
        let (addr, rest) = match key.len() {
            12 => (
                IpAddr::from(<[u8; 4]>::try_from(key.get(..4)?).ok()?),
                key.get(4..)?,
            ),
            24 => (
                IpAddr::from(<[u8; 16]>::try_from(key.get(..16)?).ok()?),
                key.get(16..)?,
            ),
            _ => return None,
        };
        Some(Self {
            addr,
            proto: rest[0],
            port: u16::from_be_bytes([rest[4], rest[5]]),
        })
    }
}

/// One entry to add: its key, the mark it maps to, and its comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarkEntry {
    pub key: Endpoint,
    pub mark: u32,
    pub comment: String,
}

/// One entry as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    pub key: Endpoint,
    /// The last key the element covers, in a map with `flags interval` (a network or a port
    /// range); `None` in a map of exact keys.
    pub key_end: Option<Endpoint>,
    pub mark: Option<u32>,
    pub comment: Option<String>,
    /// What its counter counted, when the map gives its elements counters.
    pub counted: Option<Counted>,
}

/// One element of an interval set or map of endpoints: the networks, protocols and ports from
/// `first` to `last` (each field a range of its own), the mark it maps to (in a map), its
/// comment, and what its counter starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeEntry {
    pub first: Endpoint,
    pub last: Endpoint,
    pub mark: Option<u32>,
    pub comment: String,
    pub counted: Option<Counted>,
}

impl Batch {
    /// Creates an interval set of `address . protocol . port` (`flags interval`, a counter on
    /// every element), mapping to a mark when `map`: what `nft` makes of `set s { type
    /// ipv4_addr . inet_proto . inet_service [: mark]; flags interval; counter; }`.
    pub fn new_endpoint_set(&mut self, set: &SetRef, v6: bool, map: bool) {
        let request = self.push_request(super::Action::NewSet, set);
        let start = self.begin_request_message(
            super::NFT_MSG_NEWSET,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            set,
            request,
        );
        let id = self.next_set_id;
        self.next_set_id += 1;
        let buf = &mut self.buf;
        put_str(buf, NFTA_SET_TABLE, set.table());
        put_str(buf, NFTA_SET_NAME, set.set());
        let mut flags = NFT_SET_INTERVAL | NFT_SET_CONCAT;
        if map {
            flags |= NFT_SET_MAP;
        }
        put_be32(buf, NFTA_SET_FLAGS, flags);
        let (key_type, address_len) = match v6 {
            false => (TYPE_ENDPOINT_V4, 4),
            true => (TYPE_ENDPOINT_V6, 16),
        };
        put_be32(buf, NFTA_SET_KEY_TYPE, key_type);
        // Each field padded to 32 bits, as the kernel lays out registers.
        put_be32(buf, NFTA_SET_KEY_LEN, address_len + 8);
        if map {
            put_be32(buf, NFTA_SET_DATA_TYPE, TYPE_MARK);
            put_be32(buf, NFTA_SET_DATA_LEN, 4);
        }
        put_be32(buf, NFTA_SET_ID, id);
        let desc = begin_nest(buf, NFTA_SET_DESC);
        let concat = begin_nest(buf, NFTA_SET_DESC_CONCAT);
        for field in [address_len, 1, 2] {
            let elem = begin_nest(buf, NFTA_LIST_ELEM);
            put_be32(buf, NFTA_SET_FIELD_LEN, field);
            end_nest(buf, elem);
        }
        end_nest(buf, concat);
        end_nest(buf, desc);
        let udata: &[u8] = match map {
            true => &ENDPOINT_MAP_USERDATA,
            false => &ENDPOINT_SET_USERDATA,
        };
        put_attr(buf, NFTA_SET_USERDATA, udata);
        let expr = begin_nest(buf, NFTA_SET_EXPR);
        put_str(buf, NFTA_EXPR_NAME, "counter");
        let data = begin_nest(buf, NFTA_EXPR_DATA);
        end_nest(buf, data);
        end_nest(buf, expr);
        end_message(buf, start);
    }

    /// Adds elements to an interval set or map of endpoints, each with its counter starting
    /// from what it carries. A comment over 254 bytes or holding a NUL, or a first and last of
    /// different families, is refused before anything is written.
    pub fn add_range_entries<'a>(
        &mut self,
        set: &SetRef,
        entries: impl IntoIterator<Item = &'a RangeEntry>,
    ) -> Result<usize, NetlinkError> {
        let entries: Vec<&RangeEntry> = entries.into_iter().collect();
        if let Some(bad) = entries
            .iter()
            .find(|e| e.comment.len() > MAX_COMMENT || e.comment.contains('\0'))
        {
            return Err(NetlinkError::InvalidComment {
                len: bad.comment.len(),
            });
        }
        if entries
            .iter()
            .any(|e| e.first.addr.is_ipv4() != e.last.addr.is_ipv4())
        {
            return Err(NetlinkError::MixedFamilies);
        }
        Ok(self.push_encoded(
            ElementOp::Add,
            set,
            entries.into_iter().map(|e| {
                let (first, len) = e.first.bytes();
                let (last, _) = e.last.bytes();
                move |buf: &mut Vec<u8>| {
                    let element = begin_nest(buf, NFTA_LIST_ELEM);
                    let nest = begin_nest(buf, NFTA_SET_ELEM_KEY);
                    put_attr(buf, NFTA_DATA_VALUE, &first[..len]);
                    end_nest(buf, nest);
                    let nest = begin_nest(buf, NFTA_SET_ELEM_KEY_END);
                    put_attr(buf, NFTA_DATA_VALUE, &last[..len]);
                    end_nest(buf, nest);
                    if let Some(mark) = e.mark {
                        let nest = begin_nest(buf, NFTA_SET_ELEM_DATA);
                        put_attr(buf, NFTA_DATA_VALUE, &mark.to_ne_bytes());
                        end_nest(buf, nest);
                    }
                    put_comment(buf, &e.comment);
                    let counted = e.counted.unwrap_or_default();
                    let expr = begin_nest(buf, NFTA_SET_ELEM_EXPR);
                    put_str(buf, NFTA_EXPR_NAME, "counter");
                    let data = begin_nest(buf, NFTA_EXPR_DATA);
                    put_be64(buf, NFTA_COUNTER_BYTES, counted.bytes);
                    put_be64(buf, NFTA_COUNTER_PACKETS, counted.packets);
                    end_nest(buf, data);
                    end_nest(buf, expr);
                    end_nest(buf, element);
                }
            }),
        ))
    }

    /// Adds entries to a map of marks. A comment over 254 bytes or holding a NUL is refused
    /// before anything is written.
    pub fn add_mark_entries<'a>(
        &mut self,
        map: &SetRef,
        entries: impl IntoIterator<Item = &'a MarkEntry>,
    ) -> Result<usize, NetlinkError> {
        let entries: Vec<&MarkEntry> = entries.into_iter().collect();
        if let Some(bad) = entries
            .iter()
            .find(|e| e.comment.len() > MAX_COMMENT || e.comment.contains('\0'))
        {
            return Err(NetlinkError::InvalidComment {
                len: bad.comment.len(),
            });
        }
        Ok(self.push_encoded(
            ElementOp::Add,
            map,
            entries.into_iter().map(|e| {
                let (key, len) = e.key.bytes();
                move |buf: &mut Vec<u8>| {
                    let element = begin_nest(buf, NFTA_LIST_ELEM);
                    let nest = begin_nest(buf, NFTA_SET_ELEM_KEY);
                    put_attr(buf, NFTA_DATA_VALUE, &key[..len]);
                    end_nest(buf, nest);
                    let nest = begin_nest(buf, NFTA_SET_ELEM_DATA);
                    put_attr(buf, NFTA_DATA_VALUE, &e.mark.to_ne_bytes());
                    end_nest(buf, nest);
                    put_comment(buf, &e.comment);
                    end_nest(buf, element);
                }
            }),
        ))
    }

    /// Deletes entries by key; the transaction fails if one is not in the map.
    pub fn delete_mark_entries(
        &mut self,
        map: &SetRef,
        keys: impl IntoIterator<Item = Endpoint>,
    ) -> usize {
        self.push_encoded(
            ElementOp::Delete,
            map,
            keys.into_iter().map(|k| {
                let (key, len) = k.bytes();
                move |buf: &mut Vec<u8>| {
                    let element = begin_nest(buf, NFTA_LIST_ELEM);
                    let nest = begin_nest(buf, NFTA_SET_ELEM_KEY);
                    put_attr(buf, NFTA_DATA_VALUE, &key[..len]);
                    end_nest(buf, nest);
                    end_nest(buf, element);
                }
            }),
        )
    }

    /// Writes elements, each by its own writer, into element messages split under the
    /// message size limit; returns how many were written.
    fn push_encoded<W>(
        &mut self,
        op: ElementOp,
        set: &SetRef,
        writers: impl Iterator<Item = W>,
    ) -> usize
    where
        W: FnOnce(&mut Vec<u8>),
    {
        let (action, msg_type, flags) = op.request();
        let request = self.push_request(action, set);
        let mut open = None;
        let mut taken = 0;
        let mut scratch = Vec::with_capacity(512);
        for write in writers {
            scratch.clear();
            write(&mut scratch);
            let fits = open.is_some_and(|list: super::OpenList| {
                self.buf.len() + scratch.len() - list.message <= super::MAX_MESSAGE
            });
            if !fits {
                if let Some(full) = open.take() {
                    self.close_list(full);
                }
                open = Some(self.open_list(msg_type, flags, set, request));
            }
            // Nested attributes record their offsets relative to their own start, so the
            // element moves as it is.
            self.buf.extend_from_slice(&scratch);
            if let Some(message) = self.messages.last_mut() {
                message.elements += 1;
            }
            taken += 1;
        }
        if let Some(list) = open {
            self.close_list(list);
        }
        taken
    }
}

impl NftSocket {
    /// Every entry of a map of marks, with its mark, comment and what its counter counted:
    /// one dump of the map's elements. A missing map or table has none.
    pub fn list_mark_entries(&mut self, map: &SetRef) -> Result<Vec<ListedEntry>, NetlinkError> {
        let listed = self.dump_of(
            &ELEMENTS,
            map.family(),
            map.table(),
            Some((NFTA_SET_ELEM_LIST_SET, map.set())),
            |attrs| parse_entries(attrs, map.set()),
        )?;
        Ok(listed.into_iter().flatten().collect())
    }
}

const ELEMENTS: super::DumpKind = super::DumpKind {
    get: NFT_MSG_GETSETELEM,
    object: NFT_MSG_NEWSETELEM,
    table_attr: NFTA_SET_ELEM_LIST_TABLE,
    noun: "elements",
};

/// The entries of one element message: `None` if it is malformed, `Some(None)` if it is of
/// another set.
fn parse_entries(attrs: &[u8], set: &str) -> Option<Option<Vec<ListedEntry>>> {
    let attrs = parse_attrs(attrs)?;
    if attr_bytes(find_attr(&attrs, NFTA_SET_ELEM_LIST_SET)?) != set.as_bytes() {
        return Some(None);
    }
    let Some(list) = find_attr(&attrs, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Some(Some(Vec::new()));
    };
    let mut entries = Vec::new();
    for element in parse_attrs(list)? {
        if element.kind != NFTA_LIST_ELEM {
            continue;
        }
        let fields = parse_attrs(element.payload)?;
        let value = |kind: u16| -> Option<&[u8]> {
            find_attr(&parse_attrs(find_attr(&fields, kind)?)?, NFTA_DATA_VALUE)
        };
        let key = Endpoint::from_bytes(value(NFTA_SET_ELEM_KEY)?)?;
        let key_end = match value(NFTA_SET_ELEM_KEY_END) {
            Some(bytes) => Some(Endpoint::from_bytes(bytes)?),
            None => None,
        };
        let mark = match value(NFTA_SET_ELEM_DATA) {
            Some(bytes) => Some(u32::from_ne_bytes(bytes.try_into().ok()?)),
            None => None,
        };
        let comment = find_attr(&fields, NFTA_SET_ELEM_USERDATA).and_then(comment_of);
        let counted = match find_attr(&fields, NFTA_SET_ELEM_EXPR) {
            Some(expr) => counter_of(expr),
            None => find_attr(&fields, NFTA_SET_ELEM_EXPRESSIONS).and_then(|list| {
                parse_attrs(list)?
                    .iter()
                    .filter(|e| e.kind == NFTA_LIST_ELEM)
                    .find_map(|e| counter_of(e.payload))
            }),
        };
        entries.push(ListedEntry {
            key,
            key_end,
            mark,
            comment,
            counted,
        });
    }
    Some(Some(entries))
}

/// An element's comment in nft's user data format, if it has one. At most [`MAX_COMMENT`]
/// bytes (checked by the callers): the length fits one byte.
fn put_comment(buf: &mut Vec<u8>, comment: &str) {
    if comment.is_empty() {
        return;
    }
    let mut udata = Vec::with_capacity(comment.len() + 3);
    udata.push(UDATA_COMMENT);
    udata.push((comment.len() + 1) as u8);
    udata.extend_from_slice(comment.as_bytes());
    udata.push(0);
    put_attr(buf, NFTA_SET_ELEM_USERDATA, &udata);
}

/// A counter expression's packets and bytes; `None` for any other expression.
fn counter_of(expr: &[u8]) -> Option<Counted> {
    let attrs = parse_attrs(expr)?;
    if attr_bytes(find_attr(&attrs, NFTA_EXPR_NAME)?) != b"counter" {
        return None;
    }
    let data = parse_attrs(find_attr(&attrs, NFTA_EXPR_DATA)?)?;
    Some(Counted {
        packets: attr_be64(find_attr(&data, NFTA_COUNTER_PACKETS)?)?,
        bytes: attr_be64(find_attr(&data, NFTA_COUNTER_BYTES)?)?,
    })
}

/// The comment in nft's user data (type, length with the NUL, text, NUL), if there is one.
fn comment_of(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        if *kind == UDATA_COMMENT {
            return Some(String::from_utf8_lossy(attr_bytes(value)).into_owned());
        }
        rest = tail.get(len..)?;
    }
    None
}

#[cfg(test)]
mod tests;
