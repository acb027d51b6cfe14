//! Durable state: every applied generation, which one is live and confirmed, and the policy file.
//!
//! Layout: `<state>/generations/<N>.toml` (the merged document exactly as applied),
//! `<N>.sources.json` (the files it was merged from, so a rollback brings each back) and
//! `<N>.json` (who, when, why, its hash, what became of it); `<state>/live.json` (live,
//! confirmed, pending deadline); `<config>/policy.toml` (the local policy of the last confirmed
//! generation, for admins to read and boot to load).
//! Every write goes to a temporary file in the same folder, is fsynced, then renamed over the
//! old one, so a crash leaves either the old or the new file, never half of one.

use palisade_dbus::types::{GenerationSource, PolicySource};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What became of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Waiting for `Confirm`.
    Pending,
    /// Kept (confirmed, or applied without a confirmation window).
    Confirmed,
    /// Not confirmed in time; the previous generation came back.
    Reverted,
}

/// The record kept beside each generation's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// Its number.
    pub generation: u64,
    /// Unix seconds.
    pub applied_at: u64,
    /// The caller's uid.
    pub author_uid: u32,
    /// Why it exists.
    pub origin: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Who made it (records written before this was kept read as `unrecorded`).
    #[serde(default = "unrecorded")]
    pub source: GenerationSource,
    /// SHA-256 of its document, hex (empty in records written before this was kept).
    #[serde(default)]
    pub policy_hash: String,
}

fn unrecorded() -> GenerationSource {
    GenerationSource::Unrecorded
}

/// Which generations are live and confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// The generation in the kernel now (0: none).
    pub live: u64,
    /// The last confirmed generation, the one boot loads (0: none).
    pub confirmed: u64,
    /// Unix seconds until which `live` waits for `Confirm`; 0 when confirmed.
    pub pending_until: u64,
}

/// The on-disk store.
#[derive(Debug, Clone)]
pub struct Store {
    state_dir: PathBuf,
    config_dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the state and config folders.
    pub fn open(state_dir: &Path, config_dir: &Path) -> io::Result<Self> {
        let store = Self {
            state_dir: state_dir.to_owned(),
            config_dir: config_dir.to_owned(),
        };
        fs::create_dir_all(store.generations_dir())?;
        // Policies reveal what is allowed where: root only.
        fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))?;
        fs::create_dir_all(config_dir)?;
        Ok(store)
    }

    fn generations_dir(&self) -> PathBuf {
        self.state_dir.join("generations")
    }

    /// Where the last confirmed policy lives for admins and boot.
    pub fn policy_file(&self) -> PathBuf {
        self.config_dir.join("policy.toml")
    }

    /// The record of which imported lists' kernel sets were filled completely.
    pub fn data_sets_file(&self) -> PathBuf {
        self.state_dir.join("data-sets.json")
    }

    /// Where a payload the kernel refused is kept for inspection.
    pub fn refused_payload_file(&self) -> PathBuf {
        self.state_dir.join("last-refused.nft")
    }

    /// The live/confirmed pointers; default when none was ever written.
    pub fn live_state(&self) -> io::Result<LiveState> {
        match fs::read(self.state_dir.join("live.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(LiveState::default()),
            Err(e) => Err(e),
        }
    }

    /// Records the live/confirmed pointers.
    pub fn save_live_state(&self, s: &LiveState) -> io::Result<()> {
        write_atomic(
            &self.state_dir.join("live.json"),
            &serde_json::to_vec_pretty(s)?,
            0o600,
        )
    }

    /// The next free generation number.
    pub fn next_generation(&self) -> io::Result<u64> {
        Ok(self.generation_numbers()?.last().map_or(1, |n| n + 1))
    }

    fn generation_numbers(&self) -> io::Result<Vec<u64>> {
        let mut out: Vec<u64> = fs::read_dir(self.generations_dir())?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Stores a new generation: its document and sources first, then its record (whose presence
    /// makes it count), so a crash in between leaves no record pointing at a missing document.
    pub fn save_generation(
        &self,
        record: &GenerationRecord,
        document: &[u8],
        sources: &[PolicySource],
    ) -> io::Result<()> {
        let dir = self.generations_dir();
        write_atomic(
            &dir.join(format!("{}.toml", record.generation)),
            document,
            0o600,
        )?;
        write_atomic(
            &dir.join(format!("{}.sources.json", record.generation)),
            &serde_json::to_vec(sources)?,
            0o600,
        )?;
        self.save_record(record)
    }

    /// The files a generation was merged from; `None` for generations stored before sources
    /// were kept (their document was the local policy alone).
    pub fn sources(&self, generation: u64) -> io::Result<Option<Vec<PolicySource>>> {
        match fs::read(
            self.generations_dir()
                .join(format!("{generation}.sources.json")),
        ) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Updates a generation's record.
    pub fn save_record(&self, record: &GenerationRecord) -> io::Result<()> {
        let path = self
            .generations_dir()
            .join(format!("{}.json", record.generation));
        write_atomic(&path, &serde_json::to_vec_pretty(record)?, 0o600)
    }

    /// A generation's record.
    pub fn record(&self, generation: u64) -> io::Result<GenerationRecord> {
        let bytes = fs::read(self.generations_dir().join(format!("{generation}.json")))?;
        serde_json::from_slice(&bytes).map_err(io::Error::other)
    }

    /// A generation's document.
    pub fn document(&self, generation: u64) -> io::Result<Vec<u8>> {
        fs::read(self.generations_dir().join(format!("{generation}.toml")))
    }

    /// Every record, newest first. Records that cannot be read are skipped and logged.
    pub fn history(&self) -> io::Result<Vec<GenerationRecord>> {
        let mut out = Vec::new();
        for n in self.generation_numbers()?.into_iter().rev() {
            match self.record(n) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("generation {n}: unreadable record: {e}"),
            }
        }
        Ok(out)
    }

    /// The policy file's contents, `None` if there is none.
    pub fn read_policy_file(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.policy_file()) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the policy file atomically.
    pub fn write_policy_file(&self, document: &[u8]) -> io::Result<()> {
        write_atomic(&self.policy_file(), document, 0o600)
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new file, never a mix. Writers
/// of one path at the same time (two tasks of the helper) each have a temporary file of their
/// own, so one never renames the other's away; the last rename wins.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no folder"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode asked for, whatever the umask (the unit's is 0077; the metrics file must
        // be readable by node_exporter).
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "palisade-store-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn generations_round_trip() -> io::Result<()> {
        let d = temp();
        let store = Store::open(&d.join("state"), &d.join("etc"))?;
        assert_eq!(store.next_generation()?, 1);
        let rec = GenerationRecord {
            generation: 1,
            applied_at: 5,
            author_uid: 1000,
            origin: "apply".into(),
            outcome: Outcome::Confirmed,
            source: GenerationSource::Palisadectl,
            policy_hash: "ab".into(),
        };
        let sources = vec![PolicySource {
            name: "policy.toml".into(),
            kind: palisade_dbus::types::SourceKind::Local,
            path: "/etc/palisade/policy.toml".into(),
            document: "[[vm]]".into(),
        }];
        store.save_generation(&rec, b"[[vm]]", &sources)?;
        assert_eq!(store.next_generation()?, 2);
        assert_eq!(store.record(1)?, rec);
        assert_eq!(store.document(1)?, b"[[vm]]");
        assert_eq!(store.sources(1)?, Some(sources));
        assert_eq!(store.sources(7)?, None);
        assert_eq!(store.history()?.len(), 1);
        // A record from before sources and hashes were kept still reads.
        fs::write(
            d.join("state/generations/1.json"),
            br#"{"generation":1,"applied_at":5,"author_uid":0,"origin":"apply","outcome":"confirmed"}"#,
        )?;
        assert_eq!(store.record(1)?.source, GenerationSource::Unrecorded);
        store.save_live_state(&LiveState {
            live: 1,
            confirmed: 1,
            pending_until: 0,
        })?;
        assert_eq!(store.live_state()?.live, 1);
        store.write_policy_file(b"x")?;
        assert_eq!(store.read_policy_file()?, Some(b"x".to_vec()));
        let leftovers = fs::read_dir(d.join("etc"))?.count();
        assert_eq!(leftovers, 1, "no temporary files stay behind");
        fs::remove_dir_all(&d)
    }

    /// Ten threads writing one file at once all succeed (a shared temporary name once made
    /// all but one fail with "No such file or directory"), and the file is one of theirs.
    #[test]
    fn concurrent_writers_of_one_file_all_succeed() -> io::Result<()> {
        let d = temp();
        fs::create_dir_all(&d)?;
        let path = d.join("versions.json");
        std::thread::scope(|scope| {
            let writers: Vec<_> = (0..10u8)
                .map(|i| {
                    let path = &path;
                    scope.spawn(move || {
                        (0..50).try_for_each(|_| write_atomic(path, &[b'0' + i; 64], 0o600))
                    })
                })
                .collect();
            for w in writers {
                w.join()
                    .unwrap_or_else(|_| panic!("a writer panicked"))
                    .unwrap_or_else(|e| panic!("a write failed: {e}"));
            }
        });
        let bytes = fs::read(&path)?;
        assert_eq!(bytes.len(), 64);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "a mixed file");
        assert_eq!(
            fs::read_dir(&d)?.count(),
            1,
            "no temporary files stay behind"
        );
        fs::remove_dir_all(&d)
    }
}
