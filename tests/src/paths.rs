//! Where the harness finds the repository and the binaries under test.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate), fixed at compile time so tests work from any
/// current directory.
pub fn workspace_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Where `palisade-helper` and `palisadectl` are: `$PALISADE_BIN_DIR` if set (e.g. a release
/// build or an installed tree), else cargo's debug output dir, honouring `$CARGO_TARGET_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PALISADE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_dir().join(dir), // join keeps an absolute path as it is
        None => workspace_dir().join("target"),
    };
    target.join("debug")
}

/// Whether any user can reach `path` (every folder above it searchable by others) and read and
/// run it (readable and executable by others).
pub fn reachable_by_everyone(path: &Path) -> bool {
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode())
            .unwrap_or(0)
    };
    mode(path) & 0o005 == 0o005
        && path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .all(|a| mode(a) & 0o001 != 0)
}
