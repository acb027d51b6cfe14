//! Acceptance tests of the drop log issue: the helper reads the kernel's nflog itself, names
//! the VM, user and rule of every logged packet, counts every packet, keeps its memory bounded
//! under a flood, and keeps its log across a restart when the policy asks — through the real
//! kernel, bus, polkit and users.

mod common;

use common::*;
use palisade_tests::{TestEnv, ADMIN, ALICE, BOB};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

const VM_USER: &str = "palisade-vm-work";

/// VM `work`: 8443 allowed, 8444 rejected and logged (rule 2), the rest dropped (logged by
/// default); a remote console on 127.0.0.1:5999 only pal-alice may open.
fn policy(extra: &str) -> String {
    format!(
        "{}\n[[vm.rule]]\naction = \"reject\"\ndestination = \"127.0.0.1\"\nproto = \"tcp\"\n\
         ports = 8444\nlog = true\n\n\
         [[remote_console]]\nname = \"lab\"\nhost = \"127.0.0.1\"\nport = 5999\n\
         users = [\"pal-alice\"]\n{extra}",
        work_policy(8443)
    )
}

#[test]
fn a_drop_reaches_a_follower_named_by_vm_rule_user_and_port() {
    let env = start();
    apply(&env, &policy(""), &[]);
    let follower = Follower::start(&env, ADMIN, None);

    // pal-bob listens for the log's signals as an eavesdropper would: he must hear nothing.
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/signal_watch.py"));
    let mut watcher = env
        .spawn_as(
            Some(BOB),
            &["/usr/bin/python3", &tool.to_string_lossy(), "4"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut watched = BufReader::new(watcher.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    let mut ready = String::new();
    let _ = watched.read_line(&mut ready);
    assert_eq!(ready.trim(), "ready", "the signal watcher did not start");

    // Rule 2 rejects 8444; the follower hears of it within a second of the attempt.
    assert!(!connects(&env, VM_USER, 8444));
    let rejected = follower
        .wait_for(Duration::from_secs(1), |v| v["destination_port"] == 8444)
        .unwrap_or_else(|| panic!("the rejected connection was not logged within 1 s"));
    assert_eq!(rejected["vm"], "work", "{rejected}");
    assert_eq!(rejected["user"], VM_USER, "{rejected}");
    assert_eq!(rejected["protocol"], "tcp", "{rejected}");
    assert_eq!(rejected["destination"], "127.0.0.1", "{rejected}");
    assert_eq!(rejected["rule"]["owner"], "vm", "{rejected}");
    assert_eq!(rejected["rule"]["vm"], "work", "{rejected}");
    assert_eq!(rejected["rule"]["kind"], "numbered", "{rejected}");
    assert_eq!(rejected["rule"]["first_rule"], 2, "{rejected}");
    assert_eq!(rejected["rule"]["verdict"], "reject", "{rejected}");
    let mut heard = String::new();
    let _ = watched.read_line(&mut heard);
    let _ = watcher.wait();
    let heard: serde_json::Value =
        serde_json::from_str(&heard).unwrap_or_else(|e| panic!("{e}: {heard}"));
    assert_eq!(heard["received"], 0, "pal-bob heard the log: {heard}");

    // What no rule allows meets the default action, logged as such.
    assert!(!connects(&env, VM_USER, 8445));
    let dropped = follower
        .wait_for(Duration::from_secs(5), |v| v["destination_port"] == 8445)
        .unwrap_or_else(|| panic!("the default drop was not logged"));
    assert_eq!(dropped["rule"]["kind"], "default", "{dropped}");
    assert_eq!(dropped["rule"]["verdict"], "drop", "{dropped}");
    // An allowed connection is not logged.
    let _listener = listen(&env, &[8443]);
    assert!(connects(&env, VM_USER, 8443));
    assert!(follower
        .wait_for(Duration::from_secs(1), |v| v["destination_port"] == 8443)
        .is_none());

    // The console guard refuses pal-bob in the kernel, and says it was pal-bob.
    assert!(!connects(&env, BOB, 5999));
    let refused = follower
        .wait_for(Duration::from_secs(5), |v| v["destination_port"] == 5999)
        .unwrap_or_else(|| panic!("the console refusal was not logged"));
    assert_eq!(refused["user"], BOB, "{refused}");
    assert_eq!(refused["vm"], "", "{refused}");
    assert_eq!(refused["rule"]["owner"], "console", "{refused}");
    assert_eq!(refused["rule"]["kind"], "refused", "{refused}");

    // Following for one VM shows that VM's entries only.
    let work_only = Follower::start(&env, ADMIN, Some("work"));
    assert!(!connects(&env, BOB, 5999));
    assert!(!connects(&env, VM_USER, 8446));
    let first = work_only
        .wait_for(Duration::from_secs(5), |_| true)
        .unwrap_or_else(|| panic!("nothing for work"));
    assert_eq!(first["destination_port"], 8446, "{first}");

    // The log is admin-only: pal-bob is refused, and so is pal-alice (an operator of work) for
    // the whole log; the test's polkit rule (as README.md shows) grants her work's log alone.
    for user in [BOB, ALICE] {
        let out = env.palisadectl(Some(user), &["log", "follow"]);
        assert_eq!(out.status.code(), Some(77), "{}", text(&out));
        let out = env.palisadectl(Some(user), &["log", "show"]);
        assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    }
    for args in [
        ["log", "show", "--vm", "banking"],
        ["log", "counters", "--vm", "banking"],
    ] {
        let out = env.palisadectl(Some(ALICE), &args);
        assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    }
    let hers = json_out(&env, ALICE, &["log", "show", "--vm", "work"]);
    let hers = hers.as_array().cloned().unwrap_or_default();
    assert!(
        hers.iter().any(|v| v["destination_port"] == 8444)
            && hers
                .iter()
                .all(|v| v["vm"] == "work" || v["rule"]["vm"] == "work"),
        "{hers:?}"
    );
    let out = env.palisadectl(Some(BOB), &["log", "show", "--vm", "work"]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
}

#[test]
fn counters_count_every_packet_and_a_flood_is_logged_at_the_limit() {
    let env = start();
    apply(&env, &policy(""), &[]);

    // A known number of packets: counted exactly, each one logged (fewer than the burst).
    let before = rule_counter(&env, "work", "default", 0);
    let out = env.run_as(
        Some(VM_USER),
        &[
            "python3".to_owned(),
            netcheck(&env),
            "udp".into(),
            "127.0.0.1".into(),
            "9".into(),
            "7".into(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let after = rule_counter(&env, "work", "default", 0);
    assert_eq!(
        after["packets"].as_u64().unwrap_or(0) - before["packets"].as_u64().unwrap_or(0),
        7,
        "{before} {after}"
    );
    assert_eq!(
        after["bytes"].as_u64().unwrap_or(0) - before["bytes"].as_u64().unwrap_or(0),
        7 * 29,
        "{before} {after}"
    );
    assert!(after["last_hit"].as_u64().unwrap_or(0) > 0, "{after}");
    // Entries logged for packets to `port`, once `settled` says the count is final (the
    // kernel sends at most every 50 ms and the helper gathers for 100 ms).
    let logged = |env: &TestEnv, port: u64, settled: &dyn Fn(usize) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let shown = json_out(
                env,
                ADMIN,
                &["log", "show", "--vm", "work", "--max", "10000"],
            );
            let n = shown.as_array().map_or(0, |all| {
                all.iter().filter(|v| v["destination_port"] == port).count()
            });
            if settled(n) || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    assert_eq!(logged(&env, 9, &|n| n >= 7), 7);

    // A flood: every packet counted, at most the limit's burst and rate logged, and the
    // helper's memory stays where its bounds put it.
    let pid = env.helper_pid().unwrap_or_else(|| panic!("no helper"));
    let rss_before = palisade_tests::rss_kib(pid);
    let before = rule_counter(&env, "work", "default", 0);
    let started = Instant::now();
    let out = env.run_as(
        Some(VM_USER),
        &[
            "python3".to_owned(),
            netcheck(&env),
            "udp".into(),
            "127.0.0.1".into(),
            "10".into(),
            "10000".into(),
        ],
    );
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", text(&out));
    let after = rule_counter(&env, "work", "default", 0);
    assert_eq!(
        after["packets"].as_u64().unwrap_or(0) - before["packets"].as_u64().unwrap_or(0),
        10_000,
        "{before} {after}"
    );
    std::thread::sleep(Duration::from_millis(1_500));
    let flood_logged = logged(&env, 10, &|_| true);
    // The limit: a burst of 100, then 50 a second (one more second for the kernel's clock).
    let most = 100 + (50.0 * (seconds + 1.0)) as usize;
    assert!(
        (1..=most).contains(&flood_logged),
        "{flood_logged} entries logged for 10,000 packets in {seconds:.2} s (at most {most})"
    );
    let rss_after = palisade_tests::rss_kib(pid);
    assert!(
        rss_after < rss_before + 16 * 1024,
        "the helper grew from {rss_before} KiB to {rss_after} KiB under a flood"
    );
}

#[test]
fn the_file_log_survives_a_restart() {
    let mut env = start();
    apply(
        &env,
        &policy("\n[settings.log]\nkeep_on_disk = true\ndisk_size = \"1M\"\n"),
        &[],
    );
    assert!(!connects(&env, VM_USER, 8447));
    let find = |env: &TestEnv| {
        json_out(env, ADMIN, &["log", "show", "--since", "10m"])
            .as_array()
            .and_then(|all| all.iter().find(|v| v["destination_port"] == 8447).cloned())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = loop {
        if let Some(v) = find(&env) {
            break v;
        }
        assert!(Instant::now() < deadline, "the drop was not logged");
        std::thread::sleep(Duration::from_millis(200));
    };
    env.stop_helper();
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let after = find(&env).unwrap_or_else(|| panic!("the drop log lost {before} in a restart"));
    assert_eq!(after, before);
    // Entries logged after the restart go on from the kept ones' numbers.
    assert!(!connects(&env, VM_USER, 8448));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let shown = json_out(&env, ADMIN, &["log", "show"]);
        if let Some(next) = shown
            .as_array()
            .and_then(|all| all.iter().find(|v| v["destination_port"] == 8448).cloned())
        {
            assert!(
                next["seq"].as_u64() > before["seq"].as_u64(),
                "{next} {before}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing logged after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
