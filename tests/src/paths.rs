//! Where the harness finds the repository and the binaries under test.

use std::path::PathBuf;

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
