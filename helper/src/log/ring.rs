//! The drop log's memory: the latest `CAPACITY` entries, numbered, and the optional file that
//! keeps them across restarts.
//!
//! The file is JSON lines in two halves (`drop.log` and `drop.log.1`), each at most half the
//! configured size: when the current half is full it becomes the old one, so the log on disk
//! never exceeds its size and always holds the latest entries. Written as root, mode 0600, under
//! the helper's state folder; a line that does not parse (a crash mid-write) is skipped on load.

use palisade_dbus::types::LoggedPacket;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Entries kept in memory (about 300 bytes each: a few MB at most).
pub const CAPACITY: usize = 10_000;

/// The latest entries.
#[derive(Debug, Default)]
pub struct Ring {
    entries: VecDeque<LoggedPacket>,
    next_seq: u64,
}

impl Ring {
    /// Numbers `entry` and keeps it, forgetting the oldest beyond `CAPACITY`; returns it numbered.
    pub fn push(&mut self, mut entry: LoggedPacket) -> LoggedPacket {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        self.keep(entry.clone());
        entry
    }

    /// Keeps an entry that already has its number (loaded from the file).
    fn keep(&mut self, entry: LoggedPacket) {
        self.next_seq = self.next_seq.max(entry.seq);
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The latest `max` entries that `wanted` accepts, logged at or after `since_ms`, oldest first.
    pub fn select(
        &self,
        since_ms: u64,
        max: usize,
        wanted: impl Fn(&LoggedPacket) -> bool,
    ) -> Vec<LoggedPacket> {
        let mut picked: Vec<LoggedPacket> = self
            .entries
            .iter()
            .rev()
            .take_while(|e| e.at_ms >= since_ms)
            .filter(|e| wanted(e))
            .take(max)
            .cloned()
            .collect();
        picked.reverse();
        picked
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The file half of the log.
#[derive(Debug)]
pub struct LogFile {
    current: PathBuf,
    old: PathBuf,
    /// Bytes one half may hold.
    half: u64,
    written: u64,
    file: Option<File>,
}

impl LogFile {
    /// The log file `path` (and `path.1`), at most `bytes` in all.
    pub fn new(path: &Path, bytes: u64) -> Self {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        Self {
            current: path.to_owned(),
            old: PathBuf::from(old),
            half: bytes / 2,
            written: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            file: None,
        }
    }

    /// Its size limit changed: the next write starts using it.
    pub fn resize(&mut self, bytes: u64) {
        self.half = bytes / 2;
    }

    /// Puts the entries kept in the files into `ring`, oldest first.
    pub fn load(&self, ring: &mut Ring) {
        for path in [&self.old, &self.current] {
            let Ok(file) = File::open(path) else {
                continue;
            };
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else {
                    break;
                };
                if let Ok(entry) = serde_json::from_str::<LoggedPacket>(&line) {
                    ring.keep(entry);
                }
            }
        }
    }

    /// Appends `entries`, starting a new half when the current one is full.
    pub fn append(&mut self, entries: &[LoggedPacket]) -> std::io::Result<()> {
        let mut text = String::new();
        for e in entries {
            if let Ok(line) = serde_json::to_string(e) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        if self.written + text.len() as u64 > self.half {
            self.file = None;
            match std::fs::rename(&self.current, &self.old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.written = 0;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&self.current)?,
            ),
        };
        file.write_all(text.as_bytes())?;
        self.written += text.len() as u64;
        Ok(())
    }

    /// Removes both halves (the admin turned the file off).
    pub fn remove(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.current);
        let _ = std::fs::remove_file(&self.old);
        self.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::types::{LogOwner, LoggedRule, LoggedRuleKind, PacketVerdict};

    fn packet(at_ms: u64, vm: &str) -> LoggedPacket {
        LoggedPacket {
            seq: 0,
            at_ms,
            rule: LoggedRule {
                owner: LogOwner::Vm,
                vm: vm.into(),
                kind: LoggedRuleKind::Default,
                first_rule: 0,
                last_rule: 0,
                verdict: PacketVerdict::Drop,
            },
            vm: vm.into(),
            user: String::new(),
            protocol: "tcp".into(),
            source: "10.0.0.1".into(),
            destination: "192.0.2.1".into(),
            source_port: 1,
            destination_port: 2,
            length: 60,
            source_mac: String::new(),
        }
    }

    #[test]
    fn the_ring_keeps_the_latest_and_selects_by_time_and_filter() {
        let mut ring = Ring::default();
        for i in 0..(CAPACITY as u64 + 5) {
            ring.push(packet(i, if i % 2 == 0 { "a" } else { "b" }));
        }
        assert_eq!(ring.len(), CAPACITY);
        let last = ring.select(0, 3, |_| true);
        assert_eq!(
            last.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [
                CAPACITY as u64 + 3,
                CAPACITY as u64 + 4,
                CAPACITY as u64 + 5
            ]
        );
        let since = ring.select(CAPACITY as u64, 100, |e| e.vm == "a");
        assert!(since
            .iter()
            .all(|e| e.vm == "a" && e.at_ms >= CAPACITY as u64));
        assert_eq!(since.len(), 3);
    }

    #[test]
    fn the_file_survives_a_restart_and_stays_within_its_size() {
        let dir = std::env::temp_dir().join(format!("palisade-droplog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("drop.log");
        let bytes = 64 << 10;
        let mut file = LogFile::new(&path, bytes);
        let mut ring = Ring::default();
        for i in 0..2_000 {
            let e = ring.push(packet(i, "a"));
            file.append(&[e]).unwrap_or_else(|e| panic!("{e}"));
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        assert!(size(&path) + size(Path::new(&old)) <= bytes);
        // A torn last line is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"seq\":"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut again = Ring::default();
        LogFile::new(&path, bytes).load(&mut again);
        let kept = again.select(0, CAPACITY, |_| true);
        assert!(kept.len() > 100, "{}", kept.len());
        assert_eq!(kept.last().map(|e| e.seq), Some(2_000));
        assert!(kept.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        // Numbering goes on after the restart.
        assert_eq!(again.push(packet(9, "a")).seq, 2_001);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
