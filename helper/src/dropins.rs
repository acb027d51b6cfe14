//! The policy's files on disk: the vendor's and the admin's drop-ins and the local policy, read
//! in merge order, and the path watch that reloads the drop-ins when configuration management
//! changes them.
//!
//! Invariants: only `NAME.toml` files whose name is a plain word (`[A-Za-z0-9][A-Za-z0-9._-]*`)
//! count — dotfiles (editors', Ansible's temporary files) and anything else are skipped; a file
//! in the admin folder replaces the vendor file of the same name, and one that is empty or a
//! link to `/dev/null` masks it (the systemd convention). What is read is bounded: at most
//! `MAX_FILES` files of at most `MAX_DOCUMENT_BYTES` each and in total, so the merged document
//! still fits one D-Bus message.

use crate::firewall::Firewall;
use palisade_dbus::policy::MAX_DOCUMENT_BYTES;
use palisade_dbus::types::{PolicySource, SourceKind};
use palisade_dbus::Error;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Most drop-in files read from both folders together.
pub const MAX_FILES: usize = 256;
/// Quiet time after the last change in a drop-in folder before the drop-ins are reloaded, so a
/// tool writing several files lands as one generation.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest a stream of changes can put a reload off.
const DEBOUNCE_MAX: Duration = Duration::from_secs(3);

/// Where the policy's files are.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    /// `/etc/palisade/policy.d`: the admin's and configuration management's drop-ins.
    pub admin_dir: PathBuf,
    /// `/usr/lib/palisade/policy.d`: drop-ins shipped with packages.
    pub vendor_dir: PathBuf,
    /// `/etc/palisade/policy.toml`: the local policy, the one the app and `palisadectl` edit.
    pub local_file: PathBuf,
}

/// A drop-in's file name, checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DropInName(String);

impl DropInName {
    /// `name` if it is a drop-in's name: `[A-Za-z0-9][A-Za-z0-9._-]*.toml`, at most 128 bytes.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let stem = name.strip_suffix(".toml").unwrap_or("");
        let plain = !stem.is_empty()
            && name.len() <= 128
            && stem.starts_with(|c: char| c.is_ascii_alphanumeric())
            && stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if plain {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidArgument(format!(
                "{name:?} is not a drop-in's name: use letters, digits, '.', '_' and '-', \
                 starting with a letter or digit and ending in .toml, like \"50-office.toml\""
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PolicyFiles {
    /// The folders and file under `config_dir` (`/etc/palisade`) and `vendor_dir`
    /// (`/usr/lib/palisade`).
    pub fn new(config_dir: &Path, vendor_dir: &Path) -> Self {
        Self {
            admin_dir: config_dir.join("policy.d"),
            vendor_dir: vendor_dir.join("policy.d"),
            local_file: config_dir.join("policy.toml"),
        }
    }

    /// The drop-ins as they are on disk now, in merge order; `candidate` stands in for (or
    /// joins) the admin drop-in of its name.
    pub fn read_drop_ins(
        &self,
        candidate: Option<(&DropInName, &str)>,
    ) -> Result<Vec<PolicySource>, Error> {
        // Name → (kind, path); the admin folder is read second so its files replace the vendor's.
        let mut chosen: BTreeMap<DropInName, (SourceKind, PathBuf)> = BTreeMap::new();
        for (kind, dir) in [
            (SourceKind::Vendor, &self.vendor_dir),
            (SourceKind::Admin, &self.admin_dir),
        ] {
            for name in list_dir(dir)? {
                let path = dir.join(name.as_str());
                chosen.insert(name, (kind, path));
            }
        }
        if chosen.len() > MAX_FILES {
            return Err(Error::InvalidPolicy(format!(
                "{} drop-in files are too many: the most is {MAX_FILES}",
                chosen.len()
            )));
        }
        let mut total = 0usize;
        let mut out = Vec::new();
        let candidate_name = candidate.map(|(n, _)| n.clone());
        if let Some((name, _)) = candidate {
            chosen.insert(
                name.clone(),
                (SourceKind::Admin, self.admin_dir.join(name.as_str())),
            );
        }
        for (name, (kind, path)) in chosen {
            let document = match (&candidate_name, candidate) {
                (Some(c), Some((_, text))) if *c == name => Some(text.to_owned()),
                _ => read_bounded(&path)?,
            };
            // An empty file or a link to /dev/null masks a vendor file of the same name.
            let Some(document) = document.filter(|d| !d.trim().is_empty()) else {
                continue;
            };
            total += document.len();
            if total > MAX_DOCUMENT_BYTES {
                return Err(Error::InvalidPolicy(format!(
                    "the drop-ins together are larger than {} MiB, the most a policy may be",
                    MAX_DOCUMENT_BYTES >> 20
                )));
            }
            out.push(PolicySource {
                name: name.0,
                kind,
                path: path.display().to_string(),
                document,
            });
        }
        Ok(out)
    }

    /// The local policy as a source.
    pub fn local(&self, document: String) -> PolicySource {
        PolicySource {
            name: self
                .local_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "policy.toml".into()),
            kind: SourceKind::Local,
            path: self.local_file.display().to_string(),
            document,
        }
    }

    /// Creates the admin folder if missing, so there is a place to put drop-ins and to watch.
    pub fn create_admin_dir(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.admin_dir)
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The drop-in names in `dir`, sorted; none when it does not exist.
fn list_dir(dir: &Path) -> Result<Vec<DropInName>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(dir, &e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, &e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        match DropInName::parse(&name) {
            Ok(n) => names.push(n),
            Err(_) => tracing::warn!(
                "{}: not a drop-in's name; skipped",
                dir.join(&name).display()
            ),
        }
        if names.len() > MAX_FILES {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// A drop-in's text; `None` for a mask (`/dev/null`); an error for anything not a regular file
/// of valid UTF-8 within the size limit.
fn read_bounded(path: &Path) -> Result<Option<String>, Error> {
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, &e))?;
    let meta = file.metadata().map_err(|e| unreadable(path, &e))?;
    if !meta.is_file() {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_char_device()
            && std::fs::canonicalize(path).ok().as_deref() == Some(Path::new("/dev/null"))
        {
            return Ok(None);
        }
        return Err(Error::InvalidPolicy(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(path, &e))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::InvalidPolicy(format!(
            "{} is larger than {} MiB, the most a policy may be",
            path.display(),
            MAX_DOCUMENT_BYTES >> 20
        )));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::InvalidPolicy(format!("{} is not UTF-8 text", path.display())))
}

fn unreadable(path: &Path, e: &std::io::Error) -> Error {
    Error::InvalidPolicy(format!("cannot read {}: {e}", path.display()))
}

/// Reloads the drop-ins whenever a file in either folder changes, after `DEBOUNCE` of quiet,
/// with the live policy's `[settings.drop_ins]` confirmation window — or only notes the change
/// when that says `watch = false` (configuration management then reloads with its own window). A
/// reload refused because a generation waits for confirmation is tried again when that
/// generation is confirmed or reverted; one refused because the drop-ins are invalid is logged
/// (and `Status.drift` says so) until the next change.
pub async fn watch(firewall: Arc<Firewall>, files: PolicyFiles) {
    use futures_util::StreamExt;
    use inotify::{Inotify, WatchMask};
    let inotify = match Inotify::init() {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("cannot watch the drop-in folders ({e}); `palisadectl policy reload` applies changes");
            return;
        }
    };
    let mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::CREATE
        | WatchMask::ATTRIB;
    for dir in [&files.admin_dir, &files.vendor_dir] {
        if dir.is_dir() {
            if let Err(e) = inotify.watches().add(dir, mask) {
                tracing::error!("cannot watch {}: {e}", dir.display());
            }
        }
    }
    let mut events = match inotify.into_event_stream(vec![0u8; 4096]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot read the drop-in folders' changes: {e}");
            return;
        }
    };
    let mut generations = firewall.subscribe();
    let mut waiting_for_confirmation = false;
    loop {
        tokio::select! {
            event = events.next() => {
                if event.is_none() {
                    tracing::error!("the drop-in watch ended; `palisadectl policy reload` applies changes");
                    return;
                }
                let start = tokio::time::Instant::now();
                // Gather what follows until it has been quiet for a while.
                while start.elapsed() < DEBOUNCE_MAX {
                    match tokio::time::timeout(DEBOUNCE, events.next()).await {
                        Ok(Some(_)) => continue,
                        _ => break,
                    }
                }
            }
            changed = generations.changed(), if waiting_for_confirmation => {
                if changed.is_err() {
                    return;
                }
                if firewall.snapshot().pending_until > 0 {
                    continue;
                }
            }
        }
        waiting_for_confirmation = false;
        let settings = firewall.snapshot().policy.settings.drop_ins;
        if !settings.watch {
            tracing::info!("a drop-in changed; [settings.drop_ins] watch = false: `palisadectl policy reload` applies it");
            continue;
        }
        match firewall.reload(settings.confirm_seconds, 0).await {
            Ok(r) if r.changed => tracing::info!(
                "the drop-ins changed: generation {} is live",
                r.applied.generation
            ),
            Ok(_) => {}
            Err(Error::Conflict(why)) => {
                tracing::info!("the drop-ins changed; reloading them waits: {why}");
                waiting_for_confirmation = true;
            }
            Err(e) => tracing::error!("the changed drop-ins were not applied: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn scratch() -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("palisade-dropins-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{e:?}"));
        Scratch(p)
    }

    fn files(root: &Path) -> PolicyFiles {
        PolicyFiles::new(&root.join("etc"), &root.join("usr"))
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap_or_else(|| panic!("no parent")))
            .unwrap_or_else(|e| panic!("{e:?}"));
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e:?}"));
    }

    #[test]
    fn drop_ins_come_in_name_order_across_both_folders_and_admin_files_replace_vendor_ones() {
        let dir = scratch();
        let f = files(dir.path());
        write(&f.vendor_dir.join("10-vendor.toml"), "# vendor 10\n");
        write(&f.vendor_dir.join("30-shared.toml"), "# vendor 30\n");
        write(&f.admin_dir.join("20-admin.toml"), "# admin 20\n");
        write(&f.admin_dir.join("30-shared.toml"), "# admin 30\n");
        write(&f.admin_dir.join(".ansible_tmp123-40.toml"), "garbage");
        write(&f.admin_dir.join("notes.txt"), "garbage");
        write(&f.admin_dir.join("bad name.toml"), "garbage");
        let got: Vec<(String, SourceKind, String)> = f
            .read_drop_ins(None)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_iter()
            .map(|s| (s.name, s.kind, s.document))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "10-vendor.toml".into(),
                    SourceKind::Vendor,
                    "# vendor 10\n".into()
                ),
                (
                    "20-admin.toml".into(),
                    SourceKind::Admin,
                    "# admin 20\n".into()
                ),
                (
                    "30-shared.toml".into(),
                    SourceKind::Admin,
                    "# admin 30\n".into()
                ),
            ]
        );
    }

    #[test]
    fn an_empty_admin_file_or_a_link_to_dev_null_masks_the_vendor_file() {
        let dir = scratch();
        let f = files(dir.path());
        write(&f.vendor_dir.join("10-a.toml"), "# a\n");
        write(&f.vendor_dir.join("20-b.toml"), "# b\n");
        write(&f.admin_dir.join("10-a.toml"), "");
        std::os::unix::fs::symlink("/dev/null", f.admin_dir.join("20-b.toml"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(f
            .read_drop_ins(None)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .is_empty());
    }

    #[test]
    fn a_candidate_stands_in_for_its_namesake_or_joins() {
        let dir = scratch();
        let f = files(dir.path());
        write(&f.admin_dir.join("50-office.toml"), "# old\n");
        let name = DropInName::parse("50-office.toml").unwrap_or_else(|e| panic!("{e:?}"));
        let got = f
            .read_drop_ins(Some((&name, "# new\n")))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].document, "# new\n");
        let other = DropInName::parse("60-more.toml").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            f.read_drop_ins(Some((&other, "# more\n")))
                .unwrap_or_else(|e| panic!("{e:?}"))
                .len(),
            2
        );
    }

    #[test]
    fn names_and_files_that_are_not_drop_ins_are_refused() {
        for bad in [
            "",
            ".toml",
            "../x.toml",
            "a/b.toml",
            "-x.toml",
            "x.tom",
            ".x.toml",
            "x y.toml",
        ] {
            assert!(DropInName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DropInName::parse(&format!("{}.toml", "a".repeat(130))).is_err());
        let dir = scratch();
        let f = files(dir.path());
        std::fs::create_dir_all(f.admin_dir.join("10-dir.toml"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(f.read_drop_ins(None).is_err());
        let dir = scratch();
        let f = files(dir.path());
        write(&f.admin_dir.join("10-bin.toml"), "\u{0}");
        std::fs::write(f.admin_dir.join("10-bin.toml"), [0xff, 0xfe])
            .unwrap_or_else(|e| panic!("{e:?}"));
        let e = f
            .read_drop_ins(None)
            .err()
            .unwrap_or_else(|| panic!("expected an error"))
            .to_string();
        assert!(e.contains("UTF-8"), "{e}");
    }
}
