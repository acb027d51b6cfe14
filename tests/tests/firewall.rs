//! Acceptance tests of the Foundation issue: the firewall engine, on the real kernel, driven
//! through the real bus and polkit as the real users.

mod common;

use common::*;
use palisade_tests::{Signal, TestEnv, ADMIN, ALICE, BOB};
use std::time::{Duration, Instant};

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

#[test]
fn admin_applies_and_every_user_sees_the_result_per_polkit() {
    let env = start();
    let generation = apply(&env, &work_policy(8443), &[]);
    assert_eq!(generation, 1);
    assert_eq!(common::generation(&env), 1);
    // Alice may read (test rule), Bob may not, and Alice may not change it.
    ok(&env, env.palisadectl(Some(ALICE), &["policy", "show"]));
    let bob = env.palisadectl(Some(BOB), &["policy", "show"]);
    assert_eq!(bob.status.code(), Some(77), "{}", text(&bob));
    assert!(
        String::from_utf8_lossy(&bob.stderr).contains("not allowed"),
        "{}",
        text(&bob)
    );
    let file = env
        .write_file("p.toml", work_policy(9000))
        .unwrap_or_else(|e| panic!("{e}"));
    let alice = env.palisadectl(Some(ALICE), &["policy", "apply", &file.to_string_lossy()]);
    assert_eq!(alice.status.code(), Some(77), "{}", text(&alice));
    assert_eq!(common::generation(&env), 1);
    // The history records who applied it.
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "policy", "history"]),
    );
    let h: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let admin_uid = env.uid_of(ADMIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h[0]["author_uid"].as_u64(), Some(u64::from(admin_uid)));
    assert_eq!(h[0]["state"], "live");

    // What changed between two generations, as Alice may read it; Bob may not.
    apply(&env, &work_policy(9001), &[]);
    let diff = ok(&env, env.palisadectl(Some(ALICE), &["policy", "diff", "1"]));
    let diff = String::from_utf8_lossy(&diff.stdout).into_owned();
    assert!(
        diff.contains("--- generation 1") && diff.contains("+++ generation 2"),
        "{diff}"
    );
    assert!(
        diff.contains("\n-ports = 8443") && diff.contains("\n+ports = 9001"),
        "{diff}"
    );
    assert_eq!(diff.matches("\n-").count(), 1, "{diff}");
    let same = ok(
        &env,
        env.palisadectl(Some(ALICE), &["policy", "diff", "2", "2"]),
    );
    assert!(
        text(&same).contains("have the same policy"),
        "{}",
        text(&same)
    );
    let missing = env.palisadectl(Some(ALICE), &["policy", "diff", "1", "99"]);
    assert!(
        !missing.status.success() && text(&missing).contains("there is no generation 99"),
        "{}",
        text(&missing)
    );
    let bob = env.palisadectl(Some(BOB), &["policy", "diff", "1"]);
    assert_eq!(bob.status.code(), Some(77), "{}", text(&bob));
}

/// Introspects the helper and calls every method of every Palisade interface as pal-bob: each
/// must answer NotAuthorized. A method added later without a polkit check fails this test.
#[test]
fn every_method_is_refused_to_an_unauthorized_user() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let before = table_raw(&env);
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/call_all.py"));
    let out = env.run_as_timeout(
        Some(BOB),
        &["/usr/bin/python3".as_ref(), tool.as_os_str()],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out));
    let calls: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let interfaces: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c["interface"].as_str())
        .collect();
    assert!(
        interfaces.contains("io.palisade.Helper1.Policy")
            && interfaces.contains("io.palisade.Helper1.Vms"),
        "interfaces missing from introspection: {interfaces:?}"
    );
    assert!(
        calls.len() >= 27,
        "too few methods and properties found: {}",
        calls.len()
    );
    assert!(
        calls.iter().any(|c| c["property"] == "States"),
        "the VM states property is missing"
    );
    assert!(
        calls
            .iter()
            .any(|c| c["interface"] == "io.palisade.Helper1.Vms" && c["method"] == "Delete"),
        "Vms.Delete was not called"
    );
    for call in &calls {
        // Property reads can only fail with the standard errors; the sentence is the same.
        let expected = if call.get("property").is_some() {
            "org.freedesktop.DBus.Error.AccessDenied"
        } else {
            "io.palisade.Error.NotAuthorized"
        };
        assert_eq!(call["error"], expected, "not refused to pal-bob: {call}");
        assert!(
            call["seconds"].as_f64().unwrap_or(99.0) < 10.0,
            "too slow: {call}"
        );
    }
    assert_eq!(
        table_raw(&env),
        before,
        "a refused call changed the ruleset"
    );
}

#[test]
fn vm_egress_obeys_its_allow_list_and_counts_drops() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let _listener = listen(&env, &[8443, 8444]);
    let vm_user = "palisade-vm-work";
    let before = counter(&env, "vm_work", "default action");
    assert!(
        connects(&env, vm_user, 8443),
        "work's UID must reach 127.0.0.1:8443"
    );
    assert!(
        !connects(&env, vm_user, 8444),
        "work's UID must not reach 127.0.0.1:8444"
    );
    assert!(
        counter(&env, "vm_work", "default action") > before,
        "the default drop rule did not count"
    );
    // Only the VM's UID is restricted: another user reaches both ports.
    assert!(connects(&env, ALICE, 8444));
}

#[test]
fn unconfirmed_apply_reverts_to_the_previous_ruleset() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let confirmed = table_normalised(&env);
    let pending = apply(&env, &work_policy(9443), &["--confirm", "2"]);
    assert_eq!(pending, 2);
    assert_ne!(
        table_normalised(&env),
        confirmed,
        "the pending ruleset is not live"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        table_normalised(&env),
        confirmed,
        "the previous ruleset did not come back"
    );
    assert_eq!(common::generation(&env), 1);
    let out = ok(
        &env,
        env.palisadectl(None, &["--json", "policy", "history"]),
    );
    let h: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h[0]["generation"], 2);
    assert_eq!(h[0]["state"], "reverted");
}

#[test]
fn confirmed_apply_stays_and_conflicts_are_refused() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let pending = apply(&env, &work_policy(9443), &["--confirm", "2"]);
    ok(
        &env,
        env.palisadectl(Some(ADMIN), &["policy", "confirm", &pending.to_string()]),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(common::generation(&env), pending);
    // Someone editing from generation 1 is told that generation 2 is live now.
    let file = env
        .write_file("stale.toml", work_policy(7000))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = env.palisadectl(
        Some(ADMIN),
        &["policy", "apply", &file.to_string_lossy(), "--base", "1"],
    );
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("generation 2 is live"),
        "{}",
        text(&out)
    );
    // Rollback makes generation 1's policy live again, as generation 3.
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "policy", "rollback", "1"]),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["generation"], 3);
    let shown = ok(&env, env.palisadectl(None, &["policy", "show"]));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("ports = 8443"));
}

#[test]
fn other_managers_tables_do_not_touch_ours() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let before = table_raw(&env);
    for cmd in [
        "add table inet othermgr",
        "add chain inet othermgr output { type filter hook output priority 10; policy accept; }",
        "add rule inet othermgr output tcp dport 22 accept",
        "flush table inet othermgr",
        "delete table inet othermgr",
        "add table ip filter",
        "flush table ip filter",
        "delete table ip filter",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let out = env.nft(&args);
        assert!(out.status.success(), "nft {cmd}: {}", text(&out));
    }
    assert_eq!(table_raw(&env), before);
}

#[test]
fn bad_input_is_refused_with_path_and_sentence_and_changes_nothing() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let before = table_raw(&env);
    let big_comment = format!(
        "[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"drop\"\ncomment = \"{}\"\n",
        "x".repeat(5 * 1024 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("injection", b"[[vm]]\nname = \"work; flush ruleset\"\n".to_vec(), "vm#1.name", "not a valid VM name"),
        ("traversal", b"[[vm]]\nname = \"work\"\ndisk = \"../../etc/passwd\"\n".to_vec(), "vm[work].disk", "not a valid disk name"),
        (
            "port",
            b"[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\nproto = \"tcp\"\nports = 70000\n".to_vec(),
            "vm[work].rule[1].ports",
            "out of range",
        ),
        (
            "cidr",
            b"[[vm]]\nname = \"work\"\n[[vm.rule]]\naction = \"accept\"\ndestination = \"10.0.0.0/33\"\n".to_vec(),
            "vm[work].rule[1].destination",
            "prefix length",
        ),
        ("comment", big_comment.into_bytes(), "vm[work].rule[1].comment", "at most 256"),
        ("utf8", b"[[vm]]\nname = \"w\xff\xfeork\"\n".to_vec(), "policy", "not valid UTF-8"),
        ("duplicate", b"[[vm]]\nname = \"work\"\n[[vm]]\nname = \"work\"\n".to_vec(), "vm[work]", "used twice"),
        ("unknown", b"[[vm]]\nname = \"work\"\nfirewal = \"off\"\n".to_vec(), "vm", "unknown field"),
    ];
    for (label, doc, path, sentence) in cases {
        let file = env
            .write_file(&format!("bad-{label}.toml"), &doc)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = env.palisadectl(Some(ADMIN), &["policy", "apply", &file.to_string_lossy()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{label}: {}", text(&out));
        assert!(
            err.contains(path) && err.contains(sentence),
            "{label}: wanted {path}: {sentence}\n{}",
            text(&out)
        );
        assert!(
            err.len() < 4096,
            "{label}: the error echoes too much input ({} bytes)",
            err.len()
        );
        assert_eq!(table_raw(&env), before, "{label}: the ruleset changed");
    }
    assert_eq!(common::generation(&env), 1);
}

#[test]
fn a_killed_helper_leaves_the_rules_and_comes_back_with_the_same_generation() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    let generation = common::generation(&env);
    let before = table_raw(&env);
    env.kill_helper(Signal::SIGKILL)
        .unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        table_raw(&env),
        before,
        "the kernel lost the ruleset with the helper"
    );
    let _listener = listen(&env, &[8444]);
    assert!(
        !connects(&env, "palisade-vm-work", 8444),
        "enforcement stopped with the helper"
    );
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(common::generation(&env), generation);
}

#[test]
fn with_polkit_stopped_every_method_is_refused_quickly() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    env.stop_polkit();
    for (user, args) in [
        (Some(ADMIN), vec!["status"]),
        (Some(ADMIN), vec!["policy", "show"]),
        (Some(ADMIN), vec!["policy", "history"]),
        (None, vec!["policy", "confirm", "1"]),
        (None, vec!["policy", "rollback", "1"]),
    ] {
        let started = Instant::now();
        let out = env.palisadectl(user, &args);
        assert_eq!(out.status.code(), Some(77), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("polkit"),
            "{}",
            text(&out)
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} hung");
    }
    env.start_polkit().unwrap_or_else(|e| panic!("{e:#}"));
    ok(&env, env.palisadectl(Some(ADMIN), &["status"]));
}

#[test]
fn removing_an_allowance_cuts_an_open_connection() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let _listener = listen(&env, &[8443]);
    let (session, first) = Session::open(&env, "palisade-vm-work", 8443);
    assert_eq!(first, "one: echoed", "the allowed connection did not work");
    // Same VM, same default, but the allowance is gone.
    let closed = work_policy(8443).replace("ports = 8443", "ports = 9999");
    apply(&env, &closed, &[]);
    let second = session.second();
    assert!(
        second.starts_with("two: cut"),
        "the open connection survived: {second}"
    );
}

/// A document over the size limit is refused with a sentence naming the limit and what to do,
/// before it reaches the bus (which would only cut the connection), and changes nothing.
#[test]
fn a_too_large_document_is_refused_with_the_limit_and_what_to_do() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let huge = "#".repeat(palisade_dbus::policy::MAX_DOCUMENT_BYTES + 1);
    let file = env
        .write_file("huge.toml", huge)
        .unwrap_or_else(|e| panic!("{e}"));
    for verb in ["apply", "preview", "validate"] {
        let out = env.palisadectl(Some(ADMIN), &["policy", verb, &file.to_string_lossy()]);
        assert_eq!(out.status.code(), Some(64), "{verb}: {}", text(&out));
        assert!(
            text(&out).contains("larger than 16 MiB") && text(&out).contains("blocklist import"),
            "{verb}: {}",
            text(&out)
        );
    }
    assert_eq!(common::generation(&env), 1);
}

/// VM `work` with `n` rules dropping ICMP to 10.x.y.1 (neighbours on different ICMP types,
/// so none merge, and ICMP rules are never elements of a map or set: each is a kernel rule),
/// each commented `r<k>`, and at `listener` the rule accepting the test listener on
/// 127.0.0.1:`port`.
fn long_policy(n: usize, listener: usize, port: u16) -> String {
    rules_policy(n, listener, port, |k| (k % 2).to_string())
        .split_inclusive("\n[[vm.rule]]")
        .map(|rule| match rule.contains("127.0.0.1") {
            true => rule.to_owned(),
            false => rule
                .replace("action = \"accept\"", "action = \"drop\"")
                .replace("proto = \"tcp\"", "proto = \"icmp\"")
                .replace("ports = ", "icmp_type = "),
        })
        .collect()
}

/// VM `work` with `n` rules accepting 10.x.y.1 on a range of ports (neighbours on different
/// ranges, so none merge: a run the compiler makes an interval map), the one at `listener` to
/// 127.0.0.1:`port`.
fn ranged_policy(n: usize, listener: usize, port: u16) -> String {
    rules_policy(n, listener, port, |k| {
        format!("\"{}-{}\"", 1000 + k % 2, 1100 + k % 2)
    })
}

/// VM `work` with `n` rules to 10.x.y.1 on one port each (neighbours on different ports: a run
/// the compiler makes a mark map), the one at `listener` to 127.0.0.1:`port`.
fn mapped_policy(n: usize, listener: usize, port: u16) -> String {
    rules_policy(n, listener, port, |k| (1000 + k % 2).to_string())
}

/// Like [`mapped_policy`] with a /24 network in each rule (10.x.y.0/24, and 127.0.0.0/24 for
/// the listener's).
fn mapped_networks_policy(n: usize, listener: usize, port: u16) -> String {
    let doc = rules_policy(n, listener, port, |k| (1000 + k % 2).to_string());
    doc.lines()
        .map(|line| match line.strip_prefix("destination = \"") {
            Some(host) => {
                let net = host
                    .trim_end_matches('"')
                    .rsplit_once('.')
                    .map_or("", |(n, _)| n);
                format!("destination = \"{net}.0/24\"\n")
            }
            None => format!("{line}\n"),
        })
        .collect()
}

fn rules_policy(n: usize, listener: usize, port: u16, ports: impl Fn(usize) -> String) -> String {
    let mut doc = String::from(
        "[[vm]]\nname = \"work\"\nconsole = { users = [\"pal-alice\"] }\ndefault = \"drop\"\n",
    );
    for k in 0..n {
        let (destination, port) = if k == listener {
            ("127.0.0.1".to_owned(), port.to_string())
        } else {
            (format!("10.{}.{}.1", k / 256, k % 256), ports(k))
        };
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"accept\"\ndestination = \"{destination}\"\nproto = \"tcp\"\nports = {port}\ncomment = \"r{k}\"\n"
        ));
    }
    doc
}

/// The kernel's handle of the rule of `vm_work` commented `comment`.
fn handle_of(env: &TestEnv, comment: &str) -> Option<u64> {
    let out = ok(
        env,
        env.nft(&["-a", "list", "chain", "inet", "palisade", "vm_work"]),
    );
    let needle = format!("comment \"{comment}\" # handle ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.split(&needle).nth(1)?.trim().parse().ok())
}

/// Our table as `table_normalised` gives it, with set elements in order (a set changed in
/// place may list them in another order than one loaded whole), and sets and maps in order of
/// their names (the kernel lists them in the order they were made, and a map kept through a
/// replacement of the structure is older than the sets made again around it).
fn table_sorted(env: &TestEnv) -> serde_json::Value {
    fn sort(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(elems)) = map.get_mut("elem") {
                    elems.sort_by_key(|e| e.to_string());
                }
                map.values_mut().for_each(sort);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(sort),
            _ => {}
        }
    }
    let mut v = table_normalised(env);
    sort(&mut v);
    if let Some(items) = v.get_mut("nftables").and_then(|n| n.as_array_mut()) {
        let is_set = |i: &serde_json::Value| i.get("set").is_some() || i.get("map").is_some();
        let Some(first) = items.iter().position(is_set) else {
            return v;
        };
        let mut sets: Vec<serde_json::Value> =
            items.iter().filter(|i| is_set(i)).cloned().collect();
        sets.sort_by_key(|s| s.to_string());
        items.retain(|i| !is_set(i));
        items.splice(first..first, sets);
    }
    v
}

#[test]
fn a_rule_changed_in_a_long_policy_is_changed_in_place_and_hand_edits_still_go() {
    let env = start();
    let _listener = listen(&env, &[8443, 8444]);
    let vm_user = "palisade-vm-work";
    apply(&env, &long_policy(2000, 1000, 8443), &[]);
    assert!(connects(&env, vm_user, 8443));
    assert!(!connects(&env, vm_user, 8444));
    let far = handle_of(&env, "r5").unwrap_or_else(|| panic!("rule r5 is listed"));
    let changed = handle_of(&env, "r1000").unwrap_or_else(|| panic!("rule r1000 is listed"));

    // One rule changes: the kernel gets just that rule (the others keep their handles) and
    // enforces it at once, for a real connection.
    apply(&env, &long_policy(2000, 1000, 8444), &[]);
    assert!(
        connects(&env, vm_user, 8444),
        "the changed rule is enforced"
    );
    assert!(!connects(&env, vm_user, 8443), "the old rule is gone");
    assert_eq!(
        handle_of(&env, "r5"),
        Some(far),
        "an unchanged rule was loaded again"
    );
    assert_ne!(handle_of(&env, "r1000"), Some(changed));
    let in_place = table_sorted(&env);

    // The same policy loaded whole (anyone else's commit makes the helper distrust its record
    // and go through nft -f): the table is the same, rule for rule, counter for counter.
    ok(&env, env.nft(&["add", "table", "inet", "someone_else"]));
    apply(&env, &long_policy(2000, 1000, 8444), &[]);
    assert_ne!(
        handle_of(&env, "r5"),
        Some(far),
        "this apply loads the table whole"
    );
    assert_eq!(table_sorted(&env), in_place);
    let far = handle_of(&env, "r5").unwrap_or_else(|| panic!("rule r5 is listed"));

    // A rule added to our table by hand goes at the next apply, as the table's comment says,
    // though that apply changes a single rule.
    ok(
        &env,
        env.nft(&[
            "insert",
            "rule",
            "inet",
            "palisade",
            "vm_work",
            "tcp",
            "dport",
            "8443",
            "accept",
            "comment",
            "\"by hand\"",
        ]),
    );
    assert!(
        connects(&env, vm_user, 8443),
        "the hand-made rule lets it through"
    );
    apply(&env, &long_policy(2000, 1000, 8443), &[]);
    assert_eq!(
        handle_of(&env, "by hand"),
        None,
        "the hand-made rule survived an apply"
    );
    assert!(connects(&env, vm_user, 8443));
    assert!(!connects(&env, vm_user, 8444));

    // Then changes go in place again.
    let far = handle_of(&env, "r5").unwrap_or(far);
    apply(&env, &long_policy(2000, 1500, 8444), &[]);
    assert_eq!(handle_of(&env, "r5"), Some(far));
    assert!(connects(&env, vm_user, 8444));
    assert!(!connects(&env, vm_user, 8443));
}

/// The kernel's handle of the rule of `vm_work` holding `text`, and of the map `map`.
fn handles(env: &TestEnv, text: &str, map: &str) -> (Option<u64>, Option<u64>) {
    let out = ok(
        env,
        env.nft(&["-a", "list", "chain", "inet", "palisade", "vm_work"]),
    );
    let rule = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(text))
        .find_map(|l| l.split("# handle ").nth(1)?.trim().parse().ok());
    let out = ok(
        env,
        env.nft(&["-a", "list", "map", "inet", "palisade", map]),
    );
    let set = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.split("{ # handle ").nth(1)?.trim().parse().ok());
    (rule, set)
}

/// The elements of a mark map of our table, and the line of the one for 127.0.0.1.
fn map_elements(env: &TestEnv, map: &str) -> (usize, String) {
    let out = ok(env, env.nft(&["list", "map", "inet", "palisade", map]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let local = text
        .lines()
        .find(|l| l.contains("127.0.0.1 . tcp"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    (text.matches(" : 0x").count(), local)
}

/// A run of network rules of one length is a map too, looked up by the address masked to that
/// length: the network holding the listener lets the VM's user through on its port alone, and
/// a change of its rule is a change of its element.
#[test]
fn a_long_run_of_network_rules_is_one_map_looked_up_by_the_masked_address() {
    let env = start();
    let _listener = listen(&env, &[8443, 8444]);
    let vm_user = "palisade-vm-work";
    let map = "vm_work_m0_v4";
    apply(&env, &mapped_networks_policy(500, 250, 8443), &[]);
    let (count, _) = map_elements(&env, map);
    assert_eq!(count, 500, "every rule is an element");
    let lookup =
        format!("ct mark set ip daddr & 255.255.255.0 . meta l4proto . th dport map @{map} accept");
    let (rule, set) = handles(&env, &lookup, map);
    assert!(rule.is_some() && set.is_some(), "one rule looks the map up");
    assert!(
        connects(&env, vm_user, 8443),
        "the listener's network is refused"
    );
    assert!(
        !connects(&env, vm_user, 8444),
        "another port of the network passes"
    );
    apply(&env, &mapped_networks_policy(500, 250, 8444), &[]);
    assert!(connects(&env, vm_user, 8444) && !connects(&env, vm_user, 8443));
    assert_eq!(
        handles(&env, &lookup, map),
        (rule, set),
        "the map or its rule was loaded again"
    );
}

/// A run of rules on port ranges is an interval map: the listener's element lets the VM's user
/// through on its port alone. A changed rule replaces the map whole in one transaction; the
/// elements that stay keep their counts, the changed one counts anew and its open connection
/// is cut.
#[test]
fn a_long_run_of_port_range_rules_is_one_interval_map_replaced_whole() {
    let env = start();
    let _listener = listen(&env, &[8443, 8444]);
    let vm_user = "palisade-vm-work";
    let place = "vm_work_r0_v4";
    apply(&env, &ranged_policy(2000, 1000, 8443), &[]);
    let map = looked_up(&env, "vm_work", place);
    let lookup = format!("ct mark set ip daddr . meta l4proto . th dport map @{map} accept");
    let (count, local) = map_elements(&env, &map);
    assert_eq!(count, 2000, "every rule is an element");
    assert!(local.contains("comment \"c_vm_work_r1001_"), "{local}");
    let listed = String::from_utf8_lossy(
        &ok(&env, env.nft(&["list", "map", "inet", "palisade", &map])).stdout,
    )
    .into_owned();
    assert!(listed.contains("flags interval"), "{listed}");
    assert!(listed.contains("10.0.5.1 . tcp . 1001-1101 "), "{listed}");
    let (rule, set) = handles(&env, &lookup, &map);
    assert!(rule.is_some() && set.is_some(), "one rule looks the map up");
    let (session, first) = Session::open(&env, vm_user, 8443);
    assert_eq!(first, "one: echoed", "the allowed connection did not work");
    assert!(connects(&env, vm_user, 8443));
    assert!(!connects(&env, vm_user, 8444), "another port passes");
    let counted = rule_counter(&env, "work", "numbered", 1001);
    let before = counted["packets"].as_u64().unwrap_or(0);
    assert!(before >= 2, "{counted}");

    // A change elsewhere in the policy leaves the map as it is: not made or filled again.
    let logged = format!(
        "{}[[vm.rule]]\naction = \"accept\"\ndestination = \"192.0.2.1\"\nproto = \"tcp\"\nports = 1\nlog = true\n",
        ranged_policy(2000, 1000, 8443)
    );
    apply(&env, &logged, &[]);
    assert_eq!(looked_up(&env, "vm_work", place), map);
    assert_eq!(
        handles(&env, &lookup, &map).1,
        set,
        "the map was made again"
    );

    // Another rule of the run changes: a new map in its place, the old one gone, the
    // listener's element with its count, the session on.
    let other = ranged_policy(2000, 1000, 8443).replacen(
        "ports = \"1001-1101\"\ncomment = \"r5\"",
        "ports = \"2001-2101\"\ncomment = \"r5\"",
        1,
    );
    apply(&env, &other, &[]);
    let replaced = looked_up(&env, "vm_work", place);
    assert_ne!(replaced, map, "the map is replaced whole");
    let table = String::from_utf8_lossy(
        &ok(&env, env.nft(&["-t", "list", "table", "inet", "palisade"])).stdout,
    )
    .into_owned();
    assert_eq!(
        table.matches(&format!("map {place}_")).count(),
        1,
        "{table}"
    );
    let listed = String::from_utf8_lossy(
        &ok(
            &env,
            env.nft(&["list", "map", "inet", "palisade", &replaced]),
        )
        .stdout,
    )
    .into_owned();
    assert!(listed.contains("10.0.5.1 . tcp . 2001-2101 "), "{listed}");
    let counted = rule_counter(&env, "work", "numbered", 1001);
    assert_eq!(
        counted["packets"].as_u64(),
        Some(before),
        "the count stays: {counted}"
    );

    // The listener's rule changes: its open connection is cut, the new port passes, the old
    // one does not, and the rule counts anew.
    let changed = other.replacen("ports = 8443", "ports = 8444", 1);
    apply(&env, &changed, &[]);
    listener_rule_moved(&env, vm_user, session);
    let counted = rule_counter(&env, "work", "numbered", 1001);
    assert_eq!(
        counted["packets"].as_u64(),
        Some(1),
        "counts anew: {counted}"
    );
    assert_eq!(
        map_elements(&env, &looked_up(&env, "vm_work", place)).0,
        2000
    );
}

/// After the listener's rule moved from port 8443 to 8444: the session opened under the old
/// rule is cut, the new port passes, the old one does not.
fn listener_rule_moved(env: &TestEnv, vm_user: &str, session: Session) {
    let second = session.second();
    assert!(
        second.starts_with("two: cut"),
        "the open connection survived: {second}"
    );
    assert!(connects(env, vm_user, 8444), "the changed rule is enforced");
    assert!(!connects(env, vm_user, 8443), "the old rule is gone");
}

/// The name of the interval map or set at `place` (its name less the fingerprint of its
/// elements) that a rule of `chain` looks up.
fn looked_up(env: &TestEnv, chain: &str, place: &str) -> String {
    let out = ok(env, env.nft(&["list", "chain", "inet", "palisade", chain]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find_map(|word| {
            let name = word.strip_prefix('@')?;
            name.strip_prefix(place)?
                .starts_with('_')
                .then(|| name.to_owned())
        })
        .unwrap_or_else(|| panic!("no rule of {chain} looks up {place}_…: {text}"))
}

/// `n` host rules rejecting 10.x.y.1 on port ranges (neighbours on different ranges: a run
/// the compiler makes one rule set), the one at `listener` rejecting 127.0.0.1:`port`.
fn host_rejects_policy(n: usize, listener: usize, port: u16) -> String {
    (0..n)
        .map(|k| {
            let (destination, ports) = match k == listener {
                true => ("127.0.0.1".to_owned(), port.to_string()),
                false => (
                    format!("10.{}.{}.1", k / 256, k % 256),
                    format!("\"{}-{}\"", 1000 + k % 2, 1100 + k % 2),
                ),
            };
            format!(
                "[[host_rule]]\naction = \"reject\"\ndestination = \"{destination}\"\nproto = \"tcp\"\nports = {ports}\ncomment = \"r{k}\"\n"
            )
        })
        .collect()
}

/// What the host rule numbered `first` counted, as `log counters` says.
fn host_counter(env: &TestEnv, first: u64) -> Option<u64> {
    json_out(env, ADMIN, &["log", "counters"])
        .as_array()?
        .iter()
        .find(|c| c["rule"]["owner"] == "host" && c["rule"]["first_rule"] == first)?["packets"]
        .as_u64()
}

/// A run of the host's rejects is one rule set: the listener's element refuses a local user's
/// connection on its port alone and counts it; a changed rule replaces the set whole.
#[test]
fn a_long_run_of_host_rejects_is_one_rule_set_looked_up_with_its_verdict() {
    let env = start();
    let _listener = listen(&env, &[8443, 8444]);
    apply(&env, &host_rejects_policy(2000, 1000, 8443), &[]);
    let set = looked_up(&env, "host", "host_s0_v4");
    let listed = String::from_utf8_lossy(
        &ok(&env, env.nft(&["list", "set", "inet", "palisade", &set])).stdout,
    )
    .into_owned();
    assert_eq!(
        listed.matches("comment \"c_host_r").count(),
        2000,
        "{listed}"
    );
    assert!(
        listed.contains("127.0.0.1 . tcp . 8443 counter packets 0 "),
        "{listed}"
    );
    let lookup = format!("ip daddr . meta l4proto . th dport @{set} jump do_reject");
    let chain = String::from_utf8_lossy(
        &ok(
            &env,
            env.nft(&["list", "chain", "inet", "palisade", "host"]),
        )
        .stdout,
    )
    .into_owned();
    assert!(chain.contains(&lookup), "{chain}");
    assert!(
        !connects(&env, ADMIN, 8443),
        "the listed endpoint is reached"
    );
    assert!(connects(&env, ADMIN, 8444), "another port is refused");
    assert_eq!(host_counter(&env, 1001), Some(1), "the refusal is counted");

    apply(&env, &host_rejects_policy(2000, 1000, 8444), &[]);
    assert!(connects(&env, ADMIN, 8443), "the old rule stays");
    assert!(
        !connects(&env, ADMIN, 8444),
        "the changed rule is not enforced"
    );
    assert_eq!(
        host_counter(&env, 1001),
        Some(1),
        "the changed rule counts anew"
    );
}

#[test]
fn a_long_run_of_host_rules_is_one_map_changed_element_by_element() {
    let env = start();
    let _listener = listen(&env, &[8443, 8444]);
    let vm_user = "palisade-vm-work";
    let map = "vm_work_m0_v4";
    apply(&env, &mapped_policy(2000, 1000, 8443), &[]);
    let (count, local) = map_elements(&env, map);
    assert_eq!(count, 2000, "every rule is an element");
    assert!(local.contains("comment \"c_vm_work_r1001_"), "{local}");
    let (rule, set) = handles(&env, &format!("map @{map} accept"), map);
    assert!(rule.is_some() && set.is_some(), "one rule looks the map up");

    // An open connection whose rule changes is cut: its element's mark leaves the live marks.
    let (session, first) = Session::open(&env, vm_user, 8443);
    assert_eq!(first, "one: echoed", "the allowed connection did not work");
    assert!(!connects(&env, vm_user, 8444));
    assert!(connects(&env, vm_user, 8443));
    // Counted by the element, read as the rule's counter: the session and the connect.
    let counted = rule_counter(&env, "work", "numbered", 1001);
    assert!(counted["packets"].as_u64() >= Some(2), "{counted}");

    // The rule changes: its element is replaced in place, the map and its rule stay.
    apply(&env, &mapped_policy(2000, 1000, 8444), &[]);
    listener_rule_moved(&env, vm_user, session);
    assert_eq!(
        handles(&env, &format!("map @{map} accept"), map),
        (rule, set),
        "the map or its rule was loaded again"
    );
    let (count, local) = map_elements(&env, map);
    assert_eq!(count, 2000);
    assert!(local.contains(". 8444 counter packets 1 "), "{local}");
    let counted = rule_counter(&env, "work", "numbered", 1001);
    assert_eq!(
        counted["packets"].as_u64(),
        Some(1),
        "a changed rule counts anew: {counted}"
    );
    let in_place = table_sorted(&env);

    // Loaded whole (someone else's commit makes the helper distrust its record), the table is
    // the same, element for element, and the map's elements keep their counts: the structure
    // changes the map the kernel has, as a restarted helper's first install does.
    ok(&env, env.nft(&["add", "table", "inet", "someone_else"]));
    apply(&env, &mapped_policy(2000, 1000, 8444), &[]);
    let (reloaded, kept) = handles(&env, &format!("map @{map} accept"), map);
    assert_ne!(reloaded, rule, "this apply loads the structure whole");
    assert_eq!(kept, set, "the map stays");
    assert_eq!(table_sorted(&env), in_place);
    let counted = rule_counter(&env, "work", "numbered", 1001);
    assert_eq!(
        counted["packets"].as_u64(),
        Some(1),
        "the count stays: {counted}"
    );
    // A whole load that changes the rule changes its element alone.
    ok(
        &env,
        env.nft(&["add", "table", "inet", "someone_else_again"]),
    );
    apply(&env, &mapped_policy(2000, 1000, 8443), &[]);
    assert!(connects(&env, vm_user, 8443));
    assert!(!connects(&env, vm_user, 8444));
    let (count, local) = map_elements(&env, map);
    assert_eq!(count, 2000);
    assert!(local.contains(". 8443 counter packets 1 "), "{local}");
}
