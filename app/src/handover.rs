//! Files the helper reads are opened here, as the person asking, and handed over as open
//! descriptors: the root helper never opens a path a caller names, so it can only read what the
//! caller could read anyway. `palisadectl` (ISOs, lists) and the app's import dialog share it.

use palisade_dbus::proxy::BlocklistsProxy;
use palisade_dbus::types::BlocklistInfo;
use palisade_dbus::Error;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Opens `path` for reading as the caller, for handing to the helper as a descriptor. Symbolic
/// links are refused outright (`what` names the file in the sentence: "the ISO", "the list").
pub fn open_as_caller(path: &Path, what: &str) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(nix::libc::ELOOP) {
                "it is a symbolic link; give the real file".to_owned()
            } else {
                e.to_string()
            };
            Error::InvalidArgument(format!("cannot open {what} {}: {why}", path.display()))
        })
}

/// Opens the list at `path` as the caller, for `Blocklists.Import`, off the async workers (a
/// path on a network file system can take its time).
pub async fn open_list(path: PathBuf) -> Result<File, Error> {
    tokio::task::spawn_blocking(move || open_as_caller(&path, "the list"))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

/// Imports (or replaces) list `name` from the file at `path`: opened here as the caller, its
/// descriptor handed to `Blocklists.Import`.
pub async fn import_list(
    proxy: &BlocklistsProxy<'_>,
    name: &str,
    path: PathBuf,
    format: &str,
    strict: bool,
    force: bool,
) -> Result<BlocklistInfo, Error> {
    let file = open_list(path).await?;
    proxy
        .import(name, zbus::Fd::from(&file), format, strict, force)
        .await
}
