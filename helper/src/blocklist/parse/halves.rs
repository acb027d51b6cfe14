//! Reading a big list file on both cores: its two halves, cut at a line's start, are parsed at
//! once and joined, which halves the longest step of a refresh of a million-line list.
//!
//! Invariants. The result is exactly [`super::parse`]'s of the same bytes, lists and problems
//! and line numbers alike: whatever the two parts cannot decide alone is read again in one
//! piece. That is every refusal (which refusal comes first depends on the order of the lines),
//! a first half with fewer than [`SNIFF_LINES`] entries to look at (whether the source is a
//! blocklist at all would depend on the second half's first lines), and a list whose halves
//! hold more than half of [`MAX_ENTRIES`] or of [`MAX_DOMAIN_BYTES`] each: so the two parts
//! together keep no more than one part would. The file is read with positioned reads from its
//! current offset, so the caller's descriptor is shared without a seek.

use super::super::ranges::union;
use super::{ImportError, MAX_PROBLEMS, SNIFF_LINES};
use super::{LineReader, ParseOptions, ParsedList, Parser, MAX_DOMAIN_BYTES, MAX_ENTRIES};
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Files smaller than this are read in one piece: a second thread would gain nothing.
const SPLIT_BYTES: u64 = 1 << 20;
/// How far past the middle a line's start is looked for; a file without one there is read in
/// one piece.
const CUT_SEARCH: u64 = 1 << 20;

/// Reads a whole list from a regular file, from its descriptor's current offset to its end.
/// The same result as [`super::parse`] of the same bytes, in about half the time on two cores.
pub fn parse_file(file: &File, options: &ParseOptions) -> Result<ParsedList, ImportError> {
    parse_in_halves(file, options, SPLIT_BYTES)
}

fn parse_in_halves(
    file: &File,
    options: &ParseOptions,
    split_bytes: u64,
) -> Result<ParsedList, ImportError> {
    let start = (&*file).stream_position()?;
    match read_halves(file, start, options, split_bytes)? {
        Some(parsed) => parsed,
        None => super::parse(Span::new(file, start, u64::MAX), options),
    }
}

/// The list read as two parts joined, or `None` where one reading must decide (see the module).
fn read_halves(
    file: &File,
    start: u64,
    options: &ParseOptions,
    split_bytes: u64,
) -> io::Result<Option<Result<ParsedList, ImportError>>> {
    let size = file.metadata()?.len();
    if size.saturating_sub(start) < split_bytes {
        return Ok(None);
    }
    let Some(cut) = line_start_after(file, start + (size - start) / 2, size)? else {
        return Ok(None);
    };
    let cancel = AtomicBool::new(false);
    let (first, second) = std::thread::scope(|s| {
        let later = std::thread::Builder::new()
            .name("list-parse".into())
            .spawn_scoped(s, || {
                part(Span::new(file, cut, u64::MAX), later_part(options), &cancel)
            });
        let Ok(later) = later else {
            return (None, None);
        };
        let first = part(Span::new(file, start, cut), first_part(options), &cancel);
        (first, later.join().ok().flatten())
    });
    let (Some((first, first_lines)), Some((second, second_lines))) = (first, second) else {
        return Ok(None);
    };
    Ok(join(first, first_lines, second).map(|joined| joined.finish(first_lines + second_lines)))
}

/// The parser of the part that starts the file: half the bounds each, so two parts keep what
/// one would.
fn first_part(options: &ParseOptions) -> Parser<'_> {
    let mut parser = Parser::new(options);
    parser.max_entries = MAX_ENTRIES / 2;
    parser.max_domain_bytes = MAX_DOMAIN_BYTES / 2;
    parser
}

/// The parser of the part after the cut: its line 1 is not the file's, and its first lines do
/// not decide whether the source is a blocklist.
fn later_part(options: &ParseOptions) -> Parser<'_> {
    let mut parser = first_part(options);
    parser.at_start = false;
    parser
}

/// Feeds every line of `input` to `parser`, or stops at the first refusal, read error or
/// cancel; a part that stops cancels the other, whose work the whole reading then redoes.
fn part<'a>(
    input: impl Read,
    mut parser: Parser<'a>,
    cancel: &AtomicBool,
) -> Option<(Parser<'a>, u64)> {
    let mut reader = LineReader::new(input);
    let fed = loop {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        match reader.next_line() {
            Ok(Some(line)) => {
                if parser.line(line.number, line.bytes, line.too_long).is_err() {
                    break false;
                }
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    if !fed {
        cancel.store(true, Ordering::Relaxed);
        return None;
    }
    // Each part sorts its own ranges on its own core; the join then only merges two runs.
    parser.v4.sort_unstable();
    parser.v6.sort_unstable();
    Some((parser, reader.number))
}

/// The second part appended to the first, as one parser that had read both; `None` when the
/// first part alone cannot say what one reading would have said of the first lines.
fn join<'a>(mut first: Parser<'a>, first_lines: u64, second: Parser<'a>) -> Option<Parser<'a>> {
    if first.examined < SNIFF_LINES {
        return None;
    }
    first.v4 = union(std::mem::take(&mut first.v4), second.v4);
    first.v6 = union(std::mem::take(&mut first.v6), second.v6);
    first.domains.extend(second.domains);
    first.domain_bytes += second.domain_bytes;
    first.entries_read += second.entries_read;
    first.examined += second.examined;
    for mut problem in second.problems {
        if first.problems.len() < MAX_PROBLEMS {
            problem.line += first_lines;
            first.problems.push(problem);
        } else {
            first.problems_not_listed += 1;
        }
    }
    first.problems_not_listed += second.problems_not_listed;
    first.max_entries = MAX_ENTRIES;
    first.max_domain_bytes = MAX_DOMAIN_BYTES;
    Some(first)
}

/// The offset just after the first line ending at or after `from`, if a line starts there
/// before the end of the file and within [`CUT_SEARCH`] bytes.
fn line_start_after(file: &File, from: u64, size: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; 64 << 10];
    let mut at = from;
    while at < size && at - from < CUT_SEARCH {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            let cut = at + i as u64 + 1;
            return Ok((cut < size).then_some(cut));
        }
        at += n as u64;
    }
    Ok(None)
}

/// The bytes of a file from `at` up to `end` (or its end), read with positioned reads.
struct Span<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl<'a> Span<'a> {
    fn new(file: &'a File, at: u64, end: u64) -> Self {
        Self { file, at, end }
    }
}

impl Read for Span<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.at);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Format};
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// An unnamed file holding `bytes` (its name is removed once it is open).
    fn file_of(bytes: &[u8]) -> io::Result<File> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("palisade-halves-{}-{n}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        f.write_all(bytes)?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }

    /// Both readings of `bytes` (split whenever the file is over 64 bytes), and whether the
    /// halves alone decided.
    fn both(bytes: &[u8], options: &ParseOptions) -> io::Result<(String, String, bool)> {
        let file = file_of(bytes)?;
        let split = format!("{:?}", parse_in_halves(&file, options, 64));
        let whole = format!("{:?}", parse(bytes, options));
        let decided = read_halves(&file, 0, options, 64)?.is_some();
        Ok((split, whole, decided))
    }

    fn options(format: Format, strict: bool) -> ParseOptions {
        ParseOptions {
            format,
            strict,
            ..ParseOptions::default()
        }
    }

    fn numbered(n: u32, every_bad: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            if every_bad.is_some_and(|k| i % k == k - 1) {
                out.extend(format!("bad line {i}\n").as_bytes());
            } else {
                out.extend(format!("10.{}.{}.0/24 # {i}\n", i >> 8 & 255, i & 255).as_bytes());
            }
        }
        out
    }

    #[test]
    fn halves_read_what_one_reading_reads() -> io::Result<()> {
        let plain = options(Format::Auto, false);
        let strict = options(Format::Auto, true);
        let hosts = options(Format::Hosts, false);
        let mut unsorted = numbered(3000, None);
        unsorted.extend(numbered(2500, Some(700)));
        let mut mostly_comments = b"# licence text\n".repeat(5000);
        mostly_comments.extend(numbered(3000, None));
        let mut junk_later = numbered(3000, None);
        junk_later.extend(b"\x00\x01 binary\n".repeat(3000));
        let mut bom = b"\xef\xbb\xbf1.2.3.4\n".to_vec();
        bom.extend(numbered(3000, Some(5)));
        bom.extend(b"\xef\xbb\xbf5.6.7.8\nno newline at the end");
        let crlf = String::from_utf8_lossy(&numbered(4000, Some(9)))
            .replace('\n', "\r\n")
            .into_bytes();
        // (what, the list, how it is read, whether the halves decide without a second reading)
        let cases: Vec<(&str, Vec<u8>, &ParseOptions, bool)> = vec![
            ("a clean list", numbered(5000, None), &plain, true),
            (
                "problems in both halves",
                numbered(5000, Some(7)),
                &plain,
                true,
            ),
            (
                "more problems than are kept",
                numbered(5000, Some(3)),
                &plain,
                true,
            ),
            (
                "strict, a problem late",
                numbered(5000, Some(4900)),
                &strict,
                false,
            ),
            ("two sorted runs", unsorted, &plain, true),
            (
                "few entries in the first half",
                mostly_comments,
                &plain,
                false,
            ),
            ("junk in the second half", junk_later, &plain, true),
            ("junk only", b"\x00junk\n".repeat(9000), &plain, false),
            ("byte order marks and a last line", bom, &plain, true),
            ("crlf", crlf, &plain, true),
            (
                "domains",
                b"0.0.0.0 a.example\n0.0.0.0 b.example\n".repeat(2000),
                &hosts,
                true,
            ),
            ("one long line", vec![b'x'; 9000], &plain, false),
        ];
        for (what, bytes, options, decides) in cases {
            let (split, whole, decided) = both(&bytes, options)?;
            assert_eq!(split, whole, "{what}");
            assert_eq!(decided, decides, "{what}");
        }
        Ok(())
    }

    #[test]
    fn problems_keep_their_line_numbers() -> io::Result<()> {
        let bytes = numbered(5000, Some(1000));
        let file = file_of(&bytes)?;
        let parsed = read_halves(&file, 0, &options(Format::Plain, false), 64)?
            .ok_or_else(|| io::Error::other("read in one piece"))?
            .map_err(io::Error::other)?;
        let lines: Vec<u64> = parsed.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![1000, 2000, 3000, 4000, 5000]);
        assert_eq!(parsed.lines, 5000);
        Ok(())
    }

    #[test]
    fn reading_starts_at_the_descriptors_offset() -> io::Result<()> {
        let mut bytes = b"not a network at all\n".to_vec();
        let skipped = bytes.len() as u64;
        bytes.extend(numbered(4000, None));
        let mut file = file_of(&bytes)?;
        file.seek(SeekFrom::Start(skipped))?;
        let parsed =
            parse_in_halves(&file, &options(Format::Plain, true), 64).map_err(io::Error::other)?;
        assert_eq!(parsed.lines, 4000);
        assert_eq!(parsed.entries_read, 4000);
        Ok(())
    }
}
