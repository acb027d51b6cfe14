//! The upstream against servers run in the test on 127.0.0.1: plain DNS over UDP and TCP, DNS
//! over TLS with a CA and server certificate made here, and a SOCKS5 proxy that records where it
//! was asked to connect. Nothing needs root or the network.

use super::*;
use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use palisade_dbus::policy::HostName;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

const SHORT: Duration = Duration::from_millis(300);
const ANSWERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

// ---- DNS messages ----

fn question(id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id);
    m.set_recursion_desired(true);
    m.add_query(Query::query(
        Name::from_ascii("example.com.").expect("name"),
        RecordType::A,
    ));
    m.to_vec().expect("question")
}

fn answer_to(query: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query).expect("the upstream sent a DNS question");
    let mut a = Message::new();
    a.set_id(q.id());
    a.set_message_type(MessageType::Response);
    a.set_recursion_desired(true);
    a.set_recursion_available(true);
    for query in q.queries() {
        a.add_query(query.clone());
        a.add_answer(Record::from_rdata(
            query.name().clone(),
            60,
            RData::A(A(ANSWERED)),
        ));
    }
    a.to_vec().expect("answer")
}

/// Asserts `answer` answers `question(id)` with [`ANSWERED`].
fn assert_answers(answer: &[u8], id: u16) {
    let m = Message::from_vec(answer).expect("a DNS answer");
    assert_eq!(m.id(), id);
    assert_eq!(m.message_type(), MessageType::Response);
    assert_eq!(m.answers().len(), 1);
    assert_eq!(m.answers()[0].data(), &RData::A(A(ANSWERED)));
}

// ---- servers ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Answer,
    /// An answer whose id is not the question's.
    WrongId,
    /// Reads questions, answers none.
    Silent,
}

fn reply_to(query: &[u8], reply: Reply) -> Vec<u8> {
    let mut a = answer_to(query);
    if reply == Reply::WrongId {
        a[0] ^= 0xff;
    }
    a
}

async fn udp_server(reply: Reply) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            if reply == Reply::Silent {
                continue;
            }
            let _ = socket.send_to(&reply_to(&buf[..n], reply), from).await;
        }
    });
    addr
}

/// Answers up to `answers` framed questions on `stream`, then closes it.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reply: Reply,
    answers: usize,
) {
    for _ in 0..answers {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut query = vec![0; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        if reply == Reply::Silent {
            std::future::pending::<()>().await;
        }
        let answer = reply_to(&query, reply);
        let mut framed = u16::try_from(answer.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

async fn tcp_server(reply: Reply) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_stream(stream, reply, usize::MAX));
        }
    });
    addr
}

/// A CA and a server certificate for `name` it signed.
struct Pki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki(name: &str, ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    Pki {
        ca_pem,
        leaf: leaf.der().clone(),
        key: key.serialize_der(),
    }
}

/// A DNS over TLS server presenting `pki`'s certificate, answering `answers` questions per
/// connection; it counts completed handshakes.
async fn tls_server(pki: &Pki, reply: Reply, answers: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.leaf.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())),
            )
            .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    serve_stream(stream, reply, answers).await;
                }
            });
        }
    });
    (addr, handshakes)
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "palisade-upstream-{tag}-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, contents).expect("write");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tls_config(server: SocketAddr, name: &str, ca: Option<&TempFile>) -> DnsUpstream {
    DnsUpstream::Tls {
        server,
        name: HostName::parse(name).expect("host name"),
        ca: ca.map(|f| f.0.clone()),
    }
}

fn upstream(config: &DnsUpstream) -> Upstream {
    Upstream::with_timeout(config, SHORT).unwrap_or_else(|e| panic!("{e}"))
}

/// A SOCKS5 proxy without authentication that records each CONNECT target, then answers
/// `reply` (0 = success, connecting to the target), or refuses every method when
/// `require_auth`.
async fn socks_proxy(reply: u8, require_auth: bool) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let targets = Arc::new(Mutex::new(Vec::new()));
    let recorded = targets.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut greeting = [0; 2];
                client.read_exact(&mut greeting).await.expect("greeting");
                let mut methods = vec![0; usize::from(greeting[1])];
                client.read_exact(&mut methods).await.expect("methods");
                assert_eq!(greeting[0], 5);
                assert!(methods.contains(&0), "no-authentication is offered");
                if require_auth {
                    client.write_all(&[5, 0xff]).await.expect("choice");
                    return;
                }
                client.write_all(&[5, 0]).await.expect("choice");
                let mut head = [0; 4];
                client.read_exact(&mut head).await.expect("request");
                assert_eq!(head[..3], [5, 1, 0], "a CONNECT request");
                let ip: IpAddr = match head[3] {
                    1 => {
                        let mut a = [0; 4];
                        client.read_exact(&mut a).await.expect("v4");
                        a.into()
                    }
                    4 => {
                        let mut a = [0; 16];
                        client.read_exact(&mut a).await.expect("v6");
                        a.into()
                    }
                    other => panic!("the target must be an address, not type {other}"),
                };
                let port = client.read_u16().await.expect("port");
                let target = SocketAddr::new(ip, port);
                recorded.lock().expect("targets").push(target);
                if reply != 0 {
                    let _ = client.write_all(&[5, reply, 0, 1, 0, 0, 0, 0, 0, 0]).await;
                    return;
                }
                let mut server = TcpStream::connect(target).await.expect("target");
                // The bound address as a domain name, so the client must skip a variable length.
                let mut ok = vec![5, 0, 0, 3, 9];
                ok.extend_from_slice(b"proxy.lan");
                ok.extend_from_slice(&1080u16.to_be_bytes());
                client.write_all(&ok).await.expect("reply");
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, targets)
}

// ---- plain ----

#[tokio::test]
async fn server_over_udp_returns_the_answer() {
    let server = udp_server(Reply::Answer).await;
    let up = upstream(&DnsUpstream::Server(server));
    let answer = up
        .exchange(&question(0x1234), Transport::Udp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_answers(&answer, 0x1234);
}

#[tokio::test]
async fn server_over_tcp_returns_the_answer() {
    let server = tcp_server(Reply::Answer).await;
    let up = upstream(&DnsUpstream::Server(server));
    let answer = up
        .exchange(&question(0x4321), Transport::Tcp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_answers(&answer, 0x4321);
}

#[tokio::test]
async fn tcp_answer_with_another_id_is_malformed() {
    let server = tcp_server(Reply::WrongId).await;
    let up = upstream(&DnsUpstream::Server(server));
    let err = up
        .exchange(&question(7), Transport::Tcp)
        .await
        .expect_err("a wrong id is no answer");
    assert!(matches!(err, UpstreamError::Malformed(_)), "{err}");
}

#[tokio::test]
async fn udp_datagram_with_another_id_is_not_taken_for_the_answer() {
    let server = udp_server(Reply::WrongId).await;
    let up = upstream(&DnsUpstream::Server(server));
    let err = up
        .exchange(&question(7), Transport::Udp)
        .await
        .expect_err("a wrong id is no answer");
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = udp_server(Reply::Silent).await;
    let up = upstream(&DnsUpstream::Server(server));
    let started = std::time::Instant::now();
    let err = up
        .exchange(&question(1), Transport::Udp)
        .await
        .expect_err("no answer");
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err}");
    assert!(started.elapsed() < SHORT * 3);
    assert!(err.to_string().contains(&server.to_string()), "{err}");
}

// ---- DNS over TLS ----

#[tokio::test]
async fn tls_with_the_pinned_ca_answers() {
    let pki = pki("dns.test", "Palisade test CA");
    let ca = TempFile::new("ca", &pki.ca_pem);
    let (server, _) = tls_server(&pki, Reply::Answer, usize::MAX).await;
    let up = upstream(&tls_config(server, "dns.test", Some(&ca)));
    // The guest's transport does not matter: TLS is always a stream.
    let answer = up
        .exchange(&question(0xbeef), Transport::Udp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_answers(&answer, 0xbeef);
}

#[tokio::test]
async fn tls_certificate_for_another_name_is_refused() {
    let pki = pki("dns.test", "Palisade test CA");
    let ca = TempFile::new("ca", &pki.ca_pem);
    let (server, handshakes) = tls_server(&pki, Reply::Answer, usize::MAX).await;
    let up = upstream(&tls_config(server, "other.test", Some(&ca)));
    let err = up
        .exchange(&question(1), Transport::Tcp)
        .await
        .expect_err("wrong name");
    assert!(matches!(err, UpstreamError::Certificate { .. }), "{err}");
    let said = err.to_string();
    assert!(
        said.starts_with(
            "the certificate of other.test is not trusted: it is not issued for other.test"
        ),
        "{said}"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tls_certificate_from_another_ca_is_refused() {
    let pki = pki("dns.test", "Palisade test CA");
    // Another name, and the same name with another key: both are strangers.
    for stranger in ["Someone else's CA", "Palisade test CA"] {
        let stranger = self::pki("dns.test", stranger);
        let ca = TempFile::new("other-ca", &stranger.ca_pem);
        let (server, handshakes) = tls_server(&pki, Reply::Answer, usize::MAX).await;
        let up = upstream(&tls_config(server, "dns.test", Some(&ca)));
        let err = up
            .exchange(&question(1), Transport::Tcp)
            .await
            .expect_err("not the signer");
        assert!(matches!(err, UpstreamError::Certificate { .. }), "{err}");
        let said = err.to_string();
        assert!(
            said.starts_with(&format!(
                "the certificate of dns.test is not trusted: it is not signed by the CA in {}",
                ca.0.display()
            )),
            "{said}"
        );
        assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn tls_private_ca_is_not_among_the_system_roots() {
    let pki = pki("dns.test", "Palisade test CA");
    let (server, _) = tls_server(&pki, Reply::Answer, usize::MAX).await;
    let up = upstream(&tls_config(server, "dns.test", None));
    let err = up
        .exchange(&question(1), Transport::Tcp)
        .await
        .expect_err("a private CA");
    assert!(
        err.to_string()
            .contains("it is not signed by a CA this machine trusts"),
        "{err}"
    );
}

#[test]
fn tls_missing_ca_file_is_refused_when_configured() {
    let path = std::env::temp_dir().join("palisade-upstream-no-such-ca.pem");
    let config = DnsUpstream::Tls {
        server: "127.0.0.1:853".parse().expect("addr"),
        name: HostName::parse("dns.test").expect("name"),
        ca: Some(path.clone()),
    };
    let err = Upstream::new(&config).expect_err("no CA file");
    assert!(matches!(err, UpstreamError::Config(_)), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn tls_ca_file_without_a_certificate_is_refused_when_configured() {
    let empty = TempFile::new("empty", "not a certificate\n");
    let config = tls_config(
        "127.0.0.1:853".parse().expect("addr"),
        "dns.test",
        Some(&empty),
    );
    let err = Upstream::new(&config).expect_err("no certificate");
    assert!(matches!(err, UpstreamError::Config(_)), "{err}");
    assert!(err.to_string().contains("holds no certificate"), "{err}");
}

#[tokio::test]
async fn tls_session_is_reused() {
    let pki = pki("dns.test", "Palisade test CA");
    let ca = TempFile::new("ca", &pki.ca_pem);
    let (server, handshakes) = tls_server(&pki, Reply::Answer, usize::MAX).await;
    let up = upstream(&tls_config(server, "dns.test", Some(&ca)));
    for id in [1, 2, 3] {
        let answer = up
            .exchange(&question(id), Transport::Tcp)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_answers(&answer, id);
    }
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tls_session_closed_by_the_server_is_replaced() {
    let pki = pki("dns.test", "Palisade test CA");
    let ca = TempFile::new("ca", &pki.ca_pem);
    // One answer per connection: the pooled session is closed when it is tried again.
    let (server, handshakes) = tls_server(&pki, Reply::Answer, 1).await;
    let up = upstream(&tls_config(server, "dns.test", Some(&ca)));
    for id in [1, 2] {
        let answer = up
            .exchange(&question(id), Transport::Tcp)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_answers(&answer, id);
    }
    assert_eq!(handshakes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn silent_tls_server_times_out() {
    let pki = pki("dns.test", "Palisade test CA");
    let ca = TempFile::new("ca", &pki.ca_pem);
    let (server, _) = tls_server(&pki, Reply::Silent, usize::MAX).await;
    let up = upstream(&tls_config(server, "dns.test", Some(&ca)));
    let err = up
        .exchange(&question(1), Transport::Tcp)
        .await
        .expect_err("no answer");
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err}");
    assert!(err.to_string().starts_with("dns.test ("), "{err}");
}

// ---- SOCKS5 ----

#[tokio::test]
async fn socks_connects_to_the_server_by_address() {
    let dns = tcp_server(Reply::Answer).await;
    let (proxy, targets) = socks_proxy(0, false).await;
    let up = upstream(&DnsUpstream::Socks { proxy, server: dns });
    // A guest's UDP question still goes over TCP through the proxy.
    let answer = up
        .exchange(&question(0x5050), Transport::Udp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_answers(&answer, 0x5050);
    assert_eq!(*targets.lock().expect("targets"), vec![dns]);
}

#[tokio::test]
async fn socks_refusal_is_reported() {
    let (proxy, targets) = socks_proxy(5, false).await;
    let server: SocketAddr = "[2001:db8::53]:53".parse().expect("addr");
    let up = upstream(&DnsUpstream::Socks { proxy, server });
    let err = up
        .exchange(&question(1), Transport::Tcp)
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "the SOCKS5 proxy {proxy} cannot connect to [2001:db8::53]:53: connection refused \
             (SOCKS5 reply 5)"
        )
    );
    assert_eq!(*targets.lock().expect("targets"), vec![server]);
}

#[tokio::test]
async fn socks_proxy_requiring_authentication_is_refused() {
    let (proxy, _) = socks_proxy(0, true).await;
    let up = upstream(&DnsUpstream::Socks {
        proxy,
        server: "192.0.2.53:53".parse().expect("addr"),
    });
    let err = up
        .exchange(&question(1), Transport::Tcp)
        .await
        .expect_err("authentication");
    assert!(matches!(err, UpstreamError::Proxy { .. }), "{err}");
    assert!(err.to_string().contains("requires authentication"), "{err}");
}

// ---- words ----

#[test]
fn describe_says_what_the_upstream_is() {
    let pki = pki("dns.test", "Palisade test CA");
    let ca = TempFile::new("ca", &pki.ca_pem);
    let server: SocketAddr = "10.0.0.53:853".parse().expect("addr");
    let tls = Upstream::new(&tls_config(server, "dns.test", Some(&ca))).expect("tls");
    assert_eq!(
        tls.describe(),
        format!(
            "DNS over TLS to dns.test (10.0.0.53:853), trusting only the CA in {}",
            ca.0.display()
        )
    );
    let socks = Upstream::new(&DnsUpstream::Socks {
        proxy: "127.0.0.1:1080".parse().expect("addr"),
        server: "9.9.9.9:53".parse().expect("addr"),
    })
    .expect("socks");
    assert_eq!(
        socks.describe(),
        "DNS over TCP to 9.9.9.9:53 through the SOCKS5 proxy 127.0.0.1:1080"
    );
    let plain =
        Upstream::new(&DnsUpstream::Server("10.0.0.53:53".parse().expect("addr"))).expect("server");
    assert_eq!(plain.describe(), "DNS to 10.0.0.53:53 over UDP and TCP");
}
