//! Reading a blocklist: networks (plain lists, FireHOL `.netset`, Spamhaus DROP) and domains
//! (hosts files, plain domain lists), from any `Read`, streamed.
//!
//! Invariants. Memory is bounded whatever the input: a line is kept up to [`MAX_LINE`] bytes
//! and the rest of it is read and dropped (a 2 GB file without a newline is one malformed line),
//! at most [`MAX_PROBLEMS`] problems are kept in full, at most [`MAX_ENTRIES`] entries and
//! [`MAX_DOMAIN_BYTES`] of domain text are taken before the import is refused. The result is all
//! or nothing: [`parse`] returns a whole list, or an error and no list, so a caller never applies
//! half of one. A malformed line is reported with its number and skipped, or refuses the import
//! in strict mode; a source where most of the first [`SNIFF_LINES`] lines are malformed (an HTML
//! error page, a binary file) is refused as a whole, so a refresh from a broken URL cannot empty
//! a list. Networks come out merged ([`NetworkList`]); a list that covers a whole family is
//! refused unless forced.

use super::ranges::{mapped_v4, NetworkList};
use super::ImportError;
use palisade_dbus::policy::names::quote;
use palisade_dbus::policy::{Family, HostName};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;

mod halves;
pub use halves::parse_file;

/// Longest line kept, in bytes; longer lines are read to their end and reported.
pub const MAX_LINE: usize = 4096;
/// Problems kept in full; the rest are only counted.
pub const MAX_PROBLEMS: usize = 100;
/// Most entries (networks and domain names, as read, before merging) one list may hold. The
/// bound on memory: at worst 5 million IPv6 networks are 160 MB of ranges before merging (the
/// vector may briefly hold up to twice that while it grows).
pub const MAX_ENTRIES: u64 = 5_000_000;
/// Most text the domain names of one list may add up to (the entries' own bound leaves room
/// for 5 million names of 253 bytes, over a gigabyte).
pub const MAX_DOMAIN_BYTES: u64 = 128 << 20;
/// Lines (not comments, not blank) looked at to decide whether the source is a blocklist at all.
pub const SNIFF_LINES: u64 = 1000;
/// Characters of a line shown in a problem.
const SHOWN_CHARS: usize = 80;
/// Read size; lines are cut out of this buffer.
const READ_BUFFER: usize = 64 << 10;

/// Names hosts files carry for the machine itself, not to block anything: skipped silently.
const HOSTS_BOILERPLATE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// How a list is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decided per line: an address or network (with an optional `#`/`;` comment), a hosts-file
    /// line, or a domain name.
    #[default]
    Auto,
    /// One address or network per line; `#` and `;` start comments.
    Plain,
    /// FireHOL `.netset`/`.ipset`: one network per line; `#` starts comments.
    Netset,
    /// Spamhaus DROP: `1.10.16.0/20 ; SBL256894`; `;` starts comments.
    #[serde(rename = "spamhaus")]
    SpamhausDrop,
    /// A hosts file: `0.0.0.0 bad.example.com`; the names are the entries, the address is not.
    Hosts,
    /// One domain name per line; `#` starts comments.
    Domains,
}

impl Format {
    /// Parses a format word: `auto`, `plain`, `netset`, `spamhaus`, `hosts`, `domains`.
    pub fn parse(word: &str) -> Result<Self, ImportError> {
        Ok(match word {
            "auto" => Self::Auto,
            "plain" => Self::Plain,
            "netset" => Self::Netset,
            "spamhaus" => Self::SpamhausDrop,
            "hosts" => Self::Hosts,
            "domains" => Self::Domains,
            _ => return Err(ImportError::UnknownFormat(quote(word))),
        })
    }

    /// The word [`Format::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Plain => "plain",
            Self::Netset => "netset",
            Self::SpamhausDrop => "spamhaus",
            Self::Hosts => "hosts",
            Self::Domains => "domains",
        }
    }

    /// Whether lines may hold networks.
    fn has_networks(self) -> bool {
        matches!(
            self,
            Self::Auto | Self::Plain | Self::Netset | Self::SpamhausDrop
        )
    }

    /// The characters that start a comment, at the start of a line or after an entry.
    fn comment_chars(self) -> &'static [char] {
        match self {
            Self::Auto | Self::Plain => &['#', ';'],
            Self::Netset | Self::Hosts | Self::Domains => &['#'],
            Self::SpamhausDrop => &[';'],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to read a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The format, or `Auto`.
    pub format: Format,
    /// Refuse the whole list at its first problem instead of skipping the line.
    pub strict: bool,
    /// Accept a list that covers a whole address family (`0.0.0.0/0`, `::/0`).
    pub force: bool,
}

/// A line that was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Its number, from 1.
    pub line: u64,
    /// What is wrong with it, as a sentence.
    pub reason: String,
    /// The start of the line, control characters escaped, safe to show.
    pub text: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A list read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedList {
    /// Its networks, merged.
    pub networks: NetworkList,
    /// Its domain names, lower-case, sorted, without duplicates.
    pub domains: Vec<String>,
    /// Lines read, comments and blank lines included.
    pub lines: u64,
    /// Entries read (networks and names), before merging and removing duplicates.
    pub entries_read: u64,
    /// The first [`MAX_PROBLEMS`] lines skipped.
    pub problems: Vec<Problem>,
    /// Lines skipped beyond those.
    pub problems_not_listed: u64,
}

/// Reads a whole list from `input`. See the module's invariants.
pub fn parse(input: impl Read, options: &ParseOptions) -> Result<ParsedList, ImportError> {
    let mut reader = LineReader::new(input);
    let mut parser = Parser::new(options);
    while let Some(line) = reader.next_line()? {
        parser.line(line.number, line.bytes, line.too_long)?;
    }
    parser.finish(reader.number)
}

/// One line as read: at most [`MAX_LINE`] bytes, without its line ending.
struct Line<'a> {
    /// Its number, from 1.
    number: u64,
    bytes: &'a [u8],
    /// The line was longer; `bytes` holds its start.
    too_long: bool,
}

/// Cuts lines out of a reader with a bounded buffer.
struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    /// Number of the last line returned, from 1.
    number: u64,
}

impl<R: Read> LineReader<R> {
    fn new(input: R) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_BUFFER, input),
            line: Vec::with_capacity(MAX_LINE),
            number: 0,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.line.clear();
        let mut too_long = false;
        let mut started = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let end = newline.unwrap_or(chunk.len());
            let room = MAX_LINE - self.line.len();
            if end > room {
                too_long = true;
            }
            self.line.extend_from_slice(&chunk[..end.min(room)]);
            match newline {
                Some(i) => {
                    self.inner.consume(i + 1);
                    break;
                }
                None => {
                    let n = chunk.len();
                    self.inner.consume(n);
                }
            }
        }
        self.number += 1;
        if !too_long && self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(Some(Line {
            number: self.number,
            bytes: &self.line,
            too_long,
        }))
    }
}

/// A range of addresses one entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

/// What one line holds.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Network(Range),
    /// Domain names (a hosts line may carry several; boilerplate is left out, so it may be
    /// empty).
    Names(Vec<String>),
}

struct Parser<'a> {
    options: &'a ParseOptions,
    /// Whether its line 1 is the source's first line (which may start with a byte order mark),
    /// and whether the first lines decide if the source is a blocklist at all: both false for
    /// the later part of a source read in parts (`halves`).
    at_start: bool,
    /// Entries and domain text it takes before refusing the list.
    max_entries: u64,
    max_domain_bytes: u64,
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    domains: Vec<String>,
    domain_bytes: u64,
    entries_read: u64,
    problems: Vec<Problem>,
    problems_not_listed: u64,
    /// Lines that are not comments or blank, so far.
    examined: u64,
    /// Malformed lines among the first [`SNIFF_LINES`] examined.
    malformed_sniffed: u64,
}

impl<'a> Parser<'a> {
    fn new(options: &'a ParseOptions) -> Self {
        Self {
            options,
            at_start: true,
            max_entries: MAX_ENTRIES,
            max_domain_bytes: MAX_DOMAIN_BYTES,
            v4: Vec::new(),
            v6: Vec::new(),
            domains: Vec::new(),
            domain_bytes: 0,
            entries_read: 0,
            problems: Vec::new(),
            problems_not_listed: 0,
            examined: 0,
            malformed_sniffed: 0,
        }
    }

    fn line(&mut self, number: u64, raw: &[u8], too_long: bool) -> Result<(), ImportError> {
        if self.options.format.has_networks() && !too_long {
            if let Some((first, last)) = bare_ipv4(raw) {
                self.examined += 1;
                return self.add(Entry::Network(Range::V4(first, last)));
            }
        }
        let comments = self.options.format.comment_chars();
        let is_comment = |text: &str| {
            let t = text.trim_start();
            t.is_empty() || t.starts_with(comments)
        };
        if too_long {
            // A long comment (a licence text on one line) is still a comment. Its start is
            // looked at byte-wise: the cut may have split a character.
            let first = raw.iter().find(|b| !b.is_ascii_whitespace());
            if first.is_some_and(|&b| comments.contains(&char::from(b))) {
                return Ok(());
            }
            self.examined += 1;
            return self.malformed(number, Malformed::TooLong, raw);
        }
        if raw.contains(&0) {
            self.examined += 1;
            return self.malformed(number, Malformed::Binary, raw);
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            self.examined += 1;
            return self.malformed(number, Malformed::NotUtf8, raw);
        };
        let text = if number == 1 && self.at_start {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        if is_comment(text) {
            return Ok(());
        }
        // Comment characters are ASCII, so a byte search finds them (no byte of a multi-byte
        // character is ASCII); a char-pattern search was a tenth of a million-line import.
        let content = match text
            .bytes()
            .position(|b| comments.iter().any(|&c| u32::from(b) == c as u32))
        {
            Some(i) => &text[..i],
            None => text,
        }
        .trim();
        self.examined += 1;
        match entry(self.options.format, content) {
            Ok(e) => self.add(e),
            Err(why) => self.malformed(number, why, raw),
        }
    }

    fn add(&mut self, entry: Entry) -> Result<(), ImportError> {
        match entry {
            Entry::Network(range) => {
                self.count_entry()?;
                match range {
                    Range::V4(s, e) => self.v4.push((s, e)),
                    Range::V6(s, e) => self.v6.push((s, e)),
                }
            }
            Entry::Names(names) => {
                for name in names {
                    self.count_entry()?;
                    self.domain_bytes += name.len() as u64;
                    if self.domain_bytes > self.max_domain_bytes {
                        return Err(ImportError::DomainsTooLarge {
                            limit_mib: MAX_DOMAIN_BYTES >> 20,
                        });
                    }
                    self.domains.push(name);
                }
            }
        }
        Ok(())
    }

    fn count_entry(&mut self) -> Result<(), ImportError> {
        self.entries_read += 1;
        if self.entries_read > self.max_entries {
            return Err(ImportError::TooManyEntries { limit: MAX_ENTRIES });
        }
        Ok(())
    }

    /// Records a skipped line, or refuses the import (strict mode; a source that is mostly
    /// junk).
    fn malformed(&mut self, line: u64, why: Malformed, raw: &[u8]) -> Result<(), ImportError> {
        if self.options.strict {
            return Err(ImportError::Strict {
                line,
                reason: why.sentence(),
            });
        }
        // The line is escaped and shortened only when it is kept: junk past the first
        // problems costs a count.
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                line,
                reason: why.sentence(),
                text: shown(raw),
            });
        } else {
            self.problems_not_listed += 1;
        }
        if self.at_start && self.examined <= SNIFF_LINES {
            self.malformed_sniffed += 1;
            // More than half of the first SNIFF_LINES is certain now: no need to read on.
            if self.malformed_sniffed * 2 > SNIFF_LINES {
                return Err(self.not_a_blocklist());
            }
        }
        Ok(())
    }

    fn not_a_blocklist(&mut self) -> ImportError {
        ImportError::NotABlocklist {
            malformed: self.malformed_sniffed,
            examined: self.examined.min(SNIFF_LINES),
            // Problems are kept from the first on, so a malformed line means one is here.
            first: self.problems.drain(..).next().unwrap_or_default(),
        }
    }

    fn finish(mut self, lines: u64) -> Result<ParsedList, ImportError> {
        // A short source decides on what it has: mostly junk is junk.
        if self.malformed_sniffed * 2 > self.examined.min(SNIFF_LINES) {
            return Err(self.not_a_blocklist());
        }
        let networks = NetworkList::from_ranges(self.v4, self.v6);
        if !self.options.force {
            for family in [Family::V4, Family::V6] {
                if networks.covers_everything(family) {
                    return Err(ImportError::CoversEverything { family });
                }
            }
        }
        self.domains.sort_unstable();
        self.domains.dedup();
        self.domains.shrink_to_fit();
        Ok(ParsedList {
            networks,
            domains: self.domains,
            lines,
            entries_read: self.entries_read,
            problems: self.problems,
            problems_not_listed: self.problems_not_listed,
        })
    }
}

/// Why a line holds no entry. Worded only when the problem is shown or kept, so a long run of
/// junk past the kept problems costs no formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed<'a> {
    TooLong,
    Binary,
    NotUtf8,
    NotNetwork(&'a str),
    NotAnything(&'a str),
    NotDomain(&'a str),
    Wildcard(&'a str),
    WordsForNetwork(&'a str),
    WordsForDomain(&'a str),
    WordsForAuto(&'a str),
    NotHostAddress(&'a str),
    NoHostName(&'a str),
}

impl Malformed<'_> {
    fn sentence(self) -> String {
        const HOSTS_LINE: &str = "a hosts-file line is an address followed by host names";
        match self {
            Self::TooLong => format!("the line is longer than {MAX_LINE} bytes"),
            Self::Binary => "the line holds binary data (a NUL byte)".into(),
            Self::NotUtf8 => "the line is not UTF-8 text".into(),
            Self::NotNetwork(w) => format!("{} is not an address or network", quote(w)),
            Self::NotAnything(w) => {
                format!("{} is not an address, network or domain name", quote(w))
            }
            Self::NotDomain(w) => format!(
                "{} is not a domain name (dot-separated labels of letters, digits and '-', \
                 each at most 63 characters, at most 253 in all)",
                quote(w)
            ),
            Self::Wildcard(w) => format!(
                "{} is a wildcard; list the domain itself, without \"*.\"",
                quote(w)
            ),
            Self::WordsForNetwork(l) => format!(
                "{} is more than one word; put one address or network on each line",
                quote(l)
            ),
            Self::WordsForDomain(l) => format!(
                "{} is more than one word; put one domain name on each line",
                quote(l)
            ),
            Self::WordsForAuto(l) => format!(
                "{} is neither one address, network or domain name nor a hosts-file line \
                 (an address followed by host names)",
                quote(l)
            ),
            Self::NotHostAddress(w) => format!("{} is not an address; {HOSTS_LINE}", quote(w)),
            Self::NoHostName(w) => {
                format!("{} has no host name after it; {HOSTS_LINE}", quote(w))
            }
        }
    }
}

/// The entry a line (comment removed, trimmed, not empty) holds, or why it holds none.
fn entry(format: Format, content: &str) -> Result<Entry, Malformed<'_>> {
    let mut words = content.split_whitespace();
    let first = words.next().unwrap_or_default();
    let more = words.clone().next().is_some();
    match format {
        Format::Plain | Format::Netset | Format::SpamhausDrop => {
            if more {
                return Err(Malformed::WordsForNetwork(content));
            }
            network(first)
                .map(Entry::Network)
                .ok_or(Malformed::NotNetwork(first))
        }
        Format::Domains => {
            if more {
                return Err(Malformed::WordsForDomain(content));
            }
            Ok(Entry::Names(domain(first)?.into_iter().collect()))
        }
        Format::Hosts => hosts_line(first, words),
        Format::Auto if more => {
            if host_address(first).is_some() {
                hosts_line(first, words)
            } else {
                Err(Malformed::WordsForAuto(content))
            }
        }
        Format::Auto => {
            if let Some(range) = network(first) {
                return Ok(Entry::Network(range));
            }
            match domain(first) {
                Ok(name) => Ok(Entry::Names(name.into_iter().collect())),
                Err(_) if looks_numeric(first) => Err(Malformed::NotNetwork(first)),
                Err(wildcard @ Malformed::Wildcard(_)) => Err(wildcard),
                Err(_) => Err(Malformed::NotAnything(first)),
            }
        }
    }
}

/// Whether a word was meant as an address rather than a name, to word the problem.
fn looks_numeric(word: &str) -> bool {
    word.contains(':') || word.contains('/') || word.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// A hosts-file line: an address, then names. The address only says where the names would
/// resolve; the names are the entries.
fn hosts_line<'a>(
    address: &'a str,
    names: impl Iterator<Item = &'a str>,
) -> Result<Entry, Malformed<'a>> {
    if host_address(address).is_none() {
        return Err(Malformed::NotHostAddress(address));
    }
    let mut out = Vec::new();
    let mut any = false;
    for name in names {
        any = true;
        if let Some(n) = domain(name)? {
            out.push(n);
        }
    }
    if !any {
        return Err(Malformed::NoHostName(address));
    }
    Ok(Entry::Names(out))
}

/// The address at the start of a hosts-file line; a zone (`fe80::1%lo0`) is allowed there.
fn host_address(word: &str) -> Option<IpAddr> {
    let address = word.split_once('%').map_or(word, |(a, _)| a);
    address.parse().ok()
}

/// An address (a /32 or /128) or a network as a range. Host bits are allowed and ignored
/// (`10.0.0.1/8` is `10.0.0.0/8`), as nft does. An IPv4-mapped IPv6 range becomes IPv4.
/// Read with the standard library's address parser and the prefix by hand (a prefix is decimal
/// digits — at most two for IPv4, three for IPv6 —, no sign, at most the family's bits): a third faster than `ipnet`'s own parser on a
/// million-line list, and the same networks.
fn network(word: &str) -> Option<Range> {
    // Every address and network is written with these; anything else is not worth parsing.
    if !word
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'/'))
    {
        return None;
    }
    let (address, prefix) = match word.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (word, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let (bits, max_digits) = if address.is_ipv4() { (32, 2) } else { (128, 3) };
    let prefix = match prefix {
        None => bits,
        Some(p) if (1..=max_digits).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u32>().ok().filter(|&n| n <= bits)?
        }
        Some(_) => return None,
    };
    Some(match address {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let start = u32::from(a) & mask;
            Range::V4(start, start | !mask)
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let (s, e) = (u128::from(a) & mask, (u128::from(a) & mask) | !mask);
            match (mapped_v4(s), mapped_v4(e)) {
                (Some(s), Some(e)) => Range::V4(s, e),
                _ => Range::V6(s, e),
            }
        }
    })
}

/// The line most network lists are made of, `a.b.c.d` or `a.b.c.d/n` and nothing else, read
/// in one pass over its bytes: `None` for anything else, which the general path then reads or
/// reports. It takes exactly what [`network`] takes of such a line (decimal octets of one to
/// three digits without a leading zero, at most 255; a prefix of one or two digits, at most 32),
/// so the fast path changes no result; a million-line list is parsed in half the time.
fn bare_ipv4(line: &[u8]) -> Option<(u32, u32)> {
    let mut address: u32 = 0;
    let mut i = 0;
    for octet in 0..4 {
        if octet > 0 {
            if line.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut value: u32 = 0;
        while let Some(&b) = line.get(i).filter(|b| b.is_ascii_digit() && i - start < 3) {
            value = value * 10 + u32::from(b - b'0');
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || value > 255 || (digits > 1 && line[start] == b'0') {
            return None;
        }
        address = address << 8 | value;
    }
    let prefix = match line.get(i) {
        None => 32,
        Some(b'/') => {
            let digits = &line[i + 1..];
            if !(1..=2).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = digits
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            if n > 32 {
                return None;
            }
            n
        }
        Some(_) => return None,
    };
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let first = address & mask;
    Some((first, first | !mask))
}

/// A domain name, lower-case without a trailing dot; `None` for hosts-file boilerplate.
fn domain(word: &str) -> Result<Option<String>, Malformed<'_>> {
    let bare = word.strip_suffix('.').unwrap_or(word);
    if HOSTS_BOILERPLATE
        .iter()
        .any(|b| b.eq_ignore_ascii_case(bare))
    {
        return Ok(None);
    }
    if word.starts_with("*.") {
        return Err(Malformed::Wildcard(word));
    }
    // The contract's grammar decides; this cheap look first spares it (and its error sentence)
    // the junk.
    let plausible = bare.len() <= 253
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !plausible {
        return Err(Malformed::NotDomain(word));
    }
    HostName::parse(bare)
        .map(|h| Some(String::from(h)))
        .map_err(|_| Malformed::NotDomain(word))
}

/// The start of a line, safe to show: invalid UTF-8 replaced, control and invisible
/// formatting characters escaped, at most [`SHOWN_CHARS`] characters.
fn shown(raw: &[u8]) -> String {
    // Four bytes per character at most, so this cut never drops a shown character.
    let head = &raw[..raw.len().min(SHOWN_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    let mut chars = text.chars();
    for c in chars.by_ref().take(SHOWN_CHARS) {
        let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if c.is_control() || invisible {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() || head.len() < raw.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    #[test]
    fn format_words_round_trip() {
        for word in ["auto", "plain", "netset", "spamhaus", "hosts", "domains"] {
            assert_eq!(Format::parse(word).map(Format::as_str).ok(), Some(word));
            let json = serde_json::to_string(&Format::parse(word).ok()).unwrap_or_default();
            assert_eq!(json, format!("\"{word}\""));
        }
        let e = Format::parse("csv").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("\"csv\" is not a blocklist format: use auto, plain, netset, spamhaus, hosts or domains")
        );
    }

    #[test]
    fn networks_are_normalized() {
        assert_eq!(
            network("10.0.0.1/8"),
            Some(Range::V4(0x0a00_0000, 0x0aff_ffff))
        );
        assert_eq!(
            network("1.2.3.4"),
            Some(Range::V4(0x0102_0304, 0x0102_0304))
        );
        assert_eq!(
            network("::ffff:1.2.3.4"),
            Some(Range::V4(0x0102_0304, 0x0102_0304))
        );
        assert_eq!(
            network("::ffff:1.2.3.0/120"),
            Some(Range::V4(0x0102_0300, 0x0102_03ff))
        );
        assert_eq!(network("::1"), Some(Range::V6(1, 1)));
        assert_eq!(
            network("2001:db8::/32").map(|r| matches!(r, Range::V6(..))),
            Some(true)
        );
        for bad in [
            "10.0.0.300",
            "1.2.3.4/33",
            "1.2.3",
            "010.0.0.1",
            "fe80::1%eth0",
            "1.2.3.4/",
            "x",
        ] {
            assert_eq!(network(bad), None, "{bad}");
        }
    }

    /// The hand-read prefix and the standard parser read exactly the networks `ipnet` (the
    /// crate the rest of the helper parses networks with) reads, host bits cleared.
    #[test]
    fn networks_are_read_as_ipnet_reads_them() {
        let words = [
            "10.0.0.1/8",
            "1.2.3.4/0",
            "1.2.3.4/32",
            "1.2.3.4/33",
            "1.2.3.4/008",
            "1.2.3.4/08",
            "1.2.3.4/00",
            "1.2.3.4/0008",
            "1.2.3.4/",
            "/8",
            "1.2.3.4/+8",
            "1.2.3.4/-1",
            "1.2.3.4//8",
            "1.2.3.4/8/8",
            "01.2.3.4",
            "1.2.3.04",
            "255.255.255.255/31",
            "0.0.0.0/0",
            "::/0",
            "::1/128",
            "::1/129",
            "2001:db8::1/33",
            "::ffff:1.2.3.4/96",
            "::ffff:1.2.3.4/95",
            "::ffff:1.2.3.0/120",
            "1:2:3:4:5:6:7:8/64",
            "1::2::3",
            "fe80::1/10",
            "1.2.3.4/a",
            "abc",
            "1.2.3.4.5",
            "::ffff:0.0.0.0/96",
            "2001:db8::/032",
        ];
        for word in words {
            let theirs: Option<IpNet> = if word.contains('/') {
                word.parse().ok()
            } else {
                word.parse::<IpAddr>().ok().map(IpNet::from)
            };
            let theirs = theirs.map(|net| match net {
                IpNet::V4(n) => Range::V4(u32::from(n.network()), u32::from(n.broadcast())),
                IpNet::V6(n) => {
                    let (s, e) = (u128::from(n.network()), u128::from(n.broadcast()));
                    match (mapped_v4(s), mapped_v4(e)) {
                        (Some(s), Some(e)) => Range::V4(s, e),
                        _ => Range::V6(s, e),
                    }
                }
            });
            assert_eq!(network(word), theirs, "{word}");
        }
    }

    /// The fast path reads what [`network`] reads, for every line it takes; lines it leaves are
    /// lines the general path reads differently or not at all (spaces, comments, IPv6, junk).
    #[test]
    fn the_fast_path_reads_what_the_general_path_reads() {
        let mut words: Vec<String> = [
            "1.2.3.4",
            "1.2.3.4/0",
            "1.2.3.4/32",
            "1.2.3.4/33",
            "1.2.3.4/08",
            "1.2.3.4/008",
            "01.2.3.4",
            "1.2.3.04",
            "0.0.0.0",
            "0.0.0.0/0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4/",
            "1.2.3.4/a",
            "1234.1.1.1",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.4#x",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "",
            "::1",
            "1.2.3.4/1/2",
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet = b"0123456789./";
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 19) as usize;
            let word: String = (0..len)
                .map(|k| char::from(alphabet[((seed >> (k * 3)) % 12) as usize]))
                .collect();
            words.push(word);
            // And near-addresses: octets up to 300, some with a leading zero, any prefix.
            let octet = |shift: u32| {
                let v = (seed >> shift) % 300;
                if (seed >> (shift + 9)).is_multiple_of(7) {
                    format!("0{v}")
                } else {
                    v.to_string()
                }
            };
            let mut near = format!("{}.{}.{}.{}", octet(0), octet(12), octet(24), octet(36));
            if !(seed >> 50).is_multiple_of(3) {
                near.push_str(&format!("/{}", (seed >> 52) % 40));
            }
            words.push(near);
        }
        let mut taken = 0;
        for word in &words {
            if let Some((first, last)) = bare_ipv4(word.as_bytes()) {
                taken += 1;
                assert_eq!(network(word), Some(Range::V4(first, last)), "{word:?}");
            }
        }
        assert!(taken >= 5_000, "the fast path took only {taken} lines");
    }

    #[test]
    fn domains_are_checked() {
        assert_eq!(
            domain("Bad.Example.COM."),
            Ok(Some("bad.example.com".into()))
        );
        assert_eq!(domain("localhost"), Ok(None));
        assert_eq!(domain("LOCALHOST.localdomain"), Ok(None));
        assert!(matches!(
            domain("*.example.com"),
            Err(Malformed::Wildcard(_))
        ));
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        for bad in [
            "a..b",
            "-a.com",
            "a_b.com",
            "1.2.3.4",
            "com",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shown_lines_are_safe() {
        assert_eq!(shown(b"a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(shown(b"\xff\x00"), "\u{fffd}\\u{0}");
        let long = shown(&[b'x'; 5000]);
        assert_eq!(long, format!("{}...", "x".repeat(SHOWN_CHARS)));
    }

    #[test]
    fn lines_are_cut_with_a_bounded_buffer() -> io::Result<()> {
        let mut input = b"a\r\nb\n\n".to_vec();
        input.extend(vec![b'z'; MAX_LINE + 1]);
        input.extend(b"\nlast");
        let mut reader = LineReader::new(&input[..]);
        let mut seen = Vec::new();
        while let Some(line) = reader.next_line()? {
            seen.push((line.bytes.len(), line.too_long));
        }
        assert_eq!(
            seen,
            vec![
                (1, false),
                (1, false),
                (0, false),
                (MAX_LINE, true),
                (4, false)
            ]
        );
        assert_eq!(reader.number, 5);
        Ok(())
    }
}
