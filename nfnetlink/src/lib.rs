//! Set data over raw nfnetlink: adds, deletes and refreshes elements of nftables sets (and
//! creates, flushes and deletes sets) without the `nft` tool, which reads whole sets before
//! it acts and so takes minutes once a set holds a million entries. It also answers what exists
//! in a table, again without reading any set's elements: whether a table or set exists (one get
//! each), and which chains and which sets a table holds ([`NftSocket::list_chains`] and
//! [`NftSocket::list_sets`], one dump each: under a millisecond beside a 200,000-interval set,
//! where `nft list tables` takes 6 s, and minutes beside a million entries).
//!
//! Invariants. One [`Batch`] is one nftables transaction: it lands whole or not at all, and
//! [`NftSocket::send`] returns only after the kernel answered every message in it, naming the
//! first message it refused. Every message asks for an acknowledgement; the batch's begin and end
//! markers do not, because kernels before 6.10 ignore that flag there and an answer that may or
//! may not come cannot be counted. No message is longer than 64 KiB: the element list is one
//! nested attribute whose length field has 16 bits, so long lists are split over several
//! messages of the same transaction. Networks in `flags interval` sets are sent as nft sends
//! them: a start element and an `NFT_SET_ELEM_INTERVAL_END` element at the first address after
//! the network, the end left out when the network reaches the top of the address space. Big
//! loads go through [`NftSocket::send_chunked`], which streams elements from an iterator into
//! transactions of a bounded size, so neither this process nor the kernel holds more than one
//! chunk at a time and other writers of the ruleset wait at most one chunk.
//!
//! Dumps. A listing is one `NLM_F_DUMP` request answered by one message per object, over as
//! many datagrams as it takes, then `NLMSG_DONE`. The kernel marks the dump's messages with
//! `NLM_F_DUMP_INTR` when the ruleset changed while it dumped (any commit, element loads
//! included); the listing is then asked for again, up to `DUMP_ATTEMPTS` times. A dump is read
//! to its `NLMSG_DONE` even when a message in it is malformed, since the kernel refuses a new
//! dump on a socket whose last one is unfinished. The kernel restricts a dump of sets to the
//! table named in the request (and answers `ENOENT` for a missing table); it ignores the table
//! in a dump of chains (its chain dump has never read the request's attributes; seen on 6.18)
//! and sends every chain of the family, so chains are filtered here by the table each names.
//!
//! Why by hand. `rustables` packs a whole element list into one attribute whose 16-bit length
//! overflows past 64 KiB and has no interval-end flag; `nftnl`/`nftnl-rs` bind the C libraries
//! libnftnl/libmnl (unsafe FFI and another system library); `netlink-packet-netfilter` (0.4 added
//! nftables message types) is a packet parser and leaves batching, splitting, interval ends and
//! acknowledgements to the caller — that is all of this crate; `nlink` is a young async netlink
//! stack, far more than the few messages needed here; the `nftables` crate drives the `nft` tool
//! this crate exists to avoid. So `netlink-sys` provides the socket (`nix` sizes its buffers),
//! and the encoding, a few hundred lines against the kernel's stable ABI, lives here with its
//! tests.
//!
//! Rules and commits. [`Batch::add_rule`] and [`Batch::delete_rule`] change single rules of a
//! chain in place (`rules`), and [`NftSocket::list_rules`] tells where each rule is. Every
//! successful transaction records the ruleset generation it committed in a per-namespace log
//! ([`commits`]), so a caller can tell whether anyone but this process changed the ruleset since
//! it last knew it, without reading the ruleset.
//!
//! Its own crate so that more than the helper can use it: the helper's data path (imported lists)
//! and the bench, which inserts into a small set while a big list loads, speak to the kernel
//! through the same encoder. It knows nothing of Palisade's policies or tables: callers name
//! the table and set.

pub mod commits;
mod mark_maps;
mod rules;
#[cfg(test)]
mod tests;
mod wire;

pub use mark_maps::{Endpoint, ListedEntry, MarkEntry, RangeEntry};
pub use rules::{
    ChainRef, CmpOp, CtKey, Expr, MetaKey, ObjectKind, ObjectRef, PayloadBase, Placement, RuleInfo,
    RuleSpec, Verdict,
};

use ipnet::IpNet;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use wire::{
    attr_be32, attr_be64, attr_bytes, attr_size, begin_message, begin_nest, end_message, end_nest,
    find_attr, nft_type, parse_attrs, parse_replies, put_attr, put_be32, put_be64, put_str,
    set_seq, Reply, ELEM_USERDATA_INTERVAL_OPEN, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES, NFTA_CHAIN_HOOK, NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_COUNTER_BYTES,
    NFTA_COUNTER_PACKETS, NFTA_DATA_VALUE, NFTA_GEN_ID, NFTA_LIST_ELEM, NFTA_OBJ_DATA,
    NFTA_OBJ_NAME, NFTA_OBJ_TABLE, NFTA_OBJ_TYPE, NFTA_RULE_HANDLE, NFTA_SET_ELEM_FLAGS,
    NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_TIMEOUT, NFTA_SET_ELEM_USERDATA, NFTA_SET_FLAGS,
    NFTA_SET_ID, NFTA_SET_KEY_LEN, NFTA_SET_KEY_TYPE, NFTA_SET_NAME, NFTA_SET_TABLE,
    NFTA_SET_TIMEOUT, NFTA_SET_USERDATA, NFTA_TABLE_NAME, NFT_MSG_DELSET, NFT_MSG_DELSETELEM,
    NFT_MSG_GETCHAIN, NFT_MSG_GETGEN, NFT_MSG_GETOBJ, NFT_MSG_GETSET, NFT_MSG_GETTABLE,
    NFT_MSG_NEWCHAIN, NFT_MSG_NEWGEN, NFT_MSG_NEWOBJ, NFT_MSG_NEWRULE, NFT_MSG_NEWSET,
    NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE, NFT_OBJECT_COUNTER, NFT_SET_ANONYMOUS,
    NFT_SET_ELEM_INTERVAL_END, NFT_SET_INTERVAL, NFT_SET_MAP, NFT_SET_TIMEOUT, NLA_HDRLEN,
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    SET_USERDATA_KEY_BIG_ENDIAN,
};

/// Longest message this crate writes: the 16-bit length of the element list bounds it.
const MAX_MESSAGE: usize = u16::MAX as usize;
/// Longest table or set name the kernel accepts (`NFT_NAME_MAXLEN` less the NUL).
const MAX_NAME: usize = 255;
/// Largest transaction one `sendmsg` can carry: the kernel caps a forced send buffer at
/// `INT_MAX / 2` and needs 32 bytes of it for itself.
const MAX_TRANSACTION: usize = (i32::MAX as usize) / 2 - 32;
/// Receive-buffer room per expected acknowledgement: an acknowledgement is a small socket
/// buffer, but the kernel charges its whole allocation (under 1 KiB) against the buffer.
const RECEIVE_PER_ANSWER: usize = 1024;
/// Buffers set when the socket opens, raised per transaction when one needs more.
const INITIAL_SEND_BUFFER: usize = 4 << 20;
const INITIAL_RECEIVE_BUFFER: usize = 1 << 20;
/// Longest wait for an answer. The kernel handles a transaction inside `sendmsg`, so its
/// answers are queued before the wait begins; this only bounds a kernel that misbehaves.
const ANSWER_TIMEOUT_SECONDS: i64 = 30;
/// Size of one read; answers are acknowledgements, one set's description, or one datagram of a
/// dump (the kernel fills those to at most 32 KiB).
const ANSWER_BUFFER: usize = 64 << 10;
/// Dumps asked for before a listing gives up on a ruleset that changed during every one.
const DUMP_ATTEMPTS: usize = 10;

/// The family of a table, as in `table inet palisade` (not an address family: an `inet` table
/// holds both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFamily {
    Inet,
    Ip,
    Ip6,
    Bridge,
}

impl TableFamily {
    fn nfproto(self) -> u8 {
        match self {
            TableFamily::Inet => libc::NFPROTO_INET as u8,
            TableFamily::Ip => libc::NFPROTO_IPV4 as u8,
            TableFamily::Ip6 => libc::NFPROTO_IPV6 as u8,
            TableFamily::Bridge => libc::NFPROTO_BRIDGE as u8,
        }
    }

    fn word(self) -> &'static str {
        match self {
            TableFamily::Inet => "inet",
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
            TableFamily::Bridge => "bridge",
        }
    }
}

/// A set by family, table and name, the names checked once here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRef {
    family: TableFamily,
    table: String,
    set: String,
}

impl SetRef {
    /// Names must have 1 to 255 bytes and no NUL, as the kernel requires.
    pub fn new(family: TableFamily, table: &str, set: &str) -> Result<Self, NetlinkError> {
        check_name(table)?;
        check_name(set)?;
        Ok(Self {
            family,
            table: table.to_owned(),
            set: set.to_owned(),
        })
    }

    pub fn family(&self) -> TableFamily {
        self.family
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn set(&self) -> &str {
        &self.set
    }
}

/// An nftables name has 1 to 255 bytes and no NUL.
fn check_name(name: &str) -> Result<(), NetlinkError> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
        return Err(NetlinkError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl fmt::Display for SetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "set {} {} {}", self.family.word(), self.table, self.set)
    }
}

/// One address as a set key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// A packet or connection mark (nft's `mark` type), in the host's byte order as the kernel
    /// compares it.
    Mark(u32),
}

impl Key {
    fn len(self) -> usize {
        match self {
            Key::V4(_) | Key::Mark(_) => 4,
            Key::V6(_) => 16,
        }
    }
}

impl From<IpAddr> for Key {
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Key::V4(a),
            IpAddr::V6(a) => Key::V6(a),
        }
    }
}

impl From<Ipv4Addr> for Key {
    fn from(addr: Ipv4Addr) -> Self {
        Key::V4(addr)
    }
}

impl From<Ipv6Addr> for Key {
    fn from(addr: Ipv6Addr) -> Self {
        Key::V6(addr)
    }
}

/// The key type of a set this crate creates: nft's `ipv4_addr` or `ipv6_addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ipv4Addr,
    Ipv6Addr,
}

impl KeyType {
    /// nft's datatype number (`TYPE_IPADDR`, `TYPE_IP6ADDR`), which `nft list` uses to print.
    fn datatype(self) -> u32 {
        match self {
            KeyType::Ipv4Addr => 7,
            KeyType::Ipv6Addr => 8,
        }
    }

    fn len(self) -> u32 {
        match self {
            KeyType::Ipv4Addr => 4,
            KeyType::Ipv6Addr => 16,
        }
    }
}

/// What a new set is: its key and flags. Name and table come from the [`SetRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSpec {
    pub key: KeyType,
    /// `flags interval`: elements are networks ([`Element::Network`]).
    pub interval: bool,
    /// `flags timeout`: elements may expire. Implied by `default_timeout`.
    pub timeout: bool,
    /// `timeout ...` of the set: elements added without their own timeout expire after it.
    pub default_timeout: Option<Duration>,
}

/// One element as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// One address in a set without `flags interval`, expiring after `timeout` when given (the
    /// set needs `flags timeout`). A zero timeout is sent as 1 ms: meant to expire at once, it
    /// must not be taken for "never".
    Single { key: Key, timeout: Option<Duration> },
    /// A network in a set with `flags interval`. Networks in one set must not overlap (the
    /// kernel refuses overlaps; `IpNet::aggregate` merges them first); host bits are ignored.
    Network(IpNet),
    /// The addresses `first..=last` in a set with `flags interval` (one family; `first <=
    /// last`). The compact form of merged lists: a range needs no splitting into prefixes.
    Range { first: Key, last: Key },
}

impl Element {
    pub fn single(key: impl Into<Key>) -> Self {
        Element::Single {
            key: key.into(),
            timeout: None,
        }
    }

    pub fn expiring(key: impl Into<Key>, timeout: Duration) -> Self {
        Element::Single {
            key: key.into(),
            timeout: Some(timeout),
        }
    }

    /// The one or two elements the kernel stores for this one.
    fn kernel_elements(&self) -> impl Iterator<Item = KernelElement> {
        let (start, end) = match *self {
            Element::Single { key, timeout } => {
                let single = KernelElement {
                    key,
                    end: false,
                    open: false,
                    timeout_ms: timeout.map(millis),
                };
                return std::iter::once(single).chain(None);
            }
            Element::Network(net) => interval_bounds(&net),
            Element::Range { first, last } => (first, key_after(last)),
        };
        let start = KernelElement {
            key: start,
            end: false,
            open: end.is_none(),
            timeout_ms: None,
        };
        let end = end.map(|key| KernelElement {
            key,
            end: true,
            open: false,
            timeout_ms: None,
        });
        std::iter::once(start).chain(end)
    }
}

/// A timeout in the kernel's unit; zero becomes 1 ms (see [`Element::Single`]).
fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The first address after `last`, `None` past the top of its family.
fn key_after(last: Key) -> Option<Key> {
    match last {
        Key::V4(a) => u32::from(a).checked_add(1).map(|n| Key::V4(n.into())),
        Key::V6(a) => u128::from(a).checked_add(1).map(|n| Key::V6(n.into())),
        Key::Mark(m) => m.checked_add(1).map(Key::Mark),
    }
}

/// The first address of `net` and the first address after it, `None` past the top.
fn interval_bounds(net: &IpNet) -> (Key, Option<Key>) {
    match net {
        IpNet::V4(n) => (
            Key::V4(n.network()),
            u32::from(n.broadcast())
                .checked_add(1)
                .map(|end| Key::V4(end.into())),
        ),
        IpNet::V6(n) => (
            Key::V6(n.network()),
            u128::from(n.broadcast())
                .checked_add(1)
                .map(|end| Key::V6(end.into())),
        ),
    }
}

/// One element as the kernel stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KernelElement {
    key: Key,
    /// `NFT_SET_ELEM_INTERVAL_END`: the first address after an interval.
    end: bool,
    /// The start of an interval with no end (it reaches the top of the address space); nft
    /// marks these in the element's user data to list them as prefixes.
    open: bool,
    timeout_ms: Option<u64>,
}

impl KernelElement {
    /// Bytes [`Self::encode`] writes.
    fn size(&self) -> usize {
        let mut size = NLA_HDRLEN + NLA_HDRLEN + attr_size(self.key.len());
        if self.end {
            size += attr_size(4);
        }
        if self.timeout_ms.is_some() {
            size += attr_size(8);
        }
        if self.open {
            size += attr_size(ELEM_USERDATA_INTERVAL_OPEN.len());
        }
        size
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let element = begin_nest(buf, NFTA_LIST_ELEM);
        let key = begin_nest(buf, NFTA_SET_ELEM_KEY);
        match self.key {
            Key::V4(a) => put_attr(buf, NFTA_DATA_VALUE, &a.octets()),
            Key::V6(a) => put_attr(buf, NFTA_DATA_VALUE, &a.octets()),
            Key::Mark(m) => put_attr(buf, NFTA_DATA_VALUE, &m.to_ne_bytes()),
        }
        end_nest(buf, key);
        if self.end {
            put_be32(buf, NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        if let Some(ms) = self.timeout_ms {
            put_be64(buf, NFTA_SET_ELEM_TIMEOUT, ms);
        }
        if self.open {
            put_attr(buf, NFTA_SET_ELEM_USERDATA, &ELEM_USERDATA_INTERVAL_OPEN);
        }
        end_nest(buf, element);
    }
}

/// A chain of a table, as [`NftSocket::list_chains`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainInfo {
    pub name: String,
    /// A base chain, attached to a hook (`type filter hook input priority 0`), rather than a
    /// regular chain that rules jump to.
    pub base: bool,
}

/// A set of a table, as [`NftSocket::list_sets`] reports it: its description, not its elements.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetInfo {
    pub name: String,
    /// The kernel's `NFT_SET_*` flags: 0x1 anonymous, 0x2 constant, 0x4 interval, 0x8 map,
    /// 0x10 timeout, 0x20 eval (dynamic), 0x40 object map, 0x80 concatenation, 0x100 with
    /// expressions.
    pub flags: u32,
    /// nft's datatype number of the key: 7 `ipv4_addr`, 8 `ipv6_addr` (a concatenation packs
    /// several numbers into one).
    pub key_type: u32,
    /// Bytes of the key: 4 for `ipv4_addr`, 16 for `ipv6_addr`.
    pub key_len: u32,
}

impl SetInfo {
    /// nft made the set for one rule (`ip saddr { 10.0.0.1, 10.0.0.2 }`); it is named `__set`
    /// and a number, and goes with the rule.
    pub fn anonymous(&self) -> bool {
        self.flags & NFT_SET_ANONYMOUS != 0
    }

    /// `flags interval`.
    pub fn interval(&self) -> bool {
        self.flags & NFT_SET_INTERVAL != 0
    }

    /// `flags timeout`.
    pub fn timeout(&self) -> bool {
        self.flags & NFT_SET_TIMEOUT != 0
    }

    /// A map (`map m { type ... : ... }`): its elements carry data.
    pub fn map(&self) -> bool {
        self.flags & NFT_SET_MAP != 0
    }
}

/// A stateful object of a table (`counter`, `limit`, `quota`, ...), as
/// [`NftSocket::list_objects`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectInfo {
    pub name: String,
    /// The kernel's `NFT_OBJECT_*` type: 1 counter, 2 quota, 3 ct helper, 4 limit, ...
    pub kind: u32,
    /// For a counter: what it counted.
    pub counted: Option<Counted>,
}

impl ObjectInfo {
    /// A named counter (`counter NAME { }`).
    pub fn is_counter(&self) -> bool {
        self.kind == NFT_OBJECT_COUNTER
    }
}

/// What a named counter counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counted {
    pub packets: u64,
    pub bytes: u64,
}

/// An object's description (the attributes of an `NFT_MSG_NEWOBJ`): `None` if it is malformed,
/// `Some(None)` if it is in another table than `table`.
fn parse_object(attrs: &[u8], table: &str) -> Option<Option<ObjectInfo>> {
    let attrs = parse_attrs(attrs)?;
    if attr_bytes(find_attr(&attrs, NFTA_OBJ_TABLE)?) != table.as_bytes() {
        return Some(None);
    }
    let kind = attr_be32(find_attr(&attrs, NFTA_OBJ_TYPE)?)?;
    let counted = if kind == NFT_OBJECT_COUNTER {
        let data = parse_attrs(find_attr(&attrs, NFTA_OBJ_DATA)?)?;
        Some(Counted {
            packets: attr_be64(find_attr(&data, NFTA_COUNTER_PACKETS)?)?,
            bytes: attr_be64(find_attr(&data, NFTA_COUNTER_BYTES)?)?,
        })
    } else {
        None
    };
    Some(Some(ObjectInfo {
        name: name_of(find_attr(&attrs, NFTA_OBJ_NAME)?)?,
        kind,
        counted,
    }))
}

/// A chain's description (the attributes of an `NFT_MSG_NEWCHAIN`): `None` if it is
/// malformed, `Some(None)` if the chain is in another table than `table`.
fn parse_chain(attrs: &[u8], table: &str) -> Option<Option<ChainInfo>> {
    let attrs = parse_attrs(attrs)?;
    if attr_bytes(find_attr(&attrs, NFTA_CHAIN_TABLE)?) != table.as_bytes() {
        return Some(None);
    }
    Some(Some(ChainInfo {
        name: name_of(find_attr(&attrs, NFTA_CHAIN_NAME)?)?,
        base: find_attr(&attrs, NFTA_CHAIN_HOOK).is_some(),
    }))
}

/// A set's description (the attributes of an `NFT_MSG_NEWSET`): `None` if it is malformed,
/// `Some(None)` if the set is in another table than `table`. The kernel leaves the flags out
/// when they are 0.
fn parse_set(attrs: &[u8], table: &str) -> Option<Option<SetInfo>> {
    let attrs = parse_attrs(attrs)?;
    if attr_bytes(find_attr(&attrs, NFTA_SET_TABLE)?) != table.as_bytes() {
        return Some(None);
    }
    let flags = match find_attr(&attrs, NFTA_SET_FLAGS) {
        Some(payload) => attr_be32(payload)?,
        None => 0,
    };
    Some(Some(SetInfo {
        name: name_of(find_attr(&attrs, NFTA_SET_NAME)?)?,
        flags,
        key_type: attr_be32(find_attr(&attrs, NFTA_SET_KEY_TYPE)?)?,
        key_len: attr_be32(find_attr(&attrs, NFTA_SET_KEY_LEN)?)?,
    }))
}

/// A name attribute as text: `None` if it is empty; bytes that are not UTF-8 (nft writes none,
/// other tools might) become U+FFFD.
fn name_of(payload: &[u8]) -> Option<String> {
    let bytes = attr_bytes(payload);
    if bytes.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// What one listing dumps.
#[derive(Debug)]
struct DumpKind {
    /// The request, such as `NFT_MSG_GETSET`.
    get: u16,
    /// The message type of the objects in the answer, such as `NFT_MSG_NEWSET`.
    object: u16,
    /// The attribute that names the table in the request.
    table_attr: u16,
    /// The objects, for messages: "sets".
    noun: &'static str,
}

const CHAINS: DumpKind = DumpKind {
    get: NFT_MSG_GETCHAIN,
    object: NFT_MSG_NEWCHAIN,
    table_attr: NFTA_CHAIN_TABLE,
    noun: "chains",
};

const SETS: DumpKind = DumpKind {
    get: NFT_MSG_GETSET,
    object: NFT_MSG_NEWSET,
    table_attr: NFTA_SET_TABLE,
    noun: "sets",
};

const OBJECTS: DumpKind = DumpKind {
    get: NFT_MSG_GETOBJ,
    object: NFT_MSG_NEWOBJ,
    table_attr: NFTA_OBJ_TABLE,
    noun: "objects",
};

/// How the answers to one dump request ended.
#[derive(Debug, PartialEq, Eq)]
enum DumpEnd<T> {
    /// `NLMSG_DONE`: every object, those `parse` kept, in the kernel's order.
    Listed(Vec<T>),
    /// The kernel refused the request with `ENOENT`: the table does not exist.
    Missing,
    /// The ruleset changed during the dump (`NLM_F_DUMP_INTR`); it was read to its end.
    Interrupted,
    /// A message of the dump could not be parsed; the dump was read to its end.
    Malformed,
    /// The kernel refused the request, or the dump failed part-way.
    Failed { errno: i32, message: Option<String> },
}

/// The answers to one dump request, taken datagram by datagram.
struct DumpReader<T, P> {
    seq: u32,
    /// The message type of the objects, such as `NFT_MSG_NEWSET` for a dump of sets.
    object: u16,
    parse: P,
    items: Vec<T>,
    interrupted: bool,
    malformed: bool,
}

impl<T, P> DumpReader<T, P>
where
    P: FnMut(&[u8]) -> Option<Option<T>>,
{
    /// `parse` reads one object's attributes: `None` if they are malformed, `Some(None)` to
    /// leave the object out.
    fn new(seq: u32, object: u16, parse: P) -> Self {
        Self {
            seq,
            object: nft_type(object),
            parse,
            items: Vec::new(),
            interrupted: false,
            malformed: false,
        }
    }

    /// Takes one datagram's answers; `Some` once the dump has ended. Answers to other requests
    /// (late ones to an earlier request) are skipped.
    fn take(&mut self, replies: Vec<Reply>) -> Option<DumpEnd<T>> {
        for reply in replies {
            match reply {
                Reply::Other {
                    seq,
                    msg_type,
                    flags,
                    attrs,
                } if seq == self.seq => {
                    self.interrupted |= flags & NLM_F_DUMP_INTR != 0;
                    if msg_type != self.object || self.malformed {
                        continue;
                    }
                    match (self.parse)(&attrs) {
                        Some(Some(item)) => self.items.push(item),
                        Some(None) => {}
                        None => self.malformed = true,
                    }
                }
                Reply::Done { seq, flags, errno } if seq == self.seq => {
                    self.interrupted |= flags & NLM_F_DUMP_INTR != 0;
                    return Some(if errno != 0 {
                        DumpEnd::Failed {
                            errno,
                            message: None,
                        }
                    } else if self.malformed {
                        DumpEnd::Malformed
                    } else if self.interrupted {
                        DumpEnd::Interrupted
                    } else {
                        DumpEnd::Listed(std::mem::take(&mut self.items))
                    });
                }
                // A refusal comes instead of the dump; an acknowledgement (not asked for) is
                // no end.
                Reply::Ack {
                    seq,
                    errno,
                    message,
                } if seq == self.seq && errno != 0 => {
                    return Some(if errno == libc::ENOENT {
                        DumpEnd::Missing
                    } else {
                        DumpEnd::Failed { errno, message }
                    });
                }
                _ => {}
            }
        }
        None
    }
}

/// Whether [`NftSocket::send_chunked`] adds or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementOp {
    Add,
    Delete,
}

impl ElementOp {
    /// The request, message type and flags of an element message doing this.
    fn request(self) -> (Action, u16, u16) {
        match self {
            ElementOp::Add => (
                Action::AddElements,
                NFT_MSG_NEWSETELEM,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            ),
            ElementOp::Delete => (
                Action::DeleteElements,
                NFT_MSG_DELSETELEM,
                NLM_F_REQUEST | NLM_F_ACK,
            ),
        }
    }
}

/// What one call on a [`Batch`] asked for, kept to name a refused message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    AddElements,
    DeleteElements,
    NewSet,
    DeleteSet,
    FlushSet,
    AddRule,
    DeleteRule,
    FlushChain,
    NewObject,
    DeleteObject,
}

#[derive(Debug)]
struct Request {
    action: Action,
    /// What the request touches, as a refusal names it ("set inet t s", "chain inet t c").
    object: String,
}

/// One message of a batch: where it starts in the buffer, which request wrote it, and how many
/// of the caller's elements it carries (a network split across two messages counts in both).
#[derive(Debug, Clone, Copy)]
struct Message {
    start: usize,
    request: usize,
    elements: usize,
}

/// An element list being written: its message and the nested attribute holding the elements.
#[derive(Debug, Clone, Copy)]
struct OpenList {
    message: usize,
    nest: usize,
}

/// One nftables transaction, encoded as it is built. Messages are numbered when sent.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    messages: Vec<Message>,
    requests: Vec<Request>,
    next_set_id: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        let mut batch = Self {
            buf: Vec::new(),
            messages: Vec::new(),
            requests: Vec::new(),
            next_set_id: 1,
        };
        batch.begin();
        batch
    }

    /// Empties the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.messages.clear();
        self.requests.clear();
        self.next_set_id = 1;
        self.begin();
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages in the transaction, begin and end markers not counted.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// Bytes the transaction takes on the wire, its end marker not yet counted.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    fn begin(&mut self) {
        let start = begin_message(
            &mut self.buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            libc::AF_UNSPEC as u8,
            NFNL_SUBSYS_NFTABLES,
        );
        end_message(&mut self.buf, start);
    }

    /// Adds elements; adding one already in the set is no error (whether its timeout restarts
    /// depends on the kernel: see [`Self::refresh_elements`]). Returns how many elements were
    /// taken from `elements`.
    pub fn add_elements<I>(&mut self, set: &SetRef, elements: I) -> usize
    where
        I: IntoIterator<Item = Element>,
    {
        self.push_elements(ElementOp::Add, set, elements)
    }

    /// Deletes elements; the transaction fails if one of them is not in the set.
    pub fn delete_elements<I>(&mut self, set: &SetRef, elements: I) -> usize
    where
        I: IntoIterator<Item = Element>,
    {
        self.push_elements(ElementOp::Delete, set, elements)
    }

    /// Puts elements in the set with a fresh timeout, whether they were there or not. Debian 12's
    /// kernel does not reset the timeout of an element added again (6.18 does), so this adds (a
    /// no-op for those present), deletes and adds again, all in this one transaction.
    pub fn refresh_elements(&mut self, set: &SetRef, elements: &[Element]) {
        self.add_elements(set, elements.iter().copied());
        self.delete_elements(set, elements.iter().copied());
        self.add_elements(set, elements.iter().copied());
    }

    fn push_elements<I>(&mut self, op: ElementOp, set: &SetRef, elements: I) -> usize
    where
        I: IntoIterator<Item = Element>,
    {
        let (action, msg_type, flags) = op.request();
        let request = self.push_request(action, set);
        let mut open: Option<OpenList> = None;
        let mut taken = 0;
        for element in elements {
            taken += 1;
            let mut counted_in = None;
            for kernel in element.kernel_elements() {
                let size = kernel.size();
                let fits =
                    open.is_some_and(|list| self.buf.len() + size - list.message <= MAX_MESSAGE);
                if !fits {
                    if let Some(full) = open.take() {
                        self.close_list(full);
                    }
                    open = Some(self.open_list(msg_type, flags, set, request));
                }
                kernel.encode(&mut self.buf);
                let index = self.messages.len() - 1;
                if counted_in != Some(index) {
                    counted_in = Some(index);
                    if let Some(message) = self.messages.last_mut() {
                        message.elements += 1;
                    }
                }
            }
        }
        if let Some(list) = open {
            self.close_list(list);
        }
        taken
    }

    fn open_list(&mut self, msg_type: u16, flags: u16, set: &SetRef, request: usize) -> OpenList {
        let message = self.begin_request_message(msg_type, flags, set, request);
        put_str(&mut self.buf, NFTA_SET_ELEM_LIST_TABLE, &set.table);
        put_str(&mut self.buf, NFTA_SET_ELEM_LIST_SET, &set.set);
        let nest = begin_nest(&mut self.buf, NFTA_SET_ELEM_LIST_ELEMENTS);
        OpenList { message, nest }
    }

    fn close_list(&mut self, list: OpenList) {
        end_nest(&mut self.buf, list.nest);
        end_message(&mut self.buf, list.message);
    }

    /// Creates a set (or, if one of that name exists with the same properties, leaves it).
    pub fn new_set(&mut self, set: &SetRef, spec: &SetSpec) {
        let request = self.push_request(Action::NewSet, set);
        let start = self.begin_request_message(
            NFT_MSG_NEWSET,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            set,
            request,
        );
        let mut flags = 0;
        if spec.interval {
            flags |= NFT_SET_INTERVAL;
        }
        if spec.timeout || spec.default_timeout.is_some() {
            flags |= NFT_SET_TIMEOUT;
        }
        let id = self.next_set_id;
        self.next_set_id += 1;
        let buf = &mut self.buf;
        put_str(buf, NFTA_SET_TABLE, &set.table);
        put_str(buf, NFTA_SET_NAME, &set.set);
        put_be32(buf, NFTA_SET_FLAGS, flags);
        put_be32(buf, NFTA_SET_KEY_TYPE, spec.key.datatype());
        put_be32(buf, NFTA_SET_KEY_LEN, spec.key.len());
        put_be32(buf, NFTA_SET_ID, id);
        if let Some(timeout) = spec.default_timeout {
            put_be64(buf, NFTA_SET_TIMEOUT, millis(timeout));
        }
        put_attr(buf, NFTA_SET_USERDATA, &SET_USERDATA_KEY_BIG_ENDIAN);
        end_message(buf, start);
    }

    /// Deletes a set; the kernel refuses while a rule refers to it.
    pub fn delete_set(&mut self, set: &SetRef) {
        let request = self.push_request(Action::DeleteSet, set);
        let start =
            self.begin_request_message(NFT_MSG_DELSET, NLM_F_REQUEST | NLM_F_ACK, set, request);
        put_str(&mut self.buf, NFTA_SET_TABLE, &set.table);
        put_str(&mut self.buf, NFTA_SET_NAME, &set.set);
        end_message(&mut self.buf, start);
    }

    /// Removes every element of a set (an element deletion naming no element).
    pub fn flush_set(&mut self, set: &SetRef) {
        let request = self.push_request(Action::FlushSet, set);
        let start =
            self.begin_request_message(NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, set, request);
        put_str(&mut self.buf, NFTA_SET_ELEM_LIST_TABLE, &set.table);
        put_str(&mut self.buf, NFTA_SET_ELEM_LIST_SET, &set.set);
        end_message(&mut self.buf, start);
    }

    fn push_request(&mut self, action: Action, object: &impl fmt::Display) -> usize {
        self.requests.push(Request {
            action,
            object: object.to_string(),
        });
        self.requests.len() - 1
    }

    fn begin_request_message(
        &mut self,
        msg: u16,
        flags: u16,
        set: &SetRef,
        request: usize,
    ) -> usize {
        self.begin_family_message(msg, flags, set.family, request)
    }

    /// Starts the message of request `request` in a table of `family`.
    fn begin_family_message(
        &mut self,
        msg: u16,
        flags: u16,
        family: TableFamily,
        request: usize,
    ) -> usize {
        let start = begin_message(&mut self.buf, nft_type(msg), flags, family.nfproto(), 0);
        self.messages.push(Message {
            start,
            request,
            elements: 0,
        });
        start
    }

    /// Numbers the messages from `base` (the begin marker) on and appends the end marker;
    /// returns where the end marker starts, for [`Self::unseal`].
    fn seal(&mut self, base: u32) -> usize {
        set_seq(&mut self.buf, 0, base);
        for (i, message) in self.messages.iter().enumerate() {
            set_seq(
                &mut self.buf,
                message.start,
                base.wrapping_add(i as u32 + 1),
            );
        }
        let end = begin_message(
            &mut self.buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            libc::AF_UNSPEC as u8,
            NFNL_SUBSYS_NFTABLES,
        );
        end_message(&mut self.buf, end);
        set_seq(
            &mut self.buf,
            end,
            base.wrapping_add(self.messages.len() as u32 + 1),
        );
        end
    }

    /// Takes the end marker off again, so more can be added and the batch sent again.
    fn unseal(&mut self, end: usize) {
        self.buf.truncate(end);
    }

    /// A sentence fragment for message `index`, such as "add 1600 elements to set inet t s".
    fn describe(&self, index: usize) -> String {
        let Some(message) = self.messages.get(index) else {
            return "an unknown request".to_owned();
        };
        let Some(request) = self.requests.get(message.request) else {
            return "an unknown request".to_owned();
        };
        let set = &request.object;
        let n = match message.elements {
            1 => "1 element".to_owned(),
            n => format!("{n} elements"),
        };
        match request.action {
            Action::AddElements => format!("add {n} to {set}"),
            Action::DeleteElements => format!("delete {n} from {set}"),
            Action::NewSet => format!("create {set}"),
            Action::DeleteSet => format!("delete {set}"),
            Action::FlushSet => format!("flush {set}"),
            Action::AddRule => format!("add a rule to {set}"),
            Action::DeleteRule => format!("delete a rule of {set}"),
            Action::FlushChain => format!("flush {set}"),
            Action::NewObject => format!("create {set}"),
            Action::DeleteObject => format!("delete {set}"),
        }
    }
}

/// How much a chunked load put in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loaded {
    pub transactions: usize,
    pub elements: usize,
}

/// Why the kernel did not take a batch, or why its answer is unknown.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("{name:?} is not a valid nftables name: it needs 1 to 255 bytes and no NUL")]
    InvalidName { name: String },
    #[error("the kernel added {added} rules but told the handles of {told}")]
    MissingHandles { added: usize, told: usize },
    #[error("a comment of {len} bytes is too long for nftables (at most 254, and no NUL)")]
    InvalidComment { len: usize },
    #[error("an element's first and last key are of different address families")]
    MixedFamilies,
    #[error("the transaction has {bytes} bytes, more than one netlink message can carry ({max}); load it in chunks")]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "cannot size the netlink socket's buffers for a transaction of {bytes} bytes: {source}"
    )]
    Buffers { bytes: usize, source: io::Error },
    #[error("cannot send the transaction ({bytes} bytes) to the kernel, so nothing of it was applied: {source}")]
    Send { bytes: usize, source: io::Error },
    #[error(
        "cannot read the kernel's answer to the transaction, so its outcome is unknown: {source}"
    )]
    Receive { source: io::Error },
    #[error("the kernel's answer to the transaction is malformed, so its outcome is unknown")]
    Malformed,
    #[error("the kernel refused to {what} (message {index} of {count} in the transaction): {reason}; nothing of the transaction was applied")]
    Refused {
        what: String,
        index: usize,
        count: usize,
        errno: i32,
        reason: String,
    },
    #[error("the kernel refused the transaction as a whole: {reason}; nothing of it was applied")]
    TransactionRefused { errno: i32, reason: String },
    #[error("cannot look up {object}: {reason}")]
    Lookup {
        object: String,
        errno: i32,
        reason: String,
    },
    #[error("cannot list {what}: {source}")]
    Listing { what: String, source: io::Error },
    #[error("the kernel's listing of {what} is malformed")]
    MalformedListing { what: String },
    #[error(
        "cannot list {what}: the ruleset changed while it was read, {attempts} times in a row"
    )]
    ListingInterrupted { what: String, attempts: usize },
    #[error("the load stopped at transaction {failed}, after {elements} elements had landed in {landed} transactions: {source}")]
    PartlyLoaded {
        landed: usize,
        elements: usize,
        failed: usize,
        source: Box<NetlinkError>,
    },
}

impl NetlinkError {
    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Refused { errno, .. }
            | NetlinkError::TransactionRefused { errno, .. }
            | NetlinkError::Lookup { errno, .. } => Some(*errno),
            NetlinkError::PartlyLoaded { source, .. } => source.errno(),
            _ => None,
        }
    }
}

/// The generation in an `NFT_MSG_NEWGEN`.
fn parse_generation(attrs: &[u8]) -> Option<u32> {
    parse_attrs(attrs).and_then(|a| find_attr(&a, NFTA_GEN_ID).and_then(attr_be32))
}

/// The kernel's reason: the errno's text, and the kernel's own words when it gave some.
fn reason(errno: i32, message: Option<&str>) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match message {
        Some(m) if !m.is_empty() => format!("{text}: {m}"),
        _ => text,
    }
}

/// The first refusal among a transaction's answers.
#[derive(Debug)]
struct Refusal {
    index: usize,
    errno: i32,
    message: Option<String>,
}

/// A `NETLINK_NETFILTER` socket for nftables transactions. Its calls block until the kernel has
/// answered (a 20,000-element chunk takes up to ~0.3 s next to a million-element set), so async
/// code calls it from a blocking thread (`tokio::task::spawn_blocking`), one transaction at a
/// time.
#[derive(Debug)]
pub struct NftSocket {
    socket: Socket,
    next_seq: u32,
    send_buffer: usize,
    receive_buffer: usize,
    answer: Vec<u8>,
    /// The network namespace the socket was opened in (its inode), for the commit log.
    netns: u64,
    /// Handles the kernel gave the rules of the last transaction, by message index.
    echoed: Vec<(usize, u64)>,
    /// The ruleset generation the last transaction committed, when the kernel told it.
    committed: Option<u32>,
}

impl NftSocket {
    /// Opens the socket in the calling thread's network namespace. Needs `CAP_NET_ADMIN` to
    /// change anything, and to raise the buffers past the system's maximum.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Refusals carry only the refused message's header, not the message (up to 64 KiB).
        socket.set_cap_ack(true)?;
        // The kernel's words on a refusal where it has some; kernels without it still answer.
        let _ = socket.set_ext_ack(true);
        setsockopt(
            &socket,
            sockopt::ReceiveTimeout,
            &TimeVal::new(ANSWER_TIMEOUT_SECONDS, 0),
        )?;
        let mut nft = Self {
            socket,
            next_seq: 1,
            send_buffer: 0,
            receive_buffer: 0,
            answer: Vec::with_capacity(ANSWER_BUFFER),
            netns: commits::current_netns(),
            echoed: Vec::new(),
            committed: None,
        };
        nft.ensure_buffers(INITIAL_SEND_BUFFER, INITIAL_RECEIVE_BUFFER)?;
        Ok(nft)
    }

    /// Raises the buffers to at least these sizes: forced as root, else within the system's
    /// limits (then a big transaction fails to send, with a clear error).
    fn ensure_buffers(&mut self, send: usize, receive: usize) -> io::Result<()> {
        if send > self.send_buffer {
            setsockopt(&self.socket, sockopt::SndBufForce, &send)
                .or_else(|_| setsockopt(&self.socket, sockopt::SndBuf, &send))?;
            self.send_buffer = send;
        }
        if receive > self.receive_buffer {
            setsockopt(&self.socket, sockopt::RcvBufForce, &receive)
                .or_else(|_| setsockopt(&self.socket, sockopt::RcvBuf, &receive))?;
            self.receive_buffer = receive;
        }
        Ok(())
    }

    /// Reserves `count` sequence numbers; returns the first.
    fn take_seqs(&mut self, count: usize) -> u32 {
        let first = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(count as u32);
        first
    }

    /// Sends one transaction and reads every answer to it. `Ok` means the kernel committed it;
    /// a refusal names the first refused message, and then nothing of the transaction landed.
    /// The batch is left as it was (it may be cleared and reused).
    pub fn send(&mut self, batch: &mut Batch) -> Result<(), NetlinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        // The end marker is not in the buffer yet.
        let bytes = batch.encoded_len() + wire::NLMSG_HDRLEN + wire::NFGENMSG_LEN;
        if bytes > MAX_TRANSACTION {
            return Err(NetlinkError::TooLarge {
                bytes,
                max: MAX_TRANSACTION,
            });
        }
        // All of it goes in one sendmsg (the kernel doubles the send buffer it is given and
        // keeps 32 bytes of it); all answers are queued before sendmsg returns.
        let receive = (batch.message_count() + 2) * RECEIVE_PER_ANSWER;
        self.ensure_buffers(bytes, receive)
            .map_err(|source| NetlinkError::Buffers { bytes, source })?;
        let base = self.take_seqs(batch.message_count() + 2);
        let end = batch.seal(base);
        self.echoed.clear();
        self.committed = None;
        let result = self
            .transmit(&batch.buf)
            .and_then(|()| self.collect_answers(batch, base));
        batch.unseal(end);
        if result.is_ok() {
            // The kernel tells the generation it committed only when the batch's first message
            // asks for an echo (rule and object messages do; element messages do not, since the
            // kernel would echo every element). Otherwise it is read now: a later one if someone
            // committed in between, which leaves this commit's own generation unrecorded, so
            // the log errs towards "not only ours", never the other way.
            if self.committed.is_none() {
                self.committed = self.generation().ok();
            }
            commits::record(self.netns, self.committed);
        }
        result
    }

    /// Sends a transaction like [`Self::send`] and returns the handles the kernel gave the
    /// rules it added, in the order they were added to the batch.
    pub fn send_rules(&mut self, batch: &mut Batch) -> Result<Vec<u64>, NetlinkError> {
        self.send(batch)?;
        let mut echoed = std::mem::take(&mut self.echoed);
        echoed.sort_unstable();
        let added = batch.added_rules();
        if echoed.len() != added {
            return Err(NetlinkError::MissingHandles {
                added,
                told: echoed.len(),
            });
        }
        Ok(echoed.into_iter().map(|(_, handle)| handle).collect())
    }

    /// The ruleset's generation now (`NFT_MSG_GETGEN`): it grows by one with every commit of
    /// any table in this network namespace.
    pub fn generation(&mut self) -> Result<u32, NetlinkError> {
        let seq = self.take_seqs(1);
        let mut buf = Vec::with_capacity(32);
        let start = begin_message(
            &mut buf,
            nft_type(NFT_MSG_GETGEN),
            NLM_F_REQUEST | NLM_F_ACK,
            libc::AF_UNSPEC as u8,
            0,
        );
        end_message(&mut buf, start);
        set_seq(&mut buf, start, seq);
        self.transmit(&buf)?;
        let mut generation = None;
        loop {
            for reply in self.receive(0)? {
                match reply {
                    Reply::Other {
                        seq: s,
                        msg_type,
                        attrs,
                        ..
                    } if s == seq && msg_type == nft_type(NFT_MSG_NEWGEN) => {
                        generation = parse_generation(&attrs);
                    }
                    Reply::Ack {
                        seq: s,
                        errno,
                        message,
                    } if s == seq => {
                        if errno != 0 {
                            return Err(NetlinkError::Lookup {
                                object: "the ruleset's generation".into(),
                                errno,
                                reason: reason(errno, message.as_deref()),
                            });
                        }
                        return generation.ok_or(NetlinkError::Malformed);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Whether every commit in this network namespace since [`commits::mark`] was this
    /// process's own (over netlink): `false` once anything else changed the ruleset, or when
    /// nothing was marked.
    pub fn only_own_commits(&mut self) -> Result<bool, NetlinkError> {
        let now = self.generation()?;
        Ok(commits::only_ours(self.netns, now))
    }

    /// Marks the ruleset as it is now as known to this process: [`Self::only_own_commits`]
    /// counts from here.
    pub fn mark_known(&mut self) -> Result<(), NetlinkError> {
        let now = self.generation()?;
        commits::mark(self.netns, now);
        Ok(())
    }

    /// After this process wrote the ruleset some other way (one `nft -f` run), the generation
    /// having been `before` just before: marks the ruleset known only if exactly one commit
    /// happened since (that run's). If more did, one may have been anyone's, so nothing is
    /// marked and the log vouches for nothing; `false` then.
    pub fn mark_known_after_one(&mut self, before: u32) -> Result<bool, NetlinkError> {
        let now = self.generation()?;
        if now == commits::next(before) {
            commits::mark(self.netns, now);
            Ok(true)
        } else {
            commits::forget(self.netns);
            Ok(false)
        }
    }

    /// Streams `elements` into transactions of at most `per_transaction` elements each (a
    /// network counts once), sending each before the next is encoded. Each transaction is
    /// atomic, the whole load is not: on failure the error says how much had landed.
    pub fn send_chunked<I>(
        &mut self,
        set: &SetRef,
        op: ElementOp,
        elements: I,
        per_transaction: usize,
    ) -> Result<Loaded, NetlinkError>
    where
        I: IntoIterator<Item = Element>,
    {
        let per_transaction = per_transaction.max(1);
        let mut elements = elements.into_iter().peekable();
        let mut batch = Batch::new();
        let mut loaded = Loaded::default();
        while elements.peek().is_some() {
            batch.clear();
            let taken = batch.push_elements(op, set, elements.by_ref().take(per_transaction));
            if let Err(e) = self.send(&mut batch) {
                if loaded.transactions == 0 {
                    return Err(e);
                }
                return Err(NetlinkError::PartlyLoaded {
                    landed: loaded.transactions,
                    elements: loaded.elements,
                    failed: loaded.transactions + 1,
                    source: Box::new(e),
                });
            }
            loaded.transactions += 1;
            loaded.elements += taken;
        }
        Ok(loaded)
    }

    /// Whether the set exists (one `NFT_MSG_GETSET`; the set's elements are not read, so this is
    /// as quick for a million elements as for none). A missing table counts as a missing set.
    pub fn set_exists(&mut self, set: &SetRef) -> Result<bool, NetlinkError> {
        self.exists(
            NFT_MSG_GETSET,
            NFT_MSG_NEWSET,
            set.family,
            &[(NFTA_SET_TABLE, &set.table), (NFTA_SET_NAME, &set.set)],
            &set.to_string(),
        )
    }

    /// Whether the table exists (one `NFT_MSG_GETTABLE`; nothing inside it is read, unlike
    /// `nft list tables`, which reads every set's elements first and takes minutes beside a big
    /// set).
    pub fn table_exists(&mut self, family: TableFamily, table: &str) -> Result<bool, NetlinkError> {
        if table.is_empty() || table.len() > MAX_NAME || table.contains('\0') {
            return Ok(false);
        }
        self.exists(
            NFT_MSG_GETTABLE,
            NFT_MSG_NEWTABLE,
            family,
            &[(NFTA_TABLE_NAME, table)],
            &format!("table {} {table}", family.word()),
        )
    }

    /// The chains of a table, in the kernel's order (the order they were made in), each named
    /// and marked base or regular; nothing of their rules is read. A missing table has no
    /// chains. Chains nft made for one rule (`jump { ... }`, named `__chain` and a number) are
    /// listed as the kernel reports them. An invalid table name is an error.
    pub fn list_chains(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<ChainInfo>, NetlinkError> {
        // The kernel sends every chain of the family whatever table the request names.
        self.dump(&CHAINS, family, table, |attrs| parse_chain(attrs, table))
    }

    /// The sets of a table, in the kernel's order: name, flags and key of each, not one element
    /// (so this is as quick beside a million-element set as beside none). A missing table has
    /// no sets. Anonymous sets, which nft makes for one rule (`ip saddr { 10.0.0.1, 10.0.0.2 }`,
    /// named `__set` and a number, flags anonymous and constant), are listed as the kernel
    /// reports them; [`SetInfo::anonymous`] tells them apart. An invalid table name is an error.
    pub fn list_sets(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<SetInfo>, NetlinkError> {
        // The kernel keeps to the table; filtering again costs nothing and keeps this correct
        // should one not.
        self.dump(&SETS, family, table, |attrs| parse_set(attrs, table))
    }

    /// The stateful objects of a table (named counters, limits, quotas, ...), in the kernel's
    /// order, with what each counter counted: one dump, which reads no set element and no
    /// rule. A missing table has none. An invalid table name is an error.
    pub fn list_objects(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<ObjectInfo>, NetlinkError> {
        self.dump(&OBJECTS, family, table, |attrs| parse_object(attrs, table))
    }

    /// One dump request naming the table, read to its end and asked for again while the
    /// ruleset changes under it; `parse` reads one object (see [`DumpReader::new`]).
    fn dump<T>(
        &mut self,
        kind: &DumpKind,
        family: TableFamily,
        table: &str,
        parse: impl FnMut(&[u8]) -> Option<Option<T>>,
    ) -> Result<Vec<T>, NetlinkError> {
        self.dump_of(kind, family, table, None, parse)
    }

    /// [`Self::dump`] of one object of the table (`within`: the attribute naming it), such as
    /// the elements of one set.
    fn dump_of<T>(
        &mut self,
        kind: &DumpKind,
        family: TableFamily,
        table: &str,
        within: Option<(u16, &str)>,
        mut parse: impl FnMut(&[u8]) -> Option<Option<T>>,
    ) -> Result<Vec<T>, NetlinkError> {
        check_name(table)?;
        if let Some((_, name)) = within {
            check_name(name)?;
        }
        let what = &format!("the {} of table {} {table}", kind.noun, family.word());
        let listing = |source: io::Error| NetlinkError::Listing {
            what: what.to_owned(),
            source,
        };
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.take_seqs(1);
            let mut buf = Vec::with_capacity(64 + table.len() + within.map_or(0, |(_, n)| n.len()));
            let start = begin_message(
                &mut buf,
                nft_type(kind.get),
                NLM_F_REQUEST | NLM_F_DUMP,
                family.nfproto(),
                0,
            );
            put_str(&mut buf, kind.table_attr, table);
            if let Some((attr, name)) = within {
                put_str(&mut buf, attr, name);
            }
            end_message(&mut buf, start);
            set_seq(&mut buf, start, seq);
            self.transmit(&buf).map_err(|e| match e {
                NetlinkError::Send { source, .. } => listing(source),
                other => other,
            })?;
            let mut reader = DumpReader::new(seq, kind.object, &mut parse);
            let end = loop {
                let replies = match self.receive(0) {
                    Ok(replies) => replies,
                    Err(NetlinkError::Receive { source }) => return Err(listing(source)),
                    Err(NetlinkError::Malformed) => {
                        // Where the dump ends is unknown now: read what is queued.
                        self.drain();
                        return Err(NetlinkError::MalformedListing {
                            what: what.to_owned(),
                        });
                    }
                    Err(e) => return Err(e),
                };
                if let Some(end) = reader.take(replies) {
                    break end;
                }
            };
            match end {
                DumpEnd::Listed(items) => return Ok(items),
                DumpEnd::Missing => return Ok(Vec::new()),
                DumpEnd::Interrupted => continue,
                DumpEnd::Malformed => {
                    return Err(NetlinkError::MalformedListing {
                        what: what.to_owned(),
                    })
                }
                DumpEnd::Failed { errno, message } => {
                    return Err(NetlinkError::Lookup {
                        object: what.to_owned(),
                        errno,
                        reason: reason(errno, message.as_deref()),
                    })
                }
            }
        }
        Err(NetlinkError::ListingInterrupted {
            what: what.to_owned(),
            attempts: DUMP_ATTEMPTS,
        })
    }

    /// One `get` request for a single object; true if the kernel described it.
    fn exists(
        &mut self,
        get: u16,
        described_as: u16,
        family: TableFamily,
        attrs: &[(u16, &str)],
        what: &str,
    ) -> Result<bool, NetlinkError> {
        let seq = self.take_seqs(1);
        let mut buf = Vec::with_capacity(128);
        let start = begin_message(
            &mut buf,
            nft_type(get),
            NLM_F_REQUEST | NLM_F_ACK,
            family.nfproto(),
            0,
        );
        for (kind, value) in attrs {
            put_str(&mut buf, *kind, value);
        }
        end_message(&mut buf, start);
        set_seq(&mut buf, start, seq);
        self.transmit(&buf)?;
        let mut described = false;
        loop {
            for reply in self.receive(0)? {
                match reply {
                    Reply::Other {
                        seq: s, msg_type, ..
                    } if s == seq => {
                        described |= msg_type == nft_type(described_as);
                    }
                    Reply::Ack {
                        seq: s,
                        errno,
                        message,
                    } if s == seq => {
                        return match errno {
                            0 => Ok(described),
                            libc::ENOENT => Ok(false),
                            _ => Err(NetlinkError::Lookup {
                                object: what.to_owned(),
                                errno,
                                reason: reason(errno, message.as_deref()),
                            }),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    fn transmit(&mut self, buf: &[u8]) -> Result<(), NetlinkError> {
        loop {
            match self.socket.send(buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(NetlinkError::Send {
                        bytes: buf.len(),
                        source,
                    })
                }
            }
        }
    }

    /// Reads one datagram of answers.
    fn receive(&mut self, flags: libc::c_int) -> Result<Vec<Reply>, NetlinkError> {
        self.answer.clear();
        let read = loop {
            // MSG_TRUNC: the datagram's real length, so a truncated one is noticed.
            match self.socket.recv(&mut self.answer, flags | libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && flags == 0 => {
                    return Err(NetlinkError::Receive {
                        source: io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {ANSWER_TIMEOUT_SECONDS} s"),
                        ),
                    })
                }
                Err(source) => return Err(NetlinkError::Receive { source }),
                Ok(read) => break read,
            }
        };
        if read > self.answer.len() {
            return Err(NetlinkError::Malformed);
        }
        parse_replies(&self.answer).ok_or(NetlinkError::Malformed)
    }

    /// Reads the answers to the batch sent with sequence numbers from `base`: one per message,
    /// the begin marker's only if the kernel refused the transaction as a whole.
    fn collect_answers(&mut self, batch: &Batch, base: u32) -> Result<(), NetlinkError> {
        let expected = batch.message_count();
        let mut answered = 0;
        let mut refusal: Option<Refusal> = None;
        let mut whole: Option<(i32, Option<String>)> = None;
        while answered < expected && whole.is_none() {
            // After a refusal, read what is queued (the kernel answers inside sendmsg) and stop.
            let flags = if refusal.is_some() {
                libc::MSG_DONTWAIT
            } else {
                0
            };
            let replies = match self.receive(flags) {
                Ok(replies) => replies,
                Err(NetlinkError::Receive { source })
                    if source.kind() == io::ErrorKind::WouldBlock && refusal.is_some() =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            for reply in replies {
                let (seq, errno, message) = match reply {
                    Reply::Ack {
                        seq,
                        errno,
                        message,
                    } => (seq, errno, message),
                    Reply::Other {
                        seq,
                        msg_type,
                        attrs,
                        ..
                    } => {
                        self.take_echo(seq.wrapping_sub(base) as usize, msg_type, &attrs);
                        continue;
                    }
                    Reply::Done { .. } => continue,
                };
                let offset = seq.wrapping_sub(base) as usize;
                if offset == 0 {
                    if errno != 0 {
                        whole = Some((errno, message));
                    }
                } else if offset <= expected {
                    answered += 1;
                    let index = offset - 1;
                    // The first refusal in message order, whatever order answers come in.
                    let first = match &refusal {
                        Some(r) => index < r.index,
                        None => true,
                    };
                    if errno != 0 && first {
                        refusal = Some(Refusal {
                            index,
                            errno,
                            message,
                        });
                    }
                }
                // Else the end marker's answer (kernels from 6.10 on, should it be asked
                // for) or a late answer to an earlier transaction: neither changes this one.
            }
        }
        if refusal.is_some() || whole.is_some() {
            self.drain();
        }
        if let Some(r) = refusal {
            return Err(NetlinkError::Refused {
                what: batch.describe(r.index),
                index: r.index + 1,
                count: expected,
                errno: r.errno,
                reason: reason(r.errno, r.message.as_deref()),
            });
        }
        if let Some((errno, message)) = whole {
            return Err(NetlinkError::TransactionRefused {
                errno,
                reason: reason(errno, message.as_deref()),
            });
        }
        Ok(())
    }

    /// Keeps what the kernel echoed for message `offset` of a transaction (the begin marker is 0):
    /// the generation it committed (told when the first message asks for an echo: the kernel
    /// reads the flag there), or an added rule's handle.
    fn take_echo(&mut self, offset: usize, msg_type: u16, attrs: &[u8]) {
        if msg_type == nft_type(NFT_MSG_NEWGEN) {
            self.committed = parse_generation(attrs);
        } else if msg_type == nft_type(NFT_MSG_NEWRULE) && offset > 0 {
            let handle = parse_attrs(attrs)
                .and_then(|a| find_attr(&a, NFTA_RULE_HANDLE).and_then(attr_be64));
            if let Some(handle) = handle {
                self.echoed.push((offset - 1, handle));
            }
        }
    }

    /// Discards answers still queued, so they cannot fill the buffer for the next transaction
    /// (reading also lets an unfinished dump run on to its end).
    fn drain(&mut self) {
        while let Ok(_) | Err(NetlinkError::Malformed) = self.receive(libc::MSG_DONTWAIT) {}
    }
}
