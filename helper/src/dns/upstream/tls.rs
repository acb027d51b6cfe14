//! DNS over TLS (RFC 7858): the stream framing of plain TCP inside a TLS session whose server
//! certificate must carry the configured name and chain to the system's roots — or, when a CA
//! file is configured, to the CAs in that file and nothing else (pinned). A certificate that
//! fails is an error that says so; no question is ever sent without a verified session.
//!
//! A handshake costs round trips and CPU on both sides, so established sessions are reused: a
//! few idle ones wait in a pool, and a stream goes back into it only after a complete, checked
//! exchange (so it never holds a late answer to an earlier question). A pooled stream the
//! server has meanwhile closed fails, is dropped, and the question is asked once more on a fresh
//! connection — within the same time bound.

use super::{checked, stream_exchange, UpstreamError};
use palisade_dbus::policy::HostName;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Idle sessions kept: enough for the bursts a few guests make, few enough that the server's
/// per-client limits never notice us.
const MAX_IDLE: usize = 4;
/// An idle session older than this is dropped rather than tried: servers close idle DoT
/// connections after seconds to tens of seconds (RFC 7766 §6.2.3), and a try on a closed one
/// only costs time before the retry.
const IDLE_LIFETIME: Duration = Duration::from_secs(20);

/// One DNS over TLS server, its verifier and its idle sessions.
pub(super) struct Tls {
    server: SocketAddr,
    name: HostName,
    server_name: ServerName<'static>,
    /// The pinned CA file, if any: said in descriptions and in certificate errors.
    ca: Option<PathBuf>,
    connector: TlsConnector,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    since: Instant,
    stream: TlsStream<TcpStream>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server", &self.server)
            .field("name", &self.name)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The server at `server` whose certificate names `name`, trusted through `ca` or the
    /// system's roots. The roots are read now: a missing, unreadable or empty CA file is a
    /// configuration error here.
    pub(super) fn new(
        server: SocketAddr,
        name: &HostName,
        ca: Option<&Path>,
    ) -> Result<Self, UpstreamError> {
        let roots = match ca {
            Some(path) => pinned_roots(path)?,
            None => system_roots()?,
        };
        // The provider is named rather than taken from the process default, which would panic
        // if another crate ever compiled in a second one.
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| UpstreamError::Config(format!("TLS cannot be set up: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let server_name = ServerName::try_from(name.as_str().to_owned()).map_err(|e| {
            UpstreamError::Config(format!("{name} cannot be a TLS server name: {e}"))
        })?;
        Ok(Self {
            server,
            name: name.clone(),
            server_name,
            ca: ca.map(Path::to_path_buf),
            connector: TlsConnector::from(Arc::new(config)),
            idle: Mutex::new(Vec::new()),
        })
    }

    pub(super) fn describe(&self) -> String {
        match &self.ca {
            Some(ca) => format!(
                "DNS over TLS to {}, trusting only the CA in {}",
                self.label(),
                ca.display()
            ),
            None => format!(
                "DNS over TLS to {}, trusting the system's CAs",
                self.label()
            ),
        }
    }

    fn label(&self) -> String {
        format!("{} ({})", self.name, self.server)
    }

    /// Asks `query` on a pooled session if one is alive, else on a fresh one, all within
    /// `timeout`.
    pub(super) async fn exchange(
        &self,
        query: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, UpstreamError> {
        let label = self.label();
        let deadline = Instant::now() + timeout;
        if let Some(mut stream) = self.take_idle() {
            // Half the time at most: a session a middlebox silently dropped would otherwise eat
            // the whole bound and leave nothing for the fresh connection.
            match tokio::time::timeout(timeout / 2, stream_exchange(&mut stream, query)).await {
                Ok(Ok(answer)) => return self.keep(stream, &label, query, answer),
                // Closed or dead while idle, most likely; a fresh connection tells for sure.
                Ok(Err(_)) | Err(_) => drop(stream),
            }
        }
        let fresh = async {
            let mut stream = self.connect().await?;
            let answer = stream_exchange(&mut stream, query)
                .await
                .map_err(|e| self.error(e))?;
            self.keep(stream, &label, query, answer)
        };
        tokio::time::timeout_at(deadline, fresh)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(label)))
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>, UpstreamError> {
        let tcp = TcpStream::connect(self.server)
            .await
            .map_err(|e| UpstreamError::Io(self.label(), e))?;
        // The answer is read as soon as it is complete; Nagle would hold small questions back.
        tcp.set_nodelay(true)
            .map_err(|e| UpstreamError::Io(self.label(), e))?;
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.error(e))
    }

    /// Returns `answer` if it answers `query`, and puts the session back in the pool then
    /// only: after a wrong answer the stream's position is no longer trusted.
    fn keep(
        &self,
        stream: TlsStream<TcpStream>,
        label: &str,
        query: &[u8],
        answer: Vec<u8>,
    ) -> Result<Vec<u8>, UpstreamError> {
        let answer = checked(label, query, answer)?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                since: Instant::now(),
                stream,
            });
        }
        Ok(answer)
    }

    /// The most recently used idle session younger than [`IDLE_LIFETIME`], if any.
    fn take_idle(&self) -> Option<TlsStream<TcpStream>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|i| i.since.elapsed() < IDLE_LIFETIME);
        idle.pop().map(|i| i.stream)
    }

    /// `e` in words: a certificate rustls refused is said to be one.
    fn error(&self, e: std::io::Error) -> UpstreamError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(why)) => UpstreamError::Certificate {
                name: self.name.to_string(),
                reason: self.untrusted(why),
            },
            Some(other) => UpstreamError::Tls(self.label(), other.to_string()),
            None => UpstreamError::Io(self.label(), e),
        }
    }

    fn untrusted(&self, why: &CertificateError) -> String {
        match why {
            CertificateError::UnknownIssuer => match &self.ca {
                Some(ca) => format!("it is not signed by the CA in {}", ca.display()),
                None => "it is not signed by a CA this machine trusts".into(),
            },
            // webpki finds the anchor by the issuer's name: a CA of the same name with another
            // key (an impostor, or a CA that was re-keyed) ends here rather than as unknown.
            CertificateError::BadSignature => match &self.ca {
                Some(ca) => format!(
                    "it is not signed by the CA in {} (its issuer bears that CA's name but not \
                     its key)",
                    ca.display()
                ),
                None => "its signature does not verify with the CA it names".into(),
            },
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("it is not issued for {} ({why})", self.name)
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "it has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "it is not valid yet (is this machine's clock right?)".into()
            }
            other => other.to_string(),
        }
    }
}

/// The CAs of the PEM file at `path`, and no others.
fn pinned_roots(path: &Path) -> Result<RootCertStore, UpstreamError> {
    let pem = std::fs::read(path).map_err(|e| {
        UpstreamError::Config(format!("cannot read the CA file {}: {e}", path.display()))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            UpstreamError::Config(format!("the CA file {} is not PEM: {e}", path.display()))
        })?;
        roots.add(cert).map_err(|e| {
            UpstreamError::Config(format!(
                "the CA file {} holds a certificate that cannot be a CA: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(UpstreamError::Config(format!(
            "the CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// The system's roots (`/etc/ssl/certs`, or what `SSL_CERT_FILE`/`SSL_CERT_DIR` name). Some
/// unreadable entries are tolerated, as every TLS client on the machine tolerates them; none at
/// all is an error, since nothing could ever be verified.
fn system_roots() -> Result<RootCertStore, UpstreamError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(UpstreamError::Config(format!(
            "no trusted CA certificate was found on this machine (/etc/ssl/certs){why}"
        )));
    }
    Ok(roots)
}
