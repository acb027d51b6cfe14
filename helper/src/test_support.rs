//! Helpers shared by the helper's unit tests: golden files reviewed like code, policies from
//! text, and the real `nft` in check mode inside a throwaway network namespace.

use palisade_dbus::policy::Policy;
use std::io::Write;
use std::path::PathBuf;

/// A policy from a document that must be valid.
pub fn policy(doc: &str) -> Policy {
    Policy::parse(doc.as_bytes())
        .unwrap_or_else(|f| panic!("{f:?}"))
        .policy
}

/// Compares `actual` with `<dir>/<name>.nft` (relative to the crate); `PALISADE_BLESS=1`
/// rewrites the file instead, for review in git like any other change.
pub fn golden(dir: &str, name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(format!("{name}.nft"));
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        expected,
        actual,
        "golden file {} differs; PALISADE_BLESS=1 rewrites it",
        path.display()
    );
}

/// Feeds `input` to `nft <flags> -c -f -` in a new network namespace; panics with nft's
/// complaint if it refuses.
pub fn nft_check(flags: &[&str], input: &str) {
    let mut child = std::process::Command::new("unshare")
        .args(["-n", "nft"])
        .args(flags)
        .args(["-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "nft {flags:?} refused:\n{}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
}
