//! The kernel's side of the drop log: one nflog socket bound to our rules' group
//! (`ruleset::LOG_GROUP`), read on a thread of its own.
//!
//! The kernel queues what our rules log and sends it in batches (at most `QUEUE_THRESHOLD`
//! packets or `FLUSH_CENTISECONDS`, whichever comes first), each packet with its prefix (the
//! rule's tag), the sending socket's uid and gid when a local socket sent it, and its first
//! `COPY_BYTES` bytes (the IP and transport headers; no content). The kernel never waits for
//! us: when our receive buffer is full it drops the batch (`ENOBUFS`), and the per-group
//! sequence numbers it stamps on each packet tell how many were lost. Only one socket in a
//! network namespace may bind a group, so a second helper (or ulogd on this group) is refused
//! with a clear error.

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, Nla};
use netlink_packet_netfilter::nflog::{
    config_request, ConfigCmd, ConfigFlags, ConfigMode, HwAddr, PacketHdr, PacketNla, Timeout,
    ULogMessage,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::io;
use std::time::Duration;

/// Bytes of each packet the kernel copies: an IPv6 header (40) with a few extension headers, or
/// an IPv4 header with options (up to 60), and the transport header's ports and ICMP type.
pub const COPY_BYTES: u32 = 160;
/// Packets the kernel queues before it sends a batch.
const QUEUE_THRESHOLD: u32 = 64;
/// Longest a logged packet waits in the kernel's queue, in hundredths of a second.
const FLUSH_CENTISECONDS: u64 = 5;
/// Bytes of one batch from the kernel (its `nlbufsiz`), and of our receive buffer: room for
/// several batches while the reader attributes the last one.
const BATCH_BYTES: u32 = 128 << 10;
const RECEIVE_BUFFER: usize = 4 << 20;
/// How long one read waits before the reader looks whether it should stop.
const READ_TIMEOUT: Duration = Duration::from_millis(500);

/// One packet as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The rule's log prefix.
    pub prefix: String,
    /// The sending socket's owner, when a local socket sent it.
    pub uid: Option<u32>,
    /// The first bytes of the packet, from its network header (IP, or ARP on a bridge).
    pub payload: Vec<u8>,
    /// The frame's EtherType (0x0800 IPv4, 0x0806 ARP, ...), when the kernel said.
    pub ethertype: Option<u16>,
    /// The frame's source MAC, for packets that came in on an Ethernet device.
    pub source_mac: Option<[u8; 6]>,
}

/// What one read brought.
#[derive(Debug, Default)]
pub struct Batch {
    /// The packets, in the kernel's order.
    pub packets: Vec<Logged>,
    /// Packets the kernel logged that never reached us (its queue or our buffer overflowed).
    pub lost: u64,
}

/// The bound nflog socket.
pub struct NflogSocket {
    socket: Socket,
    buf: Vec<u8>,
    /// The sequence number the next packet should carry.
    next_seq: Option<u32>,
}

impl std::fmt::Debug for NflogSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NflogSocket").finish_non_exhaustive()
    }
}

impl NflogSocket {
    /// Binds group `group` in this network namespace and configures it.
    pub fn bind(group: u16) -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER).map_err(io::Error::from)?;
        let timeout = TimeVal::new(
            i64::try_from(READ_TIMEOUT.as_secs()).unwrap_or(1),
            i64::from(READ_TIMEOUT.subsec_micros()),
        );
        setsockopt(&socket, sockopt::ReceiveTimeout, &timeout).map_err(io::Error::from)?;
        let mut this = Self {
            socket,
            buf: vec![0; BATCH_BYTES as usize + 4096],
            next_seq: None,
        };
        this.configure(group)?;
        Ok(this)
    }

    /// Binds the group, then sets how it sends: packets with `COPY_BYTES` bytes, sequence
    /// numbers, batches of `QUEUE_THRESHOLD` packets or `FLUSH_CENTISECONDS`.
    fn configure(&mut self, group: u16) -> io::Result<()> {
        let family = NetfilterProtoFamily::Unspec;
        self.request(
            config_request(family, group, vec![ConfigCmd::Bind.into()]),
            &format!("cannot bind nflog group {group} (is another logger, such as ulogd, on it?)"),
        )?;
        let settings = vec![
            ConfigMode::new_packet(COPY_BYTES).into(),
            ConfigFlags::SEQ.into(),
            Timeout::from(Duration::from_millis(FLUSH_CENTISECONDS * 10)).into(),
            netlink_packet_netfilter::nflog::ConfigNla::QThresh(QUEUE_THRESHOLD),
            netlink_packet_netfilter::nflog::ConfigNla::NlBufSiz(BATCH_BYTES),
        ];
        self.request(
            config_request(family, group, settings),
            &format!("cannot configure nflog group {group}"),
        )
    }

    /// Sends one configuration message and reads its acknowledgement.
    fn request(
        &mut self,
        mut message: NetlinkMessage<NetfilterMessage>,
        what: &str,
    ) -> io::Result<()> {
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        let size = self.socket.recv(&mut &mut self.buf[..], 0)?;
        let reply = NetlinkMessage::<NetfilterMessage>::deserialize(&self.buf[..size])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))?;
        match reply.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => {
                Err(io::Error::other(format!("{what}: {}", e.to_io())))
            }
            _ => Ok(()),
        }
    }

    /// Waits up to `READ_TIMEOUT` for the next batch. An empty batch means nothing came.
    pub fn read(&mut self) -> io::Result<Batch> {
        let mut batch = Batch::default();
        let size = match self.socket.recv(&mut &mut self.buf[..], 0) {
            Ok(size) => size,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(batch)
            }
            // Our buffer overflowed: what was lost shows in the next sequence number.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(batch),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(batch),
            Err(e) => return Err(e),
        };
        let mut data = &self.buf[..size];
        while data.len() >= 16 {
            let length = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
            if length < 16 || length > data.len() {
                break;
            }
            if let Ok(message) = NetlinkMessage::<NetfilterMessage>::deserialize(&data[..length]) {
                if let Some((seq, packet)) = packet_of(message) {
                    if let (Some(expected), Some(seq)) = (self.next_seq, seq) {
                        batch.lost += u64::from(seq.wrapping_sub(expected));
                    }
                    if let Some(seq) = seq {
                        self.next_seq = Some(seq.wrapping_add(1));
                    }
                    batch.packets.push(packet);
                }
            }
            data = data.get(length.next_multiple_of(4)..).unwrap_or_default();
        }
        Ok(batch)
    }
}

/// The logged packet a message carries, with its sequence number.
fn packet_of(message: NetlinkMessage<NetfilterMessage>) -> Option<(Option<u32>, Logged)> {
    let NetlinkPayload::InnerMessage(NetfilterMessage {
        inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
        ..
    }) = message.payload
    else {
        return None;
    };
    let mut packet = Logged {
        prefix: String::new(),
        uid: None,
        payload: Vec::new(),
        ethertype: None,
        source_mac: None,
    };
    let mut seq = None;
    for nla in nlas {
        match nla {
            PacketNla::Prefix(p) => packet.prefix = p.to_string_lossy().into_owned(),
            PacketNla::Uid(uid) => packet.uid = Some(uid),
            PacketNla::Payload(bytes) => packet.payload = bytes,
            PacketNla::Seq(n) => seq = Some(n),
            PacketNla::PacketHdr(header) => packet.ethertype = ethertype(&header),
            PacketNla::HwAddr(address) => packet.source_mac = mac(&address),
            _ => {}
        }
    }
    Some((seq, packet))
}

/// The EtherType of a packet header attribute. The crate keeps its fields private, so they are
/// read back from the attribute's wire form: the protocol, big-endian, then the hook.
fn ethertype(header: &PacketHdr) -> Option<u16> {
    let mut raw = [0u8; 4];
    let raw = raw.get_mut(..header.value_len())?;
    header.emit_value(raw);
    Some(u16::from_be_bytes([*raw.first()?, *raw.get(1)?]))
}

/// The MAC of a hardware address attribute (its wire form: length, padding, eight address
/// bytes), when it is an Ethernet one.
fn mac(address: &HwAddr) -> Option<[u8; 6]> {
    let mut raw = [0u8; 12];
    let raw = raw.get_mut(..address.value_len())?;
    address.emit_value(raw);
    if u16::from_be_bytes([*raw.first()?, *raw.get(1)?]) != 6 {
        return None;
    }
    raw.get(4..10)?.try_into().ok()
}
