//! Acceptance test of the hardening issue's load: 50 clients reading and 5 applying policies at
//! once for 60 s. Nothing fails but applies that lose a race (a conflict); every generation is
//! numbered once and in order; the live policy, the history and the kernel agree on the last
//! one; the helper's memory stays bounded. (`make bench` reports the read latency under this
//! load next to the idle one.)

mod common;

use common::*;
use palisade_tests::load::{run, Load};
use palisade_tests::TestEnv;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn fifty_readers_and_five_writers_for_a_minute() {
    let env = TestEnv::start().unwrap_or_else(|e| panic!("cannot start: {e:#}"));
    let pid = env.helper_pid().unwrap_or_else(|| panic!("no helper"));
    let rss_before = palisade_tests::rss_kib(pid);
    let report = run(
        &env,
        Load {
            readers: 50,
            writers: 5,
            duration: Duration::from_secs(60),
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let rss_after = palisade_tests::rss_kib(pid);
    eprintln!(
        "{} reads (p50 {:?}, p99 {:?}, max {:?}), {} applies, {} conflicts; helper RSS {} -> {} KiB",
        report.reads.len(),
        report.read_percentile(50.0),
        report.read_percentile(99.0),
        report.read_percentile(100.0),
        report.applied.len(),
        report.conflicts,
        rss_before,
        rss_after
    );
    assert!(
        report.read_errors.is_empty(),
        "{:?}",
        &report.read_errors[..report.read_errors.len().min(5)]
    );
    assert!(
        report.apply_errors.is_empty(),
        "{:?}",
        &report.apply_errors[..report.apply_errors.len().min(5)]
    );
    assert!(report.reads.len() > 1_000, "the readers hardly ran");
    assert!(report.applied.len() >= 5, "the writers hardly applied");

    // Every successful apply got its own generation.
    let generations: BTreeSet<u64> = report.applied.iter().map(|(g, _)| *g).collect();
    assert_eq!(
        generations.len(),
        report.applied.len(),
        "a generation was handed out twice"
    );

    // The history has each of them, and the live one is the last apply, kernel included.
    let history = ok(
        &env,
        env.palisadectl(None, &["--json", "policy", "history"]),
    );
    let history: serde_json::Value =
        serde_json::from_slice(&history.stdout).unwrap_or_else(|e| panic!("{e}"));
    let recorded: BTreeSet<u64> = history
        .as_array()
        .map(|a| a.iter().filter_map(|g| g["generation"].as_u64()).collect())
        .unwrap_or_default();
    assert!(
        generations.is_subset(&recorded),
        "applied generations missing from the history: {:?}",
        generations.difference(&recorded).collect::<Vec<_>>()
    );
    let (last, marker) = *report.applied.last().unwrap_or_else(|| panic!("no apply"));
    assert_eq!(
        generation(&env),
        last,
        "the live generation is not the last applied"
    );
    let live = ok(&env, env.palisadectl(None, &["policy", "show"]));
    assert!(
        text(&live).contains(&format!("ports = {marker}")),
        "{}",
        text(&live)
    );
    let table = table_raw(&env);
    assert!(
        table.contains(&marker.to_string()),
        "the kernel lacks generation {last}"
    );

    // Memory: whatever the load, the helper stays small.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "the helper grew from {rss_before} to {rss_after} KiB"
    );
}
