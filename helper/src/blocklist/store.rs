//! Imported lists on disk, one pair of files per list in one folder (the helper's
//! `<state>/lists`, mode 0700, files 0600, owned by root as the helper is).
//!
//! `<name>.json` is the list's record ([`ListMeta`]): where it came from, how it was read, what
//! it holds, and the SHA-256 of its data. `<name>.<hash>.data` is the data, named by the first 16
//! hex digits of that hash, in the binary format below. When a save replaces a version,
//! `<name>.<old>-<new>.diff` holds the ranges that turn the old version into the new one (two
//! sections in the data format: removed, then added), so a kernel set holding the old version
//! is updated by the difference instead of being reloaded. Saving writes the data and difference
//! files first and the record second, each atomically (temporary file, fsync, rename), then
//! removes the list's older data and difference files. So the record always names a complete data file: a crash at any point leaves the
//! old list or the new one, never a mix, and at worst an unreferenced data file that the next
//! save or removal of that list deletes. Loading checks the hash, so damage is an error, never a
//! wrong list. Names are [`ShortName`]s (`[a-z][a-z0-9_-]*`), safe in file names and in nft set
//! names.
//!
//! The data format (little-endian throughout), version 1:
//!
//! ```text
//! magic      8 bytes  "PALBLOCK"
//! version    u8       1
//! v4 count   u64      then per range: start u32, end u32 (inclusive)
//! v6 count   u64      then per range: start u128, end u128 (inclusive)
//! name count u64      then per name: length u8 (1..=253), that many bytes of ASCII
//! ```
//!
//! Nothing follows. Ranges satisfy [`NetworkList`]'s invariant and names are sorted, distinct,
//! valid lower-case domain names, so one list has exactly one encoding and its hash changes
//! exactly when its contents do (a refresh compares hashes). Reading checks every count against
//! the bytes left and [`MAX_ENTRIES`] before it reserves memory, and every value against the
//! invariants, so a damaged or truncated file is an error, never a panic or a huge allocation.
//!
//! One caller at a time: the helper serializes list operations.

use super::parse::{Format, ParseOptions, ParsedList, Problem, MAX_ENTRIES};
use super::ranges::{diff, NetworkList, RangeDiff, SHARD_RANGES};
use crate::store::write_atomic;
use palisade_dbus::policy::{HostName, ShortName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, BufReader, Read};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The data file's first bytes.
const MAGIC: &[u8; 8] = b"PALBLOCK";
/// The data format's version; a reader refuses others.
const VERSION: u8 = 1;
/// Problems kept in a record for display.
pub const PROBLEMS_KEPT: usize = 20;
/// Largest record read back (20 problems of shortened lines are a few KB).
const MAX_META_BYTES: u64 = 1 << 20;
/// Hex digits of the hash in a data file's name.
const HASH_IN_NAME: usize = 16;

/// Where a list comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ListSource {
    /// A file the caller handed over; it cannot be read again, so such a list is never
    /// refreshed.
    File {
        /// What the caller called it (its file name), for display only.
        label: String,
    },
    /// A download, read again on a schedule.
    Url {
        /// The address.
        url: String,
        /// Seconds between refreshes.
        refresh_seconds: u64,
        /// The server's `ETag` from the last download, for a conditional request.
        etag: Option<String>,
        /// The server's `Last-Modified` from the last download.
        last_modified: Option<String>,
    },
}

/// A list's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeta {
    /// Its name, which the policy uses.
    pub name: ShortName,
    /// Where it comes from.
    pub source: ListSource,
    /// The format it is read as.
    pub format: Format,
    /// Whether a problem refuses the list.
    pub strict: bool,
    /// Whether a list covering a whole family was accepted (a refresh reads it the same way).
    pub forced: bool,
    /// When it was first imported, Unix seconds.
    pub imported_at: u64,
    /// When its source was last read, Unix seconds (the import time until a refresh).
    pub refreshed_at: u64,
    /// Merged ranges, both families.
    pub networks: u64,
    /// IPv4 addresses covered.
    pub addresses_v4: u64,
    /// IPv6 addresses covered (saturating at 2^128 - 1), written as a decimal string because
    /// JSON readers lose precision above 2^53.
    #[serde(with = "decimal_string")]
    pub addresses_v6: u128,
    /// Distinct domain names.
    pub domains: u64,
    /// Lines the source had.
    pub lines: u64,
    /// The first [`PROBLEMS_KEPT`] lines skipped.
    pub problems: Vec<Problem>,
    /// Lines skipped beyond those.
    pub problems_not_listed: u64,
    /// `sha256:` and the hex SHA-256 of the data file, which is canonical (see the module).
    pub content_hash: String,
    /// The version this one replaced, when the store holds the difference between the two (a
    /// kernel set holding that version is brought up to date by it, in one transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousVersion>,
    /// Where the IPv4 ranges are cut into kernel sets ([`SHARD_RANGES`] ranges each): the
    /// firewall loads a new version into sets cut there. Missing in records written before
    /// there were cuts: one set per family.
    #[serde(default)]
    pub splits_v4: Vec<Ipv4Addr>,
    /// Where the IPv6 ranges are cut.
    #[serde(default)]
    pub splits_v6: Vec<Ipv6Addr>,
}

/// The version a list replaced, and the size of the difference the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousVersion {
    /// Its content hash (`sha256:` and hex).
    pub content_hash: String,
    /// Ranges to delete to get from it to the current version.
    pub removed: u64,
    /// Ranges to add after that.
    pub added: u64,
    /// `sha256:` and the hex SHA-256 of the difference file.
    pub diff_hash: String,
}

impl PreviousVersion {
    /// Ranges the difference changes.
    pub fn changed(&self) -> u64 {
        self.removed.saturating_add(self.added)
    }
}

/// The difference between two versions of a list, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDiff {
    /// The version it starts from (`sha256:` and hex).
    pub from: String,
    /// The version it leads to: the list's current one.
    pub to: String,
    /// What to delete, then add.
    pub ranges: RangeDiff,
}

impl ListMeta {
    /// The record of a freshly read list; the counts and hash are filled in by
    /// [`ListStore::save`].
    pub fn new(
        name: ShortName,
        source: ListSource,
        options: &ParseOptions,
        parsed: &ParsedList,
        now: u64,
    ) -> Self {
        let kept = parsed.problems.len().min(PROBLEMS_KEPT);
        Self {
            name,
            source,
            format: options.format,
            strict: options.strict,
            forced: options.force,
            imported_at: now,
            refreshed_at: now,
            networks: 0,
            addresses_v4: 0,
            addresses_v6: 0,
            domains: 0,
            lines: parsed.lines,
            problems: parsed.problems[..kept].to_vec(),
            problems_not_listed: parsed.problems_not_listed + (parsed.problems.len() - kept) as u64,
            content_hash: String::new(),
            previous: None,
            splits_v4: Vec::new(),
            splits_v6: Vec::new(),
        }
    }

    /// How the list is read again on a refresh.
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            format: self.format,
            strict: self.strict,
            force: self.forced,
        }
    }
}

mod decimal_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A list read back whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredList {
    /// Its record.
    pub meta: ListMeta,
    /// Its networks.
    pub networks: NetworkList,
    /// Its domain names, sorted.
    pub domains: Vec<String>,
}

/// The version of a list a save will replace, read beforehand (see [`ListStore::current`]).
#[derive(Debug)]
pub struct Current {
    meta: ListMeta,
    /// Its networks, or why they cannot be had (then no difference is kept).
    networks: Result<NetworkList, StoreError>,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No list has that name.
    #[error("there is no imported blocklist named {0}")]
    NotFound(ShortName),
    /// A list's files are damaged.
    #[error("the stored blocklist {name} is damaged ({reason}); import it again")]
    Corrupt {
        /// The list.
        name: ShortName,
        /// What is wrong.
        reason: String,
    },
    /// The file system refused.
    #[error("cannot read or write the blocklist store: {0}")]
    Io(#[from] io::Error),
}

impl From<StoreError> for palisade_dbus::Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => palisade_dbus::Error::NotFound(e.to_string()),
            // Damage and I/O failures are the machine's, not the caller's.
            StoreError::Corrupt { .. } | StoreError::Io(_) => {
                palisade_dbus::Error::Internal(e.to_string())
            }
        }
    }
}

/// The folder of imported lists.
#[derive(Debug, Clone)]
pub struct ListStore {
    dir: PathBuf,
}

impl ListStore {
    /// Opens (creating if needed) the folder, root only: lists show what is blocked.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn meta_path(&self, name: &ShortName) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn data_path(&self, name: &ShortName, content_hash: &str) -> PathBuf {
        self.dir
            .join(format!("{name}.{}.data", short_hash(content_hash)))
    }

    fn diff_path(&self, name: &ShortName, from: &str, to: &str) -> PathBuf {
        self.dir.join(format!(
            "{name}.{}-{}.diff",
            short_hash(from),
            short_hash(to)
        ))
    }

    /// Stores a list, replacing any list of that name. The record's counts and hash are set
    /// from the contents; the stored record is returned. When the contents change, the
    /// difference from the version replaced is kept beside them (see the module).
    pub fn save(
        &self,
        meta: ListMeta,
        networks: &NetworkList,
        domains: &[String],
    ) -> Result<ListMeta, StoreError> {
        let current = self.current(&meta.name);
        self.save_over(meta, networks, domains, current)
    }

    /// The version of list `name` stored now, read whole (hash-checked), or None if there is
    /// none. Read by the caller of [`ListStore::save_over`] while it parses the next version:
    /// the two take about as long, and the helper has a core for each.
    pub fn current(&self, name: &ShortName) -> Option<Current> {
        let meta = self.meta(name).ok()?;
        let networks = self.read_data(&meta).map(|(networks, _)| networks);
        Some(Current { meta, networks })
    }

    /// [`ListStore::save`] with the version it replaces read beforehand by
    /// [`ListStore::current`]; the caller holds the list's lock between the two, so that it is
    /// still the stored one.
    pub fn save_over(
        &self,
        mut meta: ListMeta,
        networks: &NetworkList,
        domains: &[String],
        current: Option<Current>,
    ) -> Result<ListMeta, StoreError> {
        // The new version's bytes and hash on one core, its difference from the stored
        // version on the other (wasted only when the two are the same).
        let ((bytes, hash), difference) = {
            let before = current.as_ref().and_then(|c| c.networks.as_ref().ok());
            on_two_cores(
                || {
                    let bytes = encode(networks, domains);
                    let hash = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
                    (bytes, hash)
                },
                || {
                    before.map(|before| {
                        let ranges = diff(before, networks);
                        let (removed, added) = (ranges.removed.len(), ranges.added.len());
                        (encode_diff(&ranges), removed as u64, added as u64)
                    })
                },
            )?
        };
        meta.content_hash = hash;
        meta.networks = networks.len() as u64;
        meta.addresses_v4 = networks.addresses_v4();
        meta.addresses_v6 = networks.addresses_v6();
        meta.domains = domains.len() as u64;
        meta.splits_v4 = networks.split_points_v4(SHARD_RANGES);
        meta.splits_v6 = networks.split_points_v6(SHARD_RANGES);
        let data = self.data_path(&meta.name, &meta.content_hash);
        let mut keep = vec![data.clone()];
        let mut diff_file = None;
        meta.previous = match (current, difference) {
            // The same contents again: the difference kept still leads to them.
            (Some(Current { meta: old, .. }), _) if old.content_hash == meta.content_hash => {
                old.previous
            }
            (Some(Current { meta: old, .. }), Some((diff_bytes, removed, added))) => {
                let path = self.diff_path(&meta.name, &old.content_hash, &meta.content_hash);
                let previous = PreviousVersion {
                    content_hash: old.content_hash,
                    removed,
                    added,
                    diff_hash: format!("sha256:{}", hex(&Sha256::digest(&diff_bytes))),
                };
                diff_file = Some((path, diff_bytes));
                Some(previous)
            }
            // Without the old contents there is no difference: a set holding them is
            // reloaded instead.
            (
                Some(Current {
                    meta: old,
                    networks: Err(e),
                }),
                _,
            ) => {
                tracing::warn!("blocklist {}: no difference kept: {e}", old.name);
                None
            }
            _ => None,
        };
        if let Some(p) = &meta.previous {
            keep.push(self.diff_path(&meta.name, &p.content_hash, &meta.content_hash));
        }
        // The data and the difference are written (and synced) at once; the record, written
        // after both, is what makes them the list.
        let (data_written, diff_written) = on_two_cores(
            || write_atomic(&data, &bytes, 0o600),
            || match &diff_file {
                Some((path, diff_bytes)) => write_atomic(path, diff_bytes, 0o600),
                None => Ok(()),
            },
        )?;
        data_written?;
        diff_written?;
        drop(bytes);
        self.write_meta(&meta)?;
        self.remove_files(&meta.name, &keep)?;
        Ok(meta)
    }

    /// Rewrites a list's record without touching its data (a refresh that found the source
    /// unchanged). The record must describe the stored data: same hash.
    pub fn update_meta(&self, meta: &ListMeta) -> Result<(), StoreError> {
        let current = self.meta(&meta.name)?;
        if current.content_hash != meta.content_hash {
            return Err(StoreError::Io(io::Error::other(format!(
                "the new record of {} does not describe its stored data",
                meta.name
            ))));
        }
        self.write_meta(meta)
    }

    fn write_meta(&self, meta: &ListMeta) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        write_atomic(&self.meta_path(&meta.name), &json, 0o600)?;
        Ok(())
    }

    /// A list's record.
    pub fn meta(&self, name: &ShortName) -> Result<ListMeta, StoreError> {
        let file = match fs::File::open(self.meta_path(name)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            name: name.clone(),
            reason,
        };
        let mut bytes = Vec::new();
        file.take(MAX_META_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_META_BYTES {
            return Err(corrupt("its record is too large".into()));
        }
        let meta: ListMeta = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("its record cannot be read: {e}")))?;
        if &meta.name != name {
            return Err(corrupt(format!("its record names {}", meta.name)));
        }
        // Hashes name the data and difference files: only hex digits may reach a path.
        if !is_hash(&meta.content_hash) {
            return Err(corrupt("its record has no valid content hash".into()));
        }
        if let Some(p) = &meta.previous {
            if !is_hash(&p.content_hash) || !is_hash(&p.diff_hash) {
                return Err(corrupt(
                    "its record names its previous version wrongly".into(),
                ));
            }
        }
        Ok(meta)
    }

    /// A list whole: record, networks and names.
    pub fn load(&self, name: &ShortName) -> Result<StoredList, StoreError> {
        let meta = self.meta(name)?;
        let (networks, domains) = self.read_data(&meta)?;
        Ok(StoredList {
            meta,
            networks,
            domains,
        })
    }

    /// The data file `meta` names, checked against its hash.
    fn read_data(&self, meta: &ListMeta) -> Result<(NetworkList, Vec<String>), StoreError> {
        let path = self.data_path(&meta.name, &meta.content_hash);
        let contents = read_checked(&path, &meta.content_hash, |reader, len| {
            let section = decode_section(reader, len)?;
            expect_end(reader)?;
            Ok(section)
        });
        contents.map_err(|e| e.about(&meta.name, "data"))
    }

    /// The difference from the version a list replaced to its current one, if the store keeps
    /// one.
    pub fn load_diff(&self, name: &ShortName) -> Result<Option<StoredDiff>, StoreError> {
        let meta = self.meta(name)?;
        let Some(previous) = &meta.previous else {
            return Ok(None);
        };
        let path = self.diff_path(name, &previous.content_hash, &meta.content_hash);
        let (removed, added) = read_checked(&path, &previous.diff_hash, |reader, len| {
            let (removed, _) = decode_section(reader, len)?;
            let (added, _) = decode_section(reader, len)?;
            expect_end(reader)?;
            Ok((removed, added))
        })
        .map_err(|e| e.about(name, "difference"))?;
        if removed.len() as u64 != previous.removed || added.len() as u64 != previous.added {
            return Err(StoreError::Corrupt {
                name: name.clone(),
                reason: "its difference file does not match its record".into(),
            });
        }
        Ok(Some(StoredDiff {
            from: previous.content_hash.clone(),
            to: meta.content_hash.clone(),
            ranges: RangeDiff { removed, added },
        }))
    }

    /// Every list's record, by name. Records that cannot be read are skipped and logged.
    pub fn list(&self) -> Result<Vec<ListMeta>, StoreError> {
        let mut names: Vec<ShortName> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                ShortName::parse(file.strip_suffix(".json")?).ok()
            })
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.meta(&name) {
                Ok(m) => out.push(m),
                Err(e) => tracing::warn!("blocklist {name}: skipped: {e}"),
            }
        }
        Ok(out)
    }

    /// Deletes a list; `false` if there was none. The record goes first, so a crash halfway
    /// leaves only an unreferenced data file.
    pub fn remove(&self, name: &ShortName) -> Result<bool, StoreError> {
        let existed = match fs::remove_file(self.meta_path(name)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        self.remove_files(name, &[])?;
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(existed)
    }

    /// Removes `name`'s data and difference files other than those in `keep`.
    fn remove_files(&self, name: &ShortName, keep: &[PathBuf]) -> Result<(), StoreError> {
        // Names hold no '.', so "<name>." starts only this list's files.
        let prefix = format!("{name}.");
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if file.starts_with(&prefix)
                && (file.ends_with(".data") || file.ends_with(".diff"))
                && !keep.contains(&entry.path())
            {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The data file's bytes (see the module for the format).
fn encode(networks: &NetworkList, domains: &[String]) -> Vec<u8> {
    let size = MAGIC.len()
        + 1
        + 8 * 3
        + networks.v4().len() * 8
        + networks.v6().len() * 32
        + domains.iter().map(|d| 1 + d.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(networks.v4().len() as u64).to_le_bytes());
    for &(s, e) in networks.v4() {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    out.extend_from_slice(&(networks.v6().len() as u64).to_le_bytes());
    for &(s, e) in networks.v6() {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    out.extend_from_slice(&(domains.len() as u64).to_le_bytes());
    for d in domains {
        // Names come from the parser, at most 253 bytes; the reader refuses anything longer.
        let len = u8::try_from(d.len()).unwrap_or(u8::MAX);
        out.push(len);
        out.extend_from_slice(&d.as_bytes()[..usize::from(len)]);
    }
    out
}

/// Why a data file could not be read.
enum Decode {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Decode {
    fn from(e: io::Error) -> Self {
        Decode::Io(e)
    }
}

/// A reader that hashes what it reads, in the buffer's big chunks (the decoder's reads are a
/// few bytes each: hashing each of those alone made reading a million ranges several times
/// slower), and counts what the decoder took.
struct HashingReader<R> {
    inner: BufReader<Hashed<R>>,
    read: u64,
}

/// The bytes of `inner`, hashed as they are read.
struct Hashed<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: BufReader::with_capacity(
                64 << 10,
                Hashed {
                    inner,
                    hasher: Sha256::new(),
                },
            ),
            read: 0,
        }
    }

    /// The SHA-256 of the whole source: what the decoder left is read first.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self.inner, &mut io::sink())?;
        Ok(format!(
            "sha256:{}",
            hex(&self.inner.into_inner().hasher.finalize())
        ))
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read_exact(&mut b)?;
        Ok(b)
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads `n` records of `N` bytes, handing each to `each`. Read a buffer at a time: a
    /// read per field made reading a million ranges several times slower.
    fn records<const N: usize>(
        &mut self,
        n: usize,
        mut each: impl FnMut(&[u8; N]),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; (64 << 10) / N * N];
        let mut left = n;
        while left > 0 {
            let take = left.min(buf.len() / N);
            let chunk = &mut buf[..take * N];
            self.read_exact(chunk)?;
            for record in chunk.as_chunks::<N>().0 {
                each(record);
            }
            left -= take;
        }
        Ok(())
    }

    /// A count of `item_size`-byte items, checked against the bytes left in a file of
    /// `len` bytes and against the entry bound, so it is safe to reserve.
    fn count(&mut self, item_size: u64, len: u64, what: &str) -> Result<usize, Decode> {
        let n = self.u64()?;
        let left = len.saturating_sub(self.read);
        if n > MAX_ENTRIES || n.saturating_mul(item_size) > left {
            return Err(Decode::Bad(format!(
                "claims {n} {what}, more than it holds"
            )));
        }
        usize::try_from(n).map_err(|_| Decode::Bad(format!("claims {n} {what}")))
    }
}

/// One section in the data format: header, networks, names. A data file is one section; a
/// difference file two (removed, then added), each without names.
fn decode_section<R: Read>(
    r: &mut HashingReader<R>,
    len: u64,
) -> Result<(NetworkList, Vec<String>), Decode> {
    if &r.array::<8>()? != MAGIC {
        return Err(Decode::Bad("is not a Palisade blocklist".into()));
    }
    let [version] = r.array::<1>()?;
    if version != VERSION {
        return Err(Decode::Bad(format!(
            "has format version {version}, this helper reads {VERSION}"
        )));
    }
    let n = r.count(8, len, "IPv4 ranges")?;
    let mut v4 = Vec::with_capacity(n);
    r.records(n, |b: &[u8; 8]| {
        let (start, end) = b.split_at(4);
        v4.push((u32_le(start), u32_le(end)));
    })?;
    let n = r.count(32, len, "IPv6 ranges")?;
    let mut v6 = Vec::with_capacity(n);
    r.records(n, |b: &[u8; 32]| {
        let (start, end) = b.split_at(16);
        v6.push((u128_le(start), u128_le(end)));
    })?;
    let networks = NetworkList::from_merged(v4, v6)
        .map_err(|family| Decode::Bad(format!("has unmerged {family:?} ranges")))?;
    // At least two bytes a name (length and one character).
    let n = r.count(2, len, "domain names")?;
    let mut domains: Vec<String> = Vec::with_capacity(n);
    let mut buf = [0u8; 255];
    for _ in 0..n {
        let [l] = r.array::<1>()?;
        let name = &mut buf[..usize::from(l)];
        r.read_exact(name)?;
        let Some(s) = std::str::from_utf8(name)
            .ok()
            .filter(|s| HostName::parse(s).is_ok_and(|h| h.as_str() == *s))
        else {
            return Err(Decode::Bad("has a bad domain name".into()));
        };
        if let Some(prev) = domains.last() {
            if prev.as_str() >= s {
                return Err(Decode::Bad("has unsorted domain names".into()));
            }
        }
        domains.push(s.to_owned());
    }
    Ok((networks, domains))
}

/// A little-endian `u32` from the start of `b` (4 bytes long where it is called).
fn u32_le(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// A little-endian `u128` from the start of `b` (16 bytes long where it is called).
fn u128_le(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_le_bytes(a)
}

fn expect_end<R: Read>(r: &mut HashingReader<R>) -> Result<(), Decode> {
    let mut extra = [0u8; 1];
    if r.read(&mut extra)? != 0 {
        return Err(Decode::Bad("has bytes after its end".into()));
    }
    Ok(())
}

/// Reads the file at `path` with `decode`, then checks its SHA-256 against `hash`.
fn read_checked<T>(
    path: &Path,
    hash: &str,
    decode: impl FnOnce(&mut HashingReader<fs::File>, u64) -> Result<T, Decode>,
) -> Result<T, ReadError> {
    let file = fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Bad("is missing".into()),
        _ => ReadError::Io(e),
    })?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    let mut reader = HashingReader::new(file);
    let value = decode(&mut reader, len).map_err(|e| match e {
        Decode::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            ReadError::Bad("is truncated".into())
        }
        Decode::Io(e) => ReadError::Io(e),
        Decode::Bad(reason) => ReadError::Bad(reason),
    })?;
    if reader.finish().map_err(ReadError::Io)? != hash {
        return Err(ReadError::Bad("does not match its record's hash".into()));
    }
    Ok(value)
}

/// Why [`read_checked`] failed: the file system, or the file.
enum ReadError {
    Io(io::Error),
    Bad(String),
}

impl ReadError {
    /// As the store reports it, for `name`'s `what` file.
    fn about(self, name: &ShortName, what: &str) -> StoreError {
        match self {
            ReadError::Io(e) => StoreError::Io(e),
            ReadError::Bad(reason) => StoreError::Corrupt {
                name: name.clone(),
                reason: format!("its {what} file {reason}"),
            },
        }
    }
}

/// Writes `ranges` to `path` in the store's difference format (atomically); returns the hash
/// [`read_difference`] checks. For the data path, which keeps what its overlay sets hold.
pub fn write_difference(path: &Path, ranges: &RangeDiff) -> io::Result<String> {
    let bytes = encode_diff(ranges);
    write_atomic(path, &bytes, 0o600)?;
    Ok(format!("sha256:{}", hex(&Sha256::digest(&bytes))))
}

/// Reads back what [`write_difference`] wrote, if the file is whole and its hash is `hash`;
/// the sentence says what is wrong otherwise.
pub fn read_difference(path: &Path, hash: &str) -> Result<RangeDiff, String> {
    read_checked(path, hash, |reader, len| {
        let (removed, _) = decode_section(reader, len)?;
        let (added, _) = decode_section(reader, len)?;
        expect_end(reader)?;
        Ok(RangeDiff { removed, added })
    })
    .map_err(|e| match e {
        ReadError::Io(e) => format!("{} cannot be read: {e}", path.display()),
        ReadError::Bad(reason) => format!("{} {reason}", path.display()),
    })
}

/// `a` on another thread while `b` runs on this one: the two cores of a save.
fn on_two_cores<A: Send, B>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> io::Result<(A, B)> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new().spawn_scoped(s, a)?;
        let b = b();
        match handle.join() {
            Ok(a) => Ok((a, b)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The difference file's bytes: the removed ranges, then the added ones, each a section.
fn encode_diff(ranges: &RangeDiff) -> Vec<u8> {
    let mut out = encode(&ranges.removed, &[]);
    out.extend_from_slice(&encode(&ranges.added, &[]));
    out
}

/// Whether `s` is `sha256:` and 64 hex digits.
fn is_hash(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A content hash's hex digits, without `sha256:` (as the compiler and the data path carry it).
pub fn hex_digits(content_hash: &str) -> &str {
    content_hash.strip_prefix("sha256:").unwrap_or(content_hash)
}

fn short_hash(content_hash: &str) -> &str {
    let hex = hex_digits(content_hash);
    hex.get(..HASH_IN_NAME).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!(
                "palisade-lists-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&d);
            Self(d)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn name(s: &str) -> ShortName {
        ShortName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn meta(n: &str) -> ListMeta {
        ListMeta::new(
            name(n),
            ListSource::Url {
                url: "https://lists.example/drop.txt".into(),
                refresh_seconds: 86_400,
                etag: Some("\"abc\"".into()),
                last_modified: None,
            },
            &ParseOptions {
                format: Format::SpamhausDrop,
                strict: false,
                force: false,
            },
            &ParsedList {
                lines: 3,
                problems: (1..=30)
                    .map(|line| Problem {
                        line,
                        reason: "bad".into(),
                        text: "x".into(),
                    })
                    .collect(),
                problems_not_listed: 5,
                ..ParsedList::default()
            },
            1_700_000_000,
        )
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn round_trips_and_replaces() -> Result<(), StoreError> {
        let t = TempDir::new("rt");
        let store = ListStore::open(&t.0)?;
        assert_eq!(fs::metadata(&t.0)?.permissions().mode() & 0o777, 0o700);
        let networks =
            NetworkList::from_ranges(vec![(1, 2), (10, 20)], vec![(5, 5), (0, 1 << 100)]);
        let domains = vec!["a.example".to_string(), "b.example".to_string()];
        let saved = store.save(meta("drop"), &networks, &domains)?;
        assert_eq!(saved.networks, 3);
        assert_eq!(saved.addresses_v4, 13);
        assert_eq!(saved.addresses_v6, (1 << 100) + 1);
        assert_eq!(saved.domains, 2);
        assert_eq!(saved.problems.len(), PROBLEMS_KEPT);
        assert_eq!(saved.problems_not_listed, 15);
        assert!(saved.content_hash.starts_with("sha256:") && saved.content_hash.len() == 71);
        let back = store.load(&name("drop"))?;
        assert_eq!(back.meta, saved);
        assert_eq!(back.networks, networks);
        assert_eq!(back.domains, domains);
        for f in files(&t.0) {
            let mode = fs::metadata(t.0.join(&f))?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        // The same contents hash the same; other contents replace the old data file.
        let again = store.save(meta("drop"), &networks, &domains)?;
        assert_eq!(again.content_hash, saved.content_hash);
        let other = store.save(meta("drop"), &NetworkList::default(), &[])?;
        assert_ne!(other.content_hash, saved.content_hash);
        // Record, data and the difference from the version before.
        assert_eq!(files(&t.0).len(), 3, "{:?}", files(&t.0));
        assert_eq!(store.load(&name("drop"))?.networks, NetworkList::default());
        // A refresh that found nothing new rewrites the record only.
        let mut refreshed = other.clone();
        refreshed.refreshed_at += 60;
        store.update_meta(&refreshed)?;
        assert_eq!(
            store.meta(&name("drop"))?.refreshed_at,
            other.refreshed_at + 60
        );
        assert!(store.update_meta(&saved).is_err());
        // The record survives JSON with its big number as text.
        let json = fs::read_to_string(t.0.join("drop.json"))?;
        assert!(json.contains("\"addresses_v6\": \"0\""), "{json}");
        assert!(json.contains("\"format\": \"spamhaus\""), "{json}");
        Ok(())
    }

    #[test]
    fn a_changed_version_keeps_the_difference_from_the_one_before() -> Result<(), StoreError> {
        let t = TempDir::new("diff");
        let store = ListStore::open(&t.0)?;
        let first = NetworkList::from_ranges(vec![(1, 2), (10, 20), (30, 40)], vec![(5, 5)]);
        let second = NetworkList::from_ranges(vec![(1, 2), (10, 21), (50, 60)], vec![(5, 5)]);
        let saved = store.save(meta("drop"), &first, &[])?;
        assert_eq!(saved.previous, None);
        assert_eq!(store.load_diff(&name("drop"))?, None);
        let changed = store.save(meta("drop"), &second, &[])?;
        let previous = changed
            .previous
            .clone()
            .unwrap_or_else(|| panic!("no previous"));
        assert_eq!(previous.content_hash, saved.content_hash);
        assert_eq!(
            (previous.removed, previous.added, previous.changed()),
            (2, 2, 4)
        );
        let d = store
            .load_diff(&name("drop"))?
            .unwrap_or_else(|| panic!("no difference"));
        assert_eq!(
            (d.from.as_str(), d.to.as_str()),
            (saved.content_hash.as_str(), changed.content_hash.as_str())
        );
        assert_eq!(d.ranges.removed.v4(), &[(10, 20), (30, 40)]);
        assert_eq!(d.ranges.added.v4(), &[(10, 21), (50, 60)]);
        assert!(d.ranges.removed.v6().is_empty() && d.ranges.added.v6().is_empty());

        // Saving the same contents again keeps the difference; a third version replaces it.
        let again = store.save(meta("drop"), &second, &[])?;
        assert_eq!(again.previous, changed.previous);
        assert!(store.load_diff(&name("drop"))?.is_some());
        let third = store.save(meta("drop"), &first, &[])?;
        let d = store
            .load_diff(&name("drop"))?
            .unwrap_or_else(|| panic!("no difference"));
        assert_eq!(
            (d.from.as_str(), d.to.as_str()),
            (changed.content_hash.as_str(), third.content_hash.as_str())
        );
        let diffs: Vec<String> = files(&t.0)
            .into_iter()
            .filter(|f| f.ends_with(".diff"))
            .collect();
        assert_eq!(diffs.len(), 1, "{diffs:?}");

        // A damaged difference is an error, never a wrong update.
        let path = t.0.join(&diffs[0]);
        let mut bytes = fs::read(&path)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes)?;
        assert!(matches!(
            store.load_diff(&name("drop")),
            Err(StoreError::Corrupt { .. })
        ));
        fs::remove_file(&path)?;
        assert!(matches!(
            store.load_diff(&name("drop")),
            Err(StoreError::Corrupt { .. })
        ));

        // A record whose previous version is not a hash never reaches a path.
        let mut bad = store.meta(&name("drop"))?;
        if let Some(p) = &mut bad.previous {
            p.content_hash = "sha256:../../etc".into();
        }
        fs::write(
            t.0.join("drop.json"),
            serde_json::to_vec(&bad).map_err(io::Error::other)?,
        )?;
        assert!(matches!(
            store.meta(&name("drop")),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(store.remove(&name("drop"))?);
        assert!(files(&t.0).is_empty(), "{:?}", files(&t.0));
        Ok(())
    }

    #[test]
    fn missing_and_removed() -> Result<(), StoreError> {
        let t = TempDir::new("rm");
        let store = ListStore::open(&t.0)?;
        assert!(matches!(
            store.load(&name("none")),
            Err(StoreError::NotFound(_))
        ));
        assert!(!store.remove(&name("none"))?);
        store.save(meta("one"), &NetworkList::default(), &[])?;
        store.save(meta("one-two"), &NetworkList::default(), &[])?;
        assert!(store.remove(&name("one"))?);
        assert_eq!(
            files(&t.0).iter().filter(|f| f.starts_with("one.")).count(),
            0
        );
        assert_eq!(store.list()?.len(), 1, "removing one leaves one-two alone");
        let e = palisade_dbus::Error::from(StoreError::NotFound(name("one")));
        assert!(matches!(e, palisade_dbus::Error::NotFound(_)));
        Ok(())
    }

    #[test]
    fn damaged_files_are_errors() -> Result<(), StoreError> {
        let t = TempDir::new("bad");
        let store = ListStore::open(&t.0)?;
        let networks = NetworkList::from_ranges(vec![(1, 2), (10, 20)], vec![(5, 5)]);
        let domains = vec!["a.example".to_string()];
        let saved = store.save(meta("drop"), &networks, &domains)?;
        let data = store.data_path(&saved.name, &saved.content_hash);
        let good = fs::read(&data)?;
        let expect_corrupt = |bytes: &[u8], what: &str| -> Result<(), StoreError> {
            fs::write(&data, bytes)?;
            match store.load(&name("drop")) {
                Err(StoreError::Corrupt { reason, .. }) => {
                    eprintln!("{what}: {reason}");
                    Ok(())
                }
                other => panic!("{what}: {other:?}"),
            }
        };
        for cut in [0, 5, 9, 17, 20, good.len() - 1] {
            expect_corrupt(&good[..cut], &format!("truncated at {cut}"))?;
        }
        let mut flipped = good.clone();
        flipped[good.len() - 2] ^= 0x20;
        expect_corrupt(&flipped, "one letter changed")?;
        let mut longer = good.clone();
        longer.push(0);
        expect_corrupt(&longer, "a byte too many")?;
        let mut huge = good.clone();
        huge[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
        expect_corrupt(&huge, "a huge count")?;
        let mut unmerged = good.clone();
        unmerged[21..25].copy_from_slice(&10u32.to_le_bytes()); // (1, 10) overlaps (10, 20)
        expect_corrupt(&unmerged, "overlapping ranges")?;
        let mut version = good.clone();
        version[8] = 2;
        expect_corrupt(&version, "another version")?;
        fs::remove_file(&data)?;
        assert!(matches!(
            store.load(&name("drop")),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }

    #[test]
    fn list_skips_a_damaged_record() -> Result<(), StoreError> {
        let t = TempDir::new("list");
        let store = ListStore::open(&t.0)?;
        store.save(meta("b-list"), &NetworkList::default(), &[])?;
        store.save(meta("a-list"), &NetworkList::default(), &[])?;
        fs::write(t.0.join("broken.json"), b"{\"name\": \"broken\", ")?;
        fs::write(t.0.join("Not-A-Name.json"), b"{}")?;
        let other = serde_json::to_vec(&meta("other")).map_err(io::Error::other)?;
        fs::write(t.0.join("renamed.json"), other)?;
        let names: Vec<String> = store.list()?.into_iter().map(|m| m.name.into()).collect();
        assert_eq!(names, vec!["a-list", "b-list"]);
        assert!(matches!(
            store.meta(&name("broken")),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.meta(&name("renamed")),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_million_ranges_round_trip() -> Result<(), StoreError> {
        let t = TempDir::new("big");
        let store = ListStore::open(&t.0)?;
        let v4: Vec<(u32, u32)> = (0..1_000_000u32).map(|i| (i * 4, i * 4 + 1)).collect();
        let v6: Vec<(u128, u128)> = (0..1_000u128).map(|i| (i << 64, (i << 64) + 9)).collect();
        let networks = NetworkList::from_ranges(v4, v6);
        assert_eq!(networks.len(), 1_001_000);
        let started = Instant::now();
        let saved = store.save(meta("big"), &networks, &[])?;
        let save = started.elapsed();
        let started = Instant::now();
        let back = store.load(&name("big"))?;
        let load = started.elapsed();
        let size = fs::metadata(store.data_path(&saved.name, &saved.content_hash))?.len();
        eprintln!(
            "store: 1,001,000 ranges ({size} bytes): save {:.0} ms, load {:.0} ms",
            save.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3
        );
        assert_eq!(back.networks, networks);
        Ok(())
    }
}
