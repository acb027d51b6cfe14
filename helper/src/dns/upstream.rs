//! Where the forwarder asks: the host's resolvers, one server, DNS over TLS, or DNS over TCP
//! through a SOCKS5 proxy (`[settings.dns]`). An exchange sends the guest's question as it came
//! and returns the upstream's answer as it came; the forwarder only looks at it.
//!
//! A failing upstream is an error the forwarder reports (the guest gets SERVFAIL); it is never
//! replaced by another upstream, least of all a plaintext one. Every exchange is bounded in time
//! and every answer in size, and an answer counts only if it carries the question's id.
//! Whatever can be checked before the first question — a pinned CA file, the system's roots — is
//! checked in [`Upstream::new`], so a broken configuration is refused when it is applied rather
//! than discovered one SERVFAIL at a time.

mod socks;
#[cfg(test)]
mod tests;
mod tls;

use palisade_dbus::policy::DnsUpstream;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one exchange with one server may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest answer we read: what a TCP length prefix can say and a UDP datagram can carry, so
/// our buffer never cuts an answer short and passes on half of it.
const MAX_ANSWER: usize = 65535;
/// A DNS header; anything shorter is not a message.
const HEADER_LEN: usize = 12;

/// How the guest asked, and so how the forwarder asks: an answer too big for UDP comes back
/// truncated, and the guest asks again over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (two-byte length prefix).
    Tcp,
}

/// Why an exchange failed, in the words `dns log` and the journal show.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No server to ask.
    #[error("no name server is configured (/etc/resolv.conf names none)")]
    NoServer,
    /// No answer in time.
    #[error("{0} did not answer within {secs} s", secs = EXCHANGE_TIMEOUT.as_secs())]
    Timeout(String),
    /// The network said no.
    #[error("cannot reach {0}: {1}")]
    Io(String, std::io::Error),
    /// The answer is not one.
    #[error("{0} sent something that is not a DNS answer")]
    Malformed(String),
    /// The upstream's configuration cannot be used (a missing CA file, say).
    #[error("the DNS upstream cannot be used: {0}")]
    Config(String),
    /// The DNS over TLS server's certificate failed verification; nothing was sent to it.
    #[error("the certificate of {name} is not trusted: {reason}")]
    Certificate {
        /// The name the certificate had to carry.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS session failed for a reason other than the certificate.
    #[error("the TLS session with {0} failed: {1}")]
    Tls(String, String),
    /// The SOCKS5 proxy refused or does not speak SOCKS5.
    #[error("the SOCKS5 proxy {proxy} {reason}")]
    Proxy {
        /// The proxy's address.
        proxy: String,
        /// What it said, as the rest of the sentence.
        reason: String,
    },
}

/// The configured upstream. Clones share the DNS over TLS connections.
#[derive(Debug, Clone)]
pub struct Upstream {
    kind: Kind,
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum Kind {
    System,
    Server(SocketAddr),
    Tls(Arc<tls::Tls>),
    Socks {
        proxy: SocketAddr,
        server: SocketAddr,
    },
}

impl Upstream {
    /// The upstream `config` describes; a CA file or root store that cannot be used is an error
    /// here, not at the first question.
    pub fn new(config: &DnsUpstream) -> Result<Self, UpstreamError> {
        Self::build(config, EXCHANGE_TIMEOUT)
    }

    /// Like [`Upstream::new`] with a shorter bound, so the tests of silence take no seconds.
    #[cfg(test)]
    pub(crate) fn with_timeout(
        config: &DnsUpstream,
        timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        Self::build(config, timeout)
    }

    fn build(config: &DnsUpstream, timeout: Duration) -> Result<Self, UpstreamError> {
        let kind = match config {
            DnsUpstream::System => Kind::System,
            DnsUpstream::Server(server) => Kind::Server(*server),
            DnsUpstream::Tls { server, name, ca } => {
                Kind::Tls(Arc::new(tls::Tls::new(*server, name, ca.as_deref())?))
            }
            DnsUpstream::Socks { proxy, server } => Kind::Socks {
                proxy: *proxy,
                server: *server,
            },
        };
        Ok(Self { kind, timeout })
    }

    /// What the upstream is, in words, e.g. "DNS over TLS to dns.test (10.0.0.53:853)".
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::System => "the host's name servers (/etc/resolv.conf), over UDP and TCP".into(),
            Kind::Server(server) => format!("DNS to {server} over UDP and TCP"),
            Kind::Tls(tls) => tls.describe(),
            Kind::Socks { proxy, server } => {
                format!("DNS over TCP to {server} through the SOCKS5 proxy {proxy}")
            }
        }
    }

    /// Sends `query` and returns the answer. `transport` is how the guest asked; it decides
    /// the transport only for plain upstreams — DNS over TLS and through SOCKS5 always use their
    /// stream.
    pub async fn exchange(
        &self,
        query: &[u8],
        transport: Transport,
    ) -> Result<Vec<u8>, UpstreamError> {
        match &self.kind {
            Kind::System => {
                let servers = system_servers();
                let mut last = UpstreamError::NoServer;
                for server in servers {
                    match plain(SocketAddr::new(server, 53), query, transport, self.timeout).await {
                        Ok(answer) => return Ok(answer),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Kind::Server(server) => plain(*server, query, transport, self.timeout).await,
            Kind::Tls(tls) => tls.exchange(query, self.timeout).await,
            Kind::Socks { proxy, server } => {
                socks_exchange(*proxy, *server, query, self.timeout).await
            }
        }
    }
}

/// The name servers of `/etc/resolv.conf`, read at each exchange (it changes with the network).
fn system_servers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .take(3)
        .collect()
}

async fn plain(
    server: SocketAddr,
    query: &[u8],
    transport: Transport,
    timeout: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let label = server.to_string();
    let exchange = async {
        match transport {
            Transport::Udp => udp_exchange(server, query).await,
            Transport::Tcp => {
                let mut stream = TcpStream::connect(server).await?;
                stream_exchange(&mut stream, query).await
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => checked(&label, query, answer),
        Ok(Err(e)) => Err(UpstreamError::Io(label, e)),
        Err(_) => Err(UpstreamError::Timeout(label)),
    }
}

async fn udp_exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0; MAX_ANSWER];
    loop {
        let n = socket.recv(&mut buf).await?;
        // A datagram without the question's id is noise or a spoof: keep waiting for the real
        // answer (the caller's timeout bounds the wait).
        if buf.get(..n).is_some_and(|answer| same_id(query, answer)) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn socks_exchange(
    proxy: SocketAddr,
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let label = format!("{server} through the SOCKS5 proxy {proxy}");
    let exchange = async {
        let mut stream = TcpStream::connect(proxy)
            .await
            .map_err(|e| UpstreamError::Io(format!("the SOCKS5 proxy {proxy}"), e))?;
        socks::connect(&mut stream, server)
            .await
            .map_err(|e| match e {
                socks::SocksError::Io(e) => UpstreamError::Io(label.clone(), e),
                socks::SocksError::Refused(reason) => UpstreamError::Proxy {
                    proxy: proxy.to_string(),
                    reason,
                },
            })?;
        stream_exchange(&mut stream, query)
            .await
            .map_err(|e| UpstreamError::Io(label.clone(), e))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => checked(&label, query, answer),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(UpstreamError::Timeout(label)),
    }
}

/// One question and its answer over a stream, with the two-byte length prefix of RFC 1035
/// §4.2.2 (plain TCP, TLS and SOCKS5 alike). The prefix caps the answer at [`MAX_ANSWER`].
async fn stream_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    query: &[u8],
) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("question too long"))?;
    // Prefix and question in one write: one TLS record, one TCP segment for servers that read
    // the two-byte length and the message apart badly.
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    // TLS holds written bytes until flushed.
    stream.flush().await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// `answer`, if it is a message answering `query` (same id).
fn checked(label: &str, query: &[u8], answer: Vec<u8>) -> Result<Vec<u8>, UpstreamError> {
    if same_id(query, &answer) {
        Ok(answer)
    } else {
        Err(UpstreamError::Malformed(label.to_owned()))
    }
}

fn same_id(query: &[u8], answer: &[u8]) -> bool {
    answer.len() >= HEADER_LEN && query.len() >= 2 && answer[..2] == query[..2]
}
