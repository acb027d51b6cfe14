//! Acceptance tests of the "Big data in the firewall" issue: lists imported from a descriptor,
//! loaded over netlink beside the structure, enforced on real connections, swapped without a
//! gap, and left alone by applies that do not change them.

mod common;

use common::*;
use palisade_tests::{TestEnv, ADMIN};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

/// The test's port; listeners bind 0.0.0.0, so every 127/8 address reaches them.
const PORT: u16 = 8443;
/// Inside the list (127.66.0.0/24 is listed).
const LISTED: &str = "127.66.0.1";
/// Outside it.
const UNLISTED: &str = "127.77.0.1";

/// A policy that rejects (fast, for the prober) connections to the imported list `big`.
fn policy_with_list(extra_rule_port: u16) -> String {
    format!(
        r#"
[[blocklist]]
name = "big"
imported = true

[[host_rule]]
action = "reject"
blocklist = "big"
comment = "the big list"

[[host_rule]]
action = "drop"
destination = "127.99.0.1"
proto = "tcp"
ports = {extra_rule_port}
comment = "an unrelated rule"
"#
    )
}

/// `n` non-adjacent /28 networks (so none merge and the kernel holds `n` intervals), plus the
/// listed test network, with comments and a blank line as real lists have.
fn write_list(env: &TestEnv, name: &str, n: usize, extra: &[&str]) -> String {
    let path = env.dir().join(name);
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut w = std::io::BufWriter::new(file);
    let _ = writeln!(w, "# a FireHOL-style list\n#\n");
    let mut written = 0;
    'outer: for a in [11u32, 12, 13] {
        for b in 0..256u32 {
            for c in 0..256u32 {
                for d in 0..8u32 {
                    if written == n {
                        break 'outer;
                    }
                    let _ = writeln!(w, "{a}.{b}.{c}.{}/28", d * 32);
                    written += 1;
                }
            }
        }
    }
    let _ = writeln!(w, "127.66.0.0/24\n2001:db8:bad::/48");
    for line in extra {
        let _ = writeln!(w, "{line}");
    }
    drop(w);
    // Readable by the admin user who imports it (palisadectl opens it as the caller).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

fn connects_to(env: &TestEnv, host: &str) -> bool {
    connects_to_host(env, ADMIN, host, PORT)
}

/// Connects to `host` in a loop while `during` runs, and `linger` after it; returns how many
/// attempts were made, how many connected, and what `during` returned.
fn probe_during<R>(
    env: &TestEnv,
    host: &str,
    linger: Duration,
    during: impl FnOnce() -> R,
) -> (u32, u32, R) {
    let probing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let prober = scope.spawn(|| {
            let (mut attempts, mut passed) = (0u32, 0u32);
            while probing.load(Ordering::SeqCst) {
                attempts += 1;
                if connects_to(env, host) {
                    passed += 1;
                }
            }
            (attempts, passed)
        });
        let out = during();
        std::thread::sleep(linger);
        probing.store(false, Ordering::SeqCst);
        let (attempts, passed) = prober.join().unwrap_or_else(|_| panic!("prober panicked"));
        (attempts, passed, out)
    })
}

fn listen_any(env: &TestEnv) -> Listener {
    listen_on(env, "0.0.0.0", PORT)
}

fn import(env: &TestEnv, file: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "blocklist", "import", "big", file];
    args.extend_from_slice(extra);
    let out = ok(env, env.palisadectl(Some(ADMIN), &args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn loads_logged(env: &TestEnv) -> usize {
    env.helper_log()
        .matches("ranges of list big into set")
        .count()
}

#[test]
fn a_million_entry_list_from_a_descriptor_is_enforced_and_left_alone_by_other_applies() {
    let env = start();
    let _listener = listen_any(&env);
    assert!(connects_to(&env, LISTED) && connects_to(&env, UNLISTED));

    // A policy naming a list nobody imported is refused with what to do, and changes nothing.
    let file = env
        .write_file("policy.toml", policy_with_list(9000))
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = env.palisadectl(Some(ADMIN), &["policy", "apply", &file.to_string_lossy()]);
    assert_eq!(refused.status.code(), Some(65), "{}", text(&refused));
    assert!(
        text(&refused).contains("blocklist import big"),
        "{}",
        text(&refused)
    );
    assert_eq!(generation(&env), 0);

    // Import a million networks (the file is opened by palisadectl, as the admin) while status
    // and the VM list are asked again and again: they answer throughout.
    let list = write_list(&env, "big.netset", 1_000_000, &[]);
    let importing = AtomicBool::new(true);
    let began = Instant::now();
    let info = std::thread::scope(|scope| {
        let readers = scope.spawn(|| {
            let mut answered = Vec::new();
            while importing.load(Ordering::SeqCst) {
                let t = Instant::now();
                let status = env.palisadectl(Some(ADMIN), &["--json", "status"]);
                let vms = env.palisadectl(Some(ADMIN), &["--json", "vm", "list"]);
                assert!(status.status.success(), "{}", text(&status));
                assert!(vms.status.success(), "{}", text(&vms));
                answered.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(100));
            }
            answered
        });
        let info = import(&env, &list, &["--format", "netset"]);
        importing.store(false, Ordering::SeqCst);
        let answered = readers
            .join()
            .unwrap_or_else(|_| panic!("readers panicked"));
        assert!(
            answered.len() >= 2,
            "status was not asked during the import"
        );
        eprintln!(
            "import of 1M took {:?}; {} status+list rounds answered, slowest {:?}",
            began.elapsed(),
            answered.len(),
            answered.iter().max()
        );
        info
    });
    assert_eq!(info["ranges"].as_u64(), Some(1_000_002), "{info}");
    assert_eq!(info["in_use"], false);

    // Named by the policy, it is loaded and enforced: the listed address is refused, the rest
    // passes.
    apply(&env, &policy_with_list(9000), &[]);
    assert_eq!(loads_logged(&env), 2, "v4 and v6 loaded once each");
    assert!(
        !connects_to(&env, LISTED),
        "a listed address still connects"
    );
    assert!(
        connects_to(&env, UNLISTED),
        "an unlisted address is refused"
    );

    // An apply that changes another rule leaves the list's sets alone.
    let sets_before = std::fs::read_to_string(env.state_dir().join("data-sets.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    apply(&env, &policy_with_list(9001), &[]);
    assert_eq!(
        loads_logged(&env),
        2,
        "an unrelated apply reloaded the list"
    );
    let sets_after = std::fs::read_to_string(env.state_dir().join("data-sets.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sets_before, sets_after);
    assert!(!connects_to(&env, LISTED));

    // Status answers at once beside the big set (it never lists the kernel's table).
    let t = Instant::now();
    let status = ok(&env, env.palisadectl(Some(ADMIN), &["--json", "status"]));
    eprintln!("status beside the 1M list: {:?}", t.elapsed());
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    assert_eq!(s["table_present"], true, "{s}");
}

#[test]
fn replacing_a_list_never_lets_a_listed_address_through() {
    let env = start();
    let _listener = listen_any(&env);
    let first = write_list(&env, "first.netset", 10_000, &[]);
    import(&env, &first, &[]);
    apply(&env, &policy_with_list(9000), &[]);
    assert!(!connects_to(&env, LISTED));

    // A prober connects to the listed address in a loop while the list is replaced by a new
    // version (which still lists it): not one attempt may pass. The new version changes more
    // ranges than an overlay may hold (110,001 > MAX_OVERLAY), so it is loaded into new sets
    // and swapped in.
    let second = write_list(&env, "second.netset", 120_000, &["198.51.100.0/24"]);
    // Probing goes on a moment after the swap, when the old set is deleted.
    let (attempts, passed, info) = probe_during(&env, LISTED, Duration::from_millis(500), || {
        import(&env, &second, &[])
    });
    assert_eq!(info["in_use"], true, "{info}");
    assert!(attempts >= 3, "the prober hardly ran: {attempts} attempts");
    assert_eq!(
        passed, 0,
        "{passed} of {attempts} attempts passed during the swap"
    );
    assert_eq!(
        loads_logged(&env),
        4,
        "the new version is loaded once (v4, v6)"
    );
    assert!(env
        .helper_log()
        .contains("deleted the sets of lists no rule names"));
    assert!(connects_to(&env, UNLISTED));
}

/// The kernel sets a list's family is in, from the helper's record of its data sets, in address
/// order.
fn sets_of_big(env: &TestEnv, v6: bool) -> Vec<String> {
    let record =
        std::fs::read(env.state_dir().join("data-sets.json")).unwrap_or_else(|e| panic!("{e}"));
    let record: serde_json::Value =
        serde_json::from_slice(&record).unwrap_or_else(|e| panic!("{e}"));
    let sets = record["sets"].as_object().cloned().unwrap_or_default();
    let mut mine: Vec<(std::net::IpAddr, String)> = sets
        .iter()
        .filter(|(_, held)| {
            held["state"] == "complete" && held["list"] == "big" && held["v6"] == v6
        })
        .map(|(name, held)| {
            let first = held["first"].as_str().unwrap_or_default();
            (
                first.parse().unwrap_or_else(|e| panic!("{first}: {e}")),
                name.clone(),
            )
        })
        .collect();
    mine.sort();
    assert!(!mine.is_empty(), "{record}");
    mine.into_iter().map(|(_, name)| name).collect()
}

/// How many elements (ranges) the kernel's set holds, read back with nft (the set is small
/// enough to list).
fn kernel_ranges(env: &TestEnv, set: &str) -> usize {
    set_elements(env, set).len()
}

#[test]
fn a_list_with_a_few_entries_changed_is_updated_by_its_difference() {
    let mut env = start();
    let _listener = listen_any(&env);
    // 120,000 networks, the listed test network and two more: five kernel sets (slices) of at
    // most 25,000 ranges. The new version drops the last 100 networks and trades
    // 127.88.0.0/24 for 127.89.0.0/24 and 10.1.0.0/24 for 10.2.0.0/24: the slices stay as they
    // are, and two overlay sets beside them take the difference (2 ranges added, 102 removed).
    let (gone, new) = ("127.88.0.1", "127.89.0.1");
    let first = write_list(
        &env,
        "first.netset",
        120_000,
        &["127.88.0.0/24", "10.1.0.0/24"],
    );
    import(&env, &first, &[]);
    apply(&env, &policy_with_list(9000), &[]);
    let sets = sets_of_big(&env, false);
    assert_eq!(sets.len(), 5, "{sets:?}");
    let ranges =
        |env: &TestEnv| -> Vec<usize> { sets.iter().map(|s| kernel_ranges(env, s)).collect() };
    let slices = vec![25_000, 25_000, 25_000, 25_000, 20_003];
    assert_eq!(ranges(&env), slices);
    assert!(!connects_to(&env, gone) && connects_to(&env, new));
    let hash_before = show_hash(&env);

    let second = write_list(
        &env,
        "second.netset",
        119_900,
        &["127.89.0.0/24", "10.2.0.0/24"],
    );
    let (attempts, passed, info) = probe_during(&env, LISTED, Duration::from_millis(300), || {
        import(&env, &second, &[])
    });
    assert_eq!(info["in_use"], true, "{info}");
    assert!(attempts >= 2, "the prober hardly ran: {attempts} attempts");
    assert_eq!(passed, 0, "{passed} of {attempts} attempts passed");

    // The same slices, untouched and not reloaded; the overlay holds the difference.
    assert_ne!(show_hash(&env), hash_before);
    assert_eq!(
        sets_of_big(&env, false),
        sets,
        "the list moved to other sets"
    );
    let (added, removed) = overlay_of_big(&env);
    // The overlay is still this pair and its sets hold `counts` ranges; the slices are as
    // loaded, and nothing was loaded again.
    let overlay_holds = |env: &TestEnv, counts: (usize, usize)| {
        assert_eq!(overlay_of_big(env), (added.clone(), removed.clone()));
        assert_eq!(
            (kernel_ranges(env, &added), kernel_ranges(env, &removed)),
            counts
        );
        assert_eq!(ranges(env), slices, "a slice was changed");
        assert_eq!(loads_logged(env), 2, "the list was reloaded");
    };
    overlay_holds(&env, (2, 102));
    let log = env.helper_log();
    assert!(
        log.contains("updated list big in place in one transaction") && log.contains(&added),
        "{log}"
    );
    assert!(
        connects_to(&env, gone),
        "a range the new version dropped is still refused"
    );
    assert!(
        !connects_to(&env, new),
        "a range the new version added is not refused"
    );
    assert!(!connects_to(&env, LISTED));

    // The same contents once more change nothing in the kernel.
    import(&env, &second, &[]);
    overlay_holds(&env, (2, 102));

    // After a restart the record still vouches for the sets: the boot load leaves them alone.
    env.stop_helper();
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let _ = ok(&env, env.palisadectl(Some(ADMIN), &["status"]));
    assert_eq!(sets_of_big(&env, false), sets);
    assert_eq!(overlay_of_big(&env), (added.clone(), removed.clone()));
    assert!(!connects_to(&env, new) && connects_to(&env, gone));

    let overlay_file = env.state_dir().join(format!("data-overlay-{added}.ranges"));
    assert!(
        overlay_file.exists(),
        "{} is missing",
        overlay_file.display()
    );

    // An address found in none of the list's sets is remembered for a second in the list's
    // unlisted set (the packets after a connection's first skip the list's sets).
    let unlisted = sets[0]
        .rsplit_once("_s")
        .map(|(stem, _)| format!("{stem}_u"))
        .unwrap_or_default();
    assert!(connects_to(&env, "127.90.0.1"));
    let remembered = format!("{:?}", set_elements(&env, &unlisted));
    assert!(remembered.contains("127.90.0.1"), "{remembered}");

    // A third version trades 127.89.0.0/24 for 127.90.0.0/24: the overlay changes by that
    // alone (two ranges), composed with what it held; the slices are still not touched. A
    // prober keeps 127.90.0.1 remembered while the import runs; the overlay's transaction
    // empties the unlisted set, so the first connection after the import is refused.
    let third = write_list(
        &env,
        "third.netset",
        119_900,
        &["127.90.0.0/24", "10.2.0.0/24"],
    );
    let (_, _, refused) = probe_during(&env, "127.90.0.1", Duration::ZERO, || {
        import(&env, &third, &[]);
        !connects_to(&env, "127.90.0.1")
    });
    assert!(
        refused,
        "an address remembered as unlisted passed the version listing it"
    );
    overlay_holds(&env, (2, 102));
    assert!(
        env.helper_log()
            .contains("2 ranges changed, the overlay now 2 ranges added and 102 removed"),
        "{}",
        env.helper_log()
    );
    assert!(connects_to(&env, new) && !connects_to(&env, "127.90.0.1"));
    assert!(connects_to(&env, gone) && !connects_to(&env, LISTED));

    // A fourth version is the first with 127.88.0.0/24 traded for 127.91.0.0/24: the overlay
    // shrinks to one range each way, and changing it range by range would cost more than
    // emptying both sets and filling them again, in the same one transaction.
    let fourth = write_list(
        &env,
        "fourth.netset",
        120_000,
        &["127.91.0.0/24", "10.1.0.0/24"],
    );
    import(&env, &fourth, &[]);
    overlay_holds(&env, (1, 1));
    assert!(
        env.helper_log().contains(
            ", emptied and filled): 2 ranges changed, the overlay now 1 ranges added and 1 removed"
        ),
        "{}",
        env.helper_log()
    );
    assert!(!connects_to(&env, "127.91.0.1") && connects_to(&env, gone));
    assert!(connects_to(&env, new) && connects_to(&env, "127.90.0.1"));
    assert!(!connects_to(&env, LISTED));

    // Back to the first version: the slices hold it alone, and the overlay sets go.
    import(&env, &first, &[]);
    assert!(
        env.helper_log()
            .contains(&format!("deleted the sets of lists no rule names: {added}")),
        "{}",
        env.helper_log()
    );
    assert_eq!(ranges(&env), slices);
    assert_eq!(loads_logged(&env), 2);
    assert!(!connects_to(&env, gone) && connects_to(&env, new));
    assert!(connects_to(&env, "127.90.0.1") && !connects_to(&env, LISTED));
    // What the overlay held was kept beside the record while it was live; it goes with it.
    assert!(!overlay_file.exists(), "{} is left", overlay_file.display());

    // An overlay whose kept contents are damaged is not trusted: the refresh that needs them
    // is refused with a sentence and changes nothing in the kernel, and the next one loads
    // the list whole into new slices.
    import(&env, &second, &[]);
    let (added, _) = overlay_of_big(&env);
    let overlay_file = env.state_dir().join(format!("data-overlay-{added}.ranges"));
    std::fs::write(&overlay_file, b"damaged").unwrap_or_else(|e| panic!("{e}"));
    let refused = env.palisadectl(
        Some(ADMIN),
        &["--json", "blocklist", "import", "big", &third],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("is not known") && text(&refused).contains("loads the list whole"),
        "{}",
        text(&refused)
    );
    assert!(!connects_to(&env, new) && connects_to(&env, "127.90.0.1"));
    import(&env, &third, &[]);
    // IPv4 loaded whole; the IPv6 overlay, undamaged, took its (empty) difference.
    assert_eq!(loads_logged(&env), 3, "the list was not loaded whole");
    assert_ne!(sets_of_big(&env, false), sets);
    assert!(connects_to(&env, new) && !connects_to(&env, "127.90.0.1"));
    assert!(!connects_to(&env, LISTED));

    // A host rule accepting the list (spread over slices) lets its addresses past the host's
    // later rules, which refuse the others.
    apply(
        &env,
        r#"
[[blocklist]]
name = "big"
imported = true

[[host_rule]]
action = "accept"
blocklist = "big"

[[host_rule]]
action = "reject"
destination = "127.0.0.0/8"
proto = "tcp"
ports = 8443
"#,
        &[],
    );
    assert!(
        connects_to(&env, LISTED) && connects_to(&env, "127.90.0.1"),
        "a listed address the host accepts was refused"
    );
    assert!(!connects_to(&env, UNLISTED) && !connects_to(&env, new));
}

/// The overlay sets (added, removed) of the IPv4 family of list `big`, from the helper's record.
fn overlay_of_big(env: &TestEnv) -> (String, String) {
    let record =
        std::fs::read(env.state_dir().join("data-sets.json")).unwrap_or_else(|e| panic!("{e}"));
    let record: serde_json::Value =
        serde_json::from_slice(&record).unwrap_or_else(|e| panic!("{e}"));
    let sets = record["sets"].as_object().cloned().unwrap_or_default();
    let find = |added: bool| -> String {
        let names: Vec<&String> = sets
            .iter()
            .filter(|(_, held)| {
                held["state"] == "overlay"
                    && held["list"] == "big"
                    && held["v6"] == false
                    && held["added"] == added
            })
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names.len(), 1, "{record}");
        names[0].clone()
    };
    (find(true), find(false))
}

#[test]
fn bad_lists_are_refused_with_a_sentence_and_change_nothing() {
    let env = start();
    let good = write_list(&env, "good.netset", 10, &[]);
    import(&env, &good, &[]);
    let before = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "blocklist", "show", "big"]),
    );

    let cases: Vec<(&str, Vec<u8>, Vec<&str>, &str)> = vec![
        (
            "everything.txt",
            b"10.0.0.0/8\n0.0.0.0/0\n".to_vec(),
            vec![],
            "covers every",
        ),
        (
            "strict.txt",
            b"10.0.0.0/8\n10.0.0.300\n".to_vec(),
            vec!["--strict"],
            "line 2",
        ),
        (
            "binary.bin",
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            vec![],
            "does not look like a blocklist",
        ),
    ];
    for (name, bytes, extra, needle) in cases {
        let path = env
            .write_file(name, &bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        let path = path.to_string_lossy().into_owned();
        let mut args = vec!["blocklist", "import", "big", path.as_str()];
        args.extend(extra.iter().copied());
        let out = env.palisadectl(Some(ADMIN), &args);
        assert_eq!(out.status.code(), Some(64), "{name}: {}", text(&out));
        assert!(text(&out).contains(needle), "{name}: {}", text(&out));
    }
    // Names that could inject anything go nowhere.
    let out = env.palisadectl(
        Some(ADMIN),
        &["blocklist", "import", "x; flush ruleset", &good],
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let after = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "blocklist", "show", "big"]),
    );
    assert_eq!(
        before.stdout, after.stdout,
        "a refused import changed the list"
    );

    // Malformed lines without --strict are skipped and reported with their numbers.
    let mixed = env
        .write_file("mixed.txt", "192.0.2.0/24\nnot an address\n198.51.100.7\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mixed = mixed.to_string_lossy().into_owned();
    let info = import(&env, &mixed, &[]);
    assert_eq!(info["ranges"].as_u64(), Some(2), "{info}");
    assert_eq!(info["problems"][0]["line"].as_u64(), Some(2), "{info}");
}

/// The helper killed (SIGKILL) at different moments of an import that replaces a list the policy
/// names: after each restart the kernel enforces the complete old list or the complete new one,
/// and the store says which.
/// The helper's peak resident memory so far, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("{e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[test]
fn two_gigabytes_of_junk_are_streamed_with_bounded_memory_and_refused() {
    let env = start();
    let good = write_list(&env, "good.netset", 10, &[]);
    import(&env, &good, &[]);
    let hash = show_hash(&env);

    // 2 GiB of printable junk without one line break: the parser must read all of it (it is
    // one line) while keeping only the first bytes of that line.
    let path = env.dir().join("junk.txt");
    {
        let mut w =
            std::io::BufWriter::new(std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}")));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let block: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'!' + (state % 94) as u8
            })
            .collect();
        for _ in 0..2048 {
            w.write_all(&block).unwrap_or_else(|e| panic!("{e}"));
        }
        w.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = env.helper_pid().unwrap_or_else(|| panic!("no helper"));
    let before = peak_kib(pid);
    let t = Instant::now();
    let out = env.palisadectl(
        Some(ADMIN),
        &["blocklist", "import", "big", &path.to_string_lossy()],
    );
    let took = t.elapsed();
    let after = peak_kib(pid);
    let _ = std::fs::remove_file(&path);
    eprintln!(
        "2 GiB of junk refused in {took:?}; helper peak {before} KiB before, {after} KiB after: {}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("does not look like a blocklist"),
        "{}",
        text(&out)
    );
    assert!(
        after < before + 64 * 1024,
        "the helper's peak memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(show_hash(&env), hash, "the refused import changed the list");
}

#[test]
fn a_helper_killed_during_an_import_comes_back_with_one_whole_list() {
    let mut env = start();
    let _listener = listen_any(&env);
    let old = write_list(&env, "old.netset", 20_000, &[]);
    import(&env, &old, &[]);
    apply(&env, &policy_with_list(9000), &[]);
    let old_hash = show_hash(&env);
    // The new version adds a network at its very end: it is the last range loaded.
    let new = write_list(&env, "new.netset", 300_000, &["127.88.0.0/24"]);
    let mut outcomes = Vec::new();
    for delay_ms in [200u64, 900, 2_500, 6_000] {
        let mut importing = spawn_palisadectl(&env, ADMIN, &["blocklist", "import", "big", &new]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        env.kill_helper(palisade_tests::Signal::SIGKILL)
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = importing.wait();
        env.start_helper().unwrap_or_else(|e| panic!("{e}"));
        let hash = show_hash(&env);
        let new_enforced = !connects_to(&env, "127.88.0.1");
        assert!(
            !connects_to(&env, LISTED),
            "after a kill at {delay_ms} ms nothing is listed"
        );
        assert!(connects_to(&env, UNLISTED));
        if hash == old_hash {
            assert!(
                !new_enforced,
                "the store has the old list, the kernel the new one"
            );
        } else {
            assert!(
                new_enforced,
                "the store has the new list, the kernel not all of it"
            );
        }
        outcomes.push((delay_ms, hash != old_hash));
        // Back to the old list for the next round.
        import(&env, &old, &[]);
        assert!(connects_to(&env, "127.88.0.1"));
    }
    eprintln!("kill moments (ms) and whether the new list had landed: {outcomes:?}");
}

fn show_hash(env: &TestEnv) -> String {
    let out = ok(
        env,
        env.palisadectl(Some(ADMIN), &["--json", "blocklist", "show", "big"]),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["content_hash"].as_str().unwrap_or_default().to_owned()
}

fn show_big(env: &TestEnv) -> serde_json::Value {
    let out = ok(
        env,
        env.palisadectl(Some(ADMIN), &["--json", "blocklist", "show", "big"]),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn a_list_imported_by_url_is_refreshed_conditionally_and_bad_addresses_change_nothing() {
    let env = start();
    let _listener = listen_any(&env);
    let www = env.dir().join("www");
    std::fs::create_dir_all(&www).unwrap_or_else(|e| panic!("{e}"));
    let list = www.join("list.txt");
    std::fs::write(
        &list,
        "# served\n192.0.2.0/24\n198.51.100.0/24\n127.66.0.0/24\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let _server = serve(&env, &www);
    let url = format!("http://127.0.0.1:{HTTP_PORT}/list.txt");

    // Imported by address, named by the policy: enforced.
    let out = ok(
        &env,
        env.palisadectl(
            Some(ADMIN),
            &[
                "--json",
                "blocklist",
                "import",
                "big",
                "--url",
                &url,
                "--refresh",
                "1h",
            ],
        ),
    );
    let info: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(info["source_kind"], "url", "{info}");
    assert_eq!(info["source"], url.as_str(), "{info}");
    assert_eq!(info["ranges"].as_u64(), Some(3), "{info}");
    apply(&env, &policy_with_list(9000), &[]);
    assert!(!connects_to(&env, LISTED), "a listed address connects");
    assert!(
        connects_to(&env, UNLISTED),
        "an unlisted address is refused"
    );
    let loads = loads_logged(&env);
    assert!(loads >= 1, "the list was never loaded");

    // Unchanged at the source: the conditional request is answered 304, nothing is reloaded.
    let first = show_big(&env);
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "blocklist", "refresh", "big"]),
    );
    let refreshed: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(refreshed["content_hash"], first["content_hash"]);
    assert!(
        refreshed["refreshed_at"].as_u64() >= first["refreshed_at"].as_u64(),
        "{refreshed}"
    );
    assert_eq!(loads_logged(&env), loads, "an unchanged list was reloaded");
    assert!(
        env.helper_log().contains("not modified at its source"),
        "no conditional request was answered 304"
    );

    // Changed at the source (a later modification time): the new version is enforced.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &list,
        "# served\n192.0.2.0/24\n198.51.100.0/24\n127.77.0.0/24\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "blocklist", "refresh", "big"]),
    );
    let changed: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_ne!(changed["content_hash"], first["content_hash"], "{changed}");
    // A few ranges changed: the list is updated by the difference, not reloaded.
    assert_eq!(loads_logged(&env), loads, "the changed list was reloaded");
    assert!(
        env.helper_log().contains("updated list big in place"),
        "the changed list was not updated: {}",
        env.helper_log()
    );
    assert!(
        connects_to(&env, LISTED),
        "a removed network is still refused"
    );
    assert!(!connects_to(&env, UNLISTED), "an added network connects");

    // Other schemes are refused before any connection, with a sentence; a 404 changes nothing.
    let before = show_big(&env);
    for bad in ["file:///etc/shadow", "gopher://127.0.0.1:70/"] {
        let out = env.palisadectl(Some(ADMIN), &["blocklist", "import", "big", "--url", bad]);
        assert_eq!(out.status.code(), Some(64), "{bad}: {}", text(&out));
        assert!(
            text(&out).contains("not an http or https address"),
            "{bad}: {}",
            text(&out)
        );
    }
    let missing = format!("http://127.0.0.1:{HTTP_PORT}/missing.txt");
    let out = env.palisadectl(
        Some(ADMIN),
        &["blocklist", "import", "big", "--url", &missing],
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("404"), "{}", text(&out));
    let after = show_big(&env);
    assert_eq!(after["content_hash"], before["content_hash"]);
    assert_eq!(after["source"], url.as_str(), "{after}");
    assert!(!connects_to(&env, UNLISTED));
}
