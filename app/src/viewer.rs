//! Hands a console ticket to the Spice viewer: the `.vv` file `palisade_dbus::vv` writes, stored
//! with mode 0600 in a folder only this user can enter, then `remote-viewer FILE` started as this
//! user. The password is only ever in that file, never on a command line (where `ps` shows it).
//!
//! The file says `delete-this-file=1`, so the viewer removes it once read; a watcher thread
//! removes it anyway when the viewer exits or the ticket expires, whichever comes first, and reaps
//! the viewer when it ends. The viewer outlives the app if the app quits first.
//!
//! No GUI or translation code here, so `palisadectl console open` can share it.

use palisade_dbus::types::ConsoleTicket;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The viewer's program when nothing else is configured.
pub const DEFAULT_VIEWER: &str = "remote-viewer";

/// The shortest time the `.vv` file is kept for a viewer that has not removed it yet.
const MIN_KEEP: Duration = Duration::from_secs(10);
/// The longest time the `.vv` file is kept, also when the ticket has no expiry.
const MAX_KEEP: Duration = Duration::from_secs(120);
/// How often the watcher looks whether the viewer has ended, before the file is gone.
const POLL: Duration = Duration::from_millis(100);

/// Why a console could not be handed to the viewer.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The `.vv` file could not be written.
    #[error("cannot write the console file in {dir}: {source}")]
    Write {
        /// The folder it was to be written in.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The viewer program could not be started.
    #[error("cannot start {program}: {source}")]
    Start {
        /// The program.
        program: String,
        /// Why (`NotFound` when it is not installed).
        source: std::io::Error,
    },
}

/// A viewer that was started.
#[derive(Debug)]
pub struct Launched {
    /// Its process id.
    pub pid: u32,
    /// The `.vv` file it was given (gone once the viewer read it).
    pub file: PathBuf,
}

/// Writes `ticket` as a `.vv` file and starts `program FILE`. The file is removed again if the
/// viewer cannot be started.
pub fn open(ticket: &ConsoleTicket, program: &OsStr) -> Result<Launched, ViewerError> {
    let place = Place::choose();
    let file = write_vv(&place.dir, ticket).map_err(|source| {
        place.discard();
        ViewerError::Write {
            dir: place.dir.clone(),
            source,
        }
    })?;
    // Its own process group and no ties to our output: the viewer outlives `palisadectl` and
    // the app, and a caller waiting for our output never waits for the viewer too.
    let child = Command::new(program)
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|source| {
            remove_quietly(&file);
            place.discard();
            ViewerError::Start {
                program: program.to_string_lossy().into_owned(),
                source,
            }
        })?;
    let launched = Launched {
        pid: child.id(),
        file: file.clone(),
    };
    let keep = keep_for(ticket.expires_at, SystemTime::now());
    let watcher = std::thread::Builder::new()
        .name("console-viewer".into())
        .spawn(move || watch(child, &file, &place, keep));
    if let Err(e) = watcher {
        // The viewer still deletes the file itself; only the fallback and the reaping are lost.
        eprintln!("palisade: cannot watch the console viewer: {e}");
    }
    Ok(launched)
}

/// The viewer's program: `configured` when it is set and not empty, else [`DEFAULT_VIEWER`].
pub fn program(configured: Option<OsString>) -> OsString {
    match configured {
        Some(p) if !p.is_empty() => p,
        _ => OsString::from(DEFAULT_VIEWER),
    }
}

/// The folder the `.vv` file goes in.
#[derive(Debug)]
struct Place {
    dir: PathBuf,
    /// Whether `dir` was made for this file alone (and is removed with it).
    private: bool,
}

impl Place {
    /// `$XDG_RUNTIME_DIR` when it is a folder of this user that nobody else may enter; otherwise
    /// a new folder in /tmp made by `mkdtemp` (mode 0700, a name nobody could predict).
    fn choose() -> Place {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            if is_private_dir(&dir) {
                return Place {
                    dir,
                    private: false,
                };
            }
        }
        match nix::unistd::mkdtemp("/tmp/palisade-console-XXXXXX") {
            Ok(dir) => Place { dir, private: true },
            // Writing in /tmp itself is safe too: the file is created new, 0600, never
            // followed through a link; it is only less tidy.
            Err(_) => Place {
                dir: PathBuf::from("/tmp"),
                private: false,
            },
        }
    }

    /// Removes the folder if it was made for the file (and is empty by now).
    fn discard(&self) {
        if self.private {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Whether `dir` is an absolute path to a folder owned by this user with no access for others.
fn is_private_dir(dir: &Path) -> bool {
    dir.is_absolute()
        && std::fs::metadata(dir).is_ok_and(|m| {
            m.is_dir()
                && m.uid() == nix::unistd::geteuid().as_raw()
                && m.permissions().mode() & 0o077 == 0
        })
}

/// Creates a new file `palisade-NAME-RANDOM.vv` in `dir` with mode 0600 and the ticket in it.
fn write_vv(dir: &Path, ticket: &ConsoleTicket) -> std::io::Result<PathBuf> {
    let contents = palisade_dbus::vv::vv_file(ticket);
    let stem = file_stem(&ticket.name);
    let mut last = None;
    for _ in 0..8 {
        let path = dir.join(format!("palisade-{stem}-{}.vv", random_hex()?));
        match create_private(&path) {
            Ok(mut file) => {
                let written = file
                    .write_all(contents.as_bytes())
                    .and_then(|()| file.flush());
                if let Err(e) = written {
                    remove_quietly(&path);
                    return Err(e);
                }
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free file name")))
}

/// Creates `path`, which must not exist yet (not even as a link), with mode exactly 0600.
fn create_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    // The umask may have taken bits away (never added any); make it exactly 0600.
    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
        remove_quietly(path);
        return Err(e);
    }
    Ok(file)
}

/// The console's name as it may appear in a file name.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    if stem.is_empty() {
        "console".to_owned()
    } else {
        stem
    }
}

/// 16 random hex digits.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// How long to keep the file for the viewer: until the ticket expires, within bounds.
fn keep_for(expires_at: u64, now: SystemTime) -> Duration {
    if expires_at == 0 {
        return MAX_KEEP;
    }
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Duration::from_secs(expires_at.saturating_sub(now)).clamp(MIN_KEEP, MAX_KEEP)
}

/// Removes the file once the viewer has ended or `keep` has passed, then waits for the viewer so
/// it does not linger as a zombie.
fn watch(mut child: Child, file: &Path, place: &Place, keep: Duration) {
    let deadline = Instant::now() + keep;
    let mut ended = false;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(POLL),
            Ok(Some(_)) | Err(_) => {
                ended = true;
                break;
            }
        }
    }
    remove_quietly(file);
    place.discard();
    if !ended {
        let _ = child.wait();
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("palisade: cannot remove {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> ConsoleTicket {
        ConsoleTicket {
            name: "work".into(),
            host: "127.0.0.1".into(),
            port: 5901,
            password: "s3cret".into(),
            expires_at: 0,
            tls: false,
            ca_pem: String::new(),
        }
    }

    fn scratch() -> PathBuf {
        nix::unistd::mkdtemp("/tmp/palisade-viewer-test-XXXXXX").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn writes_a_private_new_file_with_the_ticket() {
        let dir = scratch();
        let path = write_vv(&dir, &ticket()).unwrap_or_else(|e| panic!("{e}"));
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            name.starts_with("palisade-work-") && name.ends_with(".vv"),
            "{name}"
        );
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text, palisade_dbus::vv::vv_file(&ticket()));
        assert!(text.contains("password=s3cret\n"));
        // Never overwrites, never follows a link.
        assert!(create_private(&path).is_err());
        let link = dir.join("link.vv");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &link).unwrap_or_else(|e| panic!("{e}"));
        assert!(create_private(&link).is_err());
        assert!(!dir.join("elsewhere").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_viewer_gets_only_the_file_and_the_file_goes_away() {
        let dir = scratch();
        let record = dir.join("record");
        let script = dir.join("viewer.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n{{ printf '%s\\n' \"$@\"; stat -c %a \"$1\"; cat \"$1\"; }} > {rec}.tmp\nmv {rec}.tmp {rec}\n",
                rec = record.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let launched = open(&ticket(), script.as_os_str()).unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while (!record.exists() || launched.file.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        let mut lines = text.lines();
        assert_eq!(lines.next(), launched.file.to_str(), "{text}");
        assert_eq!(lines.next(), Some("600"), "{text}");
        assert_eq!(lines.next(), Some("[virt-viewer]"), "{text}");
        assert!(text.contains("password=s3cret"));
        assert!(!launched.file.exists(), "the .vv file outlived the viewer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_viewer_is_reported() {
        let err = open(&ticket(), OsStr::new("/nonexistent/remote-viewer"));
        match err {
            Err(ViewerError::Start { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_the_file_until_the_ticket_expires_within_bounds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(keep_for(0, now), MAX_KEEP);
        assert_eq!(keep_for(1_030, now), Duration::from_secs(30));
        assert_eq!(keep_for(900, now), MIN_KEEP);
        assert_eq!(keep_for(u64::MAX, now), MAX_KEEP);
    }

    #[test]
    fn file_names_hold_only_safe_characters() {
        assert_eq!(file_stem("work"), "work");
        assert_eq!(file_stem("../x\ny"), "xy");
        assert_eq!(file_stem("//"), "console");
        assert_eq!(program(Some(OsString::new())), DEFAULT_VIEWER);
        assert_eq!(program(Some("/bin/true".into())), "/bin/true");
    }
}
