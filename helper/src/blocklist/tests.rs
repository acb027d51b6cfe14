//! Whole-list tests: real-looking samples of every format, the refusals, and the bounds on
//! memory with generated inputs far larger than what the parser may keep.

use super::parse::{parse, Format, ParseOptions, ParsedList};
use super::ImportError;
use std::io::{self, Read};
use std::net::IpAddr;
use std::time::Instant;

fn options(format: Format) -> ParseOptions {
    ParseOptions {
        format,
        strict: false,
        force: false,
    }
}

fn parse_str(text: &str, format: Format) -> ParsedList {
    parse(text.as_bytes(), &options(format)).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(text: &[u8], options: &ParseOptions) -> ImportError {
    match parse(text, options) {
        Ok(list) => panic!("accepted: {list:?}"),
        Err(e) => e,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn v4(a: &str, b: &str) -> (u32, u32) {
    match (ip(a), ip(b)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.into(), b.into()),
        _ => panic!("not IPv4"),
    }
}

const FIREHOL_NETSET: &str = "\
#
# firehol_level1
# ipv4 hash:net ipset
#
# A firewall blacklist composed from IP lists, providing
# maximum protection with minimum false positives.
#
# Source URL: https://iplists.firehol.org/?ipset=firehol_level1
#
# Maintainer      : FireHOL
# Category        : attacks
#
0.0.0.0/8
1.10.16.0/20
1.19.0.0/16
1.32.128.0/18
10.0.0.0/8
10.20.30.0/24
100.64.0.0/10
100.128.0.0/9
";

const SPAMHAUS_DROP: &str = "\
; Spamhaus DROP List 2024/05/01 - (c) 2024 The Spamhaus Project SLL
; https://www.spamhaus.org/drop/drop.txt
; Last-Modified: Wed, 01 May 2024 12:00:00 GMT
; Expires: Wed, 01 May 2024 14:00:00 GMT
1.10.16.0/20 ; SBL256894
1.19.0.0/16 ; SBL434604
1.32.128.0/18 ; SBL286275
2.56.192.0/22 ; SBL459831
2.57.122.0/24 ; SBL636050
2.57.123.0/24 ; SBL636051
";

const HOSTS: &str = "\
# Title: StevenBlack/hosts
#
# This hosts file is a merged collection of hosts from reputable sources,
# with a dash of crowd sourcing via GitHub
#
127.0.0.1 localhost
127.0.0.1 localhost.localdomain
127.0.0.1 local
255.255.255.255 broadcasthost
::1 localhost
::1 ip6-localhost
::1 ip6-loopback
fe80::1%lo0 localhost
ff00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
ff02::3 ip6-allhosts
0.0.0.0 0.0.0.0

# Custom host records are listed here.

# End of custom host records.
# Start StevenBlack

#=====================================
0.0.0.0 ads.example.com
0.0.0.0\tTracker.Example.NET # trailing comment
0.0.0.0 a.example.org b.example.org
127.0.0.1 ads.example.com
";

#[test]
fn firehol_netset() {
    let list = parse_str(FIREHOL_NETSET, Format::Netset);
    assert_eq!(list.lines, 20);
    assert_eq!(list.entries_read, 8);
    assert!(list.problems.is_empty(), "{:?}", list.problems);
    // 10.20.30.0/24 lies inside 10.0.0.0/8; 100.64.0.0/10 ends where 100.128.0.0/9 begins.
    assert_eq!(
        list.networks.v4(),
        &[
            v4("0.0.0.0", "0.255.255.255"),
            v4("1.10.16.0", "1.10.31.255"),
            v4("1.19.0.0", "1.19.255.255"),
            v4("1.32.128.0", "1.32.191.255"),
            v4("10.0.0.0", "10.255.255.255"),
            v4("100.64.0.0", "100.255.255.255"),
        ]
    );
    assert!(list.domains.is_empty());
    // Auto reads it the same way.
    assert_eq!(parse_str(FIREHOL_NETSET, Format::Auto), list);
}

#[test]
fn spamhaus_drop() {
    let list = parse_str(SPAMHAUS_DROP, Format::SpamhausDrop);
    assert_eq!(list.entries_read, 6);
    assert!(list.problems.is_empty(), "{:?}", list.problems);
    assert_eq!(list.networks.len(), 5, "two adjacent /24s merge");
    assert!(list.networks.contains(ip("2.57.123.255")));
    assert!(!list.networks.contains(ip("2.57.124.0")));
    assert_eq!(parse_str(SPAMHAUS_DROP, Format::Auto), list);
    assert_eq!(parse_str(SPAMHAUS_DROP, Format::Plain), list);
    // The DROP list's comment style is not FireHOL's: read as a netset, nothing fits.
    let e = refusal(SPAMHAUS_DROP.as_bytes(), &options(Format::Netset));
    assert!(
        matches!(e, ImportError::NotABlocklist { malformed: 10, .. }),
        "{e}"
    );
}

#[test]
fn hosts_file() {
    let list = parse_str(HOSTS, Format::Hosts);
    assert!(list.problems.is_empty(), "{:?}", list.problems);
    assert!(
        list.networks.is_empty(),
        "a hosts file's addresses are not entries"
    );
    assert_eq!(
        list.domains,
        vec![
            "a.example.org",
            "ads.example.com",
            "b.example.org",
            "tracker.example.net"
        ]
    );
    assert_eq!(list.entries_read, 5);
    assert_eq!(parse_str(HOSTS, Format::Auto), list);
    // A bare name is not a hosts-file line.
    let e = refusal(
        b"0.0.0.0 a.example\nbad.example.com\n",
        &ParseOptions {
            strict: true,
            ..options(Format::Hosts)
        },
    );
    assert_eq!(
        e.to_string(),
        "line 2: \"bad.example.com\" is not an address; a hosts-file line is an address \
         followed by host names; nothing was imported (strict mode refuses a list with any \
         problem)"
    );
}

#[test]
fn domain_list() {
    let text = "\
# Blocklist of tracking domains
# Updated: 2024-05-01

bad.example.com
Bad.Example.com.
evil.example.org
localhost
*.wild.example.com
";
    let list = parse_str(text, Format::Domains);
    assert_eq!(list.domains, vec!["bad.example.com", "evil.example.org"]);
    assert_eq!(list.entries_read, 3);
    assert_eq!(list.problems.len(), 1);
    assert_eq!(list.problems[0].line, 8);
    assert!(
        list.problems[0].reason.contains("wildcard"),
        "{}",
        list.problems[0]
    );
    // An address is not a domain name in a domain list.
    let list = parse_str("a.example\n192.0.2.1\nb.example\n", Format::Domains);
    assert_eq!(list.problems.len(), 1);
    assert!(list.networks.is_empty());
}

#[test]
fn mixed_auto() {
    let text = "\
\u{feff}# mixed list, Windows line endings\r
192.0.2.0/24 ; TEST-NET-1\r
2001:db8::/32 # documentation\r
0.0.0.0 ads.example.com\r
tracker.example.net\r
198.51.100.7\r
::ffff:203.0.113.0/120\r
\r
";
    let list = parse_str(text, Format::Auto);
    assert!(list.problems.is_empty(), "{:?}", list.problems);
    assert_eq!(
        list.networks.v4(),
        &[
            v4("192.0.2.0", "192.0.2.255"),
            v4("198.51.100.7", "198.51.100.7"),
            v4("203.0.113.0", "203.0.113.255"),
        ]
    );
    assert_eq!(list.networks.v6().len(), 1);
    assert!(list.networks.contains(ip("2001:db8:ffff::1")));
    assert_eq!(list.domains, vec!["ads.example.com", "tracker.example.net"]);
    assert_eq!(list.lines, 8);
}

#[test]
fn problems_name_their_lines_and_the_rest_goes_on() {
    let text = "\
10.0.0.1
10.0.0.300
10.0.0.1/8
# fine
10.1.0.0/16 extra
1.2.3.4/33
-bad-.example
\x1b[31mred
192.0.2.1
192.0.2.2
192.0.2.3
";
    let list = parse_str(text, Format::Auto);
    let seen: Vec<String> = list.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        seen,
        vec![
            "line 2: \"10.0.0.300\" is not an address or network",
            "line 5: \"10.1.0.0/16 extra\" is neither one address, network or domain name nor a \
             hosts-file line (an address followed by host names)",
            "line 6: \"1.2.3.4/33\" is not an address or network",
            "line 7: \"-bad-.example\" is not an address, network or domain name",
            "line 8: \"\\u{1b}[31mred\" is not an address, network or domain name",
        ]
    );
    assert_eq!(list.problems[4].text, "\\u{1b}[31mred");
    // Host bits are forgiven, as nft does: 10.0.0.1/8 is 10.0.0.0/8.
    assert_eq!(
        list.networks.v4(),
        &[
            v4("10.0.0.0", "10.255.255.255"),
            v4("192.0.2.1", "192.0.2.3")
        ]
    );
    assert_eq!(list.entries_read, 5);
    // Binary and non-UTF-8 lines are malformed lines like any other.
    let list = parse(
        &b"10.0.0.1\n10.0.0.2\n1.2\x003.4\n\xff\xfe\n10.0.0.3\n"[..],
        &options(Format::Plain),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.problems.len(), 2);
    assert_eq!(
        list.problems[0].reason,
        "the line holds binary data (a NUL byte)"
    );
    assert_eq!(list.problems[0].text, "1.2\\u{0}3.4");
    assert_eq!(list.problems[1].reason, "the line is not UTF-8 text");
}

#[test]
fn strict_mode_refuses_at_the_first_problem() {
    let text = b"10.0.0.1\n# comment\n10.0.0.2\nnot an address\n10.0.0.300\n";
    let strict = ParseOptions {
        strict: true,
        ..options(Format::Plain)
    };
    match refusal(text, &strict) {
        ImportError::Strict { line, reason } => {
            assert_eq!(line, 4);
            assert!(reason.contains("more than one word"), "{reason}");
        }
        other => panic!("{other}"),
    }
    let e = palisade_dbus::Error::from(refusal(b"10.0.0.300\n", &strict));
    match e {
        palisade_dbus::Error::InvalidArgument(s) => assert_eq!(
            s,
            "line 1: \"10.0.0.300\" is not an address or network; nothing was imported (strict \
             mode refuses a list with any problem)"
        ),
        other => panic!("{other}"),
    }
    assert!(parse(&text[..28], &strict).is_ok());
}

#[test]
fn problems_are_capped_and_counted() {
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("10.{}.{}.0/24\n", i / 256, i % 256));
    }
    for i in 0..250 {
        text.push_str(&format!("junk {i}\n"));
    }
    let list = parse_str(&text, Format::Plain);
    assert_eq!(list.problems.len(), 100);
    assert_eq!(list.problems_not_listed, 150);
    assert_eq!(list.problems[0].line, 1001);
    assert_eq!(list.problems[99].line, 1100);
    assert_eq!(list.lines, 1250);
    // 1000 adjacent /24s from 10.0.0.0 merge into one range.
    assert_eq!(list.networks.v4(), &[v4("10.0.0.0", "10.3.231.255")]);
}

#[test]
fn junk_is_not_a_blocklist() {
    let html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n\
                 <body><h1>Not Found</h1>\n<p>192.0.2.1</p>\n</body></html>\n";
    let e = refusal(html, &options(Format::Auto));
    assert!(matches!(
        e,
        ImportError::NotABlocklist {
            malformed: 5,
            examined: 5,
            ..
        }
    ));
    assert!(
        e.to_string().starts_with(
            "this does not look like a blocklist: 5 of the first 5 lines that are not \
             comments or blank are not addresses, networks or domain names (line 1: "
        ),
        "{e}"
    );
    // Half is not more than half.
    let list = parse_str("192.0.2.1\nnot an address\n", Format::Auto);
    assert_eq!(list.problems.len(), 1);
    // Comments and blank lines do not count either way.
    let list = parse_str("# a\n# b\n\n# c\n192.0.2.1\n", Format::Auto);
    assert_eq!(list.networks.len(), 1);
    // An empty source is an empty list.
    assert_eq!(parse_str("", Format::Auto), ParsedList::default());
}

/// xorshift64*: deterministic bytes without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn binary_data_is_refused() {
    let mut rng = Rng(42);
    let mut data: Vec<u8> = (0..1 << 20).map(|_| rng.next().to_le_bytes()[3]).collect();
    // Make sure of some NULs and newlines.
    for i in (0..data.len()).step_by(97) {
        data[i] = if i % 2 == 0 { 0 } else { b'\n' };
    }
    let e = refusal(&data, &options(Format::Auto));
    assert!(matches!(e, ImportError::NotABlocklist { .. }), "{e}");
    eprintln!("binary: {e}");
}

#[test]
fn whole_families_are_refused_unless_forced() {
    for (text, family) in [
        ("0.0.0.0/0\n", "IPv4"),
        ("::/0\n", "IPv6"),
        ("0.0.0.0/1\n128.0.0.0/2\n192.0.0.0/2\n", "IPv4"),
        ("::ffff:0:0/96\n", "IPv4"),
        ("::/1 ; low half\n8000::/1 ; high half\n", "IPv6"),
    ] {
        let e = refusal(text.as_bytes(), &options(Format::Auto));
        assert!(
            matches!(e, ImportError::CoversEverything { .. }),
            "{text}: {e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("the list covers every {family} address")),
            "{e}"
        );
        assert!(e.to_string().contains("force"), "{e}");
        let forced = ParseOptions {
            force: true,
            ..options(Format::Auto)
        };
        let list = parse(text.as_bytes(), &forced).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.networks.len(), 1);
    }
    assert_eq!(
        refusal(b"0.0.0.0/0\n", &options(Format::Auto)).to_string(),
        "the list covers every IPv4 address (0.0.0.0/0), which would block all IPv4 traffic; \
         import it with force (palisadectl blocklist import --force) if that is really meant"
    );
}

/// A reader that makes its bytes as it is read, so a test can stream gigabytes without
/// holding them.
struct Generated<F> {
    left: u64,
    line: u64,
    buf: Vec<u8>,
    pos: usize,
    make: F,
}

impl<F: FnMut(u64, &mut Vec<u8>)> Generated<F> {
    fn new(total: u64, make: F) -> Self {
        Self {
            left: total,
            line: 0,
            buf: Vec::new(),
            pos: 0,
            make,
        }
    }
}

impl<F: FnMut(u64, &mut Vec<u8>)> Read for Generated<F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            (self.make)(self.line, &mut self.buf);
            self.line += 1;
        }
        let n = (self.buf.len() - self.pos)
            .min(out.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The process's peak resident memory, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/self/status"))
}

const CHILD: &str = "PALISADE_BLOCKLIST_MEMORY_CHILD";

/// Runs `body` alone in a new process of this test binary: the peak memory of a process is
/// shared by all its threads, and other tests running beside this one would move it.
fn alone(test: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_crate, rest)| rest);
    let name = format!("{module}::{test}");
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(exe)
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process:\n{stdout}"
    );
}

/// Growth allowed while streaming: the inputs are 64 and 100 MiB, so keeping either would show.
const MAX_GROWTH_KIB: u64 = 64 << 10;

#[test]
fn a_large_junk_stream_stays_bounded() {
    alone("a_large_junk_stream_stays_bounded", || {
        let before = peak_kib();
        // A thousand good lines, so the source looks like a list, then junk to 64 MiB.
        let input = Generated::new(64 << 20, |n, buf: &mut Vec<u8>| {
            if n < 1000 {
                buf.extend_from_slice(format!("192.0.2.{}\n", n % 256).as_bytes());
            } else {
                buf.extend_from_slice(
                    format!("line {n} is junk, not an address \x01 nor a domain\n").as_bytes(),
                );
            }
        });
        let started = Instant::now();
        let list = parse(input, &options(Format::Auto)).unwrap_or_else(|e| panic!("{e}"));
        let growth = peak_kib().saturating_sub(before);
        eprintln!(
            "64 MiB of junk: {} lines in {:.1} s, peak memory grew {growth} KiB",
            list.lines,
            started.elapsed().as_secs_f64()
        );
        assert!(list.lines > 1_000_000);
        assert_eq!(list.problems.len(), 100);
        assert_eq!(list.problems_not_listed, list.lines - 1000 - 100);
        assert_eq!(list.networks.v4(), &[v4("192.0.2.0", "192.0.2.255")]);
        assert!(growth < MAX_GROWTH_KIB, "grew {growth} KiB");
    });
}

#[test]
fn a_huge_line_without_newline_is_one_malformed_line() {
    alone("a_huge_line_without_newline_is_one_malformed_line", || {
        let before = peak_kib();
        let size: u64 = 100 << 20;
        let chunk = |_: u64, buf: &mut Vec<u8>| buf.extend_from_slice(&[b'a'; 64 << 10]);
        // Alone it is all the source has: refused, naming the line.
        let e = match parse(Generated::new(size, chunk), &options(Format::Auto)) {
            Err(e) => e,
            Ok(list) => panic!("accepted {list:?}"),
        };
        match &e {
            ImportError::NotABlocklist {
                malformed: 1,
                examined: 1,
                first,
            } => {
                assert_eq!(first.line, 1);
                assert_eq!(first.reason, "the line is longer than 4096 bytes");
                assert!(first.text.len() < 100, "{}", first.text);
            }
            other => panic!("{other}"),
        }
        // After a good line it is reported and skipped.
        let mut first = true;
        let input = Generated::new(size + 9, |_, buf: &mut Vec<u8>| {
            if std::mem::take(&mut first) {
                buf.extend_from_slice(b"10.0.0.1\n");
            } else {
                buf.extend_from_slice(&[b'a'; 64 << 10]);
            }
        });
        let list = parse(input, &options(Format::Auto)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.lines, 2);
        assert_eq!(list.problems.len(), 1);
        assert_eq!(list.problems[0].line, 2);
        assert_eq!(list.networks.len(), 1);
        let growth = peak_kib().saturating_sub(before);
        eprintln!("two 100 MiB lines without newline: peak memory grew {growth} KiB");
        assert!(growth < MAX_GROWTH_KIB, "grew {growth} KiB");
    });
}

#[test]
fn a_million_lines_parse_and_merge() {
    // Scattered /24s and single addresses over the whole space, in no order: the sort and merge
    // do real work.
    let input = Generated::new(u64::MAX, |n, buf: &mut Vec<u8>| {
        let x = (n.wrapping_mul(2_654_435_761) % (1 << 32)) as u32;
        let [a, b, c, d] = x.to_be_bytes();
        let line = if n % 2 == 0 {
            format!("{a}.{b}.{c}.0/24\n")
        } else {
            format!("{a}.{b}.{c}.{d} ; single\n")
        };
        buf.extend_from_slice(line.as_bytes());
    });
    let input = LimitedLines {
        inner: input,
        lines_left: 1_000_000,
    };
    let started = Instant::now();
    let list = parse(input, &options(Format::Auto)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "1,000,000 lines: parsed and merged into {} ranges in {:.0} ms",
        list.networks.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(list.lines, 1_000_000);
    assert_eq!(list.entries_read, 1_000_000);
    assert!(list.problems.is_empty());
}

/// Ends a generated stream after a number of newlines.
struct LimitedLines<R> {
    inner: R,
    lines_left: u64,
}

impl<R: Read> Read for LimitedLines<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.lines_left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(out)?;
        for (i, &b) in out[..n].iter().enumerate() {
            if b == b'\n' {
                self.lines_left -= 1;
                if self.lines_left == 0 {
                    return Ok(i + 1);
                }
            }
        }
        Ok(n)
    }
}
