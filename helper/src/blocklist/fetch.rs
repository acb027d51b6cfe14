//! Downloading a list: the address check done at the edge, and one bounded, conditional HTTP(S)
//! request whose body is streamed into [`super::parse::parse`].
//!
//! Invariants. Only `http` and `https` addresses are ever requested; anything else (`file:`,
//! `ftp:`, `gopher:` ...) is refused by [`check_url`] with a sentence before any connection.
//! A request is bounded in time ([`CONNECT_TIMEOUT`], [`TOTAL_TIMEOUT`]), in redirects, and in
//! size: a body longer than [`MAX_BODY`] is an error, never a silently cut list. TLS is rustls
//! with the webpki roots (no OpenSSL). A download either yields a whole parsed list, or "not
//! modified", or an error: nothing is stored here. Blocking: call it from `spawn_blocking`.

use super::parse::{parse, ParseOptions, ParsedList};
use super::ImportError;
use palisade_dbus::policy::names::quote;
use std::io::{self, Read};
use std::time::Duration;

/// Longest address accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Largest body read; a longer one refuses the download.
pub const MAX_BODY: u64 = 512 << 20;
/// Time to establish the connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for the whole request, body included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(120);
/// Redirects followed.
const MAX_REDIRECTS: u32 = 5;

/// Checks an address the caller sent: `http` or `https`, at most [`MAX_URL_LEN`] bytes, no
/// control characters or spaces, a host, no credentials, and parseable. The error is a sentence.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!(
            "the address is {} characters long; at most {MAX_URL_LEN} are accepted",
            url.len()
        ));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(
            "the address contains a control character or a space; encode it as %xx".to_owned(),
        );
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err(format!(
            "{} is not an http or https address; lists are downloaded over HTTP(S) only \
             (import a local file by giving its path instead)",
            quote(url)
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(
            "the address contains a user name or password, which everyone who may read the \
             policy would see; use an address without credentials"
                .to_owned(),
        );
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("{} names no host", quote(url)));
    }
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(format!("{} names no host", quote(url))),
        Err(e) => Err(format!("{} is not a valid address: {e}", quote(url))),
    }
}

/// What the last download said about its version, sent back so an unchanged list costs a `304`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The server's `ETag`.
    pub etag: Option<String>,
    /// The server's `Last-Modified`.
    pub last_modified: Option<String>,
}

/// What a download found.
#[derive(Debug)]
pub enum Fetched {
    /// `304 Not Modified`: the stored list is current.
    NotModified,
    /// A new copy, parsed whole, with the validators that came with it.
    Fresh {
        /// The list.
        parsed: ParsedList,
        /// For the next conditional request.
        validators: Validators,
    },
}

/// Why a download failed; each is a sentence.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request did not get an answer (DNS, connection, TLS, timeout, too many redirects).
    #[error("cannot download {url}: {reason}")]
    Request {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("the server answered {status} for {url}; nothing was changed")]
    Status {
        /// The address.
        url: String,
        /// Code and reason.
        status: String,
    },
    /// The body was refused by the parser (or could not be read).
    #[error("the download from {url} was refused: {source}")]
    Parse {
        /// The address.
        url: String,
        /// Why.
        source: ImportError,
    },
}

impl From<FetchError> for palisade_dbus::Error {
    fn from(e: FetchError) -> Self {
        // The address is the caller's: each sentence says what failed with it.
        palisade_dbus::Error::InvalidArgument(e.to_string())
    }
}

/// Downloads `url` (already checked by [`check_url`]), conditionally on `validators`, and parses
/// the body with `options`. Blocking.
pub fn fetch(
    url: &str,
    validators: &Validators,
    options: &ParseOptions,
) -> Result<Fetched, FetchError> {
    let shown = quote(url);
    if let Err(reason) = check_url(url) {
        return Err(FetchError::Request { url: shown, reason });
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        .max_redirects(MAX_REDIRECTS)
        .http_status_as_error(false)
        .user_agent(concat!("palisade-helper/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(etag) = &validators.etag {
        request = request.header("If-None-Match", etag.as_str());
    }
    if let Some(since) = &validators.last_modified {
        request = request.header("If-Modified-Since", since.as_str());
    }
    let response = request.call().map_err(|e| FetchError::Request {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    let status = response.status();
    if status == ureq::http::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(FetchError::Status {
            url: shown,
            status: status.to_string(),
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_owned)
    };
    let validators = Validators {
        etag: header("etag"),
        last_modified: header("last-modified"),
    };
    let body = Capped {
        inner: response.into_body().into_reader(),
        left: MAX_BODY,
    };
    let parsed = parse(io::BufReader::with_capacity(64 << 10, body), options)
        .map_err(|source| FetchError::Parse { url: shown, source })?;
    Ok(Fetched::Fresh { parsed, validators })
}

/// A reader that fails once more than `left` bytes come: a cut list would be a wrong list.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the cap is enough to know it is exceeded.
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = (&mut self.inner).take(want as u64).read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!(
                "the download is larger than {} MiB",
                MAX_BODY >> 20
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_pass() {
        for good in [
            "http://127.0.0.1:8080/list.txt",
            "https://lists.example/drop.txt?x=1",
            "HTTPS://Lists.Example/a",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in [
            "file:///etc/shadow",
            "ftp://lists.example/a",
            "gopher://lists.example/",
            "lists.example/a",
            "http://",
            "http:///etc/shadow",
            "http://user:pw@lists.example/",
            "http://lists.example/a b",
            "http://lists.example/a\nHost: x",
            "",
        ] {
            let e = check_url(bad).err();
            assert!(e.as_deref().is_some_and(|s| s.len() > 20), "{bad}: {e:?}");
        }
        let long = format!("https://lists.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url(&long).is_err());
    }

    #[test]
    fn capped_reader_refuses_one_byte_too_many() {
        let mut out = Vec::new();
        let ok = Capped {
            inner: &[1u8; 10][..],
            left: 10,
        }
        .read_to_end(&mut out);
        assert_eq!(ok.ok(), Some(10));
        let over = Capped {
            inner: &[1u8; 11][..],
            left: 10,
        }
        .read_to_end(&mut out);
        assert!(over.is_err());
    }
}
