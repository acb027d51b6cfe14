//! Where the forwarder asks: the host's resolvers, one server, DNS over TLS, or DNS over TCP
//! through a SOCKS5 proxy (`[settings.dns]`). An exchange sends the guest's question as it came
//! and returns the upstream's answer as it came; the forwarder only looks at it.
//!
//! A failing upstream is an error the forwarder reports (the guest gets SERVFAIL); it is never
//! replaced by another upstream, least of all a plaintext one. Every exchange is bounded in time
//! and every answer in size.

use palisade_dbus::policy::DnsUpstream;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one exchange with one server may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest answer over UDP we read (EDNS allows up to this).
const MAX_UDP_ANSWER: usize = 4096;

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
}

/// The configured upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    config: DnsUpstream,
}

impl Upstream {
    /// The upstream `config` describes.
    pub fn new(config: &DnsUpstream) -> Result<Self, UpstreamError> {
        Ok(Self {
            config: config.clone(),
        })
    }

    /// Sends `query` and returns the answer, over `transport`.
    pub async fn exchange(
        &self,
        query: &[u8],
        transport: Transport,
    ) -> Result<Vec<u8>, UpstreamError> {
        match &self.config {
            DnsUpstream::System => {
                let servers = system_servers();
                let mut last = UpstreamError::NoServer;
                for server in servers {
                    match plain(SocketAddr::new(server, 53), query, transport).await {
                        Ok(answer) => return Ok(answer),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            DnsUpstream::Server(server) => plain(*server, query, transport).await,
            DnsUpstream::Tls { .. } | DnsUpstream::Socks { .. } => Err(UpstreamError::Config(
                "DNS over TLS and through SOCKS5 are not built yet".into(),
            )),
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
) -> Result<Vec<u8>, UpstreamError> {
    let exchange = async {
        match transport {
            Transport::Udp => {
                let local: SocketAddr = if server.is_ipv4() {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local).await?;
                socket.connect(server).await?;
                socket.send(query).await?;
                let mut buf = vec![0; MAX_UDP_ANSWER];
                loop {
                    let n = socket.recv(&mut buf).await?;
                    // An answer must carry the question's id; anything else is noise or a spoof.
                    if n >= 12 && buf[..2] == query[..2] {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                }
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(server).await?;
                let len = u16::try_from(query.len())
                    .map_err(|_| std::io::Error::other("question too long"))?;
                let mut framed = Vec::with_capacity(query.len() + 2);
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(query);
                stream.write_all(&framed).await?;
                let len = stream.read_u16().await?;
                let mut buf = vec![0; usize::from(len)];
                stream.read_exact(&mut buf).await?;
                Ok(buf)
            }
        }
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok(answer)) if answer.len() >= 12 && answer[..2] == query[..2] => Ok(answer),
        Ok(Ok(_)) => Err(UpstreamError::Malformed(server.to_string())),
        Ok(Err(e)) => Err(UpstreamError::Io(server.to_string(), e)),
        Err(_) => Err(UpstreamError::Timeout(server.to_string())),
    }
}
