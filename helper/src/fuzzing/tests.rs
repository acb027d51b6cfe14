//! The corpus replay: every input the fuzzers kept (`fuzz/corpus/<target>/`) and every input
//! that once crashed a target (`fuzz/regressions/<target>/`, kept forever) runs through the
//! target again, on stable, in `make test`.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    // A corpus that went missing must not pass as an empty success.
    assert!(
        files.len() >= 10,
        "fuzz/corpus/{target} holds {} inputs; run `make fuzz` or restore it",
        files.len()
    );
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "{} crashes target {target}",
            file.display()
        );
    }
}

#[test]
fn policy_corpus_replays() {
    replay("policy", super::policy);
}

#[test]
fn policy_merge_corpus_replays() {
    replay("policy_merge", super::policy_merge);
}

#[test]
fn blocklist_corpus_replays() {
    replay("blocklist", super::blocklist);
}

#[test]
fn usb_corpus_replays() {
    replay("usb", super::usb);
}

#[test]
fn vv_corpus_replays() {
    replay("vv", super::vv);
}

#[test]
fn bus_arguments_corpus_replays() {
    replay("bus_arguments", super::bus_arguments);
}

#[test]
fn dns_corpus_replays() {
    replay("dns", super::dns);
}

#[test]
fn drop_log_corpus_replays() {
    replay("drop_log", super::drop_log);
}
