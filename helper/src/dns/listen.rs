//! One VM's forwarder endpoint: UDP and TCP on one port of 127.0.0.1 and ::1. The port is how
//! the forwarder knows which VM asked — the firewall redirects only that VM's DNS here and drops
//! anyone else's packets to it — so a listener serves exactly one VM.
//!
//! Bounded whatever a guest sends: at most `IN_FLIGHT` UDP questions are worked on at once
//! (more are dropped, as a busy resolver would), at most `CONNECTIONS` TCP connections, each
//! answering one question at a time and closed when idle.

use super::upstream::Transport;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// UDP questions of one VM worked on at once.
const IN_FLIGHT: usize = 64;
/// TCP connections of one VM at once.
const CONNECTIONS: usize = 16;
/// A TCP connection with no question for this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// Largest UDP question read (EDNS's usual buffer; questions are small).
const MAX_UDP_QUESTION: usize = 4096;
/// Tries to find a port free for all four sockets.
const BIND_TRIES: usize = 32;

/// What answers one question: the VM's bytes in, the answer out (`None`: no answer at all).
pub type Answerer = Arc<
    dyn Fn(Vec<u8>, Transport) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>
        + Send
        + Sync,
>;

/// A running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct Listener {
    /// The port, on both loopback addresses.
    pub port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds a free port on both loopbacks (IPv6 left out where the host has no `::1`) and serves
/// it with `answer`. Must run inside the runtime.
pub fn start(answer: &Answerer) -> std::io::Result<Listener> {
    let mut last = std::io::Error::other("no free port");
    for _ in 0..BIND_TRIES {
        match bind_all() {
            Ok((port, udp, tcp)) => {
                let mut tasks = Vec::new();
                let udp_gate = Arc::new(Semaphore::new(IN_FLIGHT));
                let tcp_gate = Arc::new(Semaphore::new(CONNECTIONS));
                for socket in udp {
                    let socket = Arc::new(UdpSocket::from_std(socket)?);
                    tasks.push(tokio::spawn(serve_udp(
                        socket,
                        Arc::clone(answer),
                        Arc::clone(&udp_gate),
                    )));
                }
                for listener in tcp {
                    let listener = TcpListener::from_std(listener)?;
                    tasks.push(tokio::spawn(serve_tcp(
                        listener,
                        Arc::clone(answer),
                        Arc::clone(&tcp_gate),
                    )));
                }
                return Ok(Listener { port, tasks });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

type Bound = (u16, Vec<std::net::UdpSocket>, Vec<std::net::TcpListener>);

fn bind_all() -> std::io::Result<Bound> {
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let first = std::net::UdpSocket::bind(SocketAddr::new(v4, 0))?;
    let port = first.local_addr()?.port();
    let mut udp = vec![first];
    let mut tcp = vec![std::net::TcpListener::bind(SocketAddr::new(v4, port))?];
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
    match std::net::UdpSocket::bind(v6) {
        Ok(s) => {
            udp.push(s);
            tcp.push(std::net::TcpListener::bind(v6)?);
        }
        // No ::1 here: IPv6 DNS is redirected to nothing and fails, which is closed.
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {}
        Err(e) => return Err(e),
    }
    for s in &udp {
        s.set_nonblocking(true)?;
    }
    for l in &tcp {
        l.set_nonblocking(true)?;
    }
    Ok((port, udp, tcp))
}

async fn serve_udp(socket: Arc<UdpSocket>, answer: Answerer, gate: Arc<Semaphore>) {
    let mut buf = vec![0u8; MAX_UDP_QUESTION];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&gate).try_acquire_owned() else {
            continue; // Too many at once: dropped, and the guest asks again.
        };
        let question = buf[..n].to_vec();
        let (socket, answer) = (Arc::clone(&socket), Arc::clone(&answer));
        tokio::spawn(async move {
            if let Some(reply) = answer(question, Transport::Udp).await {
                let _ = socket.send_to(&reply, peer).await;
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(listener: TcpListener, answer: Answerer, gate: Arc<Semaphore>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&gate).try_acquire_owned() else {
            continue; // Dropping the stream closes it.
        };
        let answer = Arc::clone(&answer);
        tokio::spawn(async move {
            serve_connection(stream, answer).await;
            drop(permit);
        });
    }
}

async fn serve_connection(mut stream: TcpStream, answer: Answerer) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(IDLE, stream.read_u16()).await else {
            return;
        };
        let mut question = vec![0u8; usize::from(len)];
        if !matches!(
            tokio::time::timeout(IDLE, stream.read_exact(&mut question)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(reply) = answer(question, Transport::Tcp).await else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
