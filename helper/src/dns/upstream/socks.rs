//! The SOCKS5 CONNECT handshake (RFC 1928), only the part the forwarder uses: no
//! authentication, and the target named by address so the proxy resolves nothing (a proxy that
//! resolved names would ask DNS outside the forwarder). When [`connect`] returns `Ok`, the
//! stream carries the target's bytes and nothing of the handshake is left unread.
//!
//! It is written here instead of taken from `tokio-socks`: the handshake is a few lines, and the
//! crate would add `thiserror` 1 and `either` to the build for features we do not use.

use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;
const IPV4: u8 = 1;
const DOMAIN: u8 = 3;
const IPV6: u8 = 4;

/// Why the handshake failed.
#[derive(Debug)]
pub(super) enum SocksError {
    /// The connection to the proxy failed.
    Io(std::io::Error),
    /// The proxy refused or is not a SOCKS5 proxy; the rest of a sentence after "the proxy".
    Refused(String),
}

impl From<std::io::Error> for SocksError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Asks the proxy on `stream` to connect to `target`.
pub(super) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    target: SocketAddr,
) -> Result<(), SocksError> {
    stream.write_all(&[VERSION, 1, NO_AUTHENTICATION]).await?;
    let mut choice = [0; 2];
    stream.read_exact(&mut choice).await?;
    match choice {
        [VERSION, NO_AUTHENTICATION] => {}
        [VERSION, NO_ACCEPTABLE_METHOD] => {
            return Err(SocksError::Refused(
                "requires authentication, which Palisade does not offer".into(),
            ))
        }
        _ => return Err(SocksError::Refused("does not speak SOCKS5".into())),
    }

    let mut request = vec![VERSION, CONNECT, 0];
    match target {
        SocketAddr::V4(a) => {
            request.push(IPV4);
            request.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            request.push(IPV6);
            request.extend_from_slice(&a.ip().octets());
        }
    }
    request.extend_from_slice(&target.port().to_be_bytes());
    stream.write_all(&request).await?;

    let mut head = [0; 4];
    stream.read_exact(&mut head).await?;
    let [version, reply, _reserved, address_type] = head;
    if version != VERSION {
        return Err(SocksError::Refused("does not speak SOCKS5".into()));
    }
    if reply != 0 {
        return Err(SocksError::Refused(format!(
            "cannot connect to {target}: {} (SOCKS5 reply {reply})",
            reply_words(reply)
        )));
    }
    // The address the proxy bound follows; it must be read off so the stream starts at the
    // target's first byte. Its length depends on its type.
    let address_len = match address_type {
        IPV4 => 4,
        IPV6 => 16,
        DOMAIN => usize::from(stream.read_u8().await?),
        _ => return Err(SocksError::Refused("sent a malformed reply".into())),
    };
    let mut bound = vec![0; address_len + 2];
    stream.read_exact(&mut bound).await?;
    Ok(())
}

/// RFC 1928 §6's reply codes.
fn reply_words(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "not allowed by the proxy's rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}
